//! The Rust API for NATS over SCION (issue 5, item 3):
//! `broker::scion_client::connect` gives an async-nats client whose
//! connection runs over QUIC/SCION to a broker's SCION client listener.
//!
//! In-process emulator (two ASes), loopback only, bounded waits.

use std::path::PathBuf;
use std::time::Duration;

use broker::options::{ListenAddr, Options, ScionOpts};
use broker::scion_client::{connect, ScionClientError, ScionClientOptions};
use futures::StreamExt;
use scion_transport::address::ScionAddr;
use scion_transport::emu::{EmuHandle, EmuOptions, Emulator, Topology};
use tokio::time::{timeout, Instant};

mod scion_common;
use scion_common::*;

struct Setup {
    _emu: EmuHandle,
    dir: TempDir,
    srv: broker::server::ServerHandle,
    upstream: ScionAddr,
    daemon_b: String,
    topo_b: PathBuf,
}

async fn setup(tag: &str) -> Setup {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topology"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let dir = temp_dir(tag);
    let (daemon_a, topo_a) = as_files(&emu, &dir, AS_A);
    let o = Options {
        host: "127.0.0.1".into(),
        port: -1,
        scion_listen: Some(ListenAddr::Scion {
            isd_as: AS_A.into(),
            ip: localhost(),
            port: 0,
        }),
        scion: Some(ScionOpts {
            daemon: Some(daemon_a),
            topology: Some(topo_a),
            ..Default::default()
        }),
        ..Default::default()
    };
    let srv = broker::server::start(o).await.expect("broker");
    let upstream = srv
        .state
        .scion
        .lock()
        .map(|g| g.client_endpoint.as_ref().map(|e| e.local_addr()))
        .ok()
        .flatten()
        .expect("SCION client endpoint");
    let (daemon_b, topo_b) = as_files(&emu, &dir, AS_B);
    Setup {
        _emu: emu,
        dir,
        srv,
        upstream,
        daemon_b,
        topo_b,
    }
}

fn opts_b(s: &Setup) -> ScionClientOptions {
    ScionClientOptions {
        daemon: Some(s.daemon_b.clone()),
        topology: Some(s.topo_b.clone()),
        nats: async_nats::ConnectOptions::new().name("api-over-scion"),
        ..Default::default()
    }
}

