//! Test harness: each test gets its own server on a random port and its own database, on the
//! backend `PHOTON_TEST_BACKEND` names (`postgres`, the default, or `sqlite`). Postgres
//! databases are created through the admin URL in `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `scripts/test.sh` sets both up.

pub mod bench;
pub mod client;
pub mod fake_fcm;
pub mod fake_oauth;
pub mod fake_oidc;
pub mod logs;
pub mod nats_server;
pub mod pg_cluster;
pub mod photos;
pub mod ports;
pub mod process;
pub mod s3_server;
pub mod ws;

pub use client::{Bearer, Client};

use std::net::SocketAddr;
use std::sync::Arc;

use photon::app::{AppState, Application};
use photon::config::settings_from_args;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The JWT secret every test server signs with, so tests can forge tokens on purpose.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn from_env() -> Self {
        match std::env::var("PHOTON_TEST_BACKEND").as_deref() {
            Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") | Err(_) => Backend::Postgres,
            Ok(other) => panic!("PHOTON_TEST_BACKEND must be postgres or sqlite, not {other}"),
        }
    }
}

/// The NATS server the bus tests share: `PHOTON_TEST_NATS_URL` (which scripts/test.sh sets),
/// else the usual local one.
pub fn nats_url() -> String {
    std::env::var("PHOTON_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates an empty Postgres database and returns its URL.
pub async fn create_postgres_database() -> String {
    let admin = admin_url();
    // The run id lets scripts/test.sh drop exactly its own run's databases afterwards.
    let run = std::env::var("PHOTON_TEST_RUN_ID")
        .ok()
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "adhoc".to_owned());
    let name = format!("photon_test_{run}_{}", uuid::Uuid::new_v4().simple());
    let conn = Database::connect(&admin)
        .await
        .expect("connect to TEST_DATABASE_URL");
    conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    conn.close().await.ok();
    let mut url = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// With `PHOTON_TEST_STORAGE=s3`, the flags that point the server at a fresh bucket of the
/// S3-compatible server `scripts/test.sh` started: `PHOTON_TEST_S3_ENDPOINT`, its data
/// directory `PHOTON_TEST_S3_ROOT` (a bucket is a directory there) and its keys
/// `PHOTON_TEST_S3_ACCESS_KEY` / `PHOTON_TEST_S3_SECRET_KEY`. Otherwise none: photos go to the
/// local-disk store.
pub fn s3_args() -> Vec<String> {
    if std::env::var("PHOTON_TEST_STORAGE").as_deref() != Ok("s3") {
        return Vec::new();
    }
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let bucket = format!("photon-{}", uuid::Uuid::new_v4().simple());
    std::fs::create_dir_all(std::path::Path::new(&var("PHOTON_TEST_S3_ROOT")).join(&bucket))
        .expect("create the test bucket");
    vec![
        format!("--s3-bucket={bucket}"),
        format!("--s3-endpoint={}", var("PHOTON_TEST_S3_ENDPOINT")),
        // Another name for the same server, so the tests notice if presigned URLs are ever
        // signed for the server-side endpoint instead of the public one.
        format!(
            "--s3-public-endpoint={}",
            s3_public_endpoint().unwrap_or_default()
        ),
        format!("--s3-access-key-id={}", var("PHOTON_TEST_S3_ACCESS_KEY")),
        format!(
            "--s3-secret-access-key={}",
            var("PHOTON_TEST_S3_SECRET_KEY")
        ),
        "--s3-force-path-style=true".to_owned(),
    ]
}

/// In S3 mode, the endpoint presigned URLs must use: the test server under `localhost`.
pub fn s3_public_endpoint() -> Option<String> {
    if std::env::var("PHOTON_TEST_STORAGE").as_deref() != Ok("s3") {
        return None;
    }
    let endpoint = std::env::var("PHOTON_TEST_S3_ENDPOINT").ok()?;
    Some(endpoint.replace("127.0.0.1", "localhost"))
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    /// GraphQL over `client`, anonymous.
    pub api: Client,
    pub backend: Backend,
    /// A connection of the test's own, to check what was (not) written.
    pub db: DatabaseConnection,
    /// The server's own state (its statement counters, for instance).
    pub state: AppState,
    /// Where `/metrics` is served, when the test asked for `--metrics-bind`.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    /// The server's task: it ends once a shutdown has drained the server.
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Shared with replicas of this server.
    data_dir: Arc<tempfile::TempDir>,
    pub database_url: String,
    /// Where photos go (the S3 bucket's flags, or none for the local store): a replica's, and
    /// a worker process's, are the same.
    pub storage_args: Vec<String>,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh_token: String,
}

/// A GraphQL response with its HTTP status and headers.
#[derive(Debug)]
pub struct GqlResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl GqlResponse {
    /// `data`, after checking that there are no errors.
    pub fn ok(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "expected no errors, got {}",
            serde_json::to_string_pretty(&self.body).unwrap_or_default()
        );
        &self.body["data"]
    }

    /// The `extensions.code` of every error.
    pub fn codes(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        e["extensions"]["code"]
                            .as_str()
                            .unwrap_or("<no code>")
                            .to_owned()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts that the response failed, and only with `code`.
    pub fn assert_code(&self, code: &str) {
        let codes = self.codes();
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c == code),
            "expected {code}, got {}",
            serde_json::to_string_pretty(&self.body).unwrap_or_default()
        );
    }
}

