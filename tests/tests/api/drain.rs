//! Shutdown with WebSockets open, in both sub-protocols: queries and mutations in flight
//! finish and send their results, subscriptions end without a word, the socket closes with
//! 1001 (going away), upgrades during the drain get a 503, and then the server stops.
//!
//! The operation in flight is made slow honestly: the test holds a write lock on the
//! `sessions` rows that the mutation has to wait for (a row lock on Postgres, the database's
//! write lock on SQLite, which the server waits out with its busy timeout).

use std::time::Duration;

use photon_tests::ws::{Protocol, Received, WsClient};
use photon_tests::{TestApp, create_session};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough that nothing here runs into it: the test decides when the drain ends.
const GRACE: &str = "--shutdown-grace-secs=10";

const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor photo { id } } }";
const ROTATE: &str = "mutation Rotate($s: ID!) { rotateInviteCode(sessionId: $s) { inviteCode } }";

/// The first line of a WebSocket upgrade request.
const REQUEST_LINE: &[u8] = b"GET /graphql HTTP/1.1\r\n";

/// A connection the server has accepted and begun to read an upgrade request from: what a
/// client whose upgrade is on its way when shutdown starts looks like to the server. (hyper
/// closes a connection that has sent nothing yet as soon as shutdown starts, so these are the
/// only upgrade requests a stopping server still reads.)
async fn upgrade_under_way(app: &TestApp) -> TcpStream {
    let before = app.state.connections.open();
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.state.connections.open() <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never accepted the connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream.write_all(REQUEST_LINE).await.unwrap();
    // Time for the server to read it; nothing outside the server can tell when it has.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
}

/// Sends the rest of the upgrade request; returns the status, `Retry-After` and JSON body.
async fn finish_upgrade(mut stream: TcpStream, protocol: Protocol) -> (u16, Option<String>, Value) {
    let headers = format!(
        "Host: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: {}\r\n\r\n",
        protocol.name()
    );
    stream.write_all(headers.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the server answered and closed")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not a complete response: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let retry_after = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_owned())
    });
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// Waits until the server's statement is waiting for a lock (Postgres shows it; SQLite's busy
/// wait is invisible, and the probe before this already showed the mutation started).
async fn wait_for_lock_wait(app: &TestApp) {
    if app.backend != photon_tests::Backend::Postgres {
        return;
    }
    let waiting = "datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.count("pg_stat_activity", waiting).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mutation never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_in_flight_mutation_finishes_before_the_socket_closes_with_1001() {
    for protocol in Protocol::BOTH {
        let mut app = TestApp::spawn_with(&[GRACE]).await;
        let owner = app.sign_in("ana@example.com").await;
        let (session, old_code) = create_session(&app, &owner, "Beach day").await;
        let mut client = WsClient::connect_as(&app, protocol, &owner.token).await;
        client
            .subscribe("photos", PHOTO_ADDED, json!({ "s": session }))
            .await;
        app.wait_online(1).await;

        // The test holds the lock the mutation needs.
        let lock = app.db.begin().await.unwrap();
        lock.execute_unprepared("UPDATE sessions SET title = title")
            .await
            .unwrap();
        client
            .subscribe("rotate", ROTATE, json!({ "s": session }))
            .await;
        // Messages are handled in order: once the probe is answered, the mutation is running.
        client.subscribe("probe", "{ __typename }", json!({})).await;
        assert_eq!(
            client.next_payload("probe").await["data"]["__typename"],
            "Query"
        );
        client.expect_complete("probe").await;
        wait_for_lock_wait(&app).await;
        let late_upgrade = upgrade_under_way(&app).await;

        app.begin_shutdown();

        // An upgrade reaching the server now is refused, with a code and a time to retry.
        let (status, retry_after, body) = finish_upgrade(late_upgrade, protocol).await;
        assert_eq!(status, 503, "{protocol:?}: {body}");
        assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "SERVICE_UNAVAILABLE"
        );
        // The socket stays open while the mutation runs, and the subscription ended silently.
        client.expect_silence(Duration::from_millis(300)).await;
        // An operation sent during the drain is not started (the client sends it again on
        // its next connection).
        client.subscribe("late", "{ __typename }", json!({})).await;
        client.expect_silence(Duration::from_millis(300)).await;

        lock.commit().await.unwrap();

        let payload = client.next_payload("rotate").await;
        let new_code = payload["data"]["rotateInviteCode"]["inviteCode"]
            .as_str()
            .unwrap_or_else(|| panic!("{protocol:?}: no invite code in {payload}"))
            .to_owned();
        assert_ne!(new_code, old_code);
        client.expect_complete("rotate").await;
        assert_eq!(
            client.recv().await,
            Received::Closed(1001, "the server is shutting down".into()),
            "{protocol:?}"
        );
        assert!(
            app.stopped_within(Duration::from_secs(10)).await,
            "{protocol:?}: the server did not finish"
        );
        // The mutation's result is the database's: it committed before the socket closed.
        let stored = new_code.replace('-', "");
        let rotated = app
            .count("sessions", &format!("invite_code = '{stored}'"))
            .await;
        assert_eq!(rotated, 1, "{protocol:?}");
    }
}

#[tokio::test]
async fn a_socket_running_only_subscriptions_closes_with_1001_at_once() {
    for protocol in Protocol::BOTH {
        let mut app = TestApp::spawn_with(&[GRACE]).await;
        let owner = app.sign_in("ana@example.com").await;
        let (session, _) = create_session(&app, &owner, "Beach day").await;
        let mut client = WsClient::connect_as(&app, protocol, &owner.token).await;
        client
            .subscribe("photos", PHOTO_ADDED, json!({ "s": session }))
            .await;
        app.wait_online(1).await;
        let started = tokio::time::Instant::now();

        app.begin_shutdown();

        // Nothing for the subscription (no `complete`, no `error`): just the close, long
        // before the grace period is over, so the client reconnects and subscribes again.
        match client.recv().await {
            Received::Closed(code, _) => assert_eq!(code, 1001, "{protocol:?}"),
            other => panic!("{protocol:?}: expected the close, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(app.stopped_within(Duration::from_secs(10)).await);
        // The subscription's presence went with it.
        app.wait_online(0).await;
    }
}

#[tokio::test]
async fn an_operation_longer_than_the_grace_period_is_cut_off_with_1001() {
    // A grace of 2 s leaves the socket 1 s to wait; the lock is held for longer.
    let mut app = TestApp::spawn_with(&["--shutdown-grace-secs=2"]).await;
    let owner = app.sign_in("ana@example.com").await;
    let (session, _) = create_session(&app, &owner, "Beach day").await;
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &owner.token).await;
    let lock = app.db.begin().await.unwrap();
    lock.execute_unprepared("UPDATE sessions SET title = title")
        .await
        .unwrap();
    client
        .subscribe("rotate", ROTATE, json!({ "s": session }))
        .await;
    client.subscribe("probe", "{ __typename }", json!({})).await;
    client.next_payload("probe").await;
    client.expect_complete("probe").await;
    wait_for_lock_wait(&app).await;
    let started = tokio::time::Instant::now();

    app.begin_shutdown();

    assert_eq!(client.expect_close().await.0, 1001);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(2),
        "closed after {waited:?}"
    );
    assert!(app.stopped_within(Duration::from_secs(10)).await);
    lock.rollback().await.unwrap();
}
