//! Sign in with Apple and Google, end to end: the app's start URL, the fake provider's consent
//! page (Apple's an auto-submitting form post), its token endpoint and real JWKS, our ID token
//! checks, the app's deep link, and `exchangeLoginCode`.

use jsonwebtoken::Algorithm;
use photon_tests::TestApp;
use photon_tests::fake_oauth::{Browser, FakeOAuth, Hop, Landing, pkce_pair};
use photon_tests::fake_oidc::{
    APPLE_CLIENT_ID, APPLE_TEAM_ID, FakeOidc, FormPost, OidcAccount, Tamper,
};
use photon_tests::logs::CapturedLogs;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::oauth::{
    APP_URI, ana_on_github, app_error, assert_nothing_created, assert_refused_without_redirect,
    exchange, me, sign_in, sign_in_at, spawn_with_args, start_url,
};

/// A server with Apple and Google pointed at fresh fakes.
async fn spawn() -> (TestApp, FakeOidc, FakeOidc) {
    let google = FakeOidc::google().await;
    let apple = FakeOidc::apple().await;
    let mut args = google.args();
    args.extend(apple.args());
    let app = spawn_with_args(args, &[]).await;
    (app, google, apple)
}

fn ana_on_google() -> OidcAccount {
    OidcAccount::google("109876543210987654321", "Ana@Example.com", "Ana", "Lima")
}

fn ana_on_apple() -> OidcAccount {
    OidcAccount::apple(
        "001234.5f0c2a7e9b8d4c6e8f1a2b3c4d5e6f70.1234",
        "ana@example.com",
        "Ana",
        "Lima",
    )
}

/// Nothing but the states consumed: no account, identity, membership or login code.
async fn assert_refused(app: &TestApp, landing: &Landing, code: &str) {
    assert_eq!(app_error(landing), code);
    assert_nothing_created(app).await;
}

#[tokio::test]
async fn google_sign_in_ends_in_an_authenticated_me() {
    let (app, google, _apple) = spawn().await;
    google.set_account(ana_on_google());

    let (landing, verifier) = sign_in_at(&app, "google").await;
    let query = landing.app_query();
    assert_eq!(
        query.len(),
        1,
        "only the login code reaches the app: {query:?}"
    );
    let payload = exchange(&app, &query["code"], &verifier).await;
    let token = payload.ok()["exchangeLoginCode"]["accessToken"].clone();

    let me = me(&app, token.as_str().unwrap()).await;
    assert_eq!(me["email"], "ana@example.com");
    assert_eq!(me["name"], "Ana Lima");
    assert_eq!(
        me["avatarUrl"],
        "https://lh3.googleusercontent.com/a/109876543210987654321=s96-c"
    );
    assert_eq!(
        app.count(
            "identities",
            "provider = 'google' AND subject = '109876543210987654321'"
        )
        .await,
        1
    );
    assert_eq!(
        app.count("oauth_states", "").await,
        0,
        "the state is used up"
    );
    assert_eq!(google.jwks_requests(), 1);
}

#[tokio::test]
async fn the_authorize_request_carries_a_nonce_kept_only_as_a_hash_and_our_own_pkce() {
    let (app, google, apple) = spawn().await;
    google.set_account(ana_on_google());
    let (verifier, challenge) = pkce_pair();

    let callback = Browser::new()
        .visit_until(
            &start_url(&app, "google", APP_URI, &challenge),
            "/auth/google/callback",
        )
        .await;

    let authorize = google.last_authorize();
    assert_eq!(authorize["scope"], "openid email profile");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_ne!(authorize["code_challenge"], challenge);
    assert!(!authorize.values().any(|v| v.contains(&verifier)));
    assert_eq!(authorize["redirect_uri"], app.url("/auth/google/callback"));
    let nonce = &authorize["nonce"];
    assert!(nonce.len() >= 43, "{nonce}");
    let hash = photon_tests_hex(&Sha256::digest(nonce.as_bytes()));
    assert_eq!(
        app.count("oauth_states", &format!("nonce_hash = '{hash}'"))
            .await,
        1
    );
    assert_eq!(
        app.count("oauth_states", &format!("nonce_hash = '{nonce}'"))
            .await,
        0,
        "the nonce itself is not stored"
    );
    Browser::new().visit(callback.as_str()).await.app_query();

    apple.set_account(ana_on_apple());
    Browser::new()
        .visit(&start_url(&app, "apple", APP_URI, &challenge))
        .await
        .app_query();
    let authorize = apple.last_authorize();
    assert_eq!(authorize["scope"], "name email");
    assert_eq!(authorize["response_mode"], "form_post");
    assert_ne!(authorize["nonce"], *nonce, "a nonce per sign-in");
}