/// Waits until the broker has interest in `subject` (the subscriber's SUB
/// reached it), bounded.
async fn wait_interest(srv: &broker::server::ServerHandle, subject: &str) {
    let deadline = Instant::now() + WAIT;
    while !srv
        .state
        .sublist
        .read()
        .map(|g| g.has_interest(subject))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "no interest in {subject}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_request_over_scion_api() {
    let s = setup("scion-api").await;
    let nc = timeout(WAIT, connect(&format!("nats://{}", s.upstream), opts_b(&s)))
        .await
        .expect("in time")
        .expect("connect over SCION");
    assert!(!nc.authenticated());
    // Local address from B's daemon (no `local` given).
    assert_eq!(nc.local_addr().ia, ia(AS_B));
    let direct = async_nats::connect(s.srv.client_addr.to_string())
        .await
        .expect("direct TCP client");

    // The broker sees this client as coming from its SCION address in B.
    let labels: Vec<_> = broker::server::lock(&s.srv.state.clients)
        .values()
        .filter_map(|c| c.label.clone())
        .collect();
    assert!(
        labels.iter().any(|l| l.contains(AS_B)),
        "a client labelled with its SCION address: {labels:?}"
    );

    // SCION subscriber, TCP publisher.
    let mut sub = nc.subscribe("api.>").await.expect("sub");
    nc.flush().await.expect("flush");
    wait_interest(&s.srv, "api.0").await;
    for i in 0..100 {
        direct
            .publish(format!("api.{i}"), format!("m{i}").into())
            .await
            .expect("pub");
    }
    direct.flush().await.expect("flush");
    for i in 0..100 {
        let m = timeout(WAIT, sub.next())
            .await
            .expect("in time")
            .expect("message");
        assert_eq!(m.subject.as_str(), format!("api.{i}"));
        assert_eq!(m.payload, format!("m{i}").as_bytes());
    }

    // SCION publisher with headers, TCP subscriber.
    let mut tsub = direct.subscribe("back").await.expect("sub");
    direct.flush().await.expect("flush");
    wait_interest(&s.srv, "back").await;
    let mut h = async_nats::HeaderMap::new();
    h.insert("X-Path", "scion");
    nc.publish_with_headers("back", h, vec![7u8; 64 * 1024].into())
        .await
        .expect("pub");
    nc.flush().await.expect("flush");
    let m = timeout(WAIT, tsub.next())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(m.payload.len(), 64 * 1024);
    assert_eq!(
        m.headers
            .as_ref()
            .and_then(|h| h.get("X-Path"))
            .map(|v| v.as_str()),
        Some("scion")
    );

    // Request over SCION, service on TCP.
    let mut svc = direct.subscribe("svc.time").await.expect("sub");
    direct.flush().await.expect("flush");
    wait_interest(&s.srv, "svc.time").await;
    let d2 = direct.clone();
    let responder = tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            let Some(reply) = m.reply else { continue };
            let mut body = b"re:".to_vec();
            body.extend_from_slice(&m.payload);
            if d2.publish(reply, body.into()).await.is_err() {
                return;
            }
            let _ = d2.flush().await;
        }
    });
    for i in 0..5 {
        let r = timeout(WAIT, nc.request("svc.time", format!("q{i}").into()))
            .await
            .expect("in time")
            .expect("reply");
        assert_eq!(r.payload, format!("re:q{i}").as_bytes());
    }
    responder.abort();
    drop(nc);
    s.srv.shutdown().await;
    drop(s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_typed() {
    let s = setup("scion-api-err").await;
    // Not a SCION address.
    let e = connect("nats://127.0.0.1:4222", opts_b(&s))
        .await
        .expect_err("TCP URL");
    assert!(matches!(e, ScionClientError::Upstream { .. }), "{e:?}");

    // A CA the broker's certificate does not chain to: refused before
    // async-nats starts, with the reason.
    let other = s.dir.0.join("other-ca.pem");
    let ca = rcgen::generate_simple_self_signed(vec!["nats-scion".to_string()]).expect("cert");
    std::fs::write(&other, ca.cert.pem()).expect("write");
    let mut o = opts_b(&s);
    o.ca = Some(other.clone());
    let e = timeout(WAIT, connect(&s.upstream.to_string(), o))
        .await
        .expect("in time")
        .expect_err("untrusted broker");
    assert!(
        matches!(
            e,
            ScionClientError::Link(broker::proxy::LinkError::Untrusted { .. })
        ),
        "{e:?}"
    );

    // Nobody listening at that SCION address: a link error in bounded time. (A port found
    // free, not the listener's + 1: another test's broker can hold that one.)
    let nowhere = ScionAddr {
        port: free_dispatched_port(),
        ..s.upstream
    };
    // The untrusted broker first, then one that does not answer: the certificate error is
    // the one reported (a later attempt cannot pass it), not the last upstream's timeout.
    let mut o = opts_b(&s);
    o.ca = Some(other);
    let both = format!(
        "nats://{},{}:{},nats://{},{}:{}",
        s.upstream.ia, s.upstream.ip, s.upstream.port, nowhere.ia, nowhere.ip, nowhere.port
    );
    let e = timeout(WAIT, connect(&both, o))
        .await
        .expect("in time")
        .expect_err("untrusted broker, then none");
    assert!(
        matches!(
            e,
            ScionClientError::Link(broker::proxy::LinkError::Untrusted { .. })
        ),
        "{e:?}"
    );
    let e = timeout(WAIT, connect(&nowhere.to_string(), opts_b(&s)))
        .await
        .expect("in time")
        .expect_err("no listener");
    assert!(matches!(e, ScionClientError::Link(_)), "{e:?}");

    // A daemon that does not answer: setup error naming the way out.
    let mut o = opts_b(&s);
    o.daemon = Some("127.0.0.1:1".into());
    let e = timeout(WAIT, connect(&s.upstream.to_string(), o))
        .await
        .expect("in time")
        .expect_err("no daemon");
    assert!(matches!(e, ScionClientError::Setup(_)), "{e:?}");
    assert!(e.to_string().contains("--local") || e.to_string().contains("local"));
    s.srv.shutdown().await;
}

/// With async-nats' `retry_on_initial_connect`, a broker that is not up yet is not an error:
/// the client comes back at once and connects over SCION when the broker appears (as
/// async-nats does over TCP). Without it, the same call is a link error (see above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_initial_connect_waits_for_the_broker() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topology"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    let dir = temp_dir("scion-api-retry");
    let (daemon_a, topo_a) = as_files(&emu, &dir, AS_A);
    let (daemon_b, topo_b) = as_files(&emu, &dir, AS_B);
    let upstream = ScionAddr {
        ia: ia(AS_A),
        ip: localhost(),
        port: free_dispatched_port(),
    };
    let o = ScionClientOptions {
        daemon: Some(daemon_b),
        topology: Some(topo_b),
        nats: async_nats::ConnectOptions::new()
            .name("early-client")
            .retry_on_initial_connect(),
        ..Default::default()
    };
    let nc = timeout(WAIT, connect(&upstream.to_string(), o))
        .await
        .expect("in time")
        .expect("no error while the broker is not up");
    let mut sub = nc.subscribe("later").await.expect("sub");
    let srv = broker::server::start(Options {
        host: "127.0.0.1".into(),
        port: -1,
        scion_listen: Some(ListenAddr::Scion {
            isd_as: AS_A.into(),
            ip: localhost(),
            port: upstream.port,
        }),
        scion: Some(ScionOpts {
            daemon: Some(daemon_a),
            topology: Some(topo_a),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("broker");
    wait_interest(&srv, "later").await;
    let direct = async_nats::connect(srv.client_addr.to_string())
        .await
        .expect("direct TCP client");
    direct.publish("later", "hello".into()).await.expect("pub");
    direct.flush().await.expect("flush");
    let m = timeout(WAIT, sub.next())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(m.payload, "hello".as_bytes());
    drop(nc);
    srv.shutdown().await;
    drop(dir);
}

/// Without topology.json (and without `--local`), the host address a proxy or API client puts
/// in its SCION packets is the one facing its AS's border router, which the daemon names,
/// not the one facing the daemon: here the router's AS-internal socket is on 127.0.0.2 and
/// the daemon on 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_ip_faces_the_border_router_the_daemon_names() {
    let router_ip: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topology"),
        EmuOptions {
            internal_ip: vec![(ia(AS_B), router_ip)],
            ..Default::default()
        },
    )
    .await
    .expect("emulator");
    let daemon = emu.daemon_addr(ia(AS_B)).expect("daemon").to_string();
    assert!(daemon.starts_with("127.0.0.1:"), "{daemon}");
    let local = timeout(WAIT, broker::proxy::resolve_local(Some(&daemon), None))
        .await
        .expect("in time")
        .expect("local address");
    assert_eq!(local.ia, ia(AS_B));
    assert_eq!(local.ip, router_ip);
}
