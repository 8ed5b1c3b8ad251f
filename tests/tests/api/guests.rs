//! Guests: joining without an account, taking part in that one session over real HTTP and
//! WebSockets, refused everywhere else, the owner's `allowGuests`, the sweeper, and
//! `claimGuestAccount`.

use std::time::Duration;

use photon_tests::fake_fcm::FakeFcm;
use photon_tests::photos::{photo_bytes, upload};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{
    Backend, GqlResponse, TestApp, TestUser, befriend, create_session, guest, join, uuid_of,
};
use serde_json::{Value, json};

const JOIN_AS_GUEST: &str = "mutation($code: String!, $name: String!) { joinSessionAsGuest(inviteCode: $code, name: $name) { accessToken refreshToken user { id name email isGuest friendship } } }";
const CLAIM: &str = "mutation($t: String!) { claimGuestAccount(refreshToken: $t) { id isGuest } }";
const MEMBERS: &str =
    "query($id: ID!) { session(id: $id) { members { edges { node { user { id isGuest } } } } } }";
const PHOTO: &str = "query($id: ID!) { photo(id: $id) { uploader { id isGuest } url } }";
const SESSION_EVENTS: &str = "subscription($s: ID!, $after: String) { sessionEvents(sessionId: $s, after: $after) { __typename ... on MemberJoined { cursor user { id } } ... on MemberLeft { cursor user { id } } } }";
const PHOTO_ADDED_CURSOR: &str = "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor } }";
const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { photo { id uploader { id isGuest } } } }";

/// A uuid as an SQL literal for `app`'s database (SQLite keeps uuids as 16-byte blobs).
fn sql_id(app: &TestApp, id: uuid::Uuid) -> String {
    match app.backend {
        Backend::Postgres => format!("'{id}'"),
        Backend::Sqlite => format!("X'{}'", id.simple()),
    }
}

async fn join_as_guest(app: &TestApp, code: &str, name: &str) -> GqlResponse {
    app.gql_anon(JOIN_AS_GUEST, json!({ "code": code, "name": name }))
        .await
}

