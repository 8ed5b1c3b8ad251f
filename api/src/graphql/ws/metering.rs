//! What the WebSocket transport reports to the metrics registry: open sockets per protocol,
//! running subscriptions per root field, and each event fanned out to a socket with how long
//! it took from its commit.
//!
//! Gauges are held by guards, so a socket or subscription that ends any way at all (closed,
//! aborted, panicked) is counted down.

use chrono::{DateTime, Utc};
use metrics::{counter, gauge, histogram};

use super::protocol::Protocol;
use crate::realtime::feed::HandedOut;

pub const WS_CONNECTIONS: &str = "photon_ws_connections";
pub const SUBSCRIPTIONS_ACTIVE: &str = "photon_subscriptions_active";
pub const FANOUT_DELIVERIES: &str = "photon_fanout_deliveries_total";
pub const FANOUT_LAG: &str = "photon_fanout_lag_seconds";

/// An open socket, counted in `photon_ws_connections{protocol}` while it lives.
pub struct CountedSocket {
    protocol: &'static str,
}

impl CountedSocket {
    pub fn count(protocol: Protocol) -> Self {
        let protocol = protocol.name();
        gauge!(WS_CONNECTIONS, "protocol" => protocol).increment(1.0);
        Self { protocol }
    }
}

impl Drop for CountedSocket {
    fn drop(&mut self) {
        gauge!(WS_CONNECTIONS, "protocol" => self.protocol).decrement(1.0);
    }
}

/// A running subscription, counted in `photon_subscriptions_active{field}` while it lives.
/// `field` is one of the schema's own subscription fields or `other` (see
/// [`super::operation::subscription_field`]), never free text.
pub struct CountedSubscription {
    field: String,
}

impl CountedSubscription {
    pub fn count(field: String) -> Self {
        gauge!(SUBSCRIPTIONS_ACTIVE, "field" => field.clone()).increment(1.0);
        Self { field }
    }
}

impl Drop for CountedSubscription {
    fn drop(&mut self) {
        gauge!(SUBSCRIPTIONS_ACTIVE, "field" => self.field.clone()).decrement(1.0);
    }
}

/// An event was written to a socket at `now`. Every event counts as a delivery; only live
/// ones (committed after their feed opened) are timed, since a replay of an hour-old photo
/// to a phone that was offline says nothing about how fast fan-out is.
pub fn delivered(event: HandedOut, now: DateTime<Utc>) {
    counter!(FANOUT_DELIVERIES).increment(1);
    if event.live {
        // Another replica's clock may run a little ahead: a negative lag is none.
        let lag = (now - event.committed_at).to_std().unwrap_or_default();
        histogram!(FANOUT_LAG).record(lag.as_secs_f64());
    }
}

/// Reading what a [`metrics_util::debugging::DebuggingRecorder`] recorded, for tests.
#[cfg(test)]
pub(super) mod testing {
    use std::collections::HashMap;

    use metrics_util::debugging::{DebugValue, Snapshotter};

    type Labels = Vec<(String, String)>;

    /// Everything recorded so far. Each of the recorder's snapshots reports (and resets) what
    /// changed since the one before, so they are added up here.
    pub struct Totals {
        snapshotter: Snapshotter,
        gauges: HashMap<(String, Labels), f64>,
        counters: HashMap<String, u64>,
        histograms: HashMap<String, Vec<f64>>,
    }

    impl Totals {
        pub fn new(snapshotter: Snapshotter) -> Self {
            Self {
                snapshotter,
                gauges: HashMap::new(),
                counters: HashMap::new(),
                histograms: HashMap::new(),
            }
        }

        fn update(&mut self) {
            for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
                let name = key.key().name().to_owned();
                let labels = key
                    .key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                match value {
                    DebugValue::Gauge(delta) => {
                        *self.gauges.entry((name, labels)).or_default() += delta.into_inner();
                    }
                    DebugValue::Counter(delta) => *self.counters.entry(name).or_default() += delta,
                    DebugValue::Histogram(values) => self
                        .histograms
                        .entry(name)
                        .or_default()
                        .extend(values.into_iter().map(|v| v.into_inner())),
                }
            }
        }

