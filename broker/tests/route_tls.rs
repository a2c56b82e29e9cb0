//! TLS on TCP route links (`cluster { tls { cert_file, key_file, ca_file } }`) with Debian's
//! nats-server 2.9.10 as the peer: the handshake comes first on both ends and both verify
//! each other against the CA (route.go createRoute). Messages cross the route in both
//! directions whichever end dials; a peer whose certificate comes from another CA gets no
//! route, with `TLS route handshake error` in the log.
//!
//! Every listener is on 127.0.0.1; every wait is bounded.

mod harness;
mod route_ref;

use std::path::Path;
use std::time::Duration;

use broker::options::{RouteTarget, RouteUrl, TlsOpts};
use harness::pki::{capture_logs, logs, TestCa};
use harness::{start_broker, Raw};
use route_ref::{our_addrs, our_opts, wait_json, Addrs, RefCluster};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

/// Certificate, key and CA files for one cluster member, issued by `ca`.
fn member(ca: &TestCa, dir: &Path, name: &str) -> TlsOpts {
    let (cert, key) = ca.issue(dir, name, &["127.0.0.1", "localhost"]);
    TlsOpts {
        cert_file: Some(cert),
        key_file: Some(key),
        ca_file: Some(ca.write(dir, &format!("{name}-ca.pem"))),
        verify: false,
        timeout: None,
    }
}

/// nats-server's cluster `tls` block for `t`.
fn ref_tls(t: &TlsOpts) -> String {
    let p = |p: &Option<std::path::PathBuf>| p.as_ref().expect("file").display().to_string();
    format!(
        "  tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\" }}",
        p(&t.cert_file),
        p(&t.key_file),
        p(&t.ca_file)
    )
}

fn route_to(a: Addrs) -> RouteUrl {
    RouteUrl {
        url: format!("nats-route://{}", a.route),
        user: None,
        password: None,
        target: RouteTarget::Tcp {
            host: a.route.ip().to_string(),
            port: a.route.port(),
        },
    }
}

/// A subscriber on `sub_at`, a publisher on `pub_at`: the message arrives (retried while
/// the subscription's interest crosses the route).
async fn crosses(pub_at: Addrs, sub_at: Addrs, subject: &str) -> bool {
    let mut sub = Raw::connect(sub_at.client).await;
    sub.read_line().await;
    sub.send(format!("CONNECT {{\"verbose\":false}}\r\nSUB {subject} 1\r\nPING\r\n").as_bytes())
        .await;
    sub.read_pongs(1).await;
    let mut publ = Raw::connect(pub_at.client).await;
    publ.read_line().await;
    publ.send(b"CONNECT {\"verbose\":false}\r\n").await;
    let deadline = Instant::now() + WAIT;
    let want = format!("MSG {subject} 1 2\r\nhi\r\n");
    while Instant::now() < deadline {
        publ.send(format!("PUB {subject} 2\r\nhi\r\nPING\r\n").as_bytes())
            .await;
        publ.read_pongs(1).await;
        sub.send(b"PING\r\n").await;
        let got = sub.read_pongs(1).await;
        if String::from_utf8_lossy(&got).contains(&want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits until `a`'s /routez lists `n` routes.
async fn routes(a: Addrs, n: u64) {
    wait_json(a.http, "/routez", |v| v["num_routes"] == n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_route_with_nats_server_both_ways() {
    if harness::reference_nats_server().is_none() {
        eprintln!("nats-server not installed; nothing to compare");
        return;
    }
    capture_logs("info,broker=debug");
    let dir = harness::scratch_dir("route-tls");
    let ca = TestCa::new("route");
    let theirs = member(&ca, &dir, "ref");
    let ours = member(&ca, &dir, "ours");

    // We dial nats-server.
    let r = RefCluster::start_with(&ref_tls(&theirs), "");
    let mut o = our_opts();
    o.cluster.tls = Some(ours.clone());
    o.cluster.routes = vec![route_to(r.addrs)];
    let h = start_broker(o).await;
    let a = our_addrs(&h);
    routes(a, 1).await;
    routes(r.addrs, 1).await;
    assert!(crosses(a, r.addrs, "to.ref").await, "ours -> nats-server");
    assert!(crosses(r.addrs, a, "to.ours").await, "nats-server -> ours");
    let l = logs();
    assert!(l.contains("Starting TLS route client handshake"), "{l}");
    assert!(l.contains("TLS handshake complete"), "{l}");
    h.shutdown().await;
    drop(r);

    // nats-server dials us.
    let mut o = our_opts();
    o.cluster.tls = Some(ours.clone());
    let h = start_broker(o).await;
    let a = our_addrs(&h);
    let r = RefCluster::start_with(
        &format!(
            "{}\n  routes: [\"nats-route://{}\"]",
            ref_tls(&theirs),
            a.route
        ),
        "",
    );
    routes(a, 1).await;
    assert!(crosses(a, r.addrs, "to.ref2").await, "ours -> nats-server");
    assert!(crosses(r.addrs, a, "to.ours2").await, "nats-server -> ours");
    assert!(
        logs().contains("Starting TLS route server handshake"),
        "{}",
        logs()
    );
    // Our route INFO says TLS, verified both ways (route.go: TLSRequired and TLSVerify).
    let z = wait_json(a.http, "/varz", |_| true).await;
    assert_eq!(z["cluster"]["tls_required"], true, "{z}");
    h.shutdown().await;
}

/// A route whose peer's certificate comes from another CA never forms; we log why and
/// keep dialling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_route_refuses_a_certificate_from_another_ca() {
    if harness::reference_nats_server().is_none() {
        eprintln!("nats-server not installed; nothing to compare");
        return;
    }
    capture_logs("info,broker=debug");
    let dir = harness::scratch_dir("route-tls-bad");
    let theirs = member(&TestCa::new("theirs"), &dir, "ref");
    let ours = member(&TestCa::new("ours"), &dir, "ours");
    let r = RefCluster::start_with(&ref_tls(&theirs), "");
    let mut o = our_opts();
    o.cluster.tls = Some(ours);
    o.cluster.routes = vec![route_to(r.addrs)];
    let h = start_broker(o).await;
    let deadline = Instant::now() + WAIT;
    while !logs().contains("TLS route handshake error: ") {
        assert!(Instant::now() < deadline, "no handshake error:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        logs().contains("certificate signed by unknown authority")
            || logs().contains("remote error: tls:"),
        "{}",
        logs()
    );
    assert_eq!(h.state.cluster.num_routes(), 0);
    h.shutdown().await;
}
