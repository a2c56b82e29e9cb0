//! One client connection: read loop, protocol handling, delivery, writer.
//!
//! Behaviour follows nats-server 2.9.10 `server/client.go`. Each connection
//! runs a reader (this module's [`run`]) and a writer task. Delivery appends
//! to the receiver's [`Outbound`] buffer from the publisher's task and wakes
//! the receiver's writer once per read batch.
//!
//! Split by concern: `read` (read loop, parsing, dispatch), `connect`
//! (CONNECT, authentication, PING replies), `ping` (the pure ping-timer
//! decision), `snapshot` (/connz rows); SUB/UNSUB/PUB handling stays here.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, error, info};

use super::auth::{go_quote, CompiledPerms, PubPermCache, ReplyTracker};
use super::closed::ClosedState;
use super::deliver::{process_msg_results, Batch, MatchCache, Msg, Source};
use super::io::SplitIo;
pub(crate) use super::outbound::writer_loop;
use super::outbound::Outbound;
use super::{lock, remove_sub_now, ServerState};
use crate::proto::encode;
use crate::proto::json::ConnectInfo;
use crate::proto::{ConnKind, ParseLimits, PubArgs};

mod connect;
mod ping;
mod read;
mod snapshot;

use ping::PingClock;
pub use snapshot::ConnSnapshot;

/// Counters of one connection.
#[derive(Default, Debug)]
pub struct ConnStats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_msgs: AtomicU64,
    pub out_bytes: AtomicU64,
}

/// Descriptive state shown by /connz.
#[derive(Debug, Clone, Default)]
pub struct ConnMeta {
    pub name: String,
    pub lang: String,
    pub version: String,
    /// The user name (client.go `c.opts.Username`): the authenticated or
    /// `no_auth_user` one, else what CONNECT gave.
    pub user: Option<String>,
    /// CONNECT's `auth_token`, shown as /connz `authorized_user` when there is no
    /// user name (client.go getRawAuthUser).
    pub token: Option<String>,
    /// CONNECT's `nkey`, shown as /connz `authorized_user` before the user name.
    pub nkey: Option<String>,
    pub rtt: Option<Duration>,
    pub connected: bool,
    /// TLS version and cipher suite in Go's words, for a client on the TLS port.
    pub tls: Option<(String, String)>,
    /// The certificates the TLS client showed, DER (/connz `tls_peer_certs` with
    /// `auth=true` describes them when asked, as monitor.go does).
    pub tls_peer_der: Vec<Vec<u8>>,
}

/// The part of a connection other tasks touch.
pub struct ClientShared {
    pub cid: u64,
    pub kind: ConnKind,
    pub peer: SocketAddr,
    pub out: Outbound,
    /// The client asked for headers in CONNECT.
    pub headers: AtomicBool,
    pub stats: ConnStats,
    pub start: SystemTime,
    /// Nanoseconds since server start of the last activity.
    pub last_activity: AtomicU64,
    pub meta: Mutex<ConnMeta>,
    pub subs: Mutex<HashMap<Vec<u8>, SubRef>>,
    /// Subscribe deny list to filter deliveries of wildcard subscriptions.
    pub sub_deny: Mutex<Option<Arc<CompiledPerms>>>,
    /// The user has `allow_responses`: reply subjects of delivered messages
    /// are recorded in `replies` (read without the lock on every delivery).
    pub track_replies: AtomicBool,
    /// Reply subjects this connection may answer (client.go `c.replies`).
    pub replies: Mutex<Option<ReplyTracker>>,
    /// Takes async INFO updates (protocol >= 1 and first PONG sent).
    pub async_info: AtomicBool,
    /// Display form of the peer when it is not a plain IP:port (a SCION
    /// address `[ISD-AS,IP]:port`).
    pub label: Option<String>,
    /// A websocket client (`wid:` in logs, /connz type `websocket`), with the address its
    /// `X-Forwarded-For` named, if any.
    pub websocket: Option<Option<std::net::IpAddr>>,
    /// For routes over SCION with `scion { path_header: true }`: the active
    /// path's fingerprint, added to every forwarded message as the
    /// `Nats-Scion-Path` header.
    pub path_tag: Mutex<Option<Arc<str>>>,
    /// When a PING asked for by monitoring ([`ClientShared::request_rtt`])
    /// was sent; the next PONG sets `meta.rtt`.
    pub rtt_probe: Mutex<Option<Instant>>,
    /// Log prefix once CONNECT named the client: `... - cid:5 - "v1.2:rust:name"`.
    pub named_prefix: Mutex<Option<String>>,
    /// The last accepted CONNECT, re-checked when a config reload changes
    /// authorization (reload.go reloadAuthorization -> isClientAuthorized).
    pub auth_connect: Mutex<Option<ConnectInfo>>,
    /// The nonce of this client's INFO (with nkey users), which its CONNECT signs.
    pub nonce: std::sync::OnceLock<String>,
    /// Permissions a reload assigned; the reader swaps them in when
    /// `perms_reloaded` is set (see `Conn::take_reloaded_perms`).
    pub reloaded_perms: Mutex<Option<Arc<CompiledPerms>>>,
    pub perms_reloaded: AtomicBool,
    /// `max_payload` for this connection's reader; a reload stores the new
    /// value (reload.go maxPayloadOption.Apply sets every client's `mpay`).
    /// 0 = not set (routes use their own limits).
    pub max_payload: AtomicUsize,
}

