//! Safe defaults: when dev sign-in turns itself on, which values the settings refuse.

#![allow(clippy::unwrap_used)]

use super::{Config, settings_from_args};

/// Resolves settings from flags, with a data directory of the test's own.
fn resolve(args: &[&str]) -> anyhow::Result<Config> {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = format!("--data-dir={}", dir.path().display());
    let mut all = vec!["photon", data_dir.as_str()];
    all.extend_from_slice(args);
    settings_from_args(all)
        .map_err(anyhow::Error::from)?
        .resolve()
}

const POSTGRES: &str = "--database-url=postgres://photon@db.internal/photon";
const SECRET: &str = "--jwt-secret=0123456789abcdef0123456789abcdef0123456789";

#[test]
fn dev_sign_in_defaults_on_only_on_loopback_everywhere() {
    let cases: &[(&[&str], bool)] = &[
        // The embedded default on loopback, with no public URL (it follows the bind address).
        (&["--bind=127.0.0.1:8080"], true),
        (
            &[
                "--bind=127.0.0.1:8080",
                "--public-url=http://localhost:8080",
            ],
            true,
        ),
        (
            &["--bind=[::1]:8080", "--public-url=http://[::1]:8080"],
            true,
        ),
        // A loopback bind reached through a public name (a tunnel, a reverse proxy).
        (
            &[
                "--bind=127.0.0.1:8080",
                "--public-url=https://photos.example",
            ],
            false,
        ),
        (
            &[
                "--bind=127.0.0.1:8080",
                "--public-url=http://192.168.1.20:8080",
            ],
            false,
        ),
        // A public bind, whatever the URL says.
        (&["--bind=0.0.0.0:8080"], false),
        (
            &["--bind=0.0.0.0:8080", "--public-url=http://localhost:8080"],
            false,
        ),
        // A production database, or a real sign-in configured.
        (&["--bind=127.0.0.1:8080", POSTGRES, SECRET], false),
        (
            &[
                "--bind=127.0.0.1:8080",
                "--github-client-id=x",
                "--github-client-secret=y",
            ],
            false,
        ),
        // Said explicitly, either way.
        (&["--bind=0.0.0.0:8080", "--dev-sign-in=true"], true),
        (&["--bind=127.0.0.1:8080", "--dev-sign-in=false"], false),
    ];
    for (args, expected) in cases {
        let config = resolve(args).unwrap();
        assert_eq!(config.dev_sign_in, *expected, "{args:?}");
    }
}

#[test]
fn the_documented_placeholder_secret_is_refused() {
    let placeholder = "--jwt-secret=change-me-to-32-or-more-random-bytes-please";
    let err = resolve(&[POSTGRES, placeholder]).unwrap_err();
    assert!(err.to_string().contains("placeholder"), "{err}");
    assert!(resolve(&[POSTGRES, SECRET]).is_ok());
}

#[test]
fn out_of_range_settings_are_refused() {
    let refused = [
        "--database-max-connections=0",
        "--access-token-ttl-secs=0",
        "--refresh-token-ttl-days=0",
        "--max-photo-bytes=0",
        "--upload-url-ttl-secs=0",
        "--upload-url-ttl-secs=3600",
        "--download-url-ttl-secs=0",
        "--sweep-interval-secs=86401",
        "--event-retention-hours=0",
        "--push-coalesce-ms=600001",
        "--push-poll-ms=600001",
        "--max-query-depth=0",
        "--max-query-complexity=0",
        "--shutdown-grace-secs=3601",
        "--ws-keepalive-secs=0",
        "--ws-max-subscriptions=0",
        "--http-header-timeout-ms=0",
        "--max-connections=0",
        "--max-connections-per-ip=0",
        "--ws-write-timeout-ms=0",
        "--ws-anonymous-idle-ms=0",
        "--database-statement-timeout-ms=0",
        "--database-lock-timeout-ms=0",
        "--s3-operation-timeout-ms=0",
        "--s3-attempt-timeout-ms=0",
        "--access-token-ttl-secs=-1",
        "--max-connections=99999999999999999999",
    ];
    for arg in refused {
        let err = settings_from_args(["photon", arg]).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::ValueValidation,
            "{arg}: {err}"
        );
    }
    // The defaults themselves are in range, and so are the extremes that mean "off".
    assert!(resolve(&[]).is_ok());
    assert!(resolve(&["--sweep-interval-secs=0", "--push-poll-ms=0"]).is_ok());
}
