//! `/pathz`: the SCION paths toward each peer (issue 5, "path
//! observability"). nats-server has no such endpoint; the shape is ours.
//!
//! This module is pure: the SCION link layer hands over one [`PathzDest`]
//! per peer (a route or a client link), built from
//! `scion_transport::ScionEndpoint::path_stats` (one `CandidateView` per
//! candidate path), `switch_count`, `why_active`, and the last `PathEvent`
//! it saw. A server without SCION answers the same document with no
//! destinations, so that scrapers need not special-case TCP-only brokers.
//!
//! ```json
//! { "server_id": "N…", "now": "…Z", "num_destinations": 1,
//!   "destinations": [ {
//!     "remote": "[1-ff00:0:111,10.0.0.2]:30555", "link": "route", "connected": true, "id": 4,
//!     "remote_id": "N…", "path_switches": 2, "active": "ab12…",
//!     "why_active": "latency: 4.1 ms vs 15.2 ms (preference latency) over cd34…; last switch: better",
//!     "last_switch": { "cause": "better", "at": "…Z", "from": "cd34…", "to": "ab12…", "gap": "35ms" },
//!     "paths": [ { "fingerprint": "ab12…", "hops": ["1-ff00:0:110#1", "1-ff00:0:111#7"],
//!                  "state": "alive", "active": true, "in_active_set": true,
//!                  "probed": true, "rank": 0, "rtt": "12.5ms", "rtt_var": "1.2ms",
//!                  "rtt_age": "41ms", "loss": 0, "mtu": 1472,
//!                  "expiry": "…Z", "latency": "11ms", "bandwidth_kbps": 100000,
//!                  "probes_sent": 40, "probes_answered": 40 } ] } ] }
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use super::gofmt::{go_duration, GoFloat, GoTime};

/// One candidate path.
#[derive(Debug, Clone, Serialize)]
pub struct PathCandidate {
    /// Hex path fingerprint.
    pub fingerprint: String,
    /// Inter-AS interfaces in travel order, `ISD-AS#ifid`.
    pub hops: Vec<String>,
    /// `alive`, `unprobed`, `suspect`, `down`, `expired` or `filtered`.
    pub state: String,
    pub active: bool,
    pub in_active_set: bool,
    /// Whether the path is watched now (the active set and a few backups). The others are
    /// surveyed, one probe in turn every 2 s, and keep the state and RTT of their last
    /// probe in between; `rtt_age` says how old that is.
    pub probed: bool,
    /// Position in the selector's ranking (0 = best), if usable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    /// Smoothed probe RTT.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_dur")]
    pub rtt: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_dur")]
    pub rtt_var: Option<Duration>,
    /// Time since the last probe answer: the age of `rtt` and of an `alive` state.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_dur")]
    pub rtt_age: Option<Duration>,
    /// Lost fraction of recent probes, 0..1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<GoFloat>,
    pub mtu: u16,
    pub expiry: GoTime,
    /// Announced end-to-end latency, when every stretch announces one.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_dur")]
    pub latency: Option<Duration>,
    /// Announced bottleneck bandwidth, when every stretch announces one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_kbps: Option<u64>,
    pub probes_sent: u64,
    pub probes_answered: u64,
    /// Why the path is down, expired or filtered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The last path change toward a destination.
#[derive(Debug, Clone, Serialize)]
pub struct PathSwitch {
    /// `initial`, `scmp-down`, `probe-loss`, `better`, `expiry`, `refresh`.
    pub cause: String,
    pub at: GoTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// Time the old path had been silent when the switch happened.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_dur")]
    pub gap: Option<Duration>,
}

/// Everything /pathz shows about one peer.
#[derive(Debug, Clone, Serialize)]
pub struct PathzDest {
    /// Peer SCION address, `[ISD-AS,IP]:port`.
    pub remote: String,
    /// `route` or `client`.
    pub link: &'static str,
    /// False for a configured SCION route that is not up (being dialled): its paths show
    /// why it cannot come up.
    pub connected: bool,
    /// Route id (rid) or client id (cid) in /routez or /connz; 0 when not connected.
    pub id: u64,
    /// The peer server's id, for routes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remote_id: String,
    pub path_switches: u64,
    /// `path_switches` by cause (`scmp-down`, `probe-loss`, `better`, `expiry`, `refresh`);
    /// causes that never occurred are left out.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub switches_by_cause: BTreeMap<String, u64>,
    /// Fingerprint of the active path, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    pub why_active: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_switch: Option<PathSwitch>,
    /// Stretches with every usable path down (failovers cannot help then).
    pub outages: Outages,
    pub paths: Vec<PathCandidate>,
}

/// A destination's outages: stretches with every usable path down, since its first path
/// answered (a released link's count starts over with the next link).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outages {
    /// How long the current one has lasted (absent when a path works).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_dur")]
    pub current: Option<Duration>,
    /// Outages so far, the current one included.
    pub count: u64,
    /// Their total length, the current one up to now included.
    #[serde(serialize_with = "dur")]
    pub total: Duration,
}

