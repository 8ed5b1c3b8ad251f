//! Sign-in with GitHub and Discord, end to end: the app's start URL, the fake provider's
//! consent and token endpoints, our callback, the app's deep link, and `exchangeLoginCode`.

use std::collections::HashMap;

use chrono::Utc;
use entity::{login_code, oauth_state};
use photon_tests::TestApp;
use photon_tests::fake_oauth::{
    Browser, DiscordAccount, FakeOAuth, Fault, GitHubAccount, GitHubEmail, Hop, Landing, pkce_pair,
};
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use sea_orm::sea_query::Expr;
use serde_json::{Value, json};

pub(crate) const APP_URI: &str = "photon://auth";

pub(crate) const EXCHANGE: &str = "mutation($code: String!, $verifier: String!) {
    exchangeLoginCode(code: $code, codeVerifier: $verifier) {
        accessToken refreshToken accessTokenExpiresAt user { id name email avatarUrl }
    }
}";

pub(crate) async fn spawn_with_args(args: Vec<String>, extra: &[&str]) -> TestApp {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    TestApp::spawn_with(&all).await
}

/// A server with both providers pointed at a fresh fake.
async fn spawn() -> (TestApp, FakeOAuth) {
    let fake = FakeOAuth::start().await;
    let app = spawn_with_args(fake.args(), &[]).await;
    (app, fake)
}

pub(crate) fn start_url(
    app: &TestApp,
    provider: &str,
    redirect_uri: &str,
    challenge: &str,
) -> String {
    let mut url = url::Url::parse(&app.url(&format!("/auth/{provider}/start"))).unwrap();
    url.query_pairs_mut()
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

/// The app's side of a sign-in up to its deep link: returns where the browser landed and
/// the verifier the app kept.
pub(crate) async fn sign_in_at(app: &TestApp, provider: &str) -> (Landing, String) {
    let (verifier, challenge) = pkce_pair();
    let landing = Browser::new()
        .visit(&start_url(app, provider, APP_URI, &challenge))
        .await;
    (landing, verifier)
}

pub(crate) async fn exchange(
    app: &TestApp,
    code: &str,
    verifier: &str,
) -> photon_tests::GqlResponse {
    app.gql_anon(EXCHANGE, json!({ "code": code, "verifier": verifier }))
        .await
}

/// A whole sign-in: deep link, exchange, and the payload.
pub(crate) async fn sign_in(app: &TestApp, provider: &str) -> Value {
    let (landing, verifier) = sign_in_at(app, provider).await;
    let query = landing.app_query();
    let code = query.get("code").expect("a login code");
    exchange(app, code, &verifier).await.ok()["exchangeLoginCode"].clone()
}

/// The `error` a failed sign-in sent the app, after checking it carries nothing else.
pub(crate) fn app_error(landing: &Landing) -> String {
    let url = landing.app_url();
    assert_eq!(
        format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        APP_URI
    );
    let query: HashMap<String, String> = landing.app_query();
    assert!(!query.contains_key("code"), "an error carries no code");
    query.get("error").cloned().expect("an error code")
}

pub(crate) async fn assert_nothing_created(app: &TestApp) {
    assert_eq!(app.count("users", "").await, 0, "users");
    assert_eq!(app.count("identities", "").await, 0, "identities");
    assert_eq!(
        app.count("session_members", "").await,
        0,
        "session memberships"
    );
    assert_eq!(app.count("login_codes", "").await, 0, "login codes");
    assert_eq!(app.count("refresh_tokens", "").await, 0, "refresh tokens");
}

pub(crate) fn ana_on_github() -> GitHubAccount {
    GitHubAccount::new(583231, "ana-l", Some("Ana Lima"), "Ana@Example.com")
}

fn ana_on_discord() -> DiscordAccount {
    DiscordAccount::new("80351110224678912", "ana_l", Some("Ana"), "ana@example.com")
}

pub(crate) async fn me(app: &TestApp, token: &str) -> Value {
    app.gql(Some(token), "{ me { id name email avatarUrl } }", json!({}))
        .await
        .ok()["me"]
        .clone()
}

#[tokio::test]
async fn github_sign_in_ends_in_an_authenticated_me() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());

    let (landing, verifier) = sign_in_at(&app, "github").await;
    let query = landing.app_query();
    assert_eq!(
        query.len(),
        1,
        "only the login code reaches the app: {query:?}"
    );
    let payload = exchange(&app, &query["code"], &verifier).await;
    let payload = &payload.ok()["exchangeLoginCode"];

    let me = me(&app, payload["accessToken"].as_str().unwrap()).await;
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(me["name"], "Ana Lima");
    assert_eq!(
        me["avatarUrl"],
        "https://avatars.githubusercontent.com/u/583231?v=4"
    );
    assert_eq!(
        app.count("identities", "provider = 'github' AND subject = '583231'")
            .await,
        1
    );
    assert_eq!(app.count("login_codes", "").await, 0, "the code is used up");
    assert_eq!(
        app.count("oauth_states", "").await,
        0,
        "the state is used up"
    );
}

