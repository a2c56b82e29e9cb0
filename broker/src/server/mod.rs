//! The running server: listeners, shared state, lifecycle.

pub mod auth;
pub mod client;
pub mod closed;
pub mod cluster;
pub mod deliver;
pub mod io;
pub mod outbound;
pub mod peer_cert;
pub mod route;
pub mod scion;
pub mod tls;
pub mod trace;
pub mod ws;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::options::Options;
use crate::proto::json::ServerInfo;
use crate::sublist::Sublist;

pub use client::{ClientShared, SubRef, Subscription};
pub use closed::ClosedState;

/// The version we report. Clients and tools key features off it, so we
/// report the nats-server release whose behaviour we match.
pub const VERSION: &str = "2.9.10";
/// Our own version, shown next to it in logs and /varz.
pub const BROKER_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Client protocol version we speak (`ClientProtoInfo`).
pub const PROTO: i32 = 1;
/// nats-server keeps this many closed connections for /connz?state=closed.
pub const MAX_CLOSED_CLIENTS: usize = 10_000;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener that cannot be opened, in nats-server's `Fatalf` words.
    #[error("{}", listen_error_text(*.kind, addr, source))]
    Listen {
        kind: ListenKind,
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid listen address {0:?}")]
    BadAddress(String),
    #[error("SCION: {0}")]
    Scion(String),
    /// Client TLS material that no longer loads (it was checked when the config was read).
    #[error("{0}")]
    Tls(String),
    /// A monitoring port nats-server would not start (server.go StartMonitoring's words).
    #[error("{0}")]
    Monitor(String),
    /// `pid_file` / `-P` cannot be written (nats-server exits too).
    #[error("Could not write pidfile: {0}")]
    PidFile(String),
    /// A `client_advertise` or `cluster.advertise` nats-server would refuse (its
    /// `Fatalf` texts; the command line sets them past the config file's checks).
    #[error("{0}")]
    Advertise(String),
}

/// Which listener [`StartError::Listen`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenKind {
    Client,
    Route,
    Monitor,
    Websocket,
}

/// nats-server 2.9.10's fatal texts for a listener it cannot open (server.go
/// AcceptLoop and Start/StartMonitoring, route.go startRouteAcceptLoop), with Go's
/// `listen tcp H:P: bind: address already in use` for the cause.
fn listen_error_text(kind: ListenKind, addr: &str, e: &std::io::Error) -> String {
    let cause = if e.raw_os_error().is_some() {
        crate::conf::go_io_error("listen tcp", addr, e).replacen(": ", ": bind: ", 1)
    } else {
        format!("listen tcp {addr}: {e}")
    };
    match kind {
        ListenKind::Client => format!(
            "Error listening on port: {addr}, {}",
            auth::go_quote(&cause)
        ),
        ListenKind::Route => {
            let port = addr.rsplit(':').next().unwrap_or(addr);
            format!("Error listening on router port: {port} - {cause}")
        }
        ListenKind::Monitor => {
            format!("Can't start monitoring: can't listen to the monitor port: {cause}")
        }
        // websocket.go startWebsocketServer's Fatalf.
        ListenKind::Websocket => {
            format!("Unable to listen for websocket connections: {cause}")
        }
    }
}

/// Server-wide counters (`/varz`).
#[derive(Default)]
pub struct ServerStats {
    pub in_msgs: AtomicU64,
    pub out_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub total_connections: AtomicU64,
}

/// What /connz shows of a closed connection.
#[derive(Clone, Debug)]
pub struct ClosedConn {
    pub snapshot: client::ConnSnapshot,
}

/// The first connection id: nats-server 2.9.10 without accounts, JetStream or a system
/// account configured numbers its first client or route 4.
pub const FIRST_CID: u64 = 4;

