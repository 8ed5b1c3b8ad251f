//! A small client for FCM's HTTP v1 API: the service-account key, the OAuth2 access token it
//! buys (cached until shortly before it expires), and `messages:send` with FCM's answers sorted
//! into what the dispatcher does next.
//!
//! Hand-written on `reqwest` rather than taken from a crate: the `fcm_rs` crate (0.2.0) sends
//! `Authorization: Bearer "<token>"` (the token Debug-formatted, quotes included, which is not
//! a bearer credential), hard-codes Google's URL (so it cannot be pointed at a test server),
//! ignores the HTTP status and `Retry-After`, and panics when the token source has no token.
//! What is needed here is two POSTs and an RS256 signature, which `reqwest` and `jsonwebtoken`
//! already give us.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::DecodePrivateKey;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use url::Url;

/// Google's FCM API, the default `FCM_ENDPOINT`.
pub const DEFAULT_ENDPOINT: &str = "https://fcm.googleapis.com";
/// The OAuth2 scope that allows sending messages.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The OAuth2 grant that trades a signed JWT for an access token (RFC 7523).
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Where Google issues tokens, for key files that do not say (they all do today).
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Lifetime of the signed assertion: Google accepts at most an hour.
const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// A cached access token is replaced this long before it expires, so no request carries one
/// that expires on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Assumed lifetime when the token endpoint does not say.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one request (token or send) may take, so a stalled connection cannot hold up a
/// round of the dispatcher.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A Firebase service-account key, as downloaded from the console. Its `Debug` never shows
/// the private key.
#[derive(Clone)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    /// Names the key to Google (the JWT's `kid`), so it checks the signature against the
    /// right one of the account's keys.
    key_id: Option<String>,
    /// Where access tokens come from.
    pub token_uri: Url,
    key: Arc<EncodingKey>,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri.as_str())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The fields of a key file that matter here.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccount {
    /// Reads and checks the key file at `path` (blocking: call it at start-up). Errors name the
    /// file and the problem, never the key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("FCM_CREDENTIALS: cannot read {}", path.display()))?;
        Self::from_json(&text).with_context(|| {
            format!(
                "FCM_CREDENTIALS: {} is not a usable service-account key",
                path.display()
            )
        })
    }

    /// Parses and checks a key file's contents, including that the key can sign.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        // Only the position of a syntax error: serde's messages may quote the input.
        let file: KeyFile = serde_json::from_str(text).map_err(|err| {
            anyhow!(
                "not a JSON service-account key (line {}, column {})",
                err.line(),
                err.column()
            )
        })?;
        if let Some(kind) = &file.kind
            && kind != "service_account"
        {
            bail!("its \"type\" is {kind:?}, not \"service_account\"");
        }
        let project_id = file
            .project_id
            .filter(|p| !p.is_empty())
            .ok_or_else(|| anyhow!("\"project_id\" is missing"))?;
        // It becomes a path segment of the send URL.
        if !project_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'))
        {
            bail!("\"project_id\" {project_id:?} is not a project id");
        }
        let client_email = file
            .client_email
            .filter(|e| !e.is_empty())
            .ok_or_else(|| anyhow!("\"client_email\" is missing"))?;
        let token_uri = file.token_uri.as_deref().unwrap_or(GOOGLE_TOKEN_URI);
        let token_uri = Url::parse(token_uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http"))
            .ok_or_else(|| anyhow!("\"token_uri\" is not an http(s) URL"))?;
        let pem = SecretString::from(
            file.private_key
                .ok_or_else(|| anyhow!("\"private_key\" is missing"))?,
        );
        let key = rsa_key(pem.expose_secret())
            .ok_or_else(|| anyhow!("\"private_key\" is not an RSA private key in PEM form"))?;
        let account = Self {
            project_id,
            client_email,
            key_id: file.private_key_id.filter(|k| !k.is_empty()),
            token_uri,
            key: Arc::new(key),
        };
        // Parsing the PEM does not prove the key works; signing once does.
        account
            .assertion(Utc::now())
            .map_err(|_| anyhow!("\"private_key\" cannot sign (is it a valid RSA key?)"))?;
        Ok(account)
    }

    /// The signed JWT that the token endpoint trades for an access token.
    fn assertion(&self, now: DateTime<Utc>) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        let iat = now.timestamp();
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri.as_str(),
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

