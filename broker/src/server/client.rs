//! One client connection: read loop, protocol handling, delivery, writer.
//!
//! Behaviour follows nats-server 2.9.10 `server/client.go`. Each connection
//! runs a reader (this module's [`run`]) and a writer task. Delivery appends
//! to the receiver's [`Outbound`] buffer from the publisher's task and wakes
//! the receiver's writer once per read batch.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, error, info, trace};

use super::auth::{go_quote, CompiledPerms};
use super::closed::ClosedState;
use super::deliver::{process_msg_results, Batch, MatchCache, Msg, Source};
use super::outbound::Outbound;
use super::{lock, remove_sub_now, ServerState};
use crate::proto::encode;
use crate::proto::json::ConnectInfo;
use crate::proto::{parse_op, ConnKind, Op, ParseError, ParseLimits, PubArgs, Step};

/// Initial read buffer; grows to [`MAX_READ_BUF`] under load like
/// nats-server's dynamic read buffer (`startBufSize` .. `maxBufSize`).
const START_READ_BUF: usize = 512;
const MAX_READ_BUF: usize = 64 * 1024;
/// Upper bound of the delay before a client's first PING (nats-server
/// `firstClientPingInterval`).
const FIRST_CLIENT_PING_INTERVAL: Duration = Duration::from_secs(2);

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
    pub user: Option<String>,
    pub rtt: Option<Duration>,
    pub connected: bool,
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
    /// Takes async INFO updates (protocol >= 1 and first PONG sent).
    pub async_info: AtomicBool,
    /// Display form of the peer when it is not a plain IP:port (a SCION
    /// address `[ISD-AS,IP]:port`).
    pub label: Option<String>,
    /// For routes over SCION with `scion { path_header: true }`: the active
    /// path's fingerprint, added to every forwarded message as the
    /// `Nats-Scion-Path` header.
    pub path_tag: Mutex<Option<Arc<str>>>,
    /// When a PING asked for by monitoring ([`ClientShared::request_rtt`])
    /// was sent; the next PONG sets `meta.rtt`.
    pub rtt_probe: Mutex<Option<Instant>>,
}

