//! Storage abuse and push abuse: dead upload URLs, one PUT per slot, time-limited PUTs,
//! quotas, push dedup, and the sweeper's races and batches.

use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use photon::jobs::sweeper::{delete_events_before, sweep_once};
use photon::storage::photo_key;
use photon_tests::fake_fcm::FakeFcm;
use photon_tests::photos::{
    COMPLETE, photo_bytes, put, request_slot, sha256_hex, slot_headers, upload,
};
use photon_tests::{Backend, TestApp, create_session, join, sweep_settings, uuid_of};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, TransactionTrait};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DELETE: &str = "mutation($id: ID!) { deletePhoto(photoId: $id) }";
const SEND_REQUEST: &str = "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }";
const CANCEL: &str = "mutation($id: ID!) { cancelFriendRequest(requestId: $id) { id } }";
const INVITE: &str = "mutation($id: ID!, $users: [ID!]!) { inviteToSession(sessionId: $id, userIds: $users) { id } }";
const ACCEPT: &str = "mutation($id: ID!) { acceptFriendRequest(requestId: $id) { status } }";
const WAIT: Duration = Duration::from_secs(20);
const REGISTER: &str =
    "mutation($token: String!) { registerDevice(token: $token, platform: IOS) { id } }";

fn on_s3() -> bool {
    photon_tests::s3_public_endpoint().is_some()
}

/// Whether the store holds an object for `bytes` in the session.
async fn stored(app: &TestApp, session_id: &str, bytes: &[u8]) -> bool {
    let key = photo_key(uuid_of(session_id), &sha256_hex(bytes));
    app.state.store.head(&key).await.unwrap().is_some()
}

fn timestamp(app: &TestApp, sql_time: &str) -> String {
    match app.backend {
        Backend::Postgres => format!("'{sql_time}+00'"),
        Backend::Sqlite => format!("'{}+00:00'", sql_time.replace(' ', "T")),
    }
}

async fn exec(app: &TestApp, sql: &str) {
    app.db.execute_unprepared(sql).await.unwrap();
}

fn slot(response: &photon_tests::GqlResponse) -> Value {
    response.ok()["requestPhotoUpload"].clone()
}

#[tokio::test]
async fn a_deleted_slot_url_cannot_leave_an_object_behind() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(1, 2000);
    let pending = slot(&request_slot(&app, &ana, &session_id, &bytes).await);
    let deleted = app
        .gql_as(&ana, DELETE, json!({ "id": pending["photo"]["id"] }))
        .await;
    assert_eq!(deleted.ok()["deletePhoto"], true);
    assert_eq!(app.count("storage_orphans", "").await, 1);

    let status = put(&app, &pending, bytes.clone()).await;
    if on_s3() {
        // S3 cannot revoke a presigned URL: the object lands, and the sweeper removes it
        // once the URL has expired (15 minutes, plus slack for the store's clock).
        assert_eq!(status, 200);
        assert!(stored(&app, &session_id, &bytes).await);
        let early = app
            .sweep_at(chrono::Utc::now() + chrono::Duration::minutes(5))
            .await;
        assert_eq!(early.orphaned_objects, 0);
        assert!(
            stored(&app, &session_id, &bytes).await,
            "its URL still works"
        );
        let late = app
            .sweep_at(chrono::Utc::now() + chrono::Duration::minutes(30))
            .await;
        assert_eq!((late.orphaned_objects, late.failures), (1, 0));
        assert!(!stored(&app, &session_id, &bytes).await);
    } else {
        assert_eq!(status, 404, "the local store refuses a deleted slot's URL");
        assert!(!stored(&app, &session_id, &bytes).await);
        app.sweep_at(chrono::Utc::now() + chrono::Duration::minutes(30))
            .await;
    }
    assert_eq!(app.count("storage_orphans", "").await, 0);

    // A completed slot's URL does not write again on the local store either.
    let id = upload(&app, &ana, &session_id, &photo_bytes(2, 100)).await;
    if !on_s3() {
        let again = slot(&request_slot(&app, &ana, &session_id, &photo_bytes(3, 100)).await);
        assert_eq!(put(&app, &again, photo_bytes(3, 100)).await, 200);
        let done = app
            .gql_as(&ana, COMPLETE, json!({ "id": again["photo"]["id"] }))
            .await;
        assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
        assert_eq!(put(&app, &again, photo_bytes(3, 100)).await, 404);
    }
    // Deleting a ready photo deletes its object at once.
    assert!(stored(&app, &session_id, &photo_bytes(2, 100)).await);
    app.gql_as(&ana, DELETE, json!({ "id": id })).await.ok();
    assert!(!stored(&app, &session_id, &photo_bytes(2, 100)).await);
}

