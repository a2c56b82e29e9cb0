//! Time synchronisation over NATS: NTP-style request/reply measurements, a Kalman discipline
//! loop and source selection (pure, in [`core`]), driven by async-nats.
//!
//! Subjects: `time.sync.<source>` (request/reply), `time.system` (beacon, payload = decimal
//! µs since the epoch, metadata in `Timesync-*` headers), `time.announce.<source>`,
//! `time.status.<follower>`. See [`core::wire`].

pub mod bench;
pub mod cli;
pub mod clock;
pub mod core;
pub mod follow;
pub mod metrics;
pub mod source;
pub mod steer;
