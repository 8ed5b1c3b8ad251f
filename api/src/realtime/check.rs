//! The sequence check: once per interval, this replica compares how far each session with
//! subscribers here has got in its log (`sessions.event_seq`) with how far it has heard.
//! A feed notices a lost wake-up when a later event arrives; this finds the one case it
//! cannot, a lost wake-up for a session's latest event. A session found behind for a whole
//! interval (its log already had that event at the previous check) is told to catch up from
//! the log; one only just behind is a wake-up still on its way and is left alone.
//!
//! One indexed read of the sessions' rows per interval, in chunks, whatever the traffic; it
//! runs only where wake-ups travel between processes (Postgres or NATS), not on the
//! embedded default, whose tailer reads the log itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use entity::session;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::bus::Bus;
use crate::jobs::TaskCtx;

/// The check's name under the supervisor.
pub const TASK: &str = "event_sequence_check";
/// Sessions read per statement.
const CHUNK: usize = 1000;

/// Checks every `every` until shutdown. A failed read is logged and tried at the next
/// interval: the check is a safety net, and its failing is no reason to call the replica
/// unready.
pub async fn run(
    ctx: TaskCtx,
    db: DatabaseConnection,
    bus: Arc<Bus>,
    every: Duration,
) -> anyhow::Result<()> {
    ctx.ready();
    let mut previous: HashMap<Uuid, i64> = HashMap::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = ctx.stop().cancelled() => return Ok(()),
        }
        match check(&db, &bus, &previous).await {
            Ok(current) => previous = current,
            Err(err) => {
                tracing::warn!(error = %err, "could not check the sessions' event sequences")
            }
        }
    }
}

/// One round: resyncs the sessions still behind what `previous` saw in their logs, and
/// returns what the logs hold now.
async fn check(
    db: &DatabaseConnection,
    bus: &Bus,
    previous: &HashMap<Uuid, i64>,
) -> Result<HashMap<Uuid, i64>, sea_orm::DbErr> {
    let seen = bus.seen();
    let mut current = HashMap::with_capacity(seen.len());
    for chunk in seen.chunks(CHUNK) {
        let rows: Vec<(Uuid, i64)> = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .column(session::Column::EventSeq)
            .filter(session::Column::Id.is_in(chunk.iter().map(|(id, _)| *id)))
            .into_tuple()
            .all(db)
            .await?;
        current.extend(rows);
    }
    for (session_id, heard) in seen {
        if let Some(&logged) = previous.get(&session_id)
            && heard < logged
        {
            tracing::debug!(%session_id, heard, logged, "a wake-up was lost; catching up");
            crate::metrics::bus_gap("check");
            bus.resync_session(session_id, logged);
        }
    }
    Ok(current)
}
