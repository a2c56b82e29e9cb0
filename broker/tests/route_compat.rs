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

/// Route INFO documents and whether nats-server 2.9.10 keeps the route
/// (client.go processInfo: `json.Unmarshal` into `server.Info`, no field
/// required, a value of the wrong Go type closes the route).
const INFO_CASES: &[(&str, bool)] = &[
    (r#"{"server_id":"I1"}"#, true),
    (r#"{"server_id":"I2","cluster":"c1","headers":true}"#, true),
    (r#"{"SERVER_ID":"I3","Version":"2.9.10","PORT":1}"#, true),
    (r#"{"server_id":"I4","version":null,"headers":null}"#, true),
    (r#"{"server_id":"I5","port":70000,"proto":-3}"#, true),
    (
        r#"{"server_id":"I6","connect_urls":["127.0.0.1:1",null]}"#,
        true,
    ),
    (
        r#"{"server_id":"I7","import":{"allow":["x"]},"extra":{"a":[1]}}"#,
        true,
    ),
    (r#"{"server_id":"I8","max_payload":2147483647}"#, true),
    (r#"{"server_id":"B1","port":"4248"}"#, false),
    (r#"{"server_id":"B2","version":2}"#, false),
    (r#"{"server_id":"B3","proto":1.5}"#, false),
    (r#"{"server_id":"B4","max_payload":2147483648}"#, false),
    (r#"{"server_id":"B5","client_id":-1}"#, false),
    (r#"{"server_id":"B6","connect_urls":[1]}"#, false),
    (r#"{"server_id":"B7","import":5}"#, false),
    (r#"{"server_id":"B8","headers":"true"}"#, false),
    (r#"{"server_id":5}"#, false),
    ("[]", false),
    (r#"{"server_id":"B9""#, false),
];

async fn info_outcomes(a: Addrs) -> Vec<bool> {
    let mut out = Vec::new();
    for (i, (doc, _)) in INFO_CASES.iter().enumerate() {
        let mut peer =
            route_peer(a.route, &format!("N{i}"), &format!("INFO {doc}\r\n"), None).await;
        out.push(answered(&mut peer).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_info_fields_checked_like_nats_server() {
    let ours = start_broker(our_opts()).await;
    let theirs = RefCluster::start("");
    let (o, t) = tokio::join!(info_outcomes(our_addrs(&ours)), info_outcomes(theirs.addrs));
    for (i, (doc, want)) in INFO_CASES.iter().enumerate() {
        assert_eq!(t[i], *want, "nats-server on INFO {doc}");
        assert_eq!(o[i], *want, "ours on INFO {doc}");
    }
    ours.shutdown().await;
}
