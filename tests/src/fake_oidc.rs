//! Loopback stand-ins for Google and Apple as OpenID Connect providers, speaking their wire
//! formats so the server's real ID token checks are what gets tested.
//!
//! Each fake is its own issuer (its base URL) and publishes a real JWKS; its ID tokens are
//! really signed (Google: RS256; Apple: ES256 or RS256, as the test chooses).
//!
//! - Google: `GET /o/oauth2/v2/auth` (consents at once and redirects back with a code),
//!   `POST /token` (client id and secret, code, redirect URI and PKCE verifier checked),
//!   `GET /oauth2/v3/certs`.
//! - Apple: `GET /auth/authorize` (requires `response_mode=form_post` and answers with the
//!   auto-submitting form page of the OAuth 2.0 Form Post Response Mode, carrying the `user`
//!   field on the first consent of an account only), `POST /auth/token` (checks the client
//!   secret: an ES256 JWT signed with the team key, whose private half the fake writes to a
//!   `.p8` file for the server), `GET /auth/keys`.
//!
//! Tests script the account, which key signs, which keys are published, and what is wrong
//! with the next ID token.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const GOOGLE_CLIENT_ID: &str = "123456789012-photontest.apps.googleusercontent.com";
pub const GOOGLE_CLIENT_SECRET: &str = "GOCSPX-photon-test-secret";
pub const APPLE_CLIENT_ID: &str = "com.example.photon.signin";
pub const APPLE_TEAM_ID: &str = "PHOTONTEAM";
pub const APPLE_KEY_ID: &str = "PHOTONKEY1";

/// Which provider a fake plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Google,
    Apple,
}

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// RSA keys are slow to make in a debug build: two per test binary, shared by every fake
/// (each fake names them with kids of its own).
static RSA_KEYS: LazyLock<[rsa::RsaPrivateKey; 2]> = LazyLock::new(|| {
    let started = Instant::now();
    let make = || rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
    let keys = [make(), make()];
    eprintln!(
        "fake OIDC: generated two RSA keys in {} ms",
        started.elapsed().as_millis()
    );
    keys
});

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(index: usize, kid: &str) -> SigningKey {
    let key = &RSA_KEYS[index];
    let der = key.to_pkcs1_der().expect("PKCS#1 DER");
    SigningKey {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": b64(&key.n().to_bytes_be()),
            "e": b64(&key.e().to_bytes_be()),
        }),
    }
}

fn random_p256() -> p256::SecretKey {
    p256::SecretKey::random(&mut rand_core::OsRng)
}

fn ec_key(kid: &str) -> SigningKey {
    let key = random_p256();
    let der = key.to_pkcs8_der().expect("PKCS#8 DER");
    let point = key.public_key().to_encoded_point(false);
    SigningKey {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(der.as_bytes()),
        jwk: json!({
            "kty": "EC",
            "use": "sig",
            "alg": "ES256",
            "crv": "P-256",
            "kid": kid,
            "x": b64(point.x().expect("x")),
            "y": b64(point.y().expect("y")),
        }),
    }
}

/// The account that signs in.
#[derive(Debug, Clone)]
pub struct OidcAccount {
    pub sub: String,
    pub email: Option<String>,
    /// As the provider sends it: `true`, or Apple's `"true"`, or anything else to test.
    pub email_verified: Value,
    /// Apple's, sent as it sends it.
    pub is_private_email: Option<Value>,
    /// Google's `name` claim; Apple's first-consent `user` field.
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Google's `picture`.
    pub picture: Option<String>,
}

impl OidcAccount {
    /// An account with a verified address, as Google describes it.
    pub fn google(sub: &str, email: &str, given: &str, family: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: json!(true),
            is_private_email: None,
            given_name: Some(given.to_owned()),
            family_name: Some(family.to_owned()),
            picture: Some(format!("https://lh3.googleusercontent.com/a/{sub}=s96-c")),
        }
    }

    /// An account with a verified address, as Apple describes it (string booleans).
    pub fn apple(sub: &str, email: &str, given: &str, family: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: json!("true"),
            is_private_email: Some(json!(
                email.ends_with("@privaterelay.appleid.com").to_string()
            )),
            given_name: Some(given.to_owned()),
            family_name: Some(family.to_owned()),
            picture: None,
        }
    }
}