#[tokio::test]
async fn the_sweeper_deletes_an_object_whose_row_went_without_it() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(4, 500);
    let kept = photo_bytes(5, 500);
    let id = upload(&app, &ana, &session_id, &bytes).await;
    upload(&app, &ana, &session_id, &kept).await;
    // A crash between the commit and the object's deletion: the row and its marker are
    // written, the object stays.
    let session = uuid_of(&session_id);
    entity::photo::Entity::delete_by_id(uuid_of(&id))
        .exec(&app.db)
        .await
        .unwrap();
    // A marker for bytes that a photo holds again is dropped without touching the object.
    for digest in [sha256_hex(&bytes), sha256_hex(&kept)] {
        entity::storage_orphan::Entity::insert(entity::storage_orphan::ActiveModel {
            session_id: Set(session),
            sha256: Set(digest),
            delete_after: Set(chrono::Utc::now() - chrono::Duration::minutes(1)),
            legacy_key: Set(false),
        })
        .exec_without_returning(&app.db)
        .await
        .unwrap();
    }
    let report = app.sweep_at(chrono::Utc::now()).await;
    assert_eq!((report.orphaned_objects, report.failures), (2, 0));
    assert!(!stored(&app, &session_id, &bytes).await);
    assert!(stored(&app, &session_id, &kept).await);
    assert_eq!(app.count("storage_orphans", "").await, 0);
}

/// Starts a PUT of `bytes` to a local upload URL by hand, sending only the first `sent`
/// bytes of the body; the connection stays open for the rest.
async fn start_put(slot: &Value, bytes: &[u8], sent: usize) -> tokio::net::TcpStream {
    let url = url::Url::parse(slot["uploadUrl"].as_str().unwrap()).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "PUT {}?{} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
        url.path(),
        url.query().unwrap(),
        url.host_str().unwrap(),
        bytes.len()
    );
    for (name, value) in slot_headers(slot) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&bytes[..sent]).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// The status line's code of the response on `stream`.
