//! Cluster state: the route registry, local interest propagated to routes,
//! gossip of new servers, and client connect URLs (nats-server
//! `server/route.go`, `server.go` connect-URL bookkeeping).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::auth::CompiledPerms;
use super::client::{ClientShared, Subscription};
use super::{lock, ServerState};
use crate::proto::json::ServerInfo;
use crate::proto::ConnKind;

/// What we know about one registered (or registering) route.
#[derive(Debug, Clone, Default)]
pub struct RouteMeta {
    pub remote_id: String,
    pub remote_name: String,
    pub did_solicit: bool,
    pub is_configured: bool,
    /// The URL we dialled, or one built from the remote's INFO.
    pub url: Option<String>,
    /// The remote's client connect URLs (for gossip to clients).
    pub connect_urls: Vec<String>,
    /// The remote's SCION client listeners.
    pub scion_connect_urls: Vec<String>,
    /// The remote's websocket connect URLs.
    pub ws_connect_urls: Vec<String>,
    pub remote_port: u16,
    pub rtt: Option<Duration>,
    pub lnoc: bool,
    /// Full INFO of the remote as received (for gossip).
    pub info: Option<ServerInfo>,
    /// Set for routes carried over QUIC/SCION.
    pub scion: Option<super::scion::ScionPeer>,
    /// What to re-dial when this route closes, taken over from a route we dialled to the
    /// same server and closed as its duplicate (nats-server route.go addRoute: the kept
    /// route is "upgraded to solicited" and marked `retry`, or if each side kept the other's
    /// connection both routes would end with nobody re-dialling).
    pub retry: Option<super::route::Solicit>,
}

/// A route connection as the registry sees it.
pub struct RouteHandle {
    pub shared: Arc<ClientShared>,
    pub meta: Mutex<RouteMeta>,
}

#[derive(Default)]
struct Registry {
    /// Registered routes by connection id.
    by_cid: BTreeMap<u64, Arc<RouteHandle>>,
    /// Registered route connection id by remote server id.
    by_remote: HashMap<String, u64>,
}

/// Cluster-wide state of this server.
pub struct ClusterState {
    /// Clustering is configured (a cluster listen address or routes).
    pub enabled: bool,
    name: Mutex<String>,
    pub dynamic_name: AtomicBool,
    /// route.go routeTLSName: the first host name among the configured TCP routes, the
    /// name a route dialled by IP (a gossiped one) checks the peer's certificate against;
    /// cleared when a certificate was not valid for it.
    pub route_tls_name: Mutex<Option<String>>,
    registry: Mutex<Registry>,
    /// Local interest sent to routes: key "subject" or "subject queue" →
    /// reference count (nats-server `acc.rm`).
    interest: Mutex<HashMap<String, i32>>,
    pub listen_addr: Mutex<Option<SocketAddr>>,
    /// Client connect URLs learned from routes, reference counted.
    remote_urls: Mutex<BTreeMap<String, u32>>,
    /// Our own client connect URLs.
    pub own_urls: Mutex<Vec<String>>,
    /// SCION client listeners learned from routes, reference counted.
    remote_scion_urls: Mutex<BTreeMap<String, u32>>,
    /// Our own SCION client listener(s), `[ISD-AS,IP]:port`.
    pub own_scion_urls: Mutex<Vec<String>>,
    /// Websocket connect URLs learned from routes, reference counted.
    remote_ws_urls: Mutex<BTreeMap<String, u32>>,
    /// Our own websocket connect URLs (websocket.go: getConnectURLs of the websocket port).
    pub own_ws_urls: Mutex<Vec<String>>,
    /// Websocket URLs have been published (as `urls_published`, for server.go's
    /// `info.WSConnectURLs`).
    ws_urls_published: AtomicBool,
    /// Bumped whenever the connect URL set changes.
    pub urls_generation: AtomicU64,
    /// Client URLs have been published to clients: a route brought new ones. Until then a
    /// clustered server's INFO lists none, not even its own (nats-server fills
    /// `info.ClientConnectURLs` only in updateServerINFOAndSendINFOToClients, which a route
    /// with client URLs triggers unless `cluster.no_advertise`).
    urls_published: AtomicBool,
    /// `cluster.permissions` compiled: publish = import, subscribe = export
    /// (route.go setRoutePermissions). None = everything crosses.
    perms: RwLock<Option<Arc<CompiledPerms>>>,
}

