//! The service layer: business rules as plain async functions that take a database connection
//! and the [`Viewer`](crate::service::Viewer). Nothing here knows about GraphQL.

pub mod accounts;
pub mod archive;
pub mod blocks;
pub mod devices;
pub mod friends;
pub mod guests;
pub mod input;
pub mod invite_code;
pub mod moderation;
pub mod notifications;
pub mod oauth_sign_in;
pub mod pagination;
pub mod photos;
pub mod reports;
pub mod sessions;
pub mod sign_in;
pub mod users;
pub mod viewer;

pub use viewer::Viewer;

/// Whether a database error is a unique-constraint violation: the signal that a concurrent
/// request won a race that a constraint, not a prior check, decides.
pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}
