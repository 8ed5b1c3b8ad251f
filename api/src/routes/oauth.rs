//! The routes the in-app browser visits: `GET /auth/{provider}/start` and
//! `GET /auth/{provider}/callback` (Apple's: `POST`, a form, as `response_mode=form_post`
//! sends it).
//!
//! The browser is only ever sent to an app URI that is on the allow-list and came from our
//! own storage. A request without a trusted destination (a start with a bad `redirect_uri`, a
//! callback with an unknown state) gets a JSON error page and goes nowhere.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::header::{CACHE_CONTROL, LOCATION, REFERRER_POLICY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use oauth2::basic::BasicErrorResponse;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RequestTokenError, Scope,
    TokenResponse,
};
use serde::Deserialize;
use url::Url;

use crate::auth::oauth::id_token::{self, Expected};
use crate::auth::oauth::providers::{self, Profile, ProfileError, Provider};
use crate::auth::oauth::{OAuth, OidcTokenResponse, apple};
use crate::clock;
use crate::deps::Deps;
use crate::error::{ApiError, ErrorCode};
use crate::graphql::http::plain_error;
use crate::service::oauth_sign_in::{self as flow, NewState};

/// Why a sign-in failed, as the app reads it from `redirect_uri?error=…`. Stable: the app
/// matches on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The person declined at the provider's consent screen.
    AccessDenied,
    /// The provider came back without a code.
    InvalidRequest,
    /// The sign-in expired, or the callback was for another provider.
    InvalidState,
    /// The provider refused the code, failed, timed out or answered garbage (an ID token
    /// that fails its checks included).
    ProviderError,
    /// The provider has no verified e-mail address for the account.
    EmailUnverified,
    /// Our fault (the database, most likely); logged.
    ServerError,
}

impl Failure {
    fn code(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidState => "invalid_state",
            Self::ProviderError => "provider_error",
            Self::EmailUnverified => "email_unverified",
            Self::ServerError => "server_error",
        }
    }
}

/// A redirect carrying a one-time value: nobody may cache it, and the page it leads to
/// learns nothing of where the browser came from.
fn redirect(to: &str) -> Response {
    let Ok(location) = HeaderValue::from_str(to) else {
        return internal_error();
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// `redirect_uri` with `key=value` added to its query.
fn redirect_to_app(redirect_uri: &str, key: &str, value: &str) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        // The allow-list is checked for URLs at start-up, so this is a bug.
        tracing::error!("allow-listed redirect URI does not parse");
        return internal_error();
    };
    url.query_pairs_mut().append_pair(key, value);
    redirect(url.as_str())
}

fn fail(redirect_uri: &str, failure: Failure) -> Response {
    redirect_to_app(redirect_uri, "error", failure.code())
}

fn bad_request(message: &str) -> Response {
    no_store(plain_error(
        StatusCode::BAD_REQUEST,
        ErrorCode::BadRequest,
        message,
    ))
}

fn internal_error() -> Response {
    no_store(plain_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::InternalServerError,
        "internal error",
    ))
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The provider in the path, if it exists and is configured; otherwise what to say in the
/// 404.
fn enabled_provider(deps: &Deps, name: &str) -> Result<Provider, String> {
    let Some(provider) = Provider::from_name(name) else {
        return Err("no such sign-in provider (try apple, google, github or discord)".to_owned());
    };
    if deps.oauth.client(provider).is_none() {
        return Err(format!(
            "sign-in with {} is not enabled on this server: it has no client credentials for it",
            provider.name()
        ));
    }
    Ok(provider)
}

