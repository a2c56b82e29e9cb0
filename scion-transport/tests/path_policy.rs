//! ACL and hop-sequence filters in scionproto's path-policy syntax; cases modelled on
//! scionproto/scion private/path/pathpol acl_test.go and sequence_test.go.

use scion_transport::address::IsdAsn;
use scion_transport::path::{
    Acl, PathFingerprint, PathInfo, PathInterface, PathPolicy, PolicyReject, Sequence,
};

fn ia(s: &str) -> IsdAsn {
    s.parse().unwrap()
}

/// Path from AS hops written like `pathpol.GetSequence` output: `ia#in,out` per AS.
fn path(seq: &str) -> PathInfo {
    let hops: Vec<(IsdAsn, u16, u16)> = seq
        .split_whitespace()
        .map(|h| {
            let (a, ifs) = h.split_once('#').unwrap();
            let (i, o) = ifs.split_once(',').unwrap();
            (ia(a), i.parse().unwrap(), o.parse().unwrap())
        })
        .collect();
    let mut ifs = Vec::new();
    for (n, (a, i, o)) in hops.iter().enumerate() {
        if n > 0 {
            ifs.push(PathInterface::new(*a, *i));
        }
        if n + 1 < hops.len() {
            ifs.push(PathInterface::new(*a, *o));
        }
    }
    let p = PathInfo::new(
        PathFingerprint::from_u64(1),
        hops[0].0,
        hops[hops.len() - 1].0,
        ifs,
        1472,
        0,
    );
    assert_eq!(p.hop_sequence(), seq, "helper round trip");
    p
}

const P_133_131: &str = "1-ff00:0:133#0,1019 1-ff00:0:132#1910,1916 1-ff00:0:131#1619,0";
const P_211_220_A: &str = "2-ff00:0:211#0,5 2-ff00:0:210#4,3 2-ff00:0:220#6,0";
const P_211_220_B: &str = "2-ff00:0:211#0,7 2-ff00:0:221#1,2 2-ff00:0:220#9,0";
const P_211_220_C: &str = "2-ff00:0:211#0,8 2-ff00:0:212#1,2 2-ff00:0:220#10,0";
const P_LONG: &str = "1-ff00:0:122#0,1815 1-ff00:0:121#1518,1530 1-ff00:0:120#3015,3122 \
                      2-ff00:0:220#2231,2224 2-ff00:0:221#2422,0";

fn matches(seq: &str, p: &str) -> bool {
    let s: Sequence = seq.parse().unwrap_or_else(|e| panic!("{seq}: {e}"));
    s.matches(&path(p))
}

#[test]
fn sequence_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("", P_133_131, true),
        ("   ", P_133_131, true),
        ("0 0 0", P_133_131, true),
        ("0 0", P_133_131, false),
        ("0*", P_133_131, true),
        ("0+", P_133_131, true),
        ("0 0 0+", P_133_131, true),
        ("0 0 0 0+", P_133_131, false),
        ("0 0 0 0*", P_133_131, true),
        ("0 0 0 0?", P_133_131, true),
        ("0?", P_133_131, false),
        ("0 0 0 ?", P_133_131, true),
        ("(0 0)?", P_133_131, false),
        ("(0 0)? 0", P_133_131, true),
        ("0 (0 0)?", P_133_131, true),
        ("0-0#0 0-0#0 0-0#0", P_133_131, true),
        ("1 1 1", P_133_131, true),
        ("1 2 1", P_133_131, false),
        (
            "1-ff00:0:133#1019 1-ff00:0:132#1910 1-ff00:0:131#1619",
            P_133_131,
            true,
        ),
        ("0 1-ff00:0:132#1910,1916 0", P_133_131, true),
        ("0 1-ff00:0:132#0,1916 0", P_133_131, true),
        ("0 1-ff00:0:132#1910,0 0", P_133_131, true),
        ("0 1-ff00:0:132#1916,0 0", P_133_131, false),
        ("0 1-ff00:0:132#0,1910 0", P_133_131, false),
        ("0 1-ff00:0:132#1916 0", P_133_131, true),
        ("0 1-ff00:0:132#1917 0", P_133_131, false),
        ("1-ff00:0:133#0 1-0#0 1-ff00:0:131#0", P_133_131, true),
        ("1-ff00:0:133#0,1019 0 0", P_133_131, true),
        ("1-ff00:0:133#1,1019 0 0", P_133_131, false),
        ("0 2-ff00:0:221 0", P_211_220_B, true),
        ("0 2-ff00:0:221 0", P_211_220_A, false),
        ("0 (2-ff00:0:221 | 2-ff00:0:210) 0", P_211_220_A, true),
        ("0 (2-ff00:0:221 | 2-ff00:0:210) 0", P_211_220_B, true),
        ("0 (2-ff00:0:221 | 2-ff00:0:210) 0", P_211_220_C, false),
        ("0 2-ff00:0:221|64-12345 0", P_211_220_B, true),
        ("0 2-ff00:0:221|64-12345 0", P_211_220_A, false),
        ("1+ 2+", P_LONG, true),
        ("1* 2 2", P_LONG, true),
        ("1 1 1 (2 2)", P_LONG, true),
        ("1 1 1 2 2 2*", P_LONG, true),
        ("1+ 2-ff00:0:220#2231,2224 0", P_LONG, true),
        ("1+ 2-ff00:0:220#2224,2231 0", P_LONG, false),
        (
            "1-ff00:0:122#1815 1-ff00:0:121#1518,1530 1-ff00:0:120#3015,3122 \
             2-ff00:0:220#2231,2224 2-ff00:0:221#2422",
            P_LONG,
            true,
        ),
        ("0* 1-ff00:0:120 0*", P_LONG, true),
        ("0* 1-ff00:0:119 0*", P_LONG, false),
        ("(1 | 2)+", P_LONG, true),
        ("(1 1)+ 0", P_LONG, false),
        ("(1 1)* 1 2 2", P_LONG, true),
    ];
    for (seq, p, want) in cases {
        assert_eq!(matches(seq, p), *want, "sequence {seq:?} on {p}");
    }
}

