//! Photos: upload slots, completion, reading and deletion.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, FixedOffset, Utc};
use entity::photo::{self, PhotoStatus as Status, Processing};

use super::ContextExt;
use super::ids::{self, Kind};
use super::sessions::Session;
use super::users::User;
use crate::error::ApiError;
use crate::imaging::DERIVATIVE_CONTENT_TYPE;
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::photos::{self as service, UploadRequest, UploadSlot};
use crate::storage::{PhotoObject, object_key};

/// A photo in a session.
pub struct Photo(pub photo::Model);

/// Whether a photo's bytes have arrived.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum PhotoStatus {
    /// Waiting for the upload and `completePhotoUpload` (seen only by its uploader).
    Pending,
    /// Uploaded, checked and visible to every member.
    Ready,
}

/// A photo in a session.
#[Object]
impl Photo {
    /// Global id of the photo.
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Photo, self.0.id)
    }

    /// The session it belongs to.
    async fn session(&self, ctx: &Context<'_>) -> Result<Session> {
        let loaders = ctx.loaders()?;
        let view = loaders.sessions().load_one(self.0.session_id).await?;
        // The viewer reached this photo through the session, so they are a member.
        let view = view.ok_or(ApiError::NotFound("no such session"))?;
        Ok(Session(view))
    }

    /// Who took it.
    async fn uploader(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(ctx.loaders()?.user(self.0.uploader_id).await?))
    }

    /// Lower-case hex SHA-256 of the bytes.
    async fn sha256(&self) -> &str {
        &self.0.sha256
    }

    /// Media type, e.g. `image/jpeg`.
    async fn content_type(&self) -> &str {
        &self.0.content_type
    }

    /// Size in bytes.
    async fn byte_size(&self) -> i64 {
        self.0.byte_size
    }

    /// PENDING until its upload is completed, then READY.
    async fn status(&self) -> PhotoStatus {
        match self.0.status {
            Status::Pending => PhotoStatus::Pending,
            Status::Ready => PhotoStatus::Ready,
        }
    }

    /// A short-lived download URL (15 minutes by default) of the full-size photo: the original
    /// for its uploader; for everyone else the same pixels without location, serial numbers
    /// or any other metadata. That copy is made by processing: until `processing` leaves
    /// PENDING it may not exist yet, and a photo whose processing FAILED has none.
    async fn url(&self, ctx: &Context<'_>) -> Result<String> {
        let photo = &self.0;
        let (key, _) = service::full_size_key(photo, ctx.viewer().user_id().ok());
        self.download(ctx, &key, &photo.content_type).await
    }

    /// Width as displayed (EXIF orientation applied); null until processed.
    async fn width(&self) -> Option<i32> {
        self.0.width
    }

    /// Height as displayed (EXIF orientation applied); null until processed.
    async fn height(&self) -> Option<i32> {
        self.0.height
    }

    /// When it was taken: EXIF `DateTimeOriginal`, with the camera's UTC offset when it gave
    /// one (otherwise the camera's clock is read as UTC). Null until processed, or when the
    /// photo does not say.
    async fn taken_at(&self) -> Option<DateTime<FixedOffset>> {
        let at = self.0.taken_at?;
        let offset = self
            .0
            .taken_at_offset_minutes
            .and_then(|minutes| FixedOffset::east_opt(minutes * 60))
            .unwrap_or(FixedOffset::east_opt(0)?);
        Some(at.with_timezone(&offset))
    }

    /// A ThumbHash (base64) to show as a placeholder while the thumbnail loads; null until
    /// processed.
    async fn thumbhash(&self) -> Option<&str> {
        self.0.thumbhash.as_deref()
    }

    /// A short-lived URL of a JPEG at most 384 px on its longest side, upright; null until
    /// processed.
    async fn thumbnail_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        self.derivative(ctx, PhotoObject::Thumbnail).await
    }

    /// A short-lived URL of a JPEG at most 1600 px on its longest side, upright; null until
    /// processed.
    async fn preview_url(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        self.derivative(ctx, PhotoObject::Preview).await
    }

    /// Where processing stands: PENDING until the workers are done with it; then DONE (size,
    /// ThumbHash, thumbnail and preview are set), FAILED (not a well-formed image of its
    /// type), or UNSUPPORTED (a format this server does not decode: the photo is still
    /// stored and served). `PhotoProcessed` on `sessionEvents` announces the change.
    async fn processing(&self) -> PhotoProcessing {
        match self.0.processing {
            Processing::Pending => PhotoProcessing::Pending,
            Processing::Done => PhotoProcessing::Done,
            Processing::Failed => PhotoProcessing::Failed,
            Processing::Unsupported => PhotoProcessing::Unsupported,
        }
    }

    /// When the upload slot was opened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the photo will be removed; null until it is ready.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
}

impl Photo {
    async fn download(&self, ctx: &Context<'_>, key: &str, content_type: &str) -> Result<String> {
        let deps = ctx.deps()?;
        let ttl = deps.config.download_url_ttl;
        Ok(deps
            .store
            .presign_download(key, content_type, ttl)
            .await
            .map_err(ApiError::from)?)
    }

