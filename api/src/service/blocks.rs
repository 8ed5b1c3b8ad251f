//! Blocking: a user hides another user's photos from themselves and stops hearing from them.
//!
//! The block is the blocker's business only: the blocked user is never told. Their friend
//! requests to the blocker appear to be sent (they get a pending request back, which is never
//! stored, so nothing reaches the blocker and their own list of sent requests does not show
//! it). They cannot invite the blocker to a session because blocking ends the friendship
//! (invites go to friends only), which to them looks like being unfriended.
//!
//! Photos are filtered with one anti-join per list query ([`visible_uploaders`]), never a
//! query per photo.

use entity::friendship::{self, FriendshipStatus};
use entity::{user, user_block};
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::events::{self, EventPayload, NewEvent};
use crate::service::{Viewer, guests};

const NO_SUCH_USER: ApiError = ApiError::NotFound("no such user");

/// The signed-in viewer whose user row still exists (guests included: they need safety too).
pub async fn live_user(db: &impl ConnectionTrait, viewer: Viewer) -> ApiResult<user::Model> {
    let me = viewer.user_id()?;
    user::Entity::find_by_id(me)
        .one(db)
        .await?
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))
}

/// The user `target` as `me` may find them: guests only by those who share a session.
async fn findable(db: &impl ConnectionTrait, me: Uuid, target: Uuid) -> ApiResult<()> {
    let Some(found) = user::Entity::find_by_id(target).one(db).await? else {
        return Err(NO_SUCH_USER);
    };
    if found.is_guest && !guests::can_see(db, me, target).await? {
        return Err(NO_SUCH_USER);
    }
    Ok(())
}

/// `blockUser`: idempotent. Ends a friendship between the two and drops pending (or
/// declined) requests either way, in the same transaction as the block.
pub async fn block_user(db: &DatabaseConnection, viewer: Viewer, target: Uuid) -> ApiResult<bool> {
    let me = live_user(db, viewer).await?.id;
    if me == target {
        return Err(ApiError::bad_input("userId", "you cannot block yourself"));
    }
    findable(db, me, target).await?;
    let (low, high) = if me < target {
        (me, target)
    } else {
        (target, me)
    };
    let txn = db.begin().await?;
    user_block::Entity::insert(user_block::ActiveModel {
        blocker_id: Set(me),
        blocked_id: Set(target),
        created_at: Set(clock::now()),
    })
    .on_conflict_do_nothing_on([user_block::Column::BlockerId, user_block::Column::BlockedId])
    .exec_without_returning(&txn)
    .await?;
    // Whatever the pair's row says (friends, pending, declined, cancelled), it goes: a later
    // unblock starts them from nothing.
    friendship::Entity::delete_many()
        .filter(friendship::Column::UserLowId.eq(low))
        .filter(friendship::Column::UserHighId.eq(high))
        .exec(&txn)
        .await?;
    blocks_changed(&txn, me).await?;
    txn.commit().await?;
    Ok(true)
}

/// Tells `me`'s live subscriptions, on every replica, to re-read whom they block.
async fn blocks_changed(txn: &DatabaseTransaction, me: Uuid) -> ApiResult<()> {
    events::record(
        txn,
        NewEvent {
            session_id: None,
            actor_id: me,
            payload: EventPayload::BlocksChanged {},
            push: false,
        },
    )
    .await?;
    Ok(())
}

/// `unblockUser`: idempotent; the friendship does not come back.
pub async fn unblock_user(
    db: &DatabaseConnection,
    viewer: Viewer,
    target: Uuid,
) -> ApiResult<bool> {
    let me = live_user(db, viewer).await?.id;
    if me == target {
        return Err(ApiError::bad_input("userId", "you cannot unblock yourself"));
    }
    findable(db, me, target).await?;
    let txn = db.begin().await?;
    let removed = user_block::Entity::delete_many()
        .filter(user_block::Column::BlockerId.eq(me))
        .filter(user_block::Column::BlockedId.eq(target))
        .exec(&txn)
        .await?;
    if removed.rows_affected > 0 {
        blocks_changed(&txn, me).await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// Whether `blocker` blocks `blocked`.
pub async fn blocks(db: &impl ConnectionTrait, blocker: Uuid, blocked: Uuid) -> ApiResult<bool> {
    Ok(user_block::Entity::find_by_id((blocker, blocked))
        .one(db)
        .await?
        .is_some())
}

/// What a blocked user gets back for a friend request to the user who blocks them: a pending
/// request like any other, stored nowhere.
pub fn unsent_request(me: Uuid, target: Uuid) -> friendship::Model {
    let (low, high) = if me < target {
        (me, target)
    } else {
        (target, me)
    };
    friendship::Model {
        id: Uuid::now_v7(),
        user_low_id: low,
        user_high_id: high,
        requester_id: me,
        status: FriendshipStatus::Pending,
        created_at: clock::now(),
        responded_at: None,
    }
}

/// The condition, on a query of `photos`, that the photo is one `viewer` may see as far as
/// safety goes: not uploaded by someone they block, and not hidden by reports unless it is
/// theirs. One anti-join; an anonymous viewer (the nil id) sees no hidden photo.
pub fn visible_uploaders(viewer: Uuid) -> Condition {
    let blocked = Query::select()
        .column(user_block::Column::BlockedId)
        .from(user_block::Entity)
        .and_where(user_block::Column::BlockerId.eq(viewer))
        .to_owned();
    Condition::all()
        .add(entity::photo::Column::UploaderId.not_in_subquery(blocked))
        .add(
            Condition::any()
                .add(entity::photo::Column::HiddenAt.is_null())
                .add(entity::photo::Column::UploaderId.eq(viewer)),
        )
}

/// Whether `viewer` may see this photo as far as safety goes (one query at most).
pub async fn may_see(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    photo: &entity::photo::Model,
) -> ApiResult<bool> {
    if photo.uploader_id == viewer {
        return Ok(true);
    }
    if photo.hidden_at.is_some() {
        return Ok(false);
    }
    Ok(!blocks(db, viewer, photo.uploader_id).await?)
}

/// Which of `blockers` block which of `blocked`, as (blocker, blocked) pairs: one query, for
/// pushes that sum up several people's photos for several members.
pub async fn pairs_among(
    db: &impl ConnectionTrait,
    blockers: &[Uuid],
    blocked: &[Uuid],
) -> ApiResult<std::collections::HashSet<(Uuid, Uuid)>> {
    if blockers.is_empty() || blocked.is_empty() {
        return Ok(Default::default());
    }
    let pairs: Vec<(Uuid, Uuid)> = user_block::Entity::find()
        .select_only()
        .column(user_block::Column::BlockerId)
        .column(user_block::Column::BlockedId)
        .filter(user_block::Column::BlockerId.is_in(blockers.iter().copied()))
        .filter(user_block::Column::BlockedId.is_in(blocked.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(pairs.into_iter().collect())
}

/// Everyone `viewer` blocks, for a live subscription: read when it starts and again after
/// each `BlocksChanged` of theirs (lists and lookups filter in SQL instead).
pub async fn blocked_by(
    db: &impl ConnectionTrait,
    viewer: Viewer,
) -> ApiResult<std::collections::HashSet<Uuid>> {
    let Viewer::User(me) = viewer else {
        return Ok(Default::default());
    };
    let ids: Vec<Uuid> = user_block::Entity::find()
        .select_only()
        .column(user_block::Column::BlockedId)
        .filter(user_block::Column::BlockerId.eq(me))
        .into_tuple()
        .all(db)
        .await?;
    Ok(ids.into_iter().collect())
}
