//! A contiguous sequence of each session's events, so a replica that is told about event n+2
//! without having seen n+1 knows it missed a wake-up and reads the log. Event ids come from
//! one sequence for all sessions and have gaps; `events.session_seq` has none, because it is
//! taken from `sessions.event_seq` under the session's row lock in the writer's transaction.
//! Events written before this migration (and those of no session) have none, and are
//! delivered by id alone, as before.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(
                        ColumnDef::new(Sessions::EventSeq)
                            .big_integer()
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
                    .add_column(ColumnDef::new(Events::SessionSeq).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Events::Table)
                    .drop_column(Events::SessionSeq)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::EventSeq)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    EventSeq,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    SessionSeq,
}
