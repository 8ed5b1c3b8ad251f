//! Sessions: creating, joining, inviting, leaving and ending shared albums.

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use entity::session_member::{self, NotificationLevel as Level, SessionRole as Role};

use super::ContextExt;
use super::connection::{self, Conn};
use super::ids::{self, Kind};
use super::loaders::{BansKey, MembersKey, PhotosKey};
use super::photos::Photo;
use super::users::User;
use crate::error::ApiError;
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::pagination::{Page, PageRequest};
use crate::service::sessions::{
    self as service, InvitePreview, NewSession, SessionChange, SessionView,
};
use crate::service::{Viewer, invite_code, moderation, notifications};

pub struct Session(pub SessionView);

/// A member's part in a session.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum SessionRole {
    /// Started the session; can end it and rotate its invite code.
    Owner,
    /// Joined with an invite.
    Member,
}

impl From<Role> for SessionRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Member => Self::Member,
        }
    }
}

/// How much a session pushes one member. Invites and friend requests are not a session's
/// and always arrive.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum NotificationLevel {
    /// A push for new photos, at most one per session every few minutes
    /// (`PHOTON_PUSH_MIN_INTERVAL_SECS`), summing up what arrived since.
    All,
    /// One summary of the photos after the session ends.
    Digest,
    /// No pushes from this session.
    None,
}

impl From<Level> for NotificationLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::All => Self::All,
            Level::Digest => Self::Digest,
            Level::None => Self::None,
        }
    }
}

impl From<NotificationLevel> for Level {
    fn from(level: NotificationLevel) -> Self {
        match level {
            NotificationLevel::All => Self::All,
            NotificationLevel::Digest => Self::Digest,
            NotificationLevel::None => Self::None,
        }
    }
}

/// A shared album, as one of its members sees it.
#[Object]
impl Session {
    /// Global id of the session.
    pub async fn id(&self) -> ID {
        ids::encode(Kind::Session, self.0.session.id)
    }

    /// What the owner called it.
    async fn title(&self) -> &str {
        &self.0.session.title
    }

