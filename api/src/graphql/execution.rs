//! How an operation runs: which of two schemas gets it, and what happens once around it (its
//! span, its metrics, the codes of async-graphql's own errors, the order of its result).
//!
//! As soon as a schema has any extension, async-graphql calls every extension's `resolve`
//! hook for every field and every list item of every result: a `ResolveInfo`, a type name
//! or two formatted into new strings, and a boxed future per extension, a few hundred times
//! for one session screen. Only the mutation checks need a hook per field (they look at
//! root mutation fields), so there are two schemas over the same types:
//!
//! - **plain**, without extensions: queries and subscriptions;
//! - **guarded**, with the checks of each root mutation field
//!   (`crate::limits::graphql::MutationLimit`, [`super::live_account::LiveAccount`]) and the
//!   `field` spans, which only exist while TRACE is on for [`GRAPHQL_TARGET`]: mutations, and
//!   any operation run while those spans are wanted.
//!
//! What the other extensions did per request is done here instead, once per operation, with
//! the document the cost check parsed and kept (no copy of its tree).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::registry::Registry;
use async_graphql::{Request, Response, SchemaEnv, ServerError, ServerResult};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tracing::{Instrument, Level};

use super::measured::Measured;
use super::{Mutation, PhotonSchema, Query, QueryLimits, Subscription, errors, field_order};
use crate::deps::Deps;
use crate::metrics::graphql::OperationMetrics;
use crate::telemetry::{FieldSpans, GRAPHQL_TARGET};

/// The two schemas (see the module's documentation). Cheap to clone.
#[derive(Clone)]
pub struct Schemas {
    plain: PhotonSchema,
    guarded: PhotonSchema,
    /// The guarded schema's environment, caught by [`CatchEnv`] from the first operation
    /// it runs: async-graphql shows a schema's registry only to extensions, and the order
    /// of a result is decided against it. Both schemas hold the same types.
    env: Arc<OnceLock<SchemaEnv>>,
}

impl Schemas {
    /// Both schemas, with `deps` for every request and `limits` on every document.
    pub fn new(deps: Option<Deps>, limits: QueryLimits) -> Self {
        let env = Arc::new(OnceLock::new());
        let plain = builder(deps.clone(), limits).finish();
        let guarded = builder(deps, limits)
            .extension(CatchEnv::new(env.clone()))
            .extension(FieldSpans)
            .extension(crate::limits::graphql::MutationLimit)
            .extension(super::live_account::LiveAccount)
            .finish();
        Self {
            plain,
            guarded,
            env,
        }
    }

    /// The schema as SDL.
    pub fn sdl(&self) -> String {
        self.plain.sdl()
    }

    /// Runs one operation. `measured` is the entry the cost check kept for its document
    /// (`None` when it did not parse, or did not go through the check).
    pub async fn execute(&self, mut request: Request, measured: Option<Arc<Measured>>) -> Response {
        let document = match document_of(&mut request, measured) {
            Ok(document) => document,
            Err(error) => return parse_failure(error),
        };
        // Before the span below, so that the operation is named on the transport's.
        let mut metrics =
            OperationMetrics::start(&document.document, request.operation_name.as_deref());
        let started = Instant::now();
        let schema = self.schema_for(metrics.operation_type());
        let name = request.operation_name.clone();
        async move {
            let mut response = schema
                .execute(request)
                .instrument(tracing::span!(target: GRAPHQL_TARGET, Level::INFO, "execute"))
                .await;
            self.finish(&mut response, &document.document, name.as_deref())
                .await;
            metrics.record(&response, Some(started.elapsed().as_secs_f64()));
            response
        }
        .instrument(tracing::span!(target: GRAPHQL_TARGET, Level::INFO, "request"))
        .await
    }

