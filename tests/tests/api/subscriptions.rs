//! Subscriptions over real WebSockets, in both sub-protocols: live photos, resuming from a
//! cursor, session events, authentication and the limits of a connection.

use std::time::Duration;

use futures_util::StreamExt;
use photon_tests::photos::{photo_bytes, upload};
use photon_tests::ws::{Protocol, Received, WsClient};
use photon_tests::{TestApp, TestUser, create_session, create_session_with, join};
use serde_json::{Value, json};

const PHOTO_ADDED: &str = "subscription($s: ID!, $after: String) { photoAdded(sessionId: $s, after: $after) { cursor photo { id sha256 status url uploader { id } } } }";
const SESSION_EVENTS: &str = "subscription($s: ID!, $after: String) { sessionEvents(sessionId: $s, after: $after) { __typename ... on MemberJoined { cursor user { id } } ... on MemberLeft { cursor user { id } } ... on PhotoDeleted { cursor photoId } ... on SessionEnded { cursor endedAt } } }";

/// An owner with a session, and a second member in it.
async fn session_with_member(app: &TestApp) -> (TestUser, TestUser, String) {
    let owner = app.sign_in("ana@example.com").await;
    let member = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(app, &owner, "Beach day").await;
    join(app, &member, &code).await.ok();
    (owner, member, session)
}

/// Subscribes to photoAdded and waits until the subscription is live.
async fn follow_photos(
    app: &TestApp,
    client: &mut WsClient,
    id: &str,
    session: &str,
    after: Option<&str>,
    online: i64,
) {
    client
        .subscribe(id, PHOTO_ADDED, json!({ "s": session, "after": after }))
        .await;
    app.wait_online(online).await;
}

/// The `field` of a subscription result, after checking that it carries no errors.
fn result<'a>(payload: &'a Value, field: &str) -> &'a Value {
    assert!(
        payload.get("errors").is_none(),
        "unexpected errors: {payload}"
    );
    &payload["data"][field]
}

fn event(payload: &Value) -> &Value {
    result(payload, "photoAdded")
}

#[tokio::test]
async fn a_photo_reaches_the_other_members_live_in_both_protocols() {
    for protocol in Protocol::BOTH {
        let app = TestApp::spawn().await;
        let (owner, member, session) = session_with_member(&app).await;
        let mut client = WsClient::connect_as(&app, protocol, &member.token).await;
        follow_photos(&app, &mut client, "1", &session, None, 1).await;

        let bytes = photo_bytes(1, 2048);
        let photo_id = upload(&app, &owner, &session, &bytes).await;

        let payload = client.next_payload("1").await;
        let added = event(&payload);
        assert_eq!(added["photo"]["id"], photo_id, "{protocol:?}");
        assert_eq!(added["photo"]["status"], "READY");
        assert_eq!(added["photo"]["uploader"]["id"], owner.id);
        assert!(added["cursor"].as_str().is_some_and(|c| !c.is_empty()));
        // The URL in the event is the copy without metadata, never the uploader's original
        // (its bytes are checked in `processing::`).
        let url = added["photo"]["url"].as_str().unwrap();
        assert!(url.contains("/shared"), "{url}");

        // Stopping the subscription stops the events, and the member counts as offline.
        client.stop("1").await;
        if protocol == Protocol::Legacy {
            client.expect_complete("1").await;
        }
        app.wait_online(0).await;
        upload(&app, &owner, &session, &photo_bytes(2, 100)).await;
        client.expect_silence(Duration::from_millis(500)).await;
        client.close().await;
    }
}

#[tokio::test]
async fn only_members_may_subscribe() {
    let app = TestApp::spawn().await;
    let (owner, _member, session) = session_with_member(&app).await;
    let stranger = app.sign_in("eve@example.com").await;
    for protocol in Protocol::BOTH {
        for (who, expected) in [(Some(&stranger), "NOT_FOUND"), (None, "UNAUTHENTICATED")] {
            let mut client = match who {
                Some(user) => WsClient::connect_as(&app, protocol, &user.token).await,
                None => WsClient::connect(&app, protocol, json!({})).await,
            };
            for (id, query) in [("p", PHOTO_ADDED), ("e", SESSION_EVENTS)] {
                client
                    .subscribe(id, query, json!({ "s": session, "after": null }))
                    .await;
                let payload = client.next_payload(id).await;
                assert_eq!(payload["errors"][0]["extensions"]["code"], expected);
                assert!(payload["data"].is_null());
                client.expect_complete(id).await;
            }
            client.close().await;
        }
    }
    // Nothing the stranger did counts them as present, and the owner still gets live photos.
    assert_eq!(app.count("presence", "true").await, 0);
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &owner.token).await;
    follow_photos(&app, &mut client, "1", &session, None, 1).await;
}

