//! nats-server-compatible command line (nats-server 2.9.10 `main.go` usage
//! and `server.ConfigureOptions`).
//!
//! Parsing follows Go's `flag` package: `-flag` and `--flag` are the same,
//! values go as `-flag value` or `-flag=value`, boolean flags take only the
//! `=value` form (`-D=false`), parsing stops at the first non-flag argument
//! or `--`, and the remaining word may be `version` or `help`. As in
//! nats-server, the configuration file is loaded first and the flags given on
//! the command line then override its values.

use std::path::PathBuf;

use crate::config::{self, parse_listen_str, parse_route_url, ConfigError, Loaded};
use crate::options::{ListenAddr, Options};

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run the server with these options; show the warnings to the user.
    Run(Box<Loaded>),
    /// `-t`: check this configuration file and exit (see [`config::check_config`]).
    CheckConfig(PathBuf),
    /// `-h`/`--help`/`help`: print this text and exit.
    Help(String),
    /// `-v`/`--version`/`version`.
    Version,
    /// `--signal`/`-sl <cmd>[=<pid|pid file>]`: signal the running server
    /// (server/opts.go processSignal); `pid_file` is `-P` if given.
    Signal {
        value: String,
        pid_file: Option<PathBuf>,
    },
}

/// A command line that cannot be used; messages follow Go's `flag` package
/// and nats-server where they have one.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("flag provided but not defined: -{0}")]
    UnknownFlag(String),
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        flag: String,
        value: String,
        reason: String,
    },
    #[error("invalid boolean value {value:?} for -{flag}: parse error")]
    InvalidBool { flag: String, value: String },
    #[error("unrecognized command: {0:?}")]
    UnknownCommand(String),
    #[error("flag -{0} is not supported by this broker")]
    Unsupported(String),
    #[error("must specify [-c, --config] option to check configuration file syntax")]
    CheckWithoutConfig,
    #[error("solicited routes require cluster capabilities, e.g. --cluster")]
    RoutesWithoutCluster,
    /// A `--tls*` flag set that cannot make a client TLS configuration.
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Config(#[from] ConfigError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Help,
    Version,
    Port,
    Name,
    Addr,
    ClientAdvertise,
    Debug,
    Trace,
    VerboseTrace,
    DebugTrace,
    DebugVerboseTrace,
    Logtime,
    User,
    Pass,
    Auth,
    HttpPort,
    Config,
    Check,
    Pid,
    Log,
    Syslog,
    Routes,
    Cluster,
    ClusterAdvertise,
    NoAdvertise,
    ConnectRetries,
    MaxTracedMsgLen,
    ClusterName,
    RemoteSyslog,
    PortsFileDir,
    Signal,
    HttpsPort,
    /// `--tls[=false]`, `--tlsverify`, `--tlscert`, `--tlskey`, `--tlscacert`: client TLS
    /// from the command line (opts.go overrideTLS).
    Tls,
    TlsVerify,
    TlsCert,
    TlsKey,
    TlsCaCert,
    /// Accepted, ignored with a warning (logging/profiling knobs).
    Ignored,
    /// Known to nats-server but refused (would change behaviour silently).
    Unsupported,
}

