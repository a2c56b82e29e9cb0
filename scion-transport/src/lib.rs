//! Path-aware QUIC over SCION.
pub mod address;
