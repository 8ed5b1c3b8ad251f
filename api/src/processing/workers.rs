//! The loop that claims jobs and runs them, at most `concurrency` at once, and what it holds
//! when the process stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, Semaphore};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::ProcessingSettings;
use super::queue::{self, Claimed};
use crate::clock;
use crate::deps::Deps;
use crate::events;
use crate::jobs::{JobResult, Supervisor, TaskCtx};
use crate::realtime::announce::Announcer;
use crate::storage::ObjectStore;

/// The workers' name under the supervisor.
pub const TASK: &str = "photo_workers";

/// How long a stopping worker waits for the jobs it is running before handing them back.
const FINISH_ON_STOP: Duration = Duration::from_millis(500);

/// How often the queue-depth gauge is refreshed.
const COUNT_EVERY: Duration = Duration::from_secs(1);

/// Wakes this process's workers: a photo completed here (on SQLite, the only way they hear of
/// it; on Postgres the notification follows).
static WAKE: Notify = Notify::const_new();

/// Tells this process's workers that a job may be waiting. Call after the commit that queued it.
pub fn wake() {
    WAKE.notify_waiters();
}

/// One process's workers.
pub struct Workers {
    pub(super) db: DatabaseConnection,
    pub(super) store: Arc<dyn ObjectStore>,
    /// Announces the `photo_processed` events the jobs record.
    announcer: Announcer,
    pub(super) settings: ProcessingSettings,
    /// The largest original the store may hold: what a job reads at most.
    pub(super) max_bytes: u64,
    /// One permit per job at once. A job's permit is held by its CPU work itself, so work that
    /// outlives its time limit still counts until it really ends.
    permits: Arc<Semaphore>,
    /// The jobs claimed and not yet ended, to hand back at shutdown.
    held: Mutex<HashMap<Uuid, Claimed>>,
    running: TaskTracker,
    /// A job ended: a permit may be free.
    ended: Notify,
}

/// Starts this process's workers under `tasks`; returns them, for the shutdown to hand back
/// what they still hold.
pub fn spawn(tasks: &Supervisor, deps: &Deps, settings: ProcessingSettings) -> Arc<Workers> {
    let workers = Arc::new(Workers {
        permits: Arc::new(Semaphore::new(settings.concurrency)),
        db: deps.db.clone(),
        store: deps.store.clone(),
        announcer: deps.announcer.clone(),
        settings,
        max_bytes: deps.config.upload_rules.max_bytes,
        held: Mutex::new(HashMap::new()),
        running: TaskTracker::new(),
        ended: Notify::new(),
    });
    let this = workers.clone();
    tasks.spawn(TASK, move |ctx| {
        let workers = this.clone();
        async move { workers.run(ctx).await }
    });
    super::listen::spawn(tasks, &deps.db, &deps.config.database_url);
    workers
}

impl Workers {
    async fn run(self: Arc<Self>, ctx: TaskCtx) -> anyhow::Result<()> {
        tracing::info!(
            concurrency = self.settings.concurrency,
            "photo processing workers started"
        );
        let stop = ctx.stop().clone();
        let mut counted: Option<std::time::Instant> = None;
        loop {
            // Registered before looking, so a wake-up during the look is not lost.
            let woken = WAKE.notified();
            let ended = self.ended.notified();
            tokio::pin!(woken, ended);
            woken.as_mut().enable();
            ended.as_mut().enable();
            if stop.is_cancelled() {
                break;
            }
            let free = self.permits.available_permits();
            let claimed = if free > 0 {
                let lease = clock::now() + chrono_duration(self.settings.lease);
                queue::claim(&self.db, free as u64, lease).await.job()?
            } else {
                Vec::new()
            };
            ctx.ready();
            let full = claimed.len() == free;
            for job in claimed {
                self.start(job);
            }
            // At most once a second: a busy queue wakes this loop far more often.
            if counted.is_none_or(|at| at.elapsed() >= COUNT_EVERY) {
                counted = Some(std::time::Instant::now());
                if let Ok(depth) = queue::depth(&self.db).await {
                    metrics::gauge!(crate::metrics::PHOTO_JOBS_QUEUED).set(depth as f64);
                }
            }
            // With every permit in use, the next look is when one frees up.
            if full && free > 0 {
                tokio::select! {
                    () = &mut ended => continue,
                    () = stop.cancelled() => break,
                }
            }
            tokio::select! {
                () = &mut woken => {}
                () = &mut ended => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                () = stop.cancelled() => break,
            }
        }
        self.running.close();
        let _ = tokio::time::timeout(FINISH_ON_STOP, self.running.wait()).await;
        self.release().await?;
        Ok(())
    }

    fn start(self: &Arc<Self>, job: Claimed) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            // Claims never exceed the free permits, and only this loop takes them.
            tracing::error!(photo_id = %job.photo_id, "no permit for a claimed job; it will be retried");
            return;
        };
        self.lock().insert(job.photo_id, job.clone());
        let this = self.clone();
        self.running.spawn(async move {
            events::announcing(&this.announcer, super::job::run(&this, &job, permit)).await;
            this.lock().remove(&job.photo_id);
            this.ended.notify_waiters();
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Claimed>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands back every job still held, due at once, so another worker takes it now instead of
    /// when its lease lapses. Returns how many went back.
    pub async fn release(&self) -> anyhow::Result<u64> {
        let held: Vec<Claimed> = self.lock().drain().map(|(_, job)| job).collect();
        let mut released = 0;
        for job in &held {
            if queue::release(&self.db, job).await.job()? {
                released += 1;
            }
        }
        if released > 0 {
            tracing::info!(jobs = released, "handed back unfinished photo jobs");
        }
        Ok(released)
    }
}

pub(super) fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