/// What is wrong with the next ID tokens.
#[derive(Debug, Clone, Default)]
pub struct Tamper {
    /// An `aud` other than our client id.
    pub audience: Option<String>,
    /// A `nonce` other than the one the authorize request carried (`Some("")`: none at all).
    pub nonce: Option<String>,
    /// An `iss` other than the fake's.
    pub issuer: Option<String>,
    /// Issued and expired this long ago (seconds).
    pub expired_secs_ago: Option<i64>,
    /// Signed with this key (which may be unpublished) instead of the current signer.
    pub signer: Option<SigningKey>,
    /// The token response carries no `id_token`.
    pub omit_id_token: bool,
}

struct Grant {
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
}

struct Inner {
    flavour: Flavour,
    issuer: String,
    account: Option<OidcAccount>,
    /// The keys `/certs` or `/auth/keys` publishes.
    published: Vec<SigningKey>,
    /// Published before them: JWKs of kinds a verifier may not know.
    extra_jwks: Vec<Value>,
    /// The key ID tokens are signed with.
    signer: SigningKey,
    tamper: Tamper,
    deny: bool,
    /// Apple: subs that have consented before (they get no `user` field).
    consented: HashSet<String>,
    grants: HashMap<String, Grant>,
    authorize_requests: Vec<HashMap<String, String>>,
    token_requests: usize,
    jwks_requests: usize,
    /// Apple: the team key's public half, which checks client secrets.
    team_key: Option<DecodingKey>,
    client_secrets: Vec<Value>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake OpenID provider.
pub struct FakeOidc {
    pub base_url: String,
    pub flavour: Flavour,
    inner: Shared,
    server: tokio::task::JoinHandle<()>,
    /// Apple: holds the team key file the server reads.
    key_dir: Option<tempfile::TempDir>,
}

impl FakeOidc {
    pub async fn google() -> Self {
        Self::start(Flavour::Google).await
    }

    pub async fn apple() -> Self {
        Self::start(Flavour::Apple).await
    }

    async fn start(flavour: Flavour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider");
        let addr = listener.local_addr().expect("bound");
        let base_url = format!("http://{addr}");
        let prefix = match flavour {
            Flavour::Google => "g",
            Flavour::Apple => "a",
        };
        let signer = rsa_key(0, &format!("{prefix}-rsa-1"));
        let (team_key, key_dir) = match flavour {
            Flavour::Google => (None, None),
            Flavour::Apple => {
                let team = random_p256();
                let pem = team.to_pkcs8_pem(LineEnding::LF).expect("PEM");
                let dir = tempfile::tempdir().expect("temp dir");
                std::fs::write(dir.path().join("AuthKey.p8"), pem.as_bytes()).expect("write key");
                let point = team.public_key().to_encoded_point(false);
                (Some(DecodingKey::from_ec_der(point.as_bytes())), Some(dir))
            }
        };
        let inner: Shared = Arc::new(Mutex::new(Inner {
            flavour,
            issuer: base_url.clone(),
            account: None,
            published: vec![signer.clone()],
            extra_jwks: Vec::new(),
            signer,
            tamper: Tamper::default(),
            deny: false,
            consented: HashSet::new(),
            grants: HashMap::new(),
            authorize_requests: Vec::new(),
            token_requests: 0,
            jwks_requests: 0,
            team_key,
            client_secrets: Vec::new(),
        }));
        let app = match flavour {
            Flavour::Google => Router::new()
                .route("/o/oauth2/v2/auth", get(google_authorize))
                .route("/token", post(token))
                .route("/oauth2/v3/certs", get(jwks)),
            Flavour::Apple => Router::new()
                .route("/auth/authorize", get(apple_authorize))
                .route("/auth/token", post(token))
                .route("/auth/keys", get(jwks)),
        }
        .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url,
            flavour,
            inner,
            server,
            key_dir,
        }
    }

