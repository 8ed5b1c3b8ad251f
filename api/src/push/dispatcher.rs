//! The push dispatcher: drains the push outbox (events with `push_state = 'pending'`).
//!
//! **Claiming.** A round claims due rows in one `UPDATE … WHERE id IN (SELECT … FOR UPDATE
//! SKIP LOCKED) RETURNING *` (SQLite, which has one writer, needs no lock clause) that stamps a
//! lease into `push_not_before` and counts the attempt. Replicas claiming at once skip each
//! other's rows, and the lease keeps them off the claimed rows afterwards, while the sends
//! run outside any transaction: no row lock or pooled connection is held while FCM answers.
//! A replica that dies mid-send leaves its rows pending, and they are claimed again when the
//! lease lapses: pushes are delivered at least once, never lost, and in the rare crash or
//! time-out a device may get one twice (collapse keys make it show once).
//!
//! **Coalescing.** `photo_added` rows are claimed per session, and only once the oldest of a
//! session's pending ones is `coalesce_window` old; then all of them go into one push per
//! recipient ("Ana added 3 photos to Beach day"). Recipients are the session's current
//! members without a live `photoAdded` subscription on any replica (the presence table),
//! each told only about other people's photos.
//!
//! **Settling.** A round marks its events sent; or, when a delivery may succeed later (429,
//! 5xx, network), due again after an exponential back-off that honours `Retry-After`; or
//! failed once they have been tried [`MAX_ATTEMPTS`] times. A device row is deleted only when
//! FCM says its token is dead.
//!
//! **Retries are per device.** Before a job is left for a retry, the devices that are done
//! with it (delivered, or refused for good) are recorded in `push_deliveries` against the
//! job's newest event, and the retry skips them: one phone answering 503 does not make every
//! other recipient hear the same push again. A photo group that grew in the meantime has a
//! newer newest event, so everyone hears about the new photos (the collapse key replaces the
//! earlier push). The records go once the job is settled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::event::{self, EventKind, PushState};
use entity::friendship::{self, FriendshipStatus};
use entity::photo::{self, PhotoStatus};
use entity::{device, push_delivery, session, session_member, user};
use futures_util::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbBackend, EntityTrait, Order,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::PushSettings;
use super::fcm::{FcmClient, Outcome};
use super::message::{self, Notification};
use crate::clock;
use crate::error::ApiResult;
use crate::events::EventPayload;
use crate::graphql::ids::{self, Kind};
use crate::realtime::presence;
use crate::service::invite_code;
use crate::service::pagination::encode_cursor;

/// How long a claim keeps other replicas off its rows.
const LEASE: Duration = Duration::from_secs(120);
/// Sends still running after this are abandoned and retried: well inside the lease, so a
/// round settles its rows before another replica may claim them.
const SEND_BUDGET: Duration = Duration::from_secs(60);
/// Sessions' photo groups claimed per round.
const MAX_GROUPS: u64 = 50;
/// Invites and friend requests claimed per round.
const MAX_SINGLES: u64 = 100;
/// Messages in flight at once.
const CONCURRENT_SENDS: usize = 16;
/// Tries before an event's push is given up as failed (about eight minutes of back-off).
pub const MAX_ATTEMPTS: i32 = 10;
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(5 * 60);
/// A `Retry-After` longer than this is taken as this: a push hours late is no use.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60 * 60);

/// Where pushes go.
enum Sender {
    Fcm(Box<FcmClient>),
    /// No credentials: pushes are logged (ids and text, never tokens) instead of sent.
    Log,
}

/// Claims, sends and settles pushes. One per replica.
pub struct Dispatcher {
    db: DatabaseConnection,
    sender: Sender,
    window: chrono::Duration,
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// Events claimed.
    pub events: usize,
    /// Messages FCM accepted (or pushes logged).
    pub delivered: usize,
    /// Device rows deleted for dead tokens.
    pub pruned: u64,
    /// Events due again after a back-off.
    pub retried: usize,
    /// Events given up.
    pub failed: usize,
    /// The round claimed as much as it may: more is probably waiting.
    pub full: bool,
}

/// One message's way: to a device, or to the log.
enum Target {
    Device(device::Model),
    Log { devices: usize },
}

struct Delivery {
    job: usize,
    user_id: Uuid,
    session_id: Option<Uuid>,
    target: Target,
    notification: Arc<Notification>,
}

