//! Subscriptions: a session's photos and its other events, replayed from a cursor and then
//! live. The feed (in `realtime::feed`) does the work; these resolvers check arguments and
//! shape its events for the API.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{Context, ID, Object, Result, SimpleObject, Subscription, Union};
use chrono::{DateTime, Utc};
use entity::event::EventKind;
use futures_util::{Stream, StreamExt};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::ContextExt;
use super::ids::{self, Kind};
use super::photos::Photo;
use super::sessions::Session;
use super::users::User;
use crate::clock;
use crate::deps::Deps;
use crate::error::ApiError;
use crate::events::EventPayload;
use crate::realtime::FeedItem;
use crate::realtime::bus::BlocksWatch;
use crate::realtime::feed::{self, Following};
use crate::realtime::log;
use crate::service::pagination::{decode_cursor, encode_cursor};
use crate::service::{Viewer, blocks, sessions};

#[derive(Default)]
pub struct Subscription;

/// Where to start: the event id inside a cursor from an earlier event or a photo list.
fn parse_after(after: Option<&str>) -> Result<Option<i64>, ApiError> {
    after.map(decode_cursor::<i64>).transpose()
}

/// Live updates of a session, over a WebSocket at `/graphql`.
#[Subscription]
impl Subscription {
    /// Photos added to a session the viewer belongs to. With `after` (the cursor of an earlier
    /// event, or of an edge in `Session.photos`), first replays every photo added since, in
    /// order, then streams new ones live, with no gap and no duplicate; without it, only new
    /// photos. Completes when the viewer leaves or is removed, and after the session ends once
    /// its late-upload window (`Session.lateUploadHours`) has closed: photos uploaded late
    /// still arrive. While it runs, the
    /// viewer gets no push notifications for this session's photos. Fails with
    /// `CURSOR_EXPIRED` when a photo added after `after` is still listed but its event is no
    /// longer kept: reload `Session.photos` and resume from its newest cursor.
    async fn photo_added(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session to follow.")] session_id: ID,
        #[graphql(desc = "Resume after this cursor.")] after: Option<String>,
    ) -> Result<impl Stream<Item = Result<PhotoAddedEvent>> + use<>> {
        // Boxed: this future lives inside the subscription's stream for as long as it runs,
        // sized by its largest await, and the start is the largest by far.
        let (blocks, items) = Box::pin(start(ctx, &session_id, after, Following::Photos)).await?;
        Ok(screened(items, blocks, photo_added, |event| {
            Some(&event.photo.0)
        }))
    }

    /// Everything else that happens in a session: members joining, leaving and being
    /// removed, settings changed, photos processed and deleted, the session ending. Same
    /// resume rule as `photoAdded`, except that nothing from before the viewer's latest join is
    /// replayed; completes after the viewer's own `MemberLeft` or `MemberRemoved`, and once the
    /// late-upload window after `SessionEnded` has closed. Fails with `CURSOR_EXPIRED` when
    /// events after `after` are no longer kept: reload the session, then subscribe without
    /// `after`.
    async fn session_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session to follow.")] session_id: ID,
        #[graphql(desc = "Resume after this cursor.")] after: Option<String>,
    ) -> Result<impl Stream<Item = Result<SessionEvent>> + use<>> {
        // Boxed: this future lives inside the subscription's stream for as long as it runs,
        // sized by its largest await, and the start is the largest by far.
        let (blocks, items) = Box::pin(start(ctx, &session_id, after, Following::Events)).await?;
        Ok(screened(
            items,
            blocks,
            session_event,
            |event| match event {
                SessionEvent::PhotoProcessed(processed) => Some(&processed.photo.0),
                _ => None,
            },
        ))
    }
}

/// What both subscriptions start with, in the viewer's turn in the admission queue: their
/// blocks, and the feed.
async fn start(
    ctx: &Context<'_>,
    session_id: &ID,
    after: Option<String>,
    following: Following,
) -> Result<(
    LiveBlocks,
    impl Stream<Item = Result<Arc<FeedItem>, ApiError>> + Send + use<>,
)> {
    let session_id = ids::expect(Kind::Session, session_id, "sessionId")?;
    let after = parse_after(after.as_deref())?;
    let deps = ctx.deps()?;
    // Anonymous starts are refused before they take a turn.
    let viewer = ctx.viewer();
    viewer.user_id()?;
    let admitted = deps.admission.admit().await?;
    // Watching before the feed's start reads whether the viewer blocks anyone: a block
    // committed after that read rings the watch.
    let mut blocks = LiveBlocks::watch(deps, viewer)?;
    let opened = feed::follow(deps, viewer, session_id, after, following, admitted).await?;
    if opened.blocks_anyone {
        blocks.read().await?;
    }
    Ok((blocks, opened.items))
}