fn photon_tests_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn apple_sign_in_posts_a_form_whose_user_field_names_the_new_account() {
    let (app, _google, apple) = spawn().await;
    let mut account = ana_on_apple();
    account.email = Some("x7kq2m9p4t@privaterelay.appleid.com".to_owned());
    account.is_private_email = Some(json!("true"));
    apple.set_account(account);

    let (form, verifier) = apple_form(&app).await;
    assert_eq!(form.action.as_str(), app.url("/auth/apple/callback"));
    let user: Value = serde_json::from_str(form.get("user").expect("a user field")).unwrap();
    assert_eq!(user["name"]["firstName"], "Ana");
    let payload = submit_and_exchange(&app, &form, &verifier).await;

    // The private relay address is the account's, as it is.
    assert_eq!(
        payload["user"]["email"],
        "x7kq2m9p4t@privaterelay.appleid.com"
    );
    assert_eq!(payload["user"]["name"], "Ana Lima");
    assert!(payload["user"]["avatarUrl"].is_null());
    assert_eq!(
        app.count("identities", "provider = 'apple'").await,
        1,
        "apple's identity"
    );
}

/// Posts Apple's form as the browser would, and swaps the login code from the deep link.
async fn submit_and_exchange(app: &TestApp, form: &FormPost, verifier: &str) -> Value {
    let deep_link = match Browser::new().submit(form).await {
        Hop::Next(url) => url,
        Hop::Stop(landing) => panic!("the form post failed: {landing:?}"),
    };
    let code = deep_link
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no login code in {deep_link}"));
    exchange(app, &code, verifier).await.ok()["exchangeLoginCode"].clone()
}

/// Apple's callback form for a new sign-in, not yet posted, and the app's verifier.
async fn apple_form(app: &TestApp) -> (FormPost, String) {
    let (verifier, challenge) = pkce_pair();
    let form = Browser::new()
        .visit_until_form(&start_url(app, "apple", APP_URI, &challenge))
        .await;
    (form, verifier)
}

#[tokio::test]
async fn apple_sends_the_name_once_and_later_sign_ins_keep_it() {
    let (app, _google, apple) = spawn().await;
    apple.set_account(ana_on_apple());

    let first = sign_in(&app, "apple").await;
    assert_eq!(first["user"]["name"], "Ana Lima");
    // Later sign-ins have no `user` field: the account keeps its name.
    let (form, verifier) = apple_form(&app).await;
    assert!(form.get("user").is_none());
    let again = submit_and_exchange(&app, &form, &verifier).await;

    assert_eq!(again["user"]["id"], first["user"]["id"]);
    assert_eq!(again["user"]["name"], "Ana Lima");
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("identities", "").await, 1);
}

#[tokio::test]
async fn an_apple_account_first_seen_without_a_user_field_is_named_after_its_address() {
    let (app, _google, apple) = spawn().await;
    let account = ana_on_apple();
    apple.set_first_consent(&account.sub, false);
    apple.set_account(account);

    let payload = sign_in(&app, "apple").await;

    assert_eq!(payload["user"]["name"], "ana");
    assert_eq!(payload["user"]["email"], "ana@example.com");
}

#[tokio::test]
async fn an_unreadable_apple_user_field_only_loses_the_name() {
    let (app, _google, apple) = spawn().await;
    apple.set_account(ana_on_apple());
    let (form, verifier) = apple_form(&app).await;

    let broken = form.with("user", Some("{\"name\": [not json"));
    let payload = submit_and_exchange(&app, &broken, &verifier).await;

    assert_eq!(payload["user"]["name"], "ana");
}

