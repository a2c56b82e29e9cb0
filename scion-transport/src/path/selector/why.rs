//! Why the active path is the active one, in words for /pathz: which preference key decided
//! against the runner-up (with both values, and the keys that could not decide), or that the
//! path is kept within the switch margin (with the values the failback check compares), that
//! every path is down, or that it is the only usable one.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::Duration;

use super::{Candidate, DownReason, Selector};
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
    /// Paths too small for the link's datagrams are named after it (they rank last).
    pub fn why_active(&self) -> Option<String> {
        let why = self.why_active_by_rank()?;
        let small: Vec<String> = self
            .cands
            .iter()
            .filter(|c| c.filtered.is_none() && self.too_small(c))
            .map(|c| c.info.fingerprint.short())
            .collect();
        match (small.is_empty(), self.held_datagram_payload()) {
            (false, Some(held)) => Some(format!(
                "{why}; too small for the link's {held} B datagrams, so ranked last: {}",
                small.join(", ")
            )),
            _ => Some(why),
        }
    }

    fn why_active_by_rank(&self) -> Option<String> {
        let now = self.last_now?;
        let ai = self.active_index()?;
        let ranking = self.ranking(now);
        let active_state = self.state_of(&self.cands[ai], now);
        let Some(&best) = ranking.first() else {
            return Some(format!("kept: no usable path ({active_state})"));
        };
        let best_state = self.state_of(&self.cands[best], now);
        if best_state >= PathState::Down {
            // Ranking puts live paths first: the best one down means all are.
            // (A path a router reported down is not a silent peer.)
            let silent = ranking.iter().all(|&i| {
                let c = &self.cands[i];
                c.stats.answered == 0 && !matches!(c.down, Some((DownReason::Scmp(_), _)))
            });
            if silent {
                return Some(format!(
                    "kept: none of {} usable paths has answered a probe (is the peer up?)",
                    ranking.len()
                ));
            }
            return Some(format!(
                "kept: all {} usable paths are down; waiting for a probe answer or new paths",
                ranking.len()
            ));
        }
        if best != ai {
            let fp = self.cands[best].info.fingerprint.short();
            if active_state >= PathState::Down {
                return Some(match self.failover_target(now, ai, &ranking) {
                    Some(i) => format!(
                        "kept: {active_state}, switching to {}",
                        self.cands[i].info.fingerprint.short()
                    ),
                    None => format!(
                        "kept: {active_state}; waiting for another path to answer a probe \
                         (none has since this one stopped answering)"
                    ),
                });
            }
            if active_state > best_state {
                return Some(format!(
                    "kept: {active_state} but not down; {fp} is {best_state}"
                ));
            }
            let (values, verdict) = self.failback_text(now, best, ai);
            return Some(match verdict {
                _ if self.is_better(now, best, ai) => format!(
                    "kept: {fp} is better ({values}) but not yet stable for {:?}",
                    self.cfg.failback_hold
                ),
                Failback::WithinMargin => format!("kept: within hysteresis of {fp} ({values})"),
                Failback::Worse => format!(
                    "kept: {fp} ranks first on its smoothed RTT but is not better ({values})"
                ),
                Failback::Same => format!("kept: {fp} is not better ({values})"),
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

    /// The first preference key on which `a` ranks before `b`, with both values and the
    /// preference, e.g. `latency: 4.1 ms vs 15.2 ms (preference latency,bandwidth)`; keys
    /// that did not decide before it (equal, or not comparable for missing metadata) are
    /// named after the preference.
    fn decider(&self, a: usize, b: usize) -> String {
        let pref = &self.cfg.preference;
        if pref.is_empty() {
            return "daemon order (no preference)".into();
        }
        let (ma, mb) = (metrics(&self.cands[a]), metrics(&self.cands[b]));
        let mut skipped = Vec::new();
        for &key in pref.keys() {
            let (va, vb) = (value(key, &ma), value(key, &mb));
            match compare_key(key, &ma, &mb) {
                Some(Ordering::Less) => {
                    let mut out = format!("{key}: {va} vs {vb} (preference {pref}");
                    for s in &skipped {
                        let _ = write!(out, "; {s}");
                    }
                    out.push(')');
                    return out;
                }
                Some(Ordering::Equal) => skipped.push(format!("{key} equal: {va}")),
                Some(Ordering::Greater) => skipped.push(format!("{key}: {va} vs {vb}")),
                None => skipped.push(format!("{key} not comparable: {va} vs {vb}")),
            }
        }
        format!(
            "no key decides ({}), daemon order (preference {pref})",
            skipped.join("; ")
        )
    }

    /// The values the failback check compares for candidate `cand` against the active `cur`
    /// (the candidate at the worse of its SRTT and latest sample, the active path at the best
    /// of those and its minimum over `rtt_min_window`), key by key up to the one that decides,
    /// each as `key: <cand fp> value vs active value`; and what they add up to.
    fn failback_text(
        &self,
        now: std::time::Instant,
        cand: usize,
        cur: usize,
    ) -> (String, Failback) {
        let pref = &self.cfg.preference;
        if pref.is_empty() {
            return ("daemon order (no preference)".into(), Failback::Same);
        }
        let (cm, am) = self.failback_metrics(now, cand, cur);
        let fp = self.cands[cand].info.fingerprint.short();
        let margin = &self.cfg.margin;
        let mut parts = Vec::new();
        let mut verdict = Failback::Same;
        let mut latency_shown = false;
        for &key in pref.keys() {
            let (vc, va) = (value(key, &cm), value(key, &am));
            let text = format!("{key}: {fp} {vc} vs active {va}");
            latency_shown |= key == PreferenceKey::Latency;
            match compare_key(key, &cm, &am) {
                Some(Ordering::Less) if margin.exceeded(key, &cm, &am) => {
                    parts.push(text);
                    break;
                }
                Some(Ordering::Greater) if margin.exceeded(key, &am, &cm) => {
                    parts.push(format!("{text}, worse"));
                    verdict = Failback::Worse;
                    break;
                }
                Some(Ordering::Less | Ordering::Greater) => {
                    parts.push(format!("{text}, within the switch margin"));
                    verdict = Failback::WithinMargin;
                }
                Some(Ordering::Equal) => parts.push(format!("{key} equal: {vc}")),
                None => parts.push(format!("{key} not comparable: {fp} {vc} vs active {va}")),
            }
        }
        let mut out = parts.join("; ");
        if latency_shown && am.measured_rtt.is_some() {
            let _ = write!(
                out,
                "; active RTT: best of SRTT, last sample and {:?} minimum",
                self.cfg.rtt_min_window
            );
        }
        let _ = write!(out, "; preference {pref}");
        (out, verdict)
    }
}

/// What the failback check's values add up to (when the candidate is not better).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failback {
    /// Better or worse on some key, but within the switch margin.
    WithinMargin,
    /// Worse beyond the margin on the deciding key.
    Worse,
    /// Nothing tells them apart.
    Same,
}

/// The metrics the ranking sorts by (smoothed RTT when measured, else metadata).
fn metrics(c: &Candidate) -> PathMetrics<'_> {
    PathMetrics {
        info: &c.info,
        measured_rtt: c.stats.srtt,
    }
}
