//! The owner runs the party: removing and banning members, editing and locking the session,
//! and late uploads after the end, over real HTTP and real WebSockets (two replicas where the
//! backend allows).

use std::time::{Duration, Instant};

use photon_tests::photos::{COMPLETE, complete, photo_bytes, request_slot, stage, upload};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{
    Backend, GqlResponse, TestApp, TestUser, befriend, create_session, create_session_with, guest,
    join,
};
use serde_json::{Value, json};

const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor photo { id } } }";
const SESSION_EVENTS: &str = "subscription($s: ID!) { sessionEvents(sessionId: $s) {
    __typename
    ... on MemberRemoved { cursor user { id } }
    ... on MemberJoined { cursor user { id } }
    ... on SessionUpdated { cursor session { id title joinsLocked lateUploadHours } }
    ... on SessionEnded { cursor endedAt }
} }";
const REMOVE: &str = "mutation($s: ID!, $u: ID!, $ban: Boolean) {
    removeMember(sessionId: $s, userId: $u, ban: $ban) { id members { edges { node { user { id } } } } }
}";
const UNBAN: &str = "mutation($s: ID!, $u: ID!) { unbanMember(sessionId: $s, userId: $u) { id } }";
const UPDATE: &str = "mutation($s: ID!, $input: UpdateSessionInput!) {
    updateSession(sessionId: $s, input: $input) {
        id title photoLifetimeHours joinsLocked allowGuests lateUploadHours
    }
}";
const BANNED: &str = "query($s: ID!) {
    session(id: $s) { bannedMembers(first: 10) { edges { cursor node { id name } } } }
}";
const JOIN: &str = "mutation($code: String!) { joinSession(inviteCode: $code) { id } }";
const GUEST_JOIN: &str = "mutation($code: String!, $name: String!) {
    joinSessionAsGuest(inviteCode: $code, name: $name) { accessToken refreshToken user { id } }
}";

async fn remove(app: &TestApp, by: &TestUser, session: &str, who: &str, ban: bool) -> GqlResponse {
    app.gql_as(by, REMOVE, json!({ "s": session, "u": who, "ban": ban }))
        .await
}

async fn update(app: &TestApp, by: &TestUser, session: &str, input: Value) -> GqlResponse {
    app.gql_as(by, UPDATE, json!({ "s": session, "input": input }))
        .await
}

async fn join_code(app: &TestApp, who: &TestUser, code: &str) -> GqlResponse {
    app.gql_as(who, JOIN, json!({ "code": code })).await
}

