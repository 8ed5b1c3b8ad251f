//! One subscriber's view of a session's log: everything after its cursor, replayed from the
//! events table, then live from the bus, with no gap and no duplicate between the two.
//!
//! The receiver is subscribed before the backlog is read, so an event committed meanwhile is
//! both in the channel and (maybe) in the backlog; anything at or below the last delivered id
//! is dropped. A session's events commit in id order (every writer takes the session's row
//! lock first), so delivering in id order never skips one. When the subscriber lags behind
//! the bounded channel, or the bus reconnects, it reads the log again from its cursor.
//!
//! Wake-ups can be lost (a replica that dies between its commit and its announcement, a
//! dropped NATS message), so a feed does not take the next live event on trust: a session's
//! events are numbered without gaps (`session_seq`), and an event that is not the successor
//! of the last one the feed knows of makes it read the log first. A lost wake-up for the
//! session's latest event, with nothing after it to reveal the gap, is found by the sequence
//! check (`realtime::check`).
//!
//! A member who left and came back is a member since their latest join: their own earlier
//! departure, replayed, does not end the feed, and a feed that replays only what members may
//! see (`since_join`) starts no earlier than that join. A cursor from before what retention has
//! pruned is refused with `CURSOR_EXPIRED` rather than replayed with a silent gap.
//!
//! A transport that writes a feed's events to clients can learn which event each result came
//! from, to measure fan-out, by polling the subscription inside [`noting_handed_out`].

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::event::EventKind;
use entity::session;
use futures_util::{FutureExt, Stream};
use sea_orm::DatabaseConnection;
use sea_orm::EntityTrait;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::admission::Admitted;
use super::bus::{Bus, BusMessage, FeedItem, Receiver};
use super::log::{self, Replays};
use super::presence::{Online, Presence};
use crate::clock;
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult};
use crate::service::Viewer;
use crate::service::sessions;

/// Where a feed starts.
pub struct FeedStart {
    pub session_id: Uuid,
    /// The member following the session: their own departure ends the feed.
    pub viewer_id: Uuid,
    /// Replay everything after this event id; `None` streams only what comes next.
    pub after: Option<i64>,
    /// Marks the viewer online for as long as the feed runs (no pushes for what it shows).
    pub presence: Option<Arc<Presence>>,
    /// Replays nothing from before the viewer's latest join (`sessionEvents`: who came and went
    /// while they were not a member is not theirs to see). Without it the whole log after the
    /// cursor is replayed (`photoAdded`: the album is the members' to see, whenever a photo
    /// was added).
    pub since_join: bool,
    /// The start's turn in the admission queue, given back once the replay is read.
    pub admitted: Option<Admitted>,
}

struct Feed {
    db: DatabaseConnection,
    bus: Arc<Bus>,
    rx: Receiver,
    session_id: Uuid,
    viewer_id: Uuid,
    /// The viewer's latest `member_joined` event (0: none in the log); only a departure after
    /// it ends the feed.
    joined: i64,
    last: i64,
    /// The highest `session_seq` the feed has seen (delivered, queued or passed over as
    /// history): a live event numbered above its successor means one was missed.
    seen_seq: i64,
    backlog: VecDeque<Arc<FeedItem>>,
    catch_up: bool,
    /// Reads of the log that failed in a row because the database was out of reach.
    failed_reads: u8,
    done: bool,
    /// When an ended session stops taking late uploads: once it has passed and the log is
    /// read to its end, nothing more can come. `None` while the session runs.
    closes_at: Option<DateTime<Utc>>,
    /// The log has been read once more after `closes_at` (an event committed just before it
    /// may not have reached the channel yet).
    final_read: bool,
    _presence: Option<Online>,
    /// Held until the first replay is read: a start is not over before that.
    admitted: Option<Admitted>,
    /// Events recorded from then on are live; earlier ones are replayed history.
    opened_at: DateTime<Utc>,
}

/// The event a feed handed out last, as the transport that writes it to a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandedOut {
    /// When the event was recorded: its row's `created_at`, set in the transaction that
    /// committed it.
    pub committed_at: DateTime<Utc>,
    /// Recorded after the feed opened: fanned out as it happened, not replayed from a cursor.
    pub live: bool,
}

tokio::task_local! {
    static HANDED_OUT: Cell<Option<HandedOut>>;
}

/// Runs `poll` (one poll of a subscription's responses) with a note of the event its feed
/// hands out meanwhile, and returns both: the response that poll produced came from that
/// event. The schema sits between a feed and the transport and turns each event into a
/// response, so the event's commit time cannot travel with the value; both run in the same
/// poll, so a task-local note reaches it.
pub fn noting_handed_out<T>(poll: impl FnOnce() -> T) -> (T, Option<HandedOut>) {
    HANDED_OUT.sync_scope(Cell::new(None), || {
        let polled = poll();
        (polled, take_handed_out())
    })
}

fn note_handed_out(handed: HandedOut) {
    // Outside `noting_handed_out` there is nobody to tell.
    let _ = HANDED_OUT.try_with(|note| note.set(Some(handed)));
}