/// The signing key from a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what Google issues)
/// or PKCS#1 (`BEGIN RSA PRIVATE KEY`). Parsing it here also checks it is a sound RSA key.
fn rsa_key(pem: &str) -> Option<EncodingKey> {
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .ok()?;
    // The signer takes PKCS#1 DER.
    let der = key.to_pkcs1_der().ok()?;
    Some(EncodingKey::from_rsa_der(der.as_bytes()))
}

/// How pushes reach FCM.
#[derive(Debug, Clone)]
pub struct FcmSettings {
    pub account: ServiceAccount,
    /// The API's base URL (`FCM_ENDPOINT`).
    pub endpoint: Url,
}

/// What became of one message, which decides what the dispatcher does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// FCM accepted it.
    Delivered,
    /// The registration token is dead (`UNREGISTERED`, or `INVALID_ARGUMENT` about the token):
    /// the device row goes.
    BadToken,
    /// FCM refused the message for a reason retrying will not fix; the token stays.
    Rejected,
    /// Worth trying again later (429, 5xx, a network failure, no access token), not before
    /// what the server asked for in `Retry-After`, if it did.
    Retry(Option<Duration>),
}

/// An access token and when to stop using it.
struct AccessToken {
    value: SecretString,
    refresh_at: Instant,
}

/// Sends messages with a service account's credentials. One per replica: it holds the token
/// cache and the connection pool.
pub struct FcmClient {
    http: reqwest::Client,
    send_url: Url,
    account: ServiceAccount,
    /// Held while a token is being fetched, so concurrent sends wait for one fetch instead of
    /// each starting their own.
    token: Mutex<Option<AccessToken>>,
}

impl FcmClient {
    pub fn new(settings: &FcmSettings) -> anyhow::Result<Self> {
        let send_url = Url::parse(&format!(
            "{}/v1/projects/{}/messages:send",
            settings.endpoint.as_str().trim_end_matches('/'),
            settings.account.project_id
        ))
        .context("FCM_ENDPOINT does not make a valid send URL")?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Both endpoints answer directly; a redirect would be a misconfiguration.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the FCM HTTP client")?;
        Ok(Self {
            http,
            send_url,
            account: settings.account.clone(),
            token: Mutex::new(None),
        })
    }

    /// Sends one message (the `{"message": …}` body of `messages:send`).
    pub async fn send(&self, body: &Value) -> Outcome {
        // A 401 may mean the cached token was revoked early: one retry with a fresh token.
        let mut fresh_token_tried = false;
        loop {
            let token = match self.access_token().await {
                Ok(token) => token,
                Err(outcome) => return outcome,
            };
            let response = match self
                .http
                .post(self.send_url.clone())
                .bearer_auth(token.expose_secret())
                .json(body)
                .send()
                .await
            {
                Ok(response) => response,
                Err(err) => {
                    tracing::warn!(error = %err, "FCM send failed; will retry");
                    return Outcome::Retry(None);
                }
            };
            let status = response.status();
            if status.is_success() {
                return Outcome::Delivered;
            }
            let retry_after = retry_after(response.headers(), Utc::now());
            // An unreadable error body still has its status to go by.
            let error = response.json::<Value>().await.unwrap_or(Value::Null);
            let error = FcmError::from_body(&error);
            if status == StatusCode::UNAUTHORIZED
                && error.code.as_deref() != Some("THIRD_PARTY_AUTH_ERROR")
                && !fresh_token_tried
            {
                fresh_token_tried = true;
                self.forget_token(&token).await;
                continue;
            }
            let outcome = classify(status, retry_after, &error);
            if outcome != Outcome::Delivered {
                tracing::warn!(
                    status = status.as_u16(),
                    error_code = error.code.as_deref().unwrap_or("-"),
                    error_status = error.status.as_deref().unwrap_or("-"),
                    message = error.message.as_deref().unwrap_or("-"),
                    outcome = ?outcome,
                    "FCM did not take a message"
                );
            }
            return outcome;
        }
    }

