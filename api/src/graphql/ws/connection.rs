//! One WebSocket connection: `connection_init` and its token, keep-alives, operations started
//! and stopped, the per-connection limits, and the drain on shutdown.
//!
//! A subscription is polled by the connection's own task, which takes its next result only
//! when the socket has written the one before. A client that reads slowly therefore stalls
//! only its own subscriptions, whose feeds then fall behind the bus and catch up from the
//! event log when they resume. A task per subscription would cost a few KiB for every idle
//! one, and a second wake-up for every delivery. Queries and mutations, which may take a
//! while and should not hold up the socket, run in tasks of their own and hand their results
//! over a bounded channel.
//!
//! **Shutdown.** When the server starts stopping, subscriptions end at once and silently,
//! queries and mutations already running finish and send their results, and then the socket
//! closes with 1001 (going away), at the latest just before the grace period ends. No
//! `complete` or `error` is sent for a subscription: clients of both protocols take either as
//! the operation's end and would not subscribe again, while on a close they reconnect and
//! re-subscribe everything still open (resuming from their cursors, so no event is lost).
//! For the same reason an operation that arrives during the drain is not started: the client
//! sends it again on its next connection.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response, ServerError};
use axum::extract::ws::Message;
use futures_util::stream::{self as streams, Abortable, BoxStream, SelectAll};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;

use super::drain::{SocketTicket, drain_window};
use super::metering::{self, CountedSocket, CountedSubscription};
use super::operation;
use super::protocol::{ClientMessage, Close, CloseCode, Protocol, ServerMessage};
use crate::app::{AppState, REQUEST_TIMEOUT};
use crate::error::{ApiError, ErrorCode};
use crate::events;
use crate::graphql::errors::{REQUEST_ERROR_CODES, code_of};
use crate::graphql::measured::Measured;
use crate::graphql::{Loaders, selected_operations};
use crate::limits::{ClientIp, Key, OpenSocket, Rule, SubscriptionBucket};
use crate::realtime::feed::{self, HandedOut};
use crate::service::Viewer;
use crate::service::viewer::bearer_claims;

/// How long a client has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Results waiting to be written to one socket.
const OUTBOX: usize = 64;
/// Longest operation id accepted.
const MAX_ID_LEN: usize = 128;

/// An operation's result for the connection. Boxed on the query and mutation tasks' channel,
/// which allocates room for 32 of its items up front, idle or not.
enum Outgoing {
    Next {
        id: String,
        generation: u64,
        response: Box<Response>,
        /// The feed event the response came from, if it came from one.
        event: Option<HandedOut>,
    },
    /// The operation was refused before it ran (parse or validation errors), or timed out.
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

/// The receiving end of a connection's operations' results.
pub(super) struct Results(mpsc::Receiver<Box<Outgoing>>);

/// A message ready for the socket.
struct Outbound {
    text: String,
    /// The feed event it delivers, counted once it is written.
    event: Option<HandedOut>,
}

/// What handling a client message or an operation's result asks the connection to do.
enum Reply {
    Nothing,
    Send(Outbound),
    Close(Close),
}

/// An operation the connection runs.
struct Running {
    /// Tells a finished operation's late messages from those of a new one reusing its id.
    generation: u64,
    stop: Stop,
}

/// How a running operation is ended early.
enum Stop {
    /// A subscription, polled by the connection. Subscriptions end at once on shutdown.
    Subscription(streams::AbortHandle),
    /// A query or mutation, in a task of its own; shutdown waits for these.
    Task(AbortHandle),
}

impl Running {
    fn is_subscription(&self) -> bool {
        matches!(self.stop, Stop::Subscription(_))
    }