impl TestApp {
    /// A server with the default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A server with extra command-line settings.
    pub async fn spawn_with(extra: &[&str]) -> Self {
        Self::spawn_on_store(s3_args(), extra).await
    }

    /// A server on a Postgres database of the caller's (a test's own cluster, which it may
    /// stop and start again), with extra command-line settings.
    pub async fn spawn_on_database(database_url: String, extra: &[&str]) -> Self {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start(Backend::Postgres, data_dir, database_url, s3_args(), extra).await
    }

    /// A server that keeps its photos where `storage_args` say (an object store of the
    /// test's own, which it may stall or stop), with extra command-line settings.
    pub async fn spawn_on_store(storage_args: Vec<String>, extra: &[&str]) -> Self {
        let backend = Backend::from_env();
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database_url = match backend {
            Backend::Postgres => create_postgres_database().await,
            Backend::Sqlite => {
                format!("sqlite://{}/photon.db?mode=rwc", data_dir.path().display())
            }
        };
        Self::start(backend, data_dir, database_url, storage_args, extra).await
    }

    /// A second replica of this server: its own process state and port, the same database,
    /// data directory and public URL (so tokens from one are good on the other). Only
    /// meaningful on Postgres; the embedded SQLite default is a single process.
    pub async fn spawn_replica(&self, extra: &[&str]) -> Self {
        let public_url = format!("--public-url={}", self.base_url);
        let mut args = vec![public_url.as_str()];
        args.extend_from_slice(extra);
        Self::start(
            self.backend,
            self.data_dir.clone(),
            self.database_url.clone(),
            self.storage_args.clone(),
            &args,
        )
        .await
    }

    async fn start(
        backend: Backend,
        data_dir: Arc<tempfile::TempDir>,
        database_url: String,
        storage_args: Vec<String>,
        extra: &[&str],
    ) -> Self {
        let mut args = vec![
            "photon".to_owned(),
            "--bind=127.0.0.1:0".to_owned(),
            format!("--data-dir={}", data_dir.path().display()),
            format!("--database-url={database_url}"),
            format!("--jwt-secret={JWT_SECRET}"),
            "--database-max-connections=5".to_owned(),
            "--shutdown-grace-secs=1".to_owned(),
            // Tests sign in with devSignIn, which is off by default on Postgres.
            "--dev-sign-in=true".to_owned(),
            // Sweeps run when a test calls them, never behind its back.
            "--sweep-interval-secs=0".to_owned(),
            // Pushes likewise: tests that want the dispatcher turn it on.
            "--push-poll-ms=0".to_owned(),
            // And photo processing: the tests of it turn the workers on.
            "--processing-concurrency=0".to_owned(),
            // Every test signs its users in from 127.0.0.1; the rate-limit tests turn the
            // limits back on with tight values of their own.
            "--rate-limits=false".to_owned(),
        ];
        args.extend(storage_args.iter().cloned());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let settings = settings_from_args(args).expect("valid test settings");
        let config = settings.resolve().expect("resolvable test settings");
        let app = Application::build(config).await.expect("server starts");
        let addr = app.local_addr().expect("bound");
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let db = Database::connect(&database_url)
            .await
            .expect("test's own connection");
        let base_url = format!("http://{addr}");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A hung request fails its test instead of stalling the suite.
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("http client");
        Self {
            addr,
            api: Client::with_http(client.clone(), &base_url),
            base_url,
            client,
            backend,
            db,
            state,
            metrics_addr,
            shutdown: Some(tx),
            server: Some(server),
            data_dir,
            database_url,
            storage_args,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The data directory this server (and its replicas) use.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// The Prometheus text of `GET /metrics` on the metrics listener.
    pub async fn scrape(&self) -> String {
        let addr = self.metrics_addr.expect("started with --metrics-bind");
        let response = self
            .client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("scrape sent");
        assert_eq!(response.status(), StatusCode::OK, "scrape status");
        response.text().await.expect("scrape body")
    }

    /// POSTs an operation with an optional bearer token.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> GqlResponse {
        self.api.with_token(token).gql(query, variables).await
    }

    pub async fn gql_as(&self, user: &TestUser, query: &str, variables: Value) -> GqlResponse {
        self.gql(Some(&user.token), query, variables).await
    }

    pub async fn gql_anon(&self, query: &str, variables: Value) -> GqlResponse {
        self.gql(None, query, variables).await
    }

    pub async fn read(response: reqwest::Response) -> GqlResponse {
        GqlResponse::read(response).await
    }

    /// Signs in through `devSignIn`.
    pub async fn sign_in(&self, email: &str) -> TestUser {
        self.api.sign_in(email).await
    }

    /// Statements the server ran so far.
    pub fn statements(&self) -> u64 {
        self.state.db_stats.statements()
    }

    /// Statements the server ran so far, once background work triggered by earlier requests
    /// (fanning out their events, say) has finished: the count stayed put for three looks
    /// 150 ms apart. (One look missed fan-out reads delayed on a loaded machine.)
    pub async fn settled_statements(&self) -> u64 {
        let mut last = self.statements();
        let mut unchanged = 0;
        while unchanged < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            let now = self.statements();
            if now == last {
                unchanged += 1;
            } else {
                unchanged = 0;
                last = now;
            }
        }
        last
    }