/// A user to push, and what.
struct Recipient {
    user_id: Uuid,
    notification: Arc<Notification>,
}

impl Dispatcher {
    pub fn new(db: DatabaseConnection, settings: &PushSettings) -> anyhow::Result<Self> {
        let sender = match &settings.fcm {
            Some(fcm) => Sender::Fcm(Box::new(FcmClient::new(fcm)?)),
            None => Sender::Log,
        };
        Ok(Self {
            db,
            sender,
            window: chrono::Duration::from_std(settings.coalesce_window)
                .context("the push coalescing window is too long")?,
        })
    }

    /// One round: claim what is due, send it, settle it.
    pub async fn run_once(&self) -> ApiResult<RoundReport> {
        let now = clock::now();
        // An idle replica only reads: the claims below are writes, even when they match
        // nothing.
        let waiting = event::Entity::find()
            .select_only()
            .column(event::Column::Id)
            .filter(pending_and_due(now))
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.db)
            .await?;
        if waiting.is_none() {
            return Ok(RoundReport::default());
        }
        let lease = now + chrono_duration(LEASE);
        let photos = self.claim_photos(now, lease).await?;
        let singles = self.claim_singles(now, lease).await?;
        let mut report = RoundReport {
            events: photos.len() + singles.len(),
            ..RoundReport::default()
        };
        let mut groups: BTreeMap<Uuid, Vec<event::Model>> = BTreeMap::new();
        for event in photos {
            if let Some(session_id) = event.session_id {
                groups.entry(session_id).or_default().push(event);
            }
        }
        report.full = groups.len() as u64 >= MAX_GROUPS || singles.len() as u64 >= MAX_SINGLES;
        let mut jobs: Vec<Vec<event::Model>> = groups.into_values().collect();
        jobs.extend(singles.into_iter().map(|event| vec![event]));
        if jobs.is_empty() {
            return Ok(report);
        }
        for job in &mut jobs {
            job.sort_by_key(|e| e.id);
        }

        // Who hears about what. A job whose plan fails (the database hiccuped) is retried.
        let mut planned: Vec<Option<(Option<Uuid>, Vec<Recipient>)>> = Vec::new();
        for job in &jobs {
            match self.recipients(job).await {
                Ok(recipients) => planned.push(Some((job[0].session_id, recipients))),
                Err(err) => {
                    tracing::warn!(error = ?err, event_id = job[0].id, "cannot plan a push; will retry");
                    planned.push(None);
                }
            }
        }
        let user_ids: Vec<Uuid> = planned
            .iter()
            .flatten()
            .flat_map(|(_, recipients)| recipients.iter().map(|r| r.user_id))
            .collect();
        let devices = self.devices_of(&user_ids).await?;
        let mut deliveries = Vec::new();
        for (job, plan) in planned.iter().enumerate() {
            let Some((session_id, recipients)) = plan else {
                continue;
            };
            for recipient in recipients {
                let theirs = devices.get(&recipient.user_id);
                let targets = match &self.sender {
                    Sender::Fcm(_) => theirs
                        .map(|list| list.iter().cloned().map(Target::Device).collect())
                        .unwrap_or_default(),
                    Sender::Log => vec![Target::Log {
                        devices: theirs.map_or(0, |list| list.len()),
                    }],
                };
                deliveries.extend(targets.into_iter().map(|target| Delivery {
                    job,
                    user_id: recipient.user_id,
                    session_id: *session_id,
                    target,
                    notification: recipient.notification.clone(),
                }));
            }
        }

        // A retried job goes only to the devices that are not done with it yet.
        let done = self.done_devices(&jobs).await?;
        let mut delivered_before = vec![false; jobs.len()];
        deliveries.retain(|delivery| match &delivery.target {
            Target::Device(device) if done.contains(&(newest(&jobs[delivery.job]), device.id)) => {
                delivered_before[delivery.job] = true;
                false
            }
            _ => true,
        });

        let outcomes = self.send_all(&deliveries).await;
        report.pruned = self.prune(&deliveries, &outcomes).await;
        report.delivered = outcomes
            .iter()
            .filter(|o| **o == Outcome::Delivered)
            .count();