/// State shared by every task of one server.
pub struct ServerState {
    pub id: String,
    pub name: String,
    opts: RwLock<Arc<Options>>,
    pub sublist: RwLock<Sublist<SubRef>>,
    /// Mirror of the sublist generation, readable without the lock, so
    /// connections can validate their private match caches cheaply.
    pub sub_gen: AtomicU64,
    pub clients: Mutex<HashMap<u64, Arc<ClientShared>>>,
    pub closed: Mutex<VecDeque<ClosedConn>>,
    next_cid: AtomicU64,
    pub stats: ServerStats,
    pub start_instant: Instant,
    pub start_time: SystemTime,
    pub client_addr: Mutex<Option<SocketAddr>>,
    pub http_addr: Mutex<Option<SocketAddr>>,
    pub shutdown: Notify,
    pub shutting_down: AtomicBool,
    pub lame_duck: AtomicBool,
    /// Woken when lame duck mode starts: the client listener closes (server.go
    /// lameDuckMode closes `s.listener`, so new clients are refused).
    pub lame_duck_notify: Notify,
    pub auth: RwLock<Arc<auth::AuthConfig>>,
    /// The websocket port's authentication override (None: websocket clients use `auth`).
    ws_auth: RwLock<Option<Arc<auth::AuthConfig>>>,
    pub config_load_time: Mutex<SystemTime>,
    pub cluster: cluster::ClusterState,
    pub scion: scion::ScionSlot,
    /// Client TLS on the TCP port (top-level `tls`), replaced on reload.
    client_tls: RwLock<Option<Arc<tls::ClientTls>>>,
    /// The websocket port's settings (None: no websocket port).
    websocket: std::sync::OnceLock<Arc<ws::WsListen>>,
    /// The websocket port's address once it listens.
    pub ws_addr: Mutex<Option<SocketAddr>>,
    /// Route TLS on TCP route links (`cluster.tls`), set at start (a reload cannot change
    /// `cluster.tls`).
    route_tls: RwLock<Option<Arc<tls::RouteTls>>>,
}

