//! Interop with a SCION implementation nobody here wrote: Anapaya's PocketSCION 0.8.6.
//!
//! Our emulator could share our mistakes, so these tests run the transport against
//! PocketSCION's daemons (gRPC, answered by its own path combinator) and border routers (which
//! check hop-field MACs and answer a down link with SCMP External-Interface-Down), through the
//! same daemon client and socket code used against a real `sciond`.
//!
//! PocketSCION runs in its own process: the wrapper in `interop/pocketscion/` (its own Cargo
//! workspace, since PocketSCION pulls BoringSSL and newer scion crates). The wrapper's path
//! comes from `POCKETSCION_BIN`; `scripts/pocketscion-interop.sh` builds it and runs these
//! tests. They are `#[ignore]`d in a plain `cargo test` because the wrapper takes minutes to
//! build; run with `--ignored` and no `POCKETSCION_BIN`, they fail loudly instead of passing.
//!
//! Wrapper topology: core 1-ff00:0:110 with children 1-ff00:0:111 and 1-ff00:0:112, each by
//! two parallel parent-child links (110#1-111#1, 110#2-111#2, 110#3-112#1, 110#4-112#2).
//! Facts of PocketSCION 0.8.6 these tests account for:
//! - every path's metadata MTU is 1280 and carries no latency/bandwidth, so only one-segment
//!   (two-hop) paths leave the 1200 bytes QUIC needs: core <-> child works, child <-> child
//!   (two segments, 112 B of SCION/UDP header) is filtered by MTU, as it must be;
//! - its daemon keeps listing paths over a link that is down;
//! - its routers deliver to the destination IP and port for any port (PortRange 1-65535).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::daemon::DaemonClient;
use scion_transport::path::{CandidateView, PathState, SwitchCause};
use scion_transport::quic::{ConnectError, ScionEndpoint, TlsConfig, TransportConfig};
use scion_transport::socket::{PathError, PathEvent};
use scion_transport::wire::{self, DataPath, Received, ScmpKind};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

const BIN_ENV: &str = "POCKETSCION_BIN";
const CORE: &str = "1-ff00:0:110";
const LEAF_A: &str = "1-ff00:0:111";
const LEAF_B: &str = "1-ff00:0:112";
const SERVER_NAME: &str = "server.test";
/// Bound on PocketSCION's start-up (it builds certificates and segments before answering).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
struct Ready {
    event: String,
    ases: Vec<AsEntry>,
    links: Vec<LinkEntry>,
}

#[derive(Debug, Deserialize)]
struct AsEntry {
    ia: String,
    core: bool,
    daemon: String,
    router: String,
    interfaces: Vec<u16>,
}

#[derive(Debug, Deserialize)]
struct LinkEntry {
    parent: String,
    parent_if: u16,
    child: String,
    child_if: u16,
}

fn ia(s: &str) -> IsdAsn {
    s.parse().expect("ISD-AS")
}

/// A running PocketSCION wrapper process.
struct Pocket {
    _child: Child,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
    ready: Ready,
}

impl Pocket {
    async fn start() -> Pocket {
        let bin = std::env::var(BIN_ENV)
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "\n\n*** {BIN_ENV} is not set: the PocketSCION interop tests cannot run. ***\n\
                 Build the wrapper and run them with: bash scripts/pocketscion-interop.sh\n\n"
                )
            });
        let mut child = Command::new(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN_ENV}={bin}: {e}"));
        let stdin = child.stdin.take().expect("stdin piped");
        let mut out = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        let line = timeout(START_TIMEOUT, out.next_line())
            .await
            .expect("PocketSCION printed its ready line in time")
            .expect("read wrapper stdout")
            .expect("wrapper exited before its ready line");
        let ready: Ready = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("ready line is not the expected JSON ({e}): {line}"));
        assert_eq!(ready.event, "ready");
        eprintln!("PocketSCION: {line}");
        Pocket {
            _child: child,
            stdin,
            out,
            ready,
        }
    }

    fn as_entry(&self, ia: &str) -> &AsEntry {
        self.ready
            .ases
            .iter()
            .find(|a| a.ia == ia)
            .unwrap_or_else(|| panic!("wrapper has no AS {ia}: {:?}", self.ready))
    }

    fn daemon(&self, ia: &str) -> String {
        self.as_entry(ia).daemon.clone()
    }

    fn router(&self, ia: &str) -> SocketAddr {
        self.as_entry(ia).router.parse().expect("router address")
    }

    /// Sends one command line and returns the wrapper's answer line.
    async fn command(&mut self, line: &str) -> String {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to wrapper");
        self.stdin.flush().await.expect("flush wrapper stdin");
        timeout(COMMAND_TIMEOUT, self.out.next_line())
            .await
            .expect("wrapper answered in time")
            .expect("read wrapper stdout")
            .expect("wrapper exited")
    }
}