impl ClientShared {
    pub fn new(cid: u64, kind: ConnKind, peer: SocketAddr, max_pending: usize) -> Self {
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
            async_info: AtomicBool::new(false),
            label: None,
            path_tag: Mutex::new(None),
            rtt_probe: Mutex::new(None),
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

    /// nats-server's log prefix: `127.0.0.1:53412 - cid:5`.
    pub fn log_prefix(&self) -> String {
        match &self.label {
            Some(l) => format!("{} - cid:{}", l, self.cid),
            None => format!("{}:{} - cid:{}", self.peer.ip(), self.peer.port(), self.cid),
        }
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

/// A /connz row, taken at close time for closed connections.
#[derive(Debug, Clone)]
pub struct ConnSnapshot {
    pub cid: u64,
    pub kind: ConnKind,
    pub ip: String,
    pub port: u16,
    pub start: SystemTime,
    pub last_activity: SystemTime,
    pub stop: Option<SystemTime>,
    pub reason: Option<ClosedState>,
    pub rtt: Option<Duration>,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    pub subs_list: Vec<String>,
    pub name: String,
    pub lang: String,
    pub version: String,
    pub user: Option<String>,
}

impl ClientShared {
    pub fn snapshot(&self, srv: &ServerState, stop: Option<SystemTime>) -> ConnSnapshot {
        let meta = lock(&self.meta).clone();
        let subs = lock(&self.subs);
        let subs_list = subs.values().map(|s| s.subject.clone()).collect();
        let la = self.last_activity.load(Ordering::Relaxed);
        ConnSnapshot {
            cid: self.cid,
            kind: self.kind,
            ip: self.peer.ip().to_string(),
            port: self.peer.port(),
            start: self.start,
            last_activity: srv.start_time + Duration::from_nanos(la),
            stop,
            reason: if stop.is_some() {
                self.out.closed_reason()
            } else {
                None
            },
            rtt: meta.rtt,
            pending_bytes: self.out.pending(),
            in_msgs: self.stats.in_msgs.load(Ordering::Relaxed),
            out_msgs: self.stats.out_msgs.load(Ordering::Relaxed),
            in_bytes: self.stats.in_bytes.load(Ordering::Relaxed),
            out_bytes: self.stats.out_bytes.load(Ordering::Relaxed),
            subscriptions: subs.len(),
            subs_list,
            name: meta.name,
            lang: meta.lang,
            version: meta.version,
            user: meta.user,
        }
    }
}

/// Serves one accepted client connection until it closes.
pub async fn run<S>(srv: Arc<ServerState>, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    run_labeled(srv, stream, peer, None).await
}

/// Serves one client connection over any byte stream; `label` names a
/// non-TCP peer (a SCION address) in logs and /connz.
pub async fn run_labeled<S>(
    srv: Arc<ServerState>,
    stream: S,
    peer: SocketAddr,
    label: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let opts = srv.opts();
    let cid = srv.next_cid();
    let shared = Arc::new(
        ClientShared::new(cid, ConnKind::Client, peer, opts.max_pending).with_label(label),
    );
    let info = srv.client_info_for(&shared).to_line();
    let _ = shared.out.append(&info);
    debug!("{} - Client connection created", shared.log_prefix());

    let (mut rd, wr) = tokio::io::split(stream);
    let writer = tokio::spawn(writer_loop(shared.clone(), wr, opts.write_deadline));

    // Register, unless over max_connections (INFO goes first, as in
    // nats-server createClient).
    let registered = {
        let mut clients = lock(&srv.clients);
        if opts.max_connections > 0 && clients.len() >= opts.max_connections {
            false
        } else {
            clients.insert(cid, shared.clone());
            true
        }
    };
    srv.stats.total_connections.fetch_add(1, Ordering::Relaxed);
    if !registered {
        error!(
            "{} - {}",
            shared.log_prefix(),
            "maximum connections exceeded"
        );
        let _ = shared.out.append(encode::ERR_MAX_CONNECTIONS);
        shared.out.close(ClosedState::MaxConnectionsExceeded);
        let _ = writer.await;
        srv.record_closed(shared.snapshot(&srv, Some(SystemTime::now())));
        return;
    }
    shared.out.flush_signal();

    let auth = srv.auth();
    let mut conn = Conn {
        srv: srv.clone(),
        shared: shared.clone(),
        connect: ConnectInfo::default(),
        connected: false,
        awaiting_auth: auth.expects_connect(),
        perms: None,
        pings_out: 0,
        batch: Batch::default(),
        cache: MatchCache::default(),
        limits: ParseLimits {
            max_control_line: opts.max_control_line,
            max_payload: Some(opts.max_payload),
        },
        max_subs: opts.max_subscriptions,
        batch_in_msgs: 0,
        batch_in_bytes: 0,
        scratch: Vec::new(),
        urls_gen_at_connect: srv.cluster.urls_generation.load(Ordering::Acquire),
    };
    let reason = conn.read_loop(&mut rd, &opts).await;
    shared.out.close(reason);
    conn.cleanup();
    let _ = writer.await;
    let reason = shared.out.closed_reason().unwrap_or(reason);
    log_close(&shared, reason, opts.max_pending);
    lock(&srv.clients).remove(&cid);
    srv.record_closed(shared.snapshot(&srv, Some(SystemTime::now())));
}

fn log_close(shared: &ClientShared, reason: ClosedState, max_pending: usize) {
    let p = shared.log_prefix();
    match reason {
        ClosedState::SlowConsumerPendingBytes => {
            info!(
                "{} - Slow Consumer Detected: MaxPending of {} Exceeded",
                p, max_pending
            );
        }
        ClosedState::SlowConsumerWriteDeadline => {
            info!("{} - Slow Consumer Detected: WriteDeadline exceeded", p);
        }
        _ => {}
    }
    debug!("{} - Client connection closed: {}", p, reason);
}

pub(crate) async fn writer_loop<W>(shared: Arc<ClientShared>, mut wr: W, deadline: Duration)
where
    W: AsyncWrite + Unpin,
{
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let closed = shared.out.take(&mut buf);
        if !buf.is_empty() {
            // A slow-consumer cut discards what is pending; do not push it.
            if closed == Some(ClosedState::SlowConsumerPendingBytes) {
                break;
            }
            match tokio::time::timeout(deadline, wr.write_all(&buf)).await {
                Ok(Ok(())) => shared.out.written(),
                Ok(Err(_)) => {
                    shared.out.close(ClosedState::WriteError);
                    shared.out.discard();
                    break;
                }
                Err(_) => {
                    shared.out.close(ClosedState::SlowConsumerWriteDeadline);
                    shared.out.discard();
                    break;
                }
            }
            buf.clear();
            if buf.capacity() > MAX_READ_BUF * 4 {
                buf = Vec::new();
            }
            continue;
        }
        if closed.is_some() {
            break;
        }
        shared.out.wait().await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), wr.shutdown()).await;
}

/// The reader's private state.
struct Conn {
    srv: Arc<ServerState>,
    shared: Arc<ClientShared>,
    connect: ConnectInfo,
    connected: bool,
    awaiting_auth: bool,
    perms: Option<Arc<CompiledPerms>>,
    pings_out: u32,
    /// Writers to wake and counters of this read batch.
    batch: Batch,
    cache: MatchCache,
    limits: ParseLimits,
    max_subs: usize,
    batch_in_msgs: u64,
    batch_in_bytes: u64,
    /// Reused buffer for protocol lines built per message.
    scratch: Vec<u8>,
    /// Connect-URL generation when the INFO was sent.
    urls_gen_at_connect: u64,
}

/// Ends the connection with this close state.
struct Close(ClosedState);

impl Conn {
    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        opts: &crate::options::Options,
    ) -> ClosedState {
        let mut rbuf = BytesMut::with_capacity(START_READ_BUF);
        let mut read_target = START_READ_BUF;
        // nats-server sends a client its first PING early, after
        // min(ping_interval, 2s) plus up to 20% jitter (client.go
        // setFirstPingTimer, server.go firstClientPingInterval), then one
        // every ping_interval.
        let first = opts.ping_interval.min(FIRST_CLIENT_PING_INTERVAL);
        let jitter = first.mul_f64(rand::random_range(0.0..0.2));
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + first + jitter,
            opts.ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let auth_timeout = opts
            .authorization
            .timeout
            .unwrap_or(crate::options::DEFAULT_AUTH_TIMEOUT);
        let auth_deadline = tokio::time::sleep(auth_timeout);
        tokio::pin!(auth_deadline);
        let mut last_ping_sent: Option<Instant> = None;
        loop {
            // Read size grows while reads fill the space offered (busy
            // connection) and shrinks when they stay small (idle one), like
            // nats-server's dynamic read buffer; always offer the full
            // target so a leftover partial message never forces tiny reads.
            if rbuf.capacity() - rbuf.len() < read_target {
                rbuf.reserve(read_target);
            }
            let offered = rbuf.capacity() - rbuf.len();
            tokio::select! {
                biased;
                _ = self.shared.out.closed() => {
                    return self.shared.out.closed_reason().unwrap_or(ClosedState::ServerShutdown);
                }
                r = rd.read_buf(&mut rbuf) => {
                    match r {
                        Ok(0) => return ClosedState::ClientClosed,
                        Err(_) => return ClosedState::ReadError,
                        Ok(n) => {
                            if n >= offered && read_target < MAX_READ_BUF {
                                read_target = (read_target * 2).min(MAX_READ_BUF);
                            } else if n < read_target / 4 && read_target > START_READ_BUF {
                                read_target /= 2;
                            }
                            let now_ns = self.srv.start_instant.elapsed().as_nanos() as u64;
                            self.shared.last_activity.store(now_ns, Ordering::Relaxed);
                            let res = self.process(&mut rbuf);
                            self.end_batch();
                            if let Err(Close(reason)) = res {
                                return reason;
                            }
                            // Fast-producer stall (nats-server stalledWait):
                            // a consumer above half its pending limit slows
                            // this publisher instead of being cut at once.
                            for c in self.batch.take_stalled() {
                                let ttl = c.out.stall_duration();
                                if tokio::time::timeout(ttl, c.out.unstalled()).await.is_err() {
                                    debug!("{} - Timed out of fast producer stall ({:?})", self.shared.log_prefix(), ttl);
                                }
                            }
                        }
                    }
                }
                _ = ping.tick() => {
                    if self.pings_out + 1 > opts.ping_max {
                        debug!("{} - Stale Client Connection - Closing", self.shared.log_prefix());
                        let _ = self.shared.out.send(encode::ERR_STALE);
                        return ClosedState::StaleConnection;
                    }
                    self.pings_out += 1;
                    last_ping_sent = Some(Instant::now());
                    let _ = self.shared.out.send(encode::PING);
                }
                _ = &mut auth_deadline, if self.awaiting_auth && !self.connected => {
                    error!("{} - Authentication Timeout", self.shared.log_prefix());
                    let _ = self.shared.out.send(encode::ERR_AUTH_TIMEOUT);
                    return ClosedState::AuthenticationTimeout;
                }
            }
            if self.pings_out == 0 {
                if let Some(sent) = last_ping_sent.take() {
                    lock(&self.shared.meta).rtt = Some(sent.elapsed());
                }
            }
        }
    }

