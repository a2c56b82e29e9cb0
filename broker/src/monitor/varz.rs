//! `/varz` (nats-server `server/monitor.go` `Varz`, `createVarz`,
//! `updateVarzRuntimeFields`): field names, order and units as nats-server
//! 2.9.10 writes them.
//!
//! Not written because we have no such feature: `git_commit`, `ip`, `ws_connect_urls`, `tags`, `trusted_operators_*`,
//! `system_account`, `pinned_account_fails` (all `omitempty` in
//! nats-server, so a nats-server without those features omits them too,
//! except `system_account`, which nats-server always has).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::gofmt::{my_uptime, GoFloat, GoTime};
use crate::options::{ListenAddr, Options, RouteTarget};

// nats-server `TLS_TIMEOUT` (2 s), reported as the default even without TLS.
use crate::options::TLS_TIMEOUT_SECS;

/// The /varz document.
#[derive(Debug, Serialize)]
pub struct Varz {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i32,
    pub go: String,
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    pub max_connections: i64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub max_subscriptions: i64,
    /// Nanoseconds (Go `time.Duration`).
    pub ping_interval: u64,
    pub ping_max: u32,
    pub http_host: String,
    pub http_port: u16,
    pub http_base_path: String,
    pub https_port: u16,
    /// Seconds.
    pub auth_timeout: GoFloat,
    pub max_control_line: usize,
    pub max_payload: usize,
    pub max_pending: usize,
    pub cluster: ClusterVarz,
    pub gateway: Empty,
    pub leaf: Empty,
    pub mqtt: Empty,
    pub websocket: WebsocketVarz,
    pub jetstream: Empty,
    /// Seconds.
    pub tls_timeout: GoFloat,
    /// Nanoseconds.
    pub write_deadline: u64,
    pub start: GoTime,
    pub now: GoTime,
    pub uptime: String,
    pub mem: u64,
    pub cores: usize,
    pub gomaxprocs: usize,
    pub cpu: GoFloat,
    pub connections: usize,
    pub total_connections: u64,
    pub routes: usize,
    pub remotes: usize,
    pub leafnodes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub slow_consumers: u64,
    pub subscriptions: u32,
    pub http_req_stats: BTreeMap<String, u64>,
    pub config_load_time: GoTime,
}

/// Gateways, leaf nodes, MQTT, websocket and JetStream are not part of this
/// broker: nats-server prints `{}` for them when unconfigured.
#[derive(Debug, Default, Serialize)]
pub struct Empty {}

/// nats-server `WebsocketOptsVarz` (every field `omitempty`), for the keys this broker
/// implements.
#[derive(Debug, Default, Serialize)]
pub struct WebsocketVarz {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub advertise: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_auth_user: String,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub handshake_timeout: u64,
    /// Seconds (`authorization.timeout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_timeout: Option<GoFloat>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_tls: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub same_origin: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub compression: bool,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

/// nats-server `ClusterOptsVarz` (every field `omitempty`).
#[derive(Debug, Default, Serialize)]
pub struct ClusterVarz {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "addr", skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(rename = "cluster_port", skip_serializing_if = "is_zero_u16")]
    pub port: u16,
    #[serde(skip_serializing_if = "GoFloat::is_zero")]
    pub auth_timeout: GoFloat,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "GoFloat::is_zero")]
    pub tls_timeout: GoFloat,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

/// Live values that do not come from the options.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i32,
    pub go: String,
    /// INFO host and port (`client_advertise` when set, as monitor.go takes `info.Host`).
    pub host: String,
    pub port: u16,
    pub auth_required: bool,
    pub connect_urls: Vec<String>,
    pub http_port: u16,
    /// The websocket port it listens on (0: none).
    pub ws_port: u16,
    /// Cluster name in use (may be generated) and bound route port.
    pub cluster_name: String,
    pub cluster_port: u16,
    pub start: Option<SystemTime>,
    pub now: Option<SystemTime>,
    pub uptime: Duration,
    pub mem: u64,
    pub cores: usize,
    pub cpu: f64,
    pub connections: usize,
    pub total_connections: u64,
    pub routes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub slow_consumers: u64,
    pub subscriptions: u32,
    pub http_req_stats: BTreeMap<String, u64>,
    pub config_load_time: Option<SystemTime>,
}

