//! Fan-out for the embedded default (SQLite, one process). SQLite has a single writer, so
//! event ids are assigned in commit order and tailing the log by id misses nothing. Writers
//! wake the tailer when they record an event; the tailer's read waits for the writer's
//! transaction (they share the one connection), so it sees the event once committed. (An event
//! recorded outside a transaction is committed before the wake-up.) The tailer does not poll:
//! an idle server sends no statements.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::bus::Bus;
use super::log;
use crate::error::ApiResult;
use crate::events;
use crate::jobs::{JobResult, TaskCtx};

/// The tailer's name under the supervisor.
pub const TASK: &str = "event_tailer";

/// Tails the log until shutdown. Failing to find the log's head fails the task (the
/// supervisor tries again); a failed read later is retried at the next wake-up, and the
/// subscribers are told to catch up from the log meanwhile.
pub async fn run(ctx: TaskCtx, db: DatabaseConnection, bus: Arc<Bus>) -> anyhow::Result<()> {
    let mut last = log::head(&db).await.job()?;
    // After a restart, whatever was committed since the last run is caught up this way.
    bus.resync();
    ctx.ready();
    loop {
        let woken = events::recorded();
        tokio::pin!(woken);
        // Registered before reading, so a wake-up during the read is not lost.
        woken.as_mut().enable();
        match tail(&db, &bus, last).await {
            Ok((next, full)) => {
                last = next;
                if full {
                    continue;
                }
            }
            Err(err) => {
                tracing::warn!(error = ?err, "could not read the event log");
                bus.resync();
                crate::metrics::bus_resynced();
            }
        }
        tokio::select! {
            _ = &mut woken => {}
            () = ctx.stop().cancelled() => return Ok(()),
        }
    }
}

/// Publishes the events after `last`; returns the new position and whether there may be more.
async fn tail(db: &DatabaseConnection, bus: &Bus, last: i64) -> ApiResult<(i64, bool)> {
    let items = log::page(db, None, last).await?;
    let full = items.len() as u64 == log::PAGE;
    let next = items.last().map_or(last, |item| item.event.id);
    crate::metrics::bus_notified(items.len());
    for item in items {
        bus.publish(item);
    }
    Ok((next, full))
}
