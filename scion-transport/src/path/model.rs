//! The path model: what the selector, the preference sorter and the policy filter know about a
//! SCION path. Pure data; the I/O side (`wire.rs`) fills it from scion-proto paths.
//!
//! Interface and metadata conventions follow scionproto `snet.PathMetadata` (and scion-proto's
//! `path::Metadata`): `interfaces` lists every inter-AS interface crossed, in travel order: the
//! source AS's egress, then ingress/egress pairs for each transit AS, then the destination AS's
//! ingress, so a path through N ASes has 2(N-1) interfaces. `latency[i]` / `bandwidth_kbps[i]`
//! describe the stretch between `interfaces[i]` and `interfaces[i+1]` (N-1 entries for N
//! interfaces); `None` means the AS did not announce it.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use crate::address::IsdAsn;

/// Identifies a path by its interface sequence. The I/O side passes scion-proto's SHA-256
/// fingerprint; tests may use any 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathFingerprint(pub [u8; 32]);

impl PathFingerprint {
    /// A fingerprint whose first 8 bytes are `n` (big endian); handy in tests and for static
    /// paths that have no fingerprint of their own.
    pub fn from_u64(n: u64) -> Self {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        PathFingerprint(b)
    }
    /// The first 8 bytes in hex: enough to tell paths apart in logs.
    pub fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for PathFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PathFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathFingerprint({})", self.short())
    }
}

/// One inter-AS interface on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathInterface {
    pub ia: IsdAsn,
    pub ifid: u16,
}

impl PathInterface {
    pub const fn new(ia: IsdAsn, ifid: u16) -> Self {
        PathInterface { ia, ifid }
    }
}

impl fmt::Display for PathInterface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.ia, self.ifid)
    }
}

/// Shape of the encoded data-plane path, when the I/O side knows it: needed for the exact
/// SCION header length (one info field per segment, one hop field per AS per segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataplaneShape {
    pub info_fields: u8,
    pub hop_fields: u8,
}

/// SCION common header (12 B) + ISD-AS pair (16 B) + UDP header (8 B); host addresses and the
/// path header come on top (SCION header spec; numbers checked in NOTES-scion.md).
const FIXED_HEADER_BYTES: usize = 12 + 16 + 8;
/// Standard path: 4 B path meta header, 8 B per info field, 12 B per hop field.
const PATH_META_BYTES: usize = 4;
const INFO_FIELD_BYTES: usize = 8;
const HOP_FIELD_BYTES: usize = 12;

/// Everything the pure core knows about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub fingerprint: PathFingerprint,
    pub src: IsdAsn,
    pub dst: IsdAsn,
    /// Inter-AS interfaces in travel order (empty for a path inside one AS).
    pub interfaces: Vec<PathInterface>,
    /// Largest SCION packet the path carries (metadata MTU), in bytes.
    pub mtu: u16,
    /// When the path's hop fields expire, seconds since the Unix epoch.
    pub expiry_unix_secs: u64,
    /// Per-stretch latency (N-1 entries for N interfaces), `None` = not announced. May be
    /// empty (no metadata at all), which counts as all unknown.
    pub latency: Vec<Option<Duration>>,
    /// Per-stretch bandwidth in kbit/s, same layout as `latency`.
    pub bandwidth_kbps: Vec<Option<u64>>,
    /// Encoded path shape, if known; otherwise header size is estimated from `interfaces`.
    pub dataplane: Option<DataplaneShape>,
}

/// Why a `PathInfo` is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathInfoError {
    #[error("path {fingerprint}: odd number of interfaces ({count}); each inter-AS link has two")]
    OddInterfaces { fingerprint: String, count: usize },
    #[error("path {fingerprint}: {field} has {got} entries, expected 0 or {expected}")]
    MetadataLength {
        fingerprint: String,
        field: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("path {fingerprint}: starts in {first} but src is {src}")]
    SrcMismatch {
        fingerprint: String,
        first: IsdAsn,
        src: IsdAsn,
    },
    #[error("path {fingerprint}: ends in {last} but dst is {dst}")]
    DstMismatch {
        fingerprint: String,
        last: IsdAsn,
        dst: IsdAsn,
    },
}

