//! Access tokens are checked by signature alone, so one issued before its account was deleted
//! stays valid until it expires. Reads with it find nothing (the memberships are gone); this
//! extension refuses it for every root mutation field, which would otherwise write rows for an
//! account that no longer exists. One look-up per request, through the request's user loader.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};

use super::Loaders;
use crate::error::ApiError;
use crate::limits::graphql::field_refusal;
use crate::service::Viewer;

pub struct LiveAccount;

impl ExtensionFactory for LiveAccount {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LiveAccount)
    }
}

#[async_trait::async_trait]
impl Extension for LiveAccount {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_none()
            && info.parent_type == "Mutation"
            && let Some(Viewer::User(me)) = ctx.data_opt::<Viewer>().copied()
            && let Some(loaders) = ctx.data_opt::<Loaders>()
        {
            match loaders.users().load_one(me).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let gone =
                        ApiError::Unauthenticated("this account no longer exists; sign in again");
                    return Err(field_refusal(gone, &info));
                }
                Err(err) => return Err(field_refusal(err, &info)),
            }
        }
        next.run(ctx, info).await
    }
}
