//! Authentication: access tokens (JWT), refresh tokens, the request's viewer, and the sign-in
//! flows that issue them.

pub mod jwt;
pub mod oauth;
pub mod refresh;
pub mod service;
pub mod viewer;

pub use viewer::Viewer;