/// Flag names and their meaning, as `ConfigureOptions` declares them.
const FLAGS: &[(&str, Flag, Kind)] = &[
    ("h", Flag::Help, Kind::Bool),
    ("help", Flag::Help, Kind::Bool),
    ("v", Flag::Version, Kind::Bool),
    ("version", Flag::Version, Kind::Bool),
    ("p", Flag::Port, Kind::Int),
    ("port", Flag::Port, Kind::Int),
    ("n", Flag::Name, Kind::Str),
    ("name", Flag::Name, Kind::Str),
    ("server_name", Flag::Name, Kind::Str),
    ("a", Flag::Addr, Kind::Str),
    ("addr", Flag::Addr, Kind::Str),
    ("net", Flag::Addr, Kind::Str),
    ("client_advertise", Flag::ClientAdvertise, Kind::Str),
    ("D", Flag::Debug, Kind::Bool),
    ("debug", Flag::Debug, Kind::Bool),
    ("V", Flag::Trace, Kind::Bool),
    ("trace", Flag::Trace, Kind::Bool),
    ("VV", Flag::VerboseTrace, Kind::Bool),
    ("DV", Flag::DebugTrace, Kind::Bool),
    ("DVV", Flag::DebugVerboseTrace, Kind::Bool),
    ("T", Flag::Logtime, Kind::Bool),
    ("logtime", Flag::Logtime, Kind::Bool),
    ("user", Flag::User, Kind::Str),
    ("pass", Flag::Pass, Kind::Str),
    ("auth", Flag::Auth, Kind::Str),
    ("m", Flag::HttpPort, Kind::Int),
    ("http_port", Flag::HttpPort, Kind::Int),
    ("c", Flag::Config, Kind::Str),
    ("config", Flag::Config, Kind::Str),
    ("t", Flag::Check, Kind::Bool),
    ("P", Flag::Pid, Kind::Str),
    ("pid", Flag::Pid, Kind::Str),
    ("l", Flag::Log, Kind::Str),
    ("log", Flag::Log, Kind::Str),
    ("s", Flag::Syslog, Kind::Bool),
    ("syslog", Flag::Syslog, Kind::Bool),
    ("routes", Flag::Routes, Kind::Str),
    ("cluster", Flag::Cluster, Kind::Str),
    ("cluster_listen", Flag::Cluster, Kind::Str),
    ("cluster_advertise", Flag::ClusterAdvertise, Kind::Str),
    ("no_advertise", Flag::NoAdvertise, Kind::Bool),
    ("connect_retries", Flag::ConnectRetries, Kind::Int),
    ("cluster_name", Flag::ClusterName, Kind::Str),
    ("log_size_limit", Flag::Ignored, Kind::Int),
    ("max_traced_msg_len", Flag::MaxTracedMsgLen, Kind::Int),
    ("r", Flag::RemoteSyslog, Kind::Str),
    ("remote_syslog", Flag::RemoteSyslog, Kind::Str),
    ("ports_file_dir", Flag::PortsFileDir, Kind::Str),
    ("profile", Flag::Ignored, Kind::Int),
    ("ms", Flag::HttpsPort, Kind::Int),
    ("https_port", Flag::HttpsPort, Kind::Int),
    ("sl", Flag::Signal, Kind::Str),
    ("signal", Flag::Signal, Kind::Str),
    ("help_tls", Flag::Unsupported, Kind::Bool),
    ("tls", Flag::Tls, Kind::Bool),
    ("tlsverify", Flag::TlsVerify, Kind::Bool),
    ("tlscert", Flag::TlsCert, Kind::Str),
    ("tlskey", Flag::TlsKey, Kind::Str),
    ("tlscacert", Flag::TlsCaCert, Kind::Str),
    ("js", Flag::Unsupported, Kind::Bool),
    ("jetstream", Flag::Unsupported, Kind::Bool),
    ("sd", Flag::Unsupported, Kind::Str),
    ("store_dir", Flag::Unsupported, Kind::Str),
];

/// One flag as given: its table entry, the name used and the value.
struct Given {
    flag: Flag,
    name: String,
    value: Value,
}

enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
}

/// The `--help` text, nats-server's layout for the flags this broker has.
pub fn usage() -> String {
    "\
Usage: broker [options]
       broker proxy --listen <host:port> --upstream <nats://[ISD-AS,IP]:port> [options]
                    (a local TCP NATS port carried over QUIC/SCION; `broker proxy --help`)

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222, -1 for random)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).
    -m, --http_port <port>           Use port for http monitoring
    -ms,--https_port <port>          Use port for https monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
        --client_advertise <string>  Client URL to advertise to other servers

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -s, --syslog                     Log to syslog or windows event log
    -r, --remote_syslog <addr>       Syslog server addr (udp://127.0.0.1:514)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Same as -V (there is no system account to trace)
    -DV                              Debug and trace
    -DVV                             Same as -DV
        --max_traced_msg_len <len>   Maximum printable length for traced messages (default: unlimited)

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Cluster Options:
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_name <string>      Cluster Name, if not set one will be dynamically generated
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --connect_retries <number>   For implicit routes, number of connect retries
        --cluster_listen <url>       Cluster url from which members can solicit routes

    Route and cluster URLs may name SCION addresses, e.g.
    nats-route://[18-ffaa:1:10bf,127.0.0.1]:4248 (routes and client links then
    run over QUIC on SCION; see the scion { ... } block of the configuration).

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version

Signal Options:
    -sl, --signal <signal>[=<pid>]   Send signal to broker process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file (e.g. /var/run/broker.pid)
