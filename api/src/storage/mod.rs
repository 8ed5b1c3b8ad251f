//! Object storage for photo bytes, behind one trait with two backends: S3-compatible stores in
//! production and the local disk for the embedded default. Photos never pass through the API:
//! clients upload and download with short-lived presigned URLs that only accept the bytes the
//! server agreed to.

pub mod local;
pub mod orphans;
pub mod s3;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use crate::digest::hex;
use uuid::Uuid;

/// What an upload must be: the store refuses any other bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSpec {
    pub content_type: String,
    pub byte_size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

/// A presigned upload: PUT the bytes to `url` with exactly these headers before `expires_at`.
#[derive(Debug, Clone)]
pub struct PresignedUpload {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub expires_at: DateTime<Utc>,
}

/// What the store holds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub byte_size: u64,
    /// Lower-case hex SHA-256 of the stored bytes (hashed by us when the store cannot say).
    pub sha256: String,
}

/// Why a storage call failed. Never a client's fault: the service layer reports an
/// unreachable store (refused, reset, timed out, or answering 5xx or "slow down") as
/// `SERVICE_UNAVAILABLE`, which the client may retry, and anything else as an internal error;
/// the sweeper and the workers retry both.
#[derive(Debug)]
pub enum StorageError {
    /// The store could not be reached or is overloaded; the same call may work in a moment.
    Unreachable(anyhow::Error),
    /// The store answered, and refused (credentials, a missing bucket), or we are at fault.
    Failed(anyhow::Error),
}

impl StorageError {
    pub fn failed(err: impl Into<anyhow::Error>) -> Self {
        Self::Failed(err.into())
    }

    pub fn unreachable(err: impl Into<anyhow::Error>) -> Self {
        Self::Unreachable(err.into())
    }

    /// What went wrong, for logs.
    pub fn cause(&self) -> &anyhow::Error {
        match self {
            Self::Unreachable(cause) | Self::Failed(cause) => cause,
        }
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.cause())
    }
}

impl From<std::io::Error> for StorageError {
    fn from(err: std::io::Error) -> Self {
        Self::failed(err)
    }
}

impl From<StorageError> for crate::error::ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::Unreachable(cause) => {
                crate::error::ApiError::unavailable(cause.context("object storage"))
            }
            StorageError::Failed(cause) => {
                crate::error::ApiError::internal(cause.context("object storage"))
            }
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// A URL that accepts exactly the bytes of `spec` under `key` until `ttl` has passed.
    async fn presign_upload(
        &self,
        key: &str,
        spec: &UploadSpec,
        ttl: Duration,
    ) -> StorageResult<PresignedUpload>;

    /// A URL that serves the object under `key`, as `content_type`, until `ttl` has passed.
    async fn presign_download(
        &self,
        key: &str,
        content_type: &str,
        ttl: Duration,
    ) -> StorageResult<String>;

    /// What is stored under `key`, if anything.
    async fn head(&self, key: &str) -> StorageResult<Option<StoredObject>>;

    /// Removes the object under `key`; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> StorageResult<()>;

    /// The object under `key`, read as it streams in, or `None` if there is none. An object
    /// larger than `max_bytes` is an error: what the server reads is bounded by what it agreed
    /// to store.
    async fn read(&self, key: &str, max_bytes: u64) -> StorageResult<Option<Vec<u8>>>;

    /// Stores `bytes` under `key` as `content_type`, replacing what was there.
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> StorageResult<()>;

    /// The size of the object under `key`, if there is one, without reading it.
    async fn size(&self, key: &str) -> StorageResult<Option<u64>>;

    /// The object under `key` as a stream of chunks, or `None` if there is none: for serving
    /// objects of any size without holding one whole in memory.
    async fn open(&self, key: &str) -> StorageResult<Option<ObjectBody>>;
}

/// An object being read: its size, and its bytes as they arrive.
pub struct ObjectBody {
    pub byte_size: u64,
    pub chunks: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
}

/// The objects of one photo, kept together in its folder `sessions/{session_id}/{sha256}/`:
/// the same bytes in the same session are the same photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoObject {
    /// What the uploader sent, served only to them.
    Original,
    /// The full-size copy without location and other metadata, for everyone else.
    Shared,
    /// At most 1600 px on the longest side.
    Preview,
    /// At most 384 px on the longest side.
    Thumbnail,
}

impl PhotoObject {
    pub const ALL: [Self; 4] = [Self::Original, Self::Shared, Self::Preview, Self::Thumbnail];

    fn name(self) -> &'static str {
        match self {
            Self::Original => "original",
            Self::Shared => "shared",
            Self::Preview => "preview",
            Self::Thumbnail => "thumbnail",
        }
    }
}

/// Where one of a photo's objects lives.
pub fn object_key(session_id: Uuid, sha256: &str, object: PhotoObject) -> String {
    format!("sessions/{session_id}/{sha256}/{}", object.name())
}

/// Where a photo's original lives; uploads go there.
pub fn photo_key(session_id: Uuid, sha256: &str) -> String {
    object_key(session_id, sha256, PhotoObject::Original)
}

/// Where a photo uploaded before the per-photo folders keeps its only object.
pub fn legacy_photo_key(session_id: Uuid, sha256: &str) -> String {
    format!("sessions/{session_id}/{sha256}")
}

/// Every key the photo of (`session_id`, `sha256`) may have written, for removing them all:
/// its folder's objects, or the one object of an old (`legacy`) photo. Only one or the other:
/// on a store backed by a filesystem the old key is the new folder, not an object.
pub fn all_photo_keys(session_id: Uuid, sha256: &str, legacy: bool) -> Vec<String> {
    if legacy {
        return vec![legacy_photo_key(session_id, sha256)];
    }
    PhotoObject::ALL
        .iter()
        .map(|&object| object_key(session_id, sha256, object))
        .collect()
}

/// The session and digest of an original's key (the only key clients upload to), or `None`
/// for any other key.
pub fn parse_photo_key(key: &str) -> Option<(Uuid, String)> {
    let mut parts = key.split('/');
    let (Some("sessions"), Some(session), Some(sha256), Some("original"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((Uuid::parse_str(session).ok()?, sha256.to_owned()))
}

/// When a URL that lives `ttl` from now expires.
pub fn expires_at(ttl: Duration) -> StorageResult<DateTime<Utc>> {
    let ttl = chrono::Duration::from_std(ttl).map_err(StorageError::failed)?;
    Ok(Utc::now() + ttl)
}
