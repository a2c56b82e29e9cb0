//! Clustering over TCP routes: three of our brokers, and mixed clusters with
//! Debian's nats-server 2.9.10.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod scion_common;

use broker::options::{ClusterOpts, ListenAddr, Options, RouteTarget, RouteUrl};
use broker::server::{start, ServerHandle};
use futures::StreamExt;
use tokio::time::{sleep, timeout, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn route(addr: SocketAddr) -> RouteUrl {
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

fn node_opts(name: &str, routes: Vec<RouteUrl>) -> Options {
    Options {
        server_name: Some(name.to_string()),
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("c1".into()),
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

fn route_addr(h: &ServerHandle) -> SocketAddr {
    h.state
        .cluster
        .listen_addr
        .lock()
        .unwrap()
        .expect("cluster listening")
}

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

async fn wait_interest(h: &ServerHandle, subject: &str) {
    let deadline = Instant::now() + WAIT;
    while !h.state.sublist.read().unwrap().has_interest(subject) {
        assert!(
            Instant::now() < deadline,
            "no interest in {subject} on {}",
            h.state.name
        );
        sleep(Duration::from_millis(10)).await;
    }
}

async fn client(h: &ServerHandle) -> async_nats::Client {
    timeout(WAIT, async_nats::connect(h.client_addr.to_string()))
        .await
        .expect("connect in time")
        .expect("connect")
}

async fn three_nodes() -> (ServerHandle, ServerHandle, ServerHandle) {
    let a = start(node_opts("a", vec![])).await.unwrap();
    let ra = route_addr(&a);
    let b = start(node_opts("b", vec![route(ra)])).await.unwrap();
    let c = start(node_opts("c", vec![route(ra)])).await.unwrap();
    // Gossip turns the star into a full mesh.
    for h in [&a, &b, &c] {
        wait_routes(h, 2).await;
    }
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_forms_full_mesh_and_interest_propagates() {
    let (a, b, c) = three_nodes().await;
    let nc_c = client(&c).await;
    let mut sub = nc_c.subscribe("foo.>").await.unwrap();
    nc_c.flush().await.unwrap();
    wait_interest(&b, "foo.bar").await;
    let nc_b = client(&b).await;
    for i in 0..10 {
        nc_b.publish("foo.bar", format!("m{i}").into())
            .await
            .unwrap();
    }
    nc_b.flush().await.unwrap();
    for i in 0..10 {
        let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
        assert_eq!(m.payload, format!("m{i}").as_bytes());
    }
    // Nothing more: the message crossed one route, never two.
    assert!(timeout(Duration::from_millis(200), sub.next())
        .await
        .is_err());
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_groups_deliver_once_cluster_wide() {
    let (a, b, c) = three_nodes().await;
    let na = client(&a).await;
    let nb = client(&b).await;
    let nc = client(&c).await;
    let mut q1 = na.queue_subscribe("work", "g".into()).await.unwrap();
    let mut q2 = na.queue_subscribe("work", "g".into()).await.unwrap();
    let mut q3 = nb.queue_subscribe("work", "g".into()).await.unwrap();
    na.flush().await.unwrap();
    nb.flush().await.unwrap();
    wait_interest(&c, "work").await;
    // Weight updates reach C after the first RS+; let them settle by
    // waiting for A's weight 2 to arrive.
    let deadline = Instant::now() + WAIT;
    loop {
        let total: u64 = {
            let sl = c.state.sublist.read().unwrap();
            let r = sl.match_subject("work");
            r.queues
                .iter()
                .flat_map(|q| q.members.iter())
                .map(|s| s.qw.load(std::sync::atomic::Ordering::Relaxed))
                .sum()
        };
        if total >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "queue weights did not reach C");
        sleep(Duration::from_millis(10)).await;
    }
    const N: usize = 300;
    for i in 0..N {
        nc.publish("work", i.to_string().into()).await.unwrap();
    }
    nc.flush().await.unwrap();
    let mut seen = HashSet::new();
    let mut per = [0usize; 3];
    let deadline = Instant::now() + WAIT;
    while seen.len() < N && Instant::now() < deadline {
        tokio::select! {
            Some(m) = q1.next() => { per[0] += 1; assert!(seen.insert(m.payload.to_vec()), "duplicate"); }
            Some(m) = q2.next() => { per[1] += 1; assert!(seen.insert(m.payload.to_vec()), "duplicate"); }
            Some(m) = q3.next() => { per[2] += 1; assert!(seen.insert(m.payload.to_vec()), "duplicate"); }
            _ = sleep(Duration::from_millis(50)) => {}
        }
    }
    assert_eq!(seen.len(), N, "every message exactly once, got {per:?}");
    assert!(per.iter().all(|&n| n > 0), "all members served: {per:?}");
    // And no late duplicates.
    let extra = timeout(Duration::from_millis(200), async {
        tokio::select! {
            m = q1.next() => m, m = q2.next() => m, m = q3.next() => m,
        }
    })
    .await;
    assert!(extra.is_err(), "unexpected extra delivery");
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_across_nodes() {
    let (a, b, c) = three_nodes().await;
    let na = client(&a).await;
    let mut svc = na.subscribe("svc.echo").await.unwrap();
    na.flush().await.unwrap();
    let responder = tokio::spawn(async move {
        for _ in 0..5 {
            let m = svc.next().await.unwrap();
            na.publish(m.reply.unwrap(), m.payload).await.unwrap();
        }
        na.flush().await.unwrap();
        // Kept open until the requester has its replies (flush() does not
        // wait for the server; see the flood test below).
        na
    });
    wait_interest(&c, "svc.echo").await;
    let nc = client(&c).await;
    for i in 0..5 {
        let r = timeout(WAIT, nc.request("svc.echo", format!("q{i}").into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.payload, format!("q{i}").as_bytes());
    }
    let _na = responder.await.unwrap();
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restart_reforms_routes_and_resyncs_interest() {
    let a = start(node_opts("a", vec![])).await.unwrap();
    let ra = route_addr(&a);
    let b = start(node_opts("b", vec![route(ra)])).await.unwrap();
    wait_routes(&a, 1).await;
    let nb = client(&b).await;
    let mut sub = nb.subscribe("x").await.unwrap();
    nb.flush().await.unwrap();
    wait_interest(&a, "x").await;
    // Kill A; B keeps retrying its configured route.
    a.shutdown().await;
    sleep(Duration::from_millis(100)).await;
    let mut o = node_opts("a2", vec![]);
    o.cluster.listen = Some(ListenAddr::Tcp {
        host: "127.0.0.1".into(),
        port: ra.port() as i32,
    });
    let a2 = start(o).await.unwrap();
    wait_routes(&a2, 1).await;
    wait_interest(&a2, "x").await;
    let na = client(&a2).await;
    na.publish("x", "after".into()).await.unwrap();
    na.flush().await.unwrap();
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(m.payload, "after".as_bytes());
    assert!(timeout(Duration::from_millis(200), sub.next())
        .await
        .is_err());
    drop((a2, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_learn_connect_urls() {
    let (a, b, c) = three_nodes().await;
    // A fresh client on A sees all three client URLs in INFO.
    let mut raw = tokio::net::TcpStream::connect(a.client_addr).await.unwrap();
    let line = read_line(&mut raw).await;
    for h in [&a, &b, &c] {
        assert!(
            line.contains(&h.client_addr.to_string()),
            "INFO {line} lacks {}",
            h.client_addr
        );
    }
    drop((a, b, c));
}

async fn read_line(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    timeout(WAIT, async {
        loop {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0, "closed");
            buf.push(b[0]);
            if buf.ends_with(b"\r\n") {
                break;
            }
        }
    })
    .await
    .unwrap();
    String::from_utf8(buf).unwrap()
}

/// Debian's nats-server as a cluster peer, killed on drop.
struct NatsServer {
    child: Child,
    client: SocketAddr,
    cluster: SocketAddr,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    scion_common::free_tcp_port()
}

fn nats_server(routes: &[SocketAddr]) -> Option<NatsServer> {
    let bin = which_nats_server()?;
    let cp = free_port();
    let rp = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["-a", "127.0.0.1", "-p", &cp.to_string(), "-n", "gnatsd"])
        .args(["--cluster_name", "c1"])
        .args(["--cluster", &format!("nats://127.0.0.1:{rp}")]);
    if !routes.is_empty() {
        let r: Vec<String> = routes.iter().map(|a| format!("nats-route://{a}")).collect();
        cmd.args(["--routes", &r.join(",")]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(NatsServer {
        child,
        client: format!("127.0.0.1:{cp}").parse().unwrap(),
        cluster: format!("127.0.0.1:{rp}").parse().unwrap(),
    })
}

fn which_nats_server() -> Option<String> {
    for p in [
        "/usr/bin/nats-server",
        "/usr/sbin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if std::path::Path::new(p).exists() {
            return Some(p.to_string());
        }
    }
    None
}

async fn connect_retry(addr: SocketAddr) -> async_nats::Client {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok(c)) = timeout(
            Duration::from_secs(2),
            async_nats::connect(addr.to_string()),
        )
        .await
        {
            return c;
        }
        assert!(Instant::now() < deadline, "could not connect to {addr}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes until the subscriber sees one message (interest crosses the
/// route asynchronously and nats-server offers no way to ask for it).
async fn publish_until_seen(
    pubc: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
    subject: &str,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        pubc.publish(subject.to_string(), "probe".into())
            .await
            .unwrap();
        pubc.flush().await.unwrap();
        if let Ok(Some(_)) = timeout(Duration::from_millis(100), sub.next()).await {
            // Drain any other probes already in flight.
            while let Ok(Some(_)) = timeout(Duration::from_millis(100), sub.next()).await {}
            return;
        }
        assert!(Instant::now() < deadline, "no delivery on {subject}");
    }
}

async fn mixed_pubsub_both_ways(ours: &ServerHandle, theirs: &NatsServer) {
    let n_ours = client(ours).await;
    let n_theirs = connect_retry(theirs.client).await;
    // theirs -> ours
    let mut s1 = n_ours.subscribe("mixed.a").await.unwrap();
    n_ours.flush().await.unwrap();
    publish_until_seen(&n_theirs, &mut s1, "mixed.a").await;
    for i in 0..20 {
        n_theirs
            .publish("mixed.a", format!("{i}").into())
            .await
            .unwrap();
    }
    n_theirs.flush().await.unwrap();
    for i in 0..20 {
        let m = timeout(WAIT, s1.next()).await.unwrap().unwrap();
        assert_eq!(m.payload, format!("{i}").as_bytes());
    }
    // ours -> theirs, with headers
    let mut s2 = n_theirs.subscribe("mixed.b").await.unwrap();
    n_theirs.flush().await.unwrap();
    publish_until_seen(&n_ours, &mut s2, "mixed.b").await;
    let mut hdrs = async_nats::HeaderMap::new();
    hdrs.insert("X-Test", "1");
    n_ours
        .publish_with_headers("mixed.b", hdrs, "h".into())
        .await
        .unwrap();
    n_ours.flush().await.unwrap();
    let m = timeout(WAIT, s2.next()).await.unwrap().unwrap();
    assert_eq!(m.payload, "h".as_bytes());
    assert_eq!(
        m.headers.unwrap().get("X-Test").map(|v| v.as_str()),
        Some("1")
    );
    // request on theirs, responder on ours
    let mut svc = n_ours.subscribe("mixed.svc").await.unwrap();
    n_ours.flush().await.unwrap();
    let n2 = n_ours.clone();
    let responder = tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(r) = m.reply {
                n2.publish(r, m.payload).await.unwrap();
                n2.flush().await.unwrap();
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        match timeout(
            Duration::from_millis(500),
            n_theirs.request("mixed.svc", "ping".into()),
        )
        .await
        {
            Ok(Ok(r)) => {
                assert_eq!(r.payload, "ping".as_bytes());
                break;
            }
            _ => assert!(
                Instant::now() < deadline,
                "request across mixed route failed"
            ),
        }
    }
    responder.abort();
    // queue group: members on both sides, publisher on theirs, each once.
    let mut qa = n_ours.queue_subscribe("mixed.q", "g".into()).await.unwrap();
    let mut qb = n_theirs
        .queue_subscribe("mixed.q", "g".into())
        .await
        .unwrap();
    n_ours.flush().await.unwrap();
    n_theirs.flush().await.unwrap();
    sleep(Duration::from_millis(300)).await;
    const N: usize = 200;
    for i in 0..N {
        n_theirs
            .publish("mixed.q", i.to_string().into())
            .await
            .unwrap();
    }
    n_theirs.flush().await.unwrap();
    let mut seen = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < N && Instant::now() < deadline {
        tokio::select! {
            Some(m) = qa.next() => assert!(seen.insert(m.payload.to_vec()), "duplicate"),
            Some(m) = qb.next() => assert!(seen.insert(m.payload.to_vec()), "duplicate"),
            _ = sleep(Duration::from_millis(50)) => {}
        }
    }
    assert_eq!(seen.len(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cluster_ours_dials_nats_server() {
    let Some(theirs) = nats_server(&[]) else {
        panic!("nats-server 2.9.10 is required (apt-get install nats-server)");
    };
    let ours = start(node_opts("ours", vec![route(theirs.cluster)]))
        .await
        .unwrap();
    wait_routes(&ours, 1).await;
    mixed_pubsub_both_ways(&ours, &theirs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cluster_nats_server_dials_ours_and_gossip_meshes() {
    // Seed is ours; nats-server and a second broker both route to it and
    // must find each other through gossip.
    let seed = start(node_opts("seed", vec![])).await.unwrap();
    let rs = route_addr(&seed);
    let Some(theirs) = nats_server(&[rs]) else {
        panic!("nats-server 2.9.10 is required (apt-get install nats-server)");
    };
    let other = start(node_opts("other", vec![route(rs)])).await.unwrap();
    wait_routes(&seed, 2).await;
    wait_routes(&other, 2).await;
    mixed_pubsub_both_ways(&seed, &theirs).await;
    mixed_pubsub_both_ways(&other, &theirs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cluster_nats_server_seed_gossips_to_ours() {
    let Some(seed) = nats_server(&[]) else {
        panic!("nats-server 2.9.10 is required (apt-get install nats-server)");
    };
    // Wait for the seed's route port.
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(seed.cluster).await.is_err() {
        assert!(Instant::now() < deadline);
        sleep(Duration::from_millis(20)).await;
    }
    let x = start(node_opts("x", vec![route(seed.cluster)]))
        .await
        .unwrap();
    let y = start(node_opts("y", vec![route(seed.cluster)]))
        .await
        .unwrap();
    wait_routes(&x, 2).await;
    wait_routes(&y, 2).await;
    let nx = client(&x).await;
    let mut s = nx.subscribe("g.t").await.unwrap();
    nx.flush().await.unwrap();
    wait_interest(&y, "g.t").await;
    let ny = client(&y).await;
    ny.publish("g.t", "1".into()).await.unwrap();
    ny.flush().await.unwrap();
    let m = timeout(WAIT, s.next()).await.unwrap().unwrap();
    assert_eq!(m.payload, "1".as_bytes());
    // Exactly once although x and y also both route to the seed.
    assert!(timeout(Duration::from_millis(200), s.next()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_nats_client_fails_over_using_connect_urls() {
    let (a, b, c) = three_nodes().await;
    // The client knows only A; it learns B and C from INFO connect_urls.
    let nc = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(a.client_addr.to_string())
        .await
        .unwrap();
    let mut sub = nc.subscribe("fo.x").await.unwrap();
    nc.flush().await.unwrap();
    wait_interest(&b, "fo.x").await;
    // Kill A: the client must reconnect to B or C and resubscribe.
    a.shutdown().await;
    let nb = client(&b).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        nb.publish("fo.x", "after".into()).await.unwrap();
        nb.flush().await.unwrap();
        if let Ok(Some(m)) = timeout(Duration::from_millis(200), sub.next()).await {
            assert_eq!(m.payload, "after".as_bytes());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "client did not fail over to another node"
        );
    }
    let port = nc.server_info().port;
    assert!(
        port == b.client_addr.port() || port == c.client_addr.port(),
        "now connected to B or C, not {port}"
    );
    drop((b, c));
}

/// A subscriber that stops reading behind a route is cut at max_pending, as nats-server
/// 2.9.10 cuts it, and the route keeps serving the other subscribers on that server:
/// every message for them arrives, in order, and the route stays up. (Our route reader
/// waits for a stalled subscriber once, at most its stall time, then no more until it
/// drains: see the next test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_behind_route_is_cut_and_others_keep_receiving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // 16 MB: more than the kernel buffers between the server and a reader that never
    // reads (its receive buffer is kept small below) can hold besides max_pending.
    const FLOOD: usize = 4000;
    const SIZE: usize = 4096;
    const OTHER: usize = 100;
    let a = start(node_opts("a", vec![])).await.unwrap();
    let mut ob = node_opts("b", vec![route(route_addr(&a))]);
    ob.max_pending = 1024 * 1024;
    // Only max_pending may cut the subscriber within this test.
    ob.write_deadline = Duration::from_secs(120);
    let b = start(ob).await.unwrap();
    wait_routes(&a, 1).await;

    // The slow subscriber never reads after its PONG; a small receive buffer keeps the
    // kernel from soaking up the flood in its place.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    let mut slow = sock.connect(b.client_addr).await.unwrap();
    slow.write_all(b"CONNECT {\"verbose\":false,\"name\":\"slow\"}\r\nSUB flood 1\r\nPING\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !got.ends_with(b"PONG\r\n") {
        let n = timeout(WAIT, slow.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "subscriber closed before PONG");
        got.extend_from_slice(&buf[..n]);
    }
    let fast = client(&b).await;
    let mut other = fast.subscribe("other").await.unwrap();
    fast.flush().await.unwrap();
    wait_interest(&a, "flood").await;
    wait_interest(&a, "other").await;

    let nc = client(&a).await;
    let publisher = tokio::spawn(async move {
        let payload = bytes::Bytes::from(vec![b'x'; SIZE]);
        let mut sent = 0;
        for i in 0..FLOOD {
            nc.publish("flood", payload.clone()).await.unwrap();
            if i % (FLOOD / OTHER) == 0 && sent < OTHER {
                nc.publish("other", sent.to_string().into()).await.unwrap();
                sent += 1;
            }
        }
        nc.flush().await.unwrap();
        nc
    });
    for want in 0..OTHER {
        let m = timeout(Duration::from_secs(60), other.next())
            .await
            .unwrap_or_else(|_| panic!("message {want} on `other` never came"))
            .expect("subscription open");
        assert_eq!(m.payload, want.to_string().as_bytes());
    }
    let _nc = timeout(WAIT, publisher).await.unwrap().unwrap();
    // Cut for its pending bytes, not by the write deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let reason = loop {
        let found = b
            .state
            .closed
            .lock()
            .unwrap()
            .iter()
            .find(|c| c.snapshot.name == "slow")
            .map(|c| c.snapshot.reason);
        if let Some(r) = found {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the slow subscriber was never cut"
        );
        sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        reason,
        Some(broker::server::ClosedState::SlowConsumerPendingBytes)
    );
    assert!(
        b.state
            .stats
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert_eq!(a.state.cluster.num_routes(), 1);
    assert_eq!(b.state.cluster.num_routes(), 1);
}

/// A subscriber that keeps reading, only more slowly than a flood arrives over the route,
/// is not cut: the route reader waits for it while it drains (nats-server's never does; its
/// route is slower than ours and rarely outruns a reader, ours cut the subscriber of a
/// 1 KiB `nats bench` across two nodes at 64 MB pending), so the flood is paced to it
/// through the route back to the publisher. (A subscriber that stops reading is still cut:
/// the test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_slower_subscriber_behind_route_is_paced_not_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const FLOOD: usize = 20_000;
    const SIZE: usize = 1024;
    let a = start(node_opts("a", vec![])).await.unwrap();
    let mut ob = node_opts("b", vec![route(route_addr(&a))]);
    ob.max_pending = 1024 * 1024;
    let b = start(ob).await.unwrap();
    wait_routes(&a, 1).await;

    let mut sub = tokio::net::TcpStream::connect(b.client_addr).await.unwrap();
    sub.write_all(b"CONNECT {\"verbose\":false,\"name\":\"steady\"}\r\nSUB flood 1\r\nPING\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !got.ends_with(b"PONG\r\n") {
        let n = timeout(WAIT, sub.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "subscriber closed before PONG");
        got.extend_from_slice(&buf[..n]);
    }
    wait_interest(&a, "flood").await;
    let nc = client(&a).await;
    let publisher = tokio::spawn(async move {
        let payload = bytes::Bytes::from(vec![b'x'; SIZE]);
        for _ in 0..FLOOD {
            nc.publish("flood", payload.clone()).await.unwrap();
        }
        nc.flush().await.unwrap();
        nc
    });
    // At most 64 KiB per millisecond (~64 MB/s): slower than the flood, never stopping.
    let want = FLOOD * (b"MSG flood 1 1024\r\n".len() + SIZE + 2);
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < want {
        assert!(
            Instant::now() < deadline,
            "{total} of {want} bytes after 60 s"
        );
        match timeout(Duration::from_secs(10), sub.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => panic!(
                "cut after {total} of {want} bytes: {:?}",
                b.state
                    .closed
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|c| c.snapshot.reason)
                    .collect::<Vec<_>>()
            ),
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("nothing for 10 s after {total} of {want} bytes"),
        }
        sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(total, want);
    let _nc = timeout(WAIT, publisher).await.unwrap().unwrap();
    assert_eq!(
        b.state
            .stats
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// First line a server sends a new TCP client (its INFO), retried until it listens.
async fn first_info(addr: SocketAddr) -> String {
    use tokio::io::AsyncBufReadExt;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Ok(s)) =
            timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await
        {
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(s);
            if let Ok(Ok(n)) = timeout(WAIT, r.read_line(&mut line)).await {
                if n > 0 {
                    return line;
                }
            }
        }
        assert!(Instant::now() < deadline, "no INFO from {addr}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// A lone clustered server lists no `connect_urls` to clients, with or without
/// `cluster.no_advertise` (nats-server 2.9.10 fills them only when a route brings client
/// URLs); the routed case is `no_advertise_hides_cluster_urls_once_routed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_clustered_server_lists_no_connect_urls_like_nats_server() {
    for no_advertise in [false, true] {
        let ours = start(Options {
            host: "127.0.0.1".into(),
            port: -1,
            cluster: ClusterOpts {
                name: Some("c1".into()),
                listen: Some(ListenAddr::Tcp {
                    host: "127.0.0.1".into(),
                    port: -1,
                }),
                no_advertise,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .expect("start");
        let our_info = first_info(ours.client_addr).await;
        ours.shutdown().await;
        let Some(bin) = which_nats_server() else {
            assert!(
                std::env::var_os("NATS_SCION_REQUIRE_PEERS").is_none(),
                "nats-server not installed"
            );
            return;
        };
        let cp = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-a", "127.0.0.1", "-p", &cp.to_string()])
            .args(["--cluster_name", "c1"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", free_port())]);
        if no_advertise {
            cmd.arg("--no_advertise");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let theirs = NatsServer {
            child,
            client: format!("127.0.0.1:{cp}").parse().unwrap(),
            cluster: "127.0.0.1:0".parse().unwrap(),
        };
        let their_info = first_info(theirs.client).await;
        drop(theirs);
        assert_eq!(
            our_info.contains("\"connect_urls\""),
            their_info.contains("\"connect_urls\""),
            "no_advertise={no_advertise}\nours:   {our_info}theirs: {their_info}"
        );
    }
}

/// With `cluster.no_advertise`, routed servers still keep client URLs out of their
/// clients' INFO (nats-server route.go gates addConnectURLsAndSendINFOToClients on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_advertise_hides_cluster_urls_once_routed() {
    let quiet = |name: &str, routes| {
        let mut o = node_opts(name, routes);
        o.cluster.no_advertise = true;
        o
    };
    let a = start(quiet("a", vec![])).await.unwrap();
    let b = start(quiet("b", vec![route(route_addr(&a))]))
        .await
        .unwrap();
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    for h in [&a, &b] {
        let info = first_info(h.client_addr).await;
        assert!(!info.contains("connect_urls"), "{info}");
    }
}

/// Reads protocol lines from a raw client until one satisfies `pred` (bounded).
async fn read_until_line(
    s: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
    pred: impl Fn(&str) -> bool,
) -> String {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + WAIT;
    loop {
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if pred(&line) {
                return line;
            }
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("line in time")
            .expect("read");
        assert!(n > 0, "server closed");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Lame duck mode is announced to the routes before any client is closed
/// (server.go sendLDMToRoutes): the other server's clients get an INFO without
/// this server's URL while it still serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lame_duck_is_announced_to_routes_before_clients_close() {
    use tokio::io::AsyncWriteExt;
    let mut oa = node_opts("a", vec![]);
    oa.lame_duck_grace_period = Duration::from_secs(5);
    oa.lame_duck_duration = Duration::from_secs(30);
    let a = start(oa).await.unwrap();
    let b = start(node_opts("b", vec![route(route_addr(&a))]))
        .await
        .unwrap();
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    let a_url = a.client_addr.to_string();
    // A protocol-1 client on b that has sent its first PING gets async INFOs.
    let mut cb = tokio::net::TcpStream::connect(b.client_addr).await.unwrap();
    cb.write_all(b"CONNECT {\"protocol\":1,\"verbose\":false}\r\nPING\r\n")
        .await
        .unwrap();
    let mut pend = Vec::new();
    let pong = read_until_line(&mut cb, &mut pend, |l| l == "PONG").await;
    assert_eq!(pong, "PONG");
    // b's clients know a's URL first (the route brought it; an INFO follows the PONG
    // unless the CONNECT already saw it).
    if !b.state.cluster.connect_urls().contains(&a_url) {
        panic!("b does not advertise a's URL {a_url}");
    }
    // A client on a keeps lame duck mode from ending at once; it takes async INFOs.
    let mut ca = tokio::net::TcpStream::connect(a.client_addr).await.unwrap();
    ca.write_all(b"CONNECT {\"protocol\":1,\"verbose\":false}\r\nPING\r\n")
        .await
        .unwrap();
    let mut pend_a = Vec::new();
    read_until_line(&mut ca, &mut pend_a, |l| l == "PONG").await;
    let state = a.state.clone();
    let ldm = tokio::spawn(async move { broker::app::lame_duck(&state).await });
    let info = read_until_line(&mut cb, &mut pend, |l| {
        l.starts_with("INFO ") && !l.contains(&a_url)
    })
    .await;
    assert!(!info.contains(&a_url), "{info}");
    // a's own client is told once (server.go sendLDMToClients), without a's URL.
    let told = read_until_line(&mut ca, &mut pend_a, |l| l.starts_with("INFO ")).await;
    assert!(told.contains("\"ldm\":true"), "{told}");
    assert!(!told.contains(&a_url), "{told}");
    // A later INFO (a cluster update) carries no ldm flag and still not a's URL.
    broker::server::cluster::send_async_info_to_clients(&a.state, true, true);
    let later = read_until_line(&mut ca, &mut pend_a, |l| l.starts_with("INFO ")).await;
    assert!(!later.contains("\"ldm\""), "{later}");
    assert!(!later.contains(&a_url), "{later}");
    // Still within the grace period: a has closed nothing yet.
    assert_eq!(a.state.cluster.num_routes(), 1);
    assert!(!ldm.is_finished());
    ldm.abort();
    drop(ca);
}

/// A server with lame duck mode and no client has nothing to wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lame_duck_without_clients_ends_at_once() {
    let mut oa = node_opts("a", vec![]);
    oa.lame_duck_grace_period = Duration::from_secs(20);
    oa.lame_duck_duration = Duration::from_secs(60);
    let a = start(oa).await.unwrap();
    timeout(Duration::from_secs(5), broker::app::lame_duck(&a.state))
        .await
        .expect("no grace period without clients");
}

/// route.go processRouteInfo: an accepted route from a server with our name is refused
/// ("Remote server has a duplicate name"), closed as Duplicate Server Name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_from_a_server_with_our_name_is_refused() {
    scion_common::capture_logs("info");
    let a = start(node_opts("same", vec![])).await.unwrap();
    let b = start(node_opts("same", vec![route(route_addr(&a))]))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let want = "Remote server has a duplicate name: \"same\"";
    while !scion_common::logs().contains(want) {
        assert!(Instant::now() < deadline, "the route was not refused");
        sleep(Duration::from_millis(20)).await;
    }
    assert!(scion_common::logs().contains("Router connection closed: Duplicate Server Name"));
    assert_eq!(a.state.cluster.num_routes(), 0);
    drop(b);
}

/// Servers without a cluster name generate one and converge on one name as nats-server
/// does (route.go processRouteConnect/processRouteInfo: a dynamic name gives way to a
/// configured or higher one, "Cluster name updated to X", the other routes are closed as
/// Cluster Name Conflict and re-dialled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_cluster_names_converge() {
    scion_common::capture_logs("info");
    let dynamic = |name: &str, routes| {
        let mut o = node_opts(name, routes);
        o.cluster.name = None;
        o
    };
    let a = start(dynamic("dyn-a", vec![])).await.unwrap();
    let b = start(dynamic("dyn-b", vec![route(route_addr(&a))]))
        .await
        .unwrap();
    let c = start(dynamic("dyn-c", vec![route(route_addr(&a))]))
        .await
        .unwrap();
    let names = || [&a, &b, &c].map(|h| h.state.cluster.name());
    for n in names() {
        assert_eq!(n.len(), 22, "a NUID-shaped name: {n}");
        assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()), "{n}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = names();
        let meshed = [&a, &b, &c]
            .iter()
            .all(|h| h.state.cluster.num_routes() == 2);
        if meshed && n[0] == n[1] && n[1] == n[2] {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence: {n:?}");
        sleep(Duration::from_millis(20)).await;
    }
    let name = names()[0].clone();
    let logs = scion_common::logs();
    assert!(
        logs.contains(&format!("Cluster name updated to {name}")),
        "{logs}"
    );
}

/// A client on the route port and a route with another cluster name are refused with
/// nats-server's -ERR, close reason and the error its read loop logs after the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_port_refusals_like_nats_server() {
    use tokio::io::AsyncWriteExt;
    scion_common::capture_logs("info");
    let a = start(node_opts("refuser", vec![])).await.unwrap();
    let cases = [
        (
            "CONNECT {\"lang\":\"go\",\"verbose\":false}\r\n",
            "-ERR 'attempted to connect to route port'",
            "Incorrect Port",
            "attempted to connect to route port",
        ),
        (
            "CONNECT {\"cluster\":\"other\",\"verbose\":false}\r\n",
            "-ERR 'Rejecting connection, cluster name \"other\" does not match \"c1\"'",
            "Cluster Name Conflict",
            "cluster name from remote server conflicts",
        ),
    ];
    for (connect, err, reason, after) in cases {
        let mut s = tokio::net::TcpStream::connect(route_addr(&a))
            .await
            .unwrap();
        let prefix = format!("{} - rid:", s.local_addr().unwrap());
        s.write_all(connect.as_bytes()).await.unwrap();
        let mut pend = Vec::new();
        let line = read_until_line(&mut s, &mut pend, |l| l.starts_with("-ERR")).await;
        assert_eq!(line, err);
        let closed = format!("Router connection closed: {reason}");
        let deadline = Instant::now() + WAIT;
        let mine = loop {
            let logs = scion_common::logs();
            let mine: Vec<String> = logs
                .lines()
                .filter(|l| l.contains(&prefix))
                .map(str::to_string)
                .collect();
            if mine.iter().any(|l| l.contains(&closed)) {
                break mine;
            }
            assert!(Instant::now() < deadline, "no {closed:?}: {mine:#?}");
            sleep(Duration::from_millis(20)).await;
        };
        // After the close line comes the read loop's error.
        let at = mine.iter().position(|l| l.contains(&closed)).unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let logs = scion_common::logs();
            let later = logs
                .lines()
                .filter(|l| l.contains(&prefix))
                .skip(at + 1)
                .any(|l| l.contains("ERROR") && l.ends_with(after));
            if later {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no {after:?} after the close: {mine:#?}"
            );
            sleep(Duration::from_millis(20)).await;
        }
    }
}

/// /routez `subscriptions_list_detail` counts the messages sent on each route
/// subscription (client.go deliverMsg `sub.nm++` on the route target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_subscriptions_count_routed_messages() {
    let a = start(node_opts("cnt-a", vec![])).await.unwrap();
    let b = start(node_opts("cnt-b", vec![route(route_addr(&a))]))
        .await
        .unwrap();
    wait_routes(&a, 1).await;
    let cb = client(&b).await;
    let mut sub = cb.subscribe("cnt.subject").await.unwrap();
    cb.flush().await.unwrap();
    let deadline = Instant::now() + WAIT;
    while !a.state.sublist.read().unwrap().has_interest("cnt.subject") {
        assert!(Instant::now() < deadline, "interest never reached a");
        sleep(Duration::from_millis(10)).await;
    }
    let ca = client(&a).await;
    for _ in 0..3 {
        ca.publish("cnt.subject", "x".into()).await.unwrap();
    }
    ca.flush().await.unwrap();
    for _ in 0..3 {
        timeout(WAIT, sub.next()).await.expect("routed in time");
    }
    let infos = broker::monitor::route_infos(&a.state, broker::monitor::http::SubsLevel::Detail);
    let d = infos[0]
        .subs
        .iter()
        .find(|s| s.subject == "cnt.subject")
        .expect("the route's subscription");
    assert_eq!(d.msgs, 3);
}

/// A start that fails late (the route port is taken) leaves nothing running: the client
/// listener it had already opened is closed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_start_closes_what_it_opened() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let route_port = taken.local_addr().unwrap().port();
    let client_port = scion_common::free_tcp_port();
    let mut o = node_opts("late-failure", vec![]);
    o.port = i32::from(client_port);
    o.cluster.listen = Some(ListenAddr::Tcp {
        host: "127.0.0.1".into(),
        port: i32::from(route_port),
    });
    let e = match start(o).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started on a taken route port"),
    };
    assert!(e.contains("address already in use"), "{e}");
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", client_port))
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < deadline,
            "the client listener of a failed start still accepts"
        );
        sleep(Duration::from_millis(20)).await;
    }
    drop(taken);
}
