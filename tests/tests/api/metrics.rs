//! Prometheus metrics on a listener of their own, and the spans of a request in the logs.
//!
//! The recorder is one per process, shared by every test server running in parallel, so
//! these tests assert on operation names unique to the test, or on how much a series grew
//! (other tests can only add to it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon::telemetry;
use photon_tests::ws::{Protocol, WsClient};
use photon_tests::{Backend, TestApp, create_session, join};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;

const METRICS: &str = "--metrics-bind=127.0.0.1:0";

/// A name no other test uses, valid as a GraphQL name.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// One sample of the text format: `name{label="value",…} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A parsed scrape.
struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let text = app.scrape().await;
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("unparsable line {line:?}")))
            .collect();
        Self { text, samples }
    }

    /// The samples of `name` whose labels include every pair of `labels`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
    }

    /// The sum of those samples (0 when there are none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn assert_typed(&self, name: &str, kind: &str) {
        assert!(
            self.text.contains(&format!("# TYPE {name} {kind}\n")),
            "no `# TYPE {name} {kind}` in:\n{}",
            self.text
        );
        assert!(
            self.text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Some(Sample {
            name: series.to_owned(),
            labels: Vec::new(),
            value,
        });
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[test]
fn the_parser_reads_labels_with_escapes() {
    let sample = parse_sample(r#"a_total{route="/join/{code}",x="q\"uote\\"} 3"#).unwrap();
    assert_eq!(sample.name, "a_total");
    assert_eq!(
        sample.labels,
        [
            ("route".to_owned(), "/join/{code}".to_owned()),
            ("x".to_owned(), "q\"uote\\".to_owned())
        ]
    );
    assert_eq!(sample.value, 3.0);
    assert_eq!(parse_sample("b 1.5").unwrap().value, 1.5);
}

async fn post_raw(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    TestApp::read(response).await.body
}

#[tokio::test]
async fn a_short_load_moves_the_series_it_should() {
    let app = TestApp::spawn_with(&[
        METRICS,
        "--rate-limits=true",
        "--rate-find-user-per-minute=1",
        "--rate-find-user-burst=1",
    ])
    .await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let me = unique("MetricsMe");
    let create = unique("MetricsCreate");
    let find = unique("MetricsFind");
    let broken = unique("MetricsBroken");

    let before = Scrape::of(&app).await;
    let statements_before = app.statements();

    for _ in 0..5 {
        let response = app
            .gql_as(&ana, &format!("query {me} {{ me {{ name }} }}"), json!({}))
            .await;
        assert_eq!(response.status, StatusCode::OK);
        response.ok();
    }
    let created = app
        .gql_as(
            &ana,
            &format!(
                "mutation {create} {{ createSession(input: {{ title: \"Metrics\" }}) {{ id inviteCode }} }}"
            ),
            json!({}),
        )
        .await;
    let code = created.ok()["createSession"]["inviteCode"]
        .as_str()
        .unwrap()
        .to_owned();
    join(&app, &bo, &code).await.ok();
    let find_query = format!("query {find}($e: String!) {{ findUserByEmail(email: $e) {{ id }} }}");
    app.gql_as(&ana, &find_query, json!({ "e": "bo@example.com" }))
        .await
        .ok();
    app.gql_as(&ana, &find_query, json!({ "e": "bo@example.com" }))
        .await
        .assert_code("RATE_LIMITED");
    // An argument of the wrong type: an error async-graphql raises, with the code we give it.
    let wrong = app
        .gql_as(
            &ana,
            &format!("query {broken} {{ sessions(first: \"many\") {{ edges {{ cursor }} }} }}"),
            json!({}),
        )
        .await;
    let wrong_code = wrong.codes()[0].clone();
    app.gql_as(&ana, "{ me ", json!({}))
        .await
        .assert_code("GRAPHQL_PARSE_FAILED");
    // Batched operations count one by one.
    let batch = post_raw(
        &app,
        &ana.token,
        json!([
            { "query": format!("query {me} {{ me {{ id }} }}") },
            { "query": format!("query {me} {{ me {{ email }} }}") },
        ]),
    )
    .await;
    assert_eq!(batch.as_array().unwrap().len(), 2);
    let invite = app
        .client
        .get(app.url(&format!("/join/{code}")))
        .send()
        .await
        .unwrap();
    assert!(invite.status().is_redirection());
    let probe = unique("nope");
    let missing = app
        .client
        .get(app.url(&format!("/{probe}")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Never on the public port.
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);

    let statements_after = app.statements();
    // The feed publishes the join's event in the background.
    let mut after = Scrape::of(&app).await;
    for _ in 0..50 {
        if after.sum("photon_bus_notifications_total", &[])
            > before.sum("photon_bus_notifications_total", &[])
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = Scrape::of(&app).await;
    }
    let grew =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);

    // GraphQL operations, by type, name and code: exact, the names are this test's own.
    let ops = "photon_graphql_operations_total";
    assert_eq!(
        after.sum(ops, &[("type", "query"), ("name", &me), ("code", "OK")]),
        7.0
    );
    assert_eq!(after.sum(ops, &[("name", &me)]), 7.0);
    assert_eq!(
        after.sum(
            ops,
            &[("type", "mutation"), ("name", &create), ("code", "OK")]
        ),
        1.0
    );
    assert_eq!(
        after.sum(ops, &[("type", "query"), ("name", &find), ("code", "OK")]),
        1.0
    );
    assert_eq!(
        after.sum(
            ops,
            &[("type", "query"), ("name", &find), ("code", "RATE_LIMITED")]
        ),
        1.0
    );
    assert_eq!(
        after.sum(ops, &[("name", &broken), ("code", &wrong_code)]),
        1.0
    );
    assert!(
        grew(
            ops,
            &[
                ("type", "unknown"),
                ("name", "(unknown)"),
                ("code", "GRAPHQL_PARSE_FAILED")
            ]
        ) >= 1.0
    );
    // Anonymous operations (the sign-ins ran before the first scrape) have a label of their own.
    assert!(after.has(
        ops,
        &[
            ("type", "mutation"),
            ("name", "(anonymous)"),
            ("code", "OK")
        ]
    ));
    after.assert_typed(ops, "counter");
    let durations = "photon_graphql_operation_duration_seconds";
    after.assert_typed(durations, "histogram");
    assert!(grew(&format!("{durations}_count"), &[("type", "query")]) >= 10.0);
    assert!(grew(&format!("{durations}_count"), &[("type", "mutation")]) >= 2.0);

    // HTTP: the matched route template, never the raw path.
    let http = "photon_http_requests_total";
    after.assert_typed(http, "counter");
    // 5 + 1 + 1 + 2 + 1 + 1 operations, and the batch in one request.
    assert!(grew(http, &[("route", "/graphql"), ("status", "200")]) >= 12.0);
    assert!(grew(http, &[("route", "/join/{code}"), ("status", "303")]) >= 1.0);
    assert!(grew(http, &[("route", "unmatched"), ("status", "404")]) >= 2.0);
    for sample in &after.samples {
        for (_, value) in &sample.labels {
            assert!(
                !value.contains(&probe) && !value.contains(&code),
                "raw path in {sample:?}"
            );
        }
    }
    let latency = "photon_http_request_duration_seconds";
    after.assert_typed(latency, "histogram");
    assert!(grew(&format!("{latency}_count"), &[("route", "/graphql")]) >= 12.0);
    for le in ["0.001", "0.01", "0.1", "1", "10", "+Inf"] {
        assert!(
            after.has(
                &format!("{latency}_bucket"),
                &[("route", "/graphql"), ("le", le)]
            ),
            "no bucket le={le}"
        );
    }

    // The rate-limit refusal, by rule.
    let refusals = "photon_rate_limit_refusals_total";
    after.assert_typed(refusals, "counter");
    assert!(grew(refusals, &[("rule", "find-user")]) >= 1.0);

    // The database pool, sampled at the scrape, and every statement counted.
    let pool = "photon_db_pool_connections";
    after.assert_typed(pool, "gauge");
    let in_use = after.sum(pool, &[("state", "in_use")]);
    let idle = after.sum(pool, &[("state", "idle")]);
    assert!(after.has(pool, &[("state", "in_use")]) && after.has(pool, &[("state", "idle")]));
    assert!(
        in_use >= 0.0 && idle >= 0.0 && in_use + idle <= 5.0,
        "{in_use} + {idle}"
    );
    let ran = statements_after - statements_before;
    assert!(ran > 0);
    assert!(grew("photon_db_statements_total", &[]) >= ran as f64);
    after.assert_typed("photon_db_statements_total", "counter");
    after.assert_typed("photon_db_pool_waits_total", "counter");

    // The bus: the join's event woke it; on Postgres the listener's first connect resynced.
    assert!(grew("photon_bus_notifications_total", &[]) >= 1.0);
    after.assert_typed("photon_bus_resyncs_total", "counter");
    if app.backend == Backend::Postgres {
        assert!(after.sum("photon_bus_resyncs_total", &[]) >= 1.0);
    }

    // The build, and the counters of other parts that exist from the start.
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(after.sum("photon_build_info", &[("version", version)]), 1.0);
    after.assert_typed("photon_build_info", "gauge");
    for outcome in ["sent", "failed", "retried", "pruned"] {
        assert!(after.has("photon_push_total", &[("outcome", outcome)]));
    }
    for outcome in ["hit", "miss", "registered", "refused"] {
        assert!(after.has("photon_persisted_queries_total", &[("outcome", outcome)]));
    }

    // Only `/metrics` is served there.
    let addr = app.metrics_addr.unwrap();
    let other = app
        .client
        .get(format!("http://{addr}/graphql"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let content_type = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
}

#[tokio::test]
async fn operations_over_websocket_count_once() {
    let app = TestApp::spawn_with(&[METRICS]).await;
    let ana = app.sign_in("ana@example.com").await;
    let bo = app.sign_in("bo@example.com").await;
    let (session, code) = create_session(&app, &ana, "Sockets").await;
    let me = unique("MetricsWsMe");
    let events = unique("MetricsWsEvents");
    let mut client = WsClient::connect_as(&app, Protocol::Transport, &ana.token).await;

    client
        .subscribe("q", &format!("query {me} {{ me {{ name }} }}"), json!({}))
        .await;
    client.next_payload("q").await;
    client.expect_complete("q").await;

    client
        .subscribe(
            "e",
            &format!(
                "subscription {events}($s: ID!) {{ sessionEvents(sessionId: $s) {{ __typename }} }}"
            ),
            json!({ "s": session }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    join(&app, &bo, &code).await.ok();
    client.next_payload("e").await;
    app.gql_as(
        &bo,
        "mutation($s: ID!) { leaveSession(sessionId: $s) }",
        json!({ "s": session }),
    )
    .await
    .ok();
    client.next_payload("e").await;
    client.stop("e").await;
    client.close().await;

    let scrape = Scrape::of(&app).await;
    let ops = "photon_graphql_operations_total";
    assert_eq!(
        scrape.sum(ops, &[("type", "query"), ("name", &me), ("code", "OK")]),
        1.0
    );
    // Counted at its first result, and not again for the second.
    assert_eq!(
        scrape.sum(
            ops,
            &[("type", "subscription"), ("name", &events), ("code", "OK")]
        ),
        1.0
    );
    assert_eq!(scrape.sum(ops, &[("name", &events)]), 1.0);
}

#[tokio::test]
async fn metrics_are_off_unless_asked_for() {
    let app = TestApp::spawn().await;
    assert!(app.metrics_addr.is_none());
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Nor can they be put on the public port.
    let settings = photon::config::settings_from_args([
        "photon",
        "--bind=127.0.0.1:18080",
        "--metrics-bind=127.0.0.1:18080",
        "--database-url=sqlite::memory:",
        "--jwt-secret=0123456789abcdef0123456789abcdef0123456789",
    ])
    .unwrap();
    let err = settings.resolve().unwrap_err().to_string();
    assert!(err.contains("PHOTON_METRICS_BIND"), "{err}");
}

/// Log lines written to memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// A `#[tokio::test]` runs the server's tasks on the test's thread, so a subscriber set for
// the thread sees the server's logs.
#[tokio::test]
async fn json_logs_carry_the_request_id_and_the_operation_name() {
    let logs = Captured::default();
    let writer = logs.clone();
    let dispatch = telemetry::subscriber(
        "json",
        EnvFilter::new("info,tower_http=debug"),
        move || writer.clone(),
        false,
    );
    let _guard = tracing::dispatcher::set_default(&dispatch);

    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let name = unique("MetricsLogged");
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&ana.token)
        .json(&json!({ "query": format!("query {name} {{ me {{ name }} }}") }))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    response.text().await.unwrap();

    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let of_request: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            line["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == request_id))
        })
        .collect();
    assert!(
        !of_request.is_empty(),
        "no line of {request_id} in:\n{text}"
    );
    // The response line is written once the operation is known: it carries both.
    let finished = of_request
        .iter()
        .find(|line| line["message"] == "finished processing request")
        .unwrap_or_else(|| panic!("no response line in:\n{text}"));
    let span = finished["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "request" && s["request_id"] == request_id)
        .unwrap();
    assert_eq!(span["operation_name"], name.as_str(), "{finished}");
    assert_eq!(span["path"], "/graphql");
}

/// Names and fields of the spans opened, as `name target fields…`.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = String::new();
        attrs.record(&mut FieldText(&mut fields));
        self.0.lock().unwrap().push(format!(
            "{} {}{fields}",
            attrs.metadata().name(),
            attrs.metadata().target()
        ));
    }

    fn on_record(
        &self,
        _id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = String::new();
        values.record(&mut FieldText(&mut fields));
        self.0.lock().unwrap().push(format!("recorded{fields}"));
    }
}

struct FieldText<'a>(&'a mut String);

impl tracing::field::Visit for FieldText<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

/// The spans one GraphQL request opens under `filter`.
async fn spans_of_a_request(app: &TestApp, token: &str, filter: &str) -> Vec<String> {
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(tracing_subscriber::Layer::with_filter(
        spans.clone(),
        EnvFilter::new(filter),
    ));
    let _guard = tracing::subscriber::set_default(subscriber);
    app.gql(
        Some(token),
        "query SpanProbe { me { name } findUserByEmail(email: \"secret-probe@example.com\") { id } }",
        json!({}),
    )
    .await
    .ok();
    spans.0.lock().unwrap().clone()
}

#[tokio::test]
async fn graphql_spans_cover_the_operation_and_fields_only_on_request() {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;

    let spans = spans_of_a_request(&app, &ana.token, "info").await;
    let graphql: Vec<&str> = spans
        .iter()
        .filter(|s| s.contains(" async_graphql::graphql"))
        .map(|s| s.split(' ').next().unwrap())
        .collect();
    for name in ["request", "execute"] {
        assert!(graphql.contains(&name), "no {name} span in {spans:?}");
    }
    assert!(
        !graphql.contains(&"field"),
        "field spans by default: {spans:?}"
    );
    // The document's arguments never reach a span.
    assert!(
        spans.iter().all(|s| !s.contains("secret-probe")),
        "{spans:?}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.contains("operation_name=\"SpanProbe\"")),
        "{spans:?}"
    );

    let traced = spans_of_a_request(&app, &ana.token, "info,async_graphql::graphql=trace").await;
    assert!(
        traced
            .iter()
            .any(|s| s.starts_with("field async_graphql::graphql")),
        "no field spans at trace: {traced:?}"
    );
    assert!(traced.iter().all(|s| !s.contains("secret-probe")));
}

