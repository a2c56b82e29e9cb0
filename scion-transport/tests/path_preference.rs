//! Preference ordering on synthetic metadata, including unknown values, following Go pan's
//! sorters (netsec-ethz/scion-apps pkg/pan/policy.go, path_metadata.go).

use std::time::Duration;

use scion_transport::address::IsdAsn;
use scion_transport::path::{
    PathFingerprint, PathInfo, PathInterface, PathMetrics, PathPreference, PreferenceKey,
};

const MS: Duration = Duration::from_millis(1);

fn ia(s: &str) -> IsdAsn {
    s.parse().unwrap()
}

/// A path from `1-ff00:0:1` to `1-ff00:0:9` through `via` (one transit AS each, interface ids
/// chosen so stretches are distinct per transit AS), with per-stretch metadata (3 stretches).
fn p(id: u64, via: &str, lat: [Option<u64>; 3], bw: [Option<u64>; 3]) -> PathInfo {
    let a = ia("1-ff00:0:1");
    let z = ia("1-ff00:0:9");
    let v = ia(via);
    let k = v.asn() as u16;
    let mut info = PathInfo::new(
        PathFingerprint::from_u64(id),
        a,
        z,
        vec![
            PathInterface::new(a, k),
            PathInterface::new(v, 1),
            PathInterface::new(v, 2),
            PathInterface::new(z, k),
        ],
        1472,
        0,
    );
    info.latency = lat.iter().map(|l| l.map(|x| MS * x as u32)).collect();
    info.bandwidth_kbps = bw.to_vec();
    info
}

fn ids(paths: &[PathInfo]) -> Vec<u64> {
    paths
        .iter()
        .map(|p| u64::from_be_bytes(p.fingerprint.0[..8].try_into().unwrap()))
        .collect()
}

fn sorted(pref: &str, mut paths: Vec<PathInfo>) -> Vec<u64> {
    let pref: PathPreference = pref.parse().unwrap();
    pref.sort_paths(&mut paths);
    ids(&paths)
}

const K: Option<u64> = None;

#[test]
fn latency_is_sum_of_links() {
    let paths = vec![
        p(1, "1-ff00:0:11", [Some(10), Some(10), Some(10)], [K; 3]),
        p(2, "1-ff00:0:12", [Some(1), Some(1), Some(50)], [K; 3]),
        p(3, "1-ff00:0:13", [Some(5), Some(5), Some(5)], [K; 3]),
    ];
    // Sums: 30, 52, 15.
    assert_eq!(sorted("latency", paths), vec![3, 1, 2]);
}

#[test]
fn bandwidth_is_bottleneck() {
    let paths = vec![
        p(
            1,
            "1-ff00:0:11",
            [K; 3],
            [Some(100), Some(10_000), Some(10_000)],
        ),
        p(2, "1-ff00:0:12", [K; 3], [Some(500), Some(500), Some(500)]),
        p(
            3,
            "1-ff00:0:13",
            [K; 3],
            [Some(50_000), Some(200), Some(50_000)],
        ),
    ];
    // Bottlenecks: 100, 500, 200.
    assert_eq!(sorted("bandwidth", paths), vec![2, 3, 1]);
}

#[test]
fn unknown_latency_makes_paths_incomparable() {
    // Path 1's known part (2 ms) is below path 2's total (15 ms), but its unknown stretch
    // could be anything: neither is known to be faster (pan LowerLatency), daemon order stays.
    let paths = vec![
        p(1, "1-ff00:0:11", [Some(1), None, Some(1)], [K; 3]),
        p(2, "1-ff00:0:12", [Some(5), Some(5), Some(5)], [K; 3]),
    ];
    assert_eq!(sorted("latency", paths), vec![1, 2]);
    // Known part alone already slower than the fully known path: path 2 is better for sure.
    let paths = vec![
        p(1, "1-ff00:0:11", [Some(50), None, Some(50)], [K; 3]),
        p(2, "1-ff00:0:12", [Some(1), Some(1), Some(1)], [K; 3]),
    ];
    assert_eq!(sorted("latency", paths), vec![2, 1]);
    // Same for bandwidth: an unknown stretch hides a possible bottleneck.
    let paths = vec![
        p(1, "1-ff00:0:11", [K; 3], [Some(9_000), None, Some(9_000)]),
        p(2, "1-ff00:0:12", [K; 3], [Some(500), Some(500), Some(500)]),
    ];
    assert_eq!(sorted("bandwidth", paths), vec![1, 2]);
    let paths = vec![
        p(1, "1-ff00:0:11", [K; 3], [Some(100), None, Some(100)]),
        p(2, "1-ff00:0:12", [K; 3], [Some(500), Some(500), Some(500)]),
    ];
    assert_eq!(sorted("bandwidth", paths), vec![2, 1]);
    // Completely unknown paths never move.
    let paths = vec![
        p(1, "1-ff00:0:11", [K; 3], [K; 3]),
        p(2, "1-ff00:0:12", [Some(1), Some(1), Some(1)], [K; 3]),
        p(3, "1-ff00:0:13", [K; 3], [K; 3]),
    ];
    assert_eq!(sorted("latency", paths), vec![1, 2, 3]);
}

