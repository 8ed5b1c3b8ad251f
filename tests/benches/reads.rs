//! Reads against a peer: Photon and PostGraphile v4 on the same Postgres database and the same
//! data, loaded by the same client (`wrk`, a process of its own), one after the other in
//! alternating rounds so that both see the same machine.
//!
//! ```sh
//! cargo bench -p photon-tests --bench reads
//! PHOTON_BENCH_ROUNDS=5 PHOTON_BENCH_ROUND_SECS=10 cargo bench -p photon-tests --bench reads
//! ```
//!
//! Two queries, each as a phone sends it:
//! - **the session screen**: the session's title, its members with their names and roles, and
//!   its 20 newest photos with their uploaders' names, sent to Photon as a member with a
//!   Bearer token and to PostGraphile (no auth, the way it was measured in the issue) as the
//!   same selection over its generated schema;
//! - **a trivial query**, `{ __typename }`, the same to both (Photon's with the token).
//!
//! The data: one session of 10 members and 50 photos, made through Photon's API (sign-in,
//! invite code, upload slot, PUT, completion). Before any load the bench asks both servers
//! once and checks that they name the same members in the same order, with the same roles,
//! and the same 20 photos in the same order with the same uploaders.
//!
//! Printed per round and query: requests per second of each (wrk `-t1 -c32` by default), the
//! CPU each server used per request and in cores, and for Photon the SQL statements per
//! request (its own `photon_db_statements_total`); then the median of the rounds and the
//! ratio Photon / PostGraphile. Also Postgres' transactions per request for both
//! (`pg_stat_database.xact_commit` of the bench's database), which counts a statement sent
//! outside a transaction as one.
//!
//! Needs Postgres (`TEST_DATABASE_URL`, as for the tests), `wrk` (Debian's package; the bench
//! installs it with apt-get when it can) and Node.js with npm: PostGraphile is a dev
//! dependency of the bench in `tests/benches/postgraphile/`, installed with `npm ci` on first
//! use.
//!
//! Settings (environment): `PHOTON_BENCH_ROUNDS` (3), `PHOTON_BENCH_ROUND_SECS` (5),
//! `PHOTON_BENCH_CONNECTIONS` (32), `PHOTON_BENCH_THREADS` (1); `PHOTON_BENCH_HOLD=1` seeds,
//! checks, prints both servers' addresses, the queries and the token, and keeps both up until
//! Ctrl-C instead of loading them (to profile them or load them with another tool).

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use photon_tests::bench::{cpu_time, env_usize};
use photon_tests::photos::{complete, nth_photo_bytes, stage};
use photon_tests::process::Process;
use photon_tests::{Client, JWT_SECRET, TestUser, create_session, join};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};

const MEMBERS: usize = 10;
const PHOTOS: usize = 50;

const PHOTON_SCREEN: &str = "query SessionScreen($id: ID!) { session(id: $id) { title \
    members(first: 20) { edges { node { role user { name } } } } \
    photos(first: 20) { edges { node { id uploader { name } } } } } }";

/// The same selection over PostGraphile's generated schema: members are the session's rows
/// that have not left, in the order they joined; photos the ready ones, newest first.
const POSTGRAPHILE_SCREEN: &str = "query SessionScreen($id: UUID!) { sessionById(id: $id) { title \
    sessionMembersBySessionId(first: 20, orderBy: JOINED_AT_ASC, condition: { leftAt: null }) \
    { nodes { role userByUserId { name } } } \
    photosBySessionId(first: 20, orderBy: SEQ_DESC, condition: { status: \"ready\" }) \
    { nodes { id userByUploaderId { name } } } } }";

const TRIVIAL: &str = "{ __typename }";

