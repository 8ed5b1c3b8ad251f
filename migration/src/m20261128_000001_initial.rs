//! The first schema: users and their sign-in identities, friendships, sessions and members,
//! photos, push devices, refresh tokens and the event log.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn uuid_pk<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().primary_key().take()
}

fn uuid_col<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().take()
}

fn text<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).string().not_null().take()
}

fn time<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn time_null<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().take()
}

fn fk<F: IntoIden, T: IntoIden, C: IntoIden>(
    from_table: F,
    from_col: C,
    to_table: T,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from_tbl(from_table)
        .from_col(from_col)
        .to_tbl(to_table)
        .to_col(Alias::new("id"))
        .on_delete(on_delete)
        .take()
}

fn index<T: IntoIden>(name: &str, table: T, cols: Vec<DynIden>) -> IndexCreateStatement {
    let mut stmt = Index::create().name(name).table(table).take();
    for col in cols {
        stmt.col(col);
    }
    stmt
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid_pk(Users::Id))
                    .col(text(Users::Email).unique_key())
                    .col(text(Users::Name))
                    .col(ColumnDef::new(Users::AvatarUrl).string().null())
                    .col(time(Users::CreatedAt))
                    .col(time(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Name-prefix search and friend lists ordered by name.
        manager
            .create_index(index(
                "idx_users_name",
                Users::Table,
                vec![Users::Name.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Identities::Table)
                    .col(uuid_pk(Identities::Id))
                    .col(text(Identities::Provider))
                    .col(text(Identities::Subject))
                    .col(uuid_col(Identities::UserId))
                    .col(time(Identities::CreatedAt))
                    .foreign_key(&mut fk(
                        Identities::Table,
                        Identities::UserId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_identities_provider_subject",
                    Identities::Table,
                    vec![
                        Identities::Provider.into_iden(),
                        Identities::Subject.into_iden(),
                    ],
                )
                .unique()
                .take(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_identities_user",
                Identities::Table,
                vec![Identities::UserId.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Friendships::Table)
                    .col(uuid_pk(Friendships::Id))
                    .col(uuid_col(Friendships::UserLowId))
                    .col(uuid_col(Friendships::UserHighId))
                    .col(uuid_col(Friendships::RequesterId))
                    .col(
                        ColumnDef::new(Friendships::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(time(Friendships::CreatedAt))
                    .col(time_null(Friendships::RespondedAt))
                    // The pair is stored in a canonical order, so (a, b) and (b, a) collide in
                    // the unique index below.
                    .check(Expr::col(Friendships::UserLowId).lt(Expr::col(Friendships::UserHighId)))
                    .check(
                        Expr::col(Friendships::RequesterId)
                            .eq(Expr::col(Friendships::UserLowId))
                            .or(Expr::col(Friendships::RequesterId)
                                .eq(Expr::col(Friendships::UserHighId))),
                    )
                    .foreign_key(&mut fk(
                        Friendships::Table,
                        Friendships::UserLowId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        Friendships::Table,
                        Friendships::UserHighId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_friendships_pair",
                    Friendships::Table,
                    vec![
                        Friendships::UserLowId.into_iden(),
                        Friendships::UserHighId.into_iden(),
                    ],
                )
                .unique()
                .take(),
            )
            .await?;
        // The unique index serves look-ups by the low id; this one serves the high id.
        manager
            .create_index(index(
                "idx_friendships_high",
                Friendships::Table,
                vec![
                    Friendships::UserHighId.into_iden(),
                    Friendships::Status.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(uuid_pk(Sessions::Id))
                    .col(text(Sessions::Title))
                    .col(uuid_col(Sessions::OwnerId))
                    .col(text(Sessions::InviteCode).unique_key())
                    .col(
                        ColumnDef::new(Sessions::PhotoLifetimeHours)
                            .integer()
                            .not_null(),
                    )
                    .col(time(Sessions::CreatedAt))
                    .col(time_null(Sessions::EndedAt))
                    .foreign_key(&mut fk(
                        Sessions::Table,
                        Sessions::OwnerId,
                        Users::Table,
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SessionMembers::Table)
                    .col(uuid_col(SessionMembers::SessionId))
                    .col(uuid_col(SessionMembers::UserId))
                    .col(
                        ColumnDef::new(SessionMembers::Role)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(time(SessionMembers::JoinedAt))
                    .col(time_null(SessionMembers::LeftAt))
                    .primary_key(
                        Index::create()
                            .col(SessionMembers::SessionId)
                            .col(SessionMembers::UserId),
                    )
                    .foreign_key(&mut fk(
                        SessionMembers::Table,
                        SessionMembers::SessionId,
                        Sessions::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        SessionMembers::Table,
                        SessionMembers::UserId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // "My sessions": the primary key serves look-ups by session, this one by user.
        manager
            .create_index(index(
                "idx_session_members_user",
                SessionMembers::Table,
                vec![
                    SessionMembers::UserId.into_iden(),
                    SessionMembers::SessionId.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Photos::Table)
                    .col(uuid_pk(Photos::Id))
                    .col(uuid_col(Photos::SessionId))
                    .col(uuid_col(Photos::UploaderId))
                    .col(ColumnDef::new(Photos::Sha256).string_len(64).not_null())
                    .col(text(Photos::ContentType))
                    .col(ColumnDef::new(Photos::ByteSize).big_integer().not_null())
                    .col(ColumnDef::new(Photos::Status).string_len(16).not_null())
                    .col(time(Photos::CreatedAt))
                    .col(time_null(Photos::ReadyAt))
                    .col(time_null(Photos::ExpiresAt))
                    .foreign_key(&mut fk(
                        Photos::Table,
                        Photos::SessionId,
                        Sessions::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        Photos::Table,
                        Photos::UploaderId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "uq_photos_session_sha256",
                    Photos::Table,
                    vec![Photos::SessionId.into_iden(), Photos::Sha256.into_iden()],
                )
                .unique()
                .take(),
            )
            .await?;
        // Listing a session's photos newest first.
        manager
            .create_index(index(
                "idx_photos_session_status_ready",
                Photos::Table,
                vec![
                    Photos::SessionId.into_iden(),
                    Photos::Status.into_iden(),
                    Photos::ReadyAt.into_iden(),
                ],
            ))
            .await?;
        // The expiry sweeper.
        manager
            .create_index(index(
                "idx_photos_expires_at",
                Photos::Table,
                vec![Photos::ExpiresAt.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .col(uuid_pk(Devices::Id))
                    .col(uuid_col(Devices::UserId))
                    .col(text(Devices::FcmToken).unique_key())
                    .col(ColumnDef::new(Devices::Platform).string_len(16).not_null())
                    .col(time(Devices::CreatedAt))
                    .col(time(Devices::LastSeenAt))
                    .foreign_key(&mut fk(
                        Devices::Table,
                        Devices::UserId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_devices_user",
                Devices::Table,
                vec![Devices::UserId.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(uuid_pk(RefreshTokens::Id))
                    .col(uuid_col(RefreshTokens::UserId))
                    .col(uuid_col(RefreshTokens::FamilyId))
                    .col(
                        ColumnDef::new(RefreshTokens::TokenHash)
                            .string_len(64)
                            .not_null()
                            .unique_key(),
                    )
                    .col(time(RefreshTokens::CreatedAt))
                    .col(time(RefreshTokens::ExpiresAt))
                    .col(time_null(RefreshTokens::RevokedAt))
                    .foreign_key(&mut fk(
                        RefreshTokens::Table,
                        RefreshTokens::UserId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_refresh_tokens_family",
                RefreshTokens::Table,
                vec![RefreshTokens::FamilyId.into_iden()],
            ))
            .await?;
        manager
            .create_index(index(
                "idx_refresh_tokens_expires_at",
                RefreshTokens::Table,
                vec![RefreshTokens::ExpiresAt.into_iden()],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(
                        ColumnDef::new(Events::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Events::SessionId).uuid().null())
                    .col(ColumnDef::new(Events::ActorId).uuid().null())
                    .col(ColumnDef::new(Events::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(Events::Payload).json_binary().not_null())
                    .col(time(Events::CreatedAt))
                    .col(ColumnDef::new(Events::PushState).string_len(16).not_null())
                    .foreign_key(&mut fk(
                        Events::Table,
                        Events::SessionId,
                        Sessions::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // Replaying a session's log after a cursor.
        manager
            .create_index(index(
                "idx_events_session_id",
                Events::Table,
                vec![Events::SessionId.into_iden(), Events::Id.into_iden()],
            ))
            .await?;
        // The push dispatcher's queue.
        manager
            .create_index(index(
                "idx_events_push_state",
                Events::Table,
                vec![Events::PushState.into_iden(), Events::Id.into_iden()],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Events::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Devices::Table.into_iden(),
            Photos::Table.into_iden(),
            SessionMembers::Table.into_iden(),
            Sessions::Table.into_iden(),
            Friendships::Table.into_iden(),
            Identities::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    AvatarUrl,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Identities {
    Table,
    Id,
    Provider,
    Subject,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Friendships {
    Table,
    Id,
    UserLowId,
    UserHighId,
    RequesterId,
    Status,
    CreatedAt,
    RespondedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Title,
    OwnerId,
    InviteCode,
    PhotoLifetimeHours,
    CreatedAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum SessionMembers {
    Table,
    SessionId,
    UserId,
    Role,
    JoinedAt,
    LeftAt,
}

#[derive(DeriveIden)]
enum Photos {
    Table,
    Id,
    SessionId,
    UploaderId,
    Sha256,
    ContentType,
    ByteSize,
    Status,
    CreatedAt,
    ReadyAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    UserId,
    FcmToken,
    Platform,
    CreatedAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    SessionId,
    ActorId,
    Kind,
    Payload,
    CreatedAt,
    PushState,
}
