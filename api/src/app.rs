//! The application: shared state, the router, and a server that can be started on any port
//! (port 0 in tests) and stopped gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::db::DbStats;
use crate::deps::Deps;
use crate::error::ErrorCode;
use crate::graphql::http::plain_error;
use crate::graphql::measured::MeasuredDocuments;
use crate::graphql::persisted::PersistedDocuments;
use crate::graphql::{self, QueryLimits};
use crate::jobs::shutdown::ShutdownPlan;
use crate::jobs::supervisor::{Backoff, Supervisor};
use crate::jobs::sweeper;
use crate::limits::{self, RouteLimit, Rule};
use crate::metrics::Exporter;
use crate::processing;
use crate::push;
use crate::realtime;
use crate::routes::oauth;
use crate::server::{self, ConnectionCaps, PerIpExempt};

/// What every request handler shares: the [`Deps`] of the use cases, plus what only the
/// transports need (the schema, connection caps, the stop signal). Cheap to clone. It derefs
/// to its `Deps`, so a handler reads `state.db` like a resolver reads `deps.db`.
#[derive(Clone)]
pub struct AppState {
    pub deps: Deps,
    pub schema: graphql::Schemas,
    pub db_stats: Arc<DbStats>,
    /// Open TCP connections, capped in all and per peer address.
    pub connections: Arc<ConnectionCaps>,
    /// Trusted documents and this replica's automatic persisted query cache.
    pub persisted: Arc<PersistedDocuments>,
    /// Documents this replica has parsed and measured.
    pub measured: Arc<MeasuredDocuments>,
    /// Turns true when the server starts shutting down: long-lived connections close.
    pub stopping: watch::Receiver<bool>,
    /// Open WebSockets, which shutdown waits for once they are no longer HTTP connections.
    pub websockets: Arc<graphql::ws::Sockets>,
    stop: Arc<watch::Sender<bool>>,
    /// This replica's background tasks: restarted when they fail, listed by `/readyz` while
    /// down, stopped at shutdown.
    pub tasks: Arc<Supervisor>,
}

impl std::ops::Deref for AppState {
    type Target = Deps;

    fn deref(&self) -> &Deps {
        &self.deps
    }
}

impl FromRef<AppState> for Deps {
    fn from_ref(state: &AppState) -> Deps {
        state.deps.clone()
    }
}

impl AppState {
    /// Builds the state around an open, migrated database.
    pub fn new(
        db: DatabaseConnection,
        db_stats: Arc<DbStats>,
        config: Config,
    ) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let deps = Deps::new(db, config.clone())?;
        let limits = QueryLimits {
            depth: config.max_query_depth,
            complexity: config.max_query_complexity,
            directives: usize::try_from(config.cost.directives).unwrap_or(usize::MAX),
        };
        // Every client behind a trusted proxy shares its address, so proxies are capped only
        // in all, not per address.
        let trusted = config.rate_limits.trusted_proxies.clone();
        let exempt: Option<PerIpExempt> = (!trusted.is_empty())
            .then(|| Arc::new(move |ip| limits::is_trusted_proxy(ip, &trusted)) as PerIpExempt);
        let (stop, stopping) = watch::channel(false);
        Ok(Self {
            schema: graphql::Schemas::new(Some(deps.clone()), limits),
            connections: ConnectionCaps::new(&config.connections, exempt),
            persisted: Arc::new(PersistedDocuments::new(&config.persisted)),
            measured: Arc::default(),
            deps,
            db_stats,
            stopping,
            websockets: graphql::ws::Sockets::new(),
            stop: Arc::new(stop),
            tasks: Supervisor::new(Backoff::default()),
        })
    }
}

