//! Transport benchmarks (run with `cargo bench -p scion-transport --bench transport`):
//!
//! 1. bulk throughput: QUIC over SCION on the emulator (shaping off) vs quinn over plain UDP
//!    on loopback, same TLS material and stream size;
//! 2. failover gap (p50/p99) of a 1 kHz sequenced stream when the active path is cut with
//!    SCMP, and when it is silently blackholed;
//! 3. emulator router forwarding rate for small packets over a two-AS path.
//!
//! Figures are printed as `name: value` lines; nothing here asserts on timing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::daemon::DaemonClient;
use scion_transport::emu::topo::parse_link_end;
use scion_transport::emu::{EmuHandle, EmuOptions, Emulator, LinkChange, LinkState, Topology};
use scion_transport::quic::{ScionEndpoint, TlsConfig, TransportConfig, DEFAULT_ALPN};
use scion_transport::wire;
use tokio::time::timeout;

const TOPO: &str = include_str!("../emu/two-paths.toml");
/// Same network without link latency ("shaping off").
const TOPO_FLAT: &str = r#"
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
"#;

const BULK_BYTES: usize = 64 << 20;
const FAILOVER_RUNS: usize = 20;

fn ia(s: &str) -> IsdAsn {
    s.parse().expect("ia")
}

struct Pair {
    emu: EmuHandle,
    client: ScionEndpoint,
    server: ScionEndpoint,
    dir: std::path::PathBuf,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn pair(topo: &str, tls: &TlsConfig, tag: &str) -> Pair {
    let emu = Emulator::start(
        Topology::from_toml(topo).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let dir = std::env::temp_dir().join(format!("scion-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut eps = Vec::new();
    for as_ in ["1-ff00:0:112", "1-ff00:0:111"] {
        let path = dir.join(format!("{}.json", as_.replace(':', "_")));
        std::fs::write(&path, emu.topology_json(ia(as_)).expect("json")).expect("write");
        let mut cfg = TransportConfig::new(
            ScionAddr {
                ia: ia(as_),
                ip: "127.0.0.1".parse().expect("ip"),
                port: 0,
            },
            tls.clone(),
        );
        cfg.daemon = Some(emu.daemon_addr(ia(as_)).expect("daemon").to_string());
        cfg.topology = Some(path);
        eps.push(ScionEndpoint::bind(cfg).await.expect("bind"));
    }
    let client = eps.pop().expect("client");
    let server = eps.pop().expect("server");
    Pair {
        emu,
        client,
        server,
        dir,
    }
}

async fn sink(conn: quinn::Connection) -> usize {
    let mut recv = conn.accept_uni().await.expect("stream");
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    while let Some(n) = recv.read(&mut buf).await.expect("read") {
        total += n;
    }
    if std::env::var("SCION_BENCH_STATS").is_ok() {
        let s = conn.stats();
        eprintln!(
            "  receiver udp_rx datagrams {} ios {}, sent acks {}",
            s.udp_rx.datagrams, s.udp_rx.ios, s.frame_tx.acks
        );
    }
    total
}

async fn push(conn: &quinn::Connection, bytes: usize) -> Duration {
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
    start.elapsed()
}

/// Kernel UDP receive-buffer drops so far (Linux /proc/net/snmp), for the stats lines.
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Sender-side QUIC path figures, printed with SCION_BENCH_STATS=1 (loss explains throughput).
fn path_stats(conn: &quinn::Connection) {
    if std::env::var("SCION_BENCH_STATS").is_err() {
        return;
    }
    let s = conn.stats();
    eprintln!("  kernel RcvbufErrors so far {}", udp_rcvbuf_errors());
    eprintln!(
        "  sent {} lost {} congestion_events {} cwnd {} mtu {} rtt {:?} udp_tx datagrams {} ios {}",
        s.path.sent_packets,
        s.path.lost_packets,
        s.path.congestion_events,
        s.path.cwnd,
        s.path.current_mtu,
        s.path.rtt,
        s.udp_tx.datagrams,
        s.udp_tx.ios
    );
}

async fn bulk_scion(tls: &TlsConfig) -> (f64, Duration) {
    let p = pair(TOPO_FLAT, tls, "bulk").await;
    let server_addr = p.server.local_addr();
    let accept = async {
        let conn = p
            .server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("accept");
        sink(conn).await
    };
    let dial = async {
        let t = Instant::now();
        let conn = p
            .client
            .connect(server_addr, "server.test")
            .await
            .expect("connect");
        let hs = t.elapsed();
        (push(&conn, BULK_BYTES).await, hs, conn)
    };
    let (got, (elapsed, hs, conn)) = tokio::join!(accept, dial);
    path_stats(&conn);
    assert_eq!(got, BULK_BYTES);
    drop(p);
    (BULK_BYTES as f64 * 8.0 / elapsed.as_secs_f64() / 1e6, hs)
}

/// Same as `bulk_scion` but both hosts in one AS: SCION headers, no routers.
async fn bulk_scion_same_as(tls: &TlsConfig) -> f64 {
    let emu = Emulator::start(
        Topology::from_toml(TOPO_FLAT).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let mut eps = Vec::new();
    for _ in 0..2 {
        let mut cfg = TransportConfig::new(
            ScionAddr {
                ia: ia("1-ff00:0:112"),
                ip: "127.0.0.1".parse().expect("ip"),
                port: 0,
            },
            tls.clone(),
        );
        cfg.daemon = Some(
            emu.daemon_addr(ia("1-ff00:0:112"))
                .expect("daemon")
                .to_string(),
        );
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
        sink(conn).await
    };
    let dial = async {
        let conn = client
            .connect(server_addr, "server.test")
            .await
            .expect("connect");
        (push(&conn, BULK_BYTES).await, conn)
    };
    let (got, (elapsed, conn)) = tokio::join!(accept, dial);
    path_stats(&conn);
    assert_eq!(got, BULK_BYTES);
    BULK_BYTES as f64 * 8.0 / elapsed.as_secs_f64() / 1e6
}

/// Process CPU time (user + system, all threads) so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU microseconds per KiB moved (sender, receiver and, over SCION, the emulated routers
/// all run in this process).
fn cpu_us_per_kib(cpu: Duration) -> f64 {
    cpu.as_secs_f64() * 1e6 / (BULK_BYTES as f64 / 1024.0)
}

/// Quinn over plain UDP on loopback. `max_datagram`: the largest UDP payload MTU discovery may
/// reach (None: quinn's default, 1452); `Some(n)` pins it to the QUIC datagram size a SCION
/// path leaves, to compare the same packet count.
async fn bulk_plain(tls: &TlsConfig, max_datagram: Option<u16>) -> (f64, Duration) {
    let alpn = vec![DEFAULT_ALPN.to_vec()];
    let mut server_cfg = tls.server_config(&alpn).expect("server cfg");
    let mut client_cfg = quinn::ClientConfig::new(tls.client_crypto(&alpn).expect("crypto"));
    if let Some(n) = max_datagram {
        let mut t = quinn::TransportConfig::default();
        let mut mtud = quinn::MtuDiscoveryConfig::default();
        mtud.upper_bound(n);
        t.mtu_discovery_config(Some(mtud));
        let t = Arc::new(t);
        server_cfg.transport_config(t.clone());
        client_cfg.transport_config(t);
    }
    let server =
        quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse().expect("addr")).expect("server");
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
    client.set_default_client_config(client_cfg);
    let addr: SocketAddr = server.local_addr().expect("addr");
    let accept = async {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("accept");
        sink(conn).await
    };
    let dial = async {
        let t = Instant::now();
        let conn = client
            .connect(addr, "server.test")
            .expect("connect")
            .await
            .expect("hs");
        let hs = t.elapsed();
        (push(&conn, BULK_BYTES).await, hs, conn)
    };
    let (got, (elapsed, hs, conn)) = tokio::join!(accept, dial);
    path_stats(&conn);
    assert_eq!(got, BULK_BYTES);
    (BULK_BYTES as f64 * 8.0 / elapsed.as_secs_f64() / 1e6, hs)
}

/// One failover run: 1 kHz 8-byte sequence numbers, cut after 300 ms; returns the largest
/// inter-arrival gap at the receiver around the cut, and the largest in a quiet stretch before.
async fn failover_gap(tls: &TlsConfig, state: LinkState, run: usize) -> (Duration, Duration) {
    let p = pair(TOPO, tls, &format!("fo{run}")).await;
    let server_addr = p.server.local_addr();
    let receiver = async {
        let conn = p
            .server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("accept");
        let mut recv = conn.accept_uni().await.expect("stream");
        let mut buf = [0u8; 8];
        let mut expected = 0u64;
        let mut last = None::<Instant>;
        let mut worst = Duration::ZERO;
        let mut baseline = Duration::ZERO;
        while recv.read_exact(&mut buf).await.is_ok() {
            let seq = u64::from_be_bytes(buf);
            assert_eq!(seq, expected, "in order, none lost");
            expected += 1;
            let now = Instant::now();
            if let Some(l) = last {
                if std::env::var("GAP_DEBUG").is_ok() && now - l > Duration::from_millis(5) {
                    eprintln!("seq {seq} waited {:?}", now - l);
                }
                // Around the cut (sent at seq 300) vs. a quiet stretch before it: the machine's
                // own scheduling jitter shows up in both.
                if (295..=450).contains(&seq) {
                    worst = worst.max(now - l);
                } else if (50..=250).contains(&seq) {
                    baseline = baseline.max(now - l);
                }
            }
            last = Some(now);
        }
        (worst, baseline)
    };
    let sender = async {
        let conn = p
            .client
            .connect(server_addr, "server.test")
            .await
            .expect("connect");
        let mut client_events = p.client.path_events();
        let mut server_events = p.server.path_events();
        let mut cut_at = None;
        let mut send = conn.open_uni().await.expect("open");
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for seq in 0..1500u64 {
            tick.tick().await;
            send.write_all(&seq.to_be_bytes()).await.expect("write");
            if seq == 300 {
                let stats = p.client.path_stats(server_addr);
                let active = stats.iter().find(|c| c.active).expect("active");
                let first = active.info.interfaces[0];
                let end = parse_link_end(&format!("{}#{}", first.ia, first.ifid)).expect("end");
                p.emu.set_link(end, LinkChange::State(state)).expect("cut");
                cut_at = Some(std::time::SystemTime::now());
                if std::env::var("GAP_DEBUG").is_ok() {
                    eprintln!("cut {end} at seq {seq}");
                }
            }
        }
        send.finish().expect("finish");
        let _ = send.stopped().await;
        if let (true, Some(cut)) = (std::env::var("GAP_DEBUG").is_ok(), cut_at) {
            for (side, rx) in [
                ("client", &mut client_events),
                ("server", &mut server_events),
            ] {
                while let Ok(e) = rx.try_recv() {
                    let after = e.at.duration_since(cut).unwrap_or_default();
                    eprintln!("{side} switch {} {:?} after cut", e.cause, after);
                }
            }
        }
        conn
    };
    let (gaps, _conn) = tokio::join!(receiver, sender);
    gaps
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn forwarding_rate() -> f64 {
    let emu = Emulator::start(
        Topology::from_toml(TOPO_FLAT).expect("topo"),
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
    let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a");
    let b = Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.1:31900")
            .await
            .expect("b in range"),
    );
    let a_addr = ScionAddr {
        ia: src,
        ip: "127.0.0.1".parse().expect("ip"),
        port: a.local_addr().expect("a").port(),
    };
    let b_addr = ScionAddr {
        ia: dst,
        ip: "127.0.0.1".parse().expect("ip"),
        port: 31900,
    };
    let pkt =
        wire::encode_udp(&a_addr, &b_addr, &path.data, Bytes::from(vec![0u8; 100])).expect("enc");
    let next = path.next_hop.expect("hop");
    let window = Duration::from_secs(3);
    let counter = tokio::spawn({
        let b = b.clone();
        async move {
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            let end = Instant::now() + window;
            while let Ok(Ok(_)) = timeout(
                end.saturating_duration_since(Instant::now()),
                b.recv_from(&mut buf),
            )
            .await
            {
                n += 1;
            }
            n
        }
    });
    let start = Instant::now();
    while start.elapsed() < window {
        for _ in 0..64 {
            let _ = a.send_to(&pkt, next).await;
        }
        tokio::task::yield_now().await;
    }
    let received = counter.await.expect("counter");
    let single = received as f64 / window.as_secs_f64();
    let gso = forwarding_rate_gso(&a, &b, &pkt, next, window).await;
    println!("emulator_forwarding_gso_pkts_s: {gso:.0} (100-byte payload, 2 routers, GSO sender)");
    single
}

/// Forwarding rate with a batching host: the sender hands 64 packets to the kernel per GSO
/// send, the receiver reads with GRO, and at most 4096 packets are in flight so an overloaded
/// first router does not take the CPU the others need (loss is waited out after 20 ms).
async fn forwarding_rate_gso(
    a: &tokio::net::UdpSocket,
    b: &Arc<tokio::net::UdpSocket>,
    pkt: &[u8],
    next: SocketAddr,
    window: Duration,
) -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const IN_FLIGHT: u64 = 4096;
    let a_state = quinn_udp::UdpSocketState::new(a.into()).expect("a state");
    let b_state = Arc::new(quinn_udp::UdpSocketState::new((&**b).into()).expect("b state"));
    let segments = (65000 / pkt.len()).clamp(1, 64);
    let batch: Vec<u8> = pkt
        .iter()
        .copied()
        .cycle()
        .take(pkt.len() * segments)
        .collect();
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let counter = tokio::spawn({
        let (b, b_state) = (b.clone(), b_state.clone());
        let (received, progress) = (received.clone(), progress.clone());
        async move {
            let mut storage = vec![0u8; 16 * 65536];
            let mut meta = vec![quinn_udp::RecvMeta::default(); 16];
            let end = tokio::time::Instant::now() + window + Duration::from_millis(100);
            let mut n = 0u64;
            loop {
                let mut slices: Vec<std::io::IoSliceMut<'_>> = storage
                    .chunks_mut(65536)
                    .map(std::io::IoSliceMut::new)
                    .collect();
                let got = tokio::time::timeout_at(
                    end,
                    b.async_io(tokio::io::Interest::READABLE, || {
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
    let (mut sent, mut forgiven) = (0u64, 0u64);
    while start.elapsed() < window {
        if sent.saturating_sub(forgiven + received.load(Ordering::Relaxed)) > IN_FLIGHT {
            if timeout(Duration::from_millis(20), progress.notified())
                .await
                .is_err()
            {
                forgiven = sent.saturating_sub(received.load(Ordering::Relaxed));
            }
            continue;
        }
        let transmit = quinn_udp::Transmit {
            destination: next,
            ecn: None,
            contents: &batch,
            segment_size: Some(pkt.len()),
            src_ip: None,
        };
        if a_state.try_send(a.into(), &transmit).is_ok() {
            sent += segments as u64;
        }
        tokio::task::yield_now().await;
    }
    let got = counter.await.expect("counter");
    got as f64 / window.as_secs_f64()
}

/// CPU cost of the per-packet work (no sockets): encode, decode, router processing.
fn per_packet_costs() {
    use scion_transport::emu::forward;
    let ia_a = ia("1-ff00:0:111");
    let ia_b = ia("1-ff00:0:112");
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
    let a = ScionAddr {
        ia: ia_a,
        ip: "127.0.0.1".parse().expect("ip"),
        port: 31000,
    };
    let b = ScionAddr {
        ia: ia_b,
        ip: "127.0.0.1".parse().expect("ip"),
        port: 31001,
    };
    let payload = Bytes::from(vec![0x40u8; 1200]);
    let n = 100_000;
    let t = Instant::now();
    let mut pkt = Vec::new();
    for _ in 0..n {
        pkt = wire::encode_udp(&a, &b, &path, payload.clone()).expect("enc");
    }
    let enc = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        let _ = wire::decode(Bytes::copy_from_slice(&pkt)).expect("dec");
    }
    let dec = t.elapsed() / n;
    // The fast paths the socket uses: header template per route, in-place decode.
    let template = wire::UdpTemplate::new(&a, &b, &path).expect("template");
    let mut out = Vec::with_capacity(pkt.len());
    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        template.encode_into(&mut out, &payload).expect("enc");
        std::hint::black_box(&out);
    }
    let enc_fast = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        let d = wire::decode_udp_fast(std::hint::black_box(&pkt)).expect("dec");
        std::hint::black_box(d);
    }
    let dec_fast = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        let mut p = pkt.clone();
        let _ = forward::process(&mut p, ia_a, &key, 0, ts).expect("process");
    }
    let fwd = t.elapsed() / n;
    println!(
        "per_packet_ns: encode {} decode {} router_process {} (1200-byte payload)",
        enc.as_nanos(),
        dec.as_nanos(),
        fwd.as_nanos()
    );
    println!(
        "per_packet_fast_ns: template_encode {} fast_decode {} (1200-byte payload, checksum included)",
        enc_fast.as_nanos(),
        dec_fast.as_nanos()
    );
}

fn main() {
    per_packet_costs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tls = TlsConfig::self_signed(&["server.test"]).expect("cert");
        let c0 = cpu_time();
        let (plain, plain_hs) = bulk_plain(&tls, None).await;
        let c1 = cpu_time();
        let (scion, scion_hs) = bulk_scion(&tls).await;
        let c2 = cpu_time();
        println!(
            "bulk_quinn_plain_udp_mbit_s: {plain:.0} (CPU {:.2} us/KiB)",
            cpu_us_per_kib(c1 - c0)
        );
        println!(
            "bulk_quic_over_scion_emulator_mbit_s: {scion:.0} (CPU {:.2} us/KiB)",
            cpu_us_per_kib(c2 - c1)
        );
        println!("bulk_ratio_scion_to_plain: {:.2}", scion / plain);
        let c3 = cpu_time();
        let same_as = bulk_scion_same_as(&tls).await;
        let c4 = cpu_time();
        println!(
            "bulk_quic_over_scion_same_as_no_routers_mbit_s: {same_as:.0} (CPU {:.2} us/KiB)",
            cpu_us_per_kib(c4 - c3)
        );
        // The QUIC datagram a two-AS SCION path leaves at MTU 1472 (1472 minus a 112-byte
        // SCION/UDP header): plain quinn with the SCION route's packet count.
        let c5 = cpu_time();
        let (plain_small, _) = bulk_plain(&tls, Some(1360)).await;
        let c6 = cpu_time();
        println!(
            "bulk_quinn_plain_udp_1360_mbit_s: {plain_small:.0} (CPU {:.2} us/KiB; datagrams capped at 1360 bytes)",
            cpu_us_per_kib(c6 - c5)
        );
        println!("handshake_plain_ms: {:.2}", plain_hs.as_secs_f64() * 1e3);
        println!("handshake_scion_ms_incl_daemon_query: {:.2}", scion_hs.as_secs_f64() * 1e3);
        // SCION_BENCH=bulk: per-packet and bulk figures only (quick before/after runs).
        if std::env::var("SCION_BENCH").is_ok_and(|v| v == "bulk") {
            return;
        }
        for (name, state) in [("scmp_cut", LinkState::Down), ("blackhole", LinkState::Blackhole)] {
            let mut gaps = Vec::new();
            let mut quiet = Vec::new();
            for run in 0..FAILOVER_RUNS {
                let (gap, base) = failover_gap(&tls, state, run).await;
                gaps.push(gap);
                quiet.push(base);
            }
            gaps.sort();
            quiet.sort();
            println!(
                "failover_{name}_baseline_jitter_ms: p50 {:.1} p99 {:.1} (largest inter-arrival without a cut)",
                percentile(&quiet, 0.5).as_secs_f64() * 1e3,
                percentile(&quiet, 0.99).as_secs_f64() * 1e3
            );
            println!(
                "failover_{name}_gap_ms: p50 {:.1} p99 {:.1} max {:.1} (runs {FAILOVER_RUNS}, path RTT ~2 ms)",
                percentile(&gaps, 0.5).as_secs_f64() * 1e3,
                percentile(&gaps, 0.99).as_secs_f64() * 1e3,
                gaps[gaps.len() - 1].as_secs_f64() * 1e3
            );
        }
        let rate = forwarding_rate().await;
        println!("emulator_forwarding_pkts_s: {rate:.0} (100-byte payload, 2 routers)");
    });
}
