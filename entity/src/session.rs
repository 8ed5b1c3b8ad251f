//! `sessions`: one shared album. Members are in `session_members`; the invite code is unique.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub title: String,
    pub owner_id: Uuid,
    /// Normalised form (upper case, no separators) of the current invite code.
    #[sea_orm(unique)]
    pub invite_code: String,
    pub photo_lifetime_hours: i32,
    pub created_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    /// Whether `joinSessionAsGuest` may add new guests (existing ones stay either way).
    pub allow_guests: bool,
    /// Invite codes are refused while this is set; members stay.
    pub joins_locked: bool,
    /// Hours after the end in which members may still upload (0: none).
    pub late_upload_hours: i32,
    /// When the push dispatcher last claimed a push of this session's photos (pacing).
    pub photos_pushed_at: Option<DateTimeUtc>,
    /// When members were warned that the photos are about to expire (once).
    pub expiry_warned_at: Option<DateTimeUtc>,
    /// How many events the session's log has had: the `session_seq` of its latest event.
    /// Taken and raised under the session's row lock, so a session's sequence has no gaps.
    pub event_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session_member::Entity")]
    Members,
}

impl Related<super::session_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Members.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
