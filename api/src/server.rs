//! The HTTP server: accepts TCP connections and serves each with hyper, with the limits a
//! public server needs and `axum::serve` does not set.
//!
//! - **Header and idle timeout.** hyper only enforces `header_read_timeout` when it has a
//!   timer, which `axum::serve` never gives it. Since hyperium/hyper#3828 (in the hyper 1.x
//!   we build with) the same timer also starts when a keep-alive connection goes idle after a
//!   response, so one
//!   setting bounds both a client that sends its headers slowly and one that keeps an idle
//!   connection open: either is closed after `PHOTON_HTTP_HEADER_TIMEOUT_MS`.
//! - **HTTP/1.1 only.** hyper-util's auto-detecting server first waits, with no timeout, for
//!   enough bytes to tell HTTP/2's preface from HTTP/1, and cleartext HTTP/2 (h2c) has no
//!   header or idle timeout at all. Phones and browsers only speak HTTP/2 over TLS, which a
//!   load balancer in front terminates, so h2c is refused rather than left unbounded.
//! - **Connection caps**, in all and per peer address. Over a cap, the connection is answered
//!   with a bare 503 (if the socket takes it without waiting) and closed at once: no task, no
//!   buffer, no parsing is spent on it.
//! - **Client address.** Every request carries `ConnectInfo<SocketAddr>` in its extensions,
//!   the peer of its TCP connection, as `axum::serve` with connect info would.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::limits::network_of;

/// Connection limits: HTTP timeouts, connection caps and WebSocket send and idle limits.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionSettings {
    /// Milliseconds a client has to send a request's headers, counted from the connection's
    /// start or, on a keep-alive connection, from the end of the previous response: an idle
    /// HTTP/1.1 connection is closed after this long.
    #[arg(long, env = "PHOTON_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=300_000))]
    pub http_header_timeout_ms: u64,

    /// Most TCP connections (HTTP and WebSocket) this replica holds at once. Sized for tens of
    /// thousands of phones each holding one WebSocket.
    #[arg(long, env = "PHOTON_MAX_CONNECTIONS", default_value_t = 50_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Most TCP connections from one peer address. High, because one address may be a
    /// carrier-grade NAT with hundreds of phones behind it, or a load balancer (list a load
    /// balancer in the trusted proxies instead: trusted proxies are not capped per address).
    #[arg(long, env = "PHOTON_MAX_CONNECTIONS_PER_IP", default_value_t = 2_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_ip: u64,

    /// Milliseconds one WebSocket send may wait for a client that does not read before the
    /// socket is closed.
    #[arg(long, env = "PHOTON_WS_WRITE_TIMEOUT_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=300_000))]
    pub ws_write_timeout_ms: u64,

    /// Milliseconds an anonymous WebSocket (no token in `connection_init`, or no
    /// `connection_init` yet) may stay open with no subscription running.
    #[arg(long, env = "PHOTON_WS_ANONYMOUS_IDLE_MS", default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub ws_anonymous_idle_ms: u64,

    /// Seconds between keep-alive messages on a WebSocket; a socket silent for three of
    /// these is closed.
    #[arg(long, env = "PHOTON_WS_KEEPALIVE_SECS", default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=300))]
    pub ws_keepalive_secs: u64,

    /// Most subscriptions one WebSocket may run at once.
    #[arg(long, env = "PHOTON_WS_MAX_SUBSCRIPTIONS", default_value_t = 32,
        value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub ws_max_subscriptions: u64,
}

impl ConnectionSettings {
    pub fn http_header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout_ms)
    }

    pub fn ws_write_timeout(&self) -> Duration {
        Duration::from_millis(self.ws_write_timeout_ms)
    }

    pub fn ws_anonymous_idle(&self) -> Duration {
        Duration::from_millis(self.ws_anonymous_idle_ms)
    }
}

/// Peers that are not capped per address (trusted proxies: every client behind them shares
/// their address).
pub type PerIpExempt = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Counts open connections, in all and per peer address.
pub struct ConnectionCaps {
    total: usize,
    per_ip: usize,
    exempt: Option<PerIpExempt>,
    open: Mutex<Open>,
    refused: AtomicU64,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

impl ConnectionCaps {
    pub fn new(settings: &ConnectionSettings, exempt: Option<PerIpExempt>) -> Arc<Self> {
        Arc::new(Self {
            total: usize::try_from(settings.max_connections).unwrap_or(usize::MAX),
            per_ip: usize::try_from(settings.max_connections_per_ip).unwrap_or(usize::MAX),
            exempt,
            open: Mutex::default(),
            refused: AtomicU64::new(0),
        })
    }