impl ServerState {
    pub fn new(opts: Options) -> Arc<Self> {
        let id = generate_server_id();
        // An empty name is no name (server.go NewServer: `serverName := pub; if
        // opts.ServerName != "" { serverName = opts.ServerName }`).
        let name = opts
            .server_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.clone());
        let auth = auth::AuthConfig::from_options(&opts);
        let ws_auth = auth::AuthConfig::for_websocket(&opts).map(Arc::new);
        let cluster_enabled = opts.cluster.listen.is_some() || !opts.cluster.routes.is_empty();
        let cluster = cluster::ClusterState::new(cluster_enabled, opts.cluster.name.clone());
        cluster.set_permissions(opts.cluster.permissions.as_ref());
        cluster.save_route_tls_name(&opts.cluster.routes);
        if cluster_enabled && opts.cluster.name.is_none() {
            // nats-server generates a dynamic name when none is configured (a NUID:
            // 22 characters of 0-9A-Za-z).
            cluster.set_name(&dynamic_cluster_name());
        }
        Arc::new(ServerState {
            id,
            name,
            opts: RwLock::new(Arc::new(opts)),
            sublist: RwLock::new(Sublist::new()),
            sub_gen: AtomicU64::new(0),
            clients: Mutex::new(HashMap::new()),
            closed: Mutex::new(VecDeque::new()),
            // nats-server gives ids 1-3 to its internal clients (the $G and $SYS accounts'
            // and the system client) and one more to each configured account, which we
            // do not have: its first client or route is 4.
            next_cid: AtomicU64::new(FIRST_CID),
            stats: ServerStats::default(),
            start_instant: Instant::now(),
            start_time: SystemTime::now(),
            client_addr: Mutex::new(None),
            http_addr: Mutex::new(None),
            shutdown: Notify::new(),
            shutting_down: AtomicBool::new(false),
            lame_duck: AtomicBool::new(false),
            lame_duck_notify: Notify::new(),
            auth: RwLock::new(Arc::new(auth)),
            ws_auth: RwLock::new(ws_auth),
            config_load_time: Mutex::new(SystemTime::now()),
            cluster,
            scion: Mutex::new(scion::ScionLinks::default()),
            client_tls: RwLock::new(None),
            websocket: std::sync::OnceLock::new(),
            ws_addr: Mutex::new(None),
            route_tls: RwLock::new(None),
        })
    }

    /// Client TLS as configured now (None: clear text only).
    pub fn client_tls(&self) -> Option<Arc<tls::ClientTls>> {
        self.client_tls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Route TLS for TCP route links (None: clear text).
    pub fn route_tls(&self) -> Option<Arc<tls::RouteTls>> {
        self.route_tls
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The websocket port's settings, if it has one.
    pub fn websocket(&self) -> Option<Arc<ws::WsListen>> {
        self.websocket.get().cloned()
    }

    /// Installs the client TLS of the options just set (start, reload).
    pub fn set_client_tls(&self, t: Option<Arc<tls::ClientTls>>) {
        *self.client_tls.write().unwrap_or_else(|e| e.into_inner()) = t;
    }

    pub fn opts(&self) -> Arc<Options> {
        self.opts.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_opts(&self, opts: Options) {
        let auth = auth::AuthConfig::from_options(&opts);
        let ws_auth = auth::AuthConfig::for_websocket(&opts).map(Arc::new);
        *self.opts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(opts);
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(auth);
        *self.ws_auth.write().unwrap_or_else(|e| e.into_inner()) = ws_auth;
        *lock(&self.config_load_time) = SystemTime::now();
    }

    pub fn auth(&self) -> Arc<auth::AuthConfig> {
        self.auth.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The authentication a client is checked against: the websocket port's override for
    /// a websocket client when `websocket.authorization` or `no_auth_user` gives one
    /// (auth.go processClientOrLeafAuthentication `ao`), else the server's.
    pub fn auth_for(&self, c: &client::ClientShared) -> Arc<auth::AuthConfig> {
        if c.websocket.is_some() {
            if let Some(a) = self
                .ws_auth
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
            {
                return a;
            }
        }
        self.auth()
    }

    /// The next client or route id (one counter for both, as in nats-server).
    pub fn next_cid(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::Relaxed)
    }

    /// INFO `host` and `port`: `client_advertise` when set, else the listen address
    /// (server.go setInfoHostPort).
    pub fn info_host_port(&self) -> (String, u16) {
        let opts = self.opts();
        let port = lock(&self.client_addr).map(|a| a.port()).unwrap_or(0);
        advertised(&opts, port)
    }

    /// The INFO a new client gets.
    pub fn client_info(&self, cid: u64, client_ip: &str) -> ServerInfo {
        let opts = self.opts();
        let (host, port) = self.info_host_port();
        ServerInfo {
            server_id: self.id.clone(),
            server_name: self.name.clone(),
            version: VERSION.to_string(),
            proto: PROTO,
            git_commit: None,
            go: go_field(),
            host,
            port,
            headers: true,
            auth_required: self.auth().required(),
            max_payload: opts.max_payload as i64,
            client_id: cid,
            client_ip: Some(client_ip.to_string()),
            cluster: self.cluster.enabled.then(|| self.cluster.name()),
            connect_urls: if self.cluster.enabled {
                self.cluster.connect_urls()
            } else {
                Vec::new()
            },
            ..Default::default()
        }
    }

    /// The INFO for one connected client: SCION clients (which reached us
    /// through a SCION listener, so through our proxy or Rust API) get the
    /// cluster's SCION client listeners as `connect_urls`; TCP clients get
    /// TCP URLs only, since NATS client libraries reject URLs they cannot
    /// parse.
    pub fn client_info_for(&self, c: &ClientShared) -> ServerInfo {
        // Client TLS is the TCP port's; SCION client links carry their own QUIC TLS.
        let tls = if c.label.is_none() {
            self.client_tls()
        } else {
            None
        };
        self.client_info_with_tls(c, tls.as_deref())
    }

    /// [`client_info_for`](Self::client_info_for) with the client TLS the connection is
    /// served with (None: clear text).
    pub fn client_info_with_tls(
        &self,
        c: &ClientShared,
        tls: Option<&tls::ClientTls>,
    ) -> ServerInfo {
        let mut info = self.client_info(c.cid, &c.peer.ip().to_string());
        // server.go copyInfo: later INFOs (cluster updates, lame duck) carry the server's
        // auth_required as it is, for every client; the first INFO is set in
        // client::open_with.
        info.auth_required = self.auth().expects_connect();
        tls::set_info_flags(&mut info, tls);
        if c.websocket.is_some() {
            // client.go generateClientInfoJSON: websocket clients get the cluster's
            // websocket URLs as their connect URLs.
            info.connect_urls = if self.opts().cluster.no_advertise {
                Vec::new()
            } else {
                self.cluster.ws_connect_urls()
            };
        } else if c.label.is_some() {
            // cluster.no_advertise (as it is now: it can be reloaded): no cluster URLs.
            info.connect_urls = if self.opts().cluster.no_advertise {
                Vec::new()
            } else {
                self.cluster.scion_connect_urls()
            };
        }
        // server.go sendLDMToClients: in lame duck mode clients are sent only the
        // other servers' URLs (`ldm: true` itself goes out once, in
        // `cluster::send_ldm_to_clients`).
        if self.lame_duck.load(Ordering::Relaxed) {
            let own = if c.websocket.is_some() {
                lock(&self.cluster.own_ws_urls).clone()
            } else if c.label.is_some() {
                lock(&self.cluster.own_scion_urls).clone()
            } else {
                lock(&self.cluster.own_urls).clone()
            };
            info.connect_urls.retain(|u| !own.contains(u));
        }
        info
    }

    pub fn num_clients(&self) -> usize {
        lock(&self.clients).len()
    }

    /// For a connection just added to `clients`: if shutdown has begun, its
    /// close pass may have missed it, so close it now. The flag is set before
    /// that pass takes the `clients` lock, so one of the two sees the other.
    pub(crate) fn close_if_shutting_down(&self, c: &client::ClientShared) {
        if self.shutting_down.load(Ordering::Acquire) {
            c.out.close(ClosedState::ServerShutdown);
        }
    }

    pub fn record_closed(&self, mut snap: client::ConnSnapshot) {
        // server.go saveClosedClient keeps the user name only: a token (shown for an
        // open connection as its authorized_user) is not kept with the closed one.
        snap.token = None;
        snap.nkey = None;
        let mut g = lock(&self.closed);
        if g.len() >= MAX_CLOSED_CLIENTS {
            g.pop_front();
        }
        g.push_back(ClosedConn { snapshot: snap });
    }

    /// Updates the lock-free mirror of the sublist generation. Call with the
    /// write lock still held.
    pub fn publish_generation(&self, gen: u64) {
        self.sub_gen.store(gen, Ordering::Release);
    }
}

/// Removes one subscription from the index and its connection, and tells
/// the routes when interest goes away.
pub fn remove_sub_now(srv: &ServerState, sub: &SubRef) {
    let removed = lock(&sub.client.subs).remove(&sub.sid).is_some();
    if !removed {
        return;
    }
    if sub.client.kind == crate::proto::ConnKind::Client {
        trace_delsub(&sub.client.log_prefix(), &sub.sid);
    }
    {
        let mut sl = srv.sublist.write().unwrap_or_else(|e| e.into_inner());
        let _ = sl.remove(&sub.subject, sub.queue.as_deref(), sub);
        srv.publish_generation(sl.generation());
    }
    cluster::local_interest_changed(srv, sub, -1);
}

/// client.go unsubscribe's trace: `<-> [DELSUB sid]` for every subscription removed
/// (UNSUB, auto-unsubscribe, a reload's permission check, the connection closing).
pub(crate) fn trace_delsub(prefix: &str, sid: &[u8]) {
    tracing::trace!("{} - <-> [DELSUB {}]", prefix, String::from_utf8_lossy(sid));
}

/// Locks a std mutex, continuing through poisoning (state behind these locks
/// stays consistent per operation).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The compiler that built this binary (captured by build.rs), not the
/// crate's minimum version: nats-server reports runtime.Version().
fn rustc_version() -> &'static str {
    env!("BROKER_RUSTC_VERSION")
}

/// The INFO `go` field, client and route alike: `rust` and the compiler's version.
pub(crate) fn go_field() -> String {
    format!("rust{}", rustc_version())
}

/// A server id in nats-server's shape: 56 upper-case base32 characters
/// starting with 'N' (an nkey server public key).
fn generate_server_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut s = String::with_capacity(56);
    s.push('N');
    for _ in 1..56 {
        let i = rand::random_range(0..ALPHABET.len());
        s.push(ALPHABET[i] as char);
    }
    s
}

