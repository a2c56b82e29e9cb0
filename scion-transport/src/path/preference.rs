//! Path preference: an ordered list of `latency`, `bandwidth`, `hops`, `mtu`.
//!
//! Semantics follow Go pan (netsec-ethz/scion-apps `pkg/pan/policy.go`, `path_metadata.go`,
//! `cli.go`):
//! - keys are applied as stable sorts from the last to the first, so the first key is primary;
//! - `latency` compares the sum of the announced per-stretch latencies, `bandwidth` the
//!   bottleneck; a stretch with unknown metadata makes two paths comparable only when one path's
//!   unknown stretches are a subset of the other's (`LowerLatency` / `HigherBandwidth`);
//!   otherwise they are incomparable and keep their existing (daemon) order;
//! - `hops` (fewer interfaces first) and `mtu` (larger first) are plain stable sorts;
//! - sorting with a partial order uses pan's stable insertion sort (`sortStablePartialOrder`).
//!
//! One addition: when both paths have a measured RTT from our probes, `latency` compares the
//! measured RTTs instead of the metadata; measurements see what metadata cannot (queueing,
//! a changed link, the host-to-router legs) and are the only latency source for paths built
//! from segments without metadata.
//!
//! pan silently ignored nothing but returned an error for unknown words; the earlier prototype
//! fork turned any bad string into "no preference". Here every unknown word, empty item or
//! duplicate is an error.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::model::{PathInfo, PathInterface};

/// One sort criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreferenceKey {
    /// Lower total latency first.
    Latency,
    /// Higher bottleneck bandwidth first.
    Bandwidth,
    /// Fewer inter-AS hops first.
    Hops,
    /// Larger MTU first.
    Mtu,
}

impl PreferenceKey {
    pub const ALL: [PreferenceKey; 4] = [
        PreferenceKey::Latency,
        PreferenceKey::Bandwidth,
        PreferenceKey::Hops,
        PreferenceKey::Mtu,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PreferenceKey::Latency => "latency",
            PreferenceKey::Bandwidth => "bandwidth",
            PreferenceKey::Hops => "hops",
            PreferenceKey::Mtu => "mtu",
        }
    }
}

impl fmt::Display for PreferenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors from parsing a preference string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreferenceError {
    #[error(
        "path preference {input:?}: item {index} is empty (expected latency|bandwidth|hops|mtu)"
    )]
    EmptyItem { input: String, index: usize },
    #[error(
        "path preference {input:?}: unknown word {word:?} (expected latency|bandwidth|hops|mtu)"
    )]
    UnknownWord { input: String, word: String },
    #[error("path preference {input:?}: {word:?} appears more than once")]
    Duplicate { input: String, word: String },
}

/// Ordered sort keys; the first is primary. Empty = keep the daemon's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathPreference {
    keys: Vec<PreferenceKey>,
}

impl PathPreference {
    /// Builds a preference from keys; duplicates are an error as in parsing.
    pub fn from_keys(keys: &[PreferenceKey]) -> Result<Self, PreferenceError> {
        let text = keys
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(",");
        text.parse()
    }
    pub fn keys(&self) -> &[PreferenceKey] {
        &self.keys
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Sorts paths by metadata only (no measurements), as pan's policy chain would.
    pub fn sort_paths(&self, paths: &mut Vec<PathInfo>) {
        let mut idx: Vec<usize> = (0..paths.len()).collect();
        {
            let view: &[PathInfo] = paths;
            self.sort_by_metrics(&mut idx, |&i| PathMetrics::metadata_only(&view[i]));
        }
        let mut slots: Vec<Option<PathInfo>> = paths.drain(..).map(Some).collect();
        paths.extend(idx.into_iter().filter_map(|i| slots[i].take()));
    }

    /// Sorts items (typically indices) by the metrics `f` looks up for them; stable, first
    /// key primary.
    pub fn sort_by_metrics<'m, T>(&self, items: &mut [T], f: impl Fn(&T) -> PathMetrics<'m>) {
        for key in self.keys.iter().rev() {
            sort_stable_partial_order(items, |a, b| compare_key(*key, &f(a), &f(b)));
        }
    }