#[tokio::test]
async fn apple_tokens_signed_with_es256_or_rs256_are_both_accepted_and_booleans_may_be_json() {
    let (app, _google, apple) = spawn().await;
    let mut account = ana_on_apple();
    account.email_verified = json!(true);
    account.is_private_email = Some(json!(false));
    apple.set_account(account);
    assert_eq!(apple.signer().alg, Algorithm::RS256);
    let first = sign_in(&app, "apple").await;

    let ec = apple.new_key("a-ec-1", Algorithm::ES256);
    apple.rotate_to(ec, false);
    let second = sign_in(&app, "apple").await;

    assert_eq!(first["user"]["id"], second["user"]["id"]);
    assert_eq!(app.count("identities", "").await, 1);
}

#[tokio::test]
async fn apple_gets_a_short_lived_es256_client_secret_made_from_the_team_key() {
    let (app, _google, apple) = spawn().await;
    apple.set_account(ana_on_apple());

    sign_in(&app, "apple").await;
    sign_in(&app, "apple").await;

    // The fake's token endpoint refuses anything else; these are the claims it checked.
    let secrets = apple.client_secrets();
    assert_eq!(secrets.len(), 2);
    let secret = &secrets[0];
    assert_eq!(secret["iss"], APPLE_TEAM_ID);
    assert_eq!(secret["sub"], APPLE_CLIENT_ID);
    assert_eq!(secret["aud"], apple.base_url);
    let lifetime = secret["exp"].as_i64().unwrap() - secret["iat"].as_i64().unwrap();
    assert!((60..=15 * 60).contains(&lifetime), "{lifetime}");
    assert_eq!(secrets[0], secrets[1], "reused while it is fresh");
}

/// What the server logs from here on, while the guard lives.
///
/// Best effort: tracing decides per call site, across all subscribers alive at the moment,
/// whether anyone wants its events, and with per-thread subscribers coming and going in
/// parallel tests an event is now and then judged unwanted and lost. (A process-wide
/// subscriber would keep them, but breaks other tests' spans.) So the logs here are only
/// checked for what the lines that did arrive say, never for how many arrived.
fn capture_logs() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // A `#[tokio::test]` runs the server's tasks on this thread too, so this sees their logs.
    (logs, tracing::subscriber::set_default(subscriber))
}

/// Signs in with `tamper` applied to the ID token and expects `provider_error` with nothing
/// created, and the logged refusal (when it is captured) to name `reason`, so a test of one
/// check does not pass because another one failed.
async fn assert_token_refused(provider: &str, reason: &str, tamper: impl Fn(&FakeOidc) -> Tamper) {
    let (logs, _guard) = capture_logs();
    let (app, google, apple) = spawn().await;
    google.set_account(ana_on_google());
    apple.set_account(ana_on_apple());
    let fake = if provider == "google" {
        &google
    } else {
        &apple
    };
    fake.set_tamper(tamper(fake));

    let (landing, _) = sign_in_at(&app, provider).await;

    assert_refused(&app, &landing, "provider_error").await;
    assert_eq!(fake.token_requests(), 1, "the code was redeemed");
    for line in logs.text().lines().filter(|l| l.contains("sign-in failed")) {
        assert!(
            line.contains(reason),
            "{provider}: expected {reason:?} in {line}"
        );
        assert!(!line.contains("eyJ"), "no token in the log: {line}");
    }
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    for provider in ["google", "apple"] {
        assert_token_refused(provider, "wrong audience", |_| Tamper {
            audience: Some("someone-elses-client-id".to_owned()),
            ..Tamper::default()
        })
        .await;
    }
}

#[tokio::test]
async fn an_id_token_with_another_or_no_nonce_is_refused() {
    for provider in ["google", "apple"] {
        assert_token_refused(provider, "nonce", |_| Tamper {
            nonce: Some("a-nonce-from-another-sign-in".to_owned()),
            ..Tamper::default()
        })
        .await;
        assert_token_refused(provider, "nonce", |_| Tamper {
            nonce: Some(String::new()),
            ..Tamper::default()
        })
        .await;
    }
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    for provider in ["google", "apple"] {
        assert_token_refused(provider, "expired", |_| Tamper {
            // Past the verifier's minute of leeway.
            expired_secs_ago: Some(120),
            ..Tamper::default()
        })
        .await;
    }
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    for provider in ["google", "apple"] {
        assert_token_refused(provider, "wrong issuer", |_| Tamper {
            issuer: Some("https://accounts.example.com".to_owned()),
            ..Tamper::default()
        })
        .await;
    }
}

