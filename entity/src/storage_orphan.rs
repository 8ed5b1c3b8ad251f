//! `storage_orphans`: objects whose photo row is gone, to be removed from the store once
//! `delete_after` has passed (when every upload URL that could still write them has expired),
//! unless a photo row has taken the key over by then.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "storage_orphans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    /// Lower-case hex SHA-256: with the session, the object's key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub sha256: String,
    pub delete_after: DateTimeUtc,
    /// The photo predates the per-photo folders: its one object is `sessions/{session}/{sha256}`.
    pub legacy_key: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
