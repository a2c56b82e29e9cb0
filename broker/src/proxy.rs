//! `broker proxy`: lets any NATS client use a SCION client listener.
//!
//! The proxy listens on a local TCP port and carries each accepted TCP
//! connection over its own path-aware QUIC/SCION connection to the broker's
//! SCION client listener, copying bytes both ways. The NATS protocol passes
//! through untouched (INFO too, unless its `connect_urls` name SCION
//! listeners the TCP client could not dial), so clients, tools and
//! `nats bench` work as against nats-server.
//!
//! ```text
//! broker proxy --listen 127.0.0.1:4222 --upstream 'nats://18-ffaa:1:10bf,127.0.0.1:31022' \
//!              --ca ca.pem
//! ```
//!
//! The link is always encrypted (QUIC/TLS 1.3). The broker's certificate is
//! verified only with `--ca`; without it the proxy says so at start, like the
//! broker does for unverified SCION routes.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use scion_transport::address::{parse_nats_url, ScionAddr};
use scion_transport::daemon::{resolve_daemon_address, DaemonClient};
use scion_transport::path::SelectorConfig;
use scion_transport::quic::{
    ConnectError, ScionEndpoint, TlsConfig, TransportConfig, DEFAULT_ALPN,
};
use scion_transport::topology::LocalTopology;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, info, warn};

use crate::server::scion::SERVER_NAME;

/// What the proxy needs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub upstream: ScionAddr,
    /// Further configured upstreams, tried in order after `upstream` (and before the
    /// listeners learned from INFO).
    pub more_upstreams: Vec<ScionAddr>,
    /// Our SCION address (port 0 = any free port in the dispatched range).
    pub local: ScionAddr,
    pub daemon: Option<String>,
    pub topology: Option<PathBuf>,
    pub path_preference: Option<String>,
}

/// How the proxy authenticates the broker. The default (no CA) encrypts but
/// accepts any certificate, and logs a warning saying so.
#[derive(Debug, Clone, Default)]
pub struct ProxyTls {
    /// PEM bundle of the CA(s) the broker's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// Name the broker's certificate must carry (SAN); default
    /// [`SERVER_NAME`], the name the broker dials its own SCION links with.
    pub server_name: Option<String>,
    /// Our client certificate and key (PEM), for a listener with `scion { tls { verify: true } }`;
    /// both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The command line of `broker proxy`, before the local address is resolved.
#[derive(Debug, Clone)]
pub struct ProxyArgs {
    pub listen: SocketAddr,
    /// `--upstream`, in the order given (at least one).
    pub upstreams: Vec<ScionAddr>,
    /// `-D`/`-V`/`-DV`: debug and trace log lines.
    pub debug: bool,
    pub trace: bool,
    /// `None`: the ISD-AS from the SCION daemon, the IP from [`default_local_ip`].
    pub local: Option<ScionAddr>,
    pub daemon: Option<String>,
    pub topology: Option<PathBuf>,
    pub path_preference: Option<String>,
    pub tls: ProxyTls,
}

/// Errors of the proxy command line and start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `-h`/`--help`: not a failure; the caller prints [`PROXY_USAGE`].
    #[error("{}", PROXY_USAGE)]
    Help,
    #[error("proxy: {0}")]
    Usage(String),
    #[error("proxy: --ca {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("proxy: --cert/--key: {0}")]
    Cert(String),
    #[error("proxy: local SCION address: {0}")]
    Local(String),
    #[error("proxy: {0}")]
    Start(String),
}

pub const PROXY_USAGE: &str = "\
Usage: broker proxy --listen <host:port> --upstream <nats://ISD-AS,IP:port> [--upstream ...]
                    [--local <ISD-AS,IP[:port]>] [--ca <ca.pem>] [--server-name <name>]
                    [--cert <cert.pem> --key <key.pem>]
                    [--daemon <host:port>] [--topology <topology.json>] [--path_preference <list>]
                    [-D] [-V] [-DV]

Carries TCP NATS connections to a broker's SCION client listener over path-aware QUIC/SCION.
  --listen           local TCP address NATS clients connect to: host:port, or a port
                     (on 127.0.0.1)
  --upstream         the broker's SCION client listener, any form: nats://ISD-AS,IP:port,
                     [ISD-AS,IP]:port, ISD-AS,IP:port; repeat it (or list nats:// URLs
                     separated by commas) for more brokers, tried in order, then the
                     cluster's other SCION listeners learned from INFO
  -D, -V, -DV        debug (each client link opened and closed), trace, both
  --local            this host's SCION address (default: the daemon's ISD-AS and the IP
                     this host uses toward its AS's border router, or toward the daemon)
  --ca               PEM CA bundle: verify the broker's certificate (without it the link is
                     encrypted but the broker is not authenticated)
  --server-name      name the broker's certificate must carry (default: nats-scion)
  --cert, --key      PEM client certificate and key, for a listener that verifies clients
                     (scion { tls { verify: true, ca_file: ... } })
  --daemon           SCION daemon (default: $SCION_DAEMON_ADDRESS or 127.0.0.1:30255)
  --topology         the local AS's topology.json (dispatched port range, MTU)
  --path_preference  e.g. \"latency\" or \"bandwidth,latency\"
";

/// The `--upstream` values in `v`: one address in any form, or `nats://` URLs separated
/// by commas (an address has a comma of its own, so a list is split only before
/// `nats://`). The scheme must be `nats`, the port given, and there must be no user
/// info: credentials go in the NATS client's CONNECT, which the proxy carries as it is.
pub(crate) fn parse_upstreams(v: &str) -> Result<Vec<ScionAddr>, ProxyError> {
    let bad =
        |what: &str, reason: String| ProxyError::Usage(format!("--upstream {what:?}: {reason}"));
    let mut out = Vec::new();
    for (k, part) in v.split(",nats://").enumerate() {
        let part = if k == 0 {
            part.trim().to_string()
        } else {
            format!("nats://{}", part.trim())
        };
        let addr = if part.contains("://") {
            let u = parse_nats_url(&part).map_err(|e| bad(&part, e.to_string()))?;
            if u.scheme != "nats" {
                return Err(bad(
                    &part,
                    format!(
                        "scheme {:?}: a broker's SCION client listener is nats://",
                        u.scheme
                    ),
                ));
            }
            if u.user.is_some() {
                return Err(bad(
                    &part,
                    "user info is not used here: give the credentials to the NATS client, whose CONNECT the proxy carries".into(),
                ));
            }
            u.addr
        } else {
            part.parse::<ScionAddr>()
                .map_err(|e| bad(&part, e.to_string()))?
        };
        if addr.port == 0 {
            return Err(bad(
                &part,
                "no port: give the broker's SCION client listener port".into(),
            ));
        }
        out.push(addr);
    }
    Ok(out)
}

