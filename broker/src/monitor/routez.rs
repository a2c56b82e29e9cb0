//! `/routez` (nats-server `server/monitor.go` `Routez`, `RouteInfo`), and
//! the registry through which the cluster code reports its routes.
//!
//! # Extension point for clustering and SCION
//!
//! [`RouteInfo`] is what the monitor needs to know of one route; the
//! server module turns its route table into these (see `super::route_infos`)
//! and everything here is pure. A route carried over SCION fills
//! [`RouteInfo::scion`] (peer SCION address, active path, path switches);
//! that object appears as an extra `"scion"` key of the route, absent for
//! TCP routes, so nats-server tools keep working.
//!
//! `/pathz` (candidate paths per destination, with why the active one was
//! chosen) is served by `super::pathz`.

use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use super::gofmt::{go_duration, my_uptime, rtt_string, GoTime};
use super::http::SubsLevel;
use super::subsz::SubDetail;

/// What the cluster code reports about one route.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub rid: u64,
    /// The peer's server id.
    pub remote_id: String,
    /// We dialed this route.
    pub did_solicit: bool,
    /// The route is in our `cluster.routes` (explicit), not learned by gossip.
    pub is_configured: bool,
    pub ip: String,
    pub port: u16,
    pub start: SystemTime,
    pub last_activity: SystemTime,
    pub rtt: Option<Duration>,
    /// The peer's route permissions from its INFO (route.go keeps them in `c.opts`).
    pub import: Option<crate::proto::json::SubjectPerm>,
    pub export: Option<crate::proto::json::SubjectPerm>,
    /// Bytes waiting to be written (`pending_size`).
    pub pending_size: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Interest the peer registered with us (RS+ count).
    pub num_subs: u32,
    /// Filled only when asked for (`subs=1` or `subs=detail`).
    pub subs: Vec<SubDetail>,
    /// SCION link state, for routes over SCION.
    pub scion: Option<ScionLinkInfo>,
}

/// The SCION side of a link, shown under `"scion"` in /routez (and later
/// /connz). Designed for issue 5's path observability.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScionLinkInfo {
    /// Peer address as `[ISD-AS,IP]:port`.
    pub remote: String,
    /// The path in use, if one is selected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<ScionPathInfo>,
    /// How often the active path changed on this link.
    pub path_switches: u64,
}

/// One SCION path as shown to operators.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScionPathInfo {
    /// Stable path fingerprint.
    pub fingerprint: String,
    /// Hops as `ISD-AS#ifid` strings, in order.
    pub hops: Vec<String>,
    /// Last measured RTT on this path.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub rtt: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<GoTime>,
    /// Announced end-to-end latency (path metadata), when every stretch announces one; the
    /// same figure as /pathz shows.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_duration"
    )]
    pub latency: Option<Duration>,
    /// Announced bottleneck bandwidth (path metadata), when every stretch announces one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_kbps: Option<u64>,
}

fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&go_duration(*d)),
        None => s.serialize_none(),
    }
}

/// The /routez document.
#[derive(Debug, Serialize)]
pub struct Routez {
    pub server_id: String,
    pub now: GoTime,
    /// The cluster's own permissions (monitor.go Routez: `Cluster.Permissions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<crate::proto::json::SubjectPerm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::proto::json::SubjectPerm>,
    pub num_routes: usize,
    pub routes: Vec<RouteJson>,
}

/// One route in /routez, nats-server field names and order.
#[derive(Debug, Serialize)]
pub struct RouteJson {
    pub rid: u64,
    pub remote_id: String,
    pub did_solicit: bool,
    pub is_configured: bool,
    pub ip: String,
    pub port: u16,
    pub start: GoTime,
    pub last_activity: GoTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rtt: String,
    pub uptime: String,
    pub idle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<crate::proto::json::SubjectPerm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::proto::json::SubjectPerm>,
    pub pending_size: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list_detail: Vec<SubDetail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scion: Option<ScionLinkInfo>,
}

