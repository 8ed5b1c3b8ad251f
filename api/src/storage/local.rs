//! The local-disk object store of the embedded default: files under `$PHOTON_DATA_DIR/objects`,
//! uploaded and downloaded through the server itself with signed, expiring URLs. A signature
//! (HMAC-SHA256) covers the method, the key, the expiry and, for uploads, the declared length,
//! type and SHA-256, so a URL cannot be reused for other bytes or another object. Uploads are
//! streamed to a temporary file while their length and digest are checked, and moved into
//! place only when both match: a reader never sees a partial or wrong object.
//!
//! A signed URL alone is not enough to write: the PUT is accepted only while the photo's row
//! is still a pending slot (so deleting a slot revokes its URL at once), one PUT per key at a
//! time, and within a time limit.

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use chrono::Utc;
use entity::photo::{self, PhotoStatus};
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use crate::signing::Signer;

use super::{
    ObjectBody, ObjectStore, PresignedUpload, StorageError, StorageResult, StoredObject,
    UploadSpec, expires_at, hex, parse_photo_key,
};

/// Signs and serves objects kept on the local disk.
pub struct LocalStore {
    root: PathBuf,
    /// `$PHOTON_PUBLIC_URL/storage/`, the base of every object URL.
    base: Url,
    signer: Signer,
    /// Where the photo rows are: a PUT is accepted only for a pending slot.
    db: DatabaseConnection,
    /// Longest one PUT may take.
    upload_timeout: Duration,
    /// Keys with a PUT in progress: a second one at the same time is refused.
    uploading: Mutex<HashSet<String>>,
}

impl LocalStore {
    /// `secret` is the server's JWT secret; the signing key is derived from it under its own
    /// label, so the two uses can never be confused.
    ///
    /// Removes temporary files that uploads cut short by a crash left behind. Only those
    /// older than the upload time limit: no upload still running (another process's, on a
    /// shared data directory) can own one.
    pub fn new(
        root: PathBuf,
        public_url: &Url,
        secret: &SecretString,
        db: DatabaseConnection,
        upload_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let signer = Signer::new(secret, "photon local object store v1")?;
        let base = public_url.join("storage/")?;
        let removed = remove_stale_temp_files(&root.join(TMP_DIR), upload_timeout)?;
        if removed > 0 {
            tracing::info!(removed, "removed temporary files of unfinished uploads");
        }
        Ok(Self {
            root,
            base,
            signer,
            db,
            upload_timeout,
            uploading: Mutex::new(HashSet::new()),
        })
    }

    /// Claims `key` for one PUT; `None` if another is in progress.
    fn claim(self: &Arc<Self>, key: &str) -> Option<Claim> {
        let mut uploading = self.uploading.lock().ok()?;
        uploading
            .insert(key.to_owned())
            .then(|| Claim(self.clone(), key.to_owned()))
    }

    /// Whether the photo behind `key` is a slot still waiting for its bytes.
    async fn is_pending_slot(&self, key: &str) -> Result<bool, sea_orm::DbErr> {
        let Some((session_id, sha256)) = parse_photo_key(key) else {
            return Ok(false);
        };
        let pending = photo::Entity::find()
            .filter(photo::Column::SessionId.eq(session_id))
            .filter(photo::Column::Sha256.eq(sha256))
            .filter(photo::Column::Status.eq(PhotoStatus::Pending))
            .count(&self.db)
            .await?;
        Ok(pending > 0)
    }

