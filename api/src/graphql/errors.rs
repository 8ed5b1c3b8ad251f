//! Gives every error an `extensions.code`: parse failures, validation failures (including the
//! depth and complexity limits) and argument errors that async-graphql raises before our
//! resolvers run. Errors from resolvers carry their code already (see `crate::error`).

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

use crate::error::ErrorCode;

/// Codes of errors that stop a request before execution (the document itself is wrong).
pub const REQUEST_ERROR_CODES: [&str; 2] = [
    ErrorCode::GraphqlParseFailed.as_str(),
    ErrorCode::GraphqlValidationFailed.as_str(),
];

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

pub fn code_of(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code.as_str()),
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

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        // Our resolvers always set a code, so a code-less error here comes from
        // async-graphql's own input coercion: an argument or variable of the wrong shape.
        response.errors = std::mem::take(&mut response.errors)
            .into_iter()
            .map(|e| with_code(e, ErrorCode::BadUserInput))
            .collect();
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, ErrorCode::GraphqlParseFailed))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| with_code(e, ErrorCode::GraphqlValidationFailed))
                .collect()
        })
    }
}
