//! The nested blocks: `authorization`, permissions, `cluster` (with its
//! `tls`), and the SCION extension block `scion`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::addr::{check_cluster_advertise, check_port, parse_listen_str, parse_route_url, IsdAs};
use super::Mapper;
use crate::conf::{Entry, Node, Value};
use crate::options::{
    Authorization, ListenAddr, NkeyUser, Options, Permissions, ResponsePermission, ScionOpts,
    SubjectPermission, TlsOpts, User, WebsocketOpts,
};

/// nats-server `DEFAULT_ALLOW_RESPONSE_MAX_MSGS` / `_EXPIRATION` (server/const.go).
const DEFAULT_ALLOW_RESPONSE_MAX: usize = 1;
const DEFAULT_ALLOW_RESPONSE_EXPIRES: Duration = Duration::from_secs(120);

/// The path preference words the SCION path selector understands.
pub const PATH_PREFERENCE_WORDS: [&str; 4] = ["latency", "bandwidth", "hops", "mtu"];

/// Upper bound for `scion.redundancy` (copies of each datagram).
pub const MAX_REDUNDANCY: i64 = 16;

/// Smallest `scion.flow_window`: below this a route crawls (a window is the most one
/// connection keeps in flight per RTT), so a smaller value is taken for a unit mistake.
pub const MIN_FLOW_WINDOW: u64 = 64 * 1024;

pub(super) fn authorization(m: &mut Mapper, o: &mut Options, e: &Entry) {
    let Some(am) = m.map(e) else { return };
    let mut auth = Authorization::default();
    let mut users_present = false;
    for f in am {
        match f.key.to_ascii_lowercase().as_str() {
            "user" | "username" => auth.user = m.string(f),
            "pass" | "password" => auth.password = m.string(f),
            "token" => auth.token = m.string(f),
            "timeout" => auth.timeout = m.seconds(f),
            "users" => {
                users_present = true;
                (auth.nkeys, auth.users) = users(m, f);
            }
            "default_permission" | "default_permissions" | "permissions" => {
                auth.default_permissions = permissions(m, f);
            }
            _ => m.unknown(f),
        }
    }
    // The same conflicts nats-server rejects in processConfigFileLine.
    if (auth.user.is_some() || auth.password.is_some()) && auth.token.is_some() {
        m.error(e, "Cannot have a user/pass and token");
    }
    if users_present && auth.user.is_some() {
        m.error(e, "Can not have a single user/pass and a users array");
    }
    if users_present && auth.token.is_some() {
        m.error(e, "Can not have a token and a users array");
    }
    let mut seen: Vec<&str> = Vec::new();
    for u in &auth.users {
        if seen.contains(&u.username.as_str()) {
            m.error(e, format!("Duplicate user {:?} detected", u.username));
        }
        seen.push(&u.username);
    }
    for u in &auth.nkeys {
        if seen.contains(&u.nkey.as_str()) {
            m.error(e, format!("Duplicate nkey {:?} detected", u.nkey));
        }
        seen.push(&u.nkey);
    }
    // nats-server applyDefaultPermissions: users without their own get the defaults.
    if let Some(defaults) = &auth.default_permissions {
        for u in auth.users.iter_mut().filter(|u| u.permissions.is_none()) {
            u.permissions = Some(defaults.clone());
        }
        for u in auth.nkeys.iter_mut().filter(|u| u.permissions.is_none()) {
            u.permissions = Some(defaults.clone());
        }
    }
    o.authorization = auth;
}

/// The entries of `users`: password users and nkey users (opts.go parseUsers, in its
/// words: an entry needs a user or an nkey, an nkey must be a user's public nkey and takes
/// no user name or password).
fn users(m: &mut Mapper, e: &Entry) -> (Vec<NkeyUser>, Vec<User>) {
    let Some(list) = m.array(e) else {
        return (Vec::new(), Vec::new());
    };
    let mut keys = Vec::new();
    let mut out = Vec::new();
    for node in list {
        let Value::Map(um) = &node.value else {
            m.error_at(
                &node.pos,
                &e.key,
                format!(
                    "Expected user entry to be a map/struct, got {}",
                    node.value.type_name()
                ),
            );
            continue;
        };
        let mut user = User::default();
        let mut nkey = String::new();
        let mut nkey_given = false;
        for f in um {
            match f.key.to_ascii_lowercase().as_str() {
                "user" | "username" => user.username = m.string(f).unwrap_or_default(),
                "pass" | "password" => user.password = m.string(f).unwrap_or_default(),
                "permission" | "permissions" | "authorization" => {
                    user.permissions = permissions(m, f)
                }
                "allowed_connection_types" | "connection_types" | "clients" => {
                    user.allowed_connection_types = connection_types(m, f)
                }
                "nkey" => {
                    nkey_given = true;
                    nkey = m.string(f).unwrap_or_default();
                }
                _ => m.unknown(f),
            }
        }
        if nkey.is_empty() && user.username.is_empty() {
            // An nkey that is not a string has been reported already.
            if !nkey_given {
                m.error_at(&node.pos, &e.key, "User entry requires a user");
            }
            continue;
        }
        if nkey.is_empty() {
            out.push(user);
            continue;
        }
        if !crate::server::auth::is_user_nkey(&nkey) {
            m.error_at(&node.pos, &e.key, "Not a valid public nkey for a user");
        } else if !user.username.is_empty() || !user.password.is_empty() {
            m.error_at(
                &node.pos,
                &e.key,
                "Nkey users do not take usernames or passwords",
            );
        } else {
            keys.push(NkeyUser {
                nkey,
                allowed_connection_types: user.allowed_connection_types,
                permissions: user.permissions,
            });
        }
    }
    (keys, out)
}

