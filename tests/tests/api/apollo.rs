//! Apollo Client itself against a real server: the npm package `@apollo/client` (pinned in
//! `tests/apollo/package.json`), run by Node, through the links the app and third-party
//! clients use (persisted queries, batching, both WebSocket links) and its normalised cache.
//!
//! Each test starts a server, hands a scenario script of `tests/apollo/` the server's URL, a
//! token and ids as JSON in `APOLLO_TEST_INPUT`, and checks the script's exit status and the
//! JSON lines it prints; the scripts assert on their side too and say what failed on stderr.
//! Without Node or `tests/apollo/node_modules` (which `scripts/test.sh` installs) the tests
//! fail under `CI=true` and are skipped, with the reason printed, elsewhere.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::Duration;

use photon_tests::photos::{photo_bytes, upload};
use photon_tests::{TestApp, TestUser, create_session, join};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long one script may run before it is killed. One takes about 2 s on a quiet machine
/// (most of it loading Apollo's modules) and up to 10 s on a loaded two-core one.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(45);

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("apollo")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Why the scripts cannot run on this machine, if they cannot (looked up once per run).
fn missing() -> Option<&'static str> {
    static MISSING: OnceLock<Option<String>> = OnceLock::new();
    MISSING
        .get_or_init(|| {
            match Command::new("node").arg("--version").output() {
                Err(err) => return Some(format!("`node` cannot be started ({err})")),
                Ok(out) if !out.status.success() => return Some("`node --version` failed".into()),
                Ok(_) => {}
            }
            let lock = package_dir().join("node_modules/.package-lock.json");
            (!lock.is_file()).then(|| {
                "tests/apollo/node_modules is missing (scripts/test.sh installs it, or run \
                 `npm ci` in tests/apollo)"
                    .to_owned()
            })
        })
        .as_deref()
}

/// Whether this test can run: under CI a missing Node or package fails it, elsewhere it is
/// skipped with the reason.
fn runnable() -> bool {
    match missing() {
        None => true,
        Some(reason) if in_ci() => panic!("the Apollo Client tests cannot run: {reason}"),
        Some(reason) => {
            eprintln!("skipping an Apollo Client test: {reason}");
            false
        }
    }
}

/// A scenario script running under Node. Killed when dropped, so a failing test leaves no
/// process behind.
struct Script {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
    deadline: Instant,
}

impl Script {
    /// Runs `tests/apollo/{name}.mjs` with `input`.
    fn start(name: &'static str, input: Value) -> Self {
        let mut child = Command::new("node")
            .arg(format!("{name}.mjs"))
            .current_dir(package_dir())
            .env("APOLLO_TEST_INPUT", input.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("{name}: cannot start node: {err}"));
        // Pipes are read on threads of their own, so the runtime never blocks on them.
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel(16);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let started = Instant::now();
        Self {
            name,
            child,
            lines,
            stderr: Some(stderr),
            started,
            deadline: started + SCRIPT_TIMEOUT,
        }
    }

    /// The next line the script prints, as JSON.
    async fn next(&mut self) -> Value {
        match tokio::time::timeout_at(self.deadline, self.lines.recv()).await {
            Ok(Some(line)) => serde_json::from_str(&line).unwrap_or_else(|_| {
                panic!("{}: printed a line that is not JSON: {line}", self.name)
            }),
            Ok(None) => {
                let (status, stderr) = self.exit().await;
                panic!(
                    "{} ended ({status}) without its result:\n{stderr}",
                    self.name
                )
            }
            Err(_) => self.kill("printed nothing more"),
        }
    }

    /// Waits for the line saying the script's subscription is set up.
    async fn ready(&mut self) {
        let line = self.next().await;
        assert_eq!(
            line["type"], "ready",
            "{}: expected ready, got {line}",
            self.name
        );
    }

    /// Waits for the script to succeed; returns its result line.
    async fn result(mut self) -> Value {
        let line = self.next().await;
        let (status, stderr) = self.exit().await;
        assert!(
            status.success(),
            "{} failed ({status}):\n{stderr}",
            self.name
        );
        assert_eq!(
            line["type"], "result",
            "{}: expected its result, got {line}",
            self.name
        );
        eprintln!(
            "{}: {:?} ({} ms inside node)",
            self.name,
            self.started.elapsed(),
            line["ms"]
        );
        line
    }

