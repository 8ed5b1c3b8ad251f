//! GraphQL over HTTP (<https://graphql.github.io/graphql-over-http/draft/>): POST for any
//! operation, GET for queries only, GraphiQL for browsers, and the status codes the spec gives
//! for each media type. A request with a bad `Authorization` header is refused as a whole.

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::{ACCEPT, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::cost::{self, Budget, CostLimits};
use super::errors::code_of;
use super::{Loaders, selected_operations};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::limits::{self, ClientIp, Key, Rule};
use crate::service::Viewer;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";
/// Largest request body accepted. Photos never pass through the API, so a GraphQL document
/// this large is already suspicious.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most operations one batched POST may carry (Apollo's `BatchHttpLink` sends arrays).
const MAX_BATCH: usize = 20;

/// The response media type the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    /// `application/graphql-response+json`: status codes tell request errors apart.
    GraphqlResponse,
    /// `application/json`: the legacy type, always 200 for a well-formed request.
    Json,
}

impl MediaType {
    fn as_str(self) -> &'static str {
        match self {
            Self::GraphqlResponse => GRAPHQL_RESPONSE_JSON,
            Self::Json => JSON,
        }
    }
}

/// Picks the response type from `Accept`, in the client's order of preference. No header
/// means `application/json`; `None` means nothing we can produce is acceptable.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    let mut ranges: Vec<(f32, usize, MediaType)> = Vec::new();
    for (position, part) in accept.split(',').enumerate() {
        let mut params = part.split(';');
        let range = params
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let quality = params
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
            })
            .next()
            .unwrap_or(1.0);
        let media = match range.as_str() {
            GRAPHQL_RESPONSE_JSON => MediaType::GraphqlResponse,
            // Wildcards get the legacy type, which every client can read.
            JSON | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        if quality > 0.0 {
            ranges.push((quality, position, media));
        }
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.first().map(|r| r.2)
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A response carrying only errors, for requests refused before execution.
fn error_response(
    status: StatusCode,
    media: MediaType,
    code: ErrorCode,
    message: &str,
) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    let status = if media == MediaType::Json
        && status.is_client_error()
        && code == ErrorCode::Unauthenticated
    {
        // Legacy clients read errors from a 200; Apollo's error link then sees the code.
        StatusCode::OK
    } else {
        status
    };
    (status, [(CONTENT_TYPE, media.as_str())], body.to_string()).into_response()
}

/// 406: the client accepts none of the types a GraphQL response comes in.
fn not_acceptable() -> Response {
    let message = "accept application/graphql-response+json or application/json";
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        MediaType::Json,
        ErrorCode::BadRequest,
        message,
    )
}

/// A JSON error response for failures outside GraphQL execution (panics, timeouts).
pub fn plain_error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    error_response(status, MediaType::Json, code, message)
}

/// Serializes an executed response. With `application/graphql-response+json`, a request
/// that failed to parse or validate has no `data` and a 400 status.
fn graphql_response(media: MediaType, response: BatchResponse) -> Response {
    let request_error = |r: &async_graphql::Response| {
        !r.errors.is_empty()
            && r.errors
                .iter()
                .all(|e| code_of(e).is_some_and(ErrorCode::is_request_error))
    };
    let to_json = |r: async_graphql::Response| {
        let is_request_error = request_error(&r);
        let mut value = serde_json::to_value(&r).unwrap_or_default();
        if is_request_error && let Some(object) = value.as_object_mut() {
            object.remove("data");
        }
        value
    };
    let (status, body) = match response {
        BatchResponse::Single(r) => {
            let status = if media == MediaType::GraphqlResponse && request_error(&r) {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (status, to_json(r))
        }
        BatchResponse::Batch(rs) => (
            StatusCode::OK,
            serde_json::Value::Array(rs.into_iter().map(to_json).collect()),
        ),
    };
    (status, [(CONTENT_TYPE, media.as_str())], body.to_string()).into_response()
}

/// Measures every operation of a request against the cost limits before anything runs. A
/// batch shares one budget and is refused whole: either all of it may run or none of it.
fn admit<'a>(
    requests: impl IntoIterator<Item = &'a mut async_graphql::Request>,
    limits: &CostLimits,
) -> Result<(), cost::Refusal> {
    let mut budget = Budget::default();
    for request in requests {
        if let Err(refusal) = cost::admit(request, limits, &mut budget) {
            tracing::info!(limit = refusal.limit.name(), "document refused by its cost");
            return Err(refusal);
        }
    }
    Ok(())
}

/// The answer to a request refused by [`admit`]: the refusal, once per operation.
fn refused(media: MediaType, operations: Option<usize>, refusal: cost::Refusal) -> Response {
    let one = || async_graphql::Response::from_errors(vec![refusal.to_server_error()]);
    let response = match operations {
        None => BatchResponse::Single(one()),
        Some(n) => BatchResponse::Batch((0..n).map(|_| one()).collect()),
    };
    graphql_response(media, response)
}