#[tokio::test]
async fn a_bad_token_closes_the_socket_with_4403() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    let expired = app.forge_token(&user, -60);
    let payloads = [
        json!({ "authorization": "Bearer not-a-token" }),
        json!({ "Authorization": format!("Bearer {expired}") }),
        json!({ "token": "garbage" }),
        json!({ "authorization": format!("Basic {}", user.token) }),
    ];
    for protocol in Protocol::BOTH {
        for payload in &payloads {
            let mut client = WsClient::open(&app, protocol).await;
            client.init(payload.clone()).await;
            if protocol == Protocol::Legacy {
                match client.recv().await {
                    Received::Message(m) => assert_eq!(m["type"], "connection_error"),
                    other => panic!("expected connection_error, got {other:?}"),
                }
            }
            let (code, _) = client.expect_close().await;
            assert_eq!(code, 4403, "{protocol:?} {payload}");
        }
        // Every accepted spelling of a good token works.
        for payload in [
            json!({ "authorization": format!("Bearer {}", user.token) }),
            json!({ "Authorization": format!("Bearer {}", user.token) }),
            json!({ "token": user.token }),
            json!({ "headers": { "Authorization": format!("Bearer {}", user.token) } }),
        ] {
            WsClient::connect(&app, protocol, payload)
                .await
                .close()
                .await;
        }
    }
}

#[tokio::test]
async fn the_socket_closes_when_its_token_expires() {
    let app = TestApp::spawn_with(&["--access-token-ttl-secs=2"]).await;
    let (_owner, member, session) = session_with_member(&app).await;
    for protocol in Protocol::BOTH {
        let member = app.sign_in(&member.email).await;
        let mut client = WsClient::connect_as(&app, protocol, &member.token).await;
        client
            .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
            .await;
        let started = std::time::Instant::now();
        let (code, reason) = client.expect_close().await;
        assert_eq!(code, 4403);
        assert!(reason.contains("expired"), "{reason}");
        assert!(started.elapsed() <= Duration::from_secs(4));
    }
    // The closed sockets' subscriptions no longer count as online.
    app.wait_online(0).await;
}

