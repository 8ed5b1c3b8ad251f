//! Upload throughput: N photos of 1 MiB each, uploaded by K concurrent clients the way the
//! app does it (requestPhotoUpload, PUT to the presigned URL, completePhotoUpload). Prints
//! photos per second and the p50/p99/max latency of one whole upload.
//!
//! ```sh
//! cargo bench -p photon-tests --bench uploads                      # in-process server
//! PHOTON_BENCH_N=400 PHOTON_BENCH_K=16 cargo bench -p photon-tests --bench uploads
//! PHOTON_BENCH_URL=http://127.0.0.1:8080 cargo bench -p photon-tests --bench uploads
//! ```
//!
//! Without `PHOTON_BENCH_URL` it starts a server in-process exactly as the tests do
//! (`PHOTON_TEST_BACKEND`, `PHOTON_TEST_STORAGE` choose database and store). A server given
//! by URL must have dev sign-in enabled.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use photon_tests::bench::{Figures, env_usize};
use photon_tests::photos::{complete, nth_photo_bytes, stage};
use photon_tests::{Client, TestApp, create_session, join};

const PHOTO_BYTES: usize = 1024 * 1024;

#[tokio::main]
async fn main() {
    let n = env_usize("PHOTON_BENCH_N", 200);
    let k = env_usize("PHOTON_BENCH_K", 8).max(1);
    let (app, api) = match std::env::var("PHOTON_BENCH_URL") {
        Ok(url) => (None, Client::new(&url)),
        Err(_) => {
            let app = TestApp::spawn().await;
            let api = app.api.clone();
            (Some(app), api)
        }
    };

    // K users, each a member of one session.
    let mut users = Vec::new();
    for i in 0..k {
        let email = format!("bench{i}-{}@example.com", uuid::Uuid::new_v4().simple());
        users.push(api.sign_in(&email).await);
    }
    let (session_id, code) = create_session(&api, &users[0], "bench").await;
    for user in &users[1..] {
        join(&api, user, &code).await.ok();
    }

    // Distinct bytes per photo (the same bytes would be one photo); made before the clock.
    let mut queues: Vec<Vec<Vec<u8>>> = vec![Vec::new(); k];
    for i in 0..n {
        queues[i % k].push(nth_photo_bytes(i, PHOTO_BYTES));
    }

    let started = Instant::now();
    let per_client = join_all(users.iter().zip(queues).map(|(user, queue)| {
        let (api, session_id) = (&api, &session_id);
        async move {
            let mut latencies = Vec::with_capacity(queue.len());
            for bytes in queue {
                // One whole upload: slot, PUT, completion.
                let started = Instant::now();
                let photo_id = stage(api, user, session_id, bytes).await;
                complete(api, user, &photo_id).await;
                latencies.push(started.elapsed());
            }
            latencies
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let latencies: Vec<Duration> = per_client.into_iter().flatten().collect();
    let figures = Figures::of(latencies);

    let backend = std::env::var("PHOTON_TEST_BACKEND").unwrap_or_else(|_| "postgres".into());
    let storage = std::env::var("PHOTON_TEST_STORAGE").unwrap_or_else(|_| "local".into());
    let target = if app.is_some() {
        format!("in-process server ({backend}, {storage} store)")
    } else {
        api.base_url().to_owned()
    };
    println!("uploads: {n} photos of 1 MiB, {k} concurrent clients, against {target}");
    println!(
        "  total {:.2} s, {:.1} photos/s, {:.1} MiB/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  request + PUT + complete latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        figures.p50, figures.p99, figures.max,
    );
}
