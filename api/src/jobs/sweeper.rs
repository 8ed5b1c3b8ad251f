//! The expiry sweeper: removes photos whose lifetime is over and upload slots abandoned for an
//! hour (each in its own short transaction; the object is deleted after the commit, never
//! under the session's lock), objects whose rows are gone once no upload URL can write them
//! any more (see [`orphans`]), events past the retention window (in bounded batches),
//! refresh tokens long expired, expired push marks, and expired sign-in states and login
//! codes.
//!
//! Several replicas may run it at once: each photo is re-checked under its session's row lock
//! before anything is removed, so a photo is removed once, and never one that a racing
//! completion has just made ready.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::event;
use entity::photo::{self, PhotoStatus};
use entity::refresh_token;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{Every, JobResult, Pace, Supervisor};
use crate::clock;
use crate::events;
use crate::push::marks;
use crate::realtime::announce::Announcer;
use crate::realtime::{log, presence};
use crate::service::guests;
use crate::service::oauth_sign_in as sign_in;
use crate::service::photos::{ABANDONED_SLOT_AGE, Removed, remove_if_due};
use crate::storage::{ObjectStore, orphans};

/// Photos looked at per query: bounded memory whatever the backlog.
const BATCH: u64 = 100;

/// Events deleted per statement: a backlog of millions is removed in short statements that
/// never hold many row locks or a long write transaction (SQLite's single writer included).
pub const EVENT_BATCH: u64 = 1000;

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
    /// Expired sign-in states and login codes.
    pub sign_ins: u64,
    /// Presence rows left by replicas that stopped without cleaning up.
    pub stale_presence: u64,
    /// Objects deleted because no photo holds their key and no URL can write them any more.
    pub orphaned_objects: u64,
    /// Push marks past their window.
    pub push_marks: u64,
    /// Guest accounts whose sessions are over (see `service::guests::sweep`).
    pub guests: u64,
    /// Photos that could not be removed (storage or database errors); they are tried again
    /// next round.
    pub failures: u64,
}

/// One round of sweeping, as of `now`.
pub async fn sweep_once(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    settings: &SweepSettings,
    now: DateTime<Utc>,
) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let due = Condition::any()
        .add(
            Condition::all()
                .add(photo::Column::Status.eq(PhotoStatus::Ready))
                .add(photo::Column::ExpiresAt.lte(now)),
        )
        .add(
            Condition::all()
                .add(photo::Column::Status.eq(PhotoStatus::Pending))
                .add(photo::Column::CreatedAt.lte(now - ABANDONED_SLOT_AGE)),
        );
    // Ids only ever grow past the last batch, so every due photo is looked at once.
    let mut after = Uuid::nil();
    loop {
        let batch: Vec<Uuid> = photo::Entity::find()
            .select_only()
            .column(photo::Column::Id)
            .filter(due.clone())
            .filter(photo::Column::Id.gt(after))
            .order_by_asc(photo::Column::Id)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = *last;
        for id in batch {
            match remove_if_due(db, store, id, now).await {
                Ok(Some(Removed::Expired)) => report.expired_photos += 1,
                Ok(Some(Removed::Abandoned)) => report.abandoned_slots += 1,
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(photo_id = %id, error = ?err, "could not remove a photo; will retry");
                    report.failures += 1;
                }
            }
        }
    }

    let purged = orphans::purge_due(db, store, now).await.job()?;
    report.orphaned_objects = purged.purged;
    report.failures += purged.failures;
    let retained_from = now - settings.event_retention;
    // First, so a resume from before what is deleted is refused instead of skipping it.
    log::mark_pruned(db, retained_from).await.job()?;
    report.events = delete_events_before(db, retained_from, EVENT_BATCH).await?;
    report.push_marks = marks::prune_expired(db, now).await.job()?;
    // Expired tokens are refused anyway; a day's grace keeps reuse detection meaningful.
    report.refresh_tokens = refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ExpiresAt.lt(now - chrono::Duration::days(1)))
        .exec(db)
        .await?
        .rows_affected;
    report.stale_presence = presence::prune_stale(db, now).await.job()?;
    report.sign_ins = sign_in::prune_expired(db, now).await.job()?;
    // After the photos: a guest goes once their last photo has.
    report.guests = guests::sweep(db, retained_from).await.job()?;
    Ok(report)
}

