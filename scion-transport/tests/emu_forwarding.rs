//! The emulator's routers and daemons, driven through the same daemon client and wire module
//! the transport uses.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::daemon::DaemonClient;
use scion_transport::emu::{EmuOptions, Emulator, LinkChange, LinkState, Topology};
use scion_transport::wire::{self, Received, ScmpKind};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const TOPO: &str = r#"
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
    latency_ms = 2
    [[link]]
    a = "1-ff00:0:110#2"
    b = "1-ff00:0:112#1"
    [[link]]
    a = "1-ff00:0:111#2"
    b = "1-ff00:0:112#2"
    latency_ms = 1
    bandwidth_kbps = 50000
"#;

fn ia(s: &str) -> IsdAsn {
    s.parse().expect("ia")
}

async fn host(ia: IsdAsn) -> (UdpSocket, ScionAddr) {
    // Port 0 is outside the dispatched range, so pick from the range by binding ports in it.
    for port in 31000..31500u16 {
        if let Ok(sock) = UdpSocket::bind(("127.0.0.1", port)).await {
            let addr = ScionAddr {
                ia,
                ip: "127.0.0.1".parse().expect("ip"),
                port,
            };
            return (sock, addr);
        }
    }
    panic!("no free port in the dispatched range");
}

async fn recv(sock: &UdpSocket) -> Received {
    let mut buf = vec![0u8; 65536];
    let (n, _) = timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .expect("timely packet")
        .expect("recv");
    wire::decode(Bytes::copy_from_slice(&buf[..n])).expect("decodes")
}

#[tokio::test]
async fn every_daemon_path_forwards_and_replies_come_back() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("start");
    let (src_ia, dst_ia) = (ia("1-ff00:0:111"), ia("1-ff00:0:112"));
    let daemon = DaemonClient::connect(&emu.daemon_addr(src_ia).expect("daemon").to_string())
        .await
        .expect("connect");
    let local = daemon.local_as().await.expect("AS call");
    assert_eq!(local.ia, src_ia);
    let paths = daemon.paths(src_ia, dst_ia, false).await.expect("paths");
    assert_eq!(paths.len(), 2, "direct and via the core");
    let (a, a_addr) = host(src_ia).await;
    let (b, b_addr) = host(dst_ia).await;
    for (i, path) in paths.iter().enumerate() {
        let payload = Bytes::from(format!("hello {i}"));
        let pkt = wire::encode_udp(&a_addr, &b_addr, &path.data, payload.clone()).expect("enc");
        let next_hop: SocketAddr = path.next_hop.expect("next hop");
        // The links' latency is applied in both directions (the delay lines): the round trip
        // takes at least twice the path's one-way latency (1 ms direct, 2 ms via the core).
        let one_way: Duration = path.latency.iter().flatten().sum();
        assert!(one_way >= Duration::from_millis(1), "{:?}", path.latency);
        let sent = std::time::Instant::now();
        a.send_to(&pkt, next_hop).await.expect("send");
        let Received::Udp(got) = recv(&b).await else {
            panic!("expected UDP");
        };
        assert_eq!(got.payload, payload);
        assert_eq!(got.src, a_addr);
        // Reply on the reversed path through the destination AS's router.
        let reply = wire::encode_udp(
            &b_addr,
            &a_addr,
            &got.path.reversed().expect("rev"),
            Bytes::from_static(b"back"),
        )
        .expect("enc reply");
        b.send_to(&reply, emu.router_addr(dst_ia).expect("router"))
            .await
            .expect("send");
        let Received::Udp(back) = recv(&a).await else {
            panic!("expected UDP reply");
        };
        assert_eq!(&back.payload[..], b"back");
        let rtt = sent.elapsed();
        assert!(
            rtt >= 2 * one_way,
            "round trip {rtt:?} on a path of {one_way:?} one way"
        );
    }
    assert!(emu.stats().forwarded >= 6);
}

