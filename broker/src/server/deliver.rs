//! Fan-out of one message to the subscriptions that match it
//! (nats-server `client.go` `processMsgResults`, `deliverMsg`,
//! `msgHeaderForRouteOrLeaf`).
//!
//! Rules kept from nats-server:
//! - every plain local subscription gets the message; a route with any
//!   matching interest gets it once (`addSubToRouteTargets`);
//! - one member per queue group, chosen at random; remote members count with
//!   the weight their route announced;
//! - a message that came from a route is not forwarded to routes for plain
//!   subscriptions, and only reaches the queue groups the sender named,
//!   preferring local members; a group none of whose local members takes it
//!   gets it through its first route member, the sending route included.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::client::{ClientShared, SubRef};
use super::{remove_sub_now, ServerState};
use crate::proto::encode::{self, Delivery};
use crate::proto::ConnKind;
use crate::sublist::MatchResult;

/// Per-connection cache of match results (nats-server `c.in.results`):
/// valid while the sublist generation is unchanged, so the shared sublist
/// lock is taken only on a miss. Used by client and route readers alike.
pub struct MatchCache {
    map:
        std::collections::HashMap<Box<[u8]>, Arc<MatchResult<SubRef>>, foldhash::fast::RandomState>,
    generation: u64,
}

/// Entries kept per connection (nats-server `maxResultCacheSize`).
const MAX_RESULT_CACHE: usize = 512;

impl Default for MatchCache {
    fn default() -> Self {
        MatchCache {
            map: Default::default(),
            generation: u64::MAX,
        }
    }
}

impl MatchCache {
    /// The subscriptions matching `subject` (`key` is its bytes).
    pub fn lookup(
        &mut self,
        srv: &ServerState,
        key: &[u8],
        subject: &str,
    ) -> Arc<MatchResult<SubRef>> {
        let gen = srv.sub_gen.load(Ordering::Acquire);
        if gen != self.generation {
            self.map.clear();
            self.generation = gen;
        } else if let Some(r) = self.map.get(key) {
            return r.clone();
        }
        // The generation may move between the load above and the lock;
        // caching under the older one is harmless: the next lookup sees a
        // newer generation and clears.
        let r = srv
            .sublist
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .match_subject(subject);
        if self.map.len() >= MAX_RESULT_CACHE {
            self.map.clear();
        }
        self.map.insert(key.into(), r.clone());
        r
    }
}

/// The global account name used on routes (we serve only `$G`).
pub const GLOBAL_ACCOUNT: &[u8] = b"$G";

/// A message being routed.
#[derive(Clone, Copy)]
pub struct Msg<'a> {
    pub subject: &'a [u8],
    pub subject_str: &'a str,
    pub reply: Option<&'a [u8]>,
    pub hdr_len: usize,
    pub hdr_raw: &'a [u8],
    pub size_raw: &'a [u8],
    /// Headers + payload, no trailing CRLF.
    pub payload: &'a [u8],
}

/// Where the message came from.
pub enum Source<'a> {
    /// A local client; `echo` false hides its own subscriptions.
    Client {
        me: &'a Arc<ClientShared>,
        echo: bool,
    },
    /// A route; `queues` are the queue groups the sender asked us to serve.
    Route { queues: &'a [&'a [u8]] },
}

struct RouteTarget {
    client: Arc<ClientShared>,
    /// "q1 q2 " (trailing space, as nats-server builds it).
    queues: Vec<u8>,
}

/// Per-read-batch state: whom to wake and what to count.
#[derive(Default)]
pub struct Batch {
    flush: Vec<Arc<ClientShared>>,
    /// Local consumers above half their pending limit (client producers
    /// wait for them after the batch).
    stalled: Vec<Arc<ClientShared>>,
    pub out_msgs: u64,
    pub out_bytes: u64,
    targets: Vec<RouteTarget>,
}

impl Batch {
    /// Remembers to wake `c`'s writer at the end of the batch.
    pub fn mark(&mut self, c: &Arc<ClientShared>) {
        if let Some(last) = self.flush.last() {
            if last.cid == c.cid {
                return;
            }
        }
        if self.flush.len() < 64 {
            if self.flush.iter().any(|x| x.cid == c.cid) {
                return;
            }
        } else if self.flush.iter().any(|x| Arc::ptr_eq(x, c)) {
            return;
        }
        self.flush.push(c.clone());
    }

