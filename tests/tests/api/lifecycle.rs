//! The replica's lifecycle: background tasks that fail are restarted and reported by
//! `/readyz` meanwhile; a shutdown fails readiness at once, keeps serving through the drain
//! delay, clears this replica's presence, hands back its push leases and ends within the grace
//! period, in process and as the real binary receiving SIGTERM.

use std::time::Duration;

use photon_tests::fake_fcm::FakeFcm;
use photon_tests::photos::{COMPLETE, photo_bytes, put, request_slot, upload};
use photon_tests::process::Process;
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{Backend, JWT_SECRET, TestApp, create_session, join};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Statement};
use serde_json::{Value, json};
use tokio::time::Instant;

const PHOTO_ADDED: &str =
    "subscription($s: ID!) { photoAdded(sessionId: $s) { cursor photo { id } } }";
const REGISTER: &str =
    "mutation($token: String!) { registerDevice(token: $token, platform: ANDROID) { id } }";
const SEND_REQUEST: &str = "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }";

/// `/readyz`'s status and body.
async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `/readyz` until `done(status, body)` holds; returns that answer. Panics after
/// `within`.
async fn readyz_until(
    app: &TestApp,
    within: Duration,
    done: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = readyz(app).await;
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "readyz never matched within {within:?}; last: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lists_down(body: &Value, task: &str) -> bool {
    body["tasks_down"]
        .as_array()
        .is_some_and(|down| down.iter().any(|t| t == task))
}

fn restarts(app: &TestApp, task: &str) -> u64 {
    app.state
        .tasks
        .tasks()
        .into_iter()
        .find(|t| t.name == task)
        .map(|t| t.restarts)
        .unwrap_or_else(|| panic!("no task named {task}"))
}

