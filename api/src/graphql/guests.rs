//! Guests: joining a session without an account, and claiming a guest's account later.

use async_graphql::{Context, Object, Result};

use super::ContextExt;
use super::auth::AuthPayload;
use super::users::User;
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::Viewer;
use crate::service::guests as service;

#[derive(Default)]
pub struct GuestMutation;

#[Object]
impl GuestMutation {
    /// Joins the session behind an invite code without an account: creates a guest named
    /// `name`, makes them a member and signs them in. A guest can do in that session what a
    /// member does, and nothing else. FORBIDDEN when the session does not take guests;
    /// CONFLICT when it has ended. Works without an access token (rate-limited per IP, like
    /// sign-in).
    async fn join_session_as_guest(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The code, as shown or typed (case and dashes do not matter).")]
        invite_code: String,
        #[graphql(desc = "What the others will see, 1 to 64 characters.")] name: String,
    ) -> Result<AuthPayload> {
        ctx.rate_limit(Rule::SignIn)?;
        let deps = ctx.deps()?;
        let signed_in = match ctx.viewer() {
            Viewer::User(id) => Some(id),
            Viewer::Anonymous => None,
        };
        let pair =
            service::join_as_guest(&deps.db, &deps.tokens, &invite_code, &name, signed_in).await?;
        Ok(AuthPayload(pair))
    }

    /// Takes over a guest account: the signed-in user presents the guest's refresh token (the
    /// app keeps it from `joinSessionAsGuest`), and every membership and photo of the guest
    /// becomes theirs. The guest's tokens stop working. UNAUTHENTICATED for a token that is
    /// not a live guest's; FORBIDDEN when the viewer is a guest.
    async fn claim_guest_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The guest's latest refresh token.")] refresh_token: String,
    ) -> Result<User> {
        ctx.rate_limit(Rule::JoinLeave)?;
        let user = service::claim(&ctx.deps()?.db, ctx.viewer(), &refresh_token).await?;
        Ok(User::viewer(user))
    }
}
