//! The owner's remedies against someone at the party who should not be: removing a member,
//! barring them from coming back, and lifting that bar.
//!
//! A removal is a departure the member did not choose: their membership ends (their photos
//! stay, unless the owner deletes them), a `MemberRemoved` event ends their feeds on every
//! replica, and everything that checks membership (uploads, completions, pushes, reads) stops
//! serving them at once. A ban is a row in `session_bans` that every join path reads under
//! the session's lock, so no code, current or rotated, lets them back in.

use std::collections::HashMap;

use entity::session_ban;
use entity::session_member::{self, SessionRole};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::events::EventPayload;
use crate::service::Viewer;
use crate::service::pagination::{Page, PageRequest, pages_per_session};
use crate::service::sessions::{self, MemberKey, SessionView};

const NO_SUCH_MEMBER: ApiError = ApiError::NotFound("no such member of this session");

/// Removes `user_id` from the session (owner only); with `ban`, they may not come back.
/// Banning someone who already left is allowed (a leaked link's holder who left could
/// otherwise rejoin); removing someone who never was a member is NOT_FOUND. Removing and
/// banning again changes nothing.
pub async fn remove_member(
    db: &DatabaseConnection,
    viewer: Viewer,
    session_id: Uuid,
    user_id: Uuid,
    ban: bool,
) -> ApiResult<SessionView> {
    let me = viewer.user_id()?;
    sessions::get_as_owner(db, session_id, me).await?;
    if user_id == me {
        return Err(ApiError::bad_input(
            "userId",
            "the owner cannot remove themselves; end the session instead",
        ));
    }
    let txn = db.begin().await?;
    sessions::lock_session(&txn, session_id, false).await?;
    let Some(member) = session_member::Entity::find_by_id((session_id, user_id))
        .one(&txn)
        .await?
    else {
        return Err(NO_SUCH_MEMBER);
    };
    let now = clock::now();
    let removed = member.left_at.is_none()
        && session_member::Entity::update_many()
            .col_expr(session_member::Column::LeftAt, Expr::value(now))
            .filter(session_member::Column::SessionId.eq(session_id))
            .filter(session_member::Column::UserId.eq(user_id))
            .filter(session_member::Column::LeftAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
    if ban {
        insert_ban(&txn, session_id, user_id).await?;
    }
    if removed {
        sessions::record(
            &txn,
            session_id,
            me,
            EventPayload::MemberRemoved {
                user_id,
                banned: ban,
            },
        )
        .await?;
    }
    let view = sessions::get_as_owner(&txn, session_id, me).await?;
    txn.commit().await?;
    if removed {
        tracing::info!(%session_id, %user_id, ban, "member removed");
    }
    Ok(view)
}

async fn insert_ban(txn: &DatabaseTransaction, session_id: Uuid, user_id: Uuid) -> ApiResult<()> {
    session_ban::Entity::insert(session_ban::ActiveModel {
        session_id: Set(session_id),
        user_id: Set(user_id),
        banned_at: Set(clock::now()),
    })
    .on_conflict_do_nothing_on([session_ban::Column::SessionId, session_ban::Column::UserId])
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Lifts a ban (owner only): they may join again with the invite code, as anyone may; they
/// are not added back. Lifting a ban that is not there changes nothing.
pub async fn unban_member(
    db: &DatabaseConnection,
    viewer: Viewer,
    session_id: Uuid,
    user_id: Uuid,
) -> ApiResult<SessionView> {
    let me = viewer.user_id()?;
    let view = sessions::get_as_owner(db, session_id, me).await?;
    session_ban::Entity::delete_many()
        .filter(session_ban::Column::SessionId.eq(session_id))
        .filter(session_ban::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(view)
}

/// Whether `user_id` is barred from the session. Join paths call it under the session's lock,
/// so a ban committed before the join is seen and one committed after it removes them anew.
pub async fn is_banned(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    user_id: Uuid,
) -> ApiResult<bool> {
    Ok(session_ban::Entity::find_by_id((session_id, user_id))
        .one(db)
        .await?
        .is_some())
}

/// A claimed guest's bans become the account's: whoever was barred as a guest stays barred
/// under their account. Called inside the claim's transaction.
pub async fn move_bans(txn: &DatabaseTransaction, from: Uuid, to: Uuid) -> ApiResult<()> {
    let bans = session_ban::Entity::find()
        .filter(session_ban::Column::UserId.eq(from))
        .all(txn)
        .await?;
    for ban in bans {
        insert_ban(txn, ban.session_id, to).await?;
    }
    session_ban::Entity::delete_many()
        .filter(session_ban::Column::UserId.eq(from))
        .exec(txn)
        .await?;
    Ok(())
}

/// Position in a ban list: by time of the ban.
pub type BanKey = MemberKey;

/// One page of banned users for each of several sessions whose owner the caller has already
/// shown the viewer to be, in one statement (as `sessions::list_members` does for members).
pub async fn list_banned(
    db: &impl ConnectionTrait,
    session_ids: &[Uuid],
    page: &PageRequest<BanKey>,
) -> ApiResult<HashMap<Uuid, Page<session_ban::Model>>> {
    let mut inner = session_ban::Entity::find()
        .filter(session_ban::Column::SessionId.is_in(session_ids.iter().copied()));
    if let Some((banned_at, user_id)) = page.after {
        inner = inner.filter(
            Condition::any()
                .add(session_ban::Column::BannedAt.gt(banned_at))
                .add(
                    Condition::all()
                        .add(session_ban::Column::BannedAt.eq(banned_at))
                        .add(session_ban::Column::UserId.gt(user_id)),
                ),
        );
    }
    pages_per_session(
        db,
        inner,
        "banned_at, user_id",
        session_ids,
        page,
        |b| b.session_id,
        |b| (b.banned_at, b.user_id),
    )
    .await
}

/// Whether the viewer owns the session, for fields only the owner may read.
pub fn is_owner(view: &SessionView) -> bool {
    view.viewer_role == SessionRole::Owner
}