/// Builds /routez from route views taken at `now`.
/// `perms`: the cluster permissions' import and export lists, shown at the top.
pub fn routez(
    server_id: &str,
    perms: (
        Option<crate::proto::json::SubjectPerm>,
        Option<crate::proto::json::SubjectPerm>,
    ),
    infos: Vec<RouteInfo>,
    subs: SubsLevel,
    now: SystemTime,
) -> Routez {
    let routes: Vec<RouteJson> = infos
        .into_iter()
        .map(|r| route_json(r, subs, now))
        .collect();
    Routez {
        server_id: server_id.to_string(),
        now: GoTime(now),
        import: perms.0,
        export: perms.1,
        num_routes: routes.len(),
        routes,
    }
}

fn route_json(r: RouteInfo, subs: SubsLevel, now: SystemTime) -> RouteJson {
    let since = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let (list, detail) = match subs {
        SubsLevel::None => (Vec::new(), Vec::new()),
        SubsLevel::Subjects => (r.subs.into_iter().map(|s| s.subject).collect(), Vec::new()),
        SubsLevel::Detail => (Vec::new(), r.subs),
    };
    RouteJson {
        rid: r.rid,
        remote_id: r.remote_id,
        did_solicit: r.did_solicit,
        is_configured: r.is_configured,
        ip: r.ip,
        port: r.port,
        start: GoTime(r.start),
        last_activity: GoTime(r.last_activity),
        rtt: rtt_string(r.rtt),
        uptime: my_uptime(since(r.start)),
        idle: my_uptime(since(r.last_activity)),
        import: r.import,
        export: r.export,
        pending_size: r.pending_size,
        in_msgs: r.in_msgs,
        out_msgs: r.out_msgs,
        in_bytes: r.in_bytes,
        out_bytes: r.out_bytes,
        subscriptions: r.num_subs,
        subscriptions_list: list,
        subscriptions_list_detail: detail,
        scion: r.scion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn info(rid: u64) -> RouteInfo {
        RouteInfo {
            rid,
            remote_id: format!("N{rid}"),
            did_solicit: true,
            is_configured: false,
            ip: "127.0.0.1".into(),
            port: 6222,
            start: UNIX_EPOCH + Duration::from_secs(100),
            last_activity: UNIX_EPOCH + Duration::from_secs(160),
            rtt: Some(Duration::from_micros(350)),
            import: None,
            export: None,
            pending_size: 0,
            in_msgs: 1,
            out_msgs: 2,
            in_bytes: 3,
            out_bytes: 4,
            num_subs: 1,
            subs: vec![SubDetail {
                account: None,
                subject: "foo".into(),
                qgroup: None,
                sid: "1".into(),
                msgs: 0,
                max: 0,
                cid: rid,
            }],
            scion: None,
        }
    }

    #[test]
    fn json_fields_like_nats_server() {
        let now = UNIX_EPOCH + Duration::from_secs(200);
        let doc = routez("SID", (None, None), vec![info(1)], SubsLevel::Subjects, now);
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["num_routes"], 1);
        let r = &v["routes"][0];
        assert_eq!(r["rtt"], "350µs");
        assert_eq!(r["uptime"], "1m40s");
        assert_eq!(r["idle"], "40s");
        assert_eq!(r["subscriptions_list"][0], "foo");
        assert!(r.get("scion").is_none());
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), 18);

        let mut with_scion = info(2);
        with_scion.scion = Some(ScionLinkInfo {
            remote: "1-ff00:0:110,10.0.0.1:30555".into(),
            path: Some(ScionPathInfo {
                fingerprint: "ab12".into(),
                hops: vec!["1-ff00:0:110#1".into(), "1-ff00:0:111#2".into()],
                rtt: Some(Duration::from_millis(12)),
                mtu: Some(1472),
                expiry: None,
                latency: Some(Duration::from_millis(11)),
                bandwidth_kbps: None,
            }),
            path_switches: 3,
        });
        let doc = routez("SID", (None, None), vec![with_scion], SubsLevel::None, now);
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(v["routes"][0]["scion"]["path"]["rtt"], "12ms");
        assert_eq!(v["routes"][0]["scion"]["path"]["latency"], "11ms");
        // Unannounced metadata is left out, not shown as 0.
        assert!(v["routes"][0]["scion"]["path"]
            .get("bandwidth_kbps")
            .is_none());
        assert_eq!(v["routes"][0]["scion"]["path_switches"], 3);
        assert!(v["routes"][0].get("subscriptions_list").is_none());
    }
}
