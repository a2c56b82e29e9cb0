//! The HTTP monitoring port: endpoints, query parameters, HTTP behaviour,
//! and a differential check of the JSON key sets against Debian's
//! nats-server 2.9.10.
//!
//! Every wait is bounded; every listener is on 127.0.0.1 with a random port.

mod harness;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker::options::{ClusterOpts, ListenAddr, Options, RouteTarget, RouteUrl};
use broker::server::{start, ServerHandle};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn opts() -> Options {
    Options {
        host: "127.0.0.1".into(),
        port: -1,
        http_host: "127.0.0.1".into(),
        http_port: -1,
        ..Default::default()
    }
}

async fn broker(o: Options) -> ServerHandle {
    timeout(WAIT, start(o))
        .await
        .expect("start in time")
        .expect("broker starts")
}

fn http_addr(h: &ServerHandle) -> SocketAddr {
    h.http_addr.expect("monitoring enabled")
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Decodes `Transfer-Encoding: chunked` (Go's server uses it for large bodies).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_txt = String::from_utf8_lossy(&b[..nl]).to_string();
        let size =
            usize::from_str_radix(size_txt.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < nl + 2 + size {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[(nl + 4 + size).min(b.len())..];
    }
}

fn parse_resp(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut r = Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    if r.header("transfer-encoding") == Some("chunked") {
        r.body = dechunk(&r.body);
    }
    r
}

/// Sends raw bytes, reads until the server closes (bounded).
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut buf = [0u8; 8192];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            // A reset after the response arrived still leaves the response.
            Ok(Err(e)) if !out.is_empty() => {
                eprintln!("read error after {} bytes: {e}", out.len());
                return out;
            }
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => panic!("server did not close within {WAIT:?}"),
        }
    }
}

