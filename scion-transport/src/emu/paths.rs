//! Path construction for the emulated daemons (pure: `now` is a parameter).
//!
//! Every loop-free AS-level path up to a bound is found by depth-first search, then laid into
//! SCION segments the way beaconing would produce them: an up segment to the first core AS
//! (traversed against construction direction), a core segment between the first and last core
//! AS, and a down segment to the destination. Paths that touch no core AS become one segment.

use std::net::SocketAddr;
use std::time::Duration;

use scion_protobuf::daemon::v1 as grpc;

use super::topo::{LinkParams, Topology, INTERNAL_BANDWIDTH_KBPS};
use crate::address::IsdAsn;
use crate::wire::{self, HopSpec, SegmentSpec};

/// Hop-field expiry: (63 + 1) × 24 h / 256 = 6 h, the usual beacon lifetime.
pub const HOP_EXP_TIME: u8 = 63;

/// How long the paths a daemon hands out live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopLifetime {
    /// SCION's expiry byte: hop fields live (exp_time + 1) × 337.5 s.
    pub exp_time: u8,
    /// Age of a path when handed out: its segments' timestamp lies this far in the past, as
    /// for segments beaconed a while ago (with a small `exp_time`, paths then expire soon).
    pub age: Duration,
}

impl Default for HopLifetime {
    fn default() -> Self {
        HopLifetime {
            exp_time: HOP_EXP_TIME,
            age: Duration::ZERO,
        }
    }
}

impl HopLifetime {
    /// The hop fields for a path handed out at `now_secs`.
    pub fn at(&self, now_secs: u64) -> Hops {
        Hops {
            exp_time: self.exp_time,
            timestamp: now_secs.saturating_sub(self.age.as_secs()),
        }
    }
}

/// Expiry byte and segment timestamp (seconds since the Unix epoch) of one answer's paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hops {
    pub exp_time: u8,
    pub timestamp: u64,
}
/// Longest AS sequence the daemon offers.
pub const MAX_PATH_ASES: usize = 8;
/// Most paths one answer carries.
pub const MAX_PATHS: usize = 32;

/// One AS on a path, in travel order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsHop {
    pub ia: IsdAsn,
    /// Interface the path enters by (0 at the source).
    pub ingress: u16,
    /// Interface the path leaves by (0 at the destination).
    pub egress: u16,
}

/// An AS-level path with the links it crosses.
#[derive(Debug, Clone, PartialEq)]
pub struct AsPath {
    pub hops: Vec<AsHop>,
    /// Index into `Topology::links` of each crossed link (hops.len() - 1 entries).
    pub links: Vec<usize>,
}

/// All loop-free paths from `src` to `dst`, shortest first, at most `MAX_PATHS`.
pub fn enumerate(topo: &Topology, src: IsdAsn, dst: IsdAsn) -> Vec<AsPath> {
    let adj = topo.adjacency();
    let mut out = Vec::new();
    if src == dst || !adj.contains_key(&src) || !adj.contains_key(&dst) {
        return out;
    }
    let mut stack = vec![AsHop {
        ia: src,
        ingress: 0,
        egress: 0,
    }];
    let mut links = Vec::new();
    dfs(&adj, dst, &mut stack, &mut links, &mut out);
    // Shortest first, then by interface ids for a stable order between calls.
    out.sort_by(|a, b| {
        a.hops.len().cmp(&b.hops.len()).then_with(|| {
            let key = |p: &AsPath| {
                p.hops
                    .iter()
                    .map(|h| (h.ingress, h.egress))
                    .collect::<Vec<_>>()
            };
            key(a).cmp(&key(b))
        })
    });
    out.truncate(MAX_PATHS);
    out
}

type Adjacency = std::collections::BTreeMap<IsdAsn, Vec<(u16, usize, super::topo::LinkEnd)>>;

fn dfs(
    adj: &Adjacency,
    dst: IsdAsn,
    stack: &mut Vec<AsHop>,
    links: &mut Vec<usize>,
    out: &mut Vec<AsPath>,
) {
    // Bound the search as well as the result: dense topologies have exponentially many paths.
    if out.len() >= MAX_PATHS * 8 {
        return;
    }
    let Some(here) = stack.last().copied() else {
        return;
    };
    if here.ia == dst {
        out.push(AsPath {
            hops: stack.clone(),
            links: links.clone(),
        });
        return;
    }
    if stack.len() >= MAX_PATH_ASES {
        return;
    }
    for (local_if, link, remote) in adj.get(&here.ia).map(Vec::as_slice).unwrap_or(&[]) {
        if stack.iter().any(|h| h.ia == remote.ia) {
            continue;
        }
        if let Some(last) = stack.last_mut() {
            last.egress = *local_if;
        }
        stack.push(AsHop {
            ia: remote.ia,
            ingress: remote.ifid,
            egress: 0,
        });
        links.push(*link);
        dfs(adj, dst, stack, links, out);
        links.pop();
        stack.pop();
        if let Some(last) = stack.last_mut() {
            last.egress = 0;
        }
    }
}

