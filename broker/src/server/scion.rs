//! Client and route links over QUIC/SCION (`scion-transport`).
//!
//! - A route is one QUIC connection with one bidirectional stream carrying the
//!   ordinary route protocol; the dialer opens the stream (its CONNECT+INFO
//!   announce it). Path selection and failover happen under the QUIC
//!   connection, on both ends, so the route survives path outages without
//!   reconnecting.
//! - A SCION client link is one QUIC connection per NATS connection; the
//!   server opens the stream so that it can speak first (INFO), exactly as on
//!   TCP. The `broker proxy` command ([`crate::proxy`]) and the Rust API
//!   ([`crate::scion_client`]) are the client side.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scion_transport::address::{IsdAsn, ScionAddr};
use scion_transport::path::{Acl, PathPolicy, PathPreference, SelectorConfig, Sequence};
use scion_transport::quic::{ConnectError, ScionEndpoint, TlsConfig, TransportConfig};
use scion_transport::socket::PathEvent;
use tracing::{debug, error, info, warn};

use super::route::{run_route_labeled, solicit_from_url, AfterClose, Solicit};
use super::{lock, ServerState, StartError};
use crate::options::{ListenAddr, Options, RouteTarget, RouteUrl, ScionOpts};

/// QUIC server name used for route and client links.
pub const SERVER_NAME: &str = "nats-scion";

