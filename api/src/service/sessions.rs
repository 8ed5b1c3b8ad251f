//! Sessions: shared albums, their members, invite codes and invitations.
//!
//! A session is visible only to its current members. Everyone else, whether the session
//! exists or not, gets the same answer (`None` or NOT_FOUND), so ids cannot be probed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::session_member::{self, NotificationLevel, SessionRole};
use entity::{session, user};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    FromQueryResult, IdenStatic, JoinType, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, RelationTrait, SelectA, SelectB, TransactionTrait, TryInsertResult,
    sea_query::{Expr, SelectStatement},
};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::events::{self, EventPayload, NewEvent};
use crate::push::marks;
use crate::service::Viewer;
use crate::service::pagination::{Page, PageRequest, pages_per_session_with_users};
use crate::service::{
    friends, guests, input, invite_code, is_unique_violation, moderation, photos,
};

pub const DEFAULT_PHOTO_LIFETIME_HOURS: i32 = 5;
/// Hours after the end in which members may still upload, unless the owner says otherwise.
pub const DEFAULT_LATE_UPLOAD_HOURS: i32 = 12;
/// The longest late-upload window an owner may set.
pub const MAX_LATE_UPLOAD_HOURS: i32 = 72;
/// Most users one `inviteToSession` call may name.
pub const MAX_INVITEES: usize = 50;

const NO_SUCH_SESSION: ApiError = ApiError::NotFound("no such session");
const OWNER_ONLY: ApiError = ApiError::Forbidden("only the session's owner can do that");

/// A session as one member sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: session::Model,
    pub viewer_role: SessionRole,
    /// How much the session pushes the viewer.
    pub viewer_notifications: NotificationLevel,
}

impl SessionView {
    fn of(session: session::Model, member: &session_member::Model) -> Self {
        Self {
            session,
            viewer_role: member.role,
            viewer_notifications: member.notifications,
        }
    }
}

/// What someone holding an invite code may see before joining, signed in or not: the
/// session (ended ones too), its owner and two counts; never its photos or members.
#[derive(Debug, Clone)]
pub struct InvitePreview {
    pub session: session::Model,
    pub owner: user::Model,
    pub member_count: u64,
    /// Ready photos that have not expired, as `Session.photoCount` counts them.
    pub photo_count: i64,
}

fn active_member(session_id: Uuid, user_id: Uuid) -> Condition {
    Condition::all()
        .add(session_member::Column::SessionId.eq(session_id))
        .add(session_member::Column::UserId.eq(user_id))
        .add(session_member::Column::LeftAt.is_null())
}

/// The session, if `user_id` is a current member.
async fn find_as_member(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    user_id: Uuid,
) -> ApiResult<Option<SessionView>> {
    let row = session::Entity::find_by_id(session_id)
        .find_also_related(session_member::Entity)
        .filter(session_member::Column::UserId.eq(user_id))
        .filter(session_member::Column::LeftAt.is_null())
        .one(db)
        .await?;
    Ok(row.and_then(|(session, member)| member.map(|m| SessionView::of(session, &m))))
}

async fn get_as_member(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    user_id: Uuid,
) -> ApiResult<SessionView> {
    find_as_member(db, session_id, user_id)
        .await?
        .ok_or(NO_SUCH_SESSION)
}

/// The session, if `user_id` owns it: NOT_FOUND for strangers (as everywhere), FORBIDDEN for
/// members.
pub(crate) async fn get_as_owner(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    user_id: Uuid,
) -> ApiResult<SessionView> {
    let view = get_as_member(db, session_id, user_id).await?;
    if view.viewer_role != SessionRole::Owner {
        return Err(OWNER_ONLY);
    }
    Ok(view)
}

/// Whether members may still upload to the session at `now`: while it runs, and for its
/// late-upload window after the end, so a phone that had no signal at the venue catches up.
pub fn takes_uploads(session: &session::Model, now: DateTime<Utc>) -> bool {
    match session.ended_at {
        None => true,
        Some(ended_at) => now < late_uploads_close(ended_at, session.late_upload_hours),
    }
}