impl ClientShared {
    pub fn new(cid: u64, kind: ConnKind, peer: SocketAddr, max_pending: usize) -> Self {
        // Go's net package shows a v4-mapped IPv6 peer (a dual-stack `::` listener) as IPv4.
        let peer = match peer {
            SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), a.port()),
                None => peer,
            },
            v4 => v4,
        };
        ClientShared {
            cid,
            kind,
            peer,
            // Only client connections are cut as slow consumers on pending
            // bytes (nats-server queueOutbound checks c.kind == CLIENT);
            // routes slow their producers down and are bounded by the
            // write deadline.
            out: Outbound::with_cut(max_pending, kind == ConnKind::Client),
            headers: AtomicBool::new(false),
            stats: ConnStats::default(),
            start: SystemTime::now(),
            last_activity: AtomicU64::new(0),
            meta: Mutex::new(ConnMeta::default()),
            subs: Mutex::new(HashMap::new()),
            sub_deny: Mutex::new(None),
            track_replies: AtomicBool::new(false),
            replies: Mutex::new(None),
            async_info: AtomicBool::new(false),
            label: None,
            websocket: None,
            path_tag: Mutex::new(None),
            rtt_probe: Mutex::new(None),
            named_prefix: Mutex::new(None),
            auth_connect: Mutex::new(None),
            nonce: std::sync::OnceLock::new(),
            reloaded_perms: Mutex::new(None),
            perms_reloaded: AtomicBool::new(false),
            max_payload: AtomicUsize::new(0),
        }
    }

    /// Sends a PING to measure the RTT when none is known yet, like
    /// nats-server's `getRTT` for /connz (`sendRTTPingLocked`): only for
    /// clients that sent CONNECT with a `lang`, and after our first PONG or
    /// 2 s after accept. True if a PING went out.
    pub fn request_rtt(&self) -> bool {
        {
            let m = lock(&self.meta);
            if m.rtt.is_some() || !m.connected || m.lang.is_empty() {
                return false;
            }
        }
        let settled = self.async_info.load(Ordering::Relaxed)
            || self.start.elapsed().unwrap_or_default() > Duration::from_secs(2);
        let mut probe = lock(&self.rtt_probe);
        if !settled || probe.is_some() {
            return false;
        }
        *probe = Some(Instant::now());
        self.out.send(encode::PING).is_ok()
    }

    /// Sets the display label of the peer (SCION address).
    pub fn with_label(mut self, label: Option<String>) -> Self {
        self.label = label;
        self
    }

    /// Marks a websocket client (see [`ClientShared::websocket`]).
    pub fn with_websocket(mut self, forwarded_for: Option<std::net::IpAddr>) -> Self {
        self.websocket = Some(forwarded_for);
        self
    }

    /// nats-server's log prefix: `127.0.0.1:53412 - cid:5`.
    pub fn log_prefix(&self) -> String {
        if let Some(p) = lock(&self.named_prefix).as_ref() {
            return p.clone();
        }
        // client.go String(): routes are `rid:`, clients `cid:`, websocket clients `wid:`
        // after the address their X-Forwarded-For named (`10.0.0.1/127.0.0.1:5000`).
        let tag = if self.kind == crate::proto::ConnKind::Route {
            "rid"
        } else if self.websocket.is_some() {
            "wid"
        } else {
            "cid"
        };
        match &self.label {
            Some(l) => format!("{} - {tag}:{}", l, self.cid),
            None if matches!(self.websocket, Some(Some(_))) => {
                let fwd = match self.websocket {
                    Some(Some(std::net::IpAddr::V6(a))) => format!("[{a}]"),
                    Some(Some(a)) => a.to_string(),
                    _ => String::new(),
                };
                format!("{fwd}/{} - {tag}:{}", self.peer, self.cid)
            }
            // net.JoinHostPort, as client.go takes RemoteAddr().String(): `[::1]:5000`.
            None => format!("{} - {tag}:{}", self.peer, self.cid),
        }
    }
}

#[cfg(test)]
mod addr_tests {
    use super::*;

    #[test]
    fn log_prefix_writes_addresses_as_go_does() {
        let c = |a: &str| ClientShared::new(7, ConnKind::Client, a.parse().unwrap(), 1024);
        assert_eq!(c("127.0.0.1:5000").log_prefix(), "127.0.0.1:5000 - cid:7");
        assert_eq!(c("[::1]:5000").log_prefix(), "[::1]:5000 - cid:7");
        assert_eq!(
            c("[::ffff:10.0.0.1]:5000").log_prefix(),
            "10.0.0.1:5000 - cid:7"
        );
        let ws = ClientShared::new(8, ConnKind::Client, "[::1]:6000".parse().unwrap(), 1024)
            .with_websocket(Some("10.1.2.3".parse().unwrap()));
        assert_eq!(ws.log_prefix(), "10.1.2.3/[::1]:6000 - wid:8");
    }
}