"
    .to_string()
}

/// Parse the arguments after the program name.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let args: Vec<String> = args.into_iter().collect();
    let (given, rest) = scan(&args)?;

    let is = |f: Flag| {
        given
            .iter()
            .any(|g| g.flag == f && !matches!(g.value, Value::Bool(false)))
    };
    if is(Flag::Version) {
        return Ok(Command::Version);
    }
    if is(Flag::Help) {
        return Ok(Command::Help(usage()));
    }
    if let Some(word) = rest.first() {
        return match word.to_ascii_lowercase().as_str() {
            "version" => Ok(Command::Version),
            "help" => Ok(Command::Help(usage())),
            _ => Err(CliError::UnknownCommand(word.clone())),
        };
    }
    if let Some(g) = given.iter().find(|g| g.flag == Flag::Unsupported) {
        return Err(CliError::Unsupported(g.name.clone()));
    }
    // opts.go ConfigureOptions handles --signal before the config file is
    // read: the signal is sent and the process exits.
    let last_str = |f: Flag| {
        given.iter().rev().find_map(|g| match &g.value {
            Value::Str(s) if g.flag == f && !s.is_empty() => Some(s.clone()),
            _ => None,
        })
    };
    if let Some(value) = last_str(Flag::Signal) {
        return Ok(Command::Signal {
            value,
            pid_file: last_str(Flag::Pid).map(PathBuf::from),
        });
    }
    // The last -c wins, an empty one included (Go's flag package keeps the last value).
    let config_file = given
        .iter()
        .rev()
        .find_map(|g| match (&g.flag, &g.value) {
            (Flag::Config, Value::Str(s)) => Some(s.clone()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    if is(Flag::Check) {
        return match config_file {
            Some(p) => Ok(Command::CheckConfig(p)),
            None => Err(CliError::CheckWithoutConfig),
        };
    }

    let mut loaded = match &config_file {
        Some(p) => config::load_file(p)?,
        None => Loaded {
            options: Options::default(),
            warnings: Vec::new(),
        },
    };
    let mut routes_flag = false;
    for g in &given {
        routes_flag |= g.flag == Flag::Routes;
        apply(&mut loaded, g)?;
    }
    override_tls(&mut loaded.options, &given)?;
    if routes_flag
        && !loaded.options.cluster.routes.is_empty()
        && loaded.options.cluster.listen.is_none()
    {
        return Err(CliError::RoutesWithoutCluster);
    }
    config::finalize_defaults(&mut loaded.options);
    Ok(Command::Run(Box::new(loaded)))
}

/// opts.go ConfigureOptions and overrideTLS: `--tls=false` drops the config file's client
/// TLS; otherwise any `--tls*` flag replaces it with one made from the flags (certificate
/// and key required; `--tlsverify` asks clients for certificates from `--tlscacert`). The
/// config file's `tls.timeout` stays.
fn override_tls(o: &mut Options, given: &[Given]) -> Result<(), CliError> {
    let tls_flags: Vec<&Given> = given
        .iter()
        .filter(|g| {
            matches!(
                g.flag,
                Flag::Tls | Flag::TlsVerify | Flag::TlsCert | Flag::TlsKey | Flag::TlsCaCert
            )
        })
        .collect();
    if tls_flags.is_empty() {
        return Ok(());
    }
    let last = |f: Flag| tls_flags.iter().rev().find(|g| g.flag == f);
    if let Some(Given {
        value: Value::Bool(false),
        ..
    }) = last(Flag::Tls)
    {
        o.tls = None;
        return Ok(());
    }
    let text = |f: Flag| match last(f) {
        Some(Given {
            value: Value::Str(s),
            ..
        }) if !s.is_empty() => Some(PathBuf::from(s)),
        _ => None,
    };
    let verify = matches!(
        last(Flag::TlsVerify),
        Some(Given {
            value: Value::Bool(true),
            ..
        })
    );
    let cert = text(Flag::TlsCert)
        .ok_or_else(|| CliError::Tls("TLS Server certificate must be present and valid".into()))?;
    let key = text(Flag::TlsKey)
        .ok_or_else(|| CliError::Tls("TLS Server private key must be present and valid".into()))?;
    let ca = text(Flag::TlsCaCert);
    if verify && ca.is_none() {
        return Err(CliError::Tls(
            "--tlsverify needs --tlscacert, the CA client certificates must chain to".into(),
        ));
    }
    let t = crate::options::TlsOpts {
        cert_file: Some(cert),
        key_file: Some(key),
        ca_file: ca,
        verify,
        timeout: o.tls.as_ref().and_then(|t| t.timeout),
    };
    config::check_client_tls_files(&t).map_err(CliError::Tls)?;
    o.tls = Some(t);
    Ok(())
}

/// Go `flag.FlagSet.Parse`: the flags, then the remaining arguments.
fn scan(args: &[String]) -> Result<(Vec<Given>, Vec<String>), CliError> {
    let mut given = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let mut name = &arg[1..];
        if let Some(n) = name.strip_prefix('-') {
            if n.is_empty() {
                // "--" ends the flags and is consumed.
                i += 1;
                break;
            }
            name = n;
        }
        if name.starts_with('-') || name.starts_with('=') {
            return Err(CliError::BadSyntax(arg.clone()));
        }
        i += 1;
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let Some(&(_, flag, kind)) = FLAGS.iter().find(|(n, _, _)| *n == name) else {
            return Err(CliError::UnknownFlag(name.to_string()));
        };
        let value = match kind {
            Kind::Bool => match inline {
                None => Value::Bool(true),
                Some(v) => Value::Bool(parse_go_bool(&v).ok_or_else(|| CliError::InvalidBool {
                    flag: name.to_string(),
                    value: v.clone(),
                })?),
            },
            Kind::Int | Kind::Str => {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| CliError::MissingValue(name.to_string()))?;
                        i += 1;
                        v
                    }
                };
                if kind == Kind::Int {
                    Value::Int(v.trim().parse().map_err(|_| CliError::InvalidValue {
                        flag: name.to_string(),
                        value: v.clone(),
                        reason: "parse error".to_string(),
                    })?)
                } else {
                    Value::Str(v)
                }
            }
        };
        given.push(Given {
            flag,
            name: name.to_string(),
            value,
        });
    }
    Ok((given, args[i..].to_vec()))
}

