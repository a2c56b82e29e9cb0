//! Route connections: the cluster protocol of nats-server 2.9 (route proto 2):
//! CONNECT/INFO handshake, `RS+`/`RS-` interest, `RMSG`/`HMSG` messages,
//! PING/PONG keepalive, gossip of new servers (`server/route.go`).
//!
//! This file dials, accepts and runs routes; `read` has the read loop and
//! routed-message delivery, `handshake` the CONNECT/INFO exchange and gossip,
//! `interest` the remote subscriptions.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, info, warn};

use super::client::{writer_loop, ClientShared, SubRef};
use super::closed::ClosedState;
use super::cluster::{RouteHandle, RouteMeta};
use super::deliver::{Batch, MatchCache};
use super::io::SplitIo;
use super::{lock, ServerState};
use crate::options::{RouteTarget, RouteUrl};
use crate::proto::json::ServerInfo;
use crate::proto::ConnKind;

mod handshake;
mod interest;
mod ping;
mod read;

/// Route protocol version we speak (`RouteProtoV2`).
pub const ROUTE_PROTO: i32 = 2;
/// Dial timeout (`DEFAULT_ROUTE_DIAL`).
const ROUTE_DIAL: Duration = Duration::from_secs(1);
/// Delay between failed route dials (`DEFAULT_ROUTE_CONNECT`).
pub(crate) const ROUTE_CONNECT_DELAY: Duration = Duration::from_secs(1);
/// Extra wait before re-dialling a configured route that closed
/// (`DEFAULT_ROUTE_RECONNECT`, route.go reConnectToRoute): a peer that refuses
/// us (bad credentials, another cluster name) is not hammered.
pub(crate) const ROUTE_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// How a route came to be.
#[derive(Clone, Debug)]
pub struct Solicit {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub configured: bool,
}

/// server.go sendLDMToRoutes: one route INFO with `ldm: true` to every route, so the
/// peers drop our client URLs from what they tell their clients before we close.
pub fn send_ldm_to_routes(srv: &ServerState) {
    let mut info = route_info(srv);
    info.ldm = true;
    let line = info.to_line();
    // Registered routes only, as nats-server's s.routes: one still in its handshake
    // must get its CONNECT and INFO first.
    for r in srv.cluster.routes() {
        let _ = r.shared.out.send(&line);
    }
}

/// The INFO we send on routes.
pub fn route_info(srv: &ServerState) -> ServerInfo {
    let opts = srv.opts();
    let listen = *lock(&srv.cluster.listen_addr);
    let (host, port) = match listen {
        Some(a) => (a.ip().to_string(), a.port()),
        None => (String::new(), 0),
    };
    // Gossip needs a URL the other servers can dial. nats-server leaves `ip` empty unless
    // `cluster.advertise` is set and peers use the connection's address; a SCION route
    // endpoint's address cannot be read off a connection that way, so it is always given.
    let scion_url = lock(&srv.scion)
        .route_endpoint
        .as_ref()
        .map(|ep| format!("nats-route://{}/", ep.local_addr()));
    let (host, port, ip) = match &opts.cluster.advertise {
        Some(adv) => {
            // Checked when the options were loaded and at start (`check_advertise`).
            let (h, p) =
                crate::config::parse_host_port(adv, port).unwrap_or_else(|_| (adv.clone(), port));
            let ip = format!("nats-route://{}/", join_host_port(&h, p));
            (h, p, Some(ip))
        }
        None => (host, port, scion_url),
    };
    ServerInfo {
        server_id: srv.id.clone(),
        server_name: srv.name.clone(),
        version: super::VERSION.to_string(),
        proto: ROUTE_PROTO,
        // The compiler, as in the client INFO (nats-server: runtime.Version() in both).
        go: super::go_field(),
        host,
        port,
        headers: true,
        auth_required: opts.cluster.username.is_some(),
        // route.go startRouteAcceptLoop: cluster TLS verifies both ends.
        tls_required: opts.cluster.tls.is_some(),
        tls_verify: opts.cluster.tls.is_some(),
        max_payload: opts.max_payload as i64,
        ip,
        cluster: Some(srv.cluster.name()),
        cluster_dynamic: srv.cluster.dynamic_name.load(Ordering::Relaxed),
        connect_urls: if opts.cluster.no_advertise {
            Vec::new()
        } else {
            lock(&srv.cluster.own_urls).clone()
        },
        ws_connect_urls: if opts.cluster.no_advertise {
            Vec::new()
        } else {
            lock(&srv.cluster.own_ws_urls).clone()
        },
        lnoc: true,
        import: opts
            .cluster
            .permissions
            .as_ref()
            .and_then(|p| p.publish.as_ref())
            .map(subject_perm),
        export: opts
            .cluster
            .permissions
            .as_ref()
            .and_then(|p| p.subscribe.as_ref())
            .map(subject_perm),
        scion_connect_urls: if opts.cluster.no_advertise {
            Vec::new()
        } else {
            lock(&srv.cluster.own_scion_urls).clone()
        },
        ..Default::default()
    }
}