/// A subscription. Identity is the allocation (two SUBs are two entries
/// even with equal fields).
pub struct Subscription {
    pub client: Arc<ClientShared>,
    pub subject: String,
    pub queue: Option<String>,
    pub sid: Vec<u8>,
    /// 0 = no auto-unsubscribe limit.
    pub max: AtomicU64,
    pub delivered: AtomicU64,
    /// Queue weight announced by a route (1 for local subscriptions).
    pub qw: AtomicU64,
}

/// Pointer-identity handle stored in the sublist.
#[derive(Clone)]
pub struct SubRef(pub Arc<Subscription>);

impl PartialEq for SubRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for SubRef {}
impl Hash for SubRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state)
    }
}
impl std::ops::Deref for SubRef {
    type Target = Subscription;
    fn deref(&self) -> &Subscription {
        &self.0
    }
}

/// Serves one accepted client connection until it closes.
pub async fn run<S: SplitIo>(srv: Arc<ServerState>, stream: S, peer: SocketAddr) {
    run_labeled(srv, stream, peer, None).await
}

/// A reloaded `max_payload` for every connected client (reload.go
/// maxPayloadOption.Apply); each reader uses it from its next read on.
pub fn apply_max_payload(srv: &ServerState, max_payload: usize) {
    for c in super::lock(&srv.clients).values() {
        if c.kind == ConnKind::Client {
            c.max_payload.store(max_payload, Ordering::Relaxed);
        }
    }
}

/// A reloaded, lower `max_connections` (reload.go maxConnOption.Apply): clients beyond it
/// are closed as nats-server's maxConnExceeded closes them (-ERR 'maximum connections
/// exceeded', logged, closed as Maximum Connections Exceeded). nats-server picks them in
/// Go's random map order; the newest go first here, so long-lived clients stay. Returns
/// how many were closed.
pub fn enforce_max_connections(srv: &ServerState, max: i64) -> usize {
    let Ok(max) = usize::try_from(max) else {
        return 0;
    };
    if max == 0 {
        return 0;
    }
    let mut clients: Vec<Arc<ClientShared>> = super::lock(&srv.clients)
        .values()
        .filter(|c| c.kind == ConnKind::Client)
        .cloned()
        .collect();
    if clients.len() <= max {
        return 0;
    }
    clients.sort_unstable_by_key(|c| std::cmp::Reverse(c.cid));
    let excess = clients.len() - max;
    for c in clients.iter().take(excess) {
        max_conn_exceeded(c);
    }
    excess
}

/// client.go maxConnExceeded: sendErrAndErr (traced, then the ERR line), and the close
/// (logged like any other by the connection's task).
fn max_conn_exceeded(c: &ClientShared) {
    super::trace::trace_out_proto(&c.log_prefix(), encode::ERR_MAX_CONNECTIONS);
    error!("{} - maximum connections exceeded", c.log_prefix());
    let _ = c.out.append(encode::ERR_MAX_CONNECTIONS);
    c.out.close(ClosedState::MaxConnectionsExceeded);
}

/// Serves one client connection over any byte stream that splits into
/// reader and writer halves (TCP, a QUIC stream, or [`super::io::Locked`]);
/// `label` names a non-TCP peer (a SCION address) in logs and /connz.
pub async fn run_labeled<S: SplitIo>(
    srv: Arc<ServerState>,
    stream: S,
    peer: SocketAddr,
    label: Option<String>,
) {
    let (shared, opts, info) = open(&srv, peer, label, None);
    let _ = shared.out.append(&info);
    let (rd, wr) = stream.split_io();
    let writer = tokio::spawn(writer_loop(shared.clone(), wr, opts.write_deadline));
    if !admit(&srv, &shared) {
        refuse(&srv, &shared, writer, &opts).await;
        return;
    }
    serve(srv, shared, rd, writer, opts).await
}