    /// Waits until `n` (session, user) pairs count as online, i.e. that many `photoAdded`
    /// subscriptions are live on any replica of this database.
    pub async fn wait_online(&self, n: i64) {
        for _ in 0..200 {
            if self.count("presence", "true").await == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("expected {n} live photoAdded subscriptions");
    }

    /// Backend pids of the Postgres connections that LISTEN for events, this database's only.
    pub async fn listener_pids(&self) -> Vec<i32> {
        self.pids_of("photon-listener").await
    }

    /// Backend pids of this database's connections named `application_name`.
    pub async fn pids_of(&self, application_name: &str) -> Vec<i32> {
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                "SELECT pid FROM pg_stat_activity \
                 WHERE application_name = $1 AND datname = current_database()",
                [application_name.into()],
            ))
            .await
            .expect("read pg_stat_activity");
        rows.iter()
            .map(|row| row.try_get::<i32>("", "pid").expect("a pid"))
            .collect()
    }

    /// Rows in `table` (optionally filtered by a trusted SQL condition), read directly.
    pub async fn count(&self, table: &str, condition: &str) -> i64 {
        let sql = if condition.is_empty() {
            format!("SELECT COUNT(*) AS n FROM {table}")
        } else {
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}")
        };
        let backend = match self.backend {
            Backend::Postgres => DbBackend::Postgres,
            Backend::Sqlite => DbBackend::Sqlite,
        };
        let row = self
            .db
            .query_one_raw(Statement::from_string(backend, sql))
            .await
            .expect("count query")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("count")
    }

    /// Rows in every table a mutation could write: equal before and after means nothing was.
    pub async fn snapshot(&self) -> Vec<i64> {
        let mut counts = Vec::new();
        for table in [
            "users",
            "identities",
            "friendships",
            "sessions",
            "session_members",
            "photos",
            "devices",
            "refresh_tokens",
            "events",
        ] {
            counts.push(self.count(table, "").await);
        }
        counts
    }
}

impl AsRef<Client> for TestApp {
    fn as_ref(&self) -> &Client {
        &self.api
    }
}

