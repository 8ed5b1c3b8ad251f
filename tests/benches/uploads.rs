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
use photon_tests::TestApp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PHOTO_BYTES: usize = 1024 * 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Client {
    http: reqwest::Client,
    graphql: String,
    token: String,
}

impl Client {
    async fn gql(&self, query: &str, variables: Value) -> Value {
        let response: Value = self
            .http
            .post(&self.graphql)
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(response.get("errors").is_none(), "{response}");
        response["data"].clone()
    }

    /// One whole upload; returns how long it took.
    async fn upload(&self, session_id: &str, bytes: Vec<u8>) -> Duration {
        let started = Instant::now();
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let slot = self
            .gql(
                "mutation($input: RequestPhotoUploadInput!) { requestPhotoUpload(input: $input) { photo { id } uploadUrl uploadHeaders { name value } } }",
                json!({ "input": { "sessionId": session_id, "sha256": sha, "contentType": "image/jpeg", "byteSize": bytes.len() } }),
            )
            .await["requestPhotoUpload"]
            .clone();
        let mut put = self
            .http
            .put(slot["uploadUrl"].as_str().unwrap())
            .body(bytes);
        for header in slot["uploadHeaders"].as_array().unwrap() {
            put = put.header(
                header["name"].as_str().unwrap(),
                header["value"].as_str().unwrap(),
            );
        }
        let status = put.send().await.unwrap().status();
        assert!(status.is_success(), "upload refused: {status}");
        self.gql(
            "mutation($id: ID!) { completePhotoUpload(photoId: $id) { status } }",
            json!({ "id": slot["photo"]["id"] }),
        )
        .await;
        started.elapsed()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let n = env_usize("PHOTON_BENCH_N", 200);
    let k = env_usize("PHOTON_BENCH_K", 8).max(1);
    let (_app, base) = match std::env::var("PHOTON_BENCH_URL") {
        Ok(url) => (None, url.trim_end_matches('/').to_owned()),
        Err(_) => {
            let app = TestApp::spawn().await;
            let base = app.base_url.clone();
            (Some(app), base)
        }
    };
    let http = reqwest::Client::new();
    let graphql = format!("{base}/graphql");

    // K users, each a member of one session.
    let mut clients = Vec::new();
    for i in 0..k {
        let signed_in: Value = http
            .post(&graphql)
            .json(&json!({ "query": "mutation($e: String!) { devSignIn(email: $e) { accessToken } }", "variables": { "e": format!("bench{i}-{}@example.com", uuid::Uuid::new_v4().simple()) } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = signed_in["data"]["devSignIn"]["accessToken"]
            .as_str()
            .expect("dev sign-in")
            .to_owned();
        clients.push(Client {
            http: http.clone(),
            graphql: graphql.clone(),
            token,
        });
    }
    let session = clients[0]
        .gql(
            "mutation { createSession(input: { title: \"bench\" }) { id inviteCode } }",
            json!({}),
        )
        .await["createSession"]
        .clone();
    for client in &clients[1..] {
        client
            .gql(
                "mutation($c: String!) { joinSession(inviteCode: $c) { id } }",
                json!({ "c": session["inviteCode"] }),
            )
            .await;
    }
    let session_id = session["id"].as_str().unwrap().to_owned();

    // Distinct bytes per photo (the same bytes would be one photo); made before the clock.
    let photos: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let seed = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (0..PHOTO_BYTES)
                .map(|j| (seed.rotate_left((j % 64) as u32) as u8) ^ (j as u8))
                .collect()
        })
        .collect();
    let mut queues: Vec<Vec<Vec<u8>>> = vec![Vec::new(); k];
    for (i, photo) in photos.into_iter().enumerate() {
        queues[i % k].push(photo);
    }

    let started = Instant::now();
    let per_client = join_all(clients.iter().zip(queues).map(|(client, queue)| {
        let session_id = session_id.clone();
        async move {
            let mut latencies = Vec::with_capacity(queue.len());
            for bytes in queue {
                latencies.push(client.upload(&session_id, bytes).await);
            }
            latencies
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let mut latencies: Vec<Duration> = per_client.into_iter().flatten().collect();
    latencies.sort();

    let backend = std::env::var("PHOTON_TEST_BACKEND").unwrap_or_else(|_| "postgres".into());
    let storage = std::env::var("PHOTON_TEST_STORAGE").unwrap_or_else(|_| "local".into());
    let target = if _app.is_some() {
        format!("in-process server ({backend}, {storage} store)")
    } else {
        base
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
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}