fn not_found(message: &str) -> Response {
    plain_error(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
}

/// A database failure before there is anywhere to send the browser.
fn log_internal(err: &ApiError, what: &'static str) {
    tracing::error!(error = ?err, what, "sign-in failed on our side");
}

#[derive(Deserialize)]
pub struct StartParams {
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `GET /auth/{provider}/start?redirect_uri=…&code_challenge=…[&code_challenge_method=S256]`:
/// remembers the sign-in and sends the browser to the provider's consent page.
pub async fn start(
    State(deps): State<Deps>,
    Path(provider): Path<String>,
    params: Result<Query<StartParams>, QueryRejection>,
) -> Response {
    let provider = match enabled_provider(&deps, &provider) {
        Ok(provider) => provider,
        Err(message) => return not_found(&message),
    };
    let Ok(Query(params)) = params else {
        return bad_request("the query string is malformed");
    };
    let oauth = &deps.oauth;
    let Some(redirect_uri) = params.redirect_uri.filter(|uri| oauth.allows_redirect(uri)) else {
        return bad_request("redirect_uri is missing or not one of this server's app URIs");
    };
    if params
        .code_challenge_method
        .is_some_and(|method| method != "S256")
    {
        return bad_request("code_challenge_method must be S256");
    }
    let Some(code_challenge) = params.code_challenge.filter(|c| flow::is_s256_challenge(c)) else {
        return bad_request(
            "code_challenge is required: base64url(SHA-256(code verifier)), 43 characters",
        );
    };
    let Some(client) = oauth.client(provider) else {
        return internal_error();
    };
    // Our own PKCE pair for the provider, independent of the app's: the provider's code is
    // useless to whoever intercepts the callback without the verifier we keep.
    let (pkce_challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
    // OpenID's nonce ties the ID token to this sign-in: one minted for another sign-in (or
    // replayed from an earlier one) does not carry it.
    let nonce = provider.is_oidc().then(flow::random_secret);
    let new = NewState {
        provider,
        redirect_uri: &redirect_uri,
        code_challenge: &code_challenge,
        pkce_verifier: pkce_verifier.secret(),
        nonce: nonce.as_deref(),
    };
    let csrf = match flow::create_state(&deps.db, new).await {
        Ok(csrf) => csrf,
        Err(err) => {
            log_internal(&err, "store state");
            return internal_error();
        }
    };
    let mut authorize = client
        .authorize_url(move || CsrfToken::new(csrf))
        .add_scopes(
            provider
                .scopes()
                .iter()
                .map(|scope| Scope::new((*scope).to_owned())),
        )
        .set_pkce_challenge(pkce_challenge);
    if let Some(nonce) = &nonce {
        authorize = authorize.add_extra_param("nonce", nonce);
    }
    if provider.posts_callback() {
        // Apple insists on it when name or e-mail is asked for.
        authorize = authorize.add_extra_param("response_mode", "form_post");
    }
    let (url, _) = authorize.url();
    tracing::info!(provider = provider.name(), "sign-in started");
    redirect(url.as_str())
}

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// Apple's, on first consent only: `{"name":{"firstName","lastName"},"email"}`.
    user: Option<String>,
}

/// Most bytes of a callback form. Apple's is a code, a state and a name; a few hundred bytes.
pub const MAX_CALLBACK_FORM_BYTES: usize = 16 * 1024;

/// A provider's error code fit for the log: the short token the OAuth spec defines, never
/// free text that a crafted URL could fill.
fn loggable(code: &str) -> &str {
    let plain = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain { code } else { "(unrecognised)" }
}

/// Why a token exchange failed, for the log (no codes, tokens or response bodies).
fn describe_token_error<E: std::error::Error>(
    err: &RequestTokenError<E, BasicErrorResponse>,
) -> String {
    match err {
        RequestTokenError::ServerResponse(response) => {
            let code = response.error().to_string();
            format!("token endpoint refused: {}", loggable(&code))
        }
        RequestTokenError::Request(err) => format!("token request failed: {err}"),
        RequestTokenError::Parse(err, body) => {
            // GitHub reports a bad code as `200 OK` with an error object where the token
            // should be; name the error when that is what arrived.
            match serde_json::from_slice::<BasicErrorResponse>(body) {
                Ok(response) => {
                    let code = response.error().to_string();
                    format!("token endpoint refused: {}", loggable(&code))
                }
                Err(_) => format!("token response unreadable at {}", err.path()),
            }
        }
        RequestTokenError::Other(reason) => format!("token response unusable: {reason}"),
    }
}

fn wrong_method(provider: Provider) -> Response {
    let message = if provider.posts_callback() {
        "this provider calls back with a form POST"
    } else {
        "this provider calls back with a GET"
    };
    no_store(plain_error(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        message,
    ))
}

/// `GET /auth/{provider}/callback?code=…&state=…` (or `?error=…&state=…`): finishes the
/// sign-in and sends the browser to the app with a login code or an error.
pub async fn callback(
    State(deps): State<Deps>,
    Path(provider): Path<String>,
    params: Result<Query<CallbackParams>, QueryRejection>,
) -> Response {
    let provider = match enabled_provider(&deps, &provider) {
        Ok(provider) => provider,
        Err(message) => return not_found(&message),
    };
    if provider.posts_callback() {
        return wrong_method(provider);
    }
    let Ok(Query(params)) = params else {
        return bad_request("the query string is malformed");
    };
    finish(&deps, provider, params).await
}

/// `POST /auth/{provider}/callback` with `code`, `state` (and on first consent `user`), or
/// `error` and `state`, as a form: Apple's `form_post` callback. Answers as the GET does.
pub async fn form_callback(
    State(deps): State<Deps>,
    Path(provider): Path<String>,
    params: Result<Form<CallbackParams>, FormRejection>,
) -> Response {
    let provider = match enabled_provider(&deps, &provider) {
        Ok(provider) => provider,
        Err(message) => return not_found(&message),
    };
    if !provider.posts_callback() {
        return wrong_method(provider);
    }
    let params = match params {
        Ok(Form(params)) => params,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return no_store(plain_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BadRequest,
                "the callback form is too large",
            ));
        }
        Err(_) => {
            return bad_request("the callback must be an application/x-www-form-urlencoded form");
        }
    };
    finish(&deps, provider, params).await
}

