//! Telling every process's workers, on Postgres, that photos were queued for processing. The
//! commit that queues a job rings this process's [`JobBell`]; one task per replica turns
//! however many rings have piled up into one notification, sent after those commits on a
//! connection of its own. Sent inside the writer's transaction, as it was, the notification
//! took Postgres's global lock for notifications at every completion's commit.
//!
//! A notification lost (the connection down, the replica dying in between) costs only
//! latency: this process's own workers are woken in process, and every worker polls the queue.

use std::sync::Arc;

use anyhow::Context;
use sea_orm::sqlx::postgres::PgPoolOptions;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use secrecy::SecretString;
use tokio::sync::Notify;

use super::queue::CHANNEL;
use crate::jobs::{Supervisor, TaskCtx};

/// The notifier's name under the supervisor.
pub const TASK: &str = "photo_job_notifier";
/// Shown in `pg_stat_activity` for the notifier's connection.
pub const APPLICATION_NAME: &str = "photon-photo-job-notifier";

/// Rung after a commit that queued photos; cheap to clone. Rings while the notifier is busy
/// or down make one notification.
#[derive(Clone, Default)]
pub struct JobBell(Arc<Notify>);

impl JobBell {
    pub fn ring(&self) {
        // A permit is kept when the notifier is not waiting: it sends once more, not once per
        // ring.
        self.0.notify_one();
    }
}

/// Starts the notifier on Postgres; on SQLite (one process) the in-process wake-up is enough.
pub fn spawn(tasks: &Supervisor, db: &DatabaseConnection, url: &SecretString, bell: &JobBell) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let (url, bell) = (url.clone(), bell.clone());
    tasks.spawn(TASK, move |ctx| run(ctx, url.clone(), bell.clone()));
}

/// Notifies until shutdown (`Ok`) or until its connection fails (`Err`: the supervisor starts
/// it again after a back-off).
async fn run(ctx: TaskCtx, url: SecretString, bell: JobBell) -> anyhow::Result<()> {
    // No ping before each use: a dead connection fails the notification, and the restart
    // opens another.
    let options = PgPoolOptions::new().test_before_acquire(false);
    let pool = crate::realtime::pg::dedicated(&url, APPLICATION_NAME, options).await?;
    ctx.ready();
    loop {
        tokio::select! {
            () = bell.0.notified() => {}
            () = ctx.stop().cancelled() => return Ok(()),
        }
        sea_orm::sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
            .await
            .context("could not tell the workers of queued photos")?;
    }
}
