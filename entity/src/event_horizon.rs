//! `event_horizons`: the newest event id of a session that retention has deleted. A resume from
//! a cursor below it would skip events, so it is refused with `CURSOR_EXPIRED`. No row: nothing
//! of the session has been deleted yet.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_horizons")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    pub pruned_through: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
