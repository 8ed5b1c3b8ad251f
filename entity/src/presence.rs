//! `presence`: who has a live `photoAdded` subscription, per replica. Each replica refreshes its
//! own rows on a heartbeat and deletes them when the last subscription goes; rows whose
//! heartbeat stopped (a replica that died) are ignored once stale and swept later.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "presence")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub replica_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub refreshed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