async fn status_of(stream: &mut tokio::net::TcpStream) -> u16 {
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("a response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn temp_files(app: &TestApp) -> usize {
    match std::fs::read_dir(app.state.config.data_dir.join("objects/.tmp")) {
        Ok(entries) => entries.count(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn a_slot_takes_one_put_at_a_time() {
    if on_s3() {
        return; // The local store's own rule.
    }
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(6, 100_000);
    let pending = slot(&request_slot(&app, &ana, &session_id, &bytes).await);
    let mut first = start_put(&pending, &bytes, 1000).await;
    // Give the server the time to start receiving the first.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while temp_files(&app) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first PUT started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(put(&app, &pending, bytes.clone()).await, 409);
    first.write_all(&bytes[1000..]).await.unwrap();
    assert_eq!(status_of(&mut first).await, 200);
    // Done, the slot takes a PUT again.
    assert_eq!(put(&app, &pending, bytes.clone()).await, 200);
}

#[tokio::test]
async fn a_stalled_put_is_cut_off_and_leaves_no_temporary_file() {
    if on_s3() {
        return;
    }
    let app = TestApp::spawn_with(&["--local-upload-timeout-secs=1"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(7, 10_000);
    let pending = slot(&request_slot(&app, &ana, &session_id, &bytes).await);
    let started = std::time::Instant::now();
    let mut stalled = start_put(&pending, &bytes, 100).await;
    assert_eq!(status_of(&mut stalled).await, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while temp_files(&app) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "temporary file removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!stored(&app, &session_id, &bytes).await);
    assert_eq!(put(&app, &pending, bytes.clone()).await, 200);
}

#[tokio::test]
async fn leftover_temporary_files_are_removed_at_start_up() {
    if on_s3() {
        return;
    }
    let app = TestApp::spawn().await;
    let root = app.state.config.data_dir.join("objects");
    let tmp = root.join(".tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let stale = tmp.join("left-by-a-crash");
    let live = tmp.join("an-upload-in-progress");
    std::fs::write(&stale, b"partial").unwrap();
    std::fs::write(&live, b"partial").unwrap();
    let yesterday = SystemTime::now() - Duration::from_secs(24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(yesterday)
        .unwrap();
    // What a restart does (another process on the same data directory may be uploading
    // right now: only files older than the upload time limit go).
    photon::storage::local::LocalStore::new(
        root,
        &app.state.config.public_url,
        &app.state.config.jwt_secret,
        app.state.db.clone(),
        Duration::from_secs(300),
    )
    .unwrap();
    assert!(!stale.exists());
    assert!(live.exists());
}

#[tokio::test]
async fn session_quotas_count_open_slots_and_refuse_the_next_photo() {
    let app = TestApp::spawn_with(&["--session-max-photos=2"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (session_id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    upload(&app, &ana, &session_id, &photo_bytes(10, 100)).await;
    let open = slot(&request_slot(&app, &ana, &session_id, &photo_bytes(11, 100)).await);
    // Full, with one photo and one open slot: anyone's next photo is refused...
    request_slot(&app, &bob, &session_id, &photo_bytes(12, 100))
        .await
        .assert_code("QUOTA_EXCEEDED");
    // ...but asking again for bytes already there is not a new photo.
    slot(&request_slot(&app, &bob, &session_id, &photo_bytes(11, 100)).await);
    assert_eq!(app.count("photos", "").await, 2);
    // Deleting one makes room.
    app.gql_as(&bob, DELETE, json!({ "id": open["photo"]["id"] }))
        .await
        .ok();
    slot(&request_slot(&app, &bob, &session_id, &photo_bytes(12, 100)).await);

    let bytes = TestApp::spawn_with(&["--session-max-bytes=1048576"]).await;
    let ana = bytes.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&bytes, &ana, "Big").await;
    slot(&request_slot(&bytes, &ana, &session_id, &photo_bytes(13, 600_000)).await);
    request_slot(&bytes, &ana, &session_id, &photo_bytes(14, 600_000))
        .await
        .assert_code("QUOTA_EXCEEDED");
    slot(&request_slot(&bytes, &ana, &session_id, &photo_bytes(15, 400_000)).await);
}

#[tokio::test]
async fn user_quotas_span_sessions_and_leave_others_alone() {
    let app = TestApp::spawn_with(&["--user-max-photos=2", "--user-max-bytes=1048576"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (beach, code) = create_session(&app, &ana, "Beach").await;
    let (party, _) = create_session(&app, &ana, "Party").await;
    join(&app, &bob, &code).await.ok();
    upload(&app, &ana, &beach, &photo_bytes(20, 100)).await;
    slot(&request_slot(&app, &ana, &party, &photo_bytes(21, 100)).await);
    request_slot(&app, &ana, &party, &photo_bytes(22, 100))
        .await
        .assert_code("QUOTA_EXCEEDED");
    // Bob's own quota is untouched.
    slot(&request_slot(&app, &bob, &beach, &photo_bytes(22, 100)).await);
    request_slot(&app, &bob, &beach, &photo_bytes(23, 1_048_500))
        .await
        .assert_code("QUOTA_EXCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_cannot_overshoot_a_quota() {
    let app = TestApp::spawn_with(&["--session-max-photos=5"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let requests = (0..12u8).map(|seed| {
        let (app, ana, session_id) = (&app, &ana, &session_id);
        async move { request_slot(app, ana, session_id, &photo_bytes(30 + seed, 100)).await }
    });
    let responses = join_all(requests).await;
    let refused = responses
        .iter()
        .filter(|r| r.codes() == ["QUOTA_EXCEEDED"])
        .count();
    assert_eq!(refused, 7);
    assert_eq!(app.count("photos", "").await, 5);
}

#[test]
fn quota_settings_have_checked_ranges() {
    for bad in [
        "--session-max-photos=0",
        "--session-max-bytes=10",
        "--user-max-photos=0",
        "--user-max-bytes=0",
        "--local-upload-timeout-secs=0",
        "--local-upload-timeout-secs=100000",
    ] {
        assert!(
            photon::config::settings_from_args(["photon", bad]).is_err(),
            "{bad} is refused"
        );
    }
}

#[tokio::test]
async fn re_sent_friend_requests_and_repeated_invites_push_once() {
    let fcm = FakeFcm::start().await;
    let mut args = fcm.args();
    args.push("--push-poll-ms=25".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let app = TestApp::spawn_with(&args).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let cy = app.sign_in("cy@example.com").await;
    app.gql_as(&bo, REGISTER, json!({ "token": "bo-phone" }))
        .await
        .ok();

    let send = |from: &photon_tests::TestUser| {
        let (app, from, to) = (&app, from.clone(), bo.id.clone());
        async move {
            let sent = app.gql_as(&from, SEND_REQUEST, json!({ "id": to })).await;
            sent.ok()["sendFriendRequest"]["id"].clone()
        }
    };
    let cancel = |from: &photon_tests::TestUser, id: Value| {
        let (app, from) = (&app, from.clone());
        async move {
            app.gql_as(&from, CANCEL, json!({ "id": id }))
                .await
                .ok()
                .clone()
        }
    };
    let pushing = |condition: &'static str| {
        let app = &app;
        async move {
            app.count("events", &format!("{condition} AND push_state <> 'none'"))
                .await
        }
    };

    let mut request = send(&ana).await;
    fcm.wait_until(WAIT, |sends| sends.len() == 1).await;
    for _ in 0..3 {
        cancel(&ana, request).await;
        request = send(&ana).await;
    }
    // Every request is recorded; only the first rings.
    assert_eq!(app.count("events", "kind = 'friend_requested'").await, 4);
    assert_eq!(pushing("kind = 'friend_requested'").await, 1);
    app.gql_as(&bo, ACCEPT, json!({ "id": request })).await.ok();

    let (session, _) = create_session(&app, &ana, "Beach day").await;
    for _ in 0..3 {
        app.gql_as(&ana, INVITE, json!({ "id": session, "users": [bo.id] }))
            .await
            .ok();
    }
    assert_eq!(app.count("events", "kind = 'member_invited'").await, 3);
    assert_eq!(pushing("kind = 'member_invited'").await, 1);
    fcm.wait_until(WAIT, |sends| sends.len() == 2).await;
    let deadline = std::time::Instant::now() + WAIT;
    while app.count("events", "push_state = 'pending'").await > 0 {
        assert!(std::time::Instant::now() < deadline, "pushes settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let types: Vec<String> = fcm
        .delivered_to("bo-phone")
        .iter()
        .map(|s| s.data("type").to_owned())
        .collect();
    assert_eq!(types, ["friend_request", "session_invite"]);

    // Another sender's requests are theirs to count; a day later they may ring again.
    let request = send(&cy).await;
    cancel(&cy, request).await;
    let request = send(&cy).await;
    assert_eq!(pushing("kind = 'friend_requested'").await, 2);
    exec(
        &app,
        &format!(
            "UPDATE push_marks SET expires_at = {}",
            timestamp(&app, "2001-01-01 00:00:00")
        ),
    )
    .await;
    cancel(&cy, request).await;
    send(&cy).await;
    assert_eq!(pushing("kind = 'friend_requested'").await, 3);
    // The sweeper forgets marks past their window.
    assert!(
        app.sweep_at(chrono::Utc::now() + chrono::Duration::days(31))
            .await
            .push_marks
            >= 3
    );
}

#[tokio::test]
async fn a_slot_renewed_while_the_sweeper_removes_it_survives() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    let bytes = photo_bytes(40, 100);
    let pending = slot(&request_slot(&app, &ana, &session_id, &bytes).await);
    let id = uuid_of(pending["photo"]["id"].as_str().unwrap());
    let long_ago = timestamp(&app, "2001-01-01 00:00:00");
    exec(&app, &format!("UPDATE photos SET created_at = {long_ago}")).await;
    let now = chrono::Utc::now();

    match app.backend {
        Backend::Postgres => {
            // The renewal is under way (its row lock held, not committed) when the sweeper
            // finds the slot due and goes to delete it; the renewal then commits.
            let renewal = app.db.begin().await.unwrap();
            renewal
                .execute_unprepared(&format!(
                    "UPDATE photos SET created_at = NOW() WHERE id = '{id}'"
                ))
                .await
                .unwrap();
            let state = app.state.clone();
            let sweeper = tokio::spawn(async move {
                sweep_once(&state.db, state.store.as_ref(), &sweep_settings(), now).await
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
            renewal.commit().await.unwrap();
            let report = sweeper.await.unwrap().unwrap();
            assert_eq!(report.abandoned_slots, 0);
        }
        Backend::Sqlite => {
            // One writer: the renewal is before or after the sweep, never inside it.
            slot(&request_slot(&app, &ana, &session_id, &bytes).await);
            assert_eq!(app.sweep_at(now).await.abandoned_slots, 0);
        }
    }
    assert_eq!(app.count("photos", "").await, 1);
    assert_eq!(put(&app, &pending, bytes.clone()).await, 200);
}

#[tokio::test]
async fn retention_deletes_old_events_in_bounded_batches_by_an_index() {
    let app = TestApp::spawn().await;
    let index = match app.backend {
        Backend::Postgres => {
            app.count("pg_indexes", "indexname = 'idx_events_created_at'")
                .await
        }
        Backend::Sqlite => {
            app.count(
                "sqlite_master",
                "type = 'index' AND name = 'idx_events_created_at'",
            )
            .await
        }
    };
    assert_eq!(index, 1);

    let ana = app.sign_in("ana@example.com").await;
    let (session_id, _) = create_session(&app, &ana, "Beach").await;
    for seed in 0..9 {
        upload(&app, &ana, &session_id, &photo_bytes(50 + seed, 100)).await;
    }
    let old = app.count("events", "").await;
    assert!(old >= 9);
    exec(
        &app,
        &format!(
            "UPDATE events SET created_at = {}",
            timestamp(&app, "2001-01-01 00:00:00")
        ),
    )
    .await;
    upload(&app, &ana, &session_id, &photo_bytes(60, 100)).await;
    let recent = app.count("events", "").await - old;

    let before = app.statements();
    let deleted = delete_events_before(
        &app.state.db,
        chrono::Utc::now() - chrono::Duration::hours(1),
        3,
    )
    .await
    .unwrap();
    let statements = app.statements() - before;
    assert_eq!(deleted as i64, old);
    assert_eq!(app.count("events", "").await, recent);
    // A select and a delete per batch of three, and one look that finds nothing more.
    assert!(
        statements >= 2 * (old as u64).div_ceil(3),
        "{statements} statements"
    );
}
