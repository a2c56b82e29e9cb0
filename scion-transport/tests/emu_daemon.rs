//! The daemon's `PortRange` call: the client reads the emulated AS's dispatched range, and an
//! endpoint configured with a daemon only (no topology.json) binds inside it, so the last
//! router delivers to it directly (outside the range it would hand packets to port 30041).

use std::time::Duration;

use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::daemon::DaemonClient;
use scion_transport::emu::{EmuOptions, Emulator, Topology};
use scion_transport::quic::{ScionEndpoint, TlsConfig, TransportConfig};
use tokio::time::timeout;

const TOPO: &str = r#"
    [[as]]
    ia = "1-ff00:0:110"
    core = true
    [[as]]
    ia = "1-ff00:0:111"
    dispatched_ports = "40000-40100"
    [[as]]
    ia = "1-ff00:0:112"
    dispatched_ports = "40200-40300"
    [[link]]
    a = "1-ff00:0:110#1"
    b = "1-ff00:0:111#1"
    [[link]]
    a = "1-ff00:0:110#2"
    b = "1-ff00:0:112#1"
"#;

fn ia(s: &str) -> IsdAsn {
    s.parse().expect("ia")
}

#[tokio::test]
async fn daemon_port_range_places_daemon_only_endpoints_inside_it() {
    let emu = Emulator::start(
        Topology::from_toml(TOPO).expect("topo"),
        EmuOptions::default(),
    )
    .await
    .expect("emulator");
    for (as_, range) in [
        ("1-ff00:0:111", (40000, 40100)),
        ("1-ff00:0:112", (40200, 40300)),
    ] {
        let daemon = DaemonClient::connect(&emu.daemon_addr(ia(as_)).expect("d").to_string())
            .await
            .expect("connect");
        assert_eq!(
            daemon.port_range().await.expect("PortRange"),
            Some(scion_transport::topology::DispatchedPorts::Range(
                range.0, range.1
            ))
        );
    }
    let tls = TlsConfig::self_signed(&["server.test"]).expect("cert");
    let endpoint = |as_: &str| {
        let mut cfg = TransportConfig::new(
            ScionAddr {
                ia: ia(as_),
                ip: "127.0.0.1".parse().expect("ip"),
                port: 0,
            },
            tls.clone(),
        );
        cfg.daemon = Some(emu.daemon_addr(ia(as_)).expect("daemon").to_string());
        assert!(cfg.topology.is_none());
        ScionEndpoint::bind(cfg)
    };
    // A free ephemeral port lands in a 101-port range by chance ~0.4 % of the time.
    let mut servers = Vec::new();
    for _ in 0..3 {
        let server = endpoint("1-ff00:0:112").await.expect("bind");
        let port = server.local_addr().port;
        assert!((40200..=40300).contains(&port), "server port {port}");
        servers.push(server);
    }
    let client = endpoint("1-ff00:0:111").await.expect("bind");
    let port = client.local_addr().port;
    assert!((40000..=40100).contains(&port), "client port {port}");
    // Both ports are routable: a handshake and a stream go through the routers.
    let server = &servers[0];
    let server_addr = server.local_addr();
    let accept = async {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("accept");
        let mut recv = conn.accept_uni().await.expect("stream");
        recv.read_to_end(64).await.expect("read")
    };
    let dial = async {
        let conn = client
            .connect(server_addr, "server.test")
            .await
            .expect("connect");
        let mut send = conn.open_uni().await.expect("open");
        send.write_all(b"inside the range").await.expect("write");
        send.finish().expect("finish");
        let _ = send.stopped().await;
        conn
    };
    let (got, _conn) = timeout(Duration::from_secs(10), async {
        tokio::join!(accept, dial)
    })
    .await
    .expect("timely");
    assert_eq!(got, b"inside the range");
}
