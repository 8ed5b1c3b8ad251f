//! Photo processing, end to end: real photos made by the fixture generator, uploaded through
//! the real flow, processed by the server's workers (or a `photon worker` process), and the
//! results downloaded and decoded the way a phone would.

use std::time::Duration;

use image::RgbImage;
use photon::imaging::fixtures::{self, Corner, ExifSpec};
use photon::jobs::supervisor::{Backoff, Supervisor};
use photon::processing::ProcessingSettings;
use photon::storage::{PhotoObject, object_key};
use photon_tests::photos::{sha256_hex, stage_typed, upload_typed};
use photon_tests::process::Process;
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{Backend, JWT_SECRET, TestApp, TestUser, create_session, join, uuid_of};
use serde_json::{Value, json};
use tokio::time::Instant;

const PHOTO: &str = "query($id: ID!) { photo(id: $id) { id processing width height takenAt thumbhash thumbnailUrl previewUrl url contentType } }";

const EVENTS: &str = "subscription($s: ID!, $after: String) { sessionEvents(sessionId: $s, after: $after) { __typename ... on PhotoProcessed { cursor photo { id processing width height thumbhash thumbnailUrl } } } }";

/// A server whose workers run, looking at the queue often.
async fn processing_app(extra: &[&str]) -> TestApp {
    let mut args = vec!["--processing-concurrency=2", "--processing-poll-ms=100"];
    args.extend_from_slice(extra);
    TestApp::spawn_with(&args).await
}

/// Ana owns a session that Ben has joined.
async fn session_of_two(app: &TestApp) -> (TestUser, TestUser, String) {
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(app, &ana, "Beach day").await;
    join(app, &ben, &code).await.ok();
    (ana, ben, session)
}