async fn get(addr: SocketAddr, path: &str) -> Resp {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    parse_resp(&raw_exchange(addr, req.as_bytes()).await)
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let r = get(addr, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// Polls `path` until `pred` holds (bounded).
async fn wait_json(addr: SocketAddr, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = get_json(addr, path).await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path} never satisfied: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn nats(h: &ServerHandle, name: &str) -> async_nats::Client {
    timeout(
        WAIT,
        async_nats::ConnectOptions::new()
            .name(name)
            .connect(h.client_addr.to_string()),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn varz_reports_server_and_counters() {
    let h = broker(opts()).await;
    let m = http_addr(&h);
    let v = get_json(m, "/varz").await;
    assert_eq!(v["server_id"], h.state.id.as_str());
    assert_eq!(v["version"], "2.9.10");
    assert_eq!(v["port"], h.client_addr.port());
    assert_eq!(v["http_port"], m.port());
    assert_eq!(v["host"], "127.0.0.1");
    assert_eq!(v["ping_interval"], 120_000_000_000u64);
    assert_eq!(v["auth_timeout"], 2);
    assert_eq!(v["connections"], 0);
    assert_eq!(v["cluster"], serde_json::json!({}));
    assert!(v["mem"].as_u64().unwrap_or(0) > 0);
    assert!(v["cores"].as_u64().unwrap_or(0) >= 1);
    assert!(v["uptime"].as_str().unwrap_or("").ends_with('s'));
    assert!(v["start"].as_str().unwrap_or("").ends_with('Z'));

    let c = nats(&h, "pub").await;
    let mut sub = c.subscribe("a.b").await.expect("sub");
    for _ in 0..3 {
        c.publish("a.b", "hello".into()).await.expect("pub");
    }
    c.flush().await.expect("flush");
    for _ in 0..3 {
        timeout(WAIT, sub.next())
            .await
            .expect("msg in time")
            .expect("msg");
    }
    let v = wait_json(m, "/varz", |v| v["out_msgs"] == 3).await;
    assert_eq!(v["connections"], 1);
    assert_eq!(v["total_connections"], 1);
    assert_eq!(v["in_msgs"], 3);
    assert_eq!(v["in_bytes"], 15);
    assert_eq!(v["out_bytes"], 15);
    assert_eq!(v["subscriptions"], 1);
    assert!(v["http_req_stats"]["/varz"].as_u64().unwrap_or(0) >= 2);
    h.shutdown().await;
}

#[tokio::test]
async fn connz_sorting_paging_filters_and_closed() {
    let h = broker(opts()).await;
    let m = http_addr(&h);
    let a = nats(&h, "alpha").await;
    let b = nats(&h, "beta").await;
    let _s1 = a.subscribe("x.1").await.expect("sub");
    let _s2 = a.subscribe("x.2").await.expect("sub");
    let _s3 = b
        .queue_subscribe("q.1", "workers".into())
        .await
        .expect("sub");
    for _ in 0..5 {
        b.publish("nowhere", "12345678".into()).await.expect("pub");
    }
    a.flush().await.expect("flush");
    b.flush().await.expect("flush");

    let v = wait_json(m, "/connz", |v| {
        v["num_connections"] == 2
            && v["connections"][1]["in_msgs"] == 5
            && v["connections"][0]["subscriptions"] == 2
    })
    .await;
    assert_eq!(v["total"], 2);
    assert_eq!(v["limit"], 1024);
    assert_eq!(v["offset"], 0);
    let c0 = &v["connections"][0];
    assert_eq!(c0["name"], "alpha");
    assert_eq!(c0["kind"], "Client");
    assert_eq!(c0["type"], "nats");
    assert_eq!(c0["lang"], "rust");
    assert_eq!(c0["ip"], "127.0.0.1");
    assert!(c0.get("subscriptions_list").is_none());
    let (cid_a, cid_b) = (
        c0["cid"].as_u64().unwrap_or(0),
        v["connections"][1]["cid"].as_u64().unwrap_or(0),
    );
    assert!(cid_a < cid_b);

    // Every client has an RTT: estimated at CONNECT (client.go
    // processConnect computeRTT), replaced by PING/PONG round trips.
    let v = wait_json(m, "/connz", |v| {
        v["connections"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["rtt"] != "0s"))
    })
    .await;
    assert!(v["connections"][0]["rtt"]
        .as_str()
        .unwrap_or("")
        .ends_with('s'));

    // Descending by bytes received: beta first.
    let v = get_json(m, "/connz?sort=bytes_from").await;
    assert_eq!(v["connections"][0]["name"], "beta");
    assert_eq!(v["connections"][0]["in_bytes"], 40);
    let v = get_json(m, "/connz?sort=subs&limit=1").await;
    assert_eq!(v["num_connections"], 1);
    assert_eq!(v["total"], 2);
    assert_eq!(v["connections"][0]["name"], "alpha");
    let v = get_json(m, "/connz?offset=1").await;
    assert_eq!(v["connections"][0]["name"], "beta");
    let v = get_json(m, "/connz?offset=5").await;
    assert_eq!(v["connections"], serde_json::json!([]));

    // Subscriptions, plain and detailed.
    let v = get_json(m, &format!("/connz?cid={cid_a}&subs=1")).await;
    assert_eq!(v["limit"], 1);
    assert_eq!(
        v["connections"][0]["subscriptions_list"],
        serde_json::json!(["x.1", "x.2"])
    );
    let v = get_json(m, &format!("/connz?cid={cid_b}&subs=detail")).await;
    let d = &v["connections"][0]["subscriptions_list_detail"][0];
    assert_eq!(d["subject"], "q.1");
    assert_eq!(d["qgroup"], "workers");
    assert_eq!(d["cid"], cid_b);

    // Bad parameters: nats-server's texts.
    let r = get(m, "/connz?sort=foo").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "invalid sorting option: foo");
    let r = get(m, "/connz?sort=stop").await;
    assert_eq!(r.text(), "sort by stop only valid on closed connections");
    let r = get(m, "/connz?limit=x").await;
    assert_eq!(
        r.text(),
        "Error decoding int for 'limit': strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        get(m, "/connz?state=zz").await.text(),
        "Error decoding state for zz"
    );

    // Close beta: it moves to the closed list with a reason.
    drop(_s3);
    drop(b);
    let v = wait_json(m, "/connz?state=closed", |v| v["num_connections"] == 1).await;
    let c = &v["connections"][0];
    assert_eq!(c["cid"], cid_b);
    assert_eq!(c["reason"], "Client Closed");
    assert!(c["stop"].as_str().unwrap_or("").ends_with('Z'));
    let v = get_json(m, "/connz?state=any&sort=cid").await;
    assert_eq!(v["total"], 2);
    let v = get_json(m, "/connz?state=closed&sort=stop").await;
    assert_eq!(v["num_connections"], 1);
    let v = get_json(m, "/connz").await;
    assert_eq!(v["num_connections"], 1);
    assert_eq!(v["connections"][0]["cid"], cid_a);
    drop(a);
    h.shutdown().await;
}

#[tokio::test]
async fn connz_auth_user_filter() {
    let mut o = opts();
    o.authorization.users = vec![
        broker::options::User {
            username: "alice".into(),
            password: "pa".into(),
            allowed_connection_types: Vec::new(),
            permissions: None,
        },
        broker::options::User {
            username: "bob".into(),
            password: "pb".into(),
            allowed_connection_types: Vec::new(),
            permissions: None,
        },
    ];
    let h = broker(o).await;
    let m = http_addr(&h);
    let url = h.client_addr.to_string();
    let connect = |u: &'static str, p: &'static str| {
        let url = url.clone();
        async move {
            timeout(
                WAIT,
                async_nats::ConnectOptions::with_user_and_password(u.into(), p.into()).connect(url),
            )
            .await
            .expect("in time")
            .expect("connect")
        }
    };
    let _a = connect("alice", "pa").await;
    let _b = connect("bob", "pb").await;
    wait_json(m, "/connz", |v| v["num_connections"] == 2).await;
    let v = get_json(m, "/connz?auth=true&user=bob").await;
    assert_eq!(v["num_connections"], 1);
    assert_eq!(v["connections"][0]["authorized_user"], "bob");
    let v = get_json(m, "/connz").await;
    assert!(v["connections"][0].get("authorized_user").is_none());
    assert_eq!(get_json(m, "/varz").await["auth_required"], true);
    h.shutdown().await;
}

#[tokio::test]
async fn subsz_stats_list_and_test_filter() {
    let h = broker(opts()).await;
    let m = http_addr(&h);
    let v = get_json(m, "/subsz").await;
    assert_eq!(v["num_subscriptions"], 0);
    assert!(v.get("server_id").is_none());

    let c = nats(&h, "s").await;
    let _w = c.subscribe("foo.*").await.expect("sub");
    let _x = c.subscribe("foo.bar").await.expect("sub");
    let _y = c.subscribe("other").await.expect("sub");
    c.flush().await.expect("flush");
    wait_json(m, "/subsz", |v| v["num_subscriptions"] == 3).await;

    let v = get_json(m, "/subsz?subs=1").await;
    assert_eq!(v["total"], 3);
    assert_eq!(v["limit"], 1024);
    assert_eq!(v["server_id"], h.state.id.as_str());
    assert_eq!(v["subscriptions_list"][0]["account"], "$G");
    let v = get_json(m, "/subsz?subs=1&test=foo.bar").await;
    let subjects: BTreeSet<&str> = v["subscriptions_list"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["subject"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(subjects, BTreeSet::from(["foo.*", "foo.bar"]));
    let v = get_json(m, "/subsz?subs=1&limit=1&offset=1").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["offset"], 1);
    let v = get_json(m, "/subscriptionsz?subs=1&test=none").await;
    assert!(v.get("subscriptions_list").is_none());
    let r = get(m, "/subsz?test=foo.*").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "invalid test subject, must be valid publish subject: foo.*"
    );
    h.shutdown().await;
}

fn cluster_opts(routes: Vec<SocketAddr>) -> Options {
    let mut o = opts();
    o.cluster = ClusterOpts {
        name: Some("mon".into()),
        listen: Some(ListenAddr::Tcp {
            host: "127.0.0.1".into(),
            port: -1,
        }),
        routes: routes
            .into_iter()
            .map(|a| RouteUrl {
                url: format!("nats-route://{a}"),
                user: None,
                password: None,
                target: RouteTarget::Tcp {
                    host: a.ip().to_string(),
                    port: a.port(),
                },
            })
            .collect(),
        ..Default::default()
    };
    o
}

#[tokio::test]
async fn routez_empty_then_lists_a_route() {
    let solo = broker(opts()).await;
    let v = get_json(http_addr(&solo), "/routez").await;
    assert_eq!(v["num_routes"], 0);
    assert_eq!(v["routes"], serde_json::json!([]));
    solo.shutdown().await;

    let a = broker(cluster_opts(vec![])).await;
    let a_route = a
        .state
        .cluster
        .listen_addr
        .lock()
        .map(|g| *g)
        .unwrap_or(None)
        .expect("cluster listening");
    let b = broker(cluster_opts(vec![a_route])).await;
    let vb = wait_json(http_addr(&b), "/routez", |v| v["num_routes"] == 1).await;
    let r = &vb["routes"][0];
    assert_eq!(r["remote_id"], a.state.id.as_str());
    assert_eq!(r["did_solicit"], true);
    assert_eq!(r["is_configured"], true);
    assert_eq!(r["port"], a_route.port());
    let va = wait_json(http_addr(&a), "/routez", |v| v["num_routes"] == 1).await;
    assert_eq!(va["routes"][0]["remote_id"], b.state.id.as_str());
    assert_eq!(va["routes"][0]["did_solicit"], false);

    // Interest from b shows on a's route entry.
    let c = nats(&b, "sub").await;
    let s = c.subscribe("route.interest").await.expect("sub");
    c.flush().await.expect("flush");
    let va = wait_json(http_addr(&a), "/routez?subs=1", |v| {
        v["routes"][0]["subscriptions"] == 1
    })
    .await;
    assert_eq!(
        va["routes"][0]["subscriptions_list"],
        serde_json::json!(["route.interest"])
    );

    let varz = get_json(http_addr(&a), "/varz").await;
    assert_eq!(varz["routes"], 1);
    assert_eq!(varz["cluster"]["name"], "mon");
    assert_eq!(varz["cluster"]["cluster_port"], a_route.port());
    let metrics = get(http_addr(&a), "/metrics").await.text();
    assert!(
        metrics.contains("\nnats_scion_varz_routes 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nats_scion_route_subscriptions{rid="),
        "{metrics}"
    );
    drop(s);
    drop(c);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn healthz_metrics_root_and_unknown_paths() {
    let h = broker(opts()).await;
    let m = http_addr(&h);
    let r = get(m, "/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"{"status":"ok"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = get(m, "/healthz?js-enabled-only=true").await;
    assert_eq!(r.status, 200);
    let r = get(m, "/healthz?js-enabled-only=x").await;
    assert_eq!(r.status, 400);

    let r = get(m, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    for name in [
        "nats_scion_varz_connections 0",
        "nats_scion_varz_in_msgs 0",
        "nats_scion_varz_subscriptions 0",
        "nats_scion_varz_slow_consumers 0",
        "nats_scion_varz_routes 0",
        "nats_scion_http_requests{path=\"/healthz\"} 3",
    ] {
        assert!(text.contains(name), "missing {name:?} in\n{text}");
    }

    let r = get(m, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("href=./connz"));
    // A TCP-only broker answers /pathz with an empty document, not 404.
    let r = get(m, "/pathz").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"num_destinations\": 0"), "{}", r.text());
    for path in ["/nope", "/varz/", "/accountz"] {
        let r = get(m, path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.text(), "404 page not found\n");
    }
    let r = get(m, "/varz?callback=cb").await;
    assert_eq!(r.header("content-type"), Some("application/javascript"));
    assert!(r.text().starts_with("cb({"));
    h.shutdown().await;
}

#[tokio::test]
async fn http_methods_keepalive_and_limits() {
    let h = broker(opts()).await;
    let m = http_addr(&h);

    // As nats-server (Go's ServeMux): any method gets the document, HTTP/1.1 needs
    // Host, an unclean path is redirected, a 404 says nosniff.
    let r = parse_resp(
        &raw_exchange(
            m,
            b"POST /varz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .await,
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("\"server_id\""));
    let r = parse_resp(&raw_exchange(m, b"GET /varz HTTP/1.1\r\nConnection: close\r\n\r\n").await);
    assert_eq!(r.status, 400);
    let r = parse_resp(
        &raw_exchange(
            m,
            b"GET //varz?a=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .await,
    );
    assert_eq!((r.status, r.header("location")), (301, Some("/varz?a=1")));
    // The decoded path is escaped again in Location: no header can be smuggled in.
    let r = parse_resp(
        &raw_exchange(
            m,
            b"GET //x%0D%0ASet-Cookie:%20a=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .await,
    );
    assert_eq!(
        (r.status, r.header("location"), r.header("set-cookie")),
        (301, Some("/x%0D%0ASet-Cookie:%20a=1"), None)
    );
    let r = parse_resp(
        &raw_exchange(
            m,
            b"GET /nope HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
        .await,
    );
    assert_eq!(
        (r.status, r.header("x-content-type-options")),
        (404, Some("nosniff"))
    );

    let raw = raw_exchange(
        m,
        b"HEAD /varz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    let r = parse_resp(&raw);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(
        r.header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
            > 100
    );

    // Two pipelined requests on one keep-alive connection, then close.
    let raw = raw_exchange(
        m,
        b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");

    let r = parse_resp(&raw_exchange(m, b"GARBAGE\r\n\r\n").await);
    assert_eq!(r.status, 400);
    let big = format!("GET /varz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let r = parse_resp(&raw_exchange(m, big.as_bytes()).await);
    assert_eq!(r.status, 431);
    let r = parse_resp(
        &raw_exchange(
            m,
            b"GET /varz HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        )
        .await,
    );
    assert_eq!(r.status, 413);

    // More parallel requests than connection slots: all are answered.
    let mut tasks = Vec::new();
    for _ in 0..48 {
        tasks.push(tokio::spawn(async move { get(m, "/varz").await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    h.shutdown().await;
}

/// Debian's nats-server, killed on drop.
struct RefServer {
    child: Child,
    client: SocketAddr,
    http: SocketAddr,
}

impl Drop for RefServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server_bin() -> Option<std::path::PathBuf> {
    harness::reference_nats_server()
}

/// Starts nats-server on random ports and learns them from its log.
fn start_ref(bin: &std::path::Path) -> RefServer {
    start_ref_with(bin, &[]).0
}

/// Same, with extra arguments; also returns the route listen address when
/// the log names one.
fn start_ref_with(bin: &std::path::Path, extra: &[&str]) -> (RefServer, Option<SocketAddr>) {
    let mut child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", "-1", "-m", "-1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nats-server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep reading after the startup lines are in: a Go program whose stderr pipe
        // closes dies of SIGPIPE at its next log line.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let after = |line: &str, marker: &str| -> Option<SocketAddr> {
        line.split(marker).nth(1)?.trim().parse().ok()
    };
    let (mut client, mut http, mut route) = (None, None, None);
    let want_route = extra.iter().any(|a| a.starts_with("--cluster"));
    let deadline = std::time::Instant::now() + WAIT;
    while client.is_none() || http.is_none() || (want_route && route.is_none()) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("nats-server log lines in time");
        client = client.or_else(|| after(&line, "Listening for client connections on "));
        http = http.or_else(|| after(&line, "Starting http monitor on "));
        route = route.or_else(|| after(&line, "Listening for route connections on "));
    }
    let server = RefServer {
        child,
        client: client.unwrap_or_else(|| unreachable!()),
        http: http.unwrap_or_else(|| unreachable!()),
    };
    (server, route)
}

/// A raw client that subscribes and proves the server processed it (PONG).
async fn raw_client(addr: SocketAddr) -> TcpStream {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("in time")
        .expect("connect");
    s.write_all(
        b"CONNECT {\"verbose\":false,\"name\":\"diff\",\"lang\":\"raw\",\"version\":\"1\"}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n",
    )
    .await
    .expect("write");
    read_until_suffix(&mut s, b"PONG\r\n", "PONG").await;
    s
}

/// Reads from `s` until what came in ends with `suffix` (bounded by WAIT); returns it.
async fn read_until_suffix(s: &mut TcpStream, suffix: &[u8], what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !got.ends_with(suffix) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what} in time"))
            .expect("read");
        assert!(
            n > 0,
            "server closed before {what}: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// JSON type of a value, for comparing shapes.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same keys (except `ours_lack`) with the same JSON types.
fn same_shape(what: &str, ours: &Value, theirs: &Value, ours_lack: &[&str]) {
    let (ko, kt) = (keys(ours), keys(theirs));
    let lack: BTreeSet<String> = ours_lack.iter().map(|s| s.to_string()).collect();
    let missing: Vec<_> = kt.difference(&ko).filter(|k| !lack.contains(*k)).collect();
    let extra: Vec<_> = ko.difference(&kt).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: keys only in nats-server {missing:?}, only in ours {extra:?}"
    );
    for k in ko.intersection(&kt) {
        assert_eq!(
            kind(&ours[k]),
            kind(&theirs[k]),
            "{what}.{k}: {} vs {}",
            ours[k],
            theirs[k]
        );
    }
}

#[tokio::test]
async fn differential_key_sets_against_nats_server() {
    let Some(bin) = nats_server_bin() else {
        eprintln!("SKIP differential_key_sets_against_nats_server: nats-server not installed (apt-get install nats-server, or set NATS_SERVER_BIN)");
        return;
    };
    let theirs = start_ref(&bin);
    let ours = broker(opts()).await;
    let _c1 = raw_client(theirs.client).await;
    let _c2 = raw_client(ours.client_addr).await;
    let (tm, om) = (theirs.http, http_addr(&ours));

    // nats-server always has a system account; we have no accounts.
    for (path, lack) in [
        ("/varz", &["system_account"][..]),
        ("/connz", &[][..]),
        ("/connz?subs=1", &[][..]),
        ("/connz?subs=detail&auth=1", &[][..]),
        ("/subsz", &[][..]),
        ("/subsz?subs=1", &[][..]),
        ("/routez", &[][..]),
        ("/healthz", &[][..]),
        ("/gatewayz", &[][..]),
        ("/leafz", &[][..]),
        ("/jsz", &[][..]),
        ("/connz?acc=nope", &[][..]),
        ("/connz?mqtt_client=x", &[][..]),
        ("/connz?acc=$G&state=all", &[][..]),
    ] {
        let t = get_json(tm, path).await;
        let o = get_json(om, path).await;
        same_shape(path, &o, &t, lack);
        if path.contains("acc=") || path.contains("mqtt_client=") {
            for k in ["num_connections", "total"] {
                assert_eq!(o[k], t[k], "{path} {k}");
            }
            assert_eq!(kind(&o["connections"]), kind(&t["connections"]), "{path}");
        }
        if path.starts_with("/connz") {
            same_shape(
                &format!("{path} connection"),
                &o["connections"][0],
                &t["connections"][0],
                &[],
            );
        }
        if path == "/varz" {
            for block in [
                "cluster",
                "gateway",
                "leaf",
                "mqtt",
                "websocket",
                "jetstream",
            ] {
                same_shape(&format!("/varz.{block}"), &o[block], &t[block], &[]);
            }
        }
    }
    // The endpoints of features we lack refuse bad parameters with nats-server's texts.
    for path in [
        "/jsz?leader-only=true",
        "/jsz?accounts=x",
        "/jsz?limit=x",
        "/leafz?subs=x",
        "/gatewayz?accs=x",
    ] {
        let (t, o) = (get(tm, path).await, get(om, path).await);
        assert_eq!((o.status, o.text()), (t.status, t.text()), "{path}");
    }
    // Values that follow from the same (default) configuration agree.
    let (tv, ov) = (get_json(tm, "/varz").await, get_json(om, "/varz").await);
    for k in [
        "version",
        "proto",
        "host",
        "max_connections",
        "ping_interval",
        "ping_max",
        "http_host",
        "http_base_path",
        "https_port",
        "auth_timeout",
        "max_control_line",
        "max_payload",
        "max_pending",
        "tls_timeout",
        "write_deadline",
        "cores",
        "gomaxprocs",
        "connections",
        "total_connections",
        "in_msgs",
        "out_msgs",
        "in_bytes",
        "out_bytes",
    ] {
        assert_eq!(ov[k], tv[k], "/varz {k}");
    }
    let (tc, oc) = (get_json(tm, "/connz").await, get_json(om, "/connz").await);
    // The first client's id: nats-server's internal clients take 1-3, ours starts at 4. One
    // of nats-server's is made lazily (an account's internal client), so a client that
    // connects right after its start can get 3 (seen once in CI).
    assert_eq!(oc["connections"][0]["cid"], 4, "{oc}");
    let their_cid = tc["connections"][0]["cid"].as_u64();
    assert!(matches!(their_cid, Some(3 | 4)), "{tc}");
    for k in [
        "kind",
        "type",
        "ip",
        "pending_bytes",
        "in_msgs",
        "out_msgs",
        "in_bytes",
        "out_bytes",
        "subscriptions",
        "name",
        "lang",
        "version",
    ] {
        assert_eq!(
            oc["connections"][0][k], tc["connections"][0][k],
            "/connz {k}"
        );
    }

    // Strings are escaped like Go's encoder: `<`, `>`, `&`, U+2028, \b, \f.
    let mut keep = Vec::new();
    for addr in [theirs.client, ours.client_addr] {
        let mut s = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("in time")
            .expect("connect");
        s.write_all(
            b"CONNECT {\"verbose\":false,\"name\":\"odd<a>&b\\u2028\\b\\f\\u0001\\\"q\",\"lang\":\"raw\"}\r\nPING\r\n",
        )
        .await
        .expect("write");
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        while !got.windows(6).any(|w| w == b"PONG\r\n") {
            let n = timeout(WAIT, s.read(&mut buf))
                .await
                .expect("PONG in time")
                .expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        keep.push(s);
    }
    let name_line = |body: String| {
        body.lines()
            .find(|l| l.contains("\"name\": \"odd"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let t = name_line(get(tm, "/connz").await.text());
    let o = name_line(get(om, "/connz").await.text());
    assert!(!t.is_empty());
    assert_eq!(o, t);

    // Same error texts for bad parameters.
    for path in [
        "/connz?sort=foo",
        "/connz?sort=reason",
        "/connz?limit=1x",
        "/connz?cid=-1",
        "/connz?subs=maybe",
        "/connz?state=zz",
        "/subsz?test=a.>",
        "/subsz?offset=q",
        "/healthz?js-server-only=2",
    ] {
        let (t, o) = (get(tm, path).await, get(om, path).await);
        assert_eq!((o.status, o.text()), (t.status, t.text()), "{path}");
    }
    assert_eq!(get(om, "/nope").await.text(), get(tm, "/nope").await.text());
    ours.shutdown().await;
}

#[tokio::test]
async fn differential_routez_and_cluster_against_nats_server() {
    let Some(bin) = nats_server_bin() else {
        eprintln!("SKIP differential_routez_and_cluster_against_nats_server: nats-server not installed (apt-get install nats-server, or set NATS_SERVER_BIN)");
        return;
    };
    let (theirs, their_route) = start_ref_with(
        &bin,
        &["--cluster", "nats://127.0.0.1:-1", "--cluster_name", "mon"],
    );
    let their_route = their_route.expect("nats-server route listen address");
    // Ours routes to theirs: a mixed cluster of two.
    let ours = broker(cluster_opts(vec![their_route])).await;
    let (tm, om) = (theirs.http, http_addr(&ours));
    let t = wait_json(tm, "/routez", |v| v["num_routes"] == 1).await;
    let o = wait_json(om, "/routez", |v| v["num_routes"] == 1).await;
    same_shape("/routez", &o, &t, &[]);
    same_shape("/routez route", &o["routes"][0], &t["routes"][0], &[]);
    assert_eq!(o["routes"][0]["remote_id"], t["server_id"]);
    assert_eq!(t["routes"][0]["remote_id"], o["server_id"]);
    assert_eq!(o["routes"][0]["did_solicit"], true);
    assert_eq!(t["routes"][0]["did_solicit"], false);

    // Interest crosses: a subscription on ours shows on their route entry
    // and theirs on ours, with the same subs=1 shape.
    let c = nats(&ours, "x").await;
    let s = c.subscribe("diff.route").await.expect("sub");
    c.flush().await.expect("flush");
    let t = wait_json(tm, "/routez?subs=1", |v| {
        v["routes"][0]["subscriptions"] == 1
    })
    .await;
    assert_eq!(
        t["routes"][0]["subscriptions_list"],
        serde_json::json!(["diff.route"])
    );
    let _raw = raw_client(theirs.client).await;
    let o = wait_json(om, "/routez?subs=1", |v| {
        v["routes"][0]["subscriptions"] == 1
    })
    .await;
    assert_eq!(
        o["routes"][0]["subscriptions_list"],
        serde_json::json!(["foo"])
    );
    same_shape(
        "/routez?subs=1 route",
        &o["routes"][0],
        &t["routes"][0],
        &[],
    );

    let (tv, ov) = (get_json(tm, "/varz").await, get_json(om, "/varz").await);
    // Only ours has configured routes, so only ours lists `urls`.
    let mut oc = ov["cluster"].clone();
    assert_eq!(
        oc.as_object_mut().and_then(|m| m.remove("urls")),
        Some(serde_json::json!([their_route.to_string()]))
    );
    same_shape("/varz.cluster", &oc, &tv["cluster"], &[]);
    assert_eq!(ov["routes"], tv["routes"]);
    assert_eq!(ov["cluster"]["name"], "mon");
    drop(s);
    drop(c);
    ours.shutdown().await;
}

/// Connects a raw client with three subscriptions (one in a queue group,
/// one with an auto-unsubscribe limit and a delivered message), then
/// closes it; returns once the server has it in its closed list.
async fn closed_client_with_subs(addr: SocketAddr, http: SocketAddr) {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("in time")
        .expect("connect");
    s.write_all(
        b"CONNECT {\"verbose\":false,\"name\":\"gone\"}\r\nSUB foo 1\r\nSUB bar q 2\r\n\
          SUB baz 3\r\nUNSUB 3 5\r\nPUB baz 1\r\nx\r\nPING\r\n",
    )
    .await
    .expect("write");
    read_until_suffix(&mut s, b"PONG\r\n", "PONG").await;
    drop(s);
    wait_json(http, "/connz?state=closed", |v| v["num_connections"] == 1).await;
}

/// The closed connection's row, with its subscription details sorted by sid
/// and their `cid` checked against the row's and then dropped (the two
/// servers number connections differently).
fn closed_subs(v: &Value) -> (Value, Value, Value) {
    let c = &v["connections"][0];
    let mut detail = c["subscriptions_list_detail"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    detail.sort_by(|a, b| a["sid"].as_str().cmp(&b["sid"].as_str()));
    for d in &mut detail {
        assert_eq!(d["cid"], c["cid"], "{d}");
        d.as_object_mut().map(|o| o.remove("cid"));
    }
    let mut list = c["subscriptions_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    (
        c["subscriptions"].clone(),
        Value::from(list),
        Value::from(detail),
    )
}

/// `/connz?state=closed` with `subs=1` / `subs=detail`: nats-server 2.9.10
/// keeps a closed client's subscriptions (server.go saveClosedClient:
/// newSubDetail, with the account; closeConnection has zeroed `max`), and
/// monitor.go Connz lists their subjects or the details.
#[tokio::test]
async fn closed_connz_keeps_subscription_details() {
    let ours = broker(opts()).await;
    let om = http_addr(&ours);
    closed_client_with_subs(ours.client_addr, om).await;
    let v = get_json(om, "/connz?state=closed&subs=1").await;
    // The RTT estimated at CONNECT is kept (a nats-server closed entry
    // shows it too).
    assert_ne!(v["connections"][0]["rtt"], "0s", "{v}");
    let o_list = closed_subs(&v);
    let o_detail = closed_subs(&get_json(om, "/connz?state=closed&subs=detail").await);
    assert_eq!(o_list.0, 3);
    assert_eq!(o_list.1, serde_json::json!(["bar", "baz", "foo"]));
    assert_eq!(o_list.2, serde_json::json!([]));
    assert_eq!(o_detail.1, serde_json::json!([]));
    assert_eq!(
        o_detail.2,
        serde_json::json!([
            {"account": "$G", "subject": "foo", "sid": "1", "msgs": 0},
            {"account": "$G", "subject": "bar", "qgroup": "q", "sid": "2", "msgs": 0},
            {"account": "$G", "subject": "baz", "sid": "3", "msgs": 1},
        ])
    );

    let Some(bin) = nats_server_bin() else {
        eprintln!("SKIP nats-server comparison: nats-server not installed");
        return;
    };
    let theirs = start_ref(&bin);
    closed_client_with_subs(theirs.client, theirs.http).await;
    // subs=1 first: nats-server 2.9.10 stores the details into its saved
    // entry on a subs=detail request, so later subs=1 answers carry both.
    let v = get_json(theirs.http, "/connz?state=closed&subs=1").await;
    assert_ne!(v["connections"][0]["rtt"], "0s", "{v}");
    let t_list = closed_subs(&v);
    let t_detail = closed_subs(&get_json(theirs.http, "/connz?state=closed&subs=detail").await);
    assert_eq!(o_list, t_list, "subs=1: ours vs nats-server");
    assert_eq!(o_detail, t_detail, "subs=detail: ours vs nats-server");
}

/// The INFO line a server sends a new TCP client, as JSON.
async fn first_info(addr: SocketAddr) -> Value {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("in time")
        .expect("connect");
    let got = read_until_suffix(&mut s, b"\r\n", "INFO").await;
    let line = String::from_utf8_lossy(&got);
    let json = line.trim_end().strip_prefix("INFO ").expect("INFO line");
    serde_json::from_str(json).expect("INFO JSON")
}

/// `client_advertise` as nats-server's setInfoHostPort applies it: a bare host keeps the
/// listen port; INFO and /varz show the advertised host and port.
#[tokio::test]
async fn client_advertise_sets_info_and_varz_like_nats_server() {
    let Some(bin) = nats_server_bin() else {
        eprintln!(
            "SKIP client_advertise_sets_info_and_varz_like_nats_server: nats-server not installed"
        );
        return;
    };
    for (adv, port) in [
        ("10.1.2.3", None),
        ("10.1.2.3:4999", Some(4999)),
        ("[::1]:5000", Some(5000)),
    ] {
        let (theirs, _) = start_ref_with(&bin, &["--client_advertise", adv]);
        let ours = broker(Options {
            client_advertise: Some(adv.to_string()),
            ..opts()
        })
        .await;
        for (who, client, http) in [
            ("nats-server", theirs.client, theirs.http),
            ("ours", ours.client_addr, http_addr(&ours)),
        ] {
            let want_port = port.unwrap_or(client.port());
            let want_host = adv
                .rsplit_once(':')
                .filter(|_| port.is_some())
                .map_or(adv, |(h, _)| h);
            let want_host = want_host.trim_start_matches('[').trim_end_matches(']');
            let info = first_info(client).await;
            assert_eq!(info["host"], want_host, "{who} INFO host for {adv}");
            assert_eq!(info["port"], want_port, "{who} INFO port for {adv}");
            let v = get_json(http, "/varz").await;
            assert_eq!(v["host"], want_host, "{who} /varz host for {adv}");
            assert_eq!(v["port"], want_port, "{who} /varz port for {adv}");
        }
        drop(theirs);
    }
}

/// Sends `script` on a new connection and reads until the server closes it.
async fn closed_by_server(addr: SocketAddr, script: &[u8]) {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("in time")
        .expect("connect");
    s.write_all(script).await.expect("write");
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("server closes in time");
        if !matches!(n, Ok(n) if n > 0) {
            return;
        }
    }
}

/// `/connz?state=closed&auth=1` rows of connections the server closed: the reason, and
/// who the client said it was (kept for a refused CONNECT, as nats-server keeps its
/// options), against nats-server.
#[tokio::test]
async fn closed_reasons_and_identity_match_nats_server() {
    let Some(bin) = nats_server_bin() else {
        eprintln!("SKIP closed_reasons_and_identity_match_nats_server: nats-server not installed");
        return;
    };
    let (theirs, _) = start_ref_with(&bin, &["--user", "a", "--pass", "b"]);
    let ours = broker(Options {
        authorization: broker::options::Authorization {
            user: Some("a".into()),
            password: Some("b".into()),
            ..Default::default()
        },
        ..opts()
    })
    .await;
    let scripts: [&[u8]; 4] = [
        b"CONNECT {\"name\":\"unknown-op\",\"user\":\"a\",\"pass\":\"b\"}\r\nFOO\r\n",
        b"CONNECT {\"name\":\"too-long\",\"user\":\"a\",\"pass\":\"b\"}\r\nPUB x 1\r\nxyz\r\n",
        b"CONNECT {\"name\":\"proto-2\",\"user\":\"a\",\"pass\":\"b\",\"protocol\":2}\r\n",
        b"CONNECT {\"name\":\"bad-pass\",\"user\":\"a\",\"pass\":\"x\"}\r\n",
    ];
    let mut rows = Vec::new();
    for (client, http) in [
        (theirs.client, theirs.http),
        (ours.client_addr, http_addr(&ours)),
    ] {
        for s in scripts {
            closed_by_server(client, s).await;
        }
        let v = wait_json(http, "/connz?state=closed&auth=1", |v| {
            v["num_connections"] == scripts.len()
        })
        .await;
        let mut got: Vec<(Value, Value, Value)> = v["connections"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                (
                    c["name"].clone(),
                    c["reason"].clone(),
                    c["authorized_user"].clone(),
                )
            })
            .collect();
        got.sort_by_key(|r| r.0.to_string());
        rows.push(got);
    }
    assert_eq!(rows[1], rows[0], "ours (left) vs nats-server (right)");
    assert!(
        rows[0].iter().any(|r| r.1 == "Protocol Violation"),
        "{:?}",
        rows[0]
    );
}

/// Opens a client that sends `connect` and waits for its PONG; kept open by the caller.
async fn connected(addr: SocketAddr, connect: &str) -> TcpStream {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("in time")
        .expect("connect");
    s.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await
        .expect("write");
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("PONG\r\n") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("PONG in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    s
}

/// `/connz?auth=1` `authorized_user` is what client.go getRawAuthUser gives: the user
/// name the client sent (also on a server without authorization), else its token as
/// given, compared with nats-server on a token server and an open one.
#[tokio::test]
async fn authorized_user_is_the_raw_user_or_token_like_nats_server() {
    let Some(bin) = nats_server_bin() else {
        eprintln!("SKIP authorized_user_is_the_raw_user_or_token_like_nats_server: nats-server not installed");
        return;
    };
    let cases: [(&[&str], Option<&str>, &[&str]); 2] = [
        (
            &["--auth", "tok"],
            Some("tok"),
            &[r#"{"name":"t","auth_token":"tok","verbose":false}"#],
        ),
        (
            &[],
            None,
            &[
                r#"{"name":"u","user":"someone","pass":"x","verbose":false}"#,
                r#"{"name":"z","auth_token":"zz","verbose":false}"#,
                r#"{"name":"none","verbose":false}"#,
            ],
        ),
    ];
    for (args, token, connects) in cases {
        let (theirs, _) = start_ref_with(&bin, args);
        let ours = broker(Options {
            authorization: broker::options::Authorization {
                token: token.map(str::to_string),
                ..Default::default()
            },
            ..opts()
        })
        .await;
        let mut rows = Vec::new();
        for (client, http) in [
            (theirs.client, theirs.http),
            (ours.client_addr, http_addr(&ours)),
        ] {
            let mut keep = Vec::new();
            for c in connects {
                keep.push(connected(client, c).await);
            }
            // (name, authorized_user) of each connection /connz lists at `path`, once
            // it lists them all.
            let users = |path: &'static str| async move {
                let v = wait_json(http, path, |v| v["num_connections"] == connects.len()).await;
                let mut rows: Vec<(Value, Value)> = v["connections"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| (c["name"].clone(), c["authorized_user"].clone()))
                    .collect();
                rows.sort_by_key(|r| r.0.to_string());
                rows
            };
            let mut got = users("/connz?auth=1").await;
            drop(keep);
            // Closed connections keep the user name only (saveClosedClient), not a token.
            let closed = users("/connz?state=closed&auth=1").await;
            got.push((Value::from("closed:"), Value::Null));
            got.extend(closed);
            rows.push(got);
        }
        assert_eq!(
            rows[1], rows[0],
            "ours (left) vs nats-server (right), {args:?}"
        );
        assert!(rows[0].iter().any(|r| r.1 != Value::Null), "{:?}", rows[0]);
    }
}

/// Details of /subsz and /varz against nats-server (without its system account):
/// closing a client clears the match cache (RemoveBatch); `acc` naming another account
/// gives empty statistics; a test subject with a space is a valid literal; the server's
/// out_bytes counts headers a receiver without header support did not get.
#[tokio::test]
async fn subsz_cache_acc_test_and_out_bytes_like_nats_server() {
    let Some(bin) = nats_server_bin() else {
        if std::env::var_os("NATS_SCION_REQUIRE_PEERS").is_some() {
            panic!("nats-server not installed but NATS_SCION_REQUIRE_PEERS is set");
        }
        eprintln!("SKIP: nats-server not installed");
        return;
    };
    let dir = std::env::temp_dir().join(format!("subsz-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("n.conf");
    std::fs::write(&conf, "no_system_account: true\nhttp_base_path: \"/\"\n").unwrap();
    let (theirs, _) = start_ref_with(&bin, &["-c", conf.to_str().unwrap()]);
    let ours = broker(Options {
        http_base_path: "/".into(),
        ..opts()
    })
    .await;
    let mut rows = Vec::new();
    for (client, http) in [
        (theirs.client, theirs.http),
        (ours.client_addr, http_addr(&ours)),
    ] {
        let mut a = timeout(WAIT, TcpStream::connect(client))
            .await
            .unwrap()
            .unwrap();
        a.write_all(
            b"CONNECT {\"verbose\":false,\"headers\":false}\r\nSUB hx 1\r\nSUB foo 2\r\nPING\r\n",
        )
        .await
        .unwrap();
        read_until_suffix(&mut a, b"PONG\r\n", "A's PONG").await;
        let mut b = timeout(WAIT, TcpStream::connect(client))
            .await
            .unwrap()
            .unwrap();
        b.write_all(
            b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB bar 1\r\n\
              HPUB hx 19 24\r\nNATS/1.0\r\nA: bb\r\n\r\nhello\r\nPUB foo 2\r\nhi\r\nPING\r\n",
        )
        .await
        .unwrap();
        read_until_suffix(&mut b, b"PONG\r\n", "B's PONG").await;
        a.write_all(b"PING\r\n").await.unwrap();
        read_until_suffix(&mut a, b"PONG\r\n", "A's messages").await;
        drop(b);
        wait_json(http, "/connz", |v| v["num_connections"] == 1).await;
        let subsz = get_json(http, "/subsz").await;
        let other = get_json(http, "/subsz?acc=foo").await;
        let spaced = get(http, "/subsz?test=foo%20bar").await;
        let varz = get_json(http, "/varz").await;
        rows.push((
            subsz["num_cache"].clone(),
            subsz["max_fanout"].clone(),
            other["num_subscriptions"].clone(),
            spaced.status,
            varz["out_bytes"].clone(),
            varz["in_bytes"].clone(),
            varz["http_base_path"].clone(),
        ));
        drop(a);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rows[1], rows[0], "ours (left) vs nats-server (right)");
    assert_eq!(rows[0].0, 0, "{:?}", rows[0]);
    assert_eq!(rows[0].3, 200, "{:?}", rows[0]);
}

/// `/healthz` in lame duck mode, against nats-server: its client listener is closed, so
/// readyForConnections fails on "server": 503, the error in the body, Go's sniffed
/// text/plain (the status is written before the content type is set), JSONP included.
/// Load balancers and orchestrators stop sending clients to a server leaving this way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_in_lame_duck_mode_like_nats_server() {
    let Some(bin) = nats_server_bin() else {
        eprintln!(
            "SKIP healthz_fails_in_lame_duck_mode_like_nats_server: nats-server not installed"
        );
        return;
    };
    let theirs = start_ref(&bin);
    let ours = broker(Options {
        lame_duck_duration: Duration::from_secs(120),
        lame_duck_grace_period: Duration::from_secs(10),
        ..opts()
    })
    .await;
    // A client keeps lame duck mode from ending at once (both servers).
    let _c1 = raw_client(theirs.client).await;
    let _c2 = raw_client(ours.client_addr).await;
    let before = [
        get(theirs.http, "/healthz").await,
        get(http_addr(&ours), "/healthz").await,
    ];
    for r in &before {
        assert_eq!(
            (r.status, r.text()),
            (200, r#"{"status":"ok"}"#.to_string())
        );
    }
    let pid = theirs.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-USR2", &pid])
        .status()
        .expect("kill -USR2");
    assert!(sent.success());
    let state = ours.state.clone();
    let ldm = tokio::spawn(async move { broker::app::lame_duck(&state).await });
    for path in ["/healthz", "/healthz?callback=cb"] {
        let mut rows = Vec::new();
        for http in [theirs.http, http_addr(&ours)] {
            // Until the server has entered lame duck mode (bounded).
            let deadline = Instant::now() + WAIT;
            let r = loop {
                let r = get(http, path).await;
                if r.status != 200 || Instant::now() >= deadline {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            rows.push((
                r.status,
                r.header("content-type").map(str::to_string),
                r.text(),
            ));
        }
        assert_eq!(
            rows[1], rows[0],
            "{path}: ours (left) vs nats-server (right)"
        );
        assert_eq!(rows[0].0, 503, "{path}: {rows:?}");
    }
    ldm.abort();
}

/// `timeout: 0` in `authorization` (and in the cluster's) means the default, as in
/// nats-server's setBaselineOptions: clients still get their two seconds to log in (we
/// used to answer 'Authentication Timeout' at once, locking everyone out), and /varz
/// shows 2 for both, like nats-server from the same config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_auth_timeout_means_the_default_like_nats_server() {
    let Some(bin) = nats_server_bin() else {
        eprintln!(
            "SKIP zero_auth_timeout_means_the_default_like_nats_server: nats-server not installed"
        );
        return;
    };
    let conf = "authorization { user: u, password: p, timeout: 0 }\n\
                cluster { name: z, listen: \"127.0.0.1:-1\", \
                authorization { user: r, password: s, timeout: 0 } }\n";
    let dir = std::env::temp_dir().join(format!("zero-auth-timeout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("z.conf");
    std::fs::write(&path, conf).expect("write conf");
    let (theirs, _) = start_ref_with(&bin, &["-c", path.to_str().expect("utf-8 path")]);
    let mut o = broker::config::load_str(conf)
        .unwrap_or_else(|e| panic!("conf: {e}"))
        .options;
    let base = opts();
    (o.host, o.port, o.http_host, o.http_port) =
        (base.host, base.port, base.http_host, base.http_port);
    let ours = broker(o).await;
    let mut rows = Vec::new();
    for (client, http) in [
        (theirs.client, theirs.http),
        (ours.client_addr, http_addr(&ours)),
    ] {
        // A client that logs in a moment after connecting, well within two seconds.
        let mut s = timeout(WAIT, TcpStream::connect(client))
            .await
            .expect("in time")
            .expect("connect");
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(b"CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"p\"}\r\nPING\r\n")
            .await
            .expect("write");
        let got = read_until_suffix(&mut s, b"PONG\r\n", "PONG after a late login").await;
        assert!(
            !String::from_utf8_lossy(&got).contains("-ERR"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        let v = get_json(http, "/varz").await;
        rows.push((
            v["auth_timeout"].clone(),
            v["cluster"]["auth_timeout"].clone(),
        ));
    }
    assert_eq!(rows[1], rows[0], "ours (left) vs nats-server (right)");
    assert_eq!(rows[0], (Value::from(2), Value::from(2)));
    let _ = std::fs::remove_dir_all(&dir);
}
