//! Photo processing as a member feels it: 12-megapixel JPEGs (4032 × 3024, made by the
//! fixture generator) uploaded through the real flow, and the time from sending
//! `completePhotoUpload` to the `PhotoProcessed` event arriving on another member's
//! `sessionEvents` WebSocket. Prints p50/p99/max of that latency for photos sent one at a
//! time, then the throughput of a burst (photos per second, and per core the workers use).
//!
//! ```sh
//! cargo bench -p photon-tests --bench processing
//! PHOTON_BENCH_N=50 PHOTON_BENCH_BURST=40 cargo bench -p photon-tests --bench processing
//! ```
//!
//! The server runs in-process as the tests start it (`PHOTON_TEST_BACKEND`,
//! `PHOTON_TEST_STORAGE`), with `PHOTON_PROCESSING_CONCURRENCY` workers (default: the cores).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use photon::imaging::fixtures;
use photon_tests::bench::{Figures, cpu_time, env_usize};
use photon_tests::photos::{FLOW_COMPLETE, stage};
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{TestApp, create_session, join};
use serde_json::json;

const EVENTS: &str = "subscription($s: ID!) { sessionEvents(sessionId: $s) { __typename ... on PhotoProcessed { photo { id processing } } } }";

#[tokio::main]
async fn main() {
    let n = env_usize("PHOTON_BENCH_N", 30);
    let burst = env_usize("PHOTON_BENCH_BURST", 20);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let workers = env_usize("PHOTON_PROCESSING_CONCURRENCY", cores);
    let concurrency = format!("--processing-concurrency={workers}");
    let app = TestApp::spawn_with(&[&concurrency, "--processing-poll-ms=1000"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &ana, "bench").await;
    join(&app, &ben, &code).await.ok();
    let mut events = WsClient::connect_as(&app, Protocol::Transport, &ben.token).await;
    events.subscribe("1", EVENTS, json!({ "s": session })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Distinct photos (the same bytes would be one photo), made before any clock starts.
    let photos: Vec<Vec<u8>> = (0..n + burst)
        .map(|i| fixtures::jpeg(4032 + i as u32, 3024, Some(&fixtures::phone_exif())))
        .collect();
    let size = photos.iter().map(Vec::len).sum::<usize>() / photos.len();
    println!(
        "{n} + {burst} photos of about 4032×3024, {:.1} MB each on average; {workers} workers on {cores} cores",
        size as f64 / 1e6
    );
    let mut photos = photos.into_iter();

    let mut latencies = Vec::with_capacity(n);
    for bytes in photos.by_ref().take(n) {
        let id = stage(&app, &ana, &session, bytes).await;
        let sent = Instant::now();
        complete_now(&app, &ana, &id).await;
        wait_processed(&mut events, &[id]).await;
        latencies.push(sent.elapsed());
    }
    let figures = Figures::of(latencies);
    println!(
        "completion → PhotoProcessed, one at a time: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        figures.p50, figures.p99, figures.max
    );

    let mut ids = Vec::with_capacity(burst);
    for bytes in photos {
        ids.push(stage(&app, &ana, &session, bytes).await);
    }
    let cpu_before = cpu_time(std::process::id());
    let started = Instant::now();
    for id in &ids {
        complete_now(&app, &ana, id).await;
    }
    wait_processed(&mut events, &ids).await;
    let took = started.elapsed();
    let cpu = cpu_time(std::process::id()).saturating_sub(cpu_before);
    let rate = burst as f64 / took.as_secs_f64();
    println!(
        "a burst of {burst}: {:.2} photos/s, {:.2} photos/s per worker, {:.0} ms of CPU per photo (the whole server)",
        rate,
        rate / workers.min(cores) as f64,
        ms(cpu) / burst as f64
    );
    let _ = app.count("photo_jobs", "").await;
}

async fn complete_now(app: &TestApp, user: &photon_tests::TestUser, id: &str) {
    let done = app.gql_as(user, FLOW_COMPLETE, json!({ "id": id })).await;
    assert_eq!(done.ok()["completePhotoUpload"]["status"], "READY");
}

/// Reads events until every one of `ids` has been processed (and DONE).
async fn wait_processed(events: &mut WsClient, ids: &[String]) {
    let mut left: Vec<&String> = ids.iter().collect();
    while !left.is_empty() {
        let payload = events.next_payload("1").await;
        let event = &payload["data"]["sessionEvents"];
        if event["__typename"] != "PhotoProcessed" {
            continue;
        }
        assert_eq!(event["photo"]["processing"], "DONE", "{payload}");
        left.retain(|id| event["photo"]["id"] != id.as_str());
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