    /// Decides whether `cand` is better than `cur` by more than `margin` under this
    /// preference, walking keys in priority order: the first key that tells them apart beyond
    /// its margin decides; ties, differences within the margin and incomparable values defer to
    /// the next key.
    pub fn compare_with_margin(
        &self,
        cand: &PathMetrics<'_>,
        cur: &PathMetrics<'_>,
        margin: &SwitchMargin,
    ) -> Verdict {
        for key in &self.keys {
            match compare_key(*key, cand, cur) {
                Some(Ordering::Less) => {
                    if margin.exceeded(*key, cand, cur) {
                        return Verdict::Better;
                    }
                }
                Some(Ordering::Greater) => {
                    // Worse on this key, unless only by noise: then defer to the next key.
                    if margin.exceeded(*key, cur, cand) {
                        return Verdict::Worse;
                    }
                }
                Some(Ordering::Equal) | None => {}
            }
        }
        Verdict::Tie
    }
}

/// Outcome of [`PathPreference::compare_with_margin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Worse,
    Tie,
}

/// How much better a path must be before we leave a working one for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwitchMargin {
    /// Relative latency gain required (0.10 = the new path is at least 10% faster)...
    pub latency_ratio: f64,
    /// ...plus this absolute gain, so loopback-scale jitter never triggers a switch.
    pub latency_abs: Duration,
    /// Relative bottleneck bandwidth gain required.
    pub bandwidth_ratio: f64,
}

impl Default for SwitchMargin {
    fn default() -> Self {
        SwitchMargin {
            latency_ratio: 0.10,
            latency_abs: Duration::from_millis(2),
            bandwidth_ratio: 0.10,
        }
    }
}

impl SwitchMargin {
    /// True when `better` beats `worse` on `key` by more than the margin.
    pub(crate) fn exceeded(
        &self,
        key: PreferenceKey,
        better: &PathMetrics<'_>,
        worse: &PathMetrics<'_>,
    ) -> bool {
        match key {
            PreferenceKey::Latency => {
                let (b, w) = match (better.measured_rtt, worse.measured_rtt) {
                    (Some(b), Some(w)) => (b, w),
                    _ => match (better.info.total_latency(), worse.info.total_latency()) {
                        (Some(b), Some(w)) => (b, w),
                        // Partially known metadata that compare_key still ordered: the known
                        // part differs, accept it as pan would.
                        _ => return true,
                    },
                };
                // Checked float maths: metadata latencies are untrusted and may be absurd.
                match Duration::try_from_secs_f64(b.as_secs_f64() * (1.0 + self.latency_ratio)) {
                    Ok(scaled) => scaled.saturating_add(self.latency_abs) <= w,
                    Err(_) => false,
                }
            }
            PreferenceKey::Bandwidth => {
                match (
                    better.info.bottleneck_bandwidth_kbps(),
                    worse.info.bottleneck_bandwidth_kbps(),
                ) {
                    (Some(b), Some(w)) => (b as f64) >= (w as f64) * (1.0 + self.bandwidth_ratio),
                    _ => true,
                }
            }
            PreferenceKey::Hops | PreferenceKey::Mtu => true,
        }
    }
}

impl FromStr for PathPreference {
    type Err = PreferenceError;

    /// `"bandwidth,latency"`; items may carry surrounding spaces; case-insensitive. The empty
    /// string means no preference (pan: `preference == ""`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(PathPreference::default());
        }
        let mut keys = Vec::new();
        for (index, item) in s.split(',').enumerate() {
            let word = item.trim();
            if word.is_empty() {
                return Err(PreferenceError::EmptyItem {
                    input: s.to_string(),
                    index,
                });
            }
            let key = PreferenceKey::ALL
                .into_iter()
                .find(|k| k.as_str().eq_ignore_ascii_case(word))
                .ok_or_else(|| PreferenceError::UnknownWord {
                    input: s.to_string(),
                    word: word.to_string(),
                })?;
            if keys.contains(&key) {
                return Err(PreferenceError::Duplicate {
                    input: s.to_string(),
                    word: word.to_string(),
                });
            }
            keys.push(key);
        }
        Ok(PathPreference { keys })
    }
}