fn tls() -> TlsConfig {
    TlsConfig::self_signed(&[SERVER_NAME]).expect("certificate")
}

async fn endpoint(pocket: &Pocket, as_: &str, tls: &TlsConfig) -> ScionEndpoint {
    endpoint_with(pocket, as_, tls, 1).await
}

/// `redundancy` > 1 sends every datagram over that many disjoint paths at once.
async fn endpoint_with(
    pocket: &Pocket,
    as_: &str,
    tls: &TlsConfig,
    redundancy: usize,
) -> ScionEndpoint {
    let mut cfg = TransportConfig::new(
        ScionAddr {
            ia: ia(as_),
            ip: "127.0.0.1".parse().expect("ip"),
            port: 0,
        },
        tls.clone(),
    );
    // No topology.json: PocketSCION has none, and its routers deliver to any port.
    cfg.daemon = Some(pocket.daemon(as_));
    cfg.selector.redundancy = redundancy;
    timeout(Duration::from_secs(10), ScionEndpoint::bind(cfg))
        .await
        .expect("bind in time")
        .expect("bind against PocketSCION's daemon")
}

fn active(stats: &[CandidateView]) -> &CandidateView {
    stats
        .iter()
        .find(|c| c.active)
        .unwrap_or_else(|| panic!("an active path, got {stats:#?}"))
}

fn uses(c: &CandidateView, as_: &str, ifid: u16) -> bool {
    let ia = ia(as_);
    c.info
        .interfaces
        .iter()
        .any(|i| i.ia == ia && i.ifid == ifid)
}

/// Byte `i` of the test stream.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// Our daemon client against PocketSCION's daemons: local AS, path lists with first-hop
/// routers, interfaces and metadata as PocketSCION fills them; and our MTU filter rejecting
/// the two-segment child-to-child paths instead of sending packets the path cannot carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs POCKETSCION_BIN (run scripts/pocketscion-interop.sh)"]
async fn daemon_answers_through_our_client() {
    let mut pocket = Pocket::start().await;
    assert_eq!(pocket.ready.ases.len(), 3, "{:?}", pocket.ready);
    assert_eq!(pocket.ready.links.len(), 4, "{:?}", pocket.ready);
    for l in &pocket.ready.links {
        assert!(pocket.as_entry(&l.parent).interfaces.contains(&l.parent_if));
        assert!(pocket.as_entry(&l.child).interfaces.contains(&l.child_if));
    }
    for a in &pocket.ready.ases {
        let d = DaemonClient::connect(&a.daemon).await.expect("connect");
        let info = d.local_as().await.expect("AS call");
        assert_eq!(info.ia, ia(&a.ia), "daemon at {} serves {}", a.daemon, a.ia);
        assert_eq!(info.core, a.core, "{}", a.ia);
    }

    let d = DaemonClient::connect(&pocket.daemon(LEAF_A))
        .await
        .expect("connect");
    let up = d.paths(ia(LEAF_A), ia(CORE), false).await.expect("paths");
    assert_eq!(up.len(), 2, "two parallel links, two paths: {up:#?}");
    let router_a = pocket.router(LEAF_A);
    for p in &up {
        assert_eq!(p.next_hop, Some(router_a), "first hop is 111's router");
        assert_eq!(p.interfaces.len(), 2, "one link: {p:?}");
        assert!(p.mtu >= 1280, "{p:?}");
        assert!(
            p.latency.iter().all(Option::is_none),
            "PocketSCION announces no latency: {p:?}"
        );
        assert!(p.expiry > SystemTime::now(), "{p:?}");
    }
    assert_ne!(up[0].fingerprint, up[1].fingerprint);
    let wrapper_count = pocket.command(&format!("paths {LEAF_A} {CORE}")).await;
    assert_eq!(wrapper_count, "ok 2", "PocketSCION's own count");

    let across = d.paths(ia(LEAF_A), ia(LEAF_B), false).await.expect("paths");
    assert_eq!(across.len(), 4, "2 up x 2 down segments: {across:#?}");
    assert!(across.iter().all(|p| p.interfaces.len() == 4));
    let mtu = across[0].mtu;

    // Two segments of two hops with IPv4 hosts: 36 + 8 + 4 + 2*8 + 4*12 = 112 B of SCION/UDP
    // header; at PocketSCION's 1280-byte MTU that leaves less than QUIC's 1200.
    let tls = tls();
    let client = endpoint(&pocket, LEAF_A, &tls).await;
    let nowhere = ScionAddr {
        ia: ia(LEAF_B),
        ip: "127.0.0.1".parse().expect("ip"),
        port: 9,
    };
    match client.connect(nowhere, SERVER_NAME).await {
        Err(ConnectError::Path(PathError::NoUsablePath { count, .. })) if mtu < 1312 => {
            assert_eq!(count, 4);
            let stats = client.path_stats(nowhere);
            assert!(
                stats.iter().all(|c| c.state == PathState::Filtered
                    && c.reason.as_deref().is_some_and(|r| r.contains("MTU"))),
                "{stats:#?}"
            );
        }
        Err(ConnectError::Handshake { .. }) if mtu >= 1312 => {}
        other => panic!("MTU {mtu}: unexpected outcome {other:?}"),
    }
    assert_eq!(pocket.command("quit").await, "ok");
}

