//! The `photon` binary as an operator uses it: help, migrate, export-schema, token, and
//! serving the embedded default with no configuration at all.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary with a clean environment: nothing from the caller's shell leaks in.
fn photon(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_photon"));
    command.env_clear().env("RUST_LOG", "info").current_dir(dir);
    command
}

#[test]
fn help_documents_every_setting_without_showing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let output = photon(dir.path())
        .arg("--help")
        .env("DATABASE_URL", "postgres://photon:hunter2@db/photon")
        .env("PHOTON_JWT_SECRET", "supersecretvaluethatmustnotleak!!")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for name in [
        "PHOTON_BIND",
        "PHOTON_PUBLIC_URL",
        "PHOTON_DATA_DIR",
        "DATABASE_URL",
        "PHOTON_JWT_SECRET",
        "PHOTON_DEV_SIGN_IN",
        "PHOTON_APP_REDIRECT_URIS",
        "PHOTON_APP_JOIN_URL",
    ] {
        assert!(help.contains(name), "--help does not mention {name}");
    }
    for subcommand in ["serve", "migrate", "export-schema", "token"] {
        assert!(
            help.contains(subcommand),
            "--help does not mention {subcommand}"
        );
    }
    assert!(
        !help.contains("hunter2") && !help.contains("supersecret"),
        "{help}"
    );
}

#[test]
fn export_schema_prints_the_committed_schema() {
    let dir = tempfile::tempdir().unwrap();
    let output = photon(dir.path())
        .args(["export-schema", "--out", "-"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql")).unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), committed);
}

#[test]
fn migrate_and_token_work_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let status = photon(dir.path()).arg("migrate").status().unwrap();
    assert!(status.success());
    assert!(dir.path().join("data/photon.db").exists());
    let secret = dir.path().join("data/jwt-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the generated secret must be private");
    }

    let output = photon(dir.path())
        .args(["token", "--email", "ana@example.com"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");

    let output = photon(dir.path())
        .args(["token", "--email", "not-an-email"])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[test]
fn a_non_embedded_database_needs_a_configured_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = photon(dir.path())
        .arg("migrate")
        .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("PHOTON_JWT_SECRET"));
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_starts_with_no_configuration_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0 instead of 8080 so the test never collides with a server already running.
    let mut child = photon(dir.path())
        .env("PHOTON_BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut addr = None;
    for line in logs.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_owned);
            assert!(line.contains("dev_sign_in=true"), "{line}");
            assert!(line.contains("graphiql=http://127.0.0.1:"), "{line}");
            assert!(
                !line.contains("127.0.0.1:0/"),
                "the real port, not 0: {line}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the server did not start");
    }
    let addr = addr.expect("the server logs its address");
    assert!(http_get(&addr, "/readyz").contains("\"ready\""));
    // The issuer noted for `photon token` is the URL actually served, port included.
    let issuer = std::fs::read_to_string(dir.path().join("data/issuer")).unwrap();
    assert_eq!(issuer, format!("http://{addr}/"));

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    assert!(dir.path().join("data/photon.db").exists());
}

#[test]
fn settings_go_after_the_subcommand_and_help_groups_them() {
    let dir = tempfile::tempdir().unwrap();
    let output = photon(dir.path())
        .args([
            "token",
            "--email",
            "ana@example.com",
            "--data-dir",
            "elsewhere",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("elsewhere/photon.db").exists());
    assert!(!dir.path().join("data").exists());

    let help = photon(dir.path())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for heading in [
        "Database:",
        "Tokens and sign-in:",
        "Sign-in providers:",
        "Photos:",
        "S3 storage:",
        "Push notifications:",
        "Query cost:",
        "Connections:",
        "Rate limits:",
    ] {
        assert!(help.contains(heading), "no {heading} heading in:\n{help}");
    }
    assert!(help.contains("PHOTON_BIND"), "{help}");

    // Before the subcommand, settings would be silently ignored: refused instead.
    let output = photon(dir.path())
        .args([
            "--data-dir",
            "elsewhere",
            "token",
            "--email",
            "ana@example.com",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[test]
fn token_warns_when_the_server_checks_another_issuer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/issuer"), "http://127.0.0.1:9999/").unwrap();
    let output = photon(dir.path())
        .args(["token", "--email", "ana@example.com"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another issuer"), "{stderr}");
    assert!(stderr.contains("http://127.0.0.1:9999/"), "{stderr}");

    std::fs::write(dir.path().join("data/issuer"), "http://127.0.0.1:8080/").unwrap();
    let output = photon(dir.path())
        .args(["token", "--email", "ana@example.com"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("another issuer"), "{stderr}");
}
