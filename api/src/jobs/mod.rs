//! Background jobs that run inside every replica.

pub mod sweeper;
