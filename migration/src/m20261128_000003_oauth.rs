//! Sign-in with GitHub and Discord: the states of sign-ins in progress at a provider, and the
//! one-time login codes that hand a finished sign-in to the app. Both are short-lived and
//! stored only as hashes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn text<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).string().not_null().take()
}

fn time<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthStates::Table)
                    .col(text(OauthStates::StateHash).primary_key())
                    .col(text(OauthStates::Provider))
                    .col(text(OauthStates::RedirectUri))
                    .col(text(OauthStates::CodeChallenge))
                    .col(text(OauthStates::PkceVerifier))
                    .col(time(OauthStates::CreatedAt))
                    .col(time(OauthStates::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        // The sweeper deletes by expiry.
        manager
            .create_index(
                Index::create()
                    .name("idx_oauth_states_expires_at")
                    .table(OauthStates::Table)
                    .col(OauthStates::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginCodes::Table)
                    .col(text(LoginCodes::CodeHash).primary_key())
                    .col(ColumnDef::new(LoginCodes::UserId).uuid().not_null())
                    .col(text(LoginCodes::CodeChallenge))
                    .col(time(LoginCodes::CreatedAt))
                    .col(time(LoginCodes::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from_tbl(LoginCodes::Table)
                            .from_col(LoginCodes::UserId)
                            .to_tbl(Users::Table)
                            .to_col(Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_login_codes_expires_at")
                    .table(LoginCodes::Table)
                    .col(LoginCodes::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        // Deleting a user cascades here; the index keeps that from scanning the table.
        manager
            .create_index(
                Index::create()
                    .name("idx_login_codes_user")
                    .table(LoginCodes::Table)
                    .col(LoginCodes::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginCodes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OauthStates::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    StateHash,
    Provider,
    RedirectUri,
    CodeChallenge,
    PkceVerifier,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum LoginCodes {
    Table,
    CodeHash,
    UserId,
    CodeChallenge,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