/// `--listen`: `host:port` (a name is resolved, the first address taken), or a bare port
/// on 127.0.0.1 (the proxy carries unauthenticated local clients onto SCION, so it
/// listens on loopback unless told otherwise).
fn parse_listen(v: &str) -> Result<SocketAddr, ProxyError> {
    let bad = |e: String| ProxyError::Usage(format!("--listen {v:?}: {e}"));
    if let Ok(port) = v.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    std::net::ToSocketAddrs::to_socket_addrs(v)
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("the name has no address".into()))
}

fn parse_scion(flag: &str, v: &str) -> Result<ScionAddr, ProxyError> {
    if v.contains("://") {
        return parse_nats_url(v)
            .map(|u| u.addr)
            .map_err(|e| ProxyError::Usage(format!("{flag} {v:?}: {e}")));
    }
    // "ISD-AS,IP" without a port: port 0.
    v.parse::<ScionAddr>()
        .or_else(|_| format!("{v}:0").parse::<ScionAddr>())
        .map_err(|e| ProxyError::Usage(format!("{flag} {v:?}: {e}")))
}

/// Parses the arguments after `proxy`.
pub fn parse_args(args: &[String]) -> Result<ProxyArgs, ProxyError> {
    let mut listen = None;
    let mut upstreams: Vec<ScionAddr> = Vec::new();
    let (mut debug, mut trace) = (false, false);
    // -DV (or -VD): debug and trace together, whatever -D and -V say.
    let mut both = None;
    let mut local = None;
    let mut daemon = None;
    let mut topology = None;
    let mut pref = None;
    let mut tls = ProxyTls::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].trim_start_matches('-');
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.to_string(), None),
        };
        if name == "h" || name == "help" {
            return Err(ProxyError::Help);
        }
        // Boolean log flags, as nats-server spells them; Go's flag package also takes
        // `-D=true` / `-D=false` (strconv.ParseBool).
        if matches!(name.as_str(), "D" | "V" | "DV" | "VD" | "debug" | "trace") {
            let on = match inline.as_deref() {
                None => true,
                Some(v) => crate::cli::parse_go_bool(v).ok_or_else(|| {
                    ProxyError::Usage(format!(
                        "invalid boolean value {v:?} for -{name}: parse error\n{PROXY_USAGE}"
                    ))
                })?,
            };
            match name.as_str() {
                "D" | "debug" => debug = on,
                "V" | "trace" => trace = on,
                // Applied after every other flag, as opts.go's fs.Visit does.
                _ => both = Some(on),
            }
            i += 1;
            continue;
        }
        const TAKES_VALUE: &[&str] = &[
            "listen",
            "l",
            "upstream",
            "u",
            "local",
            "daemon",
            "topology",
            "ca",
            "tlscacert",
            "cert",
            "tlscert",
            "key",
            "tlskey",
            "server-name",
            "server_name",
            "path_preference",
            "path-preference",
        ];
        if !TAKES_VALUE.contains(&name.as_str()) {
            return Err(ProxyError::Usage(format!(
                "flag provided but not defined: -{name}\n{PROXY_USAGE}"
            )));
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
            "listen" | "l" => listen = Some(parse_listen(&value)?),
            "upstream" | "u" => {
                for a in parse_upstreams(&value)? {
                    if !upstreams.contains(&a) {
                        upstreams.push(a);
                    }
                }
            }
            "local" => local = Some(parse_scion("--local", &value)?),
            "daemon" => daemon = Some(value),
            "topology" => topology = Some(PathBuf::from(value)),
            "ca" | "tlscacert" => tls.ca = Some(PathBuf::from(value)),
            "cert" | "tlscert" => tls.cert = Some(PathBuf::from(value)),
            "key" | "tlskey" => tls.key = Some(PathBuf::from(value)),
            "server-name" | "server_name" => {
                if value.is_empty() {
                    return Err(ProxyError::Usage("--server-name must not be empty".into()));
                }
                // Checked now rather than on the first client's handshake.
                if rustls::pki_types::ServerName::try_from(value.as_str()).is_err() {
                    return Err(ProxyError::Usage(format!(
                        "--server-name {value:?}: not a DNS name or an IP address"
                    )));
                }
                tls.server_name = Some(value)
            }
            // Both spellings, like --server-name/--server_name.
            "path_preference" | "path-preference" => {
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
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(ProxyError::Usage(
            "--cert and --key go together (the client certificate and its key)".into(),
        ));
    }
    if let Some(on) = both {
        (debug, trace) = (on, on);
    }
    Ok(ProxyArgs {
        listen: listen
            .ok_or_else(|| ProxyError::Usage(format!("--listen is required\n{PROXY_USAGE}")))?,
        upstreams: if upstreams.is_empty() {
            return Err(ProxyError::Usage(format!(
                "--upstream is required\n{PROXY_USAGE}"
            )));
        } else {
            upstreams
        },
        debug,
        trace,
        local,
        daemon,
        topology,
        path_preference: pref,
        tls,
    })
}

impl ProxyArgs {
    /// Fills in the local SCION address (see [`resolve_local`]).
    pub async fn into_config(self) -> Result<(ProxyConfig, ProxyTls), ProxyError> {
        let local = match self.local {
            Some(l) => l,
            None => resolve_local(self.daemon.as_deref(), self.topology.as_deref()).await?,
        };
        Ok((
            ProxyConfig {
                listen: self.listen,
                upstream: self.upstreams[0],
                more_upstreams: self.upstreams[1..].to_vec(),
                local,
                daemon: self.daemon,
                topology: self.topology,
                path_preference: self.path_preference,
            },
            self.tls,
        ))
    }
}

