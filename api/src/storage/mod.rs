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

/// Why a storage call failed. Not a client's fault in any case: the service layer reports
/// these as internal errors (and the sweeper retries them).
#[derive(Debug)]
pub struct StorageError(pub anyhow::Error);

impl From<std::io::Error> for StorageError {
    fn from(err: std::io::Error) -> Self {
        Self(err.into())
    }
}

impl From<StorageError> for crate::error::ApiError {
    fn from(err: StorageError) -> Self {
        crate::error::ApiError::internal(err.0.context("object storage"))
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
}

/// Where a session's photo lives: the same bytes in the same session are the same object.
pub fn photo_key(session_id: Uuid, sha256: &str) -> String {
    format!("sessions/{session_id}/{sha256}")
}

/// The session and digest a photo key was made from, or `None` for any other key.
pub fn parse_photo_key(key: &str) -> Option<(Uuid, String)> {
    let mut parts = key.split('/');
    let (Some("sessions"), Some(session), Some(sha256), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some((Uuid::parse_str(session).ok()?, sha256.to_owned()))
}

/// When a URL that lives `ttl` from now expires.
pub fn expires_at(ttl: Duration) -> StorageResult<DateTime<Utc>> {
    let ttl = chrono::Duration::from_std(ttl).map_err(|e| StorageError(e.into()))?;
    Ok(Utc::now() + ttl)
}
