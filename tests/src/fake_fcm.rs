//! A loopback stand-in for Google's OAuth2 token endpoint and FCM's HTTP v1 `messages:send`,
//! speaking their wire formats so the server's real FCM client is what gets tested.
//!
//! The token endpoint takes the JWT-bearer grant and checks the assertion's RS256 signature
//! against the public half of a key pair generated when the first fake starts (once per test
//! binary: a 2048-bit key is slow to make in a debug build), plus its issuer, audience, scope
//! and lifetime. `messages:send` accepts only `Authorization: Bearer <a token it issued>`,
//! checks the message's shape, records every request, and answers each registration token with
//! the replies a test scripted for it (200 when nothing is scripted).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

pub const PROJECT_ID: &str = "photon-test";
pub const CLIENT_EMAIL: &str = "pusher@photon-test.iam.gserviceaccount.com";
const KEY_ID: &str = "test-key-1";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The service account's key pair: the private half goes into the credentials file, the
/// public half checks assertions.
struct KeyPair {
    private_pem: String,
    public: DecodingKey,
}

static KEYS: LazyLock<KeyPair> = LazyLock::new(|| {
    let started = Instant::now();
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key generation");
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("PEM encoding")
        .to_string();
    let public = key.to_public_key().to_pkcs1_der().expect("public key DER");
    eprintln!(
        "fake FCM: generated the service-account key in {} ms",
        started.elapsed().as_millis()
    );
    KeyPair {
        private_pem,
        public: DecodingKey::from_rsa_der(public.as_bytes()),
    }
});

/// How the fake answers one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the message's name.
    Ok,
    /// 404 `UNREGISTERED`: the app was uninstalled.
    Unregistered,
    /// 400 `INVALID_ARGUMENT` about `message.token`.
    InvalidToken,
    /// 400 `INVALID_ARGUMENT` about another field of the message.
    InvalidMessage,
    /// 403 `SENDER_ID_MISMATCH`: the token belongs to another Firebase project.
    SenderIdMismatch,
    /// 429 `QUOTA_EXCEEDED` with this `Retry-After`.
    TooManyRequests(String),
    /// 500 `INTERNAL`.
    ServerError,
}

/// One `messages:send` request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The registration token it was addressed to.
    pub token: String,
    /// The `message` object.
    pub message: Value,
    /// The status the fake answered with.
    pub status: u16,
    pub at: Instant,
}

impl Sent {
    pub fn body(&self) -> &str {
        self.message["notification"]["body"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn data(&self, key: &str) -> &str {
        self.message["data"][key].as_str().unwrap_or_default()
    }
}

struct Fake {
    token_uri: String,
    /// Who the token endpoint accepts as issuer.
    client_email: String,
    token_requests: AtomicUsize,
    /// Access tokens issued and not revoked.
    access_tokens: Mutex<Vec<String>>,
    sends: Mutex<Vec<Sent>>,
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    /// Added to every send, to widen race windows.
    latency: Mutex<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake, and the credentials that reach it.
pub struct FakeFcm {
    pub base_url: String,
    fake: Arc<Fake>,
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl FakeFcm {
    pub async fn start() -> Self {
        // Made now, so its cost never lands inside a test's timing.
        LazyLock::force(&KEYS);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake FCM");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        let fake = Arc::new(Fake {
            token_uri: format!("{base_url}/token"),
            client_email: CLIENT_EMAIL.to_owned(),
            token_requests: AtomicUsize::new(0),
            access_tokens: Mutex::new(Vec::new()),
            sends: Mutex::new(Vec::new()),
            scripts: Mutex::new(HashMap::new()),
            latency: Mutex::new(Duration::ZERO),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/messages:send", post(send))
            .with_state(fake.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url,
            fake,
            dir: tempfile::tempdir().expect("temp dir"),
            server,
        }
    }

    /// A service-account key file for this fake, signed-in as `client_email`.
    pub fn credentials_as(&self, client_email: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("service-account-{}.json", uuid::Uuid::new_v4()));
        let key = json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": KEY_ID,
            "private_key": KEYS.private_pem,
            "client_email": client_email,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.fake.token_uri,
        });
        std::fs::write(&path, key.to_string()).expect("write the key file");
        path
    }

    /// The server flags that send pushes here.
    pub fn args(&self) -> Vec<String> {
        vec![
            format!(
                "--fcm-credentials={}",
                self.credentials_as(CLIENT_EMAIL).display()
            ),
            format!("--fcm-endpoint={}", self.base_url),
        ]
    }

    /// The replies for the next sends to `token`, in order; then 200s again.
    pub fn script(&self, token: &str, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.fake.scripts)
            .entry(token.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Every send so far, accepted or not.
    pub fn sends(&self) -> Vec<Sent> {
        lock(&self.fake.sends).clone()
    }

    /// The sends answered with 200.
    pub fn delivered(&self) -> Vec<Sent> {
        self.sends()
            .into_iter()
            .filter(|s| s.status == 200)
            .collect()
    }

    /// The sends answered with 200 to `token`.
    pub fn delivered_to(&self, token: &str) -> Vec<Sent> {
        self.delivered()
            .into_iter()
            .filter(|s| s.token == token)
            .collect()
    }

    pub fn token_requests(&self) -> usize {
        self.fake.token_requests.load(Ordering::SeqCst)
    }

    /// Forgets every access token issued, as if they had been revoked.
    pub fn revoke_access_tokens(&self) {
        lock(&self.fake.access_tokens).clear();
    }

    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.fake.latency) = latency;
    }

