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

use crate::auth::oauth::{
    AppleCredentials, AppleKey, ClientCredentials, OAuthArgs, OAuthSettings, ProviderUrls,
};
use crate::auth::refresh::RefreshSettings;
use crate::db::{DatabaseArgs, DatabaseTimeouts};
use crate::graphql::cost::{CostLimits, CostSettings};
use crate::graphql::persisted::{PersistedConfig, PersistedSettings};
use crate::jobs::shutdown::ShutdownSettings;
use crate::jobs::sweeper::{SweepArgs, SweepSettings};
use crate::limits::RateLimitSettings;
use crate::metrics::MetricsSettings;
use crate::pages::invite::{InviteArgs, InviteSettings};
use crate::processing::{ProcessingArgs, ProcessingSettings};
use crate::push::fcm::{FcmSettings, ServiceAccount};
use crate::push::{PushArgs, PushSettings};
use crate::server::ConnectionSettings;
use crate::service::photos::{PhotoArgs, UploadRules};
use crate::service::sign_in::TokenArgs;
use crate::storage::s3::{S3Args, S3Settings};

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

    /// Deep link that `/join/{code}` sends browsers to, with `?code=…` appended.
    #[arg(long, env = "PHOTON_APP_JOIN_URL", default_value = "photon://join")]
    pub app_join_url: Url,

    /// Log format: `text` for people, `json` for log collectors. The filter is `RUST_LOG`.
    #[arg(long, env = "PHOTON_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Seconds a shutdown may take, from the signal to the exit: the drain delay, requests in
    /// flight, background tasks and the clean-up all fit in it.
    #[arg(long, env = "PHOTON_SHUTDOWN_GRACE_SECS", default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub shutdown_grace_secs: u64,
    #[command(flatten)]
    pub shutdown: ShutdownSettings,

    #[command(flatten, next_help_heading = "Invite links")]
    pub invite: InviteArgs,

    #[command(flatten, next_help_heading = "Database")]
    pub database: DatabaseArgs,

    #[command(flatten, next_help_heading = "Tokens and sign-in")]
    pub tokens: TokenArgs,

    #[command(flatten, next_help_heading = "Sign-in providers")]
    pub oauth: OAuthArgs,

    #[command(flatten, next_help_heading = "Photos")]
    pub photos: PhotoArgs,

    #[command(flatten, next_help_heading = "Photo processing")]
    pub processing: ProcessingArgs,

    #[command(flatten, next_help_heading = "S3 storage")]
    pub s3: S3Args,

    #[command(flatten, next_help_heading = "Sweeper")]
    pub sweep: SweepArgs,

    #[command(flatten, next_help_heading = "Push notifications")]
    pub push: PushArgs,

    #[command(flatten, next_help_heading = "Query cost")]
    pub cost: CostSettings,

    #[command(flatten, next_help_heading = "Connections")]
    pub connections: ConnectionSettings,

    #[command(flatten, next_help_heading = "Rate limits")]
    pub rate_limits: RateLimitSettings,

    #[command(flatten, next_help_heading = "Metrics")]
    pub metrics: MetricsSettings,

    #[command(flatten, next_help_heading = "Persisted queries")]
    pub persisted: PersistedSettings,

    #[command(flatten, next_help_heading = "Safety")]
    pub safety: crate::service::reports::SafetySettings,

    #[command(flatten, next_help_heading = "Real time")]
    pub realtime: crate::realtime::RealtimeSettings,
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

