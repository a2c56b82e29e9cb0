//! Deterministic random-input tests for the text parsers: no input panics, and what parses
//! prints back to something that parses to the same value.

use scion_transport::address::{parse_nats_url, IsdAsn, ScionAddr};
use scion_transport::path::{Acl, HopPredicate, PathPreference, Sequence};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn string(&mut self, alphabet: &[&str], max_len: usize) -> String {
        let n = self.below(max_len + 1);
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
    /// A valid seed with 0-3 random edits (insert, delete or replace a piece).
    fn mutate(&mut self, seeds: &[&str], alphabet: &[&str]) -> String {
        let mut s: Vec<char> = seeds[self.below(seeds.len())].chars().collect();
        for _ in 0..self.below(4) {
            let at = self.below(s.len() + 1);
            let piece: Vec<char> = alphabet[self.below(alphabet.len())].chars().collect();
            match self.below(3) {
                0 => {
                    s.splice(at..at, piece);
                }
                1 if at < s.len() => {
                    s.remove(at);
                }
                _ if at < s.len() => {
                    s.splice(at..at + 1, piece);
                }
                _ => {}
            }
        }
        s.into_iter().collect()
    }
}

const ADDR_SEEDS: &[&str] = &[
    "18-ffaa:1:10bf,127.0.0.1:4248",
    "[18-ffaa:1:10bf,127.0.0.1]:4248",
    "1-ff00:0:110,[::1]:80",
    "[1-64512,::1]:1",
    "nats://18-ffaa:1:10a0,127.0.0.1:5248",
    "nats-route://u:p%40@[18-ffaa:1:10bf,127.0.0.1]:4248/",
];

const ADDR_ALPHABET: &[&str] = &[
    "0",
    "1",
    "9",
    "f",
    "ff00",
    ":",
    ",",
    "-",
    "[",
    "]",
    ".",
    "127.0.0.1",
    "::1",
    "@",
    "/",
    "nats://",
    "%",
    "%41",
    "a",
    " ",
    "65535",
    "65536",
    "ffff",
    "18-ffaa:1:10bf",
];
const SEQ_ALPHABET: &[&str] = &[
    "0",
    "1",
    "2",
    "-",
    "#",
    ",",
    ":",
    "ff00:0:110",
    " ",
    "?",
    "*",
    "+",
    "|",
    "(",
    ")",
    "x",
    "1-ff00:0:110#1,2",
    "0*",
    "65536",
];

#[test]
fn address_parsers_never_panic_and_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for _ in 0..50_000 {
        let s = if rng.below(2) == 0 {
            rng.string(ADDR_ALPHABET, 8)
        } else {
            rng.mutate(ADDR_SEEDS, ADDR_ALPHABET)
        };
        if let Ok(ia) = s.parse::<IsdAsn>() {
            assert_eq!(ia.to_string().parse::<IsdAsn>().unwrap(), ia, "{s:?}");
        }
        if let Ok(a) = s.parse::<ScionAddr>() {
            parsed += 1;
            assert_eq!(a.to_string().parse::<ScionAddr>().unwrap(), a, "{s:?}");
        }
        if let Ok(u) = parse_nats_url(&s) {
            assert!(!u.scheme.is_empty());
        }
    }
    assert!(parsed > 0, "the generator never produced a valid address");
}

#[test]
fn every_isd_asn_round_trips() {
    let mut rng = Rng(42);
    for _ in 0..100_000 {
        let ia = IsdAsn(rng.next());
        let text = ia.to_string();
        assert_eq!(text.parse::<IsdAsn>().unwrap(), ia, "{text}");
    }
}

#[test]
fn policy_parsers_never_panic() {
    let mut rng = Rng(7);
    let mut ok = 0;
    for _ in 0..50_000 {
        let s = rng.string(SEQ_ALPHABET, 8);
        if s.parse::<Sequence>().is_ok() {
            ok += 1;
        }
        if let Ok(h) = s.parse::<HopPredicate>() {
            assert_eq!(h.to_string().parse::<HopPredicate>().unwrap(), h, "{s:?}");
        }
        let _ = Acl::from_entries(&[format!("+ {s}"), "-".to_string()]);
        let _ = s.parse::<PathPreference>();
    }
    assert!(ok > 100, "too few valid sequences generated: {ok}");
}
