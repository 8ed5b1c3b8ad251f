//! `users`: one row per person. The lower-cased e-mail address is the account identity;
//! guests have none.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `None` for a guest, who has no account beyond one session.
    #[sea_orm(unique)]
    pub email: Option<String>,
    pub name: String,
    pub avatar_url: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Joined one session by name, without signing in: can do in that session what a member
    /// does, and nothing else.
    pub is_guest: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