#[tokio::test]
async fn down_link_answers_with_scmp_and_blackhole_is_silent() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("start");
    let (src_ia, dst_ia) = (ia("1-ff00:0:111"), ia("1-ff00:0:112"));
    let daemon = DaemonClient::connect(&emu.daemon_addr(src_ia).expect("daemon").to_string())
        .await
        .expect("connect");
    let paths = daemon.paths(src_ia, dst_ia, false).await.expect("paths");
    // The path via the core leaves 111 by #1 and crosses 110#2 -> 112#1.
    let via_core = paths
        .iter()
        .find(|p| p.interfaces.len() == 4)
        .expect("path via core");
    let (a, a_addr) = host(src_ia).await;
    let (_b, b_addr) = host(dst_ia).await;
    let end = "1-ff00:0:112#1".parse::<String>().expect("s");
    let reply = emu.command(&format!("link {end} down")).expect("command");
    assert_eq!(reply, "ok");
    let pkt = wire::encode_udp(
        &a_addr,
        &b_addr,
        &via_core.data,
        Bytes::from(vec![0x40; 1200]),
    )
    .expect("enc");
    a.send_to(&pkt, via_core.next_hop.expect("hop"))
        .await
        .expect("send");
    let Received::Scmp(report) = recv(&a).await else {
        panic!("expected SCMP");
    };
    assert_eq!(
        report.kind,
        ScmpKind::ExternalInterfaceDown {
            ia: ia("1-ff00:0:110"),
            ifid: 2
        }
    );
    let quoted = report.quoted.expect("quoted packet parsed");
    assert_eq!(quoted.src, a_addr);
    assert_eq!(quoted.dst, b_addr);

    // Blackhole: nothing comes back at all.
    let link_end = scion_transport::emu::topo::parse_link_end("1-ff00:0:110#2").expect("end");
    emu.set_link(link_end, LinkChange::State(LinkState::Blackhole))
        .expect("set");
    let dropped_before = emu.stats().dropped;
    a.send_to(&pkt, via_core.next_hop.expect("hop"))
        .await
        .expect("send");
    let mut buf = [0u8; 2048];
    assert!(timeout(Duration::from_millis(300), a.recv_from(&mut buf))
        .await
        .is_err());
    assert!(emu.stats().dropped > dropped_before);
}

#[tokio::test]
async fn bad_mac_gets_parameter_problem() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("start");
    let (src_ia, dst_ia) = (ia("1-ff00:0:111"), ia("1-ff00:0:112"));
    let daemon = DaemonClient::connect(&emu.daemon_addr(src_ia).expect("daemon").to_string())
        .await
        .expect("connect");
    let paths = daemon.paths(src_ia, dst_ia, false).await.expect("paths");
    let (a, a_addr) = host(src_ia).await;
    let (_b, b_addr) = host(dst_ia).await;
    let mut pkt =
        wire::encode_udp(&a_addr, &b_addr, &paths[0].data, Bytes::from_static(b"x")).expect("enc");
    // Flip one bit of the first hop field's MAC: 12 common + 16 IA + 8 hosts + 4 meta + 8 info
    // + 6 into the hop field.
    let mac_byte = 12 + 16 + 8 + 4 + 8 + 6;
    pkt[mac_byte] ^= 1;
    a.send_to(&pkt, paths[0].next_hop.expect("hop"))
        .await
        .expect("send");
    let Received::Scmp(report) = recv(&a).await else {
        panic!("expected SCMP");
    };
    assert!(matches!(
        report.kind,
        ScmpKind::ParameterProblem { code: 51, .. }
    ));
}

