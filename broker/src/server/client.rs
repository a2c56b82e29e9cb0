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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tracing::{debug, error, info, trace};

use super::auth::{go_quote, CompiledPerms, ReplyTracker};
use super::closed::ClosedState;
use super::deliver::{process_msg_results, Batch, MatchCache, Msg, Source};
pub(crate) use super::outbound::writer_loop;
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
/// A PING is sent regardless of activity when the last one went out longer
/// ago than this (nats-server `DEFAULT_RTT_MEASUREMENT_INTERVAL`).
const RTT_MEASUREMENT_INTERVAL: Duration = Duration::from_secs(3600);

/// Times (nanoseconds since server start) the ping timer looks at.
#[derive(Debug, Clone, Copy, Default)]
struct PingClock {
    /// Last activity: CONNECT, a read with messages or (un)subscriptions, or
    /// messages delivered to the connection (client.go `c.last`).
    last: u64,
    /// Last PING received from the client (`c.ping.last`).
    ping_in: Option<u64>,
    /// Last PING we sent (`c.rttStart`).
    rtt_start: Option<u64>,
    /// An RTT estimate exists (nats-server sets one at CONNECT).
    rtt_known: bool,
}

/// Why the ping timer does not send a PING this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PingSkip {
    /// Client activity this long ago.
    Activity(Duration),
    /// The client's own PING this long ago.
    RemotePing(Duration),
}