/// Who is asking: the viewer from `Authorization` (a bad token refuses the whole request),
/// and for anonymous callers one count against their IP's allowance, before anything of the
/// request is parsed. Signed-in callers are counted by what their operations do (see
/// `crate::limits::graphql`).
fn authorize(
    state: &AppState,
    client: ClientIp,
    headers: &HeaderMap,
    media: MediaType,
) -> Result<Viewer, Box<Response>> {
    let viewer = match Viewer::from_headers(headers, &state.tokens.jwt) {
        Ok(viewer) => viewer,
        Err(err) => {
            let mut response = error_response(
                StatusCode::UNAUTHORIZED,
                media,
                err.code(),
                &err.client_message(),
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return Err(Box::new(response));
        }
    };
    if viewer == Viewer::Anonymous
        && let Err(err) = state
            .rate_limiters
            .check(Rule::Anonymous, Key::ip(client.0))
    {
        return Err(Box::new(limits::too_many_requests(&err, media.as_str())));
    }
    Ok(viewer)
}

/// Attaches per-request data and runs an admitted batch: its operations in order, a few at a
/// time.
async fn execute(
    state: &AppState,
    viewer: Viewer,
    client: ClientIp,
    media: MediaType,
    batch: BatchRequest,
) -> Response {
    let batch = batch
        .data(viewer)
        .data(client)
        .data(Loaders::new(&state.db, viewer));
    let response = match batch {
        BatchRequest::Single(request) => BatchResponse::Single(state.schema.execute(request).await),
        BatchRequest::Batch(requests) => BatchResponse::Batch(
            futures_util::stream::iter(requests)
                .map(|request| state.schema.execute(request))
                .buffered(state.config.cost.batch_concurrency)
                .collect()
                .await,
        ),
    };
    graphql_response(media, response)
}

/// Reads a POST body: one request object, or an array of 1 to `MAX_BATCH` of them, each
/// with a non-empty `query`. (Going through `Value` first keeps serde from reading a bare
/// array as a struct, which would turn `[]` into an empty request.)
fn parse_body(body: &[u8]) -> Result<BatchRequest, String> {
    let not_a_request =
        || "the body is not a GraphQL request: expected JSON with a `query` string".to_owned();
    let one = |value: serde_json::Value| -> Result<async_graphql::Request, String> {
        if !value.is_object() {
            return Err(not_a_request());
        }
        let request: async_graphql::Request =
            serde_json::from_value(value).map_err(|_| not_a_request())?;
        if request.query.trim().is_empty() {
            return Err(not_a_request());
        }
        Ok(request)
    };
    match serde_json::from_slice::<serde_json::Value>(body).map_err(|_| not_a_request())? {
        serde_json::Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(format!("a batch must hold 1 to {MAX_BATCH} operations"));
            }
            Ok(BatchRequest::Batch(
                items.into_iter().map(one).collect::<Result<_, _>>()?,
            ))
        }
        value => Ok(BatchRequest::Single(one(value)?)),
    }
}

/// `POST /graphql` with an `application/json` body: one operation or a batch.
pub async fn post(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != JSON {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            ErrorCode::BadRequest,
            "send the request as application/json",
        );
    }
    let too_large = || {
        let message = format!("the request body is larger than {MAX_BODY_BYTES} bytes");
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            media,
            ErrorCode::BadRequest,
            &message,
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return too_large();
    }
    // Reading stops at the limit, whatever the body claimed; any read error means the client
    // is gone or sent too much, and only the latter has anyone to answer.
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return too_large();
    };
    let mut batch = match parse_body(&body) {
        Ok(batch) => batch,
        Err(message) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                ErrorCode::BadRequest,
                &message,
            );
        }
    };
    let viewer = match authorize(&state, client, &headers, media) {
        Ok(viewer) => viewer,
        Err(response) => return *response,
    };
    let admitted = match &mut batch {
        BatchRequest::Single(request) => admit([request], &state.config.cost),
        BatchRequest::Batch(requests) => admit(requests.iter_mut(), &state.config.cost),
    };
    if let Err(refusal) = admitted {
        let operations = match &batch {
            BatchRequest::Single(_) => None,
            BatchRequest::Batch(requests) => Some(requests.len()),
        };
        return refused(media, operations, refusal);
    }
    execute(&state, viewer, client, media, batch).await
}

/// `GET /graphql`: GraphiQL for a browser, otherwise a query from the URL. Mutations over
/// GET are refused (405), so a link or an image tag can never change anything.
pub async fn get(
    State(state): State<AppState>,
    client: ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    if query.is_empty() && wants_html(&headers) {
        return crate::pages::graphiql::page(&state.config);
    }
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let mut request = match async_graphql::http::parse_query_string(&query) {
        Ok(request) if !request.query.is_empty() => request,
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                ErrorCode::BadRequest,
                "pass the operation as ?query=… (and optionally variables, operationName)",
            );
        }
    };
    let viewer = match authorize(&state, client, &headers, media) {
        Ok(viewer) => viewer,
        Err(response) => return *response,
    };
    if let Err(refusal) = admit([&mut request], &state.config.cost) {
        return refused(media, None, refusal);
    }
    // A document that does not parse is left to the schema, which reports it with its code.
    let is_mutation = selected_operations(&mut request)
        .iter()
        .any(|ty| *ty != OperationType::Query);
    if is_mutation {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            ErrorCode::BadRequest,
            "only queries can be sent with GET; use POST",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&state, viewer, client, media, BatchRequest::Single(request)).await
}
