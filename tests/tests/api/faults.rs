//! Faults: the database going away under two replicas and coming back, and the object store
//! hanging, then down, then back. Each test has a server of its own to break: a Postgres
//! cluster (`photon_tests::pg_cluster`; the embedded SQLite default has no server to lose, so
//! that test runs on Postgres only) or an S3 server (`photon_tests::s3_server`, in the S3
//! stage of the test command). Each says why when it skips.

use std::time::{Duration, Instant};

use photon_tests::fake_fcm::FakeFcm;
use photon_tests::pg_cluster::Cluster;
use photon_tests::photos::{COMPLETE, photo_bytes, request_slot, stage, upload};
use photon_tests::process::Process;
use photon_tests::s3_server::S3Server;
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{Backend, Client, JWT_SECRET, TestApp, TestUser, create_session, join, uuid_of};
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

/// After the photos expected, nothing more for this long (no photo twice).
const SILENCE: Duration = Duration::from_secs(1);
const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor photo { id } } }";
/// Short, so a request during the outage fails well inside the test's patience.
const ACQUIRE_TIMEOUT: &str = "--database-acquire-timeout-ms=1500";

/// A cluster with an empty database `photon`, or `None` off Postgres.
async fn own_cluster() -> Option<(Cluster, String)> {
    if Backend::from_env() != Backend::Postgres {
        eprintln!(
            "skipped: the database restarted here is a Postgres cluster; this run uses SQLite"
        );
        return None;
    }
    let cluster = Cluster::start().await;
    let admin = Database::connect(cluster.admin_url()).await.unwrap();
    admin
        .execute_unprepared("CREATE DATABASE photon")
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = cluster.url("photon");
    Some((cluster, url))
}

