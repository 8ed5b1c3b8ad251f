//! The outbox's rows: claiming them under a lease, recording which devices are done with a
//! job before it waits for a retry, settling each job, and handing back the rows a round
//! still holds when the replica stops.
//!
//! A claim stamps its lease (a time [`LEASE`] ahead) into `push_not_before` and counts the
//! attempt, in one statement; a round then only touches rows that still carry its lease, so
//! it never settles rows another replica has taken after a lapse.

use std::collections::HashSet;
use std::sync::PoisonError;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::event::{self, EventKind, PushState};
use entity::{push_delivery, session};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DbBackend, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::Dispatcher;
use super::round::{Delivery, Target};
use crate::push::fcm::Outcome;

/// How long a claim keeps other replicas off its rows.
pub(super) const LEASE: Duration = Duration::from_secs(120);
/// Sessions' photo groups claimed per round.
pub(super) const MAX_GROUPS: u64 = 50;
/// Invites and friend requests claimed per round.
pub(super) const MAX_SINGLES: u64 = 100;

/// The rows a round in progress holds: what to hand back if the replica stops.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) lease: DateTime<Utc>,
    pub(super) ids: Vec<i64>,
}

impl Dispatcher {
    /// Claims the pending `photo_added` rows of sessions whose oldest pending photo has waited
    /// the coalescing window, none of whose rows is waiting out a back-off or another
    /// replica's lease.
    pub(super) async fn claim_photos(
        &self,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
    ) -> anyhow::Result<Vec<event::Model>> {
        let not_before = || Expr::col(event::Column::PushNotBefore).max();
        let ready = Query::select()
            .column(event::Column::SessionId)
            .from(event::Entity)
            .and_where(event::Column::Kind.eq(EventKind::PhotoAdded))
            .and_where(event::Column::PushState.eq(PushState::Pending))
            .and_where(event::Column::SessionId.is_not_null())
            .group_by_col(event::Column::SessionId)
            .and_having(
                Expr::col(event::Column::CreatedAt)
                    .min()
                    .lte(now - self.window),
            )
            .and_having(not_before().is_null().or(not_before().lte(now)))
            .order_by_expr(Expr::col(event::Column::Id).min(), Order::Asc)
            .limit(MAX_GROUPS)
            .to_owned();
        let sessions = self.take_photo_turns(ready, now).await?;
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let rows = event::Entity::find()
            .select_only()
            .column(event::Column::Id)
            .filter(event::Column::Kind.eq(EventKind::PhotoAdded))
            .filter(pending_and_due(now))
            .filter(event::Column::SessionId.is_in(sessions));
        self.claim(rows, lease).await
    }