/// The account behind an Apple or Google token response: its ID token checked (keys,
/// issuer, audience, lifetime, then the nonce this sign-in stored), then its e-mail.
async fn openid_profile(
    oauth: &OAuth,
    provider: Provider,
    token: &OidcTokenResponse,
    row: &entity::oauth_state::Model,
    apple_user: Option<&str>,
) -> Result<Profile, ProfileError> {
    let Some(openid) = oauth.openid(provider) else {
        return Err(ProfileError::Provider("not an OpenID provider".to_owned()));
    };
    let Some(token) = token.extra_fields().id_token.as_deref() else {
        return Err(ProfileError::Provider(
            "token response without an id_token".to_owned(),
        ));
    };
    let expected = Expected {
        issuers: &openid.issuers,
        audience: &openid.client_id,
        algorithms: openid.algorithms,
        not_issued_before: row.created_at.timestamp(),
        now: clock::now().timestamp(),
    };
    let verified = id_token::verify(&oauth.http, &openid.jwks, token, &expected).await?;
    if !flow::nonce_matches(row, verified.nonce.as_deref()) {
        return Err(ProfileError::Provider(
            "id_token: not this sign-in's nonce".to_owned(),
        ));
    }
    let mut profile = verified.into_profile()?;
    if provider == Provider::Apple {
        // Apple's relay addresses (`…@privaterelay.appleid.com`) are real, verified
        // addresses that forward to the person: they are the account like any other.
        profile.display_name = apple_user.and_then(apple::name_from_form);
    }
    Ok(profile)
}

