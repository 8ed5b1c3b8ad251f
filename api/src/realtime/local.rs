//! Fan-out for the embedded default (SQLite, one process). SQLite has a single writer, so
//! event ids are assigned in commit order and tailing the log by id misses nothing. Writers
//! wake the tailer when they record an event; the tailer's read waits for the writer's
//! transaction (they share the one connection), so it sees the event once committed. (An event
//! recorded outside a transaction is committed before the wake-up.) The tailer does not poll:
//! an idle server sends no statements.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::watch;

use super::bus::Bus;
use super::log;
use crate::error::ApiResult;
use crate::events;

pub fn spawn(db: DatabaseConnection, bus: Arc<Bus>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut last = match log::head(&db, None).await {
            Ok(head) => head,
            Err(err) => {
                tracing::error!(error = ?err, "cannot read the event log; live updates are off");
                return;
            }
        };
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
                _ = stop.changed() => return,
            }
        }
    });
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
