//! What a WebSocket tells an operator: every log line of a socket and its operations carries
//! the upgrade request's id, and the fan-out of a photo is counted and timed.
//!
//! Both tests run on a `#[tokio::test]` runtime, which has one thread: the server's tasks run
//! on it too, so a subscriber or recorder set as this thread's default sees all they emit.

use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use photon_tests::logs::CapturedLogs;
use photon_tests::photos::{photo_bytes, upload};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{TestApp, create_session, join};
use serde_json::json;

#[tokio::test]
async fn every_log_line_of_a_socket_and_its_operations_carries_the_request_id() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        // The request span is the app's, at info; the transport logs at debug.
        .with_env_filter("photon::app=info,photon::graphql::ws=debug")
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // tracing caches, per call site and for the whole process, whether anyone wants its lines.
    // With one dispatcher registered it asks only the thread that reaches a call site first:
    // another test's thread, which has none, would turn this test's lines off for good. With a
    // second one registered it asks every dispatcher.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());

    let app = TestApp::spawn().await;
    let user = app.sign_in("ana@example.com").await;
    for protocol in Protocol::BOTH {
        let mut client = WsClient::connect_as(&app, protocol, &user.token).await;
        assert!(!client.request_id.is_empty());
        client
            .subscribe("op-7", "query Whoami { me { id } }", json!({}))
            .await;
        client.next_payload("op-7").await;
        client.expect_complete("op-7").await;
        let closed = format!("request_id={}", client.request_id);
        client.close().await;
        // The server logs the close once it has read it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !logs
            .text()
            .lines()
            .any(|l| l.contains(&closed) && l.contains("websocket closed by the client"))
        {
            assert!(tokio::time::Instant::now() < deadline, "{}", logs.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let text = logs.text();
        let mine: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("protocol={}", protocol.name())))
            .collect();
        for message in [
            "websocket opened",
            "operation started",
            "operation finished",
        ] {
            assert!(
                mine.iter().any(|l| l.contains(message)),
                "{protocol:?}: no {message:?} in:\n{text}"
            );
        }
        for line in &mine {
            assert!(line.contains(&closed), "{protocol:?}: {line}");
        }
        for line in mine.iter().filter(|l| l.contains("operation ")) {
            assert!(
                line.contains("subscription{id=op-7 operation=Whoami}"),
                "{line}"
            );
        }
    }
    // Nothing the transport logged is outside a socket's span.
    let text = logs.text();
    for line in text.lines().filter(|l| l.contains("photon::graphql::ws")) {
        assert!(
            line.contains("request{") && line.contains("websocket{"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn a_photo_fanned_out_to_a_socket_is_counted_and_timed_from_its_commit() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _recorder = metrics::set_default_local_recorder(&recorder);

    let app = TestApp::spawn().await;
    let owner = app.sign_in("ana@example.com").await;
    let member = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &owner, "Beach day").await;
    join(&app, &member, &code).await.ok();
    // One photo from before the subscription: replayed, so counted but not timed.
    upload(&app, &owner, &session, &photo_bytes(1, 256)).await;
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &member.token).await;
    let subscription = "subscription($s: ID!, $after: String) { photoAdded(sessionId: $s, after: $after) { cursor } }";
    let start = base64_cursor(0);
    client
        .subscribe("p", subscription, json!({ "s": session, "after": start }))
        .await;
    client.next_payload("p").await;
    app.wait_online(1).await;
    let uploaded = tokio::time::Instant::now();
    upload(&app, &owner, &session, &photo_bytes(2, 256)).await;
    client.next_payload("p").await;
    let bound = uploaded.elapsed().as_secs_f64();

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |kind: MetricKind, name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.kind() == kind && key.key().name() == name)
            .map(|(key, _, _, value)| (key.key().clone(), value))
    };
    match find(MetricKind::Counter, "photon_fanout_deliveries_total") {
        Some((_, DebugValue::Counter(n))) => assert_eq!(*n, 2),
        other => panic!("no deliveries counted: {other:?}"),
    }
    match find(MetricKind::Histogram, "photon_fanout_lag_seconds") {
        Some((_, DebugValue::Histogram(lags))) => {
            assert_eq!(lags.len(), 1, "{lags:?}");
            let lag = lags[0].into_inner();
            assert!(
                (0.0..=bound).contains(&lag),
                "lag {lag} outside 0..={bound}"
            );
        }
        other => panic!("no lag recorded: {other:?}"),
    }
    match find(MetricKind::Gauge, "photon_subscriptions_active") {
        Some((key, DebugValue::Gauge(n))) => {
            assert_eq!(n.into_inner(), 1.0);
            let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
            assert_eq!(labels, [("field", "photoAdded")]);
        }
        other => panic!("no subscription counted: {other:?}"),
    }
    match find(MetricKind::Gauge, "photon_ws_connections") {
        Some((key, DebugValue::Gauge(n))) => {
            assert_eq!(n.into_inner(), 1.0);
            let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
            assert_eq!(labels, [("protocol", "graphql-transport-ws")]);
        }
        other => panic!("no socket counted: {other:?}"),
    }
}

/// The cursor of event id `id` (what the API hands out as `cursor`).
fn base64_cursor(id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}