impl TestApp {
    /// Starts shutting the server down, as SIGTERM does the binary.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Whether the server, once shutting down, has finished within `wait`.
    pub async fn stopped_within(&mut self, wait: std::time::Duration) -> bool {
        let Some(server) = self.server.as_mut() else {
            return true;
        };
        match tokio::time::timeout(wait, server).await {
            Ok(result) => {
                self.server = None;
                result.expect("the server task").expect("the server ran");
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A session created by `owner`; returns its id and invite code.
pub async fn create_session(
    api: &impl AsRef<Client>,
    owner: &(impl Bearer + ?Sized),
    title: &str,
) -> (String, String) {
    create_session_with(api, owner, json!({ "title": title })).await
}

/// Creates a session from a whole `CreateSessionInput`; returns its id and invite code.
pub async fn create_session_with(
    api: &impl AsRef<Client>,
    owner: &(impl Bearer + ?Sized),
    input: Value,
) -> (String, String) {
    let response = api
        .as_ref()
        .as_user(owner)
        .gql(
            "mutation($input: CreateSessionInput!) { createSession(input: $input) { id inviteCode } }",
            json!({ "input": input }),
        )
        .await;
    let session = &response.ok()["createSession"];
    (
        session["id"].as_str().expect("id").to_owned(),
        session["inviteCode"].as_str().expect("code").to_owned(),
    )
}

/// The sweeper's settings in tests: a round runs when a test calls it, with the default
/// retention.
pub fn sweep_settings() -> photon::jobs::sweeper::SweepSettings {
    photon::jobs::sweeper::SweepSettings {
        interval: std::time::Duration::from_secs(900),
        event_retention: chrono::Duration::hours(24),
    }
}

impl TestApp {
    /// One sweep round of this server's, as if the clock read `now`.
    pub async fn sweep_at(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> photon::jobs::sweeper::SweepReport {
        photon::jobs::sweeper::sweep_once(
            &self.state.db,
            self.state.store.as_ref(),
            &sweep_settings(),
            now,
        )
        .await
        .expect("a sweep round")
    }
}

/// Someone without an account joins with `code` as a guest called `name`, as a [`TestUser`]
/// with no e-mail.
pub async fn guest(api: &impl AsRef<Client>, code: &str, name: &str) -> TestUser {
    let response = api
        .as_ref()
        .with_token(None)
        .gql(
            "mutation($code: String!, $name: String!) { joinSessionAsGuest(inviteCode: $code, name: $name) { accessToken refreshToken user { id } } }",
            json!({ "code": code, "name": name }),
        )
        .await;
    let payload = &response.ok()["joinSessionAsGuest"];
    TestUser {
        id: payload["user"]["id"].as_str().expect("guest id").to_owned(),
        email: String::new(),
        token: payload["accessToken"]
            .as_str()
            .expect("access token")
            .to_owned(),
        refresh_token: payload["refreshToken"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}

/// `user` joins with `code`.
pub async fn join(
    api: &impl AsRef<Client>,
    user: &(impl Bearer + ?Sized),
    code: &str,
) -> GqlResponse {
    api.as_ref()
        .as_user(user)
        .gql(
            "mutation($code: String!) { joinSession(inviteCode: $code) { id viewerRole } }",
            json!({ "code": code }),
        )
        .await
}

/// Makes `a` and `b` friends.
pub async fn befriend(app: &TestApp, a: &TestUser, b: &TestUser) {
    let sent = app
        .gql_as(
            a,
            "mutation($id: ID!) { sendFriendRequest(userId: $id) { id } }",
            json!({ "id": b.id }),
        )
        .await;
    let request_id = sent.ok()["sendFriendRequest"]["id"].clone();
    app.gql_as(
        b,
        "mutation($id: ID!) { acceptFriendRequest(requestId: $id) { status } }",
        json!({ "id": request_id }),
    )
    .await
    .ok();
}

/// The uuid inside one of the API's global ids (`base64("Type:uuid")`).
pub fn uuid_of(global_id: &str) -> uuid::Uuid {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(global_id)
        .expect("a global id");
    let text = String::from_utf8(bytes).expect("utf-8");
    let (_, uuid) = text.split_once(':').expect("Type:uuid");
    uuid.parse().expect("uuid")
}

impl TestApp {
    /// An access token for `user` signed with the test secret, expiring in `secs` (negative:
    /// already expired), with every other claim right.
    pub fn forge_token(&self, user: &TestUser, secs: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "sub": uuid_of(&user.id),
            "iss": format!("{}/", self.base_url),
            "aud": "photon",
            "iat": now - 120,
            "exp": now + secs,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .expect("signed")
    }
}

/// `fragment F0 … F{n}`, each spreading the one before twice, and a query spreading F{n}:
/// about 1 KB for n = 30, and 2^n fields once expanded.
pub fn fragment_bomb(n: usize) -> String {
    let mut doc = "fragment F0 on Query { __typename }\n".to_owned();
    for i in 1..=n {
        doc.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i - 1,
            i - 1
        ));
    }
    doc.push_str(&format!("query {{ ...F{n} }}"));
    doc
}
