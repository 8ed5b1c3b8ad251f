//! An S3-compatible server of one test's own, on its own port, so the test can stall it,
//! stop it and start it again (the shared one `scripts/test.sh` runs must stay up). It is
//! `s3s-fs` from crates.io, which the test command installs: it checks SigV4 signatures and
//! `x-amz-checksum-sha256`, so what works against it works against a real store.

// Test support: a failed unwrap fails the test that called it, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};

use rustix::process::{Pid, Signal, kill_process};

use crate::ports::{free_port, wait_until_accepting};

const ACCESS_KEY: &str = "photon-fault-test";
const BUCKET: &str = "photos";

/// A running (or stopped) `s3s-fs` serving a temporary directory; killed when dropped.
pub struct S3Server {
    dir: tempfile::TempDir,
    port: u16,
    secret: String,
    child: Option<Child>,
}

impl S3Server {
    /// `s3s-fs` on a free port with one empty bucket; panics if the binary is missing.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(BUCKET)).unwrap();
        let port = free_port();
        let mut server = Self {
            dir,
            port,
            secret: uuid::Uuid::new_v4().simple().to_string(),
            child: None,
        };
        server.resume();
        server
    }

    /// The settings that point Photon at this server's bucket.
    pub fn args(&self) -> Vec<String> {
        vec![
            format!("--s3-bucket={BUCKET}"),
            format!("--s3-endpoint=http://127.0.0.1:{}", self.port),
            format!("--s3-access-key-id={ACCESS_KEY}"),
            format!("--s3-secret-access-key={}", self.secret),
            "--s3-force-path-style=true".to_owned(),
        ]
    }

    /// Freezes the server: connections are still accepted by the kernel, but nothing is
    /// answered, as with a store that hangs.
    pub fn stall(&self) {
        self.signal(Signal::STOP);
    }

    /// Lets a stalled server answer again.
    pub fn unstall(&self) {
        self.signal(Signal::CONT);
    }

    /// Kills the server: connections are refused until [`resume`](Self::resume).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process dies of SIGKILL too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and directory; returns once it accepts.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the S3 server is already running");
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", &self.secret])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "s3s-fs is not installed: cargo install s3s-fs --version 0.14.1 --features binary",
            );
        self.child = Some(child);
        wait_until_accepting(self.port, "s3s-fs");
    }

    fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the S3 server is not running");
        let pid = Pid::from_child(child);
        kill_process(pid, signal).unwrap();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
