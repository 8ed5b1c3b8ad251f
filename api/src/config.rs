//! Settings: every knob is a `--flag` and an environment variable with a documented default
//! (`photon --help` lists them). [`Settings`] is what the operator wrote; [`Config`] is what
//! the server runs with, once defaults that depend on other settings have been resolved.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::auth::oauth::{ClientCredentials, OAuthSettings, ProviderUrls};
use crate::auth::refresh::RefreshSettings;
use crate::db::DatabaseTimeouts;
use crate::graphql::cost::{CostLimits, CostSettings};
use crate::jobs::sweeper::SweepSettings;
use crate::limits::RateLimitSettings;
use crate::metrics::MetricsSettings;
use crate::push::PushSettings;
use crate::push::fcm::{FcmSettings, ServiceAccount};
use crate::server::ConnectionSettings;
use crate::service::photos::{UploadLimits, UploadRules};
use crate::storage::s3::{S3Settings, S3Timeouts};

/// The settings an operator can give, as flags or environment variables.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "PHOTON_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Base of every URL the server hands out (invite links, storage URLs, OAuth callbacks).
    /// Defaults to `http://` + the bind address.
    #[arg(long, env = "PHOTON_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// Home of the embedded default: SQLite file, local objects, generated secrets.
    #[arg(long, env = "PHOTON_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database to use: `postgres://…` in production. Defaults to
    /// `sqlite://$PHOTON_DATA_DIR/photon.db?mode=rwc`.
    #[arg(long, env = "DATABASE_URL", value_parser = parse_secret, hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Most connections to keep open to the database (Postgres; SQLite uses one writer).
    #[arg(long, env = "PHOTON_DATABASE_MAX_CONNECTIONS", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,

    /// HS256 secret that signs access tokens, at least 32 bytes. Generated and kept in the data
    /// directory on the embedded default; required otherwise.
    #[arg(long, env = "PHOTON_JWT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "PHOTON_ACCESS_TOKEN_TTL_SECS", default_value_t = 15 * 60,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a refresh token, in days; every use rotates it and starts the clock again.
    #[arg(long, env = "PHOTON_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=365))]
    pub refresh_token_ttl_days: u32,

    #[command(flatten)]
    pub refresh: RefreshSettings,

    /// Enables `devSignIn` (anyone can sign in as any e-mail). Defaults to on only for the
    /// embedded default (no DATABASE_URL) with both the bind address and PHOTON_PUBLIC_URL on
    /// loopback and no OAuth provider configured; off otherwise.
    #[arg(long, env = "PHOTON_DEV_SIGN_IN")]
    pub dev_sign_in: Option<bool>,

    /// Comma-separated allow-list of app URIs that sign-in may hand a login code to.
    #[arg(
        long,
        env = "PHOTON_APP_REDIRECT_URIS",
        value_delimiter = ',',
        default_value = "photon://auth"
    )]
    pub app_redirect_uris: Vec<String>,

    /// Deep link that `/join/{code}` sends browsers to, with `?code=…` appended.
    #[arg(long, env = "PHOTON_APP_JOIN_URL", default_value = "photon://join")]
    pub app_join_url: Url,

    /// Client id of the GitHub OAuth app; with GITHUB_CLIENT_SECRET it enables sign-in
    /// with GitHub.
    #[arg(long, env = "GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,

    /// Client secret of the GitHub OAuth app.
    #[arg(long, env = "GITHUB_CLIENT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub github_client_secret: Option<SecretString>,

    /// GitHub's web base (`/login/oauth/authorize` and `/login/oauth/access_token`).
    #[arg(long, env = "GITHUB_BASE_URL", default_value = "https://github.com")]
    pub github_base_url: Url,

    /// GitHub's API base (`/user`, `/user/emails`).
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub github_api_url: Url,

    /// Client id of the Discord application; with DISCORD_CLIENT_SECRET it enables sign-in
    /// with Discord.
    #[arg(long, env = "DISCORD_CLIENT_ID")]
    pub discord_client_id: Option<String>,

    /// Client secret of the Discord application.
    #[arg(long, env = "DISCORD_CLIENT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub discord_client_secret: Option<SecretString>,

    /// Discord's base (`/oauth2/authorize`, `/api/oauth2/token`, `/api/users/@me`).
    #[arg(long, env = "DISCORD_BASE_URL", default_value = "https://discord.com")]
    pub discord_base_url: Url,

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
    #[arg(long, env = "S3_SECRET_ACCESS_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub s3_secret_access_key: Option<SecretString>,

    /// Address the bucket as `endpoint/bucket` instead of `bucket.endpoint` (MinIO and most
    /// self-hosted stores need this).
    #[arg(long, env = "S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,

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

    /// Seconds between sweeps for expired photos, abandoned uploads and old events; 0 turns
    /// the sweeper off in this replica.
    #[arg(long, env = "PHOTON_SWEEP_INTERVAL_SECS", default_value_t = 15 * 60,
        value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub sweep_interval_secs: u64,

    /// Hours that session events are kept for clients resuming from a cursor.
    #[arg(long, env = "PHOTON_EVENT_RETENTION_HOURS", default_value_t = 24,
        value_parser = clap::value_parser!(u32).range(1..=8_760))]
    pub event_retention_hours: u32,

    /// Path of the Firebase service-account key (JSON) that push notifications are sent
    /// with; checked at start-up. Unset: pushes are logged instead of sent.
    #[arg(long, env = "FCM_CREDENTIALS")]
    pub fcm_credentials: Option<PathBuf>,

    /// Base URL of the FCM HTTP v1 API (`/v1/projects/{project}/messages:send` is appended).
    #[arg(long, env = "FCM_ENDPOINT", default_value = crate::push::fcm::DEFAULT_ENDPOINT)]
    pub fcm_endpoint: Url,

    /// Milliseconds a session's new photos wait for more before one push announces them all.
    #[arg(long, env = "PHOTON_PUSH_COALESCE_MS", default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub push_coalesce_ms: u64,

    /// Milliseconds between the push dispatcher's looks for pushes to send; 0 turns the
    /// dispatcher off in this replica.
    #[arg(long, env = "PHOTON_PUSH_POLL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub push_poll_ms: u64,

    /// Deepest query accepted (introspection included).
    #[arg(long, env = "PHOTON_MAX_QUERY_DEPTH", default_value_t = 16,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub max_query_depth: usize,

    /// Highest query complexity accepted: each field counts one, list fields count their page
    /// size times their selection.
    #[arg(long, env = "PHOTON_MAX_QUERY_COMPLEXITY", default_value_t = 5000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_query_complexity: usize,

    /// Log format: `text` for people, `json` for log collectors. The filter is `RUST_LOG`.
    #[arg(long, env = "PHOTON_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Seconds to let in-flight requests finish after a shutdown signal.
    #[arg(long, env = "PHOTON_SHUTDOWN_GRACE_SECS", default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub shutdown_grace_secs: u64,

    /// Seconds between keep-alive messages on a WebSocket; a socket silent for three of
    /// these is closed.
    #[arg(long, env = "PHOTON_WS_KEEPALIVE_SECS", default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=300))]
    pub ws_keepalive_secs: u64,

    /// Most subscriptions one WebSocket may run at once.
    #[arg(long, env = "PHOTON_WS_MAX_SUBSCRIPTIONS", default_value_t = 32,
        value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub ws_max_subscriptions: u64,

    /// What one GraphQL request may cost before anything runs.
    #[command(flatten)]
    pub cost: CostSettings,
    #[command(flatten)]
    pub upload_limits: UploadLimits,
    #[command(flatten)]
    pub connections: ConnectionSettings,

    #[command(flatten)]
    pub database_timeouts: DatabaseTimeouts,

    #[command(flatten)]
    pub s3_timeouts: S3Timeouts,
    #[command(flatten)]
    pub rate_limits: RateLimitSettings,
    #[command(flatten)]
    pub metrics: MetricsSettings,
}