pub(crate) fn parse_secret(value: &str) -> Result<SecretString, String> {
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
    /// The invite page's store links and the app-link files.
    pub invite: InviteSettings,
    /// Sign-in providers; none configured means only the dev sign-in (where enabled).
    pub oauth: OAuthSettings,
    pub max_query_depth: usize,
    pub max_query_complexity: usize,
    /// Limits on a document's size and expanded cost, checked before validation.
    pub cost: CostLimits,
    pub shutdown_grace: Duration,
    pub shutdown: ShutdownSettings,
    pub ws_keepalive: Duration,
    pub ws_max_subscriptions: usize,
    pub connections: ConnectionSettings,
    pub upload_rules: UploadRules,
    pub download_url_ttl: Duration,
    pub archive_url_ttl: Duration,
    /// `None`: the local-disk store under the data directory.
    pub s3: Option<S3Settings>,
    /// `None`: this replica does not sweep.
    pub sweep: Option<SweepSettings>,
    /// `None`: this process runs no processing workers.
    pub processing: Option<ProcessingSettings>,
    /// `None`: this replica sends no pushes.
    pub push: Option<PushSettings>,
    pub rate_limits: RateLimitSettings,
    pub metrics: MetricsSettings,
    /// Trusted documents and the automatic persisted query cache.
    pub persisted: PersistedConfig,
    /// When reports hide a photo.
    pub safety: crate::service::reports::SafetySettings,
    /// How replicas wake each other up.
    pub realtime: crate::realtime::Realtime,
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
        let embedded = self.database.database_url.is_none();
        let database_url = match self.database.database_url {
            Some(url) => url,
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!("cannot create data directory {}", self.data_dir.display())
                })?;
                let path = self.data_dir.join("photon.db");
                SecretString::from(format!("sqlite://{}?mode=rwc", path.display()))
            }
        };
        let jwt_secret = match self.tokens.jwt_secret {
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
            apple: apple_credentials(&self.oauth)?,
            google: credentials(
                "GOOGLE",
                self.oauth.google_client_id,
                self.oauth.google_client_secret,
            )?,
            github: credentials(
                "GITHUB",
                self.oauth.github_client_id,
                self.oauth.github_client_secret,
            )?,
            discord: credentials(
                "DISCORD",
                self.oauth.discord_client_id,
                self.oauth.discord_client_secret,
            )?,
            urls: ProviderUrls {
                apple_base: web_base("APPLE_BASE_URL", self.oauth.apple_base_url)?,
                google_issuer: web_base("GOOGLE_ISSUER_URL", self.oauth.google_issuer_url)?,
                google_authorize: web_base(
                    "GOOGLE_AUTHORIZE_URL",
                    self.oauth.google_authorize_url,
                )?,
                google_token: web_base("GOOGLE_TOKEN_URL", self.oauth.google_token_url)?,
                google_jwks: web_base("GOOGLE_JWKS_URL", self.oauth.google_jwks_url)?,
                github_base: web_base("GITHUB_BASE_URL", self.oauth.github_base_url)?,
                github_api: web_base("GITHUB_API_URL", self.oauth.github_api_url)?,
                discord_base: web_base("DISCORD_BASE_URL", self.oauth.discord_base_url)?,
            },
        };
        let app_redirect_uris: Vec<String> = self
            .oauth
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
        let dev_sign_in = self.tokens.dev_sign_in.unwrap_or(
            embedded
                && self.bind.ip().is_loopback()
                && is_loopback_url(&public_url)
                && !oauth.any_enabled(),
        );
        if self.tokens.access_token_ttl_secs == 0 || self.tokens.refresh_token_ttl_days == 0 {
            bail!("token lifetimes must be positive");
        }
        if self.photos.upload_url_ttl_secs == 0 || self.photos.download_url_ttl_secs == 0 {
            bail!("URL lifetimes must be positive");
        }
        // The sweeper removes a slot an hour after its last upload URL was issued; a URL that
        // outlived that could put bytes where no row points any more.
        let abandoned_after = crate::service::photos::ABANDONED_SLOT_AGE.num_seconds() as u64;
        if self.photos.upload_url_ttl_secs >= abandoned_after {
            bail!("PHOTON_UPLOAD_URL_TTL_SECS must be less than {abandoned_after}");
        }
        let content_types: Vec<String> = self
            .photos
            .photo_content_types
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        let s3 = match self.s3.s3_bucket {
            None => None,
            Some(bucket) => {
                let (Some(access_key_id), Some(secret_access_key)) =
                    (self.s3.s3_access_key_id, self.s3.s3_secret_access_key)
                else {
                    bail!("S3_BUCKET needs S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY");
                };
                Some(S3Settings {
                    bucket,
                    endpoint: self.s3.s3_endpoint,
                    public_endpoint: self.s3.s3_public_endpoint,
                    region: self.s3.s3_region,
                    access_key_id,
                    secret_access_key,
                    force_path_style: self.s3.s3_force_path_style,
                    timeouts: self.s3.s3_timeouts,
                })
            }
        };
        if content_types.is_empty() || self.photos.max_photo_bytes == 0 {
            bail!("PHOTON_PHOTO_CONTENT_TYPES and PHOTON_MAX_PHOTO_BYTES must allow something");
        }
        if !matches!(self.push.fcm_endpoint.scheme(), "http" | "https") {
            bail!("FCM_ENDPOINT must be an http or https URL");
        }
        // Checked even where the dispatcher is off, so a bad key fails every replica's start.
        let fcm = match &self.push.fcm_credentials {
            Some(path) => Some(FcmSettings {
                account: ServiceAccount::load(path)?,
                endpoint: self.push.fcm_endpoint,
            }),
            None => None,
        };
        let invite = self.invite.resolve()?;
        let cost = CostLimits::from(&self.cost);
        let processing = self.processing.resolve()?;
        let persisted = self.persisted.resolve(&cost)?;
        // Migrations hold one connection for their lock and need another to run.
        let database_max_connections = self.database.database_max_connections.max(2);
        let realtime = self
            .realtime
            .resolve(&database_url, database_max_connections)?;
        Ok(Config {
            bind: self.bind,
            public_url,
            public_url_from_bind,
            data_dir: self.data_dir,
            database_url,
            database_max_connections,
            database_timeouts: self.database.database_timeouts,
            jwt_secret,
            access_token_ttl: Duration::from_secs(self.tokens.access_token_ttl_secs),
            refresh_token_ttl: chrono::Duration::days(i64::from(
                self.tokens.refresh_token_ttl_days,
            )),
            refresh: self.tokens.refresh,
            dev_sign_in,
            app_redirect_uris,
            app_join_url: self.app_join_url,
            invite,
            oauth,
            max_query_depth: self.cost.max_query_depth,
            max_query_complexity: self.cost.max_query_complexity,
            cost,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            shutdown: self.shutdown,
            ws_keepalive: Duration::from_secs(self.connections.ws_keepalive_secs),
            ws_max_subscriptions: self.connections.ws_max_subscriptions as usize,
            connections: self.connections,
            upload_rules: UploadRules {
                max_bytes: self.photos.max_photo_bytes,
                content_types,
                upload_url_ttl: Duration::from_secs(self.photos.upload_url_ttl_secs),
                limits: self.photos.upload_limits,
            },
            download_url_ttl: Duration::from_secs(self.photos.download_url_ttl_secs),
            archive_url_ttl: Duration::from_secs(self.photos.archive_url_ttl_secs),
            s3,
            sweep: (self.sweep.sweep_interval_secs > 0).then(|| SweepSettings {
                interval: Duration::from_secs(self.sweep.sweep_interval_secs),
                event_retention: chrono::Duration::hours(i64::from(
                    self.sweep.event_retention_hours,
                )),
            }),
            processing,
            push: (self.push.push_poll_ms > 0).then(|| PushSettings {
                poll_interval: Duration::from_millis(self.push.push_poll_ms),
                coalesce_window: Duration::from_millis(self.push.push_coalesce_ms),
                min_interval: Duration::from_secs(self.push.push_min_interval_secs),
                expiry_warning: Duration::from_secs(self.push.expiry_warning_mins * 60),
                fcm,
            }),
            rate_limits: self.rate_limits,
            metrics: self.metrics,
            persisted,
            safety: self.safety,
            realtime,
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

/// Sign in with Apple's four settings, all or none; the key is read and checked here, so a
/// bad one fails start-up.
fn apple_credentials(args: &OAuthArgs) -> anyhow::Result<Option<AppleCredentials>> {
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    match (
        text(&args.apple_client_id),
        text(&args.apple_team_id),
        text(&args.apple_key_id),
        args.apple_private_key
            .as_deref()
            .filter(|path| !path.as_os_str().is_empty()),
    ) {
        (Some(client_id), Some(team_id), Some(key_id), Some(path)) => Ok(Some(AppleCredentials {
            client_id,
            team_id,
            key_id,
            key: AppleKey::load(path)?,
        })),
        (None, None, None, None) => Ok(None),
        _ => bail!(
            "APPLE_CLIENT_ID, APPLE_TEAM_ID, APPLE_KEY_ID and APPLE_PRIVATE_KEY must be set together"
        ),
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
