//! The GraphQL API: schema assembly, one module per domain, DataLoaders, and the HTTP
//! transport. Resolvers here are thin: they read the viewer and state from the context, call
//! one service function and map its result to API types.

mod archive;
mod auth;
mod bounded_cache;
mod connection;
pub mod cost;
mod devices;
mod errors;
pub mod execution;
mod field_order;
mod friends;
mod guests;
pub mod http;
pub(crate) mod ids;
mod live_account;
mod loaders;
pub mod measured;
mod node;
pub mod persisted;
mod photos;
mod safety;
mod sessions;
mod subscriptions;
mod users;
pub mod ws;

use async_graphql::parser::types::OperationType;
use async_graphql::{Context, MergedObject, Schema};

use crate::deps::Deps;
use crate::error::ApiError;
use crate::service::Viewer;

pub use errors::REQUEST_ERROR_CODES;
pub use loaders::Loaders;

#[derive(MergedObject, Default)]
pub struct Query(
    users::UserQuery,
    friends::FriendQuery,
    sessions::SessionQuery,
    photos::PhotoQuery,
    auth::AuthQuery,
    node::NodeQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    auth::AuthMutation,
    users::UserMutation,
    friends::FriendMutation,
    sessions::SessionMutation,
    photos::PhotoMutation,
    devices::DeviceMutation,
    guests::GuestMutation,
    safety::SafetyMutation,
    archive::ArchiveMutation,
);

pub type PhotonSchema = Schema<Query, Mutation, Subscription>;
pub use subscriptions::Subscription;

/// Limits that keep a single query from doing unbounded work.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub depth: usize,
    pub complexity: usize,
    /// Directives on one field (async-graphql's own check; `cost` has counted them already,
    /// this keeps the schema safe for any other caller).
    pub directives: usize,
}

pub use execution::Schemas;

/// The schema as SDL, for `schema.graphql`.
pub fn sdl() -> String {
    let limits = QueryLimits {
        depth: usize::MAX,
        complexity: usize::MAX,
        directives: usize::MAX,
    };
    Schemas::new(None, limits).sdl()
}

/// The types of the operations a request may run: the one its `operationName` names, or
/// every operation of a document without a name (async-graphql refuses that if there are
/// several). Empty for a document that does not parse.
pub(crate) fn selected_operations(request: &mut async_graphql::Request) -> Vec<OperationType> {
    let wanted = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return Vec::new();
    };
    document
        .operations
        .iter()
        .filter(|(name, _)| match (&wanted, name) {
            (Some(wanted), Some(name)) => wanted == name.as_str(),
            (None, _) => true,
            (Some(_), None) => false,
        })
        .map(|(_, operation)| operation.node.ty)
        .collect()
}

/// Typed access to what every resolver needs from the context.
pub(crate) trait ContextExt {
    fn deps(&self) -> Result<&Deps, ApiError>;
    fn viewer(&self) -> Viewer;
    fn loaders(&self) -> Result<&Loaders, ApiError>;
}

impl ContextExt for Context<'_> {
    fn deps(&self) -> Result<&Deps, ApiError> {
        self.data::<Deps>()
            .map_err(|_| ApiError::internal(anyhow::anyhow!("schema built without its Deps")))
    }

    /// A request without a viewer is anonymous: the safe side to fail on.
    fn viewer(&self) -> Viewer {
        self.data::<Viewer>().copied().unwrap_or(Viewer::Anonymous)
    }

    fn loaders(&self) -> Result<&Loaders, ApiError> {
        self.data::<Loaders>()
            .map_err(|_| ApiError::internal(anyhow::anyhow!("request without DataLoaders")))
    }
}