/// Parses settings from command-line style arguments (plus the environment), as the binary
/// does; used by tests and tools that start the server in-process.
pub fn settings_from_args<I, T>(args: I) -> Result<Settings, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    #[command(args_override_self = true)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }
    <Cli as clap::Parser>::try_parse_from(args).map(|cli| cli.settings)
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_owned()))
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub public_url: Url,
    /// The public URL was not given: it follows the address actually bound (port 0 becomes
    /// the port the system picked).
    pub public_url_from_bind: bool,
    pub data_dir: PathBuf,
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub database_timeouts: DatabaseTimeouts,
    pub jwt_secret: SecretString,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: chrono::Duration,
    pub refresh: RefreshSettings,
    pub dev_sign_in: bool,
    pub app_redirect_uris: Vec<String>,
    pub app_join_url: Url,
    /// Sign-in providers; none configured means only the dev sign-in (where enabled).
    pub oauth: OAuthSettings,
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
    /// Limits on a document's size and expanded cost, checked before validation.
    pub cost: CostLimits,
    pub shutdown_grace: Duration,
    pub ws_keepalive: Duration,
    pub ws_max_subscriptions: usize,
    pub connections: ConnectionSettings,
    pub upload_rules: UploadRules,
    pub download_url_ttl: Duration,
    /// `None`: the local-disk store under the data directory.
    pub s3: Option<S3Settings>,
    /// `None`: this replica does not sweep.
    pub sweep: Option<SweepSettings>,
    /// `None`: this replica sends no pushes.
    pub push: Option<PushSettings>,
    pub rate_limits: RateLimitSettings,
    pub metrics: MetricsSettings,
}