// Also on the test's own thread: sqlx reports its acquire timings as tracing events, which the
// server's subscriber turns into the pool-wait count.
#[tokio::test]
async fn a_request_that_waits_for_a_pool_connection_counts_as_a_wait() {
    let dispatch = telemetry::subscriber("text", EnvFilter::new("off"), std::io::sink, false);
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let app = TestApp::spawn_with(&[METRICS, "--database-max-connections=2"]).await;
    let ana = app.sign_in("ana@example.com").await;
    let waits = "photon_db_pool_waits_total";
    let before = Scrape::of(&app).await.sum(waits, &[]);

    // Every connection of the pool (two on Postgres, the one on SQLite) is held...
    let held = match app.backend {
        Backend::Postgres => 2,
        Backend::Sqlite => 1,
    };
    let mut transactions = Vec::new();
    for _ in 0..held {
        transactions.push(
            sea_orm::TransactionTrait::begin(&app.state.db)
                .await
                .unwrap(),
        );
    }
    // Tracing caches each call site's interest across dispatchers, and other test threads
    // registering theirs while sqlx's acquire event registers can leave that cache saying
    // nobody wants it: ask again, now that this thread's is set.
    tracing::callsite::rebuild_interest_cache();
    // ...so this request waits for one.
    let request = {
        let client = app.client.clone();
        let url = app.url("/graphql");
        let token = ana.token.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": "{ me { name } }" }))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!request.is_finished(), "the request did not wait");
    for transaction in transactions {
        transaction.commit().await.unwrap();
    }
    assert_eq!(request.await.unwrap(), StatusCode::OK);

    let after = Scrape::of(&app).await.sum(waits, &[]);
    assert!(after >= before + 1.0, "{before} -> {after}");
}
