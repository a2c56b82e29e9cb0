//! Typed server options: what a conf file and the command line resolve to.
//!
//! Field names follow nats-server's `server/opts.go` so that operators find the
//! same knobs. Defaults come from nats-server's `server/const.go`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default client port (nats-server `DEFAULT_PORT`).
pub const DEFAULT_PORT: u16 = 4222;
/// Default maximum payload, 1 MiB (`MAX_PAYLOAD_SIZE`).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// Default maximum control line, 4 KiB (`MAX_CONTROL_LINE_SIZE`).
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;
/// Default maximum pending bytes per client, 64 MiB (`MAX_PENDING_SIZE`).
pub const DEFAULT_MAX_PENDING: usize = 64 * 1024 * 1024;
/// Default maximum connections (`DEFAULT_MAX_CONNECTIONS`).
pub const DEFAULT_MAX_CONNECTIONS: i64 = 64 * 1024;
/// Default ping interval (`DEFAULT_PING_INTERVAL`).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(120);
/// Default outstanding pings before a connection is stale (`DEFAULT_PING_MAX_OUT`).
pub const DEFAULT_PING_MAX: u32 = 2;
/// Route dial failures of a first connection are logged at error level on attempt 1 and
/// then every this many (`DEFAULT_CONNECT_ERROR_REPORTS`).
pub const DEFAULT_CONNECT_ERROR_REPORTS: u32 = 3600;
/// The same for a reconnection (`DEFAULT_RECONNECT_ERROR_REPORTS`): every attempt.
pub const DEFAULT_RECONNECT_ERROR_REPORTS: u32 = 1;
/// Default auth timeout, 2 s (`AUTH_TIMEOUT`).
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Default write deadline, 10 s (`DEFAULT_FLUSH_DEADLINE`).
pub const DEFAULT_WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// Default lame duck duration (`DEFAULT_LAME_DUCK_DURATION`).
pub const DEFAULT_LAME_DUCK_DURATION: Duration = Duration::from_secs(120);
/// Default lame duck grace period (`DEFAULT_LAME_DUCK_GRACE_PERIOD`).
pub const DEFAULT_LAME_DUCK_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Where a listener listens: plain TCP, or SCION (kept typed even before SCION links exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `host:port` or `port`; host defaults to 0.0.0.0.
    Tcp { host: String, port: i32 },
    /// `nats://ISD-AS,IP:port` and friends: the ISD-AS as written, the IP and port.
    Scion {
        isd_as: String,
        ip: std::net::IpAddr,
        port: u16,
    },
}

/// One user of `authorization { users [...] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub password: String,
    /// `allowed_connection_types` (upper case; empty = any): this broker's clients are
    /// all `STANDARD` (TCP, and NATS over QUIC/SCION), so a list without it shuts the
    /// user out, as nats-server does for a standard client.
    pub allowed_connection_types: Vec<String>,
    pub permissions: Option<Permissions>,
}

/// One nkey user of `authorization { users [...] }` (an entry with `nkey`: nats-server
/// NkeyUser): the client proves the key by signing the nonce of its INFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NkeyUser {
    /// The user's public nkey (`U...`, 56 characters).
    pub nkey: String,
    pub allowed_connection_types: Vec<String>,
    pub permissions: Option<Permissions>,
}

/// Publish/subscribe permissions (`permissions { publish, subscribe }`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Option<SubjectPermission>,
    pub subscribe: Option<SubjectPermission>,
    /// `allow_responses` (nats-server ResponsePermission); None = off.
    pub allow_responses: Option<ResponsePermission>,
}

/// Allow/deny subject lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectPermission {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// `allow_responses { max, expires }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsePermission {
    pub max: usize,
    pub expires: Duration,
}

/// `authorization { ... }` of the client port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorization {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub users: Vec<User>,
    /// The `users` entries with an `nkey` (nats-server keeps them apart: `Options.Nkeys`).
    pub nkeys: Vec<NkeyUser>,
    pub timeout: Option<Duration>,
    /// Default permissions for users without their own (`default_permissions`).
    pub default_permissions: Option<Permissions>,
}

/// A route URL: `nats-route://[user:pass@]host:port` or a SCION form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    /// The URL exactly as configured (for logs).
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub target: RouteTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    Tcp {
        host: String,
        port: u16,
    },
    Scion {
        isd_as: String,
        ip: std::net::IpAddr,
        port: u16,
    },
}