#[test]
fn sequence_on_a_path_inside_one_as() {
    let local = PathInfo::new(
        PathFingerprint::from_u64(9),
        ia("2-ff00:0:212"),
        ia("2-ff00:0:212"),
        vec![],
        1472,
        0,
    );
    let m = |s: &str| s.parse::<Sequence>().unwrap().matches(&local);
    assert!(m("0*"));
    assert!(m("0* 0*"));
    assert!(m("0* 0?"));
    assert!(m("1-ff00:0:110#1,2*"));
    assert!(!m("0+"));
    assert!(!m("0-0#0"));
}

#[test]
fn sequence_errors_are_explicit() {
    for bad in [
        "0-0-0#0",
        "0#0#0",
        "1#0",
        "0 (0",
        "0 0)",
        "0 | | 0",
        "0 ! 0",
        "0 [0]",
        "1-ff00:0:110#x",
        "0 ()",
        "* 0",
    ] {
        let e = bad.parse::<Sequence>().unwrap_err();
        assert!(e.to_string().contains(bad), "error names the input: {e}");
    }
}

#[test]
fn acl_table() {
    // acl_test.go style: deny one AS, allow the rest.
    let p = path(P_133_131);
    let cases: &[(&[&str], bool)] = &[
        (&["+"], true),
        (&["-"], false),
        (&["- 1-ff00:0:132", "+"], false),
        (&["- 1-ff00:0:134", "+"], true),
        (&["+ 1-ff00:0:132", "-"], false),
        (&["+ 1", "-"], true),
        (&["- 2", "+ 0"], true),
        // Two interfaces: first for ingress, second for egress.
        (&["- 1-ff00:0:132#1910,0", "+"], false),
        (&["- 1-ff00:0:132#0,1916", "+"], false),
        // 0 is a wildcard on its side: any egress (resp. ingress) of 132 matches.
        (&["- 1-ff00:0:132#1916,0", "+"], false),
        (&["- 1-ff00:0:132#0,1910", "+"], false),
        (&["- 1-ff00:0:132#1916,1910", "+"], true),
        (&["- 1-ff00:0:132#1910,1916", "+"], false),
        // One interface: either direction.
        (&["- 1-ff00:0:132#1916", "+"], false),
        (&["- 1-ff00:0:133#1019", "+"], false),
        (&["- 1-ff00:0:133#1018", "+"], true),
        // First match wins.
        (&["+ 1-ff00:0:132#1910", "- 1-ff00:0:132", "+"], false),
        (&["+ 1-ff00:0:132", "- 1-ff00:0:132#1910", "+"], true),
    ];
    for (entries, want) in cases {
        let acl = Acl::from_entries(entries).unwrap_or_else(|e| panic!("{entries:?}: {e}"));
        assert_eq!(acl.allows(&p), *want, "{entries:?}");
    }
}

#[test]
fn acl_reports_the_denied_interface() {
    let acl = Acl::from_entries(&["- 1-ff00:0:132#1916", "+"]).unwrap();
    let policy = PathPolicy::new(Some(acl), None);
    assert_eq!(
        policy.check(&path(P_133_131)),
        Err(PolicyReject::AclDenied(PathInterface::new(
            ia("1-ff00:0:132"),
            1916
        )))
    );
    let e = Acl::from_entries(&["+ 1-ff00:0:110"]).unwrap_err();
    assert!(e.to_string().contains("default"), "{e}");
}

#[test]
fn policy_filter_combines_acl_and_sequence() {
    let policy = PathPolicy::new(
        Some(Acl::from_entries(&["- 2-ff00:0:212", "+"]).unwrap()),
        Some("0 0 0".parse().unwrap()),
    );
    let paths = vec![
        path(P_211_220_A),
        path(P_211_220_B),
        path(P_211_220_C),
        path(P_LONG),
    ];
    let kept: Vec<String> = policy
        .filter(paths)
        .iter()
        .map(|p| p.hop_sequence())
        .collect();
    assert_eq!(kept, vec![P_211_220_A.to_string(), P_211_220_B.to_string()]);
    assert_eq!(
        policy.check(&path(P_LONG)),
        Err(PolicyReject::SequenceMismatch)
    );
}
