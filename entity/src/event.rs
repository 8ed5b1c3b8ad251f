//! `events`: the append-only log of what happened in a session (and the push outbox). Ids only
//! grow, so an event id is a resume cursor for subscriptions.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The session the event belongs to; `None` for user-level events such as friend requests.
    pub session_id: Option<Uuid>,
    /// The user who caused it.
    pub actor_id: Option<Uuid>,
    pub kind: EventKind,
    pub payload: Json,
    pub created_at: DateTimeUtc,
    pub push_state: PushState,
    /// How many times the dispatcher has tried to deliver this event's pushes.
    pub push_attempts: i32,
    /// A retried push waits until then (honouring FCM's `Retry-After`).
    pub push_not_before: Option<DateTimeUtc>,
    /// The event's place in its session's log, counting from 1 with no gaps (see
    /// `session::Model::event_seq`); `None` for events of no session and for those written
    /// before sequences existed.
    pub session_seq: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum EventKind {
    #[sea_orm(string_value = "member_joined")]
    MemberJoined,
    #[sea_orm(string_value = "member_left")]
    MemberLeft,
    #[sea_orm(string_value = "member_removed")]
    MemberRemoved,
    #[sea_orm(string_value = "session_updated")]
    SessionUpdated,
    #[sea_orm(string_value = "photos_expiring")]
    PhotosExpiring,
    #[sea_orm(string_value = "member_invited")]
    MemberInvited,
    #[sea_orm(string_value = "session_ended")]
    SessionEnded,
    #[sea_orm(string_value = "photo_added")]
    PhotoAdded,
    #[sea_orm(string_value = "photo_deleted")]
    PhotoDeleted,
    /// A photo's derivatives are ready, or its processing has ended without them.
    #[sea_orm(string_value = "photo_processed")]
    PhotoProcessed,
    #[sea_orm(string_value = "friend_requested")]
    FriendRequested,
    /// Whom the actor blocks changed: their live subscriptions re-read it. Of no session.
    #[sea_orm(string_value = "blocks_changed")]
    BlocksChanged,
}

/// Where an event stands with the push dispatcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum PushState {
    /// Nobody is pushed for this event.
    #[sea_orm(string_value = "none")]
    None,
    /// Waiting for the dispatcher.
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
