//! Writing to the event log. Every state change that members see (joins, leaves, the end of a
//! session) is recorded in the same transaction as the change itself, so the log and the
//! tables can never disagree; subscriptions replay it and the push dispatcher drains it.

use entity::event::{self, EventKind, PushState};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::service::clock;

/// A new event, before it is stored.
pub struct NewEvent {
    pub session_id: Option<Uuid>,
    pub actor_id: Uuid,
    pub kind: EventKind,
    pub payload: Value,
    pub push: bool,
}

/// Appends an event and returns its id (the resume cursor).
pub async fn record(db: &impl ConnectionTrait, new: NewEvent) -> ApiResult<i64> {
    let result = event::Entity::insert(event::ActiveModel {
        session_id: Set(new.session_id),
        actor_id: Set(Some(new.actor_id)),
        kind: Set(new.kind),
        payload: Set(new.payload),
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
    crate::realtime::announce(db, result.last_insert_id).await?;
    Ok(result.last_insert_id)
}