    /// The cached access token, or a new one if it is missing or about to expire.
    async fn access_token(&self) -> Result<SecretString, Outcome> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch_token().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// Drops the cached token if it is still `used` (another send may have replaced it).
    async fn forget_token(&self, used: &SecretString) {
        let mut cached = self.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.value.expose_secret() == used.expose_secret())
        {
            *cached = None;
        }
    }

    /// The OAuth2 JWT-bearer grant: a JWT signed with the account's key, traded at its
    /// `token_uri` for an access token.
    async fn fetch_token(&self) -> Result<AccessToken, Outcome> {
        let started = Instant::now();
        let assertion = self.account.assertion(Utc::now()).map_err(|err| {
            tracing::error!(error = %err, "cannot sign the FCM token request");
            Outcome::Retry(None)
        })?;
        let response = self
            .http
            .post(self.account.token_uri.clone())
            .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)])
            .send()
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "FCM access token request failed; will retry");
                Outcome::Retry(None)
            })?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(response.headers(), Utc::now());
            // OAuth errors are `{"error": "invalid_grant", "error_description": …}`: codes
            // and explanations, no secrets.
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            tracing::error!(
                status = status.as_u16(),
                error = body["error"].as_str().unwrap_or("-"),
                description = body["error_description"].as_str().unwrap_or("-"),
                "the token endpoint refused the service account; pushes wait"
            );
            return Err(Outcome::Retry(retry_after));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: Option<u64>,
        }
        let token: TokenResponse = response.json().await.map_err(|err| {
            tracing::error!(error = %err, "unreadable answer from the token endpoint");
            Outcome::Retry(None)
        })?;
        let lifetime = token
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // Short-lived tokens are kept for half their life instead of not at all.
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        tracing::debug!(lifetime_secs = lifetime.as_secs(), "new FCM access token");
        Ok(AccessToken {
            value: SecretString::from(token.access_token),
            refresh_at: started + lifetime - margin,
        })
    }
}

/// The parts of an FCM error body that matter:
/// `{"error":{"code":404,"message":…,"status":"NOT_FOUND","details":[{"@type":
/// "type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FcmError {
    /// FCM's own `errorCode` (`UNREGISTERED`, `INVALID_ARGUMENT`, `QUOTA_EXCEEDED`, …).
    pub code: Option<String>,
    /// The Google API status (`NOT_FOUND`, `INVALID_ARGUMENT`, …).
    pub status: Option<String>,
    pub message: Option<String>,
    /// Whether a `BadRequest` detail blames the `message.token` field.
    pub token_field_violation: bool,
}

impl FcmError {
    pub fn from_body(body: &Value) -> Self {
        let error = &body["error"];
        let details = error["details"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let code = details
            .iter()
            .filter(|d| {
                d["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("google.firebase.fcm.v1.FcmError"))
            })
            .find_map(|d| d["errorCode"].as_str())
            .map(str::to_owned);
        let token_field_violation = details.iter().any(|d| {
            d["fieldViolations"].as_array().is_some_and(|violations| {
                violations
                    .iter()
                    .any(|v| v["field"].as_str() == Some("message.token"))
            })
        });
        Self {
            code,
            status: error["status"].as_str().map(str::to_owned),
            message: error["message"].as_str().map(str::to_owned),
            token_field_violation,
        }
    }

    /// `INVALID_ARGUMENT` is about the registration token (not about the message).
    fn blames_token(&self) -> bool {
        self.token_field_violation
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("registration token"))
    }
}

/// Sorts a refused send into what to do next. Only `UNREGISTERED` and an `INVALID_ARGUMENT`
/// about the token cost a device its row: anything else may be our fault or FCM's, and a
/// pruned token cannot be got back.
pub fn classify(status: StatusCode, retry_after: Option<Duration>, error: &FcmError) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Outcome::Retry(retry_after);
    }
    let invalid_argument = error.code.as_deref() == Some("INVALID_ARGUMENT")
        || error.status.as_deref() == Some("INVALID_ARGUMENT");
    match error.code.as_deref() {
        Some("UNREGISTERED") => Outcome::BadToken,
        _ if invalid_argument && error.blames_token() => Outcome::BadToken,
        // Our own credentials (after a fresh token was tried): they may be fixed or rotated.
        _ if status == StatusCode::UNAUTHORIZED
            && error.code.as_deref() != Some("THIRD_PARTY_AUTH_ERROR") =>
        {
            Outcome::Retry(retry_after)
        }
        _ => Outcome::Rejected,
    }
}

