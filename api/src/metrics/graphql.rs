//! GraphQL operation metrics, as an async-graphql extension: every operation the schema runs
//! is counted by type, operation name and outcome (the first error's `extensions.code`, or
//! `OK`), and queries and mutations are timed. The extension also names the operation on the
//! HTTP request's span (`operation_name`), so every later log line of the request carries it.
//!
//! Operation names are the client's choice, so the `name` label is bounded: only names read
//! from the parsed document count (never the request's `operationName` field, which may be
//! any text), each cut to [`MAX_NAME_LEN`] characters, and only the first [`MAX_NAMES`]
//! distinct names get a series of their own; later ones are `(other)`. An operation without a
//! name is `(anonymous)`, and a document that does not parse or names no operation of its own
//! has type `unknown` and name `(unknown)`. (None of these can be a GraphQL name.)
//!
//! HTTP requests go through the `request` hook and WebSocket operations through `subscribe`
//! (async-graphql calls one or the other), so each operation is counted once. A subscription
//! is counted when its first result (or its end) arrives, and is not timed: it lives as long
//! as the client wants.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextSubscribe,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerError, ServerResult, Variables};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tracing::Span;

use super::{GRAPHQL_DURATION, GRAPHQL_OPERATIONS};

/// Distinct operation names that get a label of their own.
pub const MAX_NAMES: usize = 200;
/// Longest operation name kept in a label (and in the logs); longer ones are cut.
pub const MAX_NAME_LEN: usize = 64;
pub const OTHER: &str = "(other)";
pub const ANONYMOUS: &str = "(anonymous)";
pub const UNKNOWN: &str = "(unknown)";
/// The code label of a response without errors.
pub const OK: &str = "OK";
/// The code label of an error without a usable code.
const NO_CODE: &str = "UNKNOWN";
/// Longest code label; ours are all shorter.
const MAX_CODE_LEN: usize = 40;

/// The operation names seen so far, up to a bound.
pub struct NameLabels {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl NameLabels {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The label for an operation name read from a parsed document.
    pub fn label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return ANONYMOUS.to_owned();
        };
        // A parsed name is `[_A-Za-z][_0-9A-Za-z]*` already; checking again keeps any other
        // caller from putting arbitrary text into a label.
        let valid = !name.is_empty() && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !valid {
            return OTHER.to_owned();
        }
        let name: String = name.chars().take(MAX_NAME_LEN).collect();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&name) {
            return name;
        }
        if seen.len() >= self.max {
            return OTHER.to_owned();
        }
        seen.insert(name.clone());
        name
    }
}

/// The process's names: the registry they label is process-wide too.
static NAMES: std::sync::LazyLock<NameLabels> =
    std::sync::LazyLock::new(|| NameLabels::new(MAX_NAMES));

/// The `code` label of a response: its first error's `extensions.code`, or `OK`.
pub fn outcome(response: &Response) -> String {
    match response.errors.first() {
        None => OK.to_owned(),
        Some(error) => code_label(error),
    }
}

fn code_label(error: &ServerError) -> String {
    let code = error
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get("code"));
    match code {
        Some(async_graphql::Value::String(code))
            if !code.is_empty()
                && code.len() <= MAX_CODE_LEN
                && code.chars().all(|c| c == '_' || c.is_ascii_uppercase()) =>
        {
            code.clone()
        }
        _ => NO_CODE.to_owned(),
    }
}

fn type_label(ty: Option<OperationType>) -> &'static str {
    match ty {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// Installs [`OperationMetrics`] on a schema. Register it before the other extensions, so it
/// sees responses as clients do (with every error's code) and the transport's span as the
/// current one.
pub struct OperationMetricsFactory;

impl ExtensionFactory for OperationMetricsFactory {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetrics::default())
    }
}

/// One operation's extension instance (async-graphql creates one per request).
#[derive(Default)]
pub struct OperationMetrics {
    operation: Arc<Mutex<Operation>>,
}

/// What is known about the operation so far.
#[derive(Default)]
struct Operation {
    /// The request's `operationName`, only to pick the operation out of the document.
    wanted: Option<String>,
    ty: Option<OperationType>,
    /// The selected operation's name from the document; `Some(None)`: anonymous.
    name: Option<Option<String>>,
    /// The transport's span (the HTTP request's), to name the operation on.
    span: Option<Span>,
    recorded: bool,
}