/// A running server, for the binary and for tests.
pub struct ServerHandle {
    pub state: Arc<ServerState>,
    pub client_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ServerHandle {
    /// Closes listeners and every connection, and waits (bounded) for the
    /// connection tasks to end.
    pub async fn shutdown(self) {
        info!("Initiating Shutdown...");
        let state = self.state.clone();
        state.shutting_down.store(true, Ordering::Release);
        state.shutdown.notify_waiters();
        // Connections registering from now on close themselves
        // (`close_if_shutting_down`), e.g. a route whose handshake finishes
        // in its own task while its dialer is aborted.
        let clients: Vec<_> = lock(&state.clients).values().cloned().collect();
        for c in clients {
            c.out.close(ClosedState::ServerShutdown);
        }
        for t in self.tasks {
            t.abort();
        }
        // Connection tasks end once their writers flush; bound the wait.
        let deadline = Instant::now() + Duration::from_secs(5);
        while state.num_clients() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The SCION links' closes must leave before the process does: close what is left of
        // each endpoint and give its packets a moment (bounded) to go out. Client links with
        // code 1 (a proxy then tries other brokers first); route links so that peers drop
        // their routes to us at once (as nats-server peers see the TCP close) instead of
        // after QUIC's idle timeout.
        let (client_ep, route_ep) = {
            let links = lock(&state.scion);
            (links.client_endpoint.clone(), links.route_endpoint.clone())
        };
        for (ep, code) in [(client_ep, scion::CLIENT_LINK_SHUTDOWN), (route_ep, 0)] {
            if let Some(ep) = ep {
                ep.quinn().close(code.into(), b"server shutdown");
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), ep.quinn().wait_idle()).await;
            }
        }
        info!("Server Exiting..");
    }
}

