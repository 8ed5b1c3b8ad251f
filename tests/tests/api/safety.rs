//! Safety: blocking users and reporting photos, over real HTTP and WebSockets.

use std::time::Duration;

use photon_tests::photos::{photo_bytes, upload};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{TestApp, TestUser, befriend, create_session, join};
use serde_json::{Value, json};

const BLOCK: &str = "mutation($id: ID!) { blockUser(userId: $id) }";
const UNBLOCK: &str = "mutation($id: ID!) { unblockUser(userId: $id) }";
const REPORT: &str = "mutation($id: ID!, $r: String!) { reportPhoto(photoId: $id, reason: $r) }";
const PHOTOS: &str =
    "query($s: ID!) { session(id: $s) { photoCount photos(first: 10) { edges { node { id } } } } }";
const PHOTO: &str = "query($id: ID!) { photo(id: $id) { id } }";
const REPLAY: &str =
    "subscription($s: ID!, $a: String) { photoAdded(sessionId: $s, after: $a) { photo { id } } }";
const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { photo { id uploader { id } } } }";

/// Ana owns a session Bob is in; Eve is a stranger.
async fn world(app: &TestApp) -> (TestUser, TestUser, TestUser, String) {
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (session, code) = create_session(app, &ana, "Party").await;
    join(app, &bob, &code).await.ok();
    (ana, bob, eve, session)
}

fn photo_ids(response: &Value) -> Vec<String> {
    response["session"]["photos"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn block_matrix() {
    let app = TestApp::spawn().await;
    let (ana, bob, eve, _) = world(&app).await;
    let anon = app.gql_anon(BLOCK, json!({ "id": bob.id })).await;
    anon.assert_code("UNAUTHENTICATED");
    app.gql_as(&ana, BLOCK, json!({ "id": ana.id }))
        .await
        .assert_code("BAD_USER_INPUT");
    // A stranger, a member and an owner may each block anyone they can find; twice is fine.
    for (who, target) in [(&eve, &ana), (&bob, &ana), (&ana, &bob)] {
        for _ in 0..2 {
            let r = app.gql_as(who, BLOCK, json!({ "id": target.id })).await;
            assert_eq!(r.ok()["blockUser"], true);
        }
        let r = app.gql_as(who, UNBLOCK, json!({ "id": target.id })).await;
        assert_eq!(r.ok()["unblockUser"], true);
    }
    app.gql_anon(UNBLOCK, json!({ "id": bob.id }))
        .await
        .assert_code("UNAUTHENTICATED");
}

#[tokio::test]
async fn a_block_hides_photos_in_lists_lookups_and_live_and_unblock_restores() {
    let app = TestApp::spawn().await;
    let (ana, bob, _eve, session) = world(&app).await;
    let bobs = upload(&app, &bob, &session, &photo_bytes(1, 2048)).await;
    let anas = upload(&app, &ana, &session, &photo_bytes(2, 2048)).await;

    assert_eq!(
        app.gql_as(&ana, BLOCK, json!({ "id": bob.id })).await.ok()["blockUser"],
        true
    );
    let list = app.gql_as(&ana, PHOTOS, json!({ "s": session })).await;
    assert_eq!(photo_ids(list.ok()), vec![anas.clone()]);
    assert_eq!(list.ok()["session"]["photoCount"], 1);
    let lookup = app.gql_as(&ana, PHOTO, json!({ "id": bobs })).await;
    assert!(lookup.ok()["photo"].is_null(), "{}", lookup.body);
    // Bob, who is blocked, still sees everything.
    let theirs = app.gql_as(&bob, PHOTOS, json!({ "s": session })).await;
    assert_eq!(photo_ids(theirs.ok()).len(), 2);

    // Live: Bob's new photo never arrives; Ana's own does.
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &ana.token).await;
    client
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    app.wait_online(1).await;
    upload(&app, &bob, &session, &photo_bytes(3, 2048)).await;
    let mine = upload(&app, &ana, &session, &photo_bytes(4, 2048)).await;
    let payload = client.next_payload("1").await;
    assert_eq!(
        payload["data"]["photoAdded"]["photo"]["id"], mine,
        "{payload}"
    );
    client.expect_silence(Duration::from_millis(300)).await;
    client.close().await;

    assert_eq!(
        app.gql_as(&ana, UNBLOCK, json!({ "id": bob.id }))
            .await
            .ok()["unblockUser"],
        true
    );
    let list = app.gql_as(&ana, PHOTOS, json!({ "s": session })).await;
    assert_eq!(photo_ids(list.ok()).len(), 4);
    assert_eq!(list.ok()["session"]["photoCount"], 4);
    let lookup = app.gql_as(&ana, PHOTO, json!({ "id": bobs })).await;
    assert_eq!(lookup.ok()["photo"]["id"], bobs);
}

/// A block or unblock made while a subscription runs applies to it from then on, also when
/// it is made on another replica (Postgres) than the one streaming.
#[tokio::test]
async fn a_block_reaches_a_running_subscription_on_every_replica() {
    let app = TestApp::spawn().await;
    let replica = if app.backend == photon_tests::Backend::Postgres {
        Some(app.spawn_replica(&[]).await)
    } else {
        None
    };
    let other = replica.as_ref().unwrap_or(&app);
    let (ana, bob, _eve, session) = world(&app).await;
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &ana.token).await;
    client
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    app.wait_online(1).await;
    let before = upload(&app, &bob, &session, &photo_bytes(1, 2048)).await;
    let payload = client.next_payload("1").await;
    assert_eq!(payload["data"]["photoAdded"]["photo"]["id"], before);

    let blocked = other.gql_as(&ana, BLOCK, json!({ "id": bob.id })).await;
    assert_eq!(blocked.ok()["blockUser"], true);
    upload(&app, &bob, &session, &photo_bytes(2, 2048)).await;
    let mine = upload(&app, &ana, &session, &photo_bytes(3, 2048)).await;
    let payload = client.next_payload("1").await;
    assert_eq!(
        payload["data"]["photoAdded"]["photo"]["id"], mine,
        "Bob's photo after the block arrived: {payload}"
    );

    let unblocked = other.gql_as(&ana, UNBLOCK, json!({ "id": bob.id })).await;
    assert_eq!(unblocked.ok()["unblockUser"], true);
    let after = upload(&app, &bob, &session, &photo_bytes(4, 2048)).await;
    let payload = client.next_payload("1").await;
    assert_eq!(payload["data"]["photoAdded"]["photo"]["id"], after);
    client.close().await;
}

