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

use sea_orm::{DatabaseBackend, DatabaseConnection};
use secrecy::SecretString;
use tokio::sync::watch;

pub use bus::{Bus, FeedItem};

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