fn dur<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&go_duration(*d))
}

fn opt_dur<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&go_duration(*d)),
        None => s.serialize_none(),
    }
}

/// Sum of per-stretch latencies, `None` if any is unknown or there are none
/// announced (a path inside one AS has no stretches and reports zero).
pub fn total_latency(stretches: &[Option<Duration>], hops: usize) -> Option<Duration> {
    if hops == 0 {
        return Some(Duration::ZERO);
    }
    if stretches.is_empty() {
        return None;
    }
    stretches.iter().copied().sum()
}

/// Smallest per-stretch bandwidth, `None` if any is unknown or none announced.
pub fn bottleneck_kbps(stretches: &[Option<u64>]) -> Option<u64> {
    if stretches.is_empty() {
        return None;
    }
    stretches
        .iter()
        .copied()
        .collect::<Option<Vec<u64>>>()?
        .into_iter()
        .min()
}

/// Completes a destination: picks the active path, explains the choice,
/// and orders paths active first, then by rank, then by fingerprint.
pub fn finish(mut d: PathzDest) -> PathzDest {
    d.paths.sort_by(|a, b| {
        b.active
            .cmp(&a.active)
            .then(
                a.rank
                    .unwrap_or(usize::MAX)
                    .cmp(&b.rank.unwrap_or(usize::MAX)),
            )
            .then(a.fingerprint.cmp(&b.fingerprint))
    });
    let usable = d.paths.iter().filter(|p| p.rank.is_some()).count();
    let active = d.paths.iter().find(|p| p.active);
    d.active = active.map(|p| p.fingerprint.clone());
    let cause = d
        .last_switch
        .as_ref()
        .map(|s| format!("; last switch: {}", s.cause))
        .unwrap_or_default();
    // The selector's own explanation (deciding preference key, hysteresis,
    // only path) when it gave one; the rank otherwise.
    let decided = std::mem::take(&mut d.why_active);
    d.why_active = match active {
        // A same-AS peer needs none (the caller says so).
        None if d.paths.is_empty() && !decided.is_empty() => decided,
        None if d.paths.is_empty() => "no candidate paths".to_string(),
        None => format!("no usable path ({} candidates)", d.paths.len()),
        Some(_) if !decided.is_empty() => format!("{decided}{cause}"),
        Some(p) => match p.rank {
            Some(r) => format!("rank {r} of {usable} usable{cause}"),
            None => format!("kept while no usable alternative ({}){cause}", p.state),
        },
    };
    d
}

/// The /pathz document.
#[derive(Debug, Serialize)]
pub struct Pathz {
    pub server_id: String,
    pub now: GoTime,
    pub num_destinations: usize,
    pub destinations: Vec<PathzDest>,
}

