//! The `photo_jobs` table: enqueueing a photo, claiming due jobs under a lease, and ending a
//! job — with its photo's outcome, or for a retry — only while its lease is the caller's.

use chrono::{DateTime, Utc};
use entity::photo::{self, Processing};
use entity::photo_job;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    TransactionTrait,
};
use uuid::Uuid;

use crate::clock;
use crate::error::ApiResult;
use crate::events::{self, EventPayload, NewEvent};
use crate::imaging::Derived;
use crate::service::sessions;

/// The Postgres notification channel workers listen on.
pub const CHANNEL: &str = "photon_photo_jobs";

/// A claimed job: the row as the claim left it, whose `not_before` is the lease.
pub type Claimed = photo_job::Model;

/// Queues `photo_id` for processing, in the transaction that makes the photo ready. After its
/// commit the caller wakes this process's workers ([`super::workers::wake`]) and rings its
/// [`super::JobBell`], which tells the other processes' on Postgres.
pub async fn enqueue(db: &impl ConnectionTrait, photo_id: Uuid) -> ApiResult<()> {
    photo_job::Entity::insert(photo_job::ActiveModel {
        photo_id: Set(photo_id),
        attempts: Set(0),
        not_before: Set(None),
        created_at: Set(clock::now()),
        last_error: Set(None),
    })
    .on_conflict_do_nothing_on([photo_job::Column::PhotoId])
    .exec_without_returning(db)
    .await?;
    Ok(())
}

fn due(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(photo_job::Column::NotBefore.is_null())
        .add(photo_job::Column::NotBefore.lte(now))
}

/// Claims up to `limit` due jobs, oldest first, stamping `lease` and counting the attempt in
/// one statement; other workers skip rows being claimed and, afterwards, the lease.
pub async fn claim(
    db: &DatabaseConnection,
    limit: u64,
    lease: DateTime<Utc>,
) -> ApiResult<Vec<Claimed>> {
    let mut ids = photo_job::Entity::find()
        .select_only()
        .column(photo_job::Column::PhotoId)
        .filter(due(clock::now()))
        .order_by_asc(photo_job::Column::CreatedAt)
        .limit(limit);
    if db.get_database_backend() == DbBackend::Postgres {
        ids = ids.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Ok(photo_job::Entity::update_many()
        .col_expr(photo_job::Column::NotBefore, Expr::value(lease))
        .col_expr(
            photo_job::Column::Attempts,
            Expr::col(photo_job::Column::Attempts).add(1),
        )
        .filter(photo_job::Column::PhotoId.in_subquery(ids.into_query()))
        .exec_with_returning(db)
        .await?)
}

/// Jobs waiting, due or not (the queue-depth gauge).
pub async fn depth(db: &DatabaseConnection) -> ApiResult<u64> {
    Ok(photo_job::Entity::find().count(db).await?)
}

fn held(job: &Claimed) -> Condition {
    Condition::all()
        .add(photo_job::Column::PhotoId.eq(job.photo_id))
        .add(photo_job::Column::Attempts.eq(job.attempts))
        .add(match job.not_before {
            Some(lease) => photo_job::Column::NotBefore.eq(lease),
            None => photo_job::Column::NotBefore.is_null(),
        })
}

/// Leaves a job for another attempt at `not_before`, with why this one failed. False when the
/// lease was no longer the caller's.
pub async fn retry_later(
    db: &DatabaseConnection,
    job: &Claimed,
    not_before: DateTime<Utc>,
    reason: &str,
) -> ApiResult<bool> {
    let updated = photo_job::Entity::update_many()
        .col_expr(photo_job::Column::NotBefore, Expr::value(not_before))
        .col_expr(photo_job::Column::LastError, Expr::value(reason))
        .filter(held(job))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Hands a job back due at once (the worker is stopping), provided the lease is still ours.
pub async fn release(db: &DatabaseConnection, job: &Claimed) -> ApiResult<bool> {
    let updated = photo_job::Entity::update_many()
        .col_expr(
            photo_job::Column::NotBefore,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            photo_job::Column::Attempts,
            Expr::col(photo_job::Column::Attempts).sub(1),
        )
        .filter(held(job))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Deletes a job whose photo is gone (the foreign key does this too; a job must never
/// outlive its photo and be claimed for ever).
pub async fn forget(db: &DatabaseConnection, job: &Claimed) -> ApiResult<()> {
    photo_job::Entity::delete_many()
        .filter(held(job))
        .exec(db)
        .await?;
    Ok(())
}

/// How a photo's processing ended.
#[derive(Debug)]
pub enum Outcome {
    Done(Box<Derived>),
    Failed(String),
    Unsupported(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Done(_) => "done",
            Self::Failed(_) => "failed",
            Self::Unsupported(_) => "unsupported",
        }
    }
}

/// Writes the photo's outcome, deletes its job and announces `PhotoProcessed`, in one
/// transaction under the session's row lock (the order every writer of a session's log takes,
/// so events commit in id order). False, changing nothing, when the job is gone (its photo was
/// deleted) or its lease is no longer the caller's. `shared_bytes` is the size of the copy
/// without metadata that was stored, if one was.
pub async fn finish(
    db: &DatabaseConnection,
    job: &Claimed,
    photo: &photo::Model,
    outcome: &Outcome,
    shared_bytes: Option<i64>,
) -> ApiResult<bool> {
    let txn = db.begin().await?;
    sessions::lock_session(&txn, photo.session_id, false).await?;
    let deleted = photo_job::Entity::delete_many()
        .filter(held(job))
        .exec(&txn)
        .await?;
    if deleted.rows_affected != 1 {
        return Ok(false);
    }
    let mut update = photo::Entity::update_many()
        .filter(photo::Column::Id.eq(photo.id))
        .col_expr(photo::Column::SharedByteSize, Expr::value(shared_bytes));
    update = match outcome {
        Outcome::Done(derived) => {
            let taken_at = derived.taken_at;
            update
                .col_expr(photo::Column::Processing, Expr::value(Processing::Done))
                .col_expr(photo::Column::Width, Expr::value(derived.width as i32))
                .col_expr(photo::Column::Height, Expr::value(derived.height as i32))
                .col_expr(
                    photo::Column::TakenAt,
                    Expr::value(taken_at.map(|at| at.with_timezone(&Utc))),
                )
                .col_expr(
                    photo::Column::TakenAtOffsetMinutes,
                    Expr::value(taken_at.map(|at| at.offset().local_minus_utc() / 60)),
                )
                .col_expr(
                    photo::Column::Thumbhash,
                    Expr::value(derived.thumbhash.clone()),
                )
        }
        Outcome::Failed(reason) => update
            .col_expr(photo::Column::Processing, Expr::value(Processing::Failed))
            .col_expr(photo::Column::ProcessingError, Expr::value(reason.clone())),
        Outcome::Unsupported(reason) => update
            .col_expr(
                photo::Column::Processing,
                Expr::value(Processing::Unsupported),
            )
            .col_expr(photo::Column::ProcessingError, Expr::value(reason.clone())),
    };
    update.exec(&txn).await?;
    events::record(
        &txn,
        NewEvent {
            session_id: Some(photo.session_id),
            actor_id: photo.uploader_id,
            payload: EventPayload::PhotoProcessed { photo_id: photo.id },
            push: false,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}
