//! Conf tree -> typed [`Options`], following nats-server 2.9.10
//! `server/opts.go` (`ProcessConfigFile`, `parseCluster`, `parseAuthorization`,
//! `parseUsers`, `parseUserPermissions`, `parseTLS`).
//!
//! As in nats-server, keys are case-insensitive, all problems of a file are
//! collected before failing, and each error names `file:line:col` of the key
//! (`server.conf:2:1: unknown field "foo_bar"`). Warnings (e.g. a bare
//! integer `ping_interval`) are returned, never printed.
//!
//! Keys nats-server knows but this broker does not implement:
//! - errors, because ignoring them would change what the server does or lets
//!   through: `jetstream`, `store_dir`, `accounts`, `system_account`,
//!   `leafnodes`, `gateway`, `mappings`, `operator`, `resolver*`, `trusted`,
//!   `ocsp`, `mqtt`, `no_header_support`, `http_base_path`,
//!   `default_js_domain` (but JetStream
//!   switched off, `accounts {}`, `no_header_support: false` and
//!   `http_base_path: "/"` are taken: they ask for what this broker does);
//! - notices (printed like warnings, but `-t` passes as with nats-server) and
//!   ignored, because they only tune logging or profiling:
//!   `disable_sublist_cache`, `log_size_limit`,
//!   `prof_port`, `server_tags`, `allow_non_tls`,
//!   `no_system_account`; `trace_verbose` sets `trace`.

mod addr;
mod blocks;

pub use addr::{
    check_client_advertise, check_cluster_advertise, check_port, parse_go_duration,
    parse_host_port, parse_listen_str, parse_route_url, parse_scion_socket, IsdAs, ScionSocket,
};

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conf::{self, Entry, Map, Node, ParseError, Pos, Source, Value};
use crate::options::{ListenAddr, Options};

/// Result of loading a file: the options and the warnings to show the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub options: Options,
    pub warnings: Vec<String>,
}

/// One problem in a configuration, at the position of its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct FieldError {
    pub pos: Pos,
    /// The key the problem is about, as written.
    pub key: String,
    pub message: String,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Go's wording, as nats-server prints it (`open x.conf: no such file or
    /// directory`, `read /tmp: is a directory`).
    #[error("{}", read_error_text(path, source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// All errors of the file (warnings first, like nats-server's processConfigErr).
    #[error("{}", render(errors, warnings))]
    Invalid {
        errors: Vec<FieldError>,
        warnings: Vec<String>,
    },
}

fn render(errors: &[FieldError], warnings: &[String]) -> String {
    let lines: Vec<String> = warnings
        .iter()
        .cloned()
        .chain(errors.iter().map(ToString::to_string))
        .collect();
    lines.join("\n")
}

/// Reads included files and environment variables from the real system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsSource;

impl Source for OsSource {
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn env_var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

fn read_error_text(path: &Path, e: &io::Error) -> String {
    // os.ReadFile opens first; a directory opens fine and fails on read.
    let op = if e.raw_os_error() == Some(libc::EISDIR) {
        "read"
    } else {
        "open"
    };
    conf::go_io_error(op, &path.display().to_string(), e)
}

/// Load a configuration file on top of the defaults.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let mut options = Options::default();
    let warnings = apply_file(&mut options, path)?;
    Ok(Loaded { options, warnings })
}

/// Apply a configuration file to `opts` (values in the file win), returning warnings.
pub fn apply_file(opts: &mut Options, path: &Path) -> Result<Vec<String>, ConfigError> {
    let data = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let map = conf::parse(&data, Some(path), &OsSource)?;
    opts.config_file = Some(path.to_path_buf());
    apply_map(opts, &map)
}

