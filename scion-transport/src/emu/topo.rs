//! The emulator's topology file (TOML): ASes, links, and their run-time knobs.
//!
//! Pure: parsing and validation only. Example:
//!
//! ```toml
//! [[as]]
//! ia = "1-ff00:0:110"
//! core = true
//!
//! [[as]]
//! ia = "1-ff00:0:111"
//!
//! [[link]]
//! a = "1-ff00:0:110#1"
//! b = "1-ff00:0:111#1"
//! latency_ms = 5.0
//! bandwidth_kbps = 100000
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::address::IsdAsn;

/// Default MTU of ASes and links (SCIONLab's usual underlay MTU).
pub const DEFAULT_MTU: u16 = 1472;
/// Default dispatcherless port range of scionproto's topology.json.
pub const DEFAULT_DISPATCHED_PORTS: (u16, u16) = (31000, 32767);
/// Bandwidth reported for the inside of an AS when links carry bandwidth metadata.
pub const INTERNAL_BANDWIDTH_KBPS: u64 = 100_000_000;

/// Errors of reading a topology file.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("topology TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("topology: bad ISD-AS {0:?} (expected e.g. 1-ff00:0:110)")]
    BadIa(String),
    #[error("topology: bad interface {0:?} (expected ISD-AS#ifid with ifid 1..65535)")]
    BadInterface(String),
    #[error("topology: AS {0} is listed twice")]
    DuplicateAs(String),
    #[error("topology: link end {0} names an AS that is not listed")]
    UnknownAs(String),
    #[error("topology: interface {0} is used by two links")]
    DuplicateInterface(String),
    #[error("topology: link {0} connects an AS to itself")]
    SelfLink(String),
    #[error("topology: key of AS {0} must be 32 hex digits")]
    BadKey(String),
    #[error("topology: bad dispatched_ports {0:?} (expected LOW-HIGH)")]
    BadPorts(String),
    #[error("topology: link {link}: {what}")]
    BadLink { link: String, what: String },
    #[error("topology: {0}")]
    Other(String),
}

/// State of a link as set in the file or by the control interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Forwarding.
    Up,
    /// Routers answer packets for it with SCMP ExternalInterfaceDown (like BFD-detected loss).
    Down,
    /// Packets vanish silently (a failure routers have not detected).
    Blackhole,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    #[serde(rename = "as", default)]
    ases: Vec<RawAs>,
    #[serde(rename = "link", default)]
    links: Vec<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAs {
    ia: String,
    #[serde(default)]
    core: bool,
    key: Option<String>,
    mtu: Option<u16>,
    dispatched_ports: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    a: String,
    b: String,
    #[serde(default)]
    latency_ms: f64,
    #[serde(default)]
    jitter_ms: f64,
    #[serde(default)]
    bandwidth_kbps: u64,
    #[serde(default)]
    loss: f64,
    mtu: Option<u16>,
    state: Option<LinkState>,
    /// Whether the daemon publishes latency/bandwidth for this link (default true).
    metadata: Option<bool>,
}

/// One AS of the emulated network.
#[derive(Debug, Clone, PartialEq)]
pub struct AsSpec {
    pub ia: IsdAsn,
    pub core: bool,
    /// Forwarding key for hop-field MACs.
    pub key: [u8; 16],
    pub mtu: u16,
    pub dispatched_ports: (u16, u16),
}

/// One end of a link: an AS and one of its interface ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkEnd {
    pub ia: IsdAsn,
    pub ifid: u16,
}

impl std::fmt::Display for LinkEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", fmt_ia(self.ia), self.ifid)
    }
}

/// Shaping and state of a link (both directions alike).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkParams {
    pub latency: Duration,
    pub jitter: Duration,
    /// 0 = unlimited.
    pub bandwidth_kbps: u64,
    /// Drop probability 0.0..=1.0.
    pub loss: f64,
    pub mtu: u16,
    pub state: LinkState,
    pub metadata: bool,
}

/// A link between two interfaces.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpec {
    pub a: LinkEnd,
    pub b: LinkEnd,
    pub params: LinkParams,
}

/// A validated topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub ases: Vec<AsSpec>,
    pub links: Vec<LinkSpec>,
}

