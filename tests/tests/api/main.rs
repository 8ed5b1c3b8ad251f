//! End-to-end tests: a real server per test, real HTTP, a fresh database per test. The same
//! suite runs against Postgres and SQLite (see `PHOTON_TEST_BACKEND`).

// A failed unwrap in a test is a failed test, which is what it should be.
#![allow(clippy::unwrap_used)]

mod abuse;
mod accounts;
mod apollo;
mod archive;
mod authorization;
mod browser;
mod concurrency;
mod connections;
mod cost;
mod drain;
mod faults;
mod field_order;
mod friends;
mod guests;
mod health;
mod http_protocol;
mod invite_page;
mod lifecycle;
mod limits;
mod metrics;
mod oauth;
mod oidc;
mod owner_controls;
mod pages;
mod persisted;
mod photos;
mod processing;
mod push;
mod push_pacing;
mod rate_limits;
mod replicas;
mod safety;
mod schema;
mod sessions;
mod subscriptions;
mod tokens;
mod users;
mod wakeups;
mod websocket_telemetry;
