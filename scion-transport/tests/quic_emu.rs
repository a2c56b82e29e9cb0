//! QUIC over SCION across the emulator: handshake, streams, and failover keeping every byte
//! in order through an SCMP-signalled cut and through a silent blackhole.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::emu::topo::parse_link_end;
use scion_transport::emu::{EmuHandle, EmuOptions, Emulator, LinkChange, LinkState, Topology};
use scion_transport::path::SwitchCause;
use scion_transport::quic::{ScionEndpoint, TlsConfig, TransportConfig};
use tokio::time::timeout;

const TOPO: &str = include_str!("../emu/two-paths.toml");

#[path = "support/netns.rs"]
mod netns;
use netns::in_private_netns;

/// Everything logged by this test binary (a global subscriber: path switches are logged by
/// the socket's driver task, on any runtime thread).
fn captured_logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || CaptureWriter(buf))
            .try_init();
        buf
    })
}

struct CaptureWriter(&'static Mutex<Vec<u8>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured log lines saying that SCMP marked paths to `remote` down.
fn scmp_marked_lines(remote: ScionAddr) -> usize {
    let logs = captured_logs().lock().unwrap_or_else(|e| e.into_inner());
    let needle = format!("remote={remote} paths=");
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| l.contains(&needle) && l.contains("SCMP marked paths down"))
        .count()
}

/// The captured log lines about switches of the path to `remote`.
fn switch_lines(remote: ScionAddr) -> Vec<String> {
    let logs = captured_logs().lock().unwrap_or_else(|e| e.into_inner());
    let needle = format!("path to {remote} switched");
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// A switch is logged once, at `level`, with a kebab-case cause and a rounded gap.
fn assert_one_switch_line(e: &scion_transport::socket::PathEvent, level: &str) {
    let lines = switch_lines(e.remote);
    let cause = format!("cause={} ", e.cause);
    let to = format!("to={}", e.to.short());
    let mine: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&cause) && l.contains(&to))
        .collect();
    assert_eq!(mine.len(), 1, "one line for {e:?}, got {lines:#?}");
    let line = mine[0];
    assert!(line.contains(level), "{level}: {line}");
    let gap = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("gap="))
        .unwrap_or_else(|| panic!("gap in {line}"));
    match e.gap {
        None => assert_eq!(gap, "-", "{line}"),
        Some(_) => {
            let num = gap
                .strip_suffix("ms")
                .unwrap_or_else(|| panic!("ms: {line}"));
            let (_, frac) = num.split_once('.').unwrap_or_else(|| panic!("{line}"));
            assert_eq!(frac.len(), 1, "one decimal: {line}");
        }
    }
}

fn ia(s: &str) -> IsdAsn {
    s.parse().expect("ia")
}

