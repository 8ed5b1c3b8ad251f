//! `ApiError`: the one error type of the service layer, and [`ErrorCode`], the one place the
//! stable `extensions.code` strings clients match on are spelled.
//!
//! `ApiError` deliberately does not implement `Display`: async-graphql converts any `Display`
//! type into an error *without* a code, so leaving it out makes `?` in a resolver go through
//! [`From<ApiError> for async_graphql::Error`](#impl-From<ApiError>-for-Error), which always
//! attaches the code and masks internal errors.

use std::fmt;
use std::sync::Arc;

use async_graphql::ErrorExtensions;

/// Every `extensions.code` Photon sends, over HTTP, WebSocket and plain JSON routes.
/// Clients switch on these strings, so a code is never renamed; new ones are added here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No valid credentials for an operation that needs them.
    Unauthenticated,
    /// The viewer can see the thing but may not do this to it.
    Forbidden,
    /// No such thing, or one the viewer may not know exists.
    NotFound,
    /// An argument or variable is malformed or out of range.
    BadUserInput,
    /// The request itself is malformed (not JSON, wrong method, missing `query`…).
    BadRequest,
    /// Well-formed, but clashes with the current state.
    Conflict,
    /// Too many requests of this kind; `extensions.retryAfter` says when to try again.
    RateLimited,
    /// A per-user or per-session allowance is used up.
    QuotaExceeded,
    /// The cursor points before the retained event log.
    CursorExpired,
    /// The session's owner has locked joins; its members stay, nobody new gets in.
    JoinsLocked,
    /// The session's owner removed the viewer and barred them from coming back.
    Banned,
    /// The session ended longer ago than its late-upload window: no more uploads.
    UploadWindowClosed,
    /// A signed link (a session archive's) has expired: ask for a new one.
    LinkExpired,
    /// The document is not GraphQL.
    GraphqlParseFailed,
    /// The document does not validate against the schema or is over a cost limit.
    GraphqlValidationFailed,
    /// Our fault; the cause is logged, never sent.
    InternalServerError,
    /// The server is shutting down, or the request ran past its time limit: try again.
    ServiceUnavailable,
    /// A persisted query hash this server does not know: send it again with the document.
    /// Apollo's persisted query link retries on it (with the message `PersistedQueryNotFound`).
    PersistedQueryNotFound,
    /// Only the trusted documents run here, and this is not one of them.
    PersistedQueryNotListed,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::BadRequest => "BAD_REQUEST",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
            Self::CursorExpired => "CURSOR_EXPIRED",
            Self::JoinsLocked => "JOINS_LOCKED",
            Self::Banned => "BANNED",
            Self::UploadWindowClosed => "UPLOAD_WINDOW_CLOSED",
            Self::LinkExpired => "LINK_EXPIRED",
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::PersistedQueryNotListed => "PERSISTED_QUERY_NOT_LISTED",
        }
    }

    /// Codes of errors that stop a request before execution: the document itself is wrong,
    /// so a `graphql-response+json` answer has no `data` and a 400.
    pub fn is_request_error(code: &str) -> bool {
        code == Self::GraphqlParseFailed.as_str() || code == Self::GraphqlValidationFailed.as_str()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl From<ErrorCode> for async_graphql::Value {
    fn from(code: ErrorCode) -> Self {
        async_graphql::Value::from(code.as_str())
    }
}

/// What went wrong, in terms a client can act on. Each variant documents its code.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// `UNAUTHENTICATED`: no valid credentials for an operation that needs them.
    Unauthenticated(&'static str),
    /// `FORBIDDEN`: the viewer can see the thing but may not do this to it.
    Forbidden(&'static str),
    /// `NOT_FOUND`: no such thing, or one the viewer may not know exists.
    NotFound(&'static str),
    /// `BAD_USER_INPUT`: an argument is malformed or out of range; `field` names it.
    BadInput {
        field: &'static str,
        message: String,
    },
    /// `CONFLICT`: the request is well-formed but clashes with the current state.
    Conflict(&'static str),
    /// `RATE_LIMITED`: too many requests of this kind; `retry_after_secs` says when to try
    /// again (sent as `extensions.retryAfter`).
    RateLimited {
        rule: &'static str,
        retry_after_secs: u64,
    },
    /// `QUOTA_EXCEEDED`: a per-user or per-session allowance is used up.
    QuotaExceeded(&'static str),
    /// `CURSOR_EXPIRED`: the cursor points before the retained log; reload the list.
    CursorExpired,
    /// `JOINS_LOCKED`: the owner has locked joins to this session.
    JoinsLocked,
    /// `BANNED`: the owner removed the viewer from this session and barred them.
    Banned,
    /// `UPLOAD_WINDOW_CLOSED`: the session ended and its late-upload window has passed.
    UploadWindowClosed,
    /// `SERVICE_UNAVAILABLE`: something the server depends on (the database, the object
    /// store) cannot be reached right now. Nothing was changed; the same request may succeed
    /// in a moment (`extensions.retryAfter` says when to try). The cause is logged.
    Unavailable(Arc<anyhow::Error>),
    /// `SERVICE_UNAVAILABLE` too, for a server too busy to take this on now (too many
    /// subscriptions starting at once): nothing was started, try again after
    /// `extensions.retryAfter`. Expected under load, so counted rather than logged.
    Busy(&'static str),
    /// `INTERNAL_SERVER_ERROR`: our fault. The cause is logged, never sent to the client.
    Internal(Arc<anyhow::Error>),
}

/// When a client should try again after `SERVICE_UNAVAILABLE`, in seconds.
pub const UNAVAILABLE_RETRY_SECS: u64 = 1;

impl ApiError {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput {
            field,
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(Arc::new(err.into()))
    }

    pub fn unavailable(err: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(Arc::new(err.into()))
    }

    /// The stable code clients match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadInput { .. } => ErrorCode::BadUserInput,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            Self::CursorExpired => ErrorCode::CursorExpired,
            Self::JoinsLocked => ErrorCode::JoinsLocked,
            Self::Banned => ErrorCode::Banned,
            Self::UploadWindowClosed => ErrorCode::UploadWindowClosed,
            Self::Unavailable(_) | Self::Busy(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// When the client may try again (`extensions.retryAfter`), for the errors that have one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Unavailable(_) | Self::Busy(_) => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        }
    }

    /// What an operator sees: the cause of an internal error, the client's message otherwise.
    /// For logs and the command line, never for a client.
    pub fn detail(&self) -> String {
        match self {
            Self::Internal(cause) | Self::Unavailable(cause) => format!("{cause:#}"),
            other => other.client_message(),
        }
    }

    /// The message a client sees.
    pub fn client_message(&self) -> String {
        match self {
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::QuotaExceeded(m)
            | Self::Busy(m) => (*m).to_owned(),
            Self::BadInput { message, .. } => message.clone(),
            Self::RateLimited {
                retry_after_secs, ..
            } => format!("too many requests; try again in {retry_after_secs} s"),
            Self::CursorExpired => {
                "the cursor is older than the events kept; reload the list and resume from its newest cursor"
                    .to_owned()
            }
            Self::JoinsLocked => "the owner has locked joins to this session".to_owned(),
            Self::Banned => "the owner removed you from this session".to_owned(),
            Self::UploadWindowClosed => {
                "this session has ended and no longer takes uploads".to_owned()
            }
            Self::Unavailable(_) => {
                "the service is briefly unavailable; nothing was changed, try again".to_owned()
            }
            Self::Internal(_) => "internal error".to_owned(),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        if crate::db::is_unavailable(&err) {
            Self::unavailable(err)
        } else {
            Self::internal(err)
        }
    }
}

impl From<sea_orm::TransactionError<ApiError>> for ApiError {
    fn from(err: sea_orm::TransactionError<ApiError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(api) => api,
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        match &err {
            // Logged here, once, inside the request's span (which carries its request id).
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = format!("{cause:#}"), "a dependency is unavailable");
            }
            _ => {}
        }
        let code = err.code();
        let field = match &err {
            ApiError::BadInput { field, .. } => Some(*field),
            _ => None,
        };
        let retry_after = err.retry_after_secs();
        async_graphql::Error::new(err.client_message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = field {
                ext.set("field", field);
            }
            if let Some(secs) = retry_after {
                ext.set("retryAfter", secs);
            }
        })
    }
}

/// Results of the service layer.
pub type ApiResult<T> = Result<T, ApiError>;
