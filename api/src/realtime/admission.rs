//! Admission of subscription starts, through a bounded queue.
//!
//! Starting a subscription costs a handful of statements (the viewer's blocks, the session and
//! membership, their latest join, the cursor's check, a presence row) and then a replay from
//! its cursor; once live it costs nothing until an event comes. A replica restart drops every
//! socket at once, and thousands of clients come back within a second with their cursors: let
//! them all start together and they all wait for the database pool, requests time out behind
//! them, and what each holds while it waits stays resident afterwards.
//!
//! So a start first takes one of a few permits (`PHOTON_SUBSCRIPTION_STARTS`, by default half
//! the pool, so requests keep the rest) and keeps it until its first replay is read; the rest
//! wait their turn in order. The queue is bounded twice: past
//! `PHOTON_SUBSCRIPTION_START_QUEUE` waiting starts a new one is refused at once, and a start
//! that waited `PHOTON_SUBSCRIPTION_START_WAIT_SECS` gives up. Both refusals are
//! `SERVICE_UNAVAILABLE` with `extensions.retryAfter`: nothing was started, and the client
//! resumes from the same cursor when it tries again, so nothing is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult};

/// How many may start at once, how many may wait, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    pub concurrent: usize,
    pub queue: usize,
    pub wait: Duration,
}

/// The queue in front of subscription starts; one per replica, shared by every transport.
#[derive(Debug)]
pub struct Admission {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    limits: AdmissionLimits,
}

/// A start's turn, held until its feed has read what it replays (or dropped with the feed).
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
}

/// Counts a start as waiting for as long as it exists, so one abandoned mid-wait (its socket
/// closed) leaves the queue too.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let now = self.0.fetch_sub(1, Ordering::Relaxed) - 1;
        crate::metrics::subscription_starts_waiting(now);
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(limits.concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            limits,
        })
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }

    /// Waits for a start's turn, first come first served; refuses at once when the queue is
    /// full, and after the longest wait.
    pub async fn admit(&self) -> ApiResult<Admitted> {
        // Free permits and nobody waiting: no queue to join.
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            crate::metrics::subscription_start("admitted");
            return Ok(Admitted { _permit: permit });
        }
        let queued = self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting);
        if queued >= self.limits.queue {
            crate::metrics::subscription_start("queue_full");
            return Err(ApiError::Busy(
                "too many subscriptions are starting on this server; try again",
            ));
        }
        crate::metrics::subscription_starts_waiting(queued + 1);
        let since = Instant::now();
        let acquired =
            tokio::time::timeout(self.limits.wait, self.permits.clone().acquire_owned()).await;
        drop(waiting);
        crate::metrics::subscription_start_waited(since.elapsed());
        match acquired {
            Ok(Ok(permit)) => {
                crate::metrics::subscription_start("admitted");
                Ok(Admitted { _permit: permit })
            }
            // The semaphore is never closed; a timeout is the one way to get here.
            Ok(Err(_)) | Err(_) => {
                crate::metrics::subscription_start("timed_out");
                Err(ApiError::Busy(
                    "this server is busy starting subscriptions; try again",
                ))
            }
        }
    }

    /// Starts waiting for their turn now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Starts holding a turn now.
    pub fn starting(&self) -> usize {
        self.limits
            .concurrent
            .max(1)
            .saturating_sub(self.permits.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn admission(concurrent: usize, queue: usize, wait_ms: u64) -> Arc<Admission> {
        Admission::new(AdmissionLimits {
            concurrent,
            queue,
            wait: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test]
    async fn starts_beyond_the_permits_wait_in_order_and_go_when_a_turn_ends() {
        let admission = admission(1, 10, 5_000);
        let first = admission.admit().await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..3 {
            let (queue, order) = (admission.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let turn = queue.admit().await.unwrap();
                order.lock().unwrap().push(n);
                drop(turn);
            }));
            // Each joins the queue before the next.
            while admission.waiting() < n + 1 {
                tokio::task::yield_now().await;
            }
        }
        assert_eq!(admission.waiting(), 3);
        assert!(
            order.lock().unwrap().is_empty(),
            "nobody goes while the turn is held"
        );
        drop(first);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(admission.waiting(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_a_retryable_code() {
        let admission = admission(1, 1, 5_000);
        let _held = admission.admit().await.unwrap();
        let queued = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit().await.map(drop) })
        };
        while admission.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        let refused = admission.admit().await.unwrap_err();
        assert_eq!(refused.code(), ErrorCode::ServiceUnavailable);
        assert_eq!(refused.retry_after_secs(), Some(1));
        // The refusal left the queue as it found it.
        assert_eq!(admission.waiting(), 1);
        queued.abort();
        let _ = queued.await;
        assert_eq!(admission.waiting(), 0, "an abandoned wait leaves the queue");
    }

    #[tokio::test]
    async fn a_start_that_waits_too_long_gives_up() {
        let admission = admission(1, 10, 50);
        let _held = admission.admit().await.unwrap();
        let started = Instant::now();
        let refused = admission.admit().await.unwrap_err();
        assert_eq!(refused.code(), ErrorCode::ServiceUnavailable);
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(admission.waiting(), 0);
    }
}
