//! The supervisor: every background task of a replica runs under it, by name.
//!
//! - **Restarts.** A task that returns an error, panics, or returns at all before it was asked
//!   to stop has failed: the cause is logged (`error = "{err:#}"`), counted
//!   (`photon_task_restarts_total{task}`), the task is marked down (`photon_task_up{task}` = 0,
//!   and listed by `/readyz`) and started again after a back-off that doubles from
//!   [`Backoff::first`] to [`Backoff::max`], back at the start once a run has lasted
//!   [`Backoff::healthy_after`].
//! - **Up and down.** A task counts as up from its start until it fails; after a failure it is
//!   down until its next run calls [`TaskCtx::ready`] (the Postgres listener does once it
//!   listens again, a periodic job as soon as it starts).
//! - **Stopping.** Every task watches one [`CancellationToken`]; [`Supervisor::shutdown`]
//!   cancels it and waits, up to a deadline, for every task (tracked by a [`TaskTracker`]) to
//!   return, then names those that did not.
//!
//! Each run is a task of its own, so a panic is caught at its `JoinHandle` and ends that run
//! only, never the supervisor's loop.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How failed tasks are restarted.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Wait before the first restart.
    pub first: Duration,
    /// Longest wait between restarts.
    pub max: Duration,
    /// A run that lasted this long was healthy: the next failure waits `first` again.
    pub healthy_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(100),
            max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// One task's state, shared by its runs, the supervisor and `/readyz`.
struct Status {
    name: &'static str,
    up: AtomicBool,
    stopped: AtomicBool,
    restarts: AtomicU64,
}

impl Status {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            up: AtomicBool::new(true),
            stopped: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
        }
    }

    /// Sets the state; returns the one before.
    fn set_up(&self, up: bool) -> bool {
        let was = self.up.swap(up, Ordering::SeqCst);
        if was != up {
            metrics::gauge!(crate::metrics::TASK_UP, "task" => self.name).set(if up {
                1.0
            } else {
                0.0
            });
        }
        was
    }
}

/// What a task's run gets: the stop signal, and a way to say it is working.
#[derive(Clone)]
pub struct TaskCtx {
    stop: CancellationToken,
    status: Arc<Status>,
    /// 1 for the first run, 2 for the first restart, …
    run: u64,
}

impl TaskCtx {
    /// A context outside any supervisor, stopped by `stop`: for running a task's body
    /// directly.
    pub fn detached(name: &'static str, stop: CancellationToken) -> Self {
        Self {
            stop,
            status: Arc::new(Status::new(name)),
            run: 1,
        }
    }

    /// Whether this run is a restart after a failure.
    pub fn restarted(&self) -> bool {
        self.run > 1
    }

    /// Cancelled when the replica shuts down.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Marks the task up again after a failure: its run is set up and working. Cheap enough
    /// to call after every round.
    pub fn ready(&self) {
        if !self.status.set_up(true) {
            tracing::info!(task = self.status.name, "background task is up again");
        }
    }

    pub fn name(&self) -> &'static str {
        self.status.name
    }
}

/// One task as [`Supervisor::tasks`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    pub name: &'static str,
    pub up: bool,
    pub restarts: u64,
}

/// Runs, restarts and stops this replica's background tasks.
pub struct Supervisor {
    stop: CancellationToken,
    tracker: TaskTracker,
    backoff: Backoff,
    tasks: Mutex<Vec<Arc<Status>>>,
}

