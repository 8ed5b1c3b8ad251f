//! The in-process fan-out: one bounded broadcast channel per session that has subscribers on
//! this replica. What feeds it (Postgres notifications or the local tailer) lives next door;
//! the bus only hands committed events to the subscriptions of their session.
//!
//! Channels are bounded: a subscriber that falls more than [`CAPACITY`] events behind is told
//! it lagged and catches up from the events table, so a slow phone never holds up the others
//! and never silently skips an event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use entity::event::EventKind;
use entity::{event, photo};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Events a subscriber may fall behind by before it has to catch up from the database.
pub const CAPACITY: usize = 64;

/// A committed event with what a subscriber needs to deliver it, loaded once per replica
/// rather than once per subscriber.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub event: event::Model,
    /// The photo a `photo_added` event announced, if it still exists.
    pub photo: Option<photo::Model>,
}

#[derive(Debug, Clone)]
pub enum BusMessage {
    Event(Arc<FeedItem>),
    /// Events may have been missed (the feed reconnected): read the log from your cursor.
    Resync,
}

/// A session's channel, and how far into its log this replica is known to have seen.
struct Channel {
    sender: broadcast::Sender<BusMessage>,
    /// The highest `session_seq` published here or read by one of its feeds; what the
    /// sequence check compares the session's log with.
    seen: i64,
}

#[derive(Default)]
pub struct Bus {
    sessions: Mutex<HashMap<Uuid, Channel>>,
    /// Per user with live subscriptions here: rung when whom they block changes.
    blocks: Mutex<HashMap<Uuid, watch::Sender<()>>>,
}

impl Bus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts receiving the session's events. Subscribe before reading the backlog, so that
    /// nothing committed in between is missed.
    pub fn subscribe(self: &Arc<Self>, session_id: Uuid) -> Receiver {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = sessions
            .entry(session_id)
            .or_insert_with(|| Channel {
                sender: broadcast::channel(CAPACITY).0,
                seen: 0,
            })
            .sender
            .subscribe();
        Receiver {
            rx,
            bus: self.clone(),
            session_id,
        }
    }

    /// Wake-ups for `user_id`'s subscriptions here when whom they block changes.
    pub fn watch_blocks(self: &Arc<Self>, user_id: Uuid) -> BlocksWatch {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let rx = blocks
            .entry(user_id)
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        BlocksWatch {
            rx,
            bus: self.clone(),
            user_id,
        }
    }

    fn blocks_changed(&self, user_id: Uuid) {
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = blocks.get(&user_id) {
            sender.send_replace(());
        }
    }

    /// Hands an event to its session's subscribers on this replica, if there are any.
    pub fn publish(&self, item: FeedItem) {
        let Some(session_id) = item.event.session_id else {
            if item.event.kind == EventKind::BlocksChanged
                && let Some(user_id) = item.event.actor_id
            {
                self.blocks_changed(user_id);
            }
            return;
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = sessions.get_mut(&session_id) {
            if let Some(seq) = item.event.session_seq {
                channel.seen = channel.seen.max(seq);
            }
            // An error only means nobody is listening any more.
            let _ = channel.sender.send(BusMessage::Event(Arc::new(item)));
        }
    }

    /// A feed of the session read its log up to `seq`.
    pub fn saw(&self, session_id: Uuid, seq: i64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = sessions.get_mut(&session_id) {
            channel.seen = channel.seen.max(seq);
        }
    }

    /// The sessions with subscribers here, and how far into each one's log this replica has
    /// seen.
    pub fn seen(&self) -> Vec<(Uuid, i64)> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.iter().map(|(id, c)| (*id, c.seen)).collect()
    }

    /// Tells the session's subscribers to catch up from the log, which has reached `seq`
    /// without this replica hearing of it.
    pub fn resync_session(&self, session_id: Uuid, seq: i64) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = sessions.get_mut(&session_id) {
            channel.seen = channel.seen.max(seq);
            let _ = channel.sender.send(BusMessage::Resync);
        }
    }

    /// Tells every subscriber to catch up from the log (and, since a block may be among what
    /// was missed, to re-read whom it blocks).
    pub fn resync(&self) {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        for channel in sessions.values() {
            let _ = channel.sender.send(BusMessage::Resync);
        }
        drop(sessions);
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        for sender in blocks.values() {
            sender.send_replace(());
        }
    }

    /// Sessions with subscribers on this replica.
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn release(&self, session_id: Uuid) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        // The receiver being dropped still counts: one left means it was the last.
        if sessions
            .get(&session_id)
            .is_some_and(|channel| channel.sender.receiver_count() <= 1)
        {
            sessions.remove(&session_id);
        }
    }
}

/// One subscription's wake-up for its viewer's blocks; the channel goes with its last one.
pub struct BlocksWatch {
    rx: watch::Receiver<()>,
    bus: Arc<Bus>,
    user_id: Uuid,
}

impl BlocksWatch {
    /// Whether whom the viewer blocks may have changed since the last call.
    pub fn changed(&mut self) -> bool {
        let changed = self.rx.has_changed().unwrap_or(false);
        if changed {
            self.rx.mark_unchanged();
        }
        changed
    }
}

impl Drop for BlocksWatch {
    fn drop(&mut self) {
        let mut blocks = self
            .bus
            .blocks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // This receiver still counts: one left means it was the last.
        if blocks
            .get(&self.user_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            blocks.remove(&self.user_id);
        }
    }
}

/// One subscriber's end of a session channel; the channel goes with its last receiver.
pub struct Receiver {
    rx: broadcast::Receiver<BusMessage>,
    bus: Arc<Bus>,
    session_id: Uuid,
}

impl Receiver {
    pub async fn recv(&mut self) -> Result<BusMessage, broadcast::error::RecvError> {
        self.rx.recv().await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.bus.release(self.session_id);
    }
}