/// Connection types nats-server 2.9.10 knows (jwt ConnectionType*).
const CONNECTION_TYPES: [&str; 6] = [
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
];

/// A user's `allowed_connection_types`: a string or an array of strings, taken in
/// upper case; unknown ones are an error naming them (opts.go
/// parseAllowedConnectionTypes, client.go convertAllowedConnectionTypes).
fn connection_types(m: &mut Mapper, e: &Entry) -> Vec<String> {
    let items: Vec<&Node> = match &e.value.value {
        Value::Array(items) => items.iter().collect(),
        _ => vec![&e.value],
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for it in items {
        let Value::String(s) = &it.value else {
            m.error_at(
                &it.pos,
                &e.key,
                format!(
                    "error parsing allowed connection types: unsupported type in array {}",
                    it.value.type_name()
                ),
            );
            return Vec::new();
        };
        let up = s.to_ascii_uppercase();
        if CONNECTION_TYPES.contains(&up.as_str()) {
            known.push(up);
        } else {
            unknown.push(crate::server::auth::go_quote(&up));
        }
    }
    if !unknown.is_empty() {
        m.error(
            e,
            format!("invalid connection types [{}]", unknown.join(" ")),
        );
    }
    known
}

/// `permissions { publish, subscribe, allow_responses }` (nats-server
/// `parseUserPermissions`). nats-server also turns off the blanket publish
/// allow when `allow_responses` is set; `Permissions` cannot express an
/// explicitly empty allow list, so the server must treat
/// `allow_responses.is_some()` with no publish allow list as "publish only to
/// reply subjects".
pub(super) fn permissions(m: &mut Mapper, e: &Entry) -> Option<Permissions> {
    let pm = m.map(e)?;
    let mut p = Permissions::default();
    for f in pm {
        match f.key.to_ascii_lowercase().as_str() {
            "pub" | "publish" | "import" => p.publish = subject_permission(m, f),
            "sub" | "subscribe" | "export" => p.subscribe = subject_permission(m, f),
            "publish_allow_responses" | "allow_responses" => {
                p.allow_responses = allow_responses(m, f)
            }
            _ => {
                if !f.used_as_variable {
                    m.error(
                        f,
                        format!(
                            "Unknown field {} parsing permissions",
                            crate::server::auth::go_quote(&f.key)
                        ),
                    );
                }
            }
        }
    }
    Some(p)
}

fn allow_responses(m: &mut Mapper, e: &Entry) -> Option<ResponsePermission> {
    let mut rp = ResponsePermission {
        max: DEFAULT_ALLOW_RESPONSE_MAX,
        expires: DEFAULT_ALLOW_RESPONSE_EXPIRES,
    };
    let rm = match &e.value.value {
        Value::Bool(true) => return Some(rp),
        Value::Bool(false) => return None,
        Value::Map(rm) => rm,
        _ => {
            m.error(
                e,
                "error parsing response permissions, expected a boolean or a map",
            );
            return None;
        }
    };
    for f in rm {
        match f.key.to_ascii_lowercase().as_str() {
            "max" | "max_msgs" | "max_messages" | "max_responses" => {
                // Negative means unlimited, 0 keeps the default (nats-server).
                match m.int(f) {
                    Some(n) if n < 0 => rp.max = usize::MAX,
                    Some(0) | None => {}
                    Some(n) => rp.max = usize::try_from(n).unwrap_or(usize::MAX),
                }
            }
            "expires" | "expiration" | "ttl" => match &f.value.value {
                Value::String(s) => match super::parse_go_duration(s) {
                    Ok(n) if n < 0 => rp.expires = Duration::MAX,
                    Ok(0) => {}
                    Ok(n) => {
                        rp.expires = Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
                    }
                    Err(err) => m.error(f, format!("error parsing expires: {err}")),
                },
                _ => m.error(f, "error parsing expires, not a duration string"),
            },
            _ => {
                if !f.used_as_variable {
                    m.error(
                        f,
                        format!(
                            "Unknown field {} parsing permissions",
                            crate::server::auth::go_quote(&f.key)
                        ),
                    );
                }
            }
        }
    }
    Some(rp)
}

/// A subject, a list of subjects (both = allow), or `{ allow, deny }`.
fn subject_permission(m: &mut Mapper, e: &Entry) -> Option<SubjectPermission> {
    match &e.value.value {
        Value::Map(sm) => {
            if sm.is_empty() {
                return None;
            }
            let mut sp = SubjectPermission::default();
            for f in sm {
                match f.key.to_ascii_lowercase().as_str() {
                    "allow" => sp.allow = subjects(m, f, &f.value).unwrap_or_default(),
                    "deny" => sp.deny = subjects(m, f, &f.value).unwrap_or_default(),
                    _ => {
                        if !f.used_as_variable {
                            m.error(f, format!("Unknown field name {} parsing subject permissions, only 'allow' or 'deny' are permitted", crate::server::auth::go_quote(&f.key)));
                        }
                    }
                }
            }
            Some(sp)
        }
        _ => subjects(m, e, &e.value).map(|allow| SubjectPermission {
            allow,
            deny: Vec::new(),
        }),
    }
}

fn subjects(m: &mut Mapper, e: &Entry, node: &Node) -> Option<Vec<String>> {
    let list: Vec<(String, &Node)> = match &node.value {
        Value::String(s) => vec![(s.clone(), node)],
        Value::Array(items) => {
            let mut v = Vec::new();
            for it in items {
                match &it.value {
                    Value::String(s) => v.push((s.clone(), it)),
                    _ => {
                        m.error_at(
                            &it.pos,
                            &e.key,
                            "Subject in permissions array cannot be cast to string",
                        );
                        return None;
                    }
                }
            }
            v
        }
        other => {
            m.error(
                e,
                format!(
                    "Expected subject permissions to be a subject, or array of subjects, got {}",
                    other.type_name()
                ),
            );
            return None;
        }
    };
    let mut ok = true;
    for (s, n) in &list {
        // nats-server checkPermSubjectArray: a subject, or "subject queue".
        let fields: Vec<&str> = s.split_whitespace().collect();
        let valid = is_valid_subject(s) || (fields.len() == 2 && is_valid_subject(fields[0]));
        if !valid {
            let shown = if fields.len() == 2 {
                fields[0]
            } else {
                s.as_str()
            };
            m.error_at(
                &n.pos,
                &e.key,
                format!("subject {shown:?} is not a valid subject"),
            );
            ok = false;
        }
    }
    ok.then(|| list.into_iter().map(|(s, _)| s).collect())
}

/// nats-server `IsValidSubject` (server/sublist.go): non-empty tokens, no
/// white space, `>` only as the last token.
pub fn is_valid_subject(subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut full_wildcard_seen = false;
    for tok in subject.split('.') {
        if tok.is_empty() || full_wildcard_seen {
            return false;
        }
        if tok.contains([' ', '\t', '\n', '\r', '\x0c']) {
            return false;
        }
        if tok == ">" {
            full_wildcard_seen = true;
        }
    }
    true
}

pub(super) fn cluster(m: &mut Mapper, o: &mut Options, e: &Entry) {
    let Some(cm) = m.map(e) else { return };
    let mut listen: Option<ListenAddr> = o.cluster.listen.clone();
    let mut host: Option<String> = None;
    let mut port: Option<i32> = None;
    let mut routes_seen: Vec<String> = Vec::new();
    let mut explicit_perms = false;
    let mut deprecated_perms: Option<Permissions> = None;
    for f in cm {
        match f.key.to_ascii_lowercase().as_str() {
            "name" => {
                m.seen.push(("cluster.name", f.key_pos.clone()));
                o.cluster.name = m.string(f);
            }
            "listen" => {
                m.seen.push(("cluster.listen", f.key_pos.clone()));
                match &f.value.value {
                    Value::Integer(p) => match check_port(*p) {
                        Ok(p) => port = Some(p),
                        Err(msg) => m.error(f, msg),
                    },
                    Value::String(s) => match parse_listen_str(s) {
                        Ok(l) => listen = Some(l),
                        Err(msg) => m.error(f, crate::config::addr::keyed("cluster.listen", msg)),
                    },
                    _ => m.error(
                        f,
                        format!(
                            "invalid value for \"listen\": expected port or host:port, got {}",
                            f.value.value.type_name()
                        ),
                    ),
                }
            }
            "port" => {
                if let Some(p) = m.int(f) {
                    match check_port(p) {
                        Ok(p) => port = Some(p),
                        Err(msg) => m.error(f, msg),
                    }
                }
            }
            "host" | "net" => host = m.string(f),
            "authorization" => deprecated_perms = cluster_auth(m, o, f).or(deprecated_perms),
            "routes" => {
                let Some(list) = m.array(f) else { continue };
                let mut routes = Vec::new();
                for n in list {
                    let Value::String(s) = &n.value else {
                        m.error_at(
                            &n.pos,
                            &f.key,
                            format!("route must be a URL string, got {}", n.value.type_name()),
                        );
                        continue;
                    };
                    if routes_seen.contains(s) {
                        m.warnings.push(format!(
                            "{}: invalid use of field {s:?}: Duplicate route entry detected",
                            n.pos
                        ));
                        continue;
                    }
                    routes_seen.push(s.clone());
                    match parse_route_url(s) {
                        Ok(r) => routes.push(r),
                        Err(msg) => m.error_at(&n.pos, &f.key, msg),
                    }
                }
                o.cluster.routes = routes;
            }
            "tls" => {
                m.seen.push(("cluster.tls", f.key_pos.clone()));
                o.cluster.tls = tls(m, f, true, "cluster TLS");
            }
            "cluster_advertise" | "advertise" => {
                m.seen.push(("cluster.advertise", f.key_pos.clone()));
                o.cluster.advertise = m.string(f);
                // nats-server refuses a bad value at start (route.go setRouteInfoHostPortAndIP).
                if let Some(Err(err)) = o.cluster.advertise.as_deref().map(check_cluster_advertise)
                {
                    o.cluster.advertise = None;
                    m.error(f, err);
                }
            }
            "no_advertise" => o.cluster.no_advertise = m.boolean(f).unwrap_or(false),
            "connect_retries" => {
                if let Some(v) = m.size(f, u32::MAX as u64) {
                    o.cluster.connect_retries = v as u32;
                }
            }
            // opts.go parseCluster: user permissions, `import`/`publish` mapped to
            // Import and `export`/`subscribe` to Export; this block wins over a
            // deprecated one inside `authorization`.
            "permissions" => {
                if let Some(p) = permissions(m, f) {
                    if p.allow_responses.is_some() {
                        m.error(f, "Cluster permissions do not support dynamic responses");
                    } else {
                        o.cluster.permissions = Some(p);
                        explicit_perms = true;
                    }
                }
            }
            _ => m.unknown(f),
        }
    }
    if !explicit_perms && deprecated_perms.is_some() {
        o.cluster.permissions = deprecated_perms;
    }
    if host.is_some() || port.is_some() {
        match listen {
            Some(ListenAddr::Scion { .. }) => {
                m.error(
                    e,
                    "cluster host/port can not be combined with a SCION listen address",
                );
                return;
            }
            Some(ListenAddr::Tcp { host: h, port: p }) => {
                listen = Some(ListenAddr::Tcp {
                    host: host.unwrap_or(h),
                    port: port.unwrap_or(p),
                })
            }
            None => {
                listen = Some(ListenAddr::Tcp {
                    host: host.unwrap_or_else(|| "0.0.0.0".to_string()),
                    port: port.unwrap_or(0),
                })
            }
        }
    }
    // nats-server enables clustering only with a cluster port.
    if let Some(ListenAddr::Tcp { host, port: 0 }) = &listen {
        m.notice(
            e,
            format!("cluster has no port (host {host:?}), clustering is disabled"),
        );
        listen = None;
    }
    if let Some(ListenAddr::Tcp { host, .. }) = &mut listen {
        if host.is_empty() {
            *host = "0.0.0.0".to_string();
        }
    }
    o.cluster.listen = listen;
}

/// The cluster `authorization` block; returns the permissions set in it (deprecated, a
/// warning, used only when the cluster block has none of its own).
fn cluster_auth(m: &mut Mapper, o: &mut Options, e: &Entry) -> Option<Permissions> {
    let am = m.map(e)?;
    let mut perms = None;
    for f in am {
        match f.key.to_ascii_lowercase().as_str() {
            "user" | "username" => o.cluster.username = m.string(f),
            "pass" | "password" => o.cluster.password = m.string(f),
            "timeout" => o.cluster.auth_timeout = m.seconds(f),
            "token" => m.error(f, "Cluster authorization does not support tokens"),
            "users" => m.error(f, "Cluster authorization does not allow multiple users"),
            "permissions" | "default_permissions" | "default_permission" => {
                if let Some(p) = permissions(m, f) {
                    m.warn(
                        e,
                        "setting \"permissions\" within cluster authorization block is deprecated",
                    );
                    perms = Some(p);
                }
            }
            _ => m.unknown(f),
        }
    }
    perms
}

/// Top-level `tls`: client TLS on the TCP port (nats-server opts.go parseTLS and
/// GenTLSConfig, which load the files while reading, so `-t` fails on a bad one).
/// `verify: true` needs `ca_file`: nats-server would fall back to the host's trust store
/// for client certificates, which is rarely what a cluster operator means.
pub(crate) fn client_tls(m: &mut Mapper, o: &mut Options, e: &Entry) {
    m.seen.push(("tls", e.key_pos.clone()));
    o.tls = server_tls(m, e, "client TLS");
}

/// A `tls` block of a port clients connect to (the client port, the websocket port):
/// `verify` needs the CA the client certificates must chain to.
fn server_tls(m: &mut Mapper, e: &Entry, what: &str) -> Option<TlsOpts> {
    let t = tls(m, e, false, what)?;
    if t.verify && t.ca_file.is_none() {
        m.error(
            e,
            "tls: verify needs ca_file, the CA client certificates must chain to",
        );
        return None;
    }
    Some(t)
}

/// `websocket { ... }` (opts.go parseWebsocket), for the keys this broker implements; the
/// websocket-only authorization keys are errors. nats-server refuses a websocket port
/// without `tls` unless `no_tls` is set (validateWebsocketOptions).
pub(crate) fn websocket(m: &mut Mapper, o: &mut Options, e: &Entry) {
    m.seen.push(("websocket", e.key_pos.clone()));
    let Some(wm) = m.map(e) else { return };
    let mut w = WebsocketOpts::default();
    for f in wm {
        match f.key.to_ascii_lowercase().as_str() {
            "listen" => match &f.value.value {
                Value::Integer(p) => match check_port(*p) {
                    Ok(p) => w.port = p,
                    Err(msg) => m.error(f, msg),
                },
                Value::String(s) => match parse_listen_str(s) {
                    Ok(crate::options::ListenAddr::Tcp { host, port }) => {
                        w.host = host;
                        w.port = port;
                    }
                    Ok(_) => m.error(f, "a websocket listen address is host:port"),
                    Err(msg) => m.error(f, msg),
                },
                _ => m.error(f, "listen: expected host:port or a port"),
            },
            "port" => {
                if let Some(p) = m.int(f) {
                    match check_port(p) {
                        Ok(p) => w.port = p,
                        Err(msg) => m.error(f, msg),
                    }
                }
            }
            "host" | "net" => w.host = m.string(f).unwrap_or_default(),
            "advertise" => w.advertise = m.string(f),
            "no_tls" => w.no_tls = m.boolean(f).unwrap_or(false),
            "tls" => w.tls = server_tls(m, f, "websocket TLS"),
            "same_origin" => w.same_origin = m.boolean(f).unwrap_or(false),
            "allowed_origins" | "allowed_origin" | "allow_origins" | "allow_origin" | "origins"
            | "origin" => {
                let items: Vec<&Node> = match &f.value.value {
                    Value::Array(items) => items.iter().collect(),
                    _ => vec![&f.value],
                };
                for it in items {
                    match &it.value {
                        Value::String(s) => w.allowed_origins.push(s.clone()),
                        other => m.error_at(
                            &it.pos,
                            &f.key,
                            format!(
                                "error parsing allowed origins: unsupported type in array {}",
                                other.type_name()
                            ),
                        ),
                    }
                }
            }
            "handshake_timeout" => match &f.value.value {
                Value::Integer(_) | Value::String(_) => w.handshake_timeout = m.seconds(f),
                other => m.error(
                    f,
                    format!(
                        "error parsing handshake timeout: unsupported type {}",
                        other.type_name()
                    ),
                ),
            },
            "compress" | "compression" => w.compression = m.boolean(f).unwrap_or(false),
            "authorization" | "authentication" => {
                // opts.go parseSimpleAuth.
                if let Some(am) = m.map(f) {
                    for a in am {
                        match a.key.to_ascii_lowercase().as_str() {
                            "user" | "username" => w.username = m.string(a),
                            "pass" | "password" => w.password = m.string(a),
                            "token" => w.token = m.string(a),
                            "timeout" => w.auth_timeout = m.seconds(a),
                            _ => m.unknown(a),
                        }
                    }
                }
            }
            "no_auth_user" => w.no_auth_user = m.string(f),
            "jwt_cookie" => m.error(
                f,
                format!(
                    "field {} is not supported by this broker (no JWT users)",
                    crate::server::auth::go_quote(&f.key)
                ),
            ),
            _ => m.unknown(f),
        }
    }
    if w.port != 0 && w.tls.is_none() && !w.no_tls {
        m.error(e, "websocket requires TLS configuration");
    }
    for origin in &w.allowed_origins {
        if !origin.contains("://") {
            m.error(
                e,
                format!(
                    "unable to parse allowed origin: parse {origin:?}: invalid URI for request"
                ),
            );
        }
    }
    if w.host.is_empty() {
        w.host = "0.0.0.0".into();
    }
    o.websocket = Some(w);
}

/// nats-server `parseTLS`, for the keys this broker implements.
fn tls(m: &mut Mapper, e: &Entry, need_ca: bool, what: &str) -> Option<TlsOpts> {
    let tm = m.map(e)?;
    let mut t = TlsOpts::default();
    for f in tm {
        let key = f.key.to_ascii_lowercase();
        match key.as_str() {
            "cert_file" | "key_file" | "ca_file" => {
                let Value::String(s) = &f.value.value else {
                    m.error(
                        f,
                        format!("error parsing tls config, expected '{key}' to be filename"),
                    );
                    continue;
                };
                let path = Some(PathBuf::from(s));
                match key.as_str() {
                    "cert_file" => t.cert_file = path,
                    "key_file" => t.key_file = path,
                    _ => t.ca_file = path,
                }
            }
            "verify" => match f.value.value {
                Value::Bool(b) => t.verify = b,
                _ => m.error(
                    f,
                    "error parsing tls config, expected 'verify' to be a boolean",
                ),
            },
            "timeout" => match &f.value.value {
                Value::Integer(_) | Value::Float(_) | Value::String(_) => t.timeout = m.seconds(f),
                _ => m.error(f, "error parsing tls config, 'timeout' wrong type"),
            },
            "insecure"
            | "verify_and_map"
            | "verify_cert_and_check_known_urls"
            | "cipher_suites"
            | "curve_preferences"
            | "connection_rate_limit"
            | "pinned_certs" => m.error(
                f,
                format!(
                    "field {} is not supported by this broker",
                    crate::server::auth::go_quote(&f.key)
                ),
            ),
            _ => m.error(
                f,
                format!(
                    "error parsing tls config, unknown field [{}]",
                    crate::server::auth::go_quote(&f.key)
                ),
            ),
        }
    }
    if let Err(msg) = load_tls_files(&t, need_ca, what) {
        m.error(e, msg);
        return None;
    }
    Some(t)
}

/// Loads the certificate files like nats-server 2.9.10 `GenTLSConfig`
/// (server/opts.go), which `parseCluster` calls while reading the file, so
/// that `-t` already fails on a missing or bad file. Cluster TLS (TCP and SCION
/// route links) needs all three files (server/tls.rs route_tls, server/scion.rs
/// tls_for); client TLS and `scion.tls` (the SCION client listener) need the
/// certificate and key.
pub(super) fn load_tls_files(t: &TlsOpts, need_ca: bool, what: &str) -> Result<(), String> {
    use scion_transport::quic::{TlsConfig, TlsError};
    let (cert, key, ca) = match (&t.cert_file, &t.key_file, &t.ca_file) {
        (Some(_), None, _) => return Err("missing 'key_file' in TLS configuration".into()),
        (None, Some(_), _) => return Err("missing 'cert_file' in TLS configuration".into()),
        (Some(c), Some(k), ca) if ca.is_some() || !need_ca => (c, k, ca),
        _ if need_ca => {
            return Err("cert_file, key_file and ca_file are all needed for cluster TLS".into())
        }
        _ => return Err(format!("cert_file and key_file are needed for {what}")),
    };
    let loaded = match ca {
        Some(ca) => TlsConfig::from_pem_files(cert, key, ca),
        None => TlsConfig::from_pem_cert_key(cert, key),
    };
    let loaded = loaded.map_err(|e| match e {
        TlsError::Read { path, source } => {
            let what = if ca
                .as_ref()
                .is_some_and(|ca| Path::new(&path) == ca.as_path())
            {
                "error loading ca_file"
            } else {
                "error parsing X509 certificate/key pair"
            };
            format!(
                "{what}: {}",
                crate::conf::go_io_error("open", &path, &source)
            )
        }
        other => format!("error parsing X509 certificate/key pair: {other}"),
    })?;
    // A key that does not belong to the certificate is refused here, as Go's
    // tls.LoadX509KeyPair does ("private key does not match public key").
    loaded
        .server_config(&[])
        .map_err(|e| format!("error parsing X509 certificate/key pair: {e}"))?;
    Ok(())
}

/// The `scion { ... }` block (this broker's extension; not in nats-server).
pub(super) fn scion(m: &mut Mapper, o: &mut Options, e: &Entry) {
    let Some(sm) = m.map(e) else { return };
    let mut s = ScionOpts::default();
    for f in sm {
        match f.key.to_ascii_lowercase().as_str() {
            "path_preference" => {
                if let Some(p) = path_preference(m, f) {
                    s.path_preference = p;
                }
            }
            "daemon" => {
                if let Some(d) = m.string(f) {
                    if d.parse::<SocketAddr>().is_err() {
                        m.error(f, format!("invalid daemon address {d:?}: expected IP:port"));
                    } else {
                        s.daemon = Some(d);
                    }
                }
            }
            "topology" => {
                let Some(t) = m.string(f) else { continue };
                // Loaded here so that `-t` fails where start would (the SCION
                // layer reads it when the first SCION socket opens).
                if let Err(err) = scion_transport::topology::LocalTopology::load(Path::new(&t)) {
                    m.error(f, format!("error loading scion topology: {err}"));
                }
                s.topology = Some(PathBuf::from(t));
            }
            "policy" => policy(m, &mut s, f),
            "probe_interval" => {
                if let Some(d) = m.duration(f) {
                    // Below 10 ms the probes cost a core and misfire; above 1 s a silent
                    // blackhole (three lost probes, then the switch) outlasts a client link's
                    // 5 s idle bound and nears a route's 30 s.
                    if d < Duration::from_millis(10) || d > Duration::from_secs(1) {
                        m.error(
                            f,
                            format!(
                                "probe_interval must be between 10ms and 1s (got {}): a silent path failure is detected after about three intervals",
                                crate::monitor::gofmt::go_duration(d)
                            ),
                        );
                    } else {
                        s.probe_interval = Some(d);
                    }
                }
            }
            "redundancy" => {
                if let Some(n) = m.int(f) {
                    if (1..=MAX_REDUNDANCY).contains(&n) {
                        s.redundancy = Some(n as u32);
                    } else {
                        m.error(
                            f,
                            format!("redundancy must be between 1 and {MAX_REDUNDANCY}, got {n}"),
                        );
                    }
                }
            }
            "path_header" => s.path_header = m.boolean(f).unwrap_or(false),
            // A size with nats-server's units (`4MB`, `512KB`; the lexer reads them).
            "flow_window" => {
                if let Some(n) = m.size(f, u32::MAX as u64) {
                    if (n as u64) < MIN_FLOW_WINDOW {
                        m.error(
                            f,
                            format!("flow_window must be at least 64KB, got {n} bytes"),
                        );
                    } else {
                        s.flow_window = u32::try_from(n).ok();
                    }
                }
            }
            // Only the SCION client listener's certificate: top-level `tls` is client TLS
            // on the TCP port, and routes take `cluster.tls`.
            "tls" => {
                m.seen.push(("scion.tls", f.key_pos.clone()));
                let Some(t) = tls(m, f, false, "the SCION client listener") else {
                    continue;
                };
                // No field may look like it does more than it does: `ca_file` only serves
                // `verify` (client certificates, nats-server's `tls { verify: true }`).
                if t.timeout.is_some() {
                    m.error(
                        f,
                        "scion tls: timeout is not used on SCION client links (the QUIC handshake has its own bound); remove it",
                    );
                } else if t.verify && t.ca_file.is_none() {
                    m.error(
                        f,
                        "scion tls: verify needs ca_file, the CA client certificates must chain to",
                    );
                } else if !t.verify && t.ca_file.is_some() {
                    m.error(
                        f,
                        "scion tls: ca_file is only used with verify: true (to verify client certificates); remove it or set verify: true",
                    );
                } else {
                    s.tls = Some(t);
                }
            }
            _ => m.unknown(f),
        }
    }
    o.scion = Some(s);
}

/// `"bandwidth,latency"` (or an array of words): ordered, no empty item, no
/// duplicates, only known words. The Go prototype turned bad strings into
/// "no preference" silently; we reject them.
fn path_preference(m: &mut Mapper, e: &Entry) -> Option<Vec<String>> {
    let raw: Vec<String> = match &e.value.value {
        Value::String(s) => s
            .split(',')
            .map(|w| w.trim().to_ascii_lowercase())
            .collect(),
        Value::Array(items) => {
            let mut v = Vec::new();
            for it in items {
                match &it.value {
                    Value::String(w) => v.push(w.trim().to_ascii_lowercase()),
                    other => {
                        m.error(
                            e,
                            format!(
                                "invalid path_preference: expected words, got {}",
                                other.type_name()
                            ),
                        );
                        return None;
                    }
                }
            }
            v
        }
        other => {
            m.error(e, format!("invalid value for \"path_preference\": expected a string such as \"bandwidth,latency\", got {}", other.type_name()));
            return None;
        }
    };
    let shown = match &e.value.value {
        Value::String(s) => format!("{s:?}"),
        _ => format!("{raw:?}"),
    };
    let allowed = PATH_PREFERENCE_WORDS.join(", ");
    let mut out: Vec<String> = Vec::new();
    for w in raw {
        let problem = if w.is_empty() {
            Some("empty item".to_string())
        } else if !PATH_PREFERENCE_WORDS.contains(&w.as_str()) {
            Some(format!("unknown word {w:?} (expected {allowed})"))
        } else if out.contains(&w) {
            Some(format!("duplicate word {w:?}"))
        } else {
            None
        };
        if let Some(p) = problem {
            m.error(e, format!("invalid path_preference {shown}: {p}"));
            return None;
        }
        out.push(w);
    }
    Some(out)
}

fn policy(m: &mut Mapper, s: &mut ScionOpts, e: &Entry) {
    let Some(pm) = m.map(e) else { return };
    for f in pm {
        match f.key.to_ascii_lowercase().as_str() {
            "acl" => {
                let Some(list) = m.array(f) else { continue };
                let mut acl = Vec::new();
                for n in list {
                    let Value::String(entry) = &n.value else {
                        m.error_at(
                            &n.pos,
                            &f.key,
                            format!("acl entry must be a string, got {}", n.value.type_name()),
                        );
                        continue;
                    };
                    match check_acl_entry(entry) {
                        Ok(()) => acl.push(entry.clone()),
                        Err(msg) => m.error_at(
                            &n.pos,
                            &f.key,
                            format!("invalid acl entry {entry:?}: {msg}"),
                        ),
                    }
                }
                // scionproto pathpol.NewACL: the last entry must match every hop.
                if acl.len() == list.len() {
                    match acl.last() {
                        Some(last) if acl_matches_all(last) => {
                            if scion_transport::path::Acl::from_entries(&acl)
                                .is_ok_and(|a| a.denies_everything())
                            {
                                m.notice(
                                    f,
                                    "this ACL lets no SCION path to another AS pass (only peers in the local AS are reachable)",
                                );
                            }
                            s.policy_acl = acl;
                        }
                        _ => m.error(
                            f,
                            "ACL does not have a default (end it with \"+\" or \"-\")",
                        ),
                    }
                }
            }
            "sequence" => {
                let Some(q) = m.string(f) else { continue };
                // The same parser the SCION layer uses at start (server/scion.rs).
                if let Err(err) = q.parse::<scion_transport::path::Sequence>() {
                    m.error(f, format!("invalid policy sequence: {err}"));
                }
                s.policy_sequence = Some(q);
            }
            _ => m.unknown(f),
        }
    }
}

/// `+` or `-`, optionally followed by a hop predicate `ISD[-AS][#IF[,IF]]`.
fn check_acl_entry(entry: &str) -> Result<(), String> {
    let mut parts = entry.split_whitespace();
    match parts.next() {
        Some("+") | Some("-") => {}
        _ => return Err("must start with \"+\" or \"-\"".to_string()),
    }
    if let Some(pred) = parts.next() {
        check_hop_predicate(pred)?;
    }
    if parts.next().is_some() {
        return Err("too many fields".to_string());
    }
    Ok(())
}

fn check_hop_predicate(pred: &str) -> Result<(), String> {
    let (ia, ifaces) = match pred.split_once('#') {
        Some((ia, ifs)) => (ia, Some(ifs)),
        None => (pred, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match ia.split_once('-') {
        None if digits(ia) => {}
        Some((isd, asn)) if digits(isd) => {
            if asn != "0" && format!("{isd}-{asn}").parse::<IsdAs>().is_err() {
                return Err(format!("bad AS {asn:?}"));
            }
        }
        _ => return Err(format!("bad hop predicate {pred:?}")),
    }
    if let Some(ifs) = ifaces {
        if ia.split_once('-').is_none() {
            return Err("interfaces need an ISD-AS".to_string());
        }
        let list: Vec<&str> = ifs.split(',').collect();
        if list.len() > 2 || !list.iter().all(|i| digits(i)) {
            return Err(format!("bad interfaces {ifs:?}"));
        }
    }
    Ok(())
}

fn acl_matches_all(entry: &str) -> bool {
    let mut parts = entry.split_whitespace();
    parts.next();
    match parts.next() {
        None => true,
        Some(pred) => matches!(pred, "0" | "0-0" | "0-0#0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_validity() {
        for ok in ["foo", "foo.*", "foo.>", ">", "*.bar"] {
            assert!(is_valid_subject(ok), "{ok}");
        }
        for bad in ["", "foo..bar", ".foo", "foo.", "foo.>.bar", "a b"] {
            assert!(!is_valid_subject(bad), "{bad}");
        }
    }

    #[test]
    fn acl_entries() {
        for ok in [
            "+",
            "-",
            "+ 1-ff00:0:110#1,2",
            "- 1",
            "+ 0-0#0",
            "- 1-64512",
        ] {
            assert!(check_acl_entry(ok).is_ok(), "{ok}");
        }
        for bad in ["", "x", "+ a", "+ 1-zz", "+ 1#3", "+ 1-0#1,2,3", "+ 1 2"] {
            assert!(check_acl_entry(bad).is_err(), "{bad}");
        }
        assert!(acl_matches_all("-"));
        assert!(acl_matches_all("+ 0-0#0"));
        assert!(!acl_matches_all("+ 1-0#0"));
    }
}