/// Serves one client accepted on the TCP port: in clear text, or with client TLS as
/// nats-server 2.9.10 does it (server.go createClient): the INFO goes out in clear text,
/// the client is registered (or refused over `max_connections`, in clear text), then the
/// TLS handshake runs within `tls.timeout`. With `allow_non_tls`, a client whose first
/// byte is not a TLS handshake record (0x16) stays in clear text.
pub async fn run_tcp(srv: Arc<ServerState>, mut stream: tokio::net::TcpStream, peer: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    let Some(tls) = srv.client_tls() else {
        return run(srv, stream, peer).await;
    };
    let (shared, opts, info) = open(&srv, peer, None, Some(&tls));
    // server.go createClient sendProtoNow: the INFO is written before the handshake.
    let sent = tokio::time::timeout(opts.write_deadline, stream.write_all(&info)).await;
    if !matches!(sent, Ok(Ok(()))) {
        srv.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        shared.out.close(ClosedState::WriteError);
        finish_unserved(&srv, &shared, &opts);
        return;
    }
    if !admit(&srv, &shared) {
        let (_, wr) = stream.split_io();
        let writer = tokio::spawn(writer_loop(shared.clone(), wr, opts.write_deadline));
        refuse(&srv, &shared, writer, &opts).await;
        return;
    }
    // Both waits below end early when the connection is closed meanwhile (a shutdown
    // or lame duck mode: nats-server closes the socket under its handshake).
    if tls.allow_non_tls {
        // server.go createClient reads 4 bytes within the TLS timeout; a peek leaves them
        // in the socket for whichever reader comes next.
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            r = tokio::time::timeout(tls.timeout, stream.peek(&mut first)) => r,
            _ = shared.out.closed() => {
                finish_unserved(&srv, &shared, &opts);
                return;
            }
        };
        if !matches!(peeked, Ok(Ok(1))) || first[0] != 0x16 {
            return serve_plain(srv, shared, stream, opts).await;
        }
    }
    let p = shared.log_prefix();
    debug!("{} - Starting TLS client connection handshake", p);
    let local = stream.local_addr();
    let shake = tokio::select! {
        r = tokio::time::timeout(tls.timeout, tls.acceptor.accept(stream)) => r,
        _ = shared.out.closed() => {
            finish_unserved(&srv, &shared, &opts);
            return;
        }
    };
    let stream = match shake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            error!(
                "{} - TLS handshake error: {}",
                p,
                super::tls::handshake_error(&e, true)
            );
            shared.out.close(ClosedState::TlsHandshakeError);
            finish_unserved(&srv, &shared, &opts);
            return;
        }
        Err(_) => {
            super::tls::log_handshake_timeout(&p, "", local, peer);
            shared.out.close(ClosedState::TlsHandshakeError);
            finish_unserved(&srv, &shared, &opts);
            return;
        }
    };
    let (_, conn) = stream.get_ref();
    if let Some(t) = super::tls::log_established(&p, conn) {
        let certs = conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.to_vec()).collect())
            .unwrap_or_default();
        let mut meta = lock(&shared.meta);
        meta.tls = Some(t);
        meta.tls_peer_der = certs;
    }
    let (rd, wr) = super::io::Locked(stream).split_io();
    let writer = tokio::spawn(writer_loop(shared.clone(), wr, opts.write_deadline));
    serve(srv, shared, rd, writer, opts).await
}

/// Serves one connection accepted on the websocket port (websocket.go): TLS first when the
/// port has it, the HTTP upgrade, then a client as on the TCP port, its protocol in
/// websocket frames. The TLS handshake and the upgrade share `handshake_timeout`.
pub async fn run_ws(srv: Arc<ServerState>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let Some(ws) = srv.websocket() else { return };
    let until = tokio::time::Instant::now() + ws.handshake_timeout;
    match &ws.tls {
        None => serve_ws(srv, stream, peer, ws.clone(), until, false).await,
        Some(tls) => {
            let shake = tokio::select! {
                r = tokio::time::timeout_at(until, tls.acceptor.accept(stream)) => r,
                _ = srv.shutdown.notified() => return,
            };
            match shake {
                Ok(Ok(s)) => serve_ws(srv, s, peer, ws.clone(), until, true).await,
                // Go's http.Server logs a failed TLS handshake through its ErrorLog, which
                // nats-server prefixes with "websocket: " (without Go's "http: ").
                Ok(Err(e)) => error!(
                    "websocket: TLS handshake error from {peer}: {}",
                    super::tls::handshake_error(&e, true)
                ),
                Err(_) => {}
            }
        }
    }
}

async fn serve_ws<S>(
    srv: Arc<ServerState>,
    mut stream: S,
    peer: SocketAddr,
    ws: Arc<super::ws::WsListen>,
    until: tokio::time::Instant,
    tls: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let up = tokio::select! {
        r = tokio::time::timeout_at(until, super::ws::handshake(&mut stream, &ws, tls)) => r,
        _ = srv.shutdown.notified() => return,
    };
    let up = match up {
        Ok(Ok(up)) => up,
        Ok(Err(Some(reason))) => {
            error!("{peer} - websocket handshake error: {reason}");
            return;
        }
        Ok(Err(None)) | Err(_) => return,
    };
    // server.go copyInfo: the INFO carries the TCP port's TLS flags.
    let port_tls = srv.client_tls();
    let (shared, opts, info) = open_with(&srv, peer, port_tls.as_deref(), |c| {
        c.with_websocket(up.forwarded_for)
    });
    let ctrl = Arc::new(super::ws::WsControl::default());
    let (rd, wr) = super::io::Locked(stream).split_io();
    let rd = super::ws::WsReader::new(rd, ctrl.clone(), shared.clone(), &up);
    let wr = super::ws::WsWriter::new(wr, ctrl, &up);
    let _ = shared.out.append(&info);
    let writer = tokio::spawn(writer_loop(shared.clone(), wr, opts.write_deadline));
    if !admit(&srv, &shared) {
        refuse(&srv, &shared, writer, &opts).await;
        return;
    }
    serve(srv, shared, rd, writer, opts).await
}

/// A registered client of a TLS port that stays in clear text (`allow_non_tls`).
async fn serve_plain(
    srv: Arc<ServerState>,
    shared: Arc<ClientShared>,
    stream: tokio::net::TcpStream,
    opts: Arc<crate::options::Options>,
) {
    let (rd, wr) = stream.split_io();
    let writer = tokio::spawn(writer_loop(shared.clone(), wr, opts.write_deadline));
    serve(srv, shared, rd, writer, opts).await
}

