//! Guests: people who join one session with a name and no account. A guest is a user with no
//! e-mail address (`users.email` becomes nullable; the unique index still holds for everyone
//! who has one) and `is_guest` set. Each session says whether it lets guests in: new ones do
//! by default, sessions that exist already do not (their codes were handed out when joining
//! meant signing in; the owner can turn guests on).
//!
//! SQLite cannot drop a NOT NULL constraint, so there the `users` table is rebuilt the way its
//! documentation prescribes: with foreign keys off, in one transaction, a new table, a copy,
//! the old one dropped and the new one renamed, then a foreign-key check before the commit.
//! Foreign keys must really be off (a `DROP TABLE` with them on deletes the rows first, and
//! every cascade with them), which is checked inside the transaction before anything changes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `users` as the first migration made it, with `email` nullable (or not, going down) and,
/// going up, `is_guest`.
fn users_table(name: impl IntoIden, up: bool) -> TableCreateStatement {
    let mut email = ColumnDef::new(Users::Email);
    email.string().unique_key();
    if up {
        email.null();
    } else {
        email.not_null();
    }
    let mut table = Table::create()
        .table(name)
        .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
        .col(&mut email)
        .col(ColumnDef::new(Users::Name).string().not_null())
        .col(ColumnDef::new(Users::AvatarUrl).string().null())
        .col(
            ColumnDef::new(Users::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Users::UpdatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .to_owned();
    if up {
        table.col(is_guest());
    }
    table
}

fn is_guest() -> ColumnDef {
    ColumnDef::new(Users::IsGuest)
        .boolean()
        .not_null()
        .default(false)
        .take()
}

fn allow_guests() -> ColumnDef {
    ColumnDef::new(Sessions::AllowGuests)
        .boolean()
        .not_null()
        .default(true)
        .take()
}

/// Sessions made before guests existed keep their rule: joining means signing in.
const EXISTING_SESSIONS_TAKE_NO_GUESTS: &str = "UPDATE sessions SET allow_guests = FALSE";

/// The columns both shapes of `users` share, copied across a rebuild.
const SHARED_COLUMNS: &str = "id, email, name, avatar_url, created_at, updated_at";

/// Rebuilds SQLite's `users` into its `up` (or down) shape, with `extra` (the sessions column)
/// in the same transaction. Rows keep their ids, so every foreign key pointing at them still
/// holds, which the check before the commit confirms.
async fn rebuild_sqlite_users(
    manager: &SchemaManager<'_>,
    up: bool,
    extra: TableAlterStatement,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    // Outside the transaction: inside one the pragma does nothing. The migrator's SQLite pool
    // has one connection, so the transaction below runs on the same one (checked there).
    db.execute_unprepared("PRAGMA foreign_keys = OFF").await?;
    let txn = manager.begin().await?;
    let rebuilt = async {
        let conn = txn.get_connection();
        let enforced = conn
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA foreign_keys",
            ))
            .await?
            .map(|row| row.try_get_by_index::<i64>(0))
            .transpose()?;
        if enforced != Some(0) {
            return Err(DbErr::Migration(
                "foreign keys are still enforced on this connection; rebuilding users would \
                 cascade-delete every row that points at it"
                    .to_owned(),
            ));
        }
        txn.alter_table(extra).await?;
        txn.create_table(users_table(Alias::new("users_rebuilt"), up))
            .await?;
        conn.execute_unprepared(&format!(
            "INSERT INTO users_rebuilt ({SHARED_COLUMNS}) SELECT {SHARED_COLUMNS} FROM users"
        ))
        .await?;
        conn.execute_unprepared("DROP TABLE users").await?;
        conn.execute_unprepared("ALTER TABLE users_rebuilt RENAME TO users")
            .await?;
        txn.create_index(
            Index::create()
                .name("idx_users_name")
                .table(Users::Table)
                .col(Users::Name)
                .to_owned(),
        )
        .await?;
        let broken = conn
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA foreign_key_check",
            ))
            .await?;
        if !broken.is_empty() {
            return Err(DbErr::Migration(format!(
                "rebuilding users would leave {} rows whose foreign keys do not hold",
                broken.len()
            )));
        }
        Ok(())
    }
    .await;
    let finished = match rebuilt {
        Ok(()) => txn.commit().await,
        // Dropping the transaction rolls it back: nothing of the rebuild stays.
        Err(err) => Err(err),
    };
    // Back on whatever happened: the connection is the application's own afterwards.
    db.execute_unprepared("PRAGMA foreign_keys = ON").await?;
    finished
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let add_switch = Table::alter()
            .table(Sessions::Table)
            .add_column(allow_guests())
            .to_owned();
        if manager.get_database_backend() == DbBackend::Sqlite {
            rebuild_sqlite_users(manager, true, add_switch).await?;
        } else {
            // Postgres runs the whole migration in one transaction.
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .add_column(is_guest())
                        .to_owned(),
                )
                .await?;
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE users ALTER COLUMN email DROP NOT NULL")
                .await?;
            manager.alter_table(add_switch).await?;
        }
        manager
            .get_connection()
            .execute_unprepared(EXISTING_SESSIONS_TAKE_NO_GUESTS)
            .await?;
        // The sweeper asks whether any event still names a guest before removing them.
        manager
            .create_index(
                Index::create()
                    .name("idx_events_actor")
                    .table(Events::Table)
                    .col(Events::ActorId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    /// Guests cannot survive an e-mail column that is required again: they go, and their
    /// memberships, devices and tokens with them (cascades); their photos' rows too, while
    /// the objects stay in the store for an operator to remove.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_events_actor")
                    .table(Events::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM users WHERE is_guest")
            .await?;
        let drop_switch = Table::alter()
            .table(Sessions::Table)
            .drop_column(Sessions::AllowGuests)
            .to_owned();
        if manager.get_database_backend() == DbBackend::Sqlite {
            rebuild_sqlite_users(manager, false, drop_switch).await?;
        } else {
            manager.alter_table(drop_switch).await?;
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE users ALTER COLUMN email SET NOT NULL")
                .await?;
            manager
                .alter_table(
                    Table::alter()
                        .table(Users::Table)
                        .drop_column(Users::IsGuest)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    AvatarUrl,
    CreatedAt,
    UpdatedAt,
    IsGuest,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    AllowGuests,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    ActorId,
}