#[tokio::test]
async fn the_provider_is_asked_for_minimal_scopes_with_our_own_pkce_challenge() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (verifier, challenge) = pkce_pair();
    let landing = Browser::new()
        .visit(&start_url(&app, "github", APP_URI, &challenge))
        .await;
    landing.app_query();

    let authorize = fake.last_authorize();
    assert_eq!(authorize["scope"], "read:user user:email");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_ne!(
        authorize["code_challenge"], challenge,
        "the app's challenge stays with us"
    );
    assert_eq!(
        authorize["redirect_uri"],
        app.url("/auth/github/callback"),
        "the provider calls back to the public URL"
    );
    assert!(!authorize.values().any(|v| v.contains(&verifier)));

    fake.set_discord(ana_on_discord());
    Browser::new()
        .visit(&start_url(&app, "discord", APP_URI, &challenge))
        .await
        .app_query();
    assert_eq!(fake.last_authorize()["scope"], "identify email");
}

#[tokio::test]
async fn discord_sign_in_ends_in_an_authenticated_me() {
    let (app, fake) = spawn().await;
    fake.set_discord(ana_on_discord());

    let payload = sign_in(&app, "discord").await;

    let me = me(&app, payload["accessToken"].as_str().unwrap()).await;
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(me["name"], "Ana");
    assert_eq!(
        me["avatarUrl"],
        "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"
    );
    assert_eq!(
        app.count(
            "identities",
            "provider = 'discord' AND subject = '80351110224678912'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_name_falls_back_to_the_login_when_the_display_name_is_empty() {
    let (app, fake) = spawn().await;
    fake.set_github(GitHubAccount::new(1, "octocat", None, "octo@example.com"));
    assert_eq!(sign_in(&app, "github").await["user"]["name"], "octocat");

    let mut blank = DiscordAccount::new("42", "nelly", Some("  "), "nelly@example.com");
    blank.avatar = None;
    fake.set_discord(blank);
    let payload = sign_in(&app, "discord").await;
    assert_eq!(payload["user"]["name"], "nelly");
    assert!(payload["user"]["avatarUrl"].is_null());
}

#[tokio::test]
async fn the_same_email_through_both_providers_reaches_one_account_with_two_identities() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    fake.set_discord(ana_on_discord());

    let first = sign_in(&app, "github").await;
    let second = sign_in(&app, "discord").await;

    assert_eq!(first["user"]["id"], second["user"]["id"]);
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("identities", "").await, 2);
    // The account's own name stays: the second provider only links.
    assert_eq!(second["user"]["name"], "Ana Lima");
}

#[tokio::test]
async fn signing_in_again_reaches_the_same_account_and_keeps_the_users_own_name() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let first = sign_in(&app, "github").await;
    app.gql(
        first["accessToken"].as_str(),
        "mutation { updateProfile(input: { name: \"Aninha\" }) { name } }",
        json!({}),
    )
    .await
    .ok();

    let second = sign_in(&app, "github").await;

    assert_eq!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(second["user"]["name"], "Aninha");
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("identities", "").await, 1);
}