/// Longest a plain HTTP request may run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let client_request_id = request
            .extensions()
            .get::<ClientRequestId>()
            .map_or("-", |id| id.0.as_str());
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %request_id,
            client_request_id = %client_request_id,
            // Recorded by the GraphQL metrics extension once it has read the document.
            operation_name = tracing::field::Empty,
        )
    });
    // Sign-in redirects and invite links are cheap to ask for and are what a scraper or a
    // brute-forcer would hammer: each is limited per client IP.
    let per_ip = |rule| {
        middleware::from_fn_with_state(
            RouteLimit {
                state: state.clone(),
                rule,
            },
            limits::per_ip,
        )
    };
    let mut routes = Router::new()
        .route(
            "/graphql",
            get(graphql::ws::get)
                .post(graphql::http::post)
                .layer(graphql::http::compression()),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(crate::pages::routes())
        .route(
            "/join/{code}",
            get(crate::pages::invite::join).route_layer(per_ip(Rule::JoinLink)),
        )
        .route(
            "/join/{code}/qr.svg",
            get(crate::pages::invite::qr_svg).route_layer(per_ip(Rule::JoinLink)),
        )
        .route(
            "/auth/{provider}/start",
            get(oauth::start).route_layer(per_ip(Rule::OAuth)),
        )
        .route(
            "/auth/{provider}/callback",
            get(oauth::callback)
                .post(oauth::form_callback)
                .layer(DefaultBodyLimit::max(oauth::MAX_CALLBACK_FORM_BYTES))
                .route_layer(per_ip(Rule::OAuth)),
        )
        .layer(middleware::from_fn(time_limit));
    // Uploads of large photos over slow phone networks may take longer than API calls, so
    // the storage routes sit outside this time limit (uploads have their own, longer one);
    // so do archives, which stream a whole session.
    routes = routes.route(
        "/archive/{file}",
        get(crate::routes::archive::download).route_layer(per_ip(Rule::ArchiveDownload)),
    );
    if let Some(local) = &state.local_store {
        routes = routes.merge(local.clone().routes());
    }
    routes
        // Bearer tokens, not cookies: any origin may call the API, and none gets ambient
        // credentials from it.
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods(Any)
                .allow_headers(Any),
        )
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(middleware::from_fn(set_aside_client_request_id))
        // Outermost, so the status counted is the one sent and the time includes every layer.
        .layer(middleware::from_fn(crate::metrics::http::track))
        .with_state(state)
}

/// The `x-request-id` a client sent, kept for the logs next to the server's own.
#[derive(Debug, Clone)]
struct ClientRequestId(String);

/// Longest client request id logged.
const MAX_CLIENT_REQUEST_ID: usize = 128;

/// Request ids are the server's: one a client chose could collide with, or impersonate,
/// another request's in the logs. The client's goes into a separate log field instead.
async fn set_aside_client_request_id(mut request: axum::extract::Request, next: Next) -> Response {
    if let Some(value) = request.headers_mut().remove(&REQUEST_ID) {
        let id: String = String::from_utf8_lossy(value.as_bytes())
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(MAX_CLIENT_REQUEST_ID)
            .collect();
        request.extensions_mut().insert(ClientRequestId(id));
    }
    next.run(request).await
}

/// Ends a request that runs longer than `REQUEST_TIMEOUT` with a coded JSON error.
async fn time_limit(request: axum::extract::Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_secs = REQUEST_TIMEOUT.as_secs(),
                "request timed out"
            );
            plain_error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "the request took too long",
            )
        }
    }
}

/// A panic is a bug: log it, and answer like any other internal error.
fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    plain_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::InternalServerError,
        "internal error",
    )
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: 503 `stopping` as soon as a shutdown begins (so a load balancer stops sending
/// traffic while requests still drain); otherwise 503 `unavailable` when the database does
/// not answer or a background task is down (listed under `tasks_down`), 200 `ready` when
/// all is well.
async fn readyz(State(state): State<AppState>) -> Response {
    if *state.stopping.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "stopping" })),
        )
            .into_response();
    }
    let database = state.db.ping().await;
    let down = state.tasks.down();
    if database.is_ok() && down.is_empty() {
        return Json(serde_json::json!({ "status": "ready" })).into_response();
    }
    if let Err(err) = &database {
        tracing::warn!(error = %err, "readiness check failed: the database does not answer");
    }
    let database = if database.is_ok() {
        "reachable"
    } else {
        "unreachable"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "status": "unavailable",
            "database": database,
            "tasks_down": down,
        })),
    )
        .into_response()
}

/// A server bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    /// The metrics listener, when `PHOTON_METRICS_BIND` is set.
    metrics: Option<Exporter>,
    state: AppState,
}