    fn abort(&self) {
        match &self.stop {
            Stop::Subscription(handle) => handle.abort(),
            Stop::Task(handle) => handle.abort(),
        }
    }
}

/// A `subscribe` that passed every check and may run.
struct Admitted {
    id: String,
    request: Request,
    viewer: Viewer,
    /// The cost check's entry for its parsed document.
    measured: Option<Arc<Measured>>,
}

pub(super) struct Connection {
    state: AppState,
    protocol: Protocol,
    /// Set once `connection_init` is accepted.
    viewer: Option<Viewer>,
    /// When the viewer's access token expires.
    expires_at: Option<Instant>,
    running: HashMap<String, Running>,
    generation: u64,
    /// The subscriptions' results, polled only when the socket is ready for one.
    subscriptions: SelectAll<Abortable<Subscription>>,
    /// The queries' and mutations' results.
    outbox: mpsc::Sender<Box<Outgoing>>,
    client: ClientIp,
    /// This socket's place in the per-IP and per-user caps, held while it is open.
    open: OpenSocket,
    /// Subscription starts left to this connection (`None`: rate limits are off).
    starts: Option<SubscriptionBucket>,
    /// Set when the drain starts: the connection closes by then at the latest.
    drain_deadline: Option<Instant>,
    /// This socket's place among the ones shutdown waits for, and in the connection gauge.
    _ticket: SocketTicket,
    _counted: CountedSocket,
}

impl Connection {
    /// A connection and the receiving end of its operations' results.
    pub(super) fn new(
        state: AppState,
        protocol: Protocol,
        client: ClientIp,
        open: OpenSocket,
        ticket: SocketTicket,
    ) -> (Self, Results) {
        let (outbox, results) = mpsc::channel(OUTBOX);
        let starts = state.rate_limiters.subscription_bucket();
        let connection = Self {
            client,
            open,
            starts,
            state,
            protocol,
            viewer: None,
            expires_at: None,
            running: HashMap::new(),
            generation: 0,
            subscriptions: SelectAll::new(),
            outbox,
            drain_deadline: None,
            _ticket: ticket,
            _counted: CountedSocket::count(protocol),
        };
        (connection, Results(results))
    }