    /// Waits for the process to end; its status and everything it wrote to stderr.
    async fn exit(&mut self) -> (ExitStatus, String) {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
                return (status, stderr.unwrap_or_default());
            }
            if Instant::now() >= self.deadline {
                self.kill("did not exit");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
        panic!(
            "{} {what} within {SCRIPT_TIMEOUT:?}, killed:\n{}",
            self.name,
            stderr.unwrap_or_default()
        )
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Ana, signed in, with a session of hers.
async fn owner_with_session(app: &TestApp, title: &str) -> (TestUser, String) {
    let ana = app.sign_in("ana@example.com").await;
    let (session, _) = create_session(app, &ana, title).await;
    (ana, session)
}

/// The recorded requests of a persisted-queries run, one line each: method, what was sent
/// and what came back.
fn wire(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let sent = if e["withQuery"] == true {
                "query+hash"
            } else {
                "hash"
            };
            let answer = match e["codes"][0].as_str() {
                Some(code) => code,
                None if e["hasData"] == true => "data",
                None => "nothing",
            };
            format!("{} {sent} -> {answer}", e["method"].as_str().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn persisted_queries_miss_then_register_then_hit_by_hash_over_post_and_get() {
    if !runnable() {
        return;
    }
    let app = TestApp::spawn().await;
    let (ana, session) = owner_with_session(&app, "Beach day").await;

    let result = Script::start(
        "persisted-queries",
        json!({
            "url": app.base_url,
            "token": ana.token,
            "sessionId": session,
            "sessionTitle": "Beach day",
            "userId": ana.id,
        }),
    )
    .result()
    .await;

    assert_eq!(
        wire(&result["post"]),
        [
            "POST hash -> PERSISTED_QUERY_NOT_FOUND",
            "POST query+hash -> data",
            "POST hash -> data",
        ]
    );
    // A fresh client: the query registered above is a GET hit at once; a new one misses over
    // GET, registers over POST, then hits over GET.
    assert_eq!(
        wire(&result["get"]),
        [
            "GET hash -> data",
            "GET hash -> PERSISTED_QUERY_NOT_FOUND",
            "POST query+hash -> data",
            "GET hash -> data",
        ]
    );
}

#[tokio::test]
async fn batch_http_link_carries_several_queries_in_one_request() {
    if !runnable() {
        return;
    }
    let app = TestApp::spawn().await;
    let (ana, session) = owner_with_session(&app, "Beach day").await;

    let result = Script::start(
        "batch",
        json!({
            "url": app.base_url,
            "token": ana.token,
            "userId": ana.id,
            "email": ana.email,
            "sessionId": session,
            "sessionTitle": "Beach day",
        }),
    )
    .result()
    .await;

    assert_eq!(result["requests"], 1);
    assert_eq!(
        result["operations"],
        json!(["BatchMe", "BatchSession", "BatchSessions", "BatchSession"])
    );
    assert_eq!(result["me"]["id"], ana.id);
    assert_eq!(result["session"]["title"], "Beach day");
    assert_eq!(result["sessions"], json!([session]));
    assert!(result["unknown"].is_null());
}

/// A member follows `photoAdded` through Apollo's `link`, the owner uploads a photo, and the
/// member's client receives it; closing the client ends the subscription on the server.
async fn photo_added_arrives_through(link: &str) {
    let app = TestApp::spawn().await;
    let ana = app.sign_in("ana@example.com").await;
    let ben = app.sign_in("ben@example.com").await;
    let (session, code) = create_session(&app, &ana, "Beach day").await;
    join(&app, &ben, &code).await.ok();

    let mut script = Script::start(
        "photo-added",
        json!({ "url": app.base_url, "token": ben.token, "sessionId": session, "link": link }),
    );
    script.ready().await;
    // The server counts the member as watching once the subscription is live: no photo can
    // be missed after that.
    app.wait_online(1).await;
    let bytes = photo_bytes(7, 4096);
    let photo_id = upload(&app, &ana, &session, &bytes).await;

    let result = script.result().await;
    let photo = &result["event"]["photo"];
    assert_eq!(photo["id"], photo_id, "{link}");
    assert_eq!(photo["status"], "READY");
    assert_eq!(photo["uploader"]["id"], ana.id);
    assert_eq!(photo["uploader"]["name"], "ana");
    assert_eq!(result["cached"], true);
    // A member's URL is the copy without metadata, not Ana's original.
    assert!(
        photo["url"].as_str().unwrap().contains("/shared"),
        "{photo}"
    );
    app.wait_online(0).await;
}

#[tokio::test]
async fn graphql_ws_link_receives_photo_added() {
    if !runnable() {
        return;
    }
    photo_added_arrives_through("graphql-ws").await;
}

#[tokio::test]
async fn legacy_websocket_link_receives_photo_added() {
    if !runnable() {
        return;
    }
    photo_added_arrives_through("legacy").await;
}

#[tokio::test]
async fn normalised_cache_updates_a_photo_by_id_without_refetching() {
    if !runnable() {
        return;
    }
    let app = TestApp::spawn().await;
    let (ana, session) = owner_with_session(&app, "Beach day").await;

    let result = Script::start(
        "cache",
        json!({ "url": app.base_url, "token": ana.token, "sessionId": session }),
    )
    .result()
    .await;

    // The watched photo went PENDING -> READY from the mutation's answer alone.
    assert_eq!(result["detailStatuses"], json!(["PENDING", "READY"]));
    // The watched list showed the URL it fetched, then the one a later query fetched.
    let urls = result["listUrls"].as_array().unwrap();
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert_ne!(urls[0], urls[1]);
    assert_eq!(
        result["wire"],
        json!({ "detail": 1, "list": 1, "photoUrl": 1, "total": 5 })
    );
    // And the server agrees the photo is ready.
    let photo = app
        .gql_as(
            &ana,
            "query($id: ID!) { photo(id: $id) { status } }",
            json!({ "id": result["photoId"] }),
        )
        .await;
    assert_eq!(photo.ok()["photo"]["status"], "READY");
}