async fn rotate(app: &TestApp, owner: &TestUser, session: &str) -> String {
    let rotated = app
        .gql_as(
            owner,
            "mutation($s: ID!) { rotateInviteCode(sessionId: $s) { inviteCode } }",
            json!({ "s": session }),
        )
        .await;
    rotated.ok()["rotateInviteCode"]["inviteCode"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn member_ids(session: &Value) -> Vec<String> {
    session["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["user"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads results for `id` until the stream completes; fails if it does not within `within`.
async fn expect_completes_within(client: &mut WsClient, id: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.recv_within(left).await {
            Some(photon_tests::ws::Received::Message(m)) if m["type"] == "complete" => {
                assert_eq!(m["id"], id);
                return;
            }
            Some(photon_tests::ws::Received::Message(m)) if m["id"] == id => continue,
            other => panic!("expected {id} to complete within {within:?}, got {other:?}"),
        }
    }
}

/// Every new owner operation as anonymous, a stranger, a member and the owner.
#[tokio::test]
async fn only_the_owner_removes_unbans_updates_and_sees_bans() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &bob, &code).await.ok();
    join(&app, &cy, &code).await.ok();

    let vars_remove = json!({ "s": session, "u": cy.id, "ban": true });
    let vars_unban = json!({ "s": session, "u": cy.id });
    let vars_update = json!({ "s": session, "input": { "title": "Renamed" } });
    for (name, document, vars) in [
        ("removeMember", REMOVE, &vars_remove),
        ("unbanMember", UNBAN, &vars_unban),
        ("updateSession", UPDATE, &vars_update),
    ] {
        app.gql_anon(document, vars.clone())
            .await
            .assert_code("UNAUTHENTICATED");
        app.gql_as(&eve, document, vars.clone())
            .await
            .assert_code("NOT_FOUND");
        app.gql_as(&bob, document, vars.clone())
            .await
            .assert_code("FORBIDDEN");
        let ok = app.gql_as(&ana, document, vars.clone()).await;
        assert_eq!(ok.ok()[name]["id"], session, "{name} as the owner");
    }
    // Nothing the refused callers sent changed anything: the owner's own calls did.
    assert_eq!(app.count("session_bans", "").await, 0);

    // bannedMembers: the owner's alone; a member gets FORBIDDEN, a stranger no session.
    remove(&app, &ana, &session, &cy.id, true).await.ok();
    let owner_view = app.gql_as(&ana, BANNED, json!({ "s": session })).await;
    let edges = owner_view.ok()["session"]["bannedMembers"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["id"], cy.id);
    app.gql_as(&bob, BANNED, json!({ "s": session }))
        .await
        .assert_code("FORBIDDEN");
    let stranger = app.gql_as(&eve, BANNED, json!({ "s": session })).await;
    assert!(stranger.ok()["session"].is_null());
    app.gql_anon(BANNED, json!({ "s": session }))
        .await
        .assert_code("UNAUTHENTICATED");
}

#[tokio::test]
async fn removal_refuses_the_owner_themselves_and_unknown_members() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let eve = app.sign_in("eve@example.com").await;
    let (session, _) = create_session(&app, &ana, "Beach day").await;
    let myself = remove(&app, &ana, &session, &ana.id, false).await;
    myself.assert_code("BAD_USER_INPUT");
    assert_eq!(myself.body["errors"][0]["extensions"]["field"], "userId");
    remove(&app, &ana, &session, &eve.id, true)
        .await
        .assert_code("NOT_FOUND");
    remove(&app, &ana, &session, "not-an-id", false)
        .await
        .assert_code("BAD_USER_INPUT");
    assert_eq!(app.count("session_bans", "").await, 0);
    assert_eq!(app.count("events", "kind = 'member_removed'").await, 0);
}

