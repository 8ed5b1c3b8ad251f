//! Wake-ups between replicas: sent after commit, over Postgres notifications or NATS, and
//! what happens when one is lost. Lost wake-ups are made for real: the notifier's database
//! connection is terminated (its next batch fails and is dropped), or the NATS server is
//! killed under the replicas. The event log is the truth, so each of these must still deliver
//! every photo once, in order. These run on Postgres only (the embedded SQLite default is one
//! process, woken in process) and say so otherwise.

use std::time::Duration;

use photon_tests::nats_server::NatsServer;
use photon_tests::photos::{COMPLETE, photo_bytes, stage, upload};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{Backend, TestApp, TestUser, create_session, join, nats_url};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

/// After the photos expected, nothing more for this long (no photo twice).
const SILENCE: Duration = Duration::from_millis(500);
const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor photo { id } } }";

fn on_postgres(app: &TestApp) -> bool {
    if app.backend != Backend::Postgres {
        eprintln!("skipped: wake-ups travel between replicas on Postgres; this run uses SQLite");
        return false;
    }
    true
}

/// The settings that put a replica on `url`'s NATS, on a subject of this test's own (tests
/// share the server and run at once).
fn nats_args(url: &str, subject: &str) -> [String; 2] {
    [
        format!("--nats-url={url}"),
        format!("--nats-subject={subject}"),
    ]
}

fn fresh_subject() -> String {
    format!("photon.test.{}", uuid::Uuid::new_v4().simple())
}

/// A session of `owner` (on `a`) that `member` (on `b`) joined, with a `photoAdded`
/// subscription on each replica.
async fn watched_session(
    a: &TestApp,
    b: &TestApp,
) -> (TestUser, TestUser, String, WsClient, WsClient) {
    let owner = a.sign_in("ana@example.com").await;
    let member = b.sign_in("ben@example.com").await;
    let (session, code) = create_session(a, &owner, "Beach day").await;
    join(b, &member, &code).await.ok();
    let mut on_a = WsClient::connect_as(a, Protocol::Transport, &owner.token).await;
    on_a.subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    let mut on_b = WsClient::connect_as(b, Protocol::Transport, &member.token).await;
    on_b.subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    a.wait_online(2).await;
    (owner, member, session, on_a, on_b)
}

/// Terminates the replicas' notifier connections on this database, so the next wake-up
/// each sends fails and is dropped. Returns how many there were.
async fn cut_notifiers(app: &TestApp) -> usize {
    let pids = app.pids_of("photon-notifier").await;
    assert!(!pids.is_empty(), "no notifier connection to cut");
    for pid in &pids {
        app.db
            .execute_raw(Statement::from_string(
                app.db.get_database_backend(),
                format!("SELECT pg_terminate_backend({pid})"),
            ))
            .await
            .unwrap();
    }
    pids.len()
}

#[tokio::test]
async fn on_nats_photos_cross_replicas_without_any_postgres_listener_or_notifier() {
    let subject = fresh_subject();
    let args = nats_args(&nats_url(), &subject);
    if Backend::from_env() != Backend::Postgres {
        // The embedded default refuses the setting at start-up, saying why.
        let data_dir = tempfile::tempdir().unwrap();
        let data_dir = format!("--data-dir={}", data_dir.path().display());
        let settings = photon::config::settings_from_args(["photon", &data_dir, &args[0]]).unwrap();
        let refused = settings.resolve().unwrap_err().to_string();
        assert!(refused.contains("SQLite"), "{refused}");
        eprintln!("skipped: wake-ups travel between replicas on Postgres; this run uses SQLite");
        return;
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = TestApp::spawn_with(&args).await;
    let b = a.spawn_replica(&args).await;
    let (owner, member, session, mut on_a, mut on_b) = watched_session(&a, &b).await;
    let from_b = upload(&b, &member, &session, &photo_bytes(1, 64)).await;
    let from_a = upload(&a, &owner, &session, &photo_bytes(2, 64)).await;
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(
            client
                .photo_ids_within(2, Duration::from_secs(5), SILENCE)
                .await,
            [from_b.clone(), from_a.clone()]
        );
    }
    // Postgres carried none of it: nobody listens or notifies there.
    assert!(a.pids_of("photon-listener").await.is_empty());
    assert!(a.pids_of("photon-notifier").await.is_empty());
}

