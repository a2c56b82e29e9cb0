//! CONNECT handling, authentication and PING replies of a client
//! (client.go `processConnect`, `processPing`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::error;

use super::{Close, Conn};
use crate::proto::encode;
use crate::server::auth::{go_quote, AuthResult, ReplyTracker};
use crate::server::closed::ClosedState;
use crate::server::lock;

impl Conn {
    pub(super) fn auth_violation(&mut self) -> Close {
        let user = self.connect.user.clone().unwrap_or_default();
        error!(
            "{} - {}",
            self.shared.log_prefix(),
            self.srv
                .auth_for(&self.shared)
                .violation_text(&self.connect)
        );
        self.send_proto(encode::ERR_AUTH_VIOLATION);
        if !user.is_empty() {
            lock(&self.shared.meta).user = Some(user);
        }
        Close(ClosedState::AuthenticationViolation)
    }

    pub(super) fn authenticated(&mut self, r: AuthResult) {
        self.connected = true;
        self.awaiting_auth = false;
        self.perms = r.perms.map(Arc::new);
        self.pub_cache.clear();
        // A later reload re-checks these credentials; a reload result
        // computed for an earlier CONNECT no longer applies.
        self.shared.perms_reloaded.store(false, Ordering::Release);
        *lock(&self.shared.auth_connect) = Some(self.connect.clone());
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
        m.user = r
            .user
            .or_else(|| self.connect.user.clone().filter(|u| !u.is_empty()));
        m.token = self.connect.auth_token.clone().filter(|t| !t.is_empty());
        m.nkey = self.connect.nkey.clone().filter(|k| !k.is_empty());
        m.connected = true;
    }

    /// PONG, and on the first PING of a protocol-1 client an INFO first if
    /// the cluster's connect URLs changed since it connected
    /// (nats-server `processPing`).
    pub(super) fn handle_ping(&mut self) {
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

    pub(super) fn handle_connect(&mut self, json: &[u8]) -> Result<(), Close> {
        // client.go processConnect estimates the RTT as the time since
        // accept before anything else (computeRTT, at least 1 ns), so
        // /connz shows one without a PING round trip (and getRTT sends no
        // PING for it); a later PONG to our PING replaces it.
        let since_accept = self.shared.start.elapsed().unwrap_or_default();
        lock(&self.shared.meta).rtt = Some(since_accept.max(Duration::from_nanos(1)));
        // Like nats-server, the document is applied on top of the current
        // options (a second CONNECT keeps what it omits); bad JSON closes
        // without an -ERR.
        if let Err(e) = self.connect.merge_client_json(json) {
            // client.go readLoop logs the json.Unmarshal error as it is (in Go's
            // words: proto::json and proto::gojson).
            error!("{} - {}", self.shared.log_prefix(), e);
            return Err(Close(ClosedState::ProtocolViolation));
        }
        // Named before authentication, so an auth error names the client; and
        // /connz?state=closed shows who a refused CONNECT was (nats-server keeps
        // c.opts, and a closed connection's user is c.opts.Username, server.go
        // saveClosedClient).
        self.name_log_prefix();
        {
            let mut m = lock(&self.shared.meta);
            m.name = self.connect.name.clone().unwrap_or_default();
            m.lang = self.connect.lang.clone().unwrap_or_default();
            m.version = self.connect.version.clone().unwrap_or_default();
        }
        // Every CONNECT is authenticated again (client.go processConnect
        // calls checkAuthentication each time): a second CONNECT with bad
        // credentials closes, one naming another user switches permissions.
        let auth = self.srv.auth_for(&self.shared);
        let nonce = self.shared.nonce.get().map(String::as_str).unwrap_or("");
        match auth.check(
            &self.connect,
            nonce.as_bytes(),
            self.shared.websocket.is_some(),
        ) {
            Some(r) => self.authenticated(r),
            None => return Err(self.auth_violation()),
        }
        // client.go processConnect: `c.last = time.Now()`, the RTT is
        // estimated from the time since accept, and the ping timer starts
        // over with the short first delay (setFirstPingTimer).
        let now = self.now_ns();
        self.shared.last_activity.store(now, Ordering::Relaxed);
        self.clock.rtt_known = true;
        self.clock.restart = true;
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
            self.send_proto(encode::ERR_BAD_PROTOCOL);
            self.close_error = Some("invalid client protocol");
            return Err(Close(ClosedState::BadClientProtocolVersion));
        }
        if self.connect.no_responders && !self.connect.headers {
            self.send_proto(encode::ERR_NO_RESPONDERS_HEADERS);
            self.close_error = Some("no responders requires headers support");
            return Err(Close(ClosedState::NoRespondersRequiresHeaders));
        }
        self.shared
            .headers
            .store(self.connect.headers, Ordering::Relaxed);
        self.limits.headers = self.connect.headers;
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
}