impl Supervisor {
    pub fn new(backoff: Backoff) -> Arc<Self> {
        Arc::new(Self {
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            backoff,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Runs `run` as the task `name`, and again after each failure, until shutdown.
    pub fn spawn<F, Fut>(&self, name: &'static str, mut run: F)
    where
        F: FnMut(TaskCtx) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let status = Arc::new(Status::new(name));
        metrics::gauge!(crate::metrics::TASK_UP, "task" => name).set(1.0);
        self.lock().push(status.clone());
        let mut ctx = TaskCtx {
            stop: self.stop.clone(),
            status,
            run: 0,
        };
        let backoff = self.backoff;
        let tracker = self.tracker.clone();
        self.tracker.spawn(async move {
            let mut delay = backoff.first;
            loop {
                ctx.run += 1;
                let started = Instant::now();
                let cause = match tracker.spawn(run(ctx.clone())).await {
                    Ok(Ok(())) if ctx.stop.is_cancelled() => break,
                    Ok(Ok(())) => "it returned without being asked to stop".to_owned(),
                    Ok(Err(err)) => format!("{err:#}"),
                    Err(err) if err.is_panic() => {
                        format!("it panicked: {}", panic_message(err.into_panic().as_ref()))
                    }
                    // Aborted: the runtime itself is going away.
                    Err(_) => break,
                };
                ctx.status.set_up(false);
                if ctx.stop.is_cancelled() {
                    tracing::error!(
                        task = name,
                        error = cause,
                        "background task failed while stopping"
                    );
                    break;
                }
                if started.elapsed() >= backoff.healthy_after {
                    delay = backoff.first;
                }
                ctx.status.restarts.fetch_add(1, Ordering::SeqCst);
                metrics::counter!(crate::metrics::TASK_RESTARTS, "task" => name).increment(1);
                tracing::error!(
                    task = name,
                    error = cause,
                    restart_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "background task failed; restarting it"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = ctx.stop.cancelled() => break,
                }
                delay = delay.saturating_mul(2).min(backoff.max);
            }
            ctx.status.stopped.store(true, Ordering::SeqCst);
        });
    }

    /// The tasks that are down now, by name.
    pub fn down(&self) -> Vec<&'static str> {
        self.lock()
            .iter()
            .filter(|s| !s.up.load(Ordering::SeqCst))
            .map(|s| s.name)
            .collect()
    }

    /// Every task, in the order they were started.
    pub fn tasks(&self) -> Vec<TaskReport> {
        self.lock()
            .iter()
            .map(|s| TaskReport {
                name: s.name,
                up: s.up.load(Ordering::SeqCst),
                restarts: s.restarts.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Tells every task to stop (they stop between rounds, or at once when idle).
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    /// Cancels every task and waits for all of them until `deadline`; returns the names of
    /// those still running then (they are left to the runtime's end).
    pub async fn shutdown(&self, deadline: Instant) -> Vec<&'static str> {
        self.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_ok()
        {
            return Vec::new();
        }
        self.lock()
            .iter()
            .filter(|s| !s.stopped.load(Ordering::SeqCst))
            .map(|s| s.name)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Status>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A panic's message, when it has one.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_millis(400),
            healthy_after: Duration::from_secs(5),
        }
    }

    async fn wait_for(what: &str, done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn a_task_that_panics_once_is_restarted_and_down_until_it_is_ready_again() {
        let supervisor = Supervisor::new(Backoff {
            first: Duration::from_millis(300),
            ..backoff()
        });
        let runs = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
        let counter = runs.clone();
        supervisor.spawn("flaky", move |ctx| {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            let mut ready = ready_rx.clone();
            async move {
                if run == 0 {
                    panic!("the first run breaks");
                }
                // The second run is up once the test lets it be.
                let _ = ready.wait_for(|r| *r).await;
                ctx.ready();
                ctx.stop().cancelled().await;
                Ok(())
            }
        });
        wait_for("the panic", || supervisor.down() == ["flaky"]).await;
        assert_eq!(supervisor.tasks()[0].restarts, 1);
        wait_for("the restart", || runs.load(Ordering::SeqCst) == 2).await;
        // Restarted but not ready yet: still down.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(supervisor.down(), ["flaky"]);
        ready_tx.send(true).unwrap();
        wait_for("readiness", || supervisor.down().is_empty()).await;
        assert_eq!(
            supervisor.tasks(),
            [TaskReport {
                name: "flaky",
                up: true,
                restarts: 1
            }]
        );
        let late = supervisor
            .shutdown(Instant::now() + Duration::from_secs(5))
            .await;
        assert!(late.is_empty(), "{late:?}");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "not restarted after a clean stop"
        );
    }

    #[tokio::test]
    async fn failures_back_off_exponentially_up_to_the_cap_and_reset_after_health() {
        let ms = Duration::from_millis;
        let supervisor = Supervisor::new(Backoff {
            first: ms(100),
            max: ms(400),
            healthy_after: ms(1_000),
        });
        // When each run started and ended.
        let runs = Arc::new(Mutex::new(Vec::<(Instant, Instant)>::new()));
        let log = runs.clone();
        supervisor.spawn("failing", move |_ctx| {
            let log = log.clone();
            async move {
                let started = Instant::now();
                let run = log.lock().unwrap().len() + 1;
                // The fifth run is healthy for a while before failing again.
                if run == 5 {
                    tokio::time::sleep(ms(1_100)).await;
                }
                log.lock().unwrap().push((started, Instant::now()));
                anyhow::bail!("run {run} failed")
            }
        });
        wait_for("six runs", || runs.lock().unwrap().len() >= 6).await;
        let runs = runs.lock().unwrap().clone();
        // The wait between one run's end and the next one's start.
        let waits: Vec<Duration> = runs.windows(2).map(|w| w[1].0 - w[0].1).collect();
        let within =
            |wait: Duration, at_least: u64, below: u64| wait >= ms(at_least) && wait < ms(below);
        // 100, 200, 400, then capped at 400 (not 800) ms; after the healthy run, 100 again.
        assert!(within(waits[0], 100, 350), "{waits:?}");
        assert!(within(waits[1], 200, 450), "{waits:?}");
        assert!(within(waits[2], 400, 650), "{waits:?}");
        assert!(within(waits[3], 400, 650), "{waits:?}");
        assert!(within(waits[4], 100, 350), "{waits:?}");
        assert!(supervisor.tasks()[0].restarts >= 5);
        assert_eq!(supervisor.down(), ["failing"]);
        supervisor
            .shutdown(Instant::now() + Duration::from_secs(1))
            .await;
    }

    #[tokio::test]
    async fn a_restarted_periodic_job_runs_at_once_and_is_down_until_a_round_works() {
        use crate::jobs::{Every, First, Pace};
        let supervisor = Supervisor::new(backoff());
        let origin = Instant::now();
        let rounds = Arc::new(Mutex::new(Vec::<Duration>::new()));
        let (fixed_tx, fixed) = tokio::sync::watch::channel(false);
        let log = rounds.clone();
        supervisor.spawn("periodic", move |ctx| {
            let (log, fixed) = (log.clone(), fixed.clone());
            async move {
                let (log, fixed) = (&log, &fixed);
                Every::new(Duration::from_millis(400))
                    .first(First::AfterPeriod)
                    .run(&ctx, || async move {
                        log.lock().unwrap().push(origin.elapsed());
                        anyhow::ensure!(*fixed.borrow(), "not yet");
                        Ok(Pace::Rest)
                    })
                    .await
            }
        });
        wait_for("two rounds", || rounds.lock().unwrap().len() >= 2).await;
        let at = rounds.lock().unwrap().clone();
        // The first run waited its period; the restart ran its round after the back-off only.
        assert!(at[0] >= Duration::from_millis(400), "{at:?}");
        assert!(at[1] - at[0] < Duration::from_millis(350), "{at:?}");
        assert_eq!(supervisor.down(), ["periodic"]);
        fixed_tx.send(true).unwrap();
        wait_for("a round that works", || supervisor.down().is_empty()).await;
        supervisor
            .shutdown(Instant::now() + Duration::from_secs(1))
            .await;
    }

    #[tokio::test]
    async fn returning_before_being_asked_to_stop_is_a_failure() {
        let supervisor = Supervisor::new(backoff());
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        supervisor.spawn("quitter", move |_ctx| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
        wait_for("a restart", || runs.load(Ordering::SeqCst) >= 2).await;
        assert!(supervisor.tasks()[0].restarts >= 1);
        supervisor
            .shutdown(Instant::now() + Duration::from_secs(1))
            .await;
    }

    #[tokio::test]
    async fn shutdown_waits_for_tasks_until_the_deadline_and_names_the_one_that_hung() {
        let supervisor = Supervisor::new(backoff());
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        supervisor.spawn("polite", move |ctx| {
            let done = done.clone();
            async move {
                ctx.stop().cancelled().await;
                // Its clean-up takes a moment, and is waited for.
                tokio::time::sleep(Duration::from_millis(100)).await;
                done.store(true, Ordering::SeqCst);
                Ok(())
            }
        });
        supervisor.spawn("stuck", |_ctx| async {
            std::future::pending::<()>().await;
            Ok(())
        });
        let begun = Instant::now();
        let late = supervisor
            .shutdown(Instant::now() + Duration::from_millis(500))
            .await;
        assert_eq!(late, ["stuck"]);
        assert!(finished.load(Ordering::SeqCst));
        let took = begun.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