#[tokio::test]
async fn a_linked_identity_keeps_its_account_when_the_provider_email_changes() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let first = sign_in(&app, "github").await;

    fake.set_github(GitHubAccount::new(
        583231,
        "ana-l",
        Some("Ana Lima"),
        "ana@work.example",
    ));
    let second = sign_in(&app, "github").await;

    assert_eq!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(second["user"]["email"], "ana@example.com");
    assert_eq!(app.count("users", "").await, 1);
}

#[tokio::test]
async fn an_unverified_github_primary_email_is_refused_even_with_another_verified_one() {
    let (app, fake) = spawn().await;
    let mut account = ana_on_github();
    account.emails = vec![
        GitHubEmail {
            email: "ana@example.com".to_owned(),
            primary: true,
            verified: false,
        },
        GitHubEmail {
            email: "ana@other.example".to_owned(),
            primary: false,
            verified: true,
        },
    ];
    fake.set_github(account);

    let (landing, _) = sign_in_at(&app, "github").await;

    assert_eq!(app_error(&landing), "email_unverified");
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn a_github_account_without_email_addresses_is_refused() {
    let (app, fake) = spawn().await;
    let mut account = ana_on_github();
    account.emails.clear();
    fake.set_github(account);

    let (landing, _) = sign_in_at(&app, "github").await;

    assert_eq!(app_error(&landing), "email_unverified");
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn an_unverified_or_missing_discord_email_is_refused() {
    let (app, fake) = spawn().await;
    let mut unverified = ana_on_discord();
    unverified.verified = Some(false);
    let mut without_flag = ana_on_discord();
    without_flag.verified = None;
    let mut without_email = ana_on_discord();
    without_email.email = None;

    for account in [unverified, without_flag, without_email] {
        fake.set_discord(account.clone());
        let (landing, _) = sign_in_at(&app, "discord").await;
        assert_eq!(app_error(&landing), "email_unverified", "{account:?}");
    }
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn declining_consent_sends_access_denied_and_creates_nothing() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    fake.set_discord(ana_on_discord());
    fake.set_fault(Fault::DenyConsent);

    for provider in ["github", "discord"] {
        let (landing, _) = sign_in_at(&app, provider).await;
        assert_eq!(app_error(&landing), "access_denied", "{provider}");
    }
    assert_eq!(fake.token_requests(), 0);
    assert_nothing_created(&app).await;
    assert_eq!(app.count("oauth_states", "").await, 0);
}

/// The callback URL the provider sends the browser to, not yet visited.
async fn callback_url(app: &TestApp, provider: &str) -> (url::Url, String) {
    let (verifier, challenge) = pkce_pair();
    let url = Browser::new()
        .visit_until(
            &start_url(app, provider, APP_URI, &challenge),
            &format!("/auth/{provider}/callback"),
        )
        .await;
    (url, verifier)
}

fn with_param(url: &url::Url, key: &str, value: Option<&str>) -> url::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != key)
        .collect();
    let mut changed = url.clone();
    {
        let mut query = changed.query_pairs_mut();
        query.clear();
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
        if let Some(value) = value {
            query.append_pair(key, value);
        }
    }
    changed
}

/// Visits `url` and expects a JSON error page, not a redirect anywhere.
pub(crate) async fn assert_refused_without_redirect(
    url: &url::Url,
    status: StatusCode,
    code: &str,
) {
    match Browser::new().hop(url).await {
        Hop::Stop(Landing::Page { status: got, body }) => {
            assert_eq!(got, status, "{body}");
            let body: Value = serde_json::from_str(&body).expect("a JSON error");
            assert_eq!(body["errors"][0]["extensions"]["code"], code, "{body}");
        }
        Hop::Stop(landing) => panic!("expected an error page, got {landing:?}"),
        Hop::Next(next) => panic!("expected an error page, got a redirect to {next}"),
    }
}

