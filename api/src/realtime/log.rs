//! Reading the event log: by id (for notifications), after a cursor (for replay), and the
//! photos that `photo_added` events announced, loaded in one query per batch. Also how far
//! retention has pruned each session's log, which tells a resumable cursor from an expired one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::event::{self, EventKind};
use entity::photo::{self, PhotoStatus};
use entity::{event_horizon, user_block};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::bus::FeedItem;
use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::events::EventPayload;

/// Events read from the log per query while catching up.
pub const PAGE: u64 = 100;

/// Pairs each photo event that shows a photo (added, processed) with the photo, if it still
/// exists and is ready.
pub async fn with_photos(
    db: &impl ConnectionTrait,
    events: Vec<event::Model>,
) -> ApiResult<Vec<FeedItem>> {
    let photo_ids: Vec<Uuid> = events
        .iter()
        .filter(|e| shows_photo(e.kind))
        .filter_map(photo_id)
        .collect();
    let photos: HashMap<Uuid, photo::Model> = if photo_ids.is_empty() {
        HashMap::new()
    } else {
        photo::Entity::find()
            .filter(photo::Column::Id.is_in(photo_ids))
            .filter(photo::Column::Status.eq(PhotoStatus::Ready))
            .all(db)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect()
    };
    Ok(events
        .into_iter()
        .map(|event| {
            // A batch may hold both events of one photo.
            let photo = shows_photo(event.kind)
                .then(|| photo_id(&event).and_then(|id| photos.get(&id).cloned()))
                .flatten();
            FeedItem { event, photo }
        })
        .collect())
}

fn shows_photo(kind: EventKind) -> bool {
    matches!(kind, EventKind::PhotoAdded | EventKind::PhotoProcessed)
}

/// The events with these ids, oldest first.
pub async fn by_ids(db: &impl ConnectionTrait, ids: &[i64]) -> ApiResult<Vec<FeedItem>> {
    let events = event::Entity::find()
        .filter(event::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(event::Column::Id)
        .all(db)
        .await?;
    with_photos(db, events).await
}

/// Feeds' log reads running at once in this process. After the listener reconnects, every
/// feed on the replica is told to catch up at the same moment; unbounded, tens of thousands
/// of reads would queue for the pool at once and starve requests of connections. Bounded,
/// they take turns and leave the rest of the pool to requests.
pub const CONCURRENT_CATCH_UP_READS: usize = 4;

static CATCH_UP: Semaphore = Semaphore::const_new(CONCURRENT_CATCH_UP_READS);

/// Up to [`PAGE`] events after `after`, oldest first: of one session, or (`None`) of all.
/// A session's page (a feed catching up) waits its turn among [`CONCURRENT_CATCH_UP_READS`];
/// the local tailer's page of all sessions does not.
pub async fn page(
    db: &impl ConnectionTrait,
    session_id: Option<Uuid>,
    after: i64,
) -> ApiResult<Vec<FeedItem>> {
    let _turn = match session_id {
        // The semaphore is never closed, so acquiring only fails in theory; reading anyway
        // is the safe answer then.
        Some(_) => CATCH_UP.acquire().await.ok(),
        None => None,
    };
    read_page(db, session_id, after).await
}

/// [`page`] without waiting for a turn: for a feed that is starting, which the admission
/// queue (`realtime::admission`) already bounds.
pub async fn read_page(
    db: &impl ConnectionTrait,
    session_id: Option<Uuid>,
    after: i64,
) -> ApiResult<Vec<FeedItem>> {
    let mut query = event::Entity::find().filter(event::Column::Id.gt(after));
    if let Some(session_id) = session_id {
        query = query.filter(event::Column::SessionId.eq(session_id));
    }
    let events = query
        .order_by_asc(event::Column::Id)
        .limit(PAGE)
        .all(db)
        .await?;
    with_photos(db, events).await
}

/// The newest event id of the whole log (0 when there is none): where the embedded
/// default's tailer starts. (A feed reads its session's head in its start statement,
/// [`head_of`].)
pub async fn head(db: &impl ConnectionTrait) -> ApiResult<i64> {
    let head: Option<Option<i64>> = event::Entity::find()
        .select_only()
        .column_as(event::Column::Id.max(), "head")
        .into_tuple()
        .one(db)
        .await?;
    Ok(head.flatten().unwrap_or(0))
}

/// A scalar subquery: the id of the session's newest event (NULL: none yet). A feed that
/// starts live takes it as its cursor.
pub fn head_of(session_id: Uuid) -> SelectStatement {
    Query::select()
        .expr(Expr::col((event::Entity, event::Column::Id)).max())
        .from(event::Entity)
        .and_where(event::Column::SessionId.eq(session_id))
        .to_owned()
}

/// A scalar subquery: the id of the newest event a feed resuming with `replays` would replay
/// (NULL: none yet). A cursor already there has nothing to replay.
///
/// For photos that is the newest `photo_added`: a phone's cursor is its newest photo's, and
/// the `photo_processed` that follows every photo is nothing a photo feed shows. What else a
/// replay could hold that matters to it (the viewer's departure, the session's end or new
/// window) the start reads from the session and membership rows themselves.
pub fn replay_head(session_id: Uuid, replays: Replays) -> SelectStatement {
    let mut head = head_of(session_id);
    if replays == Replays::Photos {
        head.and_where(event::Column::Kind.eq(EventKind::PhotoAdded));
    }
    head
}

/// A scalar subquery: the id of `user_id`'s latest `member_joined` event in the session
/// (NULL when there is none: the owner, who never joined, or a join old enough to have been
/// pruned, in which case everything still in the log is from after it).
pub fn latest_join(session_id: Uuid, user_id: Uuid) -> SelectStatement {
    Query::select()
        .expr(Expr::col((event::Entity, event::Column::Id)).max())
        .from(event::Entity)
        .and_where(event::Column::SessionId.eq(session_id))
        .and_where(event::Column::Kind.eq(EventKind::MemberJoined))
        .and_where(event::Column::ActorId.eq(user_id))
        .to_owned()
}

/// Records, per session, the newest event that a retention delete of everything created
/// before `before` is about to remove. Run it just before that delete: a cursor below the mark
/// can no longer be resumed without a gap.
///
/// Pruning removes a prefix of each session's log (its events are created in id order), so
/// the mark only ever grows.
pub async fn mark_pruned(db: &impl ConnectionTrait, before: DateTime<Utc>) -> ApiResult<()> {
    let pruned = Query::select()
        .column(event::Column::SessionId)
        .expr(Expr::col(event::Column::Id).max())
        .from(event::Entity)
        .and_where(event::Column::SessionId.is_not_null())
        .and_where(event::Column::CreatedAt.lt(before))
        .group_by_col(event::Column::SessionId)
        .to_owned();
    let upsert = Query::insert()
        .into_table(event_horizon::Entity)
        .columns([
            event_horizon::Column::SessionId,
            event_horizon::Column::PrunedThrough,
        ])
        .select_from(pruned)
        .map_err(ApiError::internal)?
        .on_conflict(
            OnConflict::column(event_horizon::Column::SessionId)
                .update_column(event_horizon::Column::PrunedThrough)
                .to_owned(),
        )
        .to_owned();
    db.execute(&upsert).await?;
    Ok(())
}

/// What a resumed feed is about, which decides whether what was pruned after its cursor
/// matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replays {
    /// Photos: only a pruned `photo_added` whose photo is still in the list would be missed.
    Photos,
    /// Every other kind of event: anything pruned after the cursor would be missed.
    Events,
}

