//! Plain HTTP routes beside the GraphQL API.

pub mod oauth;