/// Two replicas on one Postgres (one app on SQLite, which is single-process): the removed
/// member's streams on the other replica end within a second, the others see
/// `MemberRemoved`, their pending upload is refused, their photo stays, and the ban holds
/// against the current code, a rotated one and a guest join by the same account.
#[tokio::test]
async fn a_banned_member_is_cut_off_on_every_replica_and_cannot_come_back() {
    let a = TestApp::spawn().await;
    let b = if a.backend == Backend::Postgres {
        Some(a.spawn_replica(&[]).await)
    } else {
        eprintln!("one replica only: SQLite is single-process");
        None
    };
    let other = b.as_ref().unwrap_or(&a);
    let ana = a.sign_in("ana@example.com").await;
    let bob = a.sign_in("bob@example.com").await;
    let cy = a.sign_in("cy@example.com").await;
    let (session, code) = create_session(&a, &ana, "Beach day").await;
    join(&a, &bob, &code).await.ok();
    join(&a, &cy, &code).await.ok();
    let cys_photo = upload(&a, &cy, &session, &photo_bytes(1, 64)).await;
    // A slot Cy opened and filled, not yet completed.
    let pending = stage(&a, &cy, &session, photo_bytes(2, 64)).await;

    // Cy follows the session on the other replica, in both protocols' ways; Bob watches.
    let mut cy_photos = WsClient::connect_as(other, Protocol::Transport, &cy.token).await;
    cy_photos
        .subscribe("p", PHOTO_ADDED, json!({ "s": session }))
        .await;
    let mut cy_events = WsClient::connect_as(other, Protocol::Legacy, &cy.token).await;
    cy_events
        .subscribe("e", SESSION_EVENTS, json!({ "s": session }))
        .await;
    let mut bob_events = WsClient::connect_as(other, Protocol::Transport, &bob.token).await;
    bob_events
        .subscribe("e", SESSION_EVENTS, json!({ "s": session }))
        .await;
    other.wait_online(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let removed_at = Instant::now();
    let removed = remove(&a, &ana, &session, &cy.id, true).await;
    assert_eq!(
        member_ids(&removed.ok()["removeMember"]),
        [ana.id.clone(), bob.id.clone()]
    );
    expect_completes_within(&mut cy_photos, "p", Duration::from_secs(1)).await;
    // Cy's sessionEvents shows the removal, then ends.
    let last = cy_events.next_payload("e").await;
    assert_eq!(last["data"]["sessionEvents"]["__typename"], "MemberRemoved");
    expect_completes_within(&mut cy_events, "e", Duration::from_secs(1)).await;
    let elapsed = removed_at.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "streams ended after {elapsed:?}"
    );
    let seen = bob_events.next_payload("e").await;
    assert_eq!(seen["data"]["sessionEvents"]["__typename"], "MemberRemoved");
    assert_eq!(seen["data"]["sessionEvents"]["user"]["id"], cy.id);

    // The pending upload is refused; so is a new one; the photo Cy added stays for the rest.
    a.gql_as(&cy, COMPLETE, json!({ "id": pending }))
        .await
        .assert_code("NOT_FOUND");
    request_slot(&a, &cy, &session, &photo_bytes(3, 64))
        .await
        .assert_code("NOT_FOUND");
    let photo = a
        .gql_as(
            &bob,
            "query($id: ID!) { photo(id: $id) { id } }",
            json!({ "id": cys_photo }),
        )
        .await;
    assert_eq!(photo.ok()["photo"]["id"], cys_photo);
    // Resuming with a cursor is refused like any non-member's subscription.
    let mut again = WsClient::connect_as(other, Protocol::Transport, &cy.token).await;
    again
        .subscribe("p", PHOTO_ADDED, json!({ "s": session }))
        .await;
    let refused = again.next_payload("p").await;
    assert!(refused["data"].is_null(), "{refused}");
    assert_eq!(refused["errors"][0]["extensions"]["code"], "NOT_FOUND");

    // Banned: the current code, a rotated one, and a guest join while signed in.
    join_code(other, &cy, &code).await.assert_code("BANNED");
    let rotated = rotate(&a, &ana, &session).await;
    join_code(other, &cy, &rotated).await.assert_code("BANNED");
    other
        .gql_as(
            &cy,
            GUEST_JOIN,
            json!({ "code": rotated, "name": "Not Cy" }),
        )
        .await
        .assert_code("BANNED");
    assert_eq!(a.count("users", "is_guest").await, 0);
    assert_eq!(
        a.count("events", "kind = 'member_removed'").await,
        1,
        "one removal, one event"
    );

    // Lifted: Cy may join again with the code, and is not added back by the unban itself.
    a.gql_as(&ana, UNBAN, json!({ "s": session, "u": cy.id }))
        .await
        .ok();
    assert_eq!(a.count("session_bans", "").await, 0);
    let back = join_code(other, &cy, &rotated).await;
    assert_eq!(back.ok()["joinSession"]["id"], session);
}

/// A removed member without a ban may come back; a removed and banned guest cannot, and the
/// ban follows the guest into the account that claims them.
#[tokio::test]
async fn a_ban_follows_a_guest_into_the_account_that_claims_them() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &bob, &code).await.ok();
    remove(&app, &ana, &session, &bob.id, false).await.ok();
    assert_eq!(
        join_code(&app, &bob, &code).await.ok()["joinSession"]["id"],
        session
    );

    let gus = guest(&app, &code, "Gus").await;
    remove(&app, &ana, &session, &gus.id, true).await.ok();
    join_code(&app, &gus, &code).await.assert_code("BANNED");
    let dan = app.sign_in("dan@example.com").await;
    let claimed = app
        .gql_as(
            &dan,
            "mutation($t: String!) { claimGuestAccount(refreshToken: $t) { id } }",
            json!({ "t": gus.refresh_token }),
        )
        .await;
    claimed.ok();
    join_code(&app, &dan, &code).await.assert_code("BANNED");
    let bans = app.gql_as(&ana, BANNED, json!({ "s": session })).await;
    assert_eq!(
        bans.ok()["session"]["bannedMembers"]["edges"][0]["node"]["id"],
        dan.id
    );
}