/// The shortest HS256 secret accepted: the hash's own output size.
const MIN_JWT_SECRET_BYTES: usize = 32;

impl Settings {
    /// Resolves defaults. On the embedded default this may create the data directory and the
    /// generated JWT secret, which is blocking file I/O: call it before serving.
    pub fn resolve(self) -> anyhow::Result<Config> {
        self.metrics.check(self.bind)?;
        let public_url_from_bind = self.public_url.is_none();
        let public_url = match self.public_url {
            Some(url) => url,
            None => Url::parse(&format!("http://{}", self.bind))
                .context("PHOTON_BIND does not make a valid URL")?,
        };
        if !matches!(public_url.scheme(), "http" | "https") {
            bail!("PHOTON_PUBLIC_URL must be an http or https URL");
        }
        let embedded = self.database_url.is_none();
        let database_url = match self.database_url {
            Some(url) => url,
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!("cannot create data directory {}", self.data_dir.display())
                })?;
                let path = self.data_dir.join("photon.db");
                SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
            }
        };
        let jwt_secret = match self.jwt_secret {
            Some(secret) => secret,
            None if embedded => load_or_generate_secret(&self.data_dir.join("jwt-secret"))?,
            None => bail!("PHOTON_JWT_SECRET is required when DATABASE_URL is set"),
        };
        if jwt_secret.expose_secret().len() < MIN_JWT_SECRET_BYTES {
            bail!("PHOTON_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes");
        }
        if is_placeholder_secret(jwt_secret.expose_secret()) {
            bail!(
                "PHOTON_JWT_SECRET is a placeholder from an example, which anyone can read and \
                 sign tokens with; set a random secret (e.g. `openssl rand -base64 48`)"
            );
        }
        let oauth = OAuthSettings {
            github: credentials("GITHUB", self.github_client_id, self.github_client_secret)?,
            discord: credentials(
                "DISCORD",
                self.discord_client_id,
                self.discord_client_secret,
            )?,
            urls: ProviderUrls {
                github_base: web_base("GITHUB_BASE_URL", self.github_base_url)?,
                github_api: web_base("GITHUB_API_URL", self.github_api_url)?,
                discord_base: web_base("DISCORD_BASE_URL", self.discord_base_url)?,
            },
        };
        let app_redirect_uris: Vec<String> = self
            .app_redirect_uris
            .iter()
            .map(|uri| uri.trim().to_owned())
            .filter(|uri| !uri.is_empty())
            .collect();
        // Login codes are appended to these as a query parameter, so each must be a URL.
        for uri in &app_redirect_uris {
            if Url::parse(uri).is_err() {
                bail!("PHOTON_APP_REDIRECT_URIS: {uri:?} is not an absolute URI");
            }
        }
        // A production database behind a reverse proxy may well bind to loopback too, so the
        // bind address alone is not enough to call a server local; and a server with a real
        // sign-in configured is not a developer's toy. Nor is one whose public URL others can
        // reach (a loopback bind behind a tunnel or proxy that forwards to it).
        let dev_sign_in = self.dev_sign_in.unwrap_or(
            embedded
                && self.bind.ip().is_loopback()
                && is_loopback_url(&public_url)
                && !oauth.any_enabled(),
        );
        if self.access_token_ttl_secs == 0 || self.refresh_token_ttl_days == 0 {
            bail!("token lifetimes must be positive");
        }
        if self.upload_url_ttl_secs == 0 || self.download_url_ttl_secs == 0 {
            bail!("URL lifetimes must be positive");
        }
        // The sweeper removes a slot an hour after its last upload URL was issued; a URL that
        // outlived that could put bytes where no row points any more.
        let abandoned_after = crate::service::photos::ABANDONED_SLOT_AGE.num_seconds() as u64;
        if self.upload_url_ttl_secs >= abandoned_after {
            bail!("PHOTON_UPLOAD_URL_TTL_SECS must be less than {abandoned_after}");
        }
        let content_types: Vec<String> = self
            .photo_content_types
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        let s3 = match self.s3_bucket {
            None => None,
            Some(bucket) => {
                let (Some(access_key_id), Some(secret_access_key)) =
                    (self.s3_access_key_id, self.s3_secret_access_key)
                else {
                    bail!("S3_BUCKET needs S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY");
                };
                Some(S3Settings {
                    bucket,
                    endpoint: self.s3_endpoint,
                    public_endpoint: self.s3_public_endpoint,
                    region: self.s3_region,
                    access_key_id,
                    secret_access_key,
                    force_path_style: self.s3_force_path_style,
                    timeouts: self.s3_timeouts,
                })
            }
        };
        if content_types.is_empty() || self.max_photo_bytes == 0 {
            bail!("PHOTON_PHOTO_CONTENT_TYPES and PHOTON_MAX_PHOTO_BYTES must allow something");
        }
        if !matches!(self.fcm_endpoint.scheme(), "http" | "https") {
            bail!("FCM_ENDPOINT must be an http or https URL");
        }
        // Checked even where the dispatcher is off, so a bad key fails every replica's start.
        let fcm = match &self.fcm_credentials {
            Some(path) => Some(FcmSettings {
                account: ServiceAccount::load(path)?,
                endpoint: self.fcm_endpoint,
            }),
            None => None,
        };
        Ok(Config {
            bind: self.bind,
            public_url,
            public_url_from_bind,
            data_dir: self.data_dir,
            database_url,
            // Migrations hold one connection for their lock and need another to run.
            database_max_connections: self.database_max_connections.max(2),
            database_timeouts: self.database_timeouts,
            jwt_secret,
            access_token_ttl: Duration::from_secs(self.access_token_ttl_secs),
            refresh_token_ttl: chrono::Duration::days(i64::from(self.refresh_token_ttl_days)),
            refresh: self.refresh,
            dev_sign_in,
            app_redirect_uris,
            app_join_url: self.app_join_url,
            oauth,
            max_query_depth: self.max_query_depth,
            max_query_complexity: self.max_query_complexity,
            cost: CostLimits::from(&self.cost),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            ws_keepalive: Duration::from_secs(self.ws_keepalive_secs),
            ws_max_subscriptions: self.ws_max_subscriptions as usize,
            connections: self.connections,
            upload_rules: UploadRules {
                max_bytes: self.max_photo_bytes,
                content_types,
                upload_url_ttl: Duration::from_secs(self.upload_url_ttl_secs),
                limits: self.upload_limits,
            },
            download_url_ttl: Duration::from_secs(self.download_url_ttl_secs),
            s3,
            sweep: (self.sweep_interval_secs > 0).then(|| SweepSettings {
                interval: Duration::from_secs(self.sweep_interval_secs),
                event_retention: chrono::Duration::hours(i64::from(self.event_retention_hours)),
            }),
            push: (self.push_poll_ms > 0).then(|| PushSettings {
                poll_interval: Duration::from_millis(self.push_poll_ms),
                coalesce_window: Duration::from_millis(self.push_coalesce_ms),
                fcm,
            }),
            rate_limits: self.rate_limits,
            metrics: self.metrics,
        })
    }
}

