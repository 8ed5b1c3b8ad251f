//! Who has a live `photoAdded` subscription, shared across replicas through the `presence`
//! table, so the push dispatcher on any replica pushes only to members who would not otherwise
//! see a photo. Each replica counts its own subscriptions in memory, writes a row when a
//! (session, user) gets its first one and deletes it when the last one ends. Its heartbeat
//! refreshes one row, its own in `replicas`, whatever the number of subscriptions; presence
//! rows count only while their replica's heartbeat is younger than [`STALE_AFTER`], so a
//! replica that dies (or is killed) stops counting by itself, and the sweeper removes its
//! rows later.
//!
//! Rows are written by one task per replica, in batches: the first subscription and the last
//! departure of each (session, user) queue a change, and whatever piled up while the writer's
//! previous statement ran goes into its next one. One phone subscribing waits one statement;
//! a crowd reconnecting at once (a replica restart) shares statements instead of sending one
//! each to compete with requests for the pool.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{presence, replica};
use sea_orm::sea_query::{OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QuerySelect,
};
use tokio::sync::{OnceCell, mpsc, oneshot};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{Every, First, Pace, Supervisor};

/// How often a replica refreshes its rows.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// A row not refreshed for this long belongs to a replica that is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(45);

type Key = (Uuid, Uuid);

/// Changes waiting for the writer; a full queue makes new subscriptions wait.
const QUEUE: usize = 4096;
/// Most changes per statement (four bound values each at most: well inside SQLite's limit).
const BATCH: usize = 500;

/// What the writer is asked to do.
enum Change {
    /// Write the row, then say how that went.
    Enter(Key, oneshot::Sender<ApiResult<()>>),
    /// Delete the row, unless it was refreshed after `at` (the member came back meanwhile).
    Leave(Key, DateTime<Utc>),
}

/// This replica's live subscriptions per (session, user).
pub struct Presence {
    replica_id: Uuid,
    db: DatabaseConnection,
    counts: Mutex<HashMap<Key, usize>>,
    /// This replica's row in `replicas` has been written once (by the first subscription or
    /// heartbeat): presence rows count from then on.
    registered: OnceCell<()>,
    /// When the heartbeat last reached the database.
    last_beat: Mutex<Option<DateTime<Utc>>>,
    /// The writer's queue; the writer starts with the first change.
    writes: std::sync::OnceLock<mpsc::Sender<Change>>,
}

