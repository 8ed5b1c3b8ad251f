//! Per-request DataLoaders, so that a list of N items costs one query per relation rather
//! than N.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{friendship, photo, session_ban, session_member, user};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::error::ApiError;
use crate::service::Viewer;
use crate::service::moderation::{self, BanKey};
use crate::service::pagination::{Page, PageRequest};
use crate::service::photos::{self, PhotoKey};
use crate::service::sessions::{self, MemberKey, SessionView};
use crate::service::{friends, users};

/// The name shown for a user who deleted their account.
pub const DELETED_ACCOUNT: &str = "Deleted account";

pub struct UserLoader(DatabaseConnection);

impl Loader<Uuid> for UserLoader {
    type Value = user::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, user::Model>, ApiError> {
        users::load_users(&self.0, keys).await
    }
}

/// The viewer's friendship rows, keyed by the other user.
pub struct FriendshipLoader {
    db: DatabaseConnection,
    me: Uuid,
}

impl Loader<Uuid> for FriendshipLoader {
    type Value = friendship::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, friendship::Model>, ApiError> {
        friends::load_friendships(&self.db, self.me, keys).await
    }
}

/// One page of one session's list. Sessions asking for the same page (the same `first` and
/// `after`) are loaded together, in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionPage<K> {
    pub session_id: Uuid,
    pub page: PageRequest<K>,
}

pub type MembersKey = SessionPage<MemberKey>;
pub type PhotosKey = SessionPage<PhotoKey>;
pub type BansKey = SessionPage<BanKey>;

/// Groups `keys` by page, fetches each group with `fetch(session_ids, page)` and files the
/// pages back under their keys.
async fn load_session_pages<K, T, Fut>(
    keys: &[SessionPage<K>],
    fetch: impl Fn(Vec<Uuid>, PageRequest<K>) -> Fut,
) -> Result<HashMap<SessionPage<K>, Page<T>>, ApiError>
where
    K: Clone + Eq + std::hash::Hash,
    Fut: Future<Output = Result<HashMap<Uuid, Page<T>>, ApiError>>,
{
    let mut groups: HashMap<&PageRequest<K>, Vec<Uuid>> = HashMap::new();
    for key in keys {
        groups.entry(&key.page).or_default().push(key.session_id);
    }
    let mut pages = HashMap::with_capacity(keys.len());
    for (page, session_ids) in groups {
        for (session_id, items) in fetch(session_ids, page.clone()).await? {
            pages.insert(
                SessionPage {
                    session_id,
                    page: page.clone(),
                },
                items,
            );
        }
    }
    Ok(pages)
}

/// The users a list brought along, for the request's user loader, so that their `user` and
/// `uploader` fields cost no statement of their own.
type Users = Arc<DataLoader<UserLoader, HashMapCache>>;

pub struct MembersLoader(DatabaseConnection, Users);

impl Loader<MembersKey> for MembersLoader {
    type Value = Page<session_member::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[MembersKey],
    ) -> Result<HashMap<MembersKey, Self::Value>, ApiError> {
        load_session_pages(keys, |ids, page| async move {
            let (pages, users) = sessions::list_members(&self.0, &ids, &page).await?;
            self.1.feed_many(users.into_iter().map(|u| (u.id, u))).await;
            Ok(pages)
        })
        .await
    }
}

pub struct BansLoader(DatabaseConnection);

impl Loader<BansKey> for BansLoader {
    type Value = Page<session_ban::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[BansKey]) -> Result<HashMap<BansKey, Self::Value>, ApiError> {
        load_session_pages(keys, |ids, page| async move {
            moderation::list_banned(&self.0, &ids, &page).await
        })
        .await
    }
}

pub struct PhotosLoader(DatabaseConnection, Uuid, Users);

impl Loader<PhotosKey> for PhotosLoader {
    type Value = Page<photo::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[PhotosKey]) -> Result<HashMap<PhotosKey, Self::Value>, ApiError> {
        load_session_pages(keys, |ids, page| async move {
            let (pages, users) = photos::list_photos(&self.0, self.1, &ids, &page).await?;
            self.2.feed_many(users.into_iter().map(|u| (u.id, u))).await;
            Ok(pages)
        })
        .await
    }
}

/// Sessions as the viewer sees them (members only), keyed by id.
pub struct SessionLoader {
    db: DatabaseConnection,
    me: Uuid,
}

impl Loader<Uuid> for SessionLoader {
    type Value = SessionView;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, SessionView>, ApiError> {
        sessions::load_sessions_for(&self.db, self.me, keys).await
    }
}

/// Ready photos per session.
pub struct PhotoCountLoader(DatabaseConnection, Uuid);

impl Loader<Uuid> for PhotoCountLoader {
    type Value = i64;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, i64>, ApiError> {
        photos::count_photos(&self.0, self.1, keys).await
    }
}

/// The loaders of one request (shared by the operations of a batch, which have one viewer),
/// each made on first use: a subscription waiting for its next event holds none, and a query
/// holds only those its fields use.
#[derive(Clone)]
pub struct Loaders(Arc<Lazy>);

