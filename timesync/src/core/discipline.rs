//! The discipline loop: a two-state (phase, frequency) Kalman filter plus a proportional
//! steering law, in the spirit of ntpd-rs' `algorithm/kalman` but written from scratch.
//!
//! State: `theta` = source time minus local (steered) clock, seconds; `omega` = rate at which
//! `theta` grows when no correction is applied (the raw clock's frequency error). The loop
//! knows exactly which corrections it commanded (frequency adjustments and steps), so they are
//! the filter's control input and the prediction is exact apart from the process noise.
//!
//! Steering: once synchronised, the commanded frequency is `omega + theta / tau` clamped to
//! ±500 ppm — the phase is always slewed, never stepped. A step is only taken at startup and
//! only when the first estimate is larger than `step_threshold`.

use super::{ns_to_s, MonoNs, Sample, MAX_FREQ, PHI};

/// A command for the clock driver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockAction {
    /// Jump the clock forward by `offset` seconds (negative: backwards).
    Step { offset: f64 },
    /// Run the clock at `1 + freq` times its natural (raw) rate from now on. `freq` is a
    /// fraction (1e-6 = 1 ppm), always within ±[`MAX_FREQ`].
    SetFrequency { freq: f64 },
}

/// Overall synchronisation state (also exported as a metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// No measurement has been used yet.
    Startup,
    /// Steered by a selected, reachable source.
    Sync,
    /// Every source is unreachable: free-running on the learned frequency.
    Holdover,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Startup => "startup",
            SyncState::Sync => "sync",
            SyncState::Holdover => "holdover",
        }
    }
}

/// Tunables of the loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisciplineConfig {
    /// Startup offsets larger than this are stepped, smaller ones slewed (seconds).
    pub step_threshold: f64,
    /// Time constant of the phase slew (seconds).
    pub tau: f64,
    /// Frequency random-walk noise of the local oscillator (s^2/s^3).
    pub wander: f64,
    /// Floor of the per-sample measurement noise (seconds), the timestamping precision.
    pub precision: f64,
}

impl Default for DisciplineConfig {
    fn default() -> Self {
        Self {
            step_threshold: 0.010,
            tau: 4.0,
            wander: 1e-15,
            precision: 2e-6,
        }
    }
}

/// The phase/frequency estimator and steering law.
#[derive(Debug, Clone)]
pub struct Discipline {
    cfg: DisciplineConfig,
    state: SyncState,
    /// Time of the last prediction.
    t: MonoNs,
    theta: f64,
    omega: f64,
    /// Covariance [[theta, cross], [cross, omega]].
    p: [[f64; 2]; 2],
    /// Frequency currently commanded.
    freq: f64,
    /// Cumulative correction applied up to `corr_t` (seconds), steps included.
    corr: f64,
    corr_t: MonoNs,
    initialised: bool,
    last_update: Option<MonoNs>,
    last_offset: f64,
    steps: u64,
    /// Consecutive samples far outside the prediction (see [`JUMP_SIGMAS`]), and the last.
    outliers: u32,
    last_outlier: f64,
    /// Phase jumps taken (a persistent offset change the loop moved its phase for).
    jumps: u64,
}

/// A sample whose innovation exceeds this many sigmas (and the step threshold) is an outlier:
/// held back, unless [`JUMP_PERSIST`] of them in a row agree, which is a jump of the
/// reference's clock or of the path's asymmetry: the phase moves, the frequency does not.
/// Without this, one wild sample drags the frequency through the phase/frequency gain.
pub const JUMP_SIGMAS: f64 = 5.0;
pub const JUMP_PERSIST: u32 = 3;

impl Discipline {
    /// `initial_freq` is the frequency correction already in force (0 for a fresh virtual
    /// clock, the kernel's current value in discipline mode).
    pub fn new(cfg: DisciplineConfig, now: MonoNs, initial_freq: f64) -> Self {
        let freq = initial_freq.clamp(-MAX_FREQ, MAX_FREQ);
        Self {
            cfg,
            state: SyncState::Startup,
            t: now,
            theta: 0.0,
            omega: freq,
            p: [[1.0, 0.0], [0.0, MAX_FREQ * MAX_FREQ]],
            freq,
            corr: 0.0,
            corr_t: now,
            initialised: false,
            last_update: None,
            last_offset: 0.0,
            steps: 0,
            outliers: 0,
            last_outlier: 0.0,
            jumps: 0,
        }
    }