/// One AS on a path with its ingress and egress interface (0 = none), as scionproto's
/// `pathpol.GetSequence` renders it: `1-ff00:0:133#0,42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsHop {
    pub ia: IsdAsn,
    pub ingress: u16,
    pub egress: u16,
}

impl fmt::Display for AsHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{},{}", self.ia, self.ingress, self.egress)
    }
}

impl PathInfo {
    /// A path with no metadata besides interfaces, MTU and expiry.
    pub fn new(
        fingerprint: PathFingerprint,
        src: IsdAsn,
        dst: IsdAsn,
        interfaces: Vec<PathInterface>,
        mtu: u16,
        expiry_unix_secs: u64,
    ) -> Self {
        PathInfo {
            fingerprint,
            src,
            dst,
            interfaces,
            mtu,
            expiry_unix_secs,
            latency: Vec::new(),
            bandwidth_kbps: Vec::new(),
            dataplane: None,
        }
    }

    /// Checks the layout invariants the rest of the module relies on.
    pub fn validate(&self) -> Result<(), PathInfoError> {
        let fp = || self.fingerprint.short();
        let n = self.interfaces.len();
        if !n.is_multiple_of(2) {
            return Err(PathInfoError::OddInterfaces {
                fingerprint: fp(),
                count: n,
            });
        }
        let links = n.saturating_sub(1);
        for (field, got) in [
            ("latency", self.latency.len()),
            ("bandwidth_kbps", self.bandwidth_kbps.len()),
        ] {
            if got != 0 && got != links {
                return Err(PathInfoError::MetadataLength {
                    fingerprint: fp(),
                    field,
                    got,
                    expected: links,
                });
            }
        }
        if let (Some(first), Some(last)) = (self.interfaces.first(), self.interfaces.last()) {
            if first.ia != self.src {
                return Err(PathInfoError::SrcMismatch {
                    fingerprint: fp(),
                    first: first.ia,
                    src: self.src,
                });
            }
            if last.ia != self.dst {
                return Err(PathInfoError::DstMismatch {
                    fingerprint: fp(),
                    last: last.ia,
                    dst: self.dst,
                });
            }
        }
        Ok(())
    }

    /// Number of AS-level hops (inter-AS links) on the path; 0 inside one AS.
    pub fn hops(&self) -> usize {
        self.interfaces.len() / 2
    }

    /// The ASes crossed with their ingress/egress interfaces (scionproto `pathpol.GetSequence`).
    /// Empty for a path inside one AS or a malformed (odd) interface list.
    pub fn as_hops(&self) -> Vec<AsHop> {
        let ifs = &self.interfaces;
        if ifs.is_empty() || !ifs.len().is_multiple_of(2) {
            return Vec::new();
        }
        let mut hops = Vec::with_capacity(ifs.len() / 2 + 1);
        hops.push(AsHop {
            ia: ifs[0].ia,
            ingress: 0,
            egress: ifs[0].ifid,
        });
        let mut i = 1;
        while i + 1 < ifs.len() {
            hops.push(AsHop {
                ia: ifs[i].ia,
                ingress: ifs[i].ifid,
                egress: ifs[i + 1].ifid,
            });
            i += 2;
        }
        let last = ifs[ifs.len() - 1];
        hops.push(AsHop {
            ia: last.ia,
            ingress: last.ifid,
            egress: 0,
        });
        hops
    }

