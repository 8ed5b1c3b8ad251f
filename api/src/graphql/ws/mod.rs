//! GraphQL over WebSocket at `GET /graphql`, in both sub-protocols Apollo clients speak:
//! `graphql-transport-ws` (the `graphql-ws` library, GraphiQL) and the legacy `graphql-ws`
//! (`subscriptions-transport-ws`).
//!
//! async-graphql ships a transport for both, but it answers a refused `connection_init` with
//! 1002 rather than the 4403 clients expect, sends no keep-alives, cannot close a socket when
//! its token expires, has no subscription limit and no drain, so the protocol is spoken here
//! and only execution is left to the schema.
//!
//! - [`protocol`]: the two protocols' messages and the close codes;
//! - [`connection`]: one socket's loop (init, keep-alive, operations, limits, drain);
//! - [`drain`]: the open sockets, which shutdown waits for;
//! - [`operation`] and [`metering`]: what a subscription is called in logs and metrics.
//!
//! This module is the upgrade handler.

mod connection;
mod drain;
mod metering;
mod operation;
pub mod protocol;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use tracing::Instrument;

pub use drain::Sockets;

use self::connection::Connection;
use self::drain::SocketTicket;
use self::protocol::{Close, CloseCode, LEGACY_WS, Protocol, TRANSPORT_WS};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::limits::{self, ClientIp, OpenSocket};

/// Largest message a client may send; GraphQL documents are small, as over HTTP.
const MAX_MESSAGE_BYTES: usize = super::http::MAX_BODY_BYTES;
/// Seconds a client refused during shutdown is asked to wait before it reconnects (to another
/// replica, once the load balancer has noticed this one is going).
const RETRY_AFTER_SECS: u32 = 1;

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
    // A socket opened now would be closed again at once: the client is better off
    // reconnecting elsewhere straight away.
    let stopping = *state.stopping.borrow();
    let ticket = match state.websockets.admit() {
        Some(ticket) if !stopping => ticket,
        _ => return shutting_down(),
    };
    // Refused before the upgrade, so an over-cap client gets a plain 429.
    let open = match state.rate_limiters.open_socket(client.0) {
        Ok(open) => open,
        Err(err) => return limits::too_many_requests(&err, "application/json"),
    };
    match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => upgrade(state, ws, client, open, ticket),
        Err(rejection) => rejection.into_response(),
    }
}

/// 503 for an upgrade during shutdown, with a code and a `Retry-After`.
fn shutting_down() -> HttpResponse {
    let mut response = super::http::plain_error(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServiceUnavailable,
        "the server is shutting down; reconnect",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

fn upgrade(
    state: AppState,
    ws: WebSocketUpgrade,
    client: ClientIp,
    open: OpenSocket,
    ticket: SocketTicket,
) -> HttpResponse {
    let ws = ws
        .protocols([TRANSPORT_WS, LEGACY_WS])
        // Small buffers: most sockets are idle, and there may be tens of thousands.
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES);
    let protocol = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Protocol::from_name);
    // Opened inside the upgrade request's span, which carries its request id: the socket's
    // task, and each operation's below it, log under it for as long as the socket is open.
    let span = tracing::info_span!(
        "websocket",
        protocol = %protocol.map_or("none", Protocol::name)
    );
    ws.on_upgrade(move |socket| {
        async move {
            match protocol {
                Some(protocol) => {
                    let (connection, results) =
                        Connection::new(state, protocol, client, open, ticket);
                    connection.serve(socket, results).await;
                }
                None => {
                    let mut socket = socket;
                    let close = Close::new(
                        CloseCode::SubprotocolNotAcceptable,
                        "use the graphql-transport-ws or graphql-ws sub-protocol",
                    );
                    let _ = socket.send(close.frame()).await;
                    drop(ticket);
                }
            }
        }
        .instrument(span)
    })
}
