//! Stable-Rust smoke run of the protocol-parser fuzz target: the seed corpus
//! (`fuzz/corpus/proto_parse/`) plus bounded random mutations of it, with a
//! fixed seed, through the same body `cargo fuzz run proto_parse` uses.

mod harness;

use harness::proto_fuzz::{check, config, run};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn corpus() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/proto_parse");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    assert!(seeds.len() >= 10, "seed corpus too small: {}", seeds.len());
    seeds
}

/// Tokens a mutation may splice in: protocol words and separators.
const DICT: &[&[u8]] = &[
    b"PUB ",
    b"HPUB ",
    b"SUB ",
    b"UNSUB ",
    b"PING",
    b"PONG",
    b"CONNECT ",
    b"INFO ",
    b"+OK",
    b"-ERR ",
    b"RS+ ",
    b"RS- ",
    b"LS+ ",
    b"RMSG ",
    b"HMSG ",
    b"LMSG ",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"0",
    b"9",
    b"12",
    b"999999999",
    b"1000000000",
    b"*",
    b">",
    b".",
    b"{}",
];

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    let rounds = rng.random_range(1..=8);
    for _ in 0..rounds {
        let pos = if v.is_empty() {
            0
        } else {
            rng.random_range(0..=v.len())
        };
        match rng.random_range(0..6) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] = rng.random();
            }
            1 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                let n = rng.random_range(1..=8).min(v.len() - i);
                v.drain(i..i + n);
            }
            2 => {
                let tok = DICT[rng.random_range(0..DICT.len())];
                v.splice(pos..pos, tok.iter().copied());
            }
            3 if !v.is_empty() => {
                // Duplicate a slice (ops repeated, lengths off).
                let i = rng.random_range(0..v.len());
                let n = rng.random_range(1..=32).min(v.len() - i);
                let piece: Vec<u8> = v[i..i + n].to_vec();
                v.splice(pos..pos, piece);
            }
            4 if !v.is_empty() => {
                let cut = rng.random_range(0..v.len());
                v.truncate(cut.max(1));
            }
            _ => {
                if !v.is_empty() {
                    v[0] = rng.random();
                }
            }
        }
    }
    v.truncate(4096);
    v
}

#[test]
fn seed_corpus_parses_without_panics() {
    for seed in corpus() {
        check(&seed);
        // Every chunk size and both kinds, not just the one the selector picks.
        if let Some((_, input)) = seed.split_first() {
            for sel in 0u8..64 {
                let (kind, limits, chunk) = config(sel);
                let whole = run(input, usize::MAX, kind, &limits);
                let split = run(input, chunk, kind, &limits);
                assert!(whole.ops.starts_with(&split.ops));
            }
        }
    }
}

#[test]
fn seed_corpus_has_valid_scripts() {
    // The corpus is useful only if it reaches deep states: most seeds must
    // parse to at least one operation with their own selector.
    let seeds = corpus();
    let productive = seeds
        .iter()
        .filter(|s| {
            s.split_first().is_some_and(|(&sel, input)| {
                let (kind, limits, _) = config(sel);
                !run(input, usize::MAX, kind, &limits).ops.is_empty()
            })
        })
        .count();
    assert!(
        productive * 2 > seeds.len(),
        "{productive} of {}",
        seeds.len()
    );
}

#[test]
fn random_mutations_never_panic() {
    let seeds = corpus();
    // Fixed by default so the test command is reproducible; override with
    // PROTO_FUZZ_SEED / PROTO_FUZZ_ITERS for longer exploratory runs.
    let seed = std::env::var("PROTO_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6e61_7473u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let iterations = std::env::var("PROTO_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000usize);
    for _ in 0..iterations {
        let seed = &seeds[rng.random_range(0..seeds.len())];
        let input = mutate(&mut rng, seed);
        check(&input);
    }
}
