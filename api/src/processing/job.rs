//! One attempt at one photo: read the original, make everything from it off the async
//! threads, store the results beside it, and record how it ended (or leave it for a retry).

use std::time::Instant;

use entity::photo::{self, PhotoStatus};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;

use super::queue::{self, Claimed, Outcome};
use super::workers::{Workers, chrono_duration};
use crate::clock;
use crate::imaging::{self, DERIVATIVE_CONTENT_TYPE, Derived, Format, ImageError, Limits};
use crate::jobs::job_error;
use crate::metrics;
use crate::storage::{PhotoObject, hex, object_key, photo_key};

/// Why an attempt did not reach an outcome: worth trying again later.
#[derive(Debug)]
struct Transient(String);

impl<E: std::fmt::Display> From<E> for Transient {
    fn from(err: E) -> Self {
        Self(err.to_string())
    }
}

/// What the CPU work made.
struct Made {
    shared: Result<Vec<u8>, ImageError>,
    derived: Result<Derived, ImageError>,
}

/// Runs the job to an outcome, a retry or a lost lease, and logs and counts which.
pub(super) async fn run(workers: &Workers, job: &Claimed, permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    let result = attempt(workers, job, permit).await;
    let label = match result {
        Ok(Some((photo, outcome, shared_bytes))) => {
            match queue::finish(&workers.db, job, &photo, &outcome, shared_bytes).await {
                Ok(true) => {
                    match &outcome {
                        Outcome::Done(_) => {
                            tracing::debug!(photo_id = %photo.id, "photo processed")
                        }
                        Outcome::Failed(reason) => {
                            tracing::warn!(photo_id = %photo.id, reason, "photo processing failed")
                        }
                        Outcome::Unsupported(reason) => {
                            tracing::info!(photo_id = %photo.id, reason, "photo format not processed")
                        }
                    }
                    outcome.label()
                }
                Ok(false) => lost(workers, &photo).await,
                Err(err) => {
                    retry(
                        workers,
                        job,
                        format!("recording the outcome: {:#}", job_error(err)),
                    )
                    .await
                }
            }
        }
        // The photo is gone, and its job with it.
        Ok(None) => {
            if let Err(err) = queue::forget(&workers.db, job).await {
                tracing::warn!(photo_id = %job.photo_id, error = format!("{:#}", job_error(err)), "cannot remove the job of a deleted photo");
            }
            "gone"
        }
        Err(Transient(reason)) => retry(workers, job, reason).await,
    };
    metrics::photo_job_ended(label, started.elapsed());
}

/// What an attempt came to: the photo, its outcome, and the size of the copy without
/// metadata if one was stored.
type Attempted = (photo::Model, Outcome, Option<i64>);

