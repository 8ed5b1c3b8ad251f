//! The event log. Every state change that members see (joins, leaves, photos, the end of a
//! session, friend requests) is recorded in the same transaction as the change itself, so the
//! log and the tables can never disagree; subscriptions replay it and the push dispatcher
//! drains it. Recording also announces the event to the replicas' feeds.

pub mod payload;

use entity::event::{self, PushState};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseBackend, EntityTrait, Statement};
use tokio::sync::Notify;
use uuid::Uuid;

pub use payload::{DeleteReason, EventPayload, MalformedEvent};

use crate::clock;
use crate::error::ApiResult;

/// The Postgres notification channel every replica listens on.
pub const CHANNEL: &str = "photon_events";

/// A new event, before it is stored.
pub struct NewEvent {
    pub session_id: Option<Uuid>,
    pub actor_id: Uuid,
    pub payload: EventPayload,
    /// Whether the push dispatcher should tell someone about it.
    pub push: bool,
}

/// Appends an event and returns its id (the resume cursor).
pub async fn record(db: &impl ConnectionTrait, new: NewEvent) -> ApiResult<i64> {
    let result = event::Entity::insert(event::ActiveModel {
        session_id: Set(new.session_id),
        actor_id: Set(Some(new.actor_id)),
        kind: Set(new.payload.kind()),
        payload: Set(new.payload.to_json()),
        created_at: Set(clock::now()),
        push_state: Set(if new.push {
            PushState::Pending
        } else {
            PushState::None
        }),
        ..Default::default()
    })
    .exec(db)
    .await?;
    announce(db, result.last_insert_id).await?;
    Ok(result.last_insert_id)
}

/// Wakes the embedded default's tailer (one process, so a `Notify` is the whole bus).
static RECORDED: Notify = Notify::const_new();

/// Resolves at the next local announcement; see [`RECORDED`]. Register it (`enable`) before
/// reading the log, so an event recorded during the read is not missed.
pub fn recorded() -> tokio::sync::futures::Notified<'static> {
    RECORDED.notified()
}

/// Announces a just-recorded event. On Postgres the notification is part of the writer's
/// transaction, so it goes out only if the event commits, and in commit order.
async fn announce(db: &impl ConnectionTrait, event_id: i64) -> ApiResult<()> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), event_id.to_string().into()],
            ))
            .await?;
        }
        _ => RECORDED.notify_waiters(),
    }
    Ok(())
}
