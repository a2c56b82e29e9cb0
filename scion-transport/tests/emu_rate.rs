//! Emulator forwarding-rate probe for profiling (ignored by default; it prints figures and
//! asserts only that packets got through). Run in release:
//!
//! `RATE_MODE=gso RATE_PAYLOAD=1200 cargo test --release -p scion-transport --test emu_rate -- --ignored --nocapture`
//!
//! RATE_MODE `single` sends one packet per system call (like the bench's forwarding line),
//! `gso` sends 64 KiB GSO batches; the receiver reads with GRO either way. RATE_SECS (default 3)
//! is the window; RATE_TOPO `flat` (default) or `shaped` (1 ms link latency on the path used).
//! RATE_INFLIGHT (default 4096) bounds packets sent but not yet received, so an overloaded
//! first router does not burn the CPU the others need; 0 sends open loop like the bench.

use std::io::IoSliceMut;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::daemon::DaemonClient;
use scion_transport::emu::{EmuOptions, Emulator, Topology};
use scion_transport::wire;
use tokio::io::Interest;
use tokio::net::UdpSocket;

fn topo(shaped: bool) -> String {
    let lat = if shaped { "latency_ms = 1" } else { "" };
    format!(
        r#"
[[as]]
ia = "1-ff00:0:110"
core = true
[[as]]
ia = "1-ff00:0:111"
[[as]]
ia = "1-ff00:0:112"
[[link]]
a = "1-ff00:0:110#1"
b = "1-ff00:0:111#1"
[[link]]
a = "1-ff00:0:110#2"
b = "1-ff00:0:112#1"
[[link]]
a = "1-ff00:0:111#2"
b = "1-ff00:0:112#2"
{lat}
"#
    )
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ia(s: &str) -> IsdAsn {
    s.parse().expect("ia")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand in release"]
async fn forwarding_rate_probe() {
    let mode: String = env("RATE_MODE", "single".to_string());
    let payload: usize = env("RATE_PAYLOAD", 100);
    let window = Duration::from_secs_f64(env("RATE_SECS", 3.0));
    let shaped = env("RATE_TOPO", "flat".to_string()) == "shaped";
    let inflight: u64 = env("RATE_INFLIGHT", 4096);
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let emu = Emulator::start(
        Topology::from_toml(&topo(shaped)).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let (src, dst) = (ia("1-ff00:0:111"), ia("1-ff00:0:112"));
    let daemon = DaemonClient::connect(&emu.daemon_addr(src).expect("d").to_string())
        .await
        .expect("daemon");
    let paths = daemon.paths(src, dst, false).await.expect("paths");
    let path = paths
        .iter()
        .find(|p| p.interfaces.len() == 2)
        .expect("direct path");
    let a = UdpSocket::bind("127.0.0.1:0").await.expect("a");
    let a_state = UdpSocketState::new((&a).into()).expect("a state");
    let mut b = None;
    for port in 31900..32000u16 {
        if let Ok(s) = UdpSocket::bind(("127.0.0.1", port)).await {
            b = Some(s);
            break;
        }
    }
    let b = Arc::new(b.expect("b in range"));
    // Best effort: the counter must not be the bottleneck.
    let _ = socket2::SockRef::from(&*b).set_recv_buffer_size(8 << 20);
    let b_state = Arc::new(UdpSocketState::new((&*b).into()).expect("b state"));
    let addr = |ia, port| ScionAddr {
        ia,
        ip: "127.0.0.1".parse().expect("ip"),
        port,
    };
    let pkt = wire::encode_udp(
        &addr(src, a.local_addr().expect("a").port()),
        &addr(dst, b.local_addr().expect("b").port()),
        &path.data,
        Bytes::from(vec![0u8; payload]),
    )
    .expect("enc");
    let next = path.next_hop.expect("hop");
    let segs = (65000 / pkt.len()).clamp(1, 64);
    let batch: Vec<u8> = pkt.iter().copied().cycle().take(pkt.len() * segs).collect();
    let counter = tokio::spawn({
        let (b, b_state) = (b.clone(), b_state.clone());
        let (received, progress) = (received.clone(), progress.clone());
        async move {
            let mut storage = vec![0u8; 16 * 65536];
            let mut meta = vec![RecvMeta::default(); 16];
            let mut n = 0u64;
            let end = tokio::time::Instant::now() + window + Duration::from_millis(100);
            loop {
                let mut slices: Vec<IoSliceMut<'_>> =
                    storage.chunks_mut(65536).map(IoSliceMut::new).collect();
                let got = tokio::time::timeout_at(
                    end,
                    b.async_io(Interest::READABLE, || {
                        b_state.recv((&*b).into(), &mut slices, &mut meta)
                    }),
                )
                .await;
                let Ok(Ok(k)) = got else { break };
                for m in &meta[..k] {
                    n += m.len.div_ceil(m.stride.max(1)) as u64;
                }
                received.store(n, Ordering::Relaxed);
                progress.notify_one();
            }
            n
        }
    });
    let start = Instant::now();
    let mut sent = 0u64;
    let mut lost_waits = 0u32;
    let mut forgiven = 0u64;
    while start.elapsed() < window {
        let outstanding = sent.saturating_sub(forgiven + received.load(Ordering::Relaxed));
        if inflight > 0 && outstanding > inflight {
            // Lost packets never come back: after a quiet 20 ms, forget what is in flight.
            if tokio::time::timeout(Duration::from_millis(20), progress.notified())
                .await
                .is_err()
            {
                forgiven = sent.saturating_sub(received.load(Ordering::Relaxed));
                lost_waits += 1;
            }
            continue;
        }
        if mode == "gso" {
            let t = Transmit {
                destination: next,
                ecn: None,
                contents: &batch,
                segment_size: Some(pkt.len()),
                src_ip: None,
            };
            if a_state.try_send((&a).into(), &t).is_ok() {
                sent += segs as u64;
            }
        } else {
            for _ in 0..64 {
                if a.send_to(&pkt, next).await.is_ok() {
                    sent += 1;
                }
            }
        }
        tokio::task::yield_now().await;
    }
    let received = counter.await.expect("counter");
    println!("rate_probe: sender waited out losses {lost_waits} times");
    let stats = emu.stats();
    println!(
        "rate_probe mode={mode} payload={payload} shaped={shaped}: sent {sent} received {received} \
         -> {:.0} pkts/s, {:.0} Mbit/s of SCION packets ({} B); emu forwarded {} delivered {} dropped {}",
        received as f64 / window.as_secs_f64(),
        received as f64 * pkt.len() as f64 * 8.0 / window.as_secs_f64() / 1e6,
        pkt.len(),
        stats.forwarded,
        stats.delivered,
        stats.dropped
    );
    assert!(received > 0, "nothing got through");
}

/// CPU cost of `forward::process` + `finish_egress` per packet on a 1200-byte payload, with the
/// raw key (AES key schedule and CMAC subkey per MAC, the reference path) and with the
/// router's cached [`HopKey`]. No allocation in the loop: the packet is restored by copying.
#[test]
#[ignore = "measurement, run by hand in release"]
fn process_cost_probe() {
    use scion_transport::emu::forward::{self, HopKey};
    let (ia_a, ia_b) = (ia("1-ff00:0:111"), ia("1-ff00:0:112"));
    let key = [7u8; 16];
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let hop = |i, e| wire::HopSpec {
        cons_ingress: i,
        cons_egress: e,
        exp_time: 63,
        key,
    };
    let path = wire::build_standard_path(&[wire::SegmentSpec {
        cons_dir: true,
        seg_id: 1,
        timestamp: ts as u32,
        hops: vec![hop(0, 2), hop(2, 0)],
    }])
    .expect("path");
    let host = |ia, port| ScionAddr {
        ia,
        ip: "127.0.0.1".parse().expect("ip"),
        port,
    };
    let pkt = wire::encode_udp(
        &host(ia_a, 31000),
        &host(ia_b, 31001),
        &path,
        Bytes::from(vec![0x40u8; 1200]),
    )
    .expect("enc");
    let cached = HopKey::new(&key);
    let n = 200_000u32;
    let mut buf = pkt.clone();
    for (name, use_cached) in [("raw_key", false), ("cached_key", true)] {
        let t = Instant::now();
        for _ in 0..n {
            buf.copy_from_slice(&pkt);
            let step = if use_cached {
                forward::process(&mut buf, ia_a, &cached, 0, ts)
            } else {
                forward::process(&mut buf, ia_a, &key, 0, ts)
            };
            assert!(matches!(step, Ok(forward::Step::Forward { .. })));
            forward::finish_egress(&mut buf).expect("egress");
        }
        println!(
            "process_probe {name}: {} ns per packet (process + finish_egress, incl. 1.3 KB copy)",
            (t.elapsed() / n).as_nanos()
        );
    }
}

/// QUIC bulk transfer across the emulator (shaping off) with the router counters and the
/// sender's loss figures, to tell router drops from end-host effects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand in release"]
async fn bulk_probe() {
    use scion_transport::quic::{ScionEndpoint, TlsConfig, TransportConfig};
    let bytes: usize = env("BULK_MB", 64) << 20;
    let emu = Emulator::start(
        Topology::from_toml(&topo(false)).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let tls = TlsConfig::self_signed(&["server.test"]).expect("cert");
    let mut eps = Vec::new();
    for as_ in ["1-ff00:0:112", "1-ff00:0:111"] {
        let mut cfg = TransportConfig::new(
            ScionAddr {
                ia: ia(as_),
                ip: "127.0.0.1".parse().expect("ip"),
                port: 0,
            },
            tls.clone(),
        );
        cfg.daemon = Some(emu.daemon_addr(ia(as_)).expect("daemon").to_string());
        eps.push(ScionEndpoint::bind(cfg).await.expect("bind"));
    }
    let (server, client) = (&eps[0], &eps[1]);
    let server_addr = server.local_addr();
    let accept = async {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("accept");
        let mut recv = conn.accept_uni().await.expect("stream");
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        while let Some(n) = recv.read(&mut buf).await.expect("read") {
            total += n;
        }
        total
    };
    let dial = async {
        let conn = client
            .connect(server_addr, "server.test")
            .await
            .expect("connect");
        let chunk = vec![0x5au8; 1 << 16];
        let mut send = conn.open_uni().await.expect("open");
        let start = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            send.write_all(&chunk[..n]).await.expect("write");
            left -= n;
        }
        send.finish().expect("finish");
        let _ = send.stopped().await;
        (start.elapsed(), conn)
    };
    let (got, (elapsed, conn)) = tokio::join!(accept, dial);
    assert_eq!(got, bytes);
    let s = conn.stats();
    let e = emu.stats();
    println!(
        "bulk_probe: {:.0} Mbit/s; sender sent {} lost {} congestion_events {} mtu {} rtt {:?}; \
         emu forwarded {} delivered {} dropped {}",
        bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6,
        s.path.sent_packets,
        s.path.lost_packets,
        s.path.congestion_events,
        s.path.current_mtu,
        s.path.rtt,
        e.forwarded,
        e.delivered,
        e.dropped
    );
}