#[tokio::main]
async fn main() {
    let rounds = env_usize("PHOTON_BENCH_ROUNDS", 3).max(1);
    let round = Duration::from_secs(env_usize("PHOTON_BENCH_ROUND_SECS", 5).max(1) as u64);
    let connections = env_usize("PHOTON_BENCH_CONNECTIONS", 32).max(1);
    let threads = env_usize("PHOTON_BENCH_THREADS", 1).max(1);
    ensure_wrk();
    let postgraphile_bin = ensure_postgraphile();

    let database_url = photon_tests::create_postgres_database().await;
    // node-postgres, under PostGraphile, connects without TLS unless told to; sqlx prefers
    // TLS when the server offers it. Both talk in the clear here, as on a private network.
    let photon_database_url = format!("{database_url}?sslmode=disable");
    let data_dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let photon = Process::start(&[
        "--bind=127.0.0.1:0".to_owned(),
        format!("--data-dir={}", data_dir.path().display()),
        format!("--database-url={photon_database_url}"),
        format!("--jwt-secret={JWT_SECRET}"),
        format!("--metrics-bind=127.0.0.1:{metrics_port}"),
        "--log-format=json".to_owned(),
        "--dev-sign-in=true".to_owned(),
        // One client address sends everything: the per-address limits would refuse most of it.
        "--rate-limits=false".to_owned(),
        "--processing-concurrency=0".to_owned(),
    ])
    .await;
    let photon_url = format!("http://{}/graphql", photon.address().await);
    let api = Client::new(photon_url.trim_end_matches("/graphql"));
    let (session, viewer) = seed(&api).await;

    let postgraphile_port = free_port();
    let postgraphile = Peer::start(&postgraphile_bin, &database_url, postgraphile_port);
    let postgraphile_url = format!("http://127.0.0.1:{postgraphile_port}/graphql");
    postgraphile.wait_until_up(&postgraphile_url).await;

    let session_uuid = decode_id(&session);
    let targets = [
        Target {
            name: "photon",
            url: photon_url.clone(),
            pid: photon.child.id(),
            bearer: Some(viewer.token.clone()),
            screen: json!({ "query": PHOTON_SCREEN, "variables": { "id": session } }),
        },
        Target {
            name: "postgraphile",
            url: postgraphile_url.clone(),
            pid: postgraphile.child.id(),
            bearer: None,
            screen: json!({ "query": POSTGRAPHILE_SCREEN, "variables": { "id": session_uuid } }),
        },
    ];
    check_same_answers(&targets).await;
    if std::env::var("PHOTON_BENCH_HOLD").is_ok_and(|v| v == "1") {
        hold(&targets).await;
    }

    let admin = Database::connect(photon_tests::admin_url()).await.unwrap();
    let db_name = url::Url::parse(&database_url).unwrap().path()[1..].to_owned();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let scripts = tempfile::tempdir().unwrap();

    println!(
        "reads: Photon and PostGraphile {} on one Postgres database, a session of {MEMBERS} members and {PHOTOS} photos; wrk -t{threads} -c{connections}, {} rounds of {} s each, alternating",
        peer_version(&postgraphile_bin),
        rounds,
        round.as_secs()
    );
    for (query, label) in [("screen", "session screen"), ("trivial", "trivial query")] {
        let mut figures: Vec<[Round; 2]> = Vec::new();
        for r in 0..rounds {
            let mut pair = Vec::new();
            for target in &targets {
                let body = if query == "screen" {
                    target.screen.clone()
                } else {
                    json!({ "query": TRIVIAL })
                };
                let script = scripts.path().join(format!("{}-{query}.lua", target.name));
                write_wrk_script(&script, &body, target.bearer.as_deref());
                let statements_before = statements(&api, &metrics_url).await;
                let xacts_before = transactions(&admin, &db_name).await;
                let cpu_before = cpu_time(target.pid);
                let wrk = run_wrk(&target.url, &script, threads, connections, round);
                let cpu = cpu_time(target.pid) - cpu_before;
                // Postgres publishes a backend's counts within a second of its last
                // transaction.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let xacts = transactions(&admin, &db_name).await - xacts_before;
                let statements = statements(&api, &metrics_url).await - statements_before;
                assert_eq!(
                    wrk.errors, 0,
                    "{}: {} responses were errors or not 2xx",
                    target.name, wrk.errors
                );
                let result = Round {
                    rps: wrk.requests as f64 / wrk.elapsed.as_secs_f64(),
                    cores: cpu.as_secs_f64() / wrk.elapsed.as_secs_f64(),
                    cpu_us: cpu.as_secs_f64() * 1e6 / wrk.requests as f64,
                    xacts: xacts as f64 / wrk.requests as f64,
                    statements: (target.name == "photon")
                        .then(|| statements as f64 / wrk.requests as f64),
                    p99_ms: wrk.p99_ms,
                };
                println!(
                    "  {label:<15} round {} {:<13} {:>8.0} req/s  p99 {:>6.2} ms  {:>5.0} µs CPU/req  {:.2} cores  {:.2} Postgres transactions/req{}",
                    r + 1,
                    target.name,
                    result.rps,
                    result.p99_ms,
                    result.cpu_us,
                    result.cores,
                    result.xacts,
                    result
                        .statements
                        .map(|s| format!("  {s:.2} statements/req"))
                        .unwrap_or_default(),
                );
                pair.push(result);
            }
            figures.push([pair[0], pair[1]]);
        }
        let photon_rps = median(figures.iter().map(|p| p[0].rps).collect());
        let peer_rps = median(figures.iter().map(|p| p[1].rps).collect());
        let ratios = figures
            .iter()
            .map(|p| format!("{:.2}", p[0].rps / p[1].rps))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "{label}: photon {photon_rps:.0} req/s, postgraphile {peer_rps:.0} req/s (medians): {:.2}x (per round: {ratios})",
            photon_rps / peer_rps
        );
    }
    drop(postgraphile);
    drop(photon);
    let dropped = admin
        .execute_unprepared(&format!(
            "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
        ))
        .await;
    if let Err(err) = dropped {
        eprintln!("could not drop {db_name}: {err}");
    }
}

