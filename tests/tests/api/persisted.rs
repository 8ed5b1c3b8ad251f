//! Persisted queries as Apollo's link sends them: automatic persisted queries (miss, register,
//! hit by hash over POST, GET and WebSocket), the refusals, the cost check of persisted
//! documents, the bounded cache, and trusted documents with and without only-listed mode.

use photon::config::settings_from_args;
use photon_tests::photos::{photo_bytes, sha256_hex, upload};
use photon_tests::ws::{Protocol, Received, WsClient};
use photon_tests::{GqlResponse, JWT_SECRET, TestApp, create_session, join};
use serde_json::{Value, json};

const GRJ: &str = "application/graphql-response+json";
const ME: &str = "query Me { me { id email } }";
const NO_CACHE: &str = "private, no-cache, must-revalidate";

/// `extensions` naming `document` by its hash, as Apollo's link computes it.
fn by_hash(document: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex(document.as_bytes()) } })
}

async fn post(
    app: &TestApp,
    token: Option<&str>,
    accept: Option<&str>,
    body: &Value,
) -> GqlResponse {
    let mut request = app.client.post(app.url("/graphql")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    TestApp::read(request.send().await.unwrap()).await
}

/// A GET the way `useGETForHashedQueries` sends one: JSON-encoded parameters, no query.
async fn get(app: &TestApp, token: Option<&str>, params: &[(&str, String)]) -> GqlResponse {
    let mut request = app.client.get(app.url("/graphql")).query(params);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    TestApp::read(request.send().await.unwrap()).await
}

fn assert_not_found(response: &GqlResponse) {
    assert_eq!(response.status, 200, "{:?}", response.body);
    response.assert_code("PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(
        response.body["errors"][0]["message"],
        "PersistedQueryNotFound"
    );
    assert!(response.body.get("data").is_none(), "{:?}", response.body);
    // A CDN in front of GET must not keep the miss: the next request will succeed.
    assert_eq!(response.headers["cache-control"], NO_CACHE);
}

#[tokio::test]
async fn an_unknown_hash_is_asked_for_then_runs_by_hash_over_post_and_get() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let token = Some(ana.token.as_str());
    let hashed = json!({ "operationName": "Me", "extensions": by_hash(ME) });

    // Apollo's link retries on this answer whichever media type it asked for.
    for accept in [None, Some(GRJ)] {
        assert_not_found(&post(&app, token, accept, &hashed).await);
    }
    let params = [
        ("operationName", "Me".to_owned()),
        ("variables", "{}".to_owned()),
        ("extensions", by_hash(ME).to_string()),
    ];
    assert_not_found(&get(&app, token, &params).await);
    assert_eq!(app.state.persisted.cached(), 0);

    // The retry: hash and document. It runs, and is remembered.
    let retry = json!({ "query": ME, "operationName": "Me", "extensions": by_hash(ME) });
    let registered = post(&app, token, None, &retry).await;
    assert_eq!(registered.ok()["me"]["email"], "ana@example.com");
    assert_eq!(app.state.persisted.cached(), 1);

    for accept in [None, Some(GRJ)] {
        let hit = post(&app, token, accept, &hashed).await;
        assert_eq!(hit.status, 200);
        assert_eq!(hit.ok()["me"]["id"], ana.id);
        assert!(hit.headers.get("cache-control").is_none());
    }
    let hit = get(&app, token, &params).await;
    assert_eq!(hit.ok()["me"]["email"], "ana@example.com");

    // Variables travel with the hash, over GET as well.
    let friends = "query Friends($first: Int) { friends(first: $first) { edges { node { id } } } }";
    let first =
        json!({ "query": friends, "variables": { "first": 1 }, "extensions": by_hash(friends) });
    post(&app, token, None, &first).await.ok();
    let by_get = get(
        &app,
        token,
        &[
            ("operationName", "Friends".to_owned()),
            ("variables", json!({ "first": 0 }).to_string()),
            ("extensions", by_hash(friends).to_string()),
        ],
    )
    .await;
    assert_eq!(by_get.ok()["friends"]["edges"], json!([]));
    assert_eq!(app.state.persisted.cached(), 2);
}