/// nats-server `urlsToStrings`: the `host:port` of each route URL.
fn route_hosts(opts: &Options) -> Vec<String> {
    opts.cluster
        .routes
        .iter()
        .map(|r| match &r.target {
            RouteTarget::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            RouteTarget::Tcp { host, port } => format!("{host}:{port}"),
            RouteTarget::Scion { isd_as, ip, port } => format!("[{isd_as},{ip}]:{port}"),
        })
        .collect()
}

fn cluster_varz(opts: &Options, rt: &Runtime) -> ClusterVarz {
    let c = &opts.cluster;
    let (host, port) = match &c.listen {
        Some(ListenAddr::Tcp { host, port }) => (host.clone(), (*port).max(0) as u16),
        Some(ListenAddr::Scion { isd_as, ip, port }) => (format!("{isd_as},{ip}"), *port),
        None => (String::new(), 0),
    };
    let enabled = c.listen.is_some();
    // nats-server `setBaselineOptions` fills cluster host and timeouts only
    // when a cluster port is configured.
    let port = if rt.cluster_port != 0 {
        rt.cluster_port
    } else {
        port
    };
    let tls = c.tls.is_some();
    ClusterVarz {
        name: rt.cluster_name.clone(),
        host: if enabled && host.is_empty() {
            "0.0.0.0".into()
        } else {
            host
        },
        port,
        auth_timeout: GoFloat(if enabled {
            c.effective_auth_timeout().as_secs_f64()
        } else {
            0.0
        }),
        urls: route_hosts(opts),
        tls_timeout: GoFloat(if enabled {
            // opts.go setBaselineOptions: 0 is the default.
            c.tls
                .as_ref()
                .and_then(|t| t.timeout)
                .filter(|d| !d.is_zero())
                .map(|d| d.as_secs_f64())
                .unwrap_or(TLS_TIMEOUT_SECS)
        } else {
            0.0
        }),
        tls_required: tls,
        tls_verify: tls,
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Assembles /varz from options and live values.
pub fn varz(opts: &Options, rt: Runtime) -> Varz {
    let start = rt.start.unwrap_or(SystemTime::UNIX_EPOCH);
    let now = rt.now.unwrap_or(start);
    Varz {
        cluster: cluster_varz(opts, &rt),
        server_id: rt.server_id,
        server_name: rt.server_name,
        version: rt.version,
        proto: rt.proto,
        go: rt.go,
        host: rt.host,
        port: rt.port,
        auth_required: rt.auth_required,
        // monitor.go takes these from s.info (server.go NewServer).
        tls_required: opts.tls.is_some() && !opts.allow_non_tls,
        tls_verify: opts.tls.as_ref().is_some_and(|t| t.verify),
        connect_urls: rt.connect_urls,
        max_connections: opts.max_connections,
        max_subscriptions: opts.max_subscriptions,
        ping_interval: nanos(opts.ping_interval),
        ping_max: opts.ping_max,
        http_host: opts.http_host.clone(),
        // One monitoring port, http or https (server.go StartMonitoring).
        http_port: if opts.https_port != 0 {
            0
        } else {
            rt.http_port
        },
        http_base_path: opts.http_base_path.clone(),
        https_port: if opts.https_port != 0 {
            rt.http_port
        } else {
            0
        },
        auth_timeout: GoFloat(opts.client_auth_timeout().as_secs_f64()),
        max_control_line: opts.max_control_line,
        max_payload: opts.max_payload,
        max_pending: opts.max_pending,
        gateway: Empty {},
        leaf: Empty {},
        mqtt: Empty {},
        websocket: opts
            .websocket
            .as_ref()
            .filter(|w| w.port != 0)
            .map(|w| WebsocketVarz {
                host: w.host.clone(),
                // The port it listens on (websocket.go: a random port is written back).
                port: rt.ws_port,
                advertise: w.advertise.clone().unwrap_or_default(),
                no_auth_user: w.no_auth_user.clone().unwrap_or_default(),
                auth_timeout: w
                    .auth_timeout
                    .filter(|t| !t.is_zero())
                    .map(|t| GoFloat(t.as_secs_f64())),
                handshake_timeout: w.handshake_timeout.map(nanos).unwrap_or(0),
                no_tls: w.no_tls,
                same_origin: w.same_origin,
                allowed_origins: w.allowed_origins.clone(),
                compression: w.compression,
            })
            .unwrap_or_default(),
        jetstream: Empty {},
        tls_timeout: GoFloat(opts.client_tls_timeout().as_secs_f64()),
        write_deadline: nanos(opts.write_deadline),
        start: GoTime(start),
        now: GoTime(now),
        uptime: my_uptime(rt.uptime),
        mem: rt.mem,
        cores: rt.cores,
        gomaxprocs: rt.cores,
        cpu: GoFloat(rt.cpu),
        connections: rt.connections,
        total_connections: rt.total_connections,
        routes: rt.routes,
        remotes: rt.routes,
        leafnodes: 0,
        in_msgs: rt.in_msgs,
        out_msgs: rt.out_msgs,
        in_bytes: rt.in_bytes,
        out_bytes: rt.out_bytes,
        slow_consumers: rt.slow_consumers,
        subscriptions: rt.subscriptions,
        http_req_stats: rt.http_req_stats,
        config_load_time: GoTime(rt.config_load_time.unwrap_or(start)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{ClusterOpts, RouteUrl};

    #[test]
    fn defaults_like_nats_server() {
        let opts = Options::default();
        let v = serde_json::to_value(varz(&opts, Runtime::default())).unwrap_or_default();
        assert_eq!(v["ping_interval"], 120_000_000_000u64);
        assert_eq!(v["write_deadline"], 10_000_000_000u64);
        assert_eq!(v["auth_timeout"], 2);
        assert_eq!(v["tls_timeout"], 2);
        assert_eq!(v["max_pending"], 67_108_864);
        assert_eq!(v["cluster"], serde_json::json!({}));
        assert_eq!(v["jetstream"], serde_json::json!({}));
        assert!(v.get("auth_required").is_none());
        assert!(v.get("max_subscriptions").is_none());
        assert_eq!(v["uptime"], "0s");
        // Go prints integral floats without a fraction.
        let txt = serde_json::to_string(&varz(&opts, Runtime::default())).unwrap_or_default();
        assert!(txt.contains(r#""auth_timeout":2,"#));
    }

    #[test]
    fn cluster_block() {
        let opts = Options {
            cluster: ClusterOpts {
                name: Some("c1".into()),
                listen: Some(ListenAddr::Tcp {
                    host: "127.0.0.1".into(),
                    port: -1,
                }),
                routes: vec![RouteUrl {
                    url: "nats-route://u:p@10.0.0.2:6222".into(),
                    user: Some("u".into()),
                    password: Some("p".into()),
                    target: RouteTarget::Tcp {
                        host: "10.0.0.2".into(),
                        port: 6222,
                    },
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let rt = Runtime {
            cluster_name: "c1".into(),
            cluster_port: 40123,
            ..Default::default()
        };
        let v = serde_json::to_value(varz(&opts, rt)).unwrap_or_default();
        assert_eq!(
            v["cluster"],
            serde_json::json!({"name": "c1", "addr": "127.0.0.1", "cluster_port": 40123,
                "auth_timeout": 2, "urls": ["10.0.0.2:6222"], "tls_timeout": 2})
        );
    }
}