/// The event handed out last since the previous call; `None` when none was, or outside
/// [`noting_handed_out`].
fn take_handed_out() -> Option<HandedOut> {
    HANDED_OUT.try_with(Cell::take).ok().flatten()
}

/// Opens the feed: NOT_FOUND unless the viewer is a current member of the session.
pub async fn open(
    db: DatabaseConnection,
    bus: Arc<Bus>,
    start: FeedStart,
) -> ApiResult<Opened<impl Stream<Item = ApiResult<Arc<FeedItem>>> + Send + use<>>> {
    let opened_at = clock::now();
    let rx = bus.subscribe(start.session_id);
    // Checked after subscribing: a departure or an end committed from here on reaches the
    // channel, and one committed before is seen here.
    let replays = if start.since_join {
        Replays::Events
    } else {
        Replays::Photos
    };
    // With the viewer's latest join, the log's pruning mark and its heads, in the same
    // statement: a reconnecting crowd starts thousands of feeds at once.
    let (view, [joined, pruned_through, blocks_anyone, head, replay_head]) =
        sessions::get_session_with(
            &db,
            Viewer::User(start.viewer_id),
            start.session_id,
            [
                log::latest_join(start.session_id, start.viewer_id),
                log::pruned_through(start.session_id),
                log::blocks_anyone(start.viewer_id),
                // Read after subscribing: anything newer than these reaches the channel.
                log::head_of(start.session_id),
                log::replay_head(start.session_id, replays),
            ],
        )
        .await?;
    let joined = joined.unwrap_or(0);
    // Everything numbered up to here is history or will be replayed from the log.
    let seen_seq = view.session.event_seq;
    bus.saw(start.session_id, seen_seq);
    let closes_at = closes_at(&view.session);
    let taking_uploads = sessions::takes_uploads(&view.session, opened_at);
    let (last, catch_up) = match start.after {
        Some(after) => {
            let after = if start.since_join {
                // From their own join on, so the replay shows it.
                after.max(joined.saturating_sub(1))
            } else {
                after
            };
            log::check_resumable(&db, start.session_id, after, replays, pruned_through).await?;
            // A cursor at the head (a phone that had everything, as most have when a restart
            // drops them) has no page to read.
            (after, after < replay_head.unwrap_or(0))
        }
        None => (head.unwrap_or(0), false),
    };
    // Only once the feed receives events does the viewer count as online.
    let online = match &start.presence {
        Some(presence) if taking_uploads => {
            Some(presence.enter(start.session_id, start.viewer_id).await?)
        }
        _ => None,
    };
    let feed = Feed {
        db,
        bus,
        rx,
        session_id: start.session_id,
        viewer_id: start.viewer_id,
        joined,
        last,
        seen_seq,
        backlog: VecDeque::new(),
        catch_up,
        failed_reads: 0,
        // A live-only feed of a session past its late-upload window has nothing to wait for.
        done: !taking_uploads && !catch_up,
        closes_at,
        final_read: false,
        _presence: online,
        // A live-only feed has nothing to replay: its start is over.
        admitted: if catch_up { start.admitted } else { None },
        opened_at,
    };
    let items = futures_util::stream::unfold(feed, |mut feed| async move {
        feed.next().await.map(|item| (item, feed))
    });
    Ok(Opened {
        items,
        blocks_anyone: blocks_anyone.is_some(),
    })
}

/// An open feed, and what its start learned on the way.
pub struct Opened<S> {
    pub items: S,
    /// Whether the viewer blocked anyone when the feed started.
    pub blocks_anyone: bool,
}

