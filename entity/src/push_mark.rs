//! `push_marks`: pushes already sent for something that must not be pushed again for a while
//! (a friend request re-sent after a cancel, an invite repeated). `mark` names the push, e.g.
//! `friend:{sender}:{recipient}`; until `expires_at` the same mark sends no push.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "push_marks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub mark: String,
    pub pushed_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
