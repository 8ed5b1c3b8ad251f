//! Guests: people who join one session with a name, no account and no provider. A guest is a
//! user with no e-mail address and `is_guest` set, signed in with tokens like anyone else.
//!
//! In their session a guest is a member like any other (upload, subscribe, leave, pushes).
//! Everything else is refused: other sessions, friends, look-ups, creating or inviting. Others
//! cannot find a guest either: a guest has no e-mail to look up, cannot be sent a friend
//! request, and is visible by id only to the people they share a session with.
//!
//! A guest's account goes when it can matter to nobody (see [`sweep`]), or when a signed-in
//! user claims it with the guest's refresh token: the memberships and photos move to that
//! user, and the guest's tokens are revoked.

use chrono::{DateTime, Utc};
use entity::session_member;
use entity::{device, event, photo, session, user};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

use crate::auth::refresh;
use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::events::EventPayload;
use crate::service::sessions::{self, ENDED};
use crate::service::sign_in::{TokenPair, Tokens};
use crate::service::{Viewer, input, moderation};

/// What a guest gets for anything beyond their session.
pub const FORBIDDEN: ApiError =
    ApiError::Forbidden("guests can only take part in their session; sign in to do more");

/// Whether `user_id` is a guest. A user that does not exist is not one (callers that need the
/// user to exist check that themselves).
pub async fn is_guest(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<bool> {
    Ok(guest_flag(db, user_id).await?.unwrap_or(false))
}

/// `Some(is_guest)` for a user that exists.
async fn guest_flag(db: &impl ConnectionTrait, user_id: Uuid) -> ApiResult<Option<bool>> {
    Ok(user::Entity::find_by_id(user_id)
        .select_only()
        .column(user::Column::IsGuest)
        .into_tuple()
        .one(db)
        .await?)
}

/// The signed-in viewer's id, if they have an account: FORBIDDEN for a guest, and
/// UNAUTHENTICATED for a token whose user is gone (a swept guest's last access token).
pub async fn account_id(db: &impl ConnectionTrait, viewer: Viewer) -> ApiResult<Uuid> {
    let me = viewer.user_id()?;
    match guest_flag(db, me).await? {
        Some(false) => Ok(me),
        Some(true) => Err(FORBIDDEN),
        None => Err(ApiError::Unauthenticated("this account no longer exists")),
    }
}

/// Whether `user_id` has ever been a member of the session (a guest who left may come back).
pub async fn was_member(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    user_id: Uuid,
) -> ApiResult<bool> {
    Ok(session_member::Entity::find_by_id((session_id, user_id))
        .one(db)
        .await?
        .is_some())
}

/// Whether `viewer` may see the guest `guest_id`: only someone who shares a session with them
/// (current or past), and the guest themselves.
pub async fn can_see(
    db: &impl ConnectionTrait,
    viewer_id: Uuid,
    guest_id: Uuid,
) -> ApiResult<bool> {
    if viewer_id == guest_id {
        return Ok(true);
    }
    let theirs = Query::select()
        .column(session_member::Column::SessionId)
        .from(session_member::Entity)
        .and_where(session_member::Column::UserId.eq(guest_id))
        .to_owned();
    let shared = session_member::Entity::find()
        .filter(session_member::Column::UserId.eq(viewer_id))
        .filter(session_member::Column::SessionId.in_subquery(theirs))
        .one(db)
        .await?;
    Ok(shared.is_some())
}

/// `joinSessionAsGuest`: a new guest named `name`, a member of the session behind
/// `invite_code`, signed in. Nothing is written unless all of it is.
pub async fn join_as_guest(
    db: &DatabaseConnection,
    tokens: &Tokens,
    invite_code: &str,
    name: &str,
    signed_in: Option<Uuid>,
) -> ApiResult<TokenPair> {
    let name = input::label("name", name, input::MAX_NAME_CHARS)?;
    let found = sessions::find_by_code(db, invite_code)
        .await?
        .ok_or(ApiError::NotFound("no session has this invite code"))?;
    let txn = db.begin().await?;
    if !sessions::lock_session(&txn, found.id, true).await? {
        return Err(ENDED);
    }
    // Read under the lock: the owner turning guests off commits before or after this, never
    // in between.
    let locked_row = session::Entity::find_by_id(found.id).one(&txn).await?;
    if !locked_row.as_ref().is_some_and(|s| s.allow_guests) {
        return Err(ApiError::Forbidden(
            "this session does not take guests; sign in to join",
        ));
    }
    // A banned account cannot walk back in as a guest while signed in. A stranger's phone
    // with no account cannot be told from anyone else's: against that the owner has locked
    // joins, guests turned off and a rotated code.
    if let Some(account) = signed_in {
        sessions::check_may_join(&txn, found.id, account).await?;
    } else if locked_row.is_some_and(|s| s.joins_locked) {
        return Err(ApiError::JoinsLocked);
    }
    let now = clock::now();
    let guest = user::Model {
        id: Uuid::now_v7(),
        email: None,
        name,
        avatar_url: None,
        created_at: now,
        updated_at: now,
        is_guest: true,
    };
    user::Entity::insert(user::ActiveModel::from(guest.clone()))
        .exec(&txn)
        .await?;
    sessions::add_member(&txn, found.id, guest.id).await?;
    let pair = tokens.sign_in(&txn, guest).await?;
    txn.commit().await?;
    tracing::info!(session_id = %found.id, user_id = %pair.user.id, "guest joined");
    Ok(pair)
}

const NOT_A_GUEST: ApiError =
    ApiError::Unauthenticated("invalid, expired or revoked guest refresh token");

/// `claimGuestAccount`: the signed-in user takes over the guest whose live refresh token they
/// present. Every membership and photo of the guest becomes theirs, the others in those
/// sessions see the guest leave and the user join, and the guest's tokens and devices go.
///
/// The guest's row stays, with nothing left in it, until the sweeper removes it: events
/// already in the log still name it.
pub async fn claim(
    db: &DatabaseConnection,
    viewer: Viewer,
    guest_refresh_token: &str,
) -> ApiResult<user::Model> {
    let me = account_id(db, viewer).await?;
    let guest_id = refresh::issued_to(db, guest_refresh_token)
        .await?
        .ok_or(NOT_A_GUEST)?;
    let txn = db.begin().await?;
    // The guest's row first, as the sweeper's delete takes it (then its children): a claim
    // and a sweep never wait on each other in opposite orders, and the sweep, re-checking
    // `updated_at` after the wait, leaves a guest claimed meanwhile alone.
    let locked = user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(clock::now()))
        .filter(user::Column::Id.eq(guest_id))
        .filter(user::Column::IsGuest.eq(true))
        .exec(&txn)
        .await?;
    if locked.rows_affected != 1 {
        return Err(NOT_A_GUEST);
    }
    // Used up here, so of two claims racing with one token exactly one proceeds; any error
    // below rolls this back and leaves the token as it was.
    if refresh::consume(&txn, guest_refresh_token).await? != Some(guest_id) {
        return Err(NOT_A_GUEST);
    }
    // Sessions in id order, each under its lock, the membership read again once locked: a
    // leave or rejoin racing the claim is either wholly before it or waits for it.
    let session_ids: Vec<Uuid> = session_member::Entity::find()
        .select_only()
        .column(session_member::Column::SessionId)
        .filter(session_member::Column::UserId.eq(guest_id))
        .order_by_asc(session_member::Column::SessionId)
        .into_tuple()
        .all(&txn)
        .await?;
    // Whoever was barred as a guest stays barred as themselves.
    moderation::move_bans(&txn, guest_id, me).await?;
    for session_id in session_ids {
        sessions::lock_session(&txn, session_id, false).await?;
        let Some(membership) = session_member::Entity::find_by_id((session_id, guest_id))
            .one(&txn)
            .await?
        else {
            continue;
        };
        if moderation::is_banned(&txn, session_id, me).await? {
            // The account may not be in this session: the guest's place there ends instead
            // of passing to them.
            end_guest_membership(&txn, &membership).await?;
        } else {
            move_membership(&txn, &membership, me).await?;
        }
    }
    photo::Entity::update_many()
        .col_expr(photo::Column::UploaderId, Expr::value(me))
        .filter(photo::Column::UploaderId.eq(guest_id))
        .exec(&txn)
        .await?;
    device::Entity::delete_many()
        .filter(device::Column::UserId.eq(guest_id))
        .exec(&txn)
        .await?;
    refresh::revoke_user(&txn, guest_id).await?;
    let claimer = user::Entity::find_by_id(me)
        .one(&txn)
        .await?
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))?;
    txn.commit().await?;
    tracing::info!(guest_id = %guest_id, user_id = %me, "guest account claimed");
    Ok(claimer)
}

