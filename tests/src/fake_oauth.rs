//! Loopback stand-ins for GitHub and Discord as OAuth2 providers, speaking their wire formats
//! so the server's real provider code is what gets tested, plus [`Browser`], which follows
//! redirects (and auto-submitting form posts, as Apple's callback is) the way the app's
//! in-app browser does.
//!
//! One fake serves both providers' paths (they do not overlap):
//!
//! - GitHub: `GET /login/oauth/authorize`, `POST /login/oauth/access_token` (form body; JSON
//!   only with `Accept: application/json`, and errors as `200 OK` with an `error` object, as
//!   GitHub does), `GET /user`, `GET /user/emails` (a `User-Agent` is required).
//! - Discord: `GET /oauth2/authorize`, `POST /api/oauth2/token` (form body, client
//!   credentials in the body or Basic auth, errors as `400`), `GET /api/users/@me`.
//!
//! The authorize pages consent at once (or decline, when scripted) and send the browser back
//! with a code. The token endpoints check the client's credentials, that the code is theirs,
//! unused and for the same redirect URI, and that `code_verifier` matches the S256 challenge
//! the authorize page saw. The account behind each provider and the faults to inject are set
//! per test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const GITHUB_CLIENT_ID: &str = "Iv1.photon-test-github";
pub const GITHUB_CLIENT_SECRET: &str = "github-test-secret-0123456789abcdef";
pub const DISCORD_CLIENT_ID: &str = "1234567890123456789";
pub const DISCORD_CLIENT_SECRET: &str = "discord-test-secret-0123456789";

/// One of GitHub's `/user/emails` entries.
#[derive(Debug, Clone)]
pub struct GitHubEmail {
    pub email: String,
    pub primary: bool,
    pub verified: bool,
}

/// The GitHub account that signs in.
#[derive(Debug, Clone)]
pub struct GitHubAccount {
    pub id: u64,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub emails: Vec<GitHubEmail>,
}

impl GitHubAccount {
    /// An account with one verified, primary address.
    pub fn new(id: u64, login: &str, name: Option<&str>, email: &str) -> Self {
        Self {
            id,
            login: login.to_owned(),
            name: name.map(str::to_owned),
            avatar_url: Some(format!("https://avatars.githubusercontent.com/u/{id}?v=4")),
            emails: vec![GitHubEmail {
                email: email.to_owned(),
                primary: true,
                verified: true,
            }],
        }
    }
}

/// The Discord account that signs in.
#[derive(Debug, Clone)]
pub struct DiscordAccount {
    pub id: String,
    pub username: String,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
    pub email: Option<String>,
    pub verified: Option<bool>,
}

impl DiscordAccount {
    /// An account with a verified address.
    pub fn new(id: &str, username: &str, global_name: Option<&str>, email: &str) -> Self {
        Self {
            id: id.to_owned(),
            username: username.to_owned(),
            global_name: global_name.map(str::to_owned),
            avatar: Some("8342729096ea3675442027381ff50dfe".to_owned()),
            email: Some(email.to_owned()),
            verified: Some(true),
        }
    }
}

/// What goes wrong, for both providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// The person clicks "Cancel" on the consent page.
    DenyConsent,
    /// The token endpoint refuses the code the way each provider does (GitHub: `200` with
    /// `bad_verification_code`; Discord: `400 invalid_grant`).
    RejectCode,
    /// The token endpoint answers 500 with an HTML page.
    TokenServerError,
    /// The token endpoint answers 200 with JSON that is cut short.
    TokenMalformed,
    /// The profile endpoint (`/user`, `/api/users/@me`) answers 500.
    ProfileServerError,
    /// The profile endpoint answers 200 with JSON of the wrong shape.
    ProfileMalformed,
    /// GitHub's `/user/emails` answers 500.
    EmailsServerError,
}

/// An authorization code the fake has issued and not yet seen redeemed.
struct Grant {
    provider: &'static str,
    redirect_uri: String,
    code_challenge: String,
}