    /// The path of the team key the server reads (Apple).
    pub fn key_path(&self) -> Option<PathBuf> {
        self.key_dir
            .as_ref()
            .map(|dir| dir.path().join("AuthKey.p8"))
    }

    /// The server flags that enable this provider against this fake.
    pub fn args(&self) -> Vec<String> {
        let base = &self.base_url;
        match self.flavour {
            Flavour::Google => vec![
                format!("--google-client-id={GOOGLE_CLIENT_ID}"),
                format!("--google-client-secret={GOOGLE_CLIENT_SECRET}"),
                format!("--google-issuer-url={base}"),
                format!("--google-authorize-url={base}/o/oauth2/v2/auth"),
                format!("--google-token-url={base}/token"),
                format!("--google-jwks-url={base}/oauth2/v3/certs"),
            ],
            Flavour::Apple => vec![
                format!("--apple-client-id={APPLE_CLIENT_ID}"),
                format!("--apple-team-id={APPLE_TEAM_ID}"),
                format!("--apple-key-id={APPLE_KEY_ID}"),
                format!(
                    "--apple-private-key={}",
                    self.key_path().expect("an Apple fake has a key").display()
                ),
                format!("--apple-base-url={base}"),
            ],
        }
    }

    pub fn set_account(&self, account: OidcAccount) {
        lock(&self.inner).account = Some(account);
    }

    pub fn set_tamper(&self, tamper: Tamper) {
        lock(&self.inner).tamper = tamper;
    }

    /// The person cancels at the consent screen.
    pub fn deny_consent(&self) {
        lock(&self.inner).deny = true;
    }

    /// Apple: the account consents afresh (its next sign-in carries the `user` field again),
    /// or (`false`) counts as having consented before (no `user` field).
    pub fn set_first_consent(&self, sub: &str, first: bool) {
        let mut inner = lock(&self.inner);
        if first {
            inner.consented.remove(sub);
        } else {
            inner.consented.insert(sub.to_owned());
        }
    }

    /// A new key of this fake's (RSA `rsa_index` 0 or 1, or a fresh P-256 key), not yet
    /// published.
    pub fn new_key(&self, kid: &str, alg: Algorithm) -> SigningKey {
        match alg {
            Algorithm::ES256 => ec_key(kid),
            Algorithm::RS256 => rsa_key(1, kid),
            other => panic!("the fake does not sign with {other:?}"),
        }
    }

    /// Key rotation: `key` is published (beside the old ones unless `replace`) and signs
    /// from now on.
    pub fn rotate_to(&self, key: SigningKey, replace: bool) {
        let mut inner = lock(&self.inner);
        if replace {
            inner.published.clear();
        }
        inner.published.push(key.clone());
        inner.signer = key;
    }

    /// A shared-secret "key" under a published `kid`: what an attacker who read the public
    /// JWKS might sign with, hoping the verifier takes the public key as an HMAC secret.
    pub fn hmac_key(&self, kid: &str) -> SigningKey {
        let published = lock(&self.inner)
            .published
            .iter()
            .find(|key| key.kid == kid)
            .map(|key| key.jwk.to_string())
            .expect("a published kid");
        SigningKey {
            kid: kid.to_owned(),
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(published.as_bytes()),
            jwk: Value::Null,
        }
    }

    /// A key of another alg under a published `kid` (an EC key where the JWK is RSA).
    pub fn mismatched_key(&self, kid: &str) -> SigningKey {
        let mut key = ec_key(kid);
        key.jwk = Value::Null;
        key
    }

    /// Publishes `jwk` as well (first in the set), as it is.
    pub fn publish_raw(&self, jwk: Value) {
        lock(&self.inner).extra_jwks.push(jwk);
    }

