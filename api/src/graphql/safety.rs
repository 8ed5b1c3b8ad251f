//! Safety: blocking users, reporting photos and deleting one's account (App Store 1.2 and
//! 5.1.1(v)). Thin resolvers over `service::{blocks, reports}`.

use async_graphql::{Context, ID, Object, Result};

use super::ContextExt;
use super::ids::{self, Kind};
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::{accounts, blocks, reports};

#[derive(Default)]
pub struct SafetyMutation;

#[Object]
impl SafetyMutation {
    /// Reports a photo to the operators. Any current member who can see the photo may; the
    /// reason is 1 to 500 characters. Reporting the same photo again changes nothing and
    /// still returns true. Once enough distinct members (`PHOTON_REPORT_HIDE_THRESHOLD`,
    /// default 3) have reported it, the photo is hidden from everyone but its uploader until
    /// an operator reviews it.
    async fn report_photo(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The photo to report.")] photo_id: ID,
        #[graphql(desc = "Why, in 1 to 500 characters.")] reason: String,
    ) -> Result<bool> {
        ctx.rate_limit(Rule::Report)?;
        let photo_id = ids::expect(Kind::Photo, &photo_id, "photoId")?;
        let deps = ctx.deps()?;
        Ok(reports::report_photo(
            &deps.db,
            &deps.config.safety,
            ctx.viewer(),
            photo_id,
            &reason,
        )
        .await?)
    }

    /// Blocks a user: their photos disappear from every list, lookup and live subscription
    /// the viewer sees, their friend requests no longer reach the viewer, and any friendship
    /// or pending request between the two ends. They are not told: a friend request from
    /// them still appears to them to be sent. Idempotent. Guests may block the members they
    /// share a session with. NOT_FOUND for an unknown user (or a guest the viewer shares no
    /// session with); BAD_USER_INPUT for yourself.
    async fn block_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to block.")] user_id: ID,
    ) -> Result<bool> {
        let user_id = ids::expect(Kind::User, &user_id, "userId")?;
        Ok(blocks::block_user(&ctx.deps()?.db, ctx.viewer(), user_id).await?)
    }

    /// Undoes `blockUser`: their photos reappear. A friendship it ended does not come back.
    /// Idempotent.
    async fn unblock_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to unblock.")] user_id: ID,
    ) -> Result<bool> {
        let user_id = ids::expect(Kind::User, &user_id, "userId")?;
        Ok(blocks::unblock_user(&ctx.deps()?.db, ctx.viewer(), user_id).await?)
    }

    /// Deletes the viewer's account, guest or not, at once and for good: its sign-ins,
    /// devices, tokens, friendships, memberships and photos (rows now, stored bytes as soon
    /// as no upload link can bring them back). The others see it leave (`MemberLeft`) and its
    /// photos go (`PhotoDeleted`). A session it owns passes to its longest-standing current
    /// member with an account, else its longest-standing guest (`SessionUpdated`), so the
    /// people still in it keep their album; one with nobody else in it is deleted with its
    /// photos. Access tokens already issued stop working for anything that writes, and find
    /// nothing; UNAUTHENTICATED once the account is gone.
    async fn delete_account(&self, ctx: &Context<'_>) -> Result<bool> {
        let deps = ctx.deps()?;
        Ok(accounts::delete_account(
            &deps.db,
            deps.store.as_ref(),
            &deps.config.upload_rules,
            ctx.viewer(),
        )
        .await?)
    }
}