    /// Who started the session.
    async fn owner(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(
            ctx.loaders()?.user(self.0.session.owner_id).await?,
        ))
    }

    /// The viewer's part in this session.
    async fn viewer_role(&self) -> SessionRole {
        self.0.viewer_role.into()
    }

    /// The code others join with, in groups of four (`7K3M-9QXR-2VHD-4TNB`). Case, dashes and
    /// the look-alikes O/0 and I/L/1 do not matter when it is typed back.
    async fn invite_code(&self) -> String {
        invite_code::display(&self.0.session.invite_code)
    }

    /// An https link that opens the app's join screen (also good for a QR code).
    async fn invite_url(&self, ctx: &Context<'_>) -> Result<String> {
        let code = invite_code::display(&self.0.session.invite_code);
        Ok(ctx.deps()?.config.public_link(&format!("join/{code}")))
    }

    /// How long photos stay after they are uploaded.
    async fn photo_lifetime_hours(&self) -> i32 {
        self.0.session.photo_lifetime_hours
    }

    /// When the session started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.session.created_at
    }

    /// When the owner ended the session; null while it is active.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.session.ended_at
    }

    /// Whether people without an account may join with the invite code
    /// (`joinSessionAsGuest`). The owner sets it at creation and with `updateSession`.
    async fn allow_guests(&self) -> bool {
        self.0.session.allow_guests
    }

    /// Whether the owner has locked joins: invite codes are refused (`JOINS_LOCKED`) while
    /// the members already in stay.
    async fn joins_locked(&self) -> bool {
        self.0.session.joins_locked
    }

    /// Hours after the end in which members may still upload (0: none), so a phone that had
    /// no signal at the venue catches up.
    async fn late_upload_hours(&self) -> i32 {
        self.0.session.late_upload_hours
    }

    /// How much this session pushes the viewer (`setSessionNotifications` changes it).
    async fn viewer_notifications(&self) -> NotificationLevel {
        self.0.viewer_notifications.into()
    }

    /// Ready photos, newest first.
    #[graphql(complexity = "connection::complexity(first, child_complexity)")]
    async fn photos(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<Photo>> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let key = PhotosKey {
            session_id: self.0.session.id,
            page,
        };
        let page = ctx
            .loaders()?
            .photos()
            .load_one(key)
            .await?
            .unwrap_or_else(Page::empty);
        Ok(connection::from_page(page, Photo))
    }

    /// How many ready photos the session has.
    async fn photo_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let count = ctx
            .loaders()?
            .photo_counts()
            .load_one(self.0.session.id)
            .await?;
        Ok(count.unwrap_or(0))
    }

    /// Users the owner removed and barred, in the order they were banned. Owner only: anyone
    /// else gets `FORBIDDEN`.
    #[graphql(complexity = "connection::complexity(first, child_complexity)")]
    async fn banned_members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<User>> {
        if !moderation::is_owner(&self.0) {
            return Err(ApiError::Forbidden("only the session's owner can see its bans").into());
        }
        let page = PageRequest::parse(first, after.as_deref())?;
        let key = BansKey {
            session_id: self.0.session.id,
            page,
        };
        let loaders = ctx.loaders()?;
        let page = loaders
            .bans()
            .load_one(key)
            .await?
            .unwrap_or_else(Page::empty);
        let users = loaders
            .users()
            .load_many(page.items.iter().map(|(_, ban)| ban.user_id))
            .await?;
        let page = page.filter_map(|ban| users.get(&ban.user_id).cloned());
        Ok(connection::from_page(page, User::new))
    }

    /// Current members, in the order they joined.
    #[graphql(complexity = "connection::complexity(first, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<SessionMember>> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let key = MembersKey {
            session_id: self.0.session.id,
            page,
        };
        let page = ctx
            .loaders()?
            .members()
            .load_one(key)
            .await?
            .unwrap_or_else(Page::empty);
        Ok(connection::from_page(page, SessionMember))
    }
}

pub struct SessionMember(session_member::Model);

/// A member of a session.
#[Object]
impl SessionMember {
    /// The member.
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(ctx.loaders()?.user(self.0.user_id).await?))
    }

    /// OWNER or MEMBER.
    async fn role(&self) -> SessionRole {
        self.0.role.into()
    }

    /// When they (last) joined.
    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }
}

pub struct SessionInvite(InvitePreview);

/// What an invite code leads to, shown before joining, to anyone holding the code (signed in
/// or not). No photos and no member list: only what the invite page shows too.
#[Object]
impl SessionInvite {
    /// The session's title.
    async fn title(&self) -> &str {
        &self.0.session.title
    }

    /// Who started the session (their e-mail only for the viewer and their friends, as
    /// everywhere).
    async fn owner(&self) -> User {
        User::new(self.0.owner.clone())
    }

    /// How many people are in it now.
    async fn member_count(&self) -> u64 {
        self.0.member_count
    }

    /// How many ready photos it has now (expired ones no longer count).
    async fn photo_count(&self) -> i64 {
        self.0.photo_count
    }

    /// An ended session can no longer be joined.
    async fn ended(&self) -> bool {
        self.0.session.ended_at.is_some()
    }

    /// Whether someone without an account may join with `joinSessionAsGuest`.
    async fn allows_guests(&self) -> bool {
        self.0.session.allow_guests
    }
}

/// A new session.
#[derive(InputObject)]
pub struct CreateSessionInput {
    /// 1 to 80 characters.
    title: String,
    /// How long photos stay after upload, 1 to `PHOTON_MAX_PHOTO_LIFETIME_HOURS` (72) hours
    /// (default 5).
    photo_lifetime_hours: Option<i32>,
    /// Whether people without an account may join with the invite code
    /// (`joinSessionAsGuest`); default true.
    allow_guests: Option<bool>,
    /// Hours after the end in which members may still upload, 0 to 72 (default 12).
    late_upload_hours: Option<i32>,
}