impl Application {
    /// Connects to the database, migrates it and binds the listener.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let db_stats = Arc::new(DbStats::default());
        crate::db::migrate_database(&config).await?;
        let db = crate::db::connect(&config, db_stats.clone()).await?;
        let listener = TcpListener::bind(config.bind).await?;
        let metrics = Exporter::bind(&config.metrics).await?;
        if config.public_url_from_bind {
            config.public_url = url::Url::parse(&format!("http://{}", listener.local_addr()?))?;
        }
        Ok(Self {
            listener,
            metrics,
            state: AppState::new(db, db_stats, config)?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `GET /metrics` is served, if metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops within the grace period, in the order
    /// [`crate::jobs::shutdown`] describes: readiness fails, WebSockets drain and background
    /// tasks are told to stop at once; after the drain delay the listener closes and requests
    /// in flight finish; then this replica's presence rows are cleared and its push leases
    /// released.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state;
        let plan = ShutdownPlan::new(state.config.shutdown_grace, &state.config.shutdown);
        let (dispatcher, workers) = start_background_tasks(&state)?;
        // The listeners close only after the drain delay: until then, requests are served
        // (and `/readyz` says the replica is stopping).
        let (close, closing) = watch::channel(false);
        if let Some(metrics) = self.metrics {
            metrics.spawn(
                state.db.clone(),
                state.config.connections.clone(),
                closing.clone(),
                plan.requests(),
            );
        }
        let (began_tx, began) = tokio::sync::oneshot::channel();
        let stop = state.stop.clone();
        let tasks = state.tasks.clone();
        tokio::spawn(async move {
            shutdown.await;
            let began = Instant::now();
            // Stop first, log second: nothing that happens to the log can keep the server up.
            let _ = stop.send(true);
            tasks.cancel();
            let _ = began_tx.send(began);
            tracing::info!(
                drain_ms = u64::try_from(plan.drain.as_millis()).unwrap_or(u64::MAX),
                "shutting down"
            );
            tokio::time::sleep_until(began + plan.drain).await;
            let _ = close.send(true);
        });
        // Upgraded sockets have left the HTTP server, which does not wait for them: they
        // drain on their own (finishing their queries and mutations, then closing with 1001)
        // within the same grace period.
        let websockets = state.websockets.clone();
        let mut sockets_stopping = state.stopping.clone();
        let work = plan.work;
        let sockets_drained = async move {
            let _ = sockets_stopping.wait_for(|stopping| *stopping).await;
            if tokio::time::timeout(work, websockets.drained())
                .await
                .is_err()
            {
                tracing::warn!("websockets still open at the end of the grace period");
            }
        };
        let settings = state.config.connections.clone();
        tokio::join!(
            server::serve(
                self.listener,
                router(state.clone()),
                &settings,
                state.connections.clone(),
                closing,
                plan.requests(),
            ),
            sockets_drained,
        );
        // The listener only closes after the signal, so its time is known by now.
        let began = began.await.unwrap_or_else(|_| Instant::now());
        for task in state.tasks.shutdown(began + plan.work).await {
            tracing::warn!(task, "background task did not stop within the grace period");
        }
        let cleanup = async {
            let (presence, leases, jobs) = tokio::join!(
                state.presence.clear(),
                async {
                    match &dispatcher {
                        Some(dispatcher) => dispatcher.release().await,
                        None => Ok(0),
                    }
                },
                async {
                    match &workers {
                        Some(workers) => workers.release().await,
                        None => Ok(0),
                    }
                }
            );
            if let Err(err) = jobs {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "could not hand back this replica's photo jobs"
                );
            }
            if let Err(err) = presence {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "could not clear this replica's presence"
                );
            }
            if let Err(err) = leases {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "could not hand back this replica's push leases"
                );
            }
        };
        if tokio::time::timeout_at(began + plan.end, cleanup)
            .await
            .is_err()
        {
            tracing::warn!("the shutdown clean-up did not finish within the grace period");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// What a replica's shutdown hands back: the push dispatcher's and the photo workers' leases.
type Leaseholders = (
    Option<Arc<push::dispatcher::Dispatcher>>,
    Option<Arc<processing::Workers>>,
);

/// Starts every background task of this replica under its supervisor; returns the push
/// dispatcher and the photo workers, if this replica runs them, for the shutdown to release
/// their leases.
fn start_background_tasks(state: &AppState) -> anyhow::Result<Leaseholders> {
    let tasks = &state.tasks;
    // First, as the one that can fail to start (its FCM client): nothing is left running then.
    let dispatcher = state
        .config
        .push
        .clone()
        .map(|settings| {
            push::dispatcher::spawn(tasks, state.db.clone(), state.announcer.clone(), settings)
        })
        .transpose()?;
    realtime::spawn_announcer(
        tasks,
        &state.db,
        &state.config.database_url,
        &state.config.realtime,
        &state.announcer,
    );
    realtime::spawn_feed(
        tasks,
        &state.db,
        &state.config.database_url,
        &state.config.realtime,
        state.bus.clone(),
    );
    processing::notify::spawn(tasks, &state.db, &state.config.database_url, &state.jobs);
    state.presence.spawn_heartbeat(tasks);
    state.rate_limiters.spawn_cleanup(tasks);
    if let Some(settings) = state.config.sweep.clone() {
        sweeper::spawn(
            tasks,
            state.db.clone(),
            state.store.clone(),
            state.announcer.clone(),
            settings,
        );
    }
    let workers = state
        .config
        .processing
        .clone()
        .map(|settings| processing::spawn(tasks, state, settings));
    Ok((dispatcher, workers))
}