impl Presence {
    pub fn new(db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self {
            replica_id: Uuid::now_v7(),
            db,
            counts: Mutex::new(HashMap::new()),
            registered: OnceCell::new(),
            last_beat: Mutex::new(None),
            writes: std::sync::OnceLock::new(),
        })
    }

    /// The writer's queue, starting the writer on first use (inside the runtime, which a
    /// subscription always is). It runs until this presence and its queue are gone.
    fn writes(&self) -> &mpsc::Sender<Change> {
        self.writes.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write(self.db.clone(), self.replica_id, rx));
            tx
        })
    }

    /// Writes this replica's heartbeat row once; concurrent callers wait for the one write.
    async fn register(&self) -> Result<(), sea_orm::DbErr> {
        self.registered
            .get_or_try_init(|| async {
                let now = clock::now();
                beat(&self.db, self.replica_id, now).await?;
                self.note_beat(now);
                Ok(())
            })
            .await
            .map(|_| ())
    }

    fn note_beat(&self, at: DateTime<Utc>) {
        *self
            .last_beat
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(at);
    }

    /// Marks `user` online in `session` until the returned guard is dropped. The row is written
    /// before this returns, so a photo completed after the subscription started never pushes.
    pub async fn enter(self: &Arc<Self>, session_id: Uuid, user_id: Uuid) -> ApiResult<Online> {
        let key = (session_id, user_id);
        let first = {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(key).or_default();
            *count += 1;
            *count == 1
        };
        let guard = Online {
            presence: self.clone(),
            key,
        };
        if first {
            // On failure the guard's drop undoes the count.
            self.register().await?;
            let (done, written) = oneshot::channel();
            let gone = || ApiError::internal(anyhow::anyhow!("the presence writer has stopped"));
            self.writes()
                .send(Change::Enter(key, done))
                .await
                .map_err(|_| gone())?;
            written.await.map_err(|_| gone())??;
        }
        Ok(guard)
    }

    fn leave(self: &Arc<Self>, key: Key) {
        let last = {
            let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            match counts.get_mut(&key) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    counts.remove(&key);
                    true
                }
                None => false,
            }
        };
        if last {
            // Only a row not refreshed since now is removed: if the same member subscribes
            // again before this is written, their fresh row stays.
            let change = Change::Leave(key, clock::now());
            if let Err(mpsc::error::TrySendError::Full(change)) = self.writes().try_send(change) {
                // Dropped in a guard, so it cannot wait here; a task waits for room instead.
                let writes = self.writes().clone();
                tokio::spawn(async move { writes.send(change).await });
            }
        }
    }

    /// Refreshes this replica's heartbeat: one row. When the previous one is older than
    /// [`STALE_AFTER`] (the database was out of reach), the sweeper may have removed this
    /// replica's rows meanwhile, so they are all written again.
    pub async fn heartbeat(&self) -> anyhow::Result<()> {
        let now = clock::now();
        let behind = self
            .last_beat
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|last| now - last >= stale_age());
        beat(&self.db, self.replica_id, now).await?;
        if behind {
            let keys: Vec<Key> = self
                .counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .keys()
                .copied()
                .collect();
            for chunk in keys.chunks(1000) {
                upsert(&self.db, self.replica_id, chunk, now).await?;
            }
        }
        self.note_beat(now);
        Ok(())
    }

    /// Removes this replica's rows and its heartbeat (at shutdown, once its sockets are
    /// closed).
    pub async fn clear(&self) -> anyhow::Result<u64> {
        let removed = presence::Entity::delete_many()
            .filter(presence::Column::ReplicaId.eq(self.replica_id))
            .exec(&self.db)
            .await?
            .rows_affected;
        replica::Entity::delete_by_id(self.replica_id)
            .exec(&self.db)
            .await?;
        Ok(removed)
    }

    /// This replica's id in the `presence` table.
    pub fn replica_id(&self) -> Uuid {
        self.replica_id
    }

    /// Runs the heartbeat under `tasks`, every [`HEARTBEAT`] (plus up to a second, so
    /// replicas spread out), the first one a period in: rows are written when subscriptions
    /// start. The rows themselves are cleared on the way out, after the sockets have closed
    /// (see `Application::run_until_stopped`).
    pub fn spawn_heartbeat(self: &Arc<Self>, tasks: &Supervisor) {
        let this = self.clone();
        let every = Every::new(HEARTBEAT)
            .first(First::AfterPeriod)
            .jitter(Duration::from_secs(1));
        tasks.spawn(HEARTBEAT_TASK, move |ctx| {
            let this = this.clone();
            async move {
                let this = &this;
                every
                    .run(&ctx, || async move {
                        this.heartbeat().await?;
                        Ok(Pace::Rest)
                    })
                    .await
            }
        });
    }
}

/// The heartbeat's name under the supervisor.
pub const HEARTBEAT_TASK: &str = "presence_heartbeat";

/// Keeps a member counted as online while it lives.
pub struct Online {
    presence: Arc<Presence>,
    key: Key,
}

impl Drop for Online {
    fn drop(&mut self) {
        self.presence.leave(self.key);
    }
}

/// Deletes the rows of replicas whose heartbeat stopped, and their heartbeats; returns how
/// many presence rows went.
pub async fn prune_stale(db: &impl ConnectionTrait, now: DateTime<Utc>) -> ApiResult<u64> {
    let removed = presence::Entity::delete_many()
        .filter(presence::Column::ReplicaId.not_in_subquery(live_replicas(now)))
        .exec(db)
        .await?
        .rows_affected;
    replica::Entity::delete_many()
        .filter(replica::Column::HeartbeatAt.lt(stale_before(now)))
        .exec(db)
        .await?;
    Ok(removed)
}

