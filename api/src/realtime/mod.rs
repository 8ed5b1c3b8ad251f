//! Real time: the bus that hands committed events to this replica's subscriptions, what feeds
//! it (Postgres notifications across replicas, or a tailer of the local log), the
//! replay-then-live feed each subscription reads, and presence for the push dispatcher.

pub mod bus;
pub mod feed;
pub mod local;
pub mod log;
pub mod pg;
pub mod presence;

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use secrecy::SecretString;
use tokio::sync::watch;

pub use bus::{Bus, FeedItem};

use crate::error::ApiResult;

/// Starts feeding the bus from the database this replica uses.
pub fn spawn_feed(
    db: &DatabaseConnection,
    url: &SecretString,
    bus: Arc<Bus>,
    stop: watch::Receiver<bool>,
) {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => pg::spawn(url.clone(), db.clone(), bus, stop),
        _ => local::spawn(db.clone(), bus, stop),
    }
}

/// Announces a just-recorded event. On Postgres the notification is part of the writer's
/// transaction, so it goes out only if the event commits, and in commit order.
pub async fn announce(db: &impl ConnectionTrait, event_id: i64) -> ApiResult<()> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [pg::CHANNEL.into(), event_id.to_string().into()],
            ))
            .await?;
        }
        _ => local::wake(),
    }
    Ok(())
}