    /// Runs one operation over a socket: a subscription's results, or a query's or
    /// mutation's one result. Its metrics are recorded at its first result (timed, unless it
    /// is a subscription), or when it ends without one.
    pub fn execute_stream(
        &self,
        mut request: Request,
        measured: Option<Arc<Measured>>,
    ) -> BoxStream<'static, Response> {
        let document = match document_of(&mut request, measured) {
            Ok(document) => document,
            Err(error) => {
                let response = parse_failure(error);
                return futures_util::stream::once(async move { response }).boxed();
            }
        };
        let metrics =
            OperationMetrics::start(&document.document, request.operation_name.as_deref());
        let started = Instant::now();
        let name = request.operation_name.clone();
        let inner = self
            .schema_for(metrics.operation_type())
            .execute_stream(request);
        let span = tracing::span!(target: GRAPHQL_TARGET, Level::INFO, "subscribe");
        let schemas = self.clone();
        let state = (inner, Some(metrics), schemas, document, name, span, started);
        futures_util::stream::unfold(state, |mut state| async move {
            let (inner, metrics, schemas, document, name, span, started) = &mut state;
            let mut response = inner.next().instrument(span.clone()).await?;
            schemas
                .finish(&mut response, &document.document, name.as_deref())
                .await;
            if let Some(mut metrics) = metrics.take() {
                let elapsed = started.elapsed().as_secs_f64();
                metrics.record(&response, Some(elapsed));
            }
            Some((response, state))
        })
        .boxed()
    }

    fn schema_for(&self, ty: Option<OperationType>) -> &PhotonSchema {
        if ty == Some(OperationType::Mutation)
            || tracing::enabled!(target: GRAPHQL_TARGET, Level::TRACE)
        {
            &self.guarded
        } else {
            &self.plain
        }
    }

    /// What every result gets before a transport sends it: codes on async-graphql's own
    /// errors, and its fields in the order they were asked for.
    async fn finish(
        &self,
        response: &mut Response,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
    ) {
        errors::code_errors(response);
        if let Some(registry) = self.registry().await {
            field_order::order_data(document, operation_name, registry, &mut response.data);
        }
    }

    /// The registry both schemas were built from (see [`Schemas::env`]).
    async fn registry(&self) -> Option<&Registry> {
        if self.env.get().is_none() {
            // Any operation will do: the extension sees the environment before parsing. Boxed,
            // because every subscription's stream holds this future's space for its life, and
            // an execution's is kilobytes; it runs once per process.
            let _ = Box::pin(self.guarded.execute("{ __typename }")).await;
        }
        self.env.get().map(|env| &env.registry)
    }
}

fn builder(
    deps: Option<Deps>,
    limits: QueryLimits,
) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let builder = async_graphql::Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_depth(limits.depth)
        .limit_complexity(limits.complexity)
        .limit_directives(limits.directives);
    match deps {
        Some(deps) => builder.data(deps),
        None => builder,
    }
}

/// The document an operation runs: the cost check's, else parsed here (an operation that did
/// not go through the check, such as one a test sends straight to the schema); the parser's
/// error for a document that does not parse.
fn document_of(
    request: &mut Request,
    measured: Option<Arc<Measured>>,
) -> Result<Arc<Measured>, ServerError> {
    if let Some(measured) = measured {
        return Ok(measured);
    }
    let document = request.parsed_query()?.clone();
    Ok(Arc::new(Measured {
        document,
        tokens: 0,
        cost: Default::default(),
        text_bytes: request.query.len(),
    }))
}

/// The answer to a document that does not parse, counted as an operation of unknown type.
fn parse_failure(error: ServerError) -> Response {
    let response = Response::from_errors(vec![errors::parse_failed(error)]);
    OperationMetrics::unknown().record(&response, None);
    response
}

/// Keeps a schema's environment the first time the schema runs an operation.
pub(super) struct CatchEnv(Arc<OnceLock<SchemaEnv>>);

impl CatchEnv {
    pub(super) fn new(env: Arc<OnceLock<SchemaEnv>>) -> Self {
        Self(env)
    }
}

impl ExtensionFactory for CatchEnv {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CatchEnv(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl Extension for CatchEnv {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if self.0.get().is_none() {
            let _ = self.0.set(ctx.schema_env.clone());
        }
        next.run(ctx, request).await
    }
}
