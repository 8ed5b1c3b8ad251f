//! The wire format of the two GraphQL-over-WebSocket sub-protocols: what each lets a client
//! send and the server answer, under that protocol's own message names, and the close codes.
//!
//! - `graphql-transport-ws`, from the `graphql-ws` library (Apollo Client's `GraphQLWsLink`,
//!   GraphiQL): <https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md>.
//! - `graphql-ws`, the legacy protocol of `subscriptions-transport-ws` (Apollo's older
//!   `WebSocketLink`), which names the same messages differently (`start` for `subscribe`,
//!   `data` for `next`, `ka` for keep-alives) and has no `ping`/`pong`.
//!
//! Each protocol's messages are a serde-tagged enum, so a message of the other protocol is an
//! unknown type here, not something half-understood. The connection works on the
//! protocol-neutral [`ClientMessage`] and [`ServerMessage`]; [`Protocol`] translates.

use std::borrow::Cow;

use async_graphql::{Request, Response, ServerError};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The sub-protocol name of `graphql-transport-ws`.
pub const TRANSPORT_WS: &str = "graphql-transport-ws";
/// The sub-protocol name of the legacy `subscriptions-transport-ws` protocol.
pub const LEGACY_WS: &str = "graphql-ws";

/// The sub-protocol a socket speaks, chosen at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    Transport,
    /// `graphql-ws` from `subscriptions-transport-ws`.
    Legacy,
}

impl Protocol {
    /// The protocol a `Sec-WebSocket-Protocol` name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            TRANSPORT_WS => Some(Self::Transport),
            LEGACY_WS => Some(Self::Legacy),
            _ => None,
        }
    }

    /// Its `Sec-WebSocket-Protocol` name (also its metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Self::Transport => TRANSPORT_WS,
            Self::Legacy => LEGACY_WS,
        }
    }

    /// Reads one client message of this protocol.
    pub fn parse(self, text: &str) -> Result<ClientMessage, ParseError> {
        let parsed = match self {
            Self::Transport => serde_json::from_str::<TransportClientMessage>(text).map(Into::into),
            Self::Legacy => serde_json::from_str::<LegacyClientMessage>(text).map(Into::into),
        };
        // The happy path parses once; only a failure is looked at again, to say what was wrong.
        parsed.map_err(|_| ParseError::classify(self, text))
    }

    /// The text of `message` in this protocol, or `None` for a message it does not have
    /// (`pong` and `connection_error` exist in one protocol each).
    pub fn encode(self, message: ServerMessage<'_>) -> Result<Option<String>, serde_json::Error> {
        match self {
            Self::Transport => TransportServerMessage::from_neutral(message)
                .map(|wire| serde_json::to_string(&wire))
                .transpose(),
            Self::Legacy => LegacyServerMessage::from_neutral(message)
                .map(|wire| serde_json::to_string(&wire))
                .transpose(),
        }
    }

    /// Whether a client of this protocol learns why from a `connection_error` before the close
    /// (legacy clients ignore close codes and reasons).
    pub fn explains_close(self, code: CloseCode) -> bool {
        self == Self::Legacy && matches!(code, CloseCode::Forbidden | CloseCode::InitTimeout)
    }

    /// Whether a stopped operation is acknowledged with `complete`: legacy clients wait for
    /// it; `graphql-transport-ws` clients already consider it done.
    pub fn acknowledges_stop(self) -> bool {
        self == Self::Legacy
    }

    /// The keep-alive to send, if any: `graphql-transport-ws` pings at any time; legacy `ka`
    /// is only sent once the connection is acknowledged (clients treat an early one as an
    /// error).
    pub fn keepalive(self, acknowledged: bool) -> Option<ServerMessage<'static>> {
        match (self, acknowledged) {
            (Self::Transport, _) | (Self::Legacy, true) => Some(ServerMessage::KeepAlive),
            (Self::Legacy, false) => None,
        }
    }
}

