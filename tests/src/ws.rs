//! A GraphQL-over-WebSocket client for tests and benches, speaking either sub-protocol the way
//! Apollo's links do, over a real socket.

// Test support: a failed unwrap fails the test that called it, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Client;

/// How long a test waits for any one message before failing.
pub const WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (the `graphql-ws` library).
    Transport,
    /// `graphql-ws` (`subscriptions-transport-ws`).
    Legacy,
}

impl Protocol {
    pub const BOTH: [Protocol; 2] = [Protocol::Transport, Protocol::Legacy];

    pub fn name(self) -> &'static str {
        match self {
            Self::Transport => "graphql-transport-ws",
            Self::Legacy => "graphql-ws",
        }
    }
}

/// What arrived on the socket (keep-alives are answered and skipped).
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Message(Value),
    Closed(u16, String),
}

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: Protocol,
    /// Keep-alive messages seen (`ping` or `ka`).
    pub keepalives: usize,
    /// When the last message's frame arrived, before it was parsed.
    arrived: Instant,
    /// The request id the server gave the upgrade (its logs of this socket carry it).
    pub request_id: String,
}

impl WsClient {
    /// Opens a socket asking for `protocol`, without initialising it.
    pub async fn open(api: &impl AsRef<Client>, protocol: Protocol) -> Self {
        Self::open_with(api, protocol, WebSocketConfig::default()).await
    }

    /// Like [`open`](Self::open), with the library's buffers set by `config` (a process that
    /// holds thousands of sockets wants them small).
    pub async fn open_with(
        api: &impl AsRef<Client>,
        protocol: Protocol,
        config: WebSocketConfig,
    ) -> Self {
        Self::try_open_with(api, protocol, config).await.unwrap()
    }

    /// Like [`open_with`](Self::open_with), but a failed handshake (a server that is down or
    /// refuses the upgrade) is the caller's to handle.
    pub async fn try_open_with(
        api: &impl AsRef<Client>,
        protocol: Protocol,
        config: WebSocketConfig,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        Self::try_open_from(api, protocol, config, None).await
    }