/// Changes to a session's settings; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateSessionInput {
    /// 1 to 80 characters.
    title: Option<String>,
    /// How long photos stay after upload, 1 to `PHOTON_MAX_PHOTO_LIFETIME_HOURS` (72). The
    /// photos already there follow: each expires this long after it was uploaded.
    photo_lifetime_hours: Option<i32>,
    /// Refuses invite codes (`JOINS_LOCKED`) while set; the members already in stay.
    joins_locked: Option<bool>,
    /// Whether new guests may join. Turning it off keeps the guests already in.
    allow_guests: Option<bool>,
    /// Hours after the end in which members may still upload, 0 to 72 (default 12).
    late_upload_hours: Option<i32>,
}

#[derive(Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// The sessions the viewer is in, newest first; `active` keeps only those that have not
    /// (true) or have (false) ended.
    #[graphql(complexity = "connection::complexity(first, child_complexity)")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "true: only active sessions; false: only ended ones; null: all.")]
        active: Option<bool>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge already seen.")] after: Option<String>,
    ) -> Result<Conn<Session>> {
        let page = PageRequest::parse(first, after.as_deref())?;
        let page = service::list_sessions(&ctx.deps()?.db, ctx.viewer(), active, page).await?;
        Ok(connection::from_page(page, Session))
    }

    /// A session the viewer is a member of; null for any other id, whether or not it exists.
    async fn session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] id: ID,
    ) -> Result<Option<Session>> {
        let id = ids::expect(Kind::Session, &id, "id")?;
        let view = service::find_session(&ctx.deps()?.db, ctx.viewer(), id).await?;
        Ok(view.map(Session))
    }

    /// A preview of the session behind an invite code, ended sessions included (`ended`);
    /// null for an unknown or replaced code. Needs no sign-in; without one, each call (each
    /// alias too) counts against the client IP's invite-link rate limit.
    async fn session_invite(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "An invite code, as shown or typed.")] code: String,
    ) -> Result<Option<SessionInvite>> {
        // Signed-in callers are accountable and the code space is 80 bits; the limit is for
        // anonymous scrapers, which could otherwise put thousands of aliases in one request.
        if ctx.viewer() == Viewer::Anonymous {
            ctx.rate_limit(Rule::JoinLink)?;
        }
        let preview = service::preview_invite(&ctx.deps()?.db, &code).await?;
        Ok(preview.map(SessionInvite))
    }
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Starts a session with the viewer as its owner.
    async fn create_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new session.")] input: CreateSessionInput,
    ) -> Result<Session> {
        let deps = ctx.deps()?;
        let new = NewSession {
            title: input.title,
            photo_lifetime_hours: input.photo_lifetime_hours,
            allow_guests: input.allow_guests,
            late_upload_hours: input.late_upload_hours,
            max_photo_lifetime_hours: deps.config.upload_rules.limits.max_photo_lifetime_hours,
        };
        Ok(Session(
            service::create_session(&deps.db, ctx.viewer(), new).await?,
        ))
    }

    /// Joins the session behind an invite code. Harmless if the viewer is already in it.
    async fn join_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The code, as shown or typed (case and dashes do not matter).")]
        invite_code: String,
    ) -> Result<Session> {
        ctx.rate_limit(Rule::JoinLeave)?;
        Ok(Session(
            service::join_session(&ctx.deps()?.db, ctx.viewer(), &invite_code).await?,
        ))
    }

    /// Invites friends of the viewer (at most 50 at once); they get a push with the invite.
    async fn invite_to_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] session_id: ID,
        #[graphql(desc = "Friends of the viewer to invite, at most 50.")] user_ids: Vec<ID>,
    ) -> Result<Session> {
        ctx.rate_limit(Rule::Invite)?;
        let session_id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        let user_ids = user_ids
            .iter()
            .map(|id| ids::expect(Kind::User, id, "userIds"))
            .collect::<Result<Vec<_>, _>>()?;
        let view =
            service::invite_to_session(&ctx.deps()?.db, ctx.viewer(), session_id, user_ids).await?;
        Ok(Session(view))
    }

    /// Leaves a session. The owner cannot leave; they end the session instead.
    async fn leave_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] session_id: ID,
    ) -> Result<bool> {
        ctx.rate_limit(Rule::JoinLeave)?;
        let id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        Ok(service::leave_session(&ctx.deps()?.db, ctx.viewer(), id).await?)
    }

    /// Ends a session for everyone (owner only). Nobody can join it afterwards.
    async fn end_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] session_id: ID,
    ) -> Result<Session> {
        let id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        Ok(Session(
            service::end_session(&ctx.deps()?.db, ctx.viewer(), id).await?,
        ))
    }

    /// Changes the session's settings (owner only).
    async fn update_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] session_id: ID,
        #[graphql(desc = "The settings to change.")] input: UpdateSessionInput,
    ) -> Result<Session> {
        let id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        let change = SessionChange {
            title: input.title,
            photo_lifetime_hours: input.photo_lifetime_hours,
            joins_locked: input.joins_locked,
            allow_guests: input.allow_guests,
            late_upload_hours: input.late_upload_hours,
        };
        let deps = ctx.deps()?;
        let max = deps.config.upload_rules.limits.max_photo_lifetime_hours;
        Ok(Session(
            service::update_session(&deps.db, ctx.viewer(), id, change, max).await?,
        ))
    }

    /// Removes a member (owner only); with `ban`, they cannot come back with any code, current
    /// or rotated, nor rejoin as a guest. Their subscriptions end, their pending uploads are
    /// refused and they get no more pushes from the session; their photos stay. The others
    /// see `MemberRemoved`. The owner cannot remove themselves.
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] session_id: ID,
        #[graphql(desc = "The member to remove.")] user_id: ID,
        #[graphql(desc = "Also bar them from coming back.", default = false)] ban: bool,
    ) -> Result<Session> {
        let session_id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        let user_id = ids::expect(Kind::User, &user_id, "userId")?;
        let view =
            moderation::remove_member(&ctx.deps()?.db, ctx.viewer(), session_id, user_id, ban)
                .await?;
        Ok(Session(view))
    }

    /// Chooses how much this session pushes the viewer (any member, for themselves): ALL
    /// (photo pushes, at most one every `PHOTON_PUSH_MIN_INTERVAL_SECS`), DIGEST (one summary
    /// after the end) or NONE. Invites and friend requests are unaffected.
    async fn set_session_notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] session_id: ID,
        #[graphql(desc = "How much to hear from it.")] level: NotificationLevel,
    ) -> Result<Session> {
        let session_id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        let view =
            notifications::set_level(&ctx.deps()?.db, ctx.viewer(), session_id, level.into())
                .await?;
        Ok(Session(view))
    }

    /// Lifts a ban (owner only): they may join again with the invite code; they are not
    /// added back.
    async fn unban_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] session_id: ID,
        #[graphql(desc = "The banned user.")] user_id: ID,
    ) -> Result<Session> {
        let session_id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        let user_id = ids::expect(Kind::User, &user_id, "userId")?;
        let view =
            moderation::unban_member(&ctx.deps()?.db, ctx.viewer(), session_id, user_id).await?;
        Ok(Session(view))
    }

    /// Replaces the invite code (owner only); the old code and link stop working.
    async fn rotate_invite_code(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A Session id.")] session_id: ID,
    ) -> Result<Session> {
        let id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        Ok(Session(
            service::rotate_invite_code(&ctx.deps()?.db, ctx.viewer(), id).await?,
        ))
    }
}