/// A new client connection's shared state and its INFO line (nats-server createClient up
/// to sendProtoNow).
/// `tls`: the client TLS this connection is served with (its INFO says so; taken once,
/// so a reload meanwhile cannot make the INFO and the connection disagree).
fn open(
    srv: &ServerState,
    peer: SocketAddr,
    label: Option<String>,
    tls: Option<&super::tls::ClientTls>,
) -> (Arc<ClientShared>, Arc<crate::options::Options>, Vec<u8>) {
    open_with(srv, peer, tls, |c| c.with_label(label))
}

/// [`open`] with the new connection's state finished by `make` (a label, websocket).
fn open_with(
    srv: &ServerState,
    peer: SocketAddr,
    tls: Option<&super::tls::ClientTls>,
    make: impl FnOnce(ClientShared) -> ClientShared,
) -> (Arc<ClientShared>, Arc<crate::options::Options>, Vec<u8>) {
    let opts = srv.opts();
    let cid = srv.next_cid();
    let shared = Arc::new(make(ClientShared::new(
        cid,
        ConnKind::Client,
        peer,
        opts.max_pending,
    )));
    shared
        .max_payload
        .store(opts.max_payload, Ordering::Relaxed);
    let mut info = srv.client_info_with_tls(&shared, tls);
    // server.go createClient resets auth_required when a no_auth_user lets clients in;
    // websocket.go createWSClient does not, and adds the websocket override.
    info.auth_required = if shared.websocket.is_some() {
        srv.auth_for(&shared).expects_connect()
    } else {
        srv.auth().required()
    };
    // server.go createClient: the first INFO only carries the nonce to sign.
    if srv.auth_for(&shared).nonce_required() {
        info.nonce = Some(shared.nonce.get_or_init(super::auth::new_nonce).clone());
    }
    let info = info.to_line();
    debug!("{} - Client connection created", shared.log_prefix());
    (shared, opts, info)
}

/// Registers a new client, unless over max_connections (INFO goes first, as in
/// nats-server createClient). False: refused.
fn admit(srv: &ServerState, shared: &Arc<ClientShared>) -> bool {
    let registered = {
        let mut clients = lock(&srv.clients);
        // Clients only (routes share the map; nats-server's s.clients has no routes), and
        // the limit as it is now: a reload may have lowered it since this connection began.
        // The scan runs only when a limit is set, not on every admission.
        let max = srv.opts().max_connections;
        let full = max > 0
            && clients
                .values()
                .filter(|c| c.kind == ConnKind::Client)
                .count() as i64
                >= max;
        if full {
            false
        } else {
            clients.insert(shared.cid, shared.clone());
            true
        }
    };
    if registered {
        srv.close_if_shutting_down(shared);
    }
    srv.stats.total_connections.fetch_add(1, Ordering::Relaxed);
    registered
}

/// A client refused over max_connections: -ERR, logged and recorded as closed.
async fn refuse(
    srv: &ServerState,
    shared: &Arc<ClientShared>,
    writer: tokio::task::JoinHandle<()>,
    opts: &crate::options::Options,
) {
    max_conn_exceeded(shared);
    let _ = writer.await;
    log_close(
        shared,
        ClosedState::MaxConnectionsExceeded,
        opts.max_pending,
    );
    srv.record_closed(shared.closed_snapshot(srv, SystemTime::now(), &[]));
}

/// A client that closed before it was served: registered when its TLS handshake failed or
/// the connection was closed meanwhile, not yet registered when the INFO could not be
/// written. Logged, removed (if registered) and recorded as closed.
fn finish_unserved(srv: &ServerState, shared: &Arc<ClientShared>, opts: &crate::options::Options) {
    let reason = shared
        .out
        .closed_reason()
        .unwrap_or(ClosedState::WriteError);
    log_close(shared, reason, opts.max_pending);
    lock(&srv.clients).remove(&shared.cid);
    srv.record_closed(shared.closed_snapshot(srv, SystemTime::now(), &[]));
}