#[derive(Clone, Copy)]
struct Round {
    rps: f64,
    cores: f64,
    cpu_us: f64,
    xacts: f64,
    statements: Option<f64>,
    p99_ms: f64,
}

struct Target {
    name: &'static str,
    url: String,
    pid: u32,
    bearer: Option<String>,
    screen: Value,
}

/// Ten people in one session with fifty photos, uploaded by all of them in turn. Returns the
/// session's id and a member (not its owner) to ask as.
async fn seed(api: &Client) -> (String, TestUser) {
    let mut people = Vec::new();
    for i in 0..MEMBERS {
        people.push(api.sign_in(&format!("member{i}@example.com")).await);
    }
    let (session, code) = create_session(api, &people[0], "Beach day").await;
    for person in &people[1..] {
        join(api, person, &code).await.ok();
    }
    futures_util::stream::iter(0..PHOTOS)
        .map(|i| {
            let (people, session) = (&people, &session);
            async move {
                let uploader = &people[i % MEMBERS];
                let id = stage(api, uploader, session, nth_photo_bytes(i, 2048)).await;
                complete(api, uploader, &id).await;
            }
        })
        .buffered(4)
        .collect::<Vec<()>>()
        .await;
    let viewer = people.swap_remove(3);
    (session, viewer)
}

/// The uuid inside one of Photon's global ids (`base64url("Kind:uuid")`).
fn decode_id(id: &str) -> String {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(id).unwrap()).unwrap();
    text.split_once(':').unwrap().1.to_owned()
}

/// Asks each server for the session screen once and checks that both show the same people
/// and photos.
async fn check_same_answers(targets: &[Target]) {
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for target in targets {
        let mut request = http.post(&target.url).json(&target.screen);
        if let Some(token) = &target.bearer {
            request = request.bearer_auth(token);
        }
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(
            body.get("errors").is_none(),
            "{} refused the session screen: {body}",
            target.name
        );
        answers.push(body);
    }
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    // Roles are an enum on one side and text on the other: OWNER and owner are the same.
    let role = |v: &Value| text(v).to_ascii_lowercase();
    let photon = &answers[0]["data"]["session"];
    let members = pairs(&photon["members"]["edges"], |e| {
        (text(&e["node"]["user"]["name"]), role(&e["node"]["role"]))
    });
    let photos = pairs(&photon["photos"]["edges"], |e| {
        (
            decode_id(e["node"]["id"].as_str().unwrap()),
            text(&e["node"]["uploader"]["name"]),
        )
    });
    let peer = &answers[1]["data"]["sessionById"];
    let peer_members = pairs(&peer["sessionMembersBySessionId"]["nodes"], |n| {
        (text(&n["userByUserId"]["name"]), role(&n["role"]))
    });
    let peer_photos = pairs(&peer["photosBySessionId"]["nodes"], |n| {
        (text(&n["id"]), text(&n["userByUploaderId"]["name"]))
    });
    assert_eq!(photon["title"], peer["title"]);
    assert_eq!(members.len(), MEMBERS);
    assert_eq!(photos.len(), 20);
    assert_eq!(
        members, peer_members,
        "the two servers list different members"
    );
    assert_eq!(photos, peer_photos, "the two servers list different photos");
}