#[tokio::test]
async fn an_id_token_signed_with_an_unpublished_key_under_a_published_kid_is_refused() {
    assert_token_refused("google", "bad signature", |fake| {
        let kid = fake.signer().kid;
        // Another RSA key claiming the published one's kid: the signature does not verify.
        let mut impostor = fake.new_key(&kid, Algorithm::RS256);
        impostor.kid = kid;
        Tamper {
            signer: Some(impostor),
            ..Tamper::default()
        }
    })
    .await;
}

#[tokio::test]
async fn an_hmac_or_mismatched_algorithm_token_is_refused() {
    for provider in ["google", "apple"] {
        assert_token_refused(provider, "HS256 refused", |fake| Tamper {
            signer: Some(fake.hmac_key(&fake.signer().kid)),
            ..Tamper::default()
        })
        .await;
    }
    // ES256 is one of Apple's algorithms, but not with an RSA key's kid.
    assert_token_refused("apple", "does not fit", |fake| Tamper {
        signer: Some(fake.mismatched_key(&fake.signer().kid)),
        ..Tamper::default()
    })
    .await;
    // Google does not sign with ES256 at all.
    assert_token_refused("google", "ES256 refused", |fake| {
        let ec = fake.new_key("g-ec-1", Algorithm::ES256);
        fake.rotate_to(ec.clone(), false);
        Tamper {
            signer: Some(ec),
            ..Tamper::default()
        }
    })
    .await;
}

#[tokio::test]
async fn a_token_response_without_an_id_token_is_refused() {
    for provider in ["google", "apple"] {
        assert_token_refused(provider, "without an id_token", |_| Tamper {
            omit_id_token: true,
            ..Tamper::default()
        })
        .await;
    }
}

#[tokio::test]
async fn a_key_published_after_a_rotation_is_fetched_once_and_random_kids_are_not_chased() {
    let (logs, _guard) = capture_logs();
    let (app, google, _apple) = spawn().await;
    google.set_account(ana_on_google());
    let first = sign_in(&app, "google").await;
    assert_eq!(google.jwks_requests(), 1);
    let again = sign_in(&app, "google").await;
    assert_eq!(google.jwks_requests(), 1, "known keys are cached");

    // Google rotates: the new key replaces the old one and signs from now on.
    let rotated = google.new_key("g-rsa-2", Algorithm::RS256);
    google.rotate_to(rotated, true);
    let after = sign_in(&app, "google").await;
    assert_eq!(google.jwks_requests(), 2, "the unknown kid was fetched");
    assert_eq!(after["user"]["id"], first["user"]["id"]);
    assert_eq!(again["user"]["id"], first["user"]["id"]);

    // A kid that no JWKS has: refused, and the provider is not asked again so soon.
    for kid in ["made-up-1", "made-up-2", "made-up-3"] {
        let unpublished = google.new_key(kid, Algorithm::RS256);
        google.set_tamper(Tamper {
            signer: Some(unpublished),
            ..Tamper::default()
        });
        let (landing, _) = sign_in_at(&app, "google").await;
        assert_eq!(app_error(&landing), "provider_error", "{kid}");
    }
    assert_eq!(google.jwks_requests(), 2, "at most one refetch a minute");
    for line in logs.text().lines().filter(|l| l.contains("sign-in failed")) {
        assert!(line.contains("does not publish"), "{line}");
    }
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("identities", "").await, 1);
    assert_eq!(app.count("session_members", "").await, 0);
}

#[tokio::test]
async fn keys_of_unknown_kinds_or_for_encryption_in_the_jwks_are_skipped() {
    let (app, google, _apple) = spawn().await;
    google.set_account(ana_on_google());
    google.publish_raw(json!({ "kty": "OKP", "crv": "X448", "kid": "x448", "x": "AAAA" }));
    google.publish_raw(json!({ "kty": "future-kind", "kid": "f1" }));
    // A key under the signing key's kid, published for encryption: it must not be the one
    // the signature is checked with.
    let signing = google.signer();
    google.publish_raw(
        json!({ "kty": "RSA", "use": "enc", "kid": signing.kid, "n": "AQAB", "e": "AQAB" }),
    );

    let payload = sign_in(&app, "google").await;

    assert_eq!(payload["user"]["email"], "ana@example.com");
}

