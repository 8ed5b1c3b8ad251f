//! `friendships`: one row per unordered pair of users. The pair is stored as
//! (`user_low_id`, `user_high_id`) with `user_low_id < user_high_id` and a unique index on it,
//! so two users can never have two rows, however many requests race.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "friendships")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_low_id: Uuid,
    pub user_high_id: Uuid,
    /// Who sent the request that is (or was last) pending; the other user is the addressee.
    pub requester_id: Uuid,
    pub status: FriendshipStatus,
    pub created_at: DateTimeUtc,
    pub responded_at: Option<DateTimeUtc>,
}

impl Model {
    /// The user the request was sent to.
    pub fn addressee_id(&self) -> Uuid {
        if self.requester_id == self.user_low_id {
            self.user_high_id
        } else {
            self.user_low_id
        }
    }

    /// Whether `user_id` is one of the pair.
    pub fn involves(&self, user_id: Uuid) -> bool {
        self.user_low_id == user_id || self.user_high_id == user_id
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum FriendshipStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "accepted")]
    Accepted,
    #[sea_orm(string_value = "declined")]
    Declined,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
