//! Real `timesync` processes through OUR broker (started in-process), not nats-server:
//! a single node, and a two-node cluster routed over TCP with the source on one node and
//! the follower on the other (so every request, reply and status crosses the route).

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

use broker::options::{ClusterOpts, ListenAddr, Options, RouteTarget, RouteUrl};
use broker::server::{start, ServerHandle};
use timesync::core::SyncState;
use tokio::time::{sleep, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn url(h: &ServerHandle) -> String {
    format!("nats://{}", h.client_addr)
}

fn node_opts(name: &str, routes: Vec<RouteUrl>) -> Options {
    Options {
        server_name: Some(name.to_string()),
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("ts".into()),
            listen: Some(ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: -1,
            }),
            routes,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn route_to(addr: SocketAddr) -> RouteUrl {
    RouteUrl {
        url: format!("nats-route://{addr}"),
        user: None,
        password: None,
        target: RouteTarget::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        },
    }
}

/// Bounded wait (poll, 10 s) until `h` has `n` routes.
async fn wait_routes(h: &ServerHandle, n: usize) {
    let deadline = Instant::now() + WAIT;
    while h.state.cluster.num_routes() < n {
        assert!(
            Instant::now() < deadline,
            "{} has {} routes, wanted {n}",
            h.state.name,
            h.state.cluster.num_routes()
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Same convergence bounds as `loopback.rs` (nats-server): in sync, |error| < 1 ms and
/// covered by max-error, the fake frequency error learned within 5 ppm, for 20
/// consecutive statuses (2 s), within 120 s; exactly one startup step.
async fn assert_converges(watch_url: &str, id: &str, source: &str, want_ppm: f64) {
    let mut w = StatusWatch::new(watch_url, id).await;
    let st = w
        .until(Duration::from_secs(120), 20, |s| {
            let e = error_ns(s, 0);
            s.tracking.state == SyncState::Sync
                && e.abs() < 1_000_000
                && e.abs() <= s.tracking.max_error_ns
                && (s.tracking.est_freq_ppm - want_ppm).abs() < 5.0
        })
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    eprintln!(
        "{id}: error {} ns, max-error {} ns, delay {} ns, freq {:.2} ppm",
        error_ns(&st, 0),
        st.tracking.max_error_ns,
        st.tracking.delay_ns,
        st.tracking.est_freq_ppm
    );
    assert_eq!(st.tracking.steps, 1, "{id}");
    assert_eq!(st.tracking.selected.as_deref(), Some(source), "{id}");
    assert!(
        st.tracking.delay_ns > 0 && st.tracking.delay_ns < 50_000_000,
        "{id}: delay {} ns",
        st.tracking.delay_ns
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_followers_converge_through_our_broker() {
    let b = start(Options {
        host: "127.0.0.1".into(),
        port: -1,
        ..Default::default()
    })
    .await
    .expect("start our broker");
    let url = url(&b);
    let _src = source(&url, "src1", &[]).await;
    let _f1 = follower(
        &url,
        "f1",
        &[
            "--source",
            "src1",
            "--fake-offset-ms",
            "250",
            "--fake-ppm",
            "100",
        ],
    );
    let _f2 = follower(
        &url,
        "f2",
        &[
            "--source",
            "src1",
            "--fake-offset-ms",
            "-40",
            "--fake-ppm",
            "-50",
        ],
    );
    assert_converges(&url, "f1", "src1", -100.0).await;
    assert_converges(&url, "f2", "src1", 50.0).await;

    // The CLI's request/reply and subscriptions work through our broker too.
    let out = cli(&url, &["followers", "-v"]).await;
    assert!(out.contains("f1") && out.contains("f2"), "{out}");
    assert!(out.contains("* src1"), "selected marker: {out}");
    let out = cli(&url, &["tail", "src1", "-n", "2"]).await;
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(
        out.lines().all(|l| l.contains("source=src1")),
        "beacon headers decoded: {out}"
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_converges_across_a_two_node_cluster() {
    let a = start(node_opts("a", vec![])).await.expect("start node a");
    let ra = a
        .state
        .cluster
        .listen_addr
        .lock()
        .unwrap()
        .expect("node a cluster listening");
    let b = start(node_opts("b", vec![route_to(ra)]))
        .await
        .expect("start node b");
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    let (url_a, url_b) = (url(&a), url(&b));

    let _src = source(&url_a, "srcA", &[]).await;
    let _f = follower(
        &url_b,
        "fB",
        &[
            "--source",
            "srcA",
            "--fake-offset-ms",
            "250",
            "--fake-ppm",
            "100",
        ],
    );
    // Watch the status from node A: the follower's status crosses the route as well.
    assert_converges(&url_a, "fB", "srcA", -100.0).await;

    let out = cli(&url_a, &["followers", "-v"]).await;
    assert!(out.contains("fB") && out.contains("* srcA"), "{out}");
    let out = cli(&url_b, &["sources"]).await;
    assert!(out.lines().any(|l| l.starts_with("srcA")), "{out}");
    b.shutdown().await;
    a.shutdown().await;
}

/// The connection line names the server reached (by name and address), not only the URLs
/// given: after a reconnect through a discovered URL they differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_line_names_the_server_reached() {
    let b = start(node_opts("ts-named", Vec::new()))
        .await
        .expect("start our broker");
    let url = url(&b);
    let mut p = spawn(&url, &["source", "--id", "named"]);
    let line = p
        .wait_log("connected to NATS", Duration::from_secs(15))
        .await
        .expect("a connection line");
    assert!(line.contains("server=ts-named"), "{line}");
    assert!(line.contains(&format!("at={}", b.client_addr)), "{line}");
    p.kill().await;
}