#[derive(Default)]
struct Inner {
    github: Option<GitHubAccount>,
    discord: Option<DiscordAccount>,
    fault: Fault,
    grants: HashMap<String, Grant>,
    /// Access token → provider.
    tokens: HashMap<String, &'static str>,
    /// The query strings the authorize pages received, in order.
    authorize_requests: Vec<HashMap<String, String>>,
    /// How many requests reached the token endpoints.
    token_requests: usize,
    next: u64,
}

impl Inner {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}x{}", self.next, uuid::Uuid::new_v4().simple())
    }
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake provider.
pub struct FakeOAuth {
    pub base_url: String,
    inner: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl FakeOAuth {
    pub async fn start() -> Self {
        let inner: Shared = Arc::default();
        let app = Router::new()
            .route("/login/oauth/authorize", get(github_authorize))
            .route("/login/oauth/access_token", post(github_token))
            .route("/user", get(github_user))
            .route("/user/emails", get(github_emails))
            .route("/oauth2/authorize", get(discord_authorize))
            .route("/api/oauth2/token", post(discord_token))
            .route("/api/users/@me", get(discord_me))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider");
        let addr = listener.local_addr().expect("bound");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://{addr}"),
            inner,
            server,
        }
    }

    /// The server flags that enable both providers against this fake.
    pub fn args(&self) -> Vec<String> {
        let mut args = self.github_args();
        args.extend(self.discord_args());
        args
    }

    /// The server flags that enable GitHub against this fake.
    pub fn github_args(&self) -> Vec<String> {
        vec![
            format!("--github-client-id={GITHUB_CLIENT_ID}"),
            format!("--github-client-secret={GITHUB_CLIENT_SECRET}"),
            format!("--github-base-url={}", self.base_url),
            format!("--github-api-url={}", self.base_url),
        ]
    }

    /// The server flags that enable Discord against this fake.
    pub fn discord_args(&self) -> Vec<String> {
        vec![
            format!("--discord-client-id={DISCORD_CLIENT_ID}"),
            format!("--discord-client-secret={DISCORD_CLIENT_SECRET}"),
            format!("--discord-base-url={}", self.base_url),
        ]
    }

    pub fn set_github(&self, account: GitHubAccount) {
        lock(&self.inner).github = Some(account);
    }

    pub fn set_discord(&self, account: DiscordAccount) {
        lock(&self.inner).discord = Some(account);
    }

    pub fn set_fault(&self, fault: Fault) {
        lock(&self.inner).fault = fault;
    }

    /// The query of the last authorize request.
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
}

impl Drop for FakeOAuth {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A redirect to `redirect_uri` with `params` added, as a provider sends the browser back.
fn back_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut url = url::Url::parse(redirect_uri).expect("redirect_uri is a URL");
    for (key, value) in params {
        url.query_pairs_mut().append_pair(key, value);
    }
    // Both providers answer the consent form with a 302.
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

/// The authorize page: checks the request a real provider would reject, then consents.
fn authorize(
    shared: &Shared,
    provider: &'static str,
    client_id: &str,
    scopes: &[&str],
    query: HashMap<String, String>,
) -> Response {
    let mut inner = lock(shared);
    inner.authorize_requests.push(query.clone());
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    let requested: Vec<&str> = param("scope").split(' ').collect();
    let well_formed = param("client_id") == client_id
        && param("response_type") == "code"
        && !param("state").is_empty()
        && param("code_challenge_method") == "S256"
        && param("code_challenge").len() == 43
        && scopes.iter().all(|s| requested.contains(s))
        && !param("redirect_uri").is_empty();
    if !well_formed {
        // Real providers show an error page here rather than redirect.
        return (StatusCode::BAD_REQUEST, "bad authorize request").into_response();
    }
    let redirect_uri = param("redirect_uri").to_owned();
    let state = param("state").to_owned();
    if inner.fault == Fault::DenyConsent {
        return back_to(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "The user has denied your application access.",
                ),
                ("state", &state),
            ],
        );
    }
    let code = inner.fresh("code");
    let code_challenge = param("code_challenge").to_owned();
    inner.grants.insert(
        code.clone(),
        Grant {
            provider,
            redirect_uri: redirect_uri.clone(),
            code_challenge,
        },
    );
    back_to(&redirect_uri, &[("code", &code), ("state", &state)])
}