fn client_bind_addr(opts: &Options) -> Result<SocketAddr, StartError> {
    let port = if opts.port < 0 { 0 } else { opts.port as u16 };
    let host = if opts.host.is_empty() {
        "0.0.0.0"
    } else {
        opts.host.as_str()
    };
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    // Host names (e.g. "localhost") resolve through the system.
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or(StartError::BadAddress(text))
}

/// Binds the listeners and starts serving. Listeners are bound before this
/// returns, so callers can connect right away (no readiness race).
pub async fn start(mut opts: Options) -> Result<ServerHandle, StartError> {
    // nats-server defaults the monitoring host to the client host.
    if opts.http_host.is_empty() {
        opts.http_host = display_host(&opts.host).to_string();
    }
    check_advertise(&opts)?;
    let bind = client_bind_addr(&opts)?;
    // server.go StartMonitoring: one monitoring port, http or https; https serves with the
    // client TLS certificate.
    if opts.http_port != 0 && opts.https_port != 0 {
        return Err(StartError::Monitor(format!(
            "can't specify both HTTP ({}) and HTTPs ({}) ports",
            opts.http_port, opts.https_port
        )));
    }
    let (http, scheme) = if opts.https_port != 0 {
        (opts.https_port, "https")
    } else {
        (opts.http_port, "http")
    };
    let http_host = opts.http_host.clone();
    let client_tls = tls::client_tls(&opts).map_err(StartError::Tls)?;
    let monitor_tls = if opts.https_port != 0 {
        let t = client_tls
            .as_ref()
            .ok_or_else(|| StartError::Monitor("TLS cert and key required for HTTPS".into()))?;
        Some(t.monitor.clone())
    } else {
        None
    };
    let route_tls = tls::route_tls(&opts).map_err(StartError::Tls)?;
    let state = ServerState::new(opts);
    state.set_client_tls(client_tls);
    *state.route_tls.write().unwrap_or_else(|e| e.into_inner()) = route_tls;
    log_startup(&state);
    // Written before "Server is ready", as nats-server's Start does (server.go logPid),
    // so that whoever waits for that line finds the pid file.
    if let Some(p) = &state.opts().pid_file {
        write_pid_file(p).map_err(|e| {
            StartError::PidFile(crate::conf::go_io_error("open", &p.to_string_lossy(), &e))
        })?;
    }

    // Whatever was spawned stops again if a later step fails (an embedding program or
    // test that gets the error is left with no listener running).
    let mut guard = AbortOnDrop(Vec::new());
    let tasks = &mut guard.0;
    let mut http_addr = None;
    if http != 0 {
        let port = if http < 0 { 0 } else { http as u16 };
        let addr = format!("{http_host}:{port}");
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Listen {
                kind: ListenKind::Monitor,
                addr: addr.clone(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| StartError::Listen {
            kind: ListenKind::Monitor,
            addr: addr.clone(),
            source,
        })?;
        info!(
            "Starting {} monitor on {}",
            scheme,
            route::join_host_port(&http_host, local.port())
        );
        *lock(&state.http_addr) = Some(local);
        http_addr = Some(local);
        tasks.push(tokio::spawn(crate::monitor::serve(
            state.clone(),
            listener,
            monitor_tls,
        )));
    }

    // server.go Start: the websocket port opens (and says so) before the client port.
    if let Some(w) = state.opts().websocket.as_ref().filter(|w| w.port != 0) {
        start_websocket(&state, w, tasks).await?;
    }
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| StartError::Listen {
            kind: ListenKind::Client,
            addr: bind.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen {
        kind: ListenKind::Client,
        addr: bind.to_string(),
        source,
    })?;
    *lock(&state.client_addr) = Some(local);
    // net.JoinHostPort, as server.go prints it: an IPv6 host in brackets.
    info!(
        "Listening for client connections on {}",
        route::join_host_port(display_host(&state.opts().host), local.port())
    );
    if state.client_tls().is_some() {
        info!("TLS required for client connections");
    }
    let opts = state.opts();
    *lock(&state.cluster.own_urls) = own_connect_urls(&opts, local);
    tasks.push(tokio::spawn(accept_loop(state.clone(), listener, false)));
    scion::start_client_listener(&state, tasks).await?;
    info!("Server is ready");
    if state.cluster.enabled {
        let bind = cluster_bind_addr(&opts)?;
        let route_tasks = route::start_routing(state.clone(), bind)
            .await
            .map_err(|source| StartError::Listen {
                kind: ListenKind::Route,
                addr: bind.map(|b| b.to_string()).unwrap_or_default(),
                source,
            })?;
        tasks.extend(route_tasks);
    }
    let wants_scion = matches!(
        opts.cluster.listen,
        Some(crate::options::ListenAddr::Scion { .. })
    ) || opts.scion_listen.is_some()
        || opts
            .cluster
            .routes
            .iter()
            .any(|r| matches!(r.target, crate::options::RouteTarget::Scion { .. }));
    if wants_scion {
        scion::start(&state, tasks).await?;
    } else if opts.scion.is_some() {
        warn!("a scion block is configured but no listen address or route is a SCION address: no SCION link is started");
    }
    Ok(ServerHandle {
        state,
        client_addr: local,
        http_addr,
        tasks: std::mem::take(&mut guard.0),
    })
}

/// Tasks aborted when dropped (a failed start), unless taken out first.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn display_host(h: &str) -> &str {
    if h.is_empty() {
        "0.0.0.0"
    } else {
        h
    }
}