#[tokio::test]
async fn a_wrong_or_missing_state_is_refused_without_redirecting() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (callback, _) = callback_url(&app, "github").await;

    let forged = with_param(&callback, "state", Some("forged-state-value"));
    assert_refused_without_redirect(&forged, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    let missing = with_param(&callback, "state", None);
    assert_refused_without_redirect(&missing, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    let empty = with_param(&callback, "state", Some(""));
    assert_refused_without_redirect(&empty, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;

    assert_eq!(fake.token_requests(), 0, "the code was never redeemed");
    assert_nothing_created(&app).await;
    assert_eq!(
        app.count("oauth_states", "").await,
        1,
        "the real one is untouched"
    );
}

#[tokio::test]
async fn a_replayed_callback_is_refused_and_creates_nothing_more() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (callback, _) = callback_url(&app, "github").await;
    let browser = Browser::new();
    match browser.hop(&callback).await {
        Hop::Next(url) => assert!(url.as_str().starts_with("photon://auth?code=")),
        Hop::Stop(landing) => panic!("first callback failed: {landing:?}"),
    }

    assert_refused_without_redirect(&callback, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;

    assert_eq!(fake.token_requests(), 1);
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("login_codes", "").await, 1);
}

#[tokio::test]
async fn concurrent_replays_of_a_callback_sign_in_once() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (callback, _) = callback_url(&app, "github").await;

    let browser = Browser::new();
    let hops = futures_util::future::join_all((0..4).map(|_| browser.hop(&callback))).await;

    let codes = hops
        .iter()
        .filter(|hop| matches!(hop, Hop::Next(url) if url.as_str().contains("code=")))
        .count();
    assert_eq!(codes, 1);
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(app.count("login_codes", "").await, 1);
}

#[tokio::test]
async fn a_state_made_for_another_provider_is_refused() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (callback, _) = callback_url(&app, "github").await;
    let mut elsewhere = callback.clone();
    elsewhere.set_path("/auth/discord/callback");

    let landing = Browser::new().visit(elsewhere.as_str()).await;

    assert_eq!(app_error(&landing), "invalid_state");
    // The state is used up by the attempt.
    assert_refused_without_redirect(&callback, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    assert_eq!(fake.token_requests(), 0);
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (callback, _) = callback_url(&app, "github").await;
    oauth_state::Entity::update_many()
        .col_expr(
            oauth_state::Column::ExpiresAt,
            Expr::value(Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&app.db)
        .await
        .unwrap();

    let landing = Browser::new().visit(callback.as_str()).await;

    assert_eq!(app_error(&landing), "invalid_state");
    assert_eq!(fake.token_requests(), 0);
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn a_callback_without_a_code_is_an_invalid_request() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (callback, _) = callback_url(&app, "github").await;

    let landing = Browser::new()
        .visit(with_param(&callback, "code", None).as_str())
        .await;

    assert_eq!(app_error(&landing), "invalid_request");
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn a_redirect_uri_off_the_allow_list_is_refused_without_redirecting() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (_, challenge) = pkce_pair();

    for uri in [
        "https://evil.example/auth",
        "photon://auth.evil",
        "photon://auth/more",
        "photon://auth?x=1",
        "PHOTON://AUTH",
        "",
    ] {
        let url = url::Url::parse(&start_url(&app, "github", uri, &challenge)).unwrap();
        assert_refused_without_redirect(&url, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    }
    let without =
        url::Url::parse(&app.url(&format!("/auth/github/start?code_challenge={challenge}")))
            .unwrap();
    assert_refused_without_redirect(&without, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    assert!(
        fake.last_authorize().is_empty(),
        "the provider was never visited"
    );
    assert_eq!(app.count("oauth_states", "").await, 0);
}

#[tokio::test]
async fn another_allowed_redirect_uri_gets_the_code() {
    let fake = FakeOAuth::start().await;
    fake.set_github(ana_on_github());
    let app = spawn_with_args(
        fake.github_args(),
        &["--app-redirect-uris=photon://auth, https://app.example/auth/done"],
    )
    .await;
    let (verifier, challenge) = pkce_pair();

    // Stop before the browser would load the web app's page: it is not ours to fetch.
    let landing = Browser::new()
        .visit_until(
            &start_url(&app, "github", "https://app.example/auth/done", &challenge),
            "/auth/done",
        )
        .await;

    assert_eq!(landing.host_str(), Some("app.example"));
    let code = landing
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    exchange(&app, &code, &verifier).await.ok();
}

#[tokio::test]
async fn a_missing_malformed_or_plain_code_challenge_is_refused() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());

    let base = app.url("/auth/github/start?redirect_uri=photon%3A%2F%2Fauth");
    for query in [
        String::new(),
        "&code_challenge=short".to_owned(),
        format!("&code_challenge={}", "a".repeat(43)) + "&code_challenge_method=plain",
        format!("&code_challenge={}=", "a".repeat(42)),
    ] {
        let url = url::Url::parse(&format!("{base}{query}")).unwrap();
        assert_refused_without_redirect(&url, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    }
    assert_eq!(app.count("oauth_states", "").await, 0);
}

#[tokio::test]
async fn a_login_code_works_once() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (landing, verifier) = sign_in_at(&app, "github").await;
    let code = landing.app_query()["code"].clone();
    exchange(&app, &code, &verifier).await.ok();

    exchange(&app, &code, &verifier)
        .await
        .assert_code("UNAUTHENTICATED");

    assert_eq!(app.count("refresh_tokens", "").await, 1);
}

#[tokio::test]
async fn a_wrong_verifier_is_unauthenticated_and_uses_the_code_up() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (landing, verifier) = sign_in_at(&app, "github").await;
    let code = landing.app_query()["code"].clone();
    let (other_verifier, _) = pkce_pair();

    exchange(&app, &code, &other_verifier)
        .await
        .assert_code("UNAUTHENTICATED");
    exchange(&app, &code, &verifier)
        .await
        .assert_code("UNAUTHENTICATED");

    assert_eq!(app.count("refresh_tokens", "").await, 0);
    assert_eq!(app.count("login_codes", "").await, 0);
}

