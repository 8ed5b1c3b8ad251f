//! Gives every error an `extensions.code`: parse failures, validation failures (including the
//! depth and complexity limits) and argument errors that async-graphql raises before our
//! resolvers run. Errors from resolvers carry their code already (see `crate::error`).

use async_graphql::{Response, ServerError, Value};

use crate::error::ErrorCode;

/// Codes of errors that stop a request before execution (the document itself is wrong).
pub const REQUEST_ERROR_CODES: [&str; 2] = [
    ErrorCode::GraphqlParseFailed.as_str(),
    ErrorCode::GraphqlValidationFailed.as_str(),
];

pub fn code_of(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}

fn with_code(mut error: ServerError, code: ErrorCode) -> ServerError {
    if code_of(&error).is_none() {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    error
}

/// A parse error, as the client sees it.
pub fn parse_failed(error: ServerError) -> ServerError {
    with_code(error, ErrorCode::GraphqlParseFailed)
}

/// Codes the errors of a result that have none, which only async-graphql's own can lack.
///
/// A result with no data whose errors have no path never ran: async-graphql refused the
/// document before executing it (validation, the depth and complexity limits, an operation
/// name that matches none), so those are `GRAPHQL_VALIDATION_FAILED`. Any other error without
/// a code comes from async-graphql's input coercion during execution, which always gives a
/// path: an argument of the wrong shape, `BAD_USER_INPUT`.
pub fn code_errors(response: &mut Response) {
    if response.errors.iter().all(|e| code_of(e).is_some()) {
        return;
    }
    let refused = response.data == Value::Null && response.errors.iter().all(|e| e.path.is_empty());
    let code = if refused {
        ErrorCode::GraphqlValidationFailed
    } else {
        ErrorCode::BadUserInput
    };
    response.errors = std::mem::take(&mut response.errors)
        .into_iter()
        .map(|e| with_code(e, code))
        .collect();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn twice(&self, n: i32) -> i32 {
            n * 2
        }
    }

    async fn code(query: &str, variables: serde_json::Value) -> String {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        let mut response = schema.execute(request).await;
        code_errors(&mut response);
        code_of(&response.errors[0]).unwrap().to_owned()
    }

    #[tokio::test]
    async fn refusals_before_execution_are_validation_failures() {
        let json = serde_json::json!({});
        assert_eq!(
            code("{ nope }", json.clone()).await,
            "GRAPHQL_VALIDATION_FAILED"
        );
        assert_eq!(
            code("query A { twice(n: 1) } query B { twice(n: 2) }", json).await,
            "GRAPHQL_VALIDATION_FAILED",
            "several operations and no name"
        );
    }

    #[tokio::test]
    async fn coded_errors_keep_their_code() {
        let mut error = ServerError::new("gone", None);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "NOT_FOUND");
        let mut response = Response::from_errors(vec![error]);
        code_errors(&mut response);
        assert_eq!(code_of(&response.errors[0]), Some("NOT_FOUND"));
    }
}