/// The replicas whose heartbeat is fresh at `now`.
fn live_replicas(now: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .column(replica::Column::Id)
        .from(replica::Entity)
        .and_where(replica::Column::HeartbeatAt.gte(stale_before(now)))
        .to_owned()
}

fn stale_age() -> chrono::Duration {
    chrono::Duration::from_std(STALE_AFTER).unwrap_or_default()
}

fn stale_before(now: DateTime<Utc>) -> DateTime<Utc> {
    now - stale_age()
}

/// Upserts a replica's heartbeat row.
async fn beat(
    db: &impl ConnectionTrait,
    replica_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    replica::Entity::insert(replica::ActiveModel {
        id: Set(replica_id),
        heartbeat_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(replica::Column::Id)
            .update_column(replica::Column::HeartbeatAt)
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

async fn upsert(
    db: &impl ConnectionTrait,
    replica_id: Uuid,
    keys: &[Key],
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    if keys.is_empty() {
        return Ok(());
    }
    presence::Entity::insert_many(keys.iter().map(|&(session_id, user_id)| {
        presence::ActiveModel {
            replica_id: Set(replica_id),
            session_id: Set(session_id),
            user_id: Set(user_id),
            refreshed_at: Set(now),
        }
    }))
    .on_conflict(
        OnConflict::columns([
            presence::Column::ReplicaId,
            presence::Column::SessionId,
            presence::Column::UserId,
        ])
        .update_column(presence::Column::RefreshedAt)
        .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

/// The writer: applies queued changes in batches until the queue closes. A failed batch
/// fails its subscriptions (they may try again) and leaves departed rows to go stale.
async fn write(db: DatabaseConnection, replica_id: Uuid, mut queue: mpsc::Receiver<Change>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let mut entered = Vec::new();
        let mut waiting = Vec::new();
        let mut left = Vec::new();
        for change in batch.drain(..) {
            match change {
                Change::Enter(key, done) => {
                    entered.push(key);
                    waiting.push(done);
                }
                Change::Leave(key, at) => left.push((key, at)),
            }
        }
        if let Err(err) = delete(&db, replica_id, &left).await {
            // The rows go stale and stop counting after STALE_AFTER.
            tracing::warn!(error = %err, "could not clear presence");
        }
        // A member who left and came back within one batch is entered once.
        entered.sort_unstable();
        entered.dedup();
        let written = upsert(&db, replica_id, &entered, clock::now())
            .await
            .map_err(ApiError::from);
        for done in waiting {
            // A subscription that gave up meanwhile no longer listens.
            let _ = done.send(written.clone());
        }
    }
}

/// Deletes the rows of members who left, each unless refreshed after its departure.
async fn delete(
    db: &impl ConnectionTrait,
    replica_id: Uuid,
    left: &[(Key, DateTime<Utc>)],
) -> Result<(), sea_orm::DbErr> {
    if left.is_empty() {
        return Ok(());
    }
    let each = left
        .iter()
        .fold(Condition::any(), |any, &((session_id, user_id), at)| {
            any.add(
                Condition::all()
                    .add(presence::Column::SessionId.eq(session_id))
                    .add(presence::Column::UserId.eq(user_id))
                    .add(presence::Column::RefreshedAt.lte(at)),
            )
        });
    presence::Entity::delete_many()
        .filter(presence::Column::ReplicaId.eq(replica_id))
        .filter(each)
        .exec(db)
        .await?;
    Ok(())
}

/// Which of `users` have a live `photoAdded` subscription to `session_id` on any replica.
pub async fn online_users(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    users: &[Uuid],
) -> ApiResult<HashSet<Uuid>> {
    if users.is_empty() {
        return Ok(HashSet::new());
    }
    let online: Vec<Uuid> = presence::Entity::find()
        .select_only()
        .column(presence::Column::UserId)
        .distinct()
        .filter(presence::Column::SessionId.eq(session_id))
        .filter(presence::Column::UserId.is_in(users.iter().copied()))
        .filter(presence::Column::ReplicaId.in_subquery(live_replicas(clock::now())))
        .into_tuple()
        .all(db)
        .await?;
    Ok(online.into_iter().collect())
}
