//! Rate limits per client IP and per user: each kind trips with RATE_LIMITED and a
//! `retryAfter` (429 and `Retry-After` on plain HTTP), leaves other clients alone and resets
//! after its window; forwarding headers count only from trusted proxies; WebSocket caps.
//!
//! Every server here turns the limits on (the harness turns them off) with tiny buckets that
//! refill one token a second (60 a minute), so waiting for a reset is quick.

use std::time::Duration;

use photon_tests::ws::{Protocol, Received, WsClient};
use photon_tests::{GqlResponse, TestApp, TestUser, create_session};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Long enough for a 60-a-minute bucket to give back one token.
const REFILL: Duration = Duration::from_millis(1200);

async fn spawn(flags: &[&str]) -> TestApp {
    let mut args = vec!["--rate-limits=true"];
    args.extend_from_slice(flags);
    TestApp::spawn_with(&args).await
}

/// Asserts a GraphQL error list where the errors are RATE_LIMITED with a whole `retryAfter`.
fn assert_rate_limited(errors: &Value) {
    let errors = errors.as_array().expect("errors");
    assert!(!errors.is_empty());
    for error in errors {
        assert_eq!(error["extensions"]["code"], "RATE_LIMITED", "{error}");
        let retry = error["extensions"]["retryAfter"]
            .as_u64()
            .expect("retryAfter");
        assert!(retry >= 1, "{error}");
    }
}

fn assert_limited(response: &GqlResponse) {
    assert_rate_limited(&response.body["errors"]);
}

/// A 429 with `Retry-After` and a RATE_LIMITED body.
fn assert_429(response: &GqlResponse) {
    assert_eq!(
        response.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        response.body
    );
    let retry: u64 = response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_limited(response);
}

/// POSTs an anonymous `{ __typename }`, claiming to come from `forwarded_for`.
async fn anon_from(app: &TestApp, forwarded_for: Option<&str>) -> GqlResponse {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    TestApp::read(request.send().await.unwrap()).await
}

/// GETs a plain route, claiming to come from `forwarded_for`; the body is read as JSON only
/// when it is one.
async fn get_from(app: &TestApp, path: &str, forwarded_for: Option<&str>) -> GqlResponse {
    let mut request = app.client.get(app.url(path));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    GqlResponse {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_ip_and_reset() {
    let app = spawn(&["--rate-anonymous-per-minute=60", "--rate-anonymous-burst=3"]).await;
    // Signing in is an anonymous request too: it takes the first token.
    let ana = app.sign_in("ana@example.com").await;
    anon_from(&app, None).await.ok();
    anon_from(&app, None).await.ok();
    let refused = anon_from(&app, None).await;
    assert_429(&refused);
    // Both response types get the 429.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_429(&TestApp::read(response).await);
    // A signed-in caller is not counted as anonymous.
    app.gql_as(&ana, "{ me { id } }", json!({})).await.ok();
    tokio::time::sleep(REFILL).await;
    anon_from(&app, None).await.ok();
}

#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let limits = ["--rate-anonymous-per-minute=60", "--rate-anonymous-burst=1"];
    let mut trusted_flags = limits.to_vec();
    trusted_flags.push("--trusted-proxies=10.0.0.0/8,127.0.0.1/32");
    let behind_proxy = spawn(&trusted_flags).await;
    anon_from(&behind_proxy, Some("198.51.100.1")).await.ok();
    assert_429(&anon_from(&behind_proxy, Some("198.51.100.1")).await);
    // Another client behind the same proxy has its own bucket...
    anon_from(&behind_proxy, Some("198.51.100.2")).await.ok();
    // ...and a forged left part does not pick the bucket: the rightmost untrusted hop does.
    assert_429(&anon_from(&behind_proxy, Some("203.0.113.50, 198.51.100.2")).await);
    anon_from(&behind_proxy, Some("198.51.100.1, 198.51.100.3, 10.1.1.1"))
        .await
        .ok();

    // Without the proxy trusted, the header is ignored: every request is 127.0.0.1's.
    let direct = spawn(&limits).await;
    anon_from(&direct, Some("198.51.100.1")).await.ok();
    assert_429(&anon_from(&direct, Some("198.51.100.2")).await);
    assert_429(&anon_from(&direct, None).await);

    // A proxy outside the listed range is not trusted either.
    let mut other_proxy = limits.to_vec();
    other_proxy.push("--trusted-proxies=10.0.0.0/8");
    let elsewhere = spawn(&other_proxy).await;
    anon_from(&elsewhere, Some("198.51.100.1")).await.ok();
    assert_429(&anon_from(&elsewhere, Some("198.51.100.2")).await);
}

const DEV_SIGN_IN: &str =
    "mutation($email: String!) { devSignIn(email: $email) { accessToken refreshToken } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";

async fn post_from(app: &TestApp, ip: &str, query: &str, variables: Value) -> GqlResponse {
    let request = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "query": query, "variables": variables }));
    TestApp::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn sign_in_and_refresh_are_limited_per_ip() {
    let app = spawn(&[
        "--trusted-proxies=127.0.0.1",
        "--rate-sign-in-per-minute=60",
        "--rate-sign-in-burst=2",
        "--rate-refresh-per-minute=60",
        "--rate-refresh-burst=1",
    ])
    .await;
    let attacker = "198.51.100.66";
    let email = |n: u32| json!({ "email": format!("u{n}@example.com") });
    post_from(&app, attacker, DEV_SIGN_IN, email(1)).await.ok();
    post_from(&app, attacker, DEV_SIGN_IN, email(2)).await.ok();
    let refused = post_from(&app, attacker, DEV_SIGN_IN, email(3)).await;
    assert_eq!(refused.status, StatusCode::OK);
    assert_limited(&refused);
    // Aliases do not multiply the allowance.
    let aliased = "mutation { a: exchangeLoginCode(code: \"x\", codeVerifier: \"y\") { accessToken } b: exchangeLoginCode(code: \"x\", codeVerifier: \"y\") { accessToken } }";
    assert_limited(&post_from(&app, attacker, aliased, json!({})).await);
    // Someone else is unaffected.
    let other = post_from(&app, "198.51.100.7", DEV_SIGN_IN, email(4)).await;
    let refresh_token = other.ok()["devSignIn"]["refreshToken"].clone();

    let first = post_from(&app, "198.51.100.7", REFRESH, json!({ "t": refresh_token })).await;
    let next = first.ok()["refreshToken"]["refreshToken"].clone();
    assert_limited(&post_from(&app, "198.51.100.7", REFRESH, json!({ "t": next })).await);
    tokio::time::sleep(REFILL).await;
    post_from(&app, "198.51.100.7", REFRESH, json!({ "t": next }))
        .await
        .ok();
    post_from(&app, attacker, DEV_SIGN_IN, email(5)).await.ok();
}

