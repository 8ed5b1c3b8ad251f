//! Database pool metrics.
//!
//! - **Connections** in use and idle are read from the sqlx pool at each scrape: a gauge
//!   sampled when asked is exact at that moment and costs nothing between scrapes.
//! - **Statements** are counted by the pool's statement hook (`crate::db`).
//! - **Waits**: sqlx keeps no count of acquires that had to wait, and SeaORM acquires inside
//!   its own calls, out of our reach. sqlx does time every acquire itself and reports it as a
//!   `sqlx::pool::acquire` tracing event with `acquired_after_secs`, when asked to
//!   (`acquire_time_level`, set by `crate::db` at TRACE so it is never printed by default).
//!   [`AcquireWaits`] is a tracing layer that counts the acquires that took
//!   [`WAIT_THRESHOLD`] or more: handing out an idle connection, liveness ping included,
//!   takes well under a millisecond, so these are the ones that waited for a busy pool or for
//!   a new connection to open. The binary installs the layer with its logging
//!   (`crate::telemetry`).

use std::time::Duration;

use sea_orm::{DatabaseBackend, DatabaseConnection};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Filtered, Targets};
use tracing_subscriber::layer::Context;

use super::{DB_POOL_CONNECTIONS, DB_POOL_WAITS, DB_STATEMENTS};

/// The tracing target of sqlx's acquire timings.
pub const ACQUIRE_TARGET: &str = "sqlx::pool::acquire";
/// Acquires at least this slow count as waits.
pub const WAIT_THRESHOLD: Duration = Duration::from_millis(5);

/// Sets the pool gauges from the pool as it is now.
pub fn sample_pool(db: &DatabaseConnection) {
    // Each getter panics for the other backend, hence the match on the backend first.
    let (size, idle) = match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => return,
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
    ::metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(size - idle));
    ::metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
}

/// One statement ran (the pool's statement hook calls this).
pub fn statement() {
    ::metrics::counter!(DB_STATEMENTS).increment(1);
}

/// Counts slow pool acquires from sqlx's own timings; see the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcquireWaits;

impl AcquireWaits {
    /// The layer with a filter of its own that lets only sqlx's acquire events through, so it
    /// sees them whatever `RUST_LOG` says, and nothing else.
    pub fn layer<S>() -> Filtered<Self, Targets, S>
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        AcquireWaits.with_filter(Targets::new().with_target(ACQUIRE_TARGET, Level::TRACE))
    }
}

impl<S: Subscriber> Layer<S> for AcquireWaits {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut waited = AcquiredAfter(None);
        event.record(&mut waited);
        if waited
            .0
            .is_some_and(|secs| secs >= WAIT_THRESHOLD.as_secs_f64())
        {
            ::metrics::counter!(DB_POOL_WAITS).increment(1);
        }
    }
}

/// Reads `acquired_after_secs` off an acquire event.
struct AcquiredAfter(Option<f64>);

impl Visit for AcquiredAfter {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "acquired_after_secs" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}