#[tokio::test]
async fn a_persisted_mutation_is_still_refused_over_get() {
    let app = TestApp::spawn().await;
    let sign_in = "mutation SignIn($email: String!) { devSignIn(email: $email) { accessToken } }";
    let registered = post(
        &app,
        None,
        None,
        &json!({ "query": sign_in, "variables": { "email": "ana@example.com" }, "extensions": by_hash(sign_in) }),
    )
    .await;
    registered.ok();
    let before = app.snapshot().await;
    let response = app
        .client
        .get(app.url("/graphql"))
        .query(&[
            ("operationName", "SignIn".to_owned()),
            (
                "variables",
                json!({ "email": "eve@example.com" }).to_string(),
            ),
            ("extensions", by_hash(sign_in).to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    TestApp::read(response).await.assert_code("BAD_REQUEST");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_hash_that_is_not_the_documents_is_refused_and_files_nothing() {
    let app = TestApp::spawn().await;
    let document = "{ authProviders { name } }";
    // Someone tries to file their document under the hash of another.
    let claimed = by_hash("{ __typename }");
    let body = json!({ "query": document, "extensions": claimed });
    let json_answer = post(&app, None, None, &body).await;
    assert_eq!(json_answer.status, 200);
    json_answer.assert_code("BAD_USER_INPUT");
    assert_eq!(
        json_answer.body["errors"][0]["message"],
        "provided sha does not match query"
    );
    assert!(json_answer.body.get("data").is_none());
    let new_type = post(&app, None, Some(GRJ), &body).await;
    assert_eq!(new_type.status, 400);
    new_type.assert_code("BAD_USER_INPUT");

    assert_eq!(app.state.persisted.cached(), 0);
    assert_not_found(&post(&app, None, None, &json!({ "extensions": claimed })).await);
}

#[tokio::test]
async fn other_versions_and_malformed_hashes_are_refused() {
    let app = TestApp::spawn().await;
    let hash = sha256_hex(b"{ __typename }");
    for (extension, code) in [
        (json!({ "version": 2, "sha256Hash": hash }), "BAD_REQUEST"),
        (json!({ "sha256Hash": hash }), "BAD_REQUEST"),
        (json!({ "version": 1, "sha256Hash": "abc" }), "BAD_REQUEST"),
        (json!({ "version": 1 }), "BAD_REQUEST"),
        (json!("yes"), "BAD_REQUEST"),
    ] {
        let body =
            json!({ "query": "{ __typename }", "extensions": { "persistedQuery": extension } });
        let response = post(&app, None, Some(GRJ), &body).await;
        assert_eq!(response.status, 400, "{extension}: {:?}", response.body);
        response.assert_code(code);
        assert!(response.body.get("data").is_none());
    }
    let version = post(
        &app,
        None,
        None,
        &json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } }),
    )
    .await;
    assert_eq!(version.status, 200);
    assert!(
        version.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("version"),
        "{:?}",
        version.body
    );
    // Neither a query nor a hash: not a request.
    let empty = post(&app, None, None, &json!({ "extensions": {} })).await;
    assert_eq!(empty.status, 400);
    empty.assert_code("BAD_REQUEST");
}

fn limit_of(response: &Value) -> &str {
    response["errors"][0]["extensions"]["limit"]
        .as_str()
        .unwrap_or("<none>")
}

#[tokio::test]
async fn persisted_documents_pass_the_cost_limits_before_being_stored_and_every_time_they_run() {
    let app = TestApp::spawn_with(&["--max-aliases=2"]).await;
    let three = "{ a: __typename b: __typename c: __typename }";
    let refused = post(
        &app,
        None,
        None,
        &json!({ "query": three, "extensions": by_hash(three) }),
    )
    .await;
    refused.assert_code("GRAPHQL_VALIDATION_FAILED");
    assert_eq!(limit_of(&refused.body), "aliases");
    assert_eq!(app.state.persisted.cached(), 0);
    assert_not_found(&post(&app, None, None, &json!({ "extensions": by_hash(three) })).await);

    // Two aliases pass alone, but a batch of the same document by hash shares one budget.
    let two = "{ a: __typename b: __typename }";
    post(
        &app,
        None,
        None,
        &json!({ "query": two, "extensions": by_hash(two) }),
    )
    .await
    .ok();
    assert_eq!(app.state.persisted.cached(), 1);
    let batch = json!([{ "extensions": by_hash(two) }, { "extensions": by_hash(two) }]);
    let response = post(&app, None, None, &batch).await;
    let answers = response.body.as_array().unwrap();
    assert_eq!(answers.len(), 2);
    for answer in answers {
        assert_eq!(
            answer["errors"][0]["extensions"]["code"],
            "GRAPHQL_VALIDATION_FAILED"
        );
        assert_eq!(limit_of(answer), "aliases");
    }
}

#[tokio::test]
async fn the_cache_forgets_the_least_recently_used_document_at_its_bound() {
    let app = TestApp::spawn_with(&["--persisted-query-cache-entries=2"]).await;
    let [a, b, c] = [
        "{ a: __typename }",
        "{ b: __typename }",
        "{ c: __typename }",
    ];
    let register = |document: &'static str| {
        let app = &app;
        async move {
            let body = json!({ "query": document, "extensions": by_hash(document) });
            post(app, None, None, &body).await.ok();
        }
    };
    let by_hash_alone = |document: &'static str| {
        let app = &app;
        async move { post(app, None, None, &json!({ "extensions": by_hash(document) })).await }
    };
    register(a).await;
    register(b).await;
    // Using `a` again makes `b` the least recently used.
    assert_eq!(by_hash_alone(a).await.ok()["a"], "Query");
    register(c).await;
    assert_eq!(app.state.persisted.cached(), 2);
    assert_not_found(&by_hash_alone(b).await);
    assert_eq!(by_hash_alone(a).await.ok()["a"], "Query");
    assert_eq!(by_hash_alone(c).await.ok()["c"], "Query");
}

