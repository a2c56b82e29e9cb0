//! Path-aware QUIC over SCION.
pub mod address;
pub mod wire;
pub mod emu;
pub mod path;
pub mod daemon;
pub mod topology;
pub mod quic;
pub mod socket;