        let settled_at = clock::now();
        for (index, job) in jobs.iter().enumerate() {
            let results = deliveries
                .iter()
                .zip(&outcomes)
                .filter(|(d, _)| d.job == index)
                .map(|(_, outcome)| outcome);
            let attempts = job.iter().map(|e| e.push_attempts).max().unwrap_or(0);
            let verdict = match (&planned[index], verdict(results)) {
                (None, _) => Verdict::Retry(None),
                // Some devices had it on an earlier round: not a failure.
                (Some(_), Verdict::Failed) if delivered_before[index] => Verdict::Sent,
                (Some(_), verdict) => verdict,
            };
            let (state, not_before) = match verdict {
                Verdict::Retry(after) if attempts < MAX_ATTEMPTS => {
                    report.retried += 1;
                    self.record_done(index, job, &deliveries, &outcomes).await;
                    let delay = backoff(attempts, after);
                    (
                        PushState::Pending,
                        Some(settled_at + chrono_duration(delay)),
                    )
                }
                Verdict::Retry(_) | Verdict::Failed => {
                    report.failed += 1;
                    tracing::warn!(
                        event_id = job[0].id,
                        attempts,
                        "push given up after repeated failures"
                    );
                    (PushState::Failed, None)
                }
                Verdict::Sent => (PushState::Sent, None),
            };
            self.settle(job, lease, state, not_before).await?;
            if state != PushState::Pending && attempts > 1 {
                // Retried, so it may have records; settled, so they are done with. Left over,
                // they go with their events when retention deletes them.
                let cleared = push_delivery::Entity::delete_many()
                    .filter(push_delivery::Column::EventId.is_in(job.iter().map(|e| e.id)))
                    .exec(&self.db)
                    .await;
                if let Err(err) = cleared {
                    tracing::warn!(error = %err, event_id = job[0].id, "cannot clear a settled push's delivery records");
                }
            }
        }
        if report.events > 0 {
            tracing::info!(
                events = report.events,
                delivered = report.delivered,
                pruned = report.pruned,
                retried = report.retried,
                failed = report.failed,
                "push round finished"
            );
        }
        Ok(report)
    }

    /// Claims the pending `photo_added` rows of sessions whose oldest pending photo has waited
    /// the coalescing window, none of whose rows is waiting out a back-off or another
    /// replica's lease.
    async fn claim_photos(
        &self,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
    ) -> ApiResult<Vec<event::Model>> {
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
        let rows = event::Entity::find()
            .select_only()
            .column(event::Column::Id)
            .filter(event::Column::Kind.eq(EventKind::PhotoAdded))
            .filter(pending_and_due(now))
            .filter(event::Column::SessionId.in_subquery(ready));
        self.claim(rows, lease).await
    }

    /// Claims pending events of every other kind (one push each), oldest first.
    async fn claim_singles(
        &self,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
    ) -> ApiResult<Vec<event::Model>> {
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
    async fn claim(
        &self,
        mut ids: sea_orm::Select<event::Entity>,
        lease: DateTime<Utc>,
    ) -> ApiResult<Vec<event::Model>> {
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
    async fn done_devices(&self, jobs: &[Vec<event::Model>]) -> ApiResult<HashSet<(i64, Uuid)>> {
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
    async fn record_done(
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
    async fn settle(
        &self,
        job: &[event::Model],
        lease: DateTime<Utc>,
        state: PushState,
        not_before: Option<DateTime<Utc>>,
    ) -> ApiResult<()> {
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

    /// Who should hear about a job, and what.
    async fn recipients(&self, job: &[event::Model]) -> ApiResult<Vec<Recipient>> {
        let first = &job[0];
        match first.kind {
            EventKind::PhotoAdded => self.photo_recipients(job).await,
            EventKind::MemberInvited => self.invite_recipient(first).await,
            EventKind::FriendRequested => self.friend_request_recipient(first).await,
            // Nothing else asks for a push today.
            _ => Ok(Vec::new()),
        }
    }

    async fn photo_recipients(&self, job: &[event::Model]) -> ApiResult<Vec<Recipient>> {
        let Some(session_id) = job[0].session_id else {
            return Ok(Vec::new());
        };
        let Some(session) = live_session(&self.db, session_id).await? else {
            return Ok(Vec::new());
        };
        // Photos deleted or expired since they were added are not announced.
        let photo_ids: Vec<Uuid> = job
            .iter()
            .filter_map(|e| EventPayload::read(e)?.photo_id())
            .collect();
        let uploader_of: HashMap<Uuid, Uuid> = photo::Entity::find()
            .select_only()
            .column(photo::Column::Id)
            .column(photo::Column::UploaderId)
            .filter(photo::Column::Id.is_in(photo_ids))
            .filter(photo::Column::Status.eq(PhotoStatus::Ready))
            .filter(photo::Column::ExpiresAt.gt(clock::now()))
            .into_tuple::<(Uuid, Uuid)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        // Uploaders in event order, oldest first.
        let uploads: Vec<Uuid> = job
            .iter()
            .filter_map(|e| uploader_of.get(&EventPayload::read(e)?.photo_id()?))
            .copied()
            .collect();
        if uploads.is_empty() {
            return Ok(Vec::new());
        }
        let members: Vec<Uuid> = session_member::Entity::find()
            .select_only()
            .column(session_member::Column::UserId)
            .filter(session_member::Column::SessionId.eq(session_id))
            .filter(session_member::Column::LeftAt.is_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        // A member's own photos never push them: only members someone else added to hear.
        let candidates: Vec<Uuid> = members
            .into_iter()
            .filter(|m| uploads.iter().any(|u| u != m))
            .collect();
        let online = presence::online_users(&self.db, session_id, &candidates).await?;
        let names = self.names(&uploads).await?;
        let session_gid = ids::encode(Kind::Session, session_id).0;
        let cursor = encode_cursor(&job.iter().map(|e| e.id).max().unwrap_or_default());
        let collapse_key = format!("photos:{session_id}");
        let mut texts: HashMap<(Vec<Uuid>, usize), Arc<Notification>> = HashMap::new();
        let mut recipients = Vec::new();
        for member in candidates.into_iter().filter(|m| !online.contains(m)) {
            let theirs: Vec<Uuid> = uploads.iter().copied().filter(|u| *u != member).collect();
            let mut uploaders: Vec<Uuid> = Vec::new();
            for uploader in theirs.iter().rev() {
                if !uploaders.contains(uploader) {
                    uploaders.push(*uploader);
                }
            }
            let count = theirs.len();
            let notification = texts
                .entry((uploaders, count))
                .or_insert_with_key(|(uploaders, count)| {
                    let who: Vec<&str> = uploaders.iter().map(|u| name(&names, *u)).collect();
                    Arc::new(message::photos_added(
                        &session.title,
                        session_gid.clone(),
                        cursor.clone(),
                        &who,
                        *count,
                        collapse_key.clone(),
                    ))
                })
                .clone();
            recipients.push(Recipient {
                user_id: member,
                notification,
            });
        }
        Ok(recipients)
    }

    async fn invite_recipient(&self, event: &event::Model) -> ApiResult<Vec<Recipient>> {
        let (Some(session_id), Some(EventPayload::MemberInvited { user_id: invitee })) =
            (event.session_id, EventPayload::read(event))
        else {
            return Ok(Vec::new());
        };
        let Some(session) = live_session(&self.db, session_id).await? else {
            return Ok(Vec::new());
        };
        // Joined in the meantime: nothing to invite them to.
        let member = session_member::Entity::find_by_id((session_id, invitee))
            .filter(session_member::Column::LeftAt.is_null())
            .one(&self.db)
            .await?;
        if member.is_some() {
            return Ok(Vec::new());
        }
        let inviter = event.actor_id.unwrap_or(session.owner_id);
        let names = self.names(&[inviter]).await?;
        Ok(vec![Recipient {
            user_id: invitee,
            notification: Arc::new(message::session_invite(
                &session.title,
                ids::encode(Kind::Session, session_id).0,
                // The code as it is now: it may have been rotated since the invite.
                invite_code::display(&session.invite_code),
                name(&names, inviter),
                format!("invite:{session_id}"),
            )),
        }])
    }

    async fn friend_request_recipient(&self, event: &event::Model) -> ApiResult<Vec<Recipient>> {
        let Some(EventPayload::FriendRequested { request_id, .. }) = EventPayload::read(event)
        else {
            return Ok(Vec::new());
        };
        // Only a request still waiting for an answer is worth a push, and only if it is still
        // the one this event recorded (the pair's row is reused when the other side asks).
        let Some(request) = friendship::Entity::find_by_id(request_id)
            .filter(friendship::Column::Status.eq(FriendshipStatus::Pending))
            .one(&self.db)
            .await?
            .filter(|r| Some(r.requester_id) == event.actor_id)
        else {
            return Ok(Vec::new());
        };
        let requester = request.requester_id;
        let names = self.names(&[requester]).await?;
        Ok(vec![Recipient {
            user_id: request.addressee_id(),
            notification: Arc::new(message::friend_request(
                name(&names, requester),
                ids::encode(Kind::FriendRequest, request_id).0,
                ids::encode(Kind::User, requester).0,
                format!("friend:{request_id}"),
            )),
        }])
    }

    async fn names(&self, user_ids: &[Uuid]) -> ApiResult<HashMap<Uuid, String>> {
        Ok(user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Name)
            .filter(user::Column::Id.is_in(user_ids.iter().copied()))
            .into_tuple::<(Uuid, String)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect())
    }

    async fn devices_of(&self, user_ids: &[Uuid]) -> ApiResult<HashMap<Uuid, Vec<device::Model>>> {
        let mut devices: HashMap<Uuid, Vec<device::Model>> = HashMap::new();
        let mut user_ids = user_ids.to_vec();
        user_ids.sort_unstable();
        user_ids.dedup();
        for chunk in user_ids.chunks(500) {
            for row in device::Entity::find()
                .filter(device::Column::UserId.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?
            {
                devices.entry(row.user_id).or_default().push(row);
            }
        }
        Ok(devices)
    }

    /// Sends every delivery, a bounded number at a time, within [`SEND_BUDGET`]; what has not
    /// finished by then counts as worth retrying.
    async fn send_all(&self, deliveries: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; deliveries.len()];
        let deadline = tokio::time::Instant::now() + SEND_BUDGET;
        // Built up front rather than in a `map` closure, whose higher-ranked borrow of `self`
        // would keep the spawned task from being `Send`.
        let sends: Vec<_> = deliveries
            .iter()
            .enumerate()
            .map(|(index, delivery)| async move { (index, self.deliver(delivery).await) })
            .collect();
        let mut sends = futures_util::stream::iter(sends).buffer_unordered(CONCURRENT_SENDS);
        loop {
            match tokio::time::timeout_at(deadline, sends.next()).await {
                Ok(Some((index, outcome))) => outcomes[index] = Some(outcome),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!("push round out of time; the unsent pushes will be retried");
                    break;
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Retry(None)))
            .collect()
    }

    async fn deliver(&self, delivery: &Delivery) -> Outcome {
        let notification = &delivery.notification;
        match (&self.sender, &delivery.target) {
            (Sender::Fcm(client), Target::Device(device)) => {
                client
                    .send(&message::fcm_body(&device.fcm_token, notification))
                    .await
            }
            (_, target) => {
                let devices = match target {
                    Target::Log { devices } => *devices,
                    Target::Device(_) => 1,
                };
                tracing::info!(
                    user_id = %delivery.user_id,
                    session_id = ?delivery.session_id,
                    devices,
                    title = %notification.title,
                    body = %notification.body,
                    "push logged, not sent (FCM_CREDENTIALS is not set)"
                );
                Outcome::Delivered
            }
        }
    }

    /// Deletes the device rows whose tokens FCM declared dead, and only those.
    async fn prune(&self, deliveries: &[Delivery], outcomes: &[Outcome]) -> u64 {
        let mut pruned = 0;
        for (delivery, outcome) in deliveries.iter().zip(outcomes) {
            let (Outcome::BadToken, Target::Device(device)) = (outcome, &delivery.target) else {
                continue;
            };
            // The token in the condition too: a row re-registered since keeps its new token.
            let result = device::Entity::delete_many()
                .filter(device::Column::Id.eq(device.id))
                .filter(device::Column::FcmToken.eq(device.fcm_token.as_str()))
                .exec(&self.db)
                .await;
            match result {
                Ok(done) => {
                    pruned += done.rows_affected;
                    tracing::info!(
                        device_id = %device.id,
                        user_id = %device.user_id,
                        "removed a device whose FCM token is no longer valid"
                    );
                }
                Err(err) => {
                    tracing::warn!(error = %err, device_id = %device.id, "cannot remove a dead device; it will be tried again")
                }
            }
        }
        pruned
    }
}

/// What a job's deliveries add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Sent,
    /// Some delivery may succeed later; not before the longest `Retry-After` asked for.
    Retry(Option<Duration>),
    /// Every delivery was refused for good.
    Failed,
}

fn verdict<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Verdict {
    let mut retry: Option<Option<Duration>> = None;
    let (mut delivered, mut rejected) = (false, false);
    for outcome in outcomes {
        match outcome {
            Outcome::Delivered => delivered = true,
            Outcome::Rejected => rejected = true,
            Outcome::BadToken => {}
            // `None < Some(_)`: the longest wait asked for wins.
            Outcome::Retry(after) => retry = Some(retry.flatten().max(*after)),
        }
    }
    match retry {
        Some(after) => Verdict::Retry(after),
        None if rejected && !delivered => Verdict::Failed,
        None => Verdict::Sent,
    }
}

/// The wait before try number `attempts + 1`: exponential from [`RETRY_BASE`], capped, with
/// jitter so replicas that failed together do not retry together, and never shorter than
/// the server's `Retry-After`.
pub fn backoff(attempts: i32, retry_after: Option<Duration>) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let exponential = RETRY_BASE.saturating_mul(1 << doublings).min(RETRY_CAP);
    let half = exponential / 2;
    let jitter = Duration::from_millis(rand::random_range(0..=half.as_millis() as u64));
    let wanted = retry_after.unwrap_or_default().min(RETRY_AFTER_CAP);
    (half + jitter).max(wanted)
}

fn pending_and_due(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(event::Column::PushState.eq(PushState::Pending))
        .add(
            Condition::any()
                .add(event::Column::PushNotBefore.is_null())
                .add(event::Column::PushNotBefore.lte(now)),
        )
}

/// A session that has not ended.
async fn live_session(
    db: &DatabaseConnection,
    session_id: Uuid,
) -> ApiResult<Option<session::Model>> {
    Ok(session::Entity::find_by_id(session_id)
        .filter(session::Column::EndedAt.is_null())
        .one(db)
        .await?)
}

/// The id a job's per-device records are kept under (its events are sorted by id).
fn newest(job: &[event::Model]) -> i64 {
    job.last().map_or(0, |e| e.id)
}

fn name(names: &HashMap<Uuid, String>, user_id: Uuid) -> &str {
    names.get(&user_id).map_or("Someone", String::as_str)
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Runs a round every `settings.poll_interval` (back to back while there is a backlog) until
/// `shutdown` fires. A failed round is logged; the next one tries again.
pub fn spawn(
    db: DatabaseConnection,
    settings: PushSettings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let dispatcher = Dispatcher::new(db, &settings)?;
    Ok(tokio::spawn(async move {
        // Inside the task, like all of its logs: should writing a log line panic (stderr
        // closed), that ends this task, not the server starting it.
        if settings.fcm.is_none() {
            tracing::info!("FCM_CREDENTIALS is not set: push notifications are logged, not sent");
        }
        let mut ticker = tokio::time::interval(settings.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            loop {
                match dispatcher.run_once().await {
                    Ok(report) if report.full && !*shutdown.borrow() => continue,
                    Ok(_) => break,
                    Err(err) => {
                        let message = err.client_message();
                        tracing::error!(error = ?err, message, "push round failed; will retry");
                        break;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        for attempts in 1..=12 {
            let exponential = RETRY_BASE
                .saturating_mul(1 << (attempts - 1))
                .min(RETRY_CAP);
            let delay = backoff(attempts, None);
            assert!(
                delay >= exponential / 2 && delay <= exponential,
                "{attempts}: {delay:?}"
            );
        }
        assert!(backoff(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert_eq!(
            backoff(1, Some(Duration::from_secs(24 * 3600))),
            RETRY_AFTER_CAP
        );
    }

    #[test]
    fn a_job_is_retried_if_any_delivery_may_succeed_later() {
        use Outcome::*;
        let v = |outcomes: &[Outcome]| verdict(outcomes.iter());
        assert_eq!(v(&[]), Verdict::Sent);
        assert_eq!(v(&[Delivered, BadToken]), Verdict::Sent);
        assert_eq!(v(&[Delivered, Rejected]), Verdict::Sent);
        assert_eq!(v(&[Rejected, BadToken]), Verdict::Failed);
        assert_eq!(
            v(&[
                Delivered,
                Retry(None),
                Retry(Some(Duration::from_secs(3))),
                Retry(Some(Duration::from_secs(2)))
            ]),
            Verdict::Retry(Some(Duration::from_secs(3)))
        );
        assert_eq!(v(&[Retry(None)]), Verdict::Retry(None));
    }
}
