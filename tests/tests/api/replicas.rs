//! Several replicas on one Postgres: events fan out through LISTEN/NOTIFY, and a replica that
//! loses its listening connection catches up from the event log. SQLite is the embedded,
//! single-process default, so these tests only run on Postgres and say so otherwise.

use std::time::Duration;

use photon_tests::photos::{COMPLETE, photo_bytes, put, request_slot, upload};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{Backend, TestApp, create_session, join};
use serde_json::json;

const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor photo { id } } }";

/// Two replicas of one deployment, or `None` (with the reason printed) off Postgres.
async fn two_replicas() -> Option<(TestApp, TestApp)> {
    let a = TestApp::spawn().await;
    if a.backend != Backend::Postgres {
        eprintln!("skipped: replicas share a Postgres database; this run uses SQLite");
        return None;
    }
    let b = a.spawn_replica(&[]).await;
    Some((a, b))
}

async fn wait_for_listeners(app: &TestApp, n: usize) -> Vec<i32> {
    for _ in 0..200 {
        let pids = app.listener_pids().await;
        if pids.len() == n {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {n} listening connections");
}

#[tokio::test]
async fn a_photo_completed_on_one_replica_reaches_subscribers_on_the_other() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    wait_for_listeners(&a, 2).await;
    let owner = b.sign_in("ana@example.com").await;
    let member = a.sign_in("ben@example.com").await;
    let (session, code) = create_session(&b, &owner, "Beach day").await;
    join(&a, &member, &code).await.ok();

    let mut on_a = WsClient::connect_as(&a, Protocol::Transport, &member.token).await;
    on_a.subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    let mut on_b = WsClient::connect_as(&b, Protocol::Legacy, &owner.token).await;
    on_b.subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    // Both replicas' subscribers are live (presence is shared through the database).
    a.wait_online(2).await;
    assert_eq!(b.count("presence", "true").await, 2);

    let on_replica_b = upload(&b, &owner, &session, &photo_bytes(1, 64)).await;
    let payload = on_a.next_payload("1").await;
    assert_eq!(payload["data"]["photoAdded"]["photo"]["id"], on_replica_b);
    let on_replica_a = upload(&a, &member, &session, &photo_bytes(2, 64)).await;
    for expected in [&on_replica_b, &on_replica_a] {
        let payload = on_b.next_payload("1").await;
        assert_eq!(&payload["data"]["photoAdded"]["photo"]["id"], expected);
    }
    let payload = on_a.next_payload("1").await;
    assert_eq!(payload["data"]["photoAdded"]["photo"]["id"], on_replica_a);
}

#[tokio::test]
async fn a_replica_that_loses_its_listener_still_delivers_every_photo() {
    let Some((a, b)) = two_replicas().await else {
        return;
    };
    let before = wait_for_listeners(&a, 2).await;
    let owner = b.sign_in("ana@example.com").await;
    let member = a.sign_in("ben@example.com").await;
    let (session, code) = create_session(&b, &owner, "Beach day").await;
    join(&a, &member, &code).await.ok();
    let mut client = WsClient::connect_as(&a, Protocol::Transport, &member.token).await;
    client
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    a.wait_online(1).await;

    // Upload slots are filled beforehand, so the completions land right after the kill,
    // while the replicas are still reconnecting.
    let mut pending = Vec::new();
    for seed in 1..=5u8 {
        let bytes = photo_bytes(seed, 64);
        let slot = request_slot(&b, &owner, &session, &bytes).await;
        let slot = slot.ok()["requestPhotoUpload"].clone();
        assert_eq!(put(&b, &slot, bytes).await, 200);
        pending.push(slot["photo"]["id"].as_str().unwrap().to_owned());
    }
    use sea_orm::{ConnectionTrait, Statement};
    a.db.execute_raw(Statement::from_string(
        a.db.get_database_backend(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'photon-listener' AND datname = current_database()",
    ))
    .await
    .unwrap();
    for id in &pending {
        let done = b.gql_as(&owner, COMPLETE, json!({ "id": id })).await;
        assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    }

    let mut received = Vec::new();
    for _ in 0..5 {
        let payload = client.next_payload("1").await;
        received.push(
            payload["data"]["photoAdded"]["photo"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(received, pending, "every photo, in order, once");
    // The replicas listen again, on new connections, and live delivery goes on.
    let after = wait_for_listeners(&a, 2).await;
    assert!(after.iter().all(|pid| !before.contains(pid)));
    let live = upload(&b, &owner, &session, &photo_bytes(9, 64)).await;
    let payload = client.next_payload("1").await;
    assert_eq!(payload["data"]["photoAdded"]["photo"]["id"], live);
    client.expect_silence(Duration::from_millis(300)).await;
}
