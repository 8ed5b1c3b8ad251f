//! Prometheus metrics: the process-wide recorder, the description of every metric the server
//! emits, and the listener that serves them as `GET /metrics` on an address of its own
//! (`PHOTON_METRICS_BIND`, off when unset), never on the public port.
//!
//! Code everywhere emits through the `metrics` facade with the names below; without a
//! recorder (metrics off) those calls do nothing. The recorder is installed once per process
//! and its handle shared: tests start many servers in one process, and each server's listener
//! renders the same registry. Durations are seconds.
//!
//! - [`http`]: requests by matched route template and status, and their latency.
//! - [`graphql`]: operations by type, bounded operation name and outcome code.
//! - [`db`]: pool connections (sampled on scrape), slow acquires and statements.

pub mod db;
pub mod graphql;
pub mod http;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use anyhow::{Context, bail};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::{self, ConnectionCaps, ConnectionSettings};

/// Where the metrics are served.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsSettings {
    /// Address to serve Prometheus metrics on, as `GET /metrics` (e.g. `127.0.0.1:9464`).
    /// Unset: no metrics. It must differ from PHOTON_BIND: metrics are for the operator's
    /// scraper, not for the clients of the public port.
    #[arg(long, env = "PHOTON_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
}

impl MetricsSettings {
    /// Refuses the public address: metrics are never served to the API's clients.
    pub fn check(&self, public_bind: SocketAddr) -> anyhow::Result<()> {
        if let Some(addr) = self.metrics_bind
            && addr == public_bind
            && addr.port() != 0
        {
            bail!("PHOTON_METRICS_BIND must differ from PHOTON_BIND: metrics are not public");
        }
        Ok(())
    }
}

pub const HTTP_REQUESTS: &str = "photon_http_requests_total";
pub const HTTP_DURATION: &str = "photon_http_request_duration_seconds";
pub const GRAPHQL_OPERATIONS: &str = "photon_graphql_operations_total";
pub const GRAPHQL_DURATION: &str = "photon_graphql_operation_duration_seconds";
pub const WS_CONNECTIONS: &str = "photon_ws_connections";
pub const SUBSCRIPTIONS_ACTIVE: &str = "photon_subscriptions_active";
pub const FANOUT_DELIVERIES: &str = "photon_fanout_deliveries_total";
pub const FANOUT_LAG: &str = "photon_fanout_lag_seconds";
pub const BUS_NOTIFICATIONS: &str = "photon_bus_notifications_total";
pub const BUS_RESYNCS: &str = "photon_bus_resyncs_total";
pub const BUS_ANNOUNCED: &str = "photon_bus_announced_total";
pub const BUS_GAPS: &str = "photon_bus_gaps_total";
pub const SUBSCRIPTION_STARTS: &str = "photon_subscription_starts_total";
pub const SUBSCRIPTION_STARTS_WAITING: &str = "photon_subscription_starts_waiting";
pub const SUBSCRIPTION_START_WAIT: &str = "photon_subscription_start_wait_seconds";
pub const PUSH: &str = "photon_push_total";
pub const SWEEPER_REMOVED: &str = "photon_sweeper_removed_total";
pub const SWEEPER_DURATION: &str = "photon_sweeper_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "photon_db_pool_connections";
pub const DB_POOL_WAITS: &str = "photon_db_pool_waits_total";
pub const DB_STATEMENTS: &str = "photon_db_statements_total";
pub const RATE_LIMIT_REFUSALS: &str = "photon_rate_limit_refusals_total";
pub const PERSISTED_QUERIES: &str = "photon_persisted_queries_total";
pub const PERSISTED_QUERY_CACHE: &str = "photon_persisted_query_cache_entries";
pub const PHOTO_JOBS: &str = "photon_photo_jobs_total";
pub const PHOTO_JOB_DURATION: &str = "photon_photo_job_duration_seconds";
pub const PHOTO_JOBS_QUEUED: &str = "photon_photo_jobs_queued";
pub const TASK_RESTARTS: &str = "photon_task_restarts_total";
pub const TASK_UP: &str = "photon_task_up";
pub const BUILD_INFO: &str = "photon_build_info";