    /// Whether a delivery of this batch found a stalled consumer.
    pub fn has_stalled(&self) -> bool {
        !self.stalled.is_empty()
    }

    /// Remembers `c` as a consumer the producer must wait for, if it is
    /// above half its pending limit (once per batch).
    fn note_if_stalled(&mut self, c: &Arc<ClientShared>) {
        if c.out.is_stalled() && !self.stalled.iter().any(|s| Arc::ptr_eq(s, c)) {
            self.stalled.push(c.clone());
        }
    }

    /// Waits for each consumer this batch found stalled, each at most its
    /// stall duration (client.go `stalledWait`), and forgets them.
    /// `producer` names the waiting connection in the debug log.
    pub async fn wait_stalled(&mut self, producer: &str) {
        for c in std::mem::take(&mut self.stalled) {
            let ttl = c.out.stall_duration();
            if tokio::time::timeout(ttl, c.out.unstalled()).await.is_err() {
                // A route reader does not wait for it again before it catches up.
                c.out.give_up_route_wait();
                tracing::debug!(
                    "{} - Timed out of fast producer stall ({:?})",
                    producer,
                    ttl
                );
            }
        }
    }

    /// Wakes every writer that got data and folds the counters into the
    /// server totals.
    pub fn finish(&mut self, srv: &ServerState) {
        if !self.flush.is_empty() {
            // Message delivery is activity of the receiver (client.go
            // flushClients sets `cp.last`): its ping timer skips a PING.
            let now = srv.start_instant.elapsed().as_nanos() as u64;
            for c in self.flush.drain(..) {
                c.last_activity.store(now, Ordering::Relaxed);
                c.out.flush_signal();
            }
        }
        if self.out_msgs > 0 {
            srv.stats
                .out_msgs
                .fetch_add(self.out_msgs, Ordering::Relaxed);
            srv.stats
                .out_bytes
                .fetch_add(self.out_bytes, Ordering::Relaxed);
            self.out_msgs = 0;
            self.out_bytes = 0;
        }
    }
}

/// Delivers `msg` to the matching subscriptions. Returns whether anyone
/// (local or route) took it.
pub fn process_msg_results(
    srv: &ServerState,
    batch: &mut Batch,
    result: &MatchResult<SubRef>,
    msg: &Msg<'_>,
    src: &Source<'_>,
) -> bool {
    batch.targets.clear();
    let from_route = matches!(src, Source::Route { .. });
    let mut delivered = false;

    for sub in &result.plain {
        if sub.client.kind == ConnKind::Route {
            if !from_route {
                add_route_target(batch, sub, None);
            }
            continue;
        }
        delivered |= deliver_local(srv, batch, sub, msg, src);
    }

    for q in &result.queues {
        if let Source::Route { queues } = src {
            // A routed message only reaches the groups its sender named.
            if !queues.iter().any(|n| *n == q.name.as_bytes()) {
                continue;
            }
        }
        delivered |= pick_queue_member(srv, batch, &q.members, msg, src);
    }

    for i in 0..batch.targets.len() {
        let (client, queues) = {
            let t = &batch.targets[i];
            (
                t.client.clone(),
                std::mem::take(&mut batch.targets[i].queues),
            )
        };
        if write_route_msg(batch, &client, msg, &queues) {
            delivered = true;
            // A client publisher also waits for a backed-up route
            // (nats-server deliverMsg: stalledWait for any destination).
            if matches!(src, Source::Client { .. }) {
                batch.note_if_stalled(&client);
            }
        }
    }
    delivered
}

fn add_route_target(batch: &mut Batch, sub: &SubRef, queue: Option<&str>) {
    if let Some(t) = batch
        .targets
        .iter_mut()
        .find(|t| Arc::ptr_eq(&t.client, &sub.client))
    {
        if let Some(q) = queue {
            t.queues.extend_from_slice(q.as_bytes());
            t.queues.push(b' ');
        }
        return;
    }
    let mut queues = Vec::new();
    if let Some(q) = queue {
        queues.extend_from_slice(q.as_bytes());
        queues.push(b' ');
    }
    // The first of the route's subscriptions the message matched counts it
    // (client.go deliverMsg `sub.nm++` on `rt.sub`; /routez `msgs`).
    sub.delivered.fetch_add(1, Ordering::Relaxed);
    batch.targets.push(RouteTarget {
        client: sub.client.clone(),
        queues,
    });
}

