//! Why the active path is the active one, in words for /pathz: which preference key decided
//! against the runner-up (with both values), or that the path is kept within the switch
//! margin, or that it is the only usable one.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::Duration;

use super::{Candidate, Selector};
use crate::path::preference::{compare_key, PathMetrics, PreferenceKey};
use crate::path::selector::PathState;

/// Milliseconds with one decimal: `4.1 ms`.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// One side of `key` as the comparator sees it.
fn value(key: PreferenceKey, m: &PathMetrics<'_>) -> String {
    match key {
        PreferenceKey::Latency => match (m.measured_rtt, m.info.total_latency()) {
            (Some(rtt), _) => ms(rtt),
            (None, Some(lat)) => format!("{} (metadata)", ms(lat)),
            (None, None) => "unknown".into(),
        },
        PreferenceKey::Bandwidth => match m.info.bottleneck_bandwidth_kbps() {
            Some(kbps) => format!("{kbps} kbps"),
            None => "unknown".into(),
        },
        PreferenceKey::Hops => m.info.interfaces.len().to_string(),
        PreferenceKey::Mtu => m.info.mtu.to_string(),
    }
}

impl Selector {
    /// Why the active path is active, at the time of the last input; `None` without one.
    pub fn why_active(&self) -> Option<String> {
        let now = self.last_now?;
        let ai = self.active_index()?;
        let ranking = self.ranking(now);
        let Some(&best) = ranking.first() else {
            return Some(format!(
                "kept: no usable path ({})",
                self.state_of(&self.cands[ai], now)
            ));
        };
        let active_state = self.state_of(&self.cands[ai], now);
        if best != ai {
            let fp = self.cands[best].info.fingerprint.short();
            return Some(if active_state >= PathState::Down {
                format!("kept: {active_state}, switching to {fp}")
            } else if self.is_better(now, best, ai) {
                format!(
                    "kept: {fp} is better ({}) but not yet stable for {:?}",
                    self.decider(best, ai),
                    self.cfg.failback_hold
                )
            } else {
                format!(
                    "kept: within hysteresis of {fp} ({})",
                    self.decider(best, ai)
                )
            });
        }
        let Some(&runner) = ranking.get(1) else {
            return Some("only usable path".into());
        };
        let runner_state = self.state_of(&self.cands[runner], now);
        let fp = self.cands[runner].info.fingerprint.short();
        if runner_state != active_state {
            return Some(format!("state: {active_state} vs {runner_state} ({fp})"));
        }
        Some(format!("{} over {fp}", self.decider(ai, runner)))
    }

    /// The first preference key on which `a` beats `b`, with both values and the preference,
    /// e.g. `latency: 4.1 ms vs 15.2 ms (preference latency,bandwidth)`.
    fn decider(&self, a: usize, b: usize) -> String {
        let pref = &self.cfg.preference;
        if pref.is_empty() {
            return "daemon order (no preference)".into();
        }
        let (ma, mb) = (metrics(&self.cands[a]), metrics(&self.cands[b]));
        let mut out = String::new();
        for &key in pref.keys() {
            if compare_key(key, &ma, &mb) == Some(Ordering::Less) {
                let _ = write!(
                    out,
                    "{key}: {} vs {} (preference {pref})",
                    value(key, &ma),
                    value(key, &mb)
                );
                return out;
            }
        }
        format!("tie on every key, daemon order (preference {pref})")
    }
}

/// The metrics the ranking sorts by (smoothed RTT when measured, else metadata).
fn metrics(c: &Candidate) -> PathMetrics<'_> {
    PathMetrics {
        info: &c.info,
        measured_rtt: c.stats.srtt,
    }
}
