//! Logging to standard error: `RUST_LOG` filters (default `info`), text for people or JSON
//! for collectors.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal; escape codes in collected logs are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // Standard output is for what a command prints (a token, the schema).
        .with_writer(std::io::stderr)
        // When standard error goes away (a closed pipe), tracing-subscriber would report the
        // failed write with `eprintln!`, which panics on that same closed pipe, in whatever
        // task was logging: a lost log line must never take the server down with it.
        .log_internal_errors(false);
    let _ = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