/// Keeps both servers up, for a profiler or a load tool of one's own, until Ctrl-C.
async fn hold(targets: &[Target]) {
    for target in targets {
        println!(
            "{} (pid {}): POST {} {}",
            target.name, target.pid, target.url, target.screen
        );
        if let Some(token) = &target.bearer {
            println!("  Authorization: Bearer {token}");
        }
    }
    tokio::signal::ctrl_c().await.unwrap();
}

/// Each item of a JSON list, as a pair of strings.
fn pairs(list: &Value, pick: impl Fn(&Value) -> (String, String)) -> Vec<(String, String)> {
    list.as_array().unwrap().iter().map(pick).collect()
}

/// A port nothing listens on at the moment.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SQL statements Photon has sent so far, from its metrics listener.
async fn statements(api: &Client, metrics_url: &str) -> u64 {
    let text = api
        .http()
        .get(metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("photon_db_statements_total "))
        .map_or(0, |n| n.trim().parse::<f64>().unwrap() as u64)
}

/// Transactions committed in `db_name` so far.
async fn transactions(admin: &sea_orm::DatabaseConnection, db_name: &str) -> i64 {
    let row = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            [db_name.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "xact_commit").unwrap()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

// ---- wrk ---------------------------------------------------------------------------------------

fn ensure_wrk() {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return;
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-qq", "wrk"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed,
        "the bench needs wrk (Debian: apt-get install wrk)"
    );
}

/// A wrk script that POSTs `body` as JSON, with a Bearer token when there is one.
fn write_wrk_script(path: &Path, body: &Value, bearer: Option<&str>) {
    let lua_string = |s: &str| format!("{:?}", s);
    let mut script = format!(
        "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
        lua_string(&body.to_string())
    );
    if let Some(token) = bearer {
        script.push_str(&format!(
            "wrk.headers[\"Authorization\"] = {}\n",
            lua_string(&format!("Bearer {token}"))
        ));
    }
    std::fs::write(path, script).unwrap();
}

struct WrkRun {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    p99_ms: f64,
}

fn run_wrk(
    url: &str,
    script: &Path,
    threads: usize,
    connections: usize,
    duration: Duration,
) -> WrkRun {
    let started = Instant::now();
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .unwrap();
    let wall = started.elapsed();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed: {text}");
    // "  12345 requests in 5.00s, 3.21MB read"
    let (requests, elapsed) = text
        .lines()
        .find_map(|line| {
            let line = line.trim();
            let (n, rest) = line.split_once(" requests in ")?;
            let secs = rest.split_once("s,")?.0;
            Some((n.parse().ok()?, secs.parse::<f64>().ok()?))
        })
        .unwrap_or_else(|| panic!("no request count in wrk's output: {text}"));
    let non_2xx = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Non-2xx or 3xx responses: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    let socket_errors: u64 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Socket errors: "))
        .map_or(0, |rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        });
    let p99_ms = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))
        .map_or(f64::NAN, |v| wrk_ms(v.trim()));
    WrkRun {
        requests,
        errors: non_2xx + socket_errors,
        elapsed: Duration::from_secs_f64(elapsed).min(wall),
        p99_ms,
    }
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.01s`.
fn wrk_ms(value: &str) -> f64 {
    let split = value.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (n, unit) = value.split_at(split);
    let n: f64 = n.parse().unwrap();
    match unit {
        "us" => n / 1e3,
        "ms" => n,
        "s" => n * 1e3,
        "m" => n * 60e3,
        _ => f64::NAN,
    }
}

// ---- PostGraphile -------------------------------------------------------------------------------

fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/postgraphile")
}

/// PostGraphile's command, installed from the bench's package-lock.json if need be.
fn ensure_postgraphile() -> PathBuf {
    let dir = peer_dir();
    let bin = dir.join("node_modules/.bin/postgraphile");
    if !bin.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("the bench needs Node.js and npm for PostGraphile");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    bin
}

fn peer_version(bin: &Path) -> String {
    let output = Command::new(bin).arg("--version").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

struct Peer {
    child: Child,
}

impl Peer {
    fn start(bin: &Path, database_url: &str, port: u16) -> Self {
        let child = Command::new(bin)
            .args(["--connection", database_url, "--schema", "public"])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // As it would run in production: no query log on stdout, no GraphiQL.
            .args(["--disable-query-log", "--disable-graphiql"])
            .env("NODE_ENV", "production")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self { child }
    }

    async fn wait_until_up(&self, url: &str) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = http
                .post(url)
                .json(&json!({ "query": TRIVIAL }))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "PostGraphile did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