#[tokio::test]
async fn an_unknown_or_expired_login_code_is_unauthenticated() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    let (verifier, _) = pkce_pair();
    exchange(&app, "not-a-code", &verifier)
        .await
        .assert_code("UNAUTHENTICATED");

    let (landing, verifier) = sign_in_at(&app, "github").await;
    login_code::Entity::update_many()
        .col_expr(
            login_code::Column::ExpiresAt,
            Expr::value(Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(&app.db)
        .await
        .unwrap();
    exchange(&app, &landing.app_query()["code"], &verifier)
        .await
        .assert_code("UNAUTHENTICATED");
    assert_eq!(app.count("refresh_tokens", "").await, 0);
}

/// Signs in with every fault that the provider's side can have and expects `provider_error`
/// with nothing created.
async fn assert_provider_fault(provider: &str, fault: Fault) {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    fake.set_discord(ana_on_discord());
    fake.set_fault(fault);

    let (landing, _) = sign_in_at(&app, provider).await;

    assert_eq!(
        app_error(&landing),
        "provider_error",
        "{provider} {fault:?}"
    );
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn a_refused_code_is_a_provider_error() {
    // GitHub says so with 200 OK and an error object; Discord with 400 invalid_grant.
    assert_provider_fault("github", Fault::RejectCode).await;
    assert_provider_fault("discord", Fault::RejectCode).await;
}

#[tokio::test]
async fn a_token_endpoint_answering_500_is_a_provider_error() {
    assert_provider_fault("github", Fault::TokenServerError).await;
    assert_provider_fault("discord", Fault::TokenServerError).await;
}

#[tokio::test]
async fn a_token_endpoint_answering_malformed_json_is_a_provider_error() {
    assert_provider_fault("github", Fault::TokenMalformed).await;
    assert_provider_fault("discord", Fault::TokenMalformed).await;
}

#[tokio::test]
async fn a_profile_endpoint_answering_500_is_a_provider_error() {
    assert_provider_fault("github", Fault::ProfileServerError).await;
    assert_provider_fault("github", Fault::EmailsServerError).await;
    assert_provider_fault("discord", Fault::ProfileServerError).await;
}

#[tokio::test]
async fn a_profile_endpoint_answering_malformed_json_is_a_provider_error() {
    assert_provider_fault("github", Fault::ProfileMalformed).await;
    assert_provider_fault("discord", Fault::ProfileMalformed).await;
}

#[tokio::test]
async fn a_provider_that_is_down_is_a_provider_error() {
    let fake = FakeOAuth::start().await;
    fake.set_github(ana_on_github());
    // A port that was free a moment ago: nothing listens there now.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let down = format!("--github-api-url=http://{closed}");
    let app = spawn_with_args(fake.github_args(), &[&down]).await;

    let (landing, _) = sign_in_at(&app, "github").await;

    assert_eq!(app_error(&landing), "provider_error");
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn auth_providers_lists_the_enabled_providers_with_their_start_urls() {
    let fake = FakeOAuth::start().await;
    let app = spawn_with_args(fake.github_args(), &[]).await;

    let response = app
        .gql_anon("{ authProviders { name startUrl } }", json!({}))
        .await;

    assert_eq!(
        response.ok()["authProviders"],
        json!([{ "name": "github", "startUrl": app.url("/auth/github/start") }])
    );
    let both = spawn().await.0;
    let names: Vec<Value> = both
        .gql_anon("{ authProviders { name } }", json!({}))
        .await
        .ok()["authProviders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("github"), json!("discord")]);
}

#[tokio::test]
async fn a_provider_without_credentials_is_off_and_says_so() {
    let fake = FakeOAuth::start().await;
    let app = spawn_with_args(fake.github_args(), &[]).await;
    let (_, challenge) = pkce_pair();

    let start = url::Url::parse(&start_url(&app, "discord", APP_URI, &challenge)).unwrap();
    assert_refused_without_redirect(&start, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let unknown = url::Url::parse(&start_url(&app, "google", APP_URI, &challenge)).unwrap();
    assert_refused_without_redirect(&unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;

    let plain = TestApp::spawn().await;
    let response = plain
        .gql_anon("{ authProviders { name } }", json!({}))
        .await;
    assert_eq!(response.ok()["authProviders"], json!([]));
}

#[tokio::test]
async fn the_sweeper_removes_expired_states_and_login_codes() {
    let (app, fake) = spawn().await;
    fake.set_github(ana_on_github());
    sign_in_at(&app, "github").await.0.app_query();
    let (_, challenge) = pkce_pair();
    Browser::new()
        .visit_until(
            &start_url(&app, "github", APP_URI, &challenge),
            "/login/oauth/authorize",
        )
        .await;
    assert_eq!(app.count("login_codes", "").await, 1);
    assert_eq!(app.count("oauth_states", "").await, 1);

    let settings = photon::jobs::sweeper::SweepSettings {
        interval: std::time::Duration::from_secs(60),
        event_retention: chrono::Duration::hours(24),
    };
    let soon = Utc::now() + chrono::Duration::seconds(30);
    let report =
        photon::jobs::sweeper::sweep_once(&app.state.db, app.state.store.as_ref(), &settings, soon)
            .await
            .unwrap();
    assert_eq!(report.sign_ins, 0, "nothing has expired yet");

    let later = Utc::now() + chrono::Duration::minutes(11);
    let report = photon::jobs::sweeper::sweep_once(
        &app.state.db,
        app.state.store.as_ref(),
        &settings,
        later,
    )
    .await
    .unwrap();
    assert_eq!(report.sign_ins, 2);
    assert_eq!(app.count("login_codes", "").await, 0);
    assert_eq!(app.count("oauth_states", "").await, 0);
}

#[test]
fn dev_sign_in_is_off_by_default_once_a_provider_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = format!("--data-dir={}", dir.path().display());
    let resolve = |extra: &[&str]| {
        let mut args = vec!["photon", "--bind=127.0.0.1:0", data_dir.as_str()];
        args.extend_from_slice(extra);
        photon::config::settings_from_args(args)
            .unwrap()
            .resolve()
            .unwrap()
    };
    assert!(resolve(&[]).dev_sign_in);
    assert!(!resolve(&["--github-client-id=x", "--github-client-secret=y"]).dev_sign_in);
    assert!(!resolve(&["--discord-client-id=x", "--discord-client-secret=y"]).dev_sign_in);

    let half = photon::config::settings_from_args([
        "photon",
        "--bind=127.0.0.1:0",
        data_dir.as_str(),
        "--github-client-id=x",
    ])
    .unwrap()
    .resolve();
    assert!(half.is_err(), "an id without a secret is a mistake");
}