/// Chooses one member of a queue group.
fn pick_queue_member(
    srv: &ServerState,
    batch: &mut Batch,
    members: &[SubRef],
    msg: &Msg<'_>,
    src: &Source<'_>,
) -> bool {
    let from_route = matches!(src, Source::Route { .. });
    let n = members.len();
    if n == 0 {
        return false;
    }
    if from_route {
        // Prefer local members for routed messages; if none takes it (none left, at its
        // auto-unsubscribe limit, closing), it goes to the group's first route member, the
        // route it came from included (client.go processMsgResults `rsub`: a member that left
        // while the message was in flight must not lose it).
        let is_local = |s: &&SubRef| s.client.kind != ConnKind::Route;
        let locals = members.iter().filter(is_local).count();
        if locals > 0 {
            let start = rand::random_range(0..locals);
            for i in 0..locals {
                let k = (start + i) % locals;
                if let Some(s) = members.iter().filter(is_local).nth(k) {
                    if deliver_local(srv, batch, s, msg, src) {
                        return true;
                    }
                }
            }
        }
        return match members
            .iter()
            .find(|s| s.client.kind == ConnKind::Route && !s.client.out.is_closing())
        {
            Some(r) => {
                add_route_target(batch, r, r.queue.as_deref());
                true
            }
            None => false,
        };
    }
    // From a client: weighted random over locals (weight 1) and routes
    // (their announced weight), then fall through the rest in order.
    let total: u64 = members.iter().map(weight).sum();
    let mut pick = rand::random_range(0..total.max(1));
    let mut start = 0;
    for (i, s) in members.iter().enumerate() {
        let w = weight(s);
        if pick < w {
            start = i;
            break;
        }
        pick -= w;
    }
    for i in 0..n {
        let s = &members[(start + i) % n];
        if s.client.kind == ConnKind::Route {
            if s.client.out.is_closing() {
                continue;
            }
            add_route_target(batch, s, s.queue.as_deref());
            return true;
        }
        if deliver_local(srv, batch, s, msg, src) {
            return true;
        }
    }
    false
}

fn weight(s: &SubRef) -> u64 {
    if s.client.kind == ConnKind::Route {
        s.qw.load(Ordering::Relaxed).max(1)
    } else {
        1
    }
}