    /// The reference restarted (a new source instance): acquire it again as at startup
    /// (step if the next sample is beyond the step threshold), keeping the frequency learned
    /// for the local oscillator.
    pub fn restart(&mut self, now: MonoNs) {
        if !self.initialised {
            return;
        }
        self.predict(now);
        self.initialised = false;
        self.state = SyncState::Startup;
        self.outliers = 0;
    }

    /// Phase jumps taken since start (see [`JUMP_SIGMAS`]).
    pub fn jumps(&self) -> u64 {
        self.jumps
    }

    /// The last sample was held back as an outlier (not used).
    pub fn holding(&self) -> bool {
        self.outliers > 0
    }

    /// How far the held-back outliers are from the phase estimate (0 when none is held):
    /// until they are confirmed or refuted, the bound must cover them.
    pub fn held_offset(&self) -> f64 {
        if self.outliers > 0 {
            (self.last_outlier - self.theta).abs()
        } else {
            0.0
        }
    }

    pub fn state(&self) -> SyncState {
        self.state
    }

    /// Cumulative correction (seconds) the loop has applied to the clock up to `now`.
    pub fn correction(&self, now: MonoNs) -> f64 {
        self.corr + self.freq * ns_to_s(now - self.corr_t)
    }

    /// Frequency currently commanded (fraction).
    pub fn frequency(&self) -> f64 {
        self.freq
    }

    /// Estimated natural frequency error of the raw clock (fraction).
    pub fn estimated_frequency(&self) -> f64 {
        self.omega
    }

    /// Estimated offset (source minus local) at the last prediction time.
    pub fn offset(&self) -> f64 {
        self.theta
    }

    /// Estimated offset extrapolated to `now` with the model and the commanded frequency.
    pub fn offset_at(&self, now: MonoNs) -> f64 {
        self.theta + (self.omega - self.freq) * ns_to_s(now - self.t).max(0.0)
    }

    /// Offset of the most recent measurement fed to the loop (aged to its use time).
    pub fn last_offset(&self) -> f64 {
        self.last_offset
    }