async fn readyz(app: &TestApp) -> u16 {
    app.client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_ready(app: &TestApp, within: Duration) {
    let deadline = Instant::now() + within;
    while readyz(app).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the replica never became ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_postgres_restart_fails_writes_fast_and_then_delivers_every_completed_photo() {
    let Some((cluster, url)) = own_cluster().await else {
        return;
    };
    let a = TestApp::spawn_on_database(url, &[ACQUIRE_TIMEOUT]).await;
    let b = a.spawn_replica(&[ACQUIRE_TIMEOUT]).await;
    let owner = a.sign_in("ana@example.com").await;
    let member = b.sign_in("ben@example.com").await;
    let (session, code) = create_session(&a, &owner, "Beach day").await;
    join(&b, &member, &code).await.ok();
    let mut on_a = WsClient::connect_as(&a, Protocol::Transport, &owner.token).await;
    on_a.subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    let mut on_b = WsClient::connect_as(&b, Protocol::Transport, &member.token).await;
    on_b.subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    a.wait_online(2).await;
    let before = upload(&a, &owner, &session, &photo_bytes(1, 64)).await;
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(
            client
                .photo_ids_within(1, Duration::from_secs(2), SILENCE)
                .await,
            std::slice::from_ref(&before)
        );
    }
    // Uploaded, waiting for completion when the database goes.
    let staged_a = stage(&a, &owner, &session, photo_bytes(2, 64)).await;
    let staged_b = stage(&b, &member, &session, photo_bytes(3, 64)).await;

    cluster.stop().await;
    let started = Instant::now();
    let refused = a
        .api
        .as_user(&owner)
        .gql(COMPLETE, json!({ "id": staged_a }))
        .await;
    let took = started.elapsed();
    refused.assert_code("SERVICE_UNAVAILABLE");
    assert_eq!(refused.body["errors"][0]["extensions"]["retryAfter"], 1);
    assert!(took < Duration::from_secs(5), "the refusal took {took:?}");
    assert_eq!(readyz(&a).await, 503);
    assert_eq!(readyz(&b).await, 503);
    // A read fails as cleanly as a write.
    let read = b
        .api
        .as_user(&member)
        .gql("{ me { name } }", json!({}))
        .await;
    read.assert_code("SERVICE_UNAVAILABLE");

    cluster.resume().await;
    wait_ready(&a, Duration::from_secs(20)).await;
    wait_ready(&b, Duration::from_secs(20)).await;
    // The refused completion wrote nothing: it completes now, once.
    for (app, user, photo) in [(&a, &owner, &staged_a), (&b, &member, &staged_b)] {
        let done = app
            .api
            .as_user(user)
            .gql(COMPLETE, json!({ "id": photo }))
            .await;
        assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    }
    for client in [&mut on_a, &mut on_b] {
        let mut ids = client
            .photo_ids_within(2, Duration::from_secs(5), SILENCE)
            .await;
        ids.sort();
        let mut expected = vec![staged_a.clone(), staged_b.clone()];
        expected.sort();
        assert_eq!(ids, expected, "each completed photo once, on both replicas");
    }
    // The listeners are back too: a photo from one replica reaches the other live.
    let after = upload(&b, &member, &session, &photo_bytes(4, 64)).await;
    assert_eq!(
        on_a.photo_ids_within(1, Duration::from_secs(2), SILENCE)
            .await,
        [after]
    );
}

/// The server's S3 client gives up quickly here, so a stalled store fails a request in
/// about two seconds rather than the default thirty.
const S3_PATIENCE: [&str; 2] = [
    "--s3-operation-timeout-ms=2000",
    "--s3-attempt-timeout-ms=700",
];

/// Completes `photo`, expecting a retryable refusal well before the request limit; returns
/// how long it took.
async fn refused_completion(app: &TestApp, user: &TestUser, photo: &str) -> Duration {
    let started = Instant::now();
    let refused = app
        .api
        .as_user(user)
        .gql(COMPLETE, json!({ "id": photo }))
        .await;
    let took = started.elapsed();
    refused.assert_code("SERVICE_UNAVAILABLE");
    assert_eq!(refused.body["errors"][0]["extensions"]["retryAfter"], 1);
    assert!(took < Duration::from_secs(5), "the refusal took {took:?}");
    took
}

#[tokio::test]
async fn an_object_store_outage_fails_completions_with_a_retryable_code_and_then_heals() {
    if std::env::var("PHOTON_TEST_STORAGE").as_deref() != Ok("s3") {
        eprintln!(
            "skipped: runs in the S3 stage of scripts/test.sh, which makes sure s3s-fs is installed"
        );
        return;
    }
    let mut store = tokio::task::spawn_blocking(S3Server::start).await.unwrap();
    let app = TestApp::spawn_on_store(store.args(), &S3_PATIENCE).await;
    let owner = app.sign_in("ana@example.com").await;
    let member = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &owner, "Beach day").await;
    join(&app, &member, &code).await.ok();
    let mut watching = WsClient::connect_as(&app, Protocol::Transport, &member.token).await;
    watching
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    app.wait_online(1).await;
    let staged = stage(&app, &owner, &session, photo_bytes(1, 64)).await;

    // A store that hangs: the completion gives up on it, and meanwhile the server goes on
    // answering everything that does not need the store.
    store.stall();
    let completion = refused_completion(&app, &owner, &staged);
    let others = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let screen = app
            .api
            .as_user(&member)
            .gql(
                "query($s: ID!) { session(id: $s) { title photos(first: 5) { edges { node { id url } } } } }",
                json!({ "s": session }),
            )
            .await;
        screen.ok();
        // Asking for a slot only signs a URL: it does not wait for the store.
        let slot = request_slot(&app, &member, &session, &photo_bytes(2, 64)).await;
        assert!(slot.ok()["requestPhotoUpload"]["uploadUrl"].is_string());
        started.elapsed()
    };
    let (stalled_for, others_took) = tokio::join!(completion, others);
    assert!(
        others_took < Duration::from_millis(500),
        "reads and slots took {others_took:?} while a completion waited for the store"
    );
    eprintln!("stalled store: refused after {stalled_for:?}; other requests took {others_took:?}");
    store.unstall();

    // A store that is down: refused connections fail the completion at once.
    store.stop();
    let down_for = refused_completion(&app, &owner, &staged).await;
    eprintln!("stopped store: refused after {down_for:?}");
    // Nothing was half-done: the photo is still waiting for its completion, unannounced.
    assert_eq!(
        app.count(
            "photos",
            &format!("id = '{}' AND status = 'pending'", uuid_of(&staged))
        )
        .await,
        1
    );
    watching.expect_silence(Duration::from_millis(200)).await;

    // Back: the same completion goes through, and the photo reaches the member once.
    store.resume();
    let done = app
        .api
        .as_user(&owner)
        .gql(COMPLETE, json!({ "id": staged }))
        .await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    assert_eq!(
        watching
            .photo_ids_within(1, Duration::from_secs(5), SILENCE)
            .await,
        [staged]
    );
    // And new uploads work end to end again.
    let fresh = upload(&app, &member, &session, &photo_bytes(3, 64)).await;
    assert_eq!(
        watching
            .photo_ids_within(1, Duration::from_secs(5), SILENCE)
            .await,
        [fresh]
    );
}

/// A serving replica in a process of its own, so it can be killed with SIGKILL: the same
/// database, data directory, public URL (tokens from one are good on the other) and photo
/// store as `app`, with the push dispatcher on and sending to `fcm`.
async fn killable_replica(app: &TestApp, fcm: &FakeFcm) -> (Process, Client) {
    let mut args = vec![
        "serve".to_owned(),
        "--bind=127.0.0.1:0".to_owned(),
        format!("--database-url={}", app.database_url),
        format!("--data-dir={}", app.data_dir().display()),
        format!("--public-url={}", app.base_url),
        format!("--jwt-secret={JWT_SECRET}"),
        "--log-format=json".to_owned(),
        "--dev-sign-in=true".to_owned(),
        "--rate-limits=false".to_owned(),
        "--sweep-interval-secs=0".to_owned(),
        "--processing-concurrency=0".to_owned(),
        "--push-poll-ms=25".to_owned(),
        "--push-coalesce-ms=0".to_owned(),
        "--push-min-interval-secs=0".to_owned(),
    ];
    args.extend(fcm.args());
    args.extend(app.storage_args.iter().cloned());
    let process = Process::start(&args).await;
    let base = format!("http://{}", process.address().await);
    (process, Client::new(&base))
}

