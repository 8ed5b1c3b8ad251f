//! Real time: the event bus that wakes subscriptions when an event is committed, and presence.

pub mod presence;