/// Go `strconv.ParseBool` (command-line flags, monitoring query parameters).
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn apply(l: &mut Loaded, g: &Given) -> Result<(), CliError> {
    let o = &mut l.options;
    let invalid = |reason: String| CliError::InvalidValue {
        flag: g.name.clone(),
        value: match &g.value {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Str(s) => s.clone(),
        },
        reason,
    };
    match (&g.flag, &g.value) {
        (Flag::Port, Value::Int(p)) => o.port = config::check_port(*p).map_err(invalid)?,
        (Flag::HttpPort, Value::Int(p)) => o.http_port = config::check_port(*p).map_err(invalid)?,
        (Flag::HttpsPort, Value::Int(p)) => {
            o.https_port = config::check_port(*p).map_err(invalid)?
        }
        (Flag::Name, Value::Str(s)) => o.server_name = Some(s.clone()),
        (Flag::Addr, Value::Str(s)) => o.host = s.clone(),
        (Flag::ClientAdvertise, Value::Str(s)) => o.client_advertise = Some(s.clone()),
        (Flag::Debug, Value::Bool(b)) => o.debug = *b,
        (Flag::Trace, Value::Bool(b)) => o.trace = *b,
        (Flag::DebugTrace, Value::Bool(b)) => {
            o.debug = *b;
            o.trace = *b;
        }
        (Flag::VerboseTrace, Value::Bool(b)) => {
            o.trace = *b;
            l.warnings.push(format!(
                "flag -{}: verbose tracing is not supported, using trace",
                g.name
            ));
        }
        (Flag::DebugVerboseTrace, Value::Bool(b)) => {
            o.debug = *b;
            o.trace = *b;
            l.warnings.push(format!(
                "flag -{}: verbose tracing is not supported, using debug and trace",
                g.name
            ));
        }
        (Flag::Logtime, Value::Bool(b)) => o.logtime = *b,
        (Flag::Syslog, Value::Bool(b)) => o.syslog = *b,
        (Flag::User, Value::Str(s)) => o.authorization.user = Some(s.clone()),
        (Flag::Pass, Value::Str(s)) => o.authorization.password = Some(s.clone()),
        (Flag::Auth, Value::Str(s)) => o.authorization.token = Some(s.clone()),
        (Flag::Pid, Value::Str(s)) => o.pid_file = Some(PathBuf::from(s)),
        (Flag::Log, Value::Str(s)) => o.log_file = Some(PathBuf::from(s)),
        (Flag::Routes, Value::Str(s)) => {
            // nats-server RoutesFromStr: comma separated; empty clears the list.
            o.cluster.routes = if s.trim().is_empty() {
                Vec::new()
            } else {
                split_route_list(s)
                    .into_iter()
                    .map(|r| parse_route_url(r.trim()))
                    .collect::<Result<_, _>>()
                    .map_err(invalid)?
            };
        }
        (Flag::Cluster, Value::Str(s)) => override_cluster(o, s).map_err(invalid)?,
        (Flag::ClusterAdvertise, Value::Str(s)) => o.cluster.advertise = Some(s.clone()),
        (Flag::NoAdvertise, Value::Bool(b)) => o.cluster.no_advertise = *b,
        // An int in nats-server; a negative count allows no retry, like 0.
        (Flag::ConnectRetries, Value::Int(n)) => {
            o.cluster.connect_retries = u32::try_from((*n).max(0))
                .map_err(|_| invalid("must be at most 4294967295".to_string()))?
        }
        (Flag::MaxTracedMsgLen, Value::Int(n)) => {
            o.max_traced_msg_len = usize::try_from(*n).unwrap_or(0)
        }
        (Flag::ClusterName, Value::Str(s)) => o.cluster.name = Some(s.clone()),
        (Flag::RemoteSyslog, Value::Str(s)) => {
            o.remote_syslog = Some(s.clone()).filter(|s| !s.is_empty())
        }
        // Taken together by override_tls once every flag is read.
        (Flag::Tls | Flag::TlsVerify | Flag::TlsCert | Flag::TlsKey | Flag::TlsCaCert, _) => {}
        (Flag::PortsFileDir, Value::Str(s)) => {
            o.ports_file_dir = Some(PathBuf::from(s)).filter(|p| !p.as_os_str().is_empty())
        }
        (Flag::Ignored, _) => l.warnings.push(format!(
            "flag -{} is not supported by this broker, ignored",
            g.name
        )),
        // Help, version, config, check and unsupported were handled before.
        _ => {}
    }
    Ok(())
}