/// Builds /pathz at `now`.
pub fn pathz(server_id: &str, dests: Vec<PathzDest>, now: SystemTime) -> Pathz {
    let mut destinations: Vec<PathzDest> = dests.into_iter().map(finish).collect();
    destinations.sort_by(|a, b| a.link.cmp(b.link).then(a.id.cmp(&b.id)));
    Pathz {
        server_id: server_id.to_string(),
        now: GoTime(now),
        num_destinations: destinations.len(),
        destinations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn cand(fp: &str, rank: Option<usize>, active: bool) -> PathCandidate {
        PathCandidate {
            fingerprint: fp.into(),
            hops: vec!["1-ff00:0:110#1".into(), "1-ff00:0:111#7".into()],
            state: if rank.is_some() { "alive" } else { "down" }.into(),
            active,
            in_active_set: active,
            probed: rank.is_some(),
            rank,
            rtt: Some(Duration::from_micros(12_500)),
            rtt_var: None,
            rtt_age: Some(Duration::from_millis(100)),
            loss: Some(GoFloat(0.0)),
            mtu: 1472,
            expiry: GoTime(UNIX_EPOCH + Duration::from_secs(3600)),
            latency: total_latency(&[Some(Duration::from_millis(11))], 2),
            bandwidth_kbps: bottleneck_kbps(&[Some(100_000)]),
            probes_sent: 4,
            probes_answered: 4,
            reason: None,
        }
    }

    fn dest(paths: Vec<PathCandidate>) -> PathzDest {
        PathzDest {
            remote: "[1-ff00:0:111,10.0.0.2]:30555".into(),
            link: "route",
            connected: true,
            id: 4,
            remote_id: "NREMOTE".into(),
            path_switches: 2,
            switches_by_cause: BTreeMap::new(),
            active: None,
            why_active: String::new(),
            last_switch: Some(PathSwitch {
                cause: "better".into(),
                at: GoTime(UNIX_EPOCH),
                from: Some("cd".into()),
                to: "ab".into(),
                gap: Some(Duration::from_millis(35)),
            }),
            outages: Outages::default(),
            paths,
        }
    }

    #[test]
    fn metadata_aggregates() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(total_latency(&[ms(1), ms(2)], 4), ms(3));
        assert_eq!(total_latency(&[ms(1), None], 4), None);
        assert_eq!(total_latency(&[], 4), None);
        assert_eq!(total_latency(&[], 0), Some(Duration::ZERO));
        assert_eq!(bottleneck_kbps(&[Some(10), Some(5)]), Some(5));
        assert_eq!(bottleneck_kbps(&[Some(10), None]), None);
        assert_eq!(bottleneck_kbps(&[]), None);
    }

    #[test]
    fn active_first_and_explained() {
        let d = finish(dest(vec![
            cand("zz", None, false),
            cand("cd", Some(1), false),
            cand("ab", Some(0), true),
        ]));
        let order: Vec<&str> = d.paths.iter().map(|p| p.fingerprint.as_str()).collect();
        assert_eq!(order, vec!["ab", "cd", "zz"]);
        assert_eq!(d.active.as_deref(), Some("ab"));
        assert_eq!(d.why_active, "rank 0 of 2 usable; last switch: better");

        let none = finish(dest(vec![cand("zz", None, false)]));
        assert_eq!(none.active, None);
        assert_eq!(none.why_active, "no usable path (1 candidates)");

        let mut explained = dest(vec![cand("ab", Some(0), true)]);
        explained.why_active = "only usable path".into();
        assert_eq!(
            finish(explained).why_active,
            "only usable path; last switch: better"
        );

        // No paths: a peer in our AS needs none (said by the caller); otherwise that is odd.
        assert_eq!(finish(dest(Vec::new())).why_active, "no candidate paths");
        let mut local = dest(Vec::new());
        local.why_active = crate::monitor::scion_view::SAME_AS.into();
        assert_eq!(
            finish(local).why_active,
            crate::monitor::scion_view::SAME_AS
        );
    }

    #[test]
    fn json_shape() {
        let doc = pathz(
            "SID",
            vec![dest(vec![cand("ab", Some(0), true)])],
            UNIX_EPOCH,
        );
        let v = serde_json::to_value(&doc).unwrap_or_default();
        assert_eq!(v["num_destinations"], 1);
        let d = &v["destinations"][0];
        assert_eq!(d["active"], "ab");
        assert_eq!(d["last_switch"]["gap"], "35ms");
        let p = &d["paths"][0];
        assert_eq!(p["rtt"], "12.5ms");
        assert_eq!(p["latency"], "11ms");
        assert_eq!(p["bandwidth_kbps"], 100_000);
        assert_eq!(p["loss"], 0);
        assert_eq!(p["expiry"], "1970-01-01T01:00:00Z");
        assert!(p.get("rtt_var").is_none());
        assert!(p.get("reason").is_none());
    }
}