/// reload.go reloadClusterPermissions: the new import/export lists take effect; every
/// route gets our new INFO (so the peer re-sends interest we now export), RS+ for local
/// interest we now import and RS- for interest we no longer import, and the
/// subscriptions routes hold here on subjects we no longer export are dropped.
pub fn reload_cluster_permissions(srv: &ServerState, old: Option<&crate::options::Permissions>) {
    let new = srv.opts().cluster.permissions.clone();
    srv.cluster.set_permissions(new.as_ref());
    let old = old.map(super::auth::CompiledPerms::compile);
    let mut protos = Vec::new();
    for (subject, queue, n) in srv.cluster.interest_entries() {
        let then = super::cluster::imports(old.as_ref(), &subject);
        let now = srv.cluster.can_import(&subject);
        if now && !then {
            super::cluster::write_rs_plus(&mut protos, &subject, queue.as_deref(), n);
        } else if then && !now {
            super::cluster::write_rs_minus(&mut protos, &subject, queue.as_deref());
        }
    }
    let info = route_info(srv).to_line();
    for r in srv.cluster.routes() {
        let dropped: Vec<SubRef> = {
            let mut subs = lock(&r.shared.subs);
            let keys: Vec<Vec<u8>> = subs
                .iter()
                .filter(|(_, s)| !srv.cluster.can_export(&s.subject))
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter().filter_map(|k| subs.remove(&k)).collect()
        };
        if !dropped.is_empty() {
            let mut sl = srv.sublist.write().unwrap_or_else(|e| e.into_inner());
            for s in &dropped {
                let _ = sl.remove(&s.subject, s.queue.as_deref(), s);
            }
            srv.publish_generation(sl.generation());
        }
        let _ = r.shared.out.send(&info);
        if !protos.is_empty() {
            super::cluster::trace_route_protos(&r.shared.log_prefix(), &protos);
            let _ = r.shared.out.send(&protos);
        }
    }
}

/// A permission list as route INFO and /routez carry it.
pub(crate) fn subject_perm(
    p: &crate::options::SubjectPermission,
) -> crate::proto::json::SubjectPerm {
    crate::proto::json::SubjectPerm {
        allow: p.allow.clone(),
        deny: p.deny.clone(),
    }
}

/// Go's `net.JoinHostPort`.
pub(crate) fn join_host_port(h: &str, p: u16) -> String {
    if h.contains(':') {
        format!("[{h}]:{p}")
    } else {
        format!("{h}:{p}")
    }
}

/// Binds the TCP cluster listener (when routes listen on TCP) and starts
/// accepting and soliciting TCP routes. SCION routes are started by
/// `server::scion`.
pub async fn start_routing(
    srv: Arc<ServerState>,
    bind: Option<SocketAddr>,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    info!("Cluster name is {}", srv.cluster.name());
    if srv.cluster.dynamic_name.load(Ordering::Relaxed) {
        warn!("Cluster name was dynamically generated, consider setting one");
    }
    let mut tasks = Vec::new();
    if let Some(bind) = bind {
        let listener = TcpListener::bind(bind).await?;
        let local = listener.local_addr()?;
        *lock(&srv.cluster.listen_addr) = Some(local);
        info!(
            "Listening for route connections on {}",
            join_host_port(&bind.ip().to_string(), local.port())
        );
        tasks.push(tokio::spawn(accept_routes(srv.clone(), listener)));
    }
    let opts = srv.opts();
    for r in &opts.cluster.routes {
        if let RouteTarget::Tcp { .. } = &r.target {
            let s = solicit_from_url(r, true);
            tasks.push(tokio::spawn(connect_to_route(srv.clone(), s, true)));
        }
    }
    Ok(tasks)
}