/// Histogram buckets for every `_seconds` metric: 1 ms to 10 s, roughly ×2.5 apart, which
/// spans a cached read to a request about to hit its 30 s limit. Slower ones land in `+Inf`.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms' raw samples are folded into their buckets when nobody scrapes, so an
/// unscraped server does not keep every sample.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder of this process, installed by the first server that serves metrics.
static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder, once per process; later calls return the same handle.
/// Fails only if some other recorder was installed first.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let installed = RECORDER.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
            .and_then(|builder| builder.install_recorder())
            .map_err(|err| err.to_string())?;
        describe();
        baseline();
        let upkeep = handle.clone();
        // A thread rather than a task: tests run each server on a runtime of its own that
        // ends with the test, and the recorder outlives them all.
        std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            })
            .map_err(|err| err.to_string())?;
        Ok(handle)
    });
    installed
        .clone()
        .map_err(|err| anyhow::anyhow!("cannot install the metrics recorder: {err}"))
}

/// HELP and TYPE of every metric, with units. Names emitted elsewhere (WebSockets, fan-out,
/// push, the sweeper, persisted queries, supervised tasks) are described here too, so the
/// whole list lives in one place.
fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by matched route template (`unmatched` for none) and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response head, by matched route template."
    );
    describe_counter!(
        GRAPHQL_OPERATIONS,
        Unit::Count,
        "GraphQL operations executed, by type, operation name (the first 200 distinct names, \
         then `(other)`) and the first error's extensions.code (`OK` without errors)."
    );
    describe_histogram!(
        GRAPHQL_DURATION,
        Unit::Seconds,
        "Time to run a GraphQL query or mutation, parsing and validation included, by type."
    );
    describe_gauge!(
        WS_CONNECTIONS,
        Unit::Count,
        "Open GraphQL WebSockets, by sub-protocol."
    );
    describe_gauge!(
        SUBSCRIPTIONS_ACTIVE,
        Unit::Count,
        "Running subscriptions, by root field."
    );
    describe_counter!(
        FANOUT_DELIVERIES,
        Unit::Count,
        "Events written to subscribers' sockets."
    );
    describe_histogram!(
        FANOUT_LAG,
        Unit::Seconds,
        "Time from an event's commit to its write on a subscriber's socket."
    );
    describe_counter!(
        BUS_NOTIFICATIONS,
        Unit::Count,
        "Event wake-ups this replica's bus received: Postgres notifications (one per event id), \
         or on SQLite events read by the log tailer."
    );
    describe_counter!(
        BUS_RESYNCS,
        Unit::Count,
        "Times subscribers were told to catch up from the event log (listener (re)connects, \
         failed reads)."
    );
    describe_counter!(
        BUS_ANNOUNCED,
        Unit::Count,
        "Event ids this process announced to the replicas: `how` is after_commit (batched \
         by the notifier), in_transaction (a pg_notify in the writer's transaction) or \
         dropped (the notifier was behind or down; the sequence check delivers them)."
    );
    describe_counter!(
        BUS_GAPS,
        Unit::Count,
        "Missed wake-ups found (`by` feed: an event arrived before its predecessor; check: \
         a session's log grew with no wake-up for a whole check interval); each makes the \
         session's subscribers read the log."
    );
    describe_counter!(
        SUBSCRIPTION_STARTS,
        Unit::Count,
        "Subscription starts by how their admission went: admitted, queue_full (refused at \
         once) or timed_out (refused after the longest wait)."
    );
    describe_gauge!(
        SUBSCRIPTION_STARTS_WAITING,
        Unit::Count,
        "Subscription starts waiting for their turn."
    );
    describe_histogram!(
        SUBSCRIPTION_START_WAIT,
        Unit::Seconds,
        "Time a subscription start waited for its turn (only those that had to wait)."
    );
    describe_counter!(PUSH, Unit::Count, "Push notifications, by outcome.");
    describe_counter!(
        SWEEPER_REMOVED,
        Unit::Count,
        "Rows and objects the sweeper removed, by kind."
    );
    describe_counter!(
        PHOTO_JOBS,
        Unit::Count,
        "Photo processing attempts, by how they ended: done, failed, unsupported, retried, \
         lost (the lease went to another worker) or gone (the photo was deleted)."
    );
    describe_histogram!(
        PHOTO_JOB_DURATION,
        Unit::Seconds,
        "Time one processing attempt took, from its claim to its outcome, by outcome."
    );
    describe_gauge!(
        PHOTO_JOBS_QUEUED,
        Unit::Count,
        "Photo processing jobs waiting or running, as a worker last counted them."
    );
    describe_histogram!(
        SWEEPER_DURATION,
        Unit::Seconds,
        "Time one sweep round took."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        Unit::Count,
        "Database pool connections, in use or idle, sampled at each scrape."
    );
    describe_counter!(
        DB_POOL_WAITS,
        Unit::Count,
        "Pool acquires that took 5 ms or more (waiting for a busy pool or opening a connection)."
    );
    describe_counter!(
        DB_STATEMENTS,
        Unit::Count,
        "Statements the database pool ran."
    );
    describe_counter!(
        RATE_LIMIT_REFUSALS,
        Unit::Count,
        "Requests, operations and connections refused by a rate limit or cap, by rule."
    );
    describe_counter!(
        PERSISTED_QUERIES,
        Unit::Count,
        "Persisted-query look-ups, by outcome."
    );
    describe_gauge!(
        PERSISTED_QUERY_CACHE,
        Unit::Count,
        "Documents in the persisted-query cache."
    );
    describe_counter!(
        TASK_RESTARTS,
        Unit::Count,
        "Restarts of a supervised background task, by task."
    );
    describe_gauge!(
        TASK_UP,
        Unit::Count,
        "Whether a supervised background task is running (1) or not (0), by task."
    );
    describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "Always 1; the `version` label is the server's version."
    );
}

