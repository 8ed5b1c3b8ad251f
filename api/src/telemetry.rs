//! Logging to standard error: `RUST_LOG` filters (default `info`), text for people or JSON
//! for collectors; and the spans of GraphQL operations.
//!
//! Each HTTP request runs in a `request` span carrying its `request_id` and, once its
//! document is known, its `operation_name` (see `crate::app` and `crate::metrics::graphql`). JSON lines list the spans they were logged in, so every line
//! of a request carries both.

use std::io::IsTerminal;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::registry::MetaTypeName;
use async_graphql::{ServerResult, Value};
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

/// The spans of GraphQL operations, under async-graphql's own target: `request` and
/// `execute` (or `subscribe`) for every operation (opened in `crate::graphql::execution`),
/// and a `field` span per object field only while `RUST_LOG` enables TRACE for
/// `async_graphql::graphql` (`RUST_LOG=info,async_graphql::graphql=trace`), by this
/// extension, which only the schema that mutations run on has.
///
/// async-graphql's own `Tracing` extension is not used, nor its `tracing` feature:
///
/// - **Spans cost on every request** whether or not anything is logged in them. `Tracing`
///   opens an INFO span for every field that returns an object, and the feature also
///   instruments every DataLoader call (two spans per `load_one`, one per batch): on a session
///   screen of 10 members and 20 photos that was most of the server's CPU time per request.
/// - **No document in any span.** `Tracing` records the whole document, arguments inlined,
///   as the parse span's `source`; arguments carry refresh tokens and login codes, which must
///   never reach a log or a trace store.
pub struct FieldSpans;

impl ExtensionFactory for FieldSpans {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FieldSpans)
    }
}

#[async_trait::async_trait]
impl Extension for FieldSpans {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if !tracing::enabled!(target: GRAPHQL_TARGET, Level::TRACE) || info.is_for_introspection {
            return next.run(ctx, info).await;
        }
        // Leaves (scalars and enums) get none: a span per name and id would drown the rest.
        let concrete = MetaTypeName::concrete_typename(info.return_type);
        let leaf = ctx
            .schema_env
            .registry
            .types
            .get(concrete)
            .is_some_and(|ty| ty.is_leaf());
        if leaf {
            return next.run(ctx, info).await;
        }
        let span = tracing::span!(
            target: GRAPHQL_TARGET,
            Level::TRACE,
            "field",
            path = %info.path_node,
            parent_type = %info.parent_type,
            return_type = %info.return_type,
        );
        next.run(ctx, info).instrument(span).await
    }
}