/// Delivers to one local client subscription; false if it did not take it.
pub fn deliver_local(
    srv: &ServerState,
    batch: &mut Batch,
    sub: &SubRef,
    msg: &Msg<'_>,
    src: &Source<'_>,
) -> bool {
    let client = &sub.client;
    if let Source::Client { me, echo: false } = src {
        if Arc::ptr_eq(client, me) {
            return false;
        }
    }
    let max = sub.max.load(Ordering::Acquire);
    let n = sub.delivered.fetch_add(1, Ordering::AcqRel) + 1;
    if max > 0 && n > max {
        return false;
    }
    if max > 0 && n == max {
        // client.go deliverMsg says so before delivering (the DELSUB trace follows it).
        tracing::debug!(
            "{} - Auto-unsubscribe limit of {} reached for sid '{}'",
            client.log_prefix(),
            max,
            String::from_utf8_lossy(&sub.sid)
        );
    }
    if let Some(deny) = super::lock(&client.sub_deny).as_ref() {
        if let Some(l) = &deny.subscribe {
            if l.deny_overlaps(&sub.subject) && l.denies_literal(msg.subject_str) {
                return false;
            }
        }
    }
    let headers = client.headers.load(Ordering::Relaxed);
    let d = Delivery {
        subject: msg.subject,
        sid: &sub.sid,
        reply: msg.reply,
        hdr_len: msg.hdr_len,
        hdr_raw: msg.hdr_raw,
        size_raw: msg.size_raw,
        payload: msg.payload,
    };
    let hint = msg.subject.len()
        + msg.reply.map_or(0, <[u8]>::len)
        + sub.sid.len()
        + msg.payload.len()
        + 48;
    match client
        .out
        .append_with(hint, |b| encode::write_client_msg(b, &d, headers))
    {
        Ok(_) => {
            if tracing::enabled!(tracing::Level::TRACE) {
                let mut line = Vec::new();
                encode::write_client_msg(&mut line, &d, headers);
                super::trace::trace_out_msg(&client.log_prefix(), &line);
            }
            let body = if msg.hdr_len > 0 && !headers {
                msg.payload.len() - msg.hdr_len
            } else {
                msg.payload.len()
            } as u64;
            client.stats.out_msgs.fetch_add(1, Ordering::Relaxed);
            client.stats.out_bytes.fetch_add(body, Ordering::Relaxed);
            batch.out_msgs += 1;
            // The server's count is the message as published, headers included even
            // when stripped for this receiver (client.go processMsgResults updateStats:
            // `len(msg)`); the connection's count is what it was sent (deliverMsg).
            batch.out_bytes += msg.payload.len() as u64;
            batch.mark(client);
            // client.go deliverMsg: a receiver with response permissions may
            // answer this request's reply subject.
            if let Some(reply) = msg.reply.filter(|r| !r.is_empty()) {
                if client.track_replies.load(Ordering::Relaxed) {
                    if let Some(t) = super::lock(&client.replies).as_mut() {
                        t.track(reply, std::time::Instant::now());
                    }
                }
            }
            // A client publisher waits for a stalled subscriber (client.go
            // deliverMsg: `c.kind == CLIENT && client.out.stc != nil`). nats-server's
            // route reader never does; ours waits for a subscriber that is draining,
            // but only until one wait times out (then no more until it catches up):
            // a flood across the route is paced to a subscriber that keeps up more
            // slowly, through TCP/QUIC flow control back to the publisher's own stall
            // (nats-server's route, slower than ours, rarely outruns one; ours cut the
            // subscriber of a 1 KiB `nats bench` across two nodes), while a stuck
            // subscriber holds the route once, at most its stall time, and is then cut
            // at max_pending as nats-server cuts it.
            let waits = match src {
                Source::Client { .. } => true,
                Source::Route { .. } => !client.out.route_wait_given_up(),
            };
            if waits {
                batch.note_if_stalled(client);
            }
        }
        Err(e) => {
            // Count the cut once, not every message dropped after it.
            if e.cut_now {
                srv.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            }
            return false;
        }
    }
    if max > 0 && n == max {
        remove_sub_now(srv, sub);
    }
    true
}

/// Appends `RMSG`/`HMSG` for a route (nats-server `msgHeaderForRouteOrLeaf`).
fn write_route_msg(
    batch: &mut Batch,
    route: &Arc<ClientShared>,
    msg: &Msg<'_>,
    queues: &[u8],
) -> bool {
    let headers = route.headers.load(Ordering::Relaxed);
    let tag = if route.label.is_some() {
        super::lock(&route.path_tag).clone()
    } else {
        None
    };
    let ok = route
        .out
        .append_with(route_hint(msg, queues, tag.as_deref()), |b| match &tag {
            Some(t) if headers => encode_route_msg_tagged(b, msg, queues, t),
            _ => encode_route_msg(b, msg, queues, headers),
        })
        .is_ok();
    if ok {
        if tracing::enabled!(tracing::Level::TRACE) {
            let mut line = Vec::new();
            match &tag {
                Some(t) if headers => encode_route_msg_tagged(&mut line, msg, queues, t),
                _ => encode_route_msg(&mut line, msg, queues, headers),
            }
            super::trace::trace_out_msg(&route.log_prefix(), &line);
        }
        route.stats.out_msgs.fetch_add(1, Ordering::Relaxed);
        route
            .stats
            .out_bytes
            .fetch_add(msg.payload.len() as u64, Ordering::Relaxed);
        batch.out_msgs += 1;
        batch.out_bytes += msg.payload.len() as u64;
        batch.mark(route);
    }
    ok
}