#[tokio::test]
async fn a_nats_restart_loses_wake_ups_but_no_photo() {
    let probe = TestApp::spawn().await;
    if !on_postgres(&probe) {
        return;
    }
    drop(probe);
    let mut nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .unwrap();
    let subject = fresh_subject();
    let args = nats_args(&nats.url(), &subject);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = TestApp::spawn_with(&args).await;
    let b = a.spawn_replica(&args).await;
    let (owner, member, session, mut on_a, mut on_b) = watched_session(&a, &b).await;
    let staged = [
        stage(&a, &owner, &session, photo_bytes(1, 64)).await,
        stage(&b, &member, &session, photo_bytes(2, 64)).await,
    ];

    nats.stop();
    // Completions do not wait for the bus: they commit and answer at once.
    for (app, user, photo) in [(&a, &owner, &staged[0]), (&b, &member, &staged[1])] {
        let done = app
            .api
            .as_user(user)
            .gql(COMPLETE, json!({ "id": photo }))
            .await;
        assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.resume();

    // Reconnected, each replica's feeds catch up from the log: both photos, once, in order.
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(
            client
                .photo_ids_within(2, Duration::from_secs(10), SILENCE)
                .await,
            staged.to_vec()
        );
    }
    // And wake-ups flow again.
    let live = upload(&b, &member, &session, &photo_bytes(3, 64)).await;
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(
            client
                .photo_ids_within(1, Duration::from_secs(5), SILENCE)
                .await,
            std::slice::from_ref(&live)
        );
    }
}

#[tokio::test]
async fn a_lost_wake_up_is_found_by_the_next_event_of_the_session() {
    // The sequence check is out of the way: only the gap can reveal the loss.
    let slow_check = ["--event-check-ms=60000"];
    let a = TestApp::spawn_with(&slow_check).await;
    if !on_postgres(&a) {
        return;
    }
    let b = a.spawn_replica(&slow_check).await;
    let (owner, _member, session, mut on_a, mut on_b) = watched_session(&a, &b).await;
    let first = stage(&a, &owner, &session, photo_bytes(1, 64)).await;
    let second = stage(&a, &owner, &session, photo_bytes(2, 64)).await;

    assert_eq!(cut_notifiers(&a).await, 2);
    let done = a.gql_as(&owner, COMPLETE, json!({ "id": first })).await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    // Its wake-up was lost: nobody hears of it (a wake-up takes milliseconds).
    on_a.expect_silence(Duration::from_millis(1500)).await;
    on_b.expect_silence(Duration::from_millis(100)).await;

    // The next photo's wake-up shows the gap, and the feeds read the log: both, in order.
    let done = a.gql_as(&owner, COMPLETE, json!({ "id": second })).await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(
            client
                .photo_ids_within(2, Duration::from_secs(5), SILENCE)
                .await,
            [first.clone(), second.clone()]
        );
    }
}

#[tokio::test]
async fn a_lost_last_wake_up_is_found_by_the_sequence_check() {
    let check = ["--event-check-ms=1500"];
    let a = TestApp::spawn_with(&check).await;
    if !on_postgres(&a) {
        return;
    }
    let b = a.spawn_replica(&check).await;
    let (owner, _member, session, mut on_a, mut on_b) = watched_session(&a, &b).await;
    let photo = stage(&a, &owner, &session, photo_bytes(1, 64)).await;

    assert_eq!(cut_notifiers(&a).await, 2);
    let done = a.gql_as(&owner, COMPLETE, json!({ "id": photo })).await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    // Lost, and nothing comes after it to show the gap…
    on_a.expect_silence(Duration::from_millis(800)).await;
    // …until a check finds the session's log ahead of what the replicas heard, one interval
    // after it first saw the photo there.
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(
            client
                .photo_ids_within(1, Duration::from_secs(5), SILENCE)
                .await,
            std::slice::from_ref(&photo)
        );
    }
}