#[tokio::test]
async fn a_client_that_missed_photos_resumes_from_its_cursor() {
    for protocol in Protocol::BOTH {
        let app = TestApp::spawn().await;
        let (owner, member, session) = session_with_member(&app).await;
        let mut client = WsClient::connect_as(&app, protocol, &member.token).await;
        follow_photos(&app, &mut client, "1", &session, None, 1).await;
        upload(&app, &owner, &session, &photo_bytes(0, 64)).await;
        let payload = client.next_payload("1").await;
        let cursor = event(&payload)["cursor"].as_str().unwrap().to_owned();
        client.close().await;
        app.wait_online(0).await;

        // Offline: five photos arrive, from two members.
        let mut missed = Vec::new();
        for seed in 1..=5u8 {
            let by = if seed % 2 == 0 { &member } else { &owner };
            missed.push(upload(&app, by, &session, &photo_bytes(seed, 64)).await);
        }

        let mut client = WsClient::connect_as(&app, protocol, &member.token).await;
        follow_photos(&app, &mut client, "2", &session, Some(&cursor), 1).await;
        let mut replayed = Vec::new();
        for _ in 0..5 {
            let payload = client.next_payload("2").await;
            replayed.push(event(&payload)["photo"]["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            replayed, missed,
            "{protocol:?}: exactly the missed photos, in order"
        );

        // Then live, with nothing repeated.
        let live = upload(&app, &owner, &session, &photo_bytes(9, 64)).await;
        let payload = client.next_payload("2").await;
        assert_eq!(event(&payload)["photo"]["id"], live);
        client.expect_silence(Duration::from_millis(300)).await;
    }
}

/// The statements the server runs for one `photoAdded` start after `after`, from the
/// subscribe until it is live and the server is idle again; and the socket it runs on.
async fn statements_of_a_start(
    app: &TestApp,
    member: &TestUser,
    session: &str,
    after: &str,
) -> (u64, WsClient) {
    loop {
        let beats = heartbeats(app).await;
        let mut client = WsClient::connect_as(app, Protocol::Transport, &member.token).await;
        let before = app.settled_statements().await;
        follow_photos(app, &mut client, "1", session, Some(after), 1).await;
        let statements = app.settled_statements().await - before;
        if heartbeats(app).await == beats {
            return (statements, client);
        }
        // The replica's heartbeat (every 10 s) fell in the window: a statement that is not
        // the start's, so again.
        client.close().await;
        app.wait_online(0).await;
    }
}

/// The cursor of the session's newest photo in `member`'s photo list.
async fn newest_photo_cursor(app: &TestApp, member: &TestUser, session: &str) -> String {
    let list = app
        .gql_as(
            member,
            "query($s: ID!) { session(id: $s) { photos(first: 1) { edges { cursor } } } }",
            json!({ "s": session }),
        )
        .await;
    list.ok()["session"]["photos"]["edges"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// When each replica last wrote its heartbeat.
async fn heartbeats(app: &TestApp) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let sql = "SELECT CAST(heartbeat_at AS TEXT) AS at FROM replicas ORDER BY id";
    let rows = app
        .db
        .query_all_raw(Statement::from_string(app.db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.try_get::<String>("", "at").unwrap())
        .collect()
}

#[tokio::test]
async fn a_start_from_the_newest_cursor_reads_no_page_of_the_log() {
    // Only the starts' statements are counted: no sequence check (a read of its own now and
    // then) and no photo workers (their polls, and their attempts at these photos).
    let app = TestApp::spawn_with(&["--event-check-ms=60000", "--processing-concurrency=0"]).await;
    let owner = app.sign_in("ana@example.com").await;
    let member = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &owner, "Beach day").await;
    join(&app, &member, &code).await.ok();
    let photo = upload(&app, &owner, &session, &photo_bytes(1, 64)).await;
    // An event after the photo that a photo feed does not show (as every photo's
    // `photo_processed` is, where workers run): the newest photo is still the head for it.
    let carl = app.sign_in("carl@example.com").await;
    join(&app, &carl, &code).await.ok();
    let newest = newest_photo_cursor(&app, &member, &session).await;

    // The replica's first presence row also registers the replica (its first heartbeat):
    // out of the way first.
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &member.token).await;
    follow_photos(&app, &mut client, "1", &session, None, 1).await;
    client.close().await;
    app.wait_online(0).await;

    // A phone that had everything, as most have when a restart drops them: the start's
    // statement (session, membership, join, pruning mark, blocks, the log's head) and its
    // presence row, and no page of the log.
    let (at_head, mut client) = statements_of_a_start(&app, &member, &session, &newest).await;
    // Exact on Postgres only. On SQLite every server in this test process shares the
    // tailer's wake-up (in production a process is one server), so other tests' events
    // add reads of the log to this server's count.
    let exact = app.backend == photon_tests::Backend::Postgres;
    if exact {
        assert_eq!(at_head, 2, "statements for a start at the head");
    }
    client.expect_silence(Duration::from_millis(300)).await;
    // And it is live like any other.
    let live = upload(&app, &owner, &session, &photo_bytes(2, 64)).await;
    let payload = client.next_payload("1").await;
    assert_eq!(event(&payload)["photo"]["id"], live);
    client.close().await;
    app.wait_online(0).await;

    // One from before both photos reads the page (and its photos) and replays them.
    let (behind, mut client) = statements_of_a_start(&app, &member, &session, "MA").await;
    for expected in [&photo, &live] {
        let payload = client.next_payload("1").await;
        assert_eq!(&event(&payload)["photo"]["id"], expected);
    }
    // The start's statement, the page, its photos, the presence row, and one load of both
    // photos' uploaders (the query asks for them).
    if exact {
        assert_eq!(behind, 5, "statements for a start that replays");
    }
}

#[tokio::test]
async fn a_photo_list_cursor_resumes_a_subscription() {
    let app = TestApp::spawn().await;
    let (owner, member, session) = session_with_member(&app).await;
    let first = upload(&app, &owner, &session, &photo_bytes(1, 64)).await;
    let list = app
        .gql_as(
            &member,
            "query($s: ID!) { session(id: $s) { photos(first: 1) { edges { cursor node { id } } } } }",
            json!({ "s": session }),
        )
        .await;
    let edge = &list.ok()["session"]["photos"]["edges"][0];
    assert_eq!(edge["node"]["id"], first);
    let cursor = edge["cursor"].as_str().unwrap();
    let second = upload(&app, &owner, &session, &photo_bytes(2, 64)).await;

    let mut client = WsClient::connect_as(&app, Protocol::Transport, &member.token).await;
    follow_photos(&app, &mut client, "1", &session, Some(cursor), 1).await;
    let payload = client.next_payload("1").await;
    assert_eq!(event(&payload)["photo"]["id"], second);
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn session_events_cover_joins_leaves_deletions_and_the_end() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    // No late uploads: the end is the last thing that can happen.
    let input = json!({ "title": "Beach day", "lateUploadHours": 0 });
    let (session, code) = create_session_with(&app, &owner, input).await;
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &owner.token).await;
    client
        .subscribe("e", SESSION_EVENTS, json!({ "s": session }))
        .await;
    // sessionEvents does not count as online; give it a moment to be live.
    tokio::time::sleep(Duration::from_millis(300)).await;

    join(&app, &ben, &code).await.ok();
    let photo = upload(&app, &ben, &session, &photo_bytes(1, 64)).await;
    let deleted = app
        .gql_as(
            &ben,
            "mutation($id: ID!) { deletePhoto(photoId: $id) }",
            json!({ "id": photo }),
        )
        .await;
    assert_eq!(deleted.ok()["deletePhoto"], true);
    let left = app
        .gql_as(
            &ben,
            "mutation($s: ID!) { leaveSession(sessionId: $s) }",
            json!({ "s": session }),
        )
        .await;
    left.ok();
    app.gql_as(
        &owner,
        "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
        json!({ "s": session }),
    )
    .await
    .ok();

    let mut seen = Vec::new();
    for _ in 0..4 {
        let payload = client.next_payload("e").await;
        seen.push(payload["data"]["sessionEvents"].clone());
    }
    let kinds: Vec<&str> = seen
        .iter()
        .map(|e| e["__typename"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["MemberJoined", "PhotoDeleted", "MemberLeft", "SessionEnded"]
    );
    assert_eq!(seen[0]["user"]["id"], ben.id);
    assert_eq!(seen[1]["photoId"], photo);
    assert_eq!(seen[2]["user"]["id"], ben.id);
    assert!(seen[3]["endedAt"].is_string());
    // The end of a session without a late-upload window completes the stream.
    client.expect_complete("e").await;

    // Replaying from the first event's cursor gives the rest again, then completes.
    let cursor = seen[0]["cursor"].as_str().unwrap();
    client
        .subscribe(
            "r",
            SESSION_EVENTS,
            json!({ "s": session, "after": cursor }),
        )
        .await;
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let payload = client.next_payload("r").await;
        replayed.push(payload["data"]["sessionEvents"]["__typename"].clone());
    }
    assert_eq!(replayed, ["PhotoDeleted", "MemberLeft", "SessionEnded"]);
    client.expect_complete("r").await;
}

#[tokio::test]
async fn a_member_who_leaves_stops_receiving() {
    let app = TestApp::spawn().await;
    let (owner, member, session) = session_with_member(&app).await;
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &member.token).await;
    follow_photos(&app, &mut client, "1", &session, None, 1).await;
    app.gql_as(
        &member,
        "mutation($s: ID!) { leaveSession(sessionId: $s) }",
        json!({ "s": session }),
    )
    .await
    .ok();
    client.expect_complete("1").await;
    app.wait_online(0).await;
    upload(&app, &owner, &session, &photo_bytes(1, 64)).await;
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_connection_limits_its_subscriptions_and_rejects_duplicate_ids() {
    let app = TestApp::spawn_with(&["--ws-max-subscriptions=2"]).await;
    let (_owner, member, session) = session_with_member(&app).await;
    for protocol in Protocol::BOTH {
        let mut client = WsClient::connect_as(&app, protocol, &member.token).await;
        for id in ["a", "b"] {
            client
                .subscribe(id, SESSION_EVENTS, json!({ "s": session }))
                .await;
        }
        client
            .subscribe("c", SESSION_EVENTS, json!({ "s": session }))
            .await;
        match client.recv().await {
            Received::Message(m) => {
                assert_eq!(m["type"], "error");
                assert_eq!(m["id"], "c");
                assert_eq!(m["payload"][0]["extensions"]["code"], "RATE_LIMITED");
            }
            other => panic!("expected an error, got {other:?}"),
        }
        client
            .subscribe("a", SESSION_EVENTS, json!({ "s": session }))
            .await;
        match protocol {
            Protocol::Transport => assert_eq!(client.expect_close().await.0, 4409),
            Protocol::Legacy => match client.recv().await {
                Received::Message(m) => assert_eq!(
                    (m["type"].clone(), m["id"].clone()),
                    (json!("error"), json!("a"))
                ),
                other => panic!("expected an error, got {other:?}"),
            },
        }
    }
}

#[tokio::test]
async fn protocol_errors_close_the_socket_with_their_codes() {
    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;

    // Subscribing before connection_init.
    let mut client = WsClient::open(&app, Protocol::Transport).await;
    client
        .subscribe("1", "subscription { __typename }", json!({}))
        .await;
    assert_eq!(client.expect_close().await.0, 4401);

    // A second connection_init.
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &user.token).await;
    client.init(json!({})).await;
    assert_eq!(client.expect_close().await.0, 4429);

    // Not JSON, or not a message of the protocol.
    for garbage in [json!("hello"), json!({ "type": "start", "id": "1" })] {
        let mut client = WsClient::connect_as(&app, Protocol::Transport, &user.token).await;
        client.send(garbage).await;
        assert_eq!(client.expect_close().await.0, 4400);
    }

    // A document that does not validate is refused as an operation; the socket stays open.
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &user.token).await;
    client
        .subscribe("1", "subscription { nope }", json!({}))
        .await;
    match client.recv().await {
        Received::Message(m) => {
            assert_eq!(m["type"], "error");
            assert_eq!(
                m["payload"][0]["extensions"]["code"],
                "GRAPHQL_VALIDATION_FAILED"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    client.send(json!({ "type": "ping" })).await;
    match client.recv().await {
        Received::Message(m) => assert_eq!(m["type"], "pong"),
        other => panic!("expected pong, got {other:?}"),
    }

    // No sub-protocol the server speaks.
    let url = format!("ws://{}/graphql", app.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    match socket.next().await {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4406);
        }
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn the_server_sends_keepalives() {
    let app = TestApp::spawn_with(&["--ws-keepalive-secs=1"]).await;
    let user = app.sign_in("ana@example.com").await;
    for protocol in Protocol::BOTH {
        let mut client = WsClient::connect_as(&app, protocol, &user.token).await;
        client.expect_silence(Duration::from_millis(2500)).await;
        assert!(
            client.keepalives >= 2,
            "{protocol:?}: {}",
            client.keepalives
        );
    }
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_catches_up_from_the_log() {
    use photon::realtime::bus::CAPACITY;
    use photon::realtime::feed::{FeedStart, open};

    let app = TestApp::spawn().await;
    let owner = app.sign_in("ana@example.com").await;
    let (session, code) = create_session(&app, &owner, "Crowd").await;
    let session_uuid = photon_tests::uuid_of(&session);
    let owner_uuid = photon_tests::uuid_of(&owner.id);
    // A feed nobody reads while more events than its channel holds are committed.
    let feed = open(
        app.state.db.clone(),
        app.state.bus.clone(),
        FeedStart {
            session_id: session_uuid,
            viewer_id: owner_uuid,
            after: None,
            presence: None,
            since_join: false,
            admitted: None,
        },
    )
    .await
    .unwrap()
    .items;
    let joiners = CAPACITY + 16;
    for n in 0..joiners {
        let user = app.sign_in(&format!("guest{n}@example.com")).await;
        join(&app, &user, &code).await.ok();
    }
    let events: Vec<_> = feed
        .take(joiners)
        .map(|item| item.unwrap().event.id)
        .collect()
        .await;
    assert_eq!(events.len(), joiners);
    assert!(
        events.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates"
    );
}

/// The cursor of "before any event": what a client passes to replay a session from its start.
const FROM_THE_START: &str = "MA";

async fn leave(app: &TestApp, user: &TestUser, session: &str) {
    app.gql_as(
        user,
        "mutation($s: ID!) { leaveSession(sessionId: $s) }",
        json!({ "s": session }),
    )
    .await
    .ok();
}

fn session_event(payload: &Value) -> &Value {
    result(payload, "sessionEvents")
}

#[tokio::test]
async fn a_member_who_left_and_rejoined_resumes_from_an_older_cursor_and_keeps_receiving() {
    for protocol in Protocol::BOTH {
        let app = TestApp::spawn().await;
        let owner = app.sign_in("ana@example.com").await;
        let member = app.sign_in("ben@example.com").await;
        let (session, code) = create_session(&app, &owner, "Beach day").await;
        join(&app, &member, &code).await.ok();
        let mut client = WsClient::connect_as(&app, protocol, &member.token).await;
        follow_photos(&app, &mut client, "1", &session, None, 1).await;
        upload(&app, &owner, &session, &photo_bytes(1, 64)).await;
        let payload = client.next_payload("1").await;
        let cursor = event(&payload)["cursor"].as_str().unwrap().to_owned();

        // Away and back: the log now holds their departure after that cursor.
        leave(&app, &member, &session).await;
        client.expect_complete("1").await;
        join(&app, &member, &code).await.ok();
        let missed = upload(&app, &owner, &session, &photo_bytes(2, 64)).await;

        follow_photos(&app, &mut client, "2", &session, Some(&cursor), 1).await;
        let payload = client.next_payload("2").await;
        assert_eq!(event(&payload)["photo"]["id"], missed, "{protocol:?}");
        client
            .subscribe(
                "3",
                SESSION_EVENTS,
                json!({ "s": session, "after": cursor }),
            )
            .await;
        let payload = client.next_payload("3").await;
        let rejoined = session_event(&payload);
        assert_eq!(rejoined["__typename"], "MemberJoined", "{protocol:?}");
        assert_eq!(rejoined["user"]["id"], member.id);

        // Both stay open: live events still arrive.
        let live = upload(&app, &owner, &session, &photo_bytes(3, 64)).await;
        let payload = client.next_payload("2").await;
        assert_eq!(event(&payload)["photo"]["id"], live, "{protocol:?}");
        let cy = app.sign_in("cy@example.com").await;
        join(&app, &cy, &code).await.ok();
        let payload = client.next_payload("3").await;
        assert_eq!(session_event(&payload)["user"]["id"], cy.id, "{protocol:?}");
        client.expect_silence(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn session_events_replay_nothing_from_before_the_viewers_latest_join() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in("ana@example.com").await;
    let former = app.sign_in("ben@example.com").await;
    let member = app.sign_in("cy@example.com").await;
    let (session, code) = create_session(&app, &owner, "Beach day").await;
    join(&app, &former, &code).await.ok();
    join(&app, &member, &code).await.ok();
    leave(&app, &former, &session).await;
    leave(&app, &member, &session).await;
    join(&app, &member, &code).await.ok();

    let mut client = WsClient::connect_as(&app, Protocol::Transport, &member.token).await;
    client
        .subscribe(
            "e",
            SESSION_EVENTS,
            json!({ "s": session, "after": FROM_THE_START }),
        )
        .await;
    let payload = client.next_payload("e").await;
    let first = session_event(&payload);
    assert_eq!(first["__typename"], "MemberJoined");
    assert_eq!(
        first["user"]["id"], member.id,
        "only their latest join onwards"
    );
    client.expect_silence(Duration::from_millis(300)).await;

    // The owner, there from the start, still sees the whole log.
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &owner.token).await;
    client
        .subscribe(
            "e",
            SESSION_EVENTS,
            json!({ "s": session, "after": FROM_THE_START }),
        )
        .await;
    let mut kinds = Vec::new();
    for _ in 0..5 {
        let payload = client.next_payload("e").await;
        kinds.push(session_event(&payload)["__typename"].clone());
    }
    assert_eq!(
        kinds,
        [
            "MemberJoined",
            "MemberJoined",
            "MemberLeft",
            "MemberLeft",
            "MemberJoined"
        ]
    );
}

/// A session whose photos outlive the event log's retention.
async fn long_lived_session(app: &TestApp, owner: &TestUser) -> (String, String) {
    let response = app
        .gql_as(
            owner,
            "mutation { createSession(input: { title: \"Road trip\", photoLifetimeHours: 72 }) { id inviteCode } }",
            json!({}),
        )
        .await;
    let session = &response.ok()["createSession"];
    (
        session["id"].as_str().unwrap().to_owned(),
        session["inviteCode"].as_str().unwrap().to_owned(),
    )
}

/// A sweep as if `hours` had passed: the events written so far are past the default retention.
async fn sweep_after(app: &TestApp, hours: i64) {
    let settings = photon::jobs::sweeper::SweepSettings {
        interval: Duration::from_secs(900),
        event_retention: chrono::Duration::hours(24),
    };
    let now = chrono::Utc::now() + chrono::Duration::hours(hours);
    photon::jobs::sweeper::sweep_once(&app.state.db, app.state.store.as_ref(), &settings, now)
        .await
        .unwrap();
}

#[tokio::test]
async fn resuming_from_before_the_retained_events_is_cursor_expired() {
    for protocol in Protocol::BOTH {
        let app = TestApp::spawn().await;
        let owner = app.sign_in("ana@example.com").await;
        let member = app.sign_in("ben@example.com").await;
        let (session, code) = long_lived_session(&app, &owner).await;
        join(&app, &member, &code).await.ok();
        upload(&app, &owner, &session, &photo_bytes(1, 64)).await;
        let newest = upload(&app, &owner, &session, &photo_bytes(2, 64)).await;
        sweep_after(&app, 25).await;
        assert_eq!(app.count("events", "").await, 0, "the log was pruned");

        let mut client = WsClient::connect_as(&app, protocol, &member.token).await;
        for (id, query) in [("p", PHOTO_ADDED), ("e", SESSION_EVENTS)] {
            client
                .subscribe(id, query, json!({ "s": session, "after": FROM_THE_START }))
                .await;
            let payload = client.next_payload(id).await;
            assert_eq!(
                payload["errors"][0]["extensions"]["code"], "CURSOR_EXPIRED",
                "{protocol:?} {id}: {payload}"
            );
            assert!(payload["data"].is_null());
            client.expect_complete(id).await;
        }

        // Reloading the list gives a cursor that resumes: nothing after it was pruned.
        let list = app
            .gql_as(
                &member,
                "query($s: ID!) { session(id: $s) { photos(first: 1) { edges { cursor node { id } } } } }",
                json!({ "s": session }),
            )
            .await;
        let edge = &list.ok()["session"]["photos"]["edges"][0];
        assert_eq!(edge["node"]["id"], newest);
        let cursor = edge["cursor"].as_str().unwrap();
        follow_photos(&app, &mut client, "p2", &session, Some(cursor), 1).await;
        let live = upload(&app, &owner, &session, &photo_bytes(3, 64)).await;
        let payload = client.next_payload("p2").await;
        assert_eq!(event(&payload)["photo"]["id"], live, "{protocol:?}");
    }
}

#[tokio::test]
async fn a_session_with_nothing_pruned_replays_from_the_start() {
    let app = TestApp::spawn().await;
    let (owner, member, session) = session_with_member(&app).await;
    // The only event so far is the member's join: nothing pruned, nothing expired.
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &owner.token).await;
    follow_photos(&app, &mut client, "p", &session, Some(FROM_THE_START), 1).await;
    client
        .subscribe(
            "e",
            SESSION_EVENTS,
            json!({ "s": session, "after": FROM_THE_START }),
        )
        .await;
    let payload = client.next_payload("e").await;
    assert_eq!(session_event(&payload)["user"]["id"], member.id);
    let photo = upload(&app, &member, &session, &photo_bytes(1, 64)).await;
    let payload = client.next_payload("p").await;
    assert_eq!(event(&payload)["photo"]["id"], photo);

    // A brand-new session has no events at all.
    let (fresh, _) = create_session(&app, &owner, "Fresh").await;
    client
        .subscribe(
            "f",
            SESSION_EVENTS,
            json!({ "s": fresh, "after": FROM_THE_START }),
        )
        .await;
    client.expect_silence(Duration::from_millis(300)).await;
}

/// Waits until `ready` holds; fails the test after 10 s.
async fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The error a refused start gets: `next` with errors and no data, then `complete`.
async fn expect_refused(client: &mut WsClient, id: &str) -> Value {
    let payload = client.next_payload(id).await;
    assert!(payload["data"].is_null(), "{payload}");
    client.expect_complete(id).await;
    payload["errors"][0]["extensions"].clone()
}

#[tokio::test]
async fn subscription_starts_wait_their_turn_in_a_bounded_queue_and_a_refused_one_resumes() {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    // One start at a time, one more waiting, for at most a second.
    let app = TestApp::spawn_with(&[
        "--subscription-starts=1",
        "--subscription-start-queue=1",
        "--subscription-start-wait-secs=1",
        "--database-acquire-timeout-ms=20000",
        "--database-lock-timeout-ms=20000",
    ])
    .await;
    let (owner, member, session) = session_with_member(&app).await;
    upload(&app, &owner, &session, &photo_bytes(0, 64)).await;
    let cursor = newest_photo_cursor(&app, &member, &session).await;
    let mut missed = Vec::new();
    for seed in 1..=2u8 {
        missed.push(upload(&app, &owner, &session, &photo_bytes(seed, 64)).await);
    }
    let resume = json!({ "s": session, "after": cursor });
    let mut phones = Vec::new();
    for _ in 0..3 {
        phones.push(WsClient::connect_as(&app, Protocol::Transport, &member.token).await);
    }
    let [first, second, third] = &mut phones[..] else {
        unreachable!()
    };

    // Hold up the start that gets the turn: its first read waits for a lock on the blocks
    // table (on SQLite, for the pool's one connection, which this transaction holds).
    let hold = app.state.db.begin().await.unwrap();
    if app.backend == photon_tests::Backend::Postgres {
        hold.execute_unprepared("LOCK TABLE user_blocks IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
    }
    let admission = app.state.admission.clone();
    first.subscribe("1", PHOTO_ADDED, resume.clone()).await;
    until("the first start holds the turn", || {
        admission.starting() == 1
    })
    .await;
    second.subscribe("1", PHOTO_ADDED, resume.clone()).await;
    until("the second start waits", || admission.waiting() == 1).await;

    // The queue is full: the third is refused at once, retryably.
    let asked = std::time::Instant::now();
    third.subscribe("1", PHOTO_ADDED, resume.clone()).await;
    let refused = expect_refused(third, "1").await;
    assert_eq!(refused["code"], "SERVICE_UNAVAILABLE", "{refused}");
    assert_eq!(refused["retryAfter"], 1, "{refused}");
    assert!(asked.elapsed() < Duration::from_millis(900));
    // The second waited its longest and gave up.
    let refused = expect_refused(second, "1").await;
    assert_eq!(refused["code"], "SERVICE_UNAVAILABLE", "{refused}");
    assert!(asked.elapsed() >= Duration::from_millis(900));
    assert_eq!(admission.waiting(), 0);

    // The lock goes: the first start goes on and replays what it missed.
    hold.commit().await.unwrap();
    let replayed = first
        .photo_ids_within(2, Duration::from_secs(5), Duration::ZERO)
        .await;
    assert_eq!(replayed, missed);
    until("the first start gave its turn back", || {
        admission.starting() == 0
    })
    .await;

    // The refused ones try again from the same cursor and miss nothing.
    for phone in [second, third] {
        phone.subscribe("2", PHOTO_ADDED, resume.clone()).await;
        let replayed = phone
            .photo_ids_within(2, Duration::from_secs(5), Duration::ZERO)
            .await;
        assert_eq!(replayed, missed);
    }
    // One member's phones: one presence row.
    app.wait_online(1).await;
    let live = upload(&app, &owner, &session, &photo_bytes(9, 64)).await;
    for (n, phone) in phones.iter_mut().enumerate() {
        let id = if n == 0 { "1" } else { "2" };
        let payload = phone.next_payload(id).await;
        assert_eq!(event(&payload)["photo"]["id"], live);
    }
}

#[tokio::test]
async fn a_crowd_subscribing_and_leaving_at_once_is_counted_then_cleared() {
    // Presence rows are written in batches: every (session, user) of a burst must be online,
    // and every one gone once they all leave together.
    let app = TestApp::spawn().await;
    let owner = app.sign_in("ana@example.com").await;
    let mut sessions = Vec::new();
    for i in 0..12 {
        sessions.push(create_session(&app, &owner, &format!("Night {i}")).await.0);
    }
    let mut phone = WsClient::connect_as(&app, Protocol::Transport, &owner.token).await;
    for (i, session) in sessions.iter().enumerate() {
        phone
            .subscribe(&i.to_string(), PHOTO_ADDED, json!({ "s": session }))
            .await;
    }
    app.wait_online(12).await;

    // Leaving and coming straight back (within one batch, most likely) stays online.
    phone.stop("0").await;
    phone
        .subscribe("again", PHOTO_ADDED, json!({ "s": sessions[0] }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.wait_online(12).await;

    phone.close().await;
    app.wait_online(0).await;
}
