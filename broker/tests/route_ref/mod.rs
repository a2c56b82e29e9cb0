//! Helpers for route tests that run one scenario against our broker and
//! against Debian's nats-server 2.9.10: a nats-server child with a cluster
//! listener and monitoring on random loopback ports, a raw route peer that
//! does the CONNECT/INFO handshake, and a bounded HTTP/1.0 JSON GET.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use broker::options::{ClusterOpts, ListenAddr, Options};
use broker::server::ServerHandle;
use serde_json::Value;

pub use crate::harness::get_json;
use crate::harness::{local_opts, nats_server_bin, scratch_dir, Raw, STEP_TIMEOUT};

/// Cluster name of every server in these tests.
pub const CLUSTER: &str = "c1";

/// Where one server under test listens.
#[derive(Clone, Copy, Debug)]
pub struct Addrs {
    pub client: SocketAddr,
    pub route: SocketAddr,
    pub http: SocketAddr,
}

/// Our broker's options: cluster `c1` and monitoring on random ports.
pub fn our_opts() -> Options {
    let mut o = local_opts();
    o.http_host = "127.0.0.1".into();
    o.http_port = -1;
    o.cluster = ClusterOpts {
        name: Some(CLUSTER.into()),
        listen: Some(ListenAddr::Tcp {
            host: "127.0.0.1".into(),
            port: -1,
        }),
        ..Default::default()
    };
    o
}

/// The addresses of a started broker of ours.
pub fn our_addrs(srv: &ServerHandle) -> Addrs {
    Addrs {
        client: srv.client_addr,
        route: srv
            .state
            .cluster
            .listen_addr
            .lock()
            .unwrap()
            .expect("cluster listening"),
        http: srv.http_addr.expect("monitoring port"),
    }
}

/// A nats-server child with a cluster listener, killed on drop.
pub struct RefCluster {
    child: Child,
    pub addrs: Addrs,
    dir: PathBuf,
    log: std::sync::Mutex<(Vec<String>, mpsc::Receiver<String>)>,
}

impl RefCluster {
    /// Starts nats-server with cluster `c1`, monitoring and `extra` conf
    /// lines, and waits (bounded) until it is ready. Panics when the
    /// reference server is missing: these tests are differential.
    pub fn start(extra: &str) -> RefCluster {
        RefCluster::start_with("", extra)
    }

    /// The configuration `start_with` writes.
    fn conf(cluster_extra: &str, extra: &str) -> String {
        format!(
            "host: 127.0.0.1\nport: -1\nhttp: \"127.0.0.1:-1\"\n\
             cluster {{\n  name: {CLUSTER}\n  listen: \"127.0.0.1:-1\"\n{cluster_extra}\n}}\n{extra}\n"
        )
    }

    /// Rewrites the configuration with the ports nats-server resolved at start where
    /// it compares them on reload (client and cluster), and sends SIGHUP.
    pub fn reload(&self, cluster_extra: &str, extra: &str) {
        let conf = RefCluster::conf(cluster_extra, extra)
            .replace(
                "port: -1\n",
                &format!("port: {}\n", self.addrs.client.port()),
            )
            // (nats-server keeps HTTPPort -1 in its running options.)
            .replace(
                "listen: \"127.0.0.1:-1\"",
                &format!("listen: \"{}\"", self.addrs.route),
            );
        std::fs::write(self.dir.join("ref.conf"), conf).expect("write conf");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGHUP);
        }
    }

    /// Like `start`, with `cluster_extra` lines inside the cluster block.
    pub fn start_with(cluster_extra: &str, extra: &str) -> RefCluster {
        let bin = nats_server_bin().expect("needs the reference nats-server 2.9.10");
        let dir = scratch_dir("refroute");
        let conf_path = dir.join("ref.conf");
        let conf = RefCluster::conf(cluster_extra, extra);
        std::fs::write(&conf_path, conf).expect("write conf");
        let mut child = Command::new(&bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        let stderr = child.stderr.take().expect("stderr pipe");
        let (tx, rx) = mpsc::channel::<String>();
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let (mut client, mut route, mut http) = (None, None, None);
        let mut log = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let after = |line: &str, key: &str| -> Option<SocketAddr> {
            let i = line.find(key)?;
            line[i + key.len()..].trim().parse().ok()
        };
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nats-server did not become ready; log:\n{}", log.join("\n"));
            };
            client = client.or(after(&line, "Listening for client connections on "));
            route = route.or(after(&line, "Listening for route connections on "));
            http = http.or(after(&line, "Starting http monitor on "));
            log.push(line);
            if let (Some(client), Some(route), Some(http)) = (client, route, http) {
                // The route listener starts after "Server is ready".
                let addrs = Addrs {
                    client,
                    route,
                    http,
                };
                return RefCluster {
                    child,
                    addrs,
                    dir,
                    log: std::sync::Mutex::new((log, rx)),
                };
            }
        }
    }
}

impl RefCluster {
    /// The server's log so far (every line since start).
    pub fn log(&self) -> Vec<String> {
        let mut g = self.log.lock().unwrap();
        let (lines, rx) = &mut *g;
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        lines.clone()
    }
}

impl Drop for RefCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `path` until `ok` holds (bounded by 10 s); returns the document.
pub async fn wait_json(addr: SocketAddr, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = get_json(addr, path).await;
        if ok(&v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never matched: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The CONNECT a route peer sends (route.go `connectInfo`).
pub fn route_connect(name: &str) -> String {
    format!(
        "CONNECT {{\"echo\":true,\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\
         \"headers\":true,\"name\":\"{name}\",\"cluster\":\"{CLUSTER}\",\"lnoc\":true}}\r\n"
    )
}

/// A full route INFO for a fake server `id`.
pub fn route_info(id: &str) -> String {
    format!(
        "INFO {{\"server_id\":\"{id}\",\"server_name\":\"{id}\",\"version\":\"2.9.10\",\
         \"proto\":2,\"go\":\"go1.19\",\"host\":\"127.0.0.1\",\"port\":1,\"headers\":true,\
         \"max_payload\":1048576,\"cluster\":\"{CLUSTER}\",\"lnoc\":true}}\r\n"
    )
}

/// Connects to `route` (optionally with a small receive buffer), reads the
/// server's INFO and sends CONNECT, INFO `info_line` and a PING.
pub async fn route_peer(
    route: SocketAddr,
    name: &str,
    info_line: &str,
    rcvbuf: Option<u32>,
) -> Raw {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(b) = rcvbuf {
        sock.set_recv_buffer_size(b).unwrap();
    }
    let stream = tokio::time::timeout(STEP_TIMEOUT, sock.connect(route))
        .await
        .expect("route connect in time")
        .expect("route connect");
    stream.set_nodelay(true).unwrap();
    let mut peer = Raw {
        stream,
        pending: Vec::new(),
        eof: false,
    };
    let info = peer.read_line().await;
    assert!(
        info.starts_with(b"INFO "),
        "{:?}",
        String::from_utf8_lossy(&info)
    );
    let hello = format!("{}{}PING\r\n", route_connect(name), info_line);
    peer.send(hello.as_bytes()).await;
    peer
}

/// Whether the server answered the handshake's PING (the route is up)
/// rather than closing the connection.
pub async fn answered(peer: &mut Raw) -> bool {
    let got = peer.read_until(b"PONG\r\n").await;
    got.ends_with(b"PONG\r\n")
}