/// `cluster { ... }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterOpts {
    pub name: Option<String>,
    pub listen: Option<ListenAddr>,
    pub routes: Vec<RouteUrl>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub auth_timeout: Option<Duration>,
    pub advertise: Option<String>,
    pub no_advertise: bool,
    /// `connect_retries` for implicit routes (0 = default behaviour).
    pub connect_retries: u32,
    /// `pool_size`, `compression` etc. do not exist in 2.9; kept out on purpose.
    pub tls: Option<TlsOpts>,
    /// `permissions { import, export }` (nats-server RoutePermissions): `publish` is
    /// what this server imports (asks its routes for), `subscribe` what it exports
    /// (lets routes subscribe to). `allow_responses` is refused for clusters.
    pub permissions: Option<Permissions>,
}

/// `tls { cert_file, key_file, ca_file, verify }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOpts {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub verify: bool,
    pub timeout: Option<Duration>,
}

/// `websocket { ... }` (nats-server WebsocketOpts, the keys this broker implements).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebsocketOpts {
    /// Listen host (default 0.0.0.0).
    pub host: String,
    /// Port; -1 = random, 0 = no websocket port.
    pub port: i32,
    pub advertise: Option<String>,
    /// Serve without TLS (nats-server refuses a websocket port without `tls` otherwise).
    pub no_tls: bool,
    pub tls: Option<TlsOpts>,
    pub same_origin: bool,
    pub allowed_origins: Vec<String>,
    /// Per-message deflate for clients that offer it.
    pub compression: bool,
    /// Bound of the TLS handshake and HTTP upgrade together (nats-server: none unless set).
    pub handshake_timeout: Option<Duration>,
    /// `authorization { user, password, token, timeout }` and `no_auth_user` of the
    /// websocket port: they replace the server's for websocket clients.
    pub username: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub auth_timeout: Option<Duration>,
    pub no_auth_user: Option<String>,
}

/// `scion { ... }`: parsed and typed; used by the SCION link layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScionOpts {
    /// Ordered preference words, validated (`latency`, `bandwidth`, `hops`, `mtu`).
    pub path_preference: Vec<String>,
    pub daemon: Option<String>,
    pub topology: Option<PathBuf>,
    pub policy_acl: Vec<String>,
    pub policy_sequence: Option<String>,
    pub probe_interval: Option<Duration>,
    /// Number of disjoint paths to send each datagram over (1 = off).
    pub redundancy: Option<u32>,
    /// Tag messages forwarded over SCION routes with the path fingerprint header.
    pub path_header: bool,
    /// QUIC flow-control window per stream and connection, bytes (None = transport default).
    pub flow_window: Option<u32>,
    /// Certificate of the SCION client listener (`scion { tls { cert_file, key_file } }`);
    /// None = a self-signed one made at start (encrypted, not authenticated).
    pub tls: Option<TlsOpts>,
}

