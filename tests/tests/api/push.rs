//! Push notifications: device registration, and the dispatcher against a fake FCM that speaks
//! the real wire format (OAuth2 JWT-bearer grant, HTTP v1 `messages:send`, FCM's errors).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use photon::push::PushSettings;
use photon::push::dispatcher::{Dispatcher, MAX_ATTEMPTS};
use photon::push::fcm::{FcmSettings, ServiceAccount};
use photon_tests::fake_fcm::{CLIENT_EMAIL, FakeFcm, Reply, Sent};
use photon_tests::logs::CapturedLogs;
use photon_tests::photos::{photo_bytes, upload};
use photon_tests::{Backend, TestApp, TestUser, create_session, join, uuid_of};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde_json::{Value, json};

const REGISTER: &str = "mutation($token: String!, $platform: Platform!) { registerDevice(token: $token, platform: $platform) { id platform createdAt } }";
const UNREGISTER: &str = "mutation($token: String!) { unregisterDevice(token: $token) }";
const SEND_REQUEST: &str = "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }";
const ACCEPT: &str = "mutation($id: ID!) { acceptFriendRequest(requestId: $id) { status } }";
const INVITE: &str = "mutation($id: ID!, $users: [ID!]!) { inviteToSession(sessionId: $id, userIds: $users) { id } }";
const NEWEST_PHOTO: &str =
    "query($id: ID!) { session(id: $id) { photos(first: 1) { edges { cursor } } } }";

/// The dispatcher polls often in tests, so waiting for it costs little.
const POLL: &str = "--push-poll-ms=25";
const WAIT: Duration = Duration::from_secs(20);

/// A server whose pushes go to a fresh fake FCM, coalescing photos for `coalesce_ms`.
async fn spawn_with_fcm(coalesce_ms: u64) -> (TestApp, FakeFcm) {
    let fcm = FakeFcm::start().await;
    let args = fcm_args(&fcm, coalesce_ms);
    let app = TestApp::spawn_with(&strs(&args)).await;
    (app, fcm)
}