/// What `broker -t -c file` found in a file that has no errors.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Checked {
    /// nats-server's own warnings (e.g. `ping_interval: 5`): nats-server 2.9.10's `-t`
    /// fails on them, because `ProcessConfigFile` returns them as an error.
    pub warnings: Vec<String>,
    /// Our notes about keys nats-server takes that this broker ignores (`server_tags`,
    /// `prof_port`, …): nats-server's `-t` accepts those files, so they do not fail it.
    pub notices: Vec<String>,
}

/// `broker -t -c file`: load and validate.
pub fn check_config(path: &Path) -> Result<Checked, ConfigError> {
    let data = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let map = conf::parse(&data, Some(path), &OsSource)?;
    let mut opts = Options {
        config_file: Some(path.to_path_buf()),
        ..Options::default()
    };
    let m = map_all(&mut opts, &map)?;
    Ok(Checked {
        warnings: m.warnings,
        notices: m.notices,
    })
}

/// Load a configuration held in memory (no includes, no environment).
pub fn load_str(src: &str) -> Result<Loaded, ConfigError> {
    let map = conf::parse_str(src)?;
    let mut options = Options::default();
    let warnings = apply_map(&mut options, &map)?;
    Ok(Loaded { options, warnings })
}

/// Apply a parsed configuration to `opts`.
pub fn apply_map(opts: &mut Options, map: &Map) -> Result<Vec<String>, ConfigError> {
    let m = map_all(opts, map)?;
    let mut all = m.warnings;
    all.extend(m.notices);
    Ok(all)
}

fn map_all(opts: &mut Options, map: &Map) -> Result<Mapper, ConfigError> {
    let mut m = Mapper::default();
    for e in map {
        m.top_level(opts, e);
    }
    m.validate(opts);
    if m.errors.is_empty() {
        Ok(m)
    } else {
        let mut warnings = std::mem::take(&mut m.warnings);
        warnings.append(&mut m.notices);
        Err(ConfigError::Invalid {
            errors: m.errors,
            warnings,
        })
    }
}

/// Collects errors and warnings while walking the tree.
#[derive(Default)]
pub(crate) struct Mapper {
    pub(crate) errors: Vec<FieldError>,
    pub(crate) warnings: Vec<String>,
    /// Our own notes (keys this broker ignores); shown like warnings, but `-t` passes.
    pub(crate) notices: Vec<String>,
    /// Where whole-file checks should point: key name -> position.
    pub(crate) seen: Vec<(&'static str, Pos)>,
}

/// How a configured-but-unimplemented nats-server key is treated.
enum Unsupported {
    Error,
    Ignore,
}

/// `jetstream: false`, `"disabled"`/`"disable"` (any case) or a block with `enabled:
/// false` (opts.go parseJetStream; the block's other keys then configure nothing):
/// JetStream off, which is what this broker runs.
fn jetstream_off(v: &Value) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::String(s) => s.eq_ignore_ascii_case("disabled") || s.eq_ignore_ascii_case("disable"),
        Value::Map(m) => m.iter().any(|f| {
            let k = f.key.to_ascii_lowercase();
            (k == "enabled" || k == "enable") && matches!(f.value.value, Value::Bool(false))
        }),
        _ => false,
    }
}

/// nats-server's configWarningErr wording: `file:line:col: invalid use of field "k": why`.
fn field_warning(e: &Entry, reason: &str) -> String {
    warning_at(&e.key_pos, &e.key, reason)
}

/// [`field_warning`] for a key known by its position.
fn warning_at(pos: &impl std::fmt::Display, key: &str, reason: &str) -> String {
    format!(
        "{pos}: invalid use of field {}: {reason}",
        crate::server::auth::go_quote(key)
    )
}

impl Mapper {
    pub(crate) fn error(&mut self, e: &Entry, message: impl Into<String>) {
        self.error_at(&e.key_pos, &e.key, message);
    }