fn member_ids(response: &GqlResponse) -> Vec<String> {
    response.ok()["session"]["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["user"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn members(app: &TestApp, user: &TestUser, session: &str) -> Vec<String> {
    member_ids(&app.gql_as(user, MEMBERS, json!({ "id": session })).await)
}

#[tokio::test]
async fn a_guest_joins_with_a_name_uploads_and_follows_the_session_live() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;

    let response = join_as_guest(&app, &code, "  Gus  ").await;
    let payload = &response.ok()["joinSessionAsGuest"];
    assert_eq!(payload["user"]["name"], "Gus");
    assert_eq!(payload["user"]["isGuest"], true);
    assert_eq!(payload["user"]["email"], Value::Null);
    assert_eq!(payload["user"]["friendship"], "SELF");
    let gus = TestUser {
        id: payload["user"]["id"].as_str().unwrap().to_owned(),
        email: String::new(),
        token: payload["accessToken"].as_str().unwrap().to_owned(),
        refresh_token: payload["refreshToken"].as_str().unwrap().to_owned(),
    };
    // A user with no e-mail and no identity.
    let gus_uuid = uuid_of(&gus.id);
    assert_eq!(
        app.count(
            "users",
            &format!(
                "id = {} AND email IS NULL AND is_guest",
                sql_id(&app, gus_uuid)
            )
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "identities",
            &format!("user_id = {}", sql_id(&app, gus_uuid))
        )
        .await,
        0
    );

    // In the session, a member like any other, seen as a guest by the others.
    let me = app
        .gql_as(
            &gus,
            "{ me { id isGuest } sessions { edges { node { id viewerRole } } } }",
            json!({}),
        )
        .await;
    assert_eq!(me.ok()["me"]["isGuest"], true);
    assert_eq!(me.ok()["sessions"]["edges"][0]["node"]["id"], session);
    assert_eq!(
        me.ok()["sessions"]["edges"][0]["node"]["viewerRole"],
        "MEMBER"
    );
    assert!(members(&app, &ana, &session).await.contains(&gus.id));

    // Live over a real WebSocket: Ana's photo reaches Gus, Gus's reaches Ana.
    let mut gus_ws = WsClient::connect_as(&app, Protocol::Transport, &gus.token).await;
    gus_ws
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    app.wait_online(1).await;
    let from_ana = upload(&app, &ana, &session, &photo_bytes(1, 1024)).await;
    let payload = gus_ws.next_payload("1").await;
    assert_eq!(
        payload["data"]["photoAdded"]["photo"]["id"], from_ana,
        "{payload}"
    );

    let mut ana_ws = WsClient::connect_as(&app, Protocol::Legacy, &ana.token).await;
    ana_ws
        .subscribe("a", PHOTO_ADDED, json!({ "s": session }))
        .await;
    app.wait_online(2).await;
    let from_gus = upload(&app, &gus, &session, &photo_bytes(2, 1024)).await;
    let payload = ana_ws.next_payload("a").await;
    let photo = &payload["data"]["photoAdded"]["photo"];
    assert_eq!(photo["id"], from_gus, "{payload}");
    assert_eq!(photo["uploader"]["id"], gus.id);
    assert_eq!(photo["uploader"]["isGuest"], true);

    // Tokens work as anyone's: refresh, then leave with the new access token.
    let refreshed = app
        .gql_anon(
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken user { isGuest } } }",
            json!({ "t": gus.refresh_token }),
        )
        .await;
    let token = refreshed.ok()["refreshToken"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(refreshed.ok()["refreshToken"]["user"]["isGuest"], true);
    let left = app
        .gql(
            Some(&token),
            "mutation($s: ID!) { leaveSession(sessionId: $s) }",
            json!({ "s": session }),
        )
        .await;
    assert_eq!(left.ok()["leaveSession"], true);
    assert!(!members(&app, &ana, &session).await.contains(&gus.id));
    // And may come back to their own session with its code.
    join(&app, &gus, &code).await.ok();
    assert!(members(&app, &ana, &session).await.contains(&gus.id));
}