struct Net {
    emu: EmuHandle,
    client: ScionEndpoint,
    server: ScionEndpoint,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn endpoint(
    emu: &EmuHandle,
    dir: &std::path::Path,
    as_: &str,
    tls: &TlsConfig,
    tune: fn(&mut TransportConfig),
) -> ScionEndpoint {
    endpoint_at(emu, dir, as_, tls, tune, LOCALHOST).await
}

const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

async fn endpoint_at(
    emu: &EmuHandle,
    dir: &std::path::Path,
    as_: &str,
    tls: &TlsConfig,
    tune: fn(&mut TransportConfig),
    ip: std::net::IpAddr,
) -> ScionEndpoint {
    let ia = ia(as_);
    let topo = dir.join(format!("{}.json", as_.replace(':', "_")));
    std::fs::write(&topo, emu.topology_json(ia).expect("json")).expect("write topology");
    let mut cfg = TransportConfig::new(ScionAddr { ia, ip, port: 0 }, tls.clone());
    cfg.daemon = Some(emu.daemon_addr(ia).expect("daemon").to_string());
    cfg.topology = Some(topo);
    tune(&mut cfg);
    ScionEndpoint::bind(cfg).await.expect("bind")
}

async fn net() -> Net {
    net_with(|_| {}).await
}

async fn net_with(tune: fn(&mut TransportConfig)) -> Net {
    net_on(TOPO, tune).await
}

async fn net_on(topo: &str, tune: fn(&mut TransportConfig)) -> Net {
    net_opts(topo, EmuOptions::default(), tune).await
}

async fn net_opts(topo: &str, options: EmuOptions, tune: fn(&mut TransportConfig)) -> Net {
    let ip = options.ip;
    let emu = Emulator::start(Topology::from_toml(topo).expect("topo"), options)
        .await
        .expect("emulator");
    let dir =
        std::env::temp_dir().join(format!("scion-quic-{}-{}", std::process::id(), rand_u32()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let tls = TlsConfig::self_signed(&["server.test"]).expect("cert");
    let server = endpoint_at(&emu, &dir, "1-ff00:0:112", &tls, tune, ip).await;
    let client = endpoint_at(&emu, &dir, "1-ff00:0:111", &tls, tune, ip).await;
    Net {
        emu,
        client,
        server,
        _dir: TempDir(dir),
    }
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Byte `i` of the test stream.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// Starts `server` accepting and checking one stream ([`serve_and_check`]) and dials it from
/// `client`: the server's task (bytes received, and the endpoint) and the connection.
async fn serve_and_dial(
    server: ScionEndpoint,
    client: &ScionEndpoint,
) -> (
    tokio::task::JoinHandle<(u64, ScionEndpoint)>,
    quinn::Connection,
) {
    let addr = server.local_addr();
    let serving = tokio::spawn(async move {
        let got = serve_and_check(&server).await;
        (got, server)
    });
    let conn = timeout(Duration::from_secs(10), client.connect(addr, "server.test"))
        .await
        .expect("handshake in time")
        .expect("handshake");
    (serving, conn)
}

/// Ends the stream and waits for the server task of [`serve_and_dial`] to have received and
/// checked all `sent` bytes.
async fn finish_and_check(
    send: &mut quinn::SendStream,
    serving: tokio::task::JoinHandle<(u64, ScionEndpoint)>,
    sent: u64,
) {
    send.finish().expect("finish");
    let (got, _server) = timeout(Duration::from_secs(30), serving)
        .await
        .expect("server finished")
        .expect("join");
    assert_eq!(got, sent, "every byte arrived");
}

/// Accepts one connection and one stream, reads it to the end, checks every byte.
async fn serve_and_check(server: &ScionEndpoint) -> u64 {
    let incoming = timeout(Duration::from_secs(10), server.accept())
        .await
        .expect("incoming in time")
        .expect("endpoint open");
    let conn = incoming.await.expect("server handshake");
    let mut recv = conn.accept_uni().await.expect("stream");
    let mut got = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match recv.read(&mut buf).await.expect("read") {
            None => break,
            Some(n) => {
                for (k, b) in buf[..n].iter().enumerate() {
                    assert_eq!(
                        *b,
                        pattern(got + k as u64),
                        "byte {} out of order or corrupt",
                        got + k as u64
                    );
                }
                got += n as u64;
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_bulk_stream() {
    let n = net().await;
    let server_addr = n.server.local_addr();
    let server = tokio::spawn(async move {
        let got = serve_and_check(&n.server).await;
        (got, n.server)
    });
    let start = Instant::now();
    let conn = timeout(
        Duration::from_secs(10),
        n.client.connect(server_addr, "server.test"),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    let handshake = start.elapsed();
    let total: u64 = 8 * 1024 * 1024;
    let mut send = conn.open_uni().await.expect("open");
    let chunk: Vec<u8> = (0..total).map(pattern).collect();
    let t = Instant::now();
    send.write_all(&chunk).await.expect("write");
    send.finish().expect("finish");
    let (got, _server) = timeout(Duration::from_secs(60), server)
        .await
        .expect("server done")
        .expect("join");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(got, total);
    eprintln!(
        "handshake {:.1} ms; {} MiB in {:.2} s = {:.1} Mbit/s over SCION (emulator, 2 hops)",
        handshake.as_secs_f64() * 1000.0,
        total >> 20,
        secs,
        total as f64 * 8.0 / secs / 1e6
    );
    let stats = n.client.path_stats(server_addr);
    assert_eq!(stats.len(), 2, "both paths known: {stats:?}");
    assert!(stats.iter().any(|c| c.active));
    // The accepting side runs its own selection toward the client (not just reply paths).
    let (_, server) = (got, _server);
    let client_addr = n.client.local_addr();
    let mut server_view = Vec::new();
    for _ in 0..100 {
        server_view = server.path_stats(client_addr);
        if server_view.iter().any(|c| c.active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server_view.len(),
        2,
        "server loaded paths to the client: {server_view:?}"
    );
    assert!(server_view.iter().any(|c| c.active));
    drop(n.emu);
}

/// Streams paced data while `cut` breaks the active path; returns the path events seen.
async fn failover(state: LinkState) -> Vec<scion_transport::socket::PathEvent> {
    failover_on(net().await, state).await
}

async fn failover_on(n: Net, state: LinkState) -> Vec<scion_transport::socket::PathEvent> {
    captured_logs();
    let server_addr = n.server.local_addr();
    let (server, conn) = serve_and_dial(n.server, &n.client).await;
    let mut events = n.client.path_events();
    let mut send = conn.open_uni().await.expect("open");
    let mut sent = 0u64;
    let block = 1024u64;
    let mut cut_done = false;
    for round in 0..1500u64 {
        let data: Vec<u8> = (sent..sent + block).map(pattern).collect();
        send.write_all(&data).await.expect("write");
        sent += block;
        if round == 300 && !cut_done {
            let stats = n.client.path_stats(server_addr);
            let active = stats.iter().find(|c| c.active).expect("an active path");
            let first = active.info.interfaces[0];
            let end = parse_link_end(&format!("{}#{}", first.ia, first.ifid)).expect("end");
            n.emu.set_link(end, LinkChange::State(state)).expect("cut");
            cut_done = true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    finish_and_check(&mut send, server, sent).await;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    seen
}

/// IPv6 end hosts over an IPv6 underlay (border routers, daemons, hosts all on `::1`, in a
/// private network namespace): the SCION headers carry 16-byte host addresses, the UDP
/// checksum covers them, and a stream crosses a cut of its active path (the SCMP error
/// quotes our IPv6 packet) with every byte in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_hosts_fail_over_with_every_byte_in_order() {
    if !in_private_netns("ipv6_hosts_fail_over_with_every_byte_in_order") {
        return;
    }
    let v6 = std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    let options = EmuOptions {
        ip: v6,
        ..Default::default()
    };
    let n = net_opts(TOPO, options, |_| {}).await;
    let (client, server) = (n.client.local_addr(), n.server.local_addr());
    assert!(
        client.ip.is_ipv6() && server.ip.is_ipv6(),
        "{client} {server}"
    );
    let events = failover_on(n, LinkState::Down).await;
    assert!(
        events.iter().any(|e| e.cause == SwitchCause::ScmpDown),
        "an SCMP-driven switch over IPv6, got {events:?}"
    );
}

/// An AS with IPv4 hosts talking to one with IPv6 hosts (in a private network namespace):
/// the client in 1-ff00:0:111 and its border router's AS-internal socket are on 127.0.0.1,
/// the server in 1-ff00:0:112 and its router on `::1`. The SCION headers carry a 4-byte and
/// a 16-byte host address; data crosses both ways, the server runs its own path selection
/// toward the IPv4 client, and the stream fails over on an SCMP-signalled cut (the error
/// quotes the mixed packet) with every byte in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_and_ipv6_hosts_talk_across_ases() {
    if !in_private_netns("ipv4_and_ipv6_hosts_talk_across_ases") {
        return;
    }
    let v6 = std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    let options = EmuOptions {
        ip: v6,
        internal_ip: vec![(ia("1-ff00:0:111"), LOCALHOST)],
        ..Default::default()
    };
    let emu = Emulator::start(Topology::from_toml(TOPO).expect("topo"), options)
        .await
        .expect("emulator");
    let dir =
        std::env::temp_dir().join(format!("scion-quic-{}-{}", std::process::id(), rand_u32()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let tls = TlsConfig::self_signed(&["server.test"]).expect("cert");
    let server = endpoint_at(&emu, &dir, "1-ff00:0:112", &tls, |_| {}, v6).await;
    let client = endpoint_at(&emu, &dir, "1-ff00:0:111", &tls, |_| {}, LOCALHOST).await;
    let (client_addr, server_addr) = (client.local_addr(), server.local_addr());
    assert!(client_addr.ip.is_ipv4() && server_addr.ip.is_ipv6());
    let n = Net {
        emu,
        client,
        server,
        _dir: TempDir(dir),
    };
    // The acceptor sends: its packets go to the IPv4 host, sized for the mixed header.
    let c = carry(n, 1 << 20, true).await;
    let server = &c._net.1;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.path_stats(client_addr).iter().any(|p| p.active) {
        assert!(
            Instant::now() < deadline,
            "the server never selected a path of its own to the IPv4 client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both ends size packets for the same header: 4 + 16 bytes of host addresses.
    let held = (
        server.held_link_payload(client_addr),
        c._net.0.held_link_payload(server_addr),
    );
    assert!(held.0.is_some() && held.0 == held.1, "held sizes {held:?}");
    let Carried { _net, .. } = c;
    let (client, server, emu, dir) = _net;
    let events = failover_on(
        Net {
            emu,
            client,
            server,
            _dir: dir,
        },
        LinkState::Down,
    )
    .await;
    assert!(
        events.iter().any(|e| e.cause == SwitchCause::ScmpDown),
        "an SCMP-driven switch between IPv4 and IPv6 hosts, got {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scmp_signalled_cut_keeps_every_byte_in_order() {
    let events = failover(LinkState::Down).await;
    let switch = events
        .iter()
        .find(|e| e.cause == SwitchCause::ScmpDown)
        .unwrap_or_else(|| panic!("an SCMP-driven switch, got {events:?}"));
    eprintln!(
        "SCMP switch: gap {:?}, new hops {}",
        switch.gap, switch.hops
    );
    assert_one_switch_line(switch, "WARN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_blackhole_keeps_every_byte_in_order() {
    let events = failover(LinkState::Blackhole).await;
    let switch = events
        .iter()
        .find(|e| e.cause == SwitchCause::ProbeLoss)
        .unwrap_or_else(|| panic!("a probe-loss switch, got {events:?}"));
    eprintln!(
        "blackhole switch: gap {:?}, new hops {}",
        switch.gap, switch.hops
    );
    // How fast is a benchmark matter (benches/transport.rs); here only that it was measured.
    assert!(switch.gap.is_some(), "{switch:?}");
    assert_one_switch_line(switch, "WARN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_increase_moves_to_the_better_path() {
    captured_logs();
    let n = net_with(|cfg| {
        cfg.selector.preference = "latency".parse().expect("preference");
    })
    .await;
    let server_addr = n.server.local_addr();
    let (server, conn) = serve_and_dial(n.server, &n.client).await;
    let before = n.client.path_stats(server_addr);
    let active = before.iter().find(|c| c.active).expect("active");
    assert_eq!(
        active.info.interfaces.len(),
        2,
        "starts on the direct (1 ms) path"
    );
    let mut events = n.client.path_events();
    // Make the direct link far slower than the 2+2 ms detour.
    let end = parse_link_end("1-ff00:0:111#2").expect("end");
    n.emu
        .set_link(end, LinkChange::Latency(Duration::from_millis(40)))
        .expect("latency");
    let mut send = conn.open_uni().await.expect("open");
    let mut sent = 0u64;
    let mut better = None;
    // The switch comes once the direct path's fast samples leave the selector's min-RTT
    // window (5 s): allow about three times that.
    for _ in 0..1500 {
        let data: Vec<u8> = (sent..sent + 512).map(pattern).collect();
        send.write_all(&data).await.expect("write");
        sent += 512;
        if let Ok(e) = events.try_recv() {
            if e.cause == SwitchCause::Better {
                better = Some(e);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    send.finish().expect("finish");
    let (got, _server) = timeout(Duration::from_secs(30), server)
        .await
        .expect("server done")
        .expect("join");
    assert_eq!(got, sent);
    let event = better.expect("switched for latency");
    assert_one_switch_line(&event, "INFO");
    let after = n.client.path_stats(server_addr);
    let active = after.iter().find(|c| c.active).expect("active");
    assert_eq!(
        active.info.interfaces.len(),
        4,
        "now on the detour via the core: {event:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redundant_mode_sends_on_two_disjoint_paths_and_survives_a_blackhole() {
    let n = net_with(|cfg| {
        cfg.selector.redundancy = 2;
    })
    .await;
    let server_addr = n.server.local_addr();
    let (server, conn) = serve_and_dial(n.server, &n.client).await;
    let stats = n.client.path_stats(server_addr);
    assert_eq!(
        stats.iter().filter(|c| c.in_active_set).count(),
        2,
        "{stats:?}"
    );
    let forwarded_before = n.emu.stats().forwarded;
    let mut send = conn.open_uni().await.expect("open");
    let mut sent = 0u64;
    for round in 0..600u64 {
        let data: Vec<u8> = (sent..sent + 1024).map(pattern).collect();
        send.write_all(&data).await.expect("write");
        sent += 1024;
        if round == 200 {
            let end = parse_link_end("1-ff00:0:111#2").expect("end");
            n.emu
                .set_link(end, LinkChange::State(LinkState::Blackhole))
                .expect("cut");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    send.finish().expect("finish");
    let (got, _server) = timeout(Duration::from_secs(30), server)
        .await
        .expect("server done")
        .expect("join");
    assert_eq!(got, sent);
    // Duplicates went over both paths: the routers forwarded well over one copy per packet.
    assert!(n.emu.stats().forwarded - forwarded_before > 2 * (sent / 1200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_in_one_as_talk_over_the_empty_path() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let dir = std::env::temp_dir().join(format!(
        "scion-quic-local-{}-{}",
        std::process::id(),
        rand_u32()
    ));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let _guard = TempDir(dir.clone());
    let tls = TlsConfig::self_signed(&["server.test"]).expect("cert");
    let server = endpoint(&emu, &dir, "1-ff00:0:112", &tls, |_| {}).await;
    let client = endpoint(&emu, &dir, "1-ff00:0:112", &tls, |_| {}).await;
    let (serving, conn) = serve_and_dial(server, &client).await;
    let mut send = conn.open_uni().await.expect("open");
    let data: Vec<u8> = (0..100_000u64).map(pattern).collect();
    send.write_all(&data).await.expect("write");
    send.finish().expect("finish");
    let (got, _server) = timeout(Duration::from_secs(30), serving)
        .await
        .expect("done")
        .expect("join");
    assert_eq!(got, 100_000);
    assert_eq!(emu.stats().forwarded, 0, "no router involved");
}

/// MTU the acceptor could assume before it sized packets from the peer's paths: the local
/// MTU (1472 in the emulator) minus a worst-case header of 204 bytes.
const OLD_ACCEPTOR_CAP: u16 = 1472 - 204;

/// The two ends of a connection that carried a checked transfer, and what keeps them alive.
struct Carried {
    dialer: quinn::Connection,
    acceptor: quinn::Connection,
    _net: (ScionEndpoint, ScionEndpoint, EmuHandle, TempDir),
}

async fn send_pattern(conn: &quinn::Connection, bytes: u64) {
    let mut send = conn.open_uni().await.expect("open");
    let data: Vec<u8> = (0..bytes).map(pattern).collect();
    timeout(Duration::from_secs(30), send.write_all(&data))
        .await
        .expect("write in time")
        .expect("write");
    send.finish().expect("finish");
}

async fn receive_pattern(conn: &quinn::Connection, bytes: u64) {
    let mut recv = timeout(Duration::from_secs(10), conn.accept_uni())
        .await
        .expect("stream in time")
        .expect("stream");
    let got = timeout(
        Duration::from_secs(30),
        recv.read_to_end(bytes as usize * 2),
    )
    .await
    .expect("read in time")
    .expect("read");
    assert_eq!(got.len() as u64, bytes);
    assert!(got.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)));
}

/// Dials from `n.client` to `n.server` and moves `bytes` of [`pattern`] over one stream,
/// sent by the acceptor when `acceptor_sends`, checked on arrival.
async fn carry(n: Net, bytes: u64, acceptor_sends: bool) -> Carried {
    let server_addr = n.server.local_addr();
    let server = n.server;
    let accept = async {
        let incoming = timeout(Duration::from_secs(10), server.accept())
            .await
            .expect("incoming in time")
            .expect("endpoint open");
        let conn = incoming.await.expect("server handshake");
        if acceptor_sends {
            send_pattern(&conn, bytes).await;
        } else {
            receive_pattern(&conn, bytes).await;
        }
        conn
    };
    let dial = async {
        let conn = timeout(
            Duration::from_secs(10),
            n.client.connect(server_addr, "server.test"),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        if acceptor_sends {
            receive_pattern(&conn, bytes).await;
        } else {
            send_pattern(&conn, bytes).await;
        }
        conn
    };
    let (acceptor, dialer) = tokio::join!(accept, dial);
    Carried {
        dialer,
        acceptor,
        _net: (n.client, server, n.emu, n._dir),
    }
}

/// quinn hands the socket at most 10 datagrams per transmit; the socket joins consecutive
/// transmits to one peer into GSO sends of up to 64, so a bulk sender needs fewer system calls
/// (one `sendmsg` per transmit before: at most 10 datagrams each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_sender_joins_transmits_into_larger_gso_sends() {
    let c = carry(net().await, 8 << 20, false).await;
    let s = c._net.0.send_stats();
    assert!(s.datagrams > 5_000, "{s:?}");
    // Above 10 on average is impossible one transmit per sendmsg; about 19 is usual.
    assert!(s.datagrams > 11 * s.sends, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_sends_packets_as_large_as_the_dialer() {
    // The acceptor is the sender here: its packets are the ones that were capped.
    let c = carry(net().await, 1 << 20, true).await;
    let (server_conn, conn) = (&c.acceptor, &c.dialer);
    // MTU discovery runs on both sides toward the same bound (same paths, same headers);
    // wait for it to settle, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut s_mtu, mut c_mtu);
    loop {
        s_mtu = server_conn.stats().path.current_mtu;
        c_mtu = conn.stats().path.current_mtu;
        if (s_mtu == c_mtu && s_mtu > OLD_ACCEPTOR_CAP) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        s_mtu > OLD_ACCEPTOR_CAP,
        "acceptor packets {s_mtu} B, dialer {c_mtu} B"
    );
    assert_eq!(s_mtu, c_mtu, "both ends use the same path bound");
    assert!(
        c_mtu <= 1472 - 44,
        "within the link MTU minus the smallest header"
    );
}

/// A relay in front of a daemon that holds each answer back by `delay` (a slow daemon):
/// its address, for `TransportConfig::daemon`. Loopback only; each connection's relay ends
/// with the connection.
async fn slow_daemon(daemon: &str, delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind relay");
    let addr = listener.local_addr().expect("relay address").to_string();
    let upstream = daemon.to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// The acceptor of a link whose daemon is slower than its wait for paths at accept starts
/// the link without paths (answering over the reverse of the dialler's path), its packet
/// size capped from that reply path. Once its paths arrive it holds the size the dialler
/// holds over the same paths, so a path too small for its packets ranks last there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptor_without_paths_at_accept_holds_its_packet_size_once_they_arrive() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let dir =
        std::env::temp_dir().join(format!("scion-quic-{}-{}", std::process::id(), rand_u32()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let tls = TlsConfig::self_signed(&["server.test"]).expect("cert");
    let server = endpoint(&emu, &dir, "1-ff00:0:112", &tls, |_| {}).await;
    let client = endpoint(&emu, &dir, "1-ff00:0:111", &tls, |_| {}).await;
    drop(server);
    // The acceptor waits 500 ms for paths at accept; each chunk of its daemon's answers is held 2 s (much longer runs into the daemon client's 5 s limit).
    let daemon = emu
        .daemon_addr(ia("1-ff00:0:112"))
        .expect("daemon")
        .to_string();
    let slow = slow_daemon(&daemon, Duration::from_secs(2)).await;
    let topo = dir.join("slow.json");
    std::fs::write(&topo, emu.topology_json(ia("1-ff00:0:112")).expect("json")).expect("write");
    let mut cfg = TransportConfig::new(
        ScionAddr {
            ia: ia("1-ff00:0:112"),
            ip: "127.0.0.1".parse().expect("ip"),
            port: 0,
        },
        tls.clone(),
    );
    cfg.daemon = Some(slow);
    cfg.topology = Some(topo);
    let server = timeout(Duration::from_secs(20), ScionEndpoint::bind(cfg))
        .await
        .expect("bind in time")
        .expect("bind");
    let n = Net {
        emu,
        client,
        server,
        _dir: TempDir(dir),
    };
    let c = carry(n, 64 << 10, true).await;
    let (client, server) = (&c._net.0, &c._net.1);
    let (client_addr, server_addr) = (client.local_addr(), server.local_addr());
    assert_eq!(
        server.held_link_payload(client_addr),
        None,
        "the acceptor had no paths yet when the link started and the data went across"
    );
    let dialer_held = client.held_link_payload(server_addr);
    // two-paths.toml: 1472-byte MTU everywhere, less the SCION/UDP header of the longer path.
    assert!(
        dialer_held.is_some_and(|h| (1200..1472).contains(&h)),
        "dialer holds {dialer_held:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = server.held_link_payload(client_addr);
    while held.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        held = server.held_link_payload(client_addr);
    }
    assert_eq!(held, dialer_held, "acceptor holds what the dialer holds");
}

/// A link that comes in right after the last one to the same peer was released (a peer
/// that restarted and dialled again within the release's 2 s settle time) keeps the packet
/// size the acceptor holds for it: the accept wakes the peer, so the new link's later
/// handshake packets do not start the peer over and drop the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_right_after_a_release_keeps_the_acceptors_held_size() {
    let n = net().await;
    let (client_addr, server_addr) = (n.client.local_addr(), n.server.local_addr());
    let first = carry(n, 64 << 10, true).await;
    let Carried {
        dialer,
        acceptor,
        _net,
    } = first;
    let (client, server, emu, dir) = _net;
    // The first link held the peer (as the broker does for each link) and now closes.
    drop(server.hold(client_addr));
    dialer.close(0u32.into(), b"bye");
    drop(acceptor);
    let second = carry(
        Net {
            emu,
            client,
            server,
            _dir: dir,
        },
        64 << 10,
        true,
    )
    .await;
    let (client, server) = (&second._net.0, &second._net.1);
    let _hold = server.hold(client_addr);
    assert!(
        client.held_link_payload(server_addr).is_some(),
        "the dialer holds a size"
    );
    assert_eq!(
        server.held_link_payload(client_addr),
        client.held_link_payload(server_addr),
        "the acceptor still holds the second link's size"
    );
}

/// On 9000-byte links QUIC packets grow past quinn's Ethernet default of 1472 bytes: each
/// endpoint advertises what its AS's MTU lets in (max_udp_payload_size), so MTU discovery
/// on the other side can climb to the path's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jumbo_links_carry_jumbo_packets() {
    const MTU: u16 = 8972;
    let topo = scion_transport::emu::topo::with_mtu(TOPO, MTU);
    let c = carry(net_on(&topo, |_| {}).await, 4 << 20, false).await;
    let conn = &c.dialer;
    // MTU discovery runs in the background after the handshake; wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut mtu = conn.stats().path.current_mtu;
    while mtu <= 1472 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        mtu = conn.stats().path.current_mtu;
    }
    assert!(
        mtu > 1472,
        "QUIC packets stayed at {mtu} B on {MTU}-byte links"
    );
    assert!(
        mtu <= MTU - 44,
        "{mtu} B within the link MTU minus the smallest header"
    );
}

#[tokio::test]
async fn wrong_as_and_unreachable_daemon_are_clear_errors() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let tls = TlsConfig::self_signed(&["x"]).expect("cert");
    let mut cfg = TransportConfig::new(
        ScionAddr {
            ia: ia("1-ff00:0:111"),
            ip: "127.0.0.1".parse().expect("ip"),
            port: 0,
        },
        tls.clone(),
    );
    let mut unspecified = cfg.clone();
    unspecified.local.ip = "0.0.0.0".parse().expect("ip");
    let err = ScionEndpoint::bind(unspecified)
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("concrete IP"), "{err}");
    cfg.daemon = Some(emu.daemon_addr(ia("1-ff00:0:112")).expect("d").to_string());
    let err = ScionEndpoint::bind(cfg.clone())
        .await
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("daemon serves 1-ff00:0:112"),
        "{err}"
    );
    // A port nobody listens on: connecting fails with the address in the message.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    cfg.daemon = Some(addr.to_string());
    let err = ScionEndpoint::bind(cfg).await.err().expect("must fail");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// Sends `kind` as an SCMP error from `from` to `to`'s socket, quoting a packet from `to` to
/// `dst` over `quoted_path`: what an off-path host can forge, since SCMP is unauthenticated.
async fn forge_scmp(
    from: IsdAsn,
    to: ScionAddr,
    dst: ScionAddr,
    quoted_path: &scion_transport::wire::DataPath,
    kind: scion_transport::wire::ScmpKind,
) {
    use scion_transport::wire;
    let quote = wire::encode_udp(&to, &dst, quoted_path, bytes::Bytes::from_static(b"quic"))
        .expect("quoted packet");
    let back = quoted_path
        .reversed()
        .unwrap_or_else(|_| wire::DataPath::empty());
    let scmp = wire::encode_scmp_error(
        (from, "127.0.0.1".parse().expect("ip")),
        (to.ia, to.ip),
        &back,
        &kind,
        bytes::Bytes::from(quote),
    )
    .expect("scmp");
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    udp.send_to(&scmp, std::net::SocketAddr::new(to.ip, to.port))
        .await
        .expect("send");
}

/// A client streaming to a server across the emulator, with the daemon's view of the
/// client's active path (`used`) and of a second, disjoint one (`other`).
struct Live {
    _emu: EmuHandle,
    client: ScionEndpoint,
    client_addr: ScionAddr,
    server_addr: ScionAddr,
    serving: tokio::task::JoinHandle<(u64, ScionEndpoint)>,
    _conn: quinn::Connection,
    send: quinn::SendStream,
    sent: u64,
    used: scion_transport::wire::ScionPath,
    other: scion_transport::wire::ScionPath,
    _dir: TempDir,
}

impl Live {
    async fn start() -> Live {
        let Net {
            emu,
            client,
            server,
            _dir,
        } = net().await;
        let server_addr = server.local_addr();
        let client_addr = client.local_addr();
        let (serving, conn) = serve_and_dial(server, &client).await;
        let mut send = conn.open_uni().await.expect("open");
        let data: Vec<u8> = (0..4096u64).map(pattern).collect();
        send.write_all(&data).await.expect("write");
        let active = client
            .path_stats(server_addr)
            .into_iter()
            .find(|c| c.active)
            .expect("an active path");
        let daemon = scion_transport::daemon::DaemonClient::connect(
            &emu.daemon_addr(client_addr.ia).expect("daemon").to_string(),
        )
        .await
        .expect("daemon");
        let paths = daemon
            .paths(client_addr.ia, server_addr.ia, false)
            .await
            .expect("paths");
        let used = paths
            .iter()
            .find(|p| p.fingerprint == active.info.fingerprint.0)
            .expect("the active path from the daemon")
            .clone();
        let other = paths
            .iter()
            .find(|p| p.fingerprint != active.info.fingerprint.0)
            .expect("a second path")
            .clone();
        assert!(
            !other.interfaces.iter().any(|h| used.interfaces.contains(h)),
            "the two paths are disjoint"
        );
        // Both paths answering before anything is forged: with every path down, the first
        // answer revives one, too soon for these tests to see it down.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !client
            .path_stats(server_addr)
            .iter()
            .all(|c| c.state == scion_transport::path::PathState::Alive)
        {
            assert!(Instant::now() < deadline, "both paths alive");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Live {
            _emu: emu,
            client,
            client_addr,
            server_addr,
            serving,
            _conn: conn,
            send,
            sent: data.len() as u64,
            used,
            other,
            _dir,
        }
    }

    /// Sends `kind` from `from`, quoting our packet to the server over `path`.
    async fn forge(
        &self,
        from: IsdAsn,
        path: &scion_transport::wire::DataPath,
        kind: scion_transport::wire::ScmpKind,
    ) {
        forge_scmp(from, self.client_addr, self.server_addr, path, kind).await;
    }

    /// The reasons of the paths SCMP marked Down (probe loss on a loaded machine is not
    /// what these tests are about).
    fn down(&self) -> Vec<String> {
        self.client
            .path_stats(self.server_addr)
            .iter()
            .filter(|c| c.state == scion_transport::path::PathState::Down)
            .filter_map(|c| c.reason.clone())
            .filter(|r| r.contains("SCMP"))
            .collect()
    }

    fn active_is(&self, path: &scion_transport::wire::ScionPath) -> bool {
        self.client
            .path_stats(self.server_addr)
            .iter()
            .any(|c| c.active && c.info.fingerprint.0 == path.fingerprint)
    }

    /// Waits (at most `secs`) until `done` holds.
    async fn until(&self, secs: u64, what: &str, done: impl Fn(&Live) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(self) {
            assert!(Instant::now() < deadline, "{what}: down {:?}", self.down());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the stream and checks that the server got every byte.
    async fn finish(mut self) {
        finish_and_check(&mut self.send, self.serving, self.sent).await;
    }
}

/// SCMP errors are unauthenticated. One that no border router on our path could have sent
/// (from another AS than the one it reports on, quoting a packet over hop fields we never used,
/// or naming an interface the quoted path does not cross) moves nothing; the same error with
/// the right sender, quote and interface marks the path down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_scmp_errors_move_no_path() {
    use scion_transport::wire::ScmpKind;
    captured_logs();
    let l = Live::start().await;
    let first = l.used.interfaces[0];
    let down = ScmpKind::ExternalInterfaceDown {
        ia: first.ia,
        ifid: first.ifid.into(),
    };
    // Hop fields we never sent on: the active path's with one MAC byte changed.
    let mut raw = l.used.data.raw().to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 0x5a;
    let tampered =
        scion_transport::wire::DataPath::from_raw(bytes::Bytes::from(raw)).expect("tampered");
    l.forge(l.server_addr.ia, &l.used.data, down.clone()).await;
    l.forge(first.ia, &tampered, down.clone()).await;
    l.forge(first.ia, &l.other.data, down.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(l.down().is_empty(), "forged SCMP marked {:?}", l.down());
    assert_eq!(scmp_marked_lines(l.server_addr), 0);
    assert!(l.active_is(&l.used), "the active path stayed");
    // The control: from the AS it reports on, quoting our packet, naming an interface the
    // path crosses. (Still forged, so the link is fine and probes bring the path back: at
    // once when the other path happens to be down too, from probe loss on a loaded machine,
    // so the log line is what shows it was acted on.)
    l.forge(first.ia, &l.used.data, down).await;
    l.until(5, "a well-formed SCMP error is acted on", |l| {
        scmp_marked_lines(l.server_addr) == 1
    })
    .await;
    l.until(10, "the path comes back", |l| l.down().is_empty())
        .await;
    l.finish().await;
}

/// An SCMP Parameter Problem about the path itself (here: invalid hop field MAC, as a router
/// sends after a key change) from an AS on our active path marks that path down and moves the
/// stream to another one; one about another header field, or from an AS off the path, does
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scmp_parameter_problem_on_the_path_moves_the_stream() {
    use scion_transport::wire::ScmpKind;
    captured_logs();
    let l = Live::start().await;
    let on_path = l.used.interfaces[0].ia;
    let off_path = ia("1-ff00:0:999");
    assert!(!l.used.interfaces.iter().any(|h| h.ia == off_path));
    let mac = ScmpKind::ParameterProblem {
        code: 51,
        pointer: 0,
    };
    l.forge(off_path, &l.used.data, mac.clone()).await;
    let size = ScmpKind::ParameterProblem {
        code: 19,
        pointer: 0,
    };
    l.forge(on_path, &l.used.data, size).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(l.down().is_empty(), "marked {:?}", l.down());
    assert!(l.active_is(&l.used), "the active path stayed");
    l.forge(on_path, &l.used.data, mac.clone()).await;
    l.until(5, "the path is marked down and left", |l| {
        l.down()
            .iter()
            .any(|r| r.contains("invalid hop field MAC (code 51)"))
            && l.active_is(&l.other)
    })
    .await;
    // Every probe over a broken path draws the error again: only the first is logged (and
    // asks the daemon for fresh paths), not each repeat.
    l.forge(on_path, &l.used.data, mac.clone()).await;
    l.forge(on_path, &l.used.data, mac).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let remote = format!("remote={}", l.server_addr);
    let marked =
        String::from_utf8_lossy(&captured_logs().lock().unwrap_or_else(|e| e.into_inner()))
            .lines()
            .filter(|line| {
                line.contains(&remote) && line.contains("asking the daemon for fresh paths")
            })
            .count();
    assert_eq!(marked, 1, "one 'path marked down' line for three errors");
    l.until(10, "the path comes back", |l| l.down().is_empty())
        .await;
    l.finish().await;
}

/// A host whose port is outside its AS's dispatched range gets its packets through a shim
/// dispatcher on 30041, which drops what is sent back to it. So the host answers (handshake,
/// data, probe echoes) through the border router of the interface each packet came in
/// through, as scionproto's snet does; without that, the handshake or the dialer's probes are
/// never answered. The border routers' addresses come from the daemon here (no topology file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_behind_a_shim_dispatcher_answers_through_the_border_router() {
    use scion_transport::topology::DispatchedPorts;
    // An address of its own, so no other test's shim holds ip:30041.
    let ip: std::net::IpAddr = "127.0.0.77".parse().expect("ip");
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions {
            shim: Some(ip),
            ..EmuOptions::default()
        },
    )
    .await
    .expect("emulator with a shim");
    assert_eq!(emu.shim_addr(), Some(std::net::SocketAddr::new(ip, 30041)));
    let server_ia = ia("1-ff00:0:112");
    let daemon = scion_transport::daemon::DaemonClient::connect(
        &emu.daemon_addr(server_ia).expect("daemon").to_string(),
    )
    .await
    .expect("daemon");
    let range = daemon
        .port_range()
        .await
        .expect("PortRange")
        .expect("a range");
    // A port above the dispatched range: the first free one from a random start.
    let DispatchedPorts::Range(_, hi) = range else {
        panic!("the emulator dispatches a range, got {range}")
    };
    let tls = TlsConfig::self_signed(&["server.test"]).expect("cert");
    let start = u32::from(hi) + 1 + rand_u32() % 2000;
    let mut server = None;
    for port in (start..start + 50).filter_map(|p| u16::try_from(p).ok()) {
        let mut cfg = TransportConfig::new(
            ScionAddr {
                ia: server_ia,
                ip,
                port,
            },
            tls.clone(),
        );
        cfg.daemon = Some(emu.daemon_addr(server_ia).expect("daemon").to_string());
        if let Ok(ep) = ScionEndpoint::bind(cfg).await {
            server = Some(ep);
            break;
        }
    }
    let server = server.expect("a free port above the dispatched range");
    assert!(!range.contains(server.local_addr().port));
    let dir =
        std::env::temp_dir().join(format!("scion-shim-{}-{}", std::process::id(), rand_u32()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let _dir = TempDir(dir.clone());
    let client = endpoint(&emu, &dir, "1-ff00:0:111", &tls, |_| {}).await;
    let server_addr = server.local_addr();
    let (serving, conn) = serve_and_dial(server, &client).await;
    let mut send = conn.open_uni().await.expect("open");
    let data: Vec<u8> = (0..256 * 1024u64).map(pattern).collect();
    send.write_all(&data).await.expect("write");
    send.finish().expect("finish");
    let (got, _server) = timeout(Duration::from_secs(20), serving)
        .await
        .expect("server finished")
        .expect("join");
    assert_eq!(got, data.len() as u64, "every byte through the shim");
    // The dialer's probes reach the host through the shim; their echoes must come back.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = client.path_stats(server_addr);
        if stats.iter().any(|c| c.probes_answered > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no probe answered through the shim: {:?}",
            stats
                .iter()
                .map(|c| (c.probes_sent, c.probes_answered, c.state))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SCIONLab routes outlive their hop fields (6 h at most), so paths are refreshed from the
/// daemon under a live stream: here they live 337.5 s and come 30 s old, 7.5 s inside the
/// selector's 5-minute refresh margin. The stream moves onto fresh hop fields twice, with
/// every byte in order and no failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_survives_hop_field_refreshes() {
    use scion_transport::emu::paths::HopLifetime;
    captured_logs();
    let options = EmuOptions {
        hops: HopLifetime {
            exp_time: 0,
            age: Duration::from_secs(30),
        },
        ..EmuOptions::default()
    };
    let n = net_opts(TOPO, options, |_| {}).await;
    let server_addr = n.server.local_addr();
    let (server, conn) = serve_and_dial(n.server, &n.client).await;
    let mut events = n.client.path_events();
    let mut send = conn.open_uni().await.expect("open");
    let mut sent = 0u64;
    let mut expiries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while expiries.len() < 3 && Instant::now() < deadline {
        let data: Vec<u8> = (sent..sent + 1024).map(pattern).collect();
        send.write_all(&data).await.expect("write");
        sent += 1024;
        let active = n
            .client
            .path_stats(server_addr)
            .into_iter()
            .find(|c| c.active);
        if let Some(e) = active.map(|c| c.info.expiry_unix_secs) {
            if expiries.last() != Some(&e) {
                expiries.push(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    finish_and_check(&mut send, server, sent).await;
    assert!(
        expiries.len() >= 3 && expiries.windows(2).all(|w| w[0] < w[1]),
        "the active path's hop fields were refreshed twice: expiries {expiries:?}"
    );
    let mut failovers = Vec::new();
    while let Ok(e) = events.try_recv() {
        if matches!(e.cause, SwitchCause::ScmpDown | SwitchCause::ProbeLoss) {
            failovers.push(e);
        }
    }
    assert!(failovers.is_empty(), "no failover: {failovers:?}");
}
