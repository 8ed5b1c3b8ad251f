//! Local ports for the servers tests start themselves (a Postgres cluster, an S3 server, a
//! NATS server), so each can be stopped and started again on the same address.
//!
//! They come from below the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), not
//! from binding port 0: while a server is stopped, any outgoing connection on the machine
//! may be given a port from that range as its local port, and a server whose port was taken
//! that way cannot start again.

// Test support: a failed unwrap fails the test that called it, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};

/// Where the ports handed out start; the registered ports below stay alone.
const LOWEST: u16 = 10_000;

/// A port on 127.0.0.1 that nothing listened on a moment ago, and that no outgoing
/// connection will be given while its server is down.
pub fn free_port() -> u16 {
    let (low, high) = ephemeral_range();
    // Below the ephemeral range when there is room for it; else above it.
    let (from, to) = if low > LOWEST + 1_000 {
        (LOWEST, low)
    } else {
        (high.saturating_add(1), u16::MAX)
    };
    for _ in 0..1_000 {
        let port = from + (OsRng.next_u32() % u32::from(to - from)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {from} and {to}");
}

/// The kernel's ephemeral port range; Linux's default when it cannot be read.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut bounds = range.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

/// Blocks until 127.0.0.1:`port` accepts connections; fails after 10 s, naming `server`.
pub fn wait_until_accepting(port: u16, server: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{server} did not start");
        std::thread::sleep(Duration::from_millis(25));
    }
}
