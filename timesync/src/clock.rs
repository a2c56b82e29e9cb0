//! Clocks the drivers read and steer.
//!
//! * [`VirtualClock`] (`--clock observe`, the default): CLOCK_MONOTONIC_RAW plus the
//!   corrections the engine commands, kept in this process only. The host clock is never
//!   touched and no privilege is needed.
//! * [`SystemClock`] (`--clock discipline`): CLOCK_REALTIME, steered through `adjtimex` by the
//!   `clock-steering` crate. Needs CAP_SYS_TIME; see [`crate::steer`] for the start checks.
//! * [`ReferenceClock`]: what a source serves, CLOCK_REALTIME with an optional fake skew.
//!
//! The fake skew (`--fake-offset-ms`, `--fake-ppm`) exists for tests and benches: it gives a
//! clock a known error relative to this host's CLOCK_REALTIME, so the true error of a
//! follower is exactly `follower - realtime - source skew`.

use crate::core::{ClockAction, WallNs, MAX_FREQ};
use crate::steer::{check_step, SteerError};
use clock_steering::Clock as _;
use std::sync::Mutex;
use thiserror::Error;

/// Errors applying a clock action.
#[derive(Debug, Error)]
pub enum ClockError {
    #[error(transparent)]
    Refused(#[from] SteerError),
    #[error("adjtimex failed: {0}")]
    Kernel(String),
}

/// Read a POSIX clock in nanoseconds.
#[expect(
    clippy::unnecessary_cast,
    reason = "time_t and c_long are i64 only on 64-bit targets"
)]
pub fn read_clock_ns(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it. The
    // clock ids used here (REALTIME, MONOTONIC_RAW) always exist on Linux, so the call cannot
    // fail; on failure `ts` stays zero, which callers see as an obviously wrong time.
    unsafe {
        libc::clock_gettime(id, &mut ts);
    }
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

/// CLOCK_MONOTONIC_RAW: the engine's timebase (not slewed by anyone).
pub fn mono_raw_ns() -> i64 {
    read_clock_ns(libc::CLOCK_MONOTONIC_RAW)
}

/// CLOCK_REALTIME.
pub fn realtime_ns() -> i64 {
    read_clock_ns(libc::CLOCK_REALTIME)
}

/// Optional test skew of a clock.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FakeSkew {
    pub offset_ns: i64,
    /// Fractional frequency error (1e-6 = 1 ppm).
    pub freq: f64,
}

/// A clock the follower disciplines.
pub trait DisciplinedClock: Send + Sync {
    /// Current reading, ns since the epoch.
    fn now(&self) -> WallNs;
    /// Carry out an engine action.
    fn apply(&self, action: ClockAction) -> Result<(), ClockError>;
    /// Frequency correction already in force when we start (fraction).
    fn initial_frequency(&self) -> f64;
    /// "observe" or "discipline".
    fn mode(&self) -> &'static str;
}

#[derive(Debug)]
struct VirtualState {
    /// Correction at `reference` (ns, fractional), and the slope since.
    phase: f64,
    freq: f64,
    reference: i64,
}

/// The observe-mode clock: `base + (raw - raw0) * (1 + fake) + correction(raw)`.
#[derive(Debug)]
pub struct VirtualClock {
    base: WallNs,
    raw0: i64,
    fake_freq: f64,
    state: Mutex<VirtualState>,
}

impl VirtualClock {
    /// Start at this host's CLOCK_REALTIME plus the fake skew.
    pub fn new(skew: FakeSkew) -> Self {
        let raw0 = mono_raw_ns();
        Self {
            base: realtime_ns().saturating_add(skew.offset_ns),
            raw0,
            fake_freq: skew.freq,
            state: Mutex::new(VirtualState {
                phase: 0.0,
                freq: 0.0,
                reference: raw0,
            }),
        }
    }