/// A generated cluster name shaped like nats-server's (`nuid.Next()`: 22 base-62 digits).
fn dynamic_cluster_name() -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| DIGITS[rand::random_range(0..DIGITS.len())] as char)
        .collect()
}

fn log_startup(state: &ServerState) {
    let opts = state.opts();
    info!("Starting nats-server");
    info!(
        "  Version:  {} (nats-scion broker {})",
        VERSION, BROKER_VERSION
    );
    info!("  Git:      [not set]");
    // The configured name, or the generated one (server.go Start prints ClusterName()).
    if state.cluster.enabled {
        info!("  Cluster:  {}", state.cluster.name());
    }
    info!("  Name:     {}", state.name);
    info!("  ID:       {}", state.id);
    // auth.go checkAuthforWarnings: the single user's password, and every listed user's
    // (an empty one too: nats-server skips those only for TLS-mapped users, which we lack).
    let a = &opts.authorization;
    let plain = a
        .password
        .as_deref()
        .is_some_and(|p| !p.is_empty() && !auth::is_bcrypt(p))
        || a.users.iter().any(|u| !auth::is_bcrypt(&u.password));
    if plain {
        warn!("Plaintext passwords detected, use nkeys or bcrypt");
    }
    if let Some(f) = &opts.config_file {
        info!("Using configuration file: {}", f.display());
    }
    // server.go Start: MAX_PAYLOAD_MAX_SIZE, printed by friendlyBytes.
    if opts.max_payload > 8 * 1024 * 1024 {
        warn!("Maximum payloads over 8.00 MB are generally discouraged and could lead to poor performance");
    }
}

