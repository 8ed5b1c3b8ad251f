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
    /// At most one photo push per session (so per member) this often; what arrives in
    /// between is summed up by the next one. Zero: no pacing.
    pub min_interval: Duration,
    /// How long before a session's first photos expire its members are warned.
    pub expiry_warning: Duration,
    /// `None`: pushes are logged instead of sent.
    pub fcm: Option<fcm::FcmSettings>,
}

/// Settings: push notifications through Firebase Cloud Messaging.
#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// Path of the Firebase service-account key (JSON) that push notifications are sent
    /// with; checked at start-up. Unset: pushes are logged instead of sent.
    #[arg(long, env = "FCM_CREDENTIALS")]
    pub fcm_credentials: Option<std::path::PathBuf>,

    /// Base URL of the FCM HTTP v1 API (`/v1/projects/{project}/messages:send` is appended).
    #[arg(long, env = "FCM_ENDPOINT", default_value = crate::push::fcm::DEFAULT_ENDPOINT)]
    pub fcm_endpoint: url::Url,

    /// Milliseconds a session's new photos wait for more before one push announces them all.
    #[arg(long, env = "PHOTON_PUSH_COALESCE_MS", default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub push_coalesce_ms: u64,

    /// Seconds between two photo pushes of one session: the later one sums up everything
    /// that arrived since the earlier one. 0 turns pacing off.
    #[arg(long, env = "PHOTON_PUSH_MIN_INTERVAL_SECS", default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub push_min_interval_secs: u64,

    /// Minutes before a session's first photos expire that its members get one warning
    /// ("… disappear in an hour — save them"); 0 sends none.
    #[arg(long, env = "PHOTON_EXPIRY_WARNING_MINS", default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(0..=1_440))]
    pub expiry_warning_mins: u64,

    /// Milliseconds between the push dispatcher's looks for pushes to send; 0 turns the
    /// dispatcher off in this replica.
    #[arg(long, env = "PHOTON_PUSH_POLL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub push_poll_ms: u64,
}