/// Runs an admitted client's reader until the connection closes, then cleans up.
async fn serve<R>(
    srv: Arc<ServerState>,
    shared: Arc<ClientShared>,
    mut rd: R,
    writer: tokio::task::JoinHandle<()>,
    opts: Arc<crate::options::Options>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let cid = shared.cid;
    shared.out.flush_signal();

    let auth = srv.auth_for(&shared);
    let mut conn = Conn {
        srv: srv.clone(),
        shared: shared.clone(),
        connect: ConnectInfo::default(),
        connected: false,
        awaiting_auth: auth.expects_connect(),
        perms: None,
        pub_cache: PubPermCache::default(),
        pings_out: 0,
        batch: Batch::default(),
        cache: MatchCache::default(),
        limits: ParseLimits {
            max_control_line: opts.max_control_line,
            max_payload: Some(opts.max_payload),
            headers: false,
        },
        read_start: 0,
        line_traced: false,
        max_subs: usize::try_from(opts.max_subscriptions).unwrap_or(0),
        batch_in_msgs: 0,
        batch_subs: 0,
        flush_self: false,
        clock: PingClock::default(),
        batch_in_bytes: 0,
        scratch: Vec::new(),
        urls_gen_at_connect: srv.cluster.urls_generation.load(Ordering::Acquire),
        close_error: None,
    };
    let reason = conn.read_loop(&mut rd, &opts).await;
    shared.out.close(reason);
    let subs = conn.cleanup();
    let _ = writer.await;
    let reason = shared.out.closed_reason().unwrap_or(reason);
    // client.go handleWriteTimeout counts a write-deadline slow consumer,
    // except before CONNECT on a server that expects one.
    if reason == ClosedState::SlowConsumerWriteDeadline && conn.connected {
        srv.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    log_close(&shared, reason, opts.max_pending);
    // closeConnection unsubscribes after its close line (DELSUB traces).
    if tracing::enabled!(tracing::Level::TRACE) {
        let p = shared.log_prefix();
        for s in &subs {
            super::trace_delsub(&p, &s.sid);
        }
    }
    // client.go readLoop: the error a handler returned after closing is logged after
    // the close line.
    if let Some(e) = conn.close_error.take() {
        error!("{} - {}", shared.log_prefix(), e);
    }
    lock(&srv.clients).remove(&cid);
    srv.record_closed(shared.closed_snapshot(&srv, SystemTime::now(), &subs));
    if shared.out.peak_pending() >= super::outbound::TRIM_AFTER_PEAK {
        // The backlog's chunks are freed by now (writer ended, pending
        // discarded); give the memory back off the async threads.
        drop(tokio::task::spawn_blocking(
            super::outbound::release_freed_memory,
        ));
    }
}

/// The gateway reply prefix (gateway.go gwReplyPrefix): reserved for replies routed between
/// superclusters, no client publishes on it.
const GW_REPLY_PREFIX: &[u8] = b"_GR_.";

/// client.go isReservedReply: service-import replies (`_R_.`, even alone), JetStream acks
/// (`$JS.ACK.`) and gateway replies (`_GR_.`), these two followed by at least one more byte.
fn is_reserved_reply(reply: &[u8]) -> bool {
    reply.starts_with(b"_R_.")
        || [&b"$JS.ACK."[..], GW_REPLY_PREFIX]
            .iter()
            .any(|pre| reply.len() > pre.len() && reply.starts_with(pre))
}

fn log_close(shared: &ClientShared, reason: ClosedState, max_pending: usize) {
    let p = shared.log_prefix();
    // The writer logs a write-deadline cut itself, with its figures.
    if reason == ClosedState::SlowConsumerPendingBytes {
        info!(
            "{} - Slow Consumer Detected: MaxPending of {} Exceeded",
            p, max_pending
        );
    }
    debug!("{} - Client connection closed: {}", p, reason);
}

/// The reader's private state.
struct Conn {
    /// An error to log after "Client connection closed" (see run_client).
    close_error: Option<&'static str>,
    srv: Arc<ServerState>,
    shared: Arc<ClientShared>,
    connect: ConnectInfo,
    connected: bool,
    awaiting_auth: bool,
    perms: Option<Arc<CompiledPerms>>,
    /// Publish-permission results by subject (client.go `c.perms.pcache`).
    pub_cache: PubPermCache,
    pings_out: u32,
    /// Writers to wake and counters of this read batch.
    batch: Batch,
    cache: MatchCache,
    limits: ParseLimits,
    /// Where the newest read begins in the read buffer (parser errors count from it,
    /// as nats-server's parser sees one read at a time).
    read_start: usize,
    /// The message operation at the start of the unparsed input has had its
    /// control line traced (its payload had not all come).
    line_traced: bool,
    max_subs: usize,
    batch_in_msgs: u64,
    /// SUB/UNSUB operations of this read batch (client.go `c.in.subs`).
    batch_subs: u32,
    /// Our own writer has protocol replies to send after this batch.
    flush_self: bool,
    /// Inputs of the ping timer's activity check.
    clock: PingClock,
    batch_in_bytes: u64,
    /// Reused buffer for protocol lines built per message.
    scratch: Vec<u8>,
    /// Connect-URL generation when the INFO was sent.
    urls_gen_at_connect: u64,
}

/// Ends the connection with this close state.
struct Close(ClosedState);

impl Conn {
    fn send(&mut self, data: &[u8]) {
        if tracing::enabled!(tracing::Level::TRACE) {
            super::trace::trace_out_proto(&self.shared.log_prefix(), data);
        }
        if self.shared.out.append(data).is_ok() {
            // Not through the batch: protocol replies (PONG, +OK, -ERR) are
            // not message deliveries and do not count as activity
            // (client.go enqueueProto vs flushClients).
            self.flush_self = true;
        }
    }

    /// Sends a protocol line that ends or warns the connection (flushed by
    /// the writer, not counted as a reply), traced under `-V`.
    fn send_proto(&self, data: &[u8]) {
        if tracing::enabled!(tracing::Level::TRACE) {
            super::trace::trace_out_proto(&self.shared.log_prefix(), data);
        }
        let _ = self.shared.out.send(data);
    }

    /// How permission-violation log lines name the user (client.go
    /// getAuthUser): the CONNECT nkey, else the CONNECT user, or the `no_auth_user` the
    /// connection was given, else `User "N/A"`.
    fn auth_user(&self) -> String {
        if let Some(k) = self.connect.nkey.as_deref().filter(|k| !k.is_empty()) {
            return format!("Nkey {}", go_quote(k));
        }
        let connect = self.connect.user.as_deref().filter(|u| !u.is_empty());
        let given = lock(&self.shared.meta)
            .user
            .clone()
            .filter(|u| !u.is_empty());
        match connect.map(str::to_string).or(given) {
            Some(u) => format!("User {}", go_quote(&u)),
            None => "User \"N/A\"".to_string(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.srv.start_instant.elapsed().as_nanos() as u64
    }

    /// Takes the permissions a config reload assigned to this user
    /// (reload.go reloadAuthorization re-registers them on every client).
    fn take_reloaded_perms(&mut self) {
        // A plain load first: no atomic write per message on the hot path.
        if self.shared.perms_reloaded.load(Ordering::Relaxed)
            && self.shared.perms_reloaded.swap(false, Ordering::AcqRel)
        {
            self.perms = lock(&self.shared.reloaded_perms).clone();
            self.pub_cache.clear();
        }
    }

    fn handle_sub(&mut self, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
        self.take_reloaded_perms();
        let (Ok(subject), Ok(queue)) = (
            std::str::from_utf8(subject),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            self.send(encode::ERR_INVALID_SUBJECT);
            return;
        };
        // client.go processSubEx: the `_sys_` queue group is reserved whatever the
        // permissions say.
        let denied = queue == Some("_sys_")
            || self
                .perms
                .as_ref()
                .is_some_and(|p| !p.can_subscribe(subject, queue));
        if denied {
            let text = match queue {
                Some(q) => format!(
                    "Permissions Violation for Subscription to {} using queue {}",
                    go_quote(subject),
                    go_quote(q)
                ),
                None => format!(
                    "Permissions Violation for Subscription to {}",
                    go_quote(subject)
                ),
            };
            // client.go subPermissionViolation.
            let queue_part = queue.map_or(String::new(), |q| format!("Queue: {}, ", go_quote(q)));
            self.send(&encode::err_line(&text));
            error!(
                "{} - Subscription Violation - {}, Subject {}, {}SID {}",
                self.shared.log_prefix(),
                self.auth_user(),
                go_quote(subject),
                queue_part,
                String::from_utf8_lossy(sid)
            );
            return;
        }
        // client.go processSubEx: after the permissions, before the subscription limit.
        let max_tokens = self.srv.opts().max_sub_tokens;
        if max_tokens > 0 && subject.split('.').count() > usize::from(max_tokens) {
            self.send(&encode::err_line(&format!(
                "Permissions Violation for Subscription to {}, too many tokens",
                go_quote(subject)
            )));
            error!(
                "{} - Subscription Violation Too Many Tokens - {}, Subject {}, SID {}",
                self.shared.log_prefix(),
                self.auth_user(),
                go_quote(subject),
                String::from_utf8_lossy(sid)
            );
            return;
        }
        {
            // client.go processSubEx checks the limit before looking up the
            // sid, so a duplicate sid at the limit also gets the -ERR.
            let subs = lock(&self.shared.subs);
            if self.max_subs > 0 && subs.len() >= self.max_subs {
                drop(subs);
                error!(
                    "{} - maximum subscriptions exceeded",
                    self.shared.log_prefix()
                );
                self.send(encode::ERR_MAX_SUBS);
                return;
            }
            if subs.contains_key(sid) {
                // A duplicate sid returns the existing subscription.
                drop(subs);
                if self.connect.verbose {
                    self.send(encode::OK);
                }
                return;
            }
        }
        let sub = SubRef(Arc::new(Subscription {
            client: self.shared.clone(),
            subject: subject.to_string(),
            queue: queue.map(str::to_string),
            sid: sid.to_vec(),
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            qw: AtomicU64::new(1),
        }));
        let inserted = {
            let mut sl = self.srv.sublist.write().unwrap_or_else(|e| e.into_inner());
            let r = sl.insert(subject, queue, sub.clone());
            self.srv.publish_generation(sl.generation());
            r
        };
        if inserted.is_err() {
            self.send(encode::ERR_INVALID_SUBJECT);
            return;
        }
        lock(&self.shared.subs).insert(sid.to_vec(), sub.clone());
        super::cluster::local_interest_changed(&self.srv, &sub, 1);
        if self.connect.verbose {
            self.send(encode::OK);
        }
    }

    fn handle_unsub(&mut self, sid: &[u8], max: Option<i64>) {
        let sub = lock(&self.shared.subs).get(sid).cloned();
        let mut remove = None;
        if let Some(sub) = sub {
            let max = max.unwrap_or(-1);
            let delivered = sub.delivered.load(Ordering::Acquire);
            if max > 0 && (max as u64) > delivered {
                sub.max.store(max as u64, Ordering::Release);
            } else {
                remove = Some(sub);
            }
        }
        // client.go processUnsub: +OK first, then the unsubscribe (its DELSUB trace).
        if self.connect.verbose {
            self.send(encode::OK);
        }
        if let Some(sub) = remove {
            remove_sub_now(&self.srv, &sub);
        }
    }

    fn handle_pub(&mut self, p: PubArgs<'_>, _headers: bool) -> Result<(), Close> {
        self.take_reloaded_perms();
        self.batch_in_msgs += 1;
        self.batch_in_bytes += p.payload.len() as u64;
        let subject = crate::sublist::subject_text(p.subject);
        let subject: &str = &subject;
        if self.connect.pedantic && !crate::sublist::is_literal_subject(subject) {
            self.send(encode::ERR_INVALID_PUB_SUBJECT);
        }
        // client.go processInboundClientMsg: the gateway reply prefix is reserved, then the
        // permissions, then the reserved reply prefixes (service imports, JetStream acks,
        // gateway replies), all before +OK.
        let mut denied =
            p.subject.len() > GW_REPLY_PREFIX.len() && p.subject.starts_with(GW_REPLY_PREFIX);
        if !denied {
            if let Some(perms) = &self.perms {
                denied =
                    !self.pub_cache.can_publish(perms, subject) && !self.reply_allowed(p.subject);
            }
        }
        if denied {
            // Quoted from the subject's own bytes, as Go's %q does.
            let quoted = super::trace::go_quote_bytes(p.subject);
            let text = format!("Permissions Violation for Publish to {quoted}");
            // client.go pubPermissionViolation: sendErr, then the ERR line.
            self.send(&encode::err_line(&text));
            error!(
                "{} - Publish Violation - {}, Subject {}",
                self.shared.log_prefix(),
                self.auth_user(),
                quoted
            );
            return Ok(());
        }
        if let Some(reply) = p.reply.filter(|r| is_reserved_reply(r)) {
            let reply = super::trace::go_quote_bytes(reply);
            // client.go replySubjectViolation.
            let text = format!("Permissions Violation for Publish with Reply of {reply}");
            self.send(&encode::err_line(&text));
            error!(
                "{} - Publish Violation - {}, Reply {}",
                self.shared.log_prefix(),
                self.auth_user(),
                reply
            );
            return Ok(());
        }
        if self.connect.verbose {
            self.send(encode::OK);
        }
        let result = self.cache.lookup(&self.srv, p.subject, subject);
        let msg = Msg {
            subject: p.subject,
            subject_str: subject,
            reply: p.reply,
            hdr_len: p.hdr_len,
            hdr_raw: p.hdr_raw,
            size_raw: p.size_raw,
            payload: p.payload,
        };
        let src = Source::Client {
            me: &self.shared,
            echo: self.connect.echo,
        };
        let delivered = process_msg_results(&self.srv, &mut self.batch, &result, &msg, &src);
        // client.go processInboundClientMsg: the 503 goes out whenever
        // nothing was delivered, also when the only match was our own
        // subscription suppressed by echo:false.
        if !delivered && self.connect.no_responders {
            if let Some(reply) = p.reply {
                self.no_responders(reply);
            }
        }
        Ok(())
    }

    /// A publish the permission lists deny may still answer a request this
    /// connection received (client.go pubAllowedFullCheck with
    /// `c.perms.resp`).
    fn reply_allowed(&self, subject: &[u8]) -> bool {
        if !self.shared.track_replies.load(Ordering::Acquire) {
            return false;
        }
        lock(&self.shared.replies)
            .as_mut()
            .is_some_and(|t| t.allow(subject, Instant::now()))
    }

    fn no_responders(&mut self, reply: &[u8]) {
        let reply_s = crate::sublist::subject_text(reply);
        let r = {
            let sl = self.srv.sublist.read().unwrap_or_else(|e| e.into_inner());
            sl.match_subject(&reply_s)
        };
        let mine = r
            .plain
            .iter()
            .find(|s| Arc::ptr_eq(&s.client, &self.shared))
            .cloned();
        if let Some(sub) = mine {
            self.scratch.clear();
            encode::write_no_responders(&mut self.scratch, reply, &sub.sid);
            let line = std::mem::take(&mut self.scratch);
            self.send(&line);
            self.scratch = line;
        }
    }

    /// Removes every subscription of this connection; returns them for the
    /// closed-connection record.
    fn cleanup(&mut self) -> Vec<SubRef> {
        let subs: Vec<SubRef> = lock(&self.shared.subs).drain().map(|(_, s)| s).collect();
        if subs.is_empty() {
            return subs;
        }
        let mut sl = self.srv.sublist.write().unwrap_or_else(|e| e.into_inner());
        // client.go closeConnection: RemoveBatch, which also clears the match cache.
        let _ = sl.remove_batch(
            subs.iter()
                .map(|s| (s.subject.as_str(), s.queue.as_deref(), s)),
        );
        self.srv.publish_generation(sl.generation());
        drop(sl);
        // client.go closeConnection: plain subscriptions leave one by one, then each queue
        // group once with all of this connection's members (one RS- if they were the last,
        // else one RS+ with the weight left), not an update per member.
        let mut groups: indexmap::IndexMap<(&str, &str), (&SubRef, i32)> = Default::default();
        for s in &subs {
            let Some(q) = s.queue.as_deref() else {
                super::cluster::local_interest_changed(&self.srv, s, -1);
                continue;
            };
            groups.entry((s.subject.as_str(), q)).or_insert((s, 0)).1 += 1;
        }
        for (s, n) in groups.into_values() {
            super::cluster::local_interest_changed(&self.srv, s, -n);
        }
        subs
    }
}
