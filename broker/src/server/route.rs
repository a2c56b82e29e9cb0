//! Route connections: the cluster protocol of nats-server 2.9 (route proto 2):
//! CONNECT/INFO handshake, `RS+`/`RS-` interest, `RMSG`/`HMSG` messages,
//! PING/PONG keepalive, gossip of new servers (`server/route.go`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, info, warn};

use super::client::{writer_loop, ClientShared, SubRef, Subscription};
use super::closed::ClosedState;
use super::cluster::{send_async_info_to_clients, RouteHandle, RouteMeta};
use super::deliver::{process_msg_results, Batch, MatchCache, Msg, Source};
use super::{lock, ServerState};
use crate::options::{RouteTarget, RouteUrl};
use crate::proto::encode;
use crate::proto::json::{ConnectInfo, ServerInfo};
use crate::proto::{parse_op, parse_size, split_args, ConnKind, Op, ParseError, ParseLimits, Step};

/// Route protocol version we speak (`RouteProtoV2`).
pub const ROUTE_PROTO: i32 = 2;
/// Dial timeout (`DEFAULT_ROUTE_DIAL`).
const ROUTE_DIAL: Duration = Duration::from_secs(1);
/// First retry delay for a failed route dial; doubles up to the cap.
const ROUTE_RETRY_MIN: Duration = Duration::from_millis(250);
const ROUTE_RETRY_MAX: Duration = Duration::from_secs(2);
/// First PING on a new route, to learn its RTT early.
const FIRST_PING: Duration = Duration::from_secs(1);

/// How a route came to be.
#[derive(Clone, Debug)]
pub struct Solicit {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub configured: bool,
}

/// The INFO we send on routes.
pub fn route_info(srv: &ServerState) -> ServerInfo {
    let opts = srv.opts();
    let listen = *lock(&srv.cluster.listen_addr);
    let (host, port) = match listen {
        Some(a) => (a.ip().to_string(), a.port()),
        None => (String::new(), 0),
    };
    let (host, port, ip) = match &opts.cluster.advertise {
        Some(adv) => {
            let (h, p) = split_host_port(adv, port);
            let ip = format!("nats-route://{}/", join_host_port(&h, p));
            (h, p, Some(ip))
        }
        None => (host, port, None),
    };
    ServerInfo {
        server_id: srv.id.clone(),
        server_name: srv.name.clone(),
        version: super::VERSION.to_string(),
        proto: ROUTE_PROTO,
        go: "rust".to_string(),
        host,
        port,
        headers: true,
        auth_required: opts.cluster.username.is_some(),
        max_payload: opts.max_payload as i64,
        ip,
        cluster: Some(srv.cluster.name()),
        cluster_dynamic: srv.cluster.dynamic_name.load(Ordering::Relaxed),
        connect_urls: if opts.cluster.no_advertise {
            Vec::new()
        } else {
            lock(&srv.cluster.own_urls).clone()
        },
        lnoc: true,
        scion_connect_urls: if opts.cluster.no_advertise {
            Vec::new()
        } else {
            lock(&srv.cluster.own_scion_urls).clone()
        },
        ..Default::default()
    }
}

fn split_host_port(s: &str, default_port: u16) -> (String, u16) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once("]:") {
            return (h.to_string(), p.parse().unwrap_or(default_port));
        }
        return (rest.trim_end_matches(']').to_string(), default_port);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().unwrap_or(default_port)),
        _ => (s.to_string(), default_port),
    }
}