    /// Serves the socket until either side closes it.
    pub(super) async fn serve<S>(mut self, socket: S, results: Results)
    where
        S: Stream<Item = Result<Message, axum::Error>> + Sink<Message> + Unpin,
    {
        let Results(mut results) = results;
        tracing::debug!("websocket opened");
        let (mut sink, mut stream) = socket.split();
        let keepalive = self.state.config.ws_keepalive;
        // Every send is bounded: a client that stops reading fills its socket's buffers, and
        // a send waiting on it would hold up keep-alives and the token's expiry too.
        let write_timeout = self.state.config.connections.ws_write_timeout();
        let anonymous_idle = self.state.config.connections.ws_anonymous_idle();
        let mut idle_deadline = Instant::now() + anonymous_idle;
        let mut ticks = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        let init_deadline = Instant::now() + INIT_TIMEOUT;
        let mut last_heard = Instant::now();
        let mut stopping = self.state.stopping.clone();
        let closing: Option<Close> = loop {
            let expiry = self.expires_at;
            let drain_deadline = self.drain_deadline;
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
                        Message::Text(text) => self.handle(text.as_str()),
                        Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                            Ok(text) => self.handle(text),
                            Err(_) => Reply::Close(Close::new(CloseCode::BadRequest, "messages must be UTF-8 JSON")),
                        },
                        Message::Close(_) => break None,
                        Message::Ping(_) | Message::Pong(_) => Reply::Nothing,
                    }
                }
                Some(outgoing) = self.subscriptions.next(), if !self.subscriptions.is_empty() => {
                    self.deliver(outgoing)
                }
                Some(outgoing) = results.recv() => self.deliver(*outgoing),
                _ = ticks.tick() => {
                    if last_heard.elapsed() > keepalive * 3 {
                        Reply::Close(Close::new(CloseCode::GoingAway, "keep-alive timed out"))
                    } else {
                        // A WebSocket ping gets a pong from any client, which tells us it is
                        // alive; the protocol message keeps Apollo's own timers happy.
                        if !send_within(&mut sink, Message::Ping(Default::default()), write_timeout).await {
                            break None;
                        }
                        match self.protocol.keepalive(self.viewer.is_some()) {
                            Some(message) => self.reply(message, None),
                            None => Reply::Nothing,
                        }
                    }
                }
                _ = sleep_until(init_deadline), if self.viewer.is_none() => {
                    Reply::Close(Close::new(CloseCode::InitTimeout, "connection initialisation timeout"))
                }
                _ = sleep_until(expiry.unwrap_or(init_deadline)), if expiry.is_some() => {
                    Reply::Close(Close::new(CloseCode::Forbidden, "the access token expired"))
                }
                _ = sleep_until(idle_deadline), if anonymous && self.running.is_empty() => {
                    Reply::Close(Close::new(CloseCode::GoingAway, "idle anonymous connection"))
                }
                // Also when the server's state is gone altogether: nothing to wait for then.
                () = stopped(&mut stopping), if drain_deadline.is_none() => {
                    self.start_drain();
                    Reply::Nothing
                }
                _ = sleep_until(drain_deadline.unwrap_or(init_deadline)), if drain_deadline.is_some() => {
                    tracing::debug!(operations = self.running.len(), "operations still running at the end of the drain");
                    Reply::Close(shutting_down())
                }
            };
            match reply {
                Reply::Nothing => {}
                Reply::Send(outbound) => {
                    let message = Message::Text(outbound.text.into());
                    if !send_within(&mut sink, message, write_timeout).await {
                        break None;
                    }
                    if let Some(event) = outbound.event {
                        metering::delivered(event, chrono::Utc::now());
                    }
                }
                Reply::Close(close) => break Some(close),
            }
            // Draining, and the last query or mutation has sent its results.
            if self.drain_deadline.is_some() && self.running.is_empty() {
                break Some(shutting_down());
            }
        };
        for running in self.running.values() {
            running.abort();
        }
        let Some(close) = closing else {
            tracing::debug!("websocket closed by the client");
            return;
        };
        tracing::debug!(code = close.code.code(), reason = %close.reason, "closing websocket");
        // Legacy clients learn why from `connection_error`, not from the close code.
        if self.protocol.explains_close(close.code) {
            let error = ServerMessage::ConnectionError {
                message: &close.reason,
            };
            if let Ok(Some(text)) = self.protocol.encode(error)
                && !send_within(&mut sink, Message::Text(text.into()), write_timeout).await
            {
                return;
            }
        }
        let _ = send_within(&mut sink, close.frame(), write_timeout).await;
    }

    /// Shutdown has started: ends the subscriptions and sets the deadline for the rest.
    fn start_drain(&mut self) {
        let window = drain_window(self.state.config.shutdown_grace);
        self.drain_deadline = Some(Instant::now() + window);
        // Silently: see the module's documentation.
        self.running.retain(|_, running| !running.is_subscription());
        self.subscriptions = SelectAll::new();
        tracing::debug!(
            operations = self.running.len(),
            window_ms = window.as_millis() as u64,
            "draining websocket"
        );
    }

    fn handle(&mut self, text: &str) -> Reply {
        let message = match self.protocol.parse(text) {
            Ok(message) => message,
            Err(err) => return Reply::Close(err.close()),
        };
        match message {
            ClientMessage::Init { payload } => self.init(payload),
            ClientMessage::Ping => self.reply(ServerMessage::Pong, None),
            ClientMessage::Pong => Reply::Nothing,
            ClientMessage::Subscribe { id, payload } => match self.admit(id, *payload) {
                Ok(Some(admitted)) => {
                    self.start(admitted);
                    Reply::Nothing
                }
                Ok(None) => Reply::Nothing,
                Err(refused) => refused,
            },
            ClientMessage::Complete { id } => {
                if let Some(running) = self.running.remove(&id) {
                    running.abort();
                }
                if self.protocol.acknowledges_stop() {
                    self.reply(ServerMessage::Complete { id: &id }, None)
                } else {
                    Reply::Nothing
                }
            }
            ClientMessage::Terminate => Reply::Close(Close::new(CloseCode::Normal, "terminated")),
        }
    }

    /// Authenticates the connection from the `connection_init` payload.
    fn init(&mut self, payload: Option<Value>) -> Reply {
        if self.viewer.is_some() {
            return Reply::Close(Close::new(
                CloseCode::TooManyInits,
                "too many initialisation requests",
            ));
        }
        let limiters = &self.state.rate_limiters;
        if limiters
            .check(Rule::WsInit, Key::ip(self.client.0))
            .is_err()
        {
            return Reply::Close(Close::new(
                CloseCode::TooManyInits,
                "too many connection attempts; try again later",
            ));
        }
        let Some(credential) = payload.as_ref().and_then(credential) else {
            self.viewer = Some(Viewer::Anonymous);
            return self.reply(ServerMessage::ConnectionAck, None);
        };
        match bearer_claims(&credential, &self.state.tokens.jwt) {
            Ok(claims) => {
                if limiters.socket_user(&mut self.open, claims.sub).is_err() {
                    return Reply::Close(Close::new(
                        CloseCode::TooManyInits,
                        "too many open connections for this user",
                    ));
                }
                self.viewer = Some(Viewer::User(claims.sub));
                let left = claims.exp - chrono::Utc::now().timestamp();
                self.expires_at =
                    Some(Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0)));
                self.reply(ServerMessage::ConnectionAck, None)
            }
            Err(_) => Reply::Close(Close::new(
                CloseCode::Forbidden,
                "invalid or expired access token",
            )),
        }
    }

    /// The one place an incoming operation is admitted: every check a `subscribe` must pass
    /// before it may run, in order. `Ok(None)`: not started, and nothing to tell the client
    /// (the server is draining); `Err`: what to tell it instead.
    fn admit(&mut self, id: String, mut request: Request) -> Result<Option<Admitted>, Reply> {
        let Some(viewer) = self.viewer else {
            return Err(match self.protocol {
                Protocol::Transport => {
                    Reply::Close(Close::new(CloseCode::Unauthorized, "unauthorized"))
                }
                Protocol::Legacy => {
                    self.refuse(&id, "send connection_init first", ErrorCode::BadRequest)
                }
            });
        };
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(Reply::Close(Close::new(
                CloseCode::BadRequest,
                "invalid subscription id",
            )));
        }
        if self.running.contains_key(&id) {
            return Err(match self.protocol {
                Protocol::Transport => Reply::Close(Close::new(
                    CloseCode::SubscriberExists,
                    format!("subscriber for {id} already exists"),
                )),
                Protocol::Legacy => {
                    self.refuse(&id, "this id is already in use", ErrorCode::BadUserInput)
                }
            });
        }
        if self.drain_deadline.is_some() {
            tracing::debug!("operation not started: the server is shutting down");
            return Ok(None);
        }
        if self.running.len() >= self.state.config.ws_max_subscriptions {
            let message = format!(
                "at most {} subscriptions per connection",
                self.state.config.ws_max_subscriptions
            );
            return Err(self.refuse(&id, &message, ErrorCode::RateLimited));
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
            return Err(self.refuse_with(&id, &err));
        }
        // Resolved (persisted queries) and measured here, on the connection's task, before
        // the schema spends any time on it.
        let measured = match crate::graphql::persisted::admit(&self.state, &mut request) {
            Ok(measured) => measured,
            Err(error) => {
                let errors = [error];
                return Err(self.reply(
                    ServerMessage::Error {
                        id: &id,
                        payload: &errors,
                    },
                    None,
                ));
            }
        };
        Ok(Some(Admitted {
            id,
            request,
            viewer,
            measured,
        }))
    }

    /// Starts an admitted operation: a subscription among the connection's own, a query or
    /// mutation in a task of its own.
    fn start(&mut self, admitted: Admitted) {
        let Admitted {
            id,
            mut request,
            viewer,
            measured,
        } = admitted;
        let subscription = is_subscription(&mut request);
        let active = subscription.then(|| {
            CountedSubscription::count(operation::subscription_field(
                &mut request,
                &self.state.schema,
            ))
        });
        // A child of the socket's span, which is a child of the upgrade request's: every line
        // an operation logs carries the request id, the operation's id and its name.
        let span = tracing::info_span!(
            "subscription",
            id = %id,
            operation = %operation::name(&mut request).as_deref().unwrap_or("-"),
        );
        self.generation += 1;
        let generation = self.generation;
        let request = request
            .data(viewer)
            .data(self.client)
            .data(Loaders::new(&self.state.db, viewer));
        let responses = self.state.schema.execute_stream(request, measured);
        let stop = if let Some(active) = active {
            span.in_scope(|| tracing::debug!("operation started"));
            let (stop, registration) = streams::AbortHandle::new_pair();
            let subscription = Subscription {
                id: id.clone(),
                generation,
                responses,
                span,
                first: true,
                ended: false,
                _active: active,
            };
            self.subscriptions
                .push(Abortable::new(subscription, registration));
            Stop::Subscription(stop)
        } else {
            let run = Run {
                id: id.clone(),
                generation,
                outbox: self.outbox.clone(),
            };
            // A query or mutation: its events are announced once it is done.
            let announcer = self.state.announcer.clone();
            let task = tokio::spawn(
                async move { events::announcing(&announcer, run.forward(responses)).await }
                    .instrument(span),
            );
            Stop::Task(task.abort_handle())
        };
        self.running.insert(id, Running { generation, stop });
    }

    /// A protocol message for the socket; a message this protocol lacks is not sent.
    fn reply(&self, message: ServerMessage<'_>, event: Option<HandedOut>) -> Reply {
        match self.protocol.encode(message) {
            Ok(Some(text)) => Reply::Send(Outbound { text, event }),
            Ok(None) => Reply::Nothing,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode a websocket message");
                Reply::Close(Close::new(CloseCode::InternalError, "internal error"))
            }
        }
    }

    /// Refuses one operation, leaving the connection open.
    fn refuse(&self, id: &str, message: &str, code: ErrorCode) -> Reply {
        let mut error = ServerError::new(message, None);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
        self.reply(
            ServerMessage::Error {
                id,
                payload: &[error],
            },
            None,
        )
    }

    /// Refuses one operation with the error's code (and `retryAfter`, when it has one).
    fn refuse_with(&self, id: &str, err: &ApiError) -> Reply {
        let mut error = ServerError::new(err.client_message(), None);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        extensions.set("code", err.code().as_str());
        if let Some(secs) = err.retry_after_secs() {
            extensions.set("retryAfter", secs);
        }
        self.reply(
            ServerMessage::Error {
                id,
                payload: &[error],
            },
            None,
        )
    }

    /// Turns an operation's result into a protocol message, unless the client has since
    /// stopped that operation (or the drain ended it).
    fn deliver(&mut self, outgoing: Outgoing) -> Reply {
        let (id, generation) = match &outgoing {
            Outgoing::Next { id, generation, .. }
            | Outgoing::Error { id, generation, .. }
            | Outgoing::Complete { id, generation } => (id, *generation),
        };
        if self.running.get(id).map(|running| running.generation) != Some(generation) {
            return Reply::Nothing;
        }
        match outgoing {
            Outgoing::Next {
                id,
                response,
                event,
                ..
            } => self.reply(
                ServerMessage::Next {
                    id: &id,
                    payload: &response,
                },
                event,
            ),
            Outgoing::Error { id, errors, .. } => {
                self.running.remove(&id);
                self.reply(
                    ServerMessage::Error {
                        id: &id,
                        payload: &errors,
                    },
                    None,
                )
            }
            Outgoing::Complete { id, .. } => {
                self.running.remove(&id);
                self.reply(ServerMessage::Complete { id: &id }, None)
            }
        }
    }
}

