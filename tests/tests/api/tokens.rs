//! Access tokens (JWT) and refresh tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use photon_tests::{JWT_SECRET, TestApp, TestUser};
use serde_json::{Value, json};

/// The issuer is the server's public URL, here its own address.
fn issuer(app: &TestApp) -> String {
    format!("{}/", app.base_url)
}

/// The user's uuid, read out of a valid access token (tests forge tokens for that user).
fn subject(user: &TestUser) -> String {
    let payload = user.token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["sub"].as_str().unwrap().to_owned()
}

fn forge(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Turns the refresh-reuse grace window off: any second use of a token is a reuse.
const NO_GRACE: &str = "--refresh-reuse-grace-secs=0";

async fn me_with(app: &TestApp, token: &str) -> photon_tests::GqlResponse {
    app.gql(Some(token), "{ me { id } }", json!({})).await
}

#[tokio::test]
async fn a_valid_token_identifies_the_user() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    assert_eq!(me_with(&app, &user.token).await.ok()["me"]["id"], user.id);
    // A forged token with every claim right is, by construction, valid.
    let token = forge(
        json!({ "sub": subject(&user), "iss": issuer(&app), "aud": "photon", "iat": now(), "exp": now() + 60 }),
        JWT_SECRET,
    );
    assert_eq!(me_with(&app, &token).await.ok()["me"]["id"], user.id);
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_never_anonymous() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let sub = subject(&user);
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let none_claims = URL_SAFE_NO_PAD.encode(
        json!({ "sub": sub, "iss": issuer(&app), "aud": "photon", "iat": now(), "exp": now() + 600 })
            .to_string(),
    );
    let cases = [
        (
            "expired",
            forge(
                json!({ "sub": sub, "iss": issuer(&app), "aud": "photon", "iat": now() - 7200, "exp": now() - 3600 }),
                JWT_SECRET,
            ),
        ),
        (
            "wrong signature",
            forge(
                json!({ "sub": sub, "iss": issuer(&app), "aud": "photon", "iat": now(), "exp": now() + 600 }),
                "another-secret-another-secret-another-secret",
            ),
        ),
        ("alg none", format!("{none_header}.{none_claims}.")),
        (
            "wrong audience",
            forge(
                json!({ "sub": sub, "iss": issuer(&app), "aud": "someone-else", "iat": now(), "exp": now() + 600 }),
                JWT_SECRET,
            ),
        ),
        (
            "wrong issuer",
            forge(
                json!({ "sub": sub, "iss": "https://evil.example/", "aud": "photon", "iat": now(), "exp": now() + 600 }),
                JWT_SECRET,
            ),
        ),
        (
            "no expiry",
            forge(
                json!({ "sub": sub, "iss": issuer(&app), "aud": "photon", "iat": now() }),
                JWT_SECRET,
            ),
        ),
        ("garbage", "not-a-jwt".to_owned()),
        ("empty", String::new()),
    ];
    for (case, token) in cases {
        let response = me_with(&app, &token).await;
        response.assert_code("UNAUTHENTICATED");
        assert!(
            response.body.get("data").is_none(),
            "{case}: the request must not run at all"
        );
        // Public fields are not served to a bad token either: it is never treated as anonymous.
        let response = app
            .gql(Some(&token), "{ authProviders { name } }", json!({}))
            .await;
        response.assert_code("UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn a_header_with_another_scheme_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", "Basic YW5hOnNlY3JldA==")
        .json(&json!({ "query": "{ authProviders { name } }" }))
        .send()
        .await
        .unwrap();
    TestApp::read(response).await.assert_code("UNAUTHENTICATED");
}

#[tokio::test]
async fn with_the_graphql_response_media_type_a_bad_token_is_a_401() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .bearer_auth("garbage")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

#[tokio::test]
async fn no_token_is_anonymous_and_private_fields_say_unauthenticated() {
    let app = TestApp::spawn().await;
    app.gql_anon("{ me { id } }", json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    let providers = app.gql_anon("{ authProviders { name } }", json!({})).await;
    assert!(providers.ok()["authProviders"].is_array());
}

#[tokio::test]
async fn access_tokens_last_fifteen_minutes_by_default() {
    let app = TestApp::spawn().await;
    let response = app
        .gql_anon(
            r#"mutation { devSignIn(email: "ana@example.com") { accessTokenExpiresAt } }"#,
            json!({}),
        )
        .await;
    let expires: chrono::DateTime<chrono::Utc> = response.ok()["devSignIn"]["accessTokenExpiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let minutes = (expires - chrono::Utc::now()).num_seconds() as f64 / 60.0;
    assert!((14.5..=15.0).contains(&minutes), "{minutes} minutes");
}

const REFRESH: &str = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken user { id } } }";

#[tokio::test]
async fn refreshing_rotates_the_refresh_token() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let response = app
        .gql_anon(REFRESH, json!({ "t": user.refresh_token }))
        .await;
    let payload = &response.ok()["refreshToken"];
    assert_eq!(payload["user"]["id"], user.id);
    let new_refresh = payload["refreshToken"].as_str().unwrap();
    assert_ne!(new_refresh, user.refresh_token);
    let new_access = payload["accessToken"].as_str().unwrap();
    assert_eq!(me_with(&app, new_access).await.ok()["me"]["id"], user.id);
    // The new one works in turn.
    app.gql_anon(REFRESH, json!({ "t": new_refresh }))
        .await
        .ok();
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let app = TestApp::spawn_with(&[NO_GRACE]).await;
    let user = app.sign_in("ana@example.com").await;
    let first = app
        .gql_anon(REFRESH, json!({ "t": user.refresh_token }))
        .await;
    let second_token = first.ok()["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // A thief replays the old token: refused...
    app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))
        .await
        .assert_code("UNAUTHENTICATED");
    // ...and the legitimate holder's current token is revoked with it.
    app.gql_anon(REFRESH, json!({ "t": second_token }))
        .await
        .assert_code("UNAUTHENTICATED");
    assert_eq!(app.count("refresh_tokens", "revoked_at IS NULL").await, 0);
}