/// Starts the websocket port (websocket.go startWebsocketServer): its log lines, and the
/// accept loop, which serves every connection with [`client::run_ws`].
async fn start_websocket(
    state: &Arc<ServerState>,
    w: &crate::options::WebsocketOpts,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<(), StartError> {
    let listen = ws::WsListen::new(w).map_err(StartError::Tls)?;
    let tls = listen.tls.is_some();
    let _ = state.websocket.set(Arc::new(listen));
    let port = if w.port < 0 { 0 } else { w.port as u16 };
    let addr = route::join_host_port(&w.host, port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| StartError::Listen {
            kind: ListenKind::Websocket,
            addr: addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen {
        kind: ListenKind::Websocket,
        addr: addr.clone(),
        source,
    })?;
    *lock(&state.ws_addr) = Some(local);
    // websocket.go startWebsocketServer: getConnectURLs(advertise, host, port).
    *lock(&state.cluster.own_ws_urls) = connect_urls_for(w.advertise.as_deref(), &w.host, local);
    let scheme = if tls { "wss" } else { "ws" };
    info!(
        "Listening for websocket clients on {scheme}://{}:{}",
        w.host,
        local.port()
    );
    if !tls {
        warn!("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!");
    }
    tasks.push(tokio::spawn(accept_loop(state.clone(), listener, true)));
    Ok(())
}

/// Accepts clients on the TCP port, or with `websocket` on the websocket port.
async fn accept_loop(state: Arc<ServerState>, listener: TcpListener, websocket: bool) {
    let mut backoff = Duration::from_millis(10);
    loop {
        // Checked before each accept as the wake-up can come while we are not
        // waiting (notify_waiters keeps no permit).
        if state.lame_duck.load(Ordering::Acquire) {
            tracing::debug!("Client accept loop exiting..");
            return;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = state.shutdown.notified() => {
                tracing::debug!("Client accept loop exiting..");
                return;
            }
            _ = state.lame_duck_notify.notified() => continue,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                if state.shutting_down.load(Ordering::Acquire)
                    || state.lame_duck.load(Ordering::Acquire)
                {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                if websocket {
                    tokio::spawn(client::run_ws(state.clone(), stream, peer));
                } else {
                    tokio::spawn(client::run_tcp(state.clone(), stream, peer));
                }
            }
            Err(e) => {
                // nats-server: "Temporary Client Accept Error(%v), sleeping %dms"
                error!(
                    "Temporary Client Accept Error({}), sleeping {}ms",
                    e,
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Where the TCP cluster listener binds (None when routes listen on SCION).
fn cluster_bind_addr(opts: &Options) -> Result<Option<SocketAddr>, StartError> {
    use crate::options::ListenAddr;
    let (host, port) = match &opts.cluster.listen {
        Some(ListenAddr::Tcp { host, port }) => (host.clone(), *port),
        Some(ListenAddr::Scion { .. }) => return Ok(None),
        None => ("0.0.0.0".to_string(), 0),
    };
    let host = if host.is_empty() {
        "0.0.0.0".to_string()
    } else {
        host
    };
    let port = if port < 0 { 0 } else { port as u16 };
    let text = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    text.parse()
        .map(Some)
        .map_err(|_| StartError::BadAddress(text))
}

/// `client_advertise` as host and port (a bare host takes the listen port), else the
/// listen host and `port`. The value was checked at start ([`check_advertise`]).
fn advertised(opts: &Options, port: u16) -> (String, u16) {
    match &opts.client_advertise {
        Some(a) => crate::config::parse_host_port(a, port).unwrap_or_else(|_| (a.clone(), port)),
        None => (opts.host.clone(), port),
    }
}

/// nats-server's start-time checks of the advertise options (server.go
/// setInfoHostPort, route.go setRouteInfoHostPortAndIP), for values set on the
/// command line; a config file's are checked when it is loaded.
fn check_advertise(opts: &Options) -> Result<(), StartError> {
    if let Some(a) = &opts.client_advertise {
        crate::config::check_client_advertise(a).map_err(StartError::Advertise)?;
    }
    if let Some(a) = &opts.cluster.advertise {
        crate::config::check_cluster_advertise(a).map_err(StartError::Advertise)?;
    }
    Ok(())
}

/// The client URLs this server advertises (nats-server
/// `getClientConnectURLs`): `client_advertise` if set, else the listen host,
/// or every non-loopback interface address when listening on all of them.
fn own_connect_urls(opts: &Options, local: SocketAddr) -> Vec<String> {
    connect_urls_for(opts.client_advertise.as_deref(), &opts.host, local)
}

/// server.go getConnectURLs(advertise, host, port): the advertised host[:port] (the port
/// defaulting to the listener's), else `host:port` with the host as configured, or every
/// non-loopback interface address when the listener takes all of them.
fn connect_urls_for(advertise: Option<&str>, host: &str, local: SocketAddr) -> Vec<String> {
    if let Some(a) = advertise {
        let a = a.trim();
        let (h, p) = crate::config::parse_host_port(a, local.port())
            .unwrap_or_else(|_| (a.to_string(), local.port()));
        return vec![route::join_host_port(&h, p)];
    }
    if !local.ip().is_unspecified() {
        let h = if host.is_empty() {
            local.ip().to_string()
        } else {
            host.to_string()
        };
        return vec![route::join_host_port(&h, local.port())];
    }
    interface_addrs()
        .into_iter()
        .filter(|a| !a.is_loopback())
        .map(|a| SocketAddr::new(a, local.port()).to_string())
        .collect()
}

/// Addresses of the machine's interfaces (best effort, via getifaddrs).
fn interface_addrs() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    // SAFETY: getifaddrs fills a linked list we only read and then free
    // with freeifaddrs; every pointer is checked for null before use.
    unsafe {
        let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match (*addr).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                            u32::from_be(sin.sin_addr.s_addr),
                        )));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        let v6 = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                        if !v6.is_unicast_link_local() {
                            out.push(std::net::IpAddr::V6(v6));
                        }
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

/// Writes our pid to `p` as server.go logPid does (`os.WriteFile(p, pid, 0660)`: created with
/// mode 0660 before the umask, an existing file truncated and its mode kept). nats-server
/// leaves the file in place at exit, and so do we.
pub fn write_pid_file(p: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o660);
    }
    o.open(p)?
        .write_all(std::process::id().to_string().as_bytes())
}

#[cfg(test)]
mod connect_url_tests {
    use super::*;

    #[test]
    fn connect_urls_follow_go_get_connect_urls() {
        let local: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        // The advertised host takes the listener's port when it names none.
        assert_eq!(
            connect_urls_for(Some(" ws.example.com "), "0.0.0.0", local),
            vec!["ws.example.com:8443"]
        );
        assert_eq!(
            connect_urls_for(Some("ws.example.com:443"), "0.0.0.0", local),
            vec!["ws.example.com:443"]
        );
        // A named host stays as configured.
        assert_eq!(
            connect_urls_for(None, "localhost", local),
            vec!["localhost:8443"]
        );
        let v6: SocketAddr = "[::1]:8443".parse().unwrap();
        assert_eq!(connect_urls_for(None, "::1", v6), vec!["[::1]:8443"]);
    }
}