    /// The key that signs now.
    pub fn signer(&self) -> SigningKey {
        lock(&self.inner).signer.clone()
    }

    pub fn last_authorize(&self) -> HashMap<String, String> {
        lock(&self.inner)
            .authorize_requests
            .last()
            .cloned()
            .unwrap_or_default()
    }

    pub fn token_requests(&self) -> usize {
        lock(&self.inner).token_requests
    }

    pub fn jwks_requests(&self) -> usize {
        lock(&self.inner).jwks_requests
    }

    /// The claims of the client secrets Apple's token endpoint accepted.
    pub fn client_secrets(&self) -> Vec<Value> {
        lock(&self.inner).client_secrets.clone()
    }
}

impl Drop for FakeOidc {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Checks what every authorize request needs and records a grant: the code, redirect URI
/// and state; `None` for a bad request (which a real provider shows an error page for
/// rather than redirect).
fn authorize(
    inner: &mut Inner,
    query: &HashMap<String, String>,
    client_id: &str,
    scopes: &[&str],
) -> Option<(String, String, String)> {
    inner.authorize_requests.push(query.clone());
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    let requested: Vec<&str> = param("scope").split(' ').collect();
    let pkce_ok = param("code_challenge_method") == "S256" && param("code_challenge").len() == 43;
    let well_formed = param("client_id") == client_id
        && param("response_type") == "code"
        && !param("state").is_empty()
        && !param("nonce").is_empty()
        && pkce_ok
        && scopes.iter().all(|s| requested.contains(s))
        && !param("redirect_uri").is_empty();
    if !well_formed {
        return None;
    }
    let code = format!("c.{}", uuid::Uuid::new_v4().simple());
    inner.grants.insert(
        code.clone(),
        Grant {
            redirect_uri: param("redirect_uri").to_owned(),
            code_challenge: Some(param("code_challenge").to_owned()),
            nonce: Some(param("nonce").to_owned()),
        },
    );
    Some((
        code,
        param("redirect_uri").to_owned(),
        param("state").to_owned(),
    ))
}

async fn google_authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = lock(&shared);
    let (code, redirect_uri, state) =
        match authorize(&mut inner, &query, GOOGLE_CLIENT_ID, &["openid", "email"]) {
            Some(granted) => granted,
            None => return (StatusCode::BAD_REQUEST, "invalid_request").into_response(),
        };
    let mut url = url::Url::parse(&redirect_uri).expect("redirect_uri is a URL");
    if inner.deny {
        inner.grants.remove(&code);
        url.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair("state", &state);
    } else {
        url.query_pairs_mut()
            .append_pair("state", &state)
            .append_pair("code", &code)
            .append_pair("scope", "email profile openid")
            .append_pair("authuser", "0")
            .append_pair("prompt", "consent");
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

/// The page of the Form Post Response Mode: the browser posts `fields` to `action` at once.
pub fn form_post_page(action: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\"/>\n",
                html_escape(name),
                html_escape(value)
            )
        })
        .collect();
    format!(
        "<html><head><title>Submit This Form</title></head>\n\
         <body onload=\"javascript:document.forms[0].submit()\">\n\
         <form method=\"post\" action=\"{}\">\n{inputs}</form>\n</body></html>\n",
        html_escape(action)
    )
}

