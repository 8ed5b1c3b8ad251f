//! Per-request DataLoaders, so that a list of N items costs one query per relation rather
//! than N.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{friendship, user};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::service::{friends, users};

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

/// The loaders of one request (shared by the operations of a batch, which have one viewer).
#[derive(Clone)]
pub struct Loaders {
    pub users: Arc<DataLoader<UserLoader>>,
    /// `None` for an anonymous request, which has no friendships.
    pub friendships: Option<Arc<DataLoader<FriendshipLoader>>>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, viewer: Viewer) -> Self {
        Self {
            users: Arc::new(DataLoader::new(UserLoader(db.clone()), tokio::spawn)),
            friendships: match viewer {
                Viewer::User(me) => Some(Arc::new(DataLoader::new(
                    FriendshipLoader { db: db.clone(), me },
                    tokio::spawn,
                ))),
                Viewer::Anonymous => None,
            },
        }
    }

    /// A user that must exist (a foreign key points at it).
    pub async fn user(&self, id: Uuid) -> Result<user::Model, ApiError> {
        self.users.load_one(id).await?.ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("user {id} is referenced but missing"))
        })
    }
}
