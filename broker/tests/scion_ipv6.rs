//! IPv6 SCION end hosts (issue 5): two `broker` processes in two emulated ASes, every address
//! IPv6 (border routers, daemons, SCION hosts, the TCP clients), configured in nats-server's
//! syntax with the IPv6 forms of the SCION URLs. A stream published on A reaches, over the
//! SCION route and in order, a subscriber on B's TCP port and one that reaches B's SCION
//! client listener through `broker proxy` (a client link from AS A over IPv6 SCION); /routez
//! names the peer's IPv6 SCION address. The
//! test runs in a private network namespace (`unshare -rn`) on its `::1`, never on an address
//! of the machine; every wait is bounded.

use std::time::{Duration, Instant};

use futures::StreamExt;
use scion_transport::emu::{EmuOptions, Emulator, Topology};

mod scion_common;
use scion_common::*;

const BIN: &str = env!("CARGO_BIN_EXE_broker");

/// GET `path` from the monitoring port on `[::1]:port`; the body.
async fn get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(("::1", port)))
        .await
        .expect("monitor connect in time")
        .expect("monitor connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .expect("response in time")
        .expect("response");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_hosts_carry_a_route_between_two_ases() {
    if !in_private_netns("ipv6_hosts_carry_a_route_between_two_ases") {
        return;
    }
    let v6 = std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topology"),
        EmuOptions {
            ip: v6,
            ..Default::default()
        },
    )
    .await
    .expect("emulator");
    let dir = temp_dir("scion-ipv6");
    // A private namespace: these ports are free (31001 and 31002 are in the emulated ASes'
    // dispatched range).
    let (a_port, a_http, a_route) = (4301u16, 8301u16, 31001u16);
    let (b_port, b_http) = (4302u16, 8302u16);
    let conf = |name: &str, as_: &str, body: String| {
        let (daemon, topo) = as_files(&emu, &dir, as_);
        let (conf, log) = (
            dir.0.join(format!("{name}.conf")),
            dir.0.join(format!("{name}.log")),
        );
        std::fs::write(
            &conf,
            format!(
                "server_name: {name}\nhost: \"::1\"\nlog_file: \"{}\"\n{body}\nscion {{\n  daemon: \"{daemon}\"\n  topology: \"{}\"\n}}\n",
                log.display(),
                topo.display()
            ),
        )
        .expect("conf");
        (conf, log)
    };
    let (conf_a, log_a) = conf(
        "a",
        AS_A,
        format!(
            "port: {a_port}\nhttp_port: {a_http}\ncluster {{\n  name: c1\n  listen: \"[{AS_A},::1]:{a_route}\"\n}}"
        ),
    );
    let (conf_b, log_b) = conf(
        "b",
        AS_B,
        format!(
            "port: {b_port}\nhttp_port: {b_http}\nlisten: \"nats://{AS_B},[::1]:31003\"\ncluster {{\n  name: c1\n  listen: \"[{AS_B},::1]:31002\"\n  routes: [\"nats-route://{AS_A},[::1]:{a_route}\"]\n}}"
        ),
    );
    let _a = spawn_broker(BIN, &conf_a);
    wait_ready(&log_a, 0).await;
    let _b = spawn_broker(BIN, &conf_b);
    wait_ready(&log_b, 0).await;

    // The route is up when B's /routez lists it.
    let deadline = Instant::now() + WAIT;
    let routez = loop {
        let body = get(b_http, "/routez").await;
        if body.contains("\"num_routes\": 1") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no route on B: {body}\nA: {}\nB: {}",
            std::fs::read_to_string(&log_a).unwrap_or_default(),
            std::fs::read_to_string(&log_b).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        routez.contains(&format!("\"remote\": \"[{AS_A},::1]:{a_route}\"")),
        "B's /routez names A's IPv6 SCION address: {routez}"
    );

    // A proxy in AS A, its clients' links to B's SCION client listener over IPv6.
    let (daemon_a, topo_a) = as_files(&emu, &dir, AS_A);
    let proxy_port = 4303u16;
    let _proxy = Proc(
        std::process::Command::new(BIN)
            .args(["proxy", "--listen", &format!("[::1]:{proxy_port}")])
            .args(["--upstream", &format!("nats://{AS_B},[::1]:31003")])
            .args(["--daemon", &daemon_a])
            .arg("--topology")
            .arg(&topo_a)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn proxy"),
    );
    let deadline = Instant::now() + WAIT;
    let via_proxy = loop {
        match async_nats::connect(format!("nats://[::1]:{proxy_port}")).await {
            Ok(c) => break c,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no client link via the proxy: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut proxied = via_proxy
        .subscribe("time.system")
        .await
        .expect("subscribe via the proxy");
    via_proxy.flush().await.expect("flush");
    let connz = get(b_http, "/connz").await;
    assert!(
        connz.contains(&format!("\"remote\": \"[{AS_A},::1]:")),
        "B's /connz names the proxied client's IPv6 SCION address: {connz}"
    );

    let sub = async_nats::connect(format!("nats://[::1]:{b_port}"))
        .await
        .expect("subscriber on B");
    let mut stream = sub.subscribe("time.system").await.expect("subscribe");
    sub.flush().await.expect("flush");
    let publ = async_nats::connect(format!("nats://[::1]:{a_port}"))
        .await
        .expect("publisher on A");
    // B's interest reaches A over the route; publish until the first message arrives there.
    let deadline = Instant::now() + WAIT;
    let first = loop {
        publ.publish("time.system", "probe".into())
            .await
            .expect("publish");
        publ.flush().await.expect("flush");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), stream.next()).await {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached B over the route"
        );
    };
    assert_eq!(&first.payload[..], b"probe");
    // The proxied subscriber's interest reaches A too (bounded, as above).
    let deadline = Instant::now() + WAIT;
    loop {
        publ.publish("time.system", "probe".into())
            .await
            .expect("publish");
        publ.flush().await.expect("flush");
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), proxied.next()).await
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached the proxied client"
        );
    }
    const N: u32 = 1000;
    for i in 0..N {
        publ.publish("time.system", i.to_string().into())
            .await
            .expect("publish");
    }
    publ.flush().await.expect("flush");
    for (who, stream) in [("TCP", &mut stream), ("proxied", &mut proxied)] {
        receive_in_order(who, stream, N).await;
    }
}

/// Receives `n` messages "0".."n-1" in order on `stream` (probes skipped), bounded.
async fn receive_in_order(who: &str, stream: &mut async_nats::Subscriber, n: u32) {
    let mut next = 0u32;
    let deadline = Instant::now() + WAIT;
    while next < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("{who}: only {next} of {n} arrived"))
            .expect("subscription open");
        if &m.payload[..] == b"probe" {
            continue;
        }
        assert_eq!(
            std::str::from_utf8(&m.payload).ok(),
            Some(next.to_string().as_str()),
            "{who}: in order"
        );
        next += 1;
    }
}
