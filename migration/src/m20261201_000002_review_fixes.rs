//! Review fixes: how far each session's event log has been pruned (so a resume from an older
//! cursor is answered with `CURSOR_EXPIRED` instead of silently skipping what was pruned), and
//! which devices already received an event's push (so a retry goes only to the devices that
//! have not).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventHorizons::Table)
                    .col(
                        ColumnDef::new(EventHorizons::SessionId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EventHorizons::PrunedThrough)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from_tbl(EventHorizons::Table)
                            .from_col(EventHorizons::SessionId)
                            .to_tbl(Sessions::Table)
                            .to_col(Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PushDeliveries::Table)
                    .col(
                        ColumnDef::new(PushDeliveries::EventId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PushDeliveries::DeviceId).uuid().not_null())
                    .primary_key(
                        Index::create()
                            .col(PushDeliveries::EventId)
                            .col(PushDeliveries::DeviceId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from_tbl(PushDeliveries::Table)
                            .from_col(PushDeliveries::EventId)
                            .to_tbl(Events::Table)
                            .to_col(Events::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from_tbl(PushDeliveries::Table)
                            .from_col(PushDeliveries::DeviceId)
                            .to_tbl(Devices::Table)
                            .to_col(Devices::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Deleting a device cascades here.
        manager
            .create_index(
                Index::create()
                    .name("idx_push_deliveries_device")
                    .table(PushDeliveries::Table)
                    .col(PushDeliveries::DeviceId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PushDeliveries::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(EventHorizons::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EventHorizons {
    Table,
    SessionId,
    PrunedThrough,
}

#[derive(DeriveIden)]
enum PushDeliveries {
    Table,
    EventId,
    DeviceId,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
}