async fn github_authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    authorize(
        &shared,
        "github",
        GITHUB_CLIENT_ID,
        &["read:user", "user:email"],
        query,
    )
}

async fn discord_authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    authorize(
        &shared,
        "discord",
        DISCORD_CLIENT_ID,
        &["identify", "email"],
        query,
    )
}

/// Why a token request fails, in OAuth terms.
enum TokenError {
    InvalidClient,
    InvalidGrant,
}

/// Redeems a code: the client's credentials (body or Basic auth), the code (once), its
/// redirect URI and the PKCE verifier must all check out.
fn redeem(
    shared: &Shared,
    provider: &'static str,
    credentials: (&str, &str),
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, TokenError> {
    let param = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let client_ok = param("client_id") == credentials.0 && param("client_secret") == credentials.1
        || basic.as_deref() == Some(&format!("{}:{}", credentials.0, credentials.1));
    if !client_ok {
        return Err(TokenError::InvalidClient);
    }
    let mut inner = lock(shared);
    // A code is gone once presented, whether or not the rest checks out.
    let grant = inner
        .grants
        .remove(param("code"))
        .ok_or(TokenError::InvalidGrant)?;
    let verifier_ok =
        URL_SAFE_NO_PAD.encode(Sha256::digest(param("code_verifier"))) == grant.code_challenge;
    if grant.provider != provider
        || param("grant_type") != "authorization_code"
        || param("redirect_uri") != grant.redirect_uri
        || !verifier_ok
    {
        return Err(TokenError::InvalidGrant);
    }
    let token = inner.fresh(if provider == "github" { "gho_" } else { "dc_" });
    inner.tokens.insert(token.clone(), provider);
    Ok(token)
}

/// The faults every token endpoint shares; `None` when the request is to be served.
fn token_fault(shared: &Shared) -> Option<Response> {
    let mut inner = lock(shared);
    inner.token_requests += 1;
    match inner.fault {
        Fault::TokenServerError => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>Unicorn!</body></html>",
            )
                .into_response(),
        ),
        Fault::TokenMalformed => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"access_token": "gho_"#,
            )
                .into_response(),
        ),
        _ => None,
    }
}

async fn github_token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(response) = token_fault(&shared) {
        return response;
    }
    let rejected = lock(&shared).fault == Fault::RejectCode;
    let result = if rejected {
        Err(TokenError::InvalidGrant)
    } else {
        redeem(
            &shared,
            "github",
            (GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET),
            &headers,
            &form,
        )
    };
    let body = match result {
        Ok(token) => json!({
            "access_token": token,
            "token_type": "bearer",
            "scope": "read:user,user:email",
        }),
        // GitHub reports these with 200 OK.
        Err(TokenError::InvalidGrant) => json!({
            "error": "bad_verification_code",
            "error_description": "The code passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
        }),
        Err(TokenError::InvalidClient) => json!({
            "error": "incorrect_client_credentials",
            "error_description": "The client_id and/or client_secret passed are incorrect.",
        }),
    };
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        Json(body).into_response()
    } else {
        // Without the Accept header GitHub answers form-encoded, which no JSON client reads.
        let pairs: Vec<(String, String)> = body
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let text = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            text,
        )
            .into_response()
    }
}

async fn discord_token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(response) = token_fault(&shared) {
        return response;
    }
    let rejected = lock(&shared).fault == Fault::RejectCode;
    let result = if rejected {
        Err(TokenError::InvalidGrant)
    } else {
        redeem(
            &shared,
            "discord",
            (DISCORD_CLIENT_ID, DISCORD_CLIENT_SECRET),
            &headers,
            &form,
        )
    };
    match result {
        Ok(token) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 604800,
            "refresh_token": "D43f5y0ahjqew82jZ4NViEr2YafMKhue",
            "scope": "identify email",
        }))
        .into_response(),
        Err(TokenError::InvalidGrant) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant", "error_description": "Invalid \"code\" in request." })),
        )
            .into_response(),
        Err(TokenError::InvalidClient) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response(),
    }
}

