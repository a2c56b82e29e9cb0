//! Match throughput of the subject index (`broker::sublist`).
//!
//! Run: `cargo run --release -p broker --example sublist_bench [iterations]`
//!
//! Subscriptions are handles like the server's (an `Arc`), on subjects `bench.<n>.data`, plus
//! two wildcard subscriptions (`bench.*.data`, `bench.>`) so every match has fanout 3.
//! Figures: cached literal matches (the publish hot path), cache misses (distinct subjects
//! cycling through more than the cache holds), and two threads sharing one index.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use broker::sublist::Sublist;

fn build(subscriptions: usize) -> Sublist<Arc<u64>> {
    let mut s = Sublist::new();
    for n in 0..subscriptions {
        s.insert(&format!("bench.{n}.data"), None, Arc::new(n as u64))
            .expect("valid subject");
    }
    s.insert("bench.*.data", None, Arc::new(u64::MAX))
        .expect("valid subject");
    s.insert("bench.>", Some("workers"), Arc::new(u64::MAX - 1))
        .expect("valid subject");
    s
}

fn subjects(count: usize, stride: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("bench.{}.data", i * stride))
        .collect()
}

/// Matches `iterations` times cycling through `subjects`; returns matches per second.
fn run(s: &Sublist<Arc<u64>>, subjects: &[String], iterations: usize) -> f64 {
    let start = Instant::now();
    let mut fanout = 0usize;
    for i in 0..iterations {
        let r = s.match_subject(&subjects[i % subjects.len()]);
        fanout += r.fanout();
    }
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(fanout, iterations * 3, "every subject has fanout 3");
    black_box(fanout);
    iterations as f64 / elapsed
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    println!("| subscriptions | workload | matches/s |");
    println!("|---|---|---|");
    for subscriptions in [1_000usize, 100_000] {
        let s = build(subscriptions);
        // 100 hot subjects: all cache hits after the first round.
        let hot = subjects(100, subscriptions / 100);
        let rate = run(&s, &hot, iterations);
        println!("| {subscriptions} | cached literal (100 hot subjects) | {rate:.0} |");

        // More distinct subjects than the cache holds (1024): mostly misses + sweeps.
        let cold = subjects(subscriptions.min(50_000), 1);
        let rate = run(&s, &cold, iterations / 10);
        println!(
            "| {subscriptions} | cache-miss ({} distinct subjects) | {rate:.0} |",
            cold.len()
        );

        let uncached = {
            let mut u = Sublist::without_cache();
            for (subject, queue, item) in s.all() {
                u.insert(&subject, queue.as_deref(), item)
                    .expect("valid subject");
            }
            u
        };
        let rate = run(&uncached, &hot, iterations / 10);
        println!("| {subscriptions} | no cache, trie walk (100 hot subjects) | {rate:.0} |");
        let rate = run(&uncached, &cold, iterations / 10);
        println!(
            "| {subscriptions} | no cache, trie walk ({} distinct subjects) | {rate:.0} |",
            cold.len()
        );

        // Two threads sharing the index (the broker shares it between connection tasks).
        let shared = Arc::new(s);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let shared = Arc::clone(&shared);
                let hot = hot.clone();
                std::thread::spawn(move || run(&shared, &hot, iterations))
            })
            .collect();
        let total: f64 = threads
            .into_iter()
            .map(|t| t.join().expect("bench thread"))
            .sum();
        println!("| {subscriptions} | cached literal, 2 threads (sum) | {total:.0} |");
    }
}