    /// Parses and handles every complete operation in `rbuf`.
    fn process(&mut self, rbuf: &mut BytesMut) -> Result<(), Close> {
        let mut pos = 0;
        let res = loop {
            let buf = &rbuf[pos..];
            if buf.is_empty() {
                break Ok(());
            }
            if self.awaiting_auth && !self.connected && !matches!(buf[0], b'C' | b'c') {
                // nats-server checks the first byte of the first operation
                // (parser.go OP_START with authSet).
                match self.srv.auth().no_auth_user() {
                    Some(r) => self.authenticated(r),
                    None => break Err(self.auth_violation()),
                }
            }
            match parse_op(buf, ConnKind::Client, &self.limits) {
                Ok(Step::Op { op, consumed }) => {
                    pos += consumed;
                    if let Err(c) = self.handle(op) {
                        break Err(c);
                    }
                }
                Ok(Step::Incomplete { total_hint }) => {
                    if let Some(total) = total_hint {
                        if total > rbuf.capacity() - pos {
                            rbuf.reserve(total - (rbuf.len() - pos));
                        }
                    }
                    break Ok(());
                }
                Err(e) => break Err(self.parse_error(e, buf)),
            }
        };
        rbuf.advance(pos);
        res
    }

    fn parse_error(&mut self, e: ParseError, buf: &[u8]) -> Close {
        if let Some(line) = e.err_line() {
            let _ = self.shared.out.send(line);
        }
        let snip = String::from_utf8_lossy(&buf[..buf.len().min(32)]).to_string();
        match e {
            ParseError::MaxPayload => {
                error!(
                    "{} - {}",
                    self.shared.log_prefix(),
                    "Maximum Payload Violation"
                );
                Close(ClosedState::MaxPayloadExceeded)
            }
            ParseError::MaxControlLine => {
                error!(
                    "{} - maximum control line exceeded (max_control_line {})",
                    self.shared.log_prefix(),
                    self.limits.max_control_line
                );
                Close(ClosedState::MaxControlLineExceeded)
            }
            ParseError::UnknownOp => {
                error!(
                    "{} - Client parser ERROR, proto={:?}",
                    self.shared.log_prefix(),
                    snip
                );
                Close(ClosedState::ParseError)
            }
            ParseError::BadArgs(what) => {
                error!(
                    "{} - {}: {:?}",
                    self.shared.log_prefix(),
                    what,
                    snip.lines().next().unwrap_or("")
                );
                Close(ClosedState::ProtocolViolation)
            }
        }
    }