/// The provider an API request's bearer token was issued by, if any.
fn bearer(shared: &Shared, headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("token "))?;
    lock(shared).tokens.get(token).copied()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "message": "Requires authentication" })),
    )
        .into_response()
}

fn server_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body>Something went wrong</body></html>",
    )
        .into_response()
}

/// GitHub's refusal of an API request, if it has one: it wants a `User-Agent` and one of
/// its tokens.
fn github_api_refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    if !headers.contains_key(header::USER_AGENT) {
        return Some(
            (
                StatusCode::FORBIDDEN,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            )
                .into_response(),
        );
    }
    if bearer(shared, headers) != Some("github") {
        return Some(unauthorized());
    }
    None
}

async fn github_user(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = github_api_refusal(&shared, &headers) {
        return response;
    }
    let inner = lock(&shared);
    match inner.fault {
        Fault::ProfileServerError => return server_error(),
        Fault::ProfileMalformed => {
            return Json(json!({ "id": "octocat", "login": 7 })).into_response();
        }
        _ => {}
    }
    let Some(account) = inner.github.clone() else {
        return unauthorized();
    };
    Json(json!({
        "login": account.login,
        "id": account.id,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": account.avatar_url,
        "gravatar_id": "",
        "url": format!("https://api.github.com/users/{}", account.login),
        "html_url": format!("https://github.com/{}", account.login),
        "type": "User",
        "site_admin": false,
        "name": account.name,
        "company": null,
        "blog": "",
        "location": null,
        "email": null,
        "hireable": null,
        "bio": null,
        "public_repos": 2,
        "followers": 20,
        "following": 0,
        "created_at": "2008-01-14T04:33:35Z",
        "updated_at": "2008-01-14T04:33:35Z",
    }))
    .into_response()
}

async fn github_emails(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = github_api_refusal(&shared, &headers) {
        return response;
    }
    let inner = lock(&shared);
    if inner.fault == Fault::EmailsServerError {
        return server_error();
    }
    let Some(account) = inner.github.clone() else {
        return unauthorized();
    };
    let emails: Vec<Value> = account
        .emails
        .iter()
        .map(|e| {
            json!({
                "email": e.email,
                "primary": e.primary,
                "verified": e.verified,
                "visibility": if e.primary { Value::from("private") } else { Value::Null },
            })
        })
        .collect();
    Json(Value::Array(emails)).into_response()
}

async fn discord_me(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if bearer(&shared, &headers) != Some("discord") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "401: Unauthorized", "code": 0 })),
        )
            .into_response();
    }
    let inner = lock(&shared);
    match inner.fault {
        Fault::ProfileServerError => return server_error(),
        Fault::ProfileMalformed => return Json(json!(["not", "a", "user"])).into_response(),
        _ => {}
    }
    let Some(account) = inner.discord.clone() else {
        return unauthorized();
    };
    let mut user = json!({
        "id": account.id,
        "username": account.username,
        "discriminator": "0",
        "global_name": account.global_name,
        "avatar": account.avatar,
        "bot": false,
        "mfa_enabled": true,
        "banner": null,
        "accent_color": null,
        "locale": "en-US",
        "flags": 64,
        "premium_type": 0,
        "public_flags": 64,
    });
    // `email` and `verified` are only there with the `email` scope; a null e-mail is what
    // accounts registered by phone have.
    if let Some(object) = user.as_object_mut() {
        object.insert("email".to_owned(), json!(account.email));
        if let Some(verified) = account.verified {
            object.insert("verified".to_owned(), json!(verified));
        }
    }
    Json(user).into_response()
}

/// Where a browser stopped.
#[derive(Debug)]
pub enum Landing {
    /// Sent to a URI outside the web (the app's deep link): the browser hands it over.
    App(url::Url),
    /// A page that is not a redirect: its status and body.
    Page {
        status: reqwest::StatusCode,
        body: String,
    },
}

