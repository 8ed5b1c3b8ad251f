//! The one place that reads the wall clock for stored timestamps.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, truncated to microseconds: what Postgres stores, so a value read back compares
/// equal to the one written on every backend (cursors depend on it).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