    fn auth_violation(&mut self) -> Close {
        let user = self.connect.user.clone().unwrap_or_default();
        if user.is_empty() {
            error!("{} - authentication error", self.shared.log_prefix());
        } else {
            error!(
                "{} - authentication error - User {}",
                self.shared.log_prefix(),
                go_quote(&user)
            );
        }
        let _ = self.shared.out.send(encode::ERR_AUTH_VIOLATION);
        Close(ClosedState::AuthenticationViolation)
    }

    fn authenticated(&mut self, r: super::auth::AuthResult) {
        self.connected = true;
        self.awaiting_auth = false;
        self.perms = r.perms.map(Arc::new);
        // Replace (or clear) the delivery-time deny filter: a re-CONNECT may
        // switch to a user without subscribe permissions.
        *lock(&self.shared.sub_deny) = self
            .perms
            .as_ref()
            .filter(|p| p.subscribe.is_some())
            .cloned();
        let mut m = lock(&self.shared.meta);
        m.user = r.user;
        m.connected = true;
    }

    fn send(&mut self, data: &[u8]) {
        if self.shared.out.append(data).is_ok() {
            self.mark_flush_self();
        }
    }

    fn mark_flush_self(&mut self) {
        let me = self.shared.clone();
        self.batch.mark(&me);
    }