/// `Retry-After` as a delay: delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, now)
}

pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`) is RFC 2822 with the GMT zone.
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(body: Value) -> FcmError {
        FcmError::from_body(&body)
    }

    fn fcm_error(code: &str, status: &str, message: &str) -> FcmError {
        error(json!({ "error": {
            "code": 400, "message": message, "status": status,
            "details": [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code }]
        }}))
    }

    #[test]
    fn only_dead_tokens_are_bad_tokens() {
        let unregistered = fcm_error(
            "UNREGISTERED",
            "NOT_FOUND",
            "Requested entity was not found.",
        );
        assert_eq!(
            classify(StatusCode::NOT_FOUND, None, &unregistered),
            Outcome::BadToken
        );
        let bad_token = fcm_error(
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
        );
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None, &bad_token),
            Outcome::BadToken
        );
        let field = error(
            json!({ "error": { "status": "INVALID_ARGUMENT", "message": "Invalid value",
            "details": [{ "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{ "field": "message.token", "description": "Invalid registration token" }] }] }}),
        );
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None, &field),
            Outcome::BadToken
        );
        // About the message, not the token: the device keeps its row.
        let bad_message = fcm_error(
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            "Invalid value at 'message.data[0].value' (TYPE_STRING), 3",
        );
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None, &bad_message),
            Outcome::Rejected
        );
        let mismatch = fcm_error(
            "SENDER_ID_MISMATCH",
            "PERMISSION_DENIED",
            "SenderId mismatch",
        );
        assert_eq!(
            classify(StatusCode::FORBIDDEN, None, &mismatch),
            Outcome::Rejected
        );
        // A plain 404 (a wrong project, say) is not about the token.
        let not_found = error(json!({ "error": { "code": 404, "status": "NOT_FOUND" } }));
        assert_eq!(
            classify(StatusCode::NOT_FOUND, None, &not_found),
            Outcome::Rejected
        );
    }

    #[test]
    fn overload_and_server_errors_are_retried_when_asked() {
        let wait = Some(Duration::from_secs(7));
        let quota = fcm_error("QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "quota");
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, wait, &quota),
            Outcome::Retry(wait)
        );
        for status in [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert_eq!(
                classify(status, None, &FcmError::default()),
                Outcome::Retry(None)
            );
        }
        let third_party = fcm_error("THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED", "APNs");
        assert_eq!(
            classify(StatusCode::UNAUTHORIZED, None, &third_party),
            Outcome::Rejected
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        // A date in the past means now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn key_files_are_checked_without_showing_the_key() {
        let err = |text: &str| {
            format!(
                "{:#}",
                ServiceAccount::from_json(text)
                    .err()
                    .unwrap_or_else(|| anyhow!("accepted"))
            )
        };
        assert!(err("{not json").contains("not a JSON"));
        assert!(err(r#"{"type":"authorized_user"}"#).contains("service_account"));
        assert!(err(r#"{"client_email":"a@b"}"#).contains("project_id"));
        let bad_key = r#"{"project_id":"p","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"}"#;
        let message = err(bad_key);
        assert!(message.contains("private_key"), "{message}");
        assert!(!message.contains("c2VjcmV0"), "{message}");
        assert!(err(r#"{"project_id":"p/../x","client_email":"a@b"}"#).contains("project id"));
    }
}
