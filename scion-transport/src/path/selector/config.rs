//! Selector configuration and its validation.

use std::time::Duration;

use crate::path::policy::PathPolicy;
use crate::path::preference::{PathPreference, SwitchMargin};

/// Upper bound for every duration setting: keeps deadline arithmetic far from overflow.
const MAX_SETTING: Duration = Duration::from_secs(24 * 3600);

/// Selector tuning. `Default` gives the values described in the module docs.
#[derive(Debug, Clone)]
pub struct SelectorConfig {
    pub preference: PathPreference,
    pub policy: PathPolicy,
    /// Smallest UDP payload a path must carry: QUIC needs 1200-byte datagrams (RFC 9000 14.1).
    pub min_payload: u16,
    /// Source + destination host address bytes in the SCION header (8 = IPv4 to IPv4).
    pub host_addr_bytes: u16,
    pub active_probe_interval: Duration,
    pub backup_probe_interval: Duration,
    /// Interval for Down paths that are watched for recovery.
    pub down_probe_interval: Duration,
    /// How many backups to watch (twice: by standing and by preference; overlaps count once).
    pub probed_backups: usize,
    /// Paths outside the watched set are surveyed: every `survey_interval` the one probed
    /// least recently gets a probe, so no path keeps an old verdict for long (with n such
    /// paths, each is checked every n intervals).
    pub survey_interval: Duration,
    pub probe_timeout_min: Duration,
    /// Timeout while a path has no RTT sample yet.
    pub probe_timeout_initial: Duration,
    pub probe_timeout_max: Duration,
    /// Consecutive lost probes that mark a path Down.
    pub down_after_misses: u32,
    /// Consecutive answered probes that bring a Down path back.
    pub revive_after_replies: u32,
    /// How long a better path must have answered every probe before we switch to it.
    pub failback_hold: Duration,
    /// Span of the minimum RTT the active path is judged by when a candidate may be better
    /// (zero = judge it by its SRTT like the others). Our own traffic queues in front of the
    /// active path's probes; a flood raises its SRTT, never its minimum over a window that
    /// reaches back before the flood. A real latency rise is thus acted on within this span.
    pub rtt_min_window: Duration,
    pub margin: SwitchMargin,
    pub refresh_before_expiry: Duration,
    /// Minimum time between two `RefreshPaths` actions.
    pub refresh_retry: Duration,
    /// Paths in the active set (1 = plain failover; n > 1 = send over n disjoint paths).
    pub redundancy: usize,
    /// Probe outcomes kept for the loss figure.
    pub loss_window: usize,
    /// A path losing at least this fraction of the probes in its (full) loss window counts as
    /// Suspect even between losses, and an active path in that state is left for a stable one.
    /// Three-in-a-row detection alone misses a path that drops every other packet.
    pub lossy_threshold: f32,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            preference: PathPreference::default(),
            policy: PathPolicy::default(),
            min_payload: 1200,
            host_addr_bytes: 8,
            active_probe_interval: Duration::from_millis(50),
            backup_probe_interval: Duration::from_millis(300),
            down_probe_interval: Duration::from_millis(500),
            probed_backups: 2,
            survey_interval: Duration::from_secs(2),
            probe_timeout_min: Duration::from_millis(80),
            probe_timeout_initial: Duration::from_secs(1),
            probe_timeout_max: Duration::from_secs(2),
            down_after_misses: 3,
            revive_after_replies: 2,
            failback_hold: Duration::from_secs(2),
            rtt_min_window: Duration::from_secs(5),
            margin: SwitchMargin::default(),
            refresh_before_expiry: Duration::from_secs(300),
            refresh_retry: Duration::from_secs(10),
            redundancy: 1,
            loss_window: 20,
            lossy_threshold: 0.25,
        }
    }
}

/// A configuration the selector cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectorConfigError {
    #[error("selector: {0} must be greater than zero")]
    Zero(&'static str),
    #[error("selector: probe_timeout_min ({min:?}) is above probe_timeout_max ({max:?})")]
    TimeoutBounds { min: Duration, max: Duration },
    #[error("selector: lossy_threshold {0} is not a fraction in 0..=1")]
    LossyThreshold(f32),
    #[error("selector: {0} = {1:?} is above the 1 day limit")]
    TooLarge(&'static str, Duration),
    #[error("selector: {0} = {1} must be a ratio in 0..=100")]
    Ratio(&'static str, f64),
}

impl SelectorConfig {
    /// Checks the values a selector cannot run with (zero intervals, inverted bounds, ...).
    pub fn validate(&self) -> Result<(), SelectorConfigError> {
        for (name, d) in [
            ("active_probe_interval", self.active_probe_interval),
            ("backup_probe_interval", self.backup_probe_interval),
            ("down_probe_interval", self.down_probe_interval),
            ("survey_interval", self.survey_interval),
            ("probe_timeout_min", self.probe_timeout_min),
            ("refresh_retry", self.refresh_retry),
        ] {
            if d.is_zero() {
                return Err(SelectorConfigError::Zero(name));
            }
        }
        if self.down_after_misses == 0 {
            return Err(SelectorConfigError::Zero("down_after_misses"));
        }
        if self.revive_after_replies == 0 {
            return Err(SelectorConfigError::Zero("revive_after_replies"));
        }
        if self.redundancy == 0 {
            return Err(SelectorConfigError::Zero("redundancy"));
        }
        if self.probe_timeout_min > self.probe_timeout_max {
            return Err(SelectorConfigError::TimeoutBounds {
                min: self.probe_timeout_min,
                max: self.probe_timeout_max,
            });
        }
        for (name, d) in [
            ("active_probe_interval", self.active_probe_interval),
            ("backup_probe_interval", self.backup_probe_interval),
            ("down_probe_interval", self.down_probe_interval),
            ("survey_interval", self.survey_interval),
            ("probe_timeout_initial", self.probe_timeout_initial),
            ("probe_timeout_max", self.probe_timeout_max),
            ("failback_hold", self.failback_hold),
            ("rtt_min_window", self.rtt_min_window),
            ("refresh_before_expiry", self.refresh_before_expiry),
            ("refresh_retry", self.refresh_retry),
            ("margin.latency_abs", self.margin.latency_abs),
        ] {
            if d > MAX_SETTING {
                return Err(SelectorConfigError::TooLarge(name, d));
            }
        }
        for (name, r) in [
            ("margin.latency_ratio", self.margin.latency_ratio),
            ("margin.bandwidth_ratio", self.margin.bandwidth_ratio),
        ] {
            if !(0.0..=100.0).contains(&r) {
                return Err(SelectorConfigError::Ratio(name, r));
            }
        }
        if !(0.0..=1.0).contains(&self.lossy_threshold) {
            return Err(SelectorConfigError::LossyThreshold(self.lossy_threshold));
        }
        Ok(())
    }
}