#[tokio::test]
async fn control_socket_takes_commands() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("start");
    let ctl = emu.control_addr();
    // A change is answered "ok" and shows in `show`.
    for (change, shown) in [
        ("latency 30", "latency_ms=30 "),
        ("jitter 2", "latency_ms=30 jitter_ms=2 "),
    ] {
        let ok = scion_transport::emu::send_control(ctl, &format!("link 1-ff00:0:110#1 {change}"))
            .await
            .expect("answer");
        assert_eq!(ok, "ok");
        let show = scion_transport::emu::send_control(ctl, "show")
            .await
            .expect("show");
        assert!(show.contains(shown), "{show}");
    }
    let err = scion_transport::emu::send_control(ctl, "link 9-9#1 down")
        .await
        .expect("answer");
    assert!(err.starts_with("error:"), "{err}");
    let json = emu.topology_json(ia("1-ff00:0:111")).expect("json");
    let local = scion_transport::topology::LocalTopology::parse(&json).expect("parse own json");
    assert_eq!(
        local.dispatched_ports,
        scion_transport::topology::DispatchedPorts::Range(31000, 32767)
    );
    // What each neighbour is to 111 (scionproto's link_to): the core 110 is its parent,
    // 112 (as far from the core) a peer; to the core, 111 is a child.
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let ifaces = v["border_routers"]
        .as_object()
        .and_then(|m| m.values().next())
        .map(|br| br["interfaces"].clone())
        .expect("interfaces");
    let link_to = |ifaces: &serde_json::Value, remote: &str| -> Vec<String> {
        ifaces
            .as_object()
            .expect("map")
            .values()
            .filter(|i| i["isd_as"] == remote)
            .map(|i| i["link_to"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(link_to(&ifaces, "1-ff00:0:110"), vec!["parent"], "{json}");
    assert_eq!(link_to(&ifaces, "1-ff00:0:112"), vec!["peer"], "{json}");
    let core: serde_json::Value =
        serde_json::from_str(&emu.topology_json(ia("1-ff00:0:110")).expect("json")).expect("json");
    let core_ifaces = core["border_routers"]
        .as_object()
        .and_then(|m| m.values().next())
        .map(|br| br["interfaces"].clone())
        .expect("interfaces");
    assert_eq!(link_to(&core_ifaces, "1-ff00:0:111"), vec!["child"]);
    assert_eq!(
        local.border_routers[0].internal_addr,
        emu.router_addr(ia("1-ff00:0:111")).expect("r")
    );
}

/// GSO bursts (equal-size packets, the last of each burst shorter) cross the routers' batched
/// fast path and the shaped delay line in order, and a bad packet in between is answered with
/// SCMP without disturbing the stream around it.
#[tokio::test]
async fn gso_bursts_keep_order_through_batching_and_delay_lines() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("start");
    let (src_ia, dst_ia) = (ia("1-ff00:0:111"), ia("1-ff00:0:112"));
    let daemon = DaemonClient::connect(&emu.daemon_addr(src_ia).expect("daemon").to_string())
        .await
        .expect("connect");
    let paths = daemon.paths(src_ia, dst_ia, false).await.expect("paths");
    assert_eq!(paths.len(), 2);
    let (a, a_addr) = host(src_ia).await;
    let a_state = quinn_udp::UdpSocketState::new((&a).into()).expect("state");
    let (b, b_addr) = host(dst_ia).await;
    // Best effort, so the receiver never overflows while the test reads.
    let _ = socket2::SockRef::from(&b).set_recv_buffer_size(4 << 20);
    const ROUNDS: u32 = 10;
    const BURST: u32 = 32;
    // Both paths: direct (1 ms, 50 Mbit/s: the delay line) and via the core (2 ms, then an
    // unshaped link: the delay line, then the batched fast path).
    for path in &paths {
        let next_hop: SocketAddr = path.next_hop.expect("next hop");
        let packet = |seq: u32, len: usize| {
            let mut payload = vec![0u8; len];
            payload[..4].copy_from_slice(&seq.to_be_bytes());
            wire::encode_udp(&a_addr, &b_addr, &path.data, Bytes::from(payload)).expect("enc")
        };
        let expected = (ROUNDS * BURST) as usize;
        let receiver = async {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while got.len() < expected {
                let Ok(Ok((n, _))) = timeout(Duration::from_secs(2), b.recv_from(&mut buf)).await
                else {
                    break;
                };
                if let Ok(Received::Udp(udp)) = wire::decode(Bytes::copy_from_slice(&buf[..n])) {
                    got.push(u32::from_be_bytes(
                        udp.payload[..4].try_into().expect("seq"),
                    ));
                }
            }
            got
        };
        let sender = async {
            let mut seq = 0;
            for round in 0..ROUNDS {
                let mut burst = Vec::new();
                let mut segment = 0;
                for i in 0..BURST {
                    let pkt = packet(seq, if i + 1 == BURST { 40 } else { 100 });
                    segment = segment.max(pkt.len());
                    burst.extend_from_slice(&pkt);
                    seq += 1;
                }
                let transmit = quinn_udp::Transmit {
                    destination: next_hop,
                    ecn: None,
                    contents: &burst,
                    segment_size: Some(segment),
                    src_ip: None,
                };
                a.async_io(tokio::io::Interest::WRITABLE, || {
                    a_state.try_send((&a).into(), &transmit)
                })
                .await
                .expect("GSO send");
                if round == ROUNDS / 2 {
                    let mut bad = packet(u32::MAX, 100);
                    bad[12 + 16 + 8 + 4 + 8 + 6] ^= 1;
                    a.send_to(&bad, next_hop).await.expect("send");
                }
            }
        };
        let (got, ()) = tokio::join!(receiver, sender);
        let want: Vec<u32> = (0..ROUNDS * BURST).collect();
        assert_eq!(got, want, "path {:?}", path.interfaces);
        let Received::Scmp(report) = recv(&a).await else {
            panic!("expected SCMP for the bad MAC");
        };
        assert!(matches!(
            report.kind,
            ScmpKind::ParameterProblem { code: 51, .. }
        ));
    }
}