/// The SCION endpoints of a server.
#[derive(Default)]
pub struct ScionLinks {
    pub route_endpoint: Option<Arc<ScionEndpoint>>,
    pub client_endpoint: Option<Arc<ScionEndpoint>>,
    /// Failover gaps per (link kind, peer) since start, for /metrics.
    pub failover_gaps: std::collections::HashMap<(&'static str, ScionAddr), GapHistogram>,
    /// The last path switch per (link kind, peer) since start, for /pathz and /metrics
    /// (at most [`MAX_GAP_PEERS`]; the oldest switch goes first).
    pub last_switch: std::collections::HashMap<(&'static str, ScionAddr), PathEvent>,
    /// SCION route dialers running, per remote address: an id and what each dials (its own
    /// lock: a dialer's end may come from a task dropped anywhere).
    pub route_dialers: Arc<Mutex<RouteDialers>>,
}

/// Most peers whose failover gaps are kept; beyond it the peer updated longest ago is
/// dropped (client links come from new ports each time).
const MAX_GAP_PEERS: usize = 1024;

/// Upper bounds (seconds) of the failover gap histogram's buckets: an SCMP-signalled
/// failover takes milliseconds, a silent blackhole a few hundred.
pub const GAP_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Prometheus histogram of failover gaps (cumulative counts per bucket, sum, count).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GapHistogram {
    /// Observations at or below each bound of [`GAP_BUCKETS`].
    pub buckets: [u64; GAP_BUCKETS.len()],
    pub sum: f64,
    pub count: u64,
    /// The last observation (the least recent peer is dropped first).
    pub last: Option<std::time::Instant>,
}

impl GapHistogram {
    pub fn observe(&mut self, gap: Duration) {
        let s = gap.as_secs_f64();
        for (b, bound) in self.buckets.iter_mut().zip(GAP_BUCKETS) {
            if s <= bound {
                *b += 1;
            }
        }
        self.sum += s;
        self.count += 1;
        self.last = Some(std::time::Instant::now());
    }
}

/// Errors building SCION link configuration; each names the config key.
#[derive(Debug, thiserror::Error)]
pub enum ScionConfigError {
    #[error("{key}: invalid ISD-AS {value:?}: {reason}")]
    IsdAs {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("scion.path_preference: {0}")]
    Preference(String),
    #[error("scion.policy: {0}")]
    Policy(String),
    #[error("{key}: {reason}")]
    Tls { key: &'static str, reason: String },
    #[error("{key}: {source}")]
    Bind {
        key: &'static str,
        source: scion_transport::quic::BindError,
    },
    #[error("cluster.routes: SCION route {0} needs a SCION cluster.listen address to dial from")]
    NoLocalScion(String),
}

/// Parses an ISD-AS written in a listen address.
pub fn parse_ia(key: &'static str, s: &str) -> Result<IsdAsn, ScionConfigError> {
    s.parse::<IsdAsn>().map_err(|e| ScionConfigError::IsdAs {
        key,
        value: s.to_string(),
        reason: e.to_string(),
    })
}

fn selector_config(scion: Option<&ScionOpts>) -> Result<SelectorConfig, ScionConfigError> {
    let mut c = SelectorConfig::default();
    let Some(s) = scion else {
        return Ok(c);
    };
    c.preference = s
        .path_preference
        .join(",")
        .parse::<PathPreference>()
        .map_err(|e| ScionConfigError::Preference(e.to_string()))?;
    let acl = if s.policy_acl.is_empty() {
        None
    } else {
        Some(
            Acl::from_entries(&s.policy_acl)
                .map_err(|e| ScionConfigError::Policy(e.to_string()))?,
        )
    };
    let sequence = match &s.policy_sequence {
        Some(q) => Some(
            q.parse::<Sequence>()
                .map_err(|e| ScionConfigError::Policy(e.to_string()))?,
        ),
        None => None,
    };
    c.policy = PathPolicy::new(acl, sequence);
    if let Some(p) = s.probe_interval {
        c.active_probe_interval = p;
    }
    if let Some(r) = s.redundancy {
        c.redundancy = r.max(1) as usize;
    }
    Ok(c)
}

fn tls_for(opts: &Options, for_routes: bool) -> Result<(TlsConfig, bool), ScionConfigError> {
    if for_routes {
        if let Some(t) = &opts.cluster.tls {
            if let (Some(cert), Some(key), Some(ca)) = (&t.cert_file, &t.key_file, &t.ca_file) {
                let mut tls = TlsConfig::from_pem_files(cert, key, ca).map_err(|e| {
                    ScionConfigError::Tls {
                        key: "cluster.tls",
                        reason: e.to_string(),
                    }
                })?;
                // Both ends of a route verify each other, as nats-server forces for
                // cluster TLS (server/opts.go getTLSConfig: RequireAndVerifyClientCert, the
                // CA used for both directions).
                tls.mutual = true;
                return Ok((tls, true));
            }
            return Err(ScionConfigError::Tls {
                key: "cluster.tls",
                reason: "cert_file, key_file and ca_file are all needed for SCION route links"
                    .into(),
            });
        }
    }
    if !for_routes {
        if let Some(t) = opts.scion.as_ref().and_then(|s| s.tls.as_ref()) {
            // The parser admits `scion.tls` only with both files, and `verify` only with
            // `ca_file`.
            if let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) {
                let mut tls = match (&t.ca_file, t.verify) {
                    (Some(ca), true) => TlsConfig::from_pem_files(cert, key, ca),
                    _ => TlsConfig::from_pem_cert_key(cert, key),
                }
                .map_err(|e| ScionConfigError::Tls {
                    key: "scion.tls",
                    reason: e.to_string(),
                })?;
                // nats-server `tls { verify: true }`: clients must present a certificate
                // from ca_file (tls.RequireAndVerifyClientCert).
                tls.mutual = t.verify;
                return Ok((tls, true));
            }
        }
    }
    let mut tls = TlsConfig::self_signed(&[SERVER_NAME]).map_err(|e| ScionConfigError::Tls {
        key: if for_routes {
            "cluster.listen"
        } else {
            "listen"
        },
        reason: e.to_string(),
    })?;
    tls.skip_server_verification = true;
    Ok((tls, false))
}

fn transport_config(
    opts: &Options,
    local: ScionAddr,
    for_routes: bool,
    key: &str,
) -> Result<(TransportConfig, bool), ScionConfigError> {
    let (tls, verified) = tls_for(opts, for_routes)?;
    let mut cfg = TransportConfig::new(local, tls);
    // The QUIC reset keys come from the link's private key when there is one (secret and
    // stable), else from the machine id (see `scion_transport::quic::endpoint_keys`).
    let key_file = if for_routes {
        opts.cluster.tls.as_ref().and_then(|t| t.key_file.clone())
    } else {
        opts.scion
            .as_ref()
            .and_then(|s| s.tls.as_ref())
            .and_then(|t| t.key_file.clone())
    };
    cfg.reset_secret = key_file.and_then(|f| std::fs::read(f).ok());
    cfg.origin = Some(key.to_string());
    cfg.daemon = opts.scion.as_ref().and_then(|s| s.daemon.clone());
    cfg.topology = opts.scion.as_ref().and_then(|s| s.topology.clone());
    cfg.selector = selector_config(opts.scion.as_ref())?;
    if let Some(w) = opts.scion.as_ref().and_then(|s| s.flow_window) {
        cfg.flow_window = w;
    }
    // Routes keep their own PING/PONG; keep QUIC alive well below its idle
    // timeout so a quiet route is not torn down. Client links carry one client each:
    // a broker or proxy that died is noticed within CLIENT_LINK_IDLE, as a TCP client
    // of a dead nats-server gets its reset at once (the peer's idle bound is the
    // same, QUIC takes the smaller of the two).
    if for_routes {
        cfg.keep_alive = Duration::from_secs(2);
        cfg.idle_timeout = Duration::from_secs(30);
    } else {
        cfg.keep_alive = crate::proxy::CLIENT_LINK_KEEP_ALIVE;
        cfg.idle_timeout = crate::proxy::CLIENT_LINK_IDLE;
    }
    Ok((cfg, verified))
}

pub(crate) fn scion_addr(
    key: &'static str,
    isd_as: &str,
    ip: std::net::IpAddr,
    port: u16,
) -> Result<ScionAddr, ScionConfigError> {
    Ok(ScionAddr {
        ia: parse_ia(key, isd_as)?,
        ip,
        port,
    })
}

/// Checks a SCION route a reload adds: its ISD-AS parses and this server has a SCION route
/// endpoint (a SCION `cluster.listen`, bound at start) to dial it from.
pub fn check_added_route(srv: &ServerState, r: &RouteUrl) -> Result<(), String> {
    let RouteTarget::Scion { isd_as, ip, port } = r.target.clone() else {
        return Ok(());
    };
    scion_addr("cluster.routes", &isd_as, ip, port).map_err(|e| e.to_string())?;
    if lock(&srv.scion).route_endpoint.is_none() {
        return Err(ScionConfigError::NoLocalScion(r.url.clone()).to_string());
    }
    Ok(())
}

/// Dials a SCION route a reload added (checked by `check_added_route`).
pub fn dial_added_route(srv: &Arc<ServerState>, r: &RouteUrl) {
    dial_route_url(srv, r, solicit_from_url(r, true));
}

/// Dials the SCION route `r` from our SCION route endpoint as `s` says: a configured route
/// until it connects, an implicit (gossiped) one up to `cluster.connect_retries` extra times.
pub fn dial_route_url(srv: &Arc<ServerState>, r: &RouteUrl, s: Solicit) {
    let RouteTarget::Scion { isd_as, ip, port } = r.target.clone() else {
        return;
    };
    let Some(ep) = lock(&srv.scion).route_endpoint.clone() else {
        if s.configured {
            error!("{}", ScionConfigError::NoLocalScion(r.url.clone()));
        } else {
            debug!(
                "Not dialling gossiped SCION route {}: no SCION cluster.listen",
                r.url
            );
        }
        return;
    };
    let remote = match scion_addr("cluster.routes", &isd_as, ip, port) {
        Ok(a) => a,
        Err(e) => {
            error!("{}", e);
            return;
        }
    };
    spawn_dialer(srv, ep, remote, s);
}

/// The SCION route dialers running, per remote address.
pub type RouteDialers = std::collections::HashMap<ScionAddr, Vec<(u64, Solicit)>>;

/// Starts a dialer for the SCION route to `remote`. A gossiped (implicit) one is not started
/// while another gossiped dialer, or a configured one whose route is still in the
/// configuration, runs for that address: gossip about a server not yet routed comes with
/// every route INFO, and each would start one more dialer, which after losing the duplicate
/// race waits while the server is routed. (route.go ends such a dialer and re-dials through
/// the kept route's `retry`; here the running dialer does it.) A configured one (at start,
/// or added by a reload) always starts.
fn spawn_dialer(
    srv: &Arc<ServerState>,
    ep: Arc<ScionEndpoint>,
    remote: ScionAddr,
    s: Solicit,
) -> Option<tokio::task::JoinHandle<()>> {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dialers = lock(&srv.scion).route_dialers.clone();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    {
        let mut running = lock(&dialers);
        let here = running.entry(remote).or_default();
        let covered = here
            .iter()
            .any(|(_, d)| !d.configured || super::route::route_still_valid(srv, d));
        if covered && !s.configured {
            debug!(
                "Not dialling gossiped SCION route {}: a dialer for {} runs",
                s.url, remote
            );
            return None;
        }
        here.push((id, s.clone()));
    }
    let guard = Dialer {
        dialers,
        remote,
        id,
    };
    let srv = srv.clone();
    Some(tokio::spawn(async move {
        let _running = guard;
        dial_route(srv, ep, remote, s).await
    }))
}

/// Lists a running SCION route dialer while it lives.
struct Dialer {
    dialers: Arc<Mutex<RouteDialers>>,
    remote: ScionAddr,
    id: u64,
}

impl Drop for Dialer {
    fn drop(&mut self) {
        let mut running = lock(&self.dialers);
        if let Some(here) = running.get_mut(&self.remote) {
            here.retain(|(id, _)| *id != self.id);
            if here.is_empty() {
                running.remove(&self.remote);
            }
        }
    }
}

/// How many SCION route dialers for `remote` run now (monitoring and tests).
pub fn route_dialers(srv: &ServerState, remote: ScionAddr) -> usize {
    let dialers = lock(&srv.scion).route_dialers.clone();
    let n = lock(&dialers).get(&remote).map_or(0, Vec::len);
    n
}

/// Binds the SCION endpoints the options ask for and starts serving them.
pub async fn start(
    srv: &Arc<ServerState>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), StartError> {
    let opts = srv.opts();
    let err = |e: ScionConfigError| StartError::Scion(e.to_string());
    let mut links = ScionLinks::default();

    if let Some(ListenAddr::Scion { isd_as, ip, port }) = &opts.cluster.listen {
        let local = scion_addr("cluster.listen", isd_as, *ip, *port).map_err(err)?;
        let (cfg, verified) =
            transport_config(&opts, local, true, "cluster.listen").map_err(err)?;
        let ep = ScionEndpoint::bind(cfg).await.map_err(|source| {
            err(ScionConfigError::Bind {
                key: "cluster.listen",
                source,
            })
        })?;
        if !verified {
            warn!("SCION route links are encrypted (QUIC/TLS) but peers are not authenticated beyond the cluster authorization: set cluster.tls {{cert_file, key_file, ca_file}} to verify them");
        }
        info!(
            "Listening for route connections on {} (SCION)",
            ep.local_addr()
        );
        let ep = Arc::new(ep);
        // In place before the first route is accepted: its INFO (route_info) names this
        // endpoint's address for gossip.
        lock(&srv.scion).route_endpoint = Some(ep.clone());
        tasks.push(tokio::spawn(accept_routes(srv.clone(), ep.clone())));
        tasks.push(tokio::spawn(follow_path_events(
            srv.clone(),
            ep.clone(),
            "route",
        )));
        links.route_endpoint = Some(ep);
    }

    // Dial the SCION routes.
    for r in &opts.cluster.routes {
        if let RouteTarget::Scion { isd_as, ip, port } = &r.target {
            let Some(ep) = links.route_endpoint.clone() else {
                return Err(err(ScionConfigError::NoLocalScion(r.url.clone())));
            };
            let remote = scion_addr("cluster.routes", isd_as, *ip, *port).map_err(err)?;
            let s = solicit_from_url(r, true);
            tasks.extend(spawn_dialer(srv, ep, remote, s));
        }
    }
    lock(&srv.scion).route_endpoint = links.route_endpoint;
    Ok(())
}

/// Binds the SCION client listener (`listen` with a SCION address), if one is
/// configured. It runs with the TCP client listener, before "Server is ready" and
/// before any route: the route INFO and client INFO `connect_urls` name its address
/// from the start.
pub async fn start_client_listener(
    srv: &Arc<ServerState>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), StartError> {
    let opts = srv.opts();
    let err = |e: ScionConfigError| StartError::Scion(e.to_string());
    if let Some(ListenAddr::Scion { isd_as, ip, port }) = &opts.scion_listen {
        let local = scion_addr("listen", isd_as, *ip, *port).map_err(err)?;
        let (cfg, verified) = transport_config(&opts, local, false, "listen").map_err(err)?;
        let ep = ScionEndpoint::bind(cfg).await.map_err(|source| {
            err(ScionConfigError::Bind {
                key: "listen",
                source,
            })
        })?;
        if !verified {
            warn!("SCION client links are encrypted (QUIC/TLS) but clients cannot authenticate this server (self-signed certificate): set scion.tls {{cert_file, key_file}} and give clients the CA (broker proxy --ca)");
        }
        info!(
            "Listening for client connections on {} (SCION)",
            ep.local_addr()
        );
        let ep = Arc::new(ep);
        // Recorded whatever cluster.no_advertise says now: it is checked where the URLs
        // go out (route INFO, client INFO), and a reload may change it.
        lock(&srv.cluster.own_scion_urls).push(ep.local_addr().to_string());
        tasks.push(tokio::spawn(accept_clients(srv.clone(), ep.clone())));
        tasks.push(tokio::spawn(follow_path_events(
            srv.clone(),
            ep.clone(),
            "client",
        )));
        lock(&srv.scion).client_endpoint = Some(ep);
    }

    Ok(())
}

async fn follow_path_events(srv: Arc<ServerState>, ep: Arc<ScionEndpoint>, what: &'static str) {
    let mut rx = ep.path_events();
    loop {
        match rx.recv().await {
            // The transport logs each switch itself (one line, for the broker and the
            // proxy alike); here only the path header tag follows the switch.
            Ok(ev) => {
                {
                    let mut links = lock(&srv.scion);
                    let key = (what, ev.remote);
                    make_room(&mut links.last_switch, &key, |e| e.at);
                    links.last_switch.insert(key, ev.clone());
                    if let (true, Some(gap)) = (ev.cause.is_failure(), ev.gap) {
                        make_room(&mut links.failover_gaps, &key, |h| h.last);
                        links.failover_gaps.entry(key).or_default().observe(gap);
                    }
                }
                if srv.opts().scion.as_ref().is_some_and(|s| s.path_header) {
                    let tag: Arc<str> = ev.to.short().to_string().into();
                    for r in srv.cluster.routes() {
                        let is_peer = lock(&r.meta)
                            .scion
                            .as_ref()
                            .is_some_and(|p| p.remote == ev.remote);
                        if is_peer {
                            *lock(&r.shared.path_tag) = Some(tag.clone());
                        }
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Missed switches: read every route's active path instead.
                debug!(
                    "SCION {} path events: {} missed; re-reading path tags",
                    what, n
                );
                for r in srv.cluster.routes() {
                    let peer = lock(&r.meta).scion.clone();
                    super::route::refresh_path_tag(&srv, &r.shared, peer.as_ref());
                }
            }
            Err(_) => return,
        }
    }
}

/// Before `key` is added to a per-peer map: when the map holds [`MAX_GAP_PEERS`] peers and
/// not `key`, the peer updated longest ago (by `age`) is dropped.
fn make_room<V, T: Ord>(
    map: &mut std::collections::HashMap<(&'static str, ScionAddr), V>,
    key: &(&'static str, ScionAddr),
    age: impl Fn(&V) -> T,
) {
    if map.len() >= MAX_GAP_PEERS && !map.contains_key(key) {
        let oldest = map.iter().min_by_key(|(_, v)| age(v)).map(|(k, _)| *k);
        if let Some(k) = oldest {
            map.remove(&k);
        }
    }
}

/// Waits until no route to server `id` is registered; false if the server shuts down first.
async fn wait_while_routed(srv: &ServerState, id: &str) -> bool {
    while srv.cluster.has_remote(id) {
        let jitter = Duration::from_millis(rand::random_range(0..100));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250) + jitter) => {}
            _ = srv.shutdown.notified() => return false,
        }
        if srv.shutting_down.load(Ordering::Acquire) {
            return false;
        }
    }
    true
}

/// Bound on a SCION route's QUIC/TLS handshake: `cluster.tls.timeout` (nats-server's TLS
/// handshake timeout for routes; 0 means the default, as there), else 5 s (a first dial also
/// waits for the daemon's paths).
fn route_handshake_timeout(srv: &ServerState) -> Duration {
    srv.opts()
        .cluster
        .tls
        .as_ref()
        .and_then(|t| t.timeout)
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(5))
}

/// A SocketAddr standing for a SCION peer in places that need one.
fn host_sockaddr(a: &ScionAddr) -> SocketAddr {
    SocketAddr::new(a.ip, a.port)
}

async fn accept_routes(srv: Arc<ServerState>, ep: Arc<ScionEndpoint>) {
    loop {
        let incoming = tokio::select! {
            i = ep.accept() => i,
            _ = srv.shutdown.notified() => return,
        };
        let Some(incoming) = incoming else { return };
        let srv = srv.clone();
        let ep = ep.clone();
        tokio::spawn(async move {
            let peer = incoming.remote();
            let conn = match tokio::time::timeout(route_handshake_timeout(&srv), incoming).await {
                Err(_) => {
                    debug!("SCION route handshake timed out");
                    return;
                }
                Ok(Ok(c)) => c,
                // A refused certificate is an operator's matter (nats-server client.go
                // doTLSHandshake logs "TLS route handshake error" at error level).
                Ok(Err(e)) if scion_transport::quic::is_tls_failure(&e) => {
                    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
                    error!("{} - TLS route handshake error: {}", peer, e);
                    return;
                }
                Ok(Err(e)) => {
                    debug!("SCION route handshake failed: {}", e);
                    return;
                }
            };
            let Some(remote) = ep.remote_of(&conn) else {
                return;
            };
            // Its paths are probed while the link lives, and no longer once it closed.
            let _hold = ep.hold(remote);
            // One stream per route; accept it with a bound so a silent
            // peer does not hold the connection.
            let stream = tokio::time::timeout(Duration::from_secs(10), conn.accept_bi()).await;
            let Ok(Ok((send, recv))) = stream else {
                debug!("SCION route from {} opened no stream", remote);
                conn.close(0u32.into(), b"no stream");
                return;
            };
            let ending = RouteEnding::new(&send);
            let io = tokio::io::join(ending.watch(recv), send);
            let (_, reason) = run_route_labeled(
                srv.clone(),
                io,
                host_sockaddr(&remote),
                None,
                Some(ScionPeer {
                    remote,
                    endpoint: ep.clone(),
                }),
            )
            .await;
            ending.close(&srv, &conn, reason).await;
        });
    }
}

/// How long a SCION route that ended first waits, once its writer is done, for the peer to
/// have read its last bytes.
const ROUTE_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The end of a SCION route's QUIC connection. quinn's close discards stream data the peer
/// has not read yet (a final `-ERR`, the messages queued before a route was removed), where
/// a TCP route's close flushes them first (client.go flushAndClose). So the end that ends
/// first finishes its stream, keeps reading (and discarding) the peer's from the moment its
/// reader stops, and closes once the peer has closed, finished its own stream or stopped
/// ours; the peer ends its route when it reads our end, and closes at once. Two ends that
/// end together both read the other's end, so neither waits out the grace. Stopping the
/// read instead would make quinn send STOP_SENDING, and the peer's next write would fail
/// before it had read everything.
struct RouteEnding {
    /// Resolves once our stream is acknowledged in full (or reset and acknowledged),
    /// stopped by the peer, or lost.
    stopped: Stopped,
    peer: Arc<Mutex<PeerSide>>,
}

/// `quinn::SendStream::stopped`, kept after the stream itself went to the route's writer.
type Stopped = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Option<quinn::VarInt>, quinn::StoppedError>> + Send,
    >,
>;

/// What the route's reader left behind.
#[derive(Default)]
struct PeerSide {
    /// The peer's stream reached its end or failed while the route read it.
    ended: bool,
    /// Reads the rest of the peer's stream after the route's reader stopped; ends at the
    /// peer's end of stream or on an error.
    drain: Option<tokio::task::JoinHandle<()>>,
}

impl RouteEnding {
    fn new(send: &quinn::SendStream) -> Self {
        RouteEnding {
            stopped: Box::pin(send.stopped()),
            peer: Arc::default(),
        }
    }

    /// `recv` for the route's reader, noting when the peer's stream ends.
    fn watch(&self, recv: quinn::RecvStream) -> PeerEnd {
        PeerEnd {
            inner: Some(recv),
            side: self.peer.clone(),
        }
    }

    /// Closes `conn` once the route has ended (`reason`, its stream finished): at once when
    /// the peer ended first, the server is shutting down, or the route was cut because the
    /// peer does not read (nats-server closes those without a flush); else when
    /// the peer has closed, finished its stream or stopped ours, within
    /// [`ROUTE_CLOSE_GRACE`].
    async fn close(
        self,
        srv: &ServerState,
        conn: &quinn::Connection,
        reason: super::closed::ClosedState,
    ) {
        use super::closed::ClosedState as C;
        let (ended, drain) = {
            let mut side = lock(&self.peer);
            (side.ended, side.drain.take())
        };
        // client.go markConnAsClosed skips the flush for these (a stale route's
        // `-ERR 'Stale Connection'` is flushed there, so it waits here too).
        let cut = matches!(
            reason,
            C::SlowConsumerPendingBytes | C::SlowConsumerWriteDeadline | C::WriteError
        );
        if !ended && !cut && !srv.shutting_down.load(Ordering::Acquire) {
            let stopped = async {
                // Acknowledged is not read: the peer's close or end tells that.
                if let Ok(None) = self.stopped.await {
                    std::future::pending::<()>().await;
                }
            };
            let drained = async {
                match drain {
                    Some(task) => {
                        let _ = task.await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let _ = tokio::time::timeout(ROUTE_CLOSE_GRACE, async {
                tokio::select! {
                    _ = conn.closed() => {}
                    _ = stopped => {}
                    _ = drained => {}
                }
            })
            .await;
        }
        conn.close(0u32.into(), b"route closed");
    }
}

/// A route's receive stream that notes its end (EOF or error) and, when the route's reader
/// drops it before that, keeps reading it in a task of its own instead of stopping it.
struct PeerEnd {
    inner: Option<quinn::RecvStream>,
    side: Arc<Mutex<PeerSide>>,
}

impl Drop for PeerEnd {
    fn drop(&mut self) {
        let Some(mut recv) = self.inner.take() else {
            return;
        };
        let mut side = lock(&self.side);
        if side.ended {
            return;
        }
        // Outside a runtime (nothing here drops it there) the stream is simply stopped.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            side.drain = Some(rt.spawn(async move {
                // Bounded by the connection: its close ends the read.
                while let Ok(Some(_)) = recv.read_chunk(64 * 1024, true).await {}
            }));
        }
    }
}

impl tokio::io::AsyncRead for PeerEnd {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let Some(inner) = me.inner.as_mut() else {
            return std::task::Poll::Ready(Ok(()));
        };
        let before = buf.filled().len();
        let r = std::pin::Pin::new(inner).poll_read(cx, buf);
        let end = match &r {
            std::task::Poll::Ready(Ok(())) => buf.filled().len() == before && buf.remaining() > 0,
            std::task::Poll::Ready(Err(_)) => true,
            std::task::Poll::Pending => false,
        };
        if end {
            lock(&me.side).ended = true;
        }
        r
    }
}