    fn at_raw(&self, raw: i64, st: &VirtualState) -> WallNs {
        let el = (raw - self.raw0) as f64;
        let corr = st.phase + st.freq * (raw - st.reference) as f64;
        self.base
            .saturating_add((el * (1.0 + self.fake_freq) + corr).round() as i64)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VirtualState> {
        // A poisoned lock only means another thread panicked mid-update of plain numbers;
        // the values are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DisciplinedClock for VirtualClock {
    fn now(&self) -> WallNs {
        let st = self.lock();
        self.at_raw(mono_raw_ns(), &st)
    }

    fn apply(&self, action: ClockAction) -> Result<(), ClockError> {
        let raw = mono_raw_ns();
        let mut st = self.lock();
        match action {
            ClockAction::Step { offset } => st.phase += offset * 1e9,
            ClockAction::SetFrequency { freq } => {
                st.phase += st.freq * (raw - st.reference) as f64;
                st.reference = raw;
                st.freq = freq.clamp(-MAX_FREQ, MAX_FREQ);
            }
        }
        Ok(())
    }

    fn initial_frequency(&self) -> f64 {
        0.0
    }

    fn mode(&self) -> &'static str {
        "observe"
    }
}

/// The kernel clock's NTP state as `adjtimex` reports it (see adjtimex(2)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelClockState {
    /// adjtimex's return value: TIME_OK, TIME_INS, TIME_DEL, TIME_OOP, TIME_WAIT, TIME_ERROR.
    pub state: i32,
    /// Frequency correction in force, ppm.
    pub freq_ppm: f64,
    /// STA_* status bits.
    pub status: i32,
    pub maxerror_us: i64,
    pub esterror_us: i64,
    /// Length of a clock tick, µs (10000 = nominal at USER_HZ 100).
    pub tick_us: i64,
    /// TAI - UTC, s (0 when nobody told the kernel).
    pub tai_s: i64,
}

impl KernelClockState {
    /// adjtimex's clock state name.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            libc::TIME_OK => "TIME_OK",
            libc::TIME_INS => "TIME_INS",
            libc::TIME_DEL => "TIME_DEL",
            libc::TIME_OOP => "TIME_OOP",
            libc::TIME_WAIT => "TIME_WAIT",
            libc::TIME_ERROR => "TIME_ERROR (unsynchronised)",
            _ => "unknown",
        }
    }

    /// The set STA_* flags, by name.
    pub fn status_names(&self) -> Vec<&'static str> {
        const FLAGS: &[(i32, &str)] = &[
            (libc::STA_PLL, "PLL"),
            (libc::STA_PPSFREQ, "PPSFREQ"),
            (libc::STA_PPSTIME, "PPSTIME"),
            (libc::STA_FLL, "FLL"),
            (libc::STA_INS, "INS"),
            (libc::STA_DEL, "DEL"),
            (libc::STA_UNSYNC, "UNSYNC"),
            (libc::STA_FREQHOLD, "FREQHOLD"),
            (libc::STA_NANO, "NANO"),
        ];
        FLAGS
            .iter()
            .filter(|(bit, _)| self.status & bit != 0)
            .map(|&(_, name)| name)
            .collect()
    }
}

/// The host's CLOCK_REALTIME before we take it over: only read-only calls are possible on it.
pub struct KernelClock {
    clock: clock_steering::unix::UnixClock,
    state: KernelClockState,
}

