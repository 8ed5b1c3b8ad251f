//! Token buckets per rule and key, and counters of concurrent WebSockets.
//!
//! Every rule is a GCRA token bucket (`governor`): a sustained rate per minute and a burst.
//! State lives in this replica's memory, so each replica allows the full rate on its own.
//!
//! Memory is bounded two ways. A key's bucket is dropped once it has refilled (it is then
//! indistinguishable from a fresh one): the cleanup loop does this every
//! `PHOTON_RATE_LIMIT_CLEANUP_SECS`. And a rule that still holds more than
//! `PHOTON_RATE_LIMIT_MAX_KEYS` keys after that — only possible when that many distinct
//! clients each left a bucket partly drained within one refill period — starts over empty,
//! with a warning: a brief lapse of one limit, never unbounded growth. A key costs well under
//! 100 bytes, so the default bound is a few megabytes per rule. IPv6 clients are keyed by
//! their /64, the smallest block a subscriber usually gets, so one subscriber cannot mint
//! keys by rotating addresses.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use super::RateLimitSettings;
use crate::error::{ApiError, ApiResult};
use crate::jobs::{Every, First, Pace, Supervisor};
use crate::service::Viewer;

/// A rate limit. The name is what logs and `ApiError::RateLimited` call it; the settings of
/// each are documented on [`RateLimitSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// GraphQL requests without a viewer, per IP.
    Anonymous,
    /// `devSignIn`, `exchangeLoginCode`, `joinSessionAsGuest`, per IP.
    SignIn,
    /// `refreshToken`, per IP.
    Refresh,
    /// `/auth/{provider}/start` and `/callback`, per IP.
    OAuth,
    /// `/join/{code}`, its QR code and anonymous `sessionInvite`, per IP.
    JoinLink,
    /// Every mutation field, per user.
    Mutation,
    /// `requestPhotoUpload`, per user.
    PhotoUpload,
    /// `sendFriendRequest`, per user.
    FriendRequest,
    /// `joinSession` and `leaveSession`, per user.
    JoinLeave,
    /// `inviteToSession`, per user.
    Invite,
    /// `registerDevice`, per user.
    RegisterDevice,
    /// `findUserByEmail`, per user.
    FindUserByEmail,
    /// `reportPhoto`, per user.
    Report,
    /// `requestSessionArchive`, per user.
    Archive,
    /// `/archive/{session}.zip` downloads, per IP.
    ArchiveDownload,
    /// WebSocket `connection_init`, per IP.
    WsInit,
    /// Subscription starts, per WebSocket connection.
    WsSubscribe,
}

impl Rule {
    pub const ALL: [Rule; 17] = [
        Rule::Anonymous,
        Rule::SignIn,
        Rule::Refresh,
        Rule::OAuth,
        Rule::JoinLink,
        Rule::Mutation,
        Rule::PhotoUpload,
        Rule::FriendRequest,
        Rule::JoinLeave,
        Rule::Invite,
        Rule::RegisterDevice,
        Rule::FindUserByEmail,
        Rule::Report,
        Rule::Archive,
        Rule::ArchiveDownload,
        Rule::WsInit,
        Rule::WsSubscribe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Anonymous => "anonymous",
            Rule::SignIn => "sign-in",
            Rule::Refresh => "refresh",
            Rule::OAuth => "oauth",
            Rule::JoinLink => "join-link",
            Rule::Mutation => "mutation",
            Rule::PhotoUpload => "photo-upload",
            Rule::FriendRequest => "friend-request",
            Rule::JoinLeave => "join-leave",
            Rule::Invite => "invite",
            Rule::RegisterDevice => "register-device",
            Rule::FindUserByEmail => "find-user",
            Rule::Report => "report",
            Rule::Archive => "archive",
            Rule::ArchiveDownload => "archive-download",
            Rule::WsInit => "ws-init",
            Rule::WsSubscribe => "ws-subscribe",
        }
    }

    /// Whether the rule counts per user (falling back to the IP for anonymous callers)
    /// rather than per IP.
    fn per_user(self) -> bool {
        matches!(
            self,
            Rule::Mutation
                | Rule::PhotoUpload
                | Rule::FriendRequest
                | Rule::JoinLeave
                | Rule::Invite
                | Rule::RegisterDevice
                | Rule::FindUserByEmail
                | Rule::Report
                | Rule::Archive
        )
    }

    /// (per minute, burst) from the settings.
    fn rate(self, s: &RateLimitSettings) -> (u32, u32) {
        match self {
            Rule::Anonymous => (s.anonymous_per_minute, s.anonymous_burst),
            Rule::SignIn => (s.sign_in_per_minute, s.sign_in_burst),
            Rule::Refresh => (s.refresh_per_minute, s.refresh_burst),
            Rule::OAuth => (s.oauth_per_minute, s.oauth_burst),
            Rule::JoinLink => (s.join_link_per_minute, s.join_link_burst),
            Rule::Mutation => (s.mutation_per_minute, s.mutation_burst),
            Rule::PhotoUpload => (s.photo_upload_per_minute, s.photo_upload_burst),
            Rule::FriendRequest => (s.friend_request_per_minute, s.friend_request_burst),
            Rule::JoinLeave => (s.join_leave_per_minute, s.join_leave_burst),
            Rule::Invite => (s.invite_per_minute, s.invite_burst),
            Rule::RegisterDevice => (s.register_device_per_minute, s.register_device_burst),
            Rule::FindUserByEmail => (s.find_user_per_minute, s.find_user_burst),
            Rule::Report => (s.report_per_minute, s.report_burst),
            Rule::Archive => (s.archive_per_minute, s.archive_burst),
            Rule::ArchiveDownload => (s.archive_download_per_minute, s.archive_download_burst),
            Rule::WsInit => (s.ws_init_per_minute, s.ws_init_burst),
            Rule::WsSubscribe => (s.ws_subscribe_per_minute, s.ws_subscribe_burst),
        }
    }

    fn quota(self, s: &RateLimitSettings) -> Quota {
        let (per_minute, burst) = self.rate(s);
        // The settings' ranges keep both positive; the fallbacks only satisfy the types.
        let period = Duration::from_secs(60) / per_minute.max(1);
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
    }
}