/// About how many bytes a routed message takes (the chunk to reserve).
fn route_hint(msg: &Msg<'_>, queues: &[u8], tag: Option<&str>) -> usize {
    msg.subject.len()
        + msg.reply.map_or(0, <[u8]>::len)
        + queues.len()
        + msg.payload.len()
        + tag.map_or(0, |t| t.len() + PATH_HEADER.len() + 16)
        + 64
}

/// The header naming the SCION path a message crossed.
pub const PATH_HEADER: &str = "Nats-Scion-Path";

/// Encodes one routed message as HMSG with the `Nats-Scion-Path` header
/// added (headers are created when the message had none). The tag is the path of this hop
/// only: a `Nats-Scion-Path` the message already carries (from a publisher, or an earlier
/// hop) is replaced, so readers that take the first value see ours. A header block we cannot
/// parse (not ending in an empty line) is forwarded untouched and untagged rather than
/// rewritten, so none of its fields are lost.
pub fn encode_route_msg_tagged(b: &mut Vec<u8>, msg: &Msg<'_>, queues: &[u8], tag: &str) {
    let hdr_len = msg.hdr_len.min(msg.payload.len());
    let old_hdr = &msg.payload[..hdr_len];
    let body = &msg.payload[hdr_len..];
    if hdr_len > 0 && (hdr_len < 4 || !old_hdr.ends_with(b"\r\n\r\n")) {
        encode_route_msg(b, msg, queues, true);
        return;
    }
    let mut hdr: Vec<u8> = Vec::with_capacity(hdr_len + tag.len() + 40);
    if hdr_len > 0 {
        // Keep every line but an earlier path tag; the block's final empty line is
        // written after ours.
        let lines = &old_hdr[..hdr_len - 2];
        for line in lines.split_inclusive(|&c| c == b'\n') {
            let name = line.split(|&c| c == b':').next().unwrap_or(&[]);
            if line.contains(&b':')
                && name
                    .trim_ascii()
                    .eq_ignore_ascii_case(PATH_HEADER.as_bytes())
            {
                continue;
            }
            hdr.extend_from_slice(line);
        }
    } else {
        hdr.extend_from_slice(b"NATS/1.0\r\n");
    }
    hdr.extend_from_slice(PATH_HEADER.as_bytes());
    hdr.extend_from_slice(b": ");
    hdr.extend_from_slice(tag.as_bytes());
    hdr.extend_from_slice(b"\r\n\r\n");
    b.reserve(msg.subject.len() + hdr.len() + body.len() + queues.len() + 48);
    b.extend_from_slice(b"HMSG ");
    b.extend_from_slice(GLOBAL_ACCOUNT);
    b.push(b' ');
    b.extend_from_slice(msg.subject);
    b.push(b' ');
    if !queues.is_empty() {
        match msg.reply {
            Some(r) if !r.is_empty() => {
                b.extend_from_slice(b"+ ");
                b.extend_from_slice(r);
                b.push(b' ');
            }
            _ => b.extend_from_slice(b"| "),
        }
        b.extend_from_slice(queues);
    } else if let Some(r) = msg.reply {
        if !r.is_empty() {
            b.extend_from_slice(r);
            b.push(b' ');
        }
    }
    encode::push_usize(b, hdr.len());
    b.push(b' ');
    encode::push_usize(b, hdr.len() + body.len());
    b.extend_from_slice(encode::CRLF);
    b.extend_from_slice(&hdr);
    b.extend_from_slice(body);
    b.extend_from_slice(encode::CRLF);
}