impl KernelClock {
    /// Query the kernel clock. Read-only: every `adjtimex` call here has `modes = 0`, which
    /// changes nothing and needs no privilege (adjtimex(2)). The frequency is read through
    /// `clock-steering`, the same handle and call path the discipline later writes through.
    #[expect(
        clippy::useless_conversion,
        reason = "timex fields are c_long, i64 only on 64-bit targets"
    )]
    pub fn open() -> Result<Self, ClockError> {
        let clock = clock_steering::unix::UnixClock::CLOCK_REALTIME;
        let freq_ppm = clock
            .get_frequency()
            .map_err(|e| ClockError::Kernel(e.to_string()))?;
        // SAFETY: an all-zero `timex` is a valid value of this plain C struct, and zero
        // `modes` makes the call a pure read; the kernel only writes into `tx`.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        // SAFETY: `tx` is a valid, writable timex for the duration of the call.
        let state = unsafe { libc::adjtimex(&mut tx) };
        if state < 0 {
            return Err(ClockError::Kernel(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        let state = KernelClockState {
            state,
            freq_ppm,
            status: tx.status,
            maxerror_us: i64::from(tx.maxerror),
            esterror_us: i64::from(tx.esterror),
            tick_us: i64::from(tx.tick),
            tai_s: i64::from(tx.tai),
        };
        Ok(Self { clock, state })
    }

    /// What [`KernelClock::open`] read.
    pub fn state(&self) -> KernelClockState {
        self.state
    }

    /// Take over the kernel clock discipline: switch off the kernel's own PLL/FLL loops
    /// (the first write). Callers must have run [`crate::steer::check_start`] first.
    pub fn take_over(self, max_step: f64) -> Result<SystemClock, ClockError> {
        self.clock
            .disable_kernel_ntp_algorithm()
            .map_err(|e| ClockError::Kernel(e.to_string()))?;
        Ok(SystemClock {
            clock: self.clock,
            max_step,
            initial_freq: self.state.freq_ppm * 1e-6,
        })
    }
}

/// The discipline-mode clock: the host's CLOCK_REALTIME via adjtimex. Only
/// [`KernelClock::take_over`] makes one.
pub struct SystemClock {
    clock: clock_steering::unix::UnixClock,
    max_step: f64,
    initial_freq: f64,
}

impl DisciplinedClock for SystemClock {
    fn now(&self) -> WallNs {
        realtime_ns()
    }

    fn apply(&self, action: ClockAction) -> Result<(), ClockError> {
        match action {
            ClockAction::Step { offset } => {
                check_step(offset, self.max_step)?;
                let ns = (offset * 1e9).round() as i64;
                let off = clock_steering::TimeOffset {
                    seconds: ns.div_euclid(1_000_000_000) as libc::time_t,
                    nanos: ns.rem_euclid(1_000_000_000) as u32,
                };
                self.clock
                    .step_clock(off)
                    .map_err(|e| ClockError::Kernel(e.to_string()))?;
            }
            ClockAction::SetFrequency { freq } => {
                // clock-steering takes ppm (it multiplies by 2^16 for the kernel's units).
                self.clock
                    .set_frequency(freq.clamp(-MAX_FREQ, MAX_FREQ) * 1e6)
                    .map_err(|e| ClockError::Kernel(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn initial_frequency(&self) -> f64 {
        self.initial_freq
    }

    fn mode(&self) -> &'static str {
        "discipline"
    }
}

/// What a source serves: CLOCK_REALTIME plus an optional fake skew.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceClock {
    skew: FakeSkew,
    start: WallNs,
}

impl ReferenceClock {
    pub fn new(skew: FakeSkew) -> Self {
        Self {
            skew,
            start: realtime_ns(),
        }
    }

    pub fn now(&self) -> WallNs {
        let real = realtime_ns();
        real + self.skew.offset_ns + (self.skew.freq * (real - self.start) as f64).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_applies_skew_steps_and_frequency() {
        let c = VirtualClock::new(FakeSkew {
            offset_ns: 250_000_000,
            freq: 0.0,
        });
        let d = c.now() - realtime_ns();
        // Starts 250 ms ahead of the host clock (allow for host slewing, a few µs).
        assert!((d - 250_000_000).abs() < 1_000_000, "{d}");
        c.apply(ClockAction::Step { offset: -0.25 }).unwrap();
        let d = c.now() - realtime_ns();
        assert!(d.abs() < 1_000_000, "{d}");
        // Frequency: +500 ppm over 20 ms of raw time gains exactly 10 µs (evaluated at
        // explicit raw instants, so scheduling noise on this busy machine cannot matter).
        c.apply(ClockAction::SetFrequency { freq: 500e-6 }).unwrap();
        let r0 = mono_raw_ns();
        let st = c.lock();
        let gained = (c.at_raw(r0 + 20_000_000, &st) - c.at_raw(r0, &st)) - 20_000_000;
        assert!((gained - 10_000).abs() <= 1, "{gained}");
    }

    /// A read-only adjtimex query works on this host (and without privileges): the plumbing
    /// discipline mode starts with. Nothing is written.
    #[test]
    fn kernel_clock_query_is_read_only() {
        let a = KernelClock::open().expect("adjtimex modes=0").state();
        let b = KernelClock::open().expect("adjtimex modes=0").state();
        // adjtimex clamps the frequency to ±500 ppm (kernel/time/ntp.c MAXFREQ_SCALED).
        assert!(a.freq_ppm.abs() <= 500.0, "{a:?}");
        assert!(a.tick_us > 0, "{a:?}");
        // No write happened in between: the same frequency and flags (maxerror grows on its
        // own, so it is not compared).
        assert_eq!((a.freq_ppm, a.status), (b.freq_ppm, b.status));
        let names = KernelClockState {
            status: libc::STA_PLL | libc::STA_UNSYNC,
            ..a
        }
        .status_names();
        assert_eq!(names, vec!["PLL", "UNSYNC"]);
    }

    #[test]
    fn reference_clock_carries_fake_offset() {
        let c = ReferenceClock::new(FakeSkew {
            offset_ns: -5_000_000,
            freq: 0.0,
        });
        let d = c.now() - realtime_ns();
        assert!((d + 5_000_000).abs() < 1_000_000, "{d}");
    }
}