/// When an ended session stops taking uploads.
pub fn late_uploads_close(ended_at: DateTime<Utc>, late_upload_hours: i32) -> DateTime<Utc> {
    ended_at + chrono::Duration::hours(i64::from(late_upload_hours.max(0)))
}

fn late_upload_hours(hours: i32) -> ApiResult<i32> {
    if !(0..=MAX_LATE_UPLOAD_HOURS).contains(&hours) {
        return Err(ApiError::bad_input(
            "lateUploadHours",
            format!("lateUploadHours must be between 0 and {MAX_LATE_UPLOAD_HOURS}"),
        ));
    }
    Ok(hours)
}

fn photo_lifetime(hours: i32, max: i32) -> ApiResult<i32> {
    if !(1..=max).contains(&hours) {
        return Err(ApiError::bad_input(
            "photoLifetimeHours",
            format!("photoLifetimeHours must be between 1 and {max}"),
        ));
    }
    Ok(hours)
}

/// The session, or NOT_FOUND unless the viewer is a current member.
pub async fn get_session(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    session_id: Uuid,
) -> ApiResult<SessionView> {
    get_as_member(db, session_id, viewer.user_id()?).await
}

/// [`get_session`] with `N` more values computed in the same statement: each a scalar
/// subquery (an `i64`, or NULL), read back in order. What would otherwise be a round trip of
/// its own per value, for callers that need them every time (a subscription starting).
pub async fn get_session_with<const N: usize>(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    session_id: Uuid,
    values: [SelectStatement; N],
) -> ApiResult<(SessionView, [Option<i64>; N])> {
    let mut select = session::Entity::find_by_id(session_id)
        .find_also_related(session_member::Entity)
        .filter(session_member::Column::UserId.eq(viewer.user_id()?))
        .filter(session_member::Column::LeftAt.is_null());
    for (i, value) in values.into_iter().enumerate() {
        select = select.expr_as(Expr::SubQuery(None, Box::new(value.into())), value_alias(i));
    }
    let row = db
        .query_one_raw(select.build(db.get_database_backend()))
        .await?
        .ok_or(NO_SUCH_SESSION)?;
    let session = session::Model::from_query_result(&row, SelectA.as_str())?;
    let member = session_member::Model::from_query_result(&row, SelectB.as_str())?;
    let mut read = [None; N];
    for (i, slot) in read.iter_mut().enumerate() {
        *slot = row.try_get::<Option<i64>>("", &value_alias(i))?;
    }
    Ok((SessionView::of(session, &member), read))
}

fn value_alias(i: usize) -> String {
    format!("value_{i}")
}

/// Sessions by id that `me` is a current member of, for the DataLoader.
pub async fn load_sessions_for(
    db: &impl ConnectionTrait,
    me: Uuid,
    session_ids: &[Uuid],
) -> ApiResult<HashMap<Uuid, SessionView>> {
    let rows = session::Entity::find()
        .find_also_related(session_member::Entity)
        .filter(session::Column::Id.is_in(session_ids.iter().copied()))
        .filter(session_member::Column::UserId.eq(me))
        .filter(session_member::Column::LeftAt.is_null())
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(session, member)| member.map(|m| (session.id, SessionView::of(session, &m))))
        .collect())
}

pub async fn find_session(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    session_id: Uuid,
) -> ApiResult<Option<SessionView>> {
    find_as_member(db, session_id, viewer.user_id()?).await
}

/// What a new session needs.
#[derive(Debug)]
pub struct NewSession {
    pub title: String,
    pub photo_lifetime_hours: Option<i32>,
    /// Whether guests may join with the invite code (default: yes).
    pub allow_guests: Option<bool>,
    pub late_upload_hours: Option<i32>,
    /// The longest photo lifetime allowed (`PHOTON_MAX_PHOTO_LIFETIME_HOURS`).
    pub max_photo_lifetime_hours: i32,
}

