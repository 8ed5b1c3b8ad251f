//! Guests: people who join one session with a name and no account. A guest is a user with no
//! e-mail address (`users.email` becomes nullable; the unique index still holds for everyone
//! who has one) and `is_guest` set. Each session says whether it lets guests in.
//!
//! SQLite cannot drop a NOT NULL constraint, so there the `users` table is rebuilt the way its
//! documentation prescribes (new table, copy, drop, rename, with foreign keys off, then a
//! foreign-key check). Migrations on SQLite run outside a transaction on its single
//! connection, so the pragma applies to every statement here.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `users` as the first migration made it, with `email` nullable and `is_guest` added.
fn users_table(name: impl IntoIden, email_null: bool) -> TableCreateStatement {
    let mut email = ColumnDef::new(Users::Email);
    email.string().unique_key();
    if email_null {
        email.null();
    } else {
        email.not_null();
    }
    Table::create()
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
        .col(is_guest())
        .to_owned()
}

fn is_guest() -> ColumnDef {
    ColumnDef::new(Users::IsGuest)
        .boolean()
        .not_null()
        .default(false)
        .take()
}

/// Rebuilds SQLite's `users` with `email` nullable (or not, going down). Rows keep their ids,
/// so every foreign key pointing at them still holds, which the final check confirms.
async fn rebuild_sqlite_users(manager: &SchemaManager<'_>, email_null: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared("PRAGMA foreign_keys = OFF").await?;
    let rebuilt = async {
        manager
            .create_table(users_table(Alias::new("users_rebuilt"), email_null))
            .await?;
        db.execute_unprepared(
            "INSERT INTO users_rebuilt (id, email, name, avatar_url, created_at, updated_at, is_guest) \
             SELECT id, email, name, avatar_url, created_at, updated_at, is_guest FROM users",
        )
        .await?;
        db.execute_unprepared("DROP TABLE users").await?;
        db.execute_unprepared("ALTER TABLE users_rebuilt RENAME TO users")
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_name")
                    .table(Users::Table)
                    .col(Users::Name)
                    .to_owned(),
            )
            .await?;
        let broken = db
            .query_all_raw(sea_orm_migration::sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA foreign_key_check",
            ))
            .await?;
        if !broken.is_empty() {
            return Err(DbErr::Migration(format!(
                "rebuilding users left {} rows whose foreign keys do not hold",
                broken.len()
            )));
        }
        Ok(())
    }
    .await;
    // Back on whatever happened: the connection is the application's own afterwards.
    db.execute_unprepared("PRAGMA foreign_keys = ON").await?;
    rebuilt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(is_guest())
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Sqlite {
            rebuild_sqlite_users(manager, true).await?;
        } else {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE users ALTER COLUMN email DROP NOT NULL")
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(
                        ColumnDef::new(Sessions::AllowGuests)
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::AllowGuests)
                    .to_owned(),
            )
            .await?;
        // Guests cannot survive an e-mail column that is required again. Their memberships,
        // photos, devices and tokens go with them (cascades).
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM users WHERE is_guest")
            .await?;
        if manager.get_database_backend() == DbBackend::Sqlite {
            rebuild_sqlite_users(manager, false).await?;
        } else {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE users ALTER COLUMN email SET NOT NULL")
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::IsGuest)
                    .to_owned(),
            )
            .await?;
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
