//! A broker that dies without closing anything (SIGKILL) behind `broker proxy`: the
//! TCP client of the proxy must see its connection close within the client link's idle
//! bound (a few seconds, as a TCP client of a killed nats-server sees a reset at
//! once), not after QUIC's 30 s route default, so that it reconnects instead of
//! publishing into a dead link; the proxy says the link was lost. Emulator on loopback
//! only; every wait is bounded.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use scion_transport::address::ScionAddr;

mod scion_common;
use scion_common::*;

const BIN: &str = env!("CARGO_BIN_EXE_broker");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_client_sees_a_killed_broker_go_within_the_link_idle_bound() {
    capture_logs("warn");
    let emu = emulator().await;
    let dir = temp_dir("proxy-crash");
    let sport = free_dispatched_port();
    let (conf, log) = write_conf(
        &emu,
        &dir,
        AS_A,
        &format!("listen: \"nats://{AS_A},127.0.0.1:{sport}\""),
    );
    let mut broker = spawn_broker(BIN, &conf);
    wait_ready(&log, 0).await;

    let (daemon_b, topo_b) = as_files(&emu, &dir, AS_B);
    let upstream = ScionAddr {
        ia: ia(AS_A),
        ip: localhost(),
        port: sport,
    };
    let proxy = broker::proxy::start(broker::proxy::ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
        more_upstreams: Vec::new(),
        local: ScionAddr {
            ia: ia(AS_B),
            ip: localhost(),
            port: 0,
        },
        daemon: Some(daemon_b),
        topology: Some(topo_b),
        path_preference: None,
    })
    .await
    .expect("proxy");

    // A plain TCP client through the proxy, up and answered.
    let addr = proxy.listen;
    let mut tcp = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect proxy");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.windows(6).any(|w| w == b"PONG\r\n") {
            let n = s.read(&mut buf).expect("read");
            assert!(
                n > 0,
                "closed before PONG: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        s
    })
    .await
    .unwrap();

    // SIGKILL: no QUIC close reaches the proxy, the broker just stops answering.
    broker.0.kill().expect("kill");
    let _ = broker.0.wait();
    let killed = Instant::now();
    let closed_after = tokio::task::spawn_blocking(move || {
        tcp.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => return killed.elapsed(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .unwrap();
    // The idle bound is 5 s; QUIC's default for routes would be 30 s.
    assert!(
        closed_after < Duration::from_secs(15),
        "the proxied client saw the killed broker go after {closed_after:?}"
    );
    let deadline = Instant::now() + WAIT;
    while !logs().contains("link lost") {
        assert!(
            Instant::now() < deadline,
            "the proxy never said the link was lost:\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(proxy);
}

/// A broker in AS A with a SCION client listener (a free port) and a TCP one.
async fn client_listener_broker(
    daemon: &str,
    topo: &std::path::Path,
) -> broker::server::ServerHandle {
    broker::server::start(broker::options::Options {
        host: "127.0.0.1".into(),
        port: -1,
        scion_listen: Some(broker::options::ListenAddr::Scion {
            isd_as: AS_A.into(),
            ip: localhost(),
            port: 0,
        }),
        scion: Some(broker::options::ScionOpts {
            daemon: Some(daemon.to_string()),
            topology: Some(topo.to_path_buf()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("broker")
}

/// The SCION client listener of `s`.
fn client_listener(s: &broker::server::ServerHandle) -> ScionAddr {
    s.state
        .scion
        .lock()
        .unwrap()
        .client_endpoint
        .as_ref()
        .expect("SCION client listener")
        .local_addr()
}

/// `broker proxy` in AS B, from its command line, to `upstreams` in that order.
async fn proxy_to(
    emu: &scion_transport::emu::EmuHandle,
    dir: &TempDir,
    upstreams: &[ScionAddr],
) -> broker::proxy::Proxy {
    let (daemon_b, topo_b) = as_files(emu, dir, AS_B);
    let mut argv = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
    for u in upstreams {
        argv.extend(["--upstream".to_string(), format!("nats://{u}")]);
    }
    argv.extend([
        "--local".to_string(),
        format!("{AS_B},127.0.0.1"),
        "--daemon".to_string(),
        daemon_b,
        "--topology".to_string(),
        topo_b.display().to_string(),
    ]);
    let args = broker::proxy::parse_args(&argv).expect("args");
    let (cfg, tls) = args.into_config().await.expect("config");
    broker::proxy::start_with_tls(cfg, &tls)
        .await
        .expect("proxy")
}

/// `--upstream` given twice, the first broker absent: the proxy's clients get the
/// second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_goes_to_the_next_configured_upstream() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-two-upstreams");
    let (daemon_a, topo_a) = as_files(&emu, &dir, AS_A);
    let srv = client_listener_broker(&daemon_a, &topo_a).await;
    let live = client_listener(&srv);
    // Nothing listens there (the port was free a moment ago).
    let absent = ScionAddr {
        port: free_dispatched_port(),
        ..live
    };
    let proxy = proxy_to(&emu, &dir, &[absent, live]).await;
    let nc = tokio::time::timeout(
        WAIT,
        async_nats::ConnectOptions::new()
            .connection_timeout(WAIT)
            .connect(proxy.listen.to_string()),
    )
    .await
    .expect("connect in time")
    .expect("connect through the second upstream");
    let mut sub = nc.subscribe("two").await.unwrap();
    nc.publish("two", "up".into()).await.unwrap();
    let m = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut sub))
        .await
        .expect("delivered in time")
        .expect("message");
    assert_eq!(m.payload, "up".as_bytes());
    assert_eq!(srv.state.clients.lock().unwrap().len(), 1);
    drop(nc);
    drop(proxy);
    srv.shutdown().await;
}

/// A TCP client that hangs up while the proxy is still trying upstreams (the first one
/// does not answer; its handshake takes 3 s, longer than nats.go's 2 s connect timeout):
/// the proxy stops there instead of linking the next upstream for a client that is gone,
/// which the broker would see as a connection ending at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_left_while_upstreams_were_tried_links_none() {
    let emu = emulator().await;
    let dir = temp_dir("proxy-client-left");
    let (daemon_a, topo_a) = as_files(&emu, &dir, AS_A);
    let srv = client_listener_broker(&daemon_a, &topo_a).await;
    let live = client_listener(&srv);
    let absent = ScionAddr {
        port: free_dispatched_port(),
        ..live
    };
    let proxy = proxy_to(&emu, &dir, &[absent, live]).await;
    let tcp = tokio::net::TcpStream::connect(proxy.listen)
        .await
        .expect("connect to the proxy");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(tcp);
    // The absent upstream's handshake times out after 3 s; give the proxy time to have
    // dialled the live one, were it going to.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let total = srv
        .state
        .stats
        .total_connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        total, 0,
        "the live broker got a link for a client that had left"
    );
    // A client that stays gets the live upstream as before.
    let nc = tokio::time::timeout(
        WAIT,
        async_nats::ConnectOptions::new()
            .connection_timeout(WAIT)
            .connect(proxy.listen.to_string()),
    )
    .await
    .expect("connect in time")
    .expect("connect through the second upstream");
    nc.flush().await.expect("flush");
    drop(nc);
    drop(proxy);
    srv.shutdown().await;
}

/// A broker behind the proxy shut down on purpose (SIGINT, SIGTERM, the end of lame duck
/// mode): its client links close with the shutdown code, and the proxy's next client
/// reaches the other upstream at once, within a NATS client's connect timeout (nats.go's
/// is 2 s), instead of waiting out a QUIC handshake with the broker that left (3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_graceful_broker_stop_the_proxy_goes_to_the_other_upstream_first() {
    capture_logs("info");
    let emu = emulator().await;
    let dir = temp_dir("proxy-graceful");
    let (daemon_a, topo_a) = as_files(&emu, &dir, AS_A);
    let first = client_listener_broker(&daemon_a, &topo_a).await;
    let second = client_listener_broker(&daemon_a, &topo_a).await;
    let proxy = proxy_to(
        &emu,
        &dir,
        &[client_listener(&first), client_listener(&second)],
    )
    .await;
    let addr = proxy.listen;
    // The INFO a new client of the proxy gets, and how long it took.
    let info = move || {
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let mut s = std::net::TcpStream::connect(addr).expect("connect proxy");
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"\r\n") {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "closed before INFO");
                got.extend_from_slice(&buf[..n]);
            }
            (String::from_utf8_lossy(&got).into_owned(), t.elapsed(), s)
        })
    };
    let (line, _, conn) = info().await.unwrap();
    assert!(line.contains(&first.state.id), "{line}");
    let first_addr = client_listener(&first);
    first.shutdown().await;
    drop(conn);
    // The proxy learns it from the link's close (the shutdown code); a client arriving
    // before that would still try the first broker (bounded wait).
    let deadline = Instant::now() + WAIT;
    while !proxy.tried_last().contains(&first_addr) {
        assert!(
            Instant::now() < deadline,
            "the proxy never noted the shutdown\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (line, took, _conn) = info().await.unwrap();
    assert!(
        line.contains(&second.state.id),
        "after the first broker stopped: {line}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "the proxy took {took:?} to reach the second broker\n{}",
        logs()
    );
    // (Its INF line "broker shutting down" is not asserted: the tests of this binary share
    // one log capture, whose level is the first test's.)
    drop(proxy);
    second.shutdown().await;
}
