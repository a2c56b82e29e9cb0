//! `broker proxy`: lets any NATS client use a SCION client listener.
//!
//! The proxy listens on a local TCP port and carries each accepted TCP
//! connection over its own path-aware QUIC/SCION connection to the broker's
//! SCION client listener, copying bytes both ways. The NATS protocol passes
//! through untouched, so clients, tools and `nats bench` work as against
//! nats-server.
//!
//! ```text
//! broker proxy --listen 127.0.0.1:4222 --upstream 'nats://18-ffaa:1:10bf,127.0.0.1:31022' \
//!              --local 18-ffaa:1:10a0,127.0.0.1:0
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use scion_transport::address::{parse_nats_url, ScionAddr};
use scion_transport::path::SelectorConfig;
use scion_transport::quic::{ScionEndpoint, TlsConfig, TransportConfig};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, info, warn};

use crate::server::scion::connect_client_stream;

/// What the proxy needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub upstream: ScionAddr,
    /// Our SCION address (port 0 = any free port in the dispatched range).
    pub local: ScionAddr,
    pub daemon: Option<String>,
    pub topology: Option<PathBuf>,
    pub path_preference: Option<String>,
}

/// Errors of the proxy command line and start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("proxy: {0}")]
    Usage(String),
    #[error("proxy: {0}")]
    Start(String),
}

pub const PROXY_USAGE: &str = "\
Usage: broker proxy --listen <host:port> --upstream <nats://ISD-AS,IP:port> --local <ISD-AS,IP[:port]>
                    [--daemon <host:port>] [--topology <topology.json>] [--path_preference <list>]

Carries TCP NATS connections to a broker's SCION client listener over path-aware QUIC/SCION.
  --listen           local TCP address NATS clients connect to (e.g. 127.0.0.1:4222)
  --upstream         the broker's SCION client listener, any form: nats://ISD-AS,IP:port,
                     [ISD-AS,IP]:port, ISD-AS,IP:port
  --local            this host's SCION address; its ISD-AS must be the daemon's AS
  --daemon           SCION daemon (default: $SCION_DAEMON_ADDRESS or 127.0.0.1:30255)
  --topology         the local AS's topology.json (dispatched port range, MTU)
  --path_preference  e.g. \"latency\" or \"bandwidth,latency\"
";

fn parse_scion(flag: &str, v: &str) -> Result<ScionAddr, ProxyError> {
    if v.contains("://") {
        return parse_nats_url(v)
            .map(|u| u.addr)
            .map_err(|e| ProxyError::Usage(format!("{flag} {v:?}: {e}")));
    }
    if let Ok(a) = v.parse::<ScionAddr>() {
        return Ok(a);
    }
    // "ISD-AS,IP" without a port: port 0.
    v.parse::<ScionAddr>()
        .or_else(|_| format!("{v}:0").parse::<ScionAddr>())
        .map_err(|e| ProxyError::Usage(format!("{flag} {v:?}: {e}")))
}

/// Parses the arguments after `proxy`.
pub fn parse_args(args: &[String]) -> Result<ProxyConfig, ProxyError> {
    let mut listen = None;
    let mut upstream = None;
    let mut local = None;
    let mut daemon = None;
    let mut topology = None;
    let mut pref = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].trim_start_matches('-');
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.to_string(), None),
        };
        if name == "h" || name == "help" {
            return Err(ProxyError::Usage(PROXY_USAGE.to_string()));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i)
                    .cloned()
                    .ok_or_else(|| ProxyError::Usage(format!("flag needs an argument: -{name}")))?
            }
        };
        match name.as_str() {
            "listen" | "l" => {
                listen = Some(
                    value
                        .parse::<SocketAddr>()
                        .map_err(|e| ProxyError::Usage(format!("--listen {value:?}: {e}")))?,
                )
            }
            "upstream" | "u" => upstream = Some(parse_scion("--upstream", &value)?),
            "local" => local = Some(parse_scion("--local", &value)?),
            "daemon" => daemon = Some(value),
            "topology" => topology = Some(PathBuf::from(value)),
            "path_preference" => {
                value
                    .parse::<scion_transport::path::PathPreference>()
                    .map_err(|e| ProxyError::Usage(format!("--path_preference: {e}")))?;
                pref = Some(value)
            }
            other => {
                return Err(ProxyError::Usage(format!(
                    "flag provided but not defined: -{other}\n{PROXY_USAGE}"
                )))
            }
        }
        i += 1;
    }
    Ok(ProxyConfig {
        listen: listen
            .ok_or_else(|| ProxyError::Usage(format!("--listen is required\n{PROXY_USAGE}")))?,
        upstream: upstream
            .ok_or_else(|| ProxyError::Usage(format!("--upstream is required\n{PROXY_USAGE}")))?,
        local: local
            .ok_or_else(|| ProxyError::Usage(format!("--local is required\n{PROXY_USAGE}")))?,
        daemon,
        topology,
        path_preference: pref,
    })
}

