//! Path-aware QUIC over SCION.
pub mod address;
pub mod daemon;
pub mod emu;
pub mod path;
pub mod quic;
pub mod socket;
pub mod topology;
pub mod wire;
