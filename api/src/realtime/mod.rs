//! Real time: the bus that hands committed events to this replica's subscriptions, what feeds
//! it (wake-ups from other replicas over Postgres notifications or NATS, or a tailer of the
//! local log), how this process announces what it committed, the replay-then-live feed each
//! subscription reads, the sequence check that finds lost wake-ups, and presence for the push
//! dispatcher.

pub mod admission;
pub mod announce;
pub mod bus;
pub mod check;
pub mod feed;
pub mod local;
pub mod log;
pub mod nats;
pub mod pg;
pub mod presence;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseBackend, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};

pub use bus::{Bus, FeedItem};

use crate::jobs::Supervisor;
use admission::AdmissionLimits;
use announce::{Announcer, Via};
use nats::NatsBus;

/// Settings: how replicas wake each other up.
#[derive(Debug, Clone, clap::Args)]
pub struct RealtimeSettings {
    /// A NATS server to carry wake-ups between replicas (`nats://host:4222`; credentials in
    /// the URL), instead of Postgres notifications. Postgres only: the embedded SQLite
    /// default is one process.
    #[arg(long, env = "PHOTON_NATS_URL", value_parser = crate::config::parse_secret, hide_env_values = true)]
    pub nats_url: Option<SecretString>,

    /// The NATS subject this deployment's replicas share.
    #[arg(long, env = "PHOTON_NATS_SUBJECT", default_value = "photon.events")]
    pub nats_subject: String,

    /// Milliseconds between checks of the sessions' event sequences against what this replica
    /// heard (a lost wake-up is delivered within two of these).
    #[arg(long, env = "PHOTON_EVENT_CHECK_MS", default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub event_check_ms: u64,

    /// How many subscriptions may be starting at once (checking membership, replaying from
    /// their cursor); the others wait their turn. Default: half of
    /// PHOTON_DATABASE_MAX_CONNECTIONS, so requests keep the rest of the pool.
    #[arg(long, env = "PHOTON_SUBSCRIPTION_STARTS",
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub subscription_starts: Option<u32>,

    /// Most subscription starts waiting for their turn; one more is refused at once with
    /// `SERVICE_UNAVAILABLE` (and `extensions.retryAfter`).
    #[arg(long, env = "PHOTON_SUBSCRIPTION_START_QUEUE", default_value_t = 20_000,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub subscription_start_queue: u32,

    /// Longest a subscription start waits for its turn, in seconds, before it is refused with
    /// `SERVICE_UNAVAILABLE`.
    #[arg(long, env = "PHOTON_SUBSCRIPTION_START_WAIT_SECS", default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=300))]
    pub subscription_start_wait_secs: u64,
}

/// How this deployment's wake-ups travel, resolved from [`RealtimeSettings`].
#[derive(Clone)]
pub struct Realtime {
    pub nats: Option<NatsBus>,
    pub check_every: Duration,
    /// The queue in front of subscription starts.
    pub admission: AdmissionLimits,
}

impl RealtimeSettings {
    /// `pool` is the most connections the server's pool opens.
    pub fn resolve(self, database_url: &SecretString, pool: u32) -> anyhow::Result<Realtime> {
        let sqlite = database_url.expose_secret().starts_with("sqlite:");
        let nats = match self.nats_url {
            Some(url) if !url.expose_secret().trim().is_empty() => {
                anyhow::ensure!(
                    !sqlite,
                    "PHOTON_NATS_URL carries wake-ups between replicas on Postgres; the \
                     embedded SQLite default is one process and has no use for it"
                );
                anyhow::ensure!(
                    !self.nats_subject.trim().is_empty(),
                    "PHOTON_NATS_SUBJECT must not be empty"
                );
                Some(NatsBus::new(url, self.nats_subject))
            }
            _ => None,
        };
        let concurrent = self.subscription_starts.unwrap_or(pool / 2).max(1);
        Ok(Realtime {
            nats,
            check_every: Duration::from_millis(self.event_check_ms),
            admission: AdmissionLimits {
                concurrent: concurrent as usize,
                queue: self.subscription_start_queue as usize,
                wait: Duration::from_secs(self.subscription_start_wait_secs),
            },
        })
    }
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime")
            .field("nats_subject", &self.nats.as_ref().map(NatsBus::subject))
            .field("check_every", &self.check_every)
            .field("admission", &self.admission)
            .finish()
    }
}

/// The announcer a process on this database needs: queued to a notifier between processes,
/// none on the embedded default.
pub fn announcer_for(db: &DatabaseConnection) -> Announcer {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => Announcer::queued(),
        _ => Announcer::default(),
    }
}

/// Starts the notifier that sends `announcer`'s wake-ups, where there is one to send.
pub fn spawn_announcer(
    tasks: &Supervisor,
    db: &DatabaseConnection,
    url: &SecretString,
    realtime: &Realtime,
    announcer: &Announcer,
) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let via = match &realtime.nats {
        Some(nats) => Via::Nats(nats.clone()),
        None => Via::Postgres(url.clone()),
    };
    let announcer = announcer.clone();
    tasks.spawn(announce::TASK, move |ctx| {
        let (announcer, via) = (announcer.clone(), via.clone());
        async move { announcer.notify(ctx, via).await }
    });
}

/// Starts feeding the bus from the database this replica uses (and the NATS server, when
/// there is one), as tasks under `tasks`.
pub fn spawn_feed(
    tasks: &Supervisor,
    db: &DatabaseConnection,
    url: &SecretString,
    realtime: &Realtime,
    bus: Arc<Bus>,
) {
    let db = db.clone();
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let url = url.clone();
            match &realtime.nats {
                Some(nats) => {
                    let (nats, bus) = (nats.clone(), bus.clone());
                    tasks.spawn(nats::TASK, move |ctx| {
                        nats::run(ctx, nats.clone(), url.clone(), bus.clone())
                    });
                }
                None => {
                    let bus = bus.clone();
                    tasks.spawn(pg::TASK, move |ctx| pg::run(ctx, url.clone(), bus.clone()));
                }
            }
            let every = realtime.check_every;
            tasks.spawn(check::TASK, move |ctx| {
                check::run(ctx, db.clone(), bus.clone(), every)
            });
        }
        _ => tasks.spawn(local::TASK, move |ctx| {
            local::run(ctx, db.clone(), bus.clone())
        }),
    }
}

/// A connection of the listener's own for reading the events it is told about, so fan-out
/// never queues behind requests for the pool (and requests never wait behind fan-out).
async fn reader(url: &SecretString) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.expose_secret().to_owned());
    options
        .max_connections(1)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        // No ping before each read: the listener's own connection fails with the database,
        // and its restart opens a new reader.
        .test_before_acquire(false)
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

/// Reads the events a wake-up named and hands them to their sessions' subscribers. A failed
/// read tells everyone to catch up from the log instead, where the events are.
async fn deliver(reader: &DatabaseConnection, bus: &Bus, ids: &[i64]) {
    crate::metrics::bus_notified(ids.len());
    if ids.is_empty() {
        return;
    }
    match log::by_ids(reader, ids).await {
        Ok(items) => items.into_iter().for_each(|item| bus.publish(item)),
        Err(err) => {
            tracing::warn!(error = ?err, "could not read notified events");
            bus.resync();
            crate::metrics::bus_resynced();
        }
    }
}
