//! Announcing committed events to every replica. Work that records events (a GraphQL
//! operation, a job) hands their ids, once it is done, to this process's [`Announcer`]; one
//! notifier task sends whatever has piled up as one wake-up, on a connection of its own:
//! a Postgres notification (`NOTIFY`, the default) or a NATS message (`PHOTON_NATS_URL`).
//!
//! Sending after the commit, not inside the writer's transaction, keeps Postgres's global
//! commit lock for notifications away from every write: one notifier per replica takes it,
//! once per batch. What this can lose (a replica dying between its commit and its
//! announcement, a connection that drops) loses no event: the log is the truth, feeds notice
//! a gap in a session's sequence, and the sequence check finds a lost last wake-up.

use std::sync::Arc;

use bytes::Bytes;
use sea_orm::sqlx::postgres::PgPoolOptions;
use secrecy::SecretString;
use tokio::sync::{Mutex, mpsc};

use crate::jobs::TaskCtx;

/// Ids waiting for the notifier; beyond this, announcements are dropped (and counted)
/// rather than slowing the writers down.
pub const QUEUE: usize = 16_384;
/// Ids per wake-up. A Postgres payload holds at most 8,000 bytes: 400 ids of up to 19 digits
/// and their commas fit.
pub const PER_WAKE_UP: usize = 400;
/// The notifier's name under the supervisor.
pub const TASK: &str = "event_notifier";
/// Shown in `pg_stat_activity` for the notifier's connection.
pub const APPLICATION_NAME: &str = "photon-notifier";

/// This process's way to announce committed events; cheap to clone. The embedded default
/// needs none (its tailer is woken in process), so there it announces nothing.
#[derive(Clone, Default)]
pub struct Announcer {
    queue: Option<Arc<Queue>>,
}

struct Queue {
    tx: mpsc::Sender<i64>,
    /// Taken by the notifier's current run (a restarted run takes it again).
    rx: Mutex<mpsc::Receiver<i64>>,
}

impl Announcer {
    /// An announcer whose ids a notifier task sends on.
    pub fn queued() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            queue: Some(Arc::new(Queue {
                tx,
                rx: Mutex::new(rx),
            })),
        }
    }

    /// Queues committed events' ids for the next wake-up. Never waits: when the notifier is
    /// behind, the ids are dropped, and the feeds find the events by their sequence.
    pub fn announce(&self, ids: &[i64]) {
        let Some(queue) = &self.queue else {
            return;
        };
        let mut dropped = 0;
        for &id in ids {
            if queue.tx.try_send(id).is_err() {
                dropped += 1;
            }
        }
        if dropped > 0 {
            crate::metrics::announcements_dropped(dropped);
        }
    }

    /// Runs the notifier until shutdown (`Ok`) or until its connection fails (`Err`; the
    /// supervisor starts it again after a back-off, and what it held is dropped).
    pub async fn notify(&self, ctx: TaskCtx, via: Via) -> anyhow::Result<()> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        let mut rx = queue.rx.lock().await;
        let mut sender = via.connect().await?;
        ctx.ready();
        let mut batch = Vec::with_capacity(PER_WAKE_UP);
        loop {
            batch.clear();
            let received = tokio::select! {
                received = rx.recv_many(&mut batch, PER_WAKE_UP) => received,
                () = ctx.stop().cancelled() => return Ok(()),
            };
            if received == 0 {
                return Ok(());
            }
            let payload = join_ids(&batch);
            if let Err(err) = sender.send(payload).await {
                crate::metrics::announcements_dropped(batch.len());
                return Err(err.context("could not announce events"));
            }
            crate::metrics::events_announced(batch.len());
        }
    }
}

/// Where wake-ups go.
#[derive(Clone)]
pub enum Via {
    /// `NOTIFY` on the Postgres the replicas share.
    Postgres(SecretString),
    /// A NATS subject.
    Nats(super::nats::NatsBus),
}

impl Via {
    async fn connect(self) -> anyhow::Result<Sender> {
        Ok(match self {
            Self::Postgres(url) => {
                // No ping before each use: that would double the round trips of every
                // wake-up, and a dead connection fails the send anyway (its ids are dropped
                // and found by the feeds and the check; the supervisor reconnects).
                let options = PgPoolOptions::new().test_before_acquire(false);
                Sender::Postgres(super::pg::dedicated(&url, APPLICATION_NAME, options).await?)
            }
            Self::Nats(bus) => {
                let client = bus.connect().await?;
                Sender::Nats(client, bus.subject().to_owned())
            }
        })
    }
}

enum Sender {
    Postgres(sea_orm::sqlx::PgPool),
    Nats(async_nats::Client, String),
}

impl Sender {
    async fn send(&mut self, payload: String) -> anyhow::Result<()> {
        match self {
            Self::Postgres(pool) => {
                sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(crate::events::CHANNEL)
                    .bind(payload)
                    .execute(&*pool)
                    .await?;
            }
            Self::Nats(client, subject) => {
                client
                    .publish(subject.clone(), Bytes::from(payload))
                    .await?;
            }
        }
        Ok(())
    }
}

/// `1,2,3`: what a wake-up carries.
fn join_ids(ids: &[i64]) -> String {
    let mut payload = String::with_capacity(ids.len() * 8);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            payload.push(',');
        }
        payload.push_str(&id.to_string());
    }
    payload
}

/// The ids a wake-up carries; anything that is not an id is skipped (a wake-up is only a
/// hint: the log is read either way).
pub fn parse_ids(payload: &str) -> impl Iterator<Item = i64> + '_ {
    payload.split(',').filter_map(|id| id.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_the_round_trip_and_junk_is_skipped() {
        let ids = [1, 42, i64::MAX];
        assert_eq!(parse_ids(&join_ids(&ids)).collect::<Vec<_>>(), ids);
        assert_eq!(parse_ids("7").collect::<Vec<_>>(), [7]);
        assert_eq!(parse_ids("7,x,,9").collect::<Vec<_>>(), [7, 9]);
        assert_eq!(parse_ids("").count(), 0);
    }

    #[test]
    fn a_full_wake_up_fits_a_postgres_payload() {
        let ids = vec![i64::MAX; PER_WAKE_UP];
        assert!(join_ids(&ids).len() < 8000);
    }

    #[tokio::test]
    async fn a_full_queue_drops_instead_of_waiting() {
        let announcer = Announcer::queued();
        let ids: Vec<i64> = (0..QUEUE as i64 + 10).collect();
        announcer.announce(&ids);
        let queue = announcer.queue.as_ref().unwrap();
        assert_eq!(queue.tx.capacity(), 0);
        // The embedded default's announcer has nowhere to send and does nothing.
        Announcer::default().announce(&ids);
    }
}