/// Split `--routes` at commas. SCION route URLs contain a comma themselves
/// (`ISD-AS,IP`), so only a comma followed by the next URL's `scheme://`
/// separates two routes.
fn split_route_list(s: &str) -> Vec<&str> {
    let starts_url = |rest: &str| {
        let rest = rest.trim_start();
        match rest.find("://") {
            Some(i) => {
                let scheme = &rest[..i];
                !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            }
            None => false,
        }
    };
    let mut out = Vec::new();
    let mut from = 0;
    for (i, c) in s.char_indices() {
        if c == ',' && starts_url(&s[i + 1..]) {
            out.push(&s[from..i]);
            from = i + 1;
        }
    }
    out.push(&s[from..]);
    out
}

/// nats-server `overrideCluster`: `--cluster nats://[user:pass@]host:port`
/// (port `-1` = random) replaces the cluster listen address and credentials;
/// an empty value turns clustering off. SCION addresses are accepted too.
fn override_cluster(o: &mut Options, url: &str) -> Result<(), String> {
    if url.is_empty() {
        o.cluster.listen = None;
        return Ok(());
    }
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => url,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let mut listen = parse_listen_str(hostport)?;
    if let ListenAddr::Tcp { host, .. } = &mut listen {
        // An empty host is the default one (opts.go setBaselineOptions: DEFAULT_HOST).
        if host.is_empty() {
            *host = "0.0.0.0".to_string();
        }
    }
    match userinfo {
        Some(u) => {
            let (user, pass) = u
                .split_once(':')
                .ok_or_else(|| "expected cluster password to be set".to_string())?;
            o.cluster.username = Some(user.to_string());
            o.cluster.password = Some(pass.to_string());
        }
        None => {
            o.cluster.username = None;
            o.cluster.password = None;
        }
    }
    o.cluster.listen = Some(listen);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, CliError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    fn opts(args: &[&str]) -> Options {
        match run(args) {
            Ok(Command::Run(l)) => l.options,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn cluster_flags_like_nats_server() {
        // An empty host is the default host; a negative retry count is no retry.
        let o = opts(&["--cluster", "nats://:17100", "--connect_retries", "-1"]);
        assert_eq!(
            o.cluster.listen,
            Some(ListenAddr::Tcp {
                host: "0.0.0.0".into(),
                port: 17100
            })
        );
        assert_eq!(o.cluster.connect_retries, 0);
        // The last -c wins, an empty one included: no configuration file.
        let o = opts(&["-c", "/nonexistent/a.conf", "-c", ""]);
        assert_eq!(o.config_file, None);
    }

    #[test]
    fn go_flag_syntax() {
        assert_eq!(opts(&["-p", "5222"]).port, 5222);
        assert_eq!(opts(&["--port=5222"]).port, 5222);
        assert_eq!(opts(&["-port", "-1"]).port, -1);
        assert_eq!(opts(&["-p", "0"]).port, 4222);
        let o = opts(&["-DV"]);
        assert!(o.debug && o.trace);
        assert!(!opts(&["-T=false"]).logtime);
        assert!(opts(&["-D=true", "--trace"]).debug);
        assert_eq!(
            opts(&["-a", "127.0.0.1", "-n", "s1", "-m", "8222"]).http_port,
            8222
        );
        assert!(matches!(run(&["-x"]), Err(CliError::UnknownFlag(f)) if f == "x"));
        assert!(matches!(run(&["-p"]), Err(CliError::MissingValue(_))));
        assert!(matches!(
            run(&["-p", "abc"]),
            Err(CliError::InvalidValue { .. })
        ));
        assert!(matches!(
            run(&["-D=maybe"]),
            Err(CliError::InvalidBool { .. })
        ));
        assert!(matches!(run(&["---p"]), Err(CliError::BadSyntax(_))));
        assert!(matches!(run(&["foo"]), Err(CliError::UnknownCommand(_))));
        assert!(matches!(
            run(&["-sd", "/tmp/js"]),
            Err(CliError::Unsupported(_))
        ));
        // Parsing stops at "--": what follows is a command word.
        assert!(matches!(run(&["--", "version"]), Ok(Command::Version)));
    }

    #[test]
    fn help_version_check() {
        assert!(
            matches!(run(&["-h"]), Ok(Command::Help(t)) if t.contains("Usage: broker [options]"))
        );
        assert!(matches!(run(&["help"]), Ok(Command::Help(_))));
        assert!(matches!(run(&["--version"]), Ok(Command::Version)));
        assert!(matches!(run(&["-t"]), Err(CliError::CheckWithoutConfig)));
        assert!(
            matches!(run(&["-t", "-c", "x.conf"]), Ok(Command::CheckConfig(p)) if p == std::path::Path::new("x.conf"))
        );
    }

    #[test]
    fn auth_and_cluster_flags() {
        let o = opts(&["--user", "u", "--pass", "p"]);
        assert_eq!(o.authorization.user.as_deref(), Some("u"));
        assert_eq!(o.authorization.password.as_deref(), Some("p"));
        assert_eq!(
            opts(&["--auth", "tok"]).authorization.token.as_deref(),
            Some("tok")
        );

        let o = opts(&[
            "--cluster",
            "nats://ru:rp@127.0.0.1:6222",
            "--routes",
            "nats-route://a:1, nats-route://[18-ffaa:1:10bf,127.0.0.1]:4248",
            "--cluster_name",
            "c1",
        ]);
        assert_eq!(
            o.cluster.listen,
            Some(ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 6222
            })
        );
        assert_eq!(o.cluster.username.as_deref(), Some("ru"));
        assert_eq!(o.cluster.routes.len(), 2);
        assert_eq!(o.cluster.name.as_deref(), Some("c1"));
        assert_eq!(
            opts(&["--cluster", "nats://127.0.0.1:-1"]).cluster.listen,
            Some(ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: -1
            })
        );
        assert!(matches!(
            opts(&["--cluster_listen", "nats://18-ffaa:1:10a0,127.0.0.1:5248"])
                .cluster
                .listen,
            Some(ListenAddr::Scion { port: 5248, .. })
        ));
        assert!(matches!(
            run(&["--routes", "nats-route://a:1"]),
            Err(CliError::RoutesWithoutCluster)
        ));
        assert!(matches!(
            run(&["--cluster", "nats://u@127.0.0.1:1"]),
            Err(CliError::InvalidValue { .. })
        ));
    }
}
