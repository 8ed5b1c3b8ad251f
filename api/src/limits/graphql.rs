//! Rate limits inside GraphQL execution: one call per limited resolver, and an extension
//! that counts every mutation field against the caller's overall mutation budget.
//!
//! Both count field *resolutions*, so aliases and batches cannot multiply what one request
//! is allowed: 2,500 aliases of `findUserByEmail` are 2,500 lookups.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{Context, ServerError, ServerResult, Value};

use super::{ClientIp, Rule};
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult};
use crate::service::Viewer;

/// `ctx.rate_limit(Rule::FindUserByEmail)?` at the top of a resolver.
pub(crate) trait RateLimitExt {
    fn rate_limit(&self, rule: Rule) -> ApiResult<()>;
}

/// The client address the transport put into the request, or the unspecified address.
fn client_of(data: Option<&ClientIp>) -> IpAddr {
    data.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0)
}

impl RateLimitExt for Context<'_> {
    fn rate_limit(&self, rule: Rule) -> ApiResult<()> {
        let state = self
            .data::<Deps>()
            .map_err(|_| ApiError::internal(anyhow::anyhow!("schema built without its Deps")))?;
        let viewer = self.data::<Viewer>().copied().unwrap_or(Viewer::Anonymous);
        let client = client_of(self.data_opt::<ClientIp>());
        state.rate_limiters.check_caller(rule, viewer, client)
    }
}

/// A service error as the refusal of the field being resolved, with its code and its path,
/// for extensions that stop a field before it runs.
pub(crate) fn field_refusal(err: ApiError, info: &ResolveInfo<'_>) -> ServerError {
    let error: async_graphql::Error = err.into();
    let mut refused = ServerError::new(error.message, None);
    refused.extensions = error.extensions;
    refused.path = vec![async_graphql::PathSegment::Field(
        info.alias.unwrap_or(info.name).to_owned(),
    )];
    refused
}

/// Counts each root mutation field against [`Rule::Mutation`] before it runs.
pub struct MutationLimit;

impl ExtensionFactory for MutationLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MutationLimit)
    }
}

#[async_trait::async_trait]
impl Extension for MutationLimit {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_none()
            && info.parent_type == "Mutation"
            && let Some(state) = ctx.data_opt::<Deps>()
        {
            let viewer = ctx
                .data_opt::<Viewer>()
                .copied()
                .unwrap_or(Viewer::Anonymous);
            let client = client_of(ctx.data_opt::<ClientIp>());
            if let Err(err) = state
                .rate_limiters
                .check_caller(Rule::Mutation, viewer, client)
            {
                return Err(field_refusal(err, &info));
            }
        }
        next.run(ctx, info).await
    }
}
