//! Rate limits, per client IP and per user: the settings, the client address
//! ([`client_ip`]), the buckets ([`rate`]) and how refusals look on each transport.
//!
//! Every limit is a token bucket with a documented, configurable rate and burst; all of them
//! can be switched off with `PHOTON_RATE_LIMITS=false`. Limits are kept per replica: behind a
//! load balancer that spreads clients over N replicas, a client may get up to N times the
//! configured rate, so size them as "what one client may do" divided by the replicas it can
//! reach (with sticky routing, one).
//!
//! A refused GraphQL field gets `extensions.code` `RATE_LIMITED` and `extensions.retryAfter`
//! (whole seconds, at least 1); a refused plain HTTP request gets 429 with `Retry-After` and
//! the same error as JSON.

pub mod client_ip;
pub mod graphql;
pub mod rate;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

pub use client_ip::{ClientIp, is_trusted as is_trusted_proxy};
pub use rate::{Key, OpenSocket, RateLimiters, Rule, SubscriptionBucket, network_of};

use crate::app::AppState;
use crate::error::ApiError;

/// The rate-limit settings. Rates are per minute; a burst is how many may come at once.
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitSettings {
    /// Master switch for every rate limit and WebSocket connection cap below.
    #[arg(long = "rate-limits", env = "PHOTON_RATE_LIMITS", default_value_t = true,
        action = clap::ArgAction::Set)]
    pub rate_limits: bool,

    /// Comma-separated CIDRs (or addresses) of reverse proxies whose `X-Forwarded-For` or
    /// `Forwarded` header names the client. Headers from any other peer are ignored.
    #[arg(long, env = "PHOTON_TRUSTED_PROXIES", value_delimiter = ',',
        value_parser = client_ip::parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,

    /// Most keys (client IPs or users) one rate limit keeps between cleanups; past that it
    /// starts over. Bounds memory at well under 100 bytes a key.
    #[arg(long, env = "PHOTON_RATE_LIMIT_MAX_KEYS", default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1_000..=10_000_000))]
    pub rate_limit_max_keys: u64,

    /// Seconds between drops of refilled buckets.
    #[arg(long, env = "PHOTON_RATE_LIMIT_CLEANUP_SECS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub rate_limit_cleanup_secs: u64,

    /// Most WebSockets open at once from one client IP (IPv6: one /64). Carrier NAT puts many
    /// phones behind one address, so this is generous.
    #[arg(long, env = "PHOTON_WS_CONNECTIONS_PER_IP", default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ws_connections_per_ip: u32,

    /// Most WebSockets open at once for one signed-in user.
    #[arg(long, env = "PHOTON_WS_CONNECTIONS_PER_USER", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub ws_connections_per_user: u32,

    /// GraphQL requests without a signed-in viewer, per client IP: each HTTP request (a batch
    /// counts once) and each operation started over a WebSocket. Sustained rate, per minute.
    #[arg(long = "rate-anonymous-per-minute", env = "PHOTON_RATE_ANONYMOUS_PER_MINUTE", default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub anonymous_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-anonymous-burst", env = "PHOTON_RATE_ANONYMOUS_BURST", default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub anonymous_burst: u32,

    /// `devSignIn`, `exchangeLoginCode` and `joinSessionAsGuest` calls, per client IP (each
    /// alias counts). Sustained rate, per minute.
    #[arg(long = "rate-sign-in-per-minute", env = "PHOTON_RATE_SIGN_IN_PER_MINUTE", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sign_in_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-sign-in-burst", env = "PHOTON_RATE_SIGN_IN_BURST", default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sign_in_burst: u32,

    /// `refreshToken` calls, per client IP. Sustained rate, per minute.
    #[arg(long = "rate-refresh-per-minute", env = "PHOTON_RATE_REFRESH_PER_MINUTE", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub refresh_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-refresh-burst", env = "PHOTON_RATE_REFRESH_BURST", default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub refresh_burst: u32,

    /// Requests to `/auth/{provider}/start` and `/auth/{provider}/callback`, per client IP.
    /// Sustained rate, per minute.
    #[arg(long = "rate-oauth-per-minute", env = "PHOTON_RATE_OAUTH_PER_MINUTE", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub oauth_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-oauth-burst", env = "PHOTON_RATE_OAUTH_BURST", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub oauth_burst: u32,

    /// Requests to the invite link `/join/{code}` and its `/qr.svg`, and anonymous
    /// `sessionInvite` fields (each alias), per client IP, together. Sustained rate, per minute.
    #[arg(long = "rate-join-link-per-minute", env = "PHOTON_RATE_JOIN_LINK_PER_MINUTE", default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub join_link_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-join-link-burst", env = "PHOTON_RATE_JOIN_LINK_BURST", default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub join_link_burst: u32,

    /// Mutation fields resolved for one user, all mutations together. Sustained rate, per minute.
    #[arg(long = "rate-mutation-per-minute", env = "PHOTON_RATE_MUTATION_PER_MINUTE", default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub mutation_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-mutation-burst", env = "PHOTON_RATE_MUTATION_BURST", default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub mutation_burst: u32,

    /// `requestPhotoUpload` calls per user. Sustained rate, per minute.
    #[arg(long = "rate-photo-upload-per-minute", env = "PHOTON_RATE_PHOTO_UPLOAD_PER_MINUTE", default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub photo_upload_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-photo-upload-burst", env = "PHOTON_RATE_PHOTO_UPLOAD_BURST", default_value_t = 200,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub photo_upload_burst: u32,

    /// `sendFriendRequest` calls per user. Sustained rate, per minute.
    #[arg(long = "rate-friend-request-per-minute", env = "PHOTON_RATE_FRIEND_REQUEST_PER_MINUTE", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub friend_request_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-friend-request-burst", env = "PHOTON_RATE_FRIEND_REQUEST_BURST", default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub friend_request_burst: u32,

    /// `reportPhoto` calls per user. Sustained rate, per minute.
    #[arg(long = "rate-report-per-minute", env = "PHOTON_RATE_REPORT_PER_MINUTE", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub report_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-report-burst", env = "PHOTON_RATE_REPORT_BURST", default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub report_burst: u32,

    /// `requestSessionArchive` calls per user: each lays out a whole session. Sustained rate,
    /// per minute.
    #[arg(long = "rate-archive-per-minute", env = "PHOTON_RATE_ARCHIVE_PER_MINUTE", default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub archive_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-archive-burst", env = "PHOTON_RATE_ARCHIVE_BURST", default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub archive_burst: u32,

    /// Archive downloads (`/archive/{session}.zip`) per IP: each streams a whole session.
    /// Sustained rate, per minute.
    #[arg(long = "rate-archive-download-per-minute", env = "PHOTON_RATE_ARCHIVE_DOWNLOAD_PER_MINUTE", default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub archive_download_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-archive-download-burst", env = "PHOTON_RATE_ARCHIVE_DOWNLOAD_BURST", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub archive_download_burst: u32,

    /// `joinSession` and `leaveSession` calls per user, together: toggling membership cannot flood
    /// a session's event log. Sustained rate, per minute.
    #[arg(long = "rate-join-leave-per-minute", env = "PHOTON_RATE_JOIN_LEAVE_PER_MINUTE", default_value_t = 6,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub join_leave_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-join-leave-burst", env = "PHOTON_RATE_JOIN_LEAVE_BURST", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub join_leave_burst: u32,

    /// `inviteToSession` calls per user. Sustained rate, per minute.
    #[arg(long = "rate-invite-per-minute", env = "PHOTON_RATE_INVITE_PER_MINUTE", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub invite_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-invite-burst", env = "PHOTON_RATE_INVITE_BURST", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub invite_burst: u32,

    /// `registerDevice` calls per user. Sustained rate, per minute.
    #[arg(long = "rate-register-device-per-minute", env = "PHOTON_RATE_REGISTER_DEVICE_PER_MINUTE", default_value_t = 6,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub register_device_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-register-device-burst", env = "PHOTON_RATE_REGISTER_DEVICE_BURST", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub register_device_burst: u32,

    /// `findUserByEmail` lookups per user, each alias counted, so accounts cannot be enumerated.
    /// Sustained rate, per minute.
    #[arg(long = "rate-find-user-per-minute", env = "PHOTON_RATE_FIND_USER_PER_MINUTE", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub find_user_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-find-user-burst", env = "PHOTON_RATE_FIND_USER_BURST", default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub find_user_burst: u32,

    /// WebSocket `connection_init` messages per client IP. Sustained rate, per minute.
    #[arg(long = "rate-ws-init-per-minute", env = "PHOTON_RATE_WS_INIT_PER_MINUTE", default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ws_init_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-ws-init-burst", env = "PHOTON_RATE_WS_INIT_BURST", default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ws_init_burst: u32,

    /// Subscriptions started on one WebSocket connection. Sustained rate, per minute.
    #[arg(long = "rate-ws-subscribe-per-minute", env = "PHOTON_RATE_WS_SUBSCRIBE_PER_MINUTE", default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ws_subscribe_per_minute: u32,

    /// How many of these may come at once before the rate above applies (the bucket size).
    #[arg(long = "rate-ws-subscribe-burst", env = "PHOTON_RATE_WS_SUBSCRIBE_BURST", default_value_t = 60,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ws_subscribe_burst: u32,
}

