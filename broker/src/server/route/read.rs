//! The route read loop: reads, parses and dispatches route operations,
//! runs the route ping timer and the CONNECT deadline, and delivers
//! routed messages (route.go / client.go `readLoop`, `processRoutedMsgArgs`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::{debug, error};

use super::ping::{ping_action, PingAction};
use super::{Close, RouteConn};
use crate::proto::{
    encode, parse_op, parse_size, split_args, ConnKind, Op, ParseError, ParseLimits, Step,
};
use crate::server::closed::{read_error_closing, ClosedState};
use crate::server::deliver::{process_msg_results, Msg, Source, GLOBAL_ACCOUNT};
use crate::server::lock;

/// First PING on a new route, to learn its RTT early.
const FIRST_PING: Duration = Duration::from_secs(1);

const ROUTE_LIMITS: ParseLimits = ParseLimits {
    max_control_line: usize::MAX,
    max_payload: None,
    headers: true,
};

impl RouteConn {
    pub(super) async fn read_loop<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> ClosedState {
        let opts = self.srv.opts();
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        // route.go createRoute → setFirstPingTimer: min(ping_interval, 1 s)
        // plus up to 20 % jitter, then every ping_interval.
        let d = FIRST_PING.min(opts.ping_interval);
        let first = tokio::time::Instant::now() + d + d.mul_f64(rand::random_range(0.0..0.2));
        let mut ping = tokio::time::interval_at(first, opts.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let auth_timeout = opts.cluster.effective_auth_timeout();
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
                        Err(e) => return read_error_closing(&e, &self.prefix),
                        Ok(n) => {
                            self.read_start = rbuf.len() - n;
                            // A message that found a stalled local client
                            // stops processing until it drains (bounded), then
                            // the rest of this read goes on.
                            loop {
                                let res = self.process(&mut rbuf);
                                self.end_batch();
                                if std::mem::take(&mut self.active) {
                                    let now = self.now_ns();
                                    self.shared.last_activity.store(now, Ordering::Relaxed);
                                }
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
                    let now = self.now_ns();
                    let last = self.shared.last_activity.load(Ordering::Relaxed);
                    match ping_action(now, last, &self.ping, opts.ping_interval, opts.ping_max) {
                        PingAction::SkipActivity(d) => {
                            debug!("{} - Delaying PING due to client activity {:?} ago", self.prefix, d);
                        }
                        PingAction::SkipRemotePing(d) => {
                            debug!("{} - Delaying PING due to remote ping {:?} ago", self.prefix, d);
                        }
                        PingAction::Stale => {
                            debug!("{} - Stale Client Connection - Closing", self.prefix);
                            let _ = self.shared.out.send(encode::ERR_STALE);
                            return ClosedState::StaleConnection;
                        }
                        PingAction::Send => {
                            self.ping.pings_out += 1;
                            self.ping.rtt_start = Some(now);
                            self.ping_sent = Some(Instant::now());
                            crate::server::trace::trace_out_proto(&self.prefix, encode::PING);
                            let _ = self.shared.out.send(encode::PING);
                        }
                    }
                }
                _ = &mut connect_deadline, if !self.got_connect => {
                    debug!("{} - Authentication Timeout", self.prefix);
                    let _ = self.shared.out.send(encode::ERR_AUTH_TIMEOUT);
                    return ClosedState::AuthenticationTimeout;
                }
            }
        }
    }

    /// Nanoseconds since server start (the clock of `last_activity`).
    fn now_ns(&self) -> u64 {
        self.srv.start_instant.elapsed().as_nanos() as u64
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
                    if tracing::enabled!(tracing::Level::TRACE) {
                        crate::server::trace::trace_in(
                            &self.prefix,
                            &buf[..consumed],
                            self.srv.opts().max_traced_msg_len,
                        );
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
                    let go_text = matches!(e, ParseError::UnknownOp)
                        .then(|| {
                            crate::proto::goerr::unknown_op_text(
                                &rbuf[..],
                                pos,
                                self.read_start,
                                ConnKind::Route,
                            )
                        })
                        .flatten();
                    match (go_text, &e) {
                        (Some(t), _) => error!("{} - {}", self.prefix, t),
                        // route.go processRoutedMsgArgs: `'%s'` of the split arguments.
                        (None, ParseError::BadArgs(what)) => {
                            let args: Vec<String> =
                                crate::proto::split_args(crate::proto::goerr::op_args(buf))
                                    .map(|a| String::from_utf8_lossy(a).into_owned())
                                    .collect();
                            error!("{} - {}: '[{}]'", self.prefix, what, args.join(" "))
                        }
                        (None, _) => error!(
                            "{} - Route parser ERROR: {} proto={:?}",
                            self.prefix, e, snip
                        ),
                    }
                    if let ParseError::UnknownOp = e {
                        let _ = self.shared.out.send(encode::ERR_UNKNOWN_OP);
                    }
                    // client.go readLoop: a parse error closes any connection kind
                    // as a Protocol Violation.
                    break Err(Close(ClosedState::ProtocolViolation));
                }
            }
        };
        rbuf.advance(pos);
        self.read_start = self.read_start.saturating_sub(pos);
        res
    }

    fn handle(&mut self, op: Op<'_>) -> Result<(), Close> {
        match op {
            Op::Connect(json) => self.handle_connect(json),
            Op::Info(json) => self.handle_info(json),
            Op::Ping => {
                // client.go processPing: `c.ping.last`, which delays our PING.
                self.ping.ping_in = Some(self.now_ns());
                crate::server::trace::trace_out_proto(&self.prefix, encode::PONG);
                let _ = self.shared.out.append(encode::PONG);
                self.batch.mark(&self.shared);
                Ok(())
            }
            Op::Pong => {
                // client.go processPong: any PONG resets `ping.out` and sets
                // the RTT.
                self.ping.pings_out = 0;
                self.ping.rtt_known = true;
                if let Some(t) = self.ping_sent.take() {
                    lock(&self.handle.meta).rtt = Some(t.elapsed());
                    lock(&self.shared.meta).rtt = Some(t.elapsed());
                }
                Ok(())
            }
            Op::Ok => Ok(()),
            Op::Err(text) => {
                error!(
                    "{} - Route Error {}",
                    self.prefix,
                    String::from_utf8_lossy(text)
                );
                Err(Close(ClosedState::ParseError))
            }
            Op::RouteSub(arg) => {
                // processRemoteSub / parseUnsubProto count `c.in.subs`.
                self.active = true;
                self.remote_sub(arg, false)
            }
            Op::LeafSub(arg) => {
                self.active = true;
                self.remote_sub(arg, true)
            }
            Op::RouteUnsub(arg) | Op::LeafUnsub(arg) => {
                self.active = true;
                self.remote_unsub(arg)
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
        self.active = true;
        if acc != GLOBAL_ACCOUNT {
            debug!(
                "{} - Unknown account {:?} for routed message",
                self.prefix,
                String::from_utf8_lossy(acc)
            );
            return Ok(());
        }
        let subject_text = crate::sublist::subject_text(subject);
        let subject_str: &str = &subject_text;
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
}