impl Config {
    /// A URL under the public base, e.g. `join/ABCD…`.
    pub fn public_link(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.public_url.as_str().trim_end_matches('/'),
            path
        )
    }
}

/// Whether the public URL names this machine only (`localhost` or a loopback address).
fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether a JWT secret is the documented placeholder of an example configuration (any
/// value that starts with `change-me`), which must never sign real tokens.
fn is_placeholder_secret(secret: &str) -> bool {
    secret
        .trim()
        .get(..PLACEHOLDER_PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(PLACEHOLDER_PREFIX))
}

const PLACEHOLDER_PREFIX: &str = "change-me";

/// A provider's credentials: both or neither. Half a configuration is a mistake worth
/// stopping for, not a provider to switch off quietly.
fn credentials(
    prefix: &str,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
) -> anyhow::Result<Option<ClientCredentials>> {
    let client_id = client_id.filter(|id| !id.trim().is_empty());
    let client_secret = client_secret.filter(|s| !s.expose_secret().trim().is_empty());
    match (client_id, client_secret) {
        (Some(client_id), Some(client_secret)) => Ok(Some(ClientCredentials {
            client_id: client_id.trim().to_owned(),
            client_secret,
        })),
        (None, None) => Ok(None),
        _ => bail!("{prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET must be set together"),
    }
}

fn web_base(name: &str, url: Url) -> anyhow::Result<Url> {
    if !matches!(url.scheme(), "http" | "https") {
        bail!("{name} must be an http or https URL");
    }
    Ok(url)
}

/// Reads the generated secret, or creates one readable only by its owner.
fn load_or_generate_secret(path: &Path) -> anyhow::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(secret) => return Ok(SecretString::from(secret.trim().to_owned())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        // Another process got there first: use its secret.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            return load_or_generate_secret(path);
        }
        Err(err) => return Err(err).with_context(|| format!("cannot create {}", path.display())),
    };
    std::io::Write::write_all(&mut file, secret.as_bytes())?;
    Ok(SecretString::from(secret))
}

#[cfg(test)]
mod safe_defaults_tests;