    /// A slot for a new connection from `peer`, or why there is none. Addresses are counted
    /// per client network (an IPv6 /64, see [`network_of`]), so one subscriber cannot take
    /// every slot by rotating through its addresses.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, &'static str> {
        let capped = !self.exempt.as_ref().is_some_and(|exempt| exempt(peer));
        let ip = network_of(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.total {
            return Err("total");
        }
        let from_ip = open.by_ip.get(&ip).copied().unwrap_or(0);
        if capped && from_ip >= self.per_ip {
            return Err("per_ip");
        }
        open.total += 1;
        open.by_ip.insert(ip, from_ip + 1);
        Ok(Slot {
            caps: self.clone(),
            ip,
        })
    }

    /// Connections refused over a cap since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One admitted connection; freed when the socket is dropped, which for a WebSocket is when
/// the upgraded socket closes, not when its HTTP exchange ends.
struct Slot {
    caps: Arc<ConnectionCaps>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .caps
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream holding its connection slot.
struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// What a refused connection is told, if its socket takes it at once.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";

/// Serves `router` on `listener` until `shutdown` turns true, then lets open requests finish
/// for up to `grace`. WebSockets close themselves on the same signal.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &ConnectionSettings,
    caps: Arc<ConnectionCaps>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.http_header_timeout())
        .keep_alive(true);
    // Each connection task holds a sender; once all are dropped, every connection is done.
    let (running, mut all_done) = mpsc::channel::<Infallible>(1);
    let mut stopping = shutdown.clone();
    let stop = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let slot = match caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(cap) => {
                caps.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %peer.ip(), cap, "connection refused: over the cap");
                let _ = stream.try_write(REFUSAL);
                continue;
            }
        };
        // Small messages (WebSocket keep-alives, GraphQL results) go out at once.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Counted {
            stream,
            _slot: slot,
        });
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let mut stopping = shutdown.clone();
        let running = running.clone();
        tokio::spawn(async move {
            let _running = running;
            tokio::pin!(connection);
            let stop = async move {
                let _ = stopping.wait_for(|stopping| *stopping).await;
            };
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop => {
                    // Finishes the request in flight, then closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                // Header timeouts, resets and malformed requests: the client's doing.
                tracing::debug!(peer = %peer.ip(), error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(running);
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "requests still running at the end of the grace period; stopping anyway"
        );
    }
}

/// Errors of one connection (reset before it was accepted) are the client's; others (out of
/// file descriptors) last a while, so wait before trying again rather than spin.
async fn accept_failed(err: io::Error) {
    let per_connection = matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    );
    if per_connection {
        tracing::debug!(error = %err, "accept failed");
    } else {
        tracing::error!(error = %err, "accept failed; pausing");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn caps(total: u64, per_ip: u64, exempt: Option<PerIpExempt>) -> Arc<ConnectionCaps> {
        let mut settings = crate::config::settings_from_args(["photon"])
            .unwrap()
            .connections;
        settings.max_connections = total;
        settings.max_connections_per_ip = per_ip;
        ConnectionCaps::new(&settings, exempt)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn connections_are_capped_per_address_and_in_all() {
        let caps = caps(3, 2, None);
        let a1 = caps.admit(ip(1)).unwrap();
        let _a2 = caps.admit(ip(1)).unwrap();
        assert_eq!(caps.admit(ip(1)).err(), Some("per_ip"));
        let _b1 = caps.admit(ip(2)).unwrap();
        assert_eq!(caps.admit(ip(3)).err(), Some("total"));
        assert_eq!(caps.open(), 3);
        drop(a1);
        assert_eq!(caps.open(), 2);
        let _a3 = caps.admit(ip(1)).unwrap();
    }

    #[test]
    fn an_ipv6_subscriber_is_capped_per_64_and_mapped_ipv4_as_ipv4() {
        let caps = caps(100, 2, None);
        let in_64 = |host: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, host]);
        let _a = caps.admit(in_64(1)).unwrap();
        let _b = caps.admit(in_64(2)).unwrap();
        assert_eq!(caps.admit(in_64(3)).err(), Some("per_ip"));
        let other_64 = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        let _c = caps.admit(other_64).unwrap();
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        let _d = caps.admit(ip(1)).unwrap();
        let _e = caps.admit(mapped).unwrap();
        assert_eq!(caps.admit(ip(1)).err(), Some("per_ip"));
    }

    #[test]
    fn exempt_peers_are_capped_only_in_all() {
        let proxy = ip(9);
        let caps = caps(3, 1, Some(Arc::new(move |peer| peer == proxy)));
        let _slots: Vec<Slot> = (0..3).map(|_| caps.admit(proxy).unwrap()).collect();
        assert_eq!(caps.admit(proxy).err(), Some("total"));
    }
}