/// Encodes one routed message.
pub fn encode_route_msg(b: &mut Vec<u8>, msg: &Msg<'_>, queues: &[u8], headers: bool) {
    let with_hdr = msg.hdr_len > 0 && headers;
    b.reserve(msg.subject.len() + msg.payload.len() + queues.len() + 48);
    b.extend_from_slice(if with_hdr { b"HMSG " } else { b"RMSG " });
    b.extend_from_slice(GLOBAL_ACCOUNT);
    b.push(b' ');
    b.extend_from_slice(msg.subject);
    b.push(b' ');
    if !queues.is_empty() {
        match msg.reply {
            Some(r) if !r.is_empty() => {
                b.extend_from_slice(b"+ ");
                b.extend_from_slice(r);
                b.push(b' ');
            }
            _ => b.extend_from_slice(b"| "),
        }
        b.extend_from_slice(queues);
    } else if let Some(r) = msg.reply {
        if !r.is_empty() {
            b.extend_from_slice(r);
            b.push(b' ');
        }
    }
    let body = if msg.hdr_len > 0 {
        if with_hdr {
            b.extend_from_slice(msg.hdr_raw);
            b.push(b' ');
            b.extend_from_slice(msg.size_raw);
            msg.payload
        } else {
            let body = &msg.payload[msg.hdr_len.min(msg.payload.len())..];
            encode::push_usize(b, body.len());
            body
        }
    } else {
        b.extend_from_slice(msg.size_raw);
        msg.payload
    };
    b.extend_from_slice(encode::CRLF);
    b.extend_from_slice(body);
    b.extend_from_slice(encode::CRLF);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m<'a>(
        reply: Option<&'a [u8]>,
        payload: &'a [u8],
        hdr: usize,
        hdr_raw: &'a [u8],
        size_raw: &'a [u8],
    ) -> Msg<'a> {
        Msg {
            subject: b"foo",
            subject_str: "foo",
            reply,
            hdr_len: hdr,
            hdr_raw,
            size_raw,
            payload,
        }
    }

    #[test]
    fn tagged_forms() {
        let mut b = Vec::new();
        encode_route_msg_tagged(&mut b, &m(Some(b"r"), b"hi", 0, b"", b"2"), b"", "ab12");
        assert_eq!(
            b,
            b"HMSG $G foo r 35 37\r\nNATS/1.0\r\nNats-Scion-Path: ab12\r\n\r\nhi\r\n"
        );
        b.clear();
        let p = b"NATS/1.0\r\nA: 1\r\n\r\nhi";
        encode_route_msg_tagged(&mut b, &m(None, p, 18, b"18", b"20"), b"q ", "ab12");
        assert_eq!(
            b,
            b"HMSG $G foo | q 41 43\r\nNATS/1.0\r\nA: 1\r\nNats-Scion-Path: ab12\r\n\r\nhi\r\n"
        );
        // An earlier tag (any case) is replaced by this hop's; other fields stay.
        b.clear();
        let p = b"NATS/1.0\r\nnats-scion-path: forged\r\nA: 1\r\n\r\nhi";
        encode_route_msg_tagged(&mut b, &m(None, p, 43, b"43", b"45"), b"", "ab12");
        assert_eq!(
            b,
            b"HMSG $G foo 41 43\r\nNATS/1.0\r\nA: 1\r\nNats-Scion-Path: ab12\r\n\r\nhi\r\n"
        );
        // A header block without its closing empty line goes out as it came, untagged.
        b.clear();
        let p = b"NATS/1.0\r\nA: 1\r\nhi";
        encode_route_msg_tagged(&mut b, &m(None, p, 16, b"16", b"18"), b"", "ab12");
        assert_eq!(b, b"HMSG $G foo 16 18\r\nNATS/1.0\r\nA: 1\r\nhi\r\n");
    }

    #[test]
    fn rmsg_forms() {
        let mut b = Vec::new();
        encode_route_msg(&mut b, &m(None, b"hi", 0, b"", b"2"), b"", true);
        assert_eq!(b, b"RMSG $G foo 2\r\nhi\r\n");
        b.clear();
        encode_route_msg(&mut b, &m(Some(b"r"), b"hi", 0, b"", b"2"), b"", true);
        assert_eq!(b, b"RMSG $G foo r 2\r\nhi\r\n");
        b.clear();
        encode_route_msg(&mut b, &m(Some(b"r"), b"hi", 0, b"", b"2"), b"q1 q2 ", true);
        assert_eq!(b, b"RMSG $G foo + r q1 q2 2\r\nhi\r\n");
        b.clear();
        encode_route_msg(&mut b, &m(None, b"hi", 0, b"", b"2"), b"q1 ", true);
        assert_eq!(b, b"RMSG $G foo | q1 2\r\nhi\r\n");
        b.clear();
        let p = b"NATS/1.0\r\n\r\nhi";
        encode_route_msg(&mut b, &m(None, p, 12, b"12", b"14"), b"", true);
        assert_eq!(b, b"HMSG $G foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
    }
}
