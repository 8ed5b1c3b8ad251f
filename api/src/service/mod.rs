//! The service layer: business rules as plain async functions that take a database connection
//! and the [`Viewer`](crate::auth::Viewer). Nothing here knows about GraphQL.

pub mod devices;
pub mod events;
pub mod friends;
pub mod input;
pub mod invite_code;
pub mod pagination;
pub mod photos;
pub mod sessions;
pub mod users;

pub mod clock {
    //! The one place that reads the wall clock for stored timestamps.

    use chrono::{DateTime, SubsecRound, Utc};

    /// Now, truncated to microseconds: what Postgres stores, so a value read back compares
    /// equal to the one written on every backend (cursors depend on it).
    pub fn now() -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// Whether a database error is a unique-constraint violation: the signal that a concurrent
/// request won a race that a constraint, not a prior check, decides.
pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