/// A running proxy.
pub struct Proxy {
    pub listen: SocketAddr,
    pub endpoint: Arc<ScionEndpoint>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds the TCP listener and the SCION endpoint and starts proxying.
pub async fn start(cfg: ProxyConfig) -> Result<Proxy, ProxyError> {
    let mut tls = TlsConfig::self_signed(&[crate::server::scion::SERVER_NAME])
        .map_err(|e| ProxyError::Start(e.to_string()))?;
    // The broker's client listener presents a self-signed certificate unless
    // configured otherwise; the NATS auth inside the stream still applies.
    tls.skip_server_verification = true;
    let mut t = TransportConfig::new(cfg.local, tls);
    t.daemon = cfg.daemon.clone();
    t.topology = cfg.topology.clone();
    t.accept = false;
    let mut sel = SelectorConfig::default();
    if let Some(p) = &cfg.path_preference {
        sel.preference = p
            .parse()
            .map_err(|e| ProxyError::Start(format!("path_preference: {e}")))?;
    }
    t.selector = sel;
    let ep = ScionEndpoint::bind(t)
        .await
        .map_err(|e| ProxyError::Start(e.to_string()))?;
    let ep = Arc::new(ep);
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ProxyError::Start(format!("listen {}: {e}", cfg.listen)))?;
    let listen = listener
        .local_addr()
        .map_err(|e| ProxyError::Start(e.to_string()))?;
    info!(
        "Proxying NATS clients on {} to {} over SCION (local {})",
        listen,
        cfg.upstream,
        ep.local_addr()
    );
    let task = tokio::spawn(accept_loop(listener, ep.clone(), cfg.upstream));
    Ok(Proxy {
        listen,
        endpoint: ep,
        task,
    })
}

/// Where new client connections go: the configured upstream first, then the
/// SCION client listeners the cluster advertised (learned from INFO).
struct Upstreams {
    configured: ScionAddr,
    learned: std::sync::Mutex<Vec<ScionAddr>>,
}