/// client.go `processPingTimer` for a CLIENT: no PING is needed when the
/// connection had activity, or the client pinged us, within the interval,
/// unless an RTT measurement is due (none yet, or the last PING we sent is
/// over an hour old). Pure: `now` is nanoseconds since server start.
fn ping_skip(now: u64, c: &PingClock, interval: Duration) -> Option<PingSkip> {
    let hour = RTT_MEASUREMENT_INTERVAL.as_nanos() as u64;
    let need_rtt = !c.rtt_known || c.rtt_start.is_none_or(|t| now.saturating_sub(t) > hour);
    if need_rtt {
        return None;
    }
    let iv = interval.as_nanos() as u64;
    let since = |t: u64| now.saturating_sub(t);
    if since(c.last) < iv {
        return Some(PingSkip::Activity(Duration::from_nanos(since(c.last))));
    }
    match c.ping_in {
        Some(p) if since(p) < iv => Some(PingSkip::RemotePing(Duration::from_nanos(since(p)))),
        _ => None,
    }
}

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
    /// For routes over SCION with `scion { path_header: true }`: the active
    /// path's fingerprint, added to every forwarded message as the
    /// `Nats-Scion-Path` header.
    pub path_tag: Mutex<Option<Arc<str>>>,
    /// When a PING asked for by monitoring ([`ClientShared::request_rtt`])
    /// was sent; the next PONG sets `meta.rtt`.
    pub rtt_probe: Mutex<Option<Instant>>,
    /// Log prefix once CONNECT named the client: `... - cid:5 - "v1.2:rust:name"`.
    pub named_prefix: Mutex<Option<String>>,
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
            track_replies: AtomicBool::new(false),
            replies: Mutex::new(None),
            async_info: AtomicBool::new(false),
            label: None,
            path_tag: Mutex::new(None),
            rtt_probe: Mutex::new(None),
            named_prefix: Mutex::new(None),
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
        if let Some(p) = lock(&self.named_prefix).as_ref() {
            return p.clone();
        }
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
        batch_subs: 0,
        flush_self: false,
        clock: PingClock::default(),
        batch_in_bytes: 0,
        scratch: Vec::new(),
        urls_gen_at_connect: srv.cluster.urls_generation.load(Ordering::Acquire),
    };
    let reason = conn.read_loop(&mut rd, &opts).await;
    shared.out.close(reason);
    conn.cleanup();
    let _ = writer.await;
    let reason = shared.out.closed_reason().unwrap_or(reason);
    // client.go handleWriteTimeout counts a write-deadline slow consumer,
    // except before CONNECT on a server that expects one.
    if reason == ClosedState::SlowConsumerWriteDeadline && conn.connected {
        srv.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    log_close(&shared, reason, opts.max_pending);
    lock(&srv.clients).remove(&cid);
    srv.record_closed(shared.snapshot(&srv, Some(SystemTime::now())));
    if shared.out.peak_pending() >= super::outbound::TRIM_AFTER_PEAK {
        // The backlog's chunks are freed by now (writer ended, pending
        // discarded); give the memory back off the async threads.
        drop(tokio::task::spawn_blocking(
            super::outbound::release_freed_memory,
        ));
    }
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
                            if let Err(Close(reason)) = self.process_read(&mut rbuf).await {
                                return reason;
                            }
                        }
                    }
                }
                _ = ping.tick() => {
                    let now = self.now_ns();
                    self.clock.last = self.shared.last_activity.load(Ordering::Relaxed);
                    match ping_skip(now, &self.clock, opts.ping_interval) {
                        Some(PingSkip::Activity(d)) => {
                            debug!("{} - Delaying PING due to client activity {:?} ago", self.shared.log_prefix(), d);
                            continue;
                        }
                        Some(PingSkip::RemotePing(d)) => {
                            debug!("{} - Delaying PING due to remote ping {:?} ago", self.shared.log_prefix(), d);
                            continue;
                        }
                        None => {}
                    }
                    if self.pings_out + 1 > opts.ping_max {
                        debug!("{} - Stale Client Connection - Closing", self.shared.log_prefix());
                        let _ = self.shared.out.send(encode::ERR_STALE);
                        return ClosedState::StaleConnection;
                    }
                    self.pings_out += 1;
                    self.clock.rtt_start = Some(now);
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

    /// Handles what one read brought. A message that found a consumer
    /// above half its pending limit makes this publisher wait before the
    /// next operation (client.go deliverMsg calls stalledWait for every
    /// message to a stalled consumer, so a fast producer is slowed message
    /// by message rather than once per read).
    async fn process_read(&mut self, rbuf: &mut BytesMut) -> Result<(), Close> {
        loop {
            let res = self.process(rbuf);
            if self.end_batch() {
                let now = self.now_ns();
                self.shared.last_activity.store(now, Ordering::Relaxed);
            }
            if !res? {
                return Ok(());
            }
            let prefix = self.shared.log_prefix();
            self.batch.wait_stalled(&prefix).await;
            if self.shared.out.is_closing() {
                return Ok(());
            }
        }
    }

    /// Parses and handles the complete operations in `rbuf`, stopping early
    /// (returning true) after a message that found a stalled consumer.
    fn process(&mut self, rbuf: &mut BytesMut) -> Result<bool, Close> {
        let mut pos = 0;
        let res = loop {
            let buf = &rbuf[pos..];
            if buf.is_empty() {
                break Ok(false);
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
                    if self.batch.has_stalled() {
                        break Ok(true);
                    }
                }
                Ok(Step::Incomplete { total_hint }) => {
                    if let Some(total) = total_hint {
                        if total > rbuf.capacity() - pos {
                            rbuf.reserve(total - (rbuf.len() - pos));
                        }
                    }
                    break Ok(false);
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
        // client.go setPermissions: every (re-)CONNECT starts a fresh reply
        // map when the user has response permissions.
        let tracker = self
            .perms
            .as_ref()
            .and_then(|p| p.responses)
            .map(ReplyTracker::new);
        self.shared
            .track_replies
            .store(tracker.is_some(), Ordering::Release);
        *lock(&self.shared.replies) = tracker;
        let mut m = lock(&self.shared.meta);
        m.user = r.user;
        m.connected = true;
    }

    fn send(&mut self, data: &[u8]) {
        if self.shared.out.append(data).is_ok() {
            // Not through the batch: protocol replies (PONG, +OK, -ERR) are
            // not message deliveries and do not count as activity
            // (client.go enqueueProto vs flushClients).
            self.flush_self = true;
        }
    }

    /// Wakes the writers of this read batch and folds its counters. Returns
    /// whether the batch counts as client activity (client.go readLoop:
    /// messages or (un)subscriptions).
    fn end_batch(&mut self) -> bool {
        let active = self.batch_in_msgs > 0 || self.batch_subs > 0;
        self.batch_subs = 0;
        self.batch.finish(&self.srv);
        if std::mem::take(&mut self.flush_self) {
            self.shared.out.flush_signal();
        }
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
        active
    }

    fn now_ns(&self) -> u64 {
        self.srv.start_instant.elapsed().as_nanos() as u64
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
                self.batch_subs += 1;
                self.handle_sub(subject, queue, sid);
                Ok(())
            }
            Op::Unsub { sid, max } => {
                self.batch_subs += 1;
                self.handle_unsub(sid, max);
                Ok(())
            }
            Op::Ping => {
                // client.go processPing: a client's PING makes ours
                // unnecessary for an interval.
                self.clock.ping_in = Some(self.now_ns());
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
        // Named before authentication, so an auth error names the client.
        self.name_log_prefix();
        // Every CONNECT is authenticated again (client.go processConnect
        // calls checkAuthentication each time): a second CONNECT with bad
        // credentials closes, one naming another user switches permissions.
        let auth = self.srv.auth();
        match auth.check(&self.connect) {
            Some(r) => self.authenticated(r),
            None => return Err(self.auth_violation()),
        }
        // client.go processConnect: `c.last = time.Now()`, and the RTT is
        // estimated from the time since accept.
        let now = self.now_ns();
        self.shared.last_activity.store(now, Ordering::Relaxed);
        self.clock.rtt_known = true;
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

    /// client.go processConnect: log lines of a client that sent a version,
    /// lang or name carry `"v<version>:<lang>:<name>"` after the cid (each
    /// CONNECT appends to the current prefix, as there).
    fn name_log_prefix(&self) {
        let c = &self.connect;
        let parts: Vec<String> = [
            c.version
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("v{v}")),
            c.lang.clone().filter(|l| !l.is_empty()),
            c.name.clone().filter(|n| !n.is_empty()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            return;
        }
        let p = format!(
            "{} - {}",
            self.shared.log_prefix(),
            go_quote(&parts.join(":"))
        );
        *lock(&self.shared.named_prefix) = Some(p);
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
            if !perms.can_publish(subject) && !self.reply_allowed(p.subject) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn clock(last: u64, ping_in: Option<u64>, rtt_start: Option<u64>) -> PingClock {
        PingClock {
            last,
            ping_in,
            rtt_start,
            rtt_known: true,
        }
    }

    #[test]
    fn first_ping_always_goes_out() {
        let iv = Duration::from_secs(1);
        // No PING sent yet: an RTT sample is due even if busy.
        assert_eq!(ping_skip(2 * S, &clock(2 * S, None, None), iv), None);
        // No CONNECT yet (no RTT estimate).
        let mut c = clock(2 * S, None, Some(S));
        c.rtt_known = false;
        assert_eq!(ping_skip(2 * S, &c, iv), None);
    }

    #[test]
    fn activity_or_remote_ping_delays() {
        let iv = Duration::from_secs(1);
        let now = 10 * S;
        let busy = clock(now - S / 5, None, Some(5 * S));
        assert_eq!(
            ping_skip(now, &busy, iv),
            Some(PingSkip::Activity(Duration::from_millis(200)))
        );
        let pinged = clock(0, Some(now - S / 2), Some(5 * S));
        assert_eq!(
            ping_skip(now, &pinged, iv),
            Some(PingSkip::RemotePing(Duration::from_millis(500)))
        );
        // Exactly one interval ago is no longer recent (Go: delta < interval).
        assert_eq!(
            ping_skip(now, &clock(now - S, Some(now - S), Some(5 * S)), iv),
            None
        );
        // An hour after the last PING we sent, one goes out regardless.
        let hour = 3600 * S;
        let stale_rtt = clock(hour + 2 * S, None, Some(S));
        assert_eq!(ping_skip(hour + 2 * S + 1, &stale_rtt, iv), None);
    }
}
