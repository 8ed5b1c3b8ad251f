//! How a replica's shutdown divides its grace period. From the stop signal:
//!
//! 1. at once: `/readyz` answers 503 `stopping`, WebSockets start closing, background tasks
//!    are told to stop (the push dispatcher hands back what it holds);
//! 2. the drain delay (`PHOTON_SHUTDOWN_DRAIN_MS`): the server still accepts and serves, so
//!    a load balancer that polls `/readyz` takes the replica out of rotation before anyone is
//!    refused;
//! 3. the listener closes; requests in flight and background tasks get until the grace
//!    period's end, less a reserve for
//! 4. the clean-up: this replica's presence rows are deleted and any push lease it still
//!    holds is released, so another replica takes the pushes at once.
//!
//! Everything ends within `PHOTON_SHUTDOWN_GRACE_SECS` of the signal, even a task that hangs.

use std::time::Duration;

/// Shutdown settings beyond the grace period itself.
#[derive(Debug, Clone, clap::Args)]
pub struct ShutdownSettings {
    /// Milliseconds the server goes on accepting and serving after a shutdown signal, with
    /// /readyz answering 503, before it stops accepting connections: time for a load balancer
    /// to take the replica out of rotation. Part of PHOTON_SHUTDOWN_GRACE_SECS, not added to
    /// it.
    #[arg(long, env = "PHOTON_SHUTDOWN_DRAIN_MS", default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub shutdown_drain_ms: u64,
}

/// Longest share of the grace period kept back for the clean-up.
const MAX_CLEANUP: Duration = Duration::from_secs(2);

/// The grace period, divided. Every duration counts from the stop signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownPlan {
    /// Until the listener closes.
    pub drain: Duration,
    /// Until requests in flight and background tasks are given up on.
    pub work: Duration,
    /// Until the clean-up is given up on: the whole grace period.
    pub end: Duration,
}

impl ShutdownPlan {
    pub fn new(grace: Duration, settings: &ShutdownSettings) -> Self {
        let cleanup = (grace / 4).min(MAX_CLEANUP);
        let work = grace - cleanup;
        Self {
            drain: Duration::from_millis(settings.shutdown_drain_ms).min(work),
            work,
            end: grace,
        }
    }

    /// What requests in flight get once the listener has closed.
    pub fn requests(&self) -> Duration {
        self.work - self.drain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(grace_ms: u64, drain_ms: u64) -> ShutdownPlan {
        ShutdownPlan::new(
            Duration::from_millis(grace_ms),
            &ShutdownSettings {
                shutdown_drain_ms: drain_ms,
            },
        )
    }

    #[test]
    fn the_grace_period_bounds_every_step() {
        let ms = Duration::from_millis;
        let default = plan(20_000, 0);
        assert_eq!(
            (default.drain, default.work, default.end),
            (ms(0), ms(18_000), ms(20_000))
        );
        assert_eq!(default.requests(), ms(18_000));
        let short = plan(1_000, 300);
        assert_eq!(
            (short.drain, short.work, short.end),
            (ms(300), ms(750), ms(1_000))
        );
        assert_eq!(short.requests(), ms(450));
        // A drain longer than the grace period is cut to fit it, clean-up included.
        let long = plan(4_000, 60_000);
        assert_eq!(
            (long.drain, long.work, long.end),
            (ms(3_000), ms(3_000), ms(4_000))
        );
        assert_eq!(
            plan(0, 500),
            ShutdownPlan {
                drain: ms(0),
                work: ms(0),
                end: ms(0)
            }
        );
    }
}
