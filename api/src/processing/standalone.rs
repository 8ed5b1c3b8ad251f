//! `photon worker`: the processing workers alone, with the metrics listener when one is set,
//! and nothing else of a replica (no API, no sockets, no sweeper or pushes).

use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Config;
use crate::deps::Deps;
use crate::jobs::supervisor::{Backoff, Supervisor};
use crate::metrics::Exporter;

/// Runs workers until `shutdown` completes, then stops them within the grace period, handing
/// back the jobs they still hold.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let settings = config.processing.clone().context(
        "PHOTON_PROCESSING_CONCURRENCY is 0: a worker with no workers has nothing to do",
    )?;
    crate::db::migrate_database(&config).await?;
    let db = crate::db::connect(&config, Arc::default()).await?;
    let metrics = Exporter::bind(&config.metrics).await?;
    let grace = config.shutdown_grace;
    let connections = config.connections.clone();
    let deps = Deps::new(db, Arc::new(config))?;
    let tasks = Supervisor::new(Backoff::default());
    // The workers record `photo_processed` events: their wake-ups go out from here.
    crate::realtime::spawn_announcer(
        &tasks,
        &deps.db,
        &deps.config.database_url,
        &deps.config.realtime,
        &deps.announcer,
    );
    let workers = super::spawn(&tasks, &deps, settings);
    let (close, closing) = watch::channel(false);
    if let Some(metrics) = metrics {
        let addr = metrics.local_addr()?;
        metrics.spawn(deps.db.clone(), connections, closing, grace);
        tracing::info!(%addr, "serving metrics");
    }
    shutdown.await;
    tracing::info!("shutting down");
    let began = Instant::now();
    let _ = close.send(true);
    for task in tasks.shutdown(began + grace).await {
        tracing::warn!(task, "background task did not stop within the grace period");
    }
    if let Err(err) = workers.release().await {
        tracing::warn!(
            error = format!("{err:#}"),
            "could not hand back the photo jobs"
        );
    }
    tracing::info!("stopped");
    Ok(())
}