#[tokio::test]
async fn each_operation_of_a_batch_is_resolved_on_its_own() {
    let app = TestApp::spawn().await;
    let known = "{ known: __typename }";
    post(
        &app,
        None,
        None,
        &json!({ "query": known, "extensions": by_hash(known) }),
    )
    .await
    .ok();
    let batch = json!([
        { "extensions": by_hash("{ unknown: __typename }") },
        { "query": "{ plain: __typename }" },
        { "extensions": by_hash(known) },
    ]);
    for accept in [None, Some(GRJ)] {
        let response = post(&app, None, accept, &batch).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.headers["cache-control"], NO_CACHE);
        let answers = response.body.as_array().unwrap();
        assert_eq!(
            answers[0]["errors"][0]["extensions"]["code"],
            "PERSISTED_QUERY_NOT_FOUND"
        );
        assert!(answers[0].get("data").is_none());
        assert_eq!(answers[1], json!({ "data": { "plain": "Query" } }));
        assert_eq!(answers[2], json!({ "data": { "known": "Query" } }));
    }
}

/// Starts operation `id` with a whole payload (document, hash, or both).
async fn start(client: &mut WsClient, id: &str, payload: Value) {
    let kind = match client.protocol {
        Protocol::Transport => "subscribe",
        Protocol::Legacy => "start",
    };
    client
        .send(json!({ "type": kind, "id": id, "payload": payload }))
        .await;
}

