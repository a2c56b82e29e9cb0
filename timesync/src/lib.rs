//! Time synchronisation over NATS: NTP-style request/reply measurements, a Kalman discipline
//! loop and source selection (pure, in [`core`]), driven by async-nats.

pub mod clock;
pub mod core;
pub mod steer;