/// Our SCION address when none is given: the ISD-AS the daemon serves, and
/// [`default_local_ip`], port 0.
pub async fn resolve_local(
    daemon: Option<&str>,
    topology: Option<&Path>,
) -> Result<ScionAddr, ProxyError> {
    let addr = resolve_daemon_address(daemon);
    let d = DaemonClient::connect(&addr)
        .await
        .map_err(|e| ProxyError::Local(format!("{e} (pass --local ISD-AS,IP)")))?;
    let ia = d
        .local_as()
        .await
        .map_err(|e| ProxyError::Local(format!("{e} (pass --local ISD-AS,IP)")))?
        .ia;
    let topo = match topology {
        Some(p) => Some(LocalTopology::load(p).map_err(|e| ProxyError::Local(e.to_string()))?),
        None => None,
    };
    let mut router = topo
        .as_ref()
        .and_then(|t| t.border_routers.first())
        .map(|r| r.internal_addr.ip());
    // Without topology.json the daemon names its AS's border routers (by interface).
    if router.is_none() {
        if let Ok(ifaces) = d.interfaces().await {
            router = ifaces
                .iter()
                .min_by_key(|(ifid, _)| **ifid)
                .map(|(_, a)| a.ip());
        }
    }
    let daemon_ip = daemon_host_ip(&addr);
    let ip = default_local_ip(router, daemon_ip).map_err(ProxyError::Local)?;
    Ok(ScionAddr { ia, ip, port: 0 })
}

fn daemon_host_ip(addr: &str) -> Option<IpAddr> {
    let hostport = addr.split_once("://").map_or(addr, |(_, r)| r);
    let hostport = hostport.trim_end_matches('/');
    if let Ok(sa) = hostport.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()?
        .next()
        .map(|s| s.ip())
}

/// The IP SCION packets should carry as our host address. The border router
/// delivers inbound packets to it over the AS's internal network, so it must
/// be the address this host uses toward the router (from topology.json); the
/// SCION daemon runs inside the AS too and is the next best reference. The
/// broker's own endpoint takes the IP from its listen address instead,
/// because SCION headers cannot carry 0.0.0.0 (`BindError::UnspecifiedIp`).
pub fn default_local_ip(router: Option<IpAddr>, daemon: Option<IpAddr>) -> Result<IpAddr, String> {
    let target = router.or(daemon).ok_or_else(|| {
        "cannot tell which IP to use (no topology.json router, daemon address not an IP); pass --local ISD-AS,IP".to_string()
    })?;
    if target.is_loopback() {
        return Ok(target);
    }
    // A connected UDP socket sends nothing; it only asks the kernel for the
    // source address of the route toward `target`.
    let any: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = std::net::UdpSocket::bind(any).map_err(|e| format!("source address lookup: {e}"))?;
    sock.connect((target, 9))
        .map_err(|e| format!("no route toward {target}: {e}; pass --local ISD-AS,IP"))?;
    sock.local_addr()
        .map(|a| a.ip())
        .map_err(|e| format!("source address lookup: {e}"))
}

/// The client TLS material and whether the server is authenticated.
fn client_tls(t: &ProxyTls) -> Result<(TlsConfig, bool), ProxyError> {
    let mut tls = match (&t.cert, &t.key) {
        // Presented when the listener asks for it (`scion.tls.verify`).
        (Some(cert), Some(key)) => {
            let mut tls = TlsConfig::from_pem_cert_key(cert, key)
                .map_err(|e| ProxyError::Cert(e.to_string()))?;
            // A key that does not belong to the certificate fails here, at start, naming
            // the right flags (as Go's tls.LoadX509KeyPair would).
            tls.server_config(&[]).map_err(|e| {
                ProxyError::Cert(format!("error parsing X509 certificate/key pair: {e}"))
            })?;
            tls.mutual = true;
            tls
        }
        (None, None) => {
            // Never sent (without `mutual`); the TlsConfig type just needs one.
            TlsConfig::self_signed(&[SERVER_NAME]).map_err(|e| ProxyError::Start(e.to_string()))?
        }
        _ => {
            return Err(ProxyError::Cert(
                "give both the certificate and its key".into(),
            ))
        }
    };
    let Some(ca) = &t.ca else {
        tls.skip_server_verification = true;
        return Ok((tls, false));
    };
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let ca_err = |reason: String| ProxyError::Ca {
        path: ca.display().to_string(),
        reason,
    };
    let pem = std::fs::read(ca).map_err(|e| ca_err(e.to_string()))?;
    let roots = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_err(e.to_string()))?;
    if roots.is_empty() {
        return Err(ca_err("no CERTIFICATE in the file".into()));
    }
    tls.roots = roots;
    tls.skip_server_verification = false;
    // Build once now so a malformed CA fails at start, not per connection.
    tls.client_crypto(&[DEFAULT_ALPN.to_vec()])
        .map_err(|e| ca_err(e.to_string()))?;
    Ok((tls, true))
}

/// Errors of opening one client link to the broker.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{remote}: no QUIC handshake within {secs}s")]
    HandshakeTimeout { remote: ScionAddr, secs: u64 },
    #[error("{remote}: the broker's certificate was rejected ({reason}): check --ca and --server-name (expected name {name:?})")]
    Untrusted {
        remote: ScionAddr,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Connect(ConnectError),
    #[error("{remote}: the broker refused our client certificate ({reason}): check --cert and --key against the broker's scion.tls ca_file")]
    ClientRefused { remote: ScionAddr, reason: String },
    #[error(
        "{remote}: the broker requires a client certificate ({reason}): pass --cert and --key"
    )]
    ClientCertRequired { remote: ScionAddr, reason: String },
    #[error("{remote}: the broker opened no stream within {secs}s (is this its SCION client listener, `listen`, and not a route port, `cluster.listen`?)")]
    NoStream { remote: ScionAddr, secs: u64 },
    #[error("{remote}: {source}")]
    Stream {
        remote: ScionAddr,
        source: quinn::ConnectionError,
    },
}

impl LinkError {
    /// Whether a later attempt may pass: the broker did not answer, the link broke, or no
    /// path works yet (paths come and go). A refused certificate (either side's), a server
    /// name or TLS setup quinn refuses, stay as they are.
    pub fn may_pass(&self) -> bool {
        match self {
            LinkError::HandshakeTimeout { .. }
            | LinkError::NoStream { .. }
            | LinkError::Stream { .. }
            | LinkError::Connect(ConnectError::Path(_)) => true,
            LinkError::Connect(ConnectError::Handshake { source, .. }) => {
                !scion_transport::quic::is_tls_failure(source)
            }
            LinkError::Untrusted { .. }
            | LinkError::ClientRefused { .. }
            | LinkError::ClientCertRequired { .. }
            | LinkError::Connect(ConnectError::Start { .. } | ConnectError::Tls(_)) => false,
        }
    }
}

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a link whose client stopped sending waits for the broker to finish its side.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// One client link: the QUIC connection and the stream the broker opened.
pub(crate) type Link = (quinn::Connection, quinn::SendStream, quinn::RecvStream);

