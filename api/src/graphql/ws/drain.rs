//! Shutting WebSockets down gracefully. Once upgraded, a socket is no longer an HTTP
//! connection the server waits for, so the sockets are counted here: shutdown refuses new
//! ones and waits for the open ones to finish what they run and close with 1001.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

/// The WebSockets open on this replica.
pub struct Sockets {
    /// Cloned into each open socket's ticket; dropped when the drain starts, so the channel
    /// closes when the last ticket goes.
    admitting: Mutex<Option<mpsc::Sender<Infallible>>>,
    all_closed: Mutex<Option<mpsc::Receiver<Infallible>>>,
}

/// One open socket's place, held until it closes. Nothing is ever sent on it: dropping it is
/// the message.
pub struct SocketTicket {
    _open: mpsc::Sender<Infallible>,
}

impl Sockets {
    pub fn new() -> Arc<Self> {
        let (admitting, all_closed) = mpsc::channel(1);
        Arc::new(Self {
            admitting: Mutex::new(Some(admitting)),
            all_closed: Mutex::new(Some(all_closed)),
        })
    }

    /// A ticket for a new socket, or `None` once the drain has started.
    pub fn admit(&self) -> Option<SocketTicket> {
        let admitting = self
            .admitting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        admitting.as_ref().map(|sender| SocketTicket {
            _open: sender.clone(),
        })
    }

    /// Refuses new sockets, then waits until every open one has closed. The sockets close
    /// themselves (they watch the server's `stopping` signal); this only waits.
    pub async fn drained(&self) {
        drop(
            self.admitting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let all_closed = self
            .all_closed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut all_closed) = all_closed {
            // `None` once every ticket is gone; nothing is ever sent.
            let _ = all_closed.recv().await;
        }
    }
}

/// Part of the shutdown grace period kept back so that sockets still waiting for an operation
/// at its end are closed with 1001 before the server stops, rather than cut off.
const CLOSE_MARGIN: Duration = Duration::from_secs(1);

/// How long a socket may wait for its queries and mutations once shutdown has started.
pub fn drain_window(grace: Duration) -> Duration {
    grace.saturating_sub(CLOSE_MARGIN.min(grace / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_every_ticket_and_refuses_new_ones() {
        let sockets = Sockets::new();
        let first = sockets.admit();
        let second = sockets.admit();
        assert!(first.is_some() && second.is_some());
        let waiting = {
            let sockets = sockets.clone();
            tokio::spawn(async move { sockets.drained().await })
        };
        tokio::task::yield_now().await;
        // Once the drain has started, nothing is admitted.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while sockets.admit().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "still admitting");
            tokio::task::yield_now().await;
        }
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "finished with a socket still open");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .map(|joined| joined.is_ok())
            .map_or_else(|_| panic!("the drain never finished"), |ok| assert!(ok));
    }

    #[tokio::test]
    async fn drained_with_no_socket_returns_at_once() {
        let sockets = Sockets::new();
        tokio::time::timeout(Duration::from_secs(1), sockets.drained())
            .await
            .map_or_else(|_| panic!("waited with nothing open"), |()| ());
    }

    #[test]
    fn the_drain_window_leaves_a_margin_to_close_in() {
        assert_eq!(
            drain_window(Duration::from_secs(20)),
            Duration::from_secs(19)
        );
        assert_eq!(
            drain_window(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(drain_window(Duration::ZERO), Duration::ZERO);
    }
}
