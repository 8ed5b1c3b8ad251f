//! A NATS server of one test's own, on its own port, so the test can stop it under running
//! replicas and start it again. It is Debian's `nats-server` (`PHOTON_TEST_NATS_BIN`, which
//! scripts/test.sh sets and installs when missing, else the one on the PATH).

// Test support: a failed unwrap fails the test that called it, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};

use crate::ports::{free_port, wait_until_accepting};

/// A running (or stopped) `nats-server`; killed when dropped.
pub struct NatsServer {
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> Self {
        let port = free_port();
        let mut server = Self { port, child: None };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once, as a crash would: clients see their connections drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port; returns once it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the NATS server is already running");
        let bin = std::env::var("PHOTON_TEST_NATS_BIN").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} (Debian package nats-server): {e}"));
        self.child = Some(child);
        wait_until_accepting(self.port, "nats-server");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
