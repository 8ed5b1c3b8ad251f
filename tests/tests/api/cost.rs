//! Hostile documents: every one is measured before validation and refused with
//! `GRAPHQL_VALIDATION_FAILED` naming the limit, quickly, with nothing run and nothing written,
//! while the server keeps answering everyone else.

use std::time::{Duration, Instant};

use photon_tests::ws::{Protocol, Received, WsClient};
use photon_tests::{GqlResponse, TestApp, fragment_bomb};
use serde_json::{Value, json};

/// The `extensions.limit` of every error.
fn limits(response: &GqlResponse) -> Vec<String> {
    response.body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["extensions"]["limit"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn post(app: &TestApp, accept: &str, token: Option<&str>, body: &Value) -> GqlResponse {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .header("accept", accept)
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    TestApp::read(request.send().await.unwrap()).await
}

#[tokio::test]
async fn the_fragment_bomb_is_refused_at_once_with_the_limit_named() {
    let app = TestApp::spawn().await;
    let bomb = json!({ "query": fragment_bomb(30) });
    assert!(bomb["query"].as_str().unwrap().len() < 1500);

    let started = Instant::now();
    let response = post(&app, "application/graphql-response+json", None, &bomb).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status, 400);
    assert_eq!(
        response.headers["content-type"],
        "application/graphql-response+json"
    );
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(limits(&response), ["fields"]);
    assert!(response.body.get("data").is_none());
    // Unrefused, this document keeps a core busy for minutes; refused, it is a round trip.
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");

    let legacy = post(&app, "application/json", None, &bomb).await;
    assert_eq!(legacy.status, 200);
    legacy.assert_code("GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn the_server_answers_others_while_bombs_are_being_refused() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let bomb = json!({ "query": fragment_bomb(30) });
    let bombs: Vec<_> = (0..6)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/graphql");
            let bomb = bomb.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    let response = client.post(&url).json(&bomb).send().await.unwrap();
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(
                        body["errors"][0]["extensions"]["code"],
                        "GRAPHQL_VALIDATION_FAILED"
                    );
                }
            })
        })
        .collect();
    let started = Instant::now();
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let me = app.gql_as(&ana, "{ me { email } }", json!({})).await;
    assert_eq!(me.ok()["me"]["email"], "ana@example.com");
    assert!(started.elapsed() < Duration::from_secs(2));
    for bomb in bombs {
        bomb.await.unwrap();
    }
}