        /// A gauge's value now (0 if never touched).
        pub fn gauge(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
            self.update();
            let labels = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.gauges
                .get(&(name.to_owned(), labels))
                .copied()
                .unwrap_or_default()
        }

        /// A counter's total, over all its labels.
        pub fn counter(&mut self, name: &str) -> u64 {
            self.update();
            self.counters.get(name).copied().unwrap_or_default()
        }

        /// Every value a histogram recorded, in order.
        pub fn histogram(&mut self, name: &str) -> Vec<f64> {
            self.update();
            self.histograms.get(name).cloned().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::DebuggingRecorder;

    use super::testing::Totals;
    use super::*;

    #[test]
    fn sockets_are_counted_per_protocol_until_dropped() {
        let recorder = DebuggingRecorder::new();
        let mut totals = Totals::new(recorder.snapshotter());
        let transport = [("protocol", "graphql-transport-ws")];
        let legacy = [("protocol", "graphql-ws")];
        metrics::with_local_recorder(&recorder, || {
            let a = CountedSocket::count(Protocol::Transport);
            let b = CountedSocket::count(Protocol::Transport);
            let c = CountedSocket::count(Protocol::Legacy);
            assert_eq!(totals.gauge(WS_CONNECTIONS, &transport), 2.0);
            assert_eq!(totals.gauge(WS_CONNECTIONS, &legacy), 1.0);
            drop(a);
            // A guard dropped by a panic counts down too.
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _c = c;
                panic!("the socket task failed");
            }));
            assert!(unwound.is_err());
            assert_eq!(totals.gauge(WS_CONNECTIONS, &transport), 1.0);
            assert_eq!(totals.gauge(WS_CONNECTIONS, &legacy), 0.0);
            drop(b);
        });
        assert_eq!(totals.gauge(WS_CONNECTIONS, &transport), 0.0);
    }

    #[test]
    fn subscriptions_are_counted_per_field() {
        let recorder = DebuggingRecorder::new();
        let mut totals = Totals::new(recorder.snapshotter());
        let photos = [("field", "photoAdded")];
        let other = [("field", "other")];
        metrics::with_local_recorder(&recorder, || {
            let a = CountedSubscription::count("photoAdded".into());
            let b = CountedSubscription::count("photoAdded".into());
            let c = CountedSubscription::count("other".into());
            assert_eq!(totals.gauge(SUBSCRIPTIONS_ACTIVE, &photos), 2.0);
            assert_eq!(totals.gauge(SUBSCRIPTIONS_ACTIVE, &other), 1.0);
            drop((a, c));
            assert_eq!(totals.gauge(SUBSCRIPTIONS_ACTIVE, &photos), 1.0);
            assert_eq!(totals.gauge(SUBSCRIPTIONS_ACTIVE, &other), 0.0);
            drop(b);
        });
        assert_eq!(totals.gauge(SUBSCRIPTIONS_ACTIVE, &photos), 0.0);
    }

    #[test]
    fn live_deliveries_are_timed_from_their_commit_and_replays_only_counted() {
        let recorder = DebuggingRecorder::new();
        let mut totals = Totals::new(recorder.snapshotter());
        let now = Utc::now();
        metrics::with_local_recorder(&recorder, || {
            let committed_at = now - chrono::Duration::milliseconds(250);
            delivered(
                HandedOut {
                    committed_at,
                    live: true,
                },
                now,
            );
            let hour_ago = now - chrono::Duration::hours(1);
            delivered(
                HandedOut {
                    committed_at: hour_ago,
                    live: false,
                },
                now,
            );
            let ahead = now + chrono::Duration::milliseconds(5);
            delivered(
                HandedOut {
                    committed_at: ahead,
                    live: true,
                },
                now,
            );
        });
        assert_eq!(totals.counter(FANOUT_DELIVERIES), 3);
        assert_eq!(totals.histogram(FANOUT_LAG), vec![0.25, 0.0]);
    }
}
