//! Safety: users block one another, members report photos, and a photo reported often enough
//! is hidden (`photos.hidden_at`) from everyone but its uploader until an operator decides.
//!
//! Both new tables cascade from `users` and `photos`, so deleting an account or a photo takes
//! its blocks and reports with it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UserBlocks::Table)
                    .col(ColumnDef::new(UserBlocks::BlockerId).uuid().not_null())
                    .col(ColumnDef::new(UserBlocks::BlockedId).uuid().not_null())
                    .col(
                        ColumnDef::new(UserBlocks::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(UserBlocks::BlockerId)
                            .col(UserBlocks::BlockedId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserBlocks::Table, UserBlocks::BlockerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserBlocks::Table, UserBlocks::BlockedId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The primary key serves "whom do I block"; this serves "who blocks me" and cascades.
        manager
            .create_index(
                Index::create()
                    .name("idx_user_blocks_blocked")
                    .table(UserBlocks::Table)
                    .col(UserBlocks::BlockedId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PhotoReports::Table)
                    .col(ColumnDef::new(PhotoReports::PhotoId).uuid().not_null())
                    .col(ColumnDef::new(PhotoReports::ReporterId).uuid().not_null())
                    .col(ColumnDef::new(PhotoReports::Reason).text().not_null())
                    .col(
                        ColumnDef::new(PhotoReports::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(PhotoReports::PhotoId)
                            .col(PhotoReports::ReporterId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PhotoReports::Table, PhotoReports::PhotoId)
                            .to(Photos::Table, Photos::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PhotoReports::Table, PhotoReports::ReporterId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_photo_reports_reporter")
                    .table(PhotoReports::Table)
                    .col(PhotoReports::ReporterId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Photos::Table)
                    .add_column(
                        ColumnDef::new(Photos::HiddenAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Photos::Table)
                    .drop_column(Photos::HiddenAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(PhotoReports::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(UserBlocks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum UserBlocks {
    Table,
    BlockerId,
    BlockedId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PhotoReports {
    Table,
    PhotoId,
    ReporterId,
    Reason,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Photos {
    Table,
    Id,
    HiddenAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
