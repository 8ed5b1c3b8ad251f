//! Push dedup: marks of pushes already sent, so that repeating an action does not repeat its
//! push on someone else's phone. A friend request cancelled and re-sent ten times a minute
//! pushes its recipient once a day; inviting the same friend to the same session again
//! pushes once. The event itself is still recorded (the app's lists and subscriptions show
//! it); only its push is dropped.
//!
//! A mark is taken in the transaction that records the event, with one upsert that only
//! succeeds when there is no live mark, so concurrent requests cannot both push.

use chrono::{DateTime, Utc};
use entity::push_mark;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::error::ApiResult;

/// How long a friend request's push keeps the next one for the same pair quiet.
pub const FRIEND_REQUEST_WINDOW: chrono::Duration = chrono::Duration::days(1);

/// How long an invite's push keeps repeated invites quiet: longer than any party, and the
/// sweeper forgets it afterwards.
pub const INVITE_WINDOW: chrono::Duration = chrono::Duration::days(30);

pub fn friend_request(sender: Uuid, recipient: Uuid) -> String {
    format!("friend:{sender}:{recipient}")
}

pub fn invite(session_id: Uuid, invitee: Uuid) -> String {
    format!("invite:{session_id}:{invitee}")
}

/// Takes `mark` for `window` from `now` unless a live one exists; returns whether it did,
/// i.e. whether this event may push.
pub async fn take(
    db: &impl ConnectionTrait,
    mark: String,
    window: chrono::Duration,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    let taken = push_mark::Entity::insert(push_mark::ActiveModel {
        mark: Set(mark),
        pushed_at: Set(now),
        expires_at: Set(now + window),
    })
    .on_conflict(
        OnConflict::column(push_mark::Column::Mark)
            .update_columns([push_mark::Column::PushedAt, push_mark::Column::ExpiresAt])
            .action_and_where(Expr::col((push_mark::Entity, push_mark::Column::ExpiresAt)).lte(now))
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(taken == 1)
}

/// Forgets marks that no longer hold anything back.
pub async fn prune_expired(db: &impl ConnectionTrait, now: DateTime<Utc>) -> ApiResult<u64> {
    Ok(push_mark::Entity::delete_many()
        .filter(push_mark::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?
        .rows_affected)
}