impl Topology {
    /// Parses and validates a TOML topology.
    pub fn from_toml(text: &str) -> Result<Self, TopologyError> {
        let raw: RawTopology = toml::from_str(text)?;
        let mut ases = Vec::new();
        let mut seen = BTreeSet::new();
        for a in raw.ases {
            let ia = parse_ia(&a.ia).ok_or_else(|| TopologyError::BadIa(a.ia.clone()))?;
            if !seen.insert(ia) {
                return Err(TopologyError::DuplicateAs(a.ia));
            }
            let key = match &a.key {
                Some(hex) => parse_key(hex).ok_or_else(|| TopologyError::BadKey(a.ia.clone()))?,
                None => default_key(ia),
            };
            let dispatched_ports = match &a.dispatched_ports {
                Some(text) => {
                    parse_port_range(text).ok_or_else(|| TopologyError::BadPorts(text.clone()))?
                }
                None => DEFAULT_DISPATCHED_PORTS,
            };
            ases.push(AsSpec {
                ia,
                core: a.core,
                key,
                mtu: a.mtu.unwrap_or(DEFAULT_MTU),
                dispatched_ports,
            });
        }
        let mut links = Vec::new();
        let mut used = BTreeSet::new();
        for l in raw.links {
            let a = parse_link_end(&l.a)?;
            let b = parse_link_end(&l.b)?;
            let name = format!("{a}-{b}");
            for end in [a, b] {
                if !seen.contains(&end.ia) {
                    return Err(TopologyError::UnknownAs(end.to_string()));
                }
                if !used.insert(end) {
                    return Err(TopologyError::DuplicateInterface(end.to_string()));
                }
            }
            if a.ia == b.ia {
                return Err(TopologyError::SelfLink(name));
            }
            let bad = |what: &str| TopologyError::BadLink {
                link: name.clone(),
                what: what.to_string(),
            };
            if !(l.latency_ms.is_finite() && l.latency_ms >= 0.0 && l.latency_ms < 60_000.0) {
                return Err(bad("latency_ms must be within 0..60000"));
            }
            if !(l.jitter_ms.is_finite() && l.jitter_ms >= 0.0 && l.jitter_ms < 60_000.0) {
                return Err(bad("jitter_ms must be within 0..60000"));
            }
            if !(0.0..=1.0).contains(&l.loss) {
                return Err(bad("loss must be within 0..1"));
            }
            let mtu = l.mtu.unwrap_or(DEFAULT_MTU);
            if mtu < 1280 {
                return Err(bad("mtu below SCION's minimum of 1280"));
            }
            links.push(LinkSpec {
                a,
                b,
                params: LinkParams {
                    latency: Duration::from_secs_f64(l.latency_ms / 1000.0),
                    jitter: Duration::from_secs_f64(l.jitter_ms / 1000.0),
                    bandwidth_kbps: l.bandwidth_kbps,
                    loss: l.loss,
                    mtu,
                    state: l.state.unwrap_or(LinkState::Up),
                    metadata: l.metadata.unwrap_or(true),
                },
            });
        }
        if ases.is_empty() {
            return Err(TopologyError::Other("no [[as]] entries".into()));
        }
        Ok(Topology { ases, links })
    }

    pub fn as_spec(&self, ia: IsdAsn) -> Option<&AsSpec> {
        self.ases.iter().find(|a| a.ia == ia)
    }

    /// Neighbours of each AS: (local ifid, link index, remote end).
    pub fn adjacency(&self) -> BTreeMap<IsdAsn, Vec<(u16, usize, LinkEnd)>> {
        let mut adj: BTreeMap<IsdAsn, Vec<(u16, usize, LinkEnd)>> = BTreeMap::new();
        for a in &self.ases {
            adj.entry(a.ia).or_default();
        }
        for (i, l) in self.links.iter().enumerate() {
            adj.entry(l.a.ia).or_default().push((l.a.ifid, i, l.b));
            adj.entry(l.b.ia).or_default().push((l.b.ifid, i, l.a));
        }
        adj
    }

    /// The link that has `end` as one of its interfaces.
    pub fn link_of(&self, end: LinkEnd) -> Option<usize> {
        self.links.iter().position(|l| l.a == end || l.b == end)
    }
}

/// A deterministic per-AS key when the file gives none (tests stay reproducible).
fn default_key(ia: IsdAsn) -> [u8; 16] {
    let mut key = [0x5cu8; 16];
    key[..8].copy_from_slice(&ia.0.to_be_bytes());
    key
}

fn parse_key(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

/// `toml` (a topology file) with every AS and link set to MTU `mtu`: a `mtu = N` line after
/// each `[[as]]` and `[[link]]` header, for benchmarks and tests of jumbo-frame networks.
pub fn with_mtu(toml: &str, mtu: u16) -> String {
    let mut out = String::with_capacity(toml.len() + 256);
    for line in toml.lines() {
        out.push_str(line);
        out.push('\n');
        if matches!(line.trim(), "[[as]]" | "[[link]]") {
            out.push_str(&format!("mtu = {mtu}\n"));
        }
    }
    out
}

/// Parses `LOW-HIGH` (the topology.json `dispatched_ports` form).
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = text.trim().split_once('-')?;
    let lo: u16 = lo.trim().parse().ok()?;
    let hi: u16 = hi.trim().parse().ok()?;
    (lo >= 1 && lo <= hi).then_some((lo, hi))
}

