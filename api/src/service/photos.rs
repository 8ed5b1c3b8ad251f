//! Photos: upload slots, completion, listing and deletion. The bytes go straight from the
//! phone to object storage with a presigned URL that only accepts what was declared here;
//! the server then checks what arrived before it announces the photo.
//!
//! The same bytes in the same session are the same photo: (`session_id`, `sha256`) is unique,
//! so asking twice, or twenty members asking at once, leaves one row.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::photo::{self, PhotoStatus, Processing};
use entity::session_member::SessionRole;
use entity::{session, user};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QuerySelect, TransactionTrait,
    sea_query::Expr,
};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::events::{self, DeleteReason, EventPayload, NewEvent};
use crate::processing;
use crate::service::pagination::{Page, PageRequest, pages_per_session_with_users};
use crate::service::sessions::{self, SessionView};
use crate::service::{Viewer, blocks};
use crate::storage::{
    ObjectStore, PhotoObject, PresignedUpload, UploadSpec, legacy_photo_key, object_key, orphans,
    photo_key,
};

/// The limits uploads are held to.
#[derive(Debug, Clone)]
pub struct UploadRules {
    pub max_bytes: u64,
    /// Accepted media types, lower case.
    pub content_types: Vec<String>,
    /// How long an upload URL stays valid.
    pub upload_url_ttl: Duration,
    pub limits: UploadLimits,
}

const GIB: u64 = 1024 * 1024 * 1024;

/// Quotas on what may be stored, and the local store's upload time limit. Photos count
/// while they live (ready and not yet expired) and so do open upload slots, so parallel
/// requests cannot overshoot a quota with slots they have not filled yet.
#[derive(Debug, Clone, clap::Args)]
pub struct UploadLimits {
    /// Most photos (ready or still uploading) one session may hold.
    #[arg(long, env = "PHOTON_SESSION_MAX_PHOTOS", default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub session_max_photos: u64,

    /// Most bytes of photos (ready or still uploading) one session may hold.
    #[arg(long, env = "PHOTON_SESSION_MAX_BYTES", default_value_t = 10 * GIB,
        value_parser = clap::value_parser!(u64).range(1024 * 1024..=16 * 1024 * GIB))]
    pub session_max_bytes: u64,

    /// Most photos (ready or still uploading) one user may have across all sessions.
    #[arg(long, env = "PHOTON_USER_MAX_PHOTOS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub user_max_photos: u64,

    /// Most bytes of photos (ready or still uploading) one user may have across all sessions.
    #[arg(long, env = "PHOTON_USER_MAX_BYTES", default_value_t = 5 * GIB,
        value_parser = clap::value_parser!(u64).range(1024 * 1024..=16 * 1024 * GIB))]
    pub user_max_bytes: u64,

    /// Longest photo lifetime, in hours, a session's owner may choose
    /// (`photoLifetimeHours` at creation and in `updateSession`).
    #[arg(long, env = "PHOTON_MAX_PHOTO_LIFETIME_HOURS", default_value_t = 72,
        value_parser = clap::value_parser!(i32).range(1..=8760))]
    pub max_photo_lifetime_hours: i32,

    /// Seconds one PUT to the local object store may take before it is cut off.
    #[arg(long, env = "PHOTON_LOCAL_UPLOAD_TIMEOUT_SECS", default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub local_upload_timeout_secs: u64,
}

impl UploadLimits {
    pub fn local_upload_timeout(&self) -> Duration {
        Duration::from_secs(self.local_upload_timeout_secs)
    }
}

/// What `requestPhotoUpload` declares.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub session_id: Uuid,
    pub sha256: String,
    pub content_type: String,
    pub byte_size: i64,
}

/// A photo and, while its bytes are still missing, where to put them.
#[derive(Debug)]
pub struct UploadSlot {
    pub photo: photo::Model,
    pub upload: Option<PresignedUpload>,
}

const NO_SUCH_PHOTO: ApiError = ApiError::NotFound("no such photo");

