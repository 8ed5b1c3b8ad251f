//! `deleteAccount` over real HTTP and WebSockets: nothing of the account is left in any table
//! or in the store, its sessions pass on or go, and the others see it leave live.

use std::time::Duration;

use entity::{
    device, event, friendship, login_code, photo, photo_report, presence, refresh_token, session,
    session_ban, session_member, user, user_block,
};
use photon::imaging::fixtures;
use photon::storage::{PhotoObject, object_key};
use photon_tests::photos::{photo_bytes, sha256_hex, upload, upload_typed};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{TestApp, TestUser, befriend, create_session, guest, join, uuid_of};
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

const DELETE: &str = "mutation { deleteAccount }";
const EVENTS: &str = "subscription($s: ID!) { sessionEvents(sessionId: $s) { __typename ... on MemberLeft { user { id name } } ... on PhotoDeleted { photoId } ... on SessionUpdated { session { owner { id } viewerRole } } } }";
const SESSION: &str = "query($s: ID!) { session(id: $s) { viewerRole owner { id } photos(first: 20) { edges { node { id } } } members(first: 20) { edges { node { user { id } } } } } }";

/// Rows anywhere that point at `id`, by table.
async fn rows_of(app: &TestApp, id: Uuid) -> Vec<(&'static str, u64)> {
    let db = &app.db;
    let counts = [
        (
            "users",
            user::Entity::find_by_id(id).count(db).await.unwrap(),
        ),
        (
            "devices",
            device::Entity::find()
                .filter(device::Column::UserId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "refresh_tokens",
            refresh_token::Entity::find()
                .filter(refresh_token::Column::UserId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "login_codes",
            login_code::Entity::find()
                .filter(login_code::Column::UserId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "identities",
            entity::identity::Entity::find()
                .filter(entity::identity::Column::UserId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "friendships",
            friendship::Entity::find()
                .filter(
                    Condition::any()
                        .add(friendship::Column::UserLowId.eq(id))
                        .add(friendship::Column::UserHighId.eq(id)),
                )
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "session_members",
            session_member::Entity::find()
                .filter(session_member::Column::UserId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "sessions",
            session::Entity::find()
                .filter(session::Column::OwnerId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "photos",
            photo::Entity::find()
                .filter(photo::Column::UploaderId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "user_blocks",
            user_block::Entity::find()
                .filter(
                    Condition::any()
                        .add(user_block::Column::BlockerId.eq(id))
                        .add(user_block::Column::BlockedId.eq(id)),
                )
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "photo_reports",
            photo_report::Entity::find()
                .filter(photo_report::Column::ReporterId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "session_bans",
            session_ban::Entity::find()
                .filter(session_ban::Column::UserId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "presence",
            presence::Entity::find()
                .filter(presence::Column::UserId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
        (
            "events (as actor)",
            event::Entity::find()
                .filter(event::Column::ActorId.eq(id))
                .count(db)
                .await
                .unwrap(),
        ),
    ];
    counts.into_iter().filter(|(_, n)| *n > 0).collect()
}

/// Whether any object of the photo with these bytes is in the store.
async fn any_object(app: &TestApp, session: &str, bytes: &[u8]) -> bool {
    for object in PhotoObject::ALL {
        let key = object_key(uuid_of(session), &sha256_hex(bytes), object);
        if app.state.store.size(&key).await.unwrap().is_some() {
            return true;
        }
    }
    false
}

async fn wait_for_processing(app: &TestApp, user: &TestUser, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let photo = app
            .gql_as(
                user,
                "query($id: ID!) { photo(id: $id) { processing } }",
                json!({ "id": id }),
            )
            .await;
        if photo.ok()["photo"]["processing"] != "PENDING" {
            return;
        }
        assert!(Instant::now() < deadline, "still processing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_deleted_account_leaves_no_row_and_no_object_and_its_sessions_pass_on() {
    let app =
        TestApp::spawn_with(&["--processing-concurrency=1", "--processing-poll-ms=100"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let cid = app.sign_in("cid@example.com").await;
    let dan = app.sign_in("dan@example.com").await;
    let ana_id = uuid_of(&ana.id);

    // Ana's party: a guest joined first, then Ben; Ana and Ben upload (Ana's is processed, so
    // it has every derivative).
    let (party, code) = create_session(&app, &ana, "Party").await;
    let gus = guest(&app, &code, "Gus").await;
    join(&app, &ben, &code).await.ok();
    let anas_photo = fixtures::jpeg(320, 200, Some(&fixtures::phone_exif()));
    let anas_id = upload_typed(&app, &ana, &party, &anas_photo, "image/jpeg").await;
    wait_for_processing(&app, &ana, &anas_id).await;
    let bens_photo = photo_bytes(2, 2048);
    let bens_id = upload(&app, &ben, &party, &bens_photo).await;
    // Ben's session, which Ana joined, uploaded to and left.
    let (bens_session, bens_code) = create_session(&app, &ben, "Ben's").await;
    join(&app, &ana, &bens_code).await.ok();
    let left_behind = photo_bytes(3, 2048);
    upload(&app, &ana, &bens_session, &left_behind).await;
    app.gql_as(
        &ana,
        "mutation($s: ID!) { leaveSession(sessionId: $s) }",
        json!({ "s": bens_session }),
    )
    .await
    .ok();
    // A session of Ana's alone.
    let (alone, _) = create_session(&app, &ana, "Alone").await;
    let alone_photo = photo_bytes(4, 2048);
    upload(&app, &ana, &alone, &alone_photo).await;
    // Everything else an account has: a device, a friend, a request, a block, a report, a
    // ban in another session.
    app.gql_as(
        &ana,
        "mutation { registerDevice(token: \"ana-phone\", platform: IOS) { id } }",
        json!({}),
    )
    .await
    .ok();
    befriend(&app, &ana, &ben).await;
    app.gql_as(
        &ana,
        "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }",
        json!({ "id": cid.id }),
    )
    .await
    .ok();
    app.gql_as(
        &ana,
        "mutation($id: ID!) { blockUser(userId: $id) }",
        json!({ "id": dan.id }),
    )
    .await
    .ok();
    app.gql_as(
        &dan,
        "mutation($id: ID!) { blockUser(userId: $id) }",
        json!({ "id": ana.id }),
    )
    .await
    .ok();
    app.gql_as(
        &ana,
        "mutation($id: ID!) { reportPhoto(photoId: $id, reason: \"spam\") }",
        json!({ "id": bens_id }),
    )
    .await
    .ok();
    let (dans, dans_code) = create_session(&app, &dan, "Dan's").await;
    join(&app, &ana, &dans_code).await.ok();
    app.gql_as(
        &dan,
        "mutation($s: ID!, $u: ID!) { removeMember(sessionId: $s, userId: $u, ban: true) { id } }",
        json!({ "s": dans, "u": ana.id }),
    )
    .await
    .ok();
    assert!(!rows_of(&app, ana_id).await.is_empty());

    let mut bens_socket = WsClient::connect_as(&app, Protocol::Transport, &ben.token).await;
    bens_socket
        .subscribe("1", EVENTS, json!({ "s": party }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let deleted = app.gql_as(&ana, DELETE, json!({})).await;
    assert_eq!(deleted.ok()["deleteAccount"], true);

    // Ben sees, live: her photo go, the session become his, and her leave (processing may
    // announce his own photo meanwhile).
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|e: &Value| e["__typename"] != "MemberLeft")
    {
        let payload = bens_socket.next_payload("1").await;
        let event = payload["data"]["sessionEvents"].clone();
        if event["__typename"] != "PhotoProcessed" {
            seen.push(event);
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0]["__typename"], "PhotoDeleted", "{seen:?}");
    assert_eq!(seen[0]["photoId"], json!(anas_id));
    assert_eq!(seen[1]["__typename"], "SessionUpdated");
    assert_eq!(seen[1]["session"]["owner"]["id"], json!(ben.id));
    assert_eq!(seen[1]["session"]["viewerRole"], "OWNER");
    assert_eq!(seen[2]["user"]["id"], json!(ana.id));

    // Ben, the longest-standing member with an account (the guest Gus joined first), owns it.
    let party_now = app.gql_as(&ben, SESSION, json!({ "s": party })).await;
    let party_now = &party_now.ok()["session"];
    assert_eq!(party_now["viewerRole"], "OWNER");
    assert_eq!(party_now["owner"]["id"], json!(ben.id));
    let photos: Vec<&Value> = party_now["photos"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(photos.len(), 1);
    assert_eq!(photos[0]["node"]["id"], json!(bens_id));
    let members = party_now["members"]["edges"].as_array().unwrap();
    assert!(
        members
            .iter()
            .all(|m| m["node"]["user"]["id"] != json!(ana.id))
    );
    assert_eq!(members.len(), 2, "Ben and Gus");
    // The session she was alone in is gone.
    assert_eq!(
        session::Entity::find_by_id(uuid_of(&alone))
            .count(&app.db)
            .await
            .unwrap(),
        0
    );
    // A replay names her as a deleted account.
    let mut replay = WsClient::connect_as(&app, Protocol::Transport, &gus.token).await;
    replay
        .subscribe(
            "r",
            "subscription($s: ID!, $a: String) { sessionEvents(sessionId: $s, after: $a) { __typename ... on MemberLeft { user { id name } } } }",
            json!({ "s": party, "a": photon::service::pagination::encode_cursor(&0i64) }),
        )
        .await;
    let left = loop {
        let payload = replay.next_payload("r").await;
        let event = payload["data"]["sessionEvents"].clone();
        if event["__typename"] == "MemberLeft" {
            break event;
        }
    };
    assert_eq!(
        left["user"],
        json!({ "id": ana.id, "name": "Deleted account" })
    );

    assert_eq!(
        rows_of(&app, ana_id).await,
        vec![],
        "rows left of the account"
    );
    // Objects go once no upload URL could bring them back.
    let report = app
        .sweep_at(chrono::Utc::now() + chrono::Duration::hours(2))
        .await;
    assert_eq!(report.failures, 0);
    for (session, bytes) in [
        (&party, &anas_photo),
        (&bens_session, &left_behind),
        (&alone, &alone_photo),
    ] {
        assert!(
            !any_object(&app, session, bytes).await,
            "an object of Ana's is left"
        );
    }
    assert!(
        any_object(&app, &party, &bens_photo).await,
        "Ben's photo stays"
    );

    // Her old tokens: writes are refused, nothing is found, the refresh token is dead.
    app.gql_as(&ana, DELETE, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_as(
        &ana,
        "mutation { createSession(input: { title: \"x\" }) { id } }",
        json!({}),
    )
    .await
    .assert_code("UNAUTHENTICATED");
    let gone = app.gql_as(&ana, SESSION, json!({ "s": party })).await;
    assert!(gone.ok()["session"].is_null(), "{}", gone.body);
    let refreshed = app
        .gql_anon(
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({ "t": ana.refresh_token }),
        )
        .await;
    assert!(!refreshed.codes().is_empty(), "{}", refreshed.body);
    assert!(rows_of(&app, ana_id).await.is_empty());
}

#[tokio::test]
async fn delete_account_matrix_guests_too() {
    let app = TestApp::spawn().await;
    app.gql_anon(DELETE, json!({}))
        .await
        .assert_code("UNAUTHENTICATED");
    let ana = app.sign_in("ana@example.com").await;
    let (session, code) = create_session(&app, &ana, "Party").await;
    let gus = guest(&app, &code, "Gus").await;
    let gus_photo = photo_bytes(9, 2048);
    upload(&app, &gus, &session, &gus_photo).await;
    let bob = app.sign_in("bob@example.com").await;
    join(&app, &bob, &code).await.ok();
    // A guest deletes theirs; a member and an owner each theirs, leaving the others alone.
    for user in [&gus, &bob] {
        let deleted = app.gql_as(user, DELETE, json!({})).await;
        assert_eq!(deleted.ok()["deleteAccount"], true);
        assert!(rows_of(&app, uuid_of(&user.id)).await.is_empty());
    }
    let left = app.gql_as(&ana, SESSION, json!({ "s": session })).await;
    let members = left.ok()["session"]["members"]["edges"].as_array().unwrap();
    assert_eq!(members.len(), 1, "only Ana");
    assert_eq!(left.ok()["session"]["photos"]["edges"], json!([]));
    let deleted = app.gql_as(&ana, DELETE, json!({})).await;
    assert_eq!(deleted.ok()["deleteAccount"], true);
    assert_eq!(app.count("sessions", "").await, 0);
    assert_eq!(app.count("users", "").await, 0);
    assert_eq!(app.count("photos", "").await, 0);
}