/// Series that exist from the start, so a dashboard sees a zero rather than nothing: the
/// build info, and counters without labels or with a closed set of them. Gauges and
/// histograms of other parts appear once those parts report.
fn baseline() {
    ::metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for name in [
        BUS_NOTIFICATIONS,
        BUS_RESYNCS,
        DB_POOL_WAITS,
        DB_STATEMENTS,
        FANOUT_DELIVERIES,
    ] {
        ::metrics::counter!(name).absolute(0);
    }
    for how in ["after_commit", "in_transaction", "dropped"] {
        ::metrics::counter!(BUS_ANNOUNCED, "how" => how).absolute(0);
    }
    for by in ["feed", "check"] {
        ::metrics::counter!(BUS_GAPS, "by" => by).absolute(0);
    }
    for outcome in ["admitted", "queue_full", "timed_out"] {
        ::metrics::counter!(SUBSCRIPTION_STARTS, "outcome" => outcome).absolute(0);
    }
    ::metrics::gauge!(SUBSCRIPTION_STARTS_WAITING).set(0.0);
    for outcome in ["sent", "failed", "retried", "pruned"] {
        ::metrics::counter!(PUSH, "outcome" => outcome).absolute(0);
    }
    for outcome in ["done", "failed", "unsupported", "retried"] {
        ::metrics::counter!(PHOTO_JOBS, "outcome" => outcome).absolute(0);
    }
    for outcome in ["hit", "miss", "registered", "refused"] {
        ::metrics::counter!(PERSISTED_QUERIES, "outcome" => outcome).absolute(0);
    }
}

/// A refusal by a rate limit or WebSocket cap (`rule` is the rule's name).
pub fn rate_limit_refused(rule: &'static str) {
    ::metrics::counter!(RATE_LIMIT_REFUSALS, "rule" => rule).increment(1);
}