/// Whom a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Ip(IpAddr),
    User(Uuid),
}

impl Key {
    /// A client address as a key: IPv4 as is, IPv6 by its /64.
    pub fn ip(address: IpAddr) -> Self {
        Key::Ip(network_of(address))
    }
}

/// The address that stands for one client: IPv4 as it is (IPv4-mapped IPv6 included), IPv6
/// by its /64, since one subscriber is handed a whole /64 and could otherwise take a fresh
/// address for every request or connection.
pub fn network_of(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// One rule's buckets. The limiter sits behind a lock only so that the cleanup loop can
/// swap in an empty one; checks take the read side for a moment.
struct Buckets {
    quota: Quota,
    limiter: RwLock<Arc<DefaultKeyedRateLimiter<Key>>>,
}

impl Buckets {
    fn new(quota: Quota) -> Self {
        Self {
            quota,
            limiter: RwLock::new(Arc::new(RateLimiter::keyed(quota))),
        }
    }

    fn current(&self) -> Arc<DefaultKeyedRateLimiter<Key>> {
        self.limiter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Seconds until the key may try again, if it may not now.
    fn check(&self, key: &Key) -> Option<u64> {
        let limiter = self.current();
        limiter
            .check_key(key)
            .err()
            .map(|not_until| retry_secs(not_until.wait_time_from(limiter.clock().now())))
    }

    /// Drops refilled buckets; starts over if the rule still holds too many keys.
    fn clean(&self, rule: Rule, max_keys: usize) {
        let limiter = self.current();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        let keys = limiter.len();
        if keys > max_keys {
            tracing::warn!(
                rule = rule.name(),
                keys,
                max_keys,
                "rate limit holds too many keys; starting it over"
            );
            *self.limiter.write().unwrap_or_else(PoisonError::into_inner) =
                Arc::new(RateLimiter::keyed(self.quota));
        }
    }
}

/// Whole seconds to wait, rounded up and at least one, as `Retry-After` wants them.
fn retry_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Counts of open WebSockets per key, for the concurrent caps. Keys leave the map when
/// their last connection closes, so it holds no more entries than there are sockets.
struct Open<K> {
    max: u32,
    counts: Mutex<HashMap<K, u32>>,
}

impl<K: Hash + Eq + Copy> Open<K> {
    fn new(max: u32) -> Self {
        Self {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn acquire(&self, key: K) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, key: K) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }
}

/// How long a client refused for too many open WebSockets is told to wait.
const OPEN_RETRY_SECS: u64 = 5;

/// Every rate limit of this replica. Shared through `AppState`.
pub struct RateLimiters {
    enabled: bool,
    /// Indexed by `Rule as usize`.
    buckets: Vec<Buckets>,
    subscribe_quota: Quota,
    max_keys: usize,
    cleanup_every: Duration,
    ws_per_ip: Open<IpAddr>,
    ws_per_user: Open<Uuid>,
}

impl RateLimiters {
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            enabled: settings.rate_limits,
            buckets: Rule::ALL
                .iter()
                .map(|rule| Buckets::new(rule.quota(settings)))
                .collect(),
            subscribe_quota: Rule::WsSubscribe.quota(settings),
            max_keys: settings.rate_limit_max_keys as usize,
            cleanup_every: Duration::from_secs(settings.rate_limit_cleanup_secs),
            ws_per_ip: Open::new(settings.ws_connections_per_ip),
            ws_per_user: Open::new(settings.ws_connections_per_user),
        }
    }

    /// Counts one call of `rule` for `key`, or refuses it with RATE_LIMITED.
    pub fn check(&self, rule: Rule, key: Key) -> ApiResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let Some(buckets) = self.buckets.get(rule as usize) else {
            return Ok(());
        };
        match buckets.check(&key) {
            None => Ok(()),
            Some(retry_after_secs) => {
                tracing::debug!(rule = rule.name(), retry_after_secs, "rate limited");
                crate::metrics::rate_limit_refused(rule.name());
                Err(ApiError::RateLimited {
                    rule: rule.name(),
                    retry_after_secs,
                })
            }
        }
    }

    /// Counts one call of `rule` for this caller: per user for per-user rules when there is
    /// one, per client IP otherwise.
    pub fn check_caller(&self, rule: Rule, viewer: Viewer, client: IpAddr) -> ApiResult<()> {
        let key = match viewer {
            Viewer::User(id) if rule.per_user() => Key::User(id),
            _ => Key::ip(client),
        };
        self.check(rule, key)
    }

    /// A fresh bucket for one connection's subscription starts (`None` when limits are off).
    pub fn subscription_bucket(&self) -> Option<SubscriptionBucket> {
        self.enabled
            .then(|| SubscriptionBucket(RateLimiter::direct(self.subscribe_quota)))
    }

    /// Admits one more open WebSocket from `client`, or refuses with RATE_LIMITED.
    pub fn open_socket(self: &Arc<Self>, client: IpAddr) -> ApiResult<OpenSocket> {
        let Key::Ip(key) = Key::ip(client) else {
            return Ok(OpenSocket::none());
        };
        if !self.enabled {
            return Ok(OpenSocket::none());
        }
        if !self.ws_per_ip.acquire(key) {
            crate::metrics::rate_limit_refused("ws-connections-per-ip");
            return Err(ApiError::RateLimited {
                rule: "ws-connections-per-ip",
                retry_after_secs: OPEN_RETRY_SECS,
            });
        }
        Ok(OpenSocket {
            owner: Some(self.clone()),
            ip: Some(key),
            user: None,
        })
    }

    /// Counts the socket against its user too, once it has authenticated.
    pub fn socket_user(&self, socket: &mut OpenSocket, user: Uuid) -> ApiResult<()> {
        if !self.enabled || socket.user.is_some() {
            return Ok(());
        }
        if !self.ws_per_user.acquire(user) {
            crate::metrics::rate_limit_refused("ws-connections-per-user");
            return Err(ApiError::RateLimited {
                rule: "ws-connections-per-user",
                retry_after_secs: OPEN_RETRY_SECS,
            });
        }
        socket.user = Some(user);
        Ok(())
    }

    /// Drops refilled buckets every `cleanup_every` (the first a period in), as a task under
    /// `tasks`; nothing to do when the limits are off.
    pub fn spawn_cleanup(self: &Arc<Self>, tasks: &Supervisor) {
        if !self.enabled {
            return;
        }
        let limiters = self.clone();
        let every = Every::new(self.cleanup_every).first(First::AfterPeriod);
        tasks.spawn(CLEANUP_TASK, move |ctx| {
            let limiters = limiters.clone();
            async move {
                let limiters = &limiters;
                every
                    .run(&ctx, || async move {
                        for (rule, buckets) in Rule::ALL.iter().zip(&limiters.buckets) {
                            buckets.clean(*rule, limiters.max_keys);
                        }
                        Ok(Pace::Rest)
                    })
                    .await
            }
        });
    }
}

