//! The Relay `Node` interface and `node(id:)`.

use async_graphql::{Context, ID, Interface, Object, Result};

use super::ContextExt;
use super::devices::Device;
use super::friends::FriendRequest;
use super::ids::{self, Kind};
use super::photos::Photo;
use super::sessions::Session;
use super::users::User;
use crate::error::ApiError;
use crate::service::{devices, friends, photos, sessions, users};

/// An object with a globally unique id.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "Globally unique; pass it to `node(id:)`."
))]
pub enum Node {
    User(User),
    Session(Session),
    FriendRequest(FriendRequest),
    Photo(Photo),
    Device(Device),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Any object by its id, or null if the viewer cannot see it.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Any global id.")] id: ID,
    ) -> Result<Option<Node>> {
        let (kind, uuid) =
            ids::decode(&id).ok_or_else(|| ApiError::bad_input("id", "id is not a valid id"))?;
        let db = &ctx.deps()?.db;
        let viewer = ctx.viewer();
        Ok(match kind {
            Kind::User => users::find_user(db, viewer, uuid)
                .await?
                .map(|u| Node::User(User::new(u))),
            Kind::Session => sessions::find_session(db, viewer, uuid)
                .await?
                .map(|s| Node::Session(Session(s))),
            Kind::FriendRequest => friends::find_request(db, viewer, uuid)
                .await?
                .map(|r| Node::FriendRequest(FriendRequest(r))),
            Kind::Photo => photos::find_photo(db, viewer, uuid)
                .await?
                .map(|p| Node::Photo(Photo(p))),
            Kind::Device => devices::find_device(db, viewer, uuid)
                .await?
                .map(|d| Node::Device(Device(d))),
        })
    }
}
