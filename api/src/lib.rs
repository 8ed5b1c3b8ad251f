//! Photon: one live photo album for a group of friends, served as a GraphQL API.
//!
//! The binary (`main.rs`) is a thin CLI over this library, so the end-to-end tests start the
//! same [`app::Application`] the binary does.

pub mod app;
pub mod archive;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod deps;
pub mod digest;
pub mod error;
pub mod events;
pub mod graphql;
pub mod imaging;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod pages;
pub mod processing;
pub mod push;
pub mod realtime;
pub mod routes;
pub mod server;
pub mod service;
pub mod signing;
pub mod storage;
pub mod telemetry;
