//! Fan-out across replicas on Postgres. A writer's `pg_notify` (sent in the event's own
//! transaction, so it is delivered only if the event commits) carries just the event id; every
//! replica LISTENs, reads the events it was told about, and publishes them on its own bus.
//!
//! Notifications are not stored: any sent while this replica's listening connection was down
//! are gone. So after every (re)connection the bus tells all subscribers to catch up from the
//! events table, which loses nothing because each of them knows its own cursor.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use secrecy::{ExposeSecret, SecretString};

use super::bus::Bus;
use super::log;
use crate::jobs::TaskCtx;

/// The notification channel every replica listens on.
pub use crate::events::CHANNEL;
/// Shown in `pg_stat_activity`, so operators (and tests) can find the listening connection.
pub const APPLICATION_NAME: &str = "photon-listener";
/// Notifications handled per read of the log.
const BATCH: usize = 256;
/// The listener's name under the supervisor.
pub const TASK: &str = "event_listener";

/// Listens until shutdown (`Ok`) or until the connection fails or is lost (`Err`): the
/// supervisor reconnects, after a back-off, and the task is down meanwhile.
pub async fn run(
    ctx: TaskCtx,
    url: SecretString,
    db: DatabaseConnection,
    bus: Arc<Bus>,
) -> anyhow::Result<()> {
    tokio::select! {
        outcome = listen(&ctx, &url, &db, &bus) => outcome,
        () = ctx.stop().cancelled() => Ok(()),
    }
}

/// A connection of its own listening on `channel`, shown as `application_name` in
/// `pg_stat_activity`. Its pool of one is only what sqlx's listener reconnects through; the
/// callers reconnect themselves (under the supervisor's back-off).
pub async fn listen_on(
    url: &SecretString,
    application_name: &str,
    channel: &str,
) -> anyhow::Result<PgListener> {
    let options: PgConnectOptions = url.expose_secret().parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options.application_name(application_name))
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

async fn listen(
    ctx: &TaskCtx,
    url: &SecretString,
    db: &DatabaseConnection,
    bus: &Bus,
) -> anyhow::Result<()> {
    let mut listener = listen_on(url, APPLICATION_NAME, CHANNEL).await?;
    tracing::debug!("listening for events");
    // Anything committed while we were not listening reaches subscribers this way.
    bus.resync();
    crate::metrics::bus_resynced();
    ctx.ready();
    loop {
        let Some(first) = listener.try_recv().await? else {
            anyhow::bail!("the notification connection was lost");
        };
        let mut ids: Vec<i64> = first.payload().parse().into_iter().collect();
        while ids.len() < BATCH {
            match listener.next_buffered() {
                Some(more) => ids.extend(more.payload().parse::<i64>()),
                None => break,
            }
        }
        crate::metrics::bus_notified(ids.len());
        match log::by_ids(db, &ids).await {
            Ok(items) => items.into_iter().for_each(|item| bus.publish(item)),
            Err(err) => {
                // The events are in the log; subscribers fetch them from there.
                tracing::warn!(error = ?err, "could not read notified events");
                bus.resync();
                crate::metrics::bus_resynced();
            }
        }
    }
}
