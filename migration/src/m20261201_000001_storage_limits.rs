//! Storage abuse and push dedup: objects waiting to be removed once no URL can write them any
//! more, marks of pushes already sent, and the index the event retention deletes by.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn time<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key to sessions: an object must be removed even after its session row.
        manager
            .create_table(
                Table::create()
                    .table(StorageOrphans::Table)
                    .col(ColumnDef::new(StorageOrphans::SessionId).uuid().not_null())
                    .col(ColumnDef::new(StorageOrphans::Sha256).string().not_null())
                    .col(time(StorageOrphans::DeleteAfter))
                    .primary_key(
                        Index::create()
                            .col(StorageOrphans::SessionId)
                            .col(StorageOrphans::Sha256),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_storage_orphans_delete_after")
                    .table(StorageOrphans::Table)
                    .col(StorageOrphans::DeleteAfter)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PushMarks::Table)
                    .col(
                        ColumnDef::new(PushMarks::Mark)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(time(PushMarks::PushedAt))
                    .col(time(PushMarks::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_push_marks_expires_at")
                    .table(PushMarks::Table)
                    .col(PushMarks::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        // Retention deletes by age: without it every sweep scans the whole log.
        manager
            .create_index(
                Index::create()
                    .name("idx_events_created_at")
                    .table(Events::Table)
                    .col(Events::CreatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_events_created_at")
                    .table(Events::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(PushMarks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StorageOrphans::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum StorageOrphans {
    Table,
    SessionId,
    Sha256,
    DeleteAfter,
}

#[derive(DeriveIden)]
enum PushMarks {
    Table,
    Mark,
    PushedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    CreatedAt,
}