    pub fn last_update(&self) -> Option<MonoNs> {
        self.last_update
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Standard deviation of the phase estimate (seconds).
    pub fn offset_sigma(&self) -> f64 {
        self.p[0][0].max(0.0).sqrt()
    }

    /// Standard deviation of the frequency estimate.
    pub fn frequency_sigma(&self) -> f64 {
        self.p[1][1].max(0.0).sqrt()
    }

    /// Dispersion growth since the last update (RFC 5905 `PHI * age`).
    pub fn holdover_dispersion(&self, now: MonoNs) -> f64 {
        match self.last_update {
            Some(t) => PHI * ns_to_s(now - t).max(0.0),
            None => 0.0,
        }
    }

    /// Enter holdover (no selectable source) or leave it when a source comes back.
    pub fn set_holdover(&mut self, holdover: bool) {
        self.state = match (self.state, holdover) {
            (SyncState::Startup, _) => SyncState::Startup,
            (_, true) => SyncState::Holdover,
            (_, false) => SyncState::Sync,
        };
    }

    fn advance_correction(&mut self, now: MonoNs) {
        self.corr = self.correction(now);
        self.corr_t = now;
    }

    /// Kalman prediction from `self.t` to `now` with the commanded frequency as control input.
    fn predict(&mut self, now: MonoNs) {
        let dt = ns_to_s(now - self.t);
        if dt <= 0.0 {
            return;
        }
        self.theta += (self.omega - self.freq) * dt;
        let [[a, b], [_, d]] = self.p;
        let q = self.cfg.wander;
        // F = [[1, dt], [0, 1]]; P' = F P F^T + Q(dt) for a frequency random walk.
        let a2 = a + 2.0 * b * dt + d * dt * dt + q * dt * dt * dt / 3.0;
        let b2 = b + d * dt + q * dt * dt / 2.0;
        let d2 = d + q * dt;
        self.p = [[a2, b2], [b2, d2]];
        self.t = now;
    }

    /// The measurement path changed (new SCION path, persistent delay shift, other source):
    /// its asymmetry, and so the offset it reports, may differ by up to `sigma`. Widen the
    /// phase uncertainty and drop the phase/frequency correlation so the next samples move
    /// the phase estimate (slewed out later) instead of being read as a frequency change.
    pub fn reset_phase(&mut self, now: MonoNs, sigma: f64) {
        if !self.initialised {
            return;
        }
        self.predict(now);
        self.p[0][0] += sigma * sigma;
        self.p[0][1] = 0.0;
        self.p[1][0] = 0.0;
    }

    /// Periodic re-evaluation of the steering law (every engine tick).
    pub fn tick(&mut self, now: MonoNs) -> Vec<ClockAction> {
        if !self.initialised {
            return Vec::new();
        }
        self.predict(now);
        self.steer(now)
    }

    fn steer(&mut self, now: MonoNs) -> Vec<ClockAction> {
        let slew = self.theta / self.cfg.tau;
        let freq = (self.omega + slew).clamp(-MAX_FREQ, MAX_FREQ);
        if (freq - self.freq).abs() < 1e-12 {
            return Vec::new();
        }
        self.advance_correction(now);
        self.freq = freq;
        vec![ClockAction::SetFrequency { freq }]
    }

    /// Feed one filtered sample (from the selected source). `noise` is its one-sigma
    /// measurement uncertainty in seconds.
    pub fn update(&mut self, now: MonoNs, sample: Sample, noise: f64) -> Vec<ClockAction> {
        // Age the sample to `now`: the clock has been corrected since and has drifted by the
        // estimated frequency error.
        let age = ns_to_s(now - sample.mono).max(0.0);
        let z = sample.offset - (self.correction(now) - sample.correction) + self.omega * age;
        // The aged part of the drift is uncertain by the frequency uncertainty.
        let r = noise.max(self.cfg.precision).powi(2) + (self.frequency_sigma() * age).powi(2);
        let mut actions = Vec::new();
        if !self.initialised {
            self.last_offset = z;
            self.last_update = Some(now);
            self.initialised = true;
            self.t = now;
            self.theta = z;
            self.p = [[r, 0.0], [0.0, self.p[1][1]]];
            if z.abs() > self.cfg.step_threshold {
                actions.push(self.step(now, z));
            }
            self.state = SyncState::Sync;
            actions.extend(self.steer(now));
            return actions;
        }
        self.predict(now);
        let innovation = z - self.theta;
        let s = self.p[0][0] + r;
        if innovation * innovation > JUMP_SIGMAS * JUMP_SIGMAS * s
            && innovation.abs() > self.cfg.step_threshold
        {
            let agrees = self.outliers > 0
                && (z - self.last_outlier).abs()
                    <= self.cfg.step_threshold.max(JUMP_SIGMAS * r.sqrt());
            self.outliers = if agrees { self.outliers + 1 } else { 1 };
            self.last_outlier = z;
            if self.outliers < JUMP_PERSIST {
                // Held back: one wild sample is not evidence, and not an update either.
                return Vec::new();
            }
            // It persists: the phase jumped. Open the phase up and drop its correlation
            // with the frequency, so this sample moves the phase only.
            self.p[0][0] += innovation * innovation;
            self.p[0][1] = 0.0;
            self.p[1][0] = 0.0;
            self.jumps += 1;
        }
        self.outliers = 0;
        self.last_offset = z;
        self.last_update = Some(now);
        // Measurement H = [1, 0].
        let [[a, b], [_, d]] = self.p;
        let s = a + r;
        let k0 = a / s;
        let k1 = b / s;
        self.theta += k0 * innovation;
        self.omega = (self.omega + k1 * innovation).clamp(-MAX_FREQ, MAX_FREQ);
        self.p = [
            [(1.0 - k0) * a, (1.0 - k0) * b],
            [(1.0 - k0) * b, d - k1 * b],
        ];
        self.state = SyncState::Sync;
        actions.extend(self.steer(now));
        actions
    }

    fn step(&mut self, now: MonoNs, offset: f64) -> ClockAction {
        self.advance_correction(now);
        self.corr += offset;
        self.theta -= offset;
        self.steps += 1;
        ClockAction::Step { offset }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn sample(mono: i64, offset: f64, correction: f64) -> Sample {
        Sample {
            offset,
            delay: 0.001,
            mono,
            correction,
        }
    }

    #[test]
    fn large_startup_offset_is_stepped_small_one_slewed() {
        let mut d = Discipline::new(DisciplineConfig::default(), 0, 0.0);
        let a = d.update(S, sample(S, 0.250, 0.0), 1e-4);
        assert_eq!(a[0], ClockAction::Step { offset: 0.250 });
        assert!((d.correction(S) - 0.250).abs() < 1e-12);

        let mut d = Discipline::new(DisciplineConfig::default(), 0, 0.0);
        let a = d.update(S, sample(S, 0.002, 0.0), 1e-4);
        assert!(matches!(a[..], [ClockAction::SetFrequency { freq }] if freq > 0.0));
        assert_eq!(d.steps(), 0);
    }

    #[test]
    fn never_steps_after_startup() {
        let mut d = Discipline::new(DisciplineConfig::default(), 0, 0.0);
        d.update(S, sample(S, 0.0, 0.0), 1e-4);
        let a = d.update(2 * S, sample(2 * S, 1.0, d.correction(2 * S)), 1e-4);
        assert!(a
            .iter()
            .all(|x| matches!(x, ClockAction::SetFrequency { .. })));
        assert_eq!(d.steps(), 0);
    }

    /// One wild sample (a source that lied once) is held back and moves neither phase nor
    /// frequency; the same offset three times in a row is a jump of the reference: the phase
    /// follows it and the frequency does not.
    #[test]
    fn a_lone_outlier_is_held_and_a_persistent_jump_moves_the_phase_only() {
        let mut d = Discipline::new(DisciplineConfig::default(), 0, 0.0);
        let mut t = S;
        for _ in 0..20 {
            d.update(t, sample(t, 0.0, d.correction(t)), 10e-6);
            t += S;
        }
        let (theta, omega) = (d.offset(), d.estimated_frequency());
        let last = d.last_update();
        assert!(d
            .update(t, sample(t, 1.0, d.correction(t)), 10e-6)
            .is_empty());
        assert_eq!(d.offset(), theta);
        assert_eq!(d.estimated_frequency(), omega);
        // Held back: no update as far as the bound is concerned, and the bound covers it.
        assert!(d.holding());
        assert_eq!(d.last_update(), last);
        assert!((d.held_offset() - 1.0).abs() < 1e-3, "{}", d.held_offset());
        t += S;
        d.update(t, sample(t, 0.0, d.correction(t)), 10e-6);
        assert_eq!(d.jumps(), 0);
        for _ in 0..3 {
            t += S;
            d.update(t, sample(t, 0.5, d.correction(t)), 10e-6);
        }
        assert_eq!(d.jumps(), 1);
        assert!(!d.holding());
        assert_eq!(d.held_offset(), 0.0);
        assert!((d.offset() - 0.5).abs() < 0.01, "phase {}", d.offset());
        assert!(
            (d.estimated_frequency() - omega).abs() < 1e-6,
            "frequency moved from {omega} to {}",
            d.estimated_frequency()
        );
    }

    #[test]
    fn frequency_is_clamped() {
        let mut d = Discipline::new(DisciplineConfig::default(), 0, 0.0);
        d.update(S, sample(S, 0.005, 0.0), 1e-6);
        assert!(d.frequency() <= MAX_FREQ);
        let d = Discipline::new(DisciplineConfig::default(), 0, 0.01);
        assert!(d.frequency() <= MAX_FREQ);
    }

    #[test]
    fn correction_integrates_commanded_frequency() {
        let mut d = Discipline::new(DisciplineConfig::default(), 0, 0.0);
        d.update(0, sample(0, 0.004, 0.0), 1e-4);
        let f = d.frequency();
        assert!((d.correction(10 * S) - f * 10.0).abs() < 1e-12);
        assert!(d.holdover_dispersion(10 * S) > 0.0);
    }
}
