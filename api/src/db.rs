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

/// Counters over every statement the pool runs (for metrics, and for tests that check a
/// request costs the queries it should).
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

/// Opens the connection pool. SQLite gets a single connection in WAL mode: SQLite allows one
/// writer at a time, and one connection turns lock contention between our own transactions
/// (which SQLite answers with `SQLITE_BUSY` rather than waiting) into an orderly queue.
pub async fn connect(config: &Config, stats: Arc<DbStats>) -> anyhow::Result<DatabaseConnection> {
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
        .acquire_timeout(Duration::from_secs(10))
        // Statements are traced at debug level by our own spans; sqlx's per-statement info
        // logs would repeat every query's text.
        .sqlx_logging(false);
    if is_sqlite {
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    }
    let mut db = Database::connect(options)
        .await
        .context("cannot connect to the database (check DATABASE_URL)")?;
    db.set_metric_callback(move |info| {
        stats.statements.fetch_add(1, Ordering::Relaxed);
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