    /// Of the sessions `ready` names, those whose turn for a photo push has come, each marked
    /// as pushed now in the same statement: at most one photo push per session (so per
    /// member) every `min_interval`, the next one summing up everything that arrived since.
    /// A group being retried is not held back. The statement is the claim: of two replicas,
    /// the one whose update lands second sees the turn taken and skips the session.
    async fn take_photo_turns(
        &self,
        ready: sea_orm::sea_query::SelectStatement,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Uuid>> {
        let retried = Query::select()
            .column(event::Column::SessionId)
            .from(event::Entity)
            .and_where(event::Column::Kind.eq(EventKind::PhotoAdded))
            .and_where(event::Column::PushState.eq(PushState::Pending))
            .and_where(event::Column::PushAttempts.gt(0))
            .and_where(event::Column::SessionId.is_not_null())
            .to_owned();
        let turn = Condition::any()
            .add(session::Column::PhotosPushedAt.is_null())
            .add(session::Column::PhotosPushedAt.lte(now - self.min_interval))
            .add(session::Column::Id.in_subquery(retried));
        let mut due = session::Entity::find()
            .select_only()
            .column(session::Column::Id)
            .filter(session::Column::Id.in_subquery(ready))
            .filter(turn);
        // A session whose row a writer holds (an upload completing) waits for the next round
        // rather than this one waiting for it, so no lock order between the two matters.
        if self.db.get_database_backend() == DbBackend::Postgres {
            due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let taken = session::Entity::update_many()
            .col_expr(session::Column::PhotosPushedAt, Expr::value(now))
            .filter(session::Column::Id.in_subquery(due.into_query()))
            .exec_with_returning(&self.db)
            .await?;
        Ok(taken.into_iter().map(|s| s.id).collect())
    }

    /// Claims pending events of every other kind (one push each), oldest first.
    pub(super) async fn claim_singles(
        &self,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
    ) -> anyhow::Result<Vec<event::Model>> {
        let rows = event::Entity::find()
            .select_only()
            .column(event::Column::Id)
            .filter(event::Column::Kind.ne(EventKind::PhotoAdded))
            .filter(pending_and_due(now))
            .order_by_asc(event::Column::Id)
            .limit(MAX_SINGLES);
        self.claim(rows, lease).await
    }

    /// Stamps the lease on the rows `ids` selects and counts the attempt, in one statement.
    pub(super) async fn claim(
        &self,
        mut ids: sea_orm::Select<event::Entity>,
        lease: DateTime<Utc>,
    ) -> anyhow::Result<Vec<event::Model>> {
        // SQLite has no row locks (and one writer, so no race to lose).
        if self.db.get_database_backend() == DbBackend::Postgres {
            ids = ids.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        Ok(event::Entity::update_many()
            .col_expr(event::Column::PushNotBefore, Expr::value(lease))
            .col_expr(
                event::Column::PushAttempts,
                Expr::col(event::Column::PushAttempts).add(1),
            )
            .filter(event::Column::Id.in_subquery(ids.into_query()))
            .exec_with_returning(&self.db)
            .await?)
    }

    /// The (newest event, device) pairs already done among jobs that are being retried.
    pub(super) async fn done_devices(
        &self,
        jobs: &[Vec<event::Model>],
    ) -> anyhow::Result<HashSet<(i64, Uuid)>> {
        // A first try (the claim counted it as attempt 1) has nothing recorded.
        let retried: Vec<i64> = jobs
            .iter()
            .filter(|job| job.iter().any(|e| e.push_attempts > 1))
            .map(|job| newest(job))
            .collect();
        let mut done = HashSet::new();
        for chunk in retried.chunks(500) {
            let rows: Vec<(i64, Uuid)> = push_delivery::Entity::find()
                .select_only()
                .column(push_delivery::Column::EventId)
                .column(push_delivery::Column::DeviceId)
                .filter(push_delivery::Column::EventId.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(&self.db)
                .await?;
            done.extend(rows);
        }
        Ok(done)
    }

    /// Records the devices done with job `index` (delivered, or refused for good) before it
    /// waits for a retry. Dead tokens need no record: their device rows are gone. Should this
    /// fail (a device unregistered meanwhile, say), the retry goes to every device again, as
    /// at-least-once delivery allows.
    pub(super) async fn record_done(
        &self,
        index: usize,
        job: &[event::Model],
        deliveries: &[Delivery],
        outcomes: &[Outcome],
    ) {
        let event_id = newest(job);
        let rows: Vec<push_delivery::ActiveModel> = deliveries
            .iter()
            .zip(outcomes)
            .filter(|(d, o)| d.job == index && matches!(o, Outcome::Delivered | Outcome::Rejected))
            .filter_map(|(d, _)| match &d.target {
                Target::Device(device) => Some(push_delivery::ActiveModel {
                    event_id: Set(event_id),
                    device_id: Set(device.id),
                }),
                Target::Log { .. } => None,
            })
            .collect();
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<_> = rows.by_ref().take(500).collect();
            let recorded = push_delivery::Entity::insert_many(chunk)
                .on_conflict_do_nothing_on([
                    push_delivery::Column::EventId,
                    push_delivery::Column::DeviceId,
                ])
                .exec(&self.db)
                .await;
            if let Err(err) = recorded {
                tracing::warn!(error = %err, event_id, "cannot record a push's deliveries; its retry goes to every device");
            }
        }
    }

    /// Records how a job ended, provided its lease is still ours.
    pub(super) async fn settle(
        &self,
        job: &[event::Model],
        lease: DateTime<Utc>,
        state: PushState,
        not_before: Option<DateTime<Utc>>,
    ) -> anyhow::Result<()> {
        let settled = event::Entity::update_many()
            .col_expr(event::Column::PushState, Expr::value(state))
            .col_expr(event::Column::PushNotBefore, Expr::value(not_before))
            .filter(event::Column::Id.is_in(job.iter().map(|e| e.id)))
            .filter(event::Column::PushState.eq(PushState::Pending))
            .filter(event::Column::PushNotBefore.eq(lease))
            .exec(&self.db)
            .await?;
        if settled.rows_affected < job.len() as u64 {
            // Only if this round outlived its lease, which the send budget prevents.
            tracing::warn!(
                event_id = job[0].id,
                "a push's lease lapsed before it was settled"
            );
        }
        Ok(())
    }

    /// Remembers what a round claimed, until it has settled it.
    pub(super) fn hold(&self, held: Option<Held>) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = held;
    }

    /// Hands back the rows of the round in progress (if any), due at once, so another
    /// replica takes them now instead of when the lease lapses. Only rows still pending
    /// under this round's lease change: what the round settled, or another replica took,
    /// stays as it is. Returns how many were handed back.
    pub async fn release(&self) -> anyhow::Result<u64> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(held) = held else {
            return Ok(0);
        };
        let released = event::Entity::update_many()
            .col_expr(
                event::Column::PushNotBefore,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(event::Column::Id.is_in(held.ids))
            .filter(event::Column::PushState.eq(PushState::Pending))
            .filter(event::Column::PushNotBefore.eq(held.lease))
            .exec(&self.db)
            .await?
            .rows_affected;
        if released > 0 {
            tracing::info!(
                events = released,
                "handed back the pushes of an unfinished round"
            );
        }
        Ok(released)
    }
}

pub(super) fn pending_and_due(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(event::Column::PushState.eq(PushState::Pending))
        .add(
            Condition::any()
                .add(event::Column::PushNotBefore.is_null())
                .add(event::Column::PushNotBefore.lte(now)),
        )
}

/// The id a job's per-device records are kept under (its events are sorted by id).
pub(super) fn newest(job: &[event::Model]) -> i64 {
    job.last().map_or(0, |e| e.id)
}
