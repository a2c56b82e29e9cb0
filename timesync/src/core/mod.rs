//! Pure time-synchronisation core: sample validation, filters, the discipline loop and source
//! selection. Nothing in here reads a clock, sleeps or touches a socket: every entry point takes
//! `now` (monotonic nanoseconds of the local raw clock) and returns [`Action`]s for a driver to
//! carry out, in the style of ntpd-rs' `ntp-proto`. The `purity` test below (and a CI grep)
//! fails if a file in this folder names the async runtime, sockets or a wall/monotonic clock
//! read.

pub mod discipline;
pub mod engine;
pub mod filter;
pub mod sample;
pub mod select;
pub mod wire;

#[cfg(test)]
mod sim;

pub use discipline::{ClockAction, Discipline, DisciplineConfig, SyncState};
pub use engine::{
    Action, Engine, EngineConfig, RequestFailure, SourceConfig, SourceReport, Tracking,
};
pub use filter::{FilterOutput, PathFilter};
pub use sample::{Sample, SampleError};
pub use select::{Candidate, Selection};

/// Monotonic local time in nanoseconds (the driver's raw clock; only differences matter).
pub type MonoNs = i64;

/// Wall-clock time in nanoseconds since the Unix epoch (what the exchanged timestamps carry).
pub type WallNs = i64;

/// Nanoseconds per second, as f64 for the estimator's arithmetic (which works in seconds).
pub const NS_PER_S: f64 = 1e9;

/// RFC 5905 section 7.2 `PHI`: the assumed worst-case frequency tolerance of a local clock
/// (15 ppm), used to grow the dispersion (and so the max-error bound) while no fresh
/// measurement arrives, e.g. in holdover.
pub const PHI: f64 = 15e-6;

/// Largest frequency correction the loop will ever command (±500 ppm, the kernel's
/// `adjtimex` limit and RFC 5905's `MAXFREQ`).
pub const MAX_FREQ: f64 = 500e-6;

/// Convert a nanosecond difference to seconds.
pub fn ns_to_s(ns: i64) -> f64 {
    ns as f64 / NS_PER_S
}

/// Convert seconds to nanoseconds, saturating at the i64 range.
pub fn s_to_ns(s: f64) -> i64 {
    let ns = (s * NS_PER_S).round();
    if ns >= i64::MAX as f64 {
        i64::MAX
    } else if ns <= i64::MIN as f64 {
        i64::MIN
    } else {
        ns as i64
    }
}

#[cfg(test)]
mod purity {
    /// Every file of the pure core, checked for forbidden names. The needles are assembled
    /// at run time so this file does not match itself.
    #[test]
    fn core_has_no_runtime_sockets_or_clock_reads() {
        let files = [
            ("mod.rs", include_str!("mod.rs")),
            ("discipline.rs", include_str!("discipline.rs")),
            ("engine.rs", include_str!("engine.rs")),
            ("filter.rs", include_str!("filter.rs")),
            ("sample.rs", include_str!("sample.rs")),
            ("select.rs", include_str!("select.rs")),
            ("wire.rs", include_str!("wire.rs")),
            ("sim.rs", include_str!("sim.rs")),
        ];
        let needles = [
            ["tok", "io"].concat(),
            ["Instant", "::now"].concat(),
            ["SystemTime", "::now"].concat(),
            ["std::", "net"].concat(),
            ["async_", "nats"].concat(),
            ["clock_", "gettime"].concat(),
        ];
        for (name, text) in files {
            for n in &needles {
                assert!(!text.contains(n.as_str()), "{name} mentions {n}");
            }
        }
    }
}