/// What a client asked, in either protocol.
#[derive(Debug)]
pub enum ClientMessage {
    /// `connection_init`, with the payload that carries the credentials.
    Init { payload: Option<Value> },
    /// `ping` (`graphql-transport-ws`): answered with `pong`.
    Ping,
    /// `pong` (`graphql-transport-ws`): the answer to our `ping`.
    Pong,
    /// `subscribe` / `start`: run an operation under the client's id.
    Subscribe { id: String, payload: Box<Request> },
    /// `complete` / `stop`: the client no longer wants the operation's results.
    Complete { id: String },
    /// `connection_terminate` (legacy): the client is leaving.
    Terminate,
}

/// Why a client message was not understood. All of them close the socket with
/// [`CloseCode::BadRequest`]; the reason says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a JSON object with a string `type`.
    NotJson,
    /// A `type` this protocol does not have (it may be the other protocol's).
    UnknownType,
    /// A known `type` with a missing or ill-typed field (no `id`, say).
    Malformed,
}

impl ParseError {
    /// Looks again at a message that did not parse, to tell why.
    fn classify(protocol: Protocol, text: &str) -> Self {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
        }
        let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(text) else {
            return Self::NotJson;
        };
        let known: &[&str] = match protocol {
            Protocol::Transport => &TRANSPORT_CLIENT_TYPES,
            Protocol::Legacy => &LEGACY_CLIENT_TYPES,
        };
        if known.contains(&envelope.kind.as_ref()) {
            Self::Malformed
        } else {
            Self::UnknownType
        }
    }

    /// How the socket is closed for it.
    pub fn close(self) -> Close {
        let reason = match self {
            Self::NotJson => "messages must be JSON objects with a type",
            Self::UnknownType => "message type not part of this sub-protocol",
            Self::Malformed => "invalid message",
        };
        Close::new(CloseCode::BadRequest, reason)
    }
}

/// Client message types of `graphql-transport-ws`.
const TRANSPORT_CLIENT_TYPES: [&str; 5] =
    ["connection_init", "ping", "pong", "subscribe", "complete"];
/// Client message types of the legacy protocol.
const LEGACY_CLIENT_TYPES: [&str; 4] = ["connection_init", "start", "stop", "connection_terminate"];

/// `graphql-transport-ws` messages from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TransportClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    // A ping's or pong's optional payload means nothing to us; unknown fields are ignored.
    Ping {},
    Pong {},
    Subscribe {
        id: String,
        payload: Box<Request>,
    },
    Complete {
        id: String,
    },
}

impl From<TransportClientMessage> for ClientMessage {
    fn from(message: TransportClientMessage) -> Self {
        match message {
            TransportClientMessage::ConnectionInit { payload } => Self::Init { payload },
            TransportClientMessage::Ping {} => Self::Ping,
            TransportClientMessage::Pong {} => Self::Pong,
            TransportClientMessage::Subscribe { id, payload } => Self::Subscribe { id, payload },
            TransportClientMessage::Complete { id } => Self::Complete { id },
        }
    }
}

/// Legacy (`subscriptions-transport-ws`) messages from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LegacyClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Start {
        id: String,
        payload: Box<Request>,
    },
    Stop {
        id: String,
    },
    ConnectionTerminate {},
}

impl From<LegacyClientMessage> for ClientMessage {
    fn from(message: LegacyClientMessage) -> Self {
        match message {
            LegacyClientMessage::ConnectionInit { payload } => Self::Init { payload },
            LegacyClientMessage::Start { id, payload } => Self::Subscribe { id, payload },
            LegacyClientMessage::Stop { id } => Self::Complete { id },
            LegacyClientMessage::ConnectionTerminate {} => Self::Terminate,
        }
    }
}

