//! Fan-out across replicas on Postgres. A notification carries the ids of events that have
//! committed (sent by a replica's notifier after the commit, `realtime::announce`, or by a
//! writer outside any outbox inside its transaction); every replica LISTENs on a connection
//! of its own, reads the events it was told about on another, and publishes them on its
//! own bus.
//!
//! Notifications are not stored: any sent while this replica's listening connection was down
//! are gone. So after every (re)connection the bus tells all subscribers to catch up from the
//! events table, which loses nothing because each of them knows its own cursor.

use std::sync::Arc;

use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use secrecy::{ExposeSecret, SecretString};

use super::announce::parse_ids;
use super::bus::Bus;
use crate::jobs::TaskCtx;

/// The notification channel every replica listens on.
pub use crate::events::CHANNEL;
/// Shown in `pg_stat_activity`, so operators (and tests) can find the listening connection.
pub const APPLICATION_NAME: &str = "photon-listener";
/// Event ids handled per read of the log.
pub(super) const BATCH: usize = 1024;
/// The listener's name under the supervisor.
pub const TASK: &str = "event_listener";

/// Listens until shutdown (`Ok`) or until the connection fails or is lost (`Err`): the
/// supervisor reconnects, after a back-off, and the task is down meanwhile.
pub async fn run(ctx: TaskCtx, url: SecretString, bus: Arc<Bus>) -> anyhow::Result<()> {
    tokio::select! {
        outcome = listen(&ctx, &url, &bus) => outcome,
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
    let pool = dedicated(url, application_name, PgPoolOptions::new()).await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// A pool of one long-lived connection of its own (never recycled for age or idleness),
/// shown as `application_name` in `pg_stat_activity`, built from `pool`'s other options.
pub async fn dedicated(
    url: &SecretString,
    application_name: &str,
    pool: PgPoolOptions,
) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.expose_secret().parse()?;
    Ok(pool
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options.application_name(application_name))
        .await?)
}

async fn listen(ctx: &TaskCtx, url: &SecretString, bus: &Bus) -> anyhow::Result<()> {
    let mut listener = listen_on(url, APPLICATION_NAME, CHANNEL).await?;
    let reader = super::reader(url).await?;
    tracing::debug!("listening for events");
    // Anything committed while we were not listening reaches subscribers this way.
    bus.resync();
    crate::metrics::bus_resynced();
    ctx.ready();
    let mut ids = Vec::new();
    loop {
        let Some(first) = listener.try_recv().await? else {
            anyhow::bail!("the notification connection was lost");
        };
        ids.clear();
        ids.extend(parse_ids(first.payload()));
        // Whatever else has arrived meanwhile goes in the same read of the log.
        while ids.len() < BATCH {
            match listener.next_buffered() {
                Some(more) => ids.extend(parse_ids(more.payload())),
                None => break,
            }
        }
        super::deliver(&reader, bus, &ids).await;
    }
}