#[tokio::test]
async fn update_session_edits_locks_and_announces_itself() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &bob, &code).await.ok();
    let photo = upload(&app, &bob, &session, &photo_bytes(1, 64)).await;
    let mut events = WsClient::connect_as(&app, Protocol::Transport, &bob.token).await;
    events
        .subscribe("e", SESSION_EVENTS, json!({ "s": session }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Every field is checked before anything is written.
    for (input, field) in [
        (json!({ "title": "  " }), "title"),
        (json!({ "photoLifetimeHours": 0 }), "photoLifetimeHours"),
        (json!({ "photoLifetimeHours": 73 }), "photoLifetimeHours"),
        (json!({ "lateUploadHours": -1 }), "lateUploadHours"),
        (json!({ "lateUploadHours": 73 }), "lateUploadHours"),
        (
            json!({ "title": "Fine", "lateUploadHours": 100 }),
            "lateUploadHours",
        ),
    ] {
        let refused = update(&app, &ana, &session, input.clone()).await;
        refused.assert_code("BAD_USER_INPUT");
        assert_eq!(
            refused.body["errors"][0]["extensions"]["field"], field,
            "{input}"
        );
    }
    assert_eq!(app.count("events", "kind = 'session_updated'").await, 0);

    let expires_before = photo_expiry(&app, &bob, &photo).await;
    let updated = update(
        &app,
        &ana,
        &session,
        json!({ "title": "Night swim", "photoLifetimeHours": 48, "joinsLocked": true, "lateUploadHours": 2 }),
    )
    .await;
    let session_now = &updated.ok()["updateSession"];
    assert_eq!(session_now["title"], "Night swim");
    assert_eq!(session_now["photoLifetimeHours"], 48);
    assert_eq!(session_now["joinsLocked"], true);
    assert_eq!(session_now["lateUploadHours"], 2);
    // The existing photo now lives 48 hours from its upload, not 5.
    let expires_after = photo_expiry(&app, &bob, &photo).await;
    let gained = expires_after - expires_before;
    assert!(
        (gained - chrono::Duration::hours(43)).num_seconds().abs() <= 1,
        "expiry moved by {gained}"
    );
    let announced = events.next_payload("e").await;
    let event = &announced["data"]["sessionEvents"];
    assert_eq!(event["__typename"], "SessionUpdated");
    assert_eq!(event["session"]["title"], "Night swim");
    assert_eq!(event["session"]["joinsLocked"], true);

    // Locked: the code is refused to new members and guests, members stay and may re-join.
    join_code(&app, &cy, &code)
        .await
        .assert_code("JOINS_LOCKED");
    app.gql_anon(GUEST_JOIN, json!({ "code": code, "name": "Gus" }))
        .await
        .assert_code("JOINS_LOCKED");
    assert_eq!(
        join_code(&app, &bob, &code).await.ok()["joinSession"]["id"],
        session
    );
    assert_eq!(app.count("users", "is_guest").await, 0);
    // An invite nobody could accept is refused rather than ringing a phone.
    befriend(&app, &ana, &cy).await;
    app.gql_as(
        &ana,
        "mutation($s: ID!, $u: [ID!]!) { inviteToSession(sessionId: $s, userIds: $u) { id } }",
        json!({ "s": session, "u": [cy.id] }),
    )
    .await
    .assert_code("JOINS_LOCKED");
    assert_eq!(app.count("events", "kind = 'member_invited'").await, 0);
    // The same settings again change nothing and announce nothing.
    update(
        &app,
        &ana,
        &session,
        json!({ "joinsLocked": true, "title": "Night swim" }),
    )
    .await
    .ok();
    assert_eq!(app.count("events", "kind = 'session_updated'").await, 1);
    events.expect_silence(Duration::from_millis(300)).await;

    update(&app, &ana, &session, json!({ "joinsLocked": false }))
        .await
        .ok();
    assert_eq!(
        join_code(&app, &cy, &code).await.ok()["joinSession"]["id"],
        session
    );
    // A shorter lifetime applies to the photo too: an hour from its upload.
    update(&app, &ana, &session, json!({ "photoLifetimeHours": 1 }))
        .await
        .ok();
    let shortened = photo_expiry(&app, &bob, &photo).await - expires_before;
    assert!(
        (shortened + chrono::Duration::hours(4)).num_seconds().abs() <= 1,
        "expiry moved by {shortened}"
    );
}

async fn photo_expiry(app: &TestApp, who: &TestUser, photo: &str) -> chrono::DateTime<chrono::Utc> {
    let response = app
        .gql_as(
            who,
            "query($id: ID!) { photo(id: $id) { expiresAt } }",
            json!({ "id": photo }),
        )
        .await;
    response.ok()["photo"]["expiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// After the end, members upload for the late window and subscribers receive those photos;
/// once the window closes, uploads are refused with a clear code and the streams complete.
/// A slot opened before the end completes after it whatever the window.
#[tokio::test]
async fn late_uploads_reach_subscribers_until_the_window_closes() {
    let a = TestApp::spawn().await;
    let b = if a.backend == Backend::Postgres {
        Some(a.spawn_replica(&[]).await)
    } else {
        None
    };
    let other = b.as_ref().unwrap_or(&a);
    let ana = a.sign_in("ana@example.com").await;
    let bob = a.sign_in("bob@example.com").await;
    let (session, code) = create_session(&a, &ana, "Beach day").await;
    join(&a, &bob, &code).await.ok();
    let early_slot = stage(&a, &bob, &session, photo_bytes(9, 64)).await;
    let mut watcher = WsClient::connect_as(other, Protocol::Transport, &ana.token).await;
    watcher
        .subscribe("p", PHOTO_ADDED, json!({ "s": session }))
        .await;
    let mut events = WsClient::connect_as(other, Protocol::Transport, &ana.token).await;
    events
        .subscribe("e", SESSION_EVENTS, json!({ "s": session }))
        .await;
    other.wait_online(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    a.gql_as(
        &ana,
        "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
        json!({ "s": session }),
    )
    .await
    .ok();
    let ended = events.next_payload("e").await;
    assert_eq!(ended["data"]["sessionEvents"]["__typename"], "SessionEnded");

    // The phone that had no signal catches up: the photo reaches the album and its stream.
    let late = upload(&a, &bob, &session, &photo_bytes(1, 64)).await;
    let arrived = watcher.next_payload("p").await;
    assert_eq!(arrived["data"]["photoAdded"]["photo"]["id"], late);
    // A subscriber who comes in after the end is live too, until the window closes.
    let mut later = WsClient::connect_as(&a, Protocol::Transport, &bob.token).await;
    later
        .subscribe("p", PHOTO_ADDED, json!({ "s": session }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The owner closes the window: uploads are refused, every stream completes.
    update(&a, &ana, &session, json!({ "lateUploadHours": 0 }))
        .await
        .ok();
    expect_completes_within(&mut watcher, "p", Duration::from_secs(2)).await;
    expect_completes_within(&mut events, "e", Duration::from_secs(2)).await;
    expect_completes_within(&mut later, "p", Duration::from_secs(2)).await;
    let refused = request_slot(&a, &bob, &session, &photo_bytes(2, 64)).await;
    refused.assert_code("UPLOAD_WINDOW_CLOSED");
    // Opened before the end: completes while its URL is valid, window or not.
    complete(&a, &bob, &early_slot).await;
    assert_eq!(
        a.count("photos", "status = 'ready'").await,
        2,
        "the late photo and the early slot"
    );

    // A session created without a window stops taking uploads at its end.
    let input = json!({ "title": "Short", "lateUploadHours": 0 });
    let (short, _) = create_session_with(&a, &ana, input).await;
    a.gql_as(
        &ana,
        "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
        json!({ "s": short }),
    )
    .await
    .ok();
    request_slot(&a, &ana, &short, &photo_bytes(3, 64))
        .await
        .assert_code("UPLOAD_WINDOW_CLOSED");
}

/// A removed member's phone stops hearing from the session; the others' does not.
#[tokio::test]
async fn a_removed_member_gets_no_more_pushes_from_the_session() {
    use photon_tests::fake_fcm::FakeFcm;
    let fcm = FakeFcm::start().await;
    let mut args = fcm.args();
    args.push("--push-poll-ms=25".to_owned());
    args.push("--push-coalesce-ms=0".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = TestApp::spawn_with(&args).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &bo, &code).await.ok();
    join(&app, &cy, &code).await.ok();
    for (user, token) in [(&bo, "bo-phone"), (&cy, "cy-phone")] {
        app.gql_as(
            user,
            "mutation($t: String!) { registerDevice(token: $t, platform: ANDROID) { id } }",
            json!({ "t": token }),
        )
        .await
        .ok();
    }
    remove(&app, &ana, &session, &cy.id, false).await.ok();
    upload(&app, &ana, &session, &photo_bytes(1, 256)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count("events", "push_state = 'pending'").await > 0 {
        assert!(Instant::now() < deadline, "pushes still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fcm.delivered_to("bo-phone").len(), 1);
    assert!(fcm.delivered_to("cy-phone").is_empty());
}
