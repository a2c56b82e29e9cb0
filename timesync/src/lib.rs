//! Time synchronisation over NATS.