/// The photo as `user` sees it once processing has ended.
async fn processed(app: &TestApp, user: &TestUser, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let photo = app.gql_as(user, PHOTO, json!({ "id": id })).await.ok()["photo"].clone();
        if photo["processing"] != "PENDING" {
            return photo;
        }
        assert!(Instant::now() < deadline, "still pending: {photo}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn download(app: &TestApp, url: &Value) -> (u16, Vec<u8>) {
    let response = app
        .client
        .get(url.as_str().expect("a URL"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

fn decode(bytes: &[u8]) -> RgbImage {
    image::load_from_memory(bytes)
        .expect("a derivative decodes")
        .to_rgb8()
}

/// The fixture quadrant each corner of `image` shows, clockwise from the top left, sampled
/// from a patch a little inside each corner. A photo shown upright reads
/// [`UPRIGHT`] whatever its EXIF orientation (the fixtures are drawn for that).
fn corners(image: &RgbImage) -> [Corner; 4] {
    let (w, h) = image.dimensions();
    let patch = |cx: u32, cy: u32| {
        let mut sum = [0u32; 3];
        let mut n = 0;
        for y in cy.saturating_sub(2)..=(cy + 2).min(h - 1) {
            for x in cx.saturating_sub(2)..=(cx + 2).min(w - 1) {
                for (total, channel) in sum.iter_mut().zip(image.get_pixel(x, y).0) {
                    *total += u32::from(channel);
                }
                n += 1;
            }
        }
        Corner::nearest(sum.map(|total| (total / n) as u8))
    };
    let (l, t, r, b) = (w / 8, h / 8, w - 1 - w / 8, h - 1 - h / 8);
    [patch(l, t), patch(r, t), patch(r, b), patch(l, b)]
}

const UPRIGHT: [Corner; 4] = [
    Corner::TopLeft,
    Corner::TopRight,
    Corner::BottomRight,
    Corner::BottomLeft,
];

#[tokio::test]
async fn a_phone_photo_is_shown_upright_in_every_size_and_its_location_reaches_nobody_else() {
    let app = processing_app(&["--metrics-bind=127.0.0.1:0"]).await;
    let (ana, ben, session) = session_of_two(&app).await;
    // 1200 × 800 as stored, EXIF orientation 6: a portrait photo, 800 × 1200 as displayed.
    let original = fixtures::jpeg(1200, 800, Some(&fixtures::phone_exif()));
    assert!(
        fixtures::summarize(&original).has_gps,
        "the fixture has a location"
    );
    let id = upload_typed(&app, &ana, &session, &original, "image/jpeg").await;

    let photo = processed(&app, &ben, &id).await;
    assert_eq!(photo["processing"], "DONE", "{photo}");
    assert_eq!(
        (photo["width"].clone(), photo["height"].clone()),
        (json!(800), json!(1200))
    );
    assert_eq!(photo["takenAt"], "2026-07-04T21:15:09+02:00");
    let thumbhash = photo["thumbhash"].as_str().unwrap();
    let hash = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, thumbhash)
        .expect("base64");
    assert!((5..=32).contains(&hash.len()), "a ThumbHash: {thumbhash}");

    // Both derivatives decode, upright, within their bounds, as JPEG without any metadata.
    for (field, longest) in [("thumbnailUrl", 384), ("previewUrl", 1600)] {
        let (status, bytes) = download(&app, &photo[field]).await;
        assert_eq!(status, 200, "{field}");
        let image = decode(&bytes);
        let (w, h) = image.dimensions();
        assert!(h > w && h <= longest, "{field}: {w}×{h}");
        assert!(
            (w as f64 / h as f64 - 800.0 / 1200.0).abs() < 0.01,
            "{field}: {w}×{h}"
        );
        assert_eq!(corners(&image), UPRIGHT, "{field}");
        let meta = fixtures::summarize(&bytes);
        assert!(
            !meta.has_exif && !meta.has_xmp && !meta.has_comment,
            "{field} carries metadata: {meta:?}"
        );
    }
    let (_, preview) = download(&app, &photo["previewUrl"]).await;
    assert_eq!(decode(&preview).dimensions(), (800, 1200), "never upscaled");

    // Ben's full-size copy: the same JPEG, no location, serial, maker note or XMP, still
    // upright. Ana's URL is her original, byte for byte.
    let (status, copy) = download(&app, &photo["url"]).await;
    assert_eq!(status, 200);
    let meta = fixtures::summarize(&copy);
    assert!(
        !meta.has_gps
            && !meta.has_serial
            && !meta.has_maker_note
            && !meta.has_xmp
            && !meta.has_comment,
        "{meta:?}"
    );
    assert_eq!(meta.orientation, Some(6));
    assert_eq!(
        decode(&copy).dimensions(),
        (1200, 800),
        "the same pixels, not re-encoded"
    );
    let own = processed(&app, &ana, &id).await;
    assert_eq!(download(&app, &own["url"]).await, (200, original.clone()));
    assert_ne!(own["url"], photo["url"]);

    let metrics = app.scrape().await;
    for line in [
        "photon_photo_jobs_total{outcome=\"done\"}",
        "photon_photo_job_duration_seconds_count{outcome=\"done\"}",
        "photon_photo_jobs_queued",
    ] {
        assert!(metrics.contains(line), "{line} missing from the metrics");
    }
}

#[tokio::test]
async fn png_and_webp_photos_are_processed_too() {
    let app = processing_app(&[]).await;
    let (ana, ben, session) = session_of_two(&app).await;
    let spec = ExifSpec {
        orientation: Some(8),
        ..fixtures::phone_exif()
    };
    for (bytes, content_type) in [
        (fixtures::png(300, 200, Some(&spec)), "image/png"),
        (fixtures::webp(300, 200, Some(&spec)), "image/webp"),
    ] {
        let id = upload_typed(&app, &ana, &session, &bytes, content_type).await;
        let photo = processed(&app, &ben, &id).await;
        assert_eq!(photo["processing"], "DONE", "{content_type}: {photo}");
        // Orientation 8: turned 90° counter-clockwise to show.
        assert_eq!(
            (photo["width"].clone(), photo["height"].clone()),
            (json!(200), json!(300))
        );
        let (_, thumbnail) = download(&app, &photo["thumbnailUrl"]).await;
        assert_eq!(corners(&decode(&thumbnail)), UPRIGHT, "{content_type}");
        let (status, copy) = download(&app, &photo["url"]).await;
        assert_eq!(status, 200, "{content_type}");
        let meta = fixtures::summarize(&copy);
        assert!(
            !meta.has_gps && !meta.has_serial,
            "{content_type}: {meta:?}"
        );
    }
}

#[tokio::test]
async fn photo_processed_arrives_live_in_both_protocols_and_replays_from_a_cursor() {
    let app = processing_app(&[]).await;
    let (ana, ben, session) = session_of_two(&app).await;
    for (n, protocol) in Protocol::BOTH.into_iter().enumerate() {
        let mut client = WsClient::connect_as(&app, protocol, &ben.token).await;
        client
            .subscribe("1", EVENTS, json!({ "s": session, "after": null }))
            .await;
        // The subscription is live once the server has answered something on it; a photo
        // completed before that would be missed by a subscription without a cursor.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let bytes = fixtures::jpeg(64 + n as u32, 48, None);
        let id = upload_typed(&app, &ana, &session, &bytes, "image/jpeg").await;
        let event = loop {
            let payload = client.next_payload("1").await;
            let event = payload["data"]["sessionEvents"].clone();
            if event["__typename"] == "PhotoProcessed" {
                break event;
            }
        };
        assert_eq!(event["photo"]["id"], id, "{protocol:?}");
        assert_eq!(event["photo"]["processing"], "DONE");
        assert_eq!(event["photo"]["width"], 64 + n);
        assert!(event["photo"]["thumbnailUrl"].is_string());
        assert!(event["photo"]["thumbhash"].is_string());
        client.close().await;

        // From a cursor just before it, the same event again.
        let before = app.count("events", "kind = 'photo_processed'").await;
        assert!(before >= 1);
        let mut replay = WsClient::connect_as(&app, protocol, &ben.token).await;
        let cursor = photon::service::pagination::encode_cursor(&0_i64);
        replay
            .subscribe("2", EVENTS, json!({ "s": session, "after": cursor }))
            .await;
        let mut replayed = Vec::new();
        while replayed.len() < n + 1 {
            let payload = replay.next_payload("2").await;
            let event = &payload["data"]["sessionEvents"];
            if event["__typename"] == "PhotoProcessed" {
                replayed.push(event["photo"]["id"].clone());
            }
        }
        assert_eq!(replayed.last(), Some(&json!(id)), "{protocol:?}");
        replay.close().await;
    }
}

#[tokio::test]
async fn broken_and_hostile_files_end_failed_and_the_workers_carry_on() {
    let app = processing_app(&["--processing-max-pixels=50000000"]).await;
    let (ana, ben, session) = session_of_two(&app).await;
    let good = fixtures::jpeg(640, 480, None);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", fixtures::truncated(&good), "image/jpeg"),
        ("corrupt", fixtures::corrupt_jpeg(640, 480), "image/jpeg"),
        (
            "JPEG bomb",
            fixtures::jpeg_header_claiming(60_000, 60_000),
            "image/jpeg",
        ),
        (
            "PNG bomb",
            fixtures::png_header_claiming(60_000, 60_000),
            "image/png",
        ),
        ("wrong type", fixtures::png(64, 64, None), "image/jpeg"),
        (
            "not an image",
            b"<html><script>alert(1)</script></html>".to_vec(),
            "image/webp",
        ),
    ];
    let mut ids = Vec::new();
    for (name, bytes, content_type) in &cases {
        ids.push((
            *name,
            upload_typed(&app, &ana, &session, bytes, content_type).await,
        ));
    }
    let started = Instant::now();
    for (name, id) in &ids {
        let photo = processed(&app, &ben, id).await;
        assert_eq!(photo["processing"], "FAILED", "{name}: {photo}");
        assert!(
            photo["thumbnailUrl"].is_null() && photo["width"].is_null(),
            "{name}"
        );
        // Ben gets no copy of bytes that did not decode; Ana still has her upload.
        assert_eq!(download(&app, &photo["url"]).await.0, 404, "{name}");
        let own = processed(&app, &ana, id).await;
        assert_eq!(download(&app, &own["url"]).await.0, 200, "{name}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "hostile files are refused quickly"
    );
    // Each failure is kept with its reason, for operators.
    assert_eq!(
        app.count(
            "photos",
            "processing = 'failed' AND processing_error IS NOT NULL"
        )
        .await,
        cases.len() as i64
    );
    assert_eq!(app.count("photo_jobs", "").await, 0);

    // A tall, thin PNG (1 × 100,000) is no trouble either, and the workers still process a
    // good photo after all that.
    let thin = upload_typed(
        &app,
        &ana,
        &session,
        &fixtures::png(1, 100_000, None),
        "image/png",
    )
    .await;
    let photo = processed(&app, &ben, &thin).await;
    assert_ne!(photo["processing"], "PENDING");
    let id = upload_typed(&app, &ana, &session, &good, "image/jpeg").await;
    assert_eq!(processed(&app, &ben, &id).await["processing"], "DONE");
}

/// Whether the store holds the photo's `object`.
async fn stored(app: &TestApp, session: &str, bytes: &[u8], object: PhotoObject) -> bool {
    let key = object_key(uuid_of(session), &sha256_hex(bytes), object);
    app.state
        .store
        .head(&key)
        .await
        .expect("the store answers")
        .is_some()
}

#[tokio::test]
async fn deleting_a_photo_or_its_expiry_removes_its_derivatives() {
    let app = processing_app(&[]).await;
    let (ana, ben, session) = session_of_two(&app).await;
    let deleted = fixtures::jpeg(320, 240, None);
    let expiring = fixtures::jpeg(240, 320, None);
    let deleted_id = upload_typed(&app, &ana, &session, &deleted, "image/jpeg").await;
    let expiring_id = upload_typed(&app, &ana, &session, &expiring, "image/jpeg").await;
    for id in [&deleted_id, &expiring_id] {
        assert_eq!(processed(&app, &ben, id).await["processing"], "DONE");
    }
    for object in PhotoObject::ALL {
        assert!(
            stored(&app, &session, &deleted, object).await,
            "{object:?} written"
        );
    }

    let gone = app
        .gql_as(
            &ana,
            "mutation($id: ID!) { deletePhoto(photoId: $id) }",
            json!({ "id": deleted_id }),
        )
        .await;
    assert_eq!(gone.ok()["deletePhoto"], true);
    for object in PhotoObject::ALL {
        assert!(
            !stored(&app, &session, &deleted, object).await,
            "{object:?} left behind"
        );
    }

    // The sweeper, past the photo's lifetime (and every URL's).
    app.sweep_at(chrono::Utc::now() + chrono::Duration::hours(200))
        .await;
    for object in PhotoObject::ALL {
        assert!(
            !stored(&app, &session, &expiring, object).await,
            "{object:?} left behind"
        );
    }
}

#[cfg(not(feature = "heif"))]
#[tokio::test]
async fn without_libheif_a_heic_photo_is_unsupported_but_served_without_its_location() {
    let app = processing_app(&[]).await;
    let (ana, ben, session) = session_of_two(&app).await;
    let heic = fixtures::heif_container(&fixtures::exif_block(&fixtures::phone_exif()));
    let id = upload_typed(&app, &ana, &session, &heic, "image/heic").await;
    let photo = processed(&app, &ben, &id).await;
    assert_eq!(photo["processing"], "UNSUPPORTED", "{photo}");
    assert!(photo["thumbnailUrl"].is_null());
    let (status, copy) = download(&app, &photo["url"]).await;
    assert_eq!(status, 200);
    assert_eq!(
        copy.len(),
        heic.len(),
        "the same container, its EXIF blanked in place"
    );
    assert!(!fixtures::summarize(&copy).has_gps);
}

#[cfg(feature = "heif")]
#[tokio::test]
async fn a_heic_photo_is_processed_with_libheif() {
    let app = processing_app(&[]).await;
    let (ana, ben, session) = session_of_two(&app).await;
    let exif = fixtures::exif_block(&fixtures::phone_exif());
    let heic = photon::imaging::heif_fixture(640, 480, Some(&exif));
    let id = upload_typed(&app, &ana, &session, &heic, "image/heic").await;
    let photo = processed(&app, &ben, &id).await;
    assert_eq!(photo["processing"], "DONE", "{photo}");
    // HEIF's rotation lives in the container, not in EXIF: 640 × 480 as encoded.
    assert_eq!(
        (photo["width"].clone(), photo["height"].clone()),
        (json!(640), json!(480))
    );
    let (_, thumbnail) = download(&app, &photo["thumbnailUrl"]).await;
    assert_eq!(decode(&thumbnail).dimensions(), (384, 288));
    let (status, copy) = download(&app, &photo["url"]).await;
    assert_eq!(status, 200);
    assert!(!fixtures::summarize(&copy).has_gps);
}

#[tokio::test]
async fn two_replicas_never_process_the_same_photo_twice() {
    let app = TestApp::spawn().await;
    if app.backend != Backend::Postgres {
        // One SQLite database belongs to one process: there is no second replica to race.
        return;
    }
    let workers = ["--processing-concurrency=2", "--processing-poll-ms=20"];
    let first = app.spawn_replica(&workers).await;
    let second = app.spawn_replica(&workers).await;
    let (ana, ben, session) = session_of_two(&app).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let bytes = fixtures::jpeg(100 + n, 80, None);
        ids.push(upload_typed(&app, &ana, &session, &bytes, "image/jpeg").await);
    }
    for id in &ids {
        assert_eq!(processed(&app, &ben, id).await["processing"], "DONE");
    }
    // One outcome per photo, each from a single attempt.
    assert_eq!(app.count("events", "kind = 'photo_processed'").await, 12);
    assert_eq!(app.count("photo_jobs", "").await, 0);
    drop((first, second));
}

/// The `photon worker` process, against the test's database and data directory.
async fn worker_process(app: &TestApp, extra: &[&str]) -> Process {
    let mut args = vec![
        "worker".to_owned(),
        format!("--database-url={}", app.database_url),
        format!("--data-dir={}", app.data_dir().display()),
        format!("--public-url={}", app.base_url),
        format!("--jwt-secret={JWT_SECRET}"),
        "--log-format=json".to_owned(),
    ];
    // Quick to look at the queue, unless the test says otherwise.
    if !extra
        .iter()
        .any(|arg| arg.starts_with("--processing-poll-ms"))
    {
        args.push("--processing-poll-ms=50".to_owned());
    }
    args.extend(app.storage_args.iter().cloned());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let process = Process::start(&args).await;
    process.logged("photo processing workers started").await;
    process
}

#[tokio::test]
async fn a_worker_process_processes_photos_completed_on_a_serving_replica() {
    // The serving replica runs no workers (the test default).
    let app = TestApp::spawn().await;
    let (ana, ben, session) = session_of_two(&app).await;
    let _worker = worker_process(&app, &["--processing-concurrency=1"]).await;
    let id = upload_typed(
        &app,
        &ana,
        &session,
        &fixtures::jpeg(300, 200, None),
        "image/jpeg",
    )
    .await;
    let photo = processed(&app, &ben, &id).await;
    assert_eq!(photo["processing"], "DONE", "{photo}");
    assert_eq!(photo["width"], 300);
}

#[tokio::test]
async fn a_worker_process_is_told_of_a_completion_at_once_without_polling() {
    let app = TestApp::spawn().await;
    if app.backend != Backend::Postgres {
        // The notification crosses processes on Postgres; the embedded SQLite default is one
        // process, whose workers are woken in process.
        return;
    }
    let (ana, ben, session) = session_of_two(&app).await;
    // Polling once a minute: only the notification sent after the commit can wake it in time.
    let _worker = worker_process(
        &app,
        &["--processing-concurrency=1", "--processing-poll-ms=60000"],
    )
    .await;
    // The worker looks at the queue once as it starts listening; after that, only a
    // notification wakes it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let id = upload_typed(
        &app,
        &ana,
        &session,
        &fixtures::jpeg(120, 80, None),
        "image/jpeg",
    )
    .await;
    let photo = processed(&app, &ben, &id).await;
    assert_eq!(photo["processing"], "DONE", "{photo}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "processed after {took:?}: the worker waited for its poll"
    );
    // Nothing is announced inside the completion's transaction any more.
    assert_eq!(app.pids_of("photon-photo-job-notifier").await.len(), 1);
}

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_its_job_to_be_retried() {
    let app = TestApp::spawn().await;
    if app.backend != Backend::Postgres {
        // Workers in several processes share a queue on Postgres; the embedded SQLite
        // default is one process.
        return;
    }
    let (ana, ben, session) = session_of_two(&app).await;
    let mut worker = worker_process(
        &app,
        &[
            "--processing-concurrency=1",
            "--processing-lease-secs=4",
            "--processing-timeout-secs=3",
        ],
    )
    .await;
    // Big enough to take a while in a debug build.
    let bytes = fixtures::jpeg(6000, 4000, None);
    let id = stage_typed(&app, &ana, &session, bytes, "image/jpeg").await;
    photon_tests::photos::complete(&app, &ana, &id).await;
    let photo_id = uuid_of(&id);
    let claimed = format!("photo_id = '{photo_id}' AND attempts = 1 AND not_before IS NOT NULL");
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count("photo_jobs", &claimed).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the worker never claimed the job"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.child.kill().unwrap();
    worker.child.wait().unwrap();
    assert_eq!(
        app.count(
            "photos",
            &format!("id = '{photo_id}' AND processing = 'pending'")
        )
        .await,
        1,
        "the worker was killed before it finished"
    );
    assert_eq!(
        app.count("photo_jobs", &claimed).await,
        1,
        "the job is still there"
    );

    // Another worker takes it once the dead one's lease has lapsed, and processes it once.
    let _replica = app
        .spawn_replica(&["--processing-concurrency=1", "--processing-poll-ms=100"])
        .await;
    let photo = processed(&app, &ben, &id).await;
    assert_eq!(photo["processing"], "DONE", "{photo}");
    assert_eq!(app.count("events", "kind = 'photo_processed'").await, 1);
}

#[tokio::test]
async fn a_job_that_cannot_read_its_original_is_retried_with_back_off_then_failed() {
    // No workers of the server's own: the original goes missing before any worker looks.
    let app = TestApp::spawn().await;
    let (ana, ben, session) = session_of_two(&app).await;
    let bytes = fixtures::jpeg(64, 48, None);
    let id = upload_typed(&app, &ana, &session, &bytes, "image/jpeg").await;
    let key = photon::storage::photo_key(uuid_of(&session), &sha256_hex(&bytes));
    app.state.store.delete(&key).await.unwrap();

    let tasks = Supervisor::new(Backoff::default());
    let settings = ProcessingSettings {
        concurrency: 1,
        timeout: Duration::from_secs(10),
        lease: Duration::from_secs(20),
        max_pixels: 100_000_000,
        max_attempts: 2,
        poll_interval: Duration::from_millis(50),
    };
    let started = Instant::now();
    let workers = photon::processing::spawn(&tasks, &app.state, settings);
    let retrying =
        "attempts = 1 AND last_error LIKE '%not in the store%' AND not_before IS NOT NULL";
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count("photo_jobs", retrying).await == 0 {
        assert!(Instant::now() < deadline, "no retry was scheduled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let photo = processed(&app, &ben, &id).await;
    assert_eq!(photo["processing"], "FAILED", "{photo}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the retry waited its back-off"
    );
    assert_eq!(
        app.count(
            "photos",
            "processing_error LIKE 'gave up after 2 attempts: the original is not in the store%'"
        )
        .await,
        1
    );
    assert_eq!(app.count("photo_jobs", "").await, 0);
    tasks
        .shutdown(Instant::now() + Duration::from_secs(2))
        .await;
    assert_eq!(workers.release().await.unwrap(), 0, "nothing left held");
}