async fn apple_authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = lock(&shared);
    // Apple refuses name or e-mail scopes without form_post.
    if query.get("response_mode").map(String::as_str) != Some("form_post") {
        inner.authorize_requests.push(query.clone());
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let (code, redirect_uri, state) =
        match authorize(&mut inner, &query, APPLE_CLIENT_ID, &["name", "email"]) {
            Some(granted) => granted,
            None => return (StatusCode::BAD_REQUEST, "invalid_request").into_response(),
        };
    if inner.deny {
        inner.grants.remove(&code);
        let page = form_post_page(
            &redirect_uri,
            &[("error", "user_cancelled_authorize"), ("state", &state)],
        );
        return Html(page).into_response();
    }
    let account = inner.account.clone();
    let user = account.as_ref().and_then(|account| {
        // The name and e-mail come once, on the first consent.
        if !inner.consented.insert(account.sub.clone()) {
            return None;
        }
        Some(
            json!({
                "name": { "firstName": account.given_name, "lastName": account.family_name },
                "email": account.email,
            })
            .to_string(),
        )
    });
    let mut fields = vec![("state", state.as_str()), ("code", code.as_str())];
    if let Some(user) = &user {
        fields.push(("user", user));
    }
    Html(form_post_page(&redirect_uri, &fields)).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// Apple's client secret check: ES256 with the team key, and the claims Apple documents.
fn apple_client_ok(inner: &mut Inner, secret: &str) -> bool {
    let Some(key) = &inner.team_key else {
        return false;
    };
    let Ok(header) = jsonwebtoken::decode_header(secret) else {
        return false;
    };
    if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(APPLE_KEY_ID) {
        return false;
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[APPLE_TEAM_ID]);
    validation.set_audience(&[inner.issuer.as_str()]);
    validation.sub = Some(APPLE_CLIENT_ID.to_owned());
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let Ok(data) = jsonwebtoken::decode::<Value>(secret, key, &validation) else {
        return false;
    };
    let (Some(iat), Some(exp)) = (data.claims["iat"].as_i64(), data.claims["exp"].as_i64()) else {
        return false;
    };
    // Apple allows six months at most.
    if exp - iat > 15_777_000 {
        return false;
    }
    inner.client_secrets.push(data.claims);
    true
}

async fn token(
    State(shared): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = lock(&shared);
    inner.token_requests += 1;
    let param = |name: &str| form.get(name).cloned().unwrap_or_default();
    let client_ok = match inner.flavour {
        Flavour::Google => {
            param("client_id") == GOOGLE_CLIENT_ID && param("client_secret") == GOOGLE_CLIENT_SECRET
        }
        Flavour::Apple => {
            param("client_id") == APPLE_CLIENT_ID
                && apple_client_ok(&mut inner, &param("client_secret"))
        }
    };
    if !client_ok {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(grant) = inner.grants.remove(&param("code")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier_ok = grant.code_challenge.as_ref().is_none_or(|challenge| {
        URL_SAFE_NO_PAD.encode(Sha256::digest(param("code_verifier"))) == *challenge
    });
    if param("grant_type") != "authorization_code"
        || param("redirect_uri") != grant.redirect_uri
        || !verifier_ok
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let Some(account) = inner.account.clone() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let access_token = format!("ya29.{}", uuid::Uuid::new_v4().simple());
    let id_token = id_token(&inner, &account, grant.nonce.as_deref(), &access_token);
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3599,
    });
    let object = body.as_object_mut().expect("an object");
    match inner.flavour {
        Flavour::Google => {
            object.insert(
                "scope".to_owned(),
                json!("openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile"),
            );
        }
        Flavour::Apple => {
            object.insert(
                "refresh_token".to_owned(),
                json!(format!("r.{}", uuid::Uuid::new_v4().simple())),
            );
        }
    }
    if !inner.tamper.omit_id_token {
        object.insert("id_token".to_owned(), json!(id_token));
    }
    Json(body).into_response()
}

/// An ID token for `account` as the provider makes it, with any tampering scripted.
fn id_token(
    inner: &Inner,
    account: &OidcAccount,
    nonce: Option<&str>,
    access_token: &str,
) -> String {
    let tamper = &inner.tamper;
    let now = chrono::Utc::now().timestamp();
    let (iat, exp) = match tamper.expired_secs_ago {
        Some(ago) => (now - ago - 3600, now - ago),
        None => (now, now + 3600),
    };
    let client_id = match inner.flavour {
        Flavour::Google => GOOGLE_CLIENT_ID,
        Flavour::Apple => APPLE_CLIENT_ID,
    };
    // The left half of the access token's SHA-256, as OpenID Connect defines `at_hash`.
    let digest = Sha256::digest(access_token.as_bytes());
    let at_hash = b64(&digest[..16]);
    let mut claims = json!({
        "iss": tamper.issuer.clone().unwrap_or_else(|| inner.issuer.clone()),
        "aud": tamper.audience.clone().unwrap_or_else(|| client_id.to_owned()),
        "sub": account.sub,
        "iat": iat,
        "exp": exp,
        "at_hash": at_hash,
        "email_verified": account.email_verified,
    });
    let object = claims.as_object_mut().expect("an object");
    if let Some(email) = &account.email {
        object.insert("email".to_owned(), json!(email));
    }
    let nonce = match &tamper.nonce {
        Some(nonce) if nonce.is_empty() => None,
        Some(nonce) => Some(nonce.as_str()),
        None => nonce,
    };
    if let Some(nonce) = nonce {
        object.insert("nonce".to_owned(), json!(nonce));
    }
    match inner.flavour {
        Flavour::Google => {
            object.insert("azp".to_owned(), json!(client_id));
            let name = [
                account.given_name.as_deref(),
                account.family_name.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
            if !name.is_empty() {
                object.insert("name".to_owned(), json!(name));
            }
            object.insert("given_name".to_owned(), json!(account.given_name));
            object.insert("family_name".to_owned(), json!(account.family_name));
            if let Some(picture) = &account.picture {
                object.insert("picture".to_owned(), json!(picture));
            }
        }
        Flavour::Apple => {
            object.insert("auth_time".to_owned(), json!(iat));
            object.insert("nonce_supported".to_owned(), json!(true));
            if let Some(private) = &account.is_private_email {
                object.insert("is_private_email".to_owned(), private.clone());
            }
        }
    }
    let signer = tamper.signer.as_ref().unwrap_or(&inner.signer);
    let mut header = Header::new(signer.alg);
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, &claims, &signer.encoding).expect("sign an ID token")
}

async fn jwks(State(shared): State<Shared>) -> Response {
    let mut inner = lock(&shared);
    inner.jwks_requests += 1;
    let keys: Vec<Value> = inner
        .extra_jwks
        .iter()
        .cloned()
        .chain(inner.published.iter().map(|key| key.jwk.clone()))
        .collect();
    (
        [(
            header::CACHE_CONTROL,
            "public, max-age=21600, must-revalidate",
        )],
        Json(json!({ "keys": keys })),
    )
        .into_response()
}

/// A form an auto-submitting page would post: where, and what.
#[derive(Debug, Clone)]
pub struct FormPost {
    pub action: url::Url,
    pub fields: Vec<(String, String)>,
}

impl FormPost {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The same form with `name` set to `value` (or removed, with `None`).
    pub fn with(&self, name: &str, value: Option<&str>) -> Self {
        let mut fields: Vec<(String, String)> = self
            .fields
            .iter()
            .filter(|(k, _)| k != name)
            .cloned()
            .collect();
        if let Some(value) = value {
            fields.push((name.to_owned(), value.to_owned()));
        }
        Self {
            action: self.action.clone(),
            fields,
        }
    }
}

fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The auto-submitting form on a Form Post Response Mode page, if `body` is one.
pub fn parse_form_post(base: &url::Url, body: &str) -> Option<FormPost> {
    if !body.contains("document.forms[0].submit()") {
        return None;
    }
    let after = body.split("<form method=\"post\" action=\"").nth(1)?;
    let action = html_unescape(after.split('"').next()?);
    let fields = after
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|input| {
            let (name, rest) = input.split_once("\" value=\"")?;
            let value = rest.split('"').next()?;
            Some((html_unescape(name), html_unescape(value)))
        })
        .collect();
    Some(FormPost {
        action: base.join(&action).ok()?,
        fields,
    })
}
