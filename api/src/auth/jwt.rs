//! Access tokens: short-lived HS256 JWTs. The algorithm is pinned and issuer, audience and
//! expiry are always checked, so `alg: none`, tokens from another deployment and stale tokens
//! are all refused.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// The audience every Photon access token names.
pub const AUDIENCE: &str = "photon";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs and checks access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    ttl: Duration,
}

/// A freshly minted access token.
pub struct AccessToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl JwtKeys {
    /// `issuer` is the server's public URL, so a token from another deployment (with the same
    /// secret by mistake) is still refused.
    pub fn new(secret: &SecretString, issuer: &str, ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            issuer: issuer.to_owned(),
            ttl,
        }
    }

    pub fn issue(&self, user_id: Uuid) -> ApiResult<AccessToken> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.ttl).map_err(ApiError::internal)?;
        let expires_at = now + ttl;
        let claims = Claims {
            sub: user_id,
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok(AccessToken { token, expires_at })
    }

    /// Checks signature, algorithm, issuer, audience and expiry. Every failure looks the same
    /// to the caller: why a token was refused is no business of whoever presented it.
    pub fn verify(&self, token: &str) -> ApiResult<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| {
                tracing::debug!(reason = ?err.kind(), "access token refused");
                ApiError::Unauthenticated("invalid or expired access token")
            })
    }
}