impl Landing {
    /// The app URI's query, or a panic naming the page that was reached instead.
    pub fn app_query(&self) -> HashMap<String, String> {
        match self {
            Self::App(url) => url.query_pairs().into_owned().collect(),
            Self::Page { status, body } => {
                panic!("expected a redirect to the app, got {status}: {body}")
            }
        }
    }

    /// The app URI itself.
    pub fn app_url(&self) -> &url::Url {
        match self {
            Self::App(url) => url,
            Self::Page { status, body } => {
                panic!("expected a redirect to the app, got {status}: {body}")
            }
        }
    }
}

/// One hop of a browser: the next URL for a redirect, or where it stopped.
pub enum Hop {
    Next(url::Url),
    Stop(Landing),
}

/// Follows redirects like the app's in-app browser: HTTP(S) locations are fetched, anything
/// else is the app's deep link and ends the trip.
pub struct Browser {
    client: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("browser client"),
        }
    }

    /// Fetches one URL.
    pub async fn hop(&self, url: &url::Url) -> Hop {
        if !matches!(url.scheme(), "http" | "https") {
            return Hop::Stop(Landing::App(url.clone()));
        }
        let request = self.client.get(url.clone());
        self.send(url, request).await
    }

    /// Submits a form, as a page's script would.
    pub async fn submit(&self, form: &crate::fake_oidc::FormPost) -> Hop {
        let request = self.client.post(form.action.clone()).form(&form.fields);
        self.send(&form.action, request).await
    }

    async fn send(&self, url: &url::Url, request: reqwest::RequestBuilder) -> Hop {
        let response = request.send().await.expect("browser request");
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("a redirect has a Location");
            return Hop::Next(url.join(location).expect("a valid Location"));
        }
        let body = response.text().await.unwrap_or_default();
        Hop::Stop(Landing::Page { status, body })
    }

    /// Follows redirects (and submits auto-submitting forms) from `start` until the app's
    /// deep link or a page.
    pub async fn visit(&self, start: &str) -> Landing {
        let mut url = url::Url::parse(start).expect("a start URL");
        let mut hop = self.hop(&url).await;
        for _ in 0..10 {
            match hop {
                Hop::Next(next) => {
                    hop = self.hop(&next).await;
                    url = next;
                }
                Hop::Stop(Landing::Page { status, body }) => {
                    match crate::fake_oidc::parse_form_post(&url, &body) {
                        Some(form) if status.is_success() => {
                            url = form.action.clone();
                            hop = self.submit(&form).await;
                        }
                        _ => return Landing::Page { status, body },
                    }
                }
                Hop::Stop(landing) => return landing,
            }
        }
        panic!("more than 10 redirects from {start}");
    }

    /// Follows redirects from `start` until a page with an auto-submitting form, and returns
    /// the form without submitting it (to tamper with or replay Apple's callback).
    pub async fn visit_until_form(&self, start: &str) -> crate::fake_oidc::FormPost {
        let mut url = url::Url::parse(start).expect("a start URL");
        for _ in 0..10 {
            match self.hop(&url).await {
                Hop::Next(next) => url = next,
                Hop::Stop(Landing::Page { body, .. }) => {
                    return crate::fake_oidc::parse_form_post(&url, &body)
                        .unwrap_or_else(|| panic!("not a form post page: {body}"));
                }
                Hop::Stop(landing) => panic!("stopped before a form: {landing:?}"),
            }
        }
        panic!("more than 10 redirects from {start}");
    }

    /// Follows redirects from `start` until the next URL's path starts with `path_prefix`,
    /// and returns that URL without fetching it (to tamper with or replay a callback).
    pub async fn visit_until(&self, start: &str, path_prefix: &str) -> url::Url {
        let mut url = url::Url::parse(start).expect("a start URL");
        for _ in 0..10 {
            match self.hop(&url).await {
                Hop::Next(next) if next.path().starts_with(path_prefix) => return next,
                Hop::Next(next) => url = next,
                Hop::Stop(landing) => panic!("stopped before {path_prefix}: {landing:?}"),
            }
        }
        panic!("more than 10 redirects from {start}");
    }
}

/// An app's PKCE pair: a random verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}