#[tokio::test]
async fn another_sign_in_is_another_family() {
    let app = TestApp::spawn_with(&[NO_GRACE]).await;
    let phone = app.sign_in("ana@example.com").await;
    let laptop = app.sign_in("ana@example.com").await;
    app.gql_anon(REFRESH, json!({ "t": phone.refresh_token }))
        .await
        .ok();
    app.gql_anon(REFRESH, json!({ "t": phone.refresh_token }))
        .await
        .assert_code("UNAUTHENTICATED");
    // The phone's family is gone; the laptop's is untouched.
    app.gql_anon(REFRESH, json!({ "t": laptop.refresh_token }))
        .await
        .ok();
}

#[tokio::test]
async fn unknown_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    for token in ["", "phrt_nope", &"x".repeat(10_000)] {
        app.gql_anon(REFRESH, json!({ "t": token }))
            .await
            .assert_code("UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let logout = "mutation($t: String!) { logout(refreshToken: $t) }";
    assert_eq!(
        app.gql_anon(logout, json!({ "t": user.refresh_token }))
            .await
            .ok()["logout"],
        true
    );
    app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))
        .await
        .assert_code("UNAUTHENTICATED");
    assert_eq!(
        app.gql_anon(logout, json!({ "t": user.refresh_token }))
            .await
            .ok()["logout"],
        false
    );
    assert_eq!(
        app.gql_anon(logout, json!({ "t": "phrt_unknown" }))
            .await
            .ok()["logout"],
        false
    );
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    use sha2::{Digest, Sha256};
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let digest: String = Sha256::digest(user.refresh_token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        app.count("refresh_tokens", &format!("token_hash = '{digest}'"))
            .await,
        1
    );
    // The token itself is nowhere: not in the hash column, not in any other text column.
    let token = user.refresh_token.replace('\'', "");
    assert_eq!(
        app.count("refresh_tokens", &format!("token_hash = '{token}'"))
            .await,
        0
    );
    assert_eq!(app.count("refresh_tokens", "").await, 1);
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let past = "2001-01-01 00:00:00+00";
    let sql = match app.backend {
        photon_tests::Backend::Postgres => {
            format!("UPDATE refresh_tokens SET expires_at = '{past}'")
        }
        // SQLite keeps timestamps as RFC 3339 text.
        photon_tests::Backend::Sqlite => {
            "UPDATE refresh_tokens SET expires_at = '2001-01-01T00:00:00+00:00'".to_owned()
        }
    };
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, &sql)
        .await
        .unwrap();
    app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))
        .await
        .assert_code("UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_grace_window_racing_refreshes_of_one_token_leave_no_live_token_behind() {
    let app = TestApp::spawn_with(&[NO_GRACE]).await;
    let user = app.sign_in("ana@example.com").await;
    let attempts = futures_util::future::join_all(
        (0..8).map(|_| app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))),
    )
    .await;
    let winners = attempts
        .iter()
        .filter(|r| r.body.get("errors").is_none())
        .count();
    assert!(winners <= 1, "{winners} refreshes of one token succeeded");
    for loser in attempts.iter().filter(|r| r.body.get("errors").is_some()) {
        loser.assert_code("UNAUTHENTICATED");
    }
    // A token used twice is treated as stolen: the whole family is revoked, including
    // whatever the winner received.
    assert_eq!(app.count("refresh_tokens", "revoked_at IS NULL").await, 0);
}