/// Pauses between two reads longer than this are reported with their time.
const NOTABLE_PAUSE: Duration = Duration::from_millis(50);

/// Accepts one connection and one stream and checks every byte; returns the byte count, the
/// longest pause between two reads, the notable pauses (end time, length) and the peer.
async fn serve_and_check(
    server: &ScionEndpoint,
) -> (
    u64,
    Duration,
    Vec<(SystemTime, Duration)>,
    Option<ScionAddr>,
) {
    let incoming = timeout(Duration::from_secs(15), server.accept())
        .await
        .expect("incoming in time")
        .expect("endpoint open");
    let conn = incoming.await.expect("server handshake");
    let remote = server.remote_of(&conn);
    let mut recv = conn.accept_uni().await.expect("stream");
    let mut got = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = None::<Instant>;
    let mut worst = Duration::ZERO;
    let mut pauses = Vec::new();
    while let Some(n) = recv.read(&mut buf).await.expect("read") {
        for (k, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                pattern(got + k as u64),
                "byte {} out of order or corrupt",
                got + k as u64
            );
        }
        got += n as u64;
        let now = Instant::now();
        if let Some(t) = last {
            worst = worst.max(now - t);
            if now - t > NOTABLE_PAUSE {
                pauses.push((SystemTime::now(), now - t));
            }
        }
        last = Some(now);
    }
    (got, worst, pauses, remote)
}

/// QUIC from a host in 1-ff00:0:111 to one in the core, through PocketSCION's routers; the
/// active path's link is cut mid-stream. PocketSCION answers with SCMP External-Interface-Down,
/// the selector switches to the other link, and the server sees every byte in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs POCKETSCION_BIN (run scripts/pocketscion-interop.sh)"]
async fn quic_stream_survives_a_link_cut() {
    stream_through_cut(1).await;
}

/// The same cut in redundant mode (every datagram over both disjoint links): the stream goes
/// on over the surviving copy, and the dead path leaves the active set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs POCKETSCION_BIN (run scripts/pocketscion-interop.sh)"]
async fn redundant_stream_survives_a_link_cut() {
    stream_through_cut(2).await;
}