/// A route's SCION side, for logs and monitoring.
#[derive(Clone)]
pub struct ScionPeer {
    pub remote: ScionAddr,
    pub endpoint: Arc<ScionEndpoint>,
}

impl std::fmt::Debug for ScionPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScionPeer({})", self.remote)
    }
}

/// Dials a SCION route with back-off and serves it: a configured one forever, an implicit one
/// with bounded attempts; neither again once the peer is reached through another route.
async fn dial_route(srv: Arc<ServerState>, ep: Arc<ScionEndpoint>, remote: ScionAddr, s: Solicit) {
    // As the TCP dialer (route.go): a failed dial is retried every second, and a route that
    // closed is re-dialled after 1 s more when configured (reConnectToRoute), so a peer
    // that refuses us after the handshake (cluster name, credentials, our name) is not
    // re-dialled several times a second, each time with a full QUIC/TLS handshake.
    let mut delay = super::route::ROUTE_CONNECT_DELAY;
    let mut attempts: u32 = 0;
    // Until a connection is up, failures are a first connection's (route.go connectToRoute
    // `firstConnect`), reported more rarely.
    let mut first = true;
    loop {
        if srv.shutting_down.load(Ordering::Acquire) {
            return;
        }
        if s.configured && !super::route::route_still_valid(&srv, &s) {
            debug!(
                "Route {:?} was removed from the configuration; not dialling",
                s.url
            );
            return;
        }
        debug!("Trying to connect to route on {} (SCION)", remote);
        let conn = tokio::time::timeout(
            route_handshake_timeout(&srv),
            ep.connect(remote, SERVER_NAME),
        )
        .await;
        match conn {
            Ok(Ok(conn)) => {
                first = false;
                let hold = ep.hold(remote);
                let mut remote_id = String::new();
                let mut ending = None;
                match conn.open_bi().await {
                    Ok((send, recv)) => {
                        let end = RouteEnding::new(&send);
                        let io = tokio::io::join(end.watch(recv), send);
                        // Its own task, like an accepted route: shutdown aborts this
                        // dialing task, and a route future dropped mid-run left the
                        // server waiting its whole 5 s drain bound when the peer was
                        // gone; a live task ends at once on the shutdown close.
                        let route = tokio::spawn(run_route_labeled(
                            srv.clone(),
                            io,
                            host_sockaddr(&remote),
                            Some(s.clone()),
                            Some(ScionPeer {
                                remote,
                                endpoint: ep.clone(),
                            }),
                        ));
                        let (id, reason) = route
                            .await
                            .unwrap_or((String::new(), super::closed::ClosedState::ClientClosed));
                        remote_id = id;
                        ending = Some((end, reason));
                    }
                    // A refusal of our certificate is reported below.
                    Err(e) if scion_transport::quic::is_tls_failure(&e) => {}
                    Err(e) => error!("SCION route to {}: cannot open stream: {}", remote, e),
                }
                // In TLS 1.3 a dialer's handshake is complete before the acceptor has checked
                // our certificate, so a refusal ends the route instead of the connect: say why
                // and keep backing off rather than redialling at once.
                let refused = conn
                    .close_reason()
                    .filter(scion_transport::quic::is_tls_failure);
                match ending {
                    Some((end, reason)) => end.close(&srv, &conn, reason).await,
                    None => conn.close(0u32.into(), b"route closed"),
                }
                drop(hold);
                if let Some(e) = refused {
                    attempts += 1;
                    // Every time, as client.go doTLSHandshake does (no report rate).
                    error!("{} - TLS route handshake error: {}", remote, e);
                } else {
                    match super::route::after_close(&srv, &remote_id, &s.url) {
                        AfterClose::Stop => return,
                        // The route we still have may be the one the peer closes as *its*
                        // duplicate, so this URL is dialled again once the server is no
                        // longer routed (route.go addRoute marks the kept route `retry` for
                        // the same reason).
                        AfterClose::Duplicate => {
                            if !wait_while_routed(&srv, &remote_id).await {
                                return;
                            }
                        }
                        // A configured route until it connects, an implicit one with
                        // bounded attempts (client.go closeConnection `retryImplicit`).
                        AfterClose::Redial => {}
                    }
                    attempts = 0;
                    delay = if s.configured {
                        super::route::ROUTE_RECONNECT_DELAY
                    } else {
                        Duration::ZERO
                    };
                }
            }
            Ok(Err(ConnectError::Handshake { remote, source }))
                if scion_transport::quic::is_tls_failure(&source) =>
            {
                // We refused the acceptor's certificate (or it refused us early).
                attempts += 1;
                error!("{} - TLS route handshake error: {}", remote, source);
            }
            Ok(Err(e)) => {
                attempts += 1;
                let err = format!("dial scion {remote}: {e}");
                super::route::report_connect_err(&srv, first, attempts, &err);
            }
            Err(_) => {
                // Like the TCP dialer's "i/o timeout": path lookup and QUIC/TLS handshake
                // did not finish within route_handshake_timeout.
                attempts += 1;
                let err = format!("dial scion {remote}: i/o timeout");
                super::route::report_connect_err(&srv, first, attempts, &err);
            }
        }
        if !s.configured && attempts > 0 {
            // route.go connectToRoute: an implicit route gets connect_retries more tries.
            let retries = srv.opts().cluster.connect_retries;
            if retries == 0 || attempts > retries {
                return;
            }
        }
        let jitter = Duration::from_millis(rand::random_range(0..100));
        tokio::select! {
            _ = tokio::time::sleep(delay + jitter) => {}
            _ = srv.shutdown.notified() => return,
        }
        delay = super::route::ROUTE_CONNECT_DELAY;
    }
}