#[tokio::test]
async fn a_blocked_users_friend_request_looks_sent_and_reaches_nothing() {
    let app = TestApp::spawn().await;
    let (ana, bob, eve, _) = world(&app).await;
    befriend(&app, &ana, &bob).await;
    app.gql_as(&ana, BLOCK, json!({ "id": bob.id })).await.ok();
    // The friendship ended.
    assert_eq!(app.count("friendships", "1=1").await, 0);

    let sent = app
        .gql_as(
            &bob,
            "mutation($id: ID!) { sendFriendRequest(userId: $id) { id status } }",
            json!({ "id": ana.id }),
        )
        .await;
    assert_eq!(
        sent.ok()["sendFriendRequest"]["status"],
        "PENDING",
        "{}",
        sent.body
    );
    assert_eq!(app.count("friendships", "1=1").await, 0);
    let incoming = app
        .gql_as(
            &ana,
            "{ viewer { friendRequests(direction: INCOMING, first: 10) { edges { node { id } } } } }",
            json!({}),
        )
        .await;
    assert!(
        !incoming.body.to_string().contains(&bob.id),
        "{}",
        incoming.body
    );
    // Someone else's request still goes through.
    let other = app
        .gql_as(
            &eve,
            "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }",
            json!({ "id": ana.id }),
        )
        .await;
    other.ok();
    assert_eq!(app.count("friendships", "1=1").await, 1);
}

