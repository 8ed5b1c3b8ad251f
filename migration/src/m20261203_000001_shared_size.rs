//! Session archives: the size of each photo's location-free copy, recorded when processing
//! writes it, so an archive's exact length is known before its first byte is sent.
//! Photos processed before this migration have none; the archive asks the store for theirs
//! once and records it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Photos::Table)
                    .add_column(ColumnDef::new(Photos::SharedByteSize).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Photos::Table)
                    .drop_column(Photos::SharedByteSize)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Photos {
    Table,
    SharedByteSize,
}