/// The clean-up's name under the supervisor.
pub const CLEANUP_TASK: &str = "rate_limit_cleanup";

/// The subscription starts of one WebSocket connection.
pub struct SubscriptionBucket(DefaultDirectRateLimiter);

impl SubscriptionBucket {
    pub fn check(&self) -> ApiResult<()> {
        self.0.check().map_err(|not_until| {
            crate::metrics::rate_limit_refused(Rule::WsSubscribe.name());
            ApiError::RateLimited {
                rule: Rule::WsSubscribe.name(),
                retry_after_secs: retry_secs(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ),
            }
        })
    }
}

/// One open WebSocket's place in the per-IP and per-user caps, given back when dropped.
pub struct OpenSocket {
    owner: Option<Arc<RateLimiters>>,
    ip: Option<IpAddr>,
    user: Option<Uuid>,
}

impl OpenSocket {
    /// A socket that counts against nothing (limits off).
    pub fn none() -> Self {
        Self {
            owner: None,
            ip: None,
            user: None,
        }
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        let Some(owner) = &self.owner else { return };
        if let Some(ip) = self.ip {
            owner.ws_per_ip.release(ip);
        }
        if let Some(user) = self.user {
            owner.ws_per_user.release(user);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = Key::ip("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Key::ip("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = Key::ip("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            Key::ip("::ffff:192.0.2.1".parse().unwrap()),
            Key::Ip("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn retry_is_whole_seconds_rounded_up() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn open_counts_leave_no_empty_keys() {
        let open = Open::new(2);
        assert!(open.acquire(1));
        assert!(open.acquire(1));
        assert!(!open.acquire(1));
        assert!(open.acquire(2));
        open.release(1);
        open.release(1);
        open.release(2);
        assert!(open.counts.lock().unwrap().is_empty());
    }
}
