//! `session_members`: who belongs to a session. Leaving sets `left_at` rather than deleting the
//! row, so a member who comes back keeps one row and the primary key stops duplicate joins.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub role: SessionRole,
    pub joined_at: DateTimeUtc,
    pub left_at: Option<DateTimeUtc>,
    /// How much this member wants the session to push them.
    pub notifications: NotificationLevel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum SessionRole {
    #[sea_orm(string_value = "owner")]
    Owner,
    #[sea_orm(string_value = "member")]
    Member,
}

/// How much a session pushes one of its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum NotificationLevel {
    /// Photo pushes, paced; everything else as it happens.
    #[sea_orm(string_value = "all")]
    All,
    /// One summary of the photos after the session ends.
    #[sea_orm(string_value = "digest")]
    Digest,
    /// No pushes from this session.
    #[sea_orm(string_value = "none")]
    None,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::session::Entity",
        from = "Column::SessionId",
        to = "super::session::Column::Id",
        on_delete = "Cascade"
    )]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