#[tokio::test]
async fn a_replica_killed_mid_upload_and_mid_push_loses_nothing() {
    let a = TestApp::spawn().await;
    if a.backend != Backend::Postgres {
        eprintln!("skipped: replicas share a Postgres database; this run uses SQLite");
        return;
    }
    let fcm = FakeFcm::start().await;
    let (mut killed, k) = killable_replica(&a, &fcm).await;
    let ana = a.sign_in("ana@example.com").await;
    let ben = a.sign_in("ben@example.com").await;
    let cy = a.sign_in("cy@example.com").await;
    let dan = a.sign_in("dan@example.com").await;
    let (session, code) = create_session(&a, &ana, "Beach day").await;
    for user in [&ben, &cy, &dan] {
        join(&a, user, &code).await.ok();
    }
    for (user, token) in [(&ben, "ben-phone"), (&dan, "dan-phone")] {
        let registered = a
            .gql_as(
                user,
                "mutation($t: String!) { registerDevice(token: $t, platform: ANDROID) { id } }",
                json!({ "t": token }),
            )
            .await;
        registered.ok();
    }
    // Cy and Dan watch the session through the replica about to die; Ben is offline.
    let mut cy_on_k = WsClient::connect_as(&k, Protocol::Transport, &cy.token).await;
    cy_on_k
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    let mut dan_on_k = WsClient::connect_as(&k, Protocol::Transport, &dan.token).await;
    dan_on_k
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    a.wait_online(2).await;

    // Mid-push: FCM hangs, so the replica claims Ben's push and is still sending it.
    fcm.set_latency(Duration::from_secs(60));
    let first = upload(&a, &ana, &session, &photo_bytes(1, 64)).await;
    let seen = cy_on_k.next_payload("1").await;
    assert_eq!(seen["data"]["photoAdded"]["photo"]["id"], first);
    let cursor = seen["data"]["photoAdded"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let leased = "kind = 'photo_added' AND push_state = 'pending' AND push_attempts = 1 \
                  AND push_not_before > now()";
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.count("events", leased).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the replica never claimed the push"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Mid-upload: Ana asked the doomed replica for a slot and PUT her photo.
    let staged = stage(&k, &ana, &session, photo_bytes(2, 64)).await;

    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    fcm.set_latency(Duration::ZERO);

    // Ana completes on the survivor; another photo arrives while Cy is reconnecting.
    let done = a.gql_as(&ana, COMPLETE, json!({ "id": staged })).await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
    let meanwhile = upload(&a, &ana, &session, &photo_bytes(3, 64)).await;
    // Cy reconnects to the survivor with the last cursor she handled: nothing lost, nothing
    // twice.
    let mut cy_on_a = WsClient::connect_as(&a, Protocol::Transport, &cy.token).await;
    cy_on_a
        .subscribe(
            "1",
            "subscription($s: ID!, $after: String) { photoAdded(sessionId: $s, after: $after) { cursor photo { id } } }",
            json!({ "s": session, "after": cursor }),
        )
        .await;
    assert_eq!(
        cy_on_a
            .photo_ids_within(2, Duration::from_secs(5), SILENCE)
            .await,
        [staged.clone(), meanwhile.clone()]
    );

    // The dead replica's presence rows count until its heartbeat is stale: Dan, whose phone
    // never reconnected, is still "watching" and gets no push. Once the heartbeat is older
    // than the 45 s that makes a replica dead (aged here rather than waited for), he counts
    // as offline again.
    assert_eq!(
        a.count("presence", &format!("user_id = '{}'", uuid_of(&dan.id)))
            .await,
        1
    );
    a.db.execute_unprepared(&format!(
        "UPDATE replicas SET heartbeat_at = now() - interval '60 seconds' \
         WHERE id NOT IN ('{}')",
        a.state.presence.replica_id()
    ))
    .await
    .unwrap();
    // The push the dead replica held is claimed again once its lease lapses (aged here
    // too, from 120 s), by a replica that sends it exactly once.
    a.db.execute_unprepared(&format!(
        "UPDATE events SET push_not_before = now() - interval '1 second' WHERE {leased}"
    ))
    .await
    .unwrap();
    let _dispatcher = a
        .spawn_replica(&[
            &fcm.args()[0],
            &fcm.args()[1],
            "--push-poll-ms=25",
            "--push-coalesce-ms=0",
            "--push-min-interval-secs=0",
        ])
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.count("events", "push_state = 'pending'").await > 0 {
        assert!(Instant::now() < deadline, "pushes still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The lapsed claim went out with the photos that came after it, as one push each.
    for token in ["ben-phone", "dan-phone"] {
        let pushes = fcm.delivered_to(token);
        assert_eq!(pushes.len(), 1, "{token}: {pushes:?}");
        assert!(
            pushes[0].body().contains("3 photos"),
            "{token}: {}",
            pushes[0].body()
        );
    }
    // Cy is watching on the survivor: no push for her.
    assert!(fcm.delivered_to("cy-phone").is_empty());
}