#[tokio::test]
async fn a_jwks_endpoint_that_is_down_is_a_provider_error() {
    let google = FakeOidc::google().await;
    google.set_account(ana_on_google());
    // A port that was free a moment ago: nothing listens there now.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let down = format!("--google-jwks-url=http://{closed}/oauth2/v3/certs");
    let app = spawn_with_args(google.args(), &[&down]).await;

    let (landing, _) = sign_in_at(&app, "google").await;

    assert_refused(&app, &landing, "provider_error").await;
}

#[tokio::test]
async fn an_unverified_or_missing_email_is_refused() {
    let (app, google, apple) = spawn().await;
    let mut google_unverified = ana_on_google();
    google_unverified.email_verified = json!(false);
    let mut google_without_flag = ana_on_google();
    google_without_flag.email_verified = Value::Null;
    let mut google_without_email = ana_on_google();
    google_without_email.email = None;
    for account in [google_unverified, google_without_flag, google_without_email] {
        google.set_account(account.clone());
        let (landing, _) = sign_in_at(&app, "google").await;
        assert_eq!(app_error(&landing), "email_unverified", "{account:?}");
    }
    let mut apple_unverified = ana_on_apple();
    apple_unverified.email_verified = json!("false");
    let mut apple_unverified_bool = ana_on_apple();
    apple_unverified_bool.email_verified = json!(false);
    for account in [apple_unverified, apple_unverified_bool] {
        apple.set_account(account.clone());
        apple.set_first_consent(&account.sub, true);
        let (landing, _) = sign_in_at(&app, "apple").await;
        assert_eq!(app_error(&landing), "email_unverified", "{account:?}");
    }
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn one_address_reaches_one_account_through_github_google_and_apple() {
    let github = FakeOAuth::start().await;
    let google = FakeOidc::google().await;
    let apple = FakeOidc::apple().await;
    let mut args = github.github_args();
    args.extend(google.args());
    args.extend(apple.args());
    let app = spawn_with_args(args, &[]).await;
    github.set_github(ana_on_github());
    google.set_account(ana_on_google());
    apple.set_account(ana_on_apple());

    let by_github = sign_in(&app, "github").await;
    let by_google = sign_in(&app, "google").await;
    let by_apple = sign_in(&app, "apple").await;

    assert_eq!(by_google["user"]["id"], by_github["user"]["id"]);
    assert_eq!(by_apple["user"]["id"], by_github["user"]["id"]);
    assert_eq!(app.count("users", "").await, 1);
    assert_eq!(app.count("identities", "").await, 3);
    for provider in ["github", "google", "apple"] {
        assert_eq!(
            app.count("identities", &format!("provider = '{provider}'"))
                .await,
            1,
            "{provider}"
        );
    }
    assert_eq!(by_apple["user"]["name"], "Ana Lima");
}

#[tokio::test]
async fn declining_at_google_or_apple_sends_access_denied() {
    let (app, google, apple) = spawn().await;
    google.set_account(ana_on_google());
    apple.set_account(ana_on_apple());
    google.deny_consent();
    apple.deny_consent();

    for provider in ["google", "apple"] {
        let (landing, _) = sign_in_at(&app, provider).await;
        assert_eq!(app_error(&landing), "access_denied", "{provider}");
    }
    assert_eq!(google.token_requests() + apple.token_requests(), 0);
    assert_nothing_created(&app).await;
}

#[tokio::test]
async fn apples_callback_must_be_a_bounded_form_post_with_a_known_state() {
    let (app, _google, apple) = spawn().await;
    apple.set_account(ana_on_apple());
    let (form, _) = apple_form(&app).await;
    let http = reqwest::Client::new();

    // A GET with the form's fields in the URL is not how Apple calls back.
    let mut as_get = form.action.clone();
    as_get
        .query_pairs_mut()
        .extend_pairs(form.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    assert_refused_without_redirect(&as_get, StatusCode::METHOD_NOT_ALLOWED, "BAD_REQUEST").await;
    // A forged state goes nowhere.
    match Browser::new()
        .submit(&form.with("state", Some("forged-state")))
        .await
    {
        Hop::Stop(Landing::Page { status, .. }) => assert_eq!(status, StatusCode::BAD_REQUEST),
        Hop::Stop(landing) => panic!("expected an error page, got {landing:?}"),
        Hop::Next(url) => panic!("expected an error page, got a redirect to {url}"),
    }
    // Not a form.
    let json_body = http
        .post(form.action.clone())
        .json(&json!({ "code": "x", "state": "y" }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST);
    // Too large.
    let huge = form.with("user", Some(&"x".repeat(64 * 1024)));
    let too_large = http
        .post(form.action.clone())
        .form(&huge.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A form post to a provider that calls back with GET.
    let github_post = http
        .post(app.url("/auth/github/callback"))
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(
        github_post.status(),
        StatusCode::NOT_FOUND,
        "github is off here"
    );

    assert_eq!(apple.token_requests(), 0);
    assert_nothing_created(&app).await;
    assert_eq!(
        app.count("oauth_states", "").await,
        1,
        "the real one is untouched"
    );
    // The untouched form still works.
    match Browser::new().submit(&form).await {
        Hop::Next(url) => assert!(url.as_str().starts_with("photon://auth?code=")),
        Hop::Stop(landing) => panic!("the real callback failed: {landing:?}"),
    }
}

#[tokio::test]
async fn a_replayed_apple_form_post_is_refused() {
    let (app, _google, apple) = spawn().await;
    apple.set_account(ana_on_apple());
    let (form, _) = apple_form(&app).await;
    assert!(matches!(Browser::new().submit(&form).await, Hop::Next(_)));

    match Browser::new().submit(&form).await {
        Hop::Stop(Landing::Page { status, .. }) => assert_eq!(status, StatusCode::BAD_REQUEST),
        _ => panic!("a replay must not redirect"),
    }
    assert_eq!(apple.token_requests(), 1);
    assert_eq!(app.count("login_codes", "").await, 1);
}

#[tokio::test]
async fn auth_providers_lists_apple_and_google_first_when_configured() {
    let github = FakeOAuth::start().await;
    let google = FakeOidc::google().await;
    let apple = FakeOidc::apple().await;
    let mut args = github.github_args();
    args.extend(google.args());
    args.extend(apple.args());
    let app = spawn_with_args(args, &[]).await;

    let providers = app
        .gql_anon("{ authProviders { name startUrl } }", json!({}))
        .await;

    assert_eq!(
        providers.ok()["authProviders"],
        json!([
            { "name": "apple", "startUrl": app.url("/auth/apple/start") },
            { "name": "google", "startUrl": app.url("/auth/google/start") },
            { "name": "github", "startUrl": app.url("/auth/github/start") },
        ])
    );
}

#[test]
fn apple_and_google_settings_are_checked_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = format!("--data-dir={}", dir.path().display());
    let resolve = |extra: &[&str]| {
        let mut args = vec!["photon", "--bind=127.0.0.1:0", data_dir.as_str()];
        args.extend_from_slice(extra);
        photon::config::settings_from_args(args).unwrap().resolve()
    };
    let key = dir.path().join("AuthKey.p8");
    let pem = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(
        &p256::SecretKey::random(&mut rand_core::OsRng),
        p256::pkcs8::LineEnding::LF,
    )
    .unwrap();
    std::fs::write(&key, pem.as_bytes()).unwrap();
    let key_arg = format!("--apple-private-key={}", key.display());
    let apple = [
        "--apple-client-id=com.example.photon",
        "--apple-team-id=TEAM",
        "--apple-key-id=KEY",
        key_arg.as_str(),
    ];

    assert!(!resolve(&apple).unwrap().dev_sign_in);
    assert!(
        !resolve(&["--google-client-id=x", "--google-client-secret=y"])
            .unwrap()
            .dev_sign_in
    );
    assert!(resolve(&apple[..3]).is_err(), "three of four is a mistake");
    assert!(resolve(&["--google-client-id=x"]).is_err());

    let missing = format!(
        "--apple-private-key={}",
        dir.path().join("nope.p8").display()
    );
    let err = resolve(&[apple[0], apple[1], apple[2], missing.as_str()])
        .expect_err("a missing key fails start-up");
    assert!(format!("{err:#}").contains("APPLE_PRIVATE_KEY"), "{err:#}");
    let not_a_key = dir.path().join("not-a-key.p8");
    std::fs::write(
        &not_a_key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let bad = format!("--apple-private-key={}", not_a_key.display());
    let err = resolve(&[apple[0], apple[1], apple[2], bad.as_str()])
        .expect_err("a bad key fails start-up");
    assert!(format!("{err:#}").contains("P-256"), "{err:#}");
}