impl Feed {
    async fn next(&mut self) -> Option<ApiResult<Arc<FeedItem>>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(item) = self.backlog.pop_front() {
                if item.event.id <= self.last {
                    continue;
                }
                self.last = item.event.id;
                self.done = self.ends_feed(&item);
                if matches!(
                    item.event.kind,
                    EventKind::SessionEnded | EventKind::SessionUpdated
                ) {
                    Box::pin(self.reread_window()).await;
                }
                let committed_at = item.event.created_at;
                let handed = HandedOut {
                    committed_at,
                    live: committed_at >= self.opened_at,
                };
                note_handed_out(handed);
                return Some(Ok(item));
            }
            if self.catch_up {
                // Boxed, as the read above: a feed spends its life waiting on the channel, and
                // its waiting state should not be the size of a database read.
                let (db, session, after) = (&self.db, Some(self.session_id), self.last);
                // A starting feed has its turn from the admission queue already.
                let read = if self.admitted.is_some() {
                    log::read_page(db, session, after).boxed()
                } else {
                    log::page(db, session, after).boxed()
                };
                match read.await {
                    Ok(page) => {
                        self.failed_reads = 0;
                        self.catch_up = page.len() as u64 == log::PAGE;
                        if !self.catch_up {
                            self.admitted = None;
                        }
                        if let Some(seq) = page.iter().filter_map(|i| i.event.session_seq).max() {
                            self.seen_seq = self.seen_seq.max(seq);
                            self.bus.saw(self.session_id, self.seen_seq);
                        }
                        self.backlog.extend(page.into_iter().map(Arc::new));
                    }
                    // A live feed outlasts a database that is briefly out of reach: it waits
                    // and reads again from its cursor, and the phone misses nothing. A start
                    // that fails is refused instead, with a retryable code.
                    Err(ApiError::Unavailable(_)) if self.admitted.is_none() => {
                        tokio::time::sleep(retry_delay(self.failed_reads)).await;
                        self.failed_reads = self.failed_reads.saturating_add(1);
                    }
                    Err(err) => {
                        self.done = true;
                        return Some(Err(err));
                    }
                }
                continue;
            }
            let received = match self.closes_at {
                None => self.rx.recv().await,
                Some(closes_at) => {
                    let now = clock::now();
                    if closes_at <= now {
                        if self.final_read {
                            return None;
                        }
                        self.final_read = true;
                        self.catch_up = true;
                        continue;
                    }
                    let wait = (closes_at - now).to_std().unwrap_or_default();
                    tokio::select! {
                        received = self.rx.recv() => received,
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
            };
            match received {
                Ok(BusMessage::Event(item)) => match item.event.session_seq {
                    Some(seq) if seq > self.seen_seq + 1 => {
                        // Its predecessor's wake-up never came: the log has both.
                        crate::metrics::bus_gap("feed");
                        self.catch_up = true;
                    }
                    Some(seq) => {
                        self.seen_seq = self.seen_seq.max(seq);
                        self.backlog.push_back(item);
                    }
                    None => self.backlog.push_back(item),
                },
                Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => self.catch_up = true,
                Err(RecvError::Closed) => {
                    self.rx = self.bus.subscribe(self.session_id);
                    self.catch_up = true;
                }
            }
        }
    }

    /// When the session stops taking late uploads, read again after it ended or its settings
    /// changed. A failed read keeps the window known so far (the next event or the end of the
    /// window comes round again).
    async fn reread_window(&mut self) {
        match session::Entity::find_by_id(self.session_id)
            .one(&self.db)
            .await
        {
            Ok(Some(row)) => self.closes_at = closes_at(&row),
            Ok(None) => self.done = true,
            Err(err) => tracing::warn!(error = %err, "could not read the session's upload window"),
        }
    }

    /// The viewer left or was removed since their latest join: nothing more is theirs to see.
    /// A departure before that join is history they came back from. The session's end does
    /// not end the feed by itself: photos uploaded late still arrive, until the window closes.
    fn ends_feed(&self, item: &FeedItem) -> bool {
        match item.event.kind {
            EventKind::MemberLeft | EventKind::MemberRemoved => {
                item.event.id > self.joined && log::user_id(&item.event) == Some(self.viewer_id)
            }
            _ => false,
        }
    }
}

/// How long a feed waits before reading the log again after `failed` reads in a row found
/// the database out of reach: a quarter of a second, doubling up to four.
pub fn retry_delay(failed: u8) -> Duration {
    Duration::from_millis(250 << failed.min(4))
}

fn closes_at(session: &session::Model) -> Option<DateTime<Utc>> {
    session
        .ended_at
        .map(|ended_at| sessions::late_uploads_close(ended_at, session.late_upload_hours))
}

/// Which of a session's feeds a subscription follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Following {
    /// `photoAdded`: marks the viewer online (no pushes for what it shows) and replays every
    /// photo after the cursor.
    Photos,
    /// `sessionEvents`: does not mark the viewer online, and replays nothing from before the
    /// viewer's latest join.
    Events,
}

/// Opens a member's feed of a session, in the turn `admitted` gives it: NOT_FOUND unless the
/// viewer is a current member.
pub async fn follow(
    deps: &Deps,
    viewer: Viewer,
    session_id: Uuid,
    after: Option<i64>,
    following: Following,
    admitted: Admitted,
) -> ApiResult<Opened<impl Stream<Item = ApiResult<Arc<FeedItem>>> + Send + use<>>> {
    open(
        deps.db.clone(),
        deps.bus.clone(),
        FeedStart {
            session_id,
            viewer_id: viewer.user_id()?,
            after,
            presence: (following == Following::Photos).then(|| deps.presence.clone()),
            since_join: following == Following::Events,
            admitted: Some(admitted),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handed(live: bool) -> HandedOut {
        HandedOut {
            committed_at: clock::now(),
            live,
        }
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_four_seconds() {
        let delays: Vec<u128> = (0..7).map(|n| retry_delay(n).as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(retry_delay(u8::MAX), Duration::from_secs(4));
    }

    #[test]
    fn the_note_holds_the_latest_event_of_its_poll_once_and_only_inside_it() {
        let (first, second) = (handed(false), handed(true));
        let ((), noted) = noting_handed_out(|| {
            note_handed_out(first);
            note_handed_out(second);
        });
        assert_eq!(noted, Some(second));
        let ((), noted) = noting_handed_out(|| {
            assert_eq!(take_handed_out(), None);
        });
        assert_eq!(noted, None);
        // Outside: nowhere to note, nothing to take, and no panic.
        note_handed_out(first);
        assert_eq!(take_handed_out(), None);
    }
}