#[tokio::test]
async fn dev_sign_in_is_refused_where_it_is_disabled() {
    let app = TestApp::spawn_with(&["--dev-sign-in=false"]).await;
    let before = app.snapshot().await;
    app.gql_anon(
        r#"mutation { devSignIn(email: "ana@example.com") { accessToken } }"#,
        json!({}),
    )
    .await
    .assert_code("FORBIDDEN");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn dev_sign_in_refuses_malformed_addresses() {
    let app = TestApp::spawn().await;
    for email in ["", "ana", "ana@", "a b@example.com", "ana@example.com\u{0}"] {
        app.gql_anon(
            "mutation($e: String!) { devSignIn(email: $e) { accessToken } }",
            json!({ "e": email }),
        )
        .await
        .assert_code("BAD_USER_INPUT");
    }
    assert_eq!(app.count("users", "").await, 0);
}

#[tokio::test]
async fn signing_in_again_reaches_the_same_account() {
    let app = TestApp::spawn().await;
    let first = app.sign_in("ana@example.com").await;
    let second = app.sign_in("ANA@Example.com").await;
    assert_eq!(first.id, second.id);
    assert_eq!(app.count("users", "").await, 1);
}

/// Moves every revocation `secs` into the past, as if that long had passed since.
async fn age_revocations(app: &TestApp, secs: i64) {
    let at = chrono::Utc::now() - chrono::Duration::seconds(secs);
    let at = match app.backend {
        photon_tests::Backend::Postgres => at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        // SQLite keeps timestamps as RFC 3339 text.
        photon_tests::Backend::Sqlite => at.to_rfc3339(),
    };
    sea_orm::ConnectionTrait::execute_unprepared(
        &app.db,
        &format!("UPDATE refresh_tokens SET revoked_at = '{at}' WHERE revoked_at IS NOT NULL"),
    )
    .await
    .unwrap();
}

fn refreshed(response: &photon_tests::GqlResponse) -> (String, String) {
    let payload = &response.ok()["refreshToken"];
    (
        payload["accessToken"].as_str().unwrap().to_owned(),
        payload["refreshToken"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_refresh_retried_within_the_grace_window_gets_a_working_pair() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    // The first answer is lost on the way; the app retries with the same token.
    let (_, lost) = refreshed(
        &app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))
            .await,
    );
    let (access, retried) = refreshed(
        &app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))
            .await,
    );
    assert_ne!(retried, lost);
    assert_eq!(me_with(&app, &access).await.ok()["me"]["id"], user.id);
    // Nothing was revoked: the retried pair rotates on, and so would the lost one.
    refreshed(&app.gql_anon(REFRESH, json!({ "t": retried })).await);
    refreshed(&app.gql_anon(REFRESH, json!({ "t": lost })).await);
}

#[tokio::test]
async fn reuse_after_the_grace_window_still_revokes_the_family() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let (_, current) = refreshed(
        &app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))
            .await,
    );
    age_revocations(&app, 31).await;
    app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_anon(REFRESH, json!({ "t": current }))
        .await
        .assert_code("UNAUTHENTICATED");
    assert_eq!(app.count("refresh_tokens", "revoked_at IS NULL").await, 0);
}

#[tokio::test]
async fn the_grace_window_does_not_revive_a_logged_out_family() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let (_, current) = refreshed(
        &app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))
            .await,
    );
    let logout = "mutation($t: String!) { logout(refreshToken: $t) }";
    app.gql_anon(logout, json!({ "t": current })).await.ok();
    for token in [&user.refresh_token, &current] {
        app.gql_anon(REFRESH, json!({ "t": token }))
            .await
            .assert_code("UNAUTHENTICATED");
    }
    assert_eq!(app.count("refresh_tokens", "revoked_at IS NULL").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refreshes_of_one_token_within_the_grace_window_all_get_a_pair() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let attempts = futures_util::future::join_all(
        (0..8).map(|_| app.gql_anon(REFRESH, json!({ "t": user.refresh_token }))),
    )
    .await;
    let mut tokens: Vec<String> = attempts.iter().map(|r| refreshed(r).1).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 8, "each racer gets its own token");
    // No family was revoked: every racer's token works.
    for token in tokens {
        refreshed(&app.gql_anon(REFRESH, json!({ "t": token })).await);
    }
}

#[test]
fn the_grace_window_is_range_checked() {
    let args = |value: &str| {
        vec![
            "photon".to_owned(),
            format!("--refresh-reuse-grace-secs={value}"),
        ]
    };
    assert!(photon::config::settings_from_args(args("300")).is_ok());
    assert!(photon::config::settings_from_args(args("301")).is_err());
    assert!(photon::config::settings_from_args(args("-1")).is_err());
}
