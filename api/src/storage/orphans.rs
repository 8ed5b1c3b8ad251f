//! Objects left without a photo: when a photo row goes (deleted, expired, abandoned), its key
//! is written to `storage_orphans` in the same transaction, with the time after which no
//! upload URL issued for it can still write it. The object is deleted after the commit
//! (never while the session's row lock is held), and the sweeper deletes it again once that
//! time has passed, which covers both a crash between commit and delete and a client that
//! PUTs through a still-valid URL after the row is gone (S3 cannot be told to refuse it).
//!
//! Why a table rather than listing the bucket for keys without a ready photo: a listing
//! costs a paid request per thousand keys of the whole bucket every round, some stores list
//! eventually consistently, and an object listed without a ready row may just be an upload
//! in flight, which the listing cannot tell from an orphan. The table names exactly the keys
//! to look at and when it is safe to.

use chrono::{DateTime, Utc};
use entity::photo;
use entity::storage_orphan;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{ObjectStore, all_photo_keys};
use crate::error::ApiResult;

/// Markers purged per query.
const BATCH: u64 = 100;

/// Notes that the object of (`session_id`, `sha256`) must go once `delete_after` has passed.
/// Keeps the later time when the key is already noted: an earlier deletion's URL may still
/// be valid. Call it in the transaction that removes the photo row, under the session lock.
pub async fn record(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    sha256: &str,
    delete_after: DateTime<Utc>,
    legacy: bool,
) -> ApiResult<()> {
    let existing = storage_orphan::Entity::find_by_id((session_id, sha256.to_owned()))
        .one(db)
        .await?;
    if existing
        .as_ref()
        .is_some_and(|row| row.delete_after >= delete_after && row.legacy_key == legacy)
    {
        return Ok(());
    }
    let delete_after = existing
        .as_ref()
        .map_or(delete_after, |row| row.delete_after.max(delete_after));
    storage_orphan::Entity::insert(storage_orphan::ActiveModel {
        session_id: Set(session_id),
        sha256: Set(sha256.to_owned()),
        delete_after: Set(delete_after),
        legacy_key: Set(legacy),
    })
    .on_conflict(
        OnConflict::columns([
            storage_orphan::Column::SessionId,
            storage_orphan::Column::Sha256,
        ])
        .update_columns([
            storage_orphan::Column::DeleteAfter,
            storage_orphan::Column::LegacyKey,
        ])
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Deletes the object of a noted key unless a photo row holds the key again (the same bytes
/// shared anew: that row now answers for the object, and its own removal notes it again).
/// The marker goes once it is due; before that it stays for the sweeper's later pass.
pub async fn purge(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    session_id: Uuid,
    sha256: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let legacy = storage_orphan::Entity::find_by_id((session_id, sha256.to_owned()))
        .one(db)
        .await?
        .is_some_and(|marker| marker.legacy_key);
    let claimed = photo::Entity::find()
        .filter(photo::Column::SessionId.eq(session_id))
        .filter(photo::Column::Sha256.eq(sha256))
        .count(db)
        .await?
        > 0;
    let marker = storage_orphan::Entity::delete_many()
        .filter(storage_orphan::Column::SessionId.eq(session_id))
        .filter(storage_orphan::Column::Sha256.eq(sha256));
    if claimed {
        marker.exec(db).await?;
        return Ok(());
    }
    // The original and whatever the workers made of it (or the one object of an old photo).
    let deletions = all_photo_keys(session_id, sha256, legacy)
        .into_iter()
        .map(|key| async move { store.delete(&key).await });
    for deleted in futures_util::future::join_all(deletions).await {
        deleted?;
    }
    marker
        .filter(storage_orphan::Column::DeleteAfter.lte(now))
        .exec(db)
        .await?;
    Ok(())
}

/// Purges what is due after the commit that noted it: a failure is logged and left to the
/// sweeper, since the row is already gone and the caller's answer should not change.
pub async fn purge_after_commit(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    session_id: Uuid,
    sha256: &str,
    now: DateTime<Utc>,
) {
    if let Err(err) = purge(db, store, session_id, sha256, now).await {
        tracing::warn!(%session_id, sha256, error = ?err, "could not delete an object; the sweeper will");
    }
}

/// What a sweep of the markers did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    pub purged: u64,
    pub failures: u64,
}

/// Purges every marker due as of `now`. A batch with a failure ends the pass, so a store
/// that is down costs one batch of attempts per round, not a loop.
pub async fn purge_due(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    now: DateTime<Utc>,
) -> ApiResult<PurgeReport> {
    let mut report = PurgeReport::default();
    loop {
        let due = storage_orphan::Entity::find()
            .filter(storage_orphan::Column::DeleteAfter.lte(now))
            .order_by_asc(storage_orphan::Column::DeleteAfter)
            .limit(BATCH)
            .all(db)
            .await?;
        let full = due.len() as u64 == BATCH;
        for marker in due {
            match purge(db, store, marker.session_id, &marker.sha256, now).await {
                Ok(()) => report.purged += 1,
                Err(err) => {
                    tracing::warn!(session_id = %marker.session_id, error = ?err, "could not delete an orphaned object; will retry");
                    report.failures += 1;
                }
            }
        }
        if !full || report.failures > 0 {
            return Ok(report);
        }
    }
}