pub async fn create_session(
    db: &DatabaseConnection,
    viewer: Viewer,
    new: NewSession,
) -> ApiResult<SessionView> {
    let me = guests::account_id(db, viewer).await?;
    let title = input::label("title", &new.title, input::MAX_TITLE_CHARS)?;
    let lifetime = photo_lifetime(
        new.photo_lifetime_hours
            .unwrap_or(DEFAULT_PHOTO_LIFETIME_HOURS.min(new.max_photo_lifetime_hours)),
        new.max_photo_lifetime_hours,
    )?;
    let late_upload_hours =
        late_upload_hours(new.late_upload_hours.unwrap_or(DEFAULT_LATE_UPLOAD_HOURS))?;
    let txn = db.begin().await?;
    let now = clock::now();
    let session = session::Model {
        id: Uuid::now_v7(),
        title,
        owner_id: me,
        invite_code: invite_code::generate(),
        photo_lifetime_hours: lifetime,
        created_at: now,
        ended_at: None,
        allow_guests: new.allow_guests.unwrap_or(true),
        joins_locked: false,
        late_upload_hours,
        photos_pushed_at: None,
        expiry_warned_at: None,
        event_seq: 0,
    };
    // 80 random bits make a collision vanishingly rare; the unique index makes it harmless.
    session::Entity::insert(session::ActiveModel::from(session.clone()))
        .exec(&txn)
        .await?;
    session_member::Entity::insert(session_member::ActiveModel {
        session_id: Set(session.id),
        user_id: Set(me),
        role: Set(SessionRole::Owner),
        joined_at: Set(now),
        left_at: Set(None),
        notifications: Set(NotificationLevel::All),
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    Ok(SessionView {
        session,
        viewer_role: SessionRole::Owner,
        viewer_notifications: NotificationLevel::All,
    })
}

/// The session whose current invite code this is (typed in any accepted form), ended or not.
pub async fn find_by_code(
    db: &impl ConnectionTrait,
    code: &str,
) -> ApiResult<Option<session::Model>> {
    let Some(code) = invite_code::normalize(code) else {
        return Ok(None);
    };
    Ok(session::Entity::find()
        .filter(session::Column::InviteCode.eq(code))
        .one(db)
        .await?)
}

async fn member_count(db: &impl ConnectionTrait, session_id: Uuid) -> ApiResult<u64> {
    Ok(session_member::Entity::find()
        .filter(session_member::Column::SessionId.eq(session_id))
        .filter(session_member::Column::LeftAt.is_null())
        .count(db)
        .await?)
}

/// A preview of the session behind an invite code, or `None` for a code that is not (or no
/// longer) any session's. Anyone holding the code may ask, anonymously too: the code is the
/// capability, and callers rate-limit the asking. Four statements, whatever the session.
pub async fn preview_invite(
    db: &impl ConnectionTrait,
    code: &str,
) -> ApiResult<Option<InvitePreview>> {
    let Some(session) = find_by_code(db, code).await? else {
        return Ok(None);
    };
    let ids = [session.id];
    let (owner, member_count, photo_counts) = tokio::try_join!(
        async {
            user::Entity::find_by_id(session.owner_id)
                .one(db)
                .await
                .map_err(ApiError::from)
        },
        member_count(db, session.id),
        photos::count_photos(db, Uuid::nil(), &ids),
    )?;
    let owner = owner.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "session {} has no owner row {}",
            session.id,
            session.owner_id
        ))
    })?;
    Ok(Some(InvitePreview {
        photo_count: photo_counts.get(&session.id).copied().unwrap_or(0),
        session,
        owner,
        member_count,
    }))
}

