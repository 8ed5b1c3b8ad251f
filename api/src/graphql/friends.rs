//! Friends: requests, answers and the friend list.

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use entity::friendship::{self, FriendshipStatus};

use super::ContextExt;
use super::connection::{self, Conn};
use super::ids::{self, Kind};
use super::users::User;
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::Viewer;
use crate::service::friends::{self as service, Direction};
use crate::service::pagination::PageRequest;

pub struct FriendRequest(pub friendship::Model);

impl FriendRequest {
    /// The status as the viewer may see it (a declined request looks pending to its sender).
    fn viewer_status(&self, ctx: &Context<'_>) -> FriendshipStatus {
        match ctx.viewer() {
            Viewer::User(me) => service::visible_status(me, &self.0),
            Viewer::Anonymous => self.0.status,
        }
    }
}

/// Where a friend request stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum FriendRequestStatus {
    /// Waiting for an answer.
    Pending,
    /// The two are friends.
    Accepted,
    /// The addressee said no (only the addressee ever sees this).
    Declined,
    /// The sender withdrew it.
    Cancelled,
}

impl From<FriendshipStatus> for FriendRequestStatus {
    fn from(status: FriendshipStatus) -> Self {
        match status {
            FriendshipStatus::Pending => Self::Pending,
            FriendshipStatus::Accepted => Self::Accepted,
            FriendshipStatus::Declined => Self::Declined,
            FriendshipStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// Which requests to list: received by the viewer, or sent by the viewer.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum FriendRequestDirection {
    /// Requests others sent the viewer.
    Incoming,
    /// Requests the viewer sent.
    Outgoing,
}

/// A request for friendship between two users, and its outcome.
#[Object]
impl FriendRequest {
    /// Global id of the request.
    pub async fn id(&self) -> ID {
        ids::encode(Kind::FriendRequest, self.0.id)
    }

    /// Who sent the request.
    async fn from(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(ctx.loaders()?.user(self.0.requester_id).await?))
    }

    /// Who received it.
    async fn to(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(ctx.loaders()?.user(self.0.addressee_id()).await?))
    }

    /// PENDING until answered; then ACCEPTED, DECLINED or CANCELLED.
    async fn status(&self, ctx: &Context<'_>) -> FriendRequestStatus {
        self.viewer_status(ctx).into()
    }

    /// When the request was sent.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the request was accepted, declined or cancelled.
    async fn responded_at(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        match self.viewer_status(ctx) {
            FriendshipStatus::Pending => None,
            _ => self.0.responded_at,
        }
    }
}

/// The viewer's friends, for `Query.friends`.
async fn list_friends(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Conn<User>> {
    let page = PageRequest::parse(first, after.as_deref())?;
    let page = service::list_friends(&ctx.deps()?.db, ctx.viewer(), page).await?;
    Ok(connection::from_page(page, User::new))
}

#[derive(Default)]
pub struct FriendQuery;

#[Object]
impl FriendQuery {
    /// The viewer's friends, by name.
    #[graphql(complexity = "connection::complexity(first, child_complexity)")]
    async fn friends(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<User>> {
        list_friends(ctx, first, after).await
    }

    /// Pending requests the viewer received (INCOMING) or sent (OUTGOING), newest first.
    #[graphql(complexity = "connection::complexity(first, child_complexity)")]
    async fn friend_requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Received (INCOMING) or sent (OUTGOING).")]
        direction: FriendRequestDirection,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<FriendRequest>> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let direction = match direction {
            FriendRequestDirection::Incoming => Direction::Incoming,
            FriendRequestDirection::Outgoing => Direction::Outgoing,
        };
        let page = service::list_requests(&ctx.deps()?.db, ctx.viewer(), direction, page).await?;
        Ok(connection::from_page(page, FriendRequest))
    }
}

#[derive(Default)]
pub struct FriendMutation;

#[Object]
impl FriendMutation {
    /// Asks a user to be friends. If they already asked the viewer, this accepts their
    /// request instead (the result is then ACCEPTED).
    async fn send_friend_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to ask.")] user_id: ID,
    ) -> Result<FriendRequest> {
        ctx.rate_limit(Rule::FriendRequest)?;
        let target = ids::expect(Kind::User, &user_id, "userId")?;
        let row = service::send_request(&ctx.deps()?.db, ctx.viewer(), target).await?;
        Ok(FriendRequest(row))
    }

    /// Accepts a request the viewer received.
    async fn accept_friend_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the FriendRequest.")] request_id: ID,
    ) -> Result<FriendRequest> {
        let id = ids::expect(Kind::FriendRequest, &request_id, "requestId")?;
        Ok(FriendRequest(
            service::accept_request(&ctx.deps()?.db, ctx.viewer(), id).await?,
        ))
    }

    /// Declines a request the viewer received. The sender is not told: to them it stays
    /// pending, and they cannot send it again (they may cancel it).
    async fn decline_friend_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the FriendRequest.")] request_id: ID,
    ) -> Result<FriendRequest> {
        let id = ids::expect(Kind::FriendRequest, &request_id, "requestId")?;
        Ok(FriendRequest(
            service::decline_request(&ctx.deps()?.db, ctx.viewer(), id).await?,
        ))
    }

    /// Withdraws a request the viewer sent.
    async fn cancel_friend_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the FriendRequest.")] request_id: ID,
    ) -> Result<FriendRequest> {
        let id = ids::expect(Kind::FriendRequest, &request_id, "requestId")?;
        Ok(FriendRequest(
            service::cancel_request(&ctx.deps()?.db, ctx.viewer(), id).await?,
        ))
    }

    /// Ends a friendship. Returns false if the two were not friends.
    async fn remove_friend(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The friend to remove.")] user_id: ID,
    ) -> Result<bool> {
        let other = ids::expect(Kind::User, &user_id, "userId")?;
        Ok(service::remove_friend(&ctx.deps()?.db, ctx.viewer(), other).await?)
    }
}