    pub(crate) fn error_at(&mut self, pos: &Pos, key: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            pos: pos.clone(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// nats-server's configWarningErr wording.
    pub(crate) fn warn(&mut self, e: &Entry, reason: impl AsRef<str>) {
        self.warnings.push(field_warning(e, reason.as_ref()));
    }

    /// A note in the shape of a warning about a key nats-server takes and we ignore.
    pub(crate) fn notice(&mut self, e: &Entry, reason: impl AsRef<str>) {
        self.notices.push(field_warning(e, reason.as_ref()));
    }

    /// Unknown key; like nats-server, keys used as `$variables` are exempt.
    pub(crate) fn unknown(&mut self, e: &Entry) {
        if !e.used_as_variable {
            self.error(
                e,
                format!("unknown field {}", crate::server::auth::go_quote(&e.key)),
            );
        }
    }

    fn unsupported(&mut self, e: &Entry, how: Unsupported) {
        match how {
            Unsupported::Error => self.error(
                e,
                format!(
                    "field {} is not supported by this broker",
                    crate::server::auth::go_quote(&e.key)
                ),
            ),
            Unsupported::Ignore => self.notice(e, "not supported by this broker, ignored"),
        }
    }

    fn type_error(&mut self, e: &Entry, want: &str) {
        let got = e.value.value.type_name();
        self.error(
            e,
            format!(
                "invalid value for {}: expected {want}, got {got}",
                crate::server::auth::go_quote(&e.key)
            ),
        );
    }

    pub(crate) fn string(&mut self, e: &Entry) -> Option<String> {
        match &e.value.value {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.type_error(e, "a string");
                None
            }
        }
    }

    pub(crate) fn int(&mut self, e: &Entry) -> Option<i64> {
        match e.value.value {
            Value::Integer(i) => Some(i),
            _ => {
                self.type_error(e, "an integer");
                None
            }
        }
    }

    /// A port number (`-1` = random), checked as nats-server checks ports.
    fn port(&mut self, e: &Entry) -> Option<i32> {
        let p = self.int(e)?;
        match check_port(p) {
            Ok(p) => Some(p),
            Err(msg) => {
                self.error(e, msg);
                None
            }
        }
    }

    /// `http`/`https`: a port, or `host:port`, which also sets the monitoring host.
    fn monitor_listen(&mut self, e: &Entry, host: &mut String) -> Option<i32> {
        match &e.value.value {
            Value::Integer(_) => self.port(e),
            Value::String(s) => match parse_listen_str(s) {
                Ok(ListenAddr::Tcp { host: h, port }) => {
                    *host = if h.is_empty() {
                        "0.0.0.0".to_string()
                    } else {
                        h
                    };
                    Some(port)
                }
                Ok(_) => {
                    self.error(e, "monitoring can not listen on a SCION address");
                    None
                }
                Err(msg) => {
                    self.error(e, msg);
                    None
                }
            },
            _ => {
                self.type_error(e, "port or host:port");
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, e: &Entry) -> Option<bool> {
        match e.value.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.type_error(e, "a boolean");
                None
            }
        }
    }

    pub(crate) fn map<'a>(&mut self, e: &'a Entry) -> Option<&'a Map> {
        match &e.value.value {
            Value::Map(m) => Some(m),
            _ => {
                self.type_error(e, "a map");
                None
            }
        }
    }

    pub(crate) fn array<'a>(&mut self, e: &'a Entry) -> Option<&'a [Node]> {
        match &e.value.value {
            Value::Array(a) => Some(a),
            _ => {
                self.type_error(e, "an array");
                None
            }
        }
    }

    /// A non-negative integer that fits `usize`; `max` bounds it further.
    pub(crate) fn size(&mut self, e: &Entry, max: u64) -> Option<usize> {
        let v = self.int(e)?;
        if v < 0 {
            self.error(e, format!("{} value can not be negative", e.key));
            return None;
        }
        if v as u64 > max {
            self.error(e, format!("{} value is too big", e.key));
            return None;
        }
        usize::try_from(v).ok()
    }

    /// nats-server `parseDuration`: a Go duration string, or (deprecated) a
    /// bare number of seconds with a warning.
    pub(crate) fn duration(&mut self, e: &Entry) -> Option<Duration> {
        let nanos = match &e.value.value {
            Value::String(s) => match parse_go_duration(s) {
                Ok(n) => n,
                Err(err) => {
                    self.error(e, format!("error parsing {}: {err}", e.key));
                    return None;
                }
            },
            Value::Integer(secs) => {
                self.warn(e, format!("{} should be converted to a duration", e.key));
                i128::from(*secs) * 1_000_000_000
            }
            _ => {
                self.type_error(e, "a duration string such as \"2m\"");
                return None;
            }
        };
        if nanos < 0 {
            self.error(e, format!("invalid {}, needs to be positive", e.key));
            return None;
        }
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// A duration given as (fractional) seconds, as nats-server takes
    /// `authorization.timeout`; strings in Go duration syntax are also accepted.
    pub(crate) fn seconds(&mut self, e: &Entry) -> Option<Duration> {
        let secs = match &e.value.value {
            Value::Integer(i) => *i as f64,
            Value::Float(f) => *f,
            Value::String(_) => return self.duration(e),
            _ => {
                self.type_error(e, "a number of seconds");
                return None;
            }
        };
        match Duration::try_from_secs_f64(secs) {
            Ok(d) => Some(d),
            Err(_) => {
                self.error(
                    e,
                    format!("invalid {}: {secs} is not a valid number of seconds", e.key),
                );
                None
            }
        }
    }

    fn top_level(&mut self, o: &mut Options, e: &Entry) {
        use Unsupported::{Error as Reject, Ignore};
        match e.key.to_ascii_lowercase().as_str() {
            "listen" => {
                self.seen.push(("listen", e.key_pos.clone()));
                match &e.value.value {
                    Value::Integer(p) => match check_port(*p) {
                        Ok(p) => o.port = p,
                        Err(msg) => self.error(e, msg),
                    },
                    Value::String(s) => match parse_listen_str(s) {
                        Ok(ListenAddr::Tcp { host, port }) => {
                            o.host = if host.is_empty() {
                                "0.0.0.0".to_string()
                            } else {
                                host
                            };
                            o.port = port;
                        }
                        Ok(scion) => o.scion_listen = Some(scion),
                        Err(msg) => self.error(e, crate::config::addr::keyed("listen", msg)),
                    },
                    _ => self.type_error(e, "port or host:port"),
                }
            }
            "port" => {
                if let Some(p) = self.int(e) {
                    match check_port(p) {
                        Ok(p) => o.port = p,
                        Err(msg) => self.error(e, msg),
                    }
                }
            }
            "host" | "net" => {
                if let Some(h) = self.string(e) {
                    o.host = h;
                }
            }
            "client_advertise" => {
                o.client_advertise = self.string(e);
                // nats-server refuses a bad value at start (server.go setInfoHostPort).
                if let Some(Err(err)) = o.client_advertise.as_deref().map(check_client_advertise) {
                    o.client_advertise = None;
                    self.error(e, err);
                }
            }
            "server_name" => {
                self.seen.push(("server_name", e.key_pos.clone()));
                o.server_name = self.string(e);
            }
            "debug" => o.debug = self.boolean(e).unwrap_or(o.debug),
            "max_traced_msg_len" => {
                if let Some(v) = self.int(e) {
                    // opts.go keeps the int; traceMsg only truncates when it is > 0.
                    o.max_traced_msg_len = usize::try_from(v).unwrap_or(0);
                }
            }
            "trace" => o.trace = self.boolean(e).unwrap_or(o.trace),
            "trace_verbose" => {
                o.trace = self.boolean(e).unwrap_or(o.trace);
                self.notice(e, "verbose tracing is not supported, using trace");
            }
            "logtime" => o.logtime = self.boolean(e).unwrap_or(o.logtime),
            "syslog" => o.syslog = self.boolean(e).unwrap_or(o.syslog),
            "logfile" | "log_file" => o.log_file = self.string(e).map(PathBuf::from),
            "pidfile" | "pid_file" => o.pid_file = self.string(e).map(PathBuf::from),
            "remote_syslog" => o.remote_syslog = self.string(e),
            "ports_file_dir" => o.ports_file_dir = self.string(e).map(PathBuf::from),
            "http" => {
                if let Some(p) = self.monitor_listen(e, &mut o.http_host) {
                    o.http_port = p;
                }
            }
            "https" => {
                if let Some(p) = self.monitor_listen(e, &mut o.http_host) {
                    o.https_port = p;
                }
            }
            "http_port" | "monitor_port" => {
                if let Some(p) = self.port(e) {
                    o.http_port = p;
                }
            }
            "https_port" => {
                if let Some(p) = self.port(e) {
                    o.https_port = p;
                }
            }
            // nats-server stores these as int32 and rejects larger values.
            "max_control_line" => {
                if let Some(v) = self.size(e, i32::MAX as u64) {
                    o.max_control_line = v;
                }
            }
            "max_payload" => {
                self.seen.push(("max_payload", e.key_pos.clone()));
                if let Some(v) = self.size(e, i32::MAX as u64) {
                    o.max_payload = v;
                }
            }
            "max_pending" => {
                self.seen.push(("max_pending", e.key_pos.clone()));
                if let Some(v) = self.size(e, i64::MAX as u64) {
                    o.max_pending = v;
                }
            }
            // nats-server takes any int (opts.go: `int(v.(int64))`); -1 means no limit.
            // (It stores max_subscriptions as an int32, so a huge value wraps there;
            // here it is simply large.)
            "max_connections" | "max_conn" => {
                if let Some(v) = self.int(e) {
                    o.max_connections = v;
                }
            }
            "max_subscriptions" | "max_subs" => {
                if let Some(v) = self.int(e) {
                    o.max_subscriptions = v;
                }
            }
            "ping_interval" => {
                if let Some(d) = self.duration(e) {
                    o.ping_interval = d;
                }
            }
            "ping_max" => {
                if let Some(v) = self.size(e, u32::MAX as u64) {
                    o.ping_max = v as u32;
                }
            }
            // Any integer, as opts.go takes it: a negative N reports as |N| does (Go's
            // `attempts % N`), 0 means the default.
            "connect_error_reports" => {
                if let Some(v) = self.int(e) {
                    o.connect_error_reports = v.unsigned_abs().min(u32::MAX as u64) as u32;
                }
            }
            "reconnect_error_reports" => {
                if let Some(v) = self.int(e) {
                    o.reconnect_error_reports = v.unsigned_abs().min(u32::MAX as u64) as u32;
                }
            }
            "write_deadline" => {
                if let Some(d) = self.duration(e) {
                    o.write_deadline = d;
                }
            }
            // nats-server takes only duration strings for these two.
            "lame_duck_duration" => {
                if let Some(d) = self.duration_string(e) {
                    if d < Duration::from_secs(30) {
                        self.error(
                            e,
                            format!(
                                "invalid lame_duck_duration of {}, minimum is 30 seconds",
                                crate::monitor::gofmt::go_duration(d)
                            ),
                        );
                    } else {
                        o.lame_duck_duration = d;
                    }
                }
            }
            "lame_duck_grace_period" => {
                self.seen
                    .push(("lame_duck_grace_period", e.key_pos.clone()));
                if let Some(d) = self.duration_string(e) {
                    o.lame_duck_grace_period = d;
                }
            }
            "authorization" => blocks::authorization(self, o, e),
            "no_auth_user" => {
                self.seen.push(("no_auth_user", e.key_pos.clone()));
                o.no_auth_user = self.string(e);
            }
            "cluster" => blocks::cluster(self, o, e),
            "scion" => blocks::scion(self, o, e),
            "tls" => blocks::client_tls(self, o, e),
            "websocket" | "ws" => blocks::websocket(self, o, e),
            "allow_non_tls" => {
                if let Some(b) = self.boolean(e) {
                    o.allow_non_tls = b;
                }
            }
            // Settings that ask for what this broker does anyway (a feature switched off,
            // an empty block, the default base path) are taken, as nats-server takes them.
            "jetstream" if jetstream_off(&e.value.value) => {}
            "accounts" if matches!(&e.value.value, Value::Map(m) if m.is_empty()) => {}
            "no_header_support" if matches!(e.value.value, Value::Bool(false)) => {}
            "http_base_path" if matches!(&e.value.value, Value::String(s) if s.is_empty() || s == "/") =>
            {
                // Shown in /varz as written.
                if let Value::String(s) = &e.value.value {
                    o.http_base_path = s.clone();
                }
            }
            "jetstream"
            | "store_dir"
            | "storedir"
            | "accounts"
            | "system_account"
            | "system"
            | "leaf"
            | "leafnodes"
            | "gateway"
            | "mappings"
            | "maps"
            | "operator"
            | "operators"
            | "roots"
            | "root"
            | "root_operators"
            | "root_operator"
            | "resolver"
            | "account_resolver"
            | "accounts_resolver"
            | "resolver_tls"
            | "resolver_preload"
            | "resolver_pinned_accounts"
            | "trusted"
            | "trusted_keys"
            | "ocsp"
            | "mqtt"
            | "no_header_support"
            | "http_base_path"
            | "default_js_domain" => self.unsupported(e, Reject),
            "disable_sublist_cache"
            | "no_sublist_cache"
            | "logfile_size_limit"
            | "log_size_limit"
            | "prof_port"
            | "server_tags"
            | "no_system_account"
            | "no_system"
            | "no_sys_acc" => self.unsupported(e, Ignore),
            // opts.go: an int from 1 to 255.
            "max_sub_tokens" | "max_subscription_tokens" => {
                if let Some(n) = self.int(e) {
                    if n > i64::from(u8::MAX) {
                        self.error(e, format!("{} value is too big", e.key));
                    } else if n <= 0 {
                        self.error(e, format!("{} value can not be negative", e.key));
                    } else {
                        o.max_sub_tokens = n as u8;
                    }
                }
            }
            _ => self.unknown(e),
        }
    }

    fn duration_string(&mut self, e: &Entry) -> Option<Duration> {
        match &e.value.value {
            Value::String(_) => self.duration(e),
            _ => {
                self.type_error(e, "a duration string such as \"30s\"");
                None
            }
        }
    }

    /// Checks that need the whole file (nats-server does some of these when
    /// the server starts; doing them here makes `-t` catch them).
    fn validate(&mut self, o: &mut Options) {
        finalize_defaults(o);
        let at = |m: &Mapper, key: &str| {
            m.seen
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, p)| p.clone())
                .unwrap_or_default()
        };
        // Names with spaces are taken: nats-server 2.9.10 has no such check, and the
        // names travel only inside JSON (INFO, CONNECT, monitoring).
        // nats-server validateOptions (server/server.go), checked at start there.
        if o.lame_duck_grace_period >= o.lame_duck_duration {
            let pos = at(self, "lame_duck_grace_period");
            self.error_at(
                &pos,
                "lame_duck_grace_period",
                format!(
                    "lame duck grace period ({:?}) should be strictly lower than lame duck duration ({:?})",
                    o.lame_duck_grace_period, o.lame_duck_duration
                ),
            );
        }
        if o.max_payload > o.max_pending {
            // Point at whichever of the two the file sets (max_pending alone can cause it).
            let pos = if self.seen.iter().any(|(k, _)| *k == "max_payload") {
                at(self, "max_payload")
            } else {
                at(self, "max_pending")
            };
            self.error_at(
                &pos,
                "max_payload",
                format!(
                    "max_payload ({}) cannot be higher than max_pending ({})",
                    o.max_payload, o.max_pending
                ),
            );
        }
        // Peers of a SCION cluster learn its route address from the listener itself (route
        // INFO `ip`, server/route.rs route_info); an advertised host:port would send them to
        // dial TCP where nothing listens.
        if o.cluster.advertise.is_some()
            && matches!(o.cluster.listen, Some(ListenAddr::Scion { .. }))
        {
            let pos = at(self, "cluster.advertise");
            self.error_at(
                &pos,
                "advertise",
                "cluster advertise is not supported with a SCION cluster listen: peers \
                 learn the SCION route address (nats-route://[ISD-AS,IP]:port) from the \
                 listener; remove \"advertise\"",
            );
        }
        // Each SCION listener is its own QUIC endpoint on its own UDP port: the same address
        // twice would pass here and fail at start, after the TCP listener is already up.
        if let (
            Some(ListenAddr::Scion { ip, port, .. }),
            Some(ListenAddr::Scion {
                ip: cip,
                port: cport,
                ..
            }),
        ) = (&o.scion_listen, &o.cluster.listen)
        {
            // (v4-mapped IPv6 is its IPv4; an unspecified address covers its own family.)
            let (a, b) = (ip.to_canonical(), cip.to_canonical());
            let overlap = a == b
                || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()));
            if *port != 0 && port == cport && overlap {
                let pos = at(self, "cluster.listen");
                self.error_at(
                    &pos,
                    "cluster.listen",
                    format!(
                        "cluster.listen: SCION port {port} is also the client listen's \
                         (`listen`); each SCION listener needs its own UDP port"
                    ),
                );
            }
        }
        // The ISD-AS written in a SCION listen address must be the local AS: checked against
        // scion.topology here (and against the daemon at start), so -t catches it as well.
        if let Some(topo) = o
            .scion
            .as_ref()
            .and_then(|s| s.topology.as_ref())
            .and_then(|p| scion_transport::topology::LocalTopology::load(p).ok())
        {
            for (key, addr) in [
                ("listen", &o.scion_listen),
                ("cluster.listen", &o.cluster.listen),
            ] {
                let Some(ListenAddr::Scion { isd_as, ip, port }) = addr else {
                    continue;
                };
                let written: Option<scion_transport::address::IsdAsn> = isd_as.parse().ok();
                // A port the border router will not deliver to: said by -t too (and by
                // the endpoint when it binds, which also knows a range only the daemon
                // gives, and a port set on the command line).
                if let Some(ia) = written {
                    let range = topo.dispatched_ports;
                    let local = scion_transport::address::ScionAddr {
                        ia,
                        ip: *ip,
                        port: *port,
                    };
                    let line =
                        scion_transport::quic::port_range_warning(&local, Some(range), Some(key));
                    if let (Some(line), true) = (line, *port != 0) {
                        let pos = at(self, key);
                        let field = key.rsplit('.').next().unwrap_or(key);
                        self.notices.push(warning_at(&pos, field, &line));
                    }
                }
                if written.is_some_and(|ia| ia != topo.ia) {
                    let pos = at(self, key);
                    self.error_at(
                        &pos,
                        key.rsplit('.').next().unwrap_or(key),
                        format!(
                            "{key}: the ISD-AS {isd_as} is not the local AS: scion.topology is for {}",
                            topo.ia
                        ),
                    );
                }
            }
        }
        // A certificate for a listener that does not exist would be silently unused.
        if o.scion.as_ref().is_some_and(|s| s.tls.is_some())
            && !matches!(o.scion_listen, Some(ListenAddr::Scion { .. }))
        {
            let pos = at(self, "scion.tls");
            self.error_at(
                &pos,
                "tls",
                "scion tls is the certificate of the SCION client listener, and there is \
                 none: set listen to a SCION address (nats://ISD-AS,IP:port)",
            );
        }
        // websocket.go validateWebsocketOptions.
        if let Some(w) = o.websocket.clone().filter(|w| w.port != 0) {
            let a = &o.authorization;
            let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
            let pos = at(self, "websocket");
            if !a.users.is_empty() || !a.nkeys.is_empty() {
                if set(&w.username) {
                    self.error_at(
                        &pos,
                        "websocket",
                        "websocket authentication username not compatible with presence of users/nkeys",
                    );
                }
                if set(&w.token) {
                    self.error_at(
                        &pos,
                        "websocket",
                        "websocket authentication token not compatible with presence of users/nkeys",
                    );
                }
            }
            if let Some(user) = w.no_auth_user.filter(|u| !u.is_empty()) {
                let q = crate::server::auth::go_quote(&user);
                let text = if a.users.is_empty() {
                    Some(format!(
                        "no_auth_user: {q} present, but users are not defined"
                    ))
                } else if !a.users.iter().any(|u| u.username == user) {
                    Some(format!(
                        "no_auth_user: {q} not present as user in authorization block or account configuration"
                    ))
                } else {
                    None
                };
                if let Some(text) = text {
                    self.error_at(&pos, "no_auth_user", text);
                }
            }
        }
        if let Some(user) = o.no_auth_user.clone() {
            // server.go validateNoAuthUser's words.
            let q = crate::server::auth::go_quote(&user);
            let text = if o.authorization.users.is_empty() {
                Some(format!(
                    "no_auth_user: {q} present, but users are not defined"
                ))
            } else if !o.authorization.users.iter().any(|u| u.username == user) {
                Some(format!(
                    "no_auth_user: {q} not present as user in authorization block or account configuration"
                ))
            } else {
                None
            };
            if let Some(text) = text {
                let pos = at(self, "no_auth_user");
                self.error_at(&pos, "no_auth_user", text);
            }
        }
    }
}

