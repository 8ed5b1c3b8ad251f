//! The event log. Every state change that members see (joins, leaves, photos, the end of a
//! session, friend requests) is recorded in the same transaction as the change itself, so the
//! log and the tables can never disagree; subscriptions replay it and the push dispatcher
//! drains it. A session's events are numbered 1, 2, 3… without gaps (`session_seq`), so a
//! replica that hears of event n+2 before n+1 knows it missed a wake-up.
//!
//! Recording also announces the event to the replicas' feeds, after it commits: inside
//! [`announcing`] (every GraphQL operation and every job runs inside one) the ids wait in a
//! task-local outbox and go to the bus's [`Announcer`](crate::realtime::announce::Announcer)
//! once the work is done. On Postgres an event recorded outside one is announced by a
//! `pg_notify` in its own transaction, as before this outbox existed; the periodic sequence
//! check (`realtime::check`) delivers anything whose announcement was lost either way.

pub mod payload;

use std::cell::RefCell;
use std::future::Future;

use entity::event::{self, PushState};
use entity::session;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseBackend, EntityTrait, Iden, Statement};
use tokio::sync::Notify;
use uuid::Uuid;

pub use payload::{DeleteReason, EventPayload, MalformedEvent};

use crate::clock;
use crate::error::ApiResult;
use crate::realtime::announce::Announcer;

/// The Postgres notification channel every replica listens on.
pub const CHANNEL: &str = "photon_events";

/// A new event, before it is stored.
pub struct NewEvent {
    pub session_id: Option<Uuid>,
    pub actor_id: Uuid,
    pub payload: EventPayload,
    /// Whether the push dispatcher should tell someone about it.
    pub push: bool,
}

/// Appends an event and returns its id (the resume cursor). Call it inside the transaction
/// that makes the change, after taking the session's row lock (`sessions::lock_session`).
pub async fn record(db: &impl ConnectionTrait, new: NewEvent) -> ApiResult<i64> {
    let session_seq = match new.session_id {
        Some(session_id) => next_seq(db, session_id).await?,
        None => None,
    };
    let result = event::Entity::insert(event::ActiveModel {
        session_id: Set(new.session_id),
        actor_id: Set(Some(new.actor_id)),
        kind: Set(new.payload.kind()),
        payload: Set(new.payload.to_json()),
        created_at: Set(clock::now()),
        push_state: Set(if new.push {
            PushState::Pending
        } else {
            PushState::None
        }),
        session_seq: Set(session_seq),
        ..Default::default()
    })
    .exec(db)
    .await?;
    announce(db, result.last_insert_id).await?;
    Ok(result.last_insert_id)
}

/// Takes the session's next sequence number. The update holds the session's row lock until
/// the transaction ends, so numbers are handed out, and committed, in order. `None` when the
/// session row is gone (the event is then delivered by id alone).
async fn next_seq(db: &impl ConnectionTrait, session_id: Uuid) -> ApiResult<Option<i64>> {
    let column = session::Column::EventSeq;
    let bump = Query::update()
        .table(session::Entity)
        .value(column, Expr::col(column).add(1))
        .and_where(Expr::col(session::Column::Id).eq(session_id))
        .returning_col(column)
        .to_owned();
    let Some(row) = db.query_one(&bump).await? else {
        return Ok(None);
    };
    Ok(Some(row.try_get::<i64>("", &column.to_string())?))
}

/// Wakes the embedded default's tailer (one process, so a `Notify` is the whole bus).
static RECORDED: Notify = Notify::const_new();

/// Resolves at the next local announcement; see [`RECORDED`]. Register it (`enable`) before
/// reading the log, so an event recorded during the read is not missed.
pub fn recorded() -> tokio::sync::futures::Notified<'static> {
    RECORDED.notified()
}

tokio::task_local! {
    /// Ids recorded by the work running inside [`announcing`], to announce when it is done.
    static OUTBOX: RefCell<Vec<i64>>;
}

/// Runs `work` (a GraphQL operation, a job's unit of work) and then announces the events it
/// recorded. Its transactions have committed or rolled back by then: an announced id that
/// never committed is simply not found by the replicas that read it.
pub async fn announcing<F: Future>(announcer: &Announcer, work: F) -> F::Output {
    let (output, ids) = OUTBOX
        .scope(RefCell::new(Vec::new()), async {
            let output = work.await;
            (output, OUTBOX.with(RefCell::take))
        })
        .await;
    if !ids.is_empty() {
        announcer.announce(&ids);
    }
    output
}

/// Announces a just-recorded event: into the outbox when there is one, else on Postgres with
/// a notification inside the writer's transaction (delivered only if the event commits, at
/// the price of Postgres's global commit lock for notifications).
async fn announce(db: &impl ConnectionTrait, event_id: i64) -> ApiResult<()> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            if OUTBOX
                .try_with(|outbox| outbox.borrow_mut().push(event_id))
                .is_ok()
            {
                return Ok(());
            }
            crate::metrics::event_announced_in_transaction();
            db.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), event_id.to_string().into()],
            ))
            .await?;
        }
        _ => RECORDED.notify_waiters(),
    }
    Ok(())
}
