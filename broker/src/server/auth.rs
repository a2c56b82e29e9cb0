//! Client authentication and subject permissions (nats-server `server/auth.go`,
//! `client.go` `canSubscribe` / `pubAllowed`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::options::{Options, Permissions, ResponsePermission, SubjectPermission};
use crate::proto::json::ConnectInfo;
use crate::sublist::{subject_is_subset_match, subject_matches};

/// Resolved authentication settings.
#[derive(Debug, Default)]
pub struct AuthConfig {
    token: Option<String>,
    single: Option<(String, String)>,
    users: HashMap<String, UserEntry>,
    /// nkey users by public key (their `password` is unused).
    nkeys: HashMap<String, UserEntry>,
    no_auth_user: Option<String>,
    /// The websocket port's override: auth is required (auth.go `ao`).
    override_required: bool,
}

#[derive(Debug, Clone)]
struct UserEntry {
    password: String,
    perms: Option<CompiledPerms>,
    /// client.go connectionTypeAllowed: an empty list allows any; our clients are
    /// STANDARD (TCP and QUIC/SCION) or WEBSOCKET.
    standard_allowed: bool,
    websocket_allowed: bool,
}

impl UserEntry {
    fn allowed(&self, ws: bool) -> bool {
        if ws {
            self.websocket_allowed
        } else {
            self.standard_allowed
        }
    }
}

/// Whether a user's `allowed_connection_types` lets in a connection of type `t`.
fn type_allowed(types: &[String], t: &str) -> bool {
    types.is_empty() || types.iter().any(|x| x == t)
}

/// Who a connection authenticated as.
#[derive(Debug, Clone, Default)]
pub struct AuthResult {
    pub user: Option<String>,
    pub perms: Option<CompiledPerms>,
}

impl AuthConfig {
    pub fn from_options(o: &Options) -> Self {
        let a = &o.authorization;
        let mut users = HashMap::new();
        let default_perms = a.default_permissions.as_ref().map(CompiledPerms::compile);
        let entry = |password: &str, types: &[String], perms: &Option<Permissions>| UserEntry {
            password: password.to_string(),
            standard_allowed: type_allowed(types, "STANDARD"),
            websocket_allowed: type_allowed(types, "WEBSOCKET"),
            perms: perms
                .as_ref()
                .map(CompiledPerms::compile)
                .or_else(|| default_perms.clone()),
        };
        for u in &a.users {
            let e = entry(&u.password, &u.allowed_connection_types, &u.permissions);
            users.insert(u.username.clone(), e);
        }
        let nkeys = a
            .nkeys
            .iter()
            .map(|u| {
                let e = entry("", &u.allowed_connection_types, &u.permissions);
                (u.nkey.clone(), e)
            })
            .collect();
        let single = match (&a.user, &a.password) {
            (Some(u), p) => Some((u.clone(), p.clone().unwrap_or_default())),
            _ => None,
        };
        AuthConfig {
            token: a.token.clone(),
            single,
            users,
            nkeys,
            no_auth_user: o.no_auth_user.clone(),
            override_required: false,
        }
    }

    /// The websocket port's override (websocket.go wsConfigAuth: any of its user, token or
    /// `no_auth_user` set): those replace the server's single user, token and
    /// `no_auth_user` for websocket clients; the users list stays. None: no override.
    pub fn for_websocket(o: &Options) -> Option<Self> {
        let w = o.websocket.as_ref()?;
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if !set(&w.username) && !set(&w.token) && !set(&w.no_auth_user) {
            return None;
        }
        let mut o = o.clone();
        o.authorization.user = w.username.clone().filter(|s| !s.is_empty());
        o.authorization.password = w.password.clone();
        o.authorization.token = w.token.clone().filter(|s| !s.is_empty());
        o.no_auth_user = w.no_auth_user.clone().filter(|s| !s.is_empty());
        let mut a = Self::from_options(&o);
        // websocket.go: with an override, auth is required of websocket clients even
        // when the server requires none.
        a.override_required = true;
        Some(a)
    }

    /// Whether clients get a nonce in their INFO to sign (nkey.go nonceRequired: with
    /// nkey users).
    pub fn nonce_required(&self) -> bool {
        !self.nkeys.is_empty()
    }

    /// Whether `nkeys` has this public key.
    pub fn has_nkey(&self, key: &str) -> bool {
        self.nkeys.contains_key(key)
    }

    /// Whether any client authentication is configured: a connection must
    /// then start with CONNECT, or be taken as the `no_auth_user`.
    pub fn expects_connect(&self) -> bool {
        self.token.is_some()
            || self.single.is_some()
            || !self.users.is_empty()
            || !self.nkeys.is_empty()
            || self.override_required
    }

