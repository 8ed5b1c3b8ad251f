//! The expiry sweeper: removes photos whose lifetime is over (object first, then row, so a
//! storage failure leaves the row to try again next round), upload slots abandoned for an
//! hour, events past the retention window and refresh tokens long expired.
//!
//! Several replicas may run it at once: on Postgres each round holds a transaction-level
//! advisory lock, and a replica that cannot take it leaves the round to the one that did.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::event::{self, EventKind};
use entity::photo::{self, PhotoStatus};
use entity::refresh_token;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use serde_json::json;

use crate::error::ApiResult;
use crate::service::events::{self as events_service, NewEvent};
use crate::service::{clock, sessions};
use crate::storage::{ObjectStore, photo_key};

/// How long an upload slot may wait for its bytes.
pub const ABANDONED_SLOT_AGE: chrono::Duration = chrono::Duration::hours(1);
/// Photos removed per transaction: bounded work and bounded lock time.
const BATCH: u64 = 100;
/// Any fixed number no other part of Photon uses as an advisory lock key.
const SWEEP_LOCK: i64 = 7_041_843_020_521_693_807;

/// What to keep.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    pub interval: Duration,
    /// Events older than this are deleted (resuming from an older cursor means re-fetching).
    pub event_retention: chrono::Duration,
}

/// What one round removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub expired_photos: u64,
    pub abandoned_slots: u64,
    pub events: u64,
    pub refresh_tokens: u64,
    /// Objects the store failed to remove; their rows stay for the next round.
    pub storage_failures: u64,
    /// Another replica held the lock, so this one did nothing.
    pub skipped: bool,
}

/// One round of sweeping, as of `now`.
pub async fn sweep_once(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> ApiResult<SweepReport> {
    let mut report = SweepReport::default();
    let txn = db.begin().await?;
    if db.get_database_backend() == DbBackend::Postgres {
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_try_advisory_xact_lock($1) AS locked",
                [SWEEP_LOCK.into()],
            ))
            .await?;
        let locked = row
            .map(|r| r.try_get::<bool>("", "locked"))
            .transpose()?
            .unwrap_or(false);
        if !locked {
            report.skipped = true;
            return Ok(report);
        }
    }

    let expired = Condition::all()
        .add(photo::Column::Status.eq(PhotoStatus::Ready))
        .add(photo::Column::ExpiresAt.lte(now));
    let abandoned = Condition::all()
        .add(photo::Column::Status.eq(PhotoStatus::Pending))
        .add(photo::Column::CreatedAt.lte(now - ABANDONED_SLOT_AGE));
    let mut failed_ids = Vec::new();
    loop {
        let batch = photo::Entity::find()
            .filter(Condition::any().add(expired.clone()).add(abandoned.clone()))
            .filter(photo::Column::Id.is_not_in(failed_ids.clone()))
            .order_by_asc(photo::Column::Id)
            .limit(BATCH)
            .all(&txn)
            .await?;
        if batch.is_empty() {
            break;
        }
        for photo in batch {
            if let Err(err) = store
                .delete(&photo_key(photo.session_id, &photo.sha256))
                .await
            {
                tracing::warn!(photo_id = %photo.id, error = %err.0, "could not remove an object; will retry");
                report.storage_failures += 1;
                failed_ids.push(photo.id);
                continue;
            }
            photo::Entity::delete_by_id(photo.id).exec(&txn).await?;
            if photo.status == PhotoStatus::Ready {
                report.expired_photos += 1;
                sessions::lock_session(&txn, photo.session_id, false).await?;
                events_service::record(
                    &txn,
                    NewEvent {
                        session_id: Some(photo.session_id),
                        actor_id: photo.uploader_id,
                        kind: EventKind::PhotoDeleted,
                        payload: json!({ "photoId": photo.id, "reason": "expired" }),
                        push: false,
                    },
                )
                .await?;
            } else {
                report.abandoned_slots += 1;
            }
        }
    }

    // A push that waited this long is no news to anyone: pending ones go too.
    report.events = event::Entity::delete_many()
        .filter(event::Column::CreatedAt.lt(now - settings.event_retention))
        .exec(&txn)
        .await?
        .rows_affected;
    // Expired tokens are refused anyway; a day's grace keeps reuse detection meaningful.
    report.refresh_tokens = refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ExpiresAt.lt(now - chrono::Duration::days(1)))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(report)
}

/// Runs the sweeper every `settings.interval` until `shutdown` fires. A failed round is
/// logged and the next one tries again.
pub fn spawn(
    db: DatabaseConnection,
    store: Arc<dyn ObjectStore>,
    settings: SweepSettings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            match sweep_once(&db, store.as_ref(), &settings, clock::now()).await {
                Ok(report) if report.skipped => {
                    tracing::debug!("another replica is sweeping");
                }
                Ok(report) => tracing::info!(
                    expired_photos = report.expired_photos,
                    abandoned_slots = report.abandoned_slots,
                    events = report.events,
                    refresh_tokens = report.refresh_tokens,
                    storage_failures = report.storage_failures,
                    "sweep finished"
                ),
                Err(err) => {
                    let message = err.client_message();
                    tracing::error!(error = ?err, message, "sweep failed; will retry");
                }
            }
        }
    })
}
