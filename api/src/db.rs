//! Database connection and migrations, for SQLite (the embedded default) and Postgres alike.

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};
use secrecy::ExposeSecret;

use crate::config::Config;

/// Opens the connection pool. SQLite gets a single connection in WAL mode: SQLite allows one
/// writer at a time, and one connection turns lock contention between our own transactions
/// (which SQLite answers with `SQLITE_BUSY` rather than waiting) into an orderly queue.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
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
    Database::connect(options)
        .await
        .context("cannot connect to the database (check DATABASE_URL)")
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