/// Reads, processes and stores. `Ok(None)` when there is no photo to process any more.
async fn attempt(
    workers: &Workers,
    job: &Claimed,
    permit: OwnedSemaphorePermit,
) -> Result<Option<Attempted>, Transient> {
    let Some(photo) = photo::Entity::find_by_id(job.photo_id)
        .one(&workers.db)
        .await?
    else {
        return Ok(None);
    };
    if photo.status != PhotoStatus::Ready {
        // Jobs are queued as photos become ready, so this is a bug or a hand-edited row: it
        // ends FAILED once its attempts are spent.
        return Err(Transient("the photo is not ready".to_owned()));
    }
    let Some(format) = Format::from_content_type(&photo.content_type) else {
        let reason = format!("{} is not a format Photon processes", photo.content_type);
        return Ok(Some((photo, Outcome::Unsupported(reason), None)));
    };
    let key = photo_key(photo.session_id, &photo.sha256);
    let max_bytes = (photo.byte_size.max(0) as u64).min(workers.max_bytes);
    let Some(original) = workers.store.read(&key, max_bytes).await? else {
        return Err(Transient("the original is not in the store".to_owned()));
    };
    let timeout = workers.settings.timeout;
    let limits = Limits {
        max_pixels: workers.settings.max_pixels,
        deadline: Instant::now() + timeout,
    };
    let expected = photo.sha256.clone();
    let work = tokio::task::spawn_blocking(move || {
        // Held until the work really ends, even past its time limit.
        let _permit = permit;
        if hex(&Sha256::digest(&original)) != expected {
            return Err("the stored original does not match its digest".to_owned());
        }
        Ok(Made {
            shared: imaging::shareable_copy(&original, format),
            derived: imaging::derive(&original, format, &limits),
        })
    });
    // The work checks its deadline between stages; this bounds a stage that overruns it.
    let made = match tokio::time::timeout(timeout + std::time::Duration::from_secs(1), work).await {
        Err(_) => return Err(Transient("took longer than the time limit".to_owned())),
        Ok(Err(join)) if join.is_panic() => {
            // A decoder bug: the same bytes would panic again, so this photo is done with.
            tracing::error!(photo_id = %photo.id, "image processing panicked");
            let reason = "the image could not be decoded (the decoder failed)".to_owned();
            return Ok(Some((photo, Outcome::Failed(reason), None)));
        }
        Ok(Err(join)) => return Err(Transient(join.to_string())),
        Ok(Ok(Err(reason))) => return Err(Transient(reason)),
        Ok(Ok(Ok(made))) => made,
    };
    let outcome = match made.derived {
        Ok(derived) => Outcome::Done(Box::new(derived)),
        Err(ImageError::TimedOut) => {
            return Err(Transient("took longer than the time limit".to_owned()));
        }
        Err(ImageError::Unsupported(reason)) => Outcome::Unsupported(reason),
        Err(ImageError::Invalid(reason)) => Outcome::Failed(reason),
    };
    let store = workers.store.as_ref();
    let folder = |object| object_key(photo.session_id, &photo.sha256, object);
    let mut shared_bytes = None;
    match made.shared {
        // A photo that did not decode is not handed to anyone but its uploader.
        Ok(shared) if !matches!(outcome, Outcome::Failed(_)) => {
            let size = i64::try_from(shared.len()).ok();
            store
                .put(&folder(PhotoObject::Shared), shared, &photo.content_type)
                .await?;
            shared_bytes = size;
        }
        Ok(_) => {}
        Err(err) => {
            tracing::warn!(photo_id = %photo.id, error = %err, "no copy without metadata could be made; other members cannot download the full size");
        }
    }
    if let Outcome::Done(derived) = &outcome {
        for (object, encoded) in [
            (PhotoObject::Preview, &derived.preview),
            (PhotoObject::Thumbnail, &derived.thumbnail),
        ] {
            store
                .put(
                    &folder(object),
                    encoded.bytes.clone(),
                    DERIVATIVE_CONTENT_TYPE,
                )
                .await?;
        }
    }
    Ok(Some((photo, outcome, shared_bytes)))
}

/// Leaves the job for a later attempt, or ends it FAILED once it has had its attempts.
async fn retry(workers: &Workers, job: &Claimed, reason: String) -> &'static str {
    let attempts = job.attempts.max(0) as u32;
    if attempts >= workers.settings.max_attempts {
        let reason = format!("gave up after {attempts} attempts: {reason}");
        let photo = photo::Entity::find_by_id(job.photo_id)
            .one(&workers.db)
            .await;
        if let Ok(Some(photo)) = photo {
            match queue::finish(
                &workers.db,
                job,
                &photo,
                &Outcome::Failed(reason.clone()),
                None,
            )
            .await
            {
                Ok(true) => {
                    tracing::warn!(photo_id = %job.photo_id, reason, "photo processing failed");
                    return "failed";
                }
                Ok(false) => return "lost",
                Err(err) => {
                    tracing::warn!(photo_id = %job.photo_id, error = format!("{:#}", job_error(err)), "cannot record a failed photo; its lease will lapse");
                    return "retried";
                }
            }
        }
        return "gone";
    }
    let not_before = clock::now() + chrono_duration(super::backoff(attempts));
    match queue::retry_later(&workers.db, job, not_before, &reason).await {
        Ok(true) => {
            tracing::info!(photo_id = %job.photo_id, attempts, reason, "photo processing will be retried")
        }
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(photo_id = %job.photo_id, error = format!("{:#}", job_error(err)), reason, "cannot schedule a retry; the lease will lapse")
        }
    }
    "retried"
}

/// The outcome was not recorded: the lease went to another worker (which writes the same
/// objects) or the photo was deleted meanwhile, in which case what this attempt wrote is
/// removed again, unless the same bytes are back as a new photo that owns the folder now.
async fn lost(workers: &Workers, photo: &photo::Model) -> &'static str {
    let claimed = photo::Entity::find()
        .filter(photo::Column::SessionId.eq(photo.session_id))
        .filter(photo::Column::Sha256.eq(&photo.sha256))
        .count(&workers.db)
        .await;
    if matches!(claimed, Ok(0)) {
        for object in [
            PhotoObject::Shared,
            PhotoObject::Preview,
            PhotoObject::Thumbnail,
        ] {
            let key = object_key(photo.session_id, &photo.sha256, object);
            if let Err(err) = workers.store.delete(&key).await {
                tracing::warn!(key, error = %err, "cannot remove a deleted photo's derivative");
            }
        }
    }
    "lost"
}
