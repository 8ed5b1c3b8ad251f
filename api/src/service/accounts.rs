//! `deleteAccount` (App Store 5.1.1(v)): a user removes their account and what it made.
//!
//! Session by session, under each session's lock: the account's photos go (rows now, objects
//! through the orphans table once no upload URL can bring them back, as any deletion), and its
//! membership ends with `MemberLeft`, so the others' albums and streams update live. A session
//! the account owns passes to its longest-standing current member with an account, or failing
//! that its longest-standing guest (with `SessionUpdated`): the people still at the party keep
//! their album, their late uploads and an owner who can moderate, which ending it would take
//! from them. A session with nobody else in it goes entirely, photos and all: nobody is left to
//! see them. Last, the user row goes, and with it by cascade its identities, devices, refresh
//! and login codes, friendships and requests, memberships, blocks, reports and bans.
//!
//! What stays is the opaque id inside other sessions' event logs (`MemberJoined` and the like,
//! which name nobody once the row is gone and resolve to a "Deleted account" placeholder); it
//! ages out with the log. Events the account was the actor of keep no pointer to it.

use std::collections::BTreeSet;

use entity::session_member::{self, SessionRole};
use entity::{event, photo, presence, session, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use crate::clock;
use crate::error::ApiResult;
use crate::events::EventPayload;
use crate::service::photos::{UploadRules, forget_photo};
use crate::service::{Viewer, blocks, sessions};
use crate::storage::{ObjectStore, orphans};

/// Deletes the viewer's account; true once it is gone. `UNAUTHENTICATED` for an account that
/// no longer exists (a second call with the same access token).
pub async fn delete_account(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    rules: &UploadRules,
    viewer: Viewer,
) -> ApiResult<bool> {
    let me = blocks::live_user(db, viewer).await?.id;
    let mut purge = Vec::new();
    for session_id in sessions_touched(db, me).await? {
        purge.extend(leave(db, rules, session_id, me).await?);
    }
    let txn = db.begin().await?;
    // Friend requests it sent are events of no session: they go. In sessions' logs, what it
    // did stays for the others, without the pointer to who did it.
    event::Entity::delete_many()
        .filter(event::Column::SessionId.is_null())
        .filter(event::Column::ActorId.eq(me))
        .exec(&txn)
        .await?;
    event::Entity::update_many()
        .col_expr(event::Column::ActorId, Expr::value(Option::<Uuid>::None))
        .filter(event::Column::ActorId.eq(me))
        .exec(&txn)
        .await?;
    presence::Entity::delete_many()
        .filter(presence::Column::UserId.eq(me))
        .exec(&txn)
        .await?;
    user::Entity::delete_by_id(me).exec(&txn).await?;
    txn.commit().await?;
    let now = clock::now();
    for (session_id, sha256) in purge {
        orphans::purge_after_commit(db, store, session_id, &sha256, now).await;
    }
    tracing::info!(user_id = %me, "account deleted");
    Ok(true)
}

/// Sessions the account is or was a member of, owns, or has photos in.
async fn sessions_touched(db: &DatabaseConnection, me: Uuid) -> ApiResult<BTreeSet<Uuid>> {
    let memberships: Vec<Uuid> = session_member::Entity::find()
        .select_only()
        .column(session_member::Column::SessionId)
        .filter(session_member::Column::UserId.eq(me))
        .into_tuple()
        .all(db)
        .await?;
    let owned: Vec<Uuid> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::OwnerId.eq(me))
        .into_tuple()
        .all(db)
        .await?;
    let with_photos: Vec<Uuid> = photo::Entity::find()
        .select_only()
        .column(photo::Column::SessionId)
        .distinct()
        .filter(photo::Column::UploaderId.eq(me))
        .into_tuple()
        .all(db)
        .await?;
    Ok(memberships
        .into_iter()
        .chain(owned)
        .chain(with_photos)
        .collect())
}

/// Takes the account out of one session, in one transaction under its lock; returns the
/// photos whose objects to purge after the commit.
async fn leave(
    db: &DatabaseConnection,
    rules: &UploadRules,
    session_id: Uuid,
    me: Uuid,
) -> ApiResult<Vec<(Uuid, String)>> {
    let txn = db.begin().await?;
    sessions::lock_session(&txn, session_id, false).await?;
    let Some(session) = session::Entity::find_by_id(session_id).one(&txn).await? else {
        return Ok(Vec::new());
    };
    let now = clock::now();
    let mut purge = Vec::new();
    let heir = if session.owner_id == me {
        let heir = heir(&txn, session_id, me).await?;
        if heir.is_none() {
            // Nobody else is in it: every photo goes (its objects like any deletion's), then
            // the session with its members and log.
            let photos = photo::Entity::find()
                .filter(photo::Column::SessionId.eq(session_id))
                .all(&txn)
                .await?;
            for photo in photos {
                if forget_photo(&txn, rules, &photo, me, now).await? {
                    purge.push((photo.session_id, photo.sha256));
                }
            }
            session::Entity::delete_by_id(session_id).exec(&txn).await?;
            txn.commit().await?;
            return Ok(purge);
        }
        heir
    } else {
        None
    };
    let photos = photo::Entity::find()
        .filter(photo::Column::SessionId.eq(session_id))
        .filter(photo::Column::UploaderId.eq(me))
        .all(&txn)
        .await?;
    for photo in photos {
        if forget_photo(&txn, rules, &photo, me, now).await? {
            purge.push((photo.session_id, photo.sha256));
        }
    }
    if let Some(heir) = heir {
        session::Entity::update_many()
            .col_expr(session::Column::OwnerId, Expr::value(heir))
            .filter(session::Column::Id.eq(session_id))
            .exec(&txn)
            .await?;
        session_member::Entity::update_many()
            .col_expr(
                session_member::Column::Role,
                Expr::value(SessionRole::Owner),
            )
            .filter(session_member::Column::SessionId.eq(session_id))
            .filter(session_member::Column::UserId.eq(heir))
            .exec(&txn)
            .await?;
        sessions::record(&txn, session_id, heir, EventPayload::SessionUpdated {}).await?;
    }
    let left = session_member::Entity::update_many()
        .col_expr(session_member::Column::LeftAt, Expr::value(now))
        .filter(session_member::Column::SessionId.eq(session_id))
        .filter(session_member::Column::UserId.eq(me))
        .filter(session_member::Column::LeftAt.is_null())
        .exec(&txn)
        .await?;
    if left.rows_affected == 1 {
        sessions::record(
            &txn,
            session_id,
            me,
            EventPayload::MemberLeft { user_id: me },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(purge)
}

/// Who takes over a session from `me`: the current member with an account who joined first,
/// else the guest who did.
async fn heir(
    txn: &sea_orm::DatabaseTransaction,
    session_id: Uuid,
    me: Uuid,
) -> ApiResult<Option<Uuid>> {
    let members: Vec<Uuid> = session_member::Entity::find()
        .select_only()
        .column(session_member::Column::UserId)
        .filter(session_member::Column::SessionId.eq(session_id))
        .filter(session_member::Column::UserId.ne(me))
        .filter(session_member::Column::LeftAt.is_null())
        .order_by_asc(session_member::Column::JoinedAt)
        .order_by_asc(session_member::Column::UserId)
        .into_tuple()
        .all(txn)
        .await?;
    let guests: BTreeSet<Uuid> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::Id.is_in(members.iter().copied()))
        .filter(user::Column::IsGuest.eq(true))
        .into_tuple::<Uuid>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    let account = members.iter().find(|id| !guests.contains(id));
    Ok(account.or(members.first()).copied())
}
