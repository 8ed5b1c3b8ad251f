//! Processing workers: for every photo that completes, the thumbnail, the preview, the
//! ThumbHash, its size and `takenAt`, and the copy without metadata that other members get
//! (the image work itself is [`crate::imaging`]).
//!
//! **The queue** is the `photo_jobs` table ([`queue`]): a job is inserted in the transaction
//! that makes its photo ready, so no photo is ever without one. Workers claim due jobs with
//! `FOR UPDATE SKIP LOCKED` (SQLite has one writer and needs no lock clause) by stamping a lease
//! into `not_before`; the job row is deleted in the transaction that writes the outcome, and
//! only while the lease is still the worker's. A worker that dies leaves its jobs to be claimed
//! again when their lease lapses: nothing is lost, and a photo is processed twice only if a
//! job outlives its lease, which the time limit below prevents.
//!
//! **Waking.** Completing a photo wakes the workers: in-process at once, and on Postgres through
//! a notification (`photon_photo_jobs`, sent after the commit by [`notify`], one for a burst of
//! completions) that every replica and every `photon worker` listens for ([`listen`]). Workers also poll, for a notification missed while a
//! listener reconnected and for retries coming due.
//!
//! **The work** ([`job`]) reads the original from the store (bounded by its recorded size, and
//! checked against its digest), runs the CPU work on the blocking pool, at most
//! `PHOTON_PROCESSING_CONCURRENCY` jobs at once, each within `PHOTON_PROCESSING_TIMEOUT_SECS`,
//! writes the derivatives back beside the original, then records the outcome and announces
//! `PhotoProcessed`. A file that does not decode as its declared type, or beyond the limits,
//! ends `FAILED` with its reason logged (and kept in `photos.processing_error`); storage and
//! database failures and time-outs are retried with an exponential back-off, and end `FAILED`
//! after `PHOTON_PROCESSING_MAX_ATTEMPTS`.

mod job;
pub mod listen;
pub mod notify;
pub mod queue;
pub mod standalone;
mod workers;

use std::time::Duration;

pub use notify::JobBell;
pub use queue::enqueue;
pub use workers::{TASK, Workers, spawn, wake};

/// Settings: the processing workers of this process.
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessingArgs {
    /// Photos this process works on at once; 0 turns its workers off (a replica that only
    /// serves). Unset: one per CPU core.
    #[arg(long, env = "PHOTON_PROCESSING_CONCURRENCY",
        value_parser = clap::value_parser!(u32).range(0..=256))]
    pub processing_concurrency: Option<u32>,

    /// Seconds one photo may take to process before the attempt is given up.
    #[arg(long, env = "PHOTON_PROCESSING_TIMEOUT_SECS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=600))]
    pub processing_timeout_secs: u64,

    /// Seconds a claimed job stays a worker's own; a job whose worker died is claimed again
    /// after this. Must exceed the time limit.
    #[arg(long, env = "PHOTON_PROCESSING_LEASE_SECS", default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub processing_lease_secs: u64,

    /// Most pixels (width × height, as its header says) a photo may have to be processed.
    #[arg(long, env = "PHOTON_PROCESSING_MAX_PIXELS", default_value_t = 100_000_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub processing_max_pixels: u64,

    /// Attempts before a photo whose processing keeps failing for want of storage, the
    /// database or time is marked FAILED.
    #[arg(long, env = "PHOTON_PROCESSING_MAX_ATTEMPTS", default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=100))]
    pub processing_max_attempts: u32,

    /// Milliseconds between looks at the queue when nothing wakes the workers.
    #[arg(long, env = "PHOTON_PROCESSING_POLL_MS", default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub processing_poll_ms: u64,
}

/// The processing workers' settings, resolved.
#[derive(Debug, Clone)]
pub struct ProcessingSettings {
    /// Jobs at once (never 0: no settings at all when the workers are off).
    pub concurrency: usize,
    pub timeout: Duration,
    pub lease: Duration,
    pub max_pixels: u64,
    pub max_attempts: u32,
    pub poll_interval: Duration,
}

impl ProcessingArgs {
    /// `None` when this process runs no workers.
    pub fn resolve(&self) -> anyhow::Result<Option<ProcessingSettings>> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let concurrency = self.processing_concurrency.map_or(cores, |n| n as usize);
        if self.processing_lease_secs <= self.processing_timeout_secs {
            anyhow::bail!(
                "PHOTON_PROCESSING_LEASE_SECS ({}) must exceed PHOTON_PROCESSING_TIMEOUT_SECS \
                 ({}), or a slow job's lease lapses while it still runs",
                self.processing_lease_secs,
                self.processing_timeout_secs
            );
        }
        Ok((concurrency > 0).then(|| ProcessingSettings {
            concurrency,
            timeout: Duration::from_secs(self.processing_timeout_secs),
            lease: Duration::from_secs(self.processing_lease_secs),
            max_pixels: self.processing_max_pixels,
            max_attempts: self.processing_max_attempts,
            poll_interval: Duration::from_millis(self.processing_poll_ms),
        }))
    }
}

/// Back-off before retry `attempt` (1 = the first retry): 1 s, doubling, at most 5 minutes.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }

    fn args(lease: u64, timeout: u64, concurrency: Option<u32>) -> ProcessingArgs {
        ProcessingArgs {
            processing_concurrency: concurrency,
            processing_timeout_secs: timeout,
            processing_lease_secs: lease,
            processing_max_pixels: 1,
            processing_max_attempts: 1,
            processing_poll_ms: 100,
        }
    }

    #[test]
    fn a_lease_shorter_than_the_time_limit_is_refused() {
        assert!(args(30, 30, None).resolve().is_err());
        assert!(args(31, 30, None).resolve().is_ok());
    }

    #[test]
    fn concurrency_defaults_to_the_cores_and_zero_turns_workers_off() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let default = args(120, 30, None).resolve().expect("valid");
        assert_eq!(default.map(|s| s.concurrency), Some(cores));
        assert!(args(120, 30, Some(0)).resolve().expect("valid").is_none());
    }
}
