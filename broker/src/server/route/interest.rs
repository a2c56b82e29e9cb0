//! Remote interest: `RS+`/`RS-` (and leaf `LS+`/`LS-`) from a route, and
//! removing the route's interest when it closes (route.go
//! `processRemoteSub`, `processRemoteUnsub`, `removeRemoteSubs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::{debug, error, warn};

use super::{Close, RouteConn};
use crate::proto::{encode, parse_size, split_args};
use crate::server::client::{SubRef, Subscription};
use crate::server::closed::ClosedState;
use crate::server::cluster::send_async_info_to_clients;
use crate::server::deliver::GLOBAL_ACCOUNT;
use crate::server::lock;

impl RouteConn {
    /// RS+/LS+. Malformed arguments are a parse error, which closes the route as a
    /// Protocol Violation (route.go processRemoteSub returns it to readLoop); a
    /// subject the index refuses gets `-ERR 'Invalid Subscription'` and the route stays.
    pub(super) fn remote_sub(&mut self, arg: &[u8], has_origin: bool) -> Result<(), Close> {
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
                return Err(Close(ClosedState::ProtocolViolation));
            }
        };
        if acc != GLOBAL_ACCOUNT {
            debug!(
                "{} - Unknown account {:?} for remote subject {:?}",
                self.prefix,
                String::from_utf8_lossy(acc),
                String::from_utf8_lossy(subject)
            );
            return Ok(());
        }
        let raw_subject = subject;
        let (Ok(subject), Ok(queue)) = (
            std::str::from_utf8(subject),
            queue.map(std::str::from_utf8).transpose(),
        ) else {
            return self.unindexable_subscription(raw_subject);
        };
        // route.go processRemoteSub: a subject we do not export is ignored.
        if !self.srv.cluster.can_export(subject) {
            debug!(
                "{} - Can not export {}, ignoring remote subscription request",
                self.prefix,
                crate::server::auth::go_quote(subject)
            );
            return Ok(());
        }
        let key = route_sub_key(subject, queue);
        let existing = lock(&self.shared.subs).get(&key).cloned();
        if let Some(sub) = existing {
            if queue.is_some() {
                sub.qw.store(weight, Ordering::Relaxed);
            }
            return Ok(());
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
        if !ok {
            return self.unindexable_subscription(raw_subject);
        }
        lock(&self.shared.subs).insert(key, sub);
        Ok(())
    }

    /// A subject our index cannot hold. When nats-server's Insert would take it (no empty
    /// token, `>` last: it lets any other byte through, a form feed or non-UTF-8 too), a
    /// nats-server peer answers our -ERR by closing the route, then re-sends the same
    /// interest when it re-connects: the cluster would split over one client's odd
    /// subject. Such interest is left out instead (messages on it do not cross to that
    /// peer), said once per route at warn. Otherwise it is nats-server's own refusal.
    fn unindexable_subscription(&mut self, subject: &[u8]) -> Result<(), Close> {
        let mut tokens = subject.split(|&b| b == b'.').peekable();
        let mut nats_takes = !subject.is_empty();
        while let Some(t) = tokens.next() {
            if t.is_empty() || (t == b">" && tokens.peek().is_some()) {
                nats_takes = false;
            }
        }
        if !nats_takes {
            return self.invalid_subscription();
        }
        if !self.warned_unindexable {
            self.warned_unindexable = true;
            warn!(
                "{} - Remote subscription on {:?} ignored: not a subject this server can index (non-UTF-8 or whitespace)",
                self.prefix,
                String::from_utf8_lossy(subject)
            );
        }
        Ok(())
    }

    /// route.go processRemoteSub when Sublist.Insert fails.
    fn invalid_subscription(&mut self) -> Result<(), Close> {
        error!(
            "{} - Could not insert subscription: invalid subject",
            self.prefix
        );
        let _ = self
            .shared
            .out
            .send(&encode::err_line("Invalid Subscription"));
        Ok(())
    }

    pub(super) fn remote_unsub(&mut self, arg: &[u8]) -> Result<(), Close> {
        let args: Vec<&[u8]> = split_args(arg).collect();
        // RS- <acc> <subject> [queue]; LS- has the same shape.
        if !(2..=3).contains(&args.len()) {
            error!(
                "{} - processRemoteUnsub parse error: '{}'",
                self.prefix,
                String::from_utf8_lossy(arg)
            );
            return Err(Close(ClosedState::ProtocolViolation));
        }
        let (Ok(subject), Ok(queue)) = (
            std::str::from_utf8(args[1]),
            args.get(2).map(|q| std::str::from_utf8(q)).transpose(),
        ) else {
            return Ok(());
        };
        let key = route_sub_key(subject, queue);
        let sub = lock(&self.shared.subs).remove(&key);
        if let Some(sub) = sub {
            let mut sl = self.srv.sublist.write().unwrap_or_else(|e| e.into_inner());
            let _ = sl.remove(&sub.subject, sub.queue.as_deref(), &sub);
            self.srv.publish_generation(sl.generation());
        }
        Ok(())
    }

    /// Removes the route's interest and registration.
    pub(super) fn cleanup(&mut self) {
        let subs: Vec<SubRef> = lock(&self.shared.subs).drain().map(|(_, s)| s).collect();
        if !subs.is_empty() {
            let mut sl = self.srv.sublist.write().unwrap_or_else(|e| e.into_inner());
            // route.go removeRemoteSubs: RemoveBatch, which also clears the match cache.
            let _ = sl.remove_batch(
                subs.iter()
                    .map(|s| (s.subject.as_str(), s.queue.as_deref(), s)),
            );
            self.srv.publish_generation(sl.generation());
            debug!(
                "{} - Removing {} subscriptions for account \"$G\"",
                self.prefix,
                subs.len()
            );
        }
        if self.registered {
            if let Some(r) = self.srv.cluster.remove_route(self.shared.cid) {
                let (urls, surls, wurls) = {
                    let m = lock(&r.meta);
                    (
                        m.connect_urls.clone(),
                        m.scion_connect_urls.clone(),
                        m.ws_connect_urls.clone(),
                    )
                };
                let a = self.srv.cluster.update_remote_urls(&urls, false);
                let b = self.srv.cluster.update_remote_scion_urls(&surls, false);
                let c = self.srv.cluster.update_remote_ws_urls(&wurls, false);
                if (a || b || c) && !self.srv.opts().cluster.no_advertise {
                    send_async_info_to_clients(&self.srv, a || b, c);
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