/// Ends a guest's membership without handing it on; the caller holds the session's lock.
async fn end_guest_membership(
    txn: &DatabaseTransaction,
    membership: &session_member::Model,
) -> ApiResult<()> {
    if membership.left_at.is_some() {
        return Ok(());
    }
    session_member::Entity::update_many()
        .col_expr(session_member::Column::LeftAt, Expr::value(clock::now()))
        .filter(session_member::Column::SessionId.eq(membership.session_id))
        .filter(session_member::Column::UserId.eq(membership.user_id))
        .exec(txn)
        .await?;
    sessions::record(
        txn,
        membership.session_id,
        membership.user_id,
        EventPayload::MemberLeft {
            user_id: membership.user_id,
        },
    )
    .await?;
    Ok(())
}

/// Hands one of the guest's memberships to `me`; the caller holds the session's lock. If `me`
/// was in the session already, the guest's row goes, and `me`'s is revived if the guest was
/// there and `me` had left.
async fn move_membership(
    txn: &sea_orm::DatabaseTransaction,
    membership: &session_member::Model,
    me: Uuid,
) -> ApiResult<()> {
    let session_id = membership.session_id;
    let guest_id = membership.user_id;
    let mine = session_member::Entity::find_by_id((session_id, me))
        .one(txn)
        .await?;
    let guest_present = membership.left_at.is_none();
    let already_present = mine.as_ref().is_some_and(|m| m.left_at.is_none());
    if mine.is_none() {
        session_member::Entity::update_many()
            .col_expr(session_member::Column::UserId, Expr::value(me))
            .filter(session_member::Column::SessionId.eq(session_id))
            .filter(session_member::Column::UserId.eq(guest_id))
            .exec(txn)
            .await?;
    } else {
        session_member::Entity::delete_many()
            .filter(session_member::Column::SessionId.eq(session_id))
            .filter(session_member::Column::UserId.eq(guest_id))
            .exec(txn)
            .await?;
        if guest_present && !already_present {
            session_member::Entity::update_many()
                .col_expr(
                    session_member::Column::LeftAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(session_member::Column::JoinedAt, Expr::value(clock::now()))
                .filter(session_member::Column::SessionId.eq(session_id))
                .filter(session_member::Column::UserId.eq(me))
                .exec(txn)
                .await?;
        }
    }
    if guest_present {
        // Members' lists swap the guest for the user; replays see the same.
        sessions::record(
            txn,
            session_id,
            guest_id,
            EventPayload::MemberLeft { user_id: guest_id },
        )
        .await?;
        if !already_present {
            sessions::record(
                txn,
                session_id,
                me,
                EventPayload::MemberJoined { user_id: me },
            )
            .await?;
        }
    }
    Ok(())
}

/// Most guests removed per sweep statement.
const SWEEP_BATCH: u64 = 500;

/// Removes guests that can matter to nobody any more: no session they are in is still going,
/// no photo of theirs is left (their photos expired), no event in the log names them (their
/// joins and leaves, which members may still replay, have the member as actor), and their row
/// has not changed since `retained_from` (a claim touches it). Their tokens, devices and
/// memberships go with them (cascades).
pub async fn sweep(db: &DatabaseConnection, retained_from: DateTime<Utc>) -> ApiResult<u64> {
    let mut removed = 0;
    loop {
        let due: Vec<Uuid> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(done_with(retained_from))
            .limit(SWEEP_BATCH)
            .into_tuple()
            .all(db)
            .await?;
        if due.is_empty() {
            return Ok(removed);
        }
        // The same conditions again: on Postgres a row a claim changed meanwhile is read
        // again once its lock is free, and its new `updated_at` keeps it.
        let deleted = user::Entity::delete_many()
            .filter(user::Column::Id.is_in(due.iter().copied()))
            .filter(done_with(retained_from))
            .exec(db)
            .await?;
        removed += deleted.rows_affected;
        if deleted.rows_affected == 0 || (due.len() as u64) < SWEEP_BATCH {
            return Ok(removed);
        }
    }
}

/// The guests [`sweep`] removes, as one condition on `users`.
fn done_with(retained_from: DateTime<Utc>) -> Condition {
    let user_id = || Expr::col((user::Entity, user::Column::Id));
    let in_live_session = Query::select()
        .expr(Expr::val(1))
        .from(session_member::Entity)
        .inner_join(
            session::Entity,
            Expr::col((session::Entity, session::Column::Id))
                .equals((session_member::Entity, session_member::Column::SessionId)),
        )
        .and_where(
            Expr::col((session_member::Entity, session_member::Column::UserId)).eq(user_id()),
        )
        .and_where(Expr::col((session::Entity, session::Column::EndedAt)).is_null())
        .to_owned();
    let has_photo = Query::select()
        .expr(Expr::val(1))
        .from(photo::Entity)
        .and_where(Expr::col((photo::Entity, photo::Column::UploaderId)).eq(user_id()))
        .to_owned();
    let named_by_event = Query::select()
        .expr(Expr::val(1))
        .from(event::Entity)
        .and_where(Expr::col((event::Entity, event::Column::ActorId)).eq(user_id()))
        .to_owned();
    Condition::all()
        .add(user::Column::IsGuest.eq(true))
        .add(user::Column::UpdatedAt.lt(retained_from))
        .add(Expr::exists(in_live_session).not())
        .add(Expr::exists(has_photo).not())
        .add(Expr::exists(named_by_event).not())
}