#[tokio::test]
async fn alias_root_field_and_directive_bombs_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let before = app.snapshot().await;

    // 300 aliases of a look-up: the account-enumeration document (at 2,500, as it was tried,
    // it is over the token and size limits as well).
    let aliases: String = (0..300)
        .map(|i| format!("u{i}: findUserByEmail(email: \"u{i}@x.io\") {{ id }} "))
        .collect();
    let response = app
        .gql_as(&ana, &format!("{{ {aliases} }}"), json!({}))
        .await;
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(limits(&response), ["aliases"]);

    // Root fields through a fragment, each a mutation that would write.
    let roots: String = (0..40)
        .map(|i| format!("s{i}: createSession(input: {{ title: \"t{i}\" }}) {{ id }} "))
        .collect();
    let response = app
        .gql_as(
            &ana,
            &format!("mutation {{ ...M }} fragment M on Mutation {{ {roots} }}"),
            json!({}),
        )
        .await;
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(limits(&response), ["rootFields"]);
    let unaliased = "mutation { ".to_owned()
        + &"createSession(input: { title: \"t\" }) { id } ".repeat(31)
        + "}";
    let response = app.gql_as(&ana, &unaliased, json!({})).await;
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(limits(&response), ["rootFields"]);

    // The directive bomb of CVE-2024-47614.
    let directives = "@include(if: true) ".repeat(1000);
    let response = app
        .gql_as(&ana, &format!("{{ me {directives} {{ id }} }}"), json!({}))
        .await;
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(limits(&response), ["directives"]);

    // Deep nesting, refused before the parser recurses into it.
    let deep = format!("{}{}", "{ me ".repeat(5000), "}".repeat(5000));
    let response = app.gql_as(&ana, &deep, json!({})).await;
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(limits(&response), ["nesting"]);

    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_batch_shares_one_budget_and_is_refused_whole() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let before = app.snapshot().await;
    // Each operation alone is within the alias limit; together they are not.
    let aliases: String = (0..60).map(|i| format!("a{i}: __typename ")).collect();
    let cheap = json!({ "query": format!("{{ __schema {{ {aliases} }} }}") });
    let write = json!({ "query": "mutation { createSession(input: { title: \"x\" }) { id } }" });
    let alone = post(&app, "application/json", Some(&ana.token), &cheap).await;
    alone.ok();

    let batch = json!([write, cheap, cheap]);
    let response = post(&app, "application/json", Some(&ana.token), &batch).await;
    assert_eq!(response.status, 200);
    let items = response.body.as_array().expect("a batch answer");
    assert_eq!(items.len(), 3);
    for item in items {
        assert_eq!(
            item["errors"][0]["extensions"]["code"],
            "GRAPHQL_VALIDATION_FAILED"
        );
        assert_eq!(item["errors"][0]["extensions"]["limit"], "aliases");
    }
    assert_eq!(app.snapshot().await, before, "the batch's mutation ran");

    // Within budget, every operation runs, in order.
    let batch = json!([write, cheap]);
    let response = post(&app, "application/json", Some(&ana.token), &batch).await;
    let items = response.body.as_array().expect("a batch answer");
    assert!(items[0]["data"]["createSession"]["id"].is_string());
    assert_eq!(items[1]["data"]["__schema"]["a59"], "__Schema");
}

#[tokio::test]
async fn introspection_is_counted_like_any_other_selection() {
    let app = TestApp::spawn_with(&["--max-fields=100", "--max-root-fields=100"]).await;
    // 40 × 3 fields.
    let aliases: String = (0..40)
        .map(|i| format!("s{i}: __schema {{ queryType {{ name }} }} "))
        .collect();
    let response = app.gql_anon(&format!("{{ {aliases} }}"), json!({})).await;
    response.assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(limits(&response), ["fields"]);
    let small = app
        .gql_anon("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(small.ok()["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn bombs_over_either_websocket_protocol_are_refused_and_the_socket_stays_usable() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    for protocol in Protocol::BOTH {
        let mut client = WsClient::connect_as(&app, protocol, &ana.token).await;
        let started = Instant::now();
        client
            .subscribe("bomb", &fragment_bomb(30), json!({}))
            .await;
        match client.recv().await {
            Received::Message(m) => {
                assert_eq!(m["type"], "error", "{m}");
                assert_eq!(m["id"], "bomb");
                assert_eq!(
                    m["payload"][0]["extensions"]["code"],
                    "GRAPHQL_VALIDATION_FAILED"
                );
                assert_eq!(m["payload"][0]["extensions"]["limit"], "fields");
            }
            other => panic!("expected an error, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        let aliases: String = (0..200).map(|i| format!("a{i}: __typename ")).collect();
        client
            .subscribe("aliases", &format!("{{ {aliases} }}"), json!({}))
            .await;
        match client.recv().await {
            Received::Message(m) => {
                assert_eq!(m["type"], "error", "{m}");
                assert_eq!(m["payload"][0]["extensions"]["limit"], "aliases");
            }
            other => panic!("expected an error, got {other:?}"),
        }
        // The same socket still runs a query.
        client.subscribe("me", "{ me { email } }", json!({})).await;
        let payload = client.next_payload("me").await;
        assert_eq!(payload["data"]["me"]["email"], "ana@example.com");
        client.expect_complete("me").await;
        client.close().await;
    }
}