    /// The router for `/storage/{key}`: PUT to upload, GET to download.
    pub fn routes<S: Clone + Send + Sync + 'static>(self: Arc<Self>) -> Router<S> {
        Router::new()
            .route("/storage/{*key}", put(upload).get(download))
            .with_state(self)
    }

    /// The file for a key, or `None` for a key that is not ours to serve (anything but plain
    /// segments of letters, digits, `-` and `_` separated by `/`).
    fn path_for(&self, key: &str) -> Option<PathBuf> {
        let plain = |segment: &str| {
            !segment.is_empty()
                && segment.len() <= 128
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (key.len() <= 512 && key.split('/').all(plain)).then(|| self.root.join(key))
    }

    fn sign(&self, fields: &[&str]) -> String {
        self.signer.sign(fields)
    }

    /// Constant-time check of a signature from a URL.
    fn verify(&self, fields: &[&str], signature: &str) -> bool {
        self.signer.verify(fields, signature)
    }

    fn url(&self, key: &str, query: &[(&str, &str)]) -> StorageResult<String> {
        let mut url = self.base.join(key).map_err(StorageError::failed)?;
        url.query_pairs_mut().extend_pairs(query);
        Ok(url.into())
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalStore {
    async fn presign_upload(
        &self,
        key: &str,
        spec: &UploadSpec,
        ttl: Duration,
    ) -> StorageResult<PresignedUpload> {
        let expires_at = expires_at(ttl)?;
        let exp = expires_at.timestamp().to_string();
        let len = spec.byte_size.to_string();
        let sig = self.sign(&["PUT", key, &exp, &len, &spec.content_type, &spec.sha256]);
        let url = self.url(
            key,
            &[
                ("exp", &exp),
                ("len", &len),
                ("type", &spec.content_type),
                ("sha256", &spec.sha256),
                ("sig", &sig),
            ],
        )?;
        Ok(PresignedUpload {
            url,
            headers: vec![("Content-Type".to_owned(), spec.content_type.clone())],
            expires_at,
        })
    }

    async fn presign_download(
        &self,
        key: &str,
        content_type: &str,
        ttl: Duration,
    ) -> StorageResult<String> {
        let exp = expires_at(ttl)?.timestamp().to_string();
        let sig = self.sign(&["GET", key, &exp, content_type]);
        self.url(key, &[("exp", &exp), ("type", content_type), ("sig", &sig)])
    }

    async fn head(&self, key: &str) -> StorageResult<Option<StoredObject>> {
        let Some(path) = self.path_for(key) else {
            return Ok(None);
        };
        // Hashing a whole photo is CPU and blocking reads: off the async threads.
        tokio::task::spawn_blocking(move || stored_object(&path))
            .await
            .map_err(StorageError::failed)?
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        let Some(path) = self.path_for(key) else {
            return Ok(());
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            // An old photo's key is the folder of a new one's objects: no object there.
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
                ) => {}
            Err(err) => return Err(err.into()),
        }
        // A photo's folder goes with its last object; one still in use stays.
        if let Some(folder) = path
            .parent()
            .filter(|dir| dir.starts_with(self.root.join("sessions")))
        {
            let _ = tokio::fs::remove_dir(folder).await;
        }
        Ok(())
    }

    async fn read(&self, key: &str, max_bytes: u64) -> StorageResult<Option<Vec<u8>>> {
        let Some(path) = self.path_for(key) else {
            return Ok(None);
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let size = file.metadata().await?.len();
        if size > max_bytes {
            return Err(StorageError::failed(anyhow::anyhow!(
                "object {key} holds {size} bytes, past the {max_bytes} expected"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(max_bytes).read_to_end(&mut bytes).await?;
        Ok(Some(bytes))
    }

    async fn size(&self, key: &str) -> StorageResult<Option<u64>> {
        let Some(path) = self.path_for(key) else {
            return Ok(None);
        };
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn open(&self, key: &str) -> StorageResult<Option<ObjectBody>> {
        let Some(path) = self.path_for(key) else {
            return Ok(None);
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let meta = file.metadata().await?;
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some(ObjectBody {
            byte_size: meta.len(),
            chunks: Box::pin(tokio_util::io::ReaderStream::with_capacity(
                file,
                READ_CHUNK_BYTES,
            )),
        }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &str) -> StorageResult<()> {
        let path = self.path_for(key).ok_or_else(|| {
            StorageError::failed(anyhow::anyhow!("{key} is not a key the store keeps"))
        })?;
        let tmp_dir = self.root.join(TMP_DIR);
        tokio::fs::create_dir_all(&tmp_dir).await?;
        let tmp_path = tmp_dir.join(uuid::Uuid::new_v4().to_string());
        let mut guard = TempFile(Some(tmp_path.clone()));
        tokio::fs::write(&tmp_path, &bytes).await?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // A rename, so a reader sees the old object or the new one, never half of one.
        tokio::fs::rename(&tmp_path, &path).await?;
        guard.0 = None;
        Ok(())
    }
}

fn stored_object(path: &FsPath) -> StorageResult<Option<StoredObject>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let mut hasher = Sha256::new();
    let byte_size = std::io::copy(&mut file, &mut hasher)?;
    Ok(Some(StoredObject {
        byte_size,
        sha256: hex(&hasher.finalize()),
    }))
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    exp: i64,
    len: u64,
    #[serde(rename = "type")]
    content_type: String,
    sha256: String,
    sig: String,
}

#[derive(Debug, Deserialize)]
struct DownloadQuery {
    exp: i64,
    #[serde(rename = "type")]
    content_type: String,
    sig: String,
}

/// S3-style refusals: a status and a short machine-readable reason.
fn refuse(status: StatusCode, code: &'static str) -> Response {
    (status, [(CONTENT_TYPE, "text/plain")], code).into_response()
}

/// How much of a file one read of a streamed object takes.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Where uploads are streamed before they are moved into place, under the root.
const TMP_DIR: &str = ".tmp";

/// Deletes files in `dir` last modified longer than `age` ago; returns how many.
fn remove_stale_temp_files(dir: &FsPath, age: Duration) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let cutoff = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.modified()? < cutoff {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(removed)
}

/// A key's PUT in progress; dropping it lets the next one in.
struct Claim(Arc<LocalStore>, String);

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut uploading) = self.0.uploading.lock() {
            uploading.remove(&self.1);
        }
    }
}

/// Removes an unfinished upload's temporary file unless it was moved into place.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            tokio::task::spawn_blocking(move || std::fs::remove_file(path));
        }
    }
}

/// `PUT /storage/{key}?exp&len&type&sha256&sig`: stores the body if it is exactly what the
/// signature allows.
async fn upload(
    State(store): State<Arc<LocalStore>>,
    Path(key): Path<String>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Query(q)) = query else {
        return refuse(StatusCode::FORBIDDEN, "AccessDenied");
    };
    let Some(path) = store.path_for(&key) else {
        return refuse(StatusCode::NOT_FOUND, "NoSuchKey");
    };
    let (exp, len) = (q.exp.to_string(), q.len.to_string());
    if !store.verify(
        &["PUT", &key, &exp, &len, &q.content_type, &q.sha256],
        &q.sig,
    ) {
        return refuse(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    }
    if q.exp < Utc::now().timestamp() {
        return refuse(StatusCode::FORBIDDEN, "ExpiredRequest");
    }
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    if header(CONTENT_TYPE) != Some(q.content_type.as_str()) {
        return refuse(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    }
    if header(CONTENT_LENGTH).is_some_and(|declared| declared != len) {
        return refuse(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    }
    // A deleted (or completed) slot's URL is dead even before it expires.
    match store.is_pending_slot(&key).await {
        Ok(true) => {}
        Ok(false) => return refuse(StatusCode::NOT_FOUND, "NoSuchUpload"),
        Err(err) => {
            tracing::error!(error = %err, "local upload could not check its slot");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
        }
    }
    let Some(_claim) = store.claim(&key) else {
        return refuse(StatusCode::CONFLICT, "OperationAborted");
    };
    let received = tokio::time::timeout(
        store.upload_timeout,
        receive(&store.root, &path, body, q.len, &q.sha256),
    )
    .await;
    match received {
        Ok(Ok(None)) => StatusCode::OK.into_response(),
        Ok(Ok(Some(refusal))) => refusal,
        Ok(Err(err)) => {
            tracing::error!(error = %err, "local upload failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        }
        Err(_) => {
            tracing::warn!(
                timeout_secs = store.upload_timeout.as_secs(),
                "local upload timed out"
            );
            refuse(StatusCode::REQUEST_TIMEOUT, "RequestTimeout")
        }
    }
}

/// Streams `body` into a temporary file, checking length and digest as it goes; moves it to
/// `path` when both match. Returns the refusal to send when they do not.
async fn receive(
    root: &FsPath,
    path: &FsPath,
    body: Body,
    expected_len: u64,
    expected_sha256: &str,
) -> StorageResult<Option<Response>> {
    let tmp_dir = root.join(TMP_DIR);
    tokio::fs::create_dir_all(&tmp_dir).await?;
    let tmp_path = tmp_dir.join(uuid::Uuid::new_v4().to_string());
    let mut guard = TempFile(Some(tmp_path.clone()));
    let mut file = tokio::fs::File::create(&tmp_path).await?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Ok(Some(refuse(StatusCode::BAD_REQUEST, "IncompleteBody")));
        };
        received += chunk.len() as u64;
        if received > expected_len {
            return Ok(Some(refuse(StatusCode::BAD_REQUEST, "BodyTooLong")));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    if received != expected_len {
        return Ok(Some(refuse(StatusCode::BAD_REQUEST, "IncompleteBody")));
    }
    if hex(&hasher.finalize()) != expected_sha256 {
        return Ok(Some(refuse(StatusCode::BAD_REQUEST, "BadDigest")));
    }
    file.sync_all().await?;
    drop(file);
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    tokio::fs::rename(&tmp_path, path).await?;
    guard.0 = None;
    Ok(None)
}

/// What a downloaded photo may do when a browser opens it on its own: nothing.
const DOWNLOAD_CSP: &str = "default-src 'none'; sandbox";

/// `GET /storage/{key}?exp&type&sig`: streams the object.
async fn download(
    State(store): State<Arc<LocalStore>>,
    Path(key): Path<String>,
    query: Result<Query<DownloadQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return refuse(StatusCode::FORBIDDEN, "AccessDenied");
    };
    let Some(path) = store.path_for(&key) else {
        return refuse(StatusCode::NOT_FOUND, "NoSuchKey");
    };
    if !store.verify(&["GET", &key, &q.exp.to_string(), &q.content_type], &q.sig) {
        return refuse(StatusCode::FORBIDDEN, "SignatureDoesNotMatch");
    }
    if q.exp < Utc::now().timestamp() {
        return refuse(StatusCode::FORBIDDEN, "ExpiredRequest");
    }
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return refuse(StatusCode::NOT_FOUND, "NoSuchKey");
        }
        Err(err) => {
            tracing::error!(error = %err, "local download failed");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "InternalError");
        }
    };
    let length = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(_) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (
        [
            (CONTENT_TYPE, q.content_type),
            (CONTENT_LENGTH, length.to_string()),
            (CACHE_CONTROL, "private, max-age=300".to_owned()),
            // The bytes are whatever a member uploaded under an image type: a browser must not
            // sniff them into HTML, nor run anything in them if it renders them.
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (CONTENT_SECURITY_POLICY, DOWNLOAD_CSP.to_owned()),
        ],
        body,
    )
        .into_response()
}