impl Upstreams {
    fn candidates(&self) -> Vec<ScionAddr> {
        let mut v = vec![self.configured];
        for a in self
            .learned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if !v.contains(a) {
                v.push(*a);
            }
        }
        v
    }

    fn learn(&self, urls: &[ScionAddr]) {
        let mut g = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        for a in urls {
            if !g.contains(a) && g.len() < 64 {
                g.push(*a);
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, ep: Arc<ScionEndpoint>, upstream: ScionAddr) {
    let ups = Arc::new(Upstreams {
        configured: upstream,
        learned: std::sync::Mutex::new(Vec::new()),
    });
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(carry(tcp, peer, ep.clone(), ups.clone()));
            }
            Err(e) => {
                warn!("proxy accept error: {}", e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn carry(tcp: TcpStream, peer: SocketAddr, ep: Arc<ScionEndpoint>, ups: Arc<Upstreams>) {
    let mut last_err = String::new();
    let mut linked = None;
    for up in ups.candidates() {
        match connect_client_stream(&ep, up).await {
            Ok(x) => {
                linked = Some((up, x));
                break;
            }
            Err(e) => {
                warn!("proxy: {} -> {}: {}", peer, up, e);
                last_err = e;
            }
        }
    }
    let Some((up, (conn, send, recv))) = linked else {
        error!("proxy: {}: no upstream reachable: {}", peer, last_err);
        return;
    };
    debug!("proxy: {} -> {} connected", peer, up);
    let (mut tcp_rd, tcp_wr) = tcp.into_split();
    let mut send = send;
    let up_dir = async {
        let r = tokio::io::copy(&mut tcp_rd, &mut send).await;
        let _ = send.finish();
        r.map(|_| ())
    };
    let down_dir = relay_server_to_client(recv, tcp_wr, &ups);
    let r = tokio::select! {
        r = up_dir => r,
        r = down_dir => r,
    };
    debug!("proxy: {} closed: {:?}", peer, r);
    conn.close(0u32.into(), b"client closed");
}

/// Copies the server's protocol to the TCP client, rewriting INFO: the
/// SCION client listeners in `connect_urls` are learned as fail-over
/// upstreams and removed, because the TCP client could not dial them (and
/// NATS libraries reject URLs they cannot parse).
async fn relay_server_to_client(
    mut from: quinn::RecvStream,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    ups: &Upstreams,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = bytes::BytesMut::with_capacity(64 * 1024);
    let mut scanner = ServerScanner::default();
    loop {
        let n = from.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let out = scanner.feed(&mut buf, |urls| ups.learn(urls));
        to.write_all(&out).await?;
    }
}

/// Splits the server-to-client byte stream into protocol units, passing
/// message payloads through untouched.
#[derive(Default)]
struct ServerScanner {
    /// Payload bytes (plus CRLF) still to pass through.
    payload_left: usize,
}

/// INFO lines longer than this are passed through unmodified.
const MAX_INFO: usize = 1024 * 1024;

impl ServerScanner {
    fn feed(&mut self, buf: &mut bytes::BytesMut, mut learn: impl FnMut(&[ScionAddr])) -> Vec<u8> {
        let mut out = Vec::with_capacity(buf.len());
        loop {
            if self.payload_left > 0 {
                let n = self.payload_left.min(buf.len());
                out.extend_from_slice(&buf.split_to(n));
                self.payload_left -= n;
                if self.payload_left > 0 {
                    break;
                }
                continue;
            }
            let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                if buf.len() > MAX_INFO {
                    out.extend_from_slice(&buf.split_to(buf.len()));
                }
                break;
            };
            let line = buf.split_to(nl + 1);
            let upper: Vec<u8> = line
                .iter()
                .take(5)
                .map(|b| b.to_ascii_uppercase())
                .collect();
            if upper.starts_with(b"INFO ") {
                out.extend_from_slice(&rewrite_info(&line, &mut learn));
            } else if upper.starts_with(b"MSG ") || upper.starts_with(b"HMSG ") {
                let size = crate::proto::split_args(&line)
                    .last()
                    .and_then(crate::proto::parse_size)
                    .unwrap_or(0);
                self.payload_left = size + 2;
                out.extend_from_slice(&line);
            } else {
                out.extend_from_slice(&line);
            }
        }
        out
    }
}

fn rewrite_info(line: &[u8], learn: &mut impl FnMut(&[ScionAddr])) -> Vec<u8> {
    let body = line[5..].trim_ascii();
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return line.to_vec();
    };
    if let Some(urls) = v.get_mut("connect_urls").and_then(|u| u.as_array_mut()) {
        let mut scion = Vec::new();
        urls.retain(
            |u| match u.as_str().and_then(|s| s.parse::<ScionAddr>().ok()) {
                Some(a) => {
                    scion.push(a);
                    false
                }
                None => true,
            },
        );
        learn(&scion);
        if urls.is_empty() {
            if let Some(m) = v.as_object_mut() {
                m.remove("connect_urls");
            }
        }
    }
    let mut out = b"INFO ".to_vec();
    if serde_json::to_writer(&mut out, &v).is_err() {
        return line.to_vec();
    }
    out.extend_from_slice(b" \r\n");
    out
}

/// Runs `broker proxy ARGS` until interrupted.
pub fn run_cli(args: &[String]) -> std::process::ExitCode {
    let cfg = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let _ = crate::logging::init(&crate::logging::LogConfig {
        logtime: true,
        ..Default::default()
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("proxy: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let proxy = match start(cfg).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let _ = tokio::signal::ctrl_c().await;
        drop(proxy);
        std::process::ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn scanner_rewrites_info_and_skips_payloads() {
        let mut sc = ServerScanner::default();
        let mut learned = Vec::new();
        let input = b"INFO {\"server_id\":\"x\",\"connect_urls\":[\"127.0.0.1:4222\",\"[1-ff00:0:111,127.0.0.1]:31000\"]} \r\nMSG a 1 17\r\nINFO {\"fake\":1}\r\n\r\nPING\r\n";
        // Feed in two pieces split inside the payload.
        let mut b1 = bytes::BytesMut::from(&input[..70]);
        let mut out = sc.feed(&mut b1, |u| learned.extend_from_slice(u));
        let mut b2 = bytes::BytesMut::from(&b1[..]);
        b2.extend_from_slice(&input[70..]);
        out.extend(sc.feed(&mut b2, |u| learned.extend_from_slice(u)));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("INFO {"), "{text}");
        assert!(
            text.contains("127.0.0.1:4222") && !text.contains("1-ff00"),
            "{text}"
        );
        assert!(
            text.contains("MSG a 1 17\r\nINFO {\"fake\":1}\r\n\r\nPING\r\n"),
            "{text}"
        );
        assert_eq!(learned.len(), 1);
        assert_eq!(learned[0].port, 31000);
    }

    #[test]
    fn args() {
        let c = parse_args(&s(&[
            "--listen",
            "127.0.0.1:4222",
            "--upstream",
            "nats://18-ffaa:1:10bf,127.0.0.1:31022",
            "--local=18-ffaa:1:10a0,127.0.0.1",
        ]))
        .unwrap();
        assert_eq!(c.upstream.port, 31022);
        assert_eq!(c.local.port, 0);
        assert!(parse_args(&s(&["--listen", "127.0.0.1:1"])).is_err());
        assert!(parse_args(&s(&["--bogus", "x"])).is_err());
        let e = parse_args(&s(&[
            "--listen",
            "127.0.0.1:1",
            "--upstream",
            "[1-ff00:0:1,127.0.0.1]:5",
            "--local",
            "1-ff00:0:2,127.0.0.1:0",
            "--path_preference",
            "latency,speed",
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("path_preference"), "{e}");
    }
}