/// `n` event wake-ups reached the bus.
pub fn bus_notified(n: usize) {
    ::metrics::counter!(BUS_NOTIFICATIONS).increment(n as u64);
}

/// A photo processing attempt ended with `outcome` after `took`.
pub fn photo_job_ended(outcome: &'static str, took: Duration) {
    ::metrics::counter!(PHOTO_JOBS, "outcome" => outcome).increment(1);
    ::metrics::histogram!(PHOTO_JOB_DURATION, "outcome" => outcome).record(took.as_secs_f64());
}

/// `n` event ids were announced after their commit.
pub fn events_announced(n: usize) {
    ::metrics::counter!(BUS_ANNOUNCED, "how" => "after_commit").increment(n as u64);
}

/// An event was announced inside its writer's transaction (no outbox around the work).
pub fn event_announced_in_transaction() {
    ::metrics::counter!(BUS_ANNOUNCED, "how" => "in_transaction").increment(1);
}

/// `n` announcements were dropped; the sequence check delivers their events.
pub fn announcements_dropped(n: usize) {
    ::metrics::counter!(BUS_ANNOUNCED, "how" => "dropped").increment(n as u64);
}

/// A missed wake-up was found, by a feed or by the sequence check.
pub fn bus_gap(by: &'static str) {
    ::metrics::counter!(BUS_GAPS, "by" => by).increment(1);
}

/// A subscription start was admitted or refused (`outcome`).
pub fn subscription_start(outcome: &'static str) {
    ::metrics::counter!(SUBSCRIPTION_STARTS, "outcome" => outcome).increment(1);
}

/// `n` subscription starts are waiting for their turn.
pub fn subscription_starts_waiting(n: usize) {
    ::metrics::gauge!(SUBSCRIPTION_STARTS_WAITING).set(n as f64);
}

/// A subscription start waited `took` for its turn.
pub fn subscription_start_waited(took: Duration) {
    ::metrics::histogram!(SUBSCRIPTION_START_WAIT).record(took.as_secs_f64());
}

/// Subscribers were told to catch up from the log.
pub fn bus_resynced() {
    ::metrics::counter!(BUS_RESYNCS).increment(1);
}

/// The metrics listener of one server, bound and ready to serve.
pub struct Exporter {
    listener: TcpListener,
    handle: PrometheusHandle,
}

impl Exporter {
    /// Installs the recorder and binds the listener, when metrics are on.
    pub async fn bind(settings: &MetricsSettings) -> anyhow::Result<Option<Self>> {
        let Some(addr) = settings.metrics_bind else {
            return Ok(None);
        };
        let handle = install()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on PHOTON_METRICS_BIND {addr}"))?;
        Ok(Some(Self { listener, handle }))
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `GET /metrics` until the server stops, through the same accept loop as the API
    /// (header timeout, HTTP/1.1 only, capped connections) with caps of its own, so a flood on
    /// the public port cannot crowd out the scraper or the other way round.
    pub fn spawn(
        self,
        db: DatabaseConnection,
        settings: ConnectionSettings,
        stopping: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let scrape = Scrape {
            handle: self.handle,
            db,
        };
        let router = Router::new()
            .route("/metrics", get(render))
            .with_state(Arc::new(scrape));
        let caps = ConnectionCaps::new(&settings, None);
        tokio::spawn(async move {
            server::serve(self.listener, router, &settings, caps, stopping, grace).await;
        });
    }
}

struct Scrape {
    handle: PrometheusHandle,
    db: DatabaseConnection,
}

/// `GET /metrics`: samples what is read rather than counted, then renders the registry in
/// Prometheus' text format.
async fn render(State(scrape): State<Arc<Scrape>>) -> Response {
    db::sample_pool(&scrape.db);
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        scrape.handle.render(),
    )
        .into_response()
}