/// Deletes events created before `cutoff`, at most `batch` per statement (oldest first, by
/// the `created_at` index), until none is left; returns how many.
pub async fn delete_events_before(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> anyhow::Result<u64> {
    let mut deleted = 0;
    loop {
        let ids: Vec<i64> = event::Entity::find()
            .select_only()
            .column(event::Column::Id)
            .filter(event::Column::CreatedAt.lt(cutoff))
            .order_by_asc(event::Column::CreatedAt)
            .limit(batch)
            .into_tuple()
            .all(db)
            .await?;
        if ids.is_empty() {
            return Ok(deleted);
        }
        let full = ids.len() as u64 == batch;
        deleted += event::Entity::delete_many()
            .filter(event::Column::Id.is_in(ids))
            .exec(db)
            .await?
            .rows_affected;
        if !full {
            return Ok(deleted);
        }
    }
}

/// The sweeper's name under the supervisor.
pub const TASK: &str = "sweeper";

/// Runs the sweeper under `tasks`: a round at once, then every `settings.interval` (each wait
/// up to a tenth longer, so replicas started together spread out). A round in progress at
/// shutdown finishes with the requests; a failed one fails the task, which the supervisor
/// restarts after a back-off.
pub fn spawn(
    tasks: &Supervisor,
    db: DatabaseConnection,
    store: Arc<dyn ObjectStore>,
    announcer: Announcer,
    settings: SweepSettings,
) {
    let every = Every::new(settings.interval).jitter((settings.interval / 10).min(MAX_JITTER));
    tasks.spawn(TASK, move |ctx| {
        let (db, store, settings) = (db.clone(), store.clone(), settings.clone());
        let announcer = announcer.clone();
        async move {
            let (db, store, settings, announcer) = (&db, store.as_ref(), &settings, &announcer);
            every
                .run(&ctx, || async move {
                    let started = std::time::Instant::now();
                    // What a round removes is announced after it (guests leaving, photos
                    // deleted).
                    let sweep = sweep_once(db, store, settings, clock::now());
                    let report = events::announcing(announcer, sweep).await?;
                    metrics::histogram!(crate::metrics::SWEEPER_DURATION)
                        .record(started.elapsed().as_secs_f64());
                    report.count();
                    report.log();
                    Ok(Pace::Rest)
                })
                .await
        }
    });
}

/// Longest jitter added to the wait between sweeps.
const MAX_JITTER: Duration = Duration::from_secs(60);

impl SweepReport {
    /// What was removed, by kind, as `photon_sweeper_removed_total{kind}`.
    fn count(&self) {
        for (kind, removed) in [
            ("expired_photos", self.expired_photos),
            ("abandoned_slots", self.abandoned_slots),
            ("events", self.events),
            ("refresh_tokens", self.refresh_tokens),
            ("sign_ins", self.sign_ins),
            ("stale_presence", self.stale_presence),
            ("orphaned_objects", self.orphaned_objects),
            ("push_marks", self.push_marks),
            ("guests", self.guests),
        ] {
            metrics::counter!(crate::metrics::SWEEPER_REMOVED, "kind" => kind).increment(removed);
        }
    }

    fn log(&self) {
        tracing::info!(
            expired_photos = self.expired_photos,
            abandoned_slots = self.abandoned_slots,
            events = self.events,
            refresh_tokens = self.refresh_tokens,
            stale_presence = self.stale_presence,
            orphaned_objects = self.orphaned_objects,
            push_marks = self.push_marks,
            sign_ins = self.sign_ins,
            guests = self.guests,
            failures = self.failures,
            "sweep finished"
        );
    }
}

/// Settings: the sweeper of expired photos, abandoned uploads and old events.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// Seconds between sweeps for expired photos, abandoned uploads and old events; 0 turns
    /// the sweeper off in this replica.
    #[arg(long, env = "PHOTON_SWEEP_INTERVAL_SECS", default_value_t = 15 * 60,
        value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub sweep_interval_secs: u64,

    /// Hours that session events are kept for clients resuming from a cursor.
    #[arg(long, env = "PHOTON_EVENT_RETENTION_HOURS", default_value_t = 24,
        value_parser = clap::value_parser!(u32).range(1..=8_760))]
    pub event_retention_hours: u32,
}