/// A GraphQL error object for a refusal outside execution: message, code and `retryAfter`.
pub fn error_json(err: &ApiError) -> serde_json::Value {
    let mut extensions = serde_json::json!({ "code": err.code() });
    if let ApiError::RateLimited {
        retry_after_secs, ..
    } = err
    {
        extensions["retryAfter"] = (*retry_after_secs).into();
    }
    serde_json::json!({ "message": err.client_message(), "extensions": extensions })
}

/// 429 with `Retry-After` and the error as JSON, for plain HTTP routes and whole GraphQL
/// requests refused before they run.
pub fn too_many_requests(err: &ApiError, content_type: &'static str) -> Response {
    let retry_after = match err {
        ApiError::RateLimited {
            retry_after_secs, ..
        } => *retry_after_secs,
        _ => 1,
    };
    let body = serde_json::json!({ "errors": [error_json(err)] });
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(CONTENT_TYPE, content_type)],
        body.to_string(),
    )
        .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// The state of a per-IP route limit layer.
#[derive(Clone)]
pub struct RouteLimit {
    pub state: AppState,
    pub rule: Rule,
}

/// Middleware counting each request of a route against `rule` for its client IP.
pub async fn per_ip(State(limit): State<RouteLimit>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(ClientIp(client)) = ClientIp::from_request_parts(&mut parts, &limit.state).await;
    if let Err(err) = limit.state.rate_limiters.check(limit.rule, Key::ip(client)) {
        return too_many_requests(&err, "application/json");
    }
    next.run(Request::from_parts(parts, body)).await
}