/// Joins the session behind an invite code. Joining a session one is already in is harmless;
/// one who left comes back. A guest may only come back to their own session.
pub async fn join_session(
    db: &DatabaseConnection,
    viewer: Viewer,
    code: &str,
) -> ApiResult<SessionView> {
    let me = viewer.user_id()?;
    let session = find_by_code(db, code)
        .await?
        .ok_or(ApiError::NotFound("no session has this invite code"))?;
    let txn = db.begin().await?;
    if !lock_session(&txn, session.id, true).await? {
        return Err(ENDED);
    }
    // Already in: joining again is harmless, locked or not.
    if let Some(view) = find_as_member(&txn, session.id, me).await? {
        return Ok(view);
    }
    // Under the lock: a ban, a lock or a claim moving the guest's membership away is wholly
    // before this join or after it.
    check_may_join(&txn, session.id, me).await?;
    if guests::is_guest(&txn, me).await? && !guests::was_member(&txn, session.id, me).await? {
        return Err(guests::FORBIDDEN);
    }
    add_member(&txn, session.id, me).await?;
    let view = get_as_member(&txn, session.id, me).await?;
    txn.commit().await?;
    Ok(view)
}

/// Refuses a join by someone who is not a current member: BANNED when the owner barred them,
/// JOINS_LOCKED while joins are locked. Call under the session's lock.
pub(crate) async fn check_may_join(
    txn: &DatabaseTransaction,
    session_id: Uuid,
    user_id: Uuid,
) -> ApiResult<()> {
    if moderation::is_banned(txn, session_id, user_id).await? {
        return Err(ApiError::Banned);
    }
    let locked = session::Entity::find_by_id(session_id)
        .one(txn)
        .await?
        .is_some_and(|s| s.joins_locked);
    if locked {
        return Err(ApiError::JoinsLocked);
    }
    Ok(())
}

