//! On Postgres, every process with workers listens for the notification that a job was queued
//! (sent after the commit that queued it, `super::notify`), so a `photon worker` hears of photos completed on any
//! replica at once. A notification missed while this connection was down costs only latency:
//! the workers poll the queue anyway, and look at it again after every reconnection.

use sea_orm::{DatabaseBackend, DatabaseConnection};
use secrecy::SecretString;

use super::queue::CHANNEL;
use super::workers::wake;
use crate::jobs::{Supervisor, TaskCtx};
use crate::realtime::pg::listen_on;

/// The listener's name under the supervisor.
pub const TASK: &str = "photo_job_listener";
/// Shown in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "photon-photo-jobs";

/// Starts the listener on Postgres; on SQLite (one process) the in-process wake-up is enough.
pub fn spawn(tasks: &Supervisor, db: &DatabaseConnection, url: &SecretString) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let url = url.clone();
    tasks.spawn(TASK, move |ctx| run(ctx, url.clone()));
}

async fn run(ctx: TaskCtx, url: SecretString) -> anyhow::Result<()> {
    tokio::select! {
        outcome = listen(&ctx, &url) => outcome,
        () = ctx.stop().cancelled() => Ok(()),
    }
}

async fn listen(ctx: &TaskCtx, url: &SecretString) -> anyhow::Result<()> {
    let mut listener = listen_on(url, APPLICATION_NAME, CHANNEL).await?;
    // Whatever was queued while we were not listening.
    wake();
    ctx.ready();
    loop {
        if listener.try_recv().await?.is_none() {
            anyhow::bail!("the notification connection was lost");
        }
        // Many completions at once are one look at the queue.
        while listener.next_buffered().is_some() {}
        wake();
    }
}