    async fn derivative(&self, ctx: &Context<'_>, object: PhotoObject) -> Result<Option<String>> {
        if self.0.processing != Processing::Done {
            return Ok(None);
        }
        let key = object_key(self.0.session_id, &self.0.sha256, object);
        Ok(Some(
            self.download(ctx, &key, DERIVATIVE_CONTENT_TYPE).await?,
        ))
    }
}

/// Where a photo stands with processing (thumbnail, preview, size, ThumbHash).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum PhotoProcessing {
    /// Not processed yet.
    Pending,
    /// Processed: size, `takenAt`, ThumbHash, thumbnail and preview are set.
    Done,
    /// The bytes are not a well-formed image of their declared type (or exceed the limits).
    Failed,
    /// A format this server does not decode (HEIC on a build without libheif).
    Unsupported,
}

/// A header to send with the upload.
#[derive(SimpleObject)]
pub struct HttpHeader {
    /// Header name.
    name: String,
    /// Exact value to send.
    value: String,
}

/// An upload slot: PUT the bytes to `uploadUrl` with `uploadHeaders`, then call
/// `completePhotoUpload`.
pub struct PhotoUpload(UploadSlot);

/// An upload slot: PUT the bytes to `uploadUrl` with `uploadHeaders`, then call
/// `completePhotoUpload`.
#[Object]
impl PhotoUpload {
    /// The photo (PENDING until completed; READY if these bytes were already in the session).
    async fn photo(&self) -> Photo {
        Photo(self.0.photo.clone())
    }

    /// Where to PUT the bytes; null when they are already in the session.
    async fn upload_url(&self) -> Option<&str> {
        self.0.upload.as_ref().map(|u| u.url.as_str())
    }

    /// Send exactly these headers with the PUT: storage refuses anything else.
    async fn upload_headers(&self) -> Vec<HttpHeader> {
        self.0
            .upload
            .iter()
            .flat_map(|u| &u.headers)
            .map(|(name, value)| HttpHeader {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }

    /// When `uploadUrl` stops working; ask again for a fresh one after that.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.upload.as_ref().map(|u| u.expires_at)
    }
}

/// A photo about to be uploaded.
#[derive(InputObject)]
pub struct RequestPhotoUploadInput {
    /// The session to add it to.
    session_id: ID,
    /// SHA-256 of the exact bytes, as 64 hex digits.
    sha256: String,
    /// Media type: image/jpeg, image/png, image/heic, image/heif or image/webp by default.
    content_type: String,
    /// Exact size in bytes (25 MiB at most by default).
    byte_size: i64,
}

#[derive(Default)]
pub struct PhotoQuery;

#[Object]
impl PhotoQuery {
    /// A photo in a session the viewer is in; null otherwise.
    async fn photo(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Photo id.")] id: ID,
    ) -> Result<Option<Photo>> {
        let id = ids::expect(Kind::Photo, &id, "id")?;
        let photo = service::find_photo(&ctx.deps()?.db, ctx.viewer(), id).await?;
        Ok(photo.map(Photo))
    }
}

#[derive(Default)]
pub struct PhotoMutation;

#[Object]
impl PhotoMutation {
    /// Opens an upload slot for a photo, or returns the photo if these bytes are already in
    /// the session.
    async fn request_photo_upload(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What is about to be uploaded.")] input: RequestPhotoUploadInput,
    ) -> Result<PhotoUpload> {
        ctx.rate_limit(Rule::PhotoUpload)?;
        let deps = ctx.deps()?;
        let request = UploadRequest {
            session_id: ids::expect(Kind::Session, &input.session_id, "sessionId")?,
            sha256: input.sha256,
            content_type: input.content_type,
            byte_size: input.byte_size,
        };
        let rules = &deps.config.upload_rules;
        let slot =
            service::request_upload(&deps.db, deps.store.as_ref(), rules, ctx.viewer(), request)
                .await?;
        Ok(PhotoUpload(slot))
    }

    /// Checks the uploaded bytes and makes the photo visible to every member. Harmless to
    /// repeat.
    async fn complete_photo_upload(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The photo from requestPhotoUpload.")] photo_id: ID,
    ) -> Result<Photo> {
        let deps = ctx.deps()?;
        let id = ids::expect(Kind::Photo, &photo_id, "photoId")?;
        let photo = service::complete_upload(
            &deps.db,
            &deps.jobs,
            deps.store.as_ref(),
            deps.config.upload_rules.upload_url_ttl,
            ctx.viewer(),
            id,
        )
        .await?;
        Ok(Photo(photo))
    }

    /// Deletes a photo (its uploader or the session's owner). Returns false if it was
    /// already gone.
    async fn delete_photo(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Photo id.")] photo_id: ID,
    ) -> Result<bool> {
        let deps = ctx.deps()?;
        let id = ids::expect(Kind::Photo, &photo_id, "photoId")?;
        Ok(service::delete_photo(
            &deps.db,
            deps.store.as_ref(),
            &deps.config.upload_rules,
            ctx.viewer(),
            id,
        )
        .await?)
    }
}