#[tokio::test]
async fn reports_hide_a_photo_from_all_but_its_uploader_at_the_threshold() {
    let app = TestApp::spawn_with(&["--report-hide-threshold", "2"]).await;
    let (ana, bob, eve, session) = world(&app).await;
    let cat = app.sign_in("cat@example.com").await;
    let code = app
        .gql_as(
            &ana,
            "query($s: ID!) { session(id: $s) { inviteCode } }",
            json!({ "s": session }),
        )
        .await
        .ok()["session"]["inviteCode"]
        .as_str()
        .unwrap()
        .to_owned();
    join(&app, &cat, &code).await.ok();
    let photo = upload(&app, &bob, &session, &photo_bytes(7, 2048)).await;

    // The matrix: anonymous, stranger, bad reasons.
    app.gql_anon(REPORT, json!({ "id": photo, "r": "spam" }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_as(&eve, REPORT, json!({ "id": photo, "r": "spam" }))
        .await
        .assert_code("NOT_FOUND");
    for bad in ["", "   ", &"x".repeat(501)] {
        app.gql_as(&ana, REPORT, json!({ "id": photo, "r": bad }))
            .await
            .assert_code("BAD_USER_INPUT");
    }
    // Owner reports, twice: one report.
    for _ in 0..2 {
        let r = app
            .gql_as(&ana, REPORT, json!({ "id": photo, "r": "not ok" }))
            .await;
        assert_eq!(r.ok()["reportPhoto"], true);
    }
    assert_eq!(app.count("photo_reports", "1=1").await, 1);
    let seen = app.gql_as(&cat, PHOTO, json!({ "id": photo })).await;
    assert_eq!(seen.ok()["photo"]["id"], photo);

    // A member's report reaches the threshold.
    let r = app
        .gql_as(&cat, REPORT, json!({ "id": photo, "r": "offensive" }))
        .await;
    assert_eq!(r.ok()["reportPhoto"], true);
    for who in [&ana, &cat] {
        let seen = app.gql_as(who, PHOTO, json!({ "id": photo })).await;
        assert!(seen.ok()["photo"].is_null(), "{}", seen.body);
        let list = app.gql_as(who, PHOTOS, json!({ "s": session })).await;
        assert!(photo_ids(list.ok()).is_empty());
    }
    let own = app.gql_as(&bob, PHOTO, json!({ "id": photo })).await;
    assert_eq!(own.ok()["photo"]["id"], photo);
    // A replay from the start leaves it out too, except for its uploader.
    let start = photon::service::pagination::encode_cursor(&0i64);
    let mut cats = WsClient::connect_as(&app, Protocol::Transport, &cat.token).await;
    cats.subscribe("1", REPLAY, json!({ "s": session, "a": start }))
        .await;
    cats.expect_silence(Duration::from_millis(500)).await;
    let mut bobs = WsClient::connect_as(&app, Protocol::Transport, &bob.token).await;
    bobs.subscribe("1", REPLAY, json!({ "s": session, "a": start }))
        .await;
    let replayed = bobs.next_payload("1").await;
    assert_eq!(replayed["data"]["photoAdded"]["photo"]["id"], photo);

    // What the operator's `photon reports` prints.
    let reports = photon::service::reports::open_reports(&app.state.db)
        .await
        .unwrap();
    let table = photon::service::reports::format_reports(&reports);
    let raw = photon_tests::uuid_of(&photo).to_string();
    let line = table.lines().find(|l| l.starts_with(&raw)).expect(&table);
    assert!(line.contains("\t2\thidden\t"), "{line}");
    assert!(
        line.contains("not ok") && line.contains("offensive"),
        "{line}"
    );

    // Keep: visible again, reports closed.
    photon::service::reports::resolve(
        &app.state.db,
        app.state.store.as_ref(),
        Duration::from_secs(900),
        photon_tests::uuid_of(&photo),
        photon::service::reports::Decision::Keep,
    )
    .await
    .unwrap();
    let seen = app.gql_as(&cat, PHOTO, json!({ "id": photo })).await;
    assert_eq!(seen.ok()["photo"]["id"], photo);
    assert_eq!(app.count("photo_reports", "1=1").await, 0);

    // Remove: the photo is gone as if its uploader deleted it.
    photon::service::reports::resolve(
        &app.state.db,
        app.state.store.as_ref(),
        Duration::from_secs(900),
        photon_tests::uuid_of(&photo),
        photon::service::reports::Decision::Remove,
    )
    .await
    .unwrap();
    assert_eq!(app.count("photos", "1=1").await, 0);
}

#[tokio::test]
async fn guests_block_co_members_and_are_not_found_by_strangers() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (session, code) = create_session(&app, &ana, "Party").await;
    let joined = app
        .gql_anon(
            "mutation($code: String!) { joinSessionAsGuest(inviteCode: $code, name: \"Gus\") { accessToken user { id } } }",
            json!({ "code": code }),
        )
        .await;
    let payload = &joined.ok()["joinSessionAsGuest"];
    let gus = TestUser {
        id: payload["user"]["id"].as_str().unwrap().to_owned(),
        email: String::new(),
        token: payload["accessToken"].as_str().unwrap().to_owned(),
        refresh_token: String::new(),
    };
    upload(&app, &ana, &session, &photo_bytes(9, 2048)).await;
    let r = app.gql_as(&gus, BLOCK, json!({ "id": ana.id })).await;
    assert_eq!(r.ok()["blockUser"], true);
    let list = app.gql_as(&gus, PHOTOS, json!({ "s": session })).await;
    assert!(photo_ids(list.ok()).is_empty(), "{}", list.body);
    // A stranger cannot find the guest to block them.
    app.gql_as(&eve, BLOCK, json!({ "id": gus.id }))
        .await
        .assert_code("NOT_FOUND");
    // The owner, a co-member, can.
    let r = app.gql_as(&ana, BLOCK, json!({ "id": gus.id })).await;
    assert_eq!(r.ok()["blockUser"], true);
}
