//! Reading the event log: by id (for notifications), after a cursor (for replay), and the
//! photos that `photo_added` events announced, loaded in one query per batch.

use std::collections::HashMap;

use entity::event::{self, EventKind};
use entity::photo::{self, PhotoStatus};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::bus::FeedItem;
use crate::error::ApiResult;

/// Events read from the log per query while catching up.
pub const PAGE: u64 = 100;

/// Pairs each event with the photo it announced, if the photo still exists and is ready.
pub async fn with_photos(
    db: &impl ConnectionTrait,
    events: Vec<event::Model>,
) -> ApiResult<Vec<FeedItem>> {
    let photo_ids: Vec<Uuid> = events
        .iter()
        .filter(|e| e.kind == EventKind::PhotoAdded)
        .filter_map(photo_id)
        .collect();
    let mut photos: HashMap<Uuid, photo::Model> = if photo_ids.is_empty() {
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
            let photo = match event.kind {
                EventKind::PhotoAdded => photo_id(&event).and_then(|id| photos.remove(&id)),
                _ => None,
            };
            FeedItem { event, photo }
        })
        .collect())
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

/// The newest event id (0 when there is none): of one session, or (`None`) of all. Where a
/// live-only stream starts.
pub async fn head(db: &impl ConnectionTrait, session_id: Option<Uuid>) -> ApiResult<i64> {
    let mut query = event::Entity::find()
        .select_only()
        .column_as(event::Column::Id.max(), "head");
    if let Some(session_id) = session_id {
        query = query.filter(event::Column::SessionId.eq(session_id));
    }
    let head: Option<Option<i64>> = query.into_tuple().one(db).await?;
    Ok(head.flatten().unwrap_or(0))
}

/// The user a membership event is about.
pub fn user_id(event: &event::Model) -> Option<Uuid> {
    uuid_field(event, "userId")
}

/// The photo a photo event is about.
pub fn photo_id(event: &event::Model) -> Option<Uuid> {
    uuid_field(event, "photoId")
}

fn uuid_field(event: &event::Model, field: &str) -> Option<Uuid> {
    event
        .payload
        .get(field)
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
}