    fn end_batch(&mut self) {
        self.batch.finish(&self.srv);
        let st = &self.srv.stats;
        if self.batch_in_msgs > 0 {
            self.shared
                .stats
                .in_msgs
                .fetch_add(self.batch_in_msgs, Ordering::Relaxed);
            self.shared
                .stats
                .in_bytes
                .fetch_add(self.batch_in_bytes, Ordering::Relaxed);
            st.in_msgs.fetch_add(self.batch_in_msgs, Ordering::Relaxed);
            st.in_bytes
                .fetch_add(self.batch_in_bytes, Ordering::Relaxed);
            self.batch_in_msgs = 0;
            self.batch_in_bytes = 0;
        }
    }

    fn handle(&mut self, op: Op<'_>) -> Result<(), Close> {
        match op {
            Op::Pub(p) => self.handle_pub(p, false),
            Op::HPub(p) => {
                if !self.shared.headers.load(Ordering::Relaxed) {
                    // processHeaderPub returns ErrMsgHeadersNotSupported:
                    // the connection closes without an -ERR.
                    error!(
                        "{} - message headers not supported",
                        self.shared.log_prefix()
                    );
                    return Err(Close(ClosedState::ProtocolViolation));
                }
                self.handle_pub(p, true)
            }
            Op::Sub {
                subject,
                queue,
                sid,
            } => {
                self.handle_sub(subject, queue, sid);
                Ok(())
            }
            Op::Unsub { sid, max } => {
                self.handle_unsub(sid, max);
                Ok(())
            }
            Op::Ping => {
                self.handle_ping();
                Ok(())
            }
            Op::Pong => {
                self.pings_out = 0;
                if let Some(sent) = lock(&self.shared.rtt_probe).take() {
                    lock(&self.shared.meta).rtt = Some(sent.elapsed());
                }
                Ok(())
            }
            Op::Connect(json) => self.handle_connect(json),
            Op::Info(_) | Op::Ok => Ok(()),
            Op::Err(text) => {
                error!(
                    "{} - Client Error {}",
                    self.shared.log_prefix(),
                    String::from_utf8_lossy(text)
                );
                Err(Close(ClosedState::ParseError))
            }
            // Route operations never reach a client parser.
            _ => Err(Close(ClosedState::ProtocolViolation)),
        }
    }

    /// PONG, and on the first PING of a protocol-1 client an INFO first if
    /// the cluster's connect URLs changed since it connected
    /// (nats-server `processPing`).
    fn handle_ping(&mut self) {
        if self.connected
            && self.connect.protocol >= 1
            && !self.shared.async_info.load(Ordering::Acquire)
        {
            self.shared.async_info.store(true, Ordering::Release);
            let gen = self.srv.cluster.urls_generation.load(Ordering::Acquire);
            if gen != self.urls_gen_at_connect {
                let line = self.srv.client_info_for(&self.shared).to_line();
                self.send(&line);
            }
        }
        self.send(encode::PONG);
    }

