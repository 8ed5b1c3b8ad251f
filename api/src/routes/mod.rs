//! Plain HTTP routes beside the GraphQL API.

pub mod archive;
pub mod oauth;
