//! /connz rows of client and route connections.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::{ClientShared, SubRef};
use crate::monitor::subsz::SubDetail;
use crate::proto::ConnKind;
use crate::server::closed::ClosedState;
use crate::server::{lock, ServerState};

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
    /// The subscriptions a closed connection had (empty for open ones:
    /// /connz reads those live).
    pub subs: Vec<SubDetail>,
    pub name: String,
    pub lang: String,
    pub version: String,
    /// TLS version and cipher suite (client TLS on the TCP port).
    pub tls: Option<(String, String)>,
    /// The TLS client's certificates, DER.
    pub tls_peer_der: Vec<Vec<u8>>,
    pub user: Option<String>,
    pub token: Option<String>,
    pub nkey: Option<String>,
    /// A websocket client (/connz type `websocket`).
    pub websocket: bool,
}

impl ClientShared {
    pub fn snapshot(&self, srv: &ServerState, stop: Option<SystemTime>) -> ConnSnapshot {
        let meta = lock(&self.meta).clone();
        let subscriptions = lock(&self.subs).len();
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
            subscriptions,
            subs: Vec::new(),
            name: meta.name,
            lang: meta.lang,
            version: meta.version,
            tls: meta.tls,
            tls_peer_der: meta.tls_peer_der,
            user: meta.user,
            token: meta.token,
            nkey: meta.nkey,
            websocket: self.websocket.is_some(),
        }
    }

    /// The row of a connection that closed at `stop`, with the
    /// subscriptions it had (`subs`, already taken out of the index), like
    /// nats-server server.go saveClosedClient: a `SubDetail` per
    /// subscription, with the account (newSubDetail), and `max` zero as
    /// closeConnection has cleared every auto-unsubscribe limit by then.
    pub fn closed_snapshot(
        &self,
        srv: &ServerState,
        stop: SystemTime,
        subs: &[SubRef],
    ) -> ConnSnapshot {
        let mut s = self.snapshot(srv, Some(stop));
        s.subscriptions = subs.len();
        s.subs = subs.iter().map(|sub| SubDetail::at_close(sub)).collect();
        s.subs.sort_by(|a, b| a.sid.cmp(&b.sid));
        // Never shown for closed connections (server.go saveClosedClient fills them with auth
        // off): not kept.
        s.tls_peer_der = Vec::new();
        s
    }
}