/// A configured route is still wanted while the current `cluster.routes` has it, URL and
/// credentials alike (nats-server route.go `routeStillValid`): a reload that removes or
/// changes it stops the dialling and the reconnects for the old entry.
pub(crate) fn route_still_valid(srv: &ServerState, s: &Solicit) -> bool {
    srv.opts()
        .cluster
        .routes
        .iter()
        .any(|r| r.url == s.url && r.user == s.user && r.password == s.password)
}

/// Applies a reload's route changes (nats-server reload.go `routesOption.Apply`): routes we
/// dialled for a removed URL are closed ("Route Removed") and not re-dialled, added URLs are
/// dialled like configured routes (SCION ones from the SCION route endpoint). The new options
/// must already be in place.
pub fn apply_route_changes(srv: &Arc<ServerState>, removed: &[RouteUrl], added: &[RouteUrl]) {
    for r in removed {
        for h in srv.cluster.routes() {
            let dialled_for_it = {
                let m = lock(&h.meta);
                m.did_solicit && m.url.as_deref() == Some(r.url.as_str())
            };
            if dialled_for_it {
                h.shared.out.close(ClosedState::RouteRemoved);
                info!("Removed route {}", redact_url(&r.url));
            }
        }
    }
    // route.go solicitRoutes: a host name among the added routes is kept for TLS.
    srv.cluster.save_route_tls_name(added);
    for r in added {
        match &r.target {
            RouteTarget::Tcp { .. } => {
                let s = solicit_from_url(r, true);
                tokio::spawn(connect_to_route(srv.clone(), s, true));
            }
            RouteTarget::Scion { .. } => super::scion::dial_added_route(srv, r),
        }
    }
    info!("Reloaded: cluster routes");
}

pub(crate) fn solicit_from_url(r: &RouteUrl, configured: bool) -> Solicit {
    Solicit {
        url: r.url.clone(),
        user: r.user.clone(),
        password: r.password.clone(),
        configured,
    }
}

/// `nats-route://[user:pass@]host:port[/]` → (host:port, user, pass).
fn parse_route_url(url: &str) -> Option<(String, Option<String>, Option<String>)> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (user, pass) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
            None => (Some(u.to_string()), None),
        },
        None => (None, None),
    };
    if hostport.is_empty() {
        return None;
    }
    Some((hostport.to_string(), user, pass))
}