/// Completes once the server is stopping, or its state is gone.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // The value's read guard is not `Send`: dropped here, before the connection awaits again.
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

fn shutting_down() -> Close {
    Close::new(CloseCode::GoingAway, "the server is shutting down")
}

/// A subscription the connection polls: its responses as messages for the socket, the first
/// an `error` instead when the operation was refused, and a `complete` when they end.
struct Subscription {
    id: String,
    generation: u64,
    responses: BoxStream<'static, Response>,
    /// Entered on every poll: every line the operation logs carries the request id, the
    /// operation's id and its name.
    span: tracing::Span,
    first: bool,
    /// The last message has been handed out.
    ended: bool,
    /// Counted as running until dropped, however it ends.
    _active: CountedSubscription,
}

impl Stream for Subscription {
    type Item = Outgoing;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outgoing>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let _entered = this.span.enter();
        let (polled, event) = feed::noting_handed_out(|| this.responses.poll_next_unpin(cx));
        let Poll::Ready(next) = polled else {
            return Poll::Pending;
        };
        let (id, generation) = (this.id.clone(), this.generation);
        let first = std::mem::replace(&mut this.first, false);
        Poll::Ready(Some(match next {
            None => {
                tracing::debug!("operation finished");
                this.ended = true;
                Outgoing::Complete { id, generation }
            }
            Some(response) if first && is_request_error(&response) => {
                this.ended = true;
                Outgoing::Error {
                    id,
                    generation,
                    errors: response.errors,
                }
            }
            Some(response) => Outgoing::Next {
                id,
                generation,
                response: Box::new(response),
                event,
            },
        }))
    }
}

