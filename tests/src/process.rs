//! The `photon` binary as an operator runs it: built for this profile, started with its
//! arguments, its JSON log lines collected as they come.

// Test support: a failed unwrap fails the test that called it, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// The `photon` binary of this build (`target/<profile>/photon`, beside this test's own
/// executable), brought up to date first: Cargo builds a package's binaries only for that
/// package's own tests, and these live in another package. (Cargo releases the build
/// directory's lock before it runs tests, so this build does not wait on the one running
/// us; when the binary is current it only checks.)
pub async fn photon_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let mut build = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    build
        .args(["build", "--quiet", "-p", "photon", "--bin", "photon"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // What Cargo set for running this test is not part of a build: some build scripts
    // (ring's) rerun when `CARGO_MANIFEST_DIR` changes, which would rebuild half the tree here
    // and again at the next plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
                "LD_LIBRARY_PATH",
            ]
            .contains(&name.as_ref())
        {
            build.env_remove(name.as_ref());
        }
    }
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let output = tokio::task::spawn_blocking(move || build.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "cannot build the photon binary: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = dir.join(format!("photon{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.exists(), "no binary at {}", binary.display());
    binary
}

/// The binary, running, and the log lines it has written so far.
pub struct Process {
    pub child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Process {
    pub async fn start(args: &[String]) -> Self {
        let mut child = Command::new(photon_binary().await)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        // A thread of its own: reading a pipe blocks.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().unwrap().push(value);
            }
        });
        Self { child, lines }
    }

    pub fn messages(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|line| line["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits for the log line announcing the address, and returns it.
    pub async fn address(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|line| line["message"] == "photon is listening")
                .map(|line| line["addr"].as_str().unwrap().to_owned());
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start: {:?}",
                self.lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Only if a failed assertion left it running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Waits until a log line has `message`.
    pub async fn logged(&self, message: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.messages().iter().any(|m| m == message) {
            assert!(
                Instant::now() < deadline,
                "never logged {message:?}: {:?}",
                self.lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