    /// Waits until `done(sends so far)` holds; panics after `timeout`.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&[Sent]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.sends()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fake FCM: condition not met within {timeout:?}; sends so far: {:#?}",
                self.sends()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for FakeFcm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// `POST /token`: the OAuth2 JWT-bearer grant (RFC 7523), as Google's token endpoint does it.
async fn token(
    State(fake): State<Arc<Fake>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    fake.token_requests.fetch_add(1, Ordering::SeqCst);
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER_GRANT) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&fake.token_uri]);
    validation.set_issuer(&[&fake.client_email]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let Ok(jwt) = jsonwebtoken::decode::<Value>(assertion, &KEYS.public, &validation) else {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    };
    if jwt.header.kid.as_deref() != Some(KEY_ID) {
        return oauth_error("invalid_grant", "Invalid JWT: kid");
    }
    let claims = jwt.claims;
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes.split(' ').any(|s| s == SCOPE) {
        return oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or_default(),
        claims["exp"].as_i64().unwrap_or_default(),
    );
    let now = chrono::Utc::now().timestamp();
    if exp - iat > 3600 || (iat - now).abs() > 300 {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    let access_token = format!("ya29.fake-{}", uuid::Uuid::new_v4().simple());
    lock(&fake.access_tokens).push(access_token.clone());
    Json(json!({
        "access_token": access_token,
        "expires_in": 3599,
        "token_type": "Bearer",
    }))
    .into_response()
}

fn fcm_error(status: StatusCode, api_status: &str, message: &str, details: Value) -> Response {
    (
        status,
        Json(json!({ "error": {
            "code": status.as_u16(),
            "message": message,
            "status": api_status,
            "details": details,
        }})),
    )
        .into_response()
}

fn fcm_detail(error_code: &str) -> Value {
    json!({ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code })
}

fn field_violation(field: &str, description: &str) -> Value {
    json!({ "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{ "field": field, "description": description }] })
}

/// What is wrong with a message's shape, if anything (FCM refuses these with 400).
fn malformed(message: &Value) -> Option<&'static str> {
    if !message["token"].is_string() {
        return Some("message.token");
    }
    let notification = &message["notification"];
    if !notification["title"].is_string() || !notification["body"].is_string() {
        return Some("message.notification");
    }
    match message.get("data") {
        None => None,
        Some(Value::Object(data)) if data.values().all(Value::is_string) => None,
        Some(_) => Some("message.data"),
    }
}

/// `POST /v1/projects/{project}/messages:send`.
async fn send(
    State(fake): State<Arc<Fake>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let latency = *lock(&fake.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if project != PROJECT_ID {
        return fcm_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Requested entity was not found.",
            json!([]),
        );
    }
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| lock(&fake.access_tokens).iter().any(|t| t == token));
    if !authorized {
        return fcm_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            json!([]),
        );
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return fcm_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
            json!([]),
        );
    };
    let message = body["message"].clone();
    if let Some(field) = malformed(&message) {
        return fcm_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!("Invalid value at '{field}'"),
            json!([
                fcm_detail("INVALID_ARGUMENT"),
                field_violation(field, "Invalid value")
            ]),
        );
    }
    let token = message["token"].as_str().unwrap_or_default().to_owned();
    let reply = lock(&fake.scripts)
        .get_mut(&token)
        .and_then(VecDeque::pop_front)
        .unwrap_or(Reply::Ok);
    let response = match &reply {
        Reply::Ok => Json(json!({
            "name": format!("projects/{PROJECT_ID}/messages/{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000)
        }))
        .into_response(),
        Reply::Unregistered => fcm_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Requested entity was not found.",
            json!([fcm_detail("UNREGISTERED")]),
        ),
        Reply::InvalidToken => fcm_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            json!([fcm_detail("INVALID_ARGUMENT"), field_violation("message.token", "Invalid registration token")]),
        ),
        Reply::InvalidMessage => fcm_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)",
            json!([fcm_detail("INVALID_ARGUMENT"), field_violation("message.android.ttl", "Invalid value")]),
        ),
        Reply::SenderIdMismatch => fcm_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "SenderId mismatch",
            json!([fcm_detail("SENDER_ID_MISMATCH")]),
        ),
        Reply::TooManyRequests(retry_after) => {
            let mut response = fcm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for this device.",
                json!([fcm_detail("QUOTA_EXCEEDED")]),
            );
            if let Ok(value) = retry_after.parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Reply::ServerError => fcm_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal error encountered.",
            json!([fcm_detail("INTERNAL")]),
        ),
    };
    lock(&fake.sends).push(Sent {
        token,
        message,
        status: response.status().as_u16(),
        at: Instant::now(),
    });
    response
}
