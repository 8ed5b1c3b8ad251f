//! `photos`: one row per distinct photo in a session; (`session_id`, `sha256`) is unique, so the
//! same bytes uploaded twice are the same photo.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "photos")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    pub uploader_id: Uuid,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub content_type: String,
    pub byte_size: i64,
    pub status: PhotoStatus,
    pub created_at: DateTimeUtc,
    pub ready_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    /// The id of the `photo_added` event that announced it: its position in the session's log,
    /// shared by photo lists and subscriptions as their cursor. `None` while pending.
    pub seq: Option<i64>,
    /// Size as displayed (orientation applied), once processed.
    pub width: Option<i32>,
    pub height: Option<i32>,
    /// EXIF `DateTimeOriginal`, as an instant, and the offset the camera gave with it.
    pub taken_at: Option<DateTimeUtc>,
    pub taken_at_offset_minutes: Option<i32>,
    /// Base64 ThumbHash.
    pub thumbhash: Option<String>,
    pub processing: Processing,
    /// Why processing failed, for operators (never shown to clients).
    pub processing_error: Option<String>,
    /// The object predates the per-photo folder: it lives at `sessions/{session}/{sha256}`
    /// and has no derivatives.
    pub legacy_key: bool,
    /// Set once enough members reported it: hidden from everyone but its uploader until an
    /// operator keeps (clears this) or removes it.
    pub hidden_at: Option<DateTimeUtc>,
    /// Bytes of the location-free copy (`shared`), once processing wrote it; `None` before,
    /// when there is none, and for photos processed before sizes were recorded.
    pub shared_byte_size: Option<i64>,
}

/// Where a photo stands with the processing workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Processing {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "failed")]
    Failed,
    /// A format this build cannot decode (HEIC without libheif), or a photo from before
    /// processing existed.
    #[sea_orm(string_value = "unsupported")]
    Unsupported,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum PhotoStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "ready")]
    Ready,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