/// Checks a declared upload and returns its normalised digest and type.
fn check_request(rules: &UploadRules, request: &UploadRequest) -> ApiResult<(String, String)> {
    let sha256 = request.sha256.trim().to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_input(
            "sha256",
            "sha256 must be 64 hexadecimal digits",
        ));
    }
    let content_type = request.content_type.trim().to_ascii_lowercase();
    if !rules.content_types.contains(&content_type) {
        return Err(ApiError::bad_input(
            "contentType",
            format!(
                "contentType must be one of {}",
                rules.content_types.join(", ")
            ),
        ));
    }
    if request.byte_size < 1 || request.byte_size as u64 > rules.max_bytes {
        return Err(ApiError::bad_input(
            "byteSize",
            format!("byteSize must be between 1 and {} bytes", rules.max_bytes),
        ));
    }
    Ok((sha256, content_type))
}

/// Opens (or finds) the slot for a photo in a session the viewer is a member of.
pub async fn request_upload(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    rules: &UploadRules,
    viewer: Viewer,
    request: UploadRequest,
) -> ApiResult<UploadSlot> {
    let me = viewer.user_id()?;
    let (sha256, content_type) = check_request(rules, &request)?;
    let view = sessions::get_session(db, viewer, request.session_id).await?;
    if !sessions::takes_uploads(&view.session, clock::now()) {
        return Err(ApiError::UploadWindowClosed);
    }
    // Each round finds the row as it is; one whose state moved under us (removed by the
    // sweeper, completed by someone else) is looked at again.
    let mut found = None;
    for _ in 0..3 {
        let photo = match find_slot(db, request.session_id, &sha256).await? {
            Some(photo) => photo,
            None => open_slot(db, &rules.limits, me, &request, &sha256, &content_type).await?,
        };
        // The same bytes shared again after the earlier copy expired are a new photo: clear
        // the expired one out now rather than wait for the sweeper.
        if photo.expires_at.is_some_and(|at| at <= clock::now()) {
            remove_if_due(db, store, photo.id, clock::now()).await?;
            continue;
        }
        // Same digest, other size or type: the client is describing other bytes than it
        // hashed (checked before the slot is renewed, so a refused request changes nothing).
        if photo.byte_size != request.byte_size || photo.content_type != content_type {
            return Err(ApiError::bad_input(
                "sha256",
                "these bytes are already in the session with another size or type",
            ));
        }
        if photo.status == PhotoStatus::Ready {
            found = Some(photo);
            break;
        }
        // A new upload URL renews the slot: the viewer becomes its uploader (whoever sends
        // these bytes and completes makes the photo ready for everyone), and the sweeper's
        // one-hour clock starts again, so it never removes a slot whose URL still works.
        // The sweeper deletes only a slot still due, so one of the two wins cleanly.
        let renewed = photo::Entity::update_many()
            .col_expr(photo::Column::UploaderId, Expr::value(me))
            .col_expr(photo::Column::CreatedAt, Expr::value(clock::now()))
            .filter(photo::Column::Id.eq(photo.id))
            .filter(photo::Column::Status.eq(PhotoStatus::Pending))
            .exec(db)
            .await?;
        if renewed.rows_affected == 1 {
            found = photo::Entity::find_by_id(photo.id).one(db).await?;
            if found.is_some() {
                break;
            }
        }
    }
    let Some(photo) = found else {
        return Err(ApiError::Conflict(
            "the photo changed while you asked; try again",
        ));
    };
    let upload = match photo.status {
        PhotoStatus::Ready => None,
        PhotoStatus::Pending => {
            let spec = UploadSpec {
                content_type,
                byte_size: request.byte_size as u64,
                sha256,
            };
            let key = photo_key(photo.session_id, &photo.sha256);
            Some(
                store
                    .presign_upload(&key, &spec, rules.upload_url_ttl)
                    .await?,
            )
        }
    };
    Ok(UploadSlot { photo, upload })
}

/// Whether a pending photo may complete now (read under the session's lock): while the
/// session takes uploads, and for a slot opened before the end, for as long as its upload URL
/// works, whatever the late-upload window says.
fn check_completes(
    session: &session::Model,
    photo: &photo::Model,
    url_ttl: Duration,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if sessions::takes_uploads(session, now) {
        return Ok(());
    }
    let opened_before_end = session
        .ended_at
        .is_some_and(|ended| photo.created_at < ended);
    let url_expires = photo.created_at + chrono::Duration::from_std(url_ttl).unwrap_or_default();
    if opened_before_end && now <= url_expires + URL_CLOCK_SLACK {
        return Ok(());
    }
    Err(ApiError::UploadWindowClosed)
}

