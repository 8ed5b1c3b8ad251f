//! Logging to standard error: `RUST_LOG` filters (default `info`), text for people or JSON
//! for collectors; and the spans of GraphQL operations.
//!
//! Each HTTP request runs in a `request` span carrying its `request_id` and, once the
//! GraphQL extension has read the document, its `operation_name` (see `crate::app` and
//! `crate::metrics::graphql`). JSON lines list the spans they were logged in, so every line
//! of a request carries both.

use std::io::IsTerminal;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextResolve, NextSubscribe, NextValidation, ResolveInfo, Tracing,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};
use futures_util::stream::BoxStream;
use tracing::{Dispatch, Instrument, Level};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::metrics::db::AcquireWaits;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal; escape codes in collected logs are noise.
    let ansi = std::io::stderr().is_terminal();
    // Standard output is for what a command prints (a token, the schema).
    let _ = subscriber(format, filter, std::io::stderr, ansi).try_init();
}

/// The subscriber the binary logs with, writing to `writer` (tests capture its lines): the
/// formatter behind `filter`, and beside it, with a filter of its own, the layer that counts
/// slow database-pool acquires for the metrics.
pub fn subscriber<W>(format: &str, filter: EnvFilter, writer: W, ansi: bool) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer)
        // When standard error goes away (a closed pipe), tracing-subscriber would report the
        // failed write with `eprintln!`, which panics on that same closed pipe, in whatever
        // task was logging: a lost log line must never take the server down with it.
        .log_internal_errors(false);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if format == "json" {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(AcquireWaits::layer())
        .into()
}

/// The tracing target of GraphQL spans (async-graphql's own).
pub const GRAPHQL_TARGET: &str = "async_graphql::graphql";

/// async-graphql's [`Tracing`] extension, with two changes:
///
/// - **Field spans only on request.** `Tracing` opens an INFO span for every field that
///   returns an object (a list of 100 sessions with members is thousands of spans), which
///   costs on every request whether or not anything is logged in them. Here a field gets its
///   span only while `RUST_LOG` enables TRACE for `async_graphql::graphql`
///   (`RUST_LOG=info,async_graphql::graphql=trace`); the request, parse, validation, execute
///   and subscribe spans are always there.
/// - **No document in the parse span.** `Tracing` records the whole document, arguments
///   inlined, as the parse span's `source`; arguments carry refresh tokens and login codes,
///   which must never reach a log or a trace store.
pub struct GraphqlSpans;

impl ExtensionFactory for GraphqlSpans {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GraphqlSpansExtension {
            inner: Tracing.create(),
        })
    }
}

struct GraphqlSpansExtension {
    inner: Arc<dyn Extension>,
}

#[async_trait::async_trait]
impl Extension for GraphqlSpansExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        self.inner.request(ctx, next).await
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        self.inner.subscribe(ctx, stream, next)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let span = tracing::span!(target: GRAPHQL_TARGET, Level::INFO, "parse");
        next.run(ctx, query, variables).instrument(span).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        self.inner.validation(ctx, next).await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        self.inner.execute(ctx, operation_name, next).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if tracing::enabled!(target: GRAPHQL_TARGET, Level::TRACE) {
            self.inner.resolve(ctx, info, next).await
        } else {
            next.run(ctx, info).await
        }
    }
}