/// A query's or mutation's task: forwards its responses to the connection, within the time
/// limit the operation would get over HTTP.
struct Run {
    id: String,
    generation: u64,
    outbox: mpsc::Sender<Box<Outgoing>>,
}

impl Run {
    async fn forward(self, responses: impl Stream<Item = Response> + Unpin) {
        tracing::debug!("operation started");
        let Self {
            id,
            generation,
            outbox,
        } = self;
        let mut responses = responses;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut first = true;
        loop {
            let next = match tokio::time::timeout_at(deadline, responses.next()).await {
                Ok(next) => next,
                Err(_) => {
                    tracing::warn!("operation over WebSocket timed out");
                    let mut error = ServerError::new("the request took too long", None);
                    error
                        .extensions
                        .get_or_insert_with(Default::default)
                        .set("code", ErrorCode::ServiceUnavailable.as_str());
                    let errors = vec![error];
                    let _ = outbox
                        .send(Box::new(Outgoing::Error {
                            id,
                            generation,
                            errors,
                        }))
                        .await;
                    return;
                }
            };
            let Some(response) = next else { break };
            let outgoing = Box::new(if first && is_request_error(&response) {
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
                    // Queries and mutations read no feed.
                    event: None,
                }
            });
            first = false;
            let refused = matches!(*outgoing, Outgoing::Error { .. });
            // Waits while the client is slow to read.
            if outbox.send(outgoing).await.is_err() || refused {
                return;
            }
        }
        tracing::debug!("operation finished");
        let _ = outbox
            .send(Box::new(Outgoing::Complete { id, generation }))
            .await;
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
async fn send_within<S>(sink: &mut S, message: Message, timeout: Duration) -> bool
where
    S: Sink<Message> + Unpin,
{
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

#[cfg(test)]
mod tests {
    //! The connection loop over an in-memory socket, against a real schema and a SQLite
    //! database of the test's own.

    #![allow(clippy::unwrap_used)]

    use std::net::{IpAddr, Ipv4Addr};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use metrics_util::debugging::DebuggingRecorder;
    use serde_json::json;
    use tokio::sync::{mpsc, watch};

    use super::super::metering::testing::Totals;
    use super::*;
    use crate::app::Application;

    /// What a client writes comes out of `from_client`; what the server writes goes into
    /// `to_client`.
    struct MemorySocket {
        from_client: mpsc::UnboundedReceiver<Message>,
        to_client: mpsc::UnboundedSender<Message>,
    }

    impl Stream for MemorySocket {
        type Item = Result<Message, axum::Error>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.from_client
                .poll_recv(cx)
                .map(|message| message.map(Ok))
        }
    }

    impl Sink<Message> for MemorySocket {
        type Error = axum::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
            self.to_client.send(message).map_err(axum::Error::new)
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    struct Client {
        to_server: mpsc::UnboundedSender<Message>,
        from_server: mpsc::UnboundedReceiver<Message>,
        served: tokio::task::JoinHandle<()>,
    }

    impl Client {
        fn connect(state: &AppState, protocol: Protocol) -> Self {
            let (to_server, from_client) = mpsc::unbounded_channel();
            let (to_client, from_server) = mpsc::unbounded_channel();
            let socket = MemorySocket {
                from_client,
                to_client,
            };
            let (connection, results) = Connection::new(
                state.clone(),
                protocol,
                ClientIp(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                OpenSocket::none(),
                state.websockets.admit().unwrap(),
            );
            let served = tokio::spawn(connection.serve(socket, results));
            Self {
                to_server,
                from_server,
                served,
            }
        }

        fn send(&self, message: Value) {
            self.to_server
                .send(Message::Text(message.to_string().into()))
                .unwrap();
        }

        /// The next frame the server wrote, WebSocket pings aside.
        async fn frame(&mut self) -> Message {
            loop {
                let wait = Duration::from_secs(10);
                match tokio::time::timeout(wait, self.from_server.recv()).await {
                    Ok(Some(Message::Ping(_))) => {}
                    Ok(Some(message)) => return message,
                    Ok(None) => panic!("the server dropped the socket without a close"),
                    Err(_) => panic!("nothing from the server within {wait:?}"),
                }
            }
        }

        /// The next text message, exactly as written.
        async fn text(&mut self) -> String {
            match self.frame().await {
                Message::Text(text) => text.to_string(),
                other => panic!("expected a text message, got {other:?}"),
            }
        }

        async fn close_code(&mut self) -> u16 {
            match self.frame().await {
                Message::Close(Some(frame)) => frame.code,
                other => panic!("expected a close, got {other:?}"),
            }
        }

        /// Waits for the connection's task to end (its guards dropped).
        async fn finished(self) {
            tokio::time::timeout(Duration::from_secs(10), self.served)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// A server state over a fresh SQLite database, with a `stopping` signal of the test's.
    async fn state() -> (AppState, watch::Sender<bool>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::config::settings_from_args([
            "photon".to_owned(),
            "--bind=127.0.0.1:0".to_owned(),
            format!("--data-dir={}", dir.path().display()),
            "--jwt-secret=unit-test-secret-unit-test-secret-0123456789".to_owned(),
            "--dev-sign-in=true".to_owned(),
            "--rate-limits=false".to_owned(),
            "--shutdown-grace-secs=10".to_owned(),
        ])
        .unwrap();
        let app = Application::build(settings.resolve().unwrap())
            .await
            .unwrap();
        let mut state = app.state().clone();
        let (stop, stopping) = watch::channel(false);
        state.stopping = stopping;
        (state, stop, dir)
    }

    /// A signed-in user's token and a session they own.
    async fn owner_and_session(state: &AppState) -> (String, String) {
        let signed_in = state
            .schema
            .execute(
                r#"mutation { devSignIn(email: "ana@example.com") { accessToken } }"#.into(),
                None,
            )
            .await;
        let data = signed_in.data.into_json().unwrap();
        let token = data["devSignIn"]["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let claims = bearer_claims(&format!("Bearer {token}"), &state.tokens.jwt).unwrap();
        let viewer = Viewer::User(claims.sub);
        let created = state
            .schema
            .execute(
                Request::new(r#"mutation { createSession(input: { title: "t" }) { id } }"#)
                    .data(viewer)
                    .data(Loaders::new(&state.db, viewer)),
                None,
            )
            .await;
        let data = created.data.into_json().unwrap();
        let session = data["createSession"]["id"].as_str().unwrap().to_owned();
        (token, session)
    }

    #[tokio::test]
    async fn transport_messages_are_answered_byte_for_byte() {
        let (state, _stop, _dir) = state().await;
        let mut client = Client::connect(&state, Protocol::Transport);
        client.send(json!({ "type": "connection_init", "payload": {} }));
        assert_eq!(client.text().await, r#"{"type":"connection_ack"}"#);
        client.send(json!({ "type": "ping" }));
        assert_eq!(client.text().await, r#"{"type":"pong"}"#);
        client.send(
            json!({ "type": "subscribe", "id": "q", "payload": { "query": "{ __typename }" } }),
        );
        assert_eq!(
            client.text().await,
            r#"{"type":"next","id":"q","payload":{"data":{"__typename":"Query"}}}"#
        );
        assert_eq!(client.text().await, r#"{"type":"complete","id":"q"}"#);
        // Stopping what is not running is no error, and needs no answer in this protocol.
        client.send(json!({ "type": "complete", "id": "nothing" }));
        client.send(
            json!({ "type": "subscribe", "id": "", "payload": { "query": "{ __typename }" } }),
        );
        assert_eq!(client.close_code().await, 4400);
        client.finished().await;
    }

    #[tokio::test]
    async fn legacy_messages_are_answered_byte_for_byte() {
        let (state, _stop, _dir) = state().await;
        let mut client = Client::connect(&state, Protocol::Legacy);
        client.send(
            json!({ "type": "start", "id": "early", "payload": { "query": "{ __typename }" } }),
        );
        assert_eq!(
            client.text().await,
            r#"{"type":"error","id":"early","payload":[{"message":"send connection_init first","extensions":{"code":"BAD_REQUEST"}}]}"#
        );
        client.send(json!({ "type": "connection_init" }));
        assert_eq!(client.text().await, r#"{"type":"connection_ack"}"#);
        client.send(
            json!({ "type": "start", "id": "1", "payload": { "query": "query Q { __typename }" } }),
        );
        assert_eq!(
            client.text().await,
            r#"{"type":"data","id":"1","payload":{"data":{"__typename":"Query"}}}"#
        );
        assert_eq!(client.text().await, r#"{"type":"complete","id":"1"}"#);
        client.send(json!({ "type": "stop", "id": "1" }));
        assert_eq!(client.text().await, r#"{"type":"complete","id":"1"}"#);
        client.send(json!({ "type": "ping" }));
        assert_eq!(client.close_code().await, 4400);
        client.finished().await;

        let mut client = Client::connect(&state, Protocol::Legacy);
        client.send(json!({ "type": "connection_terminate" }));
        assert_eq!(client.close_code().await, 1000);
        client.finished().await;
    }

    #[tokio::test]
    async fn on_shutdown_subscriptions_end_silently_and_the_socket_closes_with_1001() {
        let recorder = DebuggingRecorder::new();
        let mut totals = Totals::new(recorder.snapshotter());
        // This test's runtime has one thread, so every task it spawns records here.
        let _recorder = metrics::set_default_local_recorder(&recorder);
        let (state, stop, _dir) = state().await;
        let (token, session) = owner_and_session(&state).await;
        let mut client = Client::connect(&state, Protocol::Transport);
        client.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }));
        assert_eq!(client.text().await, r#"{"type":"connection_ack"}"#);
        let subscription = "subscription($s: ID!) { sessionEvents(sessionId: $s) { __typename } }";
        client.send(json!({ "type": "subscribe", "id": "s", "payload": { "query": subscription, "variables": { "s": session } } }));
        // A ping answered means the subscribe before it was handled.
        client.send(json!({ "type": "ping" }));
        assert_eq!(client.text().await, r#"{"type":"pong"}"#);
        let socket = ("protocol", "graphql-transport-ws");
        let field = ("field", "sessionEvents");
        assert_eq!(totals.gauge(metering::WS_CONNECTIONS, &[socket]), 1.0);
        assert_eq!(totals.gauge(metering::SUBSCRIPTIONS_ACTIVE, &[field]), 1.0);

        stop.send(true).unwrap();
        assert_eq!(client.close_code().await, 1001);
        client.finished().await;
        // The subscription's task winds down once aborted.
        let deadline = Instant::now() + Duration::from_secs(5);
        while totals.gauge(metering::SUBSCRIPTIONS_ACTIVE, &[field]) != 0.0 {
            assert!(
                Instant::now() < deadline,
                "the subscription is still counted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(totals.gauge(metering::WS_CONNECTIONS, &[socket]), 0.0);
    }
}
