//! [`Deps`]: what the use cases behind every transport share — the database, the settings,
//! token keys, the sign-in clients, the photo store, the event bus, presence and the rate
//! limiters. The schema, the feeds and the sign-in routes take this, not the HTTP server's
//! state, so dependencies point one way: transports → schema → services → these.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::archive::link::ArchiveLinks;
use crate::auth::jwt::JwtKeys;
use crate::auth::oauth::OAuth;
use crate::config::Config;
use crate::limits::RateLimiters;
use crate::realtime::admission::Admission;
use crate::realtime::announce::Announcer;
use crate::realtime::{Bus, presence::Presence};
use crate::service::sign_in::Tokens;
use crate::storage::ObjectStore;
use crate::storage::local::LocalStore;
use crate::storage::s3::S3Store;

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct Deps {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub tokens: Arc<Tokens>,
    /// The sign-in providers' clients.
    pub oauth: Arc<OAuth>,
    /// Where photo bytes live.
    pub store: Arc<dyn ObjectStore>,
    /// The local-disk store when it is the one in use: its routes serve uploads and downloads.
    pub local_store: Option<Arc<LocalStore>>,
    /// Committed events, handed to this replica's subscriptions.
    pub bus: Arc<Bus>,
    /// Announces the events this process commits to every replica's bus.
    pub announcer: Announcer,
    /// Tells the photo workers of every process that photos were queued here.
    pub jobs: crate::processing::JobBell,
    /// The queue subscription starts go through.
    pub admission: Arc<Admission>,
    /// Who has a live `photoAdded` subscription here.
    pub presence: Arc<Presence>,
    /// This replica's rate limits and WebSocket caps.
    pub rate_limiters: Arc<RateLimiters>,
    /// Signs and checks session archive links.
    pub archive_links: Arc<ArchiveLinks>,
}

impl Deps {
    /// Builds everything around an open, migrated database.
    pub fn new(db: DatabaseConnection, config: Arc<Config>) -> anyhow::Result<Self> {
        let (store, local_store): (Arc<dyn ObjectStore>, _) = match &config.s3 {
            Some(s3) => (Arc::new(S3Store::new(s3)), None),
            None => {
                let local = Arc::new(LocalStore::new(
                    config.data_dir.join("objects"),
                    &config.public_url,
                    &config.jwt_secret,
                    db.clone(),
                    config.upload_rules.limits.local_upload_timeout(),
                )?);
                (local.clone(), Some(local))
            }
        };
        let tokens = Arc::new(Tokens {
            jwt: JwtKeys::new(
                &config.jwt_secret,
                config.public_url.as_str(),
                config.access_token_ttl,
            ),
            refresh_ttl: config.refresh_token_ttl,
            refresh_reuse_grace: config.refresh.reuse_grace(),
        });
        let oauth = Arc::new(OAuth::new(
            &config.oauth,
            &config.public_url,
            &config.app_redirect_uris,
        )?);
        let archive_links = Arc::new(ArchiveLinks::new(&config.jwt_secret, &config.public_url)?);
        Ok(Self {
            rate_limiters: Arc::new(RateLimiters::new(&config.rate_limits)),
            archive_links,
            bus: Bus::new(),
            announcer: crate::realtime::announcer_for(&db),
            jobs: crate::processing::JobBell::default(),
            presence: Presence::new(db.clone()),
            admission: Admission::new(config.realtime.admission),
            store,
            local_store,
            tokens,
            oauth,
            config,
            db,
        })
    }
}
