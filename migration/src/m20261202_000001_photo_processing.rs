//! Photo processing: what the workers learn of a photo (size, when it was taken, ThumbHash),
//! where it stands, and the queue of jobs they claim.
//!
//! Objects now live under a folder per photo (`sessions/{session}/{sha256}/original`, with the
//! derivatives beside it). Photos already ready keep their object at the old key
//! (`legacy_key`) and are not processed: they expire within their session's photo lifetime.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        let columns = [
            ColumnDef::new(Photos::Width).integer().null().take(),
            ColumnDef::new(Photos::Height).integer().null().take(),
            ColumnDef::new(Photos::TakenAt)
                .timestamp_with_time_zone()
                .null()
                .take(),
            ColumnDef::new(Photos::TakenAtOffsetMinutes)
                .integer()
                .null()
                .take(),
            ColumnDef::new(Photos::Thumbhash).string().null().take(),
            ColumnDef::new(Photos::Processing)
                .string_len(16)
                .not_null()
                .default("pending")
                .take(),
            ColumnDef::new(Photos::ProcessingError).text().null().take(),
            ColumnDef::new(Photos::LegacyKey)
                .boolean()
                .not_null()
                .default(false)
                .take(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Photos::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // An orphan marker of an old photo names its one object, not a folder.
        manager
            .alter_table(
                Table::alter()
                    .table(StorageOrphans::Table)
                    .add_column(
                        ColumnDef::new(StorageOrphans::LegacyKey)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        // What was uploaded before keeps its key and is left as it is.
        manager
            .exec_stmt(
                Query::update()
                    .table(Photos::Table)
                    .value(Photos::LegacyKey, true)
                    .value(Photos::Processing, "unsupported")
                    .and_where(Expr::col(Photos::Status).eq("ready"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PhotoJobs::Table)
                    .col(
                        ColumnDef::new(PhotoJobs::PhotoId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PhotoJobs::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(PhotoJobs::NotBefore)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PhotoJobs::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PhotoJobs::LastError).text().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(PhotoJobs::Table, PhotoJobs::PhotoId)
                            .to(Photos::Table, Photos::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_photo_jobs_due")
                    .table(PhotoJobs::Table)
                    .col(PhotoJobs::NotBefore)
                    .col(PhotoJobs::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PhotoJobs::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StorageOrphans::Table)
                    .drop_column(StorageOrphans::LegacyKey)
                    .to_owned(),
            )
            .await?;
        for column in [
            Photos::LegacyKey,
            Photos::ProcessingError,
            Photos::Processing,
            Photos::Thumbhash,
            Photos::TakenAtOffsetMinutes,
            Photos::TakenAt,
            Photos::Height,
            Photos::Width,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Photos::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Photos {
    Table,
    Id,
    Status,
    Width,
    Height,
    TakenAt,
    TakenAtOffsetMinutes,
    Thumbhash,
    Processing,
    ProcessingError,
    LegacyKey,
}

#[derive(DeriveIden)]
enum StorageOrphans {
    Table,
    LegacyKey,
}

#[derive(DeriveIden)]
enum PhotoJobs {
    Table,
    PhotoId,
    Attempts,
    NotBefore,
    CreatedAt,
    LastError,
}
