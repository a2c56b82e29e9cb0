//! Route TLS over SCION is mutual, as nats-server makes cluster TLS (server/opts.go
//! `getTLSConfig`: `RequireAndVerifyClientCert`, `ca_file` trusted in both directions): with
//! `cluster { tls { cert_file, key_file, ca_file } }` the accepting broker takes a route only
//! from a peer whose certificate chains to its `ca_file`, and logs a refused one as
//! "TLS route handshake error". Emulator on loopback only; every wait is bounded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use broker::options::{Options, RouteUrl, TlsOpts};
use broker::server::start;
use futures::StreamExt;
use scion_transport::emu::EmuHandle;
use tokio::time::{sleep, timeout, Instant};

mod scion_common;
use scion_common::*;

/// [`scion_node`] with `cluster.tls`.
fn node(
    name: &str,
    emu: &EmuHandle,
    dir: &TempDir,
    as_: &str,
    routes: Vec<RouteUrl>,
    tls: Option<TlsOpts>,
) -> Options {
    let mut o = scion_node(name, emu, dir, as_, 0, routes);
    o.cluster.tls = tls;
    o
}

fn tls(cert: &(PathBuf, PathBuf), ca: &Path) -> TlsOpts {
    TlsOpts {
        cert_file: Some(cert.0.clone()),
        key_file: Some(cert.1.clone()),
        ca_file: Some(ca.to_path_buf()),
        ..Default::default()
    }
}

/// Waits until the captured log has a line containing every one of `parts`.
async fn wait_log_line(parts: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        if logs().lines().any(|l| parts.iter().all(|p| l.contains(p))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{}",
            logs()
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_tls_is_mutual_and_refuses_peers_outside_the_ca() {
    capture_logs("info");
    let emu = emulator().await;
    let dir = temp_dir("route-tls");
    let ours = TestCa::new("cluster");
    let theirs = TestCa::new("stranger");
    let ca = ours.write(&dir.0, "ca.pem");
    // The stranger trusts our CA too, so it accepts A's certificate: only A's check of the
    // dialer's certificate can keep it out.
    let both = dir.0.join("both.pem");
    std::fs::write(&both, format!("{}{}", ours.pem(), theirs.pem())).expect("write");
    let s1 = ours.issue(&dir.0, "s1", &["nats-scion"]);
    let s2 = ours.issue(&dir.0, "s2", &["nats-scion"]);
    let s3 = theirs.issue(&dir.0, "s3", &["nats-scion"]);

    let a = start(node("a", &emu, &dir, AS_A, vec![], Some(tls(&s1, &ca))))
        .await
        .expect("start a");
    let to_a = scion_route(route_endpoint(&a));
    let stranger = start(node(
        "stranger",
        &emu,
        &dir,
        AS_B,
        vec![to_a.clone()],
        Some(tls(&s3, &both)),
    ))
    .await
    .expect("start stranger");
    // No cluster.tls: encrypted with a throwaway certificate, no client certificate to show.
    let plain = start(node("plain", &emu, &dir, AS_B, vec![to_a.clone()], None))
        .await
        .expect("start plain");
    let b = start(node("b", &emu, &dir, AS_B, vec![to_a], Some(tls(&s2, &ca))))
        .await
        .expect("start b");

    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    for refused in [&stranger, &plain] {
        let at = route_endpoint(refused).to_string();
        wait_log_line(&[&at, "TLS route handshake error"]).await;
    }
    // The refused dialers say so too (the refusal reaches them after their own handshake).
    let a_addr = route_endpoint(&a).to_string();
    wait_log_line(&[&a_addr, "TLS route handshake error"]).await;
    assert_eq!(a.state.cluster.num_routes(), 1, "only b may be routed to a");
    assert_eq!(stranger.state.cluster.num_routes(), 0);
    assert_eq!(plain.state.cluster.num_routes(), 0);

    // The verified route carries messages: subscribe on A, publish on B.
    let na = timeout(WAIT, async_nats::connect(a.client_addr.to_string()))
        .await
        .expect("connect a in time")
        .expect("connect a");
    let mut sub = na.subscribe("tls.check").await.expect("subscribe");
    na.flush().await.expect("flush");
    let nb = timeout(WAIT, async_nats::connect(b.client_addr.to_string()))
        .await
        .expect("connect b in time")
        .expect("connect b");
    let deadline = Instant::now() + WAIT;
    let got = loop {
        nb.publish("tls.check", "over mutual TLS".into())
            .await
            .expect("publish");
        nb.flush().await.expect("flush");
        if let Ok(Some(m)) = timeout(Duration::from_millis(200), sub.next()).await {
            break m;
        }
        assert!(Instant::now() < deadline, "nothing crossed the route");
    };
    assert_eq!(&got.payload[..], b"over mutual TLS");
}
