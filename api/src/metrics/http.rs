//! HTTP request counts and latency, by the route *template* that matched (`/join/{code}`),
//! never the raw path: a path is the client's choice, and one series per invite code or
//! scanner probe would grow the registry without bound. Requests no route matched share one
//! `unmatched` label.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use super::{HTTP_DURATION, HTTP_REQUESTS};

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Middleware: counts each request by route and status and records how long its response
/// head took. Installed with `Router::layer`, so it runs after routing and sees
/// [`MatchedPath`].
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    ::metrics::counter!(
        HTTP_REQUESTS,
        "route" => route.clone(),
        "status" => response.status().as_str().to_owned(),
    )
    .increment(1);
    ::metrics::histogram!(HTTP_DURATION, "route" => route).record(elapsed);
    response
}