impl fmt::Display for PathPreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(k.as_str())?;
        }
        Ok(())
    }
}

/// What the comparators look at: the path's metadata and, if probes measured it, its RTT.
#[derive(Debug, Clone, Copy)]
pub struct PathMetrics<'a> {
    pub info: &'a PathInfo,
    pub measured_rtt: Option<Duration>,
}

impl<'a> PathMetrics<'a> {
    pub fn metadata_only(info: &'a PathInfo) -> Self {
        PathMetrics {
            info,
            measured_rtt: None,
        }
    }
}

type Stretch = (PathInterface, PathInterface);

/// Sum of known latencies and the set of stretches with unknown latency (pan `latencySum`).
fn latency_sum(p: &PathInfo) -> (Duration, HashSet<Stretch>) {
    let mut sum = Duration::ZERO;
    let mut unknown = HashSet::new();
    for (i, w) in p.interfaces.windows(2).enumerate() {
        match p.latency.get(i).copied().flatten() {
            // pan also treats an announced 0 as unknown (its FIXME about snet using 0 for
            // unknown); we have Option, so 0 is a real, if unlikely, value.
            Some(l) => sum = sum.saturating_add(l),
            None => {
                unknown.insert((w[0], w[1]));
            }
        }
    }
    (sum, unknown)
}

/// Bottleneck of known bandwidths (u64::MAX if none known) and the unknown stretches (pan
/// `bandwidthMin`).
fn bandwidth_min(p: &PathInfo) -> (u64, HashSet<Stretch>) {
    let mut min = u64::MAX;
    let mut unknown = HashSet::new();
    for (i, w) in p.interfaces.windows(2).enumerate() {
        match p.bandwidth_kbps.get(i).copied().flatten() {
            Some(b) => min = min.min(b),
            None => {
                unknown.insert((w[0], w[1]));
            }
        }
    }
    (min, unknown)
}

/// Compares `a` to `b` on one key: `Less` means `a` is preferred, `None` incomparable.
pub fn compare_key(
    key: PreferenceKey,
    a: &PathMetrics<'_>,
    b: &PathMetrics<'_>,
) -> Option<Ordering> {
    match key {
        PreferenceKey::Latency => {
            if let (Some(ra), Some(rb)) = (a.measured_rtt, b.measured_rtt) {
                return Some(ra.cmp(&rb));
            }
            let (sa, ua) = latency_sum(a.info);
            let (sb, ub) = latency_sum(b.info);
            // pan LowerLatency: a < b needs every stretch unknown in a to be unknown in b too.
            if sa < sb && ua.is_subset(&ub) {
                Some(Ordering::Less)
            } else if sa >= sb && ub.is_subset(&ua) {
                Some(if sa == sb && ua == ub {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                })
            } else {
                None
            }
        }
        PreferenceKey::Bandwidth => {
            let (ma, ua) = bandwidth_min(a.info);
            let (mb, ub) = bandwidth_min(b.info);
            // pan HigherBandwidth.
            if ma > mb && ua.is_subset(&ub) {
                Some(Ordering::Less)
            } else if ma <= mb && ub.is_subset(&ua) {
                Some(if ma == mb && ua == ub {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                })
            } else {
                None
            }
        }
        PreferenceKey::Hops => Some(a.info.interfaces.len().cmp(&b.info.interfaces.len())),
        PreferenceKey::Mtu => Some(b.info.mtu.cmp(&a.info.mtu)),
    }
}