fn fcm_args(fcm: &FakeFcm, coalesce_ms: u64) -> Vec<String> {
    let mut args = fcm.args();
    args.push(POLL.to_owned());
    args.push(format!("--push-coalesce-ms={coalesce_ms}"));
    // Pacing has tests of its own (push_pacing.rs); these count pushes per photo group.
    args.push("--push-min-interval-secs=0".to_owned());
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Device rows with this token.
async fn devices_with(app: &TestApp, token: &str) -> i64 {
    app.count("devices", &format!("fcm_token = '{token}'"))
        .await
}

async fn register(app: &TestApp, user: &TestUser, token: &str, platform: &str) -> Value {
    let response = app
        .gql_as(
            user,
            REGISTER,
            json!({ "token": token, "platform": platform }),
        )
        .await;
    response.ok()["registerDevice"].clone()
}

async fn unregister(app: &TestApp, user: &TestUser, token: &str) -> bool {
    let response = app
        .gql_as(user, UNREGISTER, json!({ "token": token }))
        .await;
    response.ok()["unregisterDevice"].as_bool().unwrap()
}

/// Waits until no event is waiting for the dispatcher any more.
async fn settled(app: &TestApp) {
    let deadline = Instant::now() + WAIT;
    while app.count("events", "push_state = 'pending'").await > 0 {
        assert!(
            Instant::now() < deadline,
            "pushes still pending after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ana's session "Beach day" with Bo and Cy in it.
async fn beach_day(app: &TestApp) -> (TestUser, TestUser, TestUser, String) {
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    let (session, code) = create_session(app, &ana, "Beach day").await;
    join(app, &bo, &code).await.ok();
    join(app, &cy, &code).await.ok();
    (ana, bo, cy, session)
}

fn tokens(sends: &[Sent]) -> Vec<String> {
    let mut tokens: Vec<String> = sends.iter().map(|s| s.token.clone()).collect();
    tokens.sort();
    tokens
}

#[tokio::test]
async fn several_photos_make_one_push_per_offline_member_after_the_window() {
    let (app, fcm) = spawn_with_fcm(1500).await;
    let (ana, bo, cy, session) = beach_day(&app).await;
    register(&app, &ana, "ana-phone", "ANDROID").await;
    register(&app, &bo, "bo-phone", "IOS").await;
    register(&app, &cy, "cy-phone", "ANDROID").await;
    register(&app, &cy, "cy-browser", "WEB").await;

    let started = Instant::now();
    for seed in 0..3 {
        upload(&app, &ana, &session, &photo_bytes(seed, 512)).await;
    }
    settled(&app).await;

    let sends = fcm.sends();
    // Nothing for the uploader; one message to each device of everyone else.
    assert_eq!(tokens(&sends), ["bo-phone", "cy-browser", "cy-phone"]);
    let newest = app
        .gql_as(&bo, NEWEST_PHOTO, json!({ "id": session }))
        .await;
    let cursor = newest.ok()["session"]["photos"]["edges"][0]["cursor"].clone();
    for sent in &sends {
        assert_eq!(sent.status, 200);
        assert!(
            sent.at.duration_since(started) >= Duration::from_millis(1500),
            "pushed before the coalescing window closed"
        );
        assert_eq!(sent.message["notification"]["title"], "Beach day");
        assert_eq!(sent.body(), "ana added 3 photos to Beach day");
        assert_eq!(sent.data("type"), "photos_added");
        assert_eq!(sent.data("sessionId"), session);
        assert_eq!(sent.data("cursor"), cursor);
    }
    assert_eq!(
        app.count(
            "events",
            "kind = 'photo_added' AND push_state = 'sent' AND push_attempts = 1"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn each_member_hears_only_about_other_peoples_photos() {
    let (app, fcm) = spawn_with_fcm(1500).await;
    let (ana, bo, cy, session) = beach_day(&app).await;
    for (user, token) in [(&ana, "ana-phone"), (&bo, "bo-phone"), (&cy, "cy-phone")] {
        register(&app, user, token, "ANDROID").await;
    }
    upload(&app, &ana, &session, &photo_bytes(1, 512)).await;
    upload(&app, &ana, &session, &photo_bytes(2, 512)).await;
    upload(&app, &bo, &session, &photo_bytes(3, 512)).await;
    settled(&app).await;

    let sends = fcm.sends();
    assert_eq!(sends.len(), 3, "{sends:#?}");
    let body_for = |token: &str| fcm.delivered_to(token)[0].body().to_owned();
    assert_eq!(body_for("ana-phone"), "bo added a photo to Beach day");
    assert_eq!(body_for("bo-phone"), "ana added 2 photos to Beach day");
    // The most recent uploader is named first.
    assert_eq!(
        body_for("cy-phone"),
        "bo and ana added 3 photos to Beach day"
    );
}

#[tokio::test]
async fn a_member_watching_the_session_live_gets_no_push() {
    let (app, fcm) = spawn_with_fcm(100).await;
    let (ana, bo, cy, session) = beach_day(&app).await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    register(&app, &cy, "cy-phone", "ANDROID").await;
    // Cy has a live subscription on some replica; Bo's row belongs to a replica that died
    // (its heartbeat stopped ten minutes ago), so Bo counts as offline.
    let session_id = uuid_of(&session);
    for (user, age) in [(&cy, 0), (&bo, 600)] {
        let replica_id = uuid::Uuid::new_v4();
        let at = chrono::Utc::now() - chrono::Duration::seconds(age);
        entity::replica::ActiveModel {
            id: Set(replica_id),
            heartbeat_at: Set(at),
        }
        .insert(&app.db)
        .await
        .unwrap();
        entity::presence::ActiveModel {
            replica_id: Set(replica_id),
            session_id: Set(session_id),
            user_id: Set(uuid_of(&user.id)),
            refreshed_at: Set(at),
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    upload(&app, &ana, &session, &photo_bytes(1, 512)).await;
    settled(&app).await;
    assert_eq!(tokens(&fcm.sends()), ["bo-phone"]);
}

#[tokio::test]
async fn a_member_with_a_live_websocket_subscription_gets_no_push_until_it_closes() {
    use photon_tests::ws::{Protocol, WsClient};
    let (app, fcm) = spawn_with_fcm(100).await;
    let (ana, bo, cy, session) = beach_day(&app).await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    register(&app, &cy, "cy-phone", "IOS").await;
    // Cy watches the session live over a real socket; Bo's app is closed.
    let mut live = WsClient::connect_as(&app, Protocol::Legacy, &cy.token).await;
    live.subscribe(
        "1",
        "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor } }",
        json!({ "s": session }),
    )
    .await;
    app.wait_online(1).await;
    upload(&app, &ana, &session, &photo_bytes(1, 512)).await;
    live.next_payload("1").await;
    settled(&app).await;
    assert_eq!(tokens(&fcm.sends()), ["bo-phone"]);

    // Once the socket closes, Cy is offline again and the next photo pushes.
    live.close().await;
    app.wait_online(0).await;
    upload(&app, &ana, &session, &photo_bytes(2, 512)).await;
    fcm.wait_until(WAIT, |sends| sends.len() == 3).await;
    let mut recipients = tokens(&fcm.sends()[1..]);
    recipients.sort();
    assert_eq!(recipients, ["bo-phone", "cy-phone"]);
}

#[tokio::test]
async fn friend_requests_and_session_invites_push() {
    let (app, fcm) = spawn_with_fcm(100).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    register(&app, &bo, "bo-phone", "IOS").await;

    let sent = app.gql_as(&ana, SEND_REQUEST, json!({ "id": bo.id })).await;
    let request_id = sent.ok()["sendFriendRequest"]["id"].clone();
    fcm.wait_until(WAIT, |sends| sends.len() == 1).await;
    let push = &fcm.delivered_to("bo-phone")[0];
    assert_eq!(push.body(), "ana wants to be your friend");
    assert_eq!(push.data("type"), "friend_request");
    assert_eq!(push.data("requestId"), request_id);
    assert_eq!(push.data("userId"), ana.id);

    app.gql_as(&bo, ACCEPT, json!({ "id": request_id }))
        .await
        .ok();
    let (session, _) = create_session(&app, &ana, "Beach day").await;
    app.gql_as(&ana, INVITE, json!({ "id": session, "users": [bo.id] }))
        .await
        .ok();
    fcm.wait_until(WAIT, |sends| sends.len() == 2).await;
    let push = &fcm.delivered_to("bo-phone")[1];
    assert_eq!(push.body(), "ana invited you to Beach day");
    assert_eq!(push.data("type"), "session_invite");
    assert_eq!(push.data("sessionId"), session);
    // The push carries what it takes to join.
    let joined = join(&app, &bo, push.data("inviteCode")).await;
    assert_eq!(joined.ok()["joinSession"]["id"], session);
    settled(&app).await;
    assert_eq!(fcm.sends().len(), 2);
}

#[tokio::test]
async fn a_dead_token_loses_its_device_row_and_nothing_else_does() {
    let (app, fcm) = spawn_with_fcm(100).await;
    let (ana, bo, _cy, session) = beach_day(&app).await;
    register(&app, &ana, "ana-phone", "ANDROID").await;
    let scripted = [
        ("bo-uninstalled", Reply::Unregistered),
        ("bo-garbled", Reply::InvalidToken),
        ("bo-other-project", Reply::SenderIdMismatch),
        ("bo-bad-message", Reply::InvalidMessage),
    ];
    for (token, reply) in &scripted {
        register(&app, &bo, token, "ANDROID").await;
        fcm.script(token, [reply.clone()]);
    }
    register(&app, &bo, "bo-phone", "ANDROID").await;

    upload(&app, &ana, &session, &photo_bytes(1, 512)).await;
    settled(&app).await;

    assert_eq!(fcm.sends().len(), 5);
    assert_eq!(tokens(&fcm.delivered()), ["bo-phone"]);
    // UNREGISTERED, and INVALID_ARGUMENT about the token: gone.
    assert_eq!(devices_with(&app, "bo-uninstalled").await, 0);
    assert_eq!(devices_with(&app, "bo-garbled").await, 0);
    // Refusals that are not about the token leave it alone, as do successes.
    for token in [
        "bo-other-project",
        "bo-bad-message",
        "bo-phone",
        "ana-phone",
    ] {
        assert_eq!(devices_with(&app, token).await, 1, "{token}");
    }
    assert_eq!(
        app.count("events", "kind = 'photo_added' AND push_state = 'sent'")
            .await,
        1
    );
}

#[tokio::test]
async fn server_errors_are_retried_and_the_push_delivered_once() {
    let (app, fcm) = spawn_with_fcm(100).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    fcm.script("bo-phone", [Reply::ServerError, Reply::ServerError]);

    app.gql_as(&ana, SEND_REQUEST, json!({ "id": bo.id }))
        .await
        .ok();
    settled(&app).await;

    let statuses: Vec<u16> = fcm.sends().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(fcm.delivered_to("bo-phone").len(), 1);
    assert_eq!(
        app.count(
            "events",
            "kind = 'friend_requested' AND push_state = 'sent' AND push_attempts = 3"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_throttled_push_waits_as_long_as_retry_after_says() {
    let (app, fcm) = spawn_with_fcm(100).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    fcm.script("bo-phone", [Reply::TooManyRequests("2".to_owned())]);

    app.gql_as(&ana, SEND_REQUEST, json!({ "id": bo.id }))
        .await
        .ok();
    settled(&app).await;

    let sends = fcm.sends();
    assert_eq!(
        sends.iter().map(|s| s.status).collect::<Vec<_>>(),
        [429, 200]
    );
    // The first back-off would be a second at most; the server asked for two.
    let waited = sends[1].at.duration_since(sends[0].at);
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
}

/// Push settings for driving a [`Dispatcher`] by hand against `fcm`.
fn settings_for(fcm: &FakeFcm) -> PushSettings {
    PushSettings {
        poll_interval: Duration::from_secs(1),
        coalesce_window: Duration::ZERO,
        min_interval: Duration::ZERO,
        expiry_warning: Duration::ZERO,
        fcm: Some(FcmSettings {
            account: ServiceAccount::load(&fcm.credentials_as(CLIENT_EMAIL)).unwrap(),
            endpoint: fcm.base_url.parse().unwrap(),
        }),
    }
}

#[tokio::test]
async fn a_push_that_keeps_failing_is_given_up() {
    // The server's own dispatcher is off: this test runs rounds itself.
    let app = TestApp::spawn().await;
    let fcm = FakeFcm::start().await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    fcm.script("bo-phone", [Reply::ServerError]);
    app.gql_as(&ana, SEND_REQUEST, json!({ "id": bo.id }))
        .await
        .ok();
    // As if it had been tried all but once already.
    app.db
        .execute_unprepared(&format!(
            "UPDATE events SET push_attempts = {} WHERE kind = 'friend_requested'",
            MAX_ATTEMPTS - 1
        ))
        .await
        .unwrap();

    let dispatcher = Dispatcher::new(app.state.db.clone(), &settings_for(&fcm)).unwrap();
    let report = dispatcher.run_once().await.unwrap();
    assert_eq!((report.events, report.failed), (1, 1));
    assert_eq!(app.count("events", "push_state = 'failed'").await, 1);
    // Failed is final: later rounds leave it alone.
    assert_eq!(dispatcher.run_once().await.unwrap().events, 0);
    assert_eq!(fcm.sends().len(), 1);
}

/// `n` new users (`{prefix}{i}@example.com`) who each send `to` a friend request; returns
/// the request ids.
async fn friend_requests_to(
    app: &TestApp,
    to: &TestUser,
    prefix: &str,
    n: usize,
) -> HashSet<String> {
    let requests = (0..n).map(|i| async move {
        let user = app.sign_in(&format!("{prefix}{i}@example.com")).await;
        let sent = app
            .gql_as(&user, SEND_REQUEST, json!({ "id": to.id }))
            .await;
        sent.ok()["sendFriendRequest"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    join_all(requests).await.into_iter().collect()
}

fn request_ids(sends: &[Sent]) -> Vec<String> {
    sends
        .iter()
        .map(|s| s.data("requestId").to_owned())
        .collect()
}

#[tokio::test]
async fn concurrent_rounds_claim_each_event_once() {
    let app = TestApp::spawn().await;
    let fcm = FakeFcm::start().await;
    fcm.set_latency(Duration::from_millis(5));
    let bo = app.sign_in("bo@example.com").await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    let requests = friend_requests_to(&app, &bo, "fan", 20).await;

    let settings = settings_for(&fcm);
    let one = Dispatcher::new(app.state.db.clone(), &settings).unwrap();
    let two = Dispatcher::new(app.state.db.clone(), &settings).unwrap();
    let (a, b) = tokio::join!(one.run_once(), two.run_once());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.events + b.events, 20, "{a:?} {b:?}");

    let sent = request_ids(&fcm.delivered());
    assert_eq!(sent.len(), 20);
    assert_eq!(sent.into_iter().collect::<HashSet<_>>(), requests);
    assert_eq!(app.count("events", "push_state = 'sent'").await, 20);
}

#[tokio::test]
async fn two_replicas_never_send_the_same_push_twice() {
    let fcm = FakeFcm::start().await;
    let args = fcm_args(&fcm, 0);
    let a = TestApp::spawn_with(&strs(&args)).await;
    if a.backend != Backend::Postgres {
        eprintln!("skipped: replicas share a Postgres database; this run uses SQLite");
        return;
    }
    let b = a.spawn_replica(&strs(&args)).await;
    // Slow answers keep both dispatchers busy at once.
    fcm.set_latency(Duration::from_millis(20));
    let bo = a.sign_in("bo@example.com").await;
    register(&b, &bo, "bo-phone", "ANDROID").await;

    let mut requests = friend_requests_to(&a, &bo, "early", 15).await;
    let ana = b.sign_in("ana@example.com").await;
    let cy = b.sign_in("cy@example.com").await;
    let (session, code) = create_session(&b, &ana, "Beach day").await;
    join(&a, &bo, &code).await.ok();
    join(&b, &cy, &code).await.ok();
    for seed in 0..6 {
        let (app, user) = if seed % 2 == 0 { (&a, &ana) } else { (&b, &cy) };
        upload(app, user, &session, &photo_bytes(seed, 256)).await;
    }
    requests.extend(friend_requests_to(&b, &bo, "late", 15).await);
    settled(&a).await;

    let delivered = fcm.delivered();
    let friend_pushes: Vec<String> = request_ids(&delivered)
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    assert_eq!(
        friend_pushes.len(),
        requests.len(),
        "a request pushed twice or never"
    );
    assert_eq!(friend_pushes.into_iter().collect::<HashSet<_>>(), requests);
    // Every photo is announced to Bo exactly once, in however many pushes.
    let photos: usize = delivered
        .iter()
        .filter(|s| s.data("type") == "photos_added")
        .map(|s| {
            let body = s.body();
            if body.contains("added a photo") {
                1
            } else {
                body.split(" added ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap()
            }
        })
        .sum();
    assert_eq!(photos, 6);
}

#[tokio::test]
async fn without_credentials_pushes_are_logged_and_marked_sent() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // A `#[tokio::test]` runs the server's tasks on this thread too, so this sees their logs.
    let _guard = tracing::subscriber::set_default(subscriber);

    // The window is wide enough for both uploads to land in it on a loaded machine.
    let app = TestApp::spawn_with(&[POLL, "--push-coalesce-ms=1500"]).await;
    let (ana, bo, _cy, session) = beach_day(&app).await;
    register(&app, &bo, "bo-secret-registration-token", "ANDROID").await;
    upload(&app, &ana, &session, &photo_bytes(1, 512)).await;
    upload(&app, &ana, &session, &photo_bytes(2, 512)).await;
    settled(&app).await;

    assert_eq!(
        app.count("events", "kind = 'photo_added' AND push_state = 'sent'")
            .await,
        2
    );
    let text = logs.text();
    let bo_line = text
        .lines()
        .find(|l| l.contains("push logged") && l.contains(&uuid_of(&bo.id).to_string()))
        .unwrap_or_else(|| panic!("no push logged for bo in:\n{text}"));
    assert!(
        bo_line.contains("ana added 2 photos to Beach day"),
        "{bo_line}"
    );
    assert!(
        bo_line.contains(&uuid_of(&session).to_string()),
        "{bo_line}"
    );
    assert!(
        !text.contains("bo-secret-registration-token"),
        "a token was logged"
    );
}

#[tokio::test]
async fn the_access_token_is_fetched_once_and_replaced_when_refused() {
    let (app, fcm) = spawn_with_fcm(100).await;
    let bo = app.sign_in("bo@example.com").await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    register(&app, &bo, "bo-tablet", "ANDROID").await;
    friend_requests_to(&app, &bo, "fan", 5).await;
    settled(&app).await;
    assert_eq!(fcm.delivered().len(), 10);
    assert_eq!(fcm.token_requests(), 1);

    // A token revoked before it expires: the send is refused once, a new token is fetched.
    fcm.revoke_access_tokens();
    let ana = app.sign_in("ana@example.com").await;
    app.gql_as(&ana, SEND_REQUEST, json!({ "id": bo.id }))
        .await
        .ok();
    settled(&app).await;
    assert_eq!(fcm.delivered().len(), 12);
    assert_eq!(fcm.token_requests(), 2);
}

#[tokio::test]
async fn a_refused_service_account_delays_pushes_and_loses_none() {
    let fcm = FakeFcm::start().await;
    let credentials = fcm.credentials_as("someone-else@photon-test.iam.gserviceaccount.com");
    let credentials = format!("--fcm-credentials={}", credentials.display());
    let endpoint = format!("--fcm-endpoint={}", fcm.base_url);
    let app = TestApp::spawn_with(&[&credentials, &endpoint, POLL]).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    app.gql_as(&ana, SEND_REQUEST, json!({ "id": bo.id }))
        .await
        .ok();

    // Tried, refused at the token endpoint, and tried again after a back-off.
    let deadline = Instant::now() + WAIT;
    while fcm.token_requests() < 2 {
        assert!(Instant::now() < deadline, "the push was not retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fcm.sends().is_empty());
    assert_eq!(app.count("events", "push_attempts >= 2").await, 1);
    assert_eq!(
        app.count(
            "events",
            "push_state = 'pending' AND push_not_before IS NOT NULL"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_member_without_devices_is_fine() {
    let (app, fcm) = spawn_with_fcm(100).await;
    let (ana, _bo, cy, session) = beach_day(&app).await;
    register(&app, &cy, "cy-phone", "ANDROID").await;
    upload(&app, &ana, &session, &photo_bytes(1, 512)).await;
    settled(&app).await;
    assert_eq!(tokens(&fcm.delivered()), ["cy-phone"]);
    assert_eq!(
        app.count("events", "kind = 'photo_added' AND push_state = 'sent'")
            .await,
        1
    );
}

#[tokio::test]
async fn registering_a_device_needs_a_user_and_a_sane_token() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let before = app.snapshot().await;
    app.gql_anon(REGISTER, json!({ "token": "t", "platform": "IOS" }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_anon(UNREGISTER, json!({ "token": "t" }))
        .await
        .assert_code("UNAUTHENTICATED");
    let too_long = "x".repeat(4097);
    for bad in [
        "",
        "two words",
        "tab\there",
        "nul\0",
        "ünicode",
        too_long.as_str(),
    ] {
        for (query, vars) in [
            (REGISTER, json!({ "token": bad, "platform": "ANDROID" })),
            (UNREGISTER, json!({ "token": bad })),
        ] {
            let response = app.gql_as(&ana, query, vars).await;
            response.assert_code("BAD_USER_INPUT");
            assert_eq!(response.body["errors"][0]["extensions"]["field"], "token");
        }
    }
    app.gql_as(&ana, REGISTER, json!({ "token": "t", "platform": "PHONE" }))
        .await
        // The schema itself refuses a platform it does not know.
        .assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn registering_again_is_harmless_and_a_token_follows_its_new_owner() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;

    let first = register(&app, &ana, "shared-phone", "ANDROID").await;
    let again = register(&app, &ana, "shared-phone", "IOS").await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["createdAt"], first["createdAt"]);
    assert_eq!(again["platform"], "IOS");
    register(&app, &ana, "ana-tablet", "ANDROID").await;
    assert_eq!(app.count("devices", "").await, 2);

    // The phone changed hands.
    let moved = register(&app, &bo, "shared-phone", "ANDROID").await;
    assert_ne!(moved["id"], first["id"]);
    assert_eq!(app.count("devices", "").await, 2);
    let row = entity::device::Entity::find()
        .filter(entity::device::Column::FcmToken.eq("shared-phone"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.user_id, uuid_of(&bo.id));
    assert!(!unregister(&app, &ana, "shared-phone").await);
    assert_eq!(app.count("devices", "fcm_token = 'shared-phone'").await, 1);
    assert!(unregister(&app, &bo, "shared-phone").await);
    assert!(!unregister(&app, &bo, "shared-phone").await);
    assert!(unregister(&app, &ana, "ana-tablet").await);
    assert_eq!(app.count("devices", "").await, 0);
}

#[tokio::test]
async fn unregistering_someone_elses_token_does_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    register(&app, &ana, "ana-phone", "ANDROID").await;
    let before = app.snapshot().await;
    assert!(!unregister(&app, &bo, "ana-phone").await);
    assert!(!unregister(&app, &bo, "nobody-has-this").await);
    assert_eq!(app.snapshot().await, before);
    assert!(unregister(&app, &ana, "ana-phone").await);
}

#[tokio::test]
async fn a_device_is_visible_only_to_its_owner() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let device = register(&app, &ana, "ana-phone", "WEB").await;
    let query = "query($id: ID!) { node(id: $id) { id ... on Device { platform } } }";
    let vars = json!({ "id": device["id"] });
    let mine = app.gql_as(&ana, query, vars.clone()).await;
    assert_eq!(mine.ok()["node"]["platform"], "WEB");
    assert_eq!(
        app.gql_as(&bo, query, vars.clone()).await.ok()["node"],
        Value::Null
    );
    assert_eq!(app.gql_anon(query, vars).await.ok()["node"], Value::Null);
}

#[tokio::test]
async fn a_user_keeps_their_most_recent_devices() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    for i in 0..21 {
        register(&app, &ana, &format!("phone-{i:02}"), "ANDROID").await;
    }
    assert_eq!(app.count("devices", "").await, 20);
    assert_eq!(app.count("devices", "fcm_token = 'phone-00'").await, 0);
}

#[tokio::test]
async fn a_bad_service_account_file_stops_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let start = |credentials: &std::path::Path| {
        let args = [
            "photon".to_owned(),
            format!("--data-dir={}", dir.path().display()),
            format!("--fcm-credentials={}", credentials.display()),
        ];
        photon::config::settings_from_args(args)
            .unwrap()
            .resolve()
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    let missing = start(&dir.path().join("missing.json")).unwrap_err();
    assert!(missing.contains("FCM_CREDENTIALS"), "{missing}");

    let path = dir.path().join("key.json");
    let secret = "TUlJRXZBSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS1l3Z2dTaUFnRUFBb0lCQVFD";
    std::fs::write(
        &path,
        json!({
            "type": "service_account",
            "project_id": "p",
            "client_email": "a@p.iam.gserviceaccount.com",
            "private_key": format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        })
        .to_string(),
    )
    .unwrap();
    let broken = start(&path).unwrap_err();
    assert!(broken.contains("private_key"), "{broken}");
    assert!(!broken.contains(secret), "the key was printed: {broken}");
}

#[tokio::test]
async fn a_retry_goes_only_to_the_devices_that_have_not_received_the_push() {
    let (app, fcm) = spawn_with_fcm(100).await;
    let (ana, bo, cy, session) = beach_day(&app).await;
    register(&app, &bo, "bo-phone", "ANDROID").await;
    register(&app, &bo, "bo-tablet", "ANDROID").await;
    register(&app, &cy, "cy-phone", "IOS").await;
    register(&app, &cy, "cy-other-project", "ANDROID").await;
    fcm.script("bo-phone", [Reply::ServerError, Reply::ServerError]);
    fcm.script("cy-other-project", [Reply::SenderIdMismatch]);

    upload(&app, &ana, &session, &photo_bytes(1, 512)).await;
    settled(&app).await;

    let sends_to = |token: &str| {
        fcm.sends()
            .iter()
            .filter(|s| s.token == token)
            .map(|s| s.status)
            .collect::<Vec<_>>()
    };
    assert_eq!(sends_to("bo-phone"), [500, 500, 200]);
    // Everyone else heard once, on the first round, however often bo's phone was retried.
    assert_eq!(sends_to("bo-tablet"), [200]);
    assert_eq!(sends_to("cy-phone"), [200]);
    assert_eq!(sends_to("cy-other-project"), [403]);
    assert_eq!(
        app.count(
            "events",
            "kind = 'photo_added' AND push_state = 'sent' AND push_attempts = 3"
        )
        .await,
        1
    );
    // The bookkeeping goes once the push is settled.
    assert_eq!(app.count("push_deliveries", "").await, 0);
}