async fn execute(app: &TestApp, sql: &str) {
    app.db
        .execute_raw(Statement::from_string(
            app.db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_task_is_restarted_and_listed_by_readyz_until_it_works_again() {
    let app = TestApp::spawn_with(&["--sweep-interval-secs=1"]).await;
    let (status, body) = readyz(&app).await;
    assert_eq!((status, &body), (200, &json!({ "status": "ready" })));
    assert_eq!(restarts(&app, "sweeper"), 0);

    // A table the sweeper prunes goes away: each of its rounds now fails.
    execute(&app, "ALTER TABLE push_marks RENAME TO push_marks_away").await;
    let (_, body) = readyz_until(&app, Duration::from_secs(15), |status, body| {
        status == 503 && lists_down(body, "sweeper")
    })
    .await;
    assert_eq!(
        body,
        json!({ "status": "unavailable", "database": "reachable", "tasks_down": ["sweeper"] })
    );
    // Restarted (after a back-off), and still failing: still down.
    let deadline = Instant::now() + Duration::from_secs(15);
    while restarts(&app, "sweeper") < 2 {
        assert!(Instant::now() < deadline, "the sweeper was not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = readyz(&app).await;
    assert!(status == 503 && lists_down(&body, "sweeper"), "{body}");

    // The table is back: the next restart sweeps, and the replica is ready again.
    execute(&app, "ALTER TABLE push_marks_away RENAME TO push_marks").await;
    readyz_until(&app, Duration::from_secs(15), |status, _| status == 200).await;
    let settled = restarts(&app, "sweeper");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(restarts(&app, "sweeper"), settled, "it keeps failing");
    assert_eq!(readyz(&app).await.0, 200);
}

#[tokio::test]
async fn the_postgres_listener_is_restarted_after_losing_its_database_and_loses_no_event() {
    let app = TestApp::spawn().await;
    if app.backend != Backend::Postgres {
        eprintln!("skipped: the LISTEN connection exists on Postgres only; this run uses SQLite");
        return;
    }
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &ben, &code).await.ok();
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &ben.token).await;
    client
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    app.wait_online(1).await;
    let before = app.listener_pids().await;
    assert_eq!(before.len(), 1);
    // A photo to complete while the listener is down, uploaded beforehand; and the server's
    // pool filled, since no new connection can be opened meanwhile.
    let bytes = photo_bytes(1, 64);
    let slot = request_slot(&app, &ana, &session, &bytes).await;
    let slot = slot.ok()["requestPhotoUpload"].clone();
    assert_eq!(put(&app, &slot, bytes).await, 200);
    let while_down = slot["photo"]["id"].as_str().unwrap().to_owned();
    futures_util::future::join_all((0..8).map(|_| app.gql_as(&ana, "{ me { id } }", json!({}))))
        .await;

    // The database stops taking connections and the listening one is cut: the listener
    // cannot reconnect, and stays down.
    let database = url::Url::parse(&app.database_url).unwrap().path()[1..].to_owned();
    // From another database: Postgres will not lock out the one it is connected to.
    let admin = sea_orm::Database::connect(
        std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
    )
    .await
    .unwrap();
    let allow = |allowed: bool| {
        let admin = &admin;
        let sql = format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allowed}");
        async move { admin.execute_unprepared(&sql).await.unwrap() }
    };
    allow(false).await;
    execute(
        &app,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'photon-listener' AND datname = current_database()",
    )
    .await;
    let (_, body) = readyz_until(&app, Duration::from_secs(15), |status, body| {
        status == 503 && lists_down(body, "event_listener")
    })
    .await;
    assert_eq!(body["tasks_down"], json!(["event_listener"]), "{body}");
    // A photo completed meanwhile: no notification reaches this replica for it.
    let done = app
        .gql_as(&ana, COMPLETE, json!({ "id": while_down }))
        .await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");

    allow(true).await;
    readyz_until(&app, Duration::from_secs(20), |status, _| status == 200).await;
    assert!(restarts(&app, "event_listener") >= 1);
    let after = app.listener_pids().await;
    assert!(
        after.len() == 1 && after != before,
        "{before:?} -> {after:?}"
    );
    // Caught up from the log on reconnecting, then live again.
    let payload = client.next_payload("1").await;
    assert_eq!(payload["data"]["photoAdded"]["photo"]["id"], while_down);
    let live = upload(&app, &ana, &session, &photo_bytes(2, 64)).await;
    let payload = client.next_payload("1").await;
    assert_eq!(payload["data"]["photoAdded"]["photo"]["id"], live);
}

#[tokio::test]
async fn readyz_fails_at_once_when_shutdown_begins_while_requests_are_still_served() {
    let mut app =
        TestApp::spawn_with(&["--shutdown-grace-secs=5", "--shutdown-drain-ms=1500"]).await;
    let ana = app.sign_in("ana@example.com").await;
    assert_eq!(readyz(&app).await.0, 200);

    let signalled = Instant::now();
    app.begin_shutdown();
    let (_, body) = readyz_until(&app, Duration::from_millis(500), |status, _| status == 503).await;
    assert_eq!(body, json!({ "status": "stopping" }));
    // Well before the drain delay is over: the replica still serves everything else.
    let me = app.gql_as(&ana, "{ me { email } }", json!({})).await;
    assert_eq!(me.ok()["me"]["email"], "ana@example.com");
    assert!(signalled.elapsed() < Duration::from_millis(1200));

    app.begin_shutdown();
    assert!(app.stopped_within(Duration::from_secs(10)).await);
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(app.client.get(app.url("/readyz")).send().await.is_err());
}

#[tokio::test]
async fn shutdown_clears_this_replicas_presence_and_hands_back_its_push_leases() {
    let fcm = FakeFcm::start().await;
    let mut args = fcm.args();
    args.extend([
        "--push-poll-ms=25".to_owned(),
        "--shutdown-grace-secs=3".to_owned(),
    ]);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut app = TestApp::spawn_with(&strs).await;

    // Presence: a live subscription, a row of this replica's that no socket will clean up,
    // and another replica's row, which must stay.
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &bo, &code).await.ok();
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &bo.token).await;
    client
        .subscribe("1", PHOTO_ADDED, json!({ "s": session }))
        .await;
    app.wait_online(1).await;
    let replica = app.state.presence.replica_id();
    let other_replica = uuid::Uuid::now_v7();
    let session_id = photon_tests::uuid_of(&session);
    let ana_id = photon_tests::uuid_of(&ana.id);
    for replica_id in [replica, other_replica] {
        entity::presence::ActiveModel {
            replica_id: Set(replica_id),
            session_id: Set(session_id),
            user_id: Set(ana_id),
            refreshed_at: Set(chrono::Utc::now()),
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
    assert_eq!(presence_of(&app, replica).await, 2);

    // A push in flight: FCM takes far longer to answer than the grace period.
    fcm.set_latency(Duration::from_secs(60));
    let response = app
        .gql_as(&bo, REGISTER, json!({ "token": "bo-phone" }))
        .await;
    response.ok();
    let sent = app.gql_as(&ana, SEND_REQUEST, json!({ "id": bo.id })).await;
    sent.ok();
    let claimed = "kind = 'friend_requested' AND push_state = 'pending' \
                   AND push_attempts = 1 AND push_not_before IS NOT NULL";
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.count("events", claimed).await != 1 {
        assert!(Instant::now() < deadline, "the push was never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stopping = Instant::now();
    app.begin_shutdown();
    assert!(app.stopped_within(Duration::from_secs(10)).await);
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
    assert_eq!(presence_of(&app, replica).await, 0);
    assert_eq!(presence_of(&app, other_replica).await, 1);
    // Handed back: still pending, due at once rather than when the lease lapses.
    assert_eq!(
        app.count(
            "events",
            "kind = 'friend_requested' AND push_state = 'pending' AND push_not_before IS NULL"
        )
        .await,
        1
    );

    if app.backend == Backend::Postgres {
        // Another replica delivers it now, well inside the two minutes a lease lasts.
        fcm.set_latency(Duration::ZERO);
        let other = app.spawn_replica(&strs).await;
        fcm.wait_until(Duration::from_secs(10), |sends| {
            sends
                .iter()
                .any(|s| s.status == 200 && s.token == "bo-phone")
        })
        .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while other
            .count(
                "events",
                "kind = 'friend_requested' AND push_state = 'sent'",
            )
            .await
            != 1
        {
            assert!(Instant::now() < deadline, "the push was never settled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Presence rows of `replica`.
async fn presence_of(app: &TestApp, replica: uuid::Uuid) -> u64 {
    use entity::presence::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    Entity::find()
        .filter(Column::ReplicaId.eq(replica))
        .count(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_binary_fails_readiness_then_exits_cleanly_within_the_grace_period_on_sigterm() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--bind=127.0.0.1:0".to_owned(),
        format!("--data-dir={}", data_dir.path().display()),
        "--log-format=json".to_owned(),
        "--shutdown-grace-secs=5".to_owned(),
        "--shutdown-drain-ms=700".to_owned(),
    ];
    // On SQLite, the embedded default exactly as `cargo run` starts it; on Postgres, a fresh
    // database. Either way with the sweeper and the push dispatcher on, as deployed.
    if Backend::from_env() == Backend::Postgres {
        args.push(format!(
            "--database-url={}",
            photon_tests::create_postgres_database().await
        ));
        args.push(format!("--jwt-secret={JWT_SECRET}"));
    }
    let mut process = Process::start(&args).await;
    let base = format!("http://{}", process.address().await);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let get_readyz = || async {
        let response = client.get(format!("{base}/readyz")).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json::<Value>().await.ok()?))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_readyz().await.map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = rustix::process::Pid::from_child(&process.child);
    let signalled = Instant::now();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    // What /readyz answers from the signal until the listener closes.
    let mut answers = Vec::new();
    while let Some(answer) = get_readyz().await {
        answers.push(answer);
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "still serving"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_after = signalled.elapsed();
    let first_stopping = answers
        .iter()
        .position(|(status, body)| *status == 503 && body["status"] == "stopping")
        .unwrap_or_else(|| panic!("readyz never said stopping: {answers:?}"));
    // Ready until the signal was handled, then stopping until the end.
    assert!(
        answers[..first_stopping].iter().all(|(s, _)| *s == 200)
            && answers[first_stopping..]
                .iter()
                .all(|(s, b)| *s == 503 && b["status"] == "stopping"),
        "{answers:?}"
    );
    assert!(
        refused_after >= Duration::from_millis(700),
        "the listener closed before the drain delay: {refused_after:?}"
    );

    let status = loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(6),
            "still running past the grace period: {:?}",
            process.messages()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}: {:?}", process.messages());
    // The reader thread has the last lines once the pipe closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let messages = process.messages();
    assert!(
        messages.iter().any(|m| m == "shutting down") && messages.iter().any(|m| m == "stopped"),
        "{messages:?}"
    );
    assert!(
        !messages
            .iter()
            .any(|m| m.contains("did not stop") || m.contains("did not finish")),
        "{messages:?}"
    );
}