/// A scalar subquery: 1 when `user_id` blocks anyone, else NULL. A feed's start learns it in
/// its one statement, and reads whom the viewer blocks only when there is someone.
pub fn blocks_anyone(user_id: Uuid) -> SelectStatement {
    Query::select()
        .expr(Expr::val(1i64))
        .from(user_block::Entity)
        .and_where(user_block::Column::BlockerId.eq(user_id))
        .limit(1)
        .to_owned()
}

/// A scalar subquery: how far retention has pruned the session's log (NULL: nothing yet),
/// for [`check_resumable`].
pub fn pruned_through(session_id: Uuid) -> SelectStatement {
    Query::select()
        .column(event_horizon::Column::PrunedThrough)
        .from(event_horizon::Entity)
        .and_where(event_horizon::Column::SessionId.eq(session_id))
        .to_owned()
}

/// `CURSOR_EXPIRED` when replaying the session's log after `after` would silently skip
/// something retention has already deleted; `pruned_through` is what [`pruned_through`]
/// read.
///
/// For photos the test is exact: a photo still listed whose `photo_added` event was pruned
/// after the cursor (its `seq` is that event's id). So the newest cursor of a freshly loaded
/// photo list always resumes, however old that photo is. For other events only the mark is
/// known, so any cursor below it is refused. A session nothing was pruned from (a new one,
/// or one younger than the retention) has no mark and accepts every cursor, without a read.
pub async fn check_resumable(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    after: i64,
    replays: Replays,
    pruned_through: Option<i64>,
) -> ApiResult<()> {
    let Some(pruned_through) = pruned_through.filter(|&pruned| after < pruned) else {
        return Ok(());
    };
    let missed = match replays {
        Replays::Events => true,
        Replays::Photos => {
            photo::Entity::find()
                .filter(photo::Column::SessionId.eq(session_id))
                .filter(photo::Column::Status.eq(PhotoStatus::Ready))
                .filter(photo::Column::ExpiresAt.gt(clock::now()))
                .filter(photo::Column::Seq.gt(after))
                .filter(photo::Column::Seq.lte(pruned_through))
                .count(db)
                .await?
                > 0
        }
    };
    if missed {
        Err(ApiError::CursorExpired)
    } else {
        Ok(())
    }
}

/// A stored event's typed payload. A malformed one is a bug (or a hand-edited row): it is
/// logged and the event skipped, rather than failing every feed that replays it.
pub fn payload(event: &event::Model) -> Option<EventPayload> {
    EventPayload::read(event)
}

/// The user a membership event is about.
pub fn user_id(event: &event::Model) -> Option<Uuid> {
    payload(event)?.user_id()
}

/// The photo a photo event is about.
pub fn photo_id(event: &event::Model) -> Option<Uuid> {
    payload(event)?.photo_id()
}
