//! Time synchronisation over NATS.

pub mod core;