    /// `18-ffaa:0:1#0,1 18-ffaa:0:2#3,0`: the sequence form path policies match against.
    pub fn hop_sequence(&self) -> String {
        let hops = self.as_hops();
        let mut out = String::new();
        for (i, h) in hops.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&h.to_string());
        }
        out
    }

    /// Sum of the announced per-stretch latencies; `None` if any stretch is unknown.
    pub fn total_latency(&self) -> Option<Duration> {
        let links = self.interfaces.len().saturating_sub(1);
        if links == 0 {
            return Some(Duration::ZERO);
        }
        if self.latency.len() != links {
            return None;
        }
        // Saturating: metadata comes from the network and must not be able to panic us.
        self.latency
            .iter()
            .try_fold(Duration::ZERO, |acc, l| l.map(|l| acc.saturating_add(l)))
    }

    /// Smallest announced per-stretch bandwidth; `None` if any stretch is unknown or the path
    /// has no inter-AS link.
    pub fn bottleneck_bandwidth_kbps(&self) -> Option<u64> {
        let links = self.interfaces.len().saturating_sub(1);
        if links == 0 || self.bandwidth_kbps.len() != links {
            return None;
        }
        self.bandwidth_kbps
            .iter()
            .copied()
            .try_fold(u64::MAX, |acc, b| b.map(|b| acc.min(b)))
    }

    /// Interfaces this path shares with `other`, in this path's order.
    pub fn shared_interfaces(&self, other: &PathInfo) -> Vec<PathInterface> {
        let theirs: HashSet<&PathInterface> = other.interfaces.iter().collect();
        self.interfaces
            .iter()
            .filter(|i| theirs.contains(i))
            .copied()
            .collect()
    }

    /// True when the two paths share no inter-AS interface (so no inter-AS link).
    pub fn is_disjoint(&self, other: &PathInfo) -> bool {
        self.shared_interfaces(other).is_empty()
    }

    /// True when the path starts in, ends in or passes through AS `ia`.
    pub fn crosses(&self, ia: IsdAsn) -> bool {
        self.src == ia || self.dst == ia || self.interfaces.iter().any(|i| i.ia == ia)
    }

    /// True when the path crosses interface `ifid` of AS `ia`.
    pub fn uses_interface(&self, ia: IsdAsn, ifid: u16) -> bool {
        self.interfaces.iter().any(|i| i.ia == ia && i.ifid == ifid)
    }

    /// True when the path enters `ia` through `ingress` and leaves through `egress`
    /// (SCMP InternalConnectivityDown names such a pair).
    pub fn uses_internal(&self, ia: IsdAsn, ingress: u16, egress: u16) -> bool {
        self.as_hops()
            .iter()
            .any(|h| h.ia == ia && h.ingress == ingress && h.egress == egress)
    }

    /// Bytes of SCION common + address + path header and UDP header for a packet on this path.
    /// `host_addr_bytes` is source plus destination host address length (8 for IPv4 to IPv4,
    /// 32 for IPv6 to IPv6). Without a known data-plane shape this assumes the worst case the
    /// interfaces allow: up to three segments, each crossing AS counted once more per segment
    /// boundary.
    pub fn scion_udp_header_len(&self, host_addr_bytes: usize) -> usize {
        let (info, hops) = match self.dataplane {
            Some(s) => (s.info_fields as usize, s.hop_fields as usize),
            None => {
                let ases = self.interfaces.len() / 2 + 1;
                if self.interfaces.is_empty() {
                    (0, 0)
                } else {
                    let segments = (ases - 1).min(3);
                    (segments, ases + segments - 1)
                }
            }
        };
        let path = if info == 0 {
            0
        } else {
            PATH_META_BYTES + INFO_FIELD_BYTES * info + HOP_FIELD_BYTES * hops
        };
        FIXED_HEADER_BYTES + host_addr_bytes + path
    }

    /// Largest UDP payload this path carries without fragmenting (SCION has no fragmentation).
    pub fn max_payload(&self, host_addr_bytes: usize) -> usize {
        (self.mtu as usize).saturating_sub(self.scion_udp_header_len(host_addr_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ia(s: &str) -> IsdAsn {
        s.parse().unwrap()
    }

    fn three_as_path() -> PathInfo {
        let a = ia("18-ffaa:0:1");
        let b = ia("18-ffaa:0:2");
        let c = ia("18-ffaa:0:3");
        let mut p = PathInfo::new(
            PathFingerprint::from_u64(7),
            a,
            c,
            vec![
                PathInterface::new(a, 1),
                PathInterface::new(b, 3),
                PathInterface::new(b, 4),
                PathInterface::new(c, 2),
            ],
            1472,
            1_000,
        );
        p.latency = vec![
            Some(Duration::from_millis(5)),
            Some(Duration::from_millis(1)),
            Some(Duration::from_millis(7)),
        ];
        p.bandwidth_kbps = vec![Some(1_000), Some(50_000), Some(400)];
        p
    }

    #[test]
    fn hop_sequence_and_counts() {
        let p = three_as_path();
        p.validate().unwrap();
        assert_eq!(p.hops(), 2);
        assert_eq!(
            p.hop_sequence(),
            "18-ffaa:0:1#0,1 18-ffaa:0:2#3,4 18-ffaa:0:3#2,0"
        );
        assert_eq!(p.total_latency(), Some(Duration::from_millis(13)));
        assert_eq!(p.bottleneck_bandwidth_kbps(), Some(400));
        assert!(p.uses_interface(ia("18-ffaa:0:2"), 4));
        assert!(!p.uses_interface(ia("18-ffaa:0:2"), 1));
        assert!(p.uses_internal(ia("18-ffaa:0:2"), 3, 4));
        assert!(!p.uses_internal(ia("18-ffaa:0:2"), 4, 3));
    }

    #[test]
    fn unknown_metadata() {
        let mut p = three_as_path();
        p.latency[1] = None;
        p.bandwidth_kbps.clear();
        assert_eq!(p.total_latency(), None);
        assert_eq!(p.bottleneck_bandwidth_kbps(), None);
        p.validate().unwrap();
        p.latency.pop();
        assert!(matches!(
            p.validate(),
            Err(PathInfoError::MetadataLength { got: 2, .. })
        ));
    }

    #[test]
    fn validate_catches_bad_layouts() {
        let mut p = three_as_path();
        p.interfaces.pop();
        assert!(matches!(
            p.validate(),
            Err(PathInfoError::OddInterfaces { count: 3, .. })
        ));
        let mut p = three_as_path();
        p.src = ia("1-1");
        assert!(matches!(
            p.validate(),
            Err(PathInfoError::SrcMismatch { .. })
        ));
        let mut p = three_as_path();
        p.dst = ia("1-1");
        assert!(matches!(
            p.validate(),
            Err(PathInfoError::DstMismatch { .. })
        ));
    }

    #[test]
    fn disjointness() {
        let p = three_as_path();
        let mut q = three_as_path();
        assert_eq!(p.shared_interfaces(&q).len(), 4);
        let a = ia("18-ffaa:0:1");
        let c = ia("18-ffaa:0:3");
        let d = ia("18-ffaa:0:4");
        q.interfaces = vec![
            PathInterface::new(a, 9),
            PathInterface::new(d, 1),
            PathInterface::new(d, 2),
            PathInterface::new(c, 8),
        ];
        assert!(p.is_disjoint(&q));
        q.interfaces[0] = PathInterface::new(a, 1);
        assert_eq!(p.shared_interfaces(&q), vec![PathInterface::new(a, 1)]);
        assert!(!p.is_disjoint(&q));
    }

    #[test]
    fn header_lengths_match_notes() {
        // NOTES-scion.md: IPv4 hosts, one segment of two hops = 80 B; three segments of six
        // hops = 144 B.
        let mut p = three_as_path();
        p.dataplane = Some(DataplaneShape {
            info_fields: 1,
            hop_fields: 2,
        });
        assert_eq!(p.scion_udp_header_len(8), 80);
        p.dataplane = Some(DataplaneShape {
            info_fields: 3,
            hop_fields: 6,
        });
        assert_eq!(p.scion_udp_header_len(8), 144);
        // Estimated from 3 ASes: 2 segments, 4 hop fields.
        p.dataplane = None;
        assert_eq!(p.scion_udp_header_len(8), 36 + 8 + 4 + 16 + 48);
        assert_eq!(p.max_payload(8), 1472 - 112);
        // Inside one AS: empty path.
        let local = PathInfo::new(PathFingerprint::from_u64(1), c(), c(), vec![], 1472, 0);
        assert_eq!(local.scion_udp_header_len(8), 44);
        assert_eq!(local.hop_sequence(), "");
        assert_eq!(local.total_latency(), Some(Duration::ZERO));
    }

    fn c() -> IsdAsn {
        ia("1-ff00:0:110")
    }

    #[test]
    fn fingerprint_display() {
        let f = PathFingerprint::from_u64(0x0102_0304_0506_0708);
        assert_eq!(f.short(), "0102030405060708");
        assert_eq!(f.to_string().len(), 64);
        assert!(f.to_string().starts_with("0102030405060708000000"));
    }
}
