//! Diagnostic: per-exchange offset error against ground truth on one host.
//!
//! Run a `timesync source` (no fake skew) against a NATS server, then
//! `cargo run -p timesync --example exchange_probe -- nats://127.0.0.1:PORT SOURCE [polls] [burst] [poll_ms] [proxy_rtt_ms]`.
//! Both sides read this host's CLOCK_REALTIME, so every exchange's measured offset *is* its
//! error, `(d_out - d_back) / 2`. Prints the distribution per position in a burst.

use std::time::Duration;
use timesync::bench::proxy::{DelayProxy, Profile};
use timesync::clock::realtime_ns;
use timesync::core::wire::{self, SyncReply, SyncRequest, VERSION};

fn q(v: &mut [i64], p: f64) -> i64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let url = a.get(1).cloned().unwrap_or("nats://127.0.0.1:4222".into());
    let src = a.get(2).cloned().unwrap_or("ref".into());
    let polls: usize = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let burst: usize = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let poll_ms: u64 = a.get(5).and_then(|s| s.parse().ok()).unwrap_or(500);
    // Optional: go through the bench's user-space delay proxy with this RTT (ms) and 0.5 ms
    // mean exponential jitter per direction.
    let proxy_rtt: Option<u64> = a.get(6).and_then(|s| s.parse().ok());
    let _proxy;
    let url = match proxy_rtt {
        Some(rtt) => {
            let upstream: std::net::SocketAddr = url
                .trim_start_matches("nats://")
                .parse()
                .map_err(|e| anyhow::anyhow!("proxy needs nats://IP:PORT: {e}"))?;
            let p = DelayProxy::start(
                upstream,
                Profile::symmetric(Duration::from_millis(rtt), Duration::from_micros(500)),
            )
            .await?;
            let u = p.url();
            _proxy = p;
            u
        }
        None => url,
    };
    let client = async_nats::connect(url).await?;
    let subject = wire::sync_subject(&src);
    // (position in burst, offset error ns, delay ns)
    let mut rows: Vec<(usize, i64, i64)> = Vec::new();
    let mut best: Vec<(i64, i64)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(poll_ms));
    for n in 0..polls as u64 {
        tick.tick().await;
        let mut b: Option<(i64, i64)> = None;
        for k in 0..burst {
            let nonce = n * 100 + k as u64;
            let t1 = realtime_ns();
            let body = SyncRequest {
                v: VERSION,
                nonce,
                t1,
            }
            .encode();
            let req = async_nats::Request::new()
                .payload(body.into())
                .timeout(Some(Duration::from_secs(1)));
            let res = client.send_request(subject.clone(), req).await;
            let t4 = realtime_ns();
            let Ok(msg) = res else { continue };
            let r = SyncReply::decode(&msg.payload)?;
            let off = ((r.t2 - t1) + (r.t3 - t4)) / 2;
            let delay = (t4 - t1) - (r.t3 - r.t2);
            rows.push((k, off, delay));
            if b.is_none_or(|x| delay < x.1) {
                b = Some((off, delay));
            }
        }
        if let Some(x) = b {
            best.push(x);
        }
    }
    let report = |name: String, v: Vec<(i64, i64)>| {
        if v.is_empty() {
            return;
        }
        let mut o: Vec<i64> = v.iter().map(|x| x.0).collect();
        let mut ao: Vec<i64> = o.iter().map(|x| x.abs()).collect();
        let mut d: Vec<i64> = v.iter().map(|x| x.1).collect();
        let mean = o.iter().sum::<i64>() as f64 / o.len() as f64;
        let sd =
            (o.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / o.len() as f64).sqrt();
        println!(
            "{name:<10} n={:4} off mean {:7.1}us sd {:6.1} p5 {:7.1} p50 {:7.1} p95 {:7.1} |p99| {:7.1} | delay p5 {:6.1} p50 {:6.1} p95 {:6.1}",
            o.len(), mean / 1e3, sd / 1e3,
            q(&mut o, 0.05) as f64 / 1e3, q(&mut o, 0.5) as f64 / 1e3, q(&mut o, 0.95) as f64 / 1e3,
            q(&mut ao, 0.99) as f64 / 1e3,
            q(&mut d, 0.05) as f64 / 1e3, q(&mut d, 0.5) as f64 / 1e3, q(&mut d, 0.95) as f64 / 1e3,
        );
    };
    for k in 0..burst {
        report(
            format!("pos {k}"),
            rows.iter()
                .filter(|r| r.0 == k)
                .map(|r| (r.1, r.2))
                .collect(),
        );
    }
    if burst > 1 {
        report("min-delay".into(), best);
    }
    let _ = client.flush().await;
    Ok(())
}