/// What the server tells a client, in either protocol.
#[derive(Debug, Clone, Copy)]
pub enum ServerMessage<'a> {
    /// `connection_ack`: the connection is initialised.
    ConnectionAck,
    /// `ping` (`graphql-transport-ws`) or `ka` (legacy).
    KeepAlive,
    /// `pong` (`graphql-transport-ws` only): the answer to a client's `ping`.
    Pong,
    /// `next` (`graphql-transport-ws`) or `data` (legacy): one result of an operation.
    Next { id: &'a str, payload: &'a Response },
    /// `error`: the operation was refused or failed before it ran; it is over.
    Error {
        id: &'a str,
        payload: &'a [ServerError],
    },
    /// `complete`: the operation has no more results.
    Complete { id: &'a str },
    /// `connection_error` (legacy only): why the connection is about to close.
    ConnectionError { message: &'a str },
}

/// `graphql-transport-ws` messages from the server.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TransportServerMessage<'a> {
    ConnectionAck,
    Ping,
    Pong,
    Next {
        id: &'a str,
        payload: &'a Response,
    },
    Error {
        id: &'a str,
        payload: &'a [ServerError],
    },
    Complete {
        id: &'a str,
    },
}

impl<'a> TransportServerMessage<'a> {
    fn from_neutral(message: ServerMessage<'a>) -> Option<Self> {
        Some(match message {
            ServerMessage::ConnectionAck => Self::ConnectionAck,
            ServerMessage::KeepAlive => Self::Ping,
            ServerMessage::Pong => Self::Pong,
            ServerMessage::Next { id, payload } => Self::Next { id, payload },
            ServerMessage::Error { id, payload } => Self::Error { id, payload },
            ServerMessage::Complete { id } => Self::Complete { id },
            ServerMessage::ConnectionError { .. } => return None,
        })
    }
}

/// Legacy messages from the server.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LegacyServerMessage<'a> {
    ConnectionAck,
    Ka,
    ConnectionError {
        payload: ErrorMessage<'a>,
    },
    Data {
        id: &'a str,
        payload: &'a Response,
    },
    // Apollo's legacy client accepts an array of errors here as well as a single one.
    Error {
        id: &'a str,
        payload: &'a [ServerError],
    },
    Complete {
        id: &'a str,
    },
}

impl<'a> LegacyServerMessage<'a> {
    fn from_neutral(message: ServerMessage<'a>) -> Option<Self> {
        Some(match message {
            ServerMessage::ConnectionAck => Self::ConnectionAck,
            ServerMessage::KeepAlive => Self::Ka,
            ServerMessage::Pong => return None,
            ServerMessage::Next { id, payload } => Self::Data { id, payload },
            ServerMessage::Error { id, payload } => Self::Error { id, payload },
            ServerMessage::Complete { id } => Self::Complete { id },
            ServerMessage::ConnectionError { message } => Self::ConnectionError {
                payload: ErrorMessage { message },
            },
        })
    }
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    message: &'a str,
}

/// Why a socket is closed. The 44xx codes are `graphql-transport-ws`'s; the legacy protocol has
/// none of its own, so its sockets close with the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000 (RFC 6455): normal closure; the legacy client sent `connection_terminate`.
    Normal,
    /// 1001 (RFC 6455): going away. The server is shutting down, the client stopped answering
    /// keep-alives, or an anonymous socket sat idle. Clients reconnect, to another replica
    /// if this one is stopping.
    GoingAway,
    /// 4400: a message that is not JSON, not of this protocol, or missing a field.
    BadRequest,
    /// 4401: `subscribe` before `connection_init` was acknowledged.
    Unauthorized,
    /// 4403: the token in `connection_init` is invalid, or it expired while the socket was
    /// open. `graphql-ws` clients reconnect, asking the app for a fresh token on the way.
    Forbidden,
    /// 4406: the client asked for no sub-protocol this server speaks.
    SubprotocolNotAcceptable,
    /// 4408: no `connection_init` within the time allowed.
    InitTimeout,
    /// 4409: a `subscribe` reused the id of an operation that is still running.
    SubscriberExists,
    /// 4429: a second `connection_init`, or a connection or user over its rate limit.
    TooManyInits,
    /// 4500: the server failed to write a message (a bug, never the client's doing).
    InternalError,
}

