//! A real headless Chromium, driven over its DevTools protocol: the browser's own WebSocket
//! (`--remote-debugging-port`), spoken with the tokio-tungstenite the suite already uses, so
//! nothing is downloaded and no driver process sits in between. Each browser gets a fresh
//! profile and one page; every event the page raises is kept so that a test can check what
//! it requested.
//!
//! Chromium is `$PHOTON_TEST_CHROMIUM`, or `chromium` / `chromium-browser` on `PATH`
//! (`scripts/test.sh` installs Debian's `chromium` when it is missing). Without one, tests
//! fail under `CI=true` and are skipped, saying so, elsewhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one DevTools command, or one wait for the page, may take. GraphiQL's bundle is
/// parsed on a busy 2-core CI machine while other tests run.
pub const WAIT: Duration = Duration::from_secs(45);

/// The flags that keep Chromium to the page it is given: no sandbox (containers run tests
/// as root), no GPU, no QUIC, and none of the background requests a profile makes on its
/// own (updates, sync, safe-browsing lists, first-run pages).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
];

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct Browser {
    child: Child,
    sink: tokio::sync::Mutex<Sink>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
    profile: tempfile::TempDir,
}

/// The page a browser was opened with.
pub struct Page<'a> {
    browser: &'a Browser,
    session: String,
}

/// The Chromium to run, if there is one.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PHOTON_TEST_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

impl Browser {
    /// Starts Chromium, or returns `None` (after saying why) when there is none and this is
    /// not CI. Under `CI=true` a missing Chromium fails the test.
    pub async fn launch() -> Option<Self> {
        let Some(binary) = chromium() else {
            let why = "no Chromium: install Debian's `chromium` (scripts/test.sh does) or set \
                       PHOTON_TEST_CHROMIUM";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}");
            }
            eprintln!("skipping the browser test: {why}");
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(&binary)
            .args(FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let endpoint = devtools_endpoint(profile.path()).await;
        let (socket, _) = tokio_tungstenite::connect_async(&endpoint)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Chromium's DevTools at {endpoint}: {e}"));
        let (sink, mut stream) = socket.split();
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let reader = {
            let (pending, events) = (pending.clone(), events.clone());
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    match value["id"].as_u64() {
                        Some(id) => {
                            if let Some(tx) = pending.lock().unwrap().remove(&id) {
                                let _ = tx.send(value);
                            }
                        }
                        None => events.lock().unwrap().push(value),
                    }
                }
            })
        };
        Some(Self {
            child,
            sink: tokio::sync::Mutex::new(sink),
            pending,
            events,
            next_id: AtomicU64::new(1),
            reader,
            profile,
        })
    }

    /// Sends one DevTools command (to a page when `session` is given) and returns its
    /// result; an error answer fails the test.
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.sink
            .lock()
            .await
            .send(Message::Text(command.to_string().into()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer from Chromium"))
            .unwrap_or_else(|_| panic!("{method}: Chromium went away; {}", self.log()));
        if let Some(error) = answer.get("error") {
            panic!("{method} failed: {error}");
        }
        answer["result"].clone()
    }

    /// Opens a page with its network, page and runtime events on, and a recorder of
    /// Content-Security-Policy violations and uncaught errors that runs before any of the
    /// page's own scripts.
    pub async fn open(&self) -> Page<'_> {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        let page = Page {
            browser: self,
            session: attached["sessionId"].as_str().unwrap().to_owned(),
        };
        for domain in ["Network.enable", "Page.enable", "Runtime.enable"] {
            page.call(domain, json!({})).await;
        }
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": RECORDER }),
        )
        .await;
        page
    }

    /// Chromium's own log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }

    /// Closes the browser and waits (briefly) for it to exit, so its profile can go.
    pub async fn close(mut self) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let command = json!({ "id": id, "method": "Browser.close", "params": {} });
        let _ = self
            .sink
            .lock()
            .await
            .send(Message::Text(command.to_string().into()))
            .await;
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.reader.abort();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Chromium writes the port it picked, and its browser endpoint's path, into
/// `DevToolsActivePort` in the profile once it listens.
async fn devtools_endpoint(dir: &Path) -> String {
    let file = dir.join("profile").join("DevToolsActivePort");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return format!("ws://127.0.0.1:{port}{path}");
            }
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default();
            panic!("Chromium did not open its DevTools port: {log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Installed into every document before its scripts run.
const RECORDER: &str = r#"
window.__photonTest = { violations: [], errors: [] };
document.addEventListener('securitypolicyviolation', function (e) {
  window.__photonTest.violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
window.addEventListener('error', function (e) {
  window.__photonTest.errors.push(String(e.message));
});
window.addEventListener('unhandledrejection', function (e) {
  window.__photonTest.errors.push('unhandled rejection: ' + String(e.reason));
});
"#;

impl Page<'_> {
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params).await
    }

    /// Navigates and waits for the load event's answer (not for the page's scripts).
    pub async fn goto(&self, url: &str) {
        let answer = self.call("Page.navigate", json!({ "url": url })).await;
        assert!(
            answer.get("errorText").is_none(),
            "navigating to {url}: {answer}"
        );
    }

    pub async fn reload(&self) {
        self.call("Page.reload", json!({})).await;
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value. A thrown
    /// exception is returned as `Err` with its description.
    pub async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "returnByValue": true,
                    "awaitPromise": true,
                }),
            )
            .await;
        match answer.get("exceptionDetails") {
            Some(details) => Err(details.to_string()),
            None => Ok(answer["result"]["value"].clone()),
        }
    }

    pub async fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    /// Polls `expression` until it is truthy and returns its value. (Right after a
    /// navigation the old document may still answer, or none at all: both count as not yet.)
    pub async fn wait_for(&self, what: &str, expression: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let last = match self.try_eval(expression).await {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => value,
                Err(error) => json!(error),
            };
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last answer: {last}; page errors: {}",
                    self.recorded().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the focused element, as a keyboard's input method would.
    pub async fn insert_text(&self, text: &str) {
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// A PNG of the element `selector` names, as the browser painted it (at one device
    /// pixel per CSS pixel).
    pub async fn screenshot(&self, selector: &str) -> Vec<u8> {
        let rect = self
            .eval(&format!(
                "(() => {{ const r = document.querySelector({selector:?}).getBoundingClientRect(); \
                 return {{ x: r.left + window.scrollX, y: r.top + window.scrollY, \
                 width: r.width, height: r.height }}; }})()"
            ))
            .await;
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {
                        "x": rect["x"], "y": rect["y"],
                        "width": rect["width"], "height": rect["height"],
                        "scale": 1,
                    },
                }),
            )
            .await;
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }

    /// What the recorder saw in the current document: CSP violations and uncaught errors.
    pub async fn recorded(&self) -> Value {
        self.try_eval("window.__photonTest")
            .await
            .unwrap_or_else(|e| json!(e))
    }

    /// The events of `method` this page raised so far, oldest first.
    pub fn events(&self, method: &str) -> Vec<Value> {
        self.browser
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == method && e["sessionId"] == self.session.as_str())
            .map(|e| e["params"].clone())
            .collect()
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