impl ClusterState {
    /// Sets the cluster's import/export permissions (at start and on reload).
    pub fn set_permissions(&self, p: Option<&crate::options::Permissions>) {
        *self.perms.write().unwrap_or_else(|e| e.into_inner()) =
            p.map(|p| Arc::new(CompiledPerms::compile(p)));
    }

    fn perms(&self) -> Option<Arc<CompiledPerms>> {
        self.perms.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// route.go canImport: whether we tell routes about interest in `subject`
    /// (the import list, matched as a publish permission).
    pub fn can_import(&self, subject: &str) -> bool {
        imports(self.perms().as_deref(), subject)
    }

    /// route.go canExport: whether a route may subscribe to `subject` here (the
    /// export list, matched as a subscribe permission).
    pub fn can_export(&self, subject: &str) -> bool {
        self.perms().is_none_or(|p| p.can_subscribe(subject, None))
    }

    /// route.go saveRouteTLSName: keeps the first host name (not an IP address) among
    /// `routes` unless one is saved already.
    pub fn save_route_tls_name(&self, routes: &[crate::options::RouteUrl]) {
        let mut name = self
            .route_tls_name
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for r in routes {
            if let crate::options::RouteTarget::Tcp { host, .. } = &r.target {
                if name.is_none() && host.parse::<std::net::IpAddr>().is_err() {
                    *name = Some(host.clone());
                }
            }
        }
    }

    pub fn new(enabled: bool, name: Option<String>) -> Self {
        let dynamic = name.is_none();
        ClusterState {
            enabled,
            name: Mutex::new(name.unwrap_or_default()),
            dynamic_name: AtomicBool::new(dynamic),
            route_tls_name: Mutex::new(None),
            registry: Mutex::new(Registry::default()),
            interest: Mutex::new(HashMap::new()),
            listen_addr: Mutex::new(None),
            remote_urls: Mutex::new(BTreeMap::new()),
            own_urls: Mutex::new(Vec::new()),
            remote_scion_urls: Mutex::new(BTreeMap::new()),
            own_scion_urls: Mutex::new(Vec::new()),
            remote_ws_urls: Mutex::new(BTreeMap::new()),
            own_ws_urls: Mutex::new(Vec::new()),
            ws_urls_published: AtomicBool::new(false),
            perms: RwLock::new(None),
            urls_generation: AtomicU64::new(0),
            urls_published: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> String {
        lock(&self.name).clone()
    }

    pub fn set_name(&self, n: &str) {
        *lock(&self.name) = n.to_string();
    }

    /// Registered routes.
    pub fn routes(&self) -> Vec<Arc<RouteHandle>> {
        lock(&self.registry).by_cid.values().cloned().collect()
    }

    pub fn num_routes(&self) -> usize {
        lock(&self.registry).by_cid.len()
    }

    pub fn has_remote(&self, id: &str) -> bool {
        lock(&self.registry).by_remote.contains_key(id)
    }

    /// The registered route to server `id`.
    pub fn route_to(&self, id: &str) -> Option<Arc<RouteHandle>> {
        let g = lock(&self.registry);
        g.by_remote
            .get(id)
            .and_then(|cid| g.by_cid.get(cid))
            .cloned()
    }

    /// Registers a route; false if a route to the same server exists
    /// (nats-server `addRoute`). Returns (added, other_routes_exist).
    pub fn add_route(&self, r: Arc<RouteHandle>, remote_id: &str) -> (bool, bool) {
        let mut g = lock(&self.registry);
        if g.by_remote.contains_key(remote_id) {
            return (false, false);
        }
        g.by_remote.insert(remote_id.to_string(), r.shared.cid);
        g.by_cid.insert(r.shared.cid, r);
        let others = g.by_cid.len() > 1;
        (true, others)
    }

    /// Removes a route if it is the registered one for its remote.
    pub fn remove_route(&self, cid: u64) -> Option<Arc<RouteHandle>> {
        let mut g = lock(&self.registry);
        let r = g.by_cid.remove(&cid)?;
        let id = lock(&r.meta).remote_id.clone();
        if g.by_remote.get(&id) == Some(&cid) {
            g.by_remote.remove(&id);
        }
        Some(r)
    }

    /// Client connect URLs to advertise: ours first, then the remotes' (none before a route
    /// brought any; see `urls_published`).
    pub fn connect_urls(&self) -> Vec<String> {
        if !self.urls_published.load(Ordering::Acquire) {
            return Vec::new();
        }
        own_then_remote(&self.own_urls, &self.remote_urls)
    }

    /// Websocket URLs to advertise to websocket clients (client.go generateClientInfoJSON:
    /// their `connect_urls`): ours first, then the remotes' (none before a route brought
    /// any).
    pub fn ws_connect_urls(&self) -> Vec<String> {
        if !self.ws_urls_published.load(Ordering::Acquire) {
            return Vec::new();
        }
        own_then_remote(&self.own_ws_urls, &self.remote_ws_urls)
    }

    /// Adds or removes remote websocket URLs; true if the set changed.
    pub fn update_remote_ws_urls(&self, urls: &[String], add: bool) -> bool {
        self.update_remote(
            &self.remote_ws_urls,
            Some(&self.ws_urls_published),
            urls,
            add,
        )
    }

    /// SCION client listeners to advertise to SCION clients: ours first.
    pub fn scion_connect_urls(&self) -> Vec<String> {
        own_then_remote(&self.own_scion_urls, &self.remote_scion_urls)
    }

    /// Adds or removes remote SCION connect URLs; true if the set changed.
    pub fn update_remote_scion_urls(&self, urls: &[String], add: bool) -> bool {
        self.update_remote(&self.remote_scion_urls, None, urls, add)
    }

    /// Adds or removes remote URLs of one kind (refcounted per route); true if the set
    /// changed. A change publishes that kind (`published`) and bumps `urls_generation`.
    fn update_remote(
        &self,
        remote: &Mutex<BTreeMap<String, u32>>,
        published: Option<&AtomicBool>,
        urls: &[String],
        add: bool,
    ) -> bool {
        let changed = refcount_update(&mut lock(remote), urls, add);
        if changed {
            if let Some(p) = published {
                p.store(true, Ordering::Release);
            }
            self.urls_generation.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }

    /// Adds or removes remote connect URLs; true if the set changed.
    pub fn update_remote_urls(&self, urls: &[String], add: bool) -> bool {
        self.update_remote(&self.remote_urls, Some(&self.urls_published), urls, add)
    }
}

/// Our URLs first, then the remotes' not among them.
fn own_then_remote(own: &Mutex<Vec<String>>, remote: &Mutex<BTreeMap<String, u32>>) -> Vec<String> {
    let mut v = lock(own).clone();
    for u in lock(remote).keys() {
        if !v.contains(u) {
            v.push(u.clone());
        }
    }
    v
}

fn refcount_update(m: &mut BTreeMap<String, u32>, urls: &[String], add: bool) -> bool {
    let mut changed = false;
    for u in urls {
        if add {
            let c = m.entry(u.clone()).or_insert(0);
            *c += 1;
            changed |= *c == 1;
        } else if let Some(c) = m.get_mut(u) {
            *c -= 1;
            if *c == 0 {
                m.remove(u);
                changed = true;
            }
        }
    }
    changed
}

impl ClusterState {
    /// The local interest as (subject, queue, count).
    pub fn interest_entries(&self) -> Vec<(String, Option<String>, i32)> {
        let g = lock(&self.interest);
        let mut v: Vec<_> = g
            .iter()
            .map(|(key, n)| {
                let (s, q) = split_key(key);
                (s.to_string(), q.map(str::to_string), *n)
            })
            .collect();
        v.sort();
        v
    }

    /// Snapshot of the local interest map (for a new route's full sync).
    pub fn interest_protos(&self) -> Vec<u8> {
        let g = lock(&self.interest);
        let mut out = Vec::with_capacity(g.len() * 32);
        let mut keys: Vec<_> = g.iter().collect();
        keys.sort();
        for (key, n) in keys {
            let (subject, queue) = split_key(key);
            if self.can_import(subject) {
                write_rs_plus(&mut out, subject, queue, *n);
            }
        }
        out
    }
}

fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once(' ') {
        Some((s, q)) => (s, Some(q)),
        None => (key, None),
    }
}

/// `RS+ $G subject [queue weight]\r\n`
pub fn write_rs_plus(out: &mut Vec<u8>, subject: &str, queue: Option<&str>, weight: i32) {
    out.extend_from_slice(b"RS+ $G ");
    out.extend_from_slice(subject.as_bytes());
    if let Some(q) = queue {
        out.push(b' ');
        out.extend_from_slice(q.as_bytes());
        out.push(b' ');
        out.extend_from_slice(weight.max(1).to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// `RS- $G subject [queue]\r\n`
pub fn write_rs_minus(out: &mut Vec<u8>, subject: &str, queue: Option<&str>) {
    out.extend_from_slice(b"RS- $G ");
    out.extend_from_slice(subject.as_bytes());
    if let Some(q) = queue {
        out.push(b' ');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Tracks a local subscription coming or going and tells every route when
/// the interest changes (nats-server `updateRouteSubscriptionMap`): plain
/// subjects on 0→1 and 1→0, queue groups on every weight change.
pub fn local_interest_changed(srv: &ServerState, sub: &Subscription, delta: i32) {
    if !srv.cluster.enabled || sub.client.kind != ConnKind::Client {
        return;
    }
    let key = match &sub.queue {
        Some(q) => format!("{} {}", sub.subject, q),
        None => sub.subject.clone(),
    };
    let is_queue = sub.queue.is_some();
    let mut interest = lock(&srv.cluster.interest);
    let (n, update) = match interest.get_mut(&key) {
        Some(n) => {
            *n += delta;
            let v = *n;
            if v <= 0 {
                interest.remove(&key);
                (0, true)
            } else {
                (v, is_queue)
            }
        }
        None if delta > 0 => {
            interest.insert(key, delta);
            (delta, true)
        }
        None => (0, false),
    };
    // route.go updateRouteSubscriptionMap sends through each route's importFilter;
    // the count above is kept either way.
    if !update || !srv.cluster.can_import(&sub.subject) {
        return;
    }
    let mut line = Vec::with_capacity(64);
    if n > 0 {
        write_rs_plus(&mut line, &sub.subject, sub.queue.as_deref(), n);
    } else {
        write_rs_minus(&mut line, &sub.subject, sub.queue.as_deref());
    }
    // Sent while holding the interest lock so every route sees the updates
    // in the order the map changed.
    for r in srv.cluster.routes() {
        trace_route_protos(&r.shared.log_prefix(), &line);
        let _ = r.shared.out.send(&line);
    }
    drop(interest);
}

/// Traces RS+/RS- lines sent to a route as route.go sendRouteSubProtos does
/// (`->> [RS+ $G foo]`, one line each).
pub fn trace_route_protos(prefix: &str, protos: &[u8]) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    for line in protos.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.is_empty() {
            tracing::trace!("{prefix} - ->> [{}]", String::from_utf8_lossy(line));
        }
    }
}

/// canImport for compiled cluster permissions (None = everything is imported).
pub fn imports(perms: Option<&CompiledPerms>, subject: &str) -> bool {
    perms.is_none_or(|p| p.can_publish(subject))
}

/// Sends the current INFO to clients that take async INFO updates
/// (nats-server `sendAsyncInfoToClients`).
/// `urls` / `ws_urls`: whether the client (TCP or SCION) URLs, or the websocket URLs,
/// changed; only the clients whose URLs changed are told (server.go
/// sendAsyncInfoToClients(regCli, wsCli)).
pub fn send_async_info_to_clients(srv: &ServerState, urls: bool, ws_urls: bool) {
    send_info_to_clients(srv, false, urls, ws_urls);
}

/// The lame-duck announcement: one INFO with `ldm: true` (and without our own
/// URLs) to clients that take async INFO. Later INFOs carry `ldm: false`, as
/// nats-server's `sendLDMToClients` clears the flag after sending, so clients
/// are told once.
pub fn send_ldm_to_clients(srv: &ServerState) {
    send_info_to_clients(srv, true, true, true);
}

fn send_info_to_clients(srv: &ServerState, ldm: bool, urls: bool, ws_urls: bool) {
    let clients: Vec<_> = lock(&srv.clients).values().cloned().collect();
    for c in clients {
        let wanted = if c.websocket.is_some() { ws_urls } else { urls };
        if c.kind == ConnKind::Client && wanted && c.async_info.load(Ordering::Acquire) {
            let mut info = srv.client_info_for(&c);
            info.ldm = ldm;
            let _ = c.out.send(&info.to_line());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protos() {
        let mut b = Vec::new();
        write_rs_plus(&mut b, "foo", None, 1);
        write_rs_plus(&mut b, "foo", Some("q"), 3);
        write_rs_minus(&mut b, "foo", Some("q"));
        assert_eq!(b, b"RS+ $G foo\r\nRS+ $G foo q 3\r\nRS- $G foo q\r\n");
    }

    #[test]
    fn connect_url_refcounts() {
        let c = ClusterState::new(true, Some("c".into()));
        let u = vec!["127.0.0.1:1".to_string()];
        assert!(c.update_remote_urls(&u, true));
        assert!(!c.update_remote_urls(&u, true));
        assert!(!c.update_remote_urls(&u, false));
        assert!(c.update_remote_urls(&u, false));
        assert!(c.connect_urls().is_empty());
    }
}
