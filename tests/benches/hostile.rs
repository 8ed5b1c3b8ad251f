//! Hostile documents: how long the server takes to refuse each kind of bomb, measured from a
//! client as a round trip, and how `/healthz` and a small query answer while several clients
//! send bombs without pause. Prints p50/p99/max per document.
//!
//! ```sh
//! cargo bench -p photon-tests --bench hostile                       # in-process server
//! PHOTON_BENCH_N=1000 cargo bench -p photon-tests --bench hostile
//! PHOTON_BENCH_URL=http://127.0.0.1:8080 cargo bench -p photon-tests --bench hostile
//! ```
//!
//! Without `PHOTON_BENCH_URL` it starts a server in-process exactly as the tests do
//! (`PHOTON_TEST_BACKEND` chooses the database).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use photon_tests::bench::{env_usize, report};
use photon_tests::{Client, TestApp, fragment_bomb};
use serde_json::json;

async fn refuse(api: &Client, query: &str) -> Duration {
    let started = Instant::now();
    let response = api.gql(query, json!({})).await;
    let elapsed = started.elapsed();
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    elapsed
}

#[tokio::main]
async fn main() {
    let n = env_usize("PHOTON_BENCH_N", 300);
    let app;
    let api = match std::env::var("PHOTON_BENCH_URL") {
        Ok(url) => Client::new(&url),
        Err(_) => {
            app = TestApp::spawn().await;
            app.api.clone()
        }
    };
    let aliases: String = (0..2500)
        .map(|i| format!("u{i}: findUserByEmail(email: \"u{i}@example.com\") {{ id }} "))
        .collect();
    let documents = [
        ("fragment bomb F24", fragment_bomb(24)),
        ("fragment bomb F30", fragment_bomb(30)),
        ("2,500 aliases", format!("{{ {aliases} }}")),
        (
            "1,000 directives",
            format!("{{ __typename {} }}", "@include(if: true) ".repeat(1000)),
        ),
        (
            "nesting 5,000",
            format!("{}{}", "{ a ".repeat(5000), "}".repeat(5000)),
        ),
    ];
    println!("refusals, one client, {n} requests each (round trip from the client):");
    for (label, document) in &documents {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            times.push(refuse(&api, document).await);
        }
        report(label, times);
    }

    // Four clients send F30 bombs back to back while a fifth asks for /healthz and a query.
    let bomb = fragment_bomb(30);
    let until = Instant::now() + Duration::from_secs(3);
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (api, bomb) = (api.clone(), bomb.clone());
            tokio::spawn(async move {
                let mut sent = 0usize;
                while Instant::now() < until {
                    refuse(&api, &bomb).await;
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let (mut health, mut query) = (Vec::new(), Vec::new());
    while Instant::now() < until {
        let started = Instant::now();
        let status = api
            .http()
            .get(api.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
        health.push(started.elapsed());
        let started = Instant::now();
        let response = api.gql("{ __typename }", json!({})).await;
        assert_eq!(response.ok()["__typename"], "Query");
        query.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut refused = 0;
    for sender in senders {
        refused += sender.await.unwrap();
    }
    println!(
        "while 4 clients sent F30 bombs ({:.0} refusals/s):",
        refused as f64 / 3.0
    );
    report("/healthz", health);
    report("{ __typename }", query);
}
