//! GraphQL operation metrics: every operation is counted by type, operation name and outcome
//! (the first error's `extensions.code`, or `OK`), and queries and mutations are timed. The
//! operation is also named on the transport's span (`operation_name`), so every later log
//! line of the request carries it.
//!
//! Operation names are the client's choice, so the `name` label is bounded: only names read
//! from the parsed document count (never the request's `operationName` field, which may be
//! any text), each cut to [`MAX_NAME_LEN`] characters, and only the first [`MAX_NAMES`]
//! distinct names get a series of their own; later ones are `(other)`. An operation without a
//! name is `(anonymous)`, and a document that does not parse or names no operation of its own
//! has type `unknown` and name `(unknown)`. (None of these can be a GraphQL name.)
//!
//! `crate::graphql::execution` counts each operation once: an HTTP one at its result, one over
//! a socket at its first result (or its end). A subscription is not timed: it lives as long
//! as the client wants.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Response, ServerError};
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

/// One operation's metrics, from its document to its result (see `crate::graphql::execution`).
pub struct OperationMetrics {
    ty: Option<OperationType>,
    /// The selected operation's name from the document; `Some(None)`: anonymous.
    name: Option<Option<String>>,
    recorded: bool,
}

impl OperationMetrics {
    /// The operation `document` runs for a request whose `operationName` is `wanted`, named
    /// on the current span (the transport's: the HTTP request's, or the socket's).
    pub fn start(document: &ExecutableDocument, wanted: Option<&str>) -> Self {
        let mut operation = Self::unknown();
        let mut matching = document
            .operations
            .iter()
            .filter(|(name, _)| match (wanted, name) {
                (Some(wanted), Some(name)) => wanted == name.as_str(),
                (None, _) => true,
                (Some(_), None) => false,
            });
        let (Some((name, selected)), None) = (matching.next(), matching.next()) else {
            // None or several: async-graphql refuses the request, and it stays `unknown`.
            return operation;
        };
        operation.ty = Some(selected.node.ty);
        let name = name.map(|name| name.as_str().chars().take(MAX_NAME_LEN).collect::<String>());
        if let Some(name) = &name {
            Span::current().record("operation_name", name.as_str());
        }
        operation.name = Some(name);
        operation
    }

    /// An operation whose document did not parse.
    pub fn unknown() -> Self {
        Self {
            ty: None,
            name: None,
            recorded: false,
        }
    }

    pub fn operation_type(&self) -> Option<OperationType> {
        self.ty
    }

    /// Counts the operation by its result, timing it when `elapsed` is given (never a
    /// subscription's). Only the first call counts.
    pub fn record(&mut self, response: &Response, elapsed: Option<f64>) {
        self.count(Some(response), elapsed);
    }

    fn count(&mut self, response: Option<&Response>, elapsed: Option<f64>) {
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

/// An operation that ends without a result (a subscription closed before its first event,
/// a request whose client went away) still counts, untimed and `OK`.
impl Drop for OperationMetrics {
    fn drop(&mut self) {
        self.count(None, None);
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