async fn accept_clients(srv: Arc<ServerState>, ep: Arc<ScionEndpoint>) {
    loop {
        let incoming = tokio::select! {
            i = ep.accept() => i,
            _ = srv.shutdown.notified() => return,
        };
        let Some(incoming) = incoming else { return };
        if srv.lame_duck.load(Ordering::Acquire) {
            incoming.refuse();
            continue;
        }
        let srv = srv.clone();
        let ep = ep.clone();
        tokio::spawn(async move {
            let peer = incoming.remote();
            let conn = match incoming.await {
                Ok(c) => c,
                // A refused client certificate (`scion.tls.verify`), logged like nats-server
                // client.go doTLSHandshake ("TLS handshake error") at error level.
                Err(e) if scion_transport::quic::is_tls_failure(&e) => {
                    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
                    error!("{} - TLS handshake error: {}", peer, e);
                    return;
                }
                Err(e) => {
                    debug!("SCION client handshake failed: {}", e);
                    return;
                }
            };
            let Some(remote) = ep.remote_of(&conn) else {
                return;
            };
            // Its paths are probed while the link lives, and no longer once it closed.
            let _hold = ep.hold(remote);
            let Ok((send, recv)) = conn.open_bi().await else {
                return;
            };
            let io = tokio::io::join(recv, send);
            super::client::run_labeled(
                srv.clone(),
                io,
                host_sockaddr(&remote),
                Some(remote.to_string()),
            )
            .await;
            // Our end of the stream is finished, but its last bytes (a final -ERR, the
            // replies to the client's last requests) may not be acknowledged yet, and quinn
            // drops them on close: let the client close first once it has read them, as a
            // TCP client reads to EOF (bounded; not when shutting down).
            // (Lame duck mode closes its clients one by one, with this grace; the links
            // left at shutdown are closed at once, and with a code of their own.)
            if srv.shutting_down.load(Ordering::Acquire) {
                // Told apart from any other close, so that a proxy tries the cluster's
                // other brokers first instead of handshaking with one that is leaving.
                conn.close(CLIENT_LINK_SHUTDOWN.into(), b"server shutdown");
                return;
            }
            let _ = tokio::time::timeout(CLIENT_CLOSE_GRACE, conn.closed()).await;
            conn.close(0u32.into(), b"closed");
        });
    }
}

/// QUIC application close code of the client links a broker closes because it is shutting
/// down (0 is every other close).
pub const CLIENT_LINK_SHUTDOWN: u32 = 1;

/// How long a finished SCION client link waits for the client to close it.
const CLIENT_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Shared slot in the server state.
pub type ScionSlot = Mutex<ScionLinks>;