#[tokio::test]
async fn a_guest_with_a_device_gets_pushes_while_offline() {
    let fcm = FakeFcm::start().await;
    let mut args = fcm.args();
    args.push("--push-poll-ms=25".to_owned());
    args.push("--push-coalesce-ms=100".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = TestApp::spawn_with(&args).await;
    let ana = app.sign_in("ana@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    let gus = guest(&app, &code, "Gus").await;
    app.gql_as(
        &gus,
        "mutation { registerDevice(token: \"gus-phone\", platform: IOS) { id } }",
        json!({}),
    )
    .await
    .ok();
    upload(&app, &ana, &session, &photo_bytes(1, 512)).await;
    fcm.wait_until(Duration::from_secs(20), |sends| {
        sends.iter().any(|s| s.token == "gus-phone")
    })
    .await;
}

/// What one refused call answered, with the one code it must carry.
async fn refused(app: &TestApp, user: &TestUser, query: &str, variables: Value, code: &str) {
    let before = app.snapshot().await;
    let response = app.gql_as(user, query, variables).await;
    let codes = response.codes();
    assert!(
        !codes.is_empty() && codes.iter().all(|c| c == code),
        "{query}: expected {code}, got {}",
        response.body
    );
    assert_eq!(app.snapshot().await, before, "{query} wrote something");
}

#[tokio::test]
async fn a_guest_is_refused_everything_beyond_their_session_and_cannot_be_found() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    befriend(&app, &ana, &bob).await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    let (other_session, other_code) = create_session(&app, &bob, "Elsewhere").await;
    let gus = guest(&app, &code, "Gus").await;
    let bob_id = json!({ "id": bob.id });

    // As the guest: nothing outside the session.
    for (query, variables) in [
        (
            "mutation { createSession(input: { title: \"Mine\" }) { id } }",
            json!({}),
        ),
        (
            "mutation($code: String!) { joinSession(inviteCode: $code) { id } }",
            json!({ "code": other_code }),
        ),
        (
            "mutation($s: ID!, $u: [ID!]!) { inviteToSession(sessionId: $s, userIds: $u) { id } }",
            json!({ "s": session, "u": [ana.id] }),
        ),
        (
            "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }",
            bob_id.clone(),
        ),
        (
            "mutation($id: ID!) { removeFriend(userId: $id) }",
            bob_id.clone(),
        ),
        ("{ friends { edges { node { id } } } }", json!({})),
        (
            "{ friendRequests(direction: INCOMING) { edges { node { id } } } }",
            json!({}),
        ),
        (
            "query($e: String!) { findUserByEmail(email: $e) { id } }",
            json!({ "e": "bob@example.com" }),
        ),
        ("query($id: ID!) { user(id: $id) { id } }", bob_id.clone()),
        (
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": ana.id }),
        ),
        (CLAIM, json!({ "t": ana.refresh_token })),
    ] {
        refused(&app, &gus, query, variables, "FORBIDDEN").await;
    }
    // Another session stays invisible, as for any non-member.
    let other = app
        .gql_as(
            &gus,
            "query($id: ID!) { session(id: $id) { id } }",
            json!({ "id": other_session }),
        )
        .await;
    assert_eq!(other.ok()["session"], Value::Null);
    // Its own profile stays the guest's to change.
    let renamed = app
        .gql_as(
            &gus,
            "mutation { updateProfile(input: { name: \"Gus G\" }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(renamed.ok()["updateProfile"]["name"], "Gus G");

    // As others: the guest cannot be befriended, invited or found from outside the session.
    let gus_id = json!({ "id": gus.id });
    refused(
        &app,
        &bob,
        "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }",
        gus_id.clone(),
        "NOT_FOUND",
    )
    .await;
    refused(
        &app,
        &bob,
        "mutation($s: ID!, $u: [ID!]!) { inviteToSession(sessionId: $s, userIds: $u) { id } }",
        json!({ "s": other_session, "u": [gus.id] }),
        "BAD_USER_INPUT",
    )
    .await;
    for stranger in [&bob, &eve] {
        let seen = app
            .gql_as(
                stranger,
                "query($id: ID!) { user(id: $id) { id } node(id: $id) { id } }",
                gus_id.clone(),
            )
            .await;
        assert_eq!(seen.ok()["user"], Value::Null, "{}", seen.body);
        assert_eq!(seen.ok()["node"], Value::Null, "{}", seen.body);
    }
    // Ana shares the session, so she sees Gus (but no e-mail: he has none).
    let seen = app
        .gql_as(
            &ana,
            "query($id: ID!) { user(id: $id) { id name email isGuest } }",
            gus_id,
        )
        .await;
    assert_eq!(seen.ok()["user"]["name"], "Gus G");
    assert_eq!(seen.ok()["user"]["email"], Value::Null);
    assert_eq!(seen.ok()["user"]["isGuest"], true);
}

#[tokio::test]
async fn joining_as_a_guest_checks_its_input_and_writes_nothing_when_refused() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    let long = "x".repeat(65);
    for (code, name, expected) in [
        (code.as_str(), "", "BAD_USER_INPUT"),
        (code.as_str(), "   ", "BAD_USER_INPUT"),
        (code.as_str(), long.as_str(), "BAD_USER_INPUT"),
        ("NOPE-NOPE-NOPE", "Gus", "NOT_FOUND"),
        ("<script>", "Gus", "NOT_FOUND"),
    ] {
        let before = app.snapshot().await;
        join_as_guest(&app, code, name).await.assert_code(expected);
        assert_eq!(app.snapshot().await, before, "{code:?} {name:?}");
    }
    app.gql_as(
        &ana,
        "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
        json!({ "s": session }),
    )
    .await
    .ok();
    let before = app.snapshot().await;
    join_as_guest(&app, &code, "Gus")
        .await
        .assert_code("CONFLICT");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn joining_as_a_guest_is_rate_limited_per_ip() {
    let app = TestApp::spawn_with(&[
        "--rate-limits=true",
        "--rate-sign-in-per-minute=1",
        "--rate-sign-in-burst=2",
    ])
    .await;
    let ana = app.sign_in("ana@example.com").await;
    let (_, code) = create_session(&app, &ana, "Beach day").await;
    // Ana's sign-in used one of the two.
    join_as_guest(&app, &code, "Gus").await.ok();
    let limited = join_as_guest(&app, &code, "Hal").await;
    limited.assert_code("RATE_LIMITED");
    assert_eq!(app.count("users", "is_guest").await, 1);
}

#[tokio::test]
async fn the_owner_decides_whether_guests_may_join() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let created = app
        .gql_as(
            &ana,
            "mutation { createSession(input: { title: \"Members only\", allowGuests: false }) { id inviteCode allowGuests } }",
            json!({}),
        )
        .await;
    let session = created.ok()["createSession"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = created.ok()["createSession"]["inviteCode"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created.ok()["createSession"]["allowGuests"], false);
    join(&app, &bob, &code).await.ok();
    let invite = app
        .gql_as(
            &eve,
            "query($c: String!) { sessionInvite(code: $c) { allowsGuests } }",
            json!({ "c": code }),
        )
        .await;
    assert_eq!(invite.ok()["sessionInvite"]["allowsGuests"], false);

    let before = app.snapshot().await;
    join_as_guest(&app, &code, "Gus")
        .await
        .assert_code("FORBIDDEN");
    assert_eq!(app.snapshot().await, before);

    const UPDATE: &str = "mutation($s: ID!, $on: Boolean!) { updateSession(sessionId: $s, input: { allowGuests: $on }) { allowGuests } }";
    // Only the owner: a member is FORBIDDEN, a stranger cannot see it, anonymous must sign in.
    app.gql_as(&bob, UPDATE, json!({ "s": session, "on": true }))
        .await
        .assert_code("FORBIDDEN");
    app.gql_as(&eve, UPDATE, json!({ "s": session, "on": true }))
        .await
        .assert_code("NOT_FOUND");
    app.gql_anon(UPDATE, json!({ "s": session, "on": true }))
        .await
        .assert_code("UNAUTHENTICATED");
    let still = app
        .gql_as(
            &ana,
            "query($s: ID!) { session(id: $s) { allowGuests } }",
            json!({ "s": session }),
        )
        .await;
    assert_eq!(
        still.ok()["session"]["allowGuests"],
        false,
        "a refused update wrote"
    );

    let on = app
        .gql_as(&ana, UPDATE, json!({ "s": session, "on": true }))
        .await;
    assert_eq!(on.ok()["updateSession"]["allowGuests"], true);
    let gus = guest(&app, &code, "Gus").await;

    let off = app
        .gql_as(&ana, UPDATE, json!({ "s": session, "on": false }))
        .await;
    assert_eq!(off.ok()["updateSession"]["allowGuests"], false);
    join_as_guest(&app, &code, "Hal")
        .await
        .assert_code("FORBIDDEN");
    // Gus stays, and keeps taking part.
    assert!(members(&app, &ana, &session).await.contains(&gus.id));
    upload(&app, &gus, &session, &photo_bytes(3, 256)).await;
    // The guest is a member, not the owner.
    app.gql_as(&gus, UPDATE, json!({ "s": session, "on": true }))
        .await
        .assert_code("FORBIDDEN");
}

#[tokio::test]
async fn the_sweeper_removes_a_guest_once_their_sessions_are_over() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    let (live_session, live_code) = create_session(&app, &ana, "Still going").await;
    let long_lived = app
        .gql_as(
            &ana,
            "mutation { createSession(input: { title: \"Weekend\", photoLifetimeHours: 72 }) { id inviteCode } }",
            json!({}),
        )
        .await;
    let weekend = long_lived.ok()["createSession"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let weekend_code = long_lived.ok()["createSession"]["inviteCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let gus = guest(&app, &code, "Gus").await;
    let hal = guest(&app, &live_code, "Hal").await;
    let ivy = guest(&app, &weekend_code, "Ivy").await;
    upload(&app, &gus, &session, &photo_bytes(1, 256)).await;
    upload(&app, &hal, &live_session, &photo_bytes(2, 256)).await;
    upload(&app, &ivy, &weekend, &photo_bytes(3, 256)).await;
    for ended in [&session, &weekend] {
        app.gql_as(
            &ana,
            "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
            json!({ "s": ended }),
        )
        .await
        .ok();
    }
    let gus_uuid = uuid_of(&gus.id);
    let hal_uuid = uuid_of(&hal.id);
    let guest_rows = |id: uuid::Uuid| format!("id = {}", sql_id(&app, id));
    let now = chrono::Utc::now();

    // The session ended but Gus's photo has not expired (5 hours): he stays.
    assert_eq!(
        app.sweep_at(now + chrono::Duration::hours(1)).await.guests,
        0
    );
    // His photo expired, but the event log (24 hours) still shows him joining: he stays.
    let report = app.sweep_at(now + chrono::Duration::hours(6)).await;
    assert_eq!(report.guests, 0);
    assert!(report.expired_photos >= 1);
    assert_eq!(app.count("users", &guest_rows(gus_uuid)).await, 1);

    // Past the log's window: Gus goes with his tokens and membership. Hal's session is still
    // live, so Hal stays whatever the clock says (his photo expired long ago).
    let report = app.sweep_at(now + chrono::Duration::hours(30)).await;
    assert_eq!(report.guests, 1);
    assert_eq!(app.count("users", &guest_rows(gus_uuid)).await, 0);
    assert_eq!(
        app.count(
            "refresh_tokens",
            &format!("user_id = {}", sql_id(&app, gus_uuid))
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "session_members",
            &format!("user_id = {}", sql_id(&app, gus_uuid))
        )
        .await,
        0
    );
    assert_eq!(app.count("users", &guest_rows(hal_uuid)).await, 1);
    // Ivy's session ended too, but her photo lives 72 hours: she stays while it does.
    let ivy_uuid = uuid_of(&ivy.id);
    assert_eq!(app.count("users", &guest_rows(ivy_uuid)).await, 1);
    let report = app.sweep_at(now + chrono::Duration::hours(73)).await;
    assert_eq!(report.guests, 1);
    assert_eq!(app.count("users", &guest_rows(ivy_uuid)).await, 0);
    app.gql_anon(
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
        json!({ "t": gus.refresh_token }),
    )
    .await
    .assert_code("UNAUTHENTICATED");
    // Accounts are never swept, whatever their sessions.
    assert_eq!(app.count("users", "NOT is_guest").await, 1);
}

#[tokio::test]
async fn claiming_a_guest_account_moves_its_memberships_and_photos() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    let (second, second_code) = create_session(&app, &ana, "After party").await;
    let gus = guest(&app, &code, "Gus").await;
    // Bob is already in the second session, which the guest also joined then left.
    join(&app, &bob, &second_code).await.ok();
    let gus_in_second = guest(&app, &second_code, "Gus again").await;
    app.gql_as(
        &gus_in_second,
        "mutation($s: ID!) { leaveSession(sessionId: $s) }",
        json!({ "s": second }),
    )
    .await
    .ok();

    // Anonymous, a bad token, or an account's own token: refused, nothing moves, and the
    // account's token still works afterwards.
    let before = app.snapshot().await;
    app.gql_anon(CLAIM, json!({ "t": gus.refresh_token }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_as(&bob, CLAIM, json!({ "t": "phrt_not-a-token" }))
        .await
        .assert_code("UNAUTHENTICATED");
    app.gql_as(&bob, CLAIM, json!({ "t": ana.refresh_token }))
        .await
        .assert_code("UNAUTHENTICATED");
    assert_eq!(app.snapshot().await, before);
    app.gql_anon(
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
        json!({ "t": ana.refresh_token }),
    )
    .await
    .ok();

    // Ana follows the album; the cursor of the guest's photo is where she later resumes
    // the session's events from, to see the swap.
    let mut ana_ws = WsClient::connect_as(&app, Protocol::Transport, &ana.token).await;
    ana_ws
        .subscribe("p", PHOTO_ADDED_CURSOR, json!({ "s": session }))
        .await;
    app.wait_online(1).await;
    let photo = upload(&app, &gus, &session, &photo_bytes(1, 2048)).await;
    let added = ana_ws.next_payload("p").await;
    let cursor = added["data"]["photoAdded"]["cursor"].clone();
    assert!(cursor.is_string(), "{added}");

    let claimed = app
        .gql_as(&bob, CLAIM, json!({ "t": gus.refresh_token }))
        .await;
    assert_eq!(claimed.ok()["claimGuestAccount"]["id"], bob.id);
    assert_eq!(claimed.ok()["claimGuestAccount"]["isGuest"], false);

    // The membership and the photo are Bob's now, and the photo's URL is his original.
    let bobs = members(&app, &ana, &session).await;
    assert!(
        bobs.contains(&bob.id) && !bobs.contains(&gus.id),
        "{bobs:?}"
    );
    let seen = app.gql_as(&bob, PHOTO, json!({ "id": photo })).await;
    assert_eq!(seen.ok()["photo"]["uploader"]["id"], bob.id);
    assert!(
        seen.ok()["photo"]["url"]
            .as_str()
            .unwrap()
            .contains("/original")
    );
    let seen = app.gql_as(&ana, PHOTO, json!({ "id": photo })).await;
    assert_eq!(seen.ok()["photo"]["uploader"]["isGuest"], false);

    // The others see the guest leave and Bob join.
    ana_ws
        .subscribe(
            "e",
            SESSION_EVENTS,
            json!({ "s": session, "after": cursor }),
        )
        .await;
    let mut swap = Vec::new();
    while swap.len() < 2 {
        let payload = ana_ws.next_payload("e").await;
        let event = &payload["data"]["sessionEvents"];
        match event["__typename"].as_str() {
            Some("MemberLeft") | Some("MemberJoined") => {
                swap.push((event["__typename"].clone(), event["user"]["id"].clone()))
            }
            _ => {}
        }
    }
    assert_eq!(
        swap,
        [
            (json!("MemberLeft"), json!(gus.id)),
            (json!("MemberJoined"), json!(bob.id)),
        ]
    );

    // The guest's tokens are gone: refresh fails, and so does a second claim.
    app.gql_anon(
        "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
        json!({ "t": gus.refresh_token }),
    )
    .await
    .assert_code("UNAUTHENTICATED");
    let ana_claim = app
        .gql_as(&ana, CLAIM, json!({ "t": gus.refresh_token }))
        .await;
    ana_claim.assert_code("UNAUTHENTICATED");

    // A guest who left a session the claimer is in: their row goes, and nothing is announced
    // (they were not there to leave).
    let events_before = app.count("events", "").await;
    let claimed = app
        .gql_as(&bob, CLAIM, json!({ "t": gus_in_second.refresh_token }))
        .await;
    assert_eq!(claimed.ok()["claimGuestAccount"]["id"], bob.id);
    assert_eq!(app.count("events", "").await, events_before);
    let in_second = members(&app, &ana, &second).await;
    assert!(in_second.contains(&bob.id) && !in_second.contains(&gus_in_second.id));
    assert_eq!(
        app.count(
            "session_members",
            &format!("user_id = {}", sql_id(&app, uuid_of(&gus_in_second.id)))
        )
        .await,
        0
    );
}

#[tokio::test]
async fn two_claims_racing_with_one_guest_token_give_it_to_one_user() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    let gus = guest(&app, &code, "Gus").await;
    upload(&app, &gus, &session, &photo_bytes(1, 256)).await;
    let (b, c) = tokio::join!(
        app.gql_as(&bob, CLAIM, json!({ "t": gus.refresh_token })),
        app.gql_as(&cy, CLAIM, json!({ "t": gus.refresh_token })),
    );
    let winners: Vec<&GqlResponse> = [&b, &c]
        .into_iter()
        .filter(|r| r.body.get("errors").is_none())
        .collect();
    assert_eq!(winners.len(), 1, "{} / {}", b.body, c.body);
    let loser = if winners[0].body == b.body { &c } else { &b };
    loser.assert_code("UNAUTHENTICATED");
    let winner_id = winners[0].ok()["claimGuestAccount"]["id"].as_str().unwrap();
    let uploader = app
        .count(
            "photos",
            &format!("uploader_id = {}", sql_id(&app, uuid_of(winner_id))),
        )
        .await;
    assert_eq!(uploader, 1);
}

#[tokio::test]
async fn the_guests_migration_goes_down_and_up_again_around_existing_data() {
    use migration::MigratorTrait;
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    befriend(&app, &ana, &bob).await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &bob, &code).await.ok();
    guest(&app, &code, "Gus").await;
    upload(&app, &bob, &session, &photo_bytes(1, 256)).await;

    // Down: guests cannot outlive a required e-mail column, everyone else keeps every row
    // that points at them (on SQLite the users table is rebuilt under them).
    // Down to just before the guests migration, whatever came after it.
    let after_guests = migration::Migrator::migrations()
        .iter()
        .rev()
        .position(|m| m.name() == "m20261202_000003_guests")
        .expect("the guests migration")
        + 1;
    migration::Migrator::down(&app.db, Some(after_guests as u32))
        .await
        .unwrap();
    assert_eq!(app.count("users", "").await, 2);
    assert_eq!(app.count("session_members", "").await, 2);
    assert_eq!(app.count("friendships", "").await, 1);
    assert_eq!(app.count("photos", "").await, 1);
    let nameless = format!(
        "INSERT INTO users (id, name, created_at, updated_at) \
         SELECT {}, name, created_at, updated_at FROM users WHERE email = 'ana@example.com'",
        sql_id(&app, uuid::Uuid::new_v4())
    );
    let refused = app
        .db
        .execute_unprepared(&nameless)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("NOT NULL") || refused.contains("not-null"),
        "the e-mail is required again: {refused}"
    );
    migration::Migrator::up(&app.db, None).await.unwrap();
    assert_eq!(
        app.count("users", "email IS NOT NULL AND NOT is_guest")
            .await,
        2
    );
    // A session from before guests keeps its rule (sign in to join) until its owner says.
    assert_eq!(app.count("sessions", "allow_guests").await, 0);
    let name_index = match app.backend {
        Backend::Postgres => "pg_indexes WHERE indexname = 'idx_users_name'",
        Backend::Sqlite => "sqlite_master WHERE type = 'index' AND name = 'idx_users_name'",
    };
    assert_eq!(app.count(name_index, "").await, 1, "the name index is gone");

    // The server goes on as before on the rebuilt schema, guests included.
    assert!(members(&app, &ana, &session).await.contains(&bob.id));
    join_as_guest(&app, &code, "Gus")
        .await
        .assert_code("FORBIDDEN");
    app.gql_as(
        &ana,
        "mutation($s: ID!) { updateSession(sessionId: $s, input: { allowGuests: true }) { id } }",
        json!({ "s": session }),
    )
    .await
    .ok();
    let gus = guest(&app, &code, "Gus").await;
    assert!(members(&app, &ana, &session).await.contains(&gus.id));
    // The unique e-mail index survived the rebuild.
    assert_eq!(app.count("users", "email = 'ana@example.com'").await, 1);
    let copy = format!(
        "INSERT INTO users (id, email, name, created_at, updated_at, is_guest) \
         SELECT {}, email, name, created_at, updated_at, is_guest FROM users \
         WHERE email = 'ana@example.com'",
        sql_id(&app, uuid::Uuid::new_v4())
    );
    let refused = app
        .db
        .execute_unprepared(&copy)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("UNIQUE") || refused.contains("duplicate key"),
        "{refused}"
    );
}