    /// INFO `auth_required`: false when a `no_auth_user` lets clients in
    /// without credentials (server.go createClient resets it).
    pub fn required(&self) -> bool {
        self.expects_connect() && self.no_auth_user.is_none()
    }

    /// The `no_auth_user`, if it names a configured user.
    pub fn no_auth_user(&self, ws: bool) -> Option<AuthResult> {
        self.no_auth_user_for(Some(ws))
    }

    /// The `no_auth_user` for a client whose first operation is not CONNECT:
    /// parser.go OP_START registers that user without checking its connection
    /// types (only a CONNECT goes through processClientOrLeafAuthentication).
    pub fn no_auth_user_without_connect(&self) -> Option<AuthResult> {
        self.no_auth_user_for(None)
    }

    /// `ws`: the connection type to check (None: no check).
    fn no_auth_user_for(&self, ws: Option<bool>) -> Option<AuthResult> {
        let name = self.no_auth_user.as_ref()?;
        let u = self.users.get(name)?;
        if ws.is_some_and(|ws| !u.allowed(ws)) {
            return None;
        }
        Some(AuthResult {
            user: Some(name.clone()),
            perms: u.perms.clone(),
        })
    }

    /// Whether `users` has this user (single `user`/`password` is not in
    /// it, as in nats-server's `s.users`).
    pub fn has_user(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// The line nats-server logs for a refused CONNECT (client.go authViolation):
    /// with nkey users it names the nkey the client gave, else with a users list the
    /// user, even an empty one; with a token or a single user it names neither.
    pub fn violation_text(&self, c: &ConnectInfo) -> String {
        if !self.nkeys.is_empty() {
            let nkey = c.nkey.as_deref().unwrap_or("");
            format!("authentication error - Nkey {}", go_quote(nkey))
        } else if !self.users.is_empty() {
            let user = c.user.as_deref().unwrap_or("");
            format!("authentication error - User {}", go_quote(user))
        } else {
            "authentication error".to_string()
        }
    }

    /// Checks a CONNECT; `nonce` is the one its INFO carried (empty without one), `ws`
    /// whether it came over the websocket port. `None` = Authorization Violation.
    pub fn check(&self, c: &ConnectInfo, nonce: &[u8], ws: bool) -> Option<AuthResult> {
        if !self.expects_connect() {
            return Some(AuthResult::default());
        }
        // auth.go processClientOrLeafAuthentication: with nkey users, a client that
        // names an nkey is that nkey user or nobody (its user name is not looked at).
        let nkey = c.nkey.as_deref().unwrap_or("");
        if !self.nkeys.is_empty() && !nkey.is_empty() {
            let u = self.nkeys.get(nkey).filter(|u| u.allowed(ws))?;
            if !nkey_signature_ok(nkey, c.sig.as_deref().unwrap_or(""), nonce) {
                return None;
            }
            return Some(AuthResult {
                user: None,
                perms: u.perms.clone(),
            });
        }
        let no_creds = c.user.as_deref().unwrap_or("").is_empty()
            && c.pass.as_deref().unwrap_or("").is_empty()
            && c.auth_token.as_deref().unwrap_or("").is_empty();
        if no_creds {
            if let Some(r) = self.no_auth_user(ws) {
                return Some(r);
            }
            // A no_auth_user whose connection types leave out STANDARD refuses
            // credential-less clients (auth.go: the user is looked up, then refused).
            let listed = self.no_auth_user.as_ref().and_then(|n| self.users.get(n));
            if listed.is_some() {
                return None;
            }
        }
        // auth.go processClientOrLeafAuthentication: a user name is looked up in the
        // users list and must be there; without one, a token (`--auth` beside a users
        // list) or the single user is checked as if there were no list.
        let name = c.user.as_deref().unwrap_or("");
        if !self.users.is_empty() && !name.is_empty() {
            let u = self.users.get(name).filter(|u| u.allowed(ws))?;
            if password_matches(&u.password, c.pass.as_deref().unwrap_or("")) {
                return Some(AuthResult {
                    user: Some(name.to_string()),
                    perms: u.perms.clone(),
                });
            }
            return None;
        }
        if let Some(tok) = &self.token {
            // Tokens may be bcrypt hashes too (auth.go comparePasswords).
            let given = c.auth_token.as_deref().unwrap_or("");
            return password_matches(tok, given).then(AuthResult::default);
        }
        if let Some((u, p)) = &self.single {
            let ok = c.user.as_deref() == Some(u.as_str())
                && password_matches(p, c.pass.as_deref().unwrap_or(""));
            return ok.then(|| AuthResult {
                user: Some(u.clone()),
                perms: None,
            });
        }
        None
    }
}

/// nats-server 2.9.10 `isBcrypt`: a configured secret matching
/// `^\$2[abxy]\$\d{2}\$` (auth.go validBcryptPrefix) is a bcrypt hash.
pub(crate) fn is_bcrypt(s: &str) -> bool {
    let b = s.as_bytes();
    let rest = match b.strip_prefix(b"$2") {
        Some(r) => r,
        None => return false,
    };
    let rest = match rest.first() {
        Some(b'a' | b'b' | b'x' | b'y') => &rest[1..],
        _ => return false,
    };
    rest.len() >= 4
        && rest[0] == b'$'
        && rest[1].is_ascii_digit()
        && rest[2].is_ascii_digit()
        && rest[3] == b'$'
}

/// Compares a client's secret with the configured one like nats-server
/// `comparePasswords`: bcrypt verification for bcrypt hashes, otherwise a
/// constant-time byte comparison.
fn password_matches(configured: &str, given: &str) -> bool {
    if is_bcrypt(configured) {
        // A malformed hash or a bcrypt error is a failed login, as in Go.
        return bcrypt::verify(given, configured).unwrap_or(false);
    }
    let a = configured.as_bytes();
    let b = given.as_bytes();
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `key` is a user's public nkey (`U...`): base32 with a CRC-16 and the user
/// prefix byte (nkeys IsValidPublicUserKey). Also an Ed25519 point, since a key that is
/// not could never verify a signature.
pub(crate) fn is_user_nkey(key: &str) -> bool {
    const PREFIX_USER: u8 = 20 << 3;
    nkeys::from_public_key(key).is_ok_and(|(prefix, _)| prefix == PREFIX_USER)
        && nkeys::KeyPair::from_public_key(key).is_ok()
}

/// The client's `sig` over the INFO nonce, checked as auth.go does: base64 URL without
/// padding, else standard base64; an Ed25519 signature by the nkey.
fn nkey_signature_ok(nkey: &str, sig: &str, nonce: &[u8]) -> bool {
    if sig.is_empty() {
        return false;
    }
    let sig = data_encoding::BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .or_else(|_| data_encoding::BASE64.decode(sig.as_bytes()));
    let Ok(sig) = sig else { return false };
    nkeys::KeyPair::from_public_key(nkey).is_ok_and(|k| k.verify(nonce, &sig).is_ok())
}

/// A fresh nonce for a client's INFO: 11 random bytes in base64 URL without padding, 15
/// characters (nkey.go generateNonce).
pub fn new_nonce() -> String {
    let raw: [u8; 11] = rand::random();
    data_encoding::BASE64URL_NOPAD.encode(&raw)
}

/// Allow/deny lists ready for matching.
#[derive(Debug, Clone, Default)]
pub struct CompiledList {
    /// `None` = everything allowed (no allow list configured).
    allow: Option<Vec<Pattern>>,
    deny: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    subject: String,
    /// Subscribe allow entries may carry a queue: "foo v1".
    queue: Option<String>,
}

impl CompiledList {
    fn compile(p: &SubjectPermission) -> Self {
        let parse = |s: &String| {
            let mut it = s.split_whitespace();
            let subject = it.next().unwrap_or("").to_string();
            let queue = it.next().map(str::to_string);
            Pattern { subject, queue }
        };
        CompiledList {
            allow: if p.allow.is_empty() {
                None
            } else {
                Some(p.allow.iter().map(parse).collect())
            },
            deny: p.deny.iter().map(parse).collect(),
        }
    }

    /// Publish check (client.go pubAllowedFullCheck): the allow and deny lists are
    /// sublists matched with the published subject's tokens taken literally
    /// (Sublist.Match), so a non-pedantic `PUB secret.>` is refused by a deny of
    /// `secret.*` (whose `*` matches any token, `>` included) and allowed by an allow
    /// of `p.*`, as in nats-server.
    pub fn allows_publish(&self, subject: &str) -> bool {
        if let Some(allow) = &self.allow {
            if !allow.iter().any(|p| subject_matches(&p.subject, subject)) {
                return false;
            }
        }
        !self
            .deny
            .iter()
            .any(|p| subject_matches(&p.subject, subject))
    }

    /// Subscribe check (client.go canSubscribe): entries are matched against the
    /// subscription subject with its tokens taken literally (Sublist.Match). Of the
    /// matching entries, plain ones allow (or deny) the subject; for a queue
    /// subscription, matching entries that name a queue decide instead when there are
    /// any ("foo", "foo v1" allow plain subscriptions to foo, queue ones only in v1).
    pub fn allows_subscribe(&self, subject: &str, queue: Option<&str>) -> bool {
        // (any plain entry matched, queue entries matched: whether one names `queue`)
        let judge = |list: &[Pattern]| {
            let mut plain = false;
            let mut queued: Option<bool> = None;
            for p in list.iter().filter(|p| subject_matches(&p.subject, subject)) {
                match &p.queue {
                    None => plain = true,
                    Some(pq) => {
                        let hit = queue.is_some_and(|q| queue_matches(pq, q));
                        queued = Some(queued.unwrap_or(false) || hit);
                    }
                }
            }
            match (queue, queued) {
                (Some(_), Some(hit)) => hit,
                _ => plain,
            }
        };
        if let Some(allow) = &self.allow {
            if !judge(allow) {
                return false;
            }
        }
        !judge(&self.deny)
    }

    /// Deny entries that a wildcard subscription overlaps: messages on those
    /// subjects must be filtered at delivery (nats-server `loadMsgDenyFilter`).
    pub fn deny_overlaps(&self, subject: &str) -> bool {
        self.deny
            .iter()
            .any(|p| p.queue.is_none() && subject_is_subset_match(&p.subject, subject))
    }

    /// The delivery filter (client.go checkDenySub): the message subject, tokens taken
    /// literally, against the plain deny entries.
    pub fn denies_literal(&self, subject: &str) -> bool {
        self.deny
            .iter()
            .any(|p| p.queue.is_none() && subject_matches(&p.subject, subject))
    }
}

/// client.go queueMatches: the queue name as written, or within a wildcard entry.
fn queue_matches(pattern: &str, queue: &str) -> bool {
    queue == pattern
        || (pattern.split('.').any(|t| t == "*" || t == ">")
            && subject_is_subset_match(queue, pattern))
}

/// Publish and subscribe permissions of one user.
#[derive(Debug, Clone, Default)]
pub struct CompiledPerms {
    pub publish: Option<CompiledList>,
    pub subscribe: Option<CompiledList>,
    /// `allow_responses`: replies to received requests may be published
    /// even where `publish` denies them.
    pub responses: Option<ResponseLimits>,
}

impl CompiledPerms {
    pub fn compile(p: &Permissions) -> Self {
        let mut publish = p.publish.as_ref().map(CompiledList::compile);
        let responses = p.allow_responses.as_ref().map(ResponseLimits::from_config);
        if responses.is_some() {
            // auth.go validateResponsePermissions / opts.go
            // parseUserPermissions: with response permissions and no publish
            // allow list, the blanket allow is turned off (an empty allow
            // list), so only replies (and explicit allows) may be published.
            let list = publish.get_or_insert_with(CompiledList::default);
            if list.allow.is_none() {
                list.allow = Some(Vec::new());
            }
        }
        CompiledPerms {
            publish,
            subscribe: p.subscribe.as_ref().map(CompiledList::compile),
            responses,
        }
    }

    /// Publishing is limited at all (client.go pubAllowedFullCheck: an
    /// allow or a deny list exists).
    pub fn limits_publish(&self) -> bool {
        self.publish
            .as_ref()
            .is_some_and(|l| l.allow.is_some() || !l.deny.is_empty())
    }

    pub fn can_publish(&self, subject: &str) -> bool {
        self.publish
            .as_ref()
            .is_none_or(|l| l.allows_publish(subject))
    }

    pub fn can_subscribe(&self, subject: &str, queue: Option<&str>) -> bool {
        self.subscribe
            .as_ref()
            .is_none_or(|l| l.allows_subscribe(subject, queue))
    }
}

/// Entries a connection's publish-permission cache holds before pruning
/// (client.go `maxPermCacheSize`).
const MAX_PERM_CACHE_SIZE: usize = 128;
/// Entries one prune drops (client.go `pruneSize`).
const PERM_PRUNE_SIZE: usize = 32;

/// Per-connection cache of publish-permission results by subject
/// (client.go `c.perms.pcache`): a publisher usually repeats a few
/// subjects, so the allow/deny lists are matched once per subject. Bounded
/// like nats-server's: past [`MAX_PERM_CACHE_SIZE`] entries, some are
/// dropped (arbitrary ones, as Go's map iteration in prunePubPermsCache).
/// Holds only the allow/deny outcome; `allow_responses` replies are checked
/// beside it and never cached (pubAllowedFullCheck).
#[derive(Debug, Default)]
pub struct PubPermCache {
    map: HashMap<Box<str>, bool>,
}

impl PubPermCache {
    /// `perms.can_publish(subject)`, cached. Users without publish rules
    /// skip the cache (pubAllowedFullCheck returns early for them).
    pub fn can_publish(&mut self, perms: &CompiledPerms, subject: &str) -> bool {
        if !perms.limits_publish() {
            return true;
        }
        if let Some(&allowed) = self.map.get(subject) {
            return allowed;
        }
        let allowed = perms.can_publish(subject);
        if self.map.len() >= MAX_PERM_CACHE_SIZE {
            let drop: Vec<Box<str>> = self.map.keys().take(PERM_PRUNE_SIZE).cloned().collect();
            for k in drop {
                self.map.remove(&k);
            }
        }
        self.map.insert(subject.into(), allowed);
        allowed
    }

    /// Forgets every result (the permissions changed: a new CONNECT).
    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// nats-server `DEFAULT_ALLOW_RESPONSE_MAX_MSGS` (server/const.go).
pub const DEFAULT_ALLOW_RESPONSE_MAX_MSGS: u64 = 1;
/// nats-server `DEFAULT_ALLOW_RESPONSE_EXPIRATION` (server/const.go).
pub const DEFAULT_ALLOW_RESPONSE_EXPIRATION: Duration = Duration::from_secs(120);
/// Tracked reply subjects above which expired/used ones are pruned
/// (client.go `replyPermLimit`).
const REPLY_PERM_LIMIT: usize = 4096;

/// Limits of `allow_responses` (auth.go `ResponsePermission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Replies allowed per received request; `None` = unlimited (a negative
    /// `max` in the config).
    pub max: Option<u64>,
    /// How long after the request a reply is allowed; `None` = no expiry (a
    /// negative `expires`).
    pub expires: Option<Duration>,
}

impl ResponseLimits {
    /// Zero values take the defaults like auth.go
    /// `validateResponsePermissions`; the config layer maps negative values
    /// to `usize::MAX` / `Duration::MAX` (unlimited).
    pub fn from_config(r: &ResponsePermission) -> Self {
        let max = match r.max {
            0 => Some(DEFAULT_ALLOW_RESPONSE_MAX_MSGS),
            usize::MAX => None,
            n => Some(n as u64),
        };
        let expires = if r.expires.is_zero() {
            Some(DEFAULT_ALLOW_RESPONSE_EXPIRATION)
        } else if r.expires == Duration::MAX {
            None
        } else {
            Some(r.expires)
        };
        ResponseLimits { max, expires }
    }
}

/// Reply subjects of requests delivered to a connection with response
/// permissions (client.go `c.replies`, filled in `deliverMsg`, consumed in
/// `pubAllowedFullCheck`). Pure: the caller passes `now`.
#[derive(Debug)]
pub struct ReplyTracker {
    limits: ResponseLimits,
    /// Reply subject -> (when the request was delivered, replies sent).
    replies: HashMap<Box<[u8]>, (Instant, u64)>,
}

impl ReplyTracker {
    pub fn new(limits: ResponseLimits) -> Self {
        ReplyTracker {
            limits,
            replies: HashMap::new(),
        }
    }

    /// A message with reply subject `reply` was delivered: allow replies to
    /// it again from `now` (a repeated reply subject restarts its count, as
    /// in deliverMsg).
    pub fn track(&mut self, reply: &[u8], now: Instant) {
        match self.replies.get_mut(reply) {
            Some(e) => *e = (now, 0),
            None => {
                self.replies.insert(reply.into(), (now, 0));
            }
        }
        if self.replies.len() > REPLY_PERM_LIMIT {
            self.prune(now);
        }
    }

    /// Whether a publish to `subject` (denied by the publish lists) is a
    /// permitted reply. Counts the reply; the entry is dropped once it is
    /// over `max` or expired (client.go `pubAllowedFullCheck`).
    pub fn allow(&mut self, subject: &[u8], now: Instant) -> bool {
        let Some(e) = self.replies.get_mut(subject) else {
            return false;
        };
        e.1 += 1;
        let over = self.limits.max.is_some_and(|m| e.1 > m);
        let expired = self
            .limits
            .expires
            .is_some_and(|ttl| now.saturating_duration_since(e.0) > ttl);
        if over || expired {
            self.replies.remove(subject);
            return false;
        }
        true
    }

    /// Drops used-up and expired entries (client.go `pruneReplyPerms`).
    fn prune(&mut self, now: Instant) {
        let l = self.limits;
        self.replies.retain(|_, (t, n)| {
            !(l.max.is_some_and(|m| *n >= m)
                || l.expires
                    .is_some_and(|ttl| now.saturating_duration_since(*t) > ttl))
        });
    }

    pub fn len(&self) -> usize {
        self.replies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}

/// Go's `%q` for the strings that appear in permission errors (the same
/// quoting as the protocol trace's payloads).
pub fn go_quote(s: &str) -> String {
    super::trace::go_quote_bytes(s.as_bytes())
}

/// After a config reload changed authorization: re-checks every client
/// connection against the new settings (reload.go reloadAuthorization).
/// A client whose credentials no longer pass gets `-ERR 'Authorization
/// Violation'` and is closed (client.go authViolation); the others get the
/// new user permissions, and subscriptions those no longer allow are
/// removed with a `-ERR` naming subject and sid (client.go
/// processSubsOnConfigReload). Clients that have not sent CONNECT yet are
/// checked at CONNECT against the new settings.
pub fn recheck_clients_after_reload(srv: &crate::server::ServerState) {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use crate::proto::{encode, ConnKind};
    use crate::server::{lock, ClosedState};

    let clients: Vec<_> = lock(&srv.clients)
        .values()
        .filter(|c| c.kind == ConnKind::Client)
        .cloned()
        .collect();
    for c in clients {
        let Some(connect) = lock(&c.auth_connect).clone() else {
            continue;
        };
        let auth = srv.auth_for(&c);
        // reload.go clientHasMovedToDifferentAccount: a client that named a
        // user no longer in `users` (also any named user under a single
        // user/password config) is closed as "Client Closed", without -ERR.
        // An nkey client is looked up by its nkey, whatever user it named.
        let nkey = connect.nkey.as_deref().unwrap_or("");
        let moved = if !nkey.is_empty() {
            !auth.has_nkey(nkey)
        } else {
            connect
                .user
                .as_deref()
                .is_some_and(|u| !u.is_empty() && !auth.has_user(u))
        };
        if moved {
            c.out.close(ClosedState::ClientClosed);
            continue;
        }
        let nonce = c.nonce.get().map(String::as_str).unwrap_or("");
        let Some(r) = auth.check(&connect, nonce.as_bytes(), c.websocket.is_some()) else {
            let prefix = c.log_prefix();
            tracing::error!("{} - {}", prefix, auth.violation_text(&connect));
            // client.go sendErr: traced like any -ERR.
            crate::server::trace::trace_out_proto(&prefix, encode::ERR_AUTH_VIOLATION);
            let _ = c.out.send(encode::ERR_AUTH_VIOLATION);
            c.out.close(ClosedState::AuthenticationViolation);
            continue;
        };
        let perms = r.perms.map(Arc::new);
        *lock(&c.sub_deny) = perms.as_ref().filter(|p| p.subscribe.is_some()).cloned();
        // client.go setPermissions: a fresh reply map per registration.
        let tracker = perms
            .as_ref()
            .and_then(|p| p.responses)
            .map(ReplyTracker::new);
        c.track_replies.store(tracker.is_some(), Ordering::Release);
        *lock(&c.replies) = tracker;
        *lock(&c.reloaded_perms) = perms.clone();
        c.perms_reloaded.store(true, Ordering::Release);
        lock(&c.meta).user = r
            .user
            .or_else(|| connect.user.clone().filter(|u| !u.is_empty()));
        let Some(perms) = perms else {
            continue;
        };
        let subs: Vec<_> = lock(&c.subs).values().cloned().collect();
        let mut sent = false;
        for sub in subs {
            let can = perms.can_subscribe(&sub.subject, None)
                || sub
                    .queue
                    .as_deref()
                    .is_some_and(|q| perms.can_subscribe(&sub.subject, Some(q)));
            if can {
                continue;
            }
            crate::server::remove_sub_now(srv, &sub);
            let sid = String::from_utf8_lossy(&sub.sid);
            let text = format!(
                "Permissions Violation for Subscription to {} (sid {})",
                go_quote(&sub.subject),
                go_quote(&sid)
            );
            let line = encode::err_line(&text);
            crate::server::trace::trace_out_proto(&c.log_prefix(), &line);
            let _ = c.out.append(&line);
            sent = true;
            // client.go getAuthUser: the nkey, else the user name (the no_auth_user's
            // included).
            let who = match (nkey.is_empty(), lock(&c.meta).user.clone()) {
                (false, _) => format!("Nkey {}", go_quote(nkey)),
                (true, Some(u)) if !u.is_empty() => format!("User {}", go_quote(&u)),
                _ => "User \"N/A\"".to_string(),
            };
            tracing::info!(
                "Removed sub {} (sid {}) for {} - not authorized",
                go_quote(&sub.subject),
                go_quote(&sid),
                who
            );
        }
        if sent {
            c.out.flush_signal();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Authorization, User};

    fn perms(pub_allow: &[&str], pub_deny: &[&str], sub_allow: &[&str]) -> Permissions {
        Permissions {
            publish: Some(SubjectPermission {
                allow: pub_allow.iter().map(|s| s.to_string()).collect(),
                deny: pub_deny.iter().map(|s| s.to_string()).collect(),
            }),
            subscribe: Some(SubjectPermission {
                allow: sub_allow.iter().map(|s| s.to_string()).collect(),
                deny: vec![],
            }),
            allow_responses: None,
        }
    }

    #[test]
    fn publish_allow_deny() {
        let p = CompiledPerms::compile(&perms(&["foo.>"], &["foo.secret"], &[]));
        assert!(p.can_publish("foo.bar"));
        assert!(!p.can_publish("foo.secret"));
        assert!(!p.can_publish("bar"));
    }

    #[test]
    fn publish_cache_gives_the_same_answers_and_stays_bounded() {
        let p = CompiledPerms::compile(&perms(&["foo.>"], &["foo.secret"], &[]));
        let mut c = PubPermCache::default();
        for _ in 0..2 {
            assert!(c.can_publish(&p, "foo.bar"));
            assert!(!c.can_publish(&p, "foo.secret"));
            assert!(!c.can_publish(&p, "bar"));
        }
        assert_eq!(c.len(), 3);
        for i in 0..1000 {
            let s = format!("foo.{i}");
            assert!(c.can_publish(&p, &s));
            assert!(c.len() <= MAX_PERM_CACHE_SIZE);
        }
        assert!(!c.can_publish(&p, "foo.secret"));
        c.clear();
        assert!(c.is_empty());
        // No publish rules: allowed without caching.
        let open = CompiledPerms::compile(&perms(&[], &[], &["x"]));
        assert!(!open.limits_publish());
        assert!(c.can_publish(&open, "any"));
        assert!(c.is_empty());
    }

    #[test]
    fn subscribe_with_queue_entries() {
        let p = CompiledPerms::compile(&perms(&[], &[], &["foo", "bar v1"]));
        assert!(p.can_subscribe("foo", None));
        assert!(p.can_subscribe("foo", Some("any")));
        assert!(p.can_subscribe("bar", Some("v1")));
        assert!(!p.can_subscribe("bar", None));
        assert!(!p.can_subscribe("bar", Some("v2")));
        assert!(!p.can_subscribe("baz", None));
    }

    #[test]
    fn users_and_no_auth_user() {
        let o = Options {
            authorization: Authorization {
                users: vec![User {
                    username: "a".into(),
                    password: "pw".into(),
                    allowed_connection_types: Vec::new(),
                    permissions: None,
                }],
                ..Default::default()
            },
            no_auth_user: Some("a".into()),
            ..Options::default()
        };
        let cfg = AuthConfig::from_options(&o);
        assert!(cfg.expects_connect());
        assert!(!cfg.required(), "no_auth_user clears INFO auth_required");
        let mut c = ConnectInfo::default();
        assert_eq!(
            cfg.check(&c, b"", false).unwrap().user.as_deref(),
            Some("a")
        );
        c.user = Some("a".into());
        c.pass = Some("bad".into());
        assert!(cfg.check(&c, b"", false).is_none());
        c.pass = Some("pw".into());
        assert!(cfg.check(&c, b"", false).is_some());
    }

    #[test]
    fn nkey_users_sign_the_nonce() {
        let kp = nkeys::KeyPair::new_user();
        let o = Options {
            authorization: Authorization {
                nkeys: vec![crate::options::NkeyUser {
                    nkey: kp.public_key(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Options::default()
        };
        let cfg = AuthConfig::from_options(&o);
        assert!(cfg.nonce_required() && cfg.required());
        let nonce = new_nonce();
        assert_eq!(nonce.len(), 15);
        let mut c = ConnectInfo {
            nkey: Some(kp.public_key()),
            ..Default::default()
        };
        assert!(
            cfg.check(&c, nonce.as_bytes(), false).is_none(),
            "no signature"
        );
        let sig = kp.sign(nonce.as_bytes()).unwrap();
        c.sig = Some(data_encoding::BASE64URL_NOPAD.encode(&sig));
        assert!(cfg.check(&c, nonce.as_bytes(), false).is_some());
        assert!(cfg.check(&c, b"another nonce", false).is_none());
        c.sig = Some(data_encoding::BASE64.encode(&sig));
        assert!(
            cfg.check(&c, nonce.as_bytes(), false).is_some(),
            "padded base64"
        );
        c.nkey = Some(nkeys::KeyPair::new_user().public_key());
        assert!(
            cfg.check(&c, nonce.as_bytes(), false).is_none(),
            "another key"
        );
        assert_eq!(
            cfg.violation_text(&c),
            format!(
                "authentication error - Nkey {:?}",
                c.nkey.as_deref().unwrap()
            )
        );
        assert!(is_user_nkey(&kp.public_key()));
        assert!(!is_user_nkey(&nkeys::KeyPair::new_account().public_key()));
        assert!(!is_user_nkey("UABC"));
    }

    #[test]
    fn bcrypt_passwords() {
        // OpenBSD bcrypt test vector: "U*U" at cost 5.
        let hash = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
        assert!(is_bcrypt(hash));
        assert!(password_matches(hash, "U*U"));
        assert!(!password_matches(hash, "U*V"));
        assert!(!password_matches(hash, hash));
        // 2.9.10 requires the variant letter (`\$2\$` is a plain password there).
        assert!(!is_bcrypt("$2$10$x") && !is_bcrypt("$2c$10$x") && !is_bcrypt("$2a$1$"));
        assert!(is_bcrypt("$2y$10$x"));
        // A bcrypt-shaped but broken hash never matches.
        assert!(!password_matches("$2a$05$short", "x"));
        assert!(password_matches("plain", "plain"));
        assert!(!password_matches("plain", "plaiN"));
    }

    fn responses(max: usize, expires: Duration) -> Permissions {
        Permissions {
            publish: Some(SubjectPermission {
                allow: vec![],
                deny: vec![">".into()],
            }),
            subscribe: None,
            allow_responses: Some(ResponsePermission { max, expires }),
        }
    }

    #[test]
    fn allow_responses_turns_off_blanket_publish_allow() {
        let mut p = Permissions {
            allow_responses: Some(ResponsePermission {
                max: 0,
                expires: Duration::ZERO,
            }),
            ..Permissions::default()
        };
        let c = CompiledPerms::compile(&p);
        assert!(!c.can_publish("anything"));
        assert_eq!(
            c.responses,
            Some(ResponseLimits {
                max: Some(DEFAULT_ALLOW_RESPONSE_MAX_MSGS),
                expires: Some(DEFAULT_ALLOW_RESPONSE_EXPIRATION),
            })
        );
        // An explicit allow list is kept.
        p.publish = Some(SubjectPermission {
            allow: vec!["ok".into()],
            deny: vec![],
        });
        let c = CompiledPerms::compile(&p);
        assert!(c.can_publish("ok") && !c.can_publish("other"));
    }

    #[test]
    fn reply_tracker_max_and_expiry() {
        let t0 = Instant::now();
        let l = CompiledPerms::compile(&responses(2, Duration::from_secs(60)))
            .responses
            .unwrap();
        let mut t = ReplyTracker::new(l);
        assert!(!t.allow(b"_INBOX.a", t0), "no request seen");
        t.track(b"_INBOX.a", t0);
        assert!(t.allow(b"_INBOX.a", t0));
        assert!(t.allow(b"_INBOX.a", t0));
        assert!(!t.allow(b"_INBOX.a", t0), "third reply over max 2");
        assert!(!t.allow(b"_INBOX.a", t0), "entry dropped");
        // A new request with the same reply subject restarts the count.
        t.track(b"_INBOX.a", t0);
        assert!(t.allow(b"_INBOX.a", t0));
        t.track(b"_INBOX.b", t0);
        assert!(
            !t.allow(b"_INBOX.b", t0 + Duration::from_secs(61)),
            "expired"
        );
        assert_eq!(t.len(), 1, "only _INBOX.a is left");
    }

    #[test]
    fn reply_tracker_unlimited_and_prune() {
        let t0 = Instant::now();
        let l = CompiledPerms::compile(&responses(usize::MAX, Duration::MAX))
            .responses
            .unwrap();
        assert_eq!(
            l,
            ResponseLimits {
                max: None,
                expires: None
            }
        );
        let mut t = ReplyTracker::new(l);
        t.track(b"r", t0);
        for _ in 0..10 {
            assert!(t.allow(b"r", t0 + Duration::from_secs(86_400)));
        }
        // With limits, used-up entries are pruned once over the limit.
        let l = ResponseLimits {
            max: Some(1),
            expires: None,
        };
        let mut t = ReplyTracker::new(l);
        for i in 0..REPLY_PERM_LIMIT {
            let r = format!("r.{i}");
            t.track(r.as_bytes(), t0);
            assert!(t.allow(r.as_bytes(), t0));
        }
        assert_eq!(t.len(), REPLY_PERM_LIMIT);
        t.track(b"fresh", t0);
        assert_eq!(t.len(), 1, "used entries pruned, the fresh one kept");
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("foo.bar"), "\"foo.bar\"");
        assert_eq!(go_quote("a\"b"), "\"a\\\"b\"");
    }
}