/// Splits a path into segment index ranges (inclusive, in travel order) and directions.
fn segment_ranges(topo: &Topology, path: &AsPath) -> Vec<(usize, usize, bool)> {
    let n = path.hops.len() - 1;
    let is_core = |i: usize| topo.as_spec(path.hops[i].ia).is_some_and(|a| a.core);
    let first = (0..=n).find(|i| is_core(*i));
    let last = (0..=n).rev().find(|i| is_core(*i));
    match (first, last) {
        (Some(c1), Some(c2)) => {
            let mut out = Vec::new();
            if c1 > 0 {
                out.push((0, c1, false));
            }
            if c2 > c1 {
                out.push((c1, c2, true));
            }
            if n > c2 {
                out.push((c2, n, true));
            }
            out
        }
        _ => vec![(0, n, true)],
    }
}

/// Small deterministic mixing for segment ids (beacons pick them at random).
fn seg_id_for(path: &AsPath, seg: usize, now_secs: u64) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ now_secs ^ (seg as u64);
    for hop in &path.hops {
        for v in [hop.ia.0, hop.ingress as u64, hop.egress as u64] {
            h = (h ^ v).wrapping_mul(0x0100_0000_01b3);
        }
    }
    (h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) as u16
}

/// Encodes a path as the daemon's gRPC answer, with latency/bandwidth metadata from `params`.
pub fn to_grpc(
    topo: &Topology,
    path: &AsPath,
    params: &[LinkParams],
    first_hop: SocketAddr,
    hops_at: Hops,
) -> Result<grpc::Path, wire::BuildPathError> {
    let now_secs = hops_at.timestamp;
    let timestamp = now_secs as u32;
    let mut segments = Vec::new();
    for (index, (start, end, cons_dir)) in segment_ranges(topo, path).into_iter().enumerate() {
        let mut hops: Vec<HopSpec> = (start..=end)
            .map(|i| {
                let hop = path.hops[i];
                // Crossover ASes appear in two segments: as the end of one, start of the next.
                let ingress = if i == start { 0 } else { hop.ingress };
                let egress = if i == end { 0 } else { hop.egress };
                let key = topo.as_spec(hop.ia).map(|a| a.key).unwrap_or([0; 16]);
                let (cons_ingress, cons_egress) = if cons_dir {
                    (ingress, egress)
                } else {
                    (egress, ingress)
                };
                HopSpec {
                    cons_ingress,
                    cons_egress,
                    exp_time: hops_at.exp_time,
                    key,
                }
            })
            .collect();
        if !cons_dir {
            hops.reverse();
        }
        segments.push(SegmentSpec {
            cons_dir,
            seg_id: seg_id_for(path, index, now_secs),
            timestamp,
            hops,
        });
    }
    let data = wire::build_standard_path(&segments)?;

    let mut interfaces = Vec::new();
    let mut latency = Vec::new();
    let mut bandwidth = Vec::new();
    let mut mtu = u16::MAX;
    for (i, hop) in path.hops.iter().enumerate() {
        if let Some(spec) = topo.as_spec(hop.ia) {
            mtu = mtu.min(spec.mtu);
        }
        if i > 0 {
            interfaces.push(grpc::PathInterface {
                isd_as: hop.ia.0,
                id: hop.ingress as u64,
            });
        }
        if i > 0 && i + 1 < path.hops.len() {
            // Inside a transit AS: no internal latency, ample bandwidth.
            latency.push(prost_types::Duration {
                seconds: 0,
                nanos: 0,
            });
            bandwidth.push(INTERNAL_BANDWIDTH_KBPS);
        }
        if i + 1 < path.hops.len() {
            interfaces.push(grpc::PathInterface {
                isd_as: hop.ia.0,
                id: hop.egress as u64,
            });
            let link = params.get(path.links[i]).copied();
            let (lat, bw) = match link {
                Some(p) if p.metadata => (Some(p.latency), p.bandwidth_kbps),
                _ => (None, 0),
            };
            if let Some(p) = link {
                mtu = mtu.min(p.mtu);
            }
            latency.push(match lat {
                Some(d) => prost_types::Duration {
                    seconds: d.as_secs() as i64,
                    nanos: d.subsec_nanos() as i32,
                },
                // sciond marks an unannounced latency with a negative value.
                None => prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                },
            });
            // 0 = not announced (also for "unlimited" links, which announce nothing).
            bandwidth.push(bw);
        }
    }
    let expiry = Duration::from_secs(timestamp as u64)
        + Duration::from_secs_f64((hops_at.exp_time as f64 + 1.0) * 337.5);
    Ok(grpc::Path {
        raw: data.raw().to_vec(),
        interface: Some(grpc::Interface {
            address: Some(grpc::Underlay {
                address: first_hop.to_string(),
            }),
        }),
        interfaces,
        mtu: mtu as u32,
        expiration: Some(prost_types::Timestamp {
            seconds: expiry.as_secs() as i64,
            nanos: 0,
        }),
        latency,
        bandwidth,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emu::topo::Topology;

    const DIAMOND: &str = r#"
        [[as]]
        ia = "1-ff00:0:1"
        [[as]]
        ia = "1-ff00:0:2"
        core = true
        [[as]]
        ia = "1-ff00:0:3"
        core = true
        [[as]]
        ia = "1-ff00:0:4"
        [[link]]
        a = "1-ff00:0:2#1"
        b = "1-ff00:0:1#1"
        latency_ms = 5
        bandwidth_kbps = 1000
        [[link]]
        a = "1-ff00:0:3#1"
        b = "1-ff00:0:1#2"
        latency_ms = 20
        metadata = false
        [[link]]
        a = "1-ff00:0:2#2"
        b = "1-ff00:0:4#1"
        [[link]]
        a = "1-ff00:0:3#2"
        b = "1-ff00:0:4#2"
        [[link]]
        a = "1-ff00:0:2#3"
        b = "1-ff00:0:3#3"
    "#;

    fn ia(n: u64) -> IsdAsn {
        IsdAsn::new(1, 0xff00_0000_0000 | n)
    }

    #[test]
    fn enumerates_loop_free_paths_shortest_first() {
        let topo = Topology::from_toml(DIAMOND).expect("topo");
        let paths = enumerate(&topo, ia(1), ia(4));
        assert_eq!(paths.len(), 4);
        assert_eq!(paths[0].hops.len(), 3);
        assert_eq!(paths[3].hops.len(), 4);
        for p in &paths {
            let mut seen: Vec<_> = p.hops.iter().map(|h| h.ia).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), p.hops.len());
            assert_eq!(p.links.len(), p.hops.len() - 1);
        }
        assert!(enumerate(&topo, ia(1), ia(1)).is_empty());
        assert!(enumerate(&topo, ia(1), ia(9)).is_empty());
    }

    #[test]
    fn hop_lifetime_sets_expiry_and_age() {
        let topo = Topology::from_toml(DIAMOND).expect("topo");
        let params: Vec<_> = topo.links.iter().map(|l| l.params).collect();
        let first_hop: SocketAddr = "127.0.0.1:30042".parse().expect("addr");
        let now = 1_700_000_000;
        let p = &enumerate(&topo, ia(1), ia(4))[0];
        let expiry = |hops: HopLifetime| {
            let g = to_grpc(&topo, p, &params, first_hop, hops.at(now)).expect("grpc");
            let path = wire::path_from_daemon(g, ia(1), ia(4)).expect("convert");
            path.expiry
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after the epoch")
        };
        // The default: 6 h from now.
        assert_eq!(
            expiry(HopLifetime::default()),
            Duration::from_secs(now + 6 * 3600)
        );
        // The shortest lifetime (337.5 s), beaconed 30 s ago (the answer keeps whole seconds).
        let short = HopLifetime {
            exp_time: 0,
            age: Duration::from_secs(30),
        };
        assert_eq!(expiry(short), Duration::from_secs(now - 30 + 337));
    }

    #[test]
    fn grpc_answer_converts_with_metadata() {
        let topo = Topology::from_toml(DIAMOND).expect("topo");
        let params: Vec<_> = topo.links.iter().map(|l| l.params).collect();
        let first_hop: SocketAddr = "127.0.0.1:30042".parse().expect("addr");
        let now = 1_700_000_000;
        for p in enumerate(&topo, ia(1), ia(4)) {
            let g = to_grpc(
                &topo,
                &p,
                &params,
                first_hop,
                HopLifetime::default().at(now),
            )
            .expect("grpc");
            let path = wire::path_from_daemon(g, ia(1), ia(4)).expect("convert");
            assert_eq!(path.interfaces.len(), 2 * (p.hops.len() - 1));
            assert_eq!(path.latency.len(), path.interfaces.len() - 1);
            assert_eq!(path.next_hop, Some(first_hop));
            // Up segment + core/down: path has 2 or 3 segments.
            assert!(path.data.hop_interfaces().len() > p.hops.len());
            if p.links[0] == 0 {
                assert_eq!(path.latency[0], Some(Duration::from_millis(5)));
                assert_eq!(path.bandwidth_kbps[0], Some(1000));
            } else {
                assert_eq!(path.latency[0], None);
                assert_eq!(path.bandwidth_kbps[0], None);
            }
        }
    }
}
