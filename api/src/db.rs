//! Database connection and migrations, for SQLite (the embedded default) and Postgres alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};
use secrecy::ExposeSecret;

use crate::config::Config;

/// Statements longer than this are logged as slow.
const SLOW_STATEMENT: Duration = Duration::from_millis(500);
/// A pooled Postgres connection idle for longer than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Counters over every statement the pool runs, for tests that check a request costs the
/// queries it should; each statement also counts in `photon_db_statements_total`.
#[derive(Debug, Default)]
pub struct DbStats {
    statements: AtomicU64,
    failures: AtomicU64,
}

impl DbStats {
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Limits on what one Postgres statement may cost, so a slow query or a lock held too long
/// cannot tie up a pool connection, and the request behind it, for ever.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseTimeouts {
    /// Postgres `statement_timeout` of the server's connections, in milliseconds: a statement
    /// running longer is cancelled. Migrations run without it.
    #[arg(long, env = "PHOTON_DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 15_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub database_statement_timeout_ms: u64,

    /// Postgres `lock_timeout` of the server's connections, in milliseconds: a statement
    /// waiting longer for a lock fails. Migrations run without it.
    #[arg(long, env = "PHOTON_DATABASE_LOCK_TIMEOUT_MS", default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub database_lock_timeout_ms: u64,

    /// How long a request waits for a database connection, in milliseconds, before it fails
    /// with `SERVICE_UNAVAILABLE`: the pool is busy, or the database is down or restarting
    /// (then every attempt to connect fails, and waiting longer only holds the client).
    #[arg(long, env = "PHOTON_DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub database_acquire_timeout_ms: u64,
}

/// Opens the connection pool. SQLite gets a single connection in WAL mode: SQLite allows one
/// writer at a time, and one connection turns lock contention between our own transactions
/// (which SQLite answers with `SQLITE_BUSY` rather than waiting) into an orderly queue.
pub async fn connect(config: &Config, stats: Arc<DbStats>) -> anyhow::Result<DatabaseConnection> {
    open(config, stats, Some(&config.database_timeouts)).await
}

/// Migrates the database through connections of its own, free of the statement and lock
/// timeouts: a migration may rewrite a large table or wait for requests' locks.
pub async fn migrate_database(config: &Config) -> anyhow::Result<()> {
    let db = open(config, Arc::default(), None).await?;
    let migrated = migrate(&db).await;
    db.close().await?;
    migrated
}

async fn open(
    config: &Config,
    stats: Arc<DbStats>,
    timeouts: Option<&DatabaseTimeouts>,
) -> anyhow::Result<DatabaseConnection> {
    let url = config.database_url.expose_secret();
    let is_sqlite = url.starts_with("sqlite:");
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(if is_sqlite {
            1
        } else {
            config.database_max_connections
        })
        .min_connections(if is_sqlite { 1 } else { 0 })
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(timeouts.map_or(Duration::from_secs(10), |t| {
            Duration::from_millis(t.database_acquire_timeout_ms)
        }))
        // Statements are traced at debug level by our own spans; sqlx's per-statement info
        // logs would repeat every query's text.
        .sqlx_logging(false);
    // sqlx times every acquire and reports it at this level, which the pool-wait metric
    // counts (`crate::metrics::db`); TRACE keeps it out of the logs unless asked for.
    if is_sqlite {
        options.map_sqlx_sqlite_pool_opts(|pool| pool.acquire_time_level(log::LevelFilter::Trace));
    } else {
        options
            .map_sqlx_postgres_pool_opts(|pool| pool.acquire_time_level(log::LevelFilter::Trace))
            // sqlx pings every connection it hands out, on top of the ping with which it takes
            // each one back: three round trips per statement. One taken back a moment ago
            // passed that ping; one that sat idle (through a database restart, say) is pinged
            // again, and replaced if that fails.
            .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR);
    }
    if is_sqlite {
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    } else if let Some(timeouts) = timeouts {
        // Startup parameters, so every connection of the pool has them from its first
        // statement. The realtime listener opens a connection of its own without them: it
        // waits for notifications, not statements.
        let statement = timeouts.database_statement_timeout_ms.to_string();
        let lock = timeouts.database_lock_timeout_ms.to_string();
        options.map_sqlx_postgres_opts(move |opts| {
            opts.options([
                ("statement_timeout", statement.as_str()),
                ("lock_timeout", lock.as_str()),
            ])
        });
    }
    let mut db = Database::connect(options)
        .await
        .context("cannot connect to the database (check DATABASE_URL)")?;
    db.set_metric_callback(move |info| {
        stats.statements.fetch_add(1, Ordering::Relaxed);
        crate::metrics::db::statement();
        if info.failed {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        if info.elapsed > SLOW_STATEMENT {
            // The SQL text only: the values may be personal data.
            tracing::warn!(
                elapsed_ms = info.elapsed.as_millis() as u64,
                sql = %info.statement.sql,
                "slow statement"
            );
        }
    });
    Ok(db)
}

/// Brings the schema up to date. Safe to run at every start, and on Postgres by several
/// replicas at once: an advisory lock held in a transaction of its own lets one migrate while
/// the others wait, then find nothing left to do.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let lock = if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7041843020521693806)")
            .await?;
        Some(txn)
    } else {
        None
    };
    Migrator::up(db, None)
        .await
        .context("database migration failed")?;
    if let Some(txn) = lock {
        txn.commit().await?;
    }
    Ok(())
}

/// Settings: the database and its connection pool.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Database to use: `postgres://…` in production. Defaults to
    /// `sqlite://$PHOTON_DATA_DIR/photon.db?mode=rwc`.
    #[arg(long, env = "DATABASE_URL", value_parser = crate::config::parse_secret, hide_env_values = true)]
    pub database_url: Option<secrecy::SecretString>,

    /// Most connections to keep open to the database (Postgres; SQLite uses one writer).
    #[arg(long, env = "PHOTON_DATABASE_MAX_CONNECTIONS", default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,

    #[command(flatten)]
    pub database_timeouts: DatabaseTimeouts,
}

/// Whether a database error means the database cannot be reached right now (down,
/// restarting, refusing connections, or the pool could not hand out a working connection in
/// time) rather than that the statement was wrong. Such a failure changed nothing, since a
/// transaction that loses its connection is rolled back, so the client may simply try again.
pub fn is_unavailable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) => return true,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed => true,
        // Postgres' classes 08 (connection exception) and 57P (the server is shutting down,
        // crashed, or not yet accepting connections), and a protocol error from a connection
        // cut mid-message.
        Sqlx::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        Sqlx::Protocol(_) => true,
        _ => false,
    }
}