/// The callback's work, whichever way it arrived.
async fn finish(deps: &Deps, provider: Provider, params: CallbackParams) -> Response {
    let invalid_state =
        || bad_request("this sign-in is unknown, finished or expired: start it again");
    let Some(csrf) = params.state.filter(|s| !s.is_empty()) else {
        tracing::info!(provider = provider.name(), "sign-in callback without state");
        return invalid_state();
    };
    let row = match flow::consume_state(&deps.db, &csrf).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            tracing::info!(
                provider = provider.name(),
                "sign-in callback with an unknown or used state"
            );
            return invalid_state();
        }
        Err(err) => {
            log_internal(&err, "consume state");
            return internal_error();
        }
    };
    let oauth = &deps.oauth;
    // The allow-list may have shrunk since the sign-in started.
    if !oauth.allows_redirect(&row.redirect_uri) {
        tracing::warn!(
            provider = provider.name(),
            "sign-in callback for an app URI no longer allowed"
        );
        return invalid_state();
    }
    let redirect_uri = row.redirect_uri.as_str();
    let refuse = |failure: Failure, reason: &str| {
        tracing::warn!(
            provider = provider.name(),
            error = failure.code(),
            reason,
            "sign-in failed"
        );
        fail(redirect_uri, failure)
    };
    if row.provider != provider.name() {
        return refuse(Failure::InvalidState, "state belongs to another provider");
    }
    if row.expires_at <= clock::now() {
        return refuse(Failure::InvalidState, "state expired");
    }
    if let Some(error) = params.error {
        let reason = format!("provider answered {}", loggable(&error));
        // Apple's word for it is `user_cancelled_authorize`.
        let failure = if matches!(error.as_str(), "access_denied" | "user_cancelled_authorize") {
            Failure::AccessDenied
        } else {
            Failure::ProviderError
        };
        return refuse(failure, &reason);
    }
    let Some(code) = params.code.filter(|c| !c.is_empty()) else {
        return refuse(Failure::InvalidRequest, "callback without a code");
    };
    let Some(client) = oauth.client(provider) else {
        return refuse(Failure::ServerError, "client vanished");
    };
    let with_fresh_secret;
    let client = match oauth.fresh_client_secret(provider) {
        Ok(None) => client,
        Ok(Some(secret)) => {
            with_fresh_secret = client.clone().set_client_secret(secret);
            &with_fresh_secret
        }
        Err(err) => {
            tracing::error!(provider = provider.name(), error = %err, "cannot make a client secret");
            return fail(redirect_uri, Failure::ServerError);
        }
    };
    let token = match client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(row.pkce_verifier.clone()))
        .request_async(&oauth.http)
        .await
    {
        Ok(token) => token,
        Err(err) => return refuse(Failure::ProviderError, &describe_token_error(&err)),
    };
    let profile = if provider.is_oidc() {
        openid_profile(oauth, provider, &token, &row, params.user.as_deref()).await
    } else {
        providers::fetch_profile(
            &oauth.http,
            &oauth.urls,
            provider,
            token.access_token().secret(),
        )
        .await
    };
    let profile = match profile {
        Ok(profile) => profile,
        Err(ProfileError::EmailUnverified) => {
            return refuse(Failure::EmailUnverified, "no verified e-mail address");
        }
        Err(ProfileError::Provider(reason)) => return refuse(Failure::ProviderError, &reason),
    };
    match flow::complete_sign_in(&deps.db, provider, &profile, &row.code_challenge).await {
        Ok((user, login_code)) => {
            tracing::info!(provider = provider.name(), user_id = %user.id, "sign-in finished");
            redirect_to_app(redirect_uri, "code", &login_code)
        }
        Err(ApiError::BadInput { .. }) => {
            // The provider vouched for an address that is not one.
            refuse(Failure::ProviderError, "unusable e-mail address")
        }
        Err(err) => {
            log_internal(&err, "complete sign-in");
            fail(redirect_uri, Failure::ServerError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_error_codes_are_logged() {
        assert_eq!(loggable("access_denied"), "access_denied");
        assert_eq!(loggable("Access Denied"), "(unrecognised)");
        assert_eq!(loggable("x\ny"), "(unrecognised)");
        assert_eq!(loggable(""), "(unrecognised)");
    }

    #[test]
    fn app_redirects_keep_the_uri_and_add_one_parameter() {
        let response = redirect_to_app("photon://auth", "code", "a b");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok()),
            Some("photon://auth?code=a+b")
        );
        assert_eq!(
            response
                .headers()
                .get(CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
    }
}