/// Stable insertion sort under a partial order (pan `sortStablePartialOrder`): an element moves
/// left past every element it is strictly better than, stops at the first comparable element
/// that is not worse, and skips over incomparable ones. Quadratic; path lists are small.
pub fn sort_stable_partial_order<T>(s: &mut [T], cmp: impl Fn(&T, &T) -> Option<Ordering>) {
    for i in 1..s.len() {
        let mut k = i;
        let mut j = k;
        while j > 0 {
            j -= 1;
            match cmp(&s[k], &s[j]) {
                Some(Ordering::Less) => {
                    s.swap(j, k);
                    k = j;
                }
                Some(_) => break,
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::IsdAsn;
    use crate::path::model::PathFingerprint;

    #[test]
    fn parse_table() {
        use PreferenceKey::*;
        let ok: &[(&str, &[PreferenceKey])] = &[
            ("", &[]),
            ("latency", &[Latency]),
            ("bandwidth,latency", &[Bandwidth, Latency]),
            (" hops , MTU ", &[Hops, Mtu]),
            (
                "mtu,hops,bandwidth,latency",
                &[Mtu, Hops, Bandwidth, Latency],
            ),
        ];
        for (s, keys) in ok {
            let p: PathPreference = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(p.keys(), *keys, "{s}");
            assert_eq!(p.to_string().parse::<PathPreference>().unwrap(), p);
        }
        let bad = [
            ("latency,", "empty"),
            (",latency", "empty"),
            ("latency,,hops", "empty"),
            (" ", "empty"),
            ("lat ency", "unknown word"),
            ("speed", "unknown word"),
            ("latency;hops", "unknown word"),
            ("latency,latency", "more than once"),
            ("hops,Hops", "more than once"),
        ];
        for (s, what) in bad {
            let e = s.parse::<PathPreference>().unwrap_err();
            assert!(e.to_string().contains(what), "{s:?}: {e}");
        }
    }

    #[test]
    fn insertion_sort_matches_stable_sort_on_total_orders() {
        let mut v = vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')];
        let mut w = v.clone();
        sort_stable_partial_order(&mut v, |a, b| Some(a.0.cmp(&b.0)));
        w.sort_by_key(|x| x.0);
        assert_eq!(v, w);
    }

    #[test]
    fn incomparable_elements_keep_their_place() {
        // None = unknown metadata: element 'x' is incomparable with everything.
        let mut v = vec![(5, 'a'), (0, 'x'), (1, 'b')];
        sort_stable_partial_order(&mut v, |a, b| {
            if a.1 == 'x' || b.1 == 'x' {
                None
            } else {
                Some(a.0.cmp(&b.0))
            }
        });
        // 'b' jumps over the incomparable 'x' and before 'a'; 'x' stays in the middle.
        assert_eq!(v, vec![(1, 'b'), (0, 'x'), (5, 'a')]);
    }

    fn ia(s: &str) -> IsdAsn {
        s.parse().unwrap()
    }

    #[test]
    fn margin_rules() {
        let a = ia("1-ff00:0:1");
        let b = ia("1-ff00:0:2");
        let p = PathInfo::new(
            PathFingerprint::from_u64(1),
            a,
            b,
            vec![PathInterface::new(a, 1), PathInterface::new(b, 1)],
            1472,
            0,
        );
        let m = SwitchMargin::default();
        let pref: PathPreference = "latency".parse().unwrap();
        let at = |ms: u64| PathMetrics {
            info: &p,
            measured_rtt: Some(Duration::from_millis(ms)),
        };
        // 20 ms vs 24 ms: 20*1.1+2 = 24 <= 24: better.
        assert_eq!(
            pref.compare_with_margin(&at(20), &at(24), &m),
            Verdict::Better
        );
        // 20 ms vs 23 ms: within the margin.
        assert_eq!(pref.compare_with_margin(&at(20), &at(23), &m), Verdict::Tie);
        assert_eq!(pref.compare_with_margin(&at(23), &at(20), &m), Verdict::Tie);
        assert_eq!(
            pref.compare_with_margin(&at(40), &at(20), &m),
            Verdict::Worse
        );
        // Loopback scale: 0.2 ms vs 1.5 ms is noise.
        let us = |u: u64| PathMetrics {
            info: &p,
            measured_rtt: Some(Duration::from_micros(u)),
        };
        assert_eq!(
            pref.compare_with_margin(&us(200), &us(1500), &m),
            Verdict::Tie
        );
        // Absurd metadata must not overflow the margin arithmetic.
        let secs = |s: u64| PathMetrics {
            info: &p,
            measured_rtt: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            pref.compare_with_margin(&secs(u64::MAX - 10), &secs(u64::MAX), &m),
            Verdict::Tie
        );
    }
}