    fn handle_connect(&mut self, json: &[u8]) -> Result<(), Close> {
        // Like nats-server, the document is applied on top of the current
        // options (a second CONNECT keeps what it omits); bad JSON closes
        // without an -ERR.
        if let Err(e) = self.connect.merge_client_json(json) {
            error!("{} - processConnect: {}", self.shared.log_prefix(), e);
            return Err(Close(ClosedState::ProtocolViolation));
        }
        // Every CONNECT is authenticated again (client.go processConnect
        // calls checkAuthentication each time): a second CONNECT with bad
        // credentials closes, one naming another user switches permissions.
        let auth = self.srv.auth();
        match auth.check(&self.connect) {
            Some(r) => self.authenticated(r),
            None => return Err(self.auth_violation()),
        }
        // Naming an account (or asking for a new one) is an authorization
        // violation without operator/account config (client.go
        // processConnect: "Now its considered an error").
        if self.connect.new_account
            || self
                .connect
                .account
                .as_deref()
                .is_some_and(|a| !a.is_empty())
        {
            return Err(self.auth_violation());
        }
        let proto = self.connect.protocol;
        if !(0..=1).contains(&proto) {
            let _ = self.shared.out.send(encode::ERR_BAD_PROTOCOL);
            return Err(Close(ClosedState::BadClientProtocolVersion));
        }
        if self.connect.no_responders && !self.connect.headers {
            let _ = self.shared.out.send(encode::ERR_NO_RESPONDERS_HEADERS);
            return Err(Close(ClosedState::NoRespondersRequiresHeaders));
        }
        self.shared
            .headers
            .store(self.connect.headers, Ordering::Relaxed);
        {
            let mut m = lock(&self.shared.meta);
            m.name = self.connect.name.clone().unwrap_or_default();
            m.lang = self.connect.lang.clone().unwrap_or_default();
            m.version = self.connect.version.clone().unwrap_or_default();
        }
        if self.connect.verbose {
            self.send(encode::OK);
        }
        Ok(())
    }

    fn handle_sub(&mut self, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
        let (Ok(subject), Ok(queue)) = (
            std::str::from_utf8(subject),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            self.send(encode::ERR_INVALID_SUBJECT);
            return;
        };
        if let Some(p) = &self.perms {
            if !p.can_subscribe(subject, queue) {
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
                error!(
                    "{} - Subscription Violation - User {}, Subject {}, SID {}",
                    self.shared.log_prefix(),
                    go_quote(self.connect.user.as_deref().unwrap_or("")),
                    go_quote(subject),
                    String::from_utf8_lossy(sid)
                );
                self.send(&encode::err_line(&text));
                return;
            }
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
        if let Some(sub) = sub {
            let max = max.unwrap_or(-1);
            let delivered = sub.delivered.load(Ordering::Acquire);
            if max > 0 && (max as u64) > delivered {
                sub.max.store(max as u64, Ordering::Release);
            } else {
                remove_sub_now(&self.srv, &sub);
            }
        }
        if self.connect.verbose {
            self.send(encode::OK);
        }
    }

    fn handle_pub(&mut self, p: PubArgs<'_>, _headers: bool) -> Result<(), Close> {
        self.batch_in_msgs += 1;
        self.batch_in_bytes += p.payload.len() as u64;
        let Ok(subject) = std::str::from_utf8(p.subject) else {
            if self.connect.pedantic {
                self.send(encode::ERR_INVALID_PUB_SUBJECT);
            }
            return Ok(());
        };
        if self.connect.pedantic && !crate::sublist::is_valid_literal_subject(subject) {
            self.send(encode::ERR_INVALID_PUB_SUBJECT);
        }
        if let Some(perms) = &self.perms {
            if !perms.can_publish(subject) {
                let text = format!("Permissions Violation for Publish to {}", go_quote(subject));
                error!(
                    "{} - Publish Violation - User {}, Subject {}",
                    self.shared.log_prefix(),
                    go_quote(self.connect.user.as_deref().unwrap_or("")),
                    go_quote(subject)
                );
                self.send(&encode::err_line(&text));
                return Ok(());
            }
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

    fn no_responders(&mut self, reply: &[u8]) {
        let Ok(reply_s) = std::str::from_utf8(reply) else {
            return;
        };
        let r = {
            let sl = self.srv.sublist.read().unwrap_or_else(|e| e.into_inner());
            sl.match_subject(reply_s)
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

    /// Removes every subscription of this connection.
    fn cleanup(&mut self) {
        let subs: Vec<SubRef> = lock(&self.shared.subs).drain().map(|(_, s)| s).collect();
        if subs.is_empty() {
            return;
        }
        let mut sl = self.srv.sublist.write().unwrap_or_else(|e| e.into_inner());
        for s in &subs {
            let _ = sl.remove(&s.subject, s.queue.as_deref(), s);
        }
        self.srv.publish_generation(sl.generation());
        drop(sl);
        for s in &subs {
            super::cluster::local_interest_changed(&self.srv, s, -1);
        }
        trace!(
            "{} - removed {} subscriptions",
            self.shared.log_prefix(),
            subs.len()
        );
    }
}
