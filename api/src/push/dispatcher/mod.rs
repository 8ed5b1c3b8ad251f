//! The push dispatcher: drains the push outbox (events with `push_state = 'pending'`). Its
//! parts: [`outbox`] (claims, leases, settling), [`recipients`] (who hears what) and [`round`]
//! (one send round).
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
//! **Pacing.** A session's photo group is also claimed only when its turn has come: at most
//! one photo push per session every `min_interval` (`PHOTON_PUSH_MIN_INTERVAL_SECS`), so the
//! next one sums up everything that arrived since. Only members whose level is `ALL` hear
//! photos; `DIGEST` members get one summary when the session ends (its `session_ended`
//! event pushes), `NONE` members nothing from the session. About `expiry_warning` before a
//! session's first photos expire, a `photos_expiring` event warns its members once
//! ([`expiring`]).
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
//!
//! **Stopping.** At shutdown a round stops waiting for its sends; the devices that had their
//! push are recorded, and every unfinished job is handed back due at once (its lease
//! cleared), so another replica takes it immediately instead of after the lease.

mod expiring;
mod outbox;
mod recipients;
mod round;

pub use round::{MAX_ATTEMPTS, RoundReport, backoff};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;

use super::PushSettings;
use super::fcm::FcmClient;
use crate::events;
use crate::jobs::{Every, Pace, Supervisor};
use crate::realtime::announce::Announcer;

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
    /// Shortest time between two photo pushes of one session.
    min_interval: chrono::Duration,
    /// How long before the first photos expire a session's members are warned.
    expiry_warning: chrono::Duration,
    /// When this replica last looked for sessions to warn, and how often it does.
    looked_for_expiring: Mutex<Option<std::time::Instant>>,
    look_every: Duration,
    /// What the round in progress claimed, until it is settled.
    held: Mutex<Option<outbox::Held>>,
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
            min_interval: chrono_duration(settings.min_interval),
            expiry_warning: chrono_duration(settings.expiry_warning),
            looked_for_expiring: Mutex::new(None),
            look_every: (settings.poll_interval * 10).min(expiring::LOOK_EVERY),
            held: Mutex::new(None),
        })
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// The dispatcher's name under the supervisor.
pub const TASK: &str = "push_dispatcher";

/// Runs rounds under `tasks` every `settings.poll_interval` (back to back while there is a
/// backlog) until shutdown, then hands back whatever the last round still held. A failed
/// round fails the task, which the supervisor restarts after a back-off; the rows it had
/// claimed are claimed again once their lease lapses. Returns the dispatcher, whose
/// [`Dispatcher::release`] the shutdown calls again in case the task did not stop in time.
pub fn spawn(
    tasks: &Supervisor,
    db: DatabaseConnection,
    announcer: Announcer,
    settings: PushSettings,
) -> anyhow::Result<Arc<Dispatcher>> {
    let dispatcher = Arc::new(Dispatcher::new(db, &settings)?);
    let every = Every::new(settings.poll_interval);
    let logged_only = settings.fcm.is_none();
    let this = dispatcher.clone();
    tasks.spawn(TASK, move |ctx| {
        let (dispatcher, announcer) = (this.clone(), announcer.clone());
        async move {
            // Inside the task, like all of its logs: should writing a log line panic (stderr
            // closed), that fails this task, not the server starting it.
            if logged_only {
                tracing::info!(
                    "FCM_CREDENTIALS is not set: push notifications are logged, not sent"
                );
            }
            let (dispatcher, stop, announcer) = (&dispatcher, ctx.stop(), &announcer);
            every
                .run(&ctx, || async move {
                    // A round may warn of expiring photos: an event, announced after it.
                    let report = events::announcing(announcer, dispatcher.round(stop)).await?;
                    Ok(if report.full { Pace::Again } else { Pace::Rest })
                })
                .await?;
            dispatcher.release().await?;
            Ok(())
        }
    });
    Ok(dispatcher)
}
