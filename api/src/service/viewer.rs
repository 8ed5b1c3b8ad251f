//! Who is asking: the request's [`Viewer`], read from its `Authorization` header.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use uuid::Uuid;

use crate::auth::jwt::{Claims, JwtKeys};
use crate::error::{ApiError, ApiResult};

/// The user behind a request, if any. Services take it and decide what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Anonymous,
    User(Uuid),
}

impl Viewer {
    /// The signed-in user's id, or UNAUTHENTICATED.
    pub fn user_id(self) -> ApiResult<Uuid> {
        match self {
            Self::User(id) => Ok(id),
            Self::Anonymous => Err(ApiError::Unauthenticated("sign in first")),
        }
    }

    /// Reads `Authorization: Bearer <jwt>`. No header is anonymous; a header that is there but
    /// wrong in any way is an error, never anonymous, so a client with a stale token learns it
    /// must refresh instead of silently seeing less.
    pub fn from_headers(headers: &HeaderMap, keys: &JwtKeys) -> ApiResult<Self> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(Self::Anonymous);
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::Unauthenticated("malformed Authorization header"))?;
        Self::from_authorization(value, keys)
    }

    /// Reads an `Authorization` value (`Bearer <jwt>`, scheme case-insensitive).
    pub fn from_authorization(value: &str, keys: &JwtKeys) -> ApiResult<Self> {
        Ok(Self::User(bearer_claims(value, keys)?.sub))
    }
}

/// The verified claims of a `Bearer <jwt>` value (scheme case-insensitive).
pub fn bearer_claims(value: &str, keys: &JwtKeys) -> ApiResult<Claims> {
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::Unauthenticated(
            "the Authorization header must be `Bearer <access token>`",
        ))?;
    keys.verify(token)
}
