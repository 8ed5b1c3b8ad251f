//! Push notifications: the fallback for members who are not watching a session live.
//!
//! Events that deserve a push (a photo added, a session invite, a friend request) are written
//! with `push_state = 'pending'` in the same transaction as the change itself, so the events
//! table is also the push outbox. The [`dispatcher`] in every replica drains it: it claims
//! rows with `FOR UPDATE SKIP LOCKED` and a short lease, works out who should hear about them
//! and with what text ([`message`]), sends through FCM's HTTP v1 API ([`fcm`]) or, without
//! credentials, logs what it would have sent, and settles each row as sent, failed, or due
//! again after a back-off.

pub mod dispatcher;
pub mod fcm;
pub mod marks;
pub mod message;

use std::time::Duration;

/// How this replica dispatches pushes.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Time between looks at the outbox.
    pub poll_interval: Duration,
    /// A session's new photos wait this long for more before one push announces them all.
    pub coalesce_window: Duration,
    /// `None`: pushes are logged instead of sent.
    pub fcm: Option<fcm::FcmSettings>,
}