#[tokio::test]
async fn sign_in_redirects_and_invite_links_answer_429() {
    let app = spawn(&[
        "--trusted-proxies=127.0.0.1",
        "--rate-oauth-per-minute=60",
        "--rate-oauth-burst=2",
        "--rate-join-link-per-minute=60",
        "--rate-join-link-burst=1",
    ])
    .await;
    let ip = Some("198.51.100.9");
    let link = "/join/ABCD-EFGH-JKLM";
    let first = get_from(&app, link, ip).await;
    assert_ne!(first.status, StatusCode::TOO_MANY_REQUESTS);
    assert_429(&get_from(&app, link, ip).await);
    assert_ne!(
        get_from(&app, link, Some("198.51.100.10")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Start and callback share one bucket.
    let start = get_from(&app, "/auth/github/start", ip).await;
    assert_ne!(start.status, StatusCode::TOO_MANY_REQUESTS);
    let callback = get_from(&app, "/auth/github/callback?code=x&state=y", ip).await;
    assert_ne!(callback.status, StatusCode::TOO_MANY_REQUESTS);
    assert_429(&get_from(&app, "/auth/discord/start", ip).await);
    assert_429(&get_from(&app, "/auth/github/callback?code=x&state=y", ip).await);
    tokio::time::sleep(REFILL).await;
    assert_ne!(
        get_from(&app, "/auth/github/start", ip).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_ne!(
        get_from(&app, link, ip).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

const UPDATE_NAME: &str = "mutation($n: String) { updateProfile(input: { name: $n }) { name } }";

#[tokio::test]
async fn mutations_are_limited_per_user_overall() {
    let app = spawn(&["--rate-mutation-per-minute=60", "--rate-mutation-burst=3"]).await;
    // Sign-ins are anonymous mutations: they count for the IP, not for the users.
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    // A document with three mutation fields uses three tokens.
    let three = "mutation { a: updateProfile(input: { name: \"A\" }) { name } b: updateProfile(input: { name: \"B\" }) { name } c: updateProfile(input: { name: \"C\" }) { name } }";
    app.gql_as(&ana, three, json!({})).await.ok();
    let refused = app.gql_as(&ana, UPDATE_NAME, json!({ "n": "D" })).await;
    assert_limited(&refused);
    assert_eq!(refused.body["errors"][0]["path"], json!(["updateProfile"]));
    // Nothing was written by the refused field.
    let name = app.gql_as(&ana, "{ me { name } }", json!({})).await;
    assert_eq!(name.ok()["me"]["name"], "C");
    app.gql_as(&ben, UPDATE_NAME, json!({ "n": "Ben" }))
        .await
        .ok();
    tokio::time::sleep(REFILL).await;
    app.gql_as(&ana, UPDATE_NAME, json!({ "n": "E" }))
        .await
        .ok();
}

#[tokio::test]
async fn find_user_by_email_alias_bomb_is_refused() {
    // The alias limit of the cost check would refuse this document first; it is raised here
    // so the rate limit, the second line of defence, is what is tested.
    let app = spawn(&[
        "--rate-find-user-per-minute=60",
        "--rate-find-user-burst=5",
        "--max-aliases=1000",
        "--max-root-fields=1000",
    ])
    .await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let aliases: String = (0..200)
        .map(|i| format!("u{i}: findUserByEmail(email: \"user{i}@example.com\") {{ id }} "))
        .collect();
    let bomb = app
        .gql_as(&ana, &format!("{{ {aliases} }}"), json!({}))
        .await;
    // Five lookups ran; every other alias was refused without touching the database.
    let errors = bomb.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 195);
    assert_rate_limited(&bomb.body["errors"]);
    let single = "query($e: String!) { findUserByEmail(email: $e) { id } }";
    assert_limited(
        &app.gql_as(&ana, single, json!({ "e": "ben@example.com" }))
            .await,
    );
    let found = app
        .gql_as(&ben, single, json!({ "e": "ana@example.com" }))
        .await;
    assert_eq!(found.ok()["findUserByEmail"]["id"], ana.id.as_str());
    tokio::time::sleep(REFILL).await;
    app.gql_as(&ana, single, json!({ "e": "ben@example.com" }))
        .await
        .ok();
}

/// Calls `query` twice as `user`: the first is counted whatever its outcome, the second is
/// refused.
async fn trips_on_second_call(app: &TestApp, user: &TestUser, query: &str, variables: Value) {
    let first = app.gql_as(user, query, variables.clone()).await;
    assert!(
        !first.codes().iter().any(|c| c == "RATE_LIMITED"),
        "{:?}",
        first.body
    );
    assert_limited(&app.gql_as(user, query, variables).await);
}

#[tokio::test]
async fn tight_per_user_limits_trip_and_spare_others() {
    let app = spawn(&[
        "--rate-photo-upload-per-minute=60",
        "--rate-photo-upload-burst=1",
        "--rate-friend-request-per-minute=60",
        "--rate-friend-request-burst=1",
        "--rate-invite-per-minute=60",
        "--rate-invite-burst=1",
        "--rate-register-device-per-minute=60",
        "--rate-register-device-burst=1",
    ])
    .await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let cara = app.sign_in("cara@example.com").await;
    let (session, _) = create_session(&app, &ana, "Trip").await;

    let friend = "mutation($u: ID!) { sendFriendRequest(userId: $u) { id } }";
    trips_on_second_call(&app, &ana, friend, json!({ "u": cara.id })).await;
    app.gql_as(&ben, friend, json!({ "u": cara.id })).await.ok();

    let upload = photon_tests::photos::REQUEST;
    let input = json!({ "input": {
        "sessionId": session, "sha256": "ab".repeat(32), "contentType": "image/jpeg", "byteSize": 10,
    }});
    trips_on_second_call(&app, &ana, upload, input).await;

    let invite = "mutation($id: ID!, $users: [ID!]!) { inviteToSession(sessionId: $id, userIds: $users) { id } }";
    trips_on_second_call(&app, &ana, invite, json!({ "id": session, "users": [] })).await;

    let register = "mutation($t: String!) { registerDevice(token: $t, platform: ANDROID) { id } }";
    trips_on_second_call(&app, &ana, register, json!({ "t": "token-a" })).await;
    app.gql_as(&ben, register, json!({ "t": "token-b" }))
        .await
        .ok();
}

#[tokio::test]
async fn join_leave_toggling_is_limited() {
    let app = spawn(&[
        "--rate-join-leave-per-minute=60",
        "--rate-join-leave-burst=2",
    ])
    .await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let cara = app.sign_in("cara@example.com").await;
    let (session, code) = create_session(&app, &ana, "Party").await;
    let join = "mutation($c: String!) { joinSession(inviteCode: $c) { id } }";
    let leave = "mutation($s: ID!) { leaveSession(sessionId: $s) }";
    app.gql_as(&ben, join, json!({ "c": code })).await.ok();
    app.gql_as(&ben, leave, json!({ "s": session })).await.ok();
    let events_before = app.count("events", "true").await;
    assert_limited(&app.gql_as(&ben, join, json!({ "c": code })).await);
    assert_eq!(app.count("events", "true").await, events_before);
    app.gql_as(&cara, join, json!({ "c": code })).await.ok();
    tokio::time::sleep(REFILL).await;
    app.gql_as(&ben, join, json!({ "c": code })).await.ok();
}

/// Tries to open a WebSocket: `None` if it opened (it is closed again at once), else the
/// HTTP status and `Retry-After` it was refused with.
async fn refused_open(app: &TestApp) -> Option<(u16, Option<String>)> {
    let mut request = format!("ws://{}/graphql", app.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(Protocol::Transport.name()),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, _)) => {
            let _ = socket.close(None).await;
            None
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Some((
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        )),
        Err(other) => panic!("unexpected WebSocket error: {other}"),
    }
}

#[tokio::test]
async fn websocket_connections_per_ip_are_capped() {
    let app = spawn(&["--ws-connections-per-ip=2"]).await;
    let first = WsClient::open(&app, Protocol::Transport).await;
    let _second = WsClient::open(&app, Protocol::Legacy).await;
    let (status, retry_after) = refused_open(&app).await.unwrap();
    assert_eq!(status, 429);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // A closed socket gives its place back.
    first.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match refused_open(&app).await {
            None => break,
            Some(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(refused) => panic!("still refused after a close: {refused:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_connections_per_user_are_capped() {
    let app = spawn(&["--ws-connections-per-user=1"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    for protocol in Protocol::BOTH {
        let held = WsClient::connect_as(&app, protocol, &ana.token).await;
        let mut extra = WsClient::open(&app, protocol).await;
        extra
            .init(json!({ "authorization": format!("Bearer {}", ana.token) }))
            .await;
        assert_eq!(extra.expect_close().await.0, 4429);
        // Another user, and anonymous sockets, are not counted against Ana.
        let other = WsClient::connect_as(&app, protocol, &ben.token).await;
        let anonymous = WsClient::connect(&app, protocol, json!({})).await;
        for client in [held, other, anonymous] {
            client.close().await;
        }
        // Ben's and Ana's places come back once the server sees the closes.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn websocket_init_attempts_are_limited_per_ip() {
    let app = spawn(&["--rate-ws-init-per-minute=60", "--rate-ws-init-burst=2"]).await;
    let a = WsClient::connect(&app, Protocol::Transport, json!({})).await;
    let b = WsClient::connect(&app, Protocol::Legacy, json!({})).await;
    let mut c = WsClient::open(&app, Protocol::Transport).await;
    c.init(json!({})).await;
    assert_eq!(c.expect_close().await.0, 4429);
    tokio::time::sleep(REFILL).await;
    let d = WsClient::connect(&app, Protocol::Transport, json!({})).await;
    for client in [a, b, d] {
        client.close().await;
    }
}

#[tokio::test]
async fn subscription_starts_are_limited_per_connection() {
    let app = spawn(&[
        "--rate-ws-subscribe-per-minute=60",
        "--rate-ws-subscribe-burst=2",
    ])
    .await;
    let ana = app.sign_in("ana@example.com").await;
    for protocol in Protocol::BOTH {
        let mut client = WsClient::connect_as(&app, protocol, &ana.token).await;
        for id in ["1", "2"] {
            client.subscribe(id, "{ __typename }", json!({})).await;
            client.next_payload(id).await;
            client.expect_complete(id).await;
        }
        client.subscribe("3", "{ __typename }", json!({})).await;
        match client.recv().await {
            Received::Message(m) if m["type"] == "error" && m["id"] == "3" => {
                assert_rate_limited(&m["payload"]);
            }
            other => panic!("expected an error for 3, got {other:?}"),
        }
        // The connection stays open, and a new one has its own allowance.
        let mut fresh = WsClient::connect_as(&app, protocol, &ana.token).await;
        fresh.subscribe("1", "{ __typename }", json!({})).await;
        fresh.next_payload("1").await;
        tokio::time::sleep(REFILL).await;
        client.subscribe("4", "{ __typename }", json!({})).await;
        client.next_payload("4").await;
        client.close().await;
        fresh.close().await;
    }
}

#[tokio::test]
async fn anonymous_websocket_operations_count_per_ip() {
    let app = spawn(&["--rate-anonymous-per-minute=60", "--rate-anonymous-burst=1"]).await;
    let mut client = WsClient::connect(&app, Protocol::Transport, json!({})).await;
    client.subscribe("1", "{ __typename }", json!({})).await;
    client.next_payload("1").await;
    client.expect_complete("1").await;
    client.subscribe("2", "{ __typename }", json!({})).await;
    match client.recv().await {
        Received::Message(m) if m["type"] == "error" && m["id"] == "2" => {
            assert_rate_limited(&m["payload"]);
        }
        other => panic!("expected an error for 2, got {other:?}"),
    }
    // The same IP over HTTP shares the bucket.
    assert_429(&anon_from(&app, None).await);
    client.close().await;
}