    /// Like [`try_open_with`](Self::try_open_with), from the local address `from` (any of
    /// 127.0.0.0/8 on a loopback server). A process that opens tens of thousands of sockets to
    /// one server spreads them over several: each source address has its own ports, and the
    /// kernel's search for a free one among the busy ones (and those still in TIME_WAIT after
    /// a restart) grows with how many share an address.
    pub async fn try_open_from(
        api: &impl AsRef<Client>,
        protocol: Protocol,
        config: WebSocketConfig,
        from: Option<Ipv4Addr>,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let url = api.as_ref().url("/graphql").replacen("http", "ws", 1);
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol.name()),
        );
        let (socket, response) = match from {
            // Without Nagle's algorithm: a small message goes out at once, as timing needs.
            None => {
                tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?
            }
            Some(from) => {
                let uri = request.uri();
                let server = format!(
                    "{}:{}",
                    uri.host().unwrap_or_default(),
                    uri.port_u16().unwrap_or(80)
                );
                let server: SocketAddr = server.parse().map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an IP address")
                })?;
                let tcp = TcpSocket::new_v4()?;
                tcp.bind(SocketAddr::from((from, 0)))?;
                let stream = tcp.connect(server).await?;
                stream.set_nodelay(true)?;
                tokio_tungstenite::client_async_with_config(
                    request,
                    MaybeTlsStream::Plain(stream),
                    Some(config),
                )
                .await?
            }
        };
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol.name())
        );
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            socket,
            protocol,
            keepalives: 0,
            arrived: Instant::now(),
            request_id,
        })
    }

    /// Opens and initialises a socket with `payload`, expecting the server's ack.
    pub async fn connect(api: &impl AsRef<Client>, protocol: Protocol, payload: Value) -> Self {
        let mut client = Self::open(api, protocol).await;
        client.init_acknowledged(payload).await;
        client
    }

    /// Connects as `token`'s user, the way Apollo apps pass it.
    pub async fn connect_as(api: &impl AsRef<Client>, protocol: Protocol, token: &str) -> Self {
        Self::connect(api, protocol, auth_payload(token)).await
    }

    /// Initialises the socket with `payload` and waits for the server's ack.
    pub async fn init_acknowledged(&mut self, payload: Value) {
        self.init(payload).await;
        match self.recv().await {
            Received::Message(m) if m["type"] == "connection_ack" => {}
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    pub async fn init(&mut self, payload: Value) {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// Starts an operation under `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = match self.protocol {
            Protocol::Transport => "subscribe",
            Protocol::Legacy => "start",
        };
        self.send(json!({
            "type": kind,
            "id": id,
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    /// Stops the operation `id`.
    pub async fn stop(&mut self, id: &str) {
        let kind = match self.protocol {
            Protocol::Transport => "complete",
            Protocol::Legacy => "stop",
        };
        self.send(json!({ "type": kind, "id": id })).await;
    }

    /// The next message or close, answering pings on the way. Fails the test after [`WAIT`].
    pub async fn recv(&mut self) -> Received {
        self.recv_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("nothing arrived within {WAIT:?}"))
    }

    /// Like [`recv`](Self::recv), but `None` when nothing arrives within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Received> {
        self.read(Some(tokio::time::Instant::now() + wait)).await
    }

    /// Like [`recv`](Self::recv), however long it takes: for a reader that follows a socket
    /// until it closes.
    pub async fn recv_whenever(&mut self) -> Received {
        // Without a deadline, reading only ends with a message or a close.
        self.read(None)
            .await
            .unwrap_or_else(|| Received::Closed(1006, "connection dropped".into()))
    }

    /// When the frame of the message [`recv`](Self::recv) returned last arrived: the instant
    /// a latency measurement wants, before any parsing.
    pub fn arrived_at(&self) -> Instant {
        self.arrived
    }

    async fn read(&mut self, deadline: Option<tokio::time::Instant>) -> Option<Received> {
        loop {
            // Only the read is under the deadline, never a pong half sent.
            let frame = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.socket.next())
                    .await
                    .ok()?,
                None => self.socket.next().await,
            };
            self.arrived = Instant::now();
            match frame {
                None => return Some(Received::Closed(1006, "connection dropped".into())),
                Some(Err(err)) => return Some(Received::Closed(1006, err.to_string())),
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    match message["type"].as_str() {
                        Some("ping") => {
                            self.keepalives += 1;
                            // A socket closing meanwhile shows as its close on the next read.
                            let pong = json!({ "type": "pong" }).to_string();
                            let _ = self.socket.send(Message::Text(pong.into())).await;
                        }
                        Some("ka") => self.keepalives += 1,
                        _ => return Some(Received::Message(message)),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Some(Received::Closed(code, reason));
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The payload of the next result for `id`; fails on anything else.
    pub async fn next_payload(&mut self, id: &str) -> Value {
        let result = match self.protocol {
            Protocol::Transport => "next",
            Protocol::Legacy => "data",
        };
        match self.recv().await {
            Received::Message(m) if m["type"] == result && m["id"] == id => m["payload"].clone(),
            other => panic!("expected a result for {id}, got {other:?}"),
        }
    }

    /// Waits for `complete` for `id`.
    pub async fn expect_complete(&mut self, id: &str) {
        match self.recv().await {
            Received::Message(m) if m["type"] == "complete" && m["id"] == id => {}
            other => panic!("expected complete for {id}, got {other:?}"),
        }
    }

    /// Waits for the socket to close; returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.recv().await {
                Received::Closed(code, reason) => return (code, reason),
                // Legacy clients are told why first.
                Received::Message(m) if m["type"] == "connection_error" => {}
                other => panic!("expected the socket to close, got {other:?}"),
            }
        }
    }

    /// The photo ids of the next `n` `photoAdded` results (`graphql-transport-ws`), which must
    /// all arrive within `within`; then nothing more may arrive for `then_silent` (no photo
    /// twice). Fails on anything else.
    pub async fn photo_ids_within(
        &mut self,
        n: usize,
        within: Duration,
        then_silent: Duration,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut ids = Vec::new();
        while ids.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Some(Received::Message(m)) if m["type"] == "next" => ids.push(
                    m["payload"]["data"]["photoAdded"]["photo"]["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("expected a photo, got {m}"))
                        .to_owned(),
                ),
                Some(other) => panic!("expected photos, got {other:?}"),
                None => panic!("only {ids:?} of {n} photos within {within:?}"),
            }
        }
        self.expect_silence(then_silent).await;
        ids
    }

    /// Asserts nothing but keep-alives arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(received) = self.recv_within(wait).await {
            panic!("expected nothing, got {received:?}");
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// The `connection_init` payload of `token`'s user, the way Apollo apps pass it.
pub fn auth_payload(token: &str) -> Value {
    json!({ "authorization": format!("Bearer {token}") })
}
