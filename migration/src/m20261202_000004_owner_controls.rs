//! The owner runs the party: joins can be locked, ended sessions take late uploads for a
//! while, removed members can be banned, and each member picks how much the session pushes
//! them.
//!
//! SQLite adds one column per `ALTER TABLE`, so each column is its own statement.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Hours after the end in which members may still upload, for sessions that say nothing.
const DEFAULT_LATE_UPLOAD_HOURS: i32 = 12;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            (
                Sessions::Table.into_iden(),
                ColumnDef::new(Sessions::JoinsLocked)
                    .boolean()
                    .not_null()
                    .default(false)
                    .to_owned(),
            ),
            (
                Sessions::Table.into_iden(),
                ColumnDef::new(Sessions::LateUploadHours)
                    .integer()
                    .not_null()
                    .default(DEFAULT_LATE_UPLOAD_HOURS)
                    .to_owned(),
            ),
            (
                SessionMembers::Table.into_iden(),
                ColumnDef::new(SessionMembers::Notifications)
                    .string_len(16)
                    .not_null()
                    .default("all")
                    .to_owned(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(SessionBans::Table)
                    .col(ColumnDef::new(SessionBans::SessionId).uuid().not_null())
                    .col(ColumnDef::new(SessionBans::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(SessionBans::BannedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(SessionBans::SessionId)
                            .col(SessionBans::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SessionBans::Table, SessionBans::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SessionBans::Table, SessionBans::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The primary key serves a session's list; deleting a user cascades through this one.
        manager
            .create_index(
                Index::create()
                    .name("idx_session_bans_user")
                    .table(SessionBans::Table)
                    .col(SessionBans::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SessionBans::Table).to_owned())
            .await?;
        let columns = [
            (
                Sessions::Table.into_iden(),
                Sessions::JoinsLocked.into_iden(),
            ),
            (
                Sessions::Table.into_iden(),
                Sessions::LateUploadHours.into_iden(),
            ),
            (
                SessionMembers::Table.into_iden(),
                SessionMembers::Notifications.into_iden(),
            ),
        ];
        for (table, column) in columns {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    JoinsLocked,
    LateUploadHours,
}

#[derive(DeriveIden)]
enum SessionMembers {
    Table,
    Notifications,
}

#[derive(DeriveIden)]
enum SessionBans {
    Table,
    SessionId,
    UserId,
    BannedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