async fn accept_routes(srv: Arc<ServerState>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = srv.shutdown.notified() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                if srv.shutting_down.load(Ordering::Acquire) {
                    return;
                }
                let _ = stream.set_nodelay(true);
                tokio::spawn(run_tcp_route(srv.clone(), stream, peer, None));
            }
            Err(e) => {
                error!("Temporary Route Accept Error({}), sleeping 10ms", e);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Dials a route until it connects (explicit routes forever; implicit ones
/// up to `connect_retries` extra attempts).
pub async fn connect_to_route(srv: Arc<ServerState>, s: Solicit, forever: bool) {
    dial_route(srv, s, forever, true).await
}

/// route.go connectToRoute: dial every second until connected (or, for an implicit
/// route, out of `connect_retries`); `first` selects the error-report rate.
async fn dial_route(srv: Arc<ServerState>, s: Solicit, forever: bool, first: bool) {
    let Some((hostport, _, _)) = parse_route_url(&s.url) else {
        error!("Error parsing route URL {:?}", s.url);
        return;
    };
    let mut attempts: u32 = 0;
    loop {
        if srv.shutting_down.load(Ordering::Acquire) {
            return;
        }
        if s.configured && !route_still_valid(&srv, &s) {
            debug!(
                "Route {:?} was removed from the configuration; not dialling",
                s.url
            );
            return;
        }
        debug!("Trying to connect to route on {} ({})", hostport, hostport);
        let dialed = tokio::time::timeout(ROUTE_DIAL, TcpStream::connect(&hostport)).await;
        match dialed {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                if !run_tcp_route(srv.clone(), stream, peer, Some(s.clone())).await
                    && (!s.configured || route_still_valid(&srv, &s))
                {
                    // The TLS handshake failed (logged): nats-server's closeConnection
                    // reconnects a solicited route, an implicit one too.
                    debug!(
                        "Attempting reconnect for solicited route \"{}\"",
                        redact_url(&s.url)
                    );
                    tokio::spawn(reconnect(srv.clone(), s));
                }
                return;
            }
            Ok(Err(e)) => {
                attempts += 1;
                // Go's net.OpError text: "dial tcp H:P: connect: connection refused".
                let text = crate::conf::go_io_error("dial tcp", &hostport, &e);
                let text = text.replacen(": ", ": connect: ", 1);
                report_connect_err(&srv, first, attempts, &text);
            }
            Err(_) => {
                attempts += 1;
                report_connect_err(
                    &srv,
                    first,
                    attempts,
                    &format!("dial tcp {hostport}: i/o timeout"),
                );
            }
        }
        if !forever {
            let retries = srv.opts().cluster.connect_retries;
            if retries == 0 || attempts > retries {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(ROUTE_CONNECT_DELAY) => {}
            _ = srv.shutdown.notified() => return,
        }
    }
}

/// Logs a failed route dial (TCP or SCION) as server.go shouldReportConnectErr says: at
/// error level on attempt 1 and every `connect_error_reports` (a first connection) or
/// `reconnect_error_reports` (a route that had connected before) attempts, the others at
/// debug level.
pub(crate) fn report_connect_err(srv: &ServerState, first: bool, attempts: u32, err: &str) {
    let opts = srv.opts();
    let every = if first {
        opts.connect_error_reports
    } else {
        opts.reconnect_error_reports
    };
    if attempts == 1 || attempts.is_multiple_of(every.max(1)) {
        error!(
            "Error trying to connect to route (attempt {}): {}",
            attempts, err
        );
    } else {
        debug!(
            "Error trying to connect to route (attempt {}): {}",
            attempts, err
        );
    }
}

/// Serves one TCP route connection (dialled when `solicit` is set), in TLS when
/// `cluster.tls` is set: the handshake comes first on both ends (route.go createRoute).
/// False when the TLS handshake failed.
async fn run_tcp_route(
    srv: Arc<ServerState>,
    stream: TcpStream,
    peer: SocketAddr,
    solicit: Option<Solicit>,
) -> bool {
    let Some(tls) = srv.route_tls() else {
        run_route(srv, stream, peer, solicit).await;
        return true;
    };
    let rid = srv.next_cid();
    let prefix = format!("{}:{} - rid:{}", peer.ip(), peer.port(), rid);
    let local = stream.local_addr();
    // client.go doTLSHandshake: the server name is the route URL's host, or for an IP
    // (gossiped routes are dialled by IP) the first host name among the configured routes.
    let mut tls_name_used = None;
    let handshake = async {
        match &solicit {
            Some(s) => {
                debug!("{} - Starting TLS route client handshake", prefix);
                let host = parse_route_url(&s.url)
                    .and_then(|(hp, _, _)| crate::config::parse_host_port(&hp, 0).ok())
                    .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
                    .unwrap_or_else(|| peer.ip().to_string());
                let host = match lock(&srv.cluster.route_tls_name).clone() {
                    Some(n) if host.parse::<std::net::IpAddr>().is_ok() => {
                        tls_name_used = Some(n.clone());
                        n
                    }
                    _ => host,
                };
                match rustls::pki_types::ServerName::try_from(host) {
                    Ok(name) => {
                        tokio::time::timeout(tls.timeout, tls.connector.connect(name, stream))
                            .await
                            .map(|r| r.map(tokio_rustls::TlsStream::from))
                    }
                    Err(e) => Ok(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        e.to_string(),
                    ))),
                }
            }
            None => {
                debug!("{} - Starting TLS route server handshake", prefix);
                tokio::time::timeout(tls.timeout, tls.acceptor.accept(stream))
                    .await
                    .map(|r| r.map(tokio_rustls::TlsStream::from))
            }
        }
    };
    // A shutdown ends a handshake at once (nats-server closes the socket under it).
    let shutdown = srv.shutdown.notified();
    let shake = if srv.shutting_down.load(Ordering::Acquire) {
        return true;
    } else {
        tokio::select! {
            r = handshake => r,
            _ = shutdown => return true,
        }
    };
    let failed = |why: &str| {
        error!("{} - {}", prefix, why);
        info!(
            "{} - Router connection closed: {}",
            prefix,
            ClosedState::TlsHandshakeError
        );
    };
    let stream = match shake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // route.go createRoute: a certificate not valid for the saved name clears it,
            // so the next dial uses the URL's own host.
            let wrong_name = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .is_some_and(|t| {
                    matches!(
                        t,
                        rustls::Error::InvalidCertificate(
                            rustls::CertificateError::NotValidForName
                                | rustls::CertificateError::NotValidForNameContext { .. }
                        )
                    )
                });
            if wrong_name && tls_name_used.is_some() {
                *lock(&srv.cluster.route_tls_name) = None;
            }
            failed(&format!(
                "TLS route handshake error: {}",
                super::tls::handshake_error(&e, solicit.is_none())
            ));
            return false;
        }
        Err(_) => {
            super::tls::log_handshake_timeout(&prefix, "route ", local, peer);
            info!(
                "{} - Router connection closed: {}",
                prefix,
                ClosedState::TlsHandshakeError
            );
            return false;
        }
    };
    let (_, conn) = stream.get_ref();
    super::tls::log_established(&prefix, conn);
    serve_route(srv, super::io::Locked(stream), peer, solicit, None, rid).await;
    true
}

