//! `photon`: serve the API (default), run only the photo processing workers, migrate the
//! database, export the schema, or mint a token for local use. Every setting is a flag or an environment variable: `photon --help`.
//! Settings go before a subcommand's name when there is none (`photon --bind …`) and after it
//! otherwise (`photon serve --bind …`, `photon token --email … --data-dir …`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use photon::app::Application;
use photon::config::Settings;
use photon::deps::Deps;

/// mimalloc rather than glibc's malloc: a GraphQL request allocates and frees thousands of
/// small blocks (parts of the document, the result tree, futures), and glibc's malloc was a
/// fifth of the server's CPU on the session screen. With mimalloc the screen costs about a
/// third less CPU per request; jemalloc came close but builds slower (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "photon",
    version,
    about = "Photon: a live shared photo album, as a GraphQL API",
    args_conflicts_with_subcommands = true
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
    Serve {
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Process photos only (thumbnails, previews, copies without metadata): no API and no
    /// sockets, so processing scales apart from serving. Replicas that only serve run with
    /// PHOTON_PROCESSING_CONCURRENCY=0.
    Worker {
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Bring the database schema up to date, then exit.
    Migrate {
        #[command(flatten)]
        settings: Box<Settings>,
    },
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
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// List reported photos (photo, session, uploader, count, hidden or not, reporters,
    /// reasons), or with `--resolve <photo-id>` decide one: `--keep` unhides it and closes its
    /// reports, `--remove` deletes it as its uploader would.
    Reports {
        #[arg(long, value_name = "PHOTO_ID")]
        resolve: Option<uuid::Uuid>,
        #[arg(long, requires = "resolve", conflicts_with = "remove")]
        keep: bool,
        #[arg(long, requires = "resolve")]
        remove: bool,
        #[command(flatten)]
        settings: Box<Settings>,
    },
}

/// Where a serving replica notes the issuer its tokens are checked against, so `photon token`
/// run on the same data directory can tell when it would mint tokens that server refuses.
const ISSUER_FILE: &str = "issuer";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        settings: Box::new(cli.settings),
    });
    let log_format = match &command {
        Command::Serve { settings }
        | Command::Worker { settings }
        | Command::Migrate { settings }
        | Command::Token { settings, .. }
        | Command::Reports { settings, .. } => settings.log_format.clone(),
        Command::ExportSchema { .. } => "text".to_owned(),
    };
    photon::telemetry::init(&log_format);
    match command {
        Command::Serve { settings } => serve(*settings).await,
        Command::Worker { settings } => {
            let config = settings.resolve()?;
            photon::processing::standalone::run(config, shutdown_signal()).await
        }
        Command::Migrate { settings } => {
            let config = settings.resolve()?;
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
        Command::Token { email, settings } => token(&email, *settings).await,
        Command::Reports {
            resolve,
            keep,
            remove,
            settings,
        } => reports(resolve, keep, remove, *settings).await,
    }
}

/// `photon reports`: the operators' view of reported photos.
async fn reports(
    resolve: Option<uuid::Uuid>,
    keep: bool,
    remove: bool,
    settings: Settings,
) -> anyhow::Result<()> {
    use photon::service::reports::{self, Decision};
    let config = settings.resolve()?;
    let stats = std::sync::Arc::default();
    let db = photon::db::connect(&config, stats).await?;
    photon::db::migrate(&db).await?;
    let deps = Deps::new(db, std::sync::Arc::new(config))?;
    let Some(photo_id) = resolve else {
        let open = reports::open_reports(&deps.db)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list reports: {}", e.detail()))?;
        print!("{}", reports::format_reports(&open));
        return Ok(());
    };
    let decision = match (keep, remove) {
        (true, false) => Decision::Keep,
        (false, true) => Decision::Remove,
        _ => anyhow::bail!("say --keep or --remove"),
    };
    let found = reports::resolve(
        &deps.db,
        deps.store.as_ref(),
        deps.config.upload_rules.upload_url_ttl,
        photo_id,
        decision,
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot resolve: {}", e.detail()))?;
    if !found {
        anyhow::bail!("no photo {photo_id}");
    }
    println!("{photo_id}: {}", if keep { "kept" } else { "removed" });
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let config = settings.resolve()?;
    let dev_sign_in = config.dev_sign_in;
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    // Read after the build: with port 0 the public URL follows the port actually bound.
    let config = &app.state().config;
    let public_url = config.public_url.clone();
    note_issuer(&config.data_dir, public_url.as_str()).await;
    tracing::info!(%addr, graphiql = %format!("{public_url}graphql"), dev_sign_in, "photon is listening");
    app.run_until_stopped(shutdown_signal()).await
}

/// Mints an access token for `email` (creating the user), as the server in the same
/// configuration would, and warns when a server serving from this data directory checks
/// tokens against another issuer (it would refuse this one).
async fn token(email: &str, settings: Settings) -> anyhow::Result<()> {
    let config = settings.resolve()?;
    let issuer = config.public_url.to_string();
    match tokio::fs::read_to_string(config.data_dir.join(ISSUER_FILE)).await {
        Ok(served) if served.trim() != issuer => tracing::warn!(
            token_issuer = %issuer,
            server_issuer = %served.trim(),
            "the server using this data directory checks tokens against another issuer and \
             will refuse this one: give `photon token` the server's --bind or --public-url"
        ),
        _ => {}
    }
    let stats = std::sync::Arc::default();
    let db = photon::db::connect(&config, stats).await?;
    photon::db::migrate(&db).await?;
    let deps = Deps::new(db, std::sync::Arc::new(config))?;
    let token = photon::service::sign_in::mint_token(&deps.db, &deps.tokens, email)
        .await
        .map_err(|e| anyhow::anyhow!("cannot mint a token: {}", e.detail()))?;
    println!("{token}");
    Ok(())
}

/// Best effort: a data directory that cannot be written to only loses the warning above.
async fn note_issuer(data_dir: &std::path::Path, issuer: &str) {
    if !tokio::fs::try_exists(data_dir).await.unwrap_or(false) {
        return;
    }
    if let Err(err) = tokio::fs::write(data_dir.join(ISSUER_FILE), issuer).await {
        tracing::debug!(error = %err, "cannot note the token issuer in the data directory");
    }
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