impl Operation {
    /// Learns the selected operation from the parsed document, and names it on the span.
    fn select(&mut self, document: &ExecutableDocument) {
        let mut matching =
            document
                .operations
                .iter()
                .filter(|(name, _)| match (&self.wanted, name) {
                    (Some(wanted), Some(name)) => wanted == name.as_str(),
                    (None, _) => true,
                    (Some(_), None) => false,
                });
        let (Some((name, operation)), None) = (matching.next(), matching.next()) else {
            // None or several: async-graphql refuses the request, and it stays `unknown`.
            return;
        };
        self.ty = Some(operation.node.ty);
        let name = name.map(|name| name.as_str().chars().take(MAX_NAME_LEN).collect::<String>());
        if let (Some(span), Some(name)) = (&self.span, &name) {
            span.record("operation_name", name.as_str());
        }
        self.name = Some(name);
    }

    /// Counts the operation once, timing it when `elapsed` is given.
    fn record(&mut self, response: Option<&Response>, elapsed: Option<f64>) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let ty = type_label(self.ty);
        let name = match &self.name {
            Some(name) => NAMES.label(name.as_deref()),
            None => UNKNOWN.to_owned(),
        };
        let code = response.map_or_else(|| OK.to_owned(), outcome);
        ::metrics::counter!(GRAPHQL_OPERATIONS, "type" => ty, "name" => name, "code" => code)
            .increment(1);
        if let Some(elapsed) = elapsed
            && self.ty != Some(OperationType::Subscription)
        {
            ::metrics::histogram!(GRAPHQL_DURATION, "type" => ty).record(elapsed);
        }
    }
}

impl OperationMetrics {
    fn operation(&self) -> std::sync::MutexGuard<'_, Operation> {
        self.operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Extension for OperationMetrics {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        self.operation().span = Some(Span::current());
        let started = Instant::now();
        let response = next.run(ctx).await;
        let elapsed = started.elapsed().as_secs_f64();
        self.operation().record(Some(&response), Some(elapsed));
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        self.operation().span = Some(Span::current());
        let guard = FirstResult {
            operation: self.operation.clone(),
            started: Instant::now(),
        };
        next.run(ctx, stream)
            .map(move |response| {
                guard.seen(&response);
                response
            })
            .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.operation().wanted = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        self.operation().select(&document);
        Ok(document)
    }
}

/// Records a streamed operation at its first result, or when the stream goes without one.
struct FirstResult {
    operation: Arc<Mutex<Operation>>,
    started: Instant,
}

impl FirstResult {
    fn seen(&self, response: &Response) {
        let elapsed = self.started.elapsed().as_secs_f64();
        self.operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(Some(response), Some(elapsed));
    }
}

impl Drop for FirstResult {
    fn drop(&mut self) {
        self.operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(None, None);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_are_bounded_in_number_length_and_charset() {
        let labels = NameLabels::new(2);
        assert_eq!(labels.label(Some("Me")), "Me");
        assert_eq!(labels.label(Some("Feed")), "Feed");
        assert_eq!(labels.label(Some("Third")), OTHER);
        assert_eq!(
            labels.label(Some("Me")),
            "Me",
            "a name seen keeps its label"
        );
        assert_eq!(labels.label(None), ANONYMOUS);
        assert_eq!(labels.label(Some("bad name\"}")), OTHER);
        assert_eq!(labels.label(Some("")), OTHER);

        let long = "A".repeat(300);
        let labels = NameLabels::new(10);
        assert_eq!(labels.label(Some(&long)).len(), MAX_NAME_LEN);
    }

    #[test]
    fn codes_are_the_first_errors_or_ok() {
        assert_eq!(outcome(&Response::new(async_graphql::Value::Null)), OK);
        let mut first = ServerError::new("no", None);
        first
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "NOT_FOUND");
        let second = ServerError::new("also", None);
        let response = Response::from_errors(vec![first, second.clone()]);
        assert_eq!(outcome(&response), "NOT_FOUND");
        assert_eq!(outcome(&Response::from_errors(vec![second])), NO_CODE);
        let mut odd = ServerError::new("odd", None);
        odd.extensions
            .get_or_insert_with(Default::default)
            .set("code", "lower case {}");
        assert_eq!(outcome(&Response::from_errors(vec![odd])), NO_CODE);
    }
}
