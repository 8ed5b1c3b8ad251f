//! GraphQL over HTTP (<https://graphql.github.io/graphql-over-http/draft/>): POST for any
//! operation, GET for queries only, GraphiQL for browsers, and the status codes the spec gives
//! for each media type. A request with a bad `Authorization` header is refused as a whole.
//! Operations may name their document by a persisted query hash (see `persisted`), and
//! responses are compressed for clients that accept it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::ServerError;
use async_graphql::parser::types::OperationType;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{And, DefaultPredicate, Predicate};

use super::cost::{self, Budget};
use super::errors::code_of;
use super::measured::Measured;
use super::persisted::{Pending, PersistedError};
use super::{Loaders, selected_operations};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::events;
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

/// What one operation of a request came to.
enum Answer {
    /// It was handed to the schema, which may still have refused it (parse or validation).
    Ran(async_graphql::Response),
    /// It was refused before the schema saw it: by its cost, or by the persisted query rules.
    Refused(Refusal),
}

/// An operation refused before execution.
enum Refusal {
    Cost(cost::Refusal),
    Persisted(PersistedError),
}

impl Refusal {
    fn to_server_error(&self) -> ServerError {
        match self {
            Self::Cost(refusal) => refusal.to_server_error(),
            Self::Persisted(error) => error.to_server_error(),
        }
    }
}

impl Answer {
    /// Whether the operation failed as a whole, before any field ran: such an answer has no
    /// `data`, and, alone under `application/graphql-response+json`, a 400 status.
    fn is_request_error(&self) -> bool {
        match self {
            Self::Ran(r) => {
                !r.errors.is_empty()
                    && r.errors
                        .iter()
                        .all(|e| code_of(e).is_some_and(ErrorCode::is_request_error))
            }
            Self::Refused(_) => true,
        }
    }

    /// `PERSISTED_QUERY_NOT_FOUND`: the client is expected to send the document next, so it
    /// is a 200 (as Apollo Server answers it, for every media type) that no cache may keep.
    fn asks_for_the_document(&self) -> bool {
        matches!(self, Self::Refused(Refusal::Persisted(e)) if e.is_not_found())
    }
}

/// The JSON of one answer, serialized straight from async-graphql's values so that every
/// object keeps the order of the selection set (the spec's serialization rule).
#[derive(serde::Serialize)]
struct AnswerJson<'a> {
    #[serde(skip_serializing_if = "no_errors")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extensions: Option<&'a BTreeMap<String, async_graphql::Value>>,
}

fn no_errors(errors: &&[ServerError]) -> bool {
    errors.is_empty()
}

/// Serializes the answers: one object for a single operation, an array for a batch. With
/// `application/graphql-response+json`, a single operation refused as a whole has a 400.
fn graphql_response(media: MediaType, answers: Vec<Answer>, batched: bool) -> Response {
    let errors: Vec<Vec<ServerError>> = answers
        .iter()
        .map(|answer| match answer {
            Answer::Ran(_) => Vec::new(),
            Answer::Refused(refusal) => vec![refusal.to_server_error()],
        })
        .collect();
    let bodies: Vec<AnswerJson<'_>> = answers
        .iter()
        .zip(&errors)
        .map(|(answer, refusal)| match answer {
            Answer::Ran(r) => AnswerJson {
                errors: &r.errors,
                data: (!answer.is_request_error()).then_some(&r.data),
                extensions: (!r.extensions.is_empty()).then_some(&r.extensions),
            },
            Answer::Refused(_) => AnswerJson {
                errors: refusal,
                data: None,
                extensions: None,
            },
        })
        .collect();
    let json = if batched {
        serde_json::to_vec(&bodies)
    } else {
        match bodies.first() {
            Some(body) => serde_json::to_vec(body),
            None => serde_json::to_vec(&bodies),
        }
    };
    let Ok(json) = json else {
        tracing::error!("a GraphQL response could not be serialized");
        return plain_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalServerError,
            "internal error",
        );
    };
    let single = (!batched).then(|| answers.first()).flatten();
    let status = match single {
        Some(answer)
            if media == MediaType::GraphqlResponse
                && answer.is_request_error()
                && !answer.asks_for_the_document() =>
        {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    };
    let mut response = (status, [(CONTENT_TYPE, media.as_str())], json).into_response();
    if answers.iter().any(Answer::asks_for_the_document) {
        response.headers_mut().insert(
            CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache, must-revalidate"),
        );
    }
    response
}

