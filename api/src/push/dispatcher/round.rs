//! The send round: claim what is due, work out who hears what, send it (a bounded number at
//! a time, within a time budget), prune dead tokens, and settle every job.
//!
//! When the replica starts stopping during the sends, the round stops waiting for them: the
//! devices that had their push are recorded as for a retry, and the rest of each unfinished
//! job is handed back due at once, for another replica to finish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use entity::device;
use entity::event::{self, PushState};
use entity::push_delivery;
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::outbox::{Held, LEASE, MAX_GROUPS, MAX_SINGLES, newest, pending_and_due};
use super::recipients::Recipient;
use super::{Dispatcher, Sender, chrono_duration};
use crate::clock;
use crate::push::fcm::Outcome;
use crate::push::message::{self, Notification};

/// Sends still running after this are abandoned and retried: well inside the lease, so a
/// round settles its rows before another replica may claim them.
const SEND_BUDGET: Duration = Duration::from_secs(60);
/// Messages in flight at once.
const CONCURRENT_SENDS: usize = 16;
/// Tries before an event's push is given up as failed (about eight minutes of back-off).
pub const MAX_ATTEMPTS: i32 = 10;
const RETRY_BASE: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(5 * 60);
/// A `Retry-After` longer than this is taken as this: a push hours late is no use.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60 * 60);

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
    /// Events handed back unfinished because the replica is stopping.
    pub handed_back: usize,
    /// The round claimed as much as it may: more is probably waiting.
    pub full: bool,
}

impl RoundReport {
    /// Adds the round to `photon_push_total{outcome}`: messages sent, devices pruned, events
    /// retried or given up.
    fn count(&self) {
        for (outcome, n) in [
            ("sent", self.delivered as u64),
            ("pruned", self.pruned),
            ("retried", self.retried as u64),
            ("failed", self.failed as u64),
        ] {
            metrics::counter!(crate::metrics::PUSH, "outcome" => outcome).increment(n);
        }
    }
}

/// One message's way: to a device, or to the log.
pub(super) enum Target {
    Device(device::Model),
    Log { devices: usize },
}

pub(super) struct Delivery {
    pub(super) job: usize,
    user_id: Uuid,
    session_id: Option<Uuid>,
    pub(super) target: Target,
    notification: Arc<Notification>,
}

impl Dispatcher {
    /// One round: claim what is due, send it, settle it.
    pub async fn run_once(&self) -> anyhow::Result<RoundReport> {
        self.round(&CancellationToken::new()).await
    }

    /// One round that, once `stop` is cancelled, stops waiting for its sends and hands back
    /// what it could not finish.
    pub async fn round(&self, stop: &CancellationToken) -> anyhow::Result<RoundReport> {
        let now = clock::now();
        self.warn_expiring(now).await?;
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
        self.hold(Some(Held {
            lease,
            ids: photos.iter().chain(&singles).map(|e| e.id).collect(),
        }));
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
            self.hold(None);
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
                    tracing::warn!(
                        error = format!("{err:#}"),
                        event_id = job[0].id,
                        "cannot plan a push; will retry"
                    );
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

        let finished = self.send_all(&deliveries, stop).await;
        // Stopping cut the sends short: the jobs left unfinished go back to the outbox.
        let mut unfinished = vec![false; jobs.len()];
        if stop.is_cancelled() {
            for (delivery, outcome) in deliveries.iter().zip(&finished) {
                unfinished[delivery.job] |= outcome.is_none();
            }
        }
        let outcomes: Vec<Outcome> = finished
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Retry(None)))
            .collect();
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
                Verdict::Retry(_) if unfinished[index] => {
                    report.handed_back += 1;
                    self.record_done(index, job, &deliveries, &outcomes).await;
                    (PushState::Pending, None)
                }
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
        self.hold(None);
        report.count();
        if report.events > 0 {
            tracing::info!(
                events = report.events,
                delivered = report.delivered,
                pruned = report.pruned,
                retried = report.retried,
                failed = report.failed,
                handed_back = report.handed_back,
                "push round finished"
            );
        }
        Ok(report)
    }

    /// Sends every delivery, a bounded number at a time, within [`SEND_BUDGET`]. What has
    /// not finished by then, or when `stop` is cancelled, is `None`.
    async fn send_all(
        &self,
        deliveries: &[Delivery],
        stop: &CancellationToken,
    ) -> Vec<Option<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; deliveries.len()];
        if stop.is_cancelled() {
            return outcomes;
        }
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
            tokio::select! {
                next = tokio::time::timeout_at(deadline, sends.next()) => match next {
                    Ok(Some((index, outcome))) => outcomes[index] = Some(outcome),
                    Ok(None) => break,
                    Err(_) => {
                        tracing::warn!("push round out of time; the unsent pushes will be retried");
                        break;
                    }
                },
                // Sends in flight are dropped: one FCM had already accepted may be sent again
                // by the replica that takes the job over, as at-least-once delivery allows.
                () = stop.cancelled() => {
                    tracing::info!("stopping: the unsent pushes are handed back");
                    break;
                }
            }
        }
        outcomes
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