/// Dials the broker's SCION client listener; the broker opens the stream so
/// it can speak first (INFO), as on TCP (see `server::scion::accept_clients`).
pub(crate) async fn open_link(
    ep: &ScionEndpoint,
    remote: ScionAddr,
    server_name: &str,
) -> Result<Link, LinkError> {
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, ep.connect(remote, server_name))
        .await
        .map_err(|_| LinkError::HandshakeTimeout {
            remote,
            secs: HANDSHAKE_TIMEOUT.as_secs(),
        })?
        .map_err(|e| match e {
            // TLS alerts travel as QUIC crypto errors 0x100-0x1ff (RFC 9001
            // §4.8); our own verifier's rejection ends up there too.
            ConnectError::Handshake {
                remote,
                source: quinn::ConnectionError::TransportError(te),
            } if u64::from(te.code) & !0xff == 0x100 => LinkError::Untrusted {
                remote,
                name: server_name.to_string(),
                reason: te.reason,
            },
            other => LinkError::Connect(other),
        })?;
    let (send, recv) = tokio::time::timeout(STREAM_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| LinkError::NoStream {
            remote,
            secs: STREAM_TIMEOUT.as_secs(),
        })?
        .map_err(|source| {
            // In TLS 1.3 our handshake ends before the broker has checked our certificate;
            // its refusal arrives as a crypto close instead of the stream.
            if scion_transport::quic::is_tls_failure(&source) {
                let reason = source.to_string();
                if scion_transport::quic::tls_alert(&source) == Some(CERTIFICATE_REQUIRED) {
                    LinkError::ClientCertRequired { remote, reason }
                } else {
                    LinkError::ClientRefused { remote, reason }
                }
            } else {
                LinkError::Stream { remote, source }
            }
        })?;
    Ok((conn, send, recv))
}

/// TLS 1.3 `certificate_required` alert (RFC 8446 §6.2): the peer wanted a client certificate
/// and got none.
const CERTIFICATE_REQUIRED: u8 = 116;