/// Serves one TCP route connection (dialled when `solicit` is set).
pub async fn run_route<S: SplitIo>(
    srv: Arc<ServerState>,
    stream: S,
    peer: SocketAddr,
    solicit: Option<Solicit>,
) {
    run_route_labeled(srv, stream, peer, solicit, None).await;
}

/// Serves one route connection over any byte stream; `scion` is set for
/// routes carried over QUIC/SCION (their dialling and reconnects are owned
/// by `server::scion`). Returns the peer's server ID once the route has
/// closed (empty if its INFO never came), so a SCION dialer can tell a
/// duplicate or a route to itself as nats-server's closeConnection does,
/// and why it closed.
pub async fn run_route_labeled<S: SplitIo>(
    srv: Arc<ServerState>,
    stream: S,
    peer: SocketAddr,
    solicit: Option<Solicit>,
    scion: Option<super::scion::ScionPeer>,
) -> (String, ClosedState) {
    let rid = srv.next_cid();
    serve_route(srv, stream, peer, solicit, scion, rid).await
}

/// [`run_route_labeled`] with the route id already given (a TLS route logs its handshake
/// under it).
async fn serve_route<S: SplitIo>(
    srv: Arc<ServerState>,
    stream: S,
    peer: SocketAddr,
    solicit: Option<Solicit>,
    scion: Option<super::scion::ScionPeer>,
    rid: u64,
) -> (String, ClosedState) {
    let is_scion = scion.is_some();
    let opts = srv.opts();
    let label = scion.as_ref().map(|s| s.remote.to_string());
    let shared = Arc::new(
        ClientShared::new(
            rid,
            ConnKind::Route,
            peer,
            opts.max_pending.max(64 * 1024 * 1024),
        )
        .with_label(label.clone()),
    );
    shared.headers.store(true, Ordering::Relaxed);
    // `connected` = owes no CONNECT: route.go createRoute expects one only
    // on accepted routes (expectConnect), which handle_connect clears; a
    // write timeout before it is neither logged nor counted
    // (client.go handleWriteTimeout).
    lock(&shared.meta).connected = solicit.is_some();
    // Every other write timeout is a slow consumer (handleWriteTimeout bumps
    // `s.slowConsumers`), also the partial ones the route survives.
    let stats_of = Arc::downgrade(&srv);
    shared.out.on_write_timeout(move || {
        if let Some(srv) = stats_of.upgrade() {
            srv.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
    });
    refresh_path_tag(&srv, &shared, scion.as_ref());
    let handle = Arc::new(RouteHandle {
        shared: shared.clone(),
        meta: Mutex::new(RouteMeta {
            did_solicit: solicit.is_some(),
            is_configured: solicit.as_ref().is_some_and(|s| s.configured),
            url: solicit.as_ref().map(|s| s.url.clone()),
            scion,
            ..Default::default()
        }),
    });
    let prefix = match &label {
        Some(l) => format!("{l} - rid:{rid}"),
        None => format!("{}:{} - rid:{}", peer.ip(), peer.port(), rid),
    };
    let (mut rd, wr) = stream.split_io();
    let writer = tokio::spawn(writer_loop(shared.clone(), wr, opts.write_deadline));
    lock(&srv.clients).insert(rid, shared.clone());
    srv.close_if_shutting_down(&shared);

    if let Some(s) = &solicit {
        let (user, pass) = match parse_route_url(&s.url) {
            Some((_, u, p)) => (u.or(s.user.clone()), p.or(s.password.clone())),
            None => (s.user.clone(), s.password.clone()),
        };
        let cluster = srv.cluster.name();
        let line = crate::proto::json::RouteConnect {
            echo: true,
            verbose: false,
            pedantic: false,
            user: user.as_deref().unwrap_or_default(),
            pass: pass.as_deref().unwrap_or_default(),
            // route.go sendRouteConnect: whether the route runs TLS.
            tls_required: opts.cluster.tls.is_some(),
            headers: true,
            name: &srv.id,
            cluster: &cluster,
            cluster_dynamic: srv.cluster.dynamic_name.load(Ordering::Relaxed),
            lnoc: true,
        }
        .to_line();
        let _ = shared.out.append(&line);
        debug!("{} - Route connect msg sent", prefix);
    }
    let _ = shared.out.append(&route_info(&srv).to_line());
    shared.out.flush_signal();
    info!("{} - Route connection created", prefix);

    let mut conn = RouteConn {
        srv: srv.clone(),
        shared: shared.clone(),
        handle: handle.clone(),
        prefix: prefix.clone(),
        solicited: solicit.is_some(),
        solicit: solicit.clone(),
        got_connect: solicit.is_some(),
        got_info: false,
        close_error: None,
        registered: false,
        batch: Batch::default(),
        cache: MatchCache::default(),
        in_msgs: 0,
        in_bytes: 0,
        ping_sent: None,
        ping: ping::PingClock::default(),
        active: false,
        read_start: 0,
        warned_unindexable: false,
    };
    let reason = conn.read_loop(&mut rd).await;
    // Done reading: a SCION route's receive stream goes back to its owner now, which keeps
    // reading the peer's end while our writer flushes (`server::scion::RouteEnding`).
    drop(rd);
    shared.out.close(reason);
    let _ = writer.await;
    conn.cleanup();
    lock(&srv.clients).remove(&rid);
    let reason = shared.out.closed_reason().unwrap_or(reason);
    // client.go handleWriteTimeout counts a write-deadline cut as a slow
    // consumer for every kind of connection, routes included; only a
    // connection expected to send CONNECT (an accepted route: route.go
    // createRoute sets expectConnect unless it dialled) that has not sent
    // it yet is closed without counting. Timeouts after partial writes,
    // which do not close the route, were counted by the writer.
    if reason == ClosedState::SlowConsumerWriteDeadline && conn.got_connect {
        srv.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    info!("{} - Router connection closed: {}", prefix, reason);
    if let Some(e) = conn.close_error {
        error!("{} - {}", prefix, e);
    }
    // Closed routes are not kept for `/connz?state=closed`: nats-server
    // 2.9.10 client.go markConnAsClosed calls saveClosedClient only for
    // CLIENT and LEAF connections, so a route never takes a slot of the
    // closed-connection ring.

    // Reconnect a dialled TCP route unless we are connected to that server
    // through another connection (nats-server closeConnection). SCION
    // routes are re-dialled by their owner in `server::scion`, which makes
    // the same checks with the returned ID (`after_close`).
    let (remote_id, retry) = {
        let mut m = lock(&handle.meta);
        (m.remote_id.clone(), m.retry.take())
    };
    if is_scion {
        return (remote_id, reason);
    }
    if let Some(s) = solicit.or(retry) {
        // An implicit (gossiped) route is retried too, with its bounded attempts
        // (client.go closeConnection `retryImplicit`, route.go reConnectToRoute).
        if after_close(&srv, &remote_id, &s.url) == AfterClose::Redial
            && (!s.configured || route_still_valid(&srv, &s))
        {
            debug!(
                "Attempting reconnect for solicited route \"{}\"",
                redact_url(&s.url)
            );
            let srv2 = srv.clone();
            tokio::spawn(reconnect(srv2, s));
        }
    }
    (remote_id, reason)
}

/// Sets a SCION route's `Nats-Scion-Path` tag to the path in use now (with
/// `scion.path_header`). Path events keep it current once the route is registered; this
/// covers its start and the time before registration, when events pass it by.
pub(crate) fn refresh_path_tag(
    srv: &ServerState,
    shared: &ClientShared,
    scion: Option<&super::scion::ScionPeer>,
) {
    let Some(p) = scion else { return };
    if !srv.opts().scion.as_ref().is_some_and(|s| s.path_header) {
        return;
    }
    let active = p
        .endpoint
        .path_stats(p.remote)
        .into_iter()
        .find(|c| c.active)
        .map(|c| Arc::<str>::from(c.info.fingerprint.short().to_string()));
    if active.is_some() {
        *lock(&shared.path_tag) = active;
    }
}

/// What to do about a dialled route that closed (nats-server closeConnection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterClose {
    /// Shutting down, or it was a route to ourselves: never again.
    Stop,
    /// The same server is still routed through another connection: TCP leaves the re-dial
    /// to that route (`RouteMeta::retry`), SCION waits for it to close.
    Duplicate,
    Redial,
}

/// Decides [`AfterClose`] for a dialled route to server `remote_id` (empty if its INFO never
/// came), logging as nats-server does.
pub(crate) fn after_close(srv: &ServerState, remote_id: &str, url: &str) -> AfterClose {
    if srv.shutting_down.load(Ordering::Acquire) {
        return AfterClose::Stop;
    }
    if !remote_id.is_empty() && srv.cluster.has_remote(remote_id) {
        debug!(
            "Not attempting reconnect for solicited route, already connected to \"{}\"",
            remote_id
        );
        return AfterClose::Duplicate;
    }
    if remote_id == srv.id {
        debug!(
            "Detected route to self, ignoring {}",
            super::auth::go_quote(&redact_url(url))
        );
        return AfterClose::Stop;
    }
    AfterClose::Redial
}

/// Re-dials a route after a short random delay: a configured one until it connects, an
/// implicit one up to `connect_retries` extra attempts. Boxed so the connect → serve →
/// reconnect cycle has a nameable `Send` future.
fn reconnect(
    srv: Arc<ServerState>,
    s: Solicit,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        // route.go reConnectToRoute: a random 0-100 ms against both sides re-dialling
        // in lockstep, plus DEFAULT_ROUTE_RECONNECT for a configured route.
        let forever = s.configured;
        let mut d = Duration::from_millis(rand::random_range(0..100));
        if forever {
            d += ROUTE_RECONNECT_DELAY;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = srv.shutdown.notified() => return,
        }
        dial_route(srv, s, forever, false).await;
    })
}

