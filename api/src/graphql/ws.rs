//! GraphQL over WebSocket at `GET /graphql`, in both sub-protocols Apollo clients speak:
//! `graphql-transport-ws` (the `graphql-ws` library, GraphiQL) and the legacy `graphql-ws`
//! (`subscriptions-transport-ws`).
//!
//! async-graphql ships a transport for both, but it answers a refused `connection_init` with
//! 1002 rather than the 4403 clients expect, sends no keep-alives, cannot close a socket when
//! its token expires and has no subscription limit, so the protocol is spoken here and only
//! execution is left to the schema.
//!
//! Each subscription runs in its own task and hands its results to the connection over a
//! bounded channel. A client that reads slowly therefore stalls only its own subscriptions,
//! whose feeds then fall behind the bus and catch up from the event log when they resume.

use std::collections::HashMap;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response, ServerError};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};

use super::cost::{self, Budget};
use super::errors::{REQUEST_ERROR_CODES, code_of};
use super::{Loaders, selected_operations};
use crate::app::{AppState, REQUEST_TIMEOUT};
use crate::error::ApiError;
use crate::limits::{self, ClientIp, Key, OpenSocket, Rule, SubscriptionBucket};
use crate::service::Viewer;
use crate::service::viewer::bearer_claims;

const TRANSPORT_WS: &str = "graphql-transport-ws";
const LEGACY_WS: &str = "graphql-ws";
/// How long a client has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message a client may send; GraphQL documents are small, as over HTTP.
const MAX_MESSAGE_BYTES: usize = super::http::MAX_BODY_BYTES;
/// Results waiting to be written to one socket.
const OUTBOX: usize = 64;
/// Longest subscription id accepted.
const MAX_ID_LEN: usize = 128;