/// Takes the session's lock and checks, under it, that the session still takes uploads: an
/// end (or a shorter late window) committed meanwhile is seen here.
async fn uploads_open_locked(txn: &DatabaseTransaction, session_id: Uuid) -> ApiResult<()> {
    sessions::lock_session(txn, session_id, false).await?;
    let session = session::Entity::find_by_id(session_id)
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("no such session"))?;
    if !sessions::takes_uploads(&session, clock::now()) {
        return Err(ApiError::UploadWindowClosed);
    }
    Ok(())
}

async fn find_slot(
    db: &DatabaseConnection,
    session_id: Uuid,
    sha256: &str,
) -> ApiResult<Option<photo::Model>> {
    Ok(photo::Entity::find()
        .filter(photo::Column::SessionId.eq(session_id))
        .filter(photo::Column::Sha256.eq(sha256))
        .one(db)
        .await?)
}

/// Inserts a pending slot for these bytes, if the session's and the viewer's quotas allow
/// it, and returns the row (the unique index settles simultaneous requests for the same
/// bytes). The quotas are checked under the session's row lock and then the viewer's, so
/// parallel requests are counted one after the other and cannot overshoot.
async fn open_slot(
    db: &DatabaseConnection,
    limits: &UploadLimits,
    me: Uuid,
    request: &UploadRequest,
    sha256: &str,
    content_type: &str,
) -> ApiResult<photo::Model> {
    let txn = db.begin().await?;
    uploads_open_locked(&txn, request.session_id).await?;
    user::Entity::update_many()
        .col_expr(user::Column::Id, Expr::col(user::Column::Id))
        .filter(user::Column::Id.eq(me))
        .exec(&txn)
        .await?;
    let now = clock::now();
    let new_bytes = request.byte_size.max(0) as u64;
    let (photos, bytes) = usage(&txn, photo::Column::SessionId.eq(request.session_id), now).await?;
    if photos >= limits.session_max_photos {
        return Err(ApiError::QuotaExceeded(
            "this session holds as many photos as it may",
        ));
    }
    if bytes + new_bytes > limits.session_max_bytes {
        return Err(ApiError::QuotaExceeded(
            "this session holds as many bytes of photos as it may",
        ));
    }
    let (photos, bytes) = usage(&txn, photo::Column::UploaderId.eq(me), now).await?;
    if photos >= limits.user_max_photos {
        return Err(ApiError::QuotaExceeded(
            "you have as many photos as you may; some must expire first",
        ));
    }
    if bytes + new_bytes > limits.user_max_bytes {
        return Err(ApiError::QuotaExceeded(
            "you have as many bytes of photos as you may; some must expire first",
        ));
    }
    photo::Entity::insert(photo::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(request.session_id),
        uploader_id: Set(me),
        sha256: Set(sha256.to_owned()),
        content_type: Set(content_type.to_owned()),
        byte_size: Set(request.byte_size),
        status: Set(PhotoStatus::Pending),
        created_at: Set(now),
        ready_at: Set(None),
        expires_at: Set(None),
        seq: Set(None),
        processing: Set(Processing::Pending),
        legacy_key: Set(false),
        ..Default::default()
    })
    .on_conflict_do_nothing_on([photo::Column::SessionId, photo::Column::Sha256])
    .exec(&txn)
    .await?;
    let photo = photo::Entity::find()
        .filter(photo::Column::SessionId.eq(request.session_id))
        .filter(photo::Column::Sha256.eq(sha256))
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("photo vanished after insert")))?;
    txn.commit().await?;
    Ok(photo)
}

