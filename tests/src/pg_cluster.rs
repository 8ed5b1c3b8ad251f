//! A Postgres cluster of one test's own, on its own port, so the test can stop it and start
//! it again (the shared server the other tests use must stay up). Made with the server
//! binaries Debian installs under `/usr/lib/postgresql/<version>/bin` (scripts/test.sh
//! makes sure they are there and names the directory in `PHOTON_TEST_PG_BINDIR`); when the
//! tests run as root, the cluster belongs to the `postgres` system user, since initdb and
//! postgres refuse to run as root.

// Test support: a failed unwrap fails the test that called it, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A running (or stopped) throwaway cluster; removed when dropped.
pub struct Cluster {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    run_as: Option<&'static str>,
}

impl Cluster {
    /// Creates the cluster and starts it. `fsync` is off, since nothing here has to survive a
    /// crash of the machine; commits still wait for their WAL to reach the kernel
    /// (`synchronous_commit` stays on), so a committed row survives the server being killed,
    /// as it would in production.
    pub async fn start() -> Self {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .unwrap()
    }

    fn start_blocking() -> Self {
        let bindir = bindir();
        let root = rustix::process::geteuid().is_root();
        let run_as = root.then_some("postgres");
        // The postgres user must be able to reach the directory.
        let dir = tempfile::Builder::new()
            .prefix("photon-fault-pg.")
            .tempdir_in("/tmp")
            .unwrap();
        if let Some(user) = run_as {
            let chown = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(
                chown.success(),
                "cannot give {} to {user}",
                dir.path().display()
            );
        }
        let port = crate::ports::free_port();
        let cluster = Self {
            bindir,
            dir,
            port,
            run_as,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "--encoding=UTF8",
            ],
        );
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             max_connections = 100\nfsync = off\nfull_page_writes = off\n",
            cluster.dir.path().display()
        );
        let conf_path = format!("{data}/postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        cluster.clone_parts().start_server(&data);
        cluster
    }

    /// The admin URL (database `postgres`).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A URL for database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server the way a crash or a failover does to its clients: `immediate`
    /// closes every connection at once.
    pub async fn stop(&self) {
        let (runner, data) = (self.clone_parts(), self.data_dir());
        tokio::task::spawn_blocking(move || {
            runner.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        })
        .await
        .unwrap();
    }

    /// Starts the stopped server again, on the same port.
    pub async fn resume(&self) {
        let (runner, data) = (self.clone_parts(), self.data_dir());
        tokio::task::spawn_blocking(move || runner.start_server(&data))
            .await
            .unwrap();
    }

    fn data_dir(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    /// What `run` needs, without the directory guard (which stays with the cluster).
    fn clone_parts(&self) -> Runner {
        Runner {
            bindir: self.bindir.clone(),
            cwd: self.dir.path().to_owned(),
            run_as: self.run_as,
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        self.clone_parts().run(tool, args);
    }
}

struct Runner {
    bindir: PathBuf,
    cwd: PathBuf,
    run_as: Option<&'static str>,
}

impl Runner {
    fn start_server(&self, data: &str) {
        let log = format!("{}/postgres.log", self.cwd.display());
        self.run(
            "pg_ctl",
            &["-D", data, "-l", &log, "-w", "-t", "60", "start"],
        );
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self.output(tool, args);
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn output(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bindir.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        // The postgres user may not be allowed into the caller's working directory.
        command.args(args).current_dir(&self.cwd).output().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let runner = self.clone_parts();
        // Already stopped is fine: the outcome does not matter.
        let _ = runner.output("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

/// The newest server binaries: `PHOTON_TEST_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PHOTON_TEST_PG_BINDIR")
        && !dir.is_empty()
    {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("no Postgres server binaries (Debian: apt-get install postgresql); scripts/test.sh installs them")
}
