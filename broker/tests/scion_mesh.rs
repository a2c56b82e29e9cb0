//! SCION clusters form and keep a full mesh like nats-server's TCP clusters: a server on a
//! SCION cluster listener gossips its SCION route URL, so brokers configured as a star dial
//! each other (route.go processImplicitRoute); and routes listed on both sides settle on one
//! connection per pair instead of re-dialling the duplicate forever (client.go
//! closeConnection: "Not attempting reconnect for solicited route, already connected"),
//! while still taking over when the route that was kept goes away (route.go addRoute marks
//! it `retry`), over SCION and over TCP. Emulator and TCP on loopback only; every wait is
//! bounded.

use std::time::Duration;

use broker::options::{ClusterOpts, ListenAddr, Options, RouteTarget, RouteUrl};
use broker::server::{start, ServerHandle};
use futures::StreamExt;
use scion_transport::address::ScionAddr;
use scion_transport::emu::EmuHandle;
use tokio::time::{sleep, timeout, Instant};

mod scion_common;
use scion_common::*;

/// A UDP port in the emulated ASes' dispatched range (31000-32767) that is free right now,
/// for brokers that must know each other's address before either starts.
fn free_dispatched_port(taken: &[u16]) -> u16 {
    for _ in 0..500 {
        let p = rand::random_range(31000u16..=32767);
        if !taken.contains(&p) && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in 31000-32767");
}

/// Two brokers, in AS A and AS B, each listing the other's SCION route address in `routes`
/// (so both addresses are picked before either starts). A port another test took in the
/// meantime fails the bind: then both start over on new ports (bounded).
async fn cross_listed_pair(
    emu: &EmuHandle,
    dir: &TempDir,
    na: &str,
    nb: &str,
) -> (ServerHandle, ServerHandle) {
    let addr = |as_: &str, port| ScionAddr {
        ia: ia(as_),
        ip: localhost(),
        port,
    };
    for _ in 0..5 {
        let pa = free_dispatched_port(&[]);
        let pb = free_dispatched_port(&[pa]);
        let Ok(a) = start(scion_node(
            na,
            emu,
            dir,
            AS_A,
            pa,
            vec![scion_route(addr(AS_B, pb))],
        ))
        .await
        else {
            continue;
        };
        match start(scion_node(
            nb,
            emu,
            dir,
            AS_B,
            pb,
            vec![scion_route(addr(AS_A, pa))],
        ))
        .await
        {
            Ok(b) => return (a, b),
            Err(_) => a.shutdown().await,
        }
    }
    panic!("no free pair of ports in 31000-32767 after 5 tries");
}

async fn wait_log(part: &str) {
    let deadline = Instant::now() + WAIT;
    while !logs().contains(part) {
        assert!(
            Instant::now() < deadline,
            "no log line with {part:?}:\n{}",
            logs()
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// A message published on `from` reaches a subscriber on `to` (retried until interest has
/// crossed the route, within WAIT).
async fn crosses(from: &ServerHandle, to: &ServerHandle, subject: &'static str) {
    let sub_client = timeout(WAIT, async_nats::connect(to.client_addr.to_string()))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut sub = sub_client.subscribe(subject).await.expect("subscribe");
    sub_client.flush().await.expect("flush");
    let pub_client = timeout(WAIT, async_nats::connect(from.client_addr.to_string()))
        .await
        .expect("connect in time")
        .expect("connect");
    let deadline = Instant::now() + WAIT;
    loop {
        pub_client
            .publish(subject, "hello".into())
            .await
            .expect("publish");
        pub_client.flush().await.expect("flush");
        if let Ok(Some(m)) = timeout(Duration::from_millis(200), sub.next()).await {
            assert_eq!(&m.payload[..], b"hello");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{subject}: nothing from {} reached {}",
            from.state.name,
            to.state.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_configured_scion_cluster_meshes_by_gossip() {
    capture_logs("info,broker=debug");
    let emu = emulator().await;
    let dir = temp_dir("scion-mesh");
    // Hub in AS A; two leaves in AS B that know only the hub.
    let hub = start(scion_node("hub", &emu, &dir, AS_A, 0, vec![]))
        .await
        .expect("start hub");
    let to_hub = scion_route(route_endpoint(&hub));
    let b = start(scion_node("b", &emu, &dir, AS_B, 0, vec![to_hub.clone()]))
        .await
        .expect("start b");
    wait_routes(&b, 1).await;
    let c = start(scion_node("c", &emu, &dir, AS_B, 0, vec![to_hub]))
        .await
        .expect("start c");
    // The hub tells b of c (with c's SCION route URL), and b dials it.
    wait_routes(&b, 2).await;
    wait_routes(&c, 2).await;
    wait_routes(&hub, 2).await;
    let c_url = format!("nats-route://{}/", route_endpoint(&c));
    wait_log(&format!("Implicit route to {c_url}")).await;
    // Routes do not forward to routes: b reaches c only over their own route.
    crosses(&b, &c, "mesh.bc").await;
    crosses(&c, &b, "mesh.cb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_listed_on_both_sides_settle_on_one_connection() {
    capture_logs("info,broker=debug");
    let emu = emulator().await;
    let dir = temp_dir("scion-dup");
    let (a, b) = cross_listed_pair(&emu, &dir, "a", "b").await;
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    // Each side dialled the other; the second connection is a duplicate, and its dialer
    // stops instead of re-dialling it every few hundred milliseconds.
    // (The line names the peer's server ID; tests in this file run side by side.)
    let ids = [a.state.id.clone(), b.state.id.clone()];
    let deadline = Instant::now() + WAIT;
    while !ids.iter().any(|id| {
        logs().contains(&format!(
            "Not attempting reconnect for solicited route, already connected to \"{id}\""
        ))
    }) {
        assert!(
            Instant::now() < deadline,
            "duplicate never settled:\n{}",
            logs()
        );
        sleep(Duration::from_millis(20)).await;
    }
    // If both kept the connection the other dialled, both routes end and the stood-down
    // dialers bring one back: wait for the pair to be routed again.
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    crosses(&a, &b, "dup.ab").await;
}

/// Once the pair has settled after a duplicate (one side logged "already connected to" the
/// other): the server whose dialer stood down, and the one that dialled the route that was
/// kept. (When both dialled at once, which connection survives is a race; the kept route's
/// `did_solicit` tells.)
async fn watcher_and_kept<'a>(
    a: &'a ServerHandle,
    b: &'a ServerHandle,
) -> (&'a ServerHandle, &'a ServerHandle) {
    let line = |id: &str| {
        format!("Not attempting reconnect for solicited route, already connected to \"{id}\"")
    };
    let dialled_kept = |h: &ServerHandle| {
        let routes = h.state.cluster.routes();
        routes.len() == 1 && routes[0].meta.lock().is_ok_and(|m| m.did_solicit)
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let l = logs();
        if l.contains(&line(&a.state.id)) || l.contains(&line(&b.state.id)) {
            if dialled_kept(a) && b.state.cluster.num_routes() == 1 {
                return (b, a);
            }
            if dialled_kept(b) && a.state.cluster.num_routes() == 1 {
                return (a, b);
            }
        }
        assert!(Instant::now() < deadline, "duplicate never settled:\n{l}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// `k` drops its configured routes (as a reload would): the route it dialled closes and it
/// does not dial again, so only `w`'s stood-down dialer can bring the pair back together.
async fn kept_route_removed_then_restored(w: &ServerHandle, k: &ServerHandle) {
    let before: Vec<u64> = w
        .state
        .cluster
        .routes()
        .iter()
        .map(|h| h.shared.cid)
        .collect();
    let mut o = (*k.state.opts()).clone();
    let removed = std::mem::take(&mut o.cluster.routes);
    k.state.set_opts(o);
    broker::server::route::apply_route_changes(&k.state, &removed, &[]);
    let deadline = Instant::now() + WAIT;
    loop {
        let now: Vec<u64> = w
            .state
            .cluster
            .routes()
            .iter()
            .map(|h| h.shared.cid)
            .collect();
        if now.len() == 1 && !before.contains(&now[0]) && k.state.cluster.num_routes() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not dial {} again (routes {now:?}, before {before:?}):\n{}",
            w.state.name,
            k.state.name,
            logs()
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stood_down_scion_dialer_takes_over_when_the_kept_route_goes() {
    capture_logs("info,broker=debug");
    let emu = emulator().await;
    let dir = temp_dir("scion-takeover");
    let (a, b) = cross_listed_pair(&emu, &dir, "ta", "tb").await;
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    let (w, k) = watcher_and_kept(&a, &b).await;
    kept_route_removed_then_restored(w, k).await;
    crosses(k, w, "takeover.scion").await;
}

/// The same over TCP routes: the kept route inherits the closed duplicate's URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_duplicate_hands_its_url_to_the_kept_route() {
    capture_logs("info,broker=debug");
    let free_tcp = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    };
    let (pa, pb) = (free_tcp(), free_tcp());
    let tcp = |name: &str, listen: u16, peer: u16| Options {
        server_name: Some(name.into()),
        host: "127.0.0.1".into(),
        port: -1,
        cluster: ClusterOpts {
            name: Some("tcpdup".into()),
            listen: Some(ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: listen as i32,
            }),
            routes: vec![RouteUrl {
                url: format!("nats-route://127.0.0.1:{peer}"),
                user: None,
                password: None,
                target: RouteTarget::Tcp {
                    host: "127.0.0.1".into(),
                    port: peer,
                },
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    let a = start(tcp("ua", pa, pb)).await.expect("start a");
    let b = start(tcp("ub", pb, pa)).await.expect("start b");
    wait_routes(&a, 1).await;
    wait_routes(&b, 1).await;
    let (w, k) = watcher_and_kept(&a, &b).await;
    kept_route_removed_then_restored(w, k).await;
    crosses(k, w, "takeover.tcp").await;
}

/// Gossip about a server not yet routed comes with every route INFO; each used to start one
/// more SCION dialer for the same address (the extra ones, after losing the duplicate race,
/// wait while the server is routed and all re-dial when it goes). One dialer per address
/// runs for gossip, and none beside a configured route's while that route is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_starts_one_scion_dialer_per_address() {
    use broker::server::route::Solicit;
    use broker::server::scion::{dial_route_url, route_dialers};
    capture_logs("info,broker=debug");
    let emu = emulator().await;
    let dir = temp_dir("scion-mesh-dialers");
    // Nobody listens at these addresses, and A's links swallow every packet: each handshake
    // waits its 5 s (a closed port could answer at once, and a gossiped dialer would end).
    let taken = free_dispatched_port(&[]);
    let nobody =
        |port: u16| -> ScionAddr { format!("{AS_B},127.0.0.1:{port}").parse().expect("address") };
    let (gossiped, configured) = (nobody(taken), nobody(free_dispatched_port(&[taken])));
    for end in ["1-ff00:0:111#1", "1-ff00:0:111#2"] {
        emu.command(&format!("link {end} blackhole"))
            .expect("blackhole");
    }
    let a = start(scion_node(
        "a",
        &emu,
        &dir,
        AS_A,
        0,
        vec![scion_route(configured)],
    ))
    .await
    .expect("start a");
    let gossip = |to: ScionAddr| {
        let url = scion_route(to);
        let s = Solicit {
            url: url.url.clone(),
            user: None,
            password: None,
            configured: false,
        };
        dial_route_url(&a.state, &url, s);
    };
    for _ in 0..3 {
        gossip(gossiped);
        gossip(configured);
    }
    let counts = (
        route_dialers(&a.state, gossiped),
        route_dialers(&a.state, configured),
    );
    assert_eq!(counts, (1, 1), "dialers (gossiped, configured)\n{}", logs());
    // A reload took the configured route out: its dialer, still in its handshake, stops at
    // its next turn and does not stand for the address any more, so gossip dials it.
    let mut opts = (*a.state.opts()).clone();
    opts.cluster.routes.clear();
    a.state.set_opts(opts);
    gossip(configured);
    assert_eq!(
        route_dialers(&a.state, configured),
        2,
        "gossip beside a removed route's dialer\n{}",
        logs()
    );
    let state = a.state.clone();
    a.shutdown().await;
    // Shutdown ends the dialers, and their count with them.
    let deadline = Instant::now() + WAIT;
    while route_dialers(&state, gossiped) + route_dialers(&state, configured) != 0 {
        assert!(Instant::now() < deadline, "dialers left after shutdown");
        sleep(Duration::from_millis(20)).await;
    }
}
