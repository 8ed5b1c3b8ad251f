//! Real time and push: each photo's position in its session's event log (so a photo-list cursor
//! and a subscription cursor are the same thing), the push dispatcher's retry bookkeeping, and
//! the presence table that tells every replica who has a live subscription.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Photos::Table)
                    .add_column(ColumnDef::new(Photos::Seq).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_photos_session_seq")
                    .table(Photos::Table)
                    .col(Photos::SessionId)
                    .col(Photos::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .add_column(
                        ColumnDef::new(Events::PushAttempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .add_column(
                        ColumnDef::new(Events::PushNotBefore)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Presence::Table)
                    .col(ColumnDef::new(Presence::ReplicaId).uuid().not_null())
                    .col(ColumnDef::new(Presence::SessionId).uuid().not_null())
                    .col(ColumnDef::new(Presence::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(Presence::RefreshedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(Presence::ReplicaId)
                            .col(Presence::SessionId)
                            .col(Presence::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        // The dispatcher asks "who in this session is online".
        manager
            .create_index(
                Index::create()
                    .name("idx_presence_session_user")
                    .table(Presence::Table)
                    .col(Presence::SessionId)
                    .col(Presence::UserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Presence::Table).to_owned())
            .await?;
        for column in [Events::PushNotBefore, Events::PushAttempts] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Events::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_photos_session_seq")
                    .table(Photos::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Photos::Table)
                    .drop_column(Photos::Seq)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Photos {
    Table,
    SessionId,
    Seq,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    PushAttempts,
    PushNotBefore,
}

#[derive(DeriveIden)]
enum Presence {
    Table,
    ReplicaId,
    SessionId,
    UserId,
    RefreshedAt,
}
