//! Session archives: the server's memory and throughput while it streams the ZIP of a whole
//! session. A `photon` process of its own (so its resident set is the server's alone) on the
//! embedded default (SQLite and the local store, or `PHOTON_TEST_BACKEND=postgres` and
//! `PHOTON_TEST_STORAGE=s3` as the tests use them); a session of N photos and one of N/10,
//! uploaded through the API; each archive downloaded once by a client that reads and
//! discards it.
//!
//! ```sh
//! cargo bench -p photon-tests --bench archive
//! PHOTON_BENCH_N=500 PHOTON_BENCH_PHOTO_KIB=2048 cargo bench -p photon-tests --bench archive
//! ```
//!
//! Printed per archive: its size, the time from the request to the last byte, MiB/s, the
//! server's CPU time, and the growth of its peak resident set (`VmHWM`, reset through
//! `/proc/<pid>/clear_refs` just before the download) over what it held before. Flat memory
//! means the two archives' growth is about the same although one is ten times the other.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use photon_tests::bench::{cpu_time, env_usize};
use photon_tests::photos::{complete, nth_photo_bytes, stage};
use photon_tests::process::Process;
use photon_tests::{Backend, Client, JWT_SECRET, TestUser, create_session};
use serde_json::json;

const ARCHIVE: &str =
    "mutation($s: ID!) { requestSessionArchive(sessionId: $s) { url photoCount byteSize } }";
/// Uploads at once while the sessions fill.
const UPLOADERS: usize = 8;

#[tokio::main]
async fn main() {
    let n = env_usize("PHOTON_BENCH_N", 2000).max(10);
    let kib = env_usize("PHOTON_BENCH_PHOTO_KIB", 512).max(1);
    let data_dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--bind=127.0.0.1:0".to_owned(),
        format!("--data-dir={}", data_dir.path().display()),
        format!("--jwt-secret={JWT_SECRET}"),
        "--log-format=json".to_owned(),
        "--dev-sign-in=true".to_owned(),
        "--rate-limits=false".to_owned(),
        "--processing-concurrency=0".to_owned(),
        // One uploader fills both sessions (a session holds 2,000 photos by default).
        "--user-max-photos=100000".to_owned(),
        "--user-max-bytes=1099511627776".to_owned(),
    ];
    let backend = Backend::from_env();
    if backend == Backend::Postgres {
        args.push(format!(
            "--database-url={}",
            photon_tests::create_postgres_database().await
        ));
    }
    args.extend(photon_tests::s3_args());
    let server = Process::start(&args).await;
    let pid = server.child.id();
    let api = Client::new(&format!("http://{}", server.address().await));
    let ana = api.sign_in("ana@example.com").await;

    let small = fill(&api, &ana, "Small", n / 10, kib).await;
    let large = fill(&api, &ana, "Beach day", n, kib).await;
    let storage = std::env::var("PHOTON_TEST_STORAGE").unwrap_or_else(|_| "local".into());
    println!(
        "archive: photos of {kib} KiB, server process on {backend:?} with the {storage} store"
    );
    for (session, photos) in [(small, n / 10), (large, n)] {
        download(&api, &ana, &session, photos, pid).await;
    }
}

/// A session of `count` photos of `kib` KiB, uploaded as a phone does.
async fn fill(api: &Client, owner: &TestUser, title: &str, count: usize, kib: usize) -> String {
    let (session, _) = create_session(api, owner, title).await;
    let started = Instant::now();
    let offset = if title == "Small" { 1_000_000 } else { 0 };
    futures_util::stream::iter(0..count)
        .map(|i| {
            let session = session.clone();
            async move {
                let bytes = nth_photo_bytes(offset + i, kib * 1024);
                let id = stage(api, owner, &session, bytes).await;
                complete(api, owner, &id).await;
            }
        })
        .buffer_unordered(UPLOADERS)
        .collect::<Vec<()>>()
        .await;
    eprintln!(
        "  uploaded {count} photos to {title:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    session
}

async fn download(api: &Client, owner: &TestUser, session: &str, photos: usize, pid: u32) {
    // Let the uploads' buffers settle before measuring what the server holds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = status_kib(pid, "VmRSS");
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let offer = api
        .as_user(owner)
        .gql(ARCHIVE, json!({ "s": session }))
        .await;
    let offer = &offer.ok()["requestSessionArchive"];
    assert_eq!(offer["photoCount"].as_u64(), Some(photos as u64));
    let asked = started.elapsed();
    let mut response = api
        .http()
        .get(offer["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len() as u64;
    }
    let elapsed = started.elapsed();
    assert_eq!(Some(received), offer["byteSize"].as_u64());
    let peak = status_kib(pid, "VmHWM");
    let cpu = cpu_time(pid) - cpu_before;
    let mib = received as f64 / (1024.0 * 1024.0);
    println!(
        "  {photos} photos, {mib:.0} MiB: {:.2} s ({:.0} ms to the link), {:.0} MiB/s, server CPU {:.2} s, peak resident {:.1} MiB over the {:.1} MiB before",
        elapsed.as_secs_f64(),
        asked.as_secs_f64() * 1000.0,
        mib / elapsed.as_secs_f64(),
        cpu.as_secs_f64(),
        peak.saturating_sub(before) as f64 / 1024.0,
        before as f64 / 1024.0,
    );
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