fn join_host_port(h: &str, p: u16) -> String {
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

fn solicit_from_url(r: &RouteUrl, configured: bool) -> Solicit {
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
                tokio::spawn(run_route(srv.clone(), stream, peer, None));
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
    let Some((hostport, _, _)) = parse_route_url(&s.url) else {
        error!("Error parsing route URL {:?}", s.url);
        return;
    };
    let mut attempts: u32 = 0;
    let mut delay = ROUTE_RETRY_MIN;
    loop {
        if srv.shutting_down.load(Ordering::Acquire) {
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
                run_route(srv.clone(), stream, peer, Some(s.clone())).await;
                return;
            }
            Ok(Err(e)) => {
                attempts += 1;
                report_connect_err(attempts, &e.to_string());
            }
            Err(_) => {
                attempts += 1;
                report_connect_err(attempts, "i/o timeout");
            }
        }
        if !forever {
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
        delay = (delay * 2).min(ROUTE_RETRY_MAX);
    }
}

fn report_connect_err(attempts: u32, err: &str) {
    // nats-server reports the first attempt and then every so often.
    if attempts == 1 || attempts.is_multiple_of(60) {
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

/// Serves one TCP route connection (dialled when `solicit` is set).
pub async fn run_route<S>(
    srv: Arc<ServerState>,
    stream: S,
    peer: SocketAddr,
    solicit: Option<Solicit>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    run_route_labeled(srv, stream, peer, solicit, None).await
}

/// Serves one route connection over any byte stream; `scion` is set for
/// routes carried over QUIC/SCION (their dialling and reconnects are owned
/// by `server::scion`).
pub async fn run_route_labeled<S>(
    srv: Arc<ServerState>,
    stream: S,
    peer: SocketAddr,
    solicit: Option<Solicit>,
    scion: Option<super::scion::ScionPeer>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let is_scion = scion.is_some();
    let opts = srv.opts();
    let rid = srv.next_cid();
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
    if let Some(p) = &scion {
        if opts.scion.as_ref().is_some_and(|s| s.path_header) {
            let active = p
                .endpoint
                .path_stats(p.remote)
                .into_iter()
                .find(|c| c.active)
                .map(|c| Arc::<str>::from(c.info.fingerprint.short().to_string()));
            *lock(&shared.path_tag) = active;
        }
    }
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
    let (mut rd, wr) = tokio::io::split(stream);
    let writer = tokio::spawn(writer_loop(shared.clone(), wr, opts.write_deadline));
    lock(&srv.clients).insert(rid, shared.clone());

    if let Some(s) = &solicit {
        let (user, pass) = match parse_route_url(&s.url) {
            Some((_, u, p)) => (u.or(s.user.clone()), p.or(s.password.clone())),
            None => (s.user.clone(), s.password.clone()),
        };
        let connect = serde_json::json!({
            "echo": true,
            "verbose": false,
            "pedantic": false,
            "user": user.unwrap_or_default(),
            "pass": pass.unwrap_or_default(),
            "tls_required": false,
            "headers": true,
            "name": srv.id,
            "cluster": srv.cluster.name(),
            "dynamic": srv.cluster.dynamic_name.load(Ordering::Relaxed),
            "lnoc": true,
        });
        let line = format!("CONNECT {connect}\r\n");
        let _ = shared.out.append(line.as_bytes());
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
        got_connect: solicit.is_some(),
        got_info: false,
        registered: false,
        batch: Batch::default(),
        cache: MatchCache::default(),
        in_msgs: 0,
        in_bytes: 0,
        ping_sent: None,
        pings_out: 0,
    };
    let reason = conn.read_loop(&mut rd).await;
    shared.out.close(reason);
    let _ = writer.await;
    conn.cleanup();
    lock(&srv.clients).remove(&rid);
    let reason = shared.out.closed_reason().unwrap_or(reason);
    info!("{} - Router connection closed: {}", prefix, reason);
    srv.record_closed(shared.snapshot(&srv, Some(SystemTime::now())));

    // Reconnect a dialled TCP route unless we are connected to that server
    // through another connection (nats-server closeConnection). SCION
    // routes are re-dialled by their owner in `server::scion`.
    if is_scion {
        return;
    }
    if let Some(s) = solicit {
        let remote_id = lock(&handle.meta).remote_id.clone();
        if srv.shutting_down.load(Ordering::Acquire) {
            return;
        }
        if !remote_id.is_empty() && srv.cluster.has_remote(&remote_id) {
            debug!(
                "Not attempting reconnect for solicited route, already connected to \"{}\"",
                remote_id
            );
            return;
        }
        if remote_id == srv.id {
            debug!("Detected route to self, ignoring {:?}", s.url);
            return;
        }
        if s.configured {
            debug!("Attempting reconnect for solicited route \"{}\"", s.url);
            let srv2 = srv.clone();
            tokio::spawn(reconnect(srv2, s));
        }
    }
}

/// Re-dials a configured route after a short random delay. Boxed so the
/// connect → serve → reconnect cycle has a nameable `Send` future.
fn reconnect(
    srv: Arc<ServerState>,
    s: Solicit,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let d = Duration::from_millis(rand::random_range(0..100));
        tokio::time::sleep(d).await;
        connect_to_route(srv, s, true).await;
    })
}

struct RouteConn {
    srv: Arc<ServerState>,
    shared: Arc<ClientShared>,
    handle: Arc<RouteHandle>,
    prefix: String,
    solicited: bool,
    got_connect: bool,
    got_info: bool,
    registered: bool,
    batch: Batch,
    cache: MatchCache,
    in_msgs: u64,
    in_bytes: u64,
    ping_sent: Option<Instant>,
    pings_out: u32,
}

struct Close(ClosedState);

const ROUTE_LIMITS: ParseLimits = ParseLimits {
    max_control_line: usize::MAX,
    max_payload: None,
};

impl RouteConn {
    async fn read_loop<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> ClosedState {
        let opts = self.srv.opts();
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let first = tokio::time::Instant::now() + FIRST_PING.min(opts.ping_interval);
        let mut ping = tokio::time::interval_at(first, opts.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let auth_timeout = opts
            .cluster
            .auth_timeout
            .unwrap_or(crate::options::DEFAULT_AUTH_TIMEOUT);
        let connect_deadline = tokio::time::sleep(auth_timeout.max(Duration::from_secs(2)));
        tokio::pin!(connect_deadline);
        loop {
            if rbuf.capacity() - rbuf.len() < 4096 {
                rbuf.reserve(64 * 1024);
            }
            tokio::select! {
                biased;
                _ = self.shared.out.closed() => {
                    return self.shared.out.closed_reason().unwrap_or(ClosedState::ServerShutdown);
                }
                r = rd.read_buf(&mut rbuf) => {
                    match r {
                        Ok(0) => return ClosedState::ClientClosed,
                        Err(_) => return ClosedState::ReadError,
                        Ok(_) => {
                            // A message that found a stalled local client
                            // stops processing until it drains (bounded), then
                            // the rest of this read goes on.
                            loop {
                                let res = self.process(&mut rbuf);
                                self.end_batch();
                                match res {
                                    Err(Close(reason)) => return reason,
                                    Ok(false) => break,
                                    Ok(true) => self.batch.wait_stalled(&self.prefix).await,
                                }
                                if self.shared.out.is_closing() {
                                    break;
                                }
                            }
                        }
                    }
                }
                _ = ping.tick() => {
                    debug!("{} - Router Ping Timer", self.prefix);
                    if self.pings_out + 1 > opts.ping_max.max(1) + 1 {
                        debug!("{} - Stale Route Connection - Closing", self.prefix);
                        let _ = self.shared.out.send(encode::ERR_STALE);
                        return ClosedState::StaleConnection;
                    }
                    self.pings_out += 1;
                    self.ping_sent = Some(Instant::now());
                    let _ = self.shared.out.send(encode::PING);
                }
                _ = &mut connect_deadline, if !self.got_connect => {
                    error!("{} - Authentication Timeout", self.prefix);
                    let _ = self.shared.out.send(encode::ERR_AUTH_TIMEOUT);
                    return ClosedState::AuthenticationTimeout;
                }
            }
        }
    }

    fn end_batch(&mut self) {
        self.batch.finish(&self.srv);
        if self.in_msgs > 0 {
            let st = &self.shared.stats;
            st.in_msgs.fetch_add(self.in_msgs, Ordering::Relaxed);
            st.in_bytes.fetch_add(self.in_bytes, Ordering::Relaxed);
            self.srv
                .stats
                .in_msgs
                .fetch_add(self.in_msgs, Ordering::Relaxed);
            self.srv
                .stats
                .in_bytes
                .fetch_add(self.in_bytes, Ordering::Relaxed);
            self.in_msgs = 0;
            self.in_bytes = 0;
        }
    }

    /// Handles the complete operations in `rbuf`; stops early (returning
    /// true) after a message that found a stalled local client.
    fn process(&mut self, rbuf: &mut BytesMut) -> Result<bool, Close> {
        let mut pos = 0;
        let res = loop {
            let buf = &rbuf[pos..];
            if buf.is_empty() {
                break Ok(false);
            }
            match parse_op(buf, ConnKind::Route, &ROUTE_LIMITS) {
                Ok(Step::Op { op, consumed }) => {
                    pos += consumed;
                    if let Err(c) = self.handle(op) {
                        break Err(c);
                    }
                    if self.batch.has_stalled() {
                        break Ok(true);
                    }
                }
                Ok(Step::Incomplete { total_hint }) => {
                    if let Some(total) = total_hint {
                        let have = rbuf.len() - pos;
                        if total > have {
                            rbuf.reserve(total - have);
                        }
                    }
                    break Ok(false);
                }
                Err(e) => {
                    let snip = String::from_utf8_lossy(&buf[..buf.len().min(32)]).to_string();
                    error!(
                        "{} - Route parser ERROR: {} proto={:?}",
                        self.prefix, e, snip
                    );
                    if let ParseError::UnknownOp = e {
                        let _ = self.shared.out.send(encode::ERR_UNKNOWN_OP);
                    }
                    break Err(Close(ClosedState::ParseError));
                }
            }
        };
        rbuf.advance(pos);
        res
    }

    fn handle(&mut self, op: Op<'_>) -> Result<(), Close> {
        match op {
            Op::Connect(json) => self.handle_connect(json),
            Op::Info(json) => self.handle_info(json),
            Op::Ping => {
                let _ = self.shared.out.append(encode::PONG);
                self.batch.mark(&self.shared);
                Ok(())
            }
            Op::Pong => {
                self.pings_out = 0;
                if let Some(t) = self.ping_sent.take() {
                    lock(&self.handle.meta).rtt = Some(t.elapsed());
                    lock(&self.shared.meta).rtt = Some(t.elapsed());
                }
                Ok(())
            }
            Op::Ok => Ok(()),
            Op::Err(text) => {
                error!(
                    "{} - Router Error {}",
                    self.prefix,
                    String::from_utf8_lossy(text)
                );
                Err(Close(ClosedState::ParseError))
            }
            Op::RouteSub(arg) => {
                self.remote_sub(arg, false);
                Ok(())
            }
            Op::LeafSub(arg) => {
                self.remote_sub(arg, true);
                Ok(())
            }
            Op::RouteUnsub(arg) | Op::LeafUnsub(arg) => {
                self.remote_unsub(arg);
                Ok(())
            }
            Op::RouteMsg { args, payload } => self.routed_msg(args, 0, payload, false),
            Op::RouteHMsg {
                args,
                hdr_len,
                payload,
            } => self.routed_msg(args, hdr_len, payload, true),
            Op::LeafMsg { args, payload } => self.leaf_msg(args, payload),
            Op::Pub(_) | Op::HPub(_) | Op::Sub { .. } | Op::Unsub { .. } => {
                debug!("{} - ignoring client protocol on a route", self.prefix);
                Ok(())
            }
        }
    }

    fn handle_connect(&mut self, json: &[u8]) -> Result<(), Close> {
        let ci: ConnectInfo = match serde_json::from_slice(json) {
            Ok(c) => c,
            Err(e) => {
                error!("{} - processRouteConnect: {}", self.prefix, e);
                return Err(Close(ClosedState::ProtocolViolation));
            }
        };
        if ci.lang.as_deref().is_some_and(|l| !l.is_empty()) {
            let _ = self
                .shared
                .out
                .send(&encode::err_line("attempted to connect to route port"));
            error!("{} - attempted to connect to route port", self.prefix);
            return Err(Close(ClosedState::ProtocolViolation));
        }
        let opts = self.srv.opts();
        if let Some(user) = &opts.cluster.username {
            let ok = ci.user.as_deref() == Some(user.as_str())
                && ci.pass.as_deref().unwrap_or("")
                    == opts.cluster.password.as_deref().unwrap_or("");
            if !ok {
                error!("{} - authentication error", self.prefix);
                let _ = self.shared.out.send(encode::ERR_AUTH_VIOLATION);
                return Err(Close(ClosedState::AuthenticationViolation));
            }
        }
        let ours = self.srv.cluster.name();
        let theirs = ci.cluster.clone().unwrap_or_default();
        if theirs != ours {
            let dynamic = self.srv.cluster.dynamic_name.load(Ordering::Relaxed);
            if dynamic && (!ci.dynamic || ours.as_str() < theirs.as_str()) {
                self.srv.cluster.set_name(&theirs);
                if !ci.dynamic {
                    self.srv
                        .cluster
                        .dynamic_name
                        .store(false, Ordering::Relaxed);
                }
            } else {
                let text = format!(
                    "Rejecting connection, cluster name {:?} does not match {:?}",
                    theirs, ours
                );
                error!("{} - {}", self.prefix, text);
                let _ = self.shared.out.send(&encode::err_line(&text));
                return Err(Close(ClosedState::ClusterNameConflict));
            }
        }
        self.got_connect = true;
        let mut m = lock(&self.handle.meta);
        m.remote_id = ci.name.clone().unwrap_or_default();
        m.lnoc = ci.lnoc;
        self.shared.headers.store(ci.headers, Ordering::Relaxed);
        Ok(())
    }

    fn handle_info(&mut self, json: &[u8]) -> Result<(), Close> {
        let info: ServerInfo = match serde_json::from_slice(json) {
            Ok(i) => i,
            Err(e) => {
                error!("{} - Error parsing route INFO: {}", self.prefix, e);
                return Err(Close(ClosedState::ProtocolViolation));
            }
        };
        let srv = self.srv.clone();
        if info.server_id == srv.id {
            lock(&self.handle.meta).remote_id = info.server_id.clone();
            debug!("{} - Detected route to self, ignoring", self.prefix);
            return Err(Close(ClosedState::DuplicateRoute));
        }
        if let Some(theirs) = info.cluster.as_deref().filter(|c| !c.is_empty()) {
            let ours = srv.cluster.name();
            if theirs != ours {
                let dynamic = srv.cluster.dynamic_name.load(Ordering::Relaxed);
                if dynamic && (!info.cluster_dynamic || ours.as_str() < theirs) {
                    srv.cluster.set_name(theirs);
                } else {
                    error!(
                        "{} - Rejecting connection, cluster name {:?} does not match {:?}",
                        self.prefix, theirs, ours
                    );
                    return Err(Close(ClosedState::ClusterNameConflict));
                }
            }
        }
        if self.got_info {
            // An async INFO: either gossip about another server, or an update.
            let my_remote = lock(&self.handle.meta).remote_id.clone();
            if !my_remote.is_empty() && my_remote != info.server_id {
                process_implicit_route(&srv, &info);
            } else if info.ldm {
                let urls = std::mem::take(&mut lock(&self.handle.meta).connect_urls);
                if srv.cluster.update_remote_urls(&urls, false) && !srv.opts().cluster.no_advertise
                {
                    send_async_info_to_clients(&srv);
                }
            }
            return Ok(());
        }
        self.got_info = true;
        self.shared.headers.store(info.headers, Ordering::Relaxed);
        {
            let mut m = lock(&self.handle.meta);
            m.remote_id = info.server_id.clone();
            m.remote_name = info.server_name.clone();
            m.remote_port = info.port;
            m.connect_urls = info.connect_urls.clone();
            m.scion_connect_urls = info.scion_connect_urls.clone();
            if m.url.is_none() {
                m.url = Some(format!(
                    "nats-route://{}/",
                    join_host_port(&info.host, info.port)
                ));
            }
            m.info = Some(info.clone());
        }
        let (added, others) = srv.cluster.add_route(self.handle.clone(), &info.server_id);
        if !added {
            debug!(
                "{} - Detected duplicate remote route {:?}",
                self.prefix, info.server_id
            );
            return Err(Close(ClosedState::DuplicateRoute));
        }
        self.registered = true;
        debug!(
            "{} - Registering remote route {:?}",
            self.prefix, info.server_id
        );
        // Full interest sync.
        let protos = srv.cluster.interest_protos();
        if !protos.is_empty() {
            let _ = self.shared.out.append(&protos);
        }
        self.batch.mark(&self.shared);
        debug!("{} - Sent local subscriptions to route", self.prefix);
        if others {
            let mut gossip = info.clone();
            if gossip.ip.as_deref().unwrap_or("").is_empty() {
                gossip.ip = Some(format!(
                    "nats-route://{}/",
                    join_host_port(&self.shared.peer.ip().to_string(), info.port)
                ));
            }
            gossip.nonce = None;
            let line = gossip.to_line();
            for r in srv.cluster.routes() {
                if r.shared.cid != self.shared.cid {
                    let _ = r.shared.out.send(&line);
                }
            }
        }
        if !srv.opts().cluster.no_advertise {
            let a = srv.cluster.update_remote_urls(&info.connect_urls, true);
            let b = srv
                .cluster
                .update_remote_scion_urls(&info.scion_connect_urls, true);
            if a || b {
                send_async_info_to_clients(&srv);
            }
        }
        Ok(())
    }

    fn remote_sub(&mut self, arg: &[u8], has_origin: bool) {
        let args: Vec<&[u8]> = split_args(arg).collect();
        let off = usize::from(has_origin);
        let (acc, subject, queue, weight) = match args.len() - off.min(args.len()) {
            2 => (args[off], args[off + 1], None, 1u64),
            4 => (
                args[off],
                args[off + 1],
                Some(args[off + 2]),
                parse_size(args[off + 3]).unwrap_or(1) as u64,
            ),
            _ => {
                error!(
                    "{} - processRemoteSub Parse Error: '{}'",
                    self.prefix,
                    String::from_utf8_lossy(arg)
                );
                return;
            }
        };
        if acc != super::deliver::GLOBAL_ACCOUNT {
            debug!(
                "{} - Unknown account {:?} for remote subject {:?}",
                self.prefix,
                String::from_utf8_lossy(acc),
                String::from_utf8_lossy(subject)
            );
            return;
        }
        let (Ok(subject), Ok(queue)) = (
            std::str::from_utf8(subject),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            return;
        };
        let key = route_sub_key(subject, queue);
        let existing = lock(&self.shared.subs).get(&key).cloned();
        if let Some(sub) = existing {
            if queue.is_some() {
                sub.qw.store(weight, Ordering::Relaxed);
            }
            return;
        }
        let sub = SubRef(Arc::new(Subscription {
            client: self.shared.clone(),
            subject: subject.to_string(),
            queue: queue.map(str::to_string),
            sid: key.clone(),
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            qw: AtomicU64::new(weight),
        }));
        let ok = {
            let mut sl = self.srv.sublist.write().unwrap_or_else(|e| e.into_inner());
            let r = sl.insert(subject, queue, sub.clone());
            self.srv.publish_generation(sl.generation());
            r.is_ok()
        };
        if ok {
            lock(&self.shared.subs).insert(key, sub);
        } else {
            error!(
                "{} - Could not insert subscription: invalid subject {:?}",
                self.prefix, subject
            );
        }
    }

    fn remote_unsub(&mut self, arg: &[u8]) {
        let args: Vec<&[u8]> = split_args(arg).collect();
        // RS- <acc> <subject> [queue]; LS- has the same shape.
        if !(2..=3).contains(&args.len()) {
            error!(
                "{} - processRemoteUnsub parse error: '{}'",
                self.prefix,
                String::from_utf8_lossy(arg)
            );
            return;
        }
        let (Ok(subject), Ok(queue)) = (
            std::str::from_utf8(args[1]),
            args.get(2).map(|q| std::str::from_utf8(q)).transpose(),
        ) else {
            return;
        };
        let key = route_sub_key(subject, queue);
        let sub = lock(&self.shared.subs).remove(&key);
        if let Some(sub) = sub {
            let mut sl = self.srv.sublist.write().unwrap_or_else(|e| e.into_inner());
            let _ = sl.remove(&sub.subject, sub.queue.as_deref(), &sub);
            self.srv.publish_generation(sl.generation());
        }
    }

    fn routed_msg(
        &mut self,
        args: &[u8],
        hdr_len: usize,
        payload: &[u8],
        with_hdr: bool,
    ) -> Result<(), Close> {
        let toks: Vec<&[u8]> = split_args(args).collect();
        // RMSG: <acc> <subject> [reply | + reply q.. | | q..] <size>
        // HMSG: same with <hdr> before <size>.
        let tail = if with_hdr { 2 } else { 1 };
        if toks.len() < 2 + tail {
            return Err(Close(ClosedState::ProtocolViolation));
        }
        let acc = toks[0];
        let subject = toks[1];
        let middle = &toks[2..toks.len() - tail];
        let (reply, queues): (Option<&[u8]>, &[&[u8]]) = match middle {
            [] => (None, &[]),
            [r] => (Some(r), &[]),
            [ind, rest @ ..] if *ind == b"+" && !rest.is_empty() => (Some(rest[0]), &rest[1..]),
            [ind, rest @ ..] if *ind == b"|" => (None, rest),
            _ => {
                error!(
                    "{} - processRoutedMsgArgs Bad or Missing Reply Indicator: '{}'",
                    self.prefix,
                    String::from_utf8_lossy(args)
                );
                return Err(Close(ClosedState::ProtocolViolation));
            }
        };
        let hdr_raw = if with_hdr {
            toks[toks.len() - 2]
        } else {
            &b""[..]
        };
        let size_raw = toks[toks.len() - 1];
        self.in_msgs += 1;
        self.in_bytes += payload.len() as u64;
        if acc != super::deliver::GLOBAL_ACCOUNT {
            debug!(
                "{} - Unknown account {:?} for routed message",
                self.prefix,
                String::from_utf8_lossy(acc)
            );
            return Ok(());
        }
        let Ok(subject_str) = std::str::from_utf8(subject) else {
            return Ok(());
        };
        let result = self.cache.lookup(&self.srv, subject, subject_str);
        if result.is_empty() {
            return Ok(());
        }
        let msg = Msg {
            subject,
            subject_str,
            reply,
            hdr_len,
            hdr_raw,
            size_raw,
            payload,
        };
        let src = Source::Route { queues };
        process_msg_results(&self.srv, &mut self.batch, &result, &msg, &src);
        Ok(())
    }

    /// `LMSG <origin> <acc> <subject> [reply|+ reply q..|| q..] <hdr> <size>`:
    /// leaf-origin messages always carry a header size.
    fn leaf_msg(&mut self, args: &[u8], payload: &[u8]) -> Result<(), Close> {
        let toks: Vec<&[u8]> = split_args(args).collect();
        if toks.len() < 5 {
            return Err(Close(ClosedState::ProtocolViolation));
        }
        // Drop the origin and re-use the HMSG path.
        let rest_start = toks[0].len();
        let rest = &args[rest_start..];
        let hdr = parse_size(toks[toks.len() - 2]).unwrap_or(0);
        if hdr == 0 {
            // No headers: strip the "0" header size token for the RMSG path.
            let mut v: Vec<u8> = Vec::with_capacity(rest.len());
            let inner: Vec<&[u8]> = toks[1..].to_vec();
            for (i, t) in inner.iter().enumerate() {
                if i == inner.len() - 2 {
                    continue;
                }
                if !v.is_empty() {
                    v.push(b' ');
                }
                v.extend_from_slice(t);
            }
            return self.routed_msg(&v, 0, payload, false);
        }
        self.routed_msg(rest, hdr, payload, true)
    }

    /// Removes the route's interest and registration.
    fn cleanup(&mut self) {
        let subs: Vec<SubRef> = lock(&self.shared.subs).drain().map(|(_, s)| s).collect();
        if !subs.is_empty() {
            let mut sl = self.srv.sublist.write().unwrap_or_else(|e| e.into_inner());
            for s in &subs {
                let _ = sl.remove(&s.subject, s.queue.as_deref(), s);
            }
            self.srv.publish_generation(sl.generation());
            debug!(
                "{} - Removing {} subscriptions for account \"$G\"",
                self.prefix,
                subs.len()
            );
        }
        if self.registered {
            if let Some(r) = self.srv.cluster.remove_route(self.shared.cid) {
                let (urls, surls) = {
                    let m = lock(&r.meta);
                    (m.connect_urls.clone(), m.scion_connect_urls.clone())
                };
                let a = self.srv.cluster.update_remote_urls(&urls, false);
                let b = self.srv.cluster.update_remote_scion_urls(&surls, false);
                if (a || b) && !self.srv.opts().cluster.no_advertise {
                    send_async_info_to_clients(&self.srv);
                }
            }
        }
        let _ = self.solicited;
    }
}

/// Route subscriptions are keyed by "subject[ queue]" (the account is
/// always `$G` here), like nats-server's `c.subs` key for routes.
fn route_sub_key(subject: &str, queue: Option<&str>) -> Vec<u8> {
    let mut k = Vec::with_capacity(subject.len() + 4 + queue.map_or(0, str::len));
    k.extend_from_slice(b"$G ");
    k.extend_from_slice(subject.as_bytes());
    if let Some(q) = queue {
        k.push(b' ');
        k.extend_from_slice(q.as_bytes());
    }
    k
}

/// Gossip told us of a server we may not know: connect to it unless we
/// already do or it is one of our configured routes
/// (nats-server `processImplicitRoute`).
fn process_implicit_route(srv: &Arc<ServerState>, info: &ServerInfo) {
    if info.server_id == srv.id || srv.cluster.has_remote(&info.server_id) {
        return;
    }
    let target = join_host_port(&info.host, info.port).to_lowercase();
    let opts = srv.opts();
    let configured = opts.cluster.routes.iter().any(|r| match &r.target {
        RouteTarget::Tcp { host, port } => join_host_port(host, *port).to_lowercase() == target,
        RouteTarget::Scion { .. } => false,
    });
    if configured {
        return;
    }
    let Some(ip) = info.ip.clone().filter(|s| !s.is_empty()) else {
        return;
    };
    let s = Solicit {
        url: ip,
        user: if info.auth_required {
            opts.cluster.username.clone()
        } else {
            None
        },
        password: if info.auth_required {
            opts.cluster.password.clone()
        } else {
            None
        },
        configured: false,
    };
    debug!("Implicit route to {} ({:?})", s.url, info.server_id);
    tokio::spawn(connect_to_route(srv.clone(), s, false));
}

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
        assert_eq!(split_host_port("[::1]:5", 0), ("::1".to_string(), 5));
        assert_eq!(split_host_port("h:7", 0), ("h".to_string(), 7));
    }
}
