//! `replicas`: one row per running server, refreshed by its heartbeat. Presence rows count
//! only while their replica's row is fresh, so a heartbeat writes one row however many
//! subscriptions the replica holds (it used to rewrite every presence row, 10,000 rows every
//! ten seconds at 10,000 sockets).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Replicas::Table)
                    .col(ColumnDef::new(Replicas::Id).uuid().not_null().primary_key())
                    .col(
                        ColumnDef::new(Replicas::HeartbeatAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Replicas::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Replicas {
    Table,
    Id,
    HeartbeatAt,
}
