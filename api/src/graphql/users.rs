//! Users: `me`, look-ups and the viewer's profile.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result};
use entity::user;

use super::ContextExt;
use super::ids::{self, Kind};
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::Viewer;
use crate::service::friends::Standing;
use crate::service::users::{self as service, ProfileChange};

pub struct User {
    model: user::Model,
    /// Set when the resolver already knows this is the viewer (e.g. right after sign-in,
    /// when the request itself was still anonymous).
    is_viewer: bool,
}

impl User {
    pub fn new(model: user::Model) -> Self {
        Self {
            model,
            is_viewer: false,
        }
    }

    pub fn viewer(model: user::Model) -> Self {
        Self {
            model,
            is_viewer: true,
        }
    }

    async fn standing(&self, ctx: &Context<'_>) -> Result<Standing> {
        if self.is_viewer {
            return Ok(Standing::SelfUser);
        }
        let Viewer::User(me) = ctx.viewer() else {
            return Ok(Standing::None);
        };
        if me == self.model.id {
            return Ok(Standing::SelfUser);
        }
        let row = match ctx.loaders()?.friendships() {
            Some(loader) => loader.load_one(self.model.id).await?,
            None => None,
        };
        Ok(crate::service::friends::standing(
            me,
            self.model.id,
            row.as_ref(),
        ))
    }
}

/// How a user stands with the viewer.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum FriendshipStatus {
    /// The viewer.
    #[graphql(name = "SELF")]
    SelfUser,
    /// No friendship and no pending request.
    None,
    /// The viewer sent a request that is pending.
    RequestSent,
    /// This user sent the viewer a request that is pending.
    RequestReceived,
    /// Friends: each sees the other's e-mail.
    Friends,
}

impl From<Standing> for FriendshipStatus {
    fn from(standing: Standing) -> Self {
        match standing {
            Standing::SelfUser => Self::SelfUser,
            Standing::None => Self::None,
            Standing::RequestSent => Self::RequestSent,
            Standing::RequestReceived => Self::RequestReceived,
            Standing::Friends => Self::Friends,
        }
    }
}

/// A person using Photon.
#[Object]
impl User {
    /// Global id of the user.
    pub async fn id(&self) -> ID {
        ids::encode(Kind::User, self.model.id)
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.model.name
    }

    /// Picture URL, if the user set one.
    async fn avatar_url(&self) -> Option<&str> {
        self.model.avatar_url.as_deref()
    }

    /// The e-mail address: only for the viewer and the viewer's friends, null for others
    /// (and always for guests, who have none).
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(match self.standing(ctx).await? {
            Standing::SelfUser | Standing::Friends => self.model.email.as_deref(),
            _ => None,
        })
    }

    /// How this user stands with the viewer.
    async fn friendship(&self, ctx: &Context<'_>) -> Result<FriendshipStatus> {
        Ok(self.standing(ctx).await?.into())
    }

    /// Joined one session with a name and no account (`joinSessionAsGuest`): a member of that
    /// session and nothing else. Cannot be befriended or invited.
    async fn is_guest(&self) -> bool {
        self.model.is_guest
    }
}

/// Changes to the viewer's profile; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// New display name, 1 to 64 characters.
    name: Option<String>,
    /// New avatar, an http(s) URL; null or "" removes it.
    avatar_url: MaybeUndefined<String>,
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let user = service::get_me(&ctx.deps()?.db, ctx.viewer()).await?;
        Ok(User::viewer(user))
    }

    /// A user by id, or null if there is none.
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A User id.")] id: ID,
    ) -> Result<Option<User>> {
        let id = ids::expect(Kind::User, &id, "id")?;
        let user = service::find_user(&ctx.deps()?.db, ctx.viewer(), id).await?;
        Ok(user.map(User::new))
    }

    /// The user with exactly this e-mail address (case-insensitive), or null.
    async fn find_user_by_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The whole address; case and surrounding spaces are ignored.")]
        email: String,
    ) -> Result<Option<User>> {
        ctx.rate_limit(Rule::FindUserByEmail)?;
        let user = service::find_user_by_email(&ctx.deps()?.db, ctx.viewer(), &email).await?;
        Ok(user.map(User::new))
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Changes the viewer's name or avatar.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change.")] input: UpdateProfileInput,
    ) -> Result<User> {
        let change = ProfileChange {
            name: input.name,
            avatar_url: match input.avatar_url {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(url) => Some(Some(url)),
            },
        };
        let user = service::update_profile(&ctx.deps()?.db, ctx.viewer(), change).await?;
        Ok(User::viewer(user))
    }
}