/// Makes `user_id` a current member, under the session's lock (see [`lock_session`]): a new
/// row, or a revived one whose member left. The primary key (session, user) means 20
/// simultaneous joins still leave one row, and only the request that changed it records the
/// event. Returns whether anything changed.
pub(crate) async fn add_member(
    txn: &DatabaseTransaction,
    session_id: Uuid,
    user_id: Uuid,
) -> ApiResult<bool> {
    let now = clock::now();
    let joined = session_member::Entity::insert(session_member::ActiveModel {
        session_id: Set(session_id),
        user_id: Set(user_id),
        role: Set(SessionRole::Member),
        joined_at: Set(now),
        left_at: Set(None),
        notifications: Set(NotificationLevel::All),
    })
    .on_conflict_do_nothing_on([
        session_member::Column::SessionId,
        session_member::Column::UserId,
    ])
    .exec(txn)
    .await?;
    let changed = match joined {
        TryInsertResult::Inserted(_) => true,
        _ => {
            let revived = session_member::Entity::update_many()
                .col_expr(
                    session_member::Column::LeftAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(session_member::Column::JoinedAt, Expr::value(now))
                .filter(session_member::Column::SessionId.eq(session_id))
                .filter(session_member::Column::UserId.eq(user_id))
                .filter(session_member::Column::LeftAt.is_not_null())
                .exec(txn)
                .await?;
            revived.rows_affected == 1
        }
    };
    if changed {
        record(
            txn,
            session_id,
            user_id,
            EventPayload::MemberJoined { user_id },
        )
        .await?;
    }
    Ok(changed)
}

/// Takes the session row's write lock for the rest of `txn`; with `active_only`, only if the
/// session has not ended. Returns whether it did.
///
/// Every transaction that writes a session's events takes this lock first, so a session's
/// events commit in the order of their ids (what resuming from a cursor relies on), and a
/// join or invite cannot slip in after the session ended.
pub(crate) async fn lock_session(
    txn: &DatabaseTransaction,
    session_id: Uuid,
    active_only: bool,
) -> ApiResult<bool> {
    let mut update = session::Entity::update_many()
        .col_expr(
            session::Column::EndedAt,
            Expr::col(session::Column::EndedAt),
        )
        .filter(session::Column::Id.eq(session_id));
    if active_only {
        update = update.filter(session::Column::EndedAt.is_null());
    }
    Ok(update.exec(txn).await?.rows_affected == 1)
}

pub(crate) const ENDED: ApiError = ApiError::Conflict("this session has ended");

pub(crate) async fn record(
    txn: &DatabaseTransaction,
    session_id: Uuid,
    actor: Uuid,
    payload: EventPayload,
) -> ApiResult<i64> {
    events::record(
        txn,
        NewEvent {
            session_id: Some(session_id),
            actor_id: actor,
            payload,
            push: false,
        },
    )
    .await
}

/// Invites some of the viewer's friends; they are pushed the invite and join with its code.
/// Users already in the session are skipped; anyone who is not the viewer's friend makes the
/// whole call fail, before anything is written.
pub async fn invite_to_session(
    db: &DatabaseConnection,
    viewer: Viewer,
    session_id: Uuid,
    mut user_ids: Vec<Uuid>,
) -> ApiResult<SessionView> {
    let me = guests::account_id(db, viewer).await?;
    let view = get_as_member(db, session_id, me).await?;
    if view.session.ended_at.is_some() {
        return Err(ENDED);
    }
    if user_ids.len() > MAX_INVITEES {
        return Err(ApiError::bad_input(
            "userIds",
            format!("at most {MAX_INVITEES} users can be invited at once"),
        ));
    }
    user_ids.sort_unstable();
    user_ids.dedup();
    let friends = friends::friends_among(db, me, &user_ids).await?;
    if user_ids.iter().any(|id| !friends.contains(id)) {
        return Err(ApiError::bad_input(
            "userIds",
            "you can only invite your friends",
        ));
    }
    let members: Vec<Uuid> = session_member::Entity::find()
        .select_only()
        .column(session_member::Column::UserId)
        .filter(session_member::Column::SessionId.eq(session_id))
        .filter(session_member::Column::LeftAt.is_null())
        .filter(session_member::Column::UserId.is_in(user_ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    let txn = db.begin().await?;
    if !lock_session(&txn, session_id, true).await? {
        return Err(ENDED);
    }
    // An invite nobody can accept would only ring a phone for nothing.
    let locked = session::Entity::find_by_id(session_id)
        .one(&txn)
        .await?
        .is_some_and(|s| s.joins_locked);
    if locked {
        return Err(ApiError::JoinsLocked);
    }
    for invitee in user_ids.iter().filter(|id| !members.contains(id)) {
        // A banned user's invite would be refused at the door; it is dropped here instead,
        // without telling the member who sent it (the ban is the owner's business).
        if moderation::is_banned(&txn, session_id, *invitee).await? {
            continue;
        }
        // Inviting the same friend again records the invite but rings their phone once.
        let mark = marks::invite(session_id, *invitee);
        let push = marks::take(&txn, mark, marks::INVITE_WINDOW, clock::now()).await?;
        events::record(
            &txn,
            NewEvent {
                session_id: Some(session_id),
                actor_id: me,
                payload: EventPayload::MemberInvited { user_id: *invitee },
                push,
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(view)
}

/// Leaves a session. The owner cannot leave (they end it instead), so a session always has
/// its owner among its members.
pub async fn leave_session(
    db: &DatabaseConnection,
    viewer: Viewer,
    session_id: Uuid,
) -> ApiResult<bool> {
    let me = viewer.user_id()?;
    let view = get_as_member(db, session_id, me).await?;
    if view.viewer_role == SessionRole::Owner {
        return Err(ApiError::Conflict(
            "the owner cannot leave a session; end it instead",
        ));
    }
    let txn = db.begin().await?;
    lock_session(&txn, session_id, false).await?;
    let left = session_member::Entity::update_many()
        .col_expr(session_member::Column::LeftAt, Expr::value(clock::now()))
        .filter(active_member(session_id, me))
        .exec(&txn)
        .await?;
    if left.rows_affected == 1 {
        record(
            &txn,
            session_id,
            me,
            EventPayload::MemberLeft { user_id: me },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(left.rows_affected == 1)
}

/// Ends a session (owner only). Ending an ended session changes nothing.
pub async fn end_session(
    db: &DatabaseConnection,
    viewer: Viewer,
    session_id: Uuid,
) -> ApiResult<SessionView> {
    let me = viewer.user_id()?;
    get_as_owner(db, session_id, me).await?;
    let txn = db.begin().await?;
    let now = clock::now();
    let ended = session::Entity::update_many()
        .col_expr(session::Column::EndedAt, Expr::value(now))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::EndedAt.is_null())
        .exec(&txn)
        .await?;
    if ended.rows_affected == 1 {
        // The end is what members who chose DIGEST hear about (one summary of the photos).
        events::record(
            &txn,
            NewEvent {
                session_id: Some(session_id),
                actor_id: me,
                payload: EventPayload::SessionEnded { ended_at: now },
                push: true,
            },
        )
        .await?;
    }
    let view = get_as_member(&txn, session_id, me).await?;
    txn.commit().await?;
    Ok(view)
}

/// Replaces the invite code (owner only); the old one stops working at once.
pub async fn rotate_invite_code(
    db: &DatabaseConnection,
    viewer: Viewer,
    session_id: Uuid,
) -> ApiResult<SessionView> {
    let me = viewer.user_id()?;
    get_as_owner(db, session_id, me).await?;
    // A fresh code colliding with another session's is a 2^-80 event; one retry covers it.
    for _ in 0..2 {
        let result = session::Entity::update_many()
            .col_expr(
                session::Column::InviteCode,
                Expr::value(invite_code::generate()),
            )
            .filter(session::Column::Id.eq(session_id))
            .exec(db)
            .await;
        match result {
            Ok(_) => return get_as_member(db, session_id, me).await,
            Err(err) if is_unique_violation(&err) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApiError::Conflict(
        "could not pick a new invite code; try again",
    ))
}

/// A change to a session's settings (owner only). `None` leaves a setting as it is.
#[derive(Debug, Default)]
pub struct SessionChange {
    pub title: Option<String>,
    /// Existing photos' `expiresAt` follow: their time of upload plus the new lifetime.
    pub photo_lifetime_hours: Option<i32>,
    pub joins_locked: Option<bool>,
    pub allow_guests: Option<bool>,
    pub late_upload_hours: Option<i32>,
}

/// Changes a session's settings (owner only), ended sessions too (a longer lifetime or late
/// window after the end is what keeps the night). Taking the session's lock orders the change
/// with joins and uploads: a join that committed before a lock stands, none after it gets in.
/// A change that changes something records `SessionUpdated`; one that does not records nothing.
pub async fn update_session(
    db: &DatabaseConnection,
    viewer: Viewer,
    session_id: Uuid,
    change: SessionChange,
    max_photo_lifetime_hours: i32,
) -> ApiResult<SessionView> {
    let me = viewer.user_id()?;
    get_as_owner(db, session_id, me).await?;
    // Every field is checked before anything is written.
    let title = change
        .title
        .as_deref()
        .map(|t| input::label("title", t, input::MAX_TITLE_CHARS))
        .transpose()?;
    let lifetime = change
        .photo_lifetime_hours
        .map(|h| photo_lifetime(h, max_photo_lifetime_hours))
        .transpose()?;
    let late = change
        .late_upload_hours
        .map(late_upload_hours)
        .transpose()?;
    let txn = db.begin().await?;
    lock_session(&txn, session_id, false).await?;
    let current = get_as_owner(&txn, session_id, me).await?.session;
    let mut update = session::Entity::update_many().filter(session::Column::Id.eq(session_id));
    let mut changed = false;
    if let Some(title) = title.filter(|t| *t != current.title) {
        update = update.col_expr(session::Column::Title, Expr::value(title));
        changed = true;
    }
    let lifetime = lifetime.filter(|h| *h != current.photo_lifetime_hours);
    if let Some(hours) = lifetime {
        update = update.col_expr(session::Column::PhotoLifetimeHours, Expr::value(hours));
        changed = true;
    }
    if let Some(locked) = change.joins_locked.filter(|l| *l != current.joins_locked) {
        update = update.col_expr(session::Column::JoinsLocked, Expr::value(locked));
        changed = true;
    }
    if let Some(allow) = change.allow_guests.filter(|a| *a != current.allow_guests) {
        update = update.col_expr(session::Column::AllowGuests, Expr::value(allow));
        changed = true;
    }
    if let Some(hours) = late.filter(|h| *h != current.late_upload_hours) {
        update = update.col_expr(session::Column::LateUploadHours, Expr::value(hours));
        changed = true;
    }
    if changed {
        update.exec(&txn).await?;
        if let Some(hours) = lifetime {
            photos::set_lifetime(&txn, session_id, hours).await?;
        }
        record(&txn, session_id, me, EventPayload::SessionUpdated {}).await?;
    }
    let view = get_as_owner(&txn, session_id, me).await?;
    txn.commit().await?;
    Ok(view)
}

/// Position in the viewer's session list: newest first, by id (ids are time-ordered v7).
pub type SessionKey = Uuid;

/// The sessions the viewer is a member of; `active` filters on whether they have ended.
pub async fn list_sessions(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    active: Option<bool>,
    page: PageRequest<SessionKey>,
) -> ApiResult<Page<SessionView>> {
    let me = viewer.user_id()?;
    let mut query = session::Entity::find()
        .select_also(session_member::Entity)
        .join(JoinType::InnerJoin, session::Relation::Members.def())
        .filter(session_member::Column::UserId.eq(me))
        .filter(session_member::Column::LeftAt.is_null());
    query = match active {
        Some(true) => query.filter(session::Column::EndedAt.is_null()),
        Some(false) => query.filter(session::Column::EndedAt.is_not_null()),
        None => query,
    };
    if let Some(after) = page.after {
        query = query.filter(session::Column::Id.lt(after));
    }
    let rows = query
        .order_by(session::Column::Id, Order::Desc)
        .limit(page.limit())
        .all(db)
        .await?;
    let views = rows
        .into_iter()
        .filter_map(|(session, member)| member.map(|m| SessionView::of(session, &m)))
        .collect();
    Ok(Page::from_rows(&page, views, |v: &SessionView| {
        v.session.id
    }))
}

/// Position in a member list: by time of joining.
pub type MemberKey = (DateTime<Utc>, Uuid);

/// One page of current members for each of several sessions the caller has already shown
/// the viewer belongs to, in one query: a window function numbers each session's members, so
/// a list of sessions showing their members costs one query, not one per session. The
/// members' users come in the same query.
pub async fn list_members(
    db: &impl ConnectionTrait,
    session_ids: &[Uuid],
    page: &PageRequest<MemberKey>,
) -> ApiResult<(HashMap<Uuid, Page<session_member::Model>>, Vec<user::Model>)> {
    let mut inner = session_member::Entity::find()
        .filter(session_member::Column::SessionId.is_in(session_ids.iter().copied()))
        .filter(session_member::Column::LeftAt.is_null());
    if let Some((joined_at, user_id)) = page.after {
        inner = inner.filter(
            Condition::any()
                .add(session_member::Column::JoinedAt.gt(joined_at))
                .add(
                    Condition::all()
                        .add(session_member::Column::JoinedAt.eq(joined_at))
                        .add(session_member::Column::UserId.gt(user_id)),
                ),
        );
    }
    pages_per_session_with_users(
        db,
        inner,
        "joined_at, user_id",
        "user_id",
        session_ids,
        page,
        |m| m.session_id,
        |m| (m.joined_at, m.user_id),
    )
    .await
}