/// A running proxy; dropping it stops accepting (links already carried run
/// until either side closes).
pub struct Proxy {
    pub listen: SocketAddr,
    pub endpoint: Arc<ScionEndpoint>,
    /// Whether the broker's certificate is verified (`--ca`).
    pub authenticated: bool,
    pub(crate) upstreams: Arc<Upstreams>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy that does not authenticate the broker (see [`start_with_tls`]).
pub async fn start(cfg: ProxyConfig) -> Result<Proxy, ProxyError> {
    start_with_tls(cfg, &ProxyTls::default()).await
}

/// Binds the TCP listener and the SCION endpoint and starts proxying.
pub async fn start_with_tls(cfg: ProxyConfig, tls: &ProxyTls) -> Result<Proxy, ProxyError> {
    let (tls_cfg, authenticated) = client_tls(tls)?;
    let mut t = TransportConfig::new(cfg.local, tls_cfg);
    t.daemon = cfg.daemon.clone();
    t.topology = cfg.topology.clone();
    t.accept = false;
    t.keep_alive = CLIENT_LINK_KEEP_ALIVE;
    t.idle_timeout = CLIENT_LINK_IDLE;
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
    let server_name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| SERVER_NAME.to_string());
    if authenticated {
        info!(
            "SCION client links verify the broker's certificate against {} (name {:?})",
            tls.ca.as_deref().unwrap_or(Path::new("?")).display(),
            server_name
        );
    } else {
        // Same wording as the broker's warning for unverified SCION routes.
        warn!("SCION client links are encrypted (QUIC/TLS) but the server is not authenticated: pass --ca <ca.pem> to verify the broker's certificate");
    }
    let mut configured = vec![cfg.upstream];
    for a in &cfg.more_upstreams {
        if !configured.contains(a) {
            configured.push(*a);
        }
    }
    info!(
        "Proxying NATS clients on {} to {} over SCION (local {})",
        listen,
        configured
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        ep.local_addr()
    );
    let ups = Arc::new(Upstreams {
        configured,
        server_name,
        learned: std::sync::Mutex::new(Vec::new()),
        primed: std::sync::Mutex::new(None),
        failed: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    let task = tokio::spawn(accept_loop(listener, ep.clone(), ups.clone()));
    Ok(Proxy {
        listen,
        endpoint: ep,
        authenticated,
        upstreams: ups,
        task,
    })
}

impl Proxy {
    /// Upstreams the next clients try after the others: they failed in the last 30 s, or
    /// closed their links because they were shutting down.
    pub fn tried_last(&self) -> Vec<ScionAddr> {
        self.upstreams.tried_last()
    }

    /// Opens a link to the first configured upstream that answers now, so that
    /// certificate or reachability problems show up as an error here (if none answers:
    /// the first error a later attempt cannot pass, such as a refused certificate, else
    /// the last upstream's); the next TCP client gets this link instead of dialing a new
    /// one.
    pub async fn prime(&self) -> Result<(), LinkError> {
        let mut last: Option<LinkError> = None;
        for up in self.upstreams.configured.clone() {
            match open_link(&self.endpoint, up, &self.upstreams.server_name).await {
                Ok(link) => {
                    *lock(&self.upstreams.primed) = Some((up, link));
                    return Ok(());
                }
                Err(e) => {
                    self.upstreams.note_result(up, false);
                    if last.as_ref().is_none_or(LinkError::may_pass) {
                        last = Some(e);
                    }
                }
            }
        }
        Err(last.expect("at least one configured upstream"))
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where new client connections go: the configured upstreams first, then the
/// SCION client listeners the cluster advertised (learned from INFO).
pub(crate) struct Upstreams {
    configured: Vec<ScionAddr>,
    server_name: String,
    learned: std::sync::Mutex<Vec<ScionAddr>>,
    /// A link opened by [`Proxy::prime`], for the next TCP client.
    primed: std::sync::Mutex<Option<(ScionAddr, Link)>>,
    /// When each upstream last failed to link: tried last for [`FAILED_RECENTLY`], so that a
    /// client reconnecting after its broker died reaches a live one within its own connect
    /// timeout (nats.go's is 2 s, below one upstream's handshake bound).
    failed: std::sync::Mutex<std::collections::HashMap<ScionAddr, std::time::Instant>>,
}

/// QUIC keep-alive of a client link (proxy to broker).
pub const CLIENT_LINK_KEEP_ALIVE: Duration = Duration::from_secs(1);
/// A client link that hears nothing (not even a keep-alive) on any path for this long is
/// closed: its broker or proxy died, or every path to it is down. The TCP client then
/// sees the connection close and reconnects, as it would when a nats-server dies. Route
/// links keep 30 s: a route is not given up so quickly.
pub const CLIENT_LINK_IDLE: Duration = Duration::from_secs(5);

/// How long the proxy waits, after its broker ended a link's stream, for the close that
/// says why.
const SHUTDOWN_CLOSE_WAIT: Duration = Duration::from_millis(50);

/// How long an upstream that failed to link is tried after the others.
const FAILED_RECENTLY: Duration = Duration::from_secs(30);

impl Upstreams {
    /// The configured upstreams, then the learned ones; those that failed recently last.
    fn candidates(&self) -> Vec<ScionAddr> {
        let mut v = self.configured.clone();
        for a in lock(&self.learned).iter() {
            if !v.contains(a) {
                v.push(*a);
            }
        }
        let failed = lock(&self.failed);
        let recent = |a: &ScionAddr| failed.get(a).is_some_and(|t| t.elapsed() < FAILED_RECENTLY);
        // Stable: the order among the live ones, and among the failed ones, is kept.
        v.sort_by_key(recent);
        v
    }

    /// Upstreams tried last for now (failed within [`FAILED_RECENTLY`]).
    fn tried_last(&self) -> Vec<ScionAddr> {
        lock(&self.failed)
            .iter()
            .filter(|(_, t)| t.elapsed() < FAILED_RECENTLY)
            .map(|(a, _)| *a)
            .collect()
    }

    fn note_result(&self, up: ScionAddr, ok: bool) {
        let mut failed = lock(&self.failed);
        if ok {
            failed.remove(&up);
        } else {
            failed.insert(up, std::time::Instant::now());
        }
    }

    /// The cluster's SCION client listeners as the latest INFO lists them (it lists the whole
    /// current set, so listeners of servers that left are forgotten).
    fn learn(&self, urls: &[ScionAddr]) {
        let mut g = lock(&self.learned);
        g.clear();
        for a in urls.iter().take(64) {
            if !g.contains(a) {
                g.push(*a);
            }
        }
    }

    /// The primed link, unless the broker has closed it meanwhile (e.g. its
    /// auth timeout for a connection that sent no CONNECT).
    fn take_primed(&self) -> Option<(ScionAddr, Link)> {
        let p = lock(&self.primed).take()?;
        if p.1 .0.close_reason().is_some() {
            return None;
        }
        Some(p)
    }
}

async fn accept_loop(listener: TcpListener, ep: Arc<ScionEndpoint>, ups: Arc<Upstreams>) {
    // Accept errors (out of file descriptors, say) come in bursts: one warning per second at
    // most, with how many there were, and a growing pause (as nats-server's AcceptLoop
    // backs off on temporary errors).
    let mut pause = Duration::from_millis(10);
    let mut last_warn: Option<std::time::Instant> = None;
    let mut unreported = 0u64;
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                pause = Duration::from_millis(10);
                let _ = tcp.set_nodelay(true);
                tokio::spawn(carry(tcp, peer, ep.clone(), ups.clone()));
            }
            Err(e) => {
                unreported += 1;
                if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    warn!(
                        "proxy accept error: {} ({} since the last report)",
                        e, unreported
                    );
                    last_warn = Some(std::time::Instant::now());
                    unreported = 0;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Whether the TCP client closed its connection (or it broke): a read would return at once
/// with nothing. Bytes it may have sent stay queued (this only peeks).
fn client_left(tcp: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut b);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(
        tcp.poll_peek(&mut cx, &mut buf),
        std::task::Poll::Ready(Ok(0) | Err(_))
    )
}

async fn carry(tcp: TcpStream, peer: SocketAddr, ep: Arc<ScionEndpoint>, ups: Arc<Upstreams>) {
    let mut linked = ups.take_primed();
    let mut last_err = None;
    if linked.is_none() {
        for up in ups.candidates() {
            // A NATS client waits for INFO before it sends anything, so a client that can be
            // read from now has hung up (its connect timeout, usually 2 s, ran out): the
            // next candidate would only hand the broker a connection that ends at once.
            if last_err.is_some() && client_left(&tcp) {
                debug!(
                    "proxy: {}: the client left while upstreams were tried",
                    peer
                );
                return;
            }
            match open_link(&ep, up, &ups.server_name).await {
                Ok(x) => {
                    ups.note_result(up, true);
                    linked = Some((up, x));
                    break;
                }
                Err(e) => {
                    // The error starts with the upstream's address.
                    warn!("proxy: {} -> {}", peer, e);
                    ups.note_result(up, false);
                    last_err = Some(e);
                }
            }
        }
    }
    let Some((up, (conn, send, recv))) = linked else {
        let why = last_err.map(|e| e.to_string()).unwrap_or_default();
        error!("proxy: {}: no upstream reachable: {}", peer, why);
        return;
    };
    debug!("proxy: {} -> {} linked", peer, up);
    // The upstream's paths are probed while this link lives.
    let _hold = ep.hold(up);
    let (mut tcp_rd, tcp_wr) = tcp.into_split();
    let mut send = send;
    let up_dir = async {
        let r = tokio::io::copy(&mut tcp_rd, &mut send).await;
        let _ = send.finish();
        r.map(|_| ())
    };
    let down_dir = relay_server_to_client(recv, tcp_wr, &ups);
    tokio::pin!(up_dir, down_dir);
    let (r, broker_ended) = tokio::select! {
        // The broker ended the stream: nothing more to carry either way (as when a NATS
        // server closes a TCP connection).
        r = &mut down_dir => (r, true),
        // The client is done sending. Its last bytes are in flight, and closing the QUIC
        // connection now would let the broker drop them (quinn: close discards unsent and
        // unacknowledged data), so keep relaying until the broker, having read our end of
        // stream, closes its side (it answers a client's EOF by closing), or a bound passes.
        r = &mut up_dir => match tokio::time::timeout(CLOSE_GRACE, &mut down_dir).await {
            Ok(d) => (r.and(d), false),
            Err(_) => (r, false),
        },
    };
    // The broker ended the stream: its CONNECTION_CLOSE, sent right after, says whether it
    // is shutting down (briefly awaited; both left together).
    if broker_ended && conn.close_reason().is_none() && matches!(r, Ok(())) {
        let _ = tokio::time::timeout(SHUTDOWN_CLOSE_WAIT, conn.closed()).await;
    }
    // A link that timed out or was reset means the broker is gone (or every path to it):
    // say so, and try the others first for the next clients; so does a broker that closed
    // it because it is shutting down (its listener is gone: a new link would wait out the
    // handshake bound, longer than a NATS client's connect timeout).
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(c))
            if c.error_code == crate::server::scion::CLIENT_LINK_SHUTDOWN.into() =>
        {
            info!(
                "proxy: {} -> {}: broker shutting down; other upstreams are tried first",
                peer, up
            );
            ups.note_result(up, false);
        }
        Some(
            e @ (quinn::ConnectionError::TimedOut
            | quinn::ConnectionError::Reset
            | quinn::ConnectionError::TransportError(_)),
        ) => {
            warn!("proxy: {} -> {}: link lost: {}", peer, up, e);
            ups.note_result(up, false);
        }
        _ => debug!("proxy: {} closed: {:?}", peer, r),
    }
    conn.close(0u32.into(), b"client closed");
}

/// Copies the server's protocol to the TCP client. INFO lines pass through
/// byte for byte, except that SCION client listeners in `connect_urls` are
/// learned as fail-over upstreams and removed, because the TCP client could
/// not dial them (and NATS libraries reject URLs they cannot parse).
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

/// Byte range of a top-level member (`"key": value`) of a JSON object, and
/// of its value. Only what INFO needs: the object must be well formed
/// (checked by serde_json before this is called).
fn find_member(obj: &[u8], key: &str) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut i = obj.iter().position(|&b| b == b'{')? + 1;
    let skip_ws = |i: &mut usize| {
        while *i < obj.len() && obj[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    // End (exclusive) of the string starting at `i` (a quote).
    let string_end = |mut i: usize| -> Option<usize> {
        i += 1;
        while i < obj.len() {
            match obj[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    };
    loop {
        skip_ws(&mut i);
        if obj.get(i) != Some(&b'"') {
            return None;
        }
        let member_start = i;
        let key_end = string_end(i)?;
        let k: String = serde_json::from_slice(&obj[i..key_end]).ok()?;
        i = key_end;
        skip_ws(&mut i);
        if obj.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        skip_ws(&mut i);
        let value_start = i;
        let mut depth = 0usize;
        while i < obj.len() {
            match obj[i] {
                b'"' => {
                    i = string_end(i)?;
                    continue;
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth > 0 => depth -= 1,
                b',' | b'}' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        let mut value_end = i;
        while value_end > value_start && obj[value_end - 1].is_ascii_whitespace() {
            value_end -= 1;
        }
        if k == key {
            return Some((member_start..value_end, value_start..value_end));
        }
        if obj.get(i) != Some(&b',') {
            return None;
        }
        i += 1;
    }
}

/// Returns the INFO line to send to the TCP client: the original bytes
/// unless `connect_urls` lists SCION addresses. Then only that member is
/// edited in place, so the other keys keep nats-server's order (server.go
/// Info struct field order) and spelling; an emptied list is dropped, as
/// nats-server's `connect_urls,omitempty` does.
fn rewrite_info(line: &[u8], learn: &mut impl FnMut(&[ScionAddr])) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Urls {
        connect_urls: Option<Vec<String>>,
    }
    let body = &line[5..];
    let Ok(parsed) = serde_json::from_slice::<Urls>(body.trim_ascii()) else {
        return line.to_vec();
    };
    let Some(urls) = parsed.connect_urls else {
        return line.to_vec();
    };
    let (scion, tcp): (Vec<_>, Vec<_>) = urls
        .into_iter()
        .map(|u| (u.parse::<ScionAddr>().ok(), u))
        .partition(|(a, _)| a.is_some());
    let scion: Vec<ScionAddr> = scion.into_iter().filter_map(|(a, _)| a).collect();
    // The list is the cluster's whole current set: one without SCION listeners empties
    // what was learned (their servers left).
    learn(&scion);
    if scion.is_empty() {
        return line.to_vec();
    }
    let Some((member, value)) = find_member(body, "connect_urls") else {
        return line.to_vec();
    };
    let tcp: Vec<String> = tcp.into_iter().map(|(_, u)| u).collect();
    let mut out = line[..5].to_vec();
    if tcp.is_empty() {
        // Drop the member and one adjacent comma.
        let mut start = member.start;
        let mut end = member.end;
        let after = body[end..].iter().position(|b| !b.is_ascii_whitespace());
        if let Some(p) = after.filter(|p| body[end + p] == b',') {
            end += p + 1;
        } else if let Some(p) = body[..start].iter().rposition(|&b| b == b',') {
            if body[p + 1..start].iter().all(u8::is_ascii_whitespace) {
                start = p;
            }
        }
        out.extend_from_slice(&body[..start]);
        out.extend_from_slice(&body[end..]);
    } else {
        out.extend_from_slice(&body[..value.start]);
        let Ok(list) = serde_json::to_vec(&tcp) else {
            return line.to_vec();
        };
        out.extend_from_slice(&list);
        out.extend_from_slice(&body[value.end..]);
    }
    out
}

/// Runs `broker proxy ARGS` until interrupted.
pub fn run_cli(args: &[String]) -> std::process::ExitCode {
    let args = match parse_args(args) {
        Ok(c) => c,
        Err(ProxyError::Help) => {
            print!("{PROXY_USAGE}");
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let logging = crate::logging::init(&crate::logging::LogConfig {
        logtime: true,
        debug: args.debug,
        trace: args.trace,
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
        let started = match args.into_config().await {
            Ok((cfg, tls)) => start_with_tls(cfg, &tls).await,
            Err(e) => Err(e),
        };
        let proxy = match started {
            Ok(p) => p,
            Err(e) => {
                // Once, on stderr: through the log if it is up.
                if logging.is_ok() {
                    error!("{}", e);
                } else {
                    eprintln!("{e}");
                }
                return std::process::ExitCode::FAILURE;
            }
        };
        // Path problems (daemon, policy, MTU) show at start, not only with the first client;
        // no link to the broker is opened (one without CONNECT would time out there).
        for up in proxy.upstreams.configured.clone() {
            match proxy.endpoint.load_paths(up).await {
                Ok(0) => {}
                Ok(n) => info!("proxy: {} usable SCION path(s) to {}", n, up),
                Err(e) => warn!(
                    "proxy: {}: {}; clients are linked once a path to it works",
                    up, e
                ),
            }
        }
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
        assert!(
            text.starts_with(
                "INFO {\"server_id\":\"x\",\"connect_urls\":[\"127.0.0.1:4222\"]} \r\nMSG a 1 17\r\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("MSG a 1 17\r\nINFO {\"fake\":1}\r\n\r\nPING\r\n"),
            "{text}"
        );
        assert_eq!(learned.len(), 1);
        assert_eq!(learned[0].port, 31000);
    }

    fn info_out(line: &str) -> (String, Vec<ScionAddr>) {
        let mut learned = Vec::new();
        let out = rewrite_info(line.as_bytes(), &mut |u: &[ScionAddr]| {
            learned.extend_from_slice(u)
        });
        (String::from_utf8(out).unwrap(), learned)
    }

    #[test]
    fn info_passes_through_byte_for_byte() {
        // Key order of nats-server 2.9 (server.go Info), odd spacing, unicode
        // escapes: nothing to change, so nothing changes.
        for line in [
            "INFO {\"server_id\":\"NB\",\"server_name\":\"n\\u00e9\",\"version\":\"2.9.10\",\"proto\":1,\"host\":\"0.0.0.0\",\"port\":4222,\"headers\":true,\"max_payload\":1048576,\"client_id\":5,\"client_ip\":\"127.0.0.1\",\"connect_urls\":[\"10.0.0.1:4222\"]} \r\n",
            "INFO { \"z\" : 1 , \"a\" : [ ] }\r\n",
            "INFO not json\r\n",
        ] {
            assert_eq!(info_out(line), (line.to_string(), vec![]));
        }
    }

    /// An INFO whose connect_urls has no SCION listener empties what was learned.
    #[test]
    fn info_without_scion_urls_clears_the_learned_set() {
        let mut calls: Vec<Vec<ScionAddr>> = Vec::new();
        let line = b"INFO {\"connect_urls\":[\"10.0.0.1:4222\"]} \r\n";
        let out = rewrite_info(line, &mut |u: &[ScionAddr]| calls.push(u.to_vec()));
        assert_eq!(out, line.to_vec());
        assert_eq!(calls, vec![Vec::<ScionAddr>::new()]);
        // No connect_urls at all: not about the cluster's listeners, nothing learned.
        calls.clear();
        let _ = rewrite_info(b"INFO {\"x\":1}\r\n", &mut |u: &[ScionAddr]| {
            calls.push(u.to_vec())
        });
        assert!(calls.is_empty());
    }

    #[test]
    fn info_rewrite_keeps_key_order() {
        let (out, learned) = info_out(
            "INFO {\"server_id\":\"NB\",\"version\":\"2.9.10\",\"connect_urls\":[\"[1-ff00:0:111,127.0.0.1]:31000\",\"10.0.0.1:4222\"],\"client_id\":7} \r\n",
        );
        assert_eq!(
            out,
            "INFO {\"server_id\":\"NB\",\"version\":\"2.9.10\",\"connect_urls\":[\"10.0.0.1:4222\"],\"client_id\":7} \r\n"
        );
        assert_eq!(learned.len(), 1);
        // Only SCION URLs: the member goes, with its comma, wherever it is.
        let (out, _) = info_out(
            "INFO {\"server_id\":\"NB\",\"connect_urls\":[\"[1-ff00:0:111,127.0.0.1]:31000\"],\"client_id\":7} \r\n",
        );
        assert_eq!(out, "INFO {\"server_id\":\"NB\",\"client_id\":7} \r\n");
        let (out, _) = info_out(
            "INFO {\"server_id\":\"NB\",\"connect_urls\":[\"[1-ff00:0:111,127.0.0.1]:31000\"]} \r\n",
        );
        assert_eq!(out, "INFO {\"server_id\":\"NB\"} \r\n");
        let (out, _) = info_out(
            "INFO {\"connect_urls\":[\"[1-ff00:0:111,127.0.0.1]:31000\"], \"x\":\"a,}\\\"b\"}\r\n",
        );
        assert_eq!(out, "INFO { \"x\":\"a,}\\\"b\"}\r\n");
        let v: serde_json::Value = serde_json::from_str(&out[5..]).unwrap();
        assert_eq!(v["x"], "a,}\"b");
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
        assert_eq!(c.upstreams.len(), 1);
        assert_eq!(c.upstreams[0].port, 31022);
        assert!(!c.debug && !c.trace);
        assert_eq!(c.local.map(|l| l.port), Some(0));
        assert!(c.tls.ca.is_none());
        // --local is optional; --ca and --server-name are taken.
        let c = parse_args(&s(&[
            "--listen",
            "127.0.0.1:4222",
            "--upstream",
            "[1-ff00:0:1,127.0.0.1]:5",
            "--ca",
            "/x/ca.pem",
            "--server-name=broker.example",
        ]))
        .unwrap();
        assert!(c.local.is_none());
        assert_eq!(c.tls.ca.as_deref(), Some(Path::new("/x/ca.pem")));
        assert_eq!(c.tls.server_name.as_deref(), Some("broker.example"));
        // Go bool flags take an inline value: -D=true, -DV=false.
        let base = [
            "--listen",
            "127.0.0.1:4222",
            "--upstream",
            "[1-ff00:0:1,127.0.0.1]:5",
        ];
        let with = |flags: &[&str]| {
            let mut a: Vec<&str> = base.to_vec();
            a.extend_from_slice(flags);
            parse_args(&s(&a)).map(|c| (c.debug, c.trace))
        };
        assert_eq!(with(&["-D=true"]).unwrap(), (true, false));
        // -DV wins over -D and -V wherever it stands (opts.go applies it last).
        assert_eq!(with(&["-DV", "-D=false"]).unwrap(), (true, true));
        assert_eq!(with(&["-D=false", "-V"]).unwrap(), (false, true));
        assert_eq!(with(&["-V=1", "-DV=F"]).unwrap(), (false, false));
        let e = with(&["-D=yes"]).unwrap_err().to_string();
        assert!(
            e.contains("invalid boolean value \"yes\" for -D: parse error"),
            "{e}"
        );
        let e = with(&["--server-name", "bad name"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--server-name \"bad name\": not a DNS name or an IP address"),
            "{e}"
        );
        assert!(matches!(parse_args(&s(&["--help"])), Err(ProxyError::Help)));
        assert!(matches!(parse_args(&s(&["-h"])), Err(ProxyError::Help)));
        assert!(parse_args(&s(&["--listen", "127.0.0.1:1"])).is_err());
        assert!(parse_args(&s(&["--bogus", "x"])).is_err());
        let e = parse_args(&s(&["--bogus"])).unwrap_err().to_string();
        assert!(e.contains("flag provided but not defined: -bogus"), "{e}");
        // --listen: a bare port is loopback; a name is resolved.
        let up = ["--upstream", "[1-ff00:0:1,127.0.0.1]:5"];
        let c = parse_args(&s(&["--listen", "4223", up[0], up[1]])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:4223".parse().unwrap());
        let c = parse_args(&s(&["--listen", "localhost:4224", up[0], up[1]])).unwrap();
        assert_eq!(c.listen.port(), 4224);
        assert!(c.listen.ip().is_loopback());
        let e = parse_args(&s(&[
            "--listen",
            "127.0.0.1:1",
            "--upstream",
            "[1-ff00:0:1,127.0.0.1]:5",
            "--path_preference",
            "latency,speed",
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("path_preference"), "{e}");
        // Several upstreams: repeated, or nats:// URLs listed with commas; -DV.
        let c = parse_args(&s(&[
            "-l",
            "127.0.0.1:1",
            "--upstream",
            "nats://1-ff00:0:1,127.0.0.1:5,nats://[1-ff00:0:2,127.0.0.1]:6",
            "--upstream",
            "1-ff00:0:3,127.0.0.1:7",
            "-DV",
        ]))
        .unwrap();
        let ports: Vec<u16> = c.upstreams.iter().map(|u| u.port).collect();
        assert_eq!(ports, vec![5, 6, 7]);
        assert!(c.debug && c.trace);
        // Upstreams that cannot work are refused, naming the value.
        for (bad, why) in [
            ("1-ff00:0:1,127.0.0.1", "port"),
            ("nats://[1-ff00:0:1,127.0.0.1]:0", "no port"),
            ("tls://[1-ff00:0:1,127.0.0.1]:5", "scheme \"tls\""),
            ("http://1-ff00:0:1,127.0.0.1:5", "scheme \"http\""),
            ("nats://u:p@[1-ff00:0:1,127.0.0.1]:5", "user info"),
            ("", "--upstream"),
        ] {
            let e = parse_args(&s(&["--listen", "127.0.0.1:1", "--upstream", bad]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn ca_errors_are_clear() {
        let missing = ProxyTls {
            ca: Some("/nonexistent/ca.pem".into()),
            server_name: None,
            ..Default::default()
        };
        let e = client_tls(&missing).unwrap_err().to_string();
        assert!(e.contains("--ca /nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("proxy-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("empty.pem");
        std::fs::write(&p, "not a pem\n").unwrap();
        let e = client_tls(&ProxyTls {
            ca: Some(p.clone()),
            server_name: None,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let (_, verified) = client_tls(&ProxyTls::default()).unwrap();
        assert!(!verified);
    }

    #[test]
    fn client_certificate_errors_name_cert_and_key_at_start() {
        let dir = std::env::temp_dir().join(format!("proxy-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["one".to_string()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["two".to_string()]).unwrap();
        let (cert, key) = (dir.join("one.pem"), dir.join("two-key.pem"));
        std::fs::write(&cert, one.cert.pem()).unwrap();
        std::fs::write(&key, two.signing_key.serialize_pem()).unwrap();
        // Another certificate's key, with and without --ca: refused at start, naming the flags.
        for ca in [None, Some(cert.clone())] {
            let e = client_tls(&ProxyTls {
                ca,
                cert: Some(cert.clone()),
                key: Some(key.clone()),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("proxy: --cert/--key: error parsing X509"),
                "{e}"
            );
        }
        let e = client_tls(&ProxyTls {
            cert: Some(cert.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--cert/--key"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failed_upstreams_are_tried_last_and_learning_replaces_the_set() {
        let a = |port| ScionAddr {
            ia: "1-ff00:0:111".parse().unwrap(),
            ip: IpAddr::from([127, 0, 0, 1]),
            port,
        };
        let ups = Upstreams {
            configured: vec![a(1)],
            server_name: SERVER_NAME.into(),
            learned: std::sync::Mutex::new(Vec::new()),
            primed: std::sync::Mutex::new(None),
            failed: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        ups.learn(&[a(2), a(3), a(1)]);
        assert_eq!(ups.candidates(), vec![a(1), a(2), a(3)]);
        // The configured broker died: the next client goes to a live one first.
        ups.note_result(a(1), false);
        assert_eq!(ups.candidates(), vec![a(2), a(3), a(1)]);
        ups.note_result(a(2), false);
        assert_eq!(ups.candidates(), vec![a(3), a(1), a(2)]);
        ups.note_result(a(1), true);
        assert_eq!(ups.candidates(), vec![a(1), a(3), a(2)]);
        // A later INFO lists the cluster as it is now: a(3) left.
        ups.learn(&[a(2)]);
        assert_eq!(ups.candidates(), vec![a(1), a(2)]);
        // Several configured (--upstream twice): in order, before the learned ones.
        let ups = Upstreams {
            configured: vec![a(5), a(4)],
            ..ups
        };
        ups.learn(&[a(4), a(6)]);
        assert_eq!(ups.candidates(), vec![a(5), a(4), a(6)]);
    }

    #[test]
    fn local_ip_defaults() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(default_local_ip(Some(lo), None), Ok(lo));
        assert_eq!(default_local_ip(None, Some(lo)), Ok(lo));
        assert!(default_local_ip(None, None).is_err());
        assert_eq!(daemon_host_ip("127.0.0.1:30255"), Some(lo));
        assert_eq!(daemon_host_ip("http://127.0.0.1:30255"), Some(lo));
    }
}
