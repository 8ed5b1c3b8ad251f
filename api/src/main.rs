//! `photon`: serve the API (default), migrate the database, export the schema, or mint a
//! token for local use. Every setting is a flag or an environment variable: `photon --help`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use photon::app::{AppState, Application};
use photon::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "photon",
    version,
    about = "Photon: a live shared photo album, as a GraphQL API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Write the GraphQL schema (SDL) to a file, or `-` for standard output.
    ExportSchema {
        #[arg(long, default_value = "schema.graphql")]
        out: PathBuf,
    },
    /// Print an access token for a user (created if needed), for local use with curl or
    /// GraphiQL.
    Token {
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    photon::telemetry::init(&cli.settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.settings).await,
        Command::Migrate => {
            let config = cli.settings.resolve()?;
            photon::db::migrate_database(&config).await?;
            tracing::info!("database is up to date");
            Ok(())
        }
        Command::ExportSchema { out } => {
            let sdl = photon::graphql::sdl();
            if out.as_os_str() == "-" {
                print!("{sdl}");
            } else {
                std::fs::write(&out, sdl)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                eprintln!("wrote {}", out.display());
            }
            Ok(())
        }
        Command::Token { email } => {
            let config = cli.settings.resolve()?;
            let stats = std::sync::Arc::default();
            let db = photon::db::connect(&config, std::sync::Arc::clone(&stats)).await?;
            photon::db::migrate(&db).await?;
            let state = AppState::new(db, stats, config)?;
            let token = photon::auth::service::mint_token(&state.db, &state.tokens, &email)
                .await
                .map_err(|e| anyhow::anyhow!("cannot mint a token: {}", e.client_message()))?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let config = settings.resolve()?;
    let dev_sign_in = config.dev_sign_in;
    let public_url = config.public_url.clone();
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, graphiql = %format!("{public_url}graphql"), dev_sign_in, "photon is listening");
    app.run_until_stopped(shutdown_signal()).await
}

/// Completes on Ctrl-C or SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