#[test]
fn shared_unknown_stretch_stays_comparable() {
    // Both paths go through the same AS and interfaces, one stretch unknown in both:
    // comparable on the known part (unknownA subset of unknownB and vice versa).
    let mut a = p(1, "1-ff00:0:11", [Some(9), None, Some(9)], [K; 3]);
    let b = p(2, "1-ff00:0:11", [Some(1), None, Some(1)], [K; 3]);
    a.fingerprint = PathFingerprint::from_u64(1);
    assert_eq!(sorted("latency", vec![a.clone(), b.clone()]), vec![2, 1]);
    // If the faster path has an extra unknown stretch, it is not known to be faster.
    let c = p(3, "1-ff00:0:11", [None, None, Some(1)], [K; 3]);
    assert_eq!(sorted("latency", vec![a.clone(), c.clone()]), vec![1, 3]);
    // But the slower one with more unknowns compares as not-better: a stays ahead of it.
    let d = p(4, "1-ff00:0:11", [None, None, Some(50)], [K; 3]);
    assert_eq!(sorted("latency", vec![d, a]), vec![1, 4]);
}

#[test]
fn incomparable_element_is_skipped_over() {
    // pan's insertion sort lets a path jump over an incomparable one: 3 (fast) moves ahead
    // of 1 (slow) even though 2 (unknown) sits between them; 2 keeps its slot.
    let paths = vec![
        p(1, "1-ff00:0:11", [Some(30), Some(30), Some(30)], [K; 3]),
        p(2, "1-ff00:0:12", [K; 3], [K; 3]),
        p(3, "1-ff00:0:13", [Some(1), Some(1), Some(1)], [K; 3]),
    ];
    assert_eq!(sorted("latency", paths), vec![3, 2, 1]);
}

fn hops_path(id: u64, transit: &[&str], mtu: u16) -> PathInfo {
    let a = ia("1-ff00:0:1");
    let z = ia("1-ff00:0:9");
    let mut ifs = vec![PathInterface::new(a, id as u16)];
    for t in transit {
        ifs.push(PathInterface::new(ia(t), 1));
        ifs.push(PathInterface::new(ia(t), 2));
    }
    ifs.push(PathInterface::new(z, id as u16));
    PathInfo::new(PathFingerprint::from_u64(id), a, z, ifs, mtu, 0)
}

#[test]
fn hops_and_mtu_are_plain_stable_sorts() {
    let paths = vec![
        hops_path(1, &["1-ff00:0:11", "1-ff00:0:12"], 1472),
        hops_path(2, &["1-ff00:0:13"], 1400),
        hops_path(3, &["1-ff00:0:14"], 1472),
        hops_path(4, &[], 1280),
    ];
    assert_eq!(sorted("hops", paths.clone()), vec![4, 2, 3, 1]);
    assert_eq!(sorted("mtu", paths.clone()), vec![1, 3, 2, 4]);
    // First key primary: hops, ties (2 and 3) broken by MTU.
    assert_eq!(sorted("hops,mtu", paths.clone()), vec![4, 3, 2, 1]);
    assert_eq!(sorted("mtu,hops", paths.clone()), vec![3, 1, 2, 4]);
    assert_eq!(sorted("", paths), vec![1, 2, 3, 4]);
}

#[test]
fn bandwidth_then_latency_differs_from_latency_then_bandwidth() {
    let paths = vec![
        // fast, thin
        p(
            1,
            "1-ff00:0:11",
            [Some(1), Some(1), Some(1)],
            [Some(1_000), Some(1_000), Some(1_000)],
        ),
        // slow, fat
        p(
            2,
            "1-ff00:0:12",
            [Some(20), Some(20), Some(20)],
            [Some(90_000), Some(90_000), Some(90_000)],
        ),
        // middle, fat
        p(
            3,
            "1-ff00:0:13",
            [Some(10), Some(10), Some(10)],
            [Some(90_000), Some(90_000), Some(90_000)],
        ),
    ];
    assert_eq!(sorted("latency,bandwidth", paths.clone()), vec![1, 3, 2]);
    assert_eq!(sorted("bandwidth,latency", paths.clone()), vec![3, 2, 1]);
    assert_eq!(sorted("bandwidth", paths), vec![2, 3, 1]);
}

#[test]
fn measured_rtt_replaces_missing_metadata() {
    let paths = [
        p(1, "1-ff00:0:11", [K; 3], [K; 3]),
        p(2, "1-ff00:0:12", [K; 3], [K; 3]),
        p(3, "1-ff00:0:13", [K; 3], [K; 3]),
    ];
    let rtt = [Some(MS * 40), Some(MS * 10), Some(MS * 25)];
    let pref: PathPreference = "latency".parse().unwrap();
    let mut idx: Vec<usize> = vec![0, 1, 2];
    pref.sort_by_metrics(&mut idx, |&i| PathMetrics {
        info: &paths[i],
        measured_rtt: rtt[i],
    });
    assert_eq!(idx, vec![1, 2, 0]);
    // Without measurements nothing is known: daemon order.
    let mut idx: Vec<usize> = vec![0, 1, 2];
    pref.sort_by_metrics(&mut idx, |&i| PathMetrics::metadata_only(&paths[i]));
    assert_eq!(idx, vec![0, 1, 2]);
}

#[test]
fn from_keys_and_errors() {
    let p = PathPreference::from_keys(&[PreferenceKey::Bandwidth, PreferenceKey::Latency]).unwrap();
    assert_eq!(p.to_string(), "bandwidth,latency");
    assert!(PathPreference::from_keys(&[PreferenceKey::Hops, PreferenceKey::Hops]).is_err());
    for bad in [
        "latency,",
        "fast",
        "latency latency",
        "latency,hops,latency",
    ] {
        let e = bad.parse::<PathPreference>().unwrap_err();
        assert!(e.to_string().contains(bad), "error names the input: {e}");
    }
}