async fn stream_through_cut(redundancy: usize) {
    let mut pocket = Pocket::start().await;
    let tls = tls();
    let server = endpoint_with(&pocket, CORE, &tls, redundancy).await;
    let client = endpoint_with(&pocket, LEAF_A, &tls, redundancy).await;
    let server_addr = server.local_addr();
    let server_task = tokio::spawn(async move {
        let r = serve_and_check(&server).await;
        (r, server)
    });

    let t = Instant::now();
    let conn = timeout(
        Duration::from_secs(15),
        client.connect(server_addr, SERVER_NAME),
    )
    .await
    .expect("handshake in time")
    .expect("handshake through PocketSCION");
    eprintln!(
        "handshake through PocketSCION: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Both links must be usable before the cut (in redundant mode: both in the active set).
    let waited = Instant::now();
    loop {
        let stats = client.path_stats(server_addr);
        let in_set = stats.iter().filter(|c| c.in_active_set).count();
        if stats.len() == 2 && in_set == redundancy {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "active set never reached {redundancy}: {stats:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut events = client.path_events();
    let mut send = conn.open_uni().await.expect("open");

    let block = 1024u64;
    let rounds = 1500u64;
    let cut_round = 400u64;
    let mut sent = 0u64;
    let mut cut: Option<(u16, SystemTime, u64)> = None;
    let start = Instant::now();
    for round in 0..rounds {
        let data: Vec<u8> = (sent..sent + block).map(pattern).collect();
        timeout(Duration::from_secs(10), send.write_all(&data))
            .await
            .expect("stream not stalled")
            .expect("write");
        sent += block;
        if round == cut_round {
            let stats = client.path_stats(server_addr);
            assert_eq!(stats.len(), 2, "{stats:#?}");
            let in_set = stats.iter().filter(|c| c.in_active_set).count();
            assert_eq!(in_set, redundancy, "active set size: {stats:#?}");
            let act = active(&stats);
            let first = act.info.interfaces[0];
            assert_eq!(first.ia, ia(LEAF_A), "{act:?}");
            // Read before the command: the switch follows within a millisecond or so.
            let switches_before = client.switch_count(server_addr);
            let at = SystemTime::now();
            let answer = pocket
                .command(&format!("link {LEAF_A} {} down", first.ifid))
                .await;
            assert_eq!(answer, "ok up", "PocketSCION took the link down");
            eprintln!(
                "cut {LEAF_A}#{} after {sent} bytes (active path {})",
                first.ifid,
                act.info.hop_sequence()
            );
            cut = Some((first.ifid, at, switches_before));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    send.finish().expect("finish");
    let ((got, worst_pause, pauses, client_seen), server) =
        timeout(Duration::from_secs(30), server_task)
            .await
            .expect("server finished in time")
            .expect("server task");
    let elapsed = start.elapsed();
    assert_eq!(got, sent, "every byte arrived, in order (checked per byte)");

    let (ifid, cut_at, switches_before) = cut.expect("cut happened");
    let mut seen: Vec<PathEvent> = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    // In plain mode the cut must cause an SCMP-driven switch (in redundant mode it may not:
    // the other copy keeps flowing and the dead path just leaves the set).
    let switch = seen.iter().find(|e| e.cause == SwitchCause::ScmpDown);
    let reaction = switch.map(|e| e.at.duration_since(cut_at).unwrap_or(Duration::ZERO));
    if redundancy == 1 {
        let switch =
            switch.unwrap_or_else(|| panic!("an SCMP-driven switch on the client, got {seen:#?}"));
        let reaction = reaction.unwrap_or_default();
        assert!(
            reaction < Duration::from_secs(1),
            "switch {reaction:?} after the cut: {switch:?}"
        );
        assert!(client.switch_count(server_addr) > switches_before);
    }

    let stats = client.path_stats(server_addr);
    let now_active = active(&stats);
    assert!(
        !uses(now_active, LEAF_A, ifid),
        "client moved off the cut link: {stats:#?}"
    );
    let dead = stats
        .iter()
        .find(|c| uses(c, LEAF_A, ifid))
        .expect("the cut path is still known (PocketSCION's daemon keeps listing it)");
    assert_eq!(dead.state, PathState::Down, "{dead:#?}");
    assert!(!dead.in_active_set, "{dead:#?}");
    let dead_fp = dead.info.fingerprint;

    // Link back up: the watched Down path answers probes again and is revived.
    assert_eq!(
        pocket.command(&format!("link {LEAF_A} {ifid} up")).await,
        "ok down"
    );
    let up_at = Instant::now();
    let revived = loop {
        let state = client
            .path_stats(server_addr)
            .into_iter()
            .find(|c| c.info.fingerprint == dead_fp)
            .map(|c| c.state);
        if state == Some(PathState::Alive) {
            break up_at.elapsed();
        }
        assert!(
            up_at.elapsed() < Duration::from_secs(10),
            "path over the restored link not revived: {:#?}",
            client.path_stats(server_addr)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "restored link: path alive again after {:.0} ms",
        revived.as_secs_f64() * 1e3
    );

    // The accepting side runs its own selector toward the client: it must not be left on the
    // dead link either (its ACKs would be lost).
    let client_addr = client_seen.expect("server knows the client's SCION address");
    assert_eq!(client_addr, client.local_addr());
    let server_stats = server.path_stats(client_addr);
    if !server_stats.is_empty() {
        let s_active = active(&server_stats);
        assert!(
            !uses(s_active, LEAF_A, ifid),
            "server moved off the cut link: {server_stats:#?}"
        );
    }
    eprintln!(
        "PocketSCION failover (redundancy {redundancy}): {sent} bytes in {:.2} s, all in order; \
         SCMP-driven switch {} after the cut command ({}); longest read pause at the server \
         {:.1} ms (pauses over 50 ms: {:?}); client active path {}; server active path {}",
        elapsed.as_secs_f64(),
        reaction
            .map(|r| format!("{:.1} ms", r.as_secs_f64() * 1e3))
            .unwrap_or_else(|| "none".into()),
        switch
            .map(|e| format!("gap {:?}, new path {}", e.gap, e.hops))
            .unwrap_or_default(),
        worst_pause.as_secs_f64() * 1e3,
        pauses
            .iter()
            .map(|(end, len)| {
                let start = end.checked_sub(*len).unwrap_or(*end);
                let rel = match start.duration_since(cut_at) {
                    Ok(d) => d.as_secs_f64() * 1e3,
                    Err(e) => -e.duration().as_secs_f64() * 1e3,
                };
                format!(
                    "{:.0} ms starting {rel:+.0} ms from the cut",
                    len.as_secs_f64() * 1e3
                )
            })
            .collect::<Vec<_>>(),
        now_active.info.hop_sequence(),
        server_stats
            .iter()
            .find(|c| c.active)
            .map(|c| c.info.hop_sequence())
            .unwrap_or_else(|| "(reply path)".into()),
    );
    assert_eq!(pocket.command("quit").await, "ok");
}

/// After a cut, PocketSCION's daemon still lists the dead path. A fresh endpoint that has never
/// seen an SCMP for it must still connect and exchange data (the first packets over the dead
/// path draw SCMP, the selector moves on), and settle on the live link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs POCKETSCION_BIN (run scripts/pocketscion-interop.sh)"]
async fn fresh_endpoint_connects_while_daemon_lists_a_dead_path() {
    let mut pocket = Pocket::start().await;
    for ifid in [1u16, 2] {
        // Cut one link, then the other, each time with a fresh client endpoint.
        let other = 3 - ifid;
        assert_eq!(
            pocket.command(&format!("link {LEAF_A} {ifid} down")).await,
            "ok up"
        );
        assert_eq!(
            pocket.command(&format!("link {LEAF_A} {other} up")).await,
            if ifid == 1 { "ok up" } else { "ok down" }
        );
        let d = DaemonClient::connect(&pocket.daemon(LEAF_A))
            .await
            .expect("connect");
        let listed = d.paths(ia(LEAF_A), ia(CORE), true).await.expect("paths");
        assert_eq!(listed.len(), 2, "the daemon still lists the dead path");

        let tls = tls();
        let server = endpoint(&pocket, CORE, &tls).await;
        let client = endpoint(&pocket, LEAF_A, &tls).await;
        let server_addr = server.local_addr();
        let echo = tokio::spawn(async move {
            let incoming = timeout(Duration::from_secs(15), server.accept())
                .await
                .expect("incoming in time")
                .expect("open");
            let conn = incoming.await.expect("server handshake");
            let (mut s, mut r) = conn.accept_bi().await.expect("stream");
            let data = r.read_to_end(1 << 20).await.expect("read");
            s.write_all(&data).await.expect("echo");
            s.finish().expect("finish");
            // Keep the connection until the client has read the echo.
            let _ = timeout(Duration::from_secs(5), conn.closed()).await;
            server
        });
        let t = Instant::now();
        let conn = timeout(
            Duration::from_secs(15),
            client.connect(server_addr, SERVER_NAME),
        )
        .await
        .expect("handshake in time")
        .expect("handshake despite a dead path in the daemon's list");
        let handshake = t.elapsed();
        let (mut s, mut r) = conn.open_bi().await.expect("open");
        let msg: Vec<u8> = (0..32 * 1024u64).map(pattern).collect();
        s.write_all(&msg).await.expect("write");
        s.finish().expect("finish");
        let back = timeout(Duration::from_secs(10), r.read_to_end(1 << 20))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(back, msg, "echo intact");
        conn.close(0u32.into(), b"done");
        let _server = timeout(Duration::from_secs(10), echo)
            .await
            .expect("server done")
            .expect("server task");

        let stats = client.path_stats(server_addr);
        assert!(
            !uses(active(&stats), LEAF_A, ifid),
            "settled on the live link: {stats:#?}"
        );
        eprintln!(
            "with {LEAF_A}#{ifid} down: handshake {:.1} ms, switches {}, paths {:?}",
            handshake.as_secs_f64() * 1e3,
            client.switch_count(server_addr),
            stats
                .iter()
                .map(|c| format!("{} {}", c.info.hop_sequence(), c.state))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(pocket.command("quit").await, "ok");
}

/// Receives datagrams on `sock` until one decodes as SCION, or the deadline passes.
async fn recv_scion(sock: &tokio::net::UdpSocket, within: Duration) -> Received {
    recv_scion_from(sock, within).await.0
}

/// As [`recv_scion`], also returning the underlay sender (the last router).
async fn recv_scion_from(sock: &tokio::net::UdpSocket, within: Duration) -> (Received, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = timeout(within, sock.recv_from(&mut buf))
        .await
        .expect("an answer in time")
        .expect("recv");
    let received =
        wire::decode(bytes::Bytes::copy_from_slice(&buf[..n])).expect("decodable SCION packet");
    (received, from)
}

/// The checks above only mean something if PocketSCION really verifies what we send. A packet
/// built by our wire module on a daemon path is delivered to the destination host; the same
/// packet with one byte of the first hop field's MAC flipped is refused by 111's router with
/// SCMP Parameter Problem "invalid hop field MAC", which our decoder reads, quote included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs POCKETSCION_BIN (run scripts/pocketscion-interop.sh)"]
async fn routers_check_hop_field_macs() {
    let mut pocket = Pocket::start().await;
    let d = DaemonClient::connect(&pocket.daemon(LEAF_A))
        .await
        .expect("connect");
    let mut paths = Vec::new();
    for call in ["first", "second"] {
        let t = Instant::now();
        paths = d.paths(ia(LEAF_A), ia(CORE), false).await.expect("paths");
        eprintln!(
            "PocketSCION daemon Paths call ({call}): {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let path = paths.first().expect("a path");

    let sender = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let src = ScionAddr::new(ia(LEAF_A), "127.0.0.1".parse().expect("ip"), {
        sender.local_addr().expect("addr").port()
    });
    let dst = ScionAddr::new(ia(CORE), "127.0.0.1".parse().expect("ip"), {
        receiver.local_addr().expect("addr").port()
    });
    let router = path.next_hop.expect("first-hop router");
    let payload = bytes::Bytes::from_static(b"\x01interop");

    // Intact: delivered to dst's IP and port by the core's router.
    let pkt = wire::encode_udp(&src, &dst, &path.data, payload.clone()).expect("encode");
    sender.send_to(&pkt, router).await.expect("send");
    match recv_scion(&receiver, Duration::from_secs(5)).await {
        Received::Udp(udp) => {
            assert_eq!(udp.src, src);
            assert_eq!(udp.dst, dst);
            assert_eq!(udp.payload, payload);
        }
        other => panic!("expected the datagram, got {other:?}"),
    }

    // Hop field MAC: path meta header (4 B), info fields (8 B each), then the first hop field
    // (12 B: flags, expiry, two interface ids, 6-byte MAC).
    let (infos, _) = path.data.shape();
    let mut raw = path.data.raw().to_vec();
    let mac_byte = 4 + 8 * infos as usize + 6;
    raw[mac_byte] ^= 0x5a;
    let broken = DataPath::from_raw(bytes::Bytes::from(raw)).expect("still parses");
    let pkt = wire::encode_udp(&src, &dst, &broken, payload.clone()).expect("encode");
    sender.send_to(&pkt, router).await.expect("send");
    match recv_scion(&sender, Duration::from_secs(5)).await {
        Received::Scmp(report) => {
            // SCION SCMP spec, Parameter Problem code 51: invalid hop field MAC.
            assert!(
                matches!(report.kind, ScmpKind::ParameterProblem { code: 51, .. }),
                "{report:?}"
            );
            assert_eq!(report.from.0, ia(LEAF_A), "refused by the first router");
            let quoted = report.quoted.expect("the offending packet is quoted");
            assert_eq!(quoted.src, src);
            assert_eq!(quoted.dst, dst);
        }
        other => panic!("expected SCMP, got {other:?}"),
    }
    assert_eq!(pocket.command("quit").await, "ok");
}

/// Two-segment paths (up to the core, down to the other child) are too small for QUIC at
/// PocketSCION's MTU, but our wire code must still handle them: a datagram over one crosses
/// the segment change at the core, the answer goes back over OUR reversal of the path as it
/// arrived (every hop MAC checked again), and when the core's link toward the destination is
/// cut, the SCMP External-Interface-Down comes from the core (a remote AS), travels back over
/// a path PocketSCION reversed, and names an interface on our path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs POCKETSCION_BIN (run scripts/pocketscion-interop.sh)"]
async fn multi_segment_path_reversal_and_remote_scmp() {
    let mut pocket = Pocket::start().await;
    let d = DaemonClient::connect(&pocket.daemon(LEAF_A))
        .await
        .expect("connect");
    let paths = d.paths(ia(LEAF_A), ia(LEAF_B), false).await.expect("paths");
    let path = paths.first().expect("a path");
    assert_eq!(
        path.data.shape(),
        (2, 4),
        "two segments of two hops: {path:?}"
    );
    assert_eq!(path.interfaces.len(), 4, "{path:?}");

    let a_sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let b_sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a = ScionAddr::new(
        ia(LEAF_A),
        "127.0.0.1".parse().expect("ip"),
        a_sock.local_addr().expect("addr").port(),
    );
    let b = ScionAddr::new(
        ia(LEAF_B),
        "127.0.0.1".parse().expect("ip"),
        b_sock.local_addr().expect("addr").port(),
    );
    let router_a = path.next_hop.expect("first hop");
    let ping = bytes::Bytes::from_static(b"\x01ping over two segments");
    let pong = bytes::Bytes::from_static(b"\x01pong over our reversal");

    let pkt = wire::encode_udp(&a, &b, &path.data, ping.clone()).expect("encode");
    a_sock.send_to(&pkt, router_a).await.expect("send");
    let (received, router_b) = recv_scion_from(&b_sock, Duration::from_secs(5)).await;
    let Received::Udp(udp) = received else {
        panic!("expected the datagram at 112, got {received:?}");
    };
    assert_eq!((udp.src, udp.dst), (a, b));
    assert_eq!(udp.payload, ping);
    assert_eq!(router_b, pocket.router(LEAF_B), "delivered by 112's router");

    let back = udp.path.reversed().expect("reverse a two-segment path");
    let pkt = wire::encode_udp(&b, &a, &back, pong.clone()).expect("encode");
    b_sock.send_to(&pkt, router_b).await.expect("send");
    match recv_scion(&a_sock, Duration::from_secs(5)).await {
        Received::Udp(udp) => {
            assert_eq!((udp.src, udp.dst), (b, a));
            assert_eq!(udp.payload, pong);
        }
        other => panic!("expected the answer over the reversed path, got {other:?}"),
    }

    // Cut the core's link toward 112 (third interface in travel order: the core's egress).
    let core_egress = path.interfaces[2];
    assert_eq!(core_egress.ia, ia(CORE), "{path:?}");
    assert_eq!(
        pocket
            .command(&format!("link {CORE} {} down", core_egress.ifid))
            .await,
        "ok up"
    );
    let pkt = wire::encode_udp(&a, &b, &path.data, ping.clone()).expect("encode");
    a_sock.send_to(&pkt, router_a).await.expect("send");
    match recv_scion(&a_sock, Duration::from_secs(5)).await {
        Received::Scmp(report) => {
            assert_eq!(
                report.kind,
                ScmpKind::ExternalInterfaceDown {
                    ia: ia(CORE),
                    ifid: u64::from(core_egress.ifid),
                },
                "{report:?}"
            );
            assert_eq!(report.from.0, ia(CORE), "sent by the core's router");
            let quoted = report.quoted.expect("our packet is quoted");
            assert_eq!((quoted.src, quoted.dst), (a, b));
        }
        other => panic!("expected SCMP from the core, got {other:?}"),
    }
    assert_eq!(pocket.command("quit").await, "ok");
}