/// All server options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub config_file: Option<PathBuf>,
    pub server_name: Option<String>,
    /// Client listen host (default 0.0.0.0).
    pub host: String,
    /// Client port; -1 = random (nats-server `RANDOM_PORT`).
    pub port: i32,
    /// Extra client listeners given as SCION addresses in `listen`.
    pub scion_listen: Option<ListenAddr>,
    pub client_advertise: Option<String>,

    pub http_host: String,
    /// Monitoring port; 0 = off, -1 = random.
    pub http_port: i32,
    /// `https` monitoring port (the client TLS certificate); 0 = off, -1 = random.
    pub https_port: i32,
    /// `http_base_path` (only "" and "/" are taken: the endpoints are at the root).
    pub http_base_path: String,

    pub max_payload: usize,
    pub max_control_line: usize,
    pub max_pending: usize,
    /// Negative = unlimited (nats-server takes `-1`; server.go checks `MaxConn > 0`).
    pub max_connections: i64,
    /// 0 or negative = unlimited (nats-server's `jwt.NoLimit` is -1).
    pub max_subscriptions: i64,
    /// `max_sub_tokens`: most tokens a subscription subject may have (0 = no limit).
    pub max_sub_tokens: u8,
    pub ping_interval: Duration,
    pub ping_max: u32,
    /// `connect_error_reports`: a first route connection's dial failures are logged at
    /// error level on attempt 1 and every this many (the rest at debug level).
    pub connect_error_reports: u32,
    /// `reconnect_error_reports`: the same for a route that had connected before.
    pub reconnect_error_reports: u32,
    pub write_deadline: Duration,
    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,

    pub authorization: Authorization,
    pub no_auth_user: Option<String>,

    /// Top-level `tls`: TLS for clients on the TCP port (nats-server opts.go TLSConfig).
    pub tls: Option<TlsOpts>,
    /// `allow_non_tls`: with `tls`, clients may also stay in clear text (INFO then says
    /// `tls_available` instead of `tls_required`).
    pub allow_non_tls: bool,

    pub cluster: ClusterOpts,
    pub scion: Option<ScionOpts>,
    /// `websocket { ... }`: the websocket client port (None: no such port).
    pub websocket: Option<WebsocketOpts>,

    pub debug: bool,
    pub trace: bool,
    /// `max_traced_msg_len`: payload bytes a trace line shows before `...`; 0 = all
    /// (nats-server opts.go MaxTracedMsgLen).
    pub max_traced_msg_len: usize,
    pub logtime: bool,
    pub log_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub syslog: bool,
    /// `remote_syslog` / `-r`: `udp://host:port` (server/log.go).
    pub remote_syslog: Option<String>,
    /// `ports_file_dir`: where `<exe>_<pid>.ports` is written (server.go portsFile).
    pub ports_file_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_file: None,
            server_name: None,
            host: "0.0.0.0".to_string(),
            port: DEFAULT_PORT as i32,
            scion_listen: None,
            client_advertise: None,
            // Empty = the client host, as nats-server defaults HTTPHost to Host.
            http_host: String::new(),
            http_port: 0,
            https_port: 0,
            http_base_path: String::new(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_pending: DEFAULT_MAX_PENDING,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions: 0,
            max_sub_tokens: 0,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_max: DEFAULT_PING_MAX,
            connect_error_reports: DEFAULT_CONNECT_ERROR_REPORTS,
            reconnect_error_reports: DEFAULT_RECONNECT_ERROR_REPORTS,
            write_deadline: DEFAULT_WRITE_DEADLINE,
            lame_duck_duration: DEFAULT_LAME_DUCK_DURATION,
            lame_duck_grace_period: DEFAULT_LAME_DUCK_GRACE_PERIOD,
            authorization: Authorization::default(),
            no_auth_user: None,
            tls: None,
            allow_non_tls: false,
            cluster: ClusterOpts::default(),
            scion: None,
            websocket: None,
            debug: false,
            trace: false,
            max_traced_msg_len: 0,
            logtime: true,
            log_file: None,
            pid_file: None,
            syslog: false,
            remote_syslog: None,
            ports_file_dir: None,
        }
    }
}

/// nats-server's TLS handshake timeout default (TLS_TIMEOUT), in seconds.
pub const TLS_TIMEOUT_SECS: f64 = 2.0;

impl ClusterOpts {
    /// The route CONNECT deadline: `authorization.timeout`, where 0 (or none) means the
    /// default, as in opts.go setBaselineOptions: the TLS timeout plus one second with
    /// `tls`, else two seconds.
    pub fn effective_auth_timeout(&self) -> Duration {
        match (self.auth_timeout.filter(|d| !d.is_zero()), &self.tls) {
            (Some(d), _) => d,
            (None, Some(t)) => {
                t.timeout
                    .filter(|d| !d.is_zero())
                    .unwrap_or(Duration::from_secs_f64(TLS_TIMEOUT_SECS))
                    + Duration::from_secs(1)
            }
            (None, None) => DEFAULT_AUTH_TIMEOUT,
        }
    }
}

impl Options {
    /// The client CONNECT deadline: `authorization.timeout`, where 0 (or none) means the
    /// default (opts.go setBaselineOptions, getDefaultAuthTimeout; `timeout: 0` does not
    /// lock every client out): the TLS timeout plus one second with client `tls`, else two
    /// seconds.
    pub fn client_auth_timeout(&self) -> Duration {
        self.authorization
            .timeout
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| match &self.tls {
                Some(_) => self.client_tls_timeout() + Duration::from_secs(1),
                None => DEFAULT_AUTH_TIMEOUT,
            })
    }

    /// The client TLS handshake bound: `tls.timeout`, where 0 (or none) means nats-server's
    /// two seconds (TLS_TIMEOUT).
    pub fn client_tls_timeout(&self) -> Duration {
        self.tls
            .as_ref()
            .and_then(|t| t.timeout)
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs_f64(TLS_TIMEOUT_SECS))
    }

    /// Convenience for tests and embedding: a listen address for the client port.
    pub fn client_listen(&self) -> Option<SocketAddr> {
        let port = if self.port < 0 { 0 } else { self.port as u16 };
        format!("{}:{}", self.host, port).parse().ok()
    }
}
