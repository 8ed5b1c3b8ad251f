//! Credentials: access tokens (JWT), refresh tokens, and the sign-in providers' OAuth clients.
//! The use cases that issue them (sign-in, refresh, the viewer of a request) are services.

pub mod jwt;
pub mod oauth;
pub mod refresh;