struct Lazy {
    db: DatabaseConnection,
    viewer: Viewer,
    users: OnceLock<Users>,
    members: OnceLock<Arc<DataLoader<MembersLoader>>>,
    bans: OnceLock<Arc<DataLoader<BansLoader>>>,
    photo_counts: OnceLock<Arc<DataLoader<PhotoCountLoader>>>,
    photos: OnceLock<Arc<DataLoader<PhotosLoader>>>,
    sessions: OnceLock<Arc<DataLoader<SessionLoader, HashMapCache>>>,
    friendships: OnceLock<Arc<DataLoader<FriendshipLoader>>>,
}

/// Runs a DataLoader's batch. async-graphql waits `delay` (1 ms by default) on a timer
/// thread of its own before loading, so that sibling fields can add their keys; every batch
/// then costs two thread wake-ups, which under load was a fifth of the server's CPU. Here
/// the loaders have no delay and the batch yields once instead: the fields that add keys to
/// it are polled in the same pass as the one that started it, so they are all in by the
/// time the task runs again.
fn spawn_batch(batch: futures_util::future::BoxFuture<'static, ()>) {
    tokio::spawn(async move {
        tokio::task::yield_now().await;
        batch.await;
    });
}

fn loader<T: Send + Sync + 'static>(loader: T) -> Arc<DataLoader<T>> {
    Arc::new(DataLoader::new(loader, spawn_batch).delay(std::time::Duration::ZERO))
}

fn cached_loader<T: Send + Sync + 'static>(loader: T) -> Arc<DataLoader<T, HashMapCache>> {
    Arc::new(
        DataLoader::with_cache(loader, spawn_batch, HashMapCache::default())
            .delay(std::time::Duration::ZERO),
    )
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, viewer: Viewer) -> Self {
        Self(Arc::new(Lazy {
            db: db.clone(),
            viewer,
            users: OnceLock::new(),
            members: OnceLock::new(),
            bans: OnceLock::new(),
            photo_counts: OnceLock::new(),
            photos: OnceLock::new(),
            sessions: OnceLock::new(),
            friendships: OnceLock::new(),
        }))
    }

    fn db(&self) -> DatabaseConnection {
        self.0.db.clone()
    }

    /// The viewer's id; an anonymous viewer is nobody's member, and the nil id matches no row.
    fn me(&self) -> Uuid {
        match self.0.viewer {
            Viewer::User(me) => me,
            Viewer::Anonymous => Uuid::nil(),
        }
    }

    /// Cached for the request: the same people turn up as owners, members, requesters.
    pub fn users(&self) -> &Users {
        self.0
            .users
            .get_or_init(|| cached_loader(UserLoader(self.db())))
    }

    pub fn members(&self) -> &Arc<DataLoader<MembersLoader>> {
        self.0
            .members
            .get_or_init(|| loader(MembersLoader(self.db(), self.users().clone())))
    }

    pub fn bans(&self) -> &Arc<DataLoader<BansLoader>> {
        self.0.bans.get_or_init(|| loader(BansLoader(self.db())))
    }

    pub fn photo_counts(&self) -> &Arc<DataLoader<PhotoCountLoader>> {
        self.0
            .photo_counts
            .get_or_init(|| loader(PhotoCountLoader(self.db(), self.me())))
    }

    pub fn photos(&self) -> &Arc<DataLoader<PhotosLoader>> {
        self.0
            .photos
            .get_or_init(|| loader(PhotosLoader(self.db(), self.me(), self.users().clone())))
    }

    /// Sessions the viewer belongs to (none for an anonymous request).
    pub fn sessions(&self) -> &Arc<DataLoader<SessionLoader, HashMapCache>> {
        self.0.sessions.get_or_init(|| {
            cached_loader(SessionLoader {
                db: self.db(),
                me: self.me(),
            })
        })
    }

    /// `None` for an anonymous request, which has no friendships.
    pub fn friendships(&self) -> Option<&Arc<DataLoader<FriendshipLoader>>> {
        let Viewer::User(me) = self.0.viewer else {
            return None;
        };
        Some(
            self.0
                .friendships
                .get_or_init(|| loader(FriendshipLoader { db: self.db(), me })),
        )
    }

    /// A user named in an event, which no key keeps alive: one who deleted their account
    /// since is shown as a placeholder with their old id and no name of theirs.
    pub async fn user_or_deleted(&self, id: Uuid) -> Result<user::Model, ApiError> {
        Ok(self.users().load_one(id).await?.unwrap_or_else(|| {
            let epoch = chrono::DateTime::UNIX_EPOCH;
            user::Model {
                id,
                email: None,
                name: DELETED_ACCOUNT.to_owned(),
                avatar_url: None,
                created_at: epoch,
                updated_at: epoch,
                is_guest: false,
            }
        }))
    }

    /// A user that must exist (a foreign key points at it).
    pub async fn user(&self, id: Uuid) -> Result<user::Model, ApiError> {
        self.users().load_one(id).await?.ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("user {id} is referenced but missing"))
        })
    }
}
