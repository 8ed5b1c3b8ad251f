//! SeaORM entities, one module per table. These are storage types only: the GraphQL API has its
//! own types in `api/src/graphql`, so a column never reaches the schema by accident.

pub mod device;
pub mod event;
pub mod event_horizon;
pub mod friendship;
pub mod identity;
pub mod login_code;
pub mod oauth_state;
pub mod photo;
pub mod photo_job;
pub mod photo_report;
pub mod presence;
pub mod push_delivery;
pub mod push_mark;
pub mod refresh_token;
pub mod replica;
pub mod session;
pub mod session_ban;
pub mod session_member;
pub mod storage_orphan;
pub mod user;
pub mod user_block;

pub mod prelude {
    pub use super::device::Entity as Device;
    pub use super::event::Entity as Event;
    pub use super::event_horizon::Entity as EventHorizon;
    pub use super::friendship::Entity as Friendship;
    pub use super::identity::Entity as Identity;
    pub use super::login_code::Entity as LoginCode;
    pub use super::oauth_state::Entity as OauthState;
    pub use super::photo::Entity as Photo;
    pub use super::photo_job::Entity as PhotoJob;
    pub use super::photo_report::Entity as PhotoReport;
    pub use super::presence::Entity as Presence;
    pub use super::push_delivery::Entity as PushDelivery;
    pub use super::push_mark::Entity as PushMark;
    pub use super::refresh_token::Entity as RefreshToken;
    pub use super::replica::Entity as Replica;
    pub use super::session::Entity as Session;
    pub use super::session_ban::Entity as SessionBan;
    pub use super::session_member::Entity as SessionMember;
    pub use super::storage_orphan::Entity as StorageOrphan;
    pub use super::user::Entity as User;
    pub use super::user_block::Entity as UserBlock;
}
