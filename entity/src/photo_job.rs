//! `photo_jobs`: the processing queue, one row per photo still to process. A worker claims a
//! row by stamping a lease into `not_before` (and counting the attempt); the row goes when the
//! photo's outcome is written, and with its photo.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "photo_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub photo_id: Uuid,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// Not to be claimed before then: a worker's lease, or a retry's back-off. `None`: due.
    pub not_before: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// Why the last attempt failed, for operators.
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