/// Close codes from the `graphql-transport-ws` protocol, also used for the legacy one.
mod close {
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const SUBPROTOCOL_NOT_ACCEPTABLE: u16 = 4406;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    /// RFC 6455: the server is going away (shutting down, or the peer stopped answering).
    pub const GOING_AWAY: u16 = 1001;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws`.
    Transport,
    /// `graphql-ws` from `subscriptions-transport-ws`.
    Legacy,
}

/// Whether a request asks to become a WebSocket.
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// `GET /graphql`: a WebSocket upgrade, or a query over HTTP (or GraphiQL).
pub async fn get(State(state): State<AppState>, request: axum::extract::Request) -> HttpResponse {
    let (mut parts, _) = request.into_parts();
    let Ok(client) = ClientIp::from_request_parts(&mut parts, &state).await;
    if !is_upgrade(&parts.headers) {
        let query = parts.uri.query().map(str::to_owned);
        return super::http::get(State(state), client, parts.headers, RawQuery(query)).await;
    }
    // Refused before the upgrade, so an over-cap client gets a plain 429.
    let open = match state.rate_limiters.open_socket(client.0) {
        Ok(open) => open,
        Err(err) => return limits::too_many_requests(&err, "application/json"),
    };
    match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => upgrade(state, ws, client, open),
        Err(rejection) => rejection.into_response(),
    }
}

fn upgrade(
    state: AppState,
    ws: WebSocketUpgrade,
    client: ClientIp,
    open: OpenSocket,
) -> HttpResponse {
    let ws = ws
        .protocols([TRANSPORT_WS, LEGACY_WS])
        // Small buffers: most sockets are idle, and there may be tens of thousands.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES);
    let protocol = match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(TRANSPORT_WS) => Some(Protocol::Transport),
        Some(LEGACY_WS) => Some(Protocol::Legacy),
        _ => None,
    };
    ws.on_upgrade(move |socket| async move {
        match protocol {
            Some(protocol) => {
                Connection::new(state, protocol, client, open)
                    .serve(socket)
                    .await
            }
            None => {
                let mut socket = socket;
                let reason = "use the graphql-transport-ws or graphql-ws sub-protocol";
                let _ = socket
                    .send(close_message(close::SUBPROTOCOL_NOT_ACCEPTABLE, reason))
                    .await;
            }
        }
    })
}

/// A message from the client, in either protocol.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {},
    Pong {},
    /// `graphql-transport-ws`.
    Subscribe {
        id: String,
        payload: Request,
    },
    /// `graphql-transport-ws`.
    Complete {
        id: String,
    },
    /// Legacy.
    Start {
        id: String,
        payload: Request,
    },
    /// Legacy.
    Stop {
        id: String,
    },
    /// Legacy.
    ConnectionTerminate,
}

/// What a subscription task hands the connection.
enum Outgoing {
    Next {
        id: String,
        generation: u64,
        response: Box<Response>,
    },
    /// The operation was refused before it ran (parse or validation errors).
    Error {
        id: String,
        generation: u64,
        errors: Vec<ServerError>,
    },
    Complete {
        id: String,
        generation: u64,
    },
}

/// What handling a client message asks the connection to do.
enum Reply {
    Nothing,
    Send(Value),
    Close(u16, String),
}

struct Connection {
    state: AppState,
    protocol: Protocol,
    /// Set once `connection_init` is accepted.
    viewer: Option<Viewer>,
    /// When the viewer's access token expires.
    expires_at: Option<Instant>,
    /// Running subscriptions by client id, with the generation that tells a finished
    /// subscription's late messages from those of a new one reusing its id.
    running: HashMap<String, (u64, AbortHandle)>,
    generation: u64,
    outbox: mpsc::Sender<Outgoing>,
    results: Option<mpsc::Receiver<Outgoing>>,
    client: ClientIp,
    /// This socket's place in the per-IP and per-user caps, held while it is open.
    open: OpenSocket,
    /// Subscription starts left to this connection (`None`: rate limits are off).
    starts: Option<SubscriptionBucket>,
}

impl Connection {
    fn new(state: AppState, protocol: Protocol, client: ClientIp, open: OpenSocket) -> Self {
        let (outbox, results) = mpsc::channel(OUTBOX);
        let starts = state.rate_limiters.subscription_bucket();
        Self {
            client,
            open,
            starts,
            state,
            protocol,
            viewer: None,
            expires_at: None,
            running: HashMap::new(),
            generation: 0,
            outbox,
            results: Some(results),
        }
    }

    async fn serve(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let Some(mut results) = self.results.take() else {
            return;
        };
        let mut stopping = self.state.stopping.clone();
        let keepalive = self.state.config.ws_keepalive;
        // Every send is bounded: a client that stops reading fills its socket's buffers, and
        // a send waiting on it would hold up keep-alives and the token's expiry too.
        let write_timeout = self.state.config.connections.ws_write_timeout();
        let anonymous_idle = self.state.config.connections.ws_anonymous_idle();
        let mut idle_deadline = Instant::now() + anonymous_idle;
        let mut ticks = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        let init_deadline = Instant::now() + INIT_TIMEOUT;
        let mut last_heard = Instant::now();
        let closing: Option<(u16, String)> = loop {
            let expiry = self.expires_at;
            // An anonymous socket costs a connection slot and serves nobody in particular:
            // it may stay only while it runs something.
            let anonymous = !matches!(self.viewer, Some(Viewer::User(_)));
            if !anonymous || !self.running.is_empty() {
                idle_deadline = Instant::now() + anonymous_idle;
            }
            let reply = tokio::select! {
                message = stream.next() => {
                    let Some(Ok(message)) = message else { break None };
                    last_heard = Instant::now();
                    match message {
                        Message::Text(text) => self.handle(text.as_str()).await,
                        Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                            Ok(text) => self.handle(text).await,
                            Err(_) => Reply::Close(close::BAD_REQUEST, "messages must be UTF-8 JSON".into()),
                        },
                        Message::Close(_) => break None,
                        Message::Ping(_) | Message::Pong(_) => Reply::Nothing,
                    }
                }
                Some(outgoing) = results.recv() => self.deliver(outgoing),
                _ = ticks.tick() => {
                    if last_heard.elapsed() > keepalive * 3 {
                        Reply::Close(close::GOING_AWAY, "keep-alive timed out".into())
                    } else {
                        // A WebSocket ping gets a pong from any client, which tells us it is
                        // alive; the protocol message keeps Apollo's own timers happy.
                        if !send_within(&mut sink, Message::Ping(Default::default()), write_timeout).await {
                            break None;
                        }
                        match (self.protocol, self.viewer.is_some()) {
                            (Protocol::Transport, _) => Reply::Send(json!({ "type": "ping" })),
                            (Protocol::Legacy, true) => Reply::Send(json!({ "type": "ka" })),
                            (Protocol::Legacy, false) => Reply::Nothing,
                        }
                    }
                }
                _ = sleep_until(init_deadline), if self.viewer.is_none() => {
                    Reply::Close(close::INIT_TIMEOUT, "connection initialisation timeout".into())
                }
                _ = sleep_until(expiry.unwrap_or(init_deadline)), if expiry.is_some() => {
                    // Forbidden makes `graphql-ws` clients reconnect, asking the app for a
                    // fresh token on the way.
                    Reply::Close(close::FORBIDDEN, "the access token expired".into())
                }
                _ = sleep_until(idle_deadline), if anonymous && self.running.is_empty() => {
                    Reply::Close(close::GOING_AWAY, "idle anonymous connection".into())
                }
                _ = stopping.changed() => Reply::Close(close::GOING_AWAY, "the server is shutting down".into()),
            };
            match reply {
                Reply::Nothing => {}
                Reply::Send(value) => {
                    let message = Message::Text(value.to_string().into());
                    if !send_within(&mut sink, message, write_timeout).await {
                        break None;
                    }
                }
                Reply::Close(code, reason) => break Some((code, reason)),
            }
        };
        for (_, task) in self.running.values() {
            task.abort();
        }
        if let Some((code, reason)) = closing {
            // Legacy clients learn why from `connection_error`, not from the close code.
            if self.protocol == Protocol::Legacy
                && matches!(code, close::FORBIDDEN | close::INIT_TIMEOUT)
            {
                let error = json!({ "type": "connection_error", "payload": { "message": reason } });
                let message = Message::Text(error.to_string().into());
                if !send_within(&mut sink, message, write_timeout).await {
                    return;
                }
            }
            let _ = send_within(&mut sink, close_message(code, &reason), write_timeout).await;
        }
    }

    async fn handle(&mut self, text: &str) -> Reply {
        let Ok(message) = serde_json::from_str::<ClientMessage>(text) else {
            return Reply::Close(close::BAD_REQUEST, "invalid message".into());
        };
        match (self.protocol, message) {
            (_, ClientMessage::ConnectionInit { payload }) => self.init(payload),
            (Protocol::Transport, ClientMessage::Ping {}) => Reply::Send(json!({ "type": "pong" })),
            (Protocol::Transport, ClientMessage::Pong {}) => Reply::Nothing,
            (Protocol::Transport, ClientMessage::Subscribe { id, payload })
            | (Protocol::Legacy, ClientMessage::Start { id, payload }) => {
                self.subscribe(id, payload)
            }
            (Protocol::Transport, ClientMessage::Complete { id })
            | (Protocol::Legacy, ClientMessage::Stop { id }) => {
                if let Some((_, task)) = self.running.remove(&id) {
                    task.abort();
                }
                // graphql-transport-ws: the client already knows; legacy clients wait for it.
                match self.protocol {
                    Protocol::Transport => Reply::Nothing,
                    Protocol::Legacy => Reply::Send(json!({ "type": "complete", "id": id })),
                }
            }
            (Protocol::Legacy, ClientMessage::ConnectionTerminate) => {
                Reply::Close(1000, "terminated".into())
            }
            _ => Reply::Close(
                close::BAD_REQUEST,
                "message type not part of this sub-protocol".into(),
            ),
        }
    }

    /// Authenticates the connection from the `connection_init` payload.
    fn init(&mut self, payload: Option<Value>) -> Reply {
        if self.viewer.is_some() {
            return Reply::Close(
                close::TOO_MANY_INITS,
                "too many initialisation requests".into(),
            );
        }
        let limiters = &self.state.rate_limiters;
        if limiters
            .check(Rule::WsInit, Key::ip(self.client.0))
            .is_err()
        {
            return Reply::Close(
                close::TOO_MANY_INITS,
                "too many connection attempts; try again later".into(),
            );
        }
        let Some(credential) = payload.as_ref().and_then(credential) else {
            self.viewer = Some(Viewer::Anonymous);
            return Reply::Send(json!({ "type": "connection_ack" }));
        };
        match bearer_claims(&credential, &self.state.tokens.jwt) {
            Ok(claims) => {
                if limiters.socket_user(&mut self.open, claims.sub).is_err() {
                    return Reply::Close(
                        close::TOO_MANY_INITS,
                        "too many open connections for this user".into(),
                    );
                }
                self.viewer = Some(Viewer::User(claims.sub));
                let left = claims.exp - chrono::Utc::now().timestamp();
                self.expires_at =
                    Some(Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0)));
                Reply::Send(json!({ "type": "connection_ack" }))
            }
            Err(_) => Reply::Close(close::FORBIDDEN, "invalid or expired access token".into()),
        }
    }

    fn subscribe(&mut self, id: String, mut request: Request) -> Reply {
        let Some(viewer) = self.viewer else {
            return match self.protocol {
                Protocol::Transport => Reply::Close(close::UNAUTHORIZED, "unauthorized".into()),
                Protocol::Legacy => self.refuse(&id, "send connection_init first", "BAD_REQUEST"),
            };
        };
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Reply::Close(close::BAD_REQUEST, "invalid subscription id".into());
        }
        if self.running.contains_key(&id) {
            return match self.protocol {
                Protocol::Transport => Reply::Close(
                    close::SUBSCRIBER_EXISTS,
                    format!("subscriber for {id} already exists"),
                ),
                Protocol::Legacy => self.refuse(&id, "this id is already in use", "BAD_USER_INPUT"),
            };
        }
        if self.running.len() >= self.state.config.ws_max_subscriptions {
            let message = format!(
                "at most {} subscriptions per connection",
                self.state.config.ws_max_subscriptions
            );
            return self.refuse(&id, &message, "RATE_LIMITED");
        }
        let limited = match &self.starts {
            Some(starts) => starts.check(),
            None => Ok(()),
        }
        .and_then(|()| {
            if viewer == Viewer::Anonymous {
                let limiters = &self.state.rate_limiters;
                limiters.check(Rule::Anonymous, Key::ip(self.client.0))
            } else {
                Ok(())
            }
        });
        if let Err(err) = limited {
            return self.refuse_with(&id, &err);
        }
        // Measured here, on the connection's task, before the schema spends any time on it.
        if let Err(refusal) = cost::admit(
            &mut request,
            &self.state.config.cost,
            &mut Budget::default(),
        ) {
            tracing::info!(limit = refusal.limit.name(), "document refused by its cost");
            return Reply::Send(json!({
                "type": "error",
                "id": id,
                "payload": [refusal.to_server_error()],
            }));
        }
        // Queries and mutations sent over the socket get the time limit they would get over
        // HTTP; a subscription lives as long as the client wants it.
        let time_limit = (!is_subscription(&mut request)).then_some(REQUEST_TIMEOUT);
        self.generation += 1;
        let generation = self.generation;
        let request = request
            .data(viewer)
            .data(self.client)
            .data(Loaders::new(&self.state.db, viewer));
        let responses = self.state.schema.execute_stream(request);
        let outbox = self.outbox.clone();
        let task_id = id.clone();
        let task = tokio::spawn(async move {
            let id = task_id;
            let deadline = time_limit.map(|limit| Instant::now() + limit);
            futures_util::pin_mut!(responses);
            let mut first = true;
            loop {
                let next = match deadline {
                    Some(deadline) => {
                        match tokio::time::timeout_at(deadline, responses.next()).await {
                            Ok(next) => next,
                            Err(_) => {
                                tracing::warn!("operation over WebSocket timed out");
                                let mut error = ServerError::new("the request took too long", None);
                                error
                                    .extensions
                                    .get_or_insert_with(Default::default)
                                    .set("code", "INTERNAL_SERVER_ERROR");
                                let _ = outbox
                                    .send(Outgoing::Error {
                                        id,
                                        generation,
                                        errors: vec![error],
                                    })
                                    .await;
                                return;
                            }
                        }
                    }
                    None => responses.next().await,
                };
                let Some(response) = next else { break };
                let outgoing = if first && is_request_error(&response) {
                    Outgoing::Error {
                        id: id.clone(),
                        generation,
                        errors: response.errors,
                    }
                } else {
                    Outgoing::Next {
                        id: id.clone(),
                        generation,
                        response: Box::new(response),
                    }
                };
                first = false;
                let refused = matches!(outgoing, Outgoing::Error { .. });
                // Waits while the client is slow to read; the feed catches up meanwhile.
                if outbox.send(outgoing).await.is_err() || refused {
                    return;
                }
            }
            let _ = outbox.send(Outgoing::Complete { id, generation }).await;
        });
        self.running.insert(id, (generation, task.abort_handle()));
        Reply::Nothing
    }

    /// Refuses one operation, leaving the connection open.
    fn refuse(&self, id: &str, message: &str, code: &str) -> Reply {
        Reply::Send(json!({
            "type": "error",
            "id": id,
            "payload": [{ "message": message, "extensions": { "code": code } }],
        }))
    }

    /// Refuses one operation with the error's code (and `retryAfter`, when rate limited).
    fn refuse_with(&self, id: &str, err: &ApiError) -> Reply {
        Reply::Send(json!({ "type": "error", "id": id, "payload": [limits::error_json(err)] }))
    }

    /// Turns a subscription's result into a protocol message, unless the client has since
    /// stopped that subscription.
    fn deliver(&mut self, outgoing: Outgoing) -> Reply {
        let (id, generation) = match &outgoing {
            Outgoing::Next { id, generation, .. }
            | Outgoing::Error { id, generation, .. }
            | Outgoing::Complete { id, generation } => (id, *generation),
        };
        if self.running.get(id).map(|(g, _)| *g) != Some(generation) {
            return Reply::Nothing;
        }
        match outgoing {
            Outgoing::Next { id, response, .. } => {
                let kind = match self.protocol {
                    Protocol::Transport => "next",
                    Protocol::Legacy => "data",
                };
                Reply::Send(json!({ "type": kind, "id": id, "payload": *response }))
            }
            Outgoing::Error { id, errors, .. } => {
                self.running.remove(&id);
                Reply::Send(json!({ "type": "error", "id": id, "payload": errors }))
            }
            Outgoing::Complete { id, .. } => {
                self.running.remove(&id);
                Reply::Send(json!({ "type": "complete", "id": id }))
            }
        }
    }
}

/// The token in a `connection_init` payload: `authorization` or `Authorization` as
/// `Bearer <jwt>`, `token` with or without the scheme, or the same under `headers`.
fn credential(payload: &Value) -> Option<String> {
    let find = |object: &Value| {
        ["authorization", "Authorization"]
            .iter()
            .find_map(|key| object.get(key).and_then(Value::as_str).map(str::to_owned))
            .or_else(|| {
                object.get("token").and_then(Value::as_str).map(|token| {
                    if token.contains(' ') {
                        token.to_owned()
                    } else {
                        format!("Bearer {token}")
                    }
                })
            })
    };
    find(payload).or_else(|| payload.get("headers").and_then(find))
}

/// Whether the operation a request selects is a subscription. A document that did not parse
/// selects none (its error comes back at once).
fn is_subscription(request: &mut Request) -> bool {
    selected_operations(request).contains(&OperationType::Subscription)
}

/// Whether a response is the refusal of the whole operation (it did not parse or validate).
fn is_request_error(response: &Response) -> bool {
    !response.errors.is_empty()
        && response
            .errors
            .iter()
            .all(|e| code_of(e).is_some_and(|c| REQUEST_ERROR_CODES.contains(&c)))
}

/// Sends one message, giving up after `timeout`; false if the socket is gone or too slow,
/// either of which ends the connection.
async fn send_within(
    sink: &mut SplitSink<WebSocket, Message>,
    message: Message,
    timeout: Duration,
) -> bool {
    match tokio::time::timeout(timeout, sink.send(message)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::debug!(
                timeout_ms = timeout.as_millis() as u64,
                "websocket client stopped reading; closing"
            );
            false
        }
    }
}

fn close_message(code: u16, reason: &str) -> Message {
    // Close reasons are limited to 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(&reason[..end]),
    }))
}
