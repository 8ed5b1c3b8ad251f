//! `presence`: who has a live `photoAdded` subscription, per replica. A replica writes a row
//! when a member's first subscription starts and deletes it when the last one goes; a row
//! counts only while its replica's heartbeat (`replicas`) is fresh, so the rows of a replica
//! that died stop counting and are swept later.

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
    /// When the row was (re)written.
    pub refreshed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
