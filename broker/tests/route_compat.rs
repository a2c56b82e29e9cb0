//! Route behaviour compared with nats-server 2.9.10: each scenario runs
//! against our broker and against Debian's nats-server with raw route
//! peers, and both must give the same result.

mod harness;
mod route_ref;

use harness::{start_broker, Raw};
use route_ref::{
    answered, our_addrs, our_opts, route_info, route_peer, wait_json, Addrs, RefCluster,
};

/// A route that closes leaves no entry in `/connz?state=closed`: client.go
/// markConnAsClosed saves only CLIENT and LEAF connections
/// (saveClosedClient). Afterwards a client that closes is the only closed
/// connection either server lists, and our ring holds no route.
async fn closed_route_then_client(a: Addrs) -> serde_json::Value {
    let mut peer = route_peer(a.route, "GONE", &route_info("GONE"), None).await;
    assert!(answered(&mut peer).await, "route handshake");
    wait_json(a.http, "/routez", |v| v["num_routes"] == 1).await;
    drop(peer);
    wait_json(a.http, "/routez", |v| v["num_routes"] == 0).await;
    let mut c = Raw::connect(a.client).await;
    c.read_line().await;
    c.send(b"CONNECT {\"verbose\":false,\"name\":\"last\"}\r\nPING\r\n")
        .await;
    assert_eq!(c.read_pongs(1).await, b"PONG\r\n");
    drop(c);
    wait_json(a.http, "/connz?state=closed", |v| {
        v["num_connections"] == 1 && v["connections"][0]["name"] == "last"
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_routes_are_not_saved() {
    let ours = start_broker(our_opts()).await;
    let theirs = RefCluster::start("");
    let (o, t) = tokio::join!(
        closed_route_then_client(our_addrs(&ours)),
        closed_route_then_client(theirs.addrs)
    );
    assert_eq!(o["total"], t["total"], "ours {o}\nnats-server {t}");
    let routes_in_ring = ours
        .state
        .closed
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.snapshot.kind == broker::proto::ConnKind::Route)
        .count();
    assert_eq!(routes_in_ring, 0, "a closed route took a closed-ring slot");
    ours.shutdown().await;
}