/// One operation of a request on its way to execution.
enum Operation {
    /// Its document is known; `Pending` registers it once it is admitted, and the entry is
    /// the cost check's for its parsed document.
    Run(Box<async_graphql::Request>, Pending, Option<Arc<Measured>>),
    Refused(Refusal),
}

/// Finds each operation's document (its own, or the one its persisted query hash names),
/// measures all of them against the cost limits, and registers newly sent persisted
/// documents that were admitted. A batch shares one budget and is refused whole by its
/// cost: either all of it may run or none of it. Persisted query refusals are per operation,
/// so each of a batch's operations can be retried with its document on its own.
fn prepare(state: &AppState, requests: Vec<async_graphql::Request>) -> Vec<Operation> {
    let mut operations: Vec<Operation> = requests
        .into_iter()
        .map(|mut request| match state.persisted.resolve(&mut request) {
            Ok(pending) => Operation::Run(Box::new(request), pending, None),
            Err(error) => Operation::Refused(Refusal::Persisted(error)),
        })
        .collect();
    let mut budget = Budget::default();
    for operation in &mut operations {
        let Operation::Run(request, pending, measured) = operation else {
            continue;
        };
        let known = pending.id();
        let limits = &state.config.cost;
        let admitted = cost::admit(request, known, limits, &mut budget, &state.measured);
        match admitted {
            Ok(entry) => *measured = entry,
            Err(refusal) => {
                tracing::info!(limit = refusal.limit.name(), "document refused by its cost");
                return operations
                    .into_iter()
                    .map(|operation| match operation {
                        Operation::Run(..) => Operation::Refused(Refusal::Cost(refusal)),
                        refused => refused,
                    })
                    .collect();
            }
        }
    }
    for operation in &mut operations {
        if let Operation::Run(request, pending, _) = operation {
            state.persisted.register(*pending, request);
        }
    }
    operations
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

/// Attaches per-request data and runs the prepared operations: in order, a few at a time,
/// the refused ones answered with their refusal.
async fn execute(
    state: &AppState,
    viewer: Viewer,
    client: ClientIp,
    media: MediaType,
    operations: Vec<Operation>,
    batched: bool,
) -> Response {
    // One set of loaders for the whole batch, so its operations share what they load.
    let loaders = Loaders::new(&state.db, viewer);
    let answers: Vec<Answer> = futures_util::stream::iter(operations)
        .map(|operation| {
            let loaders = loaders.clone();
            async move {
                match operation {
                    Operation::Run(request, _, measured) => {
                        let request = (*request).data(viewer).data(client).data(loaders);
                        // Its events are announced once it is done (and has committed).
                        let run = state.schema.execute(request, measured);
                        Answer::Ran(events::announcing(&state.announcer, run).await)
                    }
                    Operation::Refused(refusal) => Answer::Refused(refusal),
                }
            }
        })
        .buffered(state.config.cost.batch_concurrency)
        .collect()
        .await;
    graphql_response(media, answers, batched)
}

/// Whether a request names its document by a persisted query hash (and may leave `query`
/// out).
fn is_persisted(request: &async_graphql::Request) -> bool {
    request
        .extensions
        .get("persistedQuery")
        .is_some_and(|value| *value != async_graphql::Value::Null)
}

/// Reads a POST body: one request object, or an array of 1 to `MAX_BATCH` of them, each
/// with a non-empty `query` or a persisted query hash. (Going through `Value` first keeps
/// serde from reading a bare array as a struct, which would turn `[]` into an empty
/// request.) The flag says whether it was a batch.
fn parse_body(body: &[u8]) -> Result<(Vec<async_graphql::Request>, bool), String> {
    let not_a_request = || {
        "the body is not a GraphQL request: expected JSON with a `query` string or a \
         persistedQuery extension"
            .to_owned()
    };
    let one = |value: serde_json::Value| -> Result<async_graphql::Request, String> {
        if !value.is_object() {
            return Err(not_a_request());
        }
        let request: async_graphql::Request =
            serde_json::from_value(value).map_err(|_| not_a_request())?;
        if request.query.trim().is_empty() && !is_persisted(&request) {
            return Err(not_a_request());
        }
        Ok(request)
    };
    match serde_json::from_slice::<serde_json::Value>(body).map_err(|_| not_a_request())? {
        serde_json::Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(format!("a batch must hold 1 to {MAX_BATCH} operations"));
            }
            let requests = items.into_iter().map(one).collect::<Result<_, _>>()?;
            Ok((requests, true))
        }
        value => Ok((vec![one(value)?], false)),
    }
}