impl CloseCode {
    /// The number sent in the close frame.
    pub fn code(self) -> u16 {
        match self {
            Self::Normal => 1000,
            Self::GoingAway => 1001,
            Self::BadRequest => 4400,
            Self::Unauthorized => 4401,
            Self::Forbidden => 4403,
            Self::SubprotocolNotAcceptable => 4406,
            Self::InitTimeout => 4408,
            Self::SubscriberExists => 4409,
            Self::TooManyInits => 4429,
            Self::InternalError => 4500,
        }
    }
}

/// A close the server decided on: its code and the reason sent with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: CloseCode,
    pub reason: Cow<'static, str>,
}

/// Longest close reason RFC 6455 allows (a control frame carries at most 125 bytes, two of
/// them the code).
const MAX_REASON_BYTES: usize = 123;

impl Close {
    pub fn new(code: CloseCode, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// The close frame, its reason cut to what a frame may carry.
    pub fn frame(&self) -> Message {
        let reason = &self.reason;
        let mut end = reason.len().min(MAX_REASON_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Message::Close(Some(CloseFrame {
            code: self.code.code(),
            reason: Utf8Bytes::from(&reason[..end]),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse(protocol: Protocol, text: &str) -> ClientMessage {
        protocol
            .parse(text)
            .unwrap_or_else(|err| panic!("{text}: {err:?}"))
    }

    fn subscribe_of(message: ClientMessage) -> (String, Box<Request>) {
        match message {
            ClientMessage::Subscribe { id, payload } => (id, payload),
            other => panic!("expected a subscribe, got {other:?}"),
        }
    }

    #[test]
    fn every_transport_client_message_parses() {
        let t = Protocol::Transport;
        let init = parse(
            t,
            r#"{"type":"connection_init","payload":{"authorization":"Bearer x"}}"#,
        );
        assert!(
            matches!(init, ClientMessage::Init { payload: Some(p) } if p["authorization"] == "Bearer x")
        );
        assert!(matches!(
            parse(t, r#"{"type":"connection_init"}"#),
            ClientMessage::Init { payload: None }
        ));
        assert!(matches!(
            parse(t, r#"{"type":"connection_init","payload":null}"#),
            ClientMessage::Init { payload: None }
        ));
        assert!(matches!(
            parse(t, r#"{"type":"ping"}"#),
            ClientMessage::Ping
        ));
        assert!(matches!(
            parse(t, r#"{"type":"ping","payload":{"at":1}}"#),
            ClientMessage::Ping
        ));
        assert!(matches!(
            parse(t, r#"{"type":"pong"}"#),
            ClientMessage::Pong
        ));
        let (id, request) = subscribe_of(parse(
            t,
            r#"{"type":"subscribe","id":"7","payload":{"query":"subscription S { x }","operationName":"S","variables":{"a":1}}}"#,
        ));
        assert_eq!(id, "7");
        assert_eq!(request.query, "subscription S { x }");
        assert_eq!(request.operation_name.as_deref(), Some("S"));
        assert!(matches!(
            parse(t, r#"{"type":"complete","id":"7"}"#),
            ClientMessage::Complete { id } if id == "7"
        ));
    }

    #[test]
    fn every_legacy_client_message_parses() {
        let l = Protocol::Legacy;
        assert!(matches!(
            parse(l, r#"{"type":"connection_init","payload":{"token":"x"}}"#),
            ClientMessage::Init { payload: Some(_) }
        ));
        let (id, request) = subscribe_of(parse(
            l,
            r#"{"type":"start","id":"1","payload":{"query":"{ me { id } }"}}"#,
        ));
        assert_eq!(
            (id.as_str(), request.query.as_str()),
            ("1", "{ me { id } }")
        );
        assert!(matches!(
            parse(l, r#"{"type":"stop","id":"1"}"#),
            ClientMessage::Complete { id } if id == "1"
        ));
        assert!(matches!(
            parse(l, r#"{"type":"connection_terminate"}"#),
            ClientMessage::Terminate
        ));
    }

    #[test]
    fn bad_json_is_not_json() {
        for protocol in [Protocol::Transport, Protocol::Legacy] {
            for text in [
                "",
                "hello",
                "{",
                r#""ping""#,
                "[]",
                r#"{"type":1}"#,
                r#"{"id":"1"}"#,
            ] {
                assert_eq!(
                    protocol.parse(text).err(),
                    Some(ParseError::NotJson),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn the_other_protocols_messages_are_unknown_types() {
        let t = Protocol::Transport;
        let l = Protocol::Legacy;
        for text in [
            r#"{"type":"start","id":"1","payload":{"query":"{ a }"}}"#,
            r#"{"type":"stop","id":"1"}"#,
            r#"{"type":"connection_terminate"}"#,
            r#"{"type":"next","id":"1","payload":{}}"#,
        ] {
            assert_eq!(t.parse(text).err(), Some(ParseError::UnknownType), "{text}");
        }
        for text in [
            r#"{"type":"subscribe","id":"1","payload":{"query":"{ a }"}}"#,
            r#"{"type":"complete","id":"1"}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"pong"}"#,
        ] {
            assert_eq!(l.parse(text).err(), Some(ParseError::UnknownType), "{text}");
        }
    }

    #[test]
    fn a_known_type_missing_its_id_or_payload_is_malformed() {
        let cases = [
            (
                Protocol::Transport,
                r#"{"type":"subscribe","payload":{"query":"{ a }"}}"#,
            ),
            (Protocol::Transport, r#"{"type":"subscribe","id":"1"}"#),
            (
                Protocol::Transport,
                r#"{"type":"subscribe","id":7,"payload":{}}"#,
            ),
            (
                Protocol::Transport,
                r#"{"type":"subscribe","id":"1","payload":"{ a }"}"#,
            ),
            (Protocol::Transport, r#"{"type":"complete"}"#),
            (
                Protocol::Legacy,
                r#"{"type":"start","payload":{"query":"{ a }"}}"#,
            ),
            (Protocol::Legacy, r#"{"type":"stop"}"#),
        ];
        for (protocol, text) in cases {
            assert_eq!(
                protocol.parse(text).err(),
                Some(ParseError::Malformed),
                "{text}"
            );
        }
    }

    #[test]
    fn every_parse_error_closes_with_4400() {
        for error in [
            ParseError::NotJson,
            ParseError::UnknownType,
            ParseError::Malformed,
        ] {
            assert_eq!(error.close().code.code(), 4400);
        }
    }

    fn encode(protocol: Protocol, message: ServerMessage<'_>) -> Option<String> {
        protocol.encode(message).unwrap()
    }

    #[test]
    fn transport_server_messages_are_byte_exact() {
        let t = Protocol::Transport;
        let response = Response::new(async_graphql::value!({ "a": 1 }));
        let mut error = ServerError::new("nope", None);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "RATE_LIMITED");
        let errors = [error];
        let cases = [
            (ServerMessage::ConnectionAck, r#"{"type":"connection_ack"}"#),
            (ServerMessage::KeepAlive, r#"{"type":"ping"}"#),
            (ServerMessage::Pong, r#"{"type":"pong"}"#),
            (
                ServerMessage::Next {
                    id: "1",
                    payload: &response,
                },
                r#"{"type":"next","id":"1","payload":{"data":{"a":1}}}"#,
            ),
            (
                ServerMessage::Error {
                    id: "1",
                    payload: &errors,
                },
                r#"{"type":"error","id":"1","payload":[{"message":"nope","extensions":{"code":"RATE_LIMITED"}}]}"#,
            ),
            (
                ServerMessage::Complete { id: "1" },
                r#"{"type":"complete","id":"1"}"#,
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(encode(t, message).as_deref(), Some(expected));
        }
        assert_eq!(
            encode(t, ServerMessage::ConnectionError { message: "x" }),
            None
        );
    }

    #[test]
    fn legacy_server_messages_are_byte_exact() {
        let l = Protocol::Legacy;
        let response = Response::new(async_graphql::value!({ "a": [true] }));
        let errors = [ServerError::new("bad", None)];
        let cases = [
            (ServerMessage::ConnectionAck, r#"{"type":"connection_ack"}"#),
            (ServerMessage::KeepAlive, r#"{"type":"ka"}"#),
            (
                ServerMessage::ConnectionError {
                    message: "the access token expired",
                },
                r#"{"type":"connection_error","payload":{"message":"the access token expired"}}"#,
            ),
            (
                ServerMessage::Next {
                    id: "x",
                    payload: &response,
                },
                r#"{"type":"data","id":"x","payload":{"data":{"a":[true]}}}"#,
            ),
            (
                ServerMessage::Error {
                    id: "x",
                    payload: &errors,
                },
                r#"{"type":"error","id":"x","payload":[{"message":"bad"}]}"#,
            ),
            (
                ServerMessage::Complete { id: "x" },
                r#"{"type":"complete","id":"x"}"#,
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(encode(l, message).as_deref(), Some(expected));
        }
        assert_eq!(encode(l, ServerMessage::Pong), None);
    }

    #[test]
    fn ids_and_results_are_escaped_as_json() {
        let response = Response::new(async_graphql::value!({ "a": "\"</script>\n" }));
        let text = encode(
            Protocol::Transport,
            ServerMessage::Next {
                id: "a\"b",
                payload: &response,
            },
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{"type":"next","id":"a\"b","payload":{"data":{"a":"\"</script>\n"}}}"#
        );
    }

    #[test]
    fn protocols_are_chosen_by_their_exact_names() {
        assert_eq!(
            Protocol::from_name("graphql-transport-ws"),
            Some(Protocol::Transport)
        );
        assert_eq!(Protocol::from_name("graphql-ws"), Some(Protocol::Legacy));
        assert_eq!(Protocol::from_name("GRAPHQL-WS"), None);
        assert_eq!(Protocol::from_name("graphql-sse"), None);
        for protocol in [Protocol::Transport, Protocol::Legacy] {
            assert_eq!(Protocol::from_name(protocol.name()), Some(protocol));
        }
    }

    #[test]
    fn keepalives_and_acknowledgements_follow_each_protocol() {
        assert!(matches!(
            Protocol::Transport.keepalive(false),
            Some(ServerMessage::KeepAlive)
        ));
        assert!(Protocol::Legacy.keepalive(false).is_none());
        assert!(Protocol::Legacy.keepalive(true).is_some());
        assert!(Protocol::Legacy.acknowledges_stop());
        assert!(!Protocol::Transport.acknowledges_stop());
        assert!(Protocol::Legacy.explains_close(CloseCode::Forbidden));
        assert!(!Protocol::Legacy.explains_close(CloseCode::GoingAway));
        assert!(!Protocol::Transport.explains_close(CloseCode::Forbidden));
    }

    #[test]
    fn close_codes_have_their_protocol_numbers() {
        let codes = [
            (CloseCode::Normal, 1000),
            (CloseCode::GoingAway, 1001),
            (CloseCode::BadRequest, 4400),
            (CloseCode::Unauthorized, 4401),
            (CloseCode::Forbidden, 4403),
            (CloseCode::SubprotocolNotAcceptable, 4406),
            (CloseCode::InitTimeout, 4408),
            (CloseCode::SubscriberExists, 4409),
            (CloseCode::TooManyInits, 4429),
            (CloseCode::InternalError, 4500),
        ];
        for (code, number) in codes {
            assert_eq!(code.code(), number, "{code:?}");
        }
    }

    #[test]
    fn close_reasons_are_cut_to_a_frame_on_a_character_boundary() {
        let long = "é".repeat(100);
        let Message::Close(Some(frame)) = Close::new(CloseCode::BadRequest, long).frame() else {
            panic!("expected a close frame");
        };
        assert_eq!(frame.code, 4400);
        assert_eq!(frame.reason.len(), 122);
        assert!(frame.reason.as_str().chars().all(|c| c == 'é'));
    }
}