struct RouteConn {
    srv: Arc<ServerState>,
    shared: Arc<ClientShared>,
    handle: Arc<RouteHandle>,
    prefix: String,
    solicited: bool,
    /// How we dialled this route (None if accepted).
    solicit: Option<Solicit>,
    got_connect: bool,
    got_info: bool,
    /// The error client.go readLoop logs after closing when the handshake failed
    /// (processRouteConnect's returned error), after "Router connection closed".
    close_error: Option<&'static str>,
    registered: bool,
    batch: Batch,
    cache: MatchCache,
    in_msgs: u64,
    in_bytes: u64,
    ping_sent: Option<Instant>,
    ping: ping::PingClock,
    /// The current read brought routed messages or interest changes
    /// (client.go readLoop: `c.in.msgs > 0 || c.in.subs > 0`).
    active: bool,
    /// Where the newest read begins in the read buffer (parser errors count from it).
    read_start: usize,
    /// A remote subscription our index could not hold was reported (once per route).
    warned_unindexable: bool,
}

struct Close(ClosedState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_urls() {
        assert_eq!(
            parse_route_url("nats-route://u:p@127.0.0.1:4248"),
            Some((
                "127.0.0.1:4248".to_string(),
                Some("u".to_string()),
                Some("p".to_string())
            ))
        );
        assert_eq!(
            parse_route_url("nats-route://127.0.0.1:4248/"),
            Some(("127.0.0.1:4248".to_string(), None, None))
        );
    }
}

/// A route URL for logs with its password replaced by `xxxxx` (Go's URL.Redacted,
/// as nats-server logs solicited routes): `nats-route://ru:xxxxx@host:port`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{}{}:xxxxx{}", &url[..scheme_end], user, &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_like_go_url_redacted() {
        assert_eq!(
            redact_url("nats-route://ru:rp@127.0.0.1:4248"),
            "nats-route://ru:xxxxx@127.0.0.1:4248"
        );
        assert_eq!(redact_url("nats://u:p@ss@h:1/x"), "nats://u:xxxxx@h:1/x");
        assert_eq!(redact_url("nats-route://ru@h:1"), "nats-route://ru@h:1");
        assert_eq!(redact_url("nats-route://h:1"), "nats-route://h:1");
        assert_eq!(redact_url("nonsense"), "nonsense");
    }
}