/// Whether the cluster has a plain TCP listener or a plain TCP route.
pub fn uses_tcp_routes(o: &Options) -> bool {
    matches!(o.cluster.listen, Some(ListenAddr::Tcp { .. }))
        || o.cluster
            .routes
            .iter()
            .any(|r| matches!(r.target, crate::options::RouteTarget::Tcp { .. }))
}

/// Loads a client TLS configuration's files as the config file's `tls` block does (for
/// the `--tls*` flags): nats-server's words for a file that is missing or does not parse.
pub fn check_client_tls_files(t: &crate::options::TlsOpts) -> Result<(), String> {
    blocks::load_tls_files(t, false, "client TLS")
}

/// nats-server's `setBaselineOptions`: zero means "default" for these.
pub fn finalize_defaults(o: &mut Options) {
    use crate::options as d;
    if o.port == 0 {
        o.port = i32::from(d::DEFAULT_PORT);
    }
    if o.max_payload == 0 {
        o.max_payload = d::DEFAULT_MAX_PAYLOAD;
    }
    if o.max_control_line == 0 {
        o.max_control_line = d::DEFAULT_MAX_CONTROL_LINE;
    }
    if o.max_pending == 0 {
        o.max_pending = d::DEFAULT_MAX_PENDING;
    }
    if o.max_connections == 0 {
        o.max_connections = d::DEFAULT_MAX_CONNECTIONS;
    }
    if o.ping_interval.is_zero() {
        o.ping_interval = d::DEFAULT_PING_INTERVAL;
    }
    if o.ping_max == 0 {
        o.ping_max = d::DEFAULT_PING_MAX;
    }
    if o.connect_error_reports == 0 {
        o.connect_error_reports = d::DEFAULT_CONNECT_ERROR_REPORTS;
    }
    if o.reconnect_error_reports == 0 {
        o.reconnect_error_reports = d::DEFAULT_RECONNECT_ERROR_REPORTS;
    }
    if o.write_deadline.is_zero() {
        o.write_deadline = d::DEFAULT_WRITE_DEADLINE;
    }
    if o.lame_duck_grace_period.is_zero() {
        o.lame_duck_grace_period = d::DEFAULT_LAME_DUCK_GRACE_PERIOD;
    }
}