/// Reads `?query=…&operationName=…&variables=…&extensions=…` (variables and extensions as
/// JSON), as Apollo's links send a GET. `None` when the URL names no operation at all.
fn parse_query_string(query: &str) -> Result<Option<async_graphql::Request>, String> {
    let mut request = async_graphql::Request::new("");
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "query" => request.query = value.into_owned(),
            "operationName" if !value.is_empty() => {
                request.operation_name = Some(value.into_owned());
            }
            "variables" if !value.is_empty() => {
                request.variables = serde_json::from_str(&value)
                    .map_err(|_| "`variables` must be a JSON object".to_owned())?;
            }
            "extensions" if !value.is_empty() => {
                request.extensions = serde_json::from_str(&value)
                    .map_err(|_| "`extensions` must be a JSON object".to_owned())?;
            }
            _ => {}
        }
    }
    if request.query.is_empty() && !is_persisted(&request) {
        return Ok(None);
    }
    Ok(Some(request))
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
    let (requests, batched) = match parse_body(&body) {
        Ok(parsed) => parsed,
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
    let operations = prepare(&state, requests);
    execute(&state, viewer, client, media, operations, batched).await
}

/// `GET /graphql`: GraphiQL for a browser, otherwise a query from the URL, by its text or by
/// its persisted query hash (Apollo's `useGETForHashedQueries`). Mutations over GET are
/// refused (405), so a link or an image tag can never change anything.
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
    let request = match parse_query_string(&query) {
        Ok(Some(request)) => request,
        Ok(None) => {
            let message = "pass the operation as ?query=… (and optionally variables, \
                           operationName), or its hash in extensions.persistedQuery";
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                ErrorCode::BadRequest,
                message,
            );
        }
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
    let mut operations = prepare(&state, vec![request]);
    // A document that does not parse is reported, with its code, when it runs.
    let is_mutation = operations.iter_mut().any(|operation| match operation {
        Operation::Run(request, _, _) => selected_operations(request)
            .iter()
            .any(|ty| *ty != OperationType::Query),
        Operation::Refused(_) => false,
    });
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
    execute(&state, viewer, client, media, operations, false).await
}

/// Gzip or Brotli for GraphQL responses when the client accepts either (`Accept-Encoding`).
/// Only the bodies of `/graphql` are compressed: never a WebSocket upgrade, and never the
/// photo bytes of `/storage`, which are compressed already.
pub fn compression() -> CompressionLayer<And<DefaultPredicate, GraphqlBodies>> {
    CompressionLayer::new()
        .gzip(true)
        .br(true)
        .compress_when(DefaultPredicate::new().and(GraphqlBodies))
}

/// Responses whose body is GraphQL JSON or GraphiQL's page.
#[derive(Debug, Clone, Copy)]
pub struct GraphqlBodies;

impl Predicate for GraphqlBodies {
    fn should_compress<B>(&self, response: &axum::http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        let Some(content_type) = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let essence = content_type.split(';').next().unwrap_or("").trim();
        [GRAPHQL_RESPONSE_JSON, JSON, "text/html"]
            .iter()
            .any(|t| essence.eq_ignore_ascii_case(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_reads_apollos_parameters() {
        let hash = "a".repeat(64);
        let extensions = format!(r#"{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}"#);
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("operationName", "Me")
            .append_pair("variables", r#"{"first":2}"#)
            .append_pair("extensions", &extensions)
            .finish();
        let request = parse_query_string(&query).unwrap().unwrap();
        assert_eq!(request.query, "");
        assert_eq!(request.operation_name.as_deref(), Some("Me"));
        assert!(is_persisted(&request));
        assert_eq!(
            request.variables.get("first"),
            Some(&async_graphql::Value::from(2))
        );
        assert!(parse_query_string("variables=%7B%7D").unwrap().is_none());
        assert!(parse_query_string("query=%7Ba%7D&variables=nope").is_err());
    }
}