/// Parses `ISD-AS#ifid`.
pub fn parse_link_end(text: &str) -> Result<LinkEnd, TopologyError> {
    let bad = || TopologyError::BadInterface(text.to_string());
    let (ia, ifid) = text.trim().split_once('#').ok_or_else(bad)?;
    let ia = parse_ia(ia).ok_or_else(bad)?;
    let ifid: u16 = ifid.parse().map_err(|_| bad())?;
    if ifid == 0 {
        return Err(bad());
    }
    Ok(LinkEnd { ia, ifid })
}

/// Parses `ISD-AS` (address.rs's grammar).
pub fn parse_ia(text: &str) -> Option<IsdAsn> {
    text.trim().parse().ok()
}

/// Formats an ISD-AS canonically (`1-ff00:0:110`).
pub fn fmt_ia(ia: IsdAsn) -> String {
    ia.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_mtu_sets_every_as_and_link() {
        let t = Topology::from_toml(&with_mtu(TWO_PATHS, 8972)).expect("valid");
        assert!(!t.ases.is_empty() && !t.links.is_empty());
        assert!(t.ases.iter().all(|a| a.mtu == 8972), "{:?}", t.ases);
        assert!(
            t.links.iter().all(|l| l.params.mtu == 8972),
            "{:?}",
            t.links
        );
        // Without it, the defaults.
        let t = Topology::from_toml(TWO_PATHS).expect("valid");
        assert!(t.ases.iter().all(|a| a.mtu == DEFAULT_MTU));
    }

    const TWO_PATHS: &str = r#"
        [[as]]
        ia = "1-ff00:0:110"
        core = true
        [[as]]
        ia = "1-ff00:0:111"
        dispatched_ports = "40000-40100"
        [[link]]
        a = "1-ff00:0:110#1"
        b = "1-ff00:0:111#1"
        latency_ms = 5
        [[link]]
        a = "1-ff00:0:110#2"
        b = "1-ff00:0:111#2"
        state = "blackhole"
        metadata = false
    "#;

    #[test]
    fn parses_and_validates() {
        let t = Topology::from_toml(TWO_PATHS).expect("valid");
        assert_eq!(t.ases.len(), 2);
        assert_eq!(t.ases[1].dispatched_ports, (40000, 40100));
        assert_eq!(t.links[0].params.latency, Duration::from_millis(5));
        assert_eq!(t.links[1].params.state, LinkState::Blackhole);
        assert!(!t.links[1].params.metadata);
        assert_eq!(t.adjacency()[&t.ases[0].ia].len(), 2);
    }

    #[test]
    fn ia_round_trip() {
        for s in [
            "1-ff00:0:110",
            "18-ffaa:1:10bf",
            "1-64512",
            "65535-ffff:ffff:ffff",
        ] {
            assert_eq!(fmt_ia(parse_ia(s).expect(s)), s);
        }
        for bad in [
            "",
            "1",
            "1-",
            "x-1",
            "1-ff00:0",
            "1-ff00:0:1:2",
            "1-4294967296",
            "1-fffff:0:1",
        ] {
            assert!(parse_ia(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_files() {
        let cases = [
            ("[[as]]\nia = \"nope\"", "bad ISD-AS"),
            ("[[as]]\nia = \"1-1\"\n[[as]]\nia = \"1-1\"", "listed twice"),
            (
                "[[as]]\nia = \"1-1\"\n[[link]]\na = \"1-1#1\"\nb = \"1-2#1\"",
                "not listed",
            ),
            (
                "[[as]]\nia = \"1-1\"\n[[link]]\na = \"1-1#1\"\nb = \"1-1#2\"",
                "itself",
            ),
            ("[[as]]\nia = \"1-1\"\nkey = \"zz\"", "hex"),
            ("[[as]]\nia = \"1-1\"\nbogus = 1", "unknown field"),
            (
                "[[as]]\nia = \"1-1\"\n[[as]]\nia = \"1-2\"\n[[link]]\na = \"1-1#1\"\nb = \"1-2#1\"\nloss = 2.0",
                "loss",
            ),
            ("", "no [[as]]"),
        ];
        for (text, want) in cases {
            let err = Topology::from_toml(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
