//! [`Every`]: the one loop behind every periodic job (the presence heartbeat, the push
//! dispatcher, the sweeper, the rate-limit clean-up), so they all stop, start and catch up
//! the same way.
//!
//! - **Stopping.** The stop token is checked between rounds, never inside one: a round in
//!   progress finishes (a job that must cut its own round short watches the token itself).
//! - **First round.** Right away ([`First::Now`]) or one period in ([`First::AfterPeriod`]);
//!   a run restarted after a failure starts right away whatever the policy, so a failure
//!   does not cost a whole period.
//! - **Readiness.** Each round that succeeds marks the task up ([`TaskCtx::ready`]): after a
//!   failure, the job counts as down until a round has worked again.
//! - **Missed rounds** are not made up (tokio's `MissedTickBehavior::Delay`): a round that
//!   overruns its period is followed by the next one at once, and the rounds after it are a
//!   period apart again, counted from then. A burst of catch-up rounds after a stall would
//!   only hit the database harder when it is already slow.
//! - **Jitter.** Each wait may be lengthened by a random amount up to a bound, so replicas
//!   started together (a deploy) do not all sweep or refresh in the same instant.
//! - **Back to back.** A round may ask for the next one at once ([`Pace::Again`]), as the push
//!   dispatcher does while a backlog lasts.
//!
//! A round's error ends the loop and is returned: the supervisor logs it, marks the job down
//! and starts it again after a back-off.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::TaskCtx;

/// When the first round runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// As soon as the loop starts.
    Now,
    /// One period (plus jitter) after the loop starts.
    AfterPeriod,
}

/// What a round says about the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Wait for the next period.
    Rest,
    /// Run again at once (unless the loop is stopping): there is more to do.
    Again,
}

/// A schedule: every `period`, starting as [`First`] says, each wait lengthened by up to
/// `jitter`.
#[derive(Debug, Clone, Copy)]
pub struct Every {
    period: Duration,
    first: First,
    jitter: Duration,
}

impl Every {
    /// Every `period`, the first round at once, no jitter.
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            first: First::Now,
            jitter: Duration::ZERO,
        }
    }

    pub fn first(mut self, first: First) -> Self {
        self.first = first;
        self
    }

    /// Each wait is lengthened by a random amount up to `jitter`.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    fn wait(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.period;
        }
        let max = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        self.period
            .saturating_add(Duration::from_millis(rand::random_range(0..=max)))
    }

    /// Runs `round` on this schedule until the task is asked to stop (then `Ok`) or a round
    /// fails (then its error).
    pub async fn run<F, Fut>(&self, ctx: &TaskCtx, mut round: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Pace>>,
    {
        let stop = ctx.stop();
        let start = Instant::now();
        let mut due = match self.first {
            _ if ctx.restarted() => start,
            First::Now => start,
            First::AfterPeriod => start + self.wait(),
        };
        loop {
            tokio::select! {
                // Stopping wins over a round that is due at the same time.
                biased;
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(due) => {}
            }
            loop {
                let pace = round().await?;
                ctx.ready();
                if pace == Pace::Rest || stop.is_cancelled() {
                    break;
                }
            }
            // `Delay`: the next round is a period after the one that was due, or at once if
            // that is already past, and the schedule then counts from now.
            let now = Instant::now();
            due = match due + self.wait() {
                next if next > now => next,
                _ => now,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio_util::sync::CancellationToken;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Runs `every` for `run_for` and returns when each round started, counted from the
    /// start. Each round takes `round_takes`; the first `again` rounds ask for more.
    async fn rounds(
        every: Every,
        run_for: Duration,
        round_takes: Duration,
        again: usize,
    ) -> Vec<Duration> {
        let stop = CancellationToken::new();
        let start = Instant::now();
        let started = Arc::new(Mutex::new(Vec::new()));
        let left = AtomicUsize::new(again);
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(run_for).await;
            stopper.cancel();
        });
        every
            .run(&TaskCtx::detached("test", stop), || async {
                started.lock().unwrap().push(start.elapsed());
                tokio::time::sleep(round_takes).await;
                let more = left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                Ok(if more { Pace::Again } else { Pace::Rest })
            })
            .await
            .unwrap();
        started.lock().unwrap().clone()
    }

    fn gaps(started: &[Duration]) -> Vec<Duration> {
        started.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[tokio::test]
    async fn the_first_round_runs_at_once_or_a_period_in() {
        let now = rounds(Every::new(100 * MS), 250 * MS, Duration::ZERO, 0).await;
        assert!(now.len() >= 2 && now[0] < 50 * MS, "{now:?}");
        // Round i is due i periods after the start.
        assert!(
            (0u32..).zip(&now).all(|(i, at)| *at >= 100 * MS * i),
            "{now:?}"
        );
        let later = rounds(
            Every::new(100 * MS).first(First::AfterPeriod),
            250 * MS,
            Duration::ZERO,
            0,
        )
        .await;
        assert!(!later.is_empty() && later[0] >= 100 * MS, "{later:?}");
    }

    #[tokio::test]
    async fn an_overrunning_round_is_followed_at_once_and_missed_rounds_are_not_made_up() {
        // Rounds take 250 ms of a 100 ms period: each next one starts when the last ends,
        // never in a burst of catch-up rounds.
        let started = rounds(Every::new(100 * MS), 700 * MS, 250 * MS, 0).await;
        assert!(started.len() >= 3, "{started:?}");
        assert!(
            gaps(&started)
                .iter()
                .all(|g| *g >= 250 * MS && *g < 450 * MS),
            "{started:?}"
        );
    }

    #[tokio::test]
    async fn a_round_with_more_to_do_runs_again_back_to_back() {
        let started = rounds(Every::new(300 * MS), 450 * MS, 10 * MS, 2).await;
        assert_eq!(started.len(), 4, "{started:?}");
        let gaps = gaps(&started);
        assert!(gaps[..2].iter().all(|g| *g < 150 * MS), "{started:?}");
        // The next regular round keeps to the schedule of the first.
        assert!(started[3] >= 300 * MS, "{started:?}");
    }

    #[test]
    fn jitter_lengthens_waits_within_its_bound() {
        let every = Every::new(Duration::from_secs(10)).jitter(Duration::from_secs(5));
        let waits: Vec<Duration> = (0..200).map(|_| every.wait()).collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_secs(10) && *w <= Duration::from_secs(15)),
            "{waits:?}"
        );
        assert!(waits.iter().any(|w| *w != waits[0]), "no jitter: {waits:?}");
        assert!(
            (0..10).all(|_| Every::new(Duration::from_secs(10)).wait() == Duration::from_secs(10))
        );
    }

    #[tokio::test]
    async fn stopping_ends_the_loop_between_rounds_and_an_error_ends_it_with_the_error() {
        let stop = CancellationToken::new();
        stop.cancel();
        let ran = AtomicUsize::new(0);
        Every::new(100 * MS)
            .run(&TaskCtx::detached("test", stop), || async {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(Pace::Rest)
            })
            .await
            .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);

        let stop = CancellationToken::new();
        let err = Every::new(100 * MS)
            .run(&TaskCtx::detached("test", stop), || async {
                anyhow::bail!("the database went away")
            })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "the database went away");
    }
}
