//! Path-aware QUIC over SCION.
pub mod address;
pub mod daemon;
pub mod emu;
pub mod path;
pub mod quic;
pub mod socket;
pub mod topology;
pub mod wire;

/// The clock for unit tests of the pure `path` modules, which take `now` as
/// a parameter and never read a clock themselves (scripts/check-pure.sh).
#[cfg(test)]
pub(crate) fn test_now() -> std::time::Instant {
    std::time::Instant::now()
}