/// The code of the `error` message refusing operation `id`.
async fn refusal_code(client: &mut WsClient, id: &str) -> String {
    match client.recv().await {
        Received::Message(m) if m["type"] == "error" && m["id"] == id => {
            m["payload"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("<no code>")
                .to_owned()
        }
        other => panic!("expected an error for {id}, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_operations_are_resolved_by_hash_in_both_protocols() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    // Registered over HTTP, run by hash over the socket: one cache per replica.
    let over_http = "{ me { email } }";
    post(
        &app,
        Some(&ana.token),
        None,
        &json!({ "query": over_http, "extensions": by_hash(over_http) }),
    )
    .await
    .ok();
    for protocol in Protocol::BOTH {
        let mut client = WsClient::connect_as(&app, protocol, &ana.token).await;
        // A document of this protocol's own, so each starts with a miss.
        let document = format!(
            "{{ me {{ id }} {}: __typename }}",
            protocol.name().replace('-', "_")
        );
        start(
            &mut client,
            "miss",
            json!({ "extensions": by_hash(&document) }),
        )
        .await;
        assert_eq!(
            refusal_code(&mut client, "miss").await,
            "PERSISTED_QUERY_NOT_FOUND"
        );

        start(
            &mut client,
            "register",
            json!({ "query": document, "extensions": by_hash(&document) }),
        )
        .await;
        let payload = client.next_payload("register").await;
        assert_eq!(payload["data"]["me"]["id"], ana.id);
        client.expect_complete("register").await;

        start(
            &mut client,
            "hit",
            json!({ "extensions": by_hash(&document) }),
        )
        .await;
        assert_eq!(client.next_payload("hit").await["data"]["me"]["id"], ana.id);
        client.expect_complete("hit").await;

        start(
            &mut client,
            "http",
            json!({ "extensions": by_hash(over_http) }),
        )
        .await;
        assert_eq!(
            client.next_payload("http").await["data"]["me"]["email"],
            "ana@example.com"
        );
        client.expect_complete("http").await;

        start(
            &mut client,
            "mismatch",
            json!({ "query": "{ __typename }", "extensions": by_hash(over_http) }),
        )
        .await;
        assert_eq!(
            refusal_code(&mut client, "mismatch").await,
            "BAD_USER_INPUT"
        );
        client.close().await;
    }
    assert_eq!(app.state.persisted.cached(), 3);
}

const LISTED_QUERY: &str = "query Me { me { id email } }";
const LISTED_SUBSCRIPTION: &str =
    "subscription Photos($s: ID!) { photoAdded(sessionId: $s) { photo { id } } }";

/// A manifest as `@apollo/generate-persisted-query-manifest` writes it, in a directory that
/// lives as long as the returned guard.
fn write_manifest(operations: &[(&str, &str, &str)]) -> (tempfile::TempDir, String) {
    let operations: Vec<Value> = operations
        .iter()
        .map(|(name, kind, body)| {
            json!({ "id": sha256_hex(body.as_bytes()), "name": name, "type": kind, "body": body })
        })
        .collect();
    let manifest = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": operations,
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persisted-query-manifest.json");
    std::fs::write(&path, manifest.to_string()).unwrap();
    (dir, path.display().to_string())
}

fn manifest_flag(path: &str) -> String {
    format!("--persisted-documents={path}")
}

#[tokio::test]
async fn listed_operations_run_by_hash_without_registration() {
    let (_dir, path) = write_manifest(&[
        ("Me", "query", LISTED_QUERY),
        ("Photos", "subscription", LISTED_SUBSCRIPTION),
    ]);
    let flag = manifest_flag(&path);
    let app = TestApp::spawn_with(&[&flag]).await;
    let ana = app.sign_in("ana@example.com").await;
    let token = Some(ana.token.as_str());
    let hashed = json!({ "extensions": by_hash(LISTED_QUERY) });
    assert_eq!(
        post(&app, token, None, &hashed).await.ok()["me"]["id"],
        ana.id
    );
    let params = [("extensions", by_hash(LISTED_QUERY).to_string())];
    assert_eq!(get(&app, token, &params).await.ok()["me"]["id"], ana.id);
    // Listed documents are not APQ entries, so no client can push them out.
    assert_eq!(app.state.persisted.cached(), 0);
    // Anything else still works as usual, APQ included.
    let other = "{ other: __typename }";
    assert_not_found(&post(&app, None, None, &json!({ "extensions": by_hash(other) })).await);
    post(
        &app,
        None,
        None,
        &json!({ "query": other, "extensions": by_hash(other) }),
    )
    .await
    .ok();
    assert_eq!(app.state.persisted.cached(), 1);

    // A listed subscription by hash over the socket, one member on each protocol.
    let bob = app.sign_in("bob@example.com").await;
    let (session_id, code) = create_session(&app, &ana, "Beach").await;
    join(&app, &bob, &code).await.ok();
    let mut clients = Vec::new();
    for (protocol, user) in Protocol::BOTH.into_iter().zip([&ana, &bob]) {
        let mut client = WsClient::connect_as(&app, protocol, &user.token).await;
        start(
            &mut client,
            "p",
            json!({ "variables": { "s": session_id }, "extensions": by_hash(LISTED_SUBSCRIPTION) }),
        )
        .await;
        clients.push(client);
    }
    app.wait_online(2).await;
    let photo = upload(&app, &ana, &session_id, &photo_bytes(7, 64)).await;
    for mut client in clients {
        let event = client.next_payload("p").await;
        assert_eq!(
            event["data"]["photoAdded"]["photo"]["id"], photo,
            "{:?}",
            client.protocol
        );
        client.close().await;
    }
}

#[tokio::test]
async fn only_listed_mode_refuses_everything_else_over_http_and_websocket() {
    let (_dir, path) = write_manifest(&[("Me", "query", LISTED_QUERY)]);
    let flag = manifest_flag(&path);
    let app = TestApp::spawn_with(&[&flag, "--persisted-documents-only=true"]).await;
    // devSignIn is not listed either: sign in with a token the server's key signs.
    let ana = minted_token(&app, "ana@example.com").await;
    let token = Some(ana.as_str());

    let listed = post(
        &app,
        token,
        None,
        &json!({ "extensions": by_hash(LISTED_QUERY) }),
    )
    .await;
    assert_eq!(listed.ok()["me"]["email"], "ana@example.com");
    // A client without the persisted query link may send the listed text itself.
    let as_text = post(&app, token, None, &json!({ "query": LISTED_QUERY })).await;
    assert_eq!(as_text.ok()["me"]["email"], "ana@example.com");

    let unlisted = "{ me { email } }";
    for body in [
        json!({ "query": unlisted }),
        json!({ "extensions": by_hash(unlisted) }),
        json!({ "query": unlisted, "extensions": by_hash(unlisted) }),
    ] {
        let response = post(&app, token, None, &body).await;
        assert_eq!(response.status, 200);
        response.assert_code("PERSISTED_QUERY_NOT_LISTED");
        assert!(response.body.get("data").is_none());
        let response = post(&app, token, Some(GRJ), &body).await;
        assert_eq!(response.status, 400);
        response.assert_code("PERSISTED_QUERY_NOT_LISTED");
    }
    // Registration is refused too: nothing was stored.
    assert_eq!(app.state.persisted.cached(), 0);
    let introspection = get(
        &app,
        None,
        &[("query", "{ __schema { types { name } } }".to_owned())],
    )
    .await;
    introspection.assert_code("PERSISTED_QUERY_NOT_LISTED");

    for protocol in Protocol::BOTH {
        let mut client = WsClient::connect_as(&app, protocol, &ana).await;
        start(&mut client, "text", json!({ "query": unlisted })).await;
        assert_eq!(
            refusal_code(&mut client, "text").await,
            "PERSISTED_QUERY_NOT_LISTED"
        );
        start(
            &mut client,
            "register",
            json!({ "query": unlisted, "extensions": by_hash(unlisted) }),
        )
        .await;
        assert_eq!(
            refusal_code(&mut client, "register").await,
            "PERSISTED_QUERY_NOT_LISTED"
        );
        start(
            &mut client,
            "listed",
            json!({ "extensions": by_hash(LISTED_QUERY) }),
        )
        .await;
        let payload = client.next_payload("listed").await;
        assert_eq!(payload["data"]["me"]["email"], "ana@example.com");
        client.expect_complete("listed").await;
        client.close().await;
    }
    assert_eq!(app.state.persisted.cached(), 0);
}

/// An access token for a fresh user, made without any GraphQL operation (only-listed mode
/// refuses `devSignIn`), the way `photon token` does.
async fn minted_token(app: &TestApp, email: &str) -> String {
    photon::service::sign_in::mint_token(&app.state.db, &app.state.tokens, email)
        .await
        .map_err(|e| e.client_message())
        .unwrap()
}

fn resolve(extra: &[&str]) -> anyhow::Result<photon::config::Config> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "photon".to_owned(),
        format!("--data-dir={}", dir.path().display()),
        format!(
            "--database-url=sqlite://{}/p.db?mode=rwc",
            dir.path().display()
        ),
        format!("--jwt-secret={JWT_SECRET}"),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    settings_from_args(args).unwrap().resolve()
}

#[tokio::test]
async fn a_bad_manifest_stops_the_start_with_a_clear_message() {
    let error_of = |extra: &[&str]| format!("{:#}", resolve(extra).unwrap_err());

    let (_dir, path) = write_manifest(&[("Me", "query", LISTED_QUERY)]);
    let mut text: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    text["operations"][0]["id"] = sha256_hex(b"something else").into();
    std::fs::write(&path, text.to_string()).unwrap();
    let error = error_of(&[&manifest_flag(&path)]);
    assert!(error.contains("PHOTON_PERSISTED_DOCUMENTS"), "{error}");
    assert!(error.contains(&path), "{error}");
    assert!(
        error.contains("operation #0 (\"Me\")") && error.contains("not the SHA-256 of its body"),
        "{error}"
    );

    let (_dir2, path) = write_manifest(&[("Me", "query", "query Me { me { id }")]);
    let error = error_of(&[&manifest_flag(&path)]);
    assert!(error.contains("does not parse"), "{error}");

    std::fs::write(&path, "not json").unwrap();
    let error = error_of(&[&manifest_flag(&path)]);
    assert!(error.contains("not a persisted query manifest"), "{error}");

    let error = error_of(&["--persisted-documents=/nonexistent/manifest.json"]);
    assert!(
        error.contains("/nonexistent/manifest.json") && error.contains("cannot read"),
        "{error}"
    );

    let error = error_of(&["--persisted-documents-only=true"]);
    assert!(error.contains("PHOTON_PERSISTED_DOCUMENTS_ONLY"), "{error}");

    let (_dir3, path) = write_manifest(&[("Me", "query", LISTED_QUERY)]);
    assert!(resolve(&[&manifest_flag(&path), "--persisted-documents-only=true"]).is_ok());
}

/// `photon_persisted_queries_total{outcome}` as the metrics listener shows it.
fn outcome_count(scrape: &str, outcome: &str) -> f64 {
    let prefix = format!("photon_persisted_queries_total{{outcome=\"{outcome}\"}} ");
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn lookups_are_counted_by_outcome() {
    let app = TestApp::spawn_with(&["--metrics-bind=127.0.0.1:0"]).await;
    let before = app.scrape().await;
    let document = "{ counted: __typename }";
    assert_not_found(
        &post(
            &app,
            None,
            None,
            &json!({ "extensions": by_hash(document) }),
        )
        .await,
    );
    post(
        &app,
        None,
        None,
        &json!({ "query": document, "extensions": by_hash(document) }),
    )
    .await
    .ok();
    post(
        &app,
        None,
        None,
        &json!({ "extensions": by_hash(document) }),
    )
    .await
    .ok();
    let mismatch = json!({ "query": "{ __typename }", "extensions": by_hash(document) });
    post(&app, None, None, &mismatch)
        .await
        .assert_code("BAD_USER_INPUT");
    let after = app.scrape().await;
    // The recorder is the process's, shared with tests running alongside: at least ours.
    for outcome in ["miss", "registered", "hit", "refused"] {
        let grew = outcome_count(&after, outcome) - outcome_count(&before, outcome);
        assert!(grew >= 1.0, "{outcome} grew by {grew}:\n{after}");
    }
    assert!(
        after.contains("photon_persisted_query_cache_entries"),
        "{after}"
    );
}
