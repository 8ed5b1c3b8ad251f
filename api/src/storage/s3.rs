//! S3-compatible object storage (AWS S3, MinIO, Garage, Cloudflare R2…) through `aws-sdk-s3`.
//!
//! Upload URLs are presigned PUTs whose signature covers `Content-Type`, `Content-Length` and
//! `x-amz-checksum-sha256`: the store itself refuses a body of another type, length or digest,
//! so nothing the server did not agree to can land under a photo's key.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    timeout::TimeoutConfig,
};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStreamError;
use aws_sdk_s3::types::ChecksumMode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::{
    ObjectBody, ObjectStore, PresignedUpload, StorageError, StorageResult, StoredObject,
    UploadSpec, expires_at, hex,
};

/// Where the bucket is and how to reach it.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// `None` for AWS itself; the base URL of any other S3-compatible store.
    pub endpoint: Option<String>,
    /// The endpoint phones reach, when it differs from the server's (a store on an internal
    /// network behind a public name). Presigned URLs are signed for this host.
    pub public_endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key` (MinIO and most
    /// self-hosted stores need it).
    pub force_path_style: bool,
    pub timeouts: S3Timeouts,
}

/// How long the server waits for the object store, so a store that hangs fails the request
/// (or the sweep) instead of holding it, and its database connection, indefinitely.
#[derive(Debug, Clone, clap::Args)]
pub struct S3Timeouts {
    /// Milliseconds one S3 call may take in all, retries included.
    #[arg(long, env = "S3_OPERATION_TIMEOUT_MS", default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub s3_operation_timeout_ms: u64,

    /// Milliseconds one attempt of an S3 call may take before it is retried.
    #[arg(long, env = "S3_ATTEMPT_TIMEOUT_MS", default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub s3_attempt_timeout_ms: u64,
}

/// Longest wait for a TCP (and TLS) connection to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct S3Store {
    /// For the server's own calls (HEAD, GET, DELETE).
    client: Client,
    /// For presigning: the signature covers the host, so it must be the one phones use.
    presigner: Client,
    bucket: String,
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Self {
        let public = settings
            .public_endpoint
            .as_ref()
            .or(settings.endpoint.as_ref());
        Self {
            client: Self::client(settings, settings.endpoint.as_deref()),
            presigner: Self::client(settings, public.map(String::as_str)),
            bucket: settings.bucket.clone(),
        }
    }

    fn client(settings: &S3Settings, endpoint: Option<&str>) -> Client {
        let credentials = Credentials::new(
            settings.access_key_id.clone(),
            settings.secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "photon-settings",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(settings.force_path_style)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_timeout(Duration::from_millis(
                        settings.timeouts.s3_operation_timeout_ms,
                    ))
                    .operation_attempt_timeout(Duration::from_millis(
                        settings.timeouts.s3_attempt_timeout_ms,
                    ))
                    .build(),
            )
            // We name the one checksum that matters (SHA-256, declared by the client); the
            // SDK's own CRC32 would otherwise be added to presigned requests and bind them to
            // a body the SDK never saw.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        Client::from_conf(config.build())
    }
}

impl S3Store {
    /// Reads the object back and hashes it, chunk by chunk.
    async fn digest(&self, key: &str) -> StorageResult<String> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(failed)?;
        let mut body = object.body;
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.try_next().await.map_err(cut_off)? {
            hasher.update(&chunk);
        }
        Ok(hex(&hasher.finalize()))
    }
}

fn presigning(ttl: Duration) -> StorageResult<PresigningConfig> {
    PresigningConfig::expires_in(ttl).map_err(StorageError::failed)
}

/// A failed call: the store unreachable (no connection, a timeout, a reply cut off, or a 5xx
/// or 429 "slow down") or a refusal the same call would meet again.
fn failed<E>(err: SdkError<E, HttpResponse>) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let unreachable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status >= 500 || status == 429
        }
        _ => false,
    };
    let err = anyhow::Error::new(err);
    if unreachable {
        StorageError::unreachable(err)
    } else {
        StorageError::failed(err)
    }
}

/// A body that stopped arriving: the connection to the store broke.
fn cut_off(err: ByteStreamError) -> StorageError {
    StorageError::unreachable(err)
}

/// Hex digest → the base64 form S3 uses in `x-amz-checksum-sha256`.
fn hex_to_base64(hex_digest: &str) -> StorageResult<String> {
    let bytes = (0..hex_digest.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex_digest.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(StorageError::failed)?;
    Ok(STANDARD.encode(bytes))
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn presign_upload(
        &self,
        key: &str,
        spec: &UploadSpec,
        ttl: Duration,
    ) -> StorageResult<PresignedUpload> {
        let checksum = hex_to_base64(&spec.sha256)?;
        let length = i64::try_from(spec.byte_size).map_err(StorageError::failed)?;
        let presigned = self
            .presigner
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&spec.content_type)
            .content_length(length)
            .checksum_sha256(&checksum)
            .presigned(presigning(ttl)?)
            .await
            .map_err(failed)?;
        // Content-Length is signed, but HTTP clients set it from the body themselves (fetch
        // forbids setting it by hand), and a body of the declared size makes it right.
        let headers = presigned
            .headers()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let expires_at = expires_at(ttl)?;
        Ok(PresignedUpload {
            url: presigned.uri().to_owned(),
            headers,
            expires_at,
        })
    }

    async fn presign_download(
        &self,
        key: &str,
        content_type: &str,
        ttl: Duration,
    ) -> StorageResult<String> {
        let presigned = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(content_type)
            .presigned(presigning(ttl)?)
            .await
            .map_err(failed)?;
        Ok(presigned.uri().to_owned())
    }

    /// Size and SHA-256 of the object. The digest comes from HEAD with checksum mode when
    /// the store keeps it; a store that does not (or one that kept bytes it had refused, as
    /// some S3 look-alikes do after a `BadDigest`) gets its object read back and hashed, so
    /// completion never takes unverified bytes.
    async fn head(&self, key: &str) -> StorageResult<Option<StoredObject>> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let object = match result {
            Ok(object) => object,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => {
                return Ok(None);
            }
            Err(err) => return Err(failed(err)),
        };
        let byte_size = object.content_length().unwrap_or(0).max(0) as u64;
        let kept = object
            .checksum_sha256()
            .and_then(|b64| STANDARD.decode(b64).ok())
            .map(|bytes| hex(&bytes));
        let sha256 = match kept {
            Some(sha256) => sha256,
            None => self.digest(key).await?,
        };
        Ok(Some(StoredObject { byte_size, sha256 }))
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn read(&self, key: &str, max_bytes: u64) -> StorageResult<Option<Vec<u8>>> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let object = match result {
            Ok(object) => object,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(err) => return Err(failed(err)),
        };
        let declared = object.content_length().unwrap_or(0).max(0) as u64;
        if declared > max_bytes {
            return Err(too_large(key, declared, max_bytes));
        }
        let mut bytes = Vec::with_capacity(declared as usize);
        let mut body = object.body;
        while let Some(chunk) = body.try_next().await.map_err(cut_off)? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large(
                    key,
                    (bytes.len() + chunk.len()) as u64,
                    max_bytes,
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    async fn size(&self, key: &str) -> StorageResult<Option<u64>> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match result {
            Ok(object) => Ok(Some(object.content_length().unwrap_or(0).max(0) as u64)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(failed(err)),
        }
    }

    async fn open(&self, key: &str) -> StorageResult<Option<ObjectBody>> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let object = match result {
            Ok(object) => object,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(err) => return Err(failed(err)),
        };
        let byte_size = object.content_length().unwrap_or(0).max(0) as u64;
        let chunks = futures_util::stream::unfold(object.body, |mut body| async move {
            let next = body.try_next().await.map_err(std::io::Error::other);
            next.transpose().map(|chunk| (chunk, body))
        });
        Ok(Some(ObjectBody {
            byte_size,
            chunks: Box::pin(chunks),
        }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> StorageResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(bytes.len() as i64)
            .body(bytes.into())
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }
}

fn too_large(key: &str, size: u64, max_bytes: u64) -> StorageError {
    StorageError::failed(anyhow::anyhow!(
        "object {key} holds {size} bytes or more, past the {max_bytes} expected"
    ))
}

/// Settings: the S3 bucket photos are kept in (unset: the local disk).
#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// S3 bucket for photos. Unset: photos are kept on the local disk under the data directory.
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3 endpoint for stores other than AWS (MinIO, Garage, R2…), e.g. `http://minio:9000`.
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 endpoint as phones reach it, when it differs from S3_ENDPOINT (e.g. a store on an
    /// internal network published under another name). Presigned URLs use it.
    #[arg(long, env = "S3_PUBLIC_ENDPOINT")]
    pub s3_public_endpoint: Option<String>,

    /// S3 region (any value the store accepts; AWS needs the bucket's).
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// S3 access key id (required with S3_BUCKET).
    #[arg(long, env = "S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key (required with S3_BUCKET).
    #[arg(long, env = "S3_SECRET_ACCESS_KEY", value_parser = crate::config::parse_secret, hide_env_values = true)]
    pub s3_secret_access_key: Option<secrecy::SecretString>,

    /// Address the bucket as `endpoint/bucket` instead of `bucket.endpoint` (MinIO and most
    /// self-hosted stores need this).
    #[arg(long, env = "S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,

    #[command(flatten)]
    pub s3_timeouts: S3Timeouts,
}
