//! nats-scion broker: a NATS server compatible with nats-server 2.9.
pub mod options;