fn cursor(item: &FeedItem) -> String {
    encode_cursor(&item.event.id)
}

/// Whom a stream's viewer blocks, kept current while it runs: read when it starts, and again
/// when the bus says a block or unblock of theirs committed (on any replica).
struct LiveBlocks {
    db: DatabaseConnection,
    viewer: Uuid,
    watch: BlocksWatch,
    blocked: HashSet<Uuid>,
}

impl LiveBlocks {
    /// Starts watching for the viewer's block changes, knowing of no blocks yet: [`read`]
    /// them if the viewer has any.
    ///
    /// [`read`]: Self::read
    fn watch(deps: &Deps, viewer: Viewer) -> Result<Self, ApiError> {
        let me = viewer.user_id()?;
        Ok(Self {
            db: deps.db.clone(),
            viewer: me,
            watch: deps.bus.watch_blocks(me),
            blocked: HashSet::new(),
        })
    }

    /// Reads whom the viewer blocks again, for a stream that is running: while the database
    /// is briefly out of reach it waits and tries again (as the feed does), sending nothing
    /// meanwhile rather than a photo the viewer may just have blocked.
    async fn reread(&mut self) -> Result<(), ApiError> {
        let mut failed = 0;
        loop {
            match self.read().await {
                Err(ApiError::Unavailable(_)) => {
                    tokio::time::sleep(feed::retry_delay(failed)).await;
                    failed = failed.saturating_add(1);
                }
                done => return done,
            }
        }
    }

    /// Reads whom the viewer blocks now.
    async fn read(&mut self) -> Result<(), ApiError> {
        self.blocked = blocks::blocked_by(&self.db, Viewer::User(self.viewer)).await?;
        Ok(())
    }

    /// Whether the viewer may see a photo the stream is about to send: not one of someone
    /// they block, and not one that reports hid, unless it is their own (`blocks::may_see`).
    async fn may_see(&mut self, photo: &entity::photo::Model) -> Result<bool, ApiError> {
        if photo.uploader_id == self.viewer {
            return Ok(true);
        }
        if self.watch.changed() {
            // Boxed: rare, and the stream's idle state would otherwise be as big as this read.
            Box::pin(self.reread()).await?;
        }
        Ok(photo.hidden_at.is_none() && !self.blocked.contains(&photo.uploader_id))
    }
}

/// The feed's items as `T`s, without those `photo_of` says show a photo the viewer may not
/// see.
fn screened<T: Send + 'static>(
    items: impl Stream<Item = Result<Arc<FeedItem>, ApiError>> + Send + 'static,
    blocks: LiveBlocks,
    map: fn(&Arc<FeedItem>) -> Option<T>,
    photo_of: fn(&T) -> Option<&entity::photo::Model>,
) -> impl Stream<Item = Result<T>> + Send + 'static {
    futures_util::stream::unfold(
        (Box::pin(items), blocks),
        move |(mut items, mut blocks)| async move {
            loop {
                let item = match items.next().await? {
                    Ok(item) => item,
                    Err(err) => return Some((Err(err.into()), (items, blocks))),
                };
                let Some(event) = map(&item) else { continue };
                let allowed = match photo_of(&event) {
                    Some(photo) => blocks.may_see(photo).await,
                    None => Ok(true),
                };
                match allowed {
                    Ok(true) => return Some((Ok(event), (items, blocks))),
                    Ok(false) => continue,
                    Err(err) => return Some((Err(err.into()), (items, blocks))),
                }
            }
        },
    )
}

/// A photo event, unless the photo has gone since (deleted, or past its lifetime).
fn photo_added(item: &Arc<FeedItem>) -> Option<PhotoAddedEvent> {
    if item.event.kind != EventKind::PhotoAdded {
        return None;
    }
    let photo = item.photo.clone()?;
    if photo.expires_at.is_some_and(|at| at <= clock::now()) {
        return None;
    }
    Some(PhotoAddedEvent {
        cursor: cursor(item),
        photo: Photo(photo),
    })
}