/// Photos and bytes that count against a quota: open slots and photos not yet expired.
async fn usage(
    db: &impl ConnectionTrait,
    whose: impl sea_orm::sea_query::IntoCondition,
    now: DateTime<Utc>,
) -> ApiResult<(u64, u64)> {
    let live = Condition::any()
        .add(photo::Column::Status.eq(PhotoStatus::Pending))
        .add(photo::Column::ExpiresAt.gt(now));
    // SUM of a BIGINT is NUMERIC on Postgres: cast it back so both backends read an i64.
    let row: Option<(i64, i64)> = photo::Entity::find()
        .select_only()
        .column_as(Expr::cust("COUNT(*)"), "photos")
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(byte_size), 0) AS BIGINT)"),
            "bytes",
        )
        .filter(whose)
        .filter(live)
        .into_tuple()
        .one(db)
        .await?;
    let (photos, bytes) = row.unwrap_or_default();
    Ok((photos.max(0) as u64, bytes.max(0) as u64))
}

/// How long an upload slot may wait for its bytes. Upload URLs live less than this (see
/// `Settings::resolve`), and asking again renews the slot, so no working URL outlives it.
pub const ABANDONED_SLOT_AGE: chrono::Duration = chrono::Duration::hours(1);

/// Why a photo was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// Its lifetime was over.
    Expired,
    /// Its upload never completed.
    Abandoned,
}

