//! The client read loop: reads, parses and dispatches operations, runs the
//! ping timer and the auth timeout (client.go `readLoop`, `parse`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::{debug, error, warn};

/// client.go `readLoopReport`.
const READ_LOOP_REPORT: std::time::Duration = std::time::Duration::from_secs(2);

use super::ping::{first_ping_delay, ping_skip, PingSkip};
use super::{Close, Conn};
use crate::proto::{encode, parse_op, ConnKind, Op, ParseError, Step};
use crate::server::closed::{read_error_closing, ClosedState};
use crate::server::{lock, trace};

/// Initial read buffer; grows to [`MAX_READ_BUF`] under load like
/// nats-server's dynamic read buffer (`startBufSize` .. `maxBufSize`).
const START_READ_BUF: usize = 512;
const MAX_READ_BUF: usize = 64 * 1024;

impl Conn {
    pub(super) async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        opts: &crate::options::Options,
    ) -> ClosedState {
        let mut rbuf = BytesMut::with_capacity(START_READ_BUF);
        let mut read_target = START_READ_BUF;
        // nats-server arms a client's ping timer at accept with the full
        // ping_interval (server.go createClient: setPingTimer); each CONNECT
        // re-arms it for an early first PING (`first_ping_delay`, below),
        // then one goes out every ping_interval.
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + opts.ping_interval,
            opts.ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // websocket.go: `websocket.authorization.timeout` for websocket clients.
        let auth_timeout = match opts.websocket.as_ref().and_then(|w| w.auth_timeout) {
            Some(t) if self.shared.websocket.is_some() && !t.is_zero() => t,
            _ => opts.client_auth_timeout(),
        };
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
                        Err(e) => return read_error_closing(&e, &self.shared.log_prefix()),
                        Ok(n) => {
                            if n >= offered && read_target < MAX_READ_BUF {
                                read_target = (read_target * 2).min(MAX_READ_BUF);
                            } else if n < read_target / 4 && read_target > START_READ_BUF {
                                read_target /= 2;
                            }
                            let mpay = self.shared.max_payload.load(Ordering::Relaxed);
                            if mpay != 0 {
                                self.limits.max_payload = Some(mpay);
                            }
                            self.read_start = rbuf.len() - n;
                            let started = Instant::now();
                            let res = self.process_read(&mut rbuf).await;
                            // client.go readLoop: a read that took this long to
                            // process (waiting for a slow consumer) is reported.
                            let took = started.elapsed();
                            if took >= READ_LOOP_REPORT {
                                warn!(
                                    "{} - Readloop processing time: {}",
                                    self.shared.log_prefix(),
                                    crate::monitor::gofmt::go_duration(took)
                                );
                            }
                            if let Err(Close(reason)) = res {
                                return reason;
                            }
                            if std::mem::take(&mut self.clock.restart) {
                                let d = first_ping_delay(opts.ping_interval, rand::random_range(0.0..0.2));
                                ping.reset_at(tokio::time::Instant::now() + d);
                            }
                        }
                    }
                }
                _ = ping.tick() => {
                    // client.go processPingTimer.
                    debug!("{} - Client Ping Timer", self.shared.log_prefix());
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
                        // enqueueProto: sent without a trace line.
                        let _ = self.shared.out.send(encode::ERR_STALE);
                        return ClosedState::StaleConnection;
                    }
                    self.pings_out += 1;
                    self.clock.rtt_start = Some(now);
                    last_ping_sent = Some(Instant::now());
                    self.send_proto(encode::PING);
                }
                _ = &mut auth_deadline, if self.awaiting_auth && !self.connected => {
                    // sendErrAndDebug: the -ERR (traced) first, then the debug line.
                    self.send_proto(encode::ERR_AUTH_TIMEOUT);
                    debug!("{} - Authentication Timeout", self.shared.log_prefix());
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
                // parser.go OP_START: the server's own no_auth_user, also for websocket clients
                // (not the websocket override).
                match self.srv.auth().no_auth_user_without_connect() {
                    Some(r) => self.authenticated(r),
                    None => break Err(self.auth_violation()),
                }
            }
            match parse_op(buf, ConnKind::Client, &self.limits) {
                Ok(Step::Op { op, consumed }) => {
                    let line_traced = std::mem::take(&mut self.line_traced);
                    if tracing::enabled!(tracing::Level::TRACE) {
                        let (prefix, max) =
                            (self.shared.log_prefix(), self.srv.opts().max_traced_msg_len);
                        if line_traced {
                            trace::trace_in_payload(&prefix, &buf[..consumed], max);
                        } else {
                            trace::trace_in(&prefix, &buf[..consumed], max);
                        }
                    }
                    pos += consumed;
                    if let Err(c) = self.handle(op) {
                        break Err(c);
                    }
                    if self.batch.has_stalled() {
                        break Ok(true);
                    }
                }
                Ok(Step::Incomplete { total_hint }) => {
                    // parser.go traces a PUB/HPUB line once it is parsed, before
                    // its payload has come.
                    if !self.line_traced
                        && tracing::enabled!(tracing::Level::TRACE)
                        && crate::proto::goerr::is_message_line_complete(buf)
                    {
                        trace::trace_in_line(&self.shared.log_prefix(), buf);
                        self.line_traced = true;
                    }
                    if let Some(total) = total_hint {
                        if total > rbuf.capacity() - pos {
                            rbuf.reserve(total - (rbuf.len() - pos));
                        }
                    }
                    break Ok(false);
                }
                Err(e) => {
                    // Go traces the line before checking its arguments and before
                    // the payload's CRLF; an unknown name is never traced.
                    let traced = std::mem::take(&mut self.line_traced);
                    let go_traced = match e {
                        ParseError::BadArgs(_)
                        | ParseError::MaxPayload
                        | ParseError::HeadersNotSupported => true,
                        ParseError::UnknownOp => crate::proto::goerr::fails_after_payload(buf),
                        ParseError::MaxControlLine => false,
                    };
                    if !traced && go_traced && tracing::enabled!(tracing::Level::TRACE) {
                        trace::trace_in_line(&self.shared.log_prefix(), buf);
                    }
                    break Err(self.parse_error(e, &rbuf[..], pos));
                }
            }
        };
        rbuf.advance(pos);
        self.read_start = self.read_start.saturating_sub(pos);
        res
    }

    /// `read` holds this read's bytes, the failing operation starting at `at`.
    fn parse_error(&mut self, e: ParseError, read: &[u8], at: usize) -> Close {
        // maxPayloadViolation logs before it sends the -ERR; the parser's errors
        // are sent first and logged by the read loop.
        let err_line = e.err_line();
        if let (Some(line), false) = (err_line, e == ParseError::MaxPayload) {
            self.send_proto(line);
        }
        let buf = &read[at..];
        let snip = String::from_utf8_lossy(&buf[..buf.len().min(32)]).to_string();
        match e {
            ParseError::MaxPayload => {
                // client.go maxPayloadViolation: "maximum payload exceeded: SIZE vs MAX"
                // (the size is the last argument, HPUB's total size included).
                let size = crate::proto::split_args(crate::proto::goerr::op_args(buf))
                    .last()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .unwrap_or_default();
                error!(
                    "{} - maximum payload exceeded: {} vs {}",
                    self.shared.log_prefix(),
                    size,
                    self.limits.max_payload.unwrap_or(0)
                );
                if let Some(line) = err_line {
                    self.send_proto(line);
                }
                Close(ClosedState::MaxPayloadExceeded)
            }
            ParseError::MaxControlLine => {
                error!(
                    "{} - {}",
                    self.shared.log_prefix(),
                    crate::proto::goerr::max_control_line_text(buf, self.limits.max_control_line)
                );
                Close(ClosedState::MaxControlLineExceeded)
            }
            ParseError::UnknownOp => {
                let text = crate::proto::goerr::unknown_op_text(
                    read,
                    at,
                    self.read_start,
                    ConnKind::Client,
                )
                .unwrap_or_else(|| format!("Client parser ERROR, proto={snip:?}"));
                error!("{} - {}", self.shared.log_prefix(), text);
                Close(ClosedState::ProtocolViolation)
            }
            ParseError::HeadersNotSupported => {
                // processHeaderPub returns ErrMsgHeadersNotSupported on the control
                // line: the read loop logs it and closes without an -ERR.
                error!(
                    "{} - message headers not supported",
                    self.shared.log_prefix()
                );
                Close(ClosedState::ProtocolViolation)
            }
            ParseError::BadArgs(what) => {
                // client.go processPub & co.: `%q` of the arguments (after the
                // operation name and its spaces, without the CRLF).
                error!(
                    "{} - {}: {}",
                    self.shared.log_prefix(),
                    what,
                    crate::server::trace::go_quote_bytes(crate::proto::goerr::op_args(buf))
                );
                Close(ClosedState::ProtocolViolation)
            }
        }
    }

    /// Wakes the writers of this read batch and folds its counters. Returns
    /// whether the batch counts as client activity (client.go readLoop:
    /// messages or (un)subscriptions).
    pub(super) fn end_batch(&mut self) -> bool {
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

    fn handle(&mut self, op: Op<'_>) -> Result<(), Close> {
        match op {
            Op::Pub(p) => self.handle_pub(p, false),
            // (The parser refused HPUB from a client without headers.)
            Op::HPub(p) => self.handle_pub(p, true),
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
            // client.go processInfo unmarshals a client's INFO (and then ignores it):
            // bad JSON closes the connection without an -ERR.
            // client.go processInfo: json.Unmarshal into server.Info (its error logged as
            // it is), then nothing for a client.
            Op::Info(json) => match crate::proto::json::ServerInfo::from_route_json(json) {
                Ok(_) => Ok(()),
                Err(e) => {
                    error!("{} - {}", self.shared.log_prefix(), e);
                    Err(Close(ClosedState::ProtocolViolation))
                }
            },
            Op::Ok => Ok(()),
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
}