fn session_event(item: &Arc<FeedItem>) -> Option<SessionEvent> {
    let cursor = cursor(item);
    Some(match log::payload(&item.event)? {
        EventPayload::MemberJoined { user_id } => {
            SessionEvent::MemberJoined(MemberJoined { cursor, user_id })
        }
        EventPayload::MemberLeft { user_id } => {
            SessionEvent::MemberLeft(MemberLeft { cursor, user_id })
        }
        EventPayload::MemberRemoved { user_id, .. } => {
            SessionEvent::MemberRemoved(MemberRemoved { cursor, user_id })
        }
        EventPayload::SessionUpdated {} => SessionEvent::SessionUpdated(SessionUpdated {
            cursor,
            session_id: item.event.session_id?,
        }),
        EventPayload::PhotoDeleted { photo_id, .. } => SessionEvent::PhotoDeleted(PhotoDeleted {
            cursor,
            photo_id: ids::encode(Kind::Photo, photo_id),
        }),
        EventPayload::SessionEnded { ended_at } => {
            SessionEvent::SessionEnded(SessionEnded { cursor, ended_at })
        }
        // The photo as it is now: gone since (deleted, expired) means nothing to update.
        EventPayload::PhotoProcessed { .. } => {
            let photo = item.photo.clone()?;
            if photo.expires_at.is_some_and(|at| at <= clock::now()) {
                return None;
            }
            SessionEvent::PhotoProcessed(PhotoProcessed {
                cursor,
                photo: Box::new(Photo(photo)),
            })
        }
        EventPayload::PhotoAdded { .. }
        | EventPayload::PhotosExpiring { .. }
        | EventPayload::MemberInvited { .. }
        | EventPayload::FriendRequested { .. }
        | EventPayload::BlocksChanged {} => return None,
    })
}

/// A photo was added to the session.
#[derive(SimpleObject)]
pub struct PhotoAddedEvent {
    /// Pass as `after` to resume right after this event.
    cursor: String,
    /// The photo, ready to download.
    photo: Photo,
}

/// Something that happened in a session, other than a photo being added.
#[derive(Union)]
pub enum SessionEvent {
    MemberJoined(MemberJoined),
    MemberLeft(MemberLeft),
    MemberRemoved(MemberRemoved),
    SessionUpdated(SessionUpdated),
    PhotoDeleted(PhotoDeleted),
    SessionEnded(SessionEnded),
    PhotoProcessed(PhotoProcessed),
}

/// Processing of a photo has ended: its thumbnail, preview, size and ThumbHash are ready
/// (`processing: DONE`), or there will be none (FAILED, UNSUPPORTED). Normalised by id, it
/// updates the photo an Apollo cache already holds.
#[derive(SimpleObject)]
pub struct PhotoProcessed {
    /// Pass as `after` to resume right after this event.
    cursor: String,
    /// The photo, as processing left it.
    photo: Box<Photo>,
}

/// Someone joined the session.
pub struct MemberJoined {
    cursor: String,
    user_id: Uuid,
}

/// Someone joined the session.
#[Object]
impl MemberJoined {
    /// Pass as `after` to resume right after this event.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// Who joined.
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(
            ctx.loaders()?.user_or_deleted(self.user_id).await?,
        ))
    }
}

/// Someone left the session.
pub struct MemberLeft {
    cursor: String,
    user_id: Uuid,
}

/// Someone left the session.
#[Object]
impl MemberLeft {
    /// Pass as `after` to resume right after this event.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// Who left.
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(
            ctx.loaders()?.user_or_deleted(self.user_id).await?,
        ))
    }
}

/// The owner removed someone from the session (they may have been banned too; only the owner
/// sees that, in `Session.bannedMembers`). When it is the viewer, nothing follows.
pub struct MemberRemoved {
    cursor: String,
    user_id: Uuid,
}

/// The owner removed someone from the session.
#[Object]
impl MemberRemoved {
    /// Pass as `after` to resume right after this event.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// Who was removed.
    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(
            ctx.loaders()?.user_or_deleted(self.user_id).await?,
        ))
    }
}

/// The owner changed the session's settings (title, photo lifetime, joins, guests, late
/// uploads).
pub struct SessionUpdated {
    cursor: String,
    session_id: Uuid,
}

/// The owner changed the session's settings.
#[Object]
impl SessionUpdated {
    /// Pass as `after` to resume right after this event.
    async fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The session as it is now (not as it was when the event was recorded: a replay shows
    /// the latest settings, which is what a client's cache wants).
    async fn session(&self, ctx: &Context<'_>) -> Result<Session> {
        let deps = ctx.deps()?;
        let view = sessions::get_session(&deps.db, ctx.viewer(), self.session_id).await?;
        Ok(Session(view))
    }
}

/// A photo was deleted, by its uploader or the owner, or because it expired.
#[derive(SimpleObject)]
pub struct PhotoDeleted {
    /// Pass as `after` to resume right after this event.
    cursor: String,
    /// The id the photo had.
    photo_id: ID,
}

/// The owner ended the session. Only late uploads (and what happens to them) follow, for
/// `Session.lateUploadHours`.
#[derive(SimpleObject)]
pub struct SessionEnded {
    /// Pass as `after` to resume right after this event.
    cursor: String,
    /// When it ended.
    ended_at: DateTime<Utc>,
}