/// Removes a photo if, as of `now`, it has expired or its slot was abandoned, in one
/// transaction that holds the session's row lock (taken before anything else, in the order
/// every writer of the session uses). The row is deleted only if it is still due: a slot
/// renewed at the same moment (renewal does not take the lock) or a photo completed since
/// survives. Its object is deleted after the commit, with the key noted for the sweeper in
/// case that fails.
pub async fn remove_if_due(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    photo_id: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<Option<Removed>> {
    let Some(seen) = photo::Entity::find_by_id(photo_id).one(db).await? else {
        return Ok(None);
    };
    let txn = db.begin().await?;
    sessions::lock_session(&txn, seen.session_id, false).await?;
    let Some(photo) = photo::Entity::find_by_id(photo_id).one(&txn).await? else {
        return Ok(None);
    };
    let (removed, still_due) = match photo.status {
        PhotoStatus::Ready if photo.expires_at.is_some_and(|at| at <= now) => {
            (Removed::Expired, photo::Column::ExpiresAt.lte(now))
        }
        PhotoStatus::Pending if photo.created_at <= now - ABANDONED_SLOT_AGE => (
            Removed::Abandoned,
            photo::Column::CreatedAt.lte(now - ABANDONED_SLOT_AGE),
        ),
        _ => return Ok(None),
    };
    let deleted = photo::Entity::delete_many()
        .filter(photo::Column::Id.eq(photo.id))
        .filter(photo::Column::Status.eq(photo.status))
        .filter(still_due)
        .exec(&txn)
        .await?;
    if deleted.rows_affected == 0 {
        return Ok(None);
    }
    // An expired photo's and an abandoned slot's URLs are past their lifetime (both outlast
    // any upload URL): the object may go now.
    orphans::record(&txn, photo.session_id, &photo.sha256, now, photo.legacy_key).await?;
    if removed == Removed::Expired {
        events::record(
            &txn,
            NewEvent {
                session_id: Some(photo.session_id),
                actor_id: photo.uploader_id,
                payload: EventPayload::PhotoDeleted {
                    photo_id: photo.id,
                    reason: Some(DeleteReason::Expired),
                },
                push: false,
            },
        )
        .await?;
    }
    txn.commit().await?;
    orphans::purge_after_commit(db, store, photo.session_id, &photo.sha256, now).await;
    Ok(Some(removed))
}

/// A photo the viewer may see: in a session they are a member of, and ready (or theirs).
async fn find_visible(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    photo_id: Uuid,
) -> ApiResult<Option<(photo::Model, SessionView)>> {
    let me = viewer.user_id()?;
    let Some(photo) = photo::Entity::find_by_id(photo_id).one(db).await? else {
        return Ok(None);
    };
    let Some(view) = sessions::find_session(db, viewer, photo.session_id).await? else {
        return Ok(None);
    };
    if photo.status == PhotoStatus::Pending && photo.uploader_id != me {
        return Ok(None);
    }
    // Past its lifetime a photo is gone for readers, whether or not the sweeper came by.
    if photo.expires_at.is_some_and(|at| at <= clock::now()) {
        return Ok(None);
    }
    if !blocks::may_see(db, me, &photo).await? {
        return Ok(None);
    }
    Ok(Some((photo, view)))
}

pub async fn find_photo(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    photo_id: Uuid,
) -> ApiResult<Option<photo::Model>> {
    Ok(find_visible(db, viewer, photo_id)
        .await?
        .map(|(photo, _)| photo))
}

/// Checks what arrived in storage and, if it is what was declared, marks the photo ready,
/// queues it for processing and announces it. Completing a ready photo again changes nothing.
pub async fn complete_upload(
    db: &DatabaseConnection,
    jobs: &processing::JobBell,
    store: &dyn ObjectStore,
    url_ttl: Duration,
    viewer: Viewer,
    photo_id: Uuid,
) -> ApiResult<photo::Model> {
    let me = viewer.user_id()?;
    let (photo, view) = find_visible(db, viewer, photo_id)
        .await?
        .ok_or(NO_SUCH_PHOTO)?;
    if photo.uploader_id != me {
        return Err(ApiError::Forbidden(
            "only the uploader can complete an upload",
        ));
    }
    if photo.status == PhotoStatus::Ready {
        return Ok(photo);
    }
    let key = photo_key(photo.session_id, &photo.sha256);
    let Some(stored) = store.head(&key).await? else {
        return Err(ApiError::bad_input(
            "photoId",
            "the photo has not been uploaded yet",
        ));
    };
    if stored.byte_size != photo.byte_size as u64 || stored.sha256 != photo.sha256 {
        return Err(ApiError::bad_input(
            "photoId",
            "the uploaded object is not the declared photo; upload it again",
        ));
    }
    let txn = db.begin().await?;
    sessions::lock_session(&txn, photo.session_id, false).await?;
    let session = session::Entity::find_by_id(photo.session_id)
        .one(&txn)
        .await?
        .ok_or(NO_SUCH_PHOTO)?;
    check_completes(&session, &photo, url_ttl, clock::now())?;
    // Under the session's lock only one completion gets here for a pending photo: a
    // concurrent one that won has already made it ready.
    let Some(current) = photo::Entity::find_by_id(photo.id).one(&txn).await? else {
        return Err(NO_SUCH_PHOTO);
    };
    if current.status == PhotoStatus::Ready {
        return Ok(current);
    }
    let seq = events::record(
        &txn,
        NewEvent {
            session_id: Some(photo.session_id),
            actor_id: me,
            payload: EventPayload::PhotoAdded { photo_id: photo.id },
            push: true,
        },
    )
    .await?;
    let now = clock::now();
    let lifetime = chrono::Duration::hours(i64::from(view.session.photo_lifetime_hours));
    photo::Entity::update_many()
        .col_expr(photo::Column::Status, Expr::value(PhotoStatus::Ready))
        .col_expr(photo::Column::ReadyAt, Expr::value(now))
        .col_expr(photo::Column::ExpiresAt, Expr::value(now + lifetime))
        .col_expr(photo::Column::Seq, Expr::value(seq))
        .filter(photo::Column::Id.eq(photo.id))
        .exec(&txn)
        .await?;
    processing::enqueue(&txn, photo.id).await?;
    let photo = photo::Entity::find_by_id(photo.id)
        .one(&txn)
        .await?
        .ok_or(NO_SUCH_PHOTO)?;
    txn.commit().await?;
    processing::wake();
    jobs.ring();
    Ok(photo)
}

/// Gives the session's ready photos a new lifetime: each expires `hours` after it became
/// ready. One statement whatever the number of photos; the date arithmetic is each backend's
/// own, written so SQLite's result stays in the RFC 3339 form its other timestamps are in
/// (and each with its own placeholder: sea-query numbers them for Postgres only).
/// A photo that had already expired and not yet been swept comes back if the new lifetime
/// covers it: the owner asked for it to last that long.
pub(crate) async fn set_lifetime(
    txn: &impl ConnectionTrait,
    session_id: Uuid,
    hours: i32,
) -> ApiResult<()> {
    let expires = match txn.get_database_backend() {
        DbBackend::Sqlite => Expr::cust_with_values(
            "strftime('%Y-%m-%dT%H:%M:%f', ready_at, ? || ' hours') || '+00:00'",
            [format!("{hours:+}")],
        ),
        _ => Expr::cust_with_values("ready_at + make_interval(hours => $1)", [hours]),
    };
    photo::Entity::update_many()
        .col_expr(photo::Column::ExpiresAt, expires)
        .filter(photo::Column::SessionId.eq(session_id))
        .filter(photo::Column::Status.eq(PhotoStatus::Ready))
        .filter(photo::Column::ReadyAt.is_not_null())
        .exec(txn)
        .await?;
    // The warning was about the old expiry: the new one deserves its own.
    session::Entity::update_many()
        .col_expr(
            session::Column::ExpiryWarnedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(session::Column::Id.eq(session_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Margin for the object store's clock running behind ours when it checks a URL's expiry.
const URL_CLOCK_SLACK: chrono::Duration = chrono::Duration::minutes(5);

/// Deletes a photo (its uploader or the session's owner): the row under the session's lock,
/// the object after the commit. The last upload URL issued for it may still work (S3 cannot
/// revoke one), so the key is noted until that URL has expired and the sweeper deletes the
/// object again then; the local store refuses such a PUT outright.
pub async fn delete_photo(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    rules: &UploadRules,
    viewer: Viewer,
    photo_id: Uuid,
) -> ApiResult<bool> {
    let me = viewer.user_id()?;
    let (photo, view) = find_visible(db, viewer, photo_id)
        .await?
        .ok_or(NO_SUCH_PHOTO)?;
    if photo.uploader_id != me && view.viewer_role != SessionRole::Owner {
        return Err(ApiError::Forbidden(
            "only the uploader or the session's owner can delete a photo",
        ));
    }
    let txn = db.begin().await?;
    sessions::lock_session(&txn, photo.session_id, false).await?;
    // Under the session's lock the photo cannot change: read its status as it is now (a
    // completion may have made it ready since we looked).
    let Some(photo) = photo::Entity::find_by_id(photo.id).one(&txn).await? else {
        return Ok(false);
    };
    let now = clock::now();
    if !forget_photo(&txn, rules, &photo, me, now).await? {
        return Ok(false);
    }
    txn.commit().await?;
    orphans::purge_after_commit(db, store, photo.session_id, &photo.sha256, now).await;
    Ok(true)
}

/// Deletes a photo's row under its session's lock (which the caller holds in `txn`), marks
/// its objects for removal once no upload URL for them can still work, and announces the
/// deletion of a ready photo as `actor`'s. False when the row was gone already. The caller
/// purges the objects after the commit (`orphans::purge_after_commit`).
pub(crate) async fn forget_photo(
    txn: &DatabaseTransaction,
    rules: &UploadRules,
    photo: &photo::Model,
    actor: Uuid,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    let deleted = photo::Entity::delete_by_id(photo.id).exec(txn).await?;
    if deleted.rows_affected != 1 {
        return Ok(false);
    }
    // `created_at` is when the slot's last upload URL was issued.
    let url_ttl = chrono::Duration::from_std(rules.upload_url_ttl).map_err(ApiError::internal)?;
    let urls_dead_at = (photo.created_at + url_ttl + URL_CLOCK_SLACK).max(now);
    orphans::record(
        txn,
        photo.session_id,
        &photo.sha256,
        urls_dead_at,
        photo.legacy_key,
    )
    .await?;
    if photo.status == PhotoStatus::Ready {
        events::record(
            txn,
            NewEvent {
                session_id: Some(photo.session_id),
                actor_id: actor,
                payload: EventPayload::PhotoDeleted {
                    photo_id: photo.id,
                    reason: None,
                },
                push: false,
            },
        )
        .await?;
    }
    Ok(true)
}

/// Position in a photo list, newest first: the id of the event that announced the photo, so an
/// edge's cursor also works as `photoAdded(after:)` to stream everything newer.
pub type PhotoKey = i64;

/// The condition, on a query of `photos`, that a photo is in the album `viewer` sees: ready,
/// not past its lifetime, and not hidden from them by a block or reports.
pub(crate) fn shown_to(viewer: Uuid) -> Condition {
    Condition::all()
        .add(photo::Column::Status.eq(PhotoStatus::Ready))
        .add(photo::Column::ExpiresAt.gt(clock::now()))
        .add(blocks::visible_uploaders(viewer))
}

/// Which object of `photo` its full-size `url` serves `viewer`, and whether that is the copy
/// without metadata: the original for its uploader, that copy for everyone else, and the one
/// object of a photo from before processing for all.
pub fn full_size_key(photo: &photo::Model, viewer: Option<Uuid>) -> (String, bool) {
    if photo.legacy_key {
        (legacy_photo_key(photo.session_id, &photo.sha256), false)
    } else if viewer == Some(photo.uploader_id) {
        (photo_key(photo.session_id, &photo.sha256), false)
    } else {
        let key = object_key(photo.session_id, &photo.sha256, PhotoObject::Shared);
        (key, true)
    }
}

/// Ready photos of sessions the caller has shown the viewer belongs to, newest first: one
/// page per session, all in one statement, with their uploaders; without those `viewer`
/// blocks or reports hid.
pub async fn list_photos(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    session_ids: &[Uuid],
    page: &PageRequest<PhotoKey>,
) -> ApiResult<(HashMap<Uuid, Page<photo::Model>>, Vec<user::Model>)> {
    let mut query = photo::Entity::find()
        .filter(photo::Column::SessionId.is_in(session_ids.iter().copied()))
        .filter(shown_to(viewer));
    if let Some(seq) = page.after {
        query = query.filter(photo::Column::Seq.lt(seq));
    }
    pages_per_session_with_users(
        db,
        query,
        "seq DESC",
        "uploader_id",
        session_ids,
        page,
        |p| p.session_id,
        |p| p.seq.unwrap_or_default(),
    )
    .await
}

/// Ready photos per session that `viewer` may see, for the DataLoader behind
/// `Session.photoCount` (the nil id for a count shown to anyone).
pub async fn count_photos(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    session_ids: &[Uuid],
) -> ApiResult<HashMap<Uuid, i64>> {
    let counts: Vec<(Uuid, i64)> = photo::Entity::find()
        .select_only()
        .column(photo::Column::SessionId)
        .column_as(photo::Column::Id.count(), "count")
        .filter(photo::Column::SessionId.is_in(session_ids.iter().copied()))
        .filter(shown_to(viewer))
        .group_by(photo::Column::SessionId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(counts.into_iter().collect())
}

/// Settings: what a photo may be, and how long its URLs live.
#[derive(Debug, Clone, clap::Args)]
pub struct PhotoArgs {
    /// Largest photo accepted, in bytes.
    #[arg(long, env = "PHOTON_MAX_PHOTO_BYTES", default_value_t = 25 * 1024 * 1024,
        value_parser = clap::value_parser!(u64).range(1..=5 * 1024 * 1024 * 1024))]
    pub max_photo_bytes: u64,

    /// Comma-separated media types a photo may have.
    #[arg(
        long,
        env = "PHOTON_PHOTO_CONTENT_TYPES",
        value_delimiter = ',',
        default_value = "image/jpeg,image/png,image/heic,image/heif,image/webp"
    )]
    pub photo_content_types: Vec<String>,

    /// How long an upload URL stays valid, in seconds (less than the hour after which an
    /// unfinished upload is swept).
    #[arg(long, env = "PHOTON_UPLOAD_URL_TTL_SECS", default_value_t = 15 * 60,
        value_parser = clap::value_parser!(u64).range(1..=3_599))]
    pub upload_url_ttl_secs: u64,

    /// How long a photo's download URL stays valid, in seconds (S3 signs for a week at most).
    #[arg(long, env = "PHOTON_DOWNLOAD_URL_TTL_SECS", default_value_t = 15 * 60,
        value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub download_url_ttl_secs: u64,

    /// How long a session archive's link stays valid, in seconds. A download that started
    /// in time runs to its end.
    #[arg(long, env = "PHOTON_ARCHIVE_URL_TTL_SECS", default_value_t = 15 * 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub archive_url_ttl_secs: u64,

    #[command(flatten)]
    pub upload_limits: UploadLimits,
}
