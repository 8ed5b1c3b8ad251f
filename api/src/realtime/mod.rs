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

pub use bus::{Bus, FeedItem};

use crate::jobs::Supervisor;

/// Starts feeding the bus from the database this replica uses, as a task under `tasks`.
pub fn spawn_feed(tasks: &Supervisor, db: &DatabaseConnection, url: &SecretString, bus: Arc<Bus>) {
    let db = db.clone();
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let url = url.clone();
            tasks.spawn(pg::TASK, move |ctx| {
                pg::run(ctx, url.clone(), db.clone(), bus.clone())
            });
        }
        _ => tasks.spawn(local::TASK, move |ctx| {
            local::run(ctx, db.clone(), bus.clone())
        }),
    }
}
