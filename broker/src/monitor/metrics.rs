//! `/metrics`: Prometheus text exposition format 0.0.4.
//!
//! nats-server has no Prometheus endpoint (operators run
//! prometheus-nats-exporter against /varz); we serve one directly, with our
//! own names. All names start with `nats_scion_`. Counters keep the /varz field
//! names without a `_total` suffix, as prometheus-nats-exporter's
//! `gnatsd_varz_in_msgs` does, so dashboards built on that exporter map one to
//! one (`# TYPE … counter` says what they are):
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `nats_scion_info{server_id,server_name,version}` | gauge | always 1 |
//! | `nats_scion_varz_start_time_seconds` | gauge | server start, Unix seconds |
//! | `nats_scion_varz_uptime_seconds` | gauge | seconds since start |
//! | `nats_scion_varz_mem` | gauge | resident set size, bytes |
//! | `nats_scion_varz_cpu` | gauge | CPU percent (see /varz `cpu`) |
//! | `nats_scion_varz_connections` | gauge | open client connections |
//! | `nats_scion_varz_total_connections` | counter | client connections accepted |
//! | `nats_scion_varz_subscriptions` | gauge | subscriptions in the index |
//! | `nats_scion_varz_slow_consumers` | counter | slow consumer cut-offs |
//! | `nats_scion_varz_in_msgs`, `_out_msgs` | counter | messages in / out |
//! | `nats_scion_varz_in_bytes`, `_out_bytes` | counter | payload bytes in / out |
//! | `nats_scion_varz_routes` | gauge | registered routes |
//! | `nats_scion_subsz_num_cache` | gauge | match cache entries |
//! | `nats_scion_subsz_num_matches` | counter | subject matches |
//! | `nats_scion_subsz_cache_hit_rate` | gauge | match cache hit rate, 0..1 |
//! | `nats_scion_route_rtt_seconds{rid,remote_id}` | gauge | route RTT |
//! | `nats_scion_route_in_msgs{rid,remote_id}` (and `_out_msgs`, `_in_bytes`, `_out_bytes`) | counter | per-route traffic |
//! | `nats_scion_route_pending_bytes{rid,remote_id}` | gauge | bytes queued to the route |
//! | `nats_scion_route_subscriptions{rid,remote_id}` | gauge | interest the peer registered |
//! | `nats_scion_route_path_switches{rid,remote_id}` | counter | SCION path changes (SCION routes only) |
//! | `nats_scion_path_switches{link,id,remote}` | counter | active path changes toward a SCION peer |
//! | `nats_scion_path_switches_by_cause{link,id,remote,cause}` | counter | the same by cause (`scmp-down`, `probe-loss`, `better`, `expiry`, `refresh`) |
//! | `nats_scion_path_outages{link,id,remote}` | counter | stretches with every usable path down (failover cannot help), the current one included |
//! | `nats_scion_path_outage_seconds{link,id,remote}` | counter | their total length, the current one up to now included |
//! | `nats_scion_path_all_down{link,id,remote}` | gauge | 1 while every usable path is down |
//! | `nats_scion_path_last_switch_gap_seconds{link,id,remote,cause}` | gauge | failover gap of the last switch (how long the old path had been silent) |
//! | `nats_scion_path_failover_gap_seconds{link,remote}` | histogram | failover gaps (SCMP-down and probe-loss switches) toward the peer since start, across its connections |
//! | `nats_scion_path_candidates{link,id,remote}` | gauge | candidate paths toward the peer |
//! | `nats_scion_path_active{link,id,remote,fingerprint}` | gauge | 1 for the path in use |
//! | `nats_scion_path_probed{…,fingerprint}` | gauge | 1 while the path is watched (active set and a few backups; the others are surveyed, one probe every 2 s in turn) |
//! | `nats_scion_path_alive{…,fingerprint}` | gauge | 1 while the path answers probes (probed paths only: the others' last figures are not current) |
//! | `nats_scion_path_rtt_seconds{…,fingerprint}` | gauge | smoothed probe RTT (probed paths that are not down: a down path's last RTT is not current) |
//! | `nats_scion_path_loss_ratio{…,fingerprint}` | gauge | lost fraction of recent probes (probed paths only) |
//! | `nats_scion_http_requests{path}` | counter | monitoring requests per endpoint |

use std::fmt::Write;

use super::pathz::PathzDest;
use crate::server::scion::{GapHistogram, GAP_BUCKETS};

/// The failover gap histogram of one peer: link kind (`route`, `client`), SCION address.
pub type FailoverGaps = (&'static str, String, GapHistogram);
use super::routez::RouteInfo;
use super::subsz::StatsJson;
use super::varz::Varz;

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A per-route metric: name, type, help, value (None: no sample, e.g. an RTT not measured
/// yet).
type PerRoute = (
    &'static str,
    &'static str,
    &'static str,
    fn(&RouteInfo) -> Option<f64>,
);

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.head(name, kind, help);
        let _ = writeln!(self.0, "{name} {v}");
    }
}

/// A float the way Prometheus parsers read it.
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".to_string()
    }
}

/// Renders the exposition text.
pub fn render(
    v: &Varz,
    uptime_secs: f64,
    start_secs: f64,
    sl: &StatsJson,
    routes: &[RouteInfo],
    paths: &[PathzDest],
    gaps: &[FailoverGaps],
) -> String {
    let mut o = Out(String::with_capacity(4096));
    o.head("nats_scion_info", "gauge", "Server identity; always 1.");
    let _ = writeln!(
        o.0,
        "nats_scion_info{{server_id=\"{}\",server_name=\"{}\",version=\"{}\"}} 1",
        label(&v.server_id),
        label(&v.server_name),
        label(&v.version)
    );
    o.one(
        "nats_scion_varz_start_time_seconds",
        "gauge",
        "Server start time, Unix seconds.",
        num(start_secs),
    );
    o.one(
        "nats_scion_varz_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        num(uptime_secs),
    );
    o.one(
        "nats_scion_varz_mem",
        "gauge",
        "Resident set size in bytes.",
        v.mem,
    );
    o.one(
        "nats_scion_varz_cpu",
        "gauge",
        "CPU use in percent.",
        num(v.cpu.0),
    );
    o.one(
        "nats_scion_varz_connections",
        "gauge",
        "Open client connections.",
        v.connections,
    );
    o.one(
        "nats_scion_varz_total_connections",
        "counter",
        "Client connections accepted since start.",
        v.total_connections,
    );
    o.one(
        "nats_scion_varz_subscriptions",
        "gauge",
        "Subscriptions in the subject index.",
        v.subscriptions,
    );
    o.one(
        "nats_scion_varz_slow_consumers",
        "counter",
        "Connections cut off as slow consumers.",
        v.slow_consumers,
    );
    o.one(
        "nats_scion_varz_in_msgs",
        "counter",
        "Messages received.",
        v.in_msgs,
    );
    o.one(
        "nats_scion_varz_out_msgs",
        "counter",
        "Messages delivered.",
        v.out_msgs,
    );
    o.one(
        "nats_scion_varz_in_bytes",
        "counter",
        "Payload bytes received.",
        v.in_bytes,
    );
    o.one(
        "nats_scion_varz_out_bytes",
        "counter",
        "Payload bytes delivered.",
        v.out_bytes,
    );
    o.one(
        "nats_scion_varz_routes",
        "gauge",
        "Registered routes.",
        v.routes,
    );
    o.one(
        "nats_scion_subsz_num_cache",
        "gauge",
        "Entries in the match cache.",
        sl.num_cache,
    );
    o.one(
        "nats_scion_subsz_num_matches",
        "counter",
        "Subject matches performed.",
        sl.num_matches,
    );
    o.one(
        "nats_scion_subsz_cache_hit_rate",
        "gauge",
        "Match cache hit rate, 0 to 1.",
        num(sl.cache_hit_rate.0),
    );

    let per_route: [PerRoute; 7] = [
        (
            "nats_scion_route_rtt_seconds",
            "gauge",
            "Route round-trip time.",
            |r| r.rtt.map(|d| d.as_secs_f64()),
        ),
        (
            "nats_scion_route_in_msgs",
            "counter",
            "Messages received on the route.",
            |r| Some(r.in_msgs as f64),
        ),
        (
            "nats_scion_route_out_msgs",
            "counter",
            "Messages sent on the route.",
            |r| Some(r.out_msgs as f64),
        ),
        (
            "nats_scion_route_in_bytes",
            "counter",
            "Payload bytes received on the route.",
            |r| Some(r.in_bytes as f64),
        ),
        (
            "nats_scion_route_out_bytes",
            "counter",
            "Payload bytes sent on the route.",
            |r| Some(r.out_bytes as f64),
        ),
        (
            "nats_scion_route_pending_bytes",
            "gauge",
            "Bytes queued to the route.",
            |r| Some(r.pending_size as f64),
        ),
        (
            "nats_scion_route_subscriptions",
            "gauge",
            "Interest the peer registered.",
            |r| Some(r.num_subs as f64),
        ),
    ];
    if !routes.is_empty() {
        for (name, kind, help, f) in per_route {
            o.head(name, kind, help);
            for r in routes {
                let Some(v) = f(r) else { continue };
                let _ = writeln!(
                    o.0,
                    "{name}{{rid=\"{}\",remote_id=\"{}\"}} {}",
                    r.rid,
                    label(&r.remote_id),
                    num(v)
                );
            }
        }
        let scion: Vec<&RouteInfo> = routes.iter().filter(|r| r.scion.is_some()).collect();
        if !scion.is_empty() {
            o.head(
                "nats_scion_route_path_switches",
                "counter",
                "SCION path changes on the route.",
            );
            for r in scion {
                let n = r.scion.as_ref().map(|s| s.path_switches).unwrap_or(0);
                let _ = writeln!(
                    o.0,
                    "nats_scion_route_path_switches{{rid=\"{}\",remote_id=\"{}\"}} {n}",
                    r.rid,
                    label(&r.remote_id)
                );
            }
        }
    }
    render_paths(&mut o, paths);
    render_gaps(&mut o, gaps);
    o.head(
        "nats_scion_http_requests",
        "counter",
        "Monitoring requests per endpoint.",
    );
    for (path, n) in &v.http_req_stats {
        let _ = writeln!(
            o.0,
            "nats_scion_http_requests{{path=\"{}\"}} {n}",
            label(path)
        );
    }
    o.0
}

/// The failover gap histograms, one series set per peer.
fn render_gaps(o: &mut Out, gaps: &[FailoverGaps]) {
    const NAME: &str = "nats_scion_path_failover_gap_seconds";
    o.head(
        NAME,
        "histogram",
        "Failover gaps toward the peer (how long the old path had been silent at SCMP-down and probe-loss switches), since start.",
    );
    for (link, remote, h) in gaps {
        let l = format!("link=\"{}\",remote=\"{}\"", label(link), label(remote));
        for (bound, n) in GAP_BUCKETS.iter().zip(h.buckets) {
            let _ = writeln!(o.0, "{NAME}_bucket{{{l},le=\"{}\"}} {n}", num(*bound));
        }
        let _ = writeln!(o.0, "{NAME}_bucket{{{l},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(o.0, "{NAME}_sum{{{l}}} {}", num(h.sum));
        let _ = writeln!(o.0, "{NAME}_count{{{l}}} {}", h.count);
    }
}

/// Per-destination and per-path SCION metrics (the /pathz numbers). Links to one SCION
/// peer share its paths and counts (the clients of one `broker proxy` come from one
/// address), so each (link kind, peer) is listed once, under its oldest link's id: the
/// series of a peer are not repeated per connection, and sums over them count each switch
/// once.
fn render_paths(o: &mut Out, dests: &[PathzDest]) {
    let mut sorted: Vec<&PathzDest> = dests.iter().collect();
    sorted.sort_by_key(|d| (d.link, &d.remote, !d.connected, d.id));
    sorted.dedup_by(|b, a| a.link == b.link && a.remote == b.remote);
    let dests = &sorted[..];
    if dests.is_empty() {
        return;
    }
    let dest_label = |d: &PathzDest| {
        format!(
            "link=\"{}\",id=\"{}\",remote=\"{}\"",
            d.link,
            d.id,
            label(&d.remote)
        )
    };
    // One series per destination.
    let per_dest =
        |o: &mut Out, name: &str, kind: &str, help: &str, v: fn(&PathzDest) -> String| {
            o.head(name, kind, help);
            for d in dests {
                let _ = writeln!(o.0, "{name}{{{}}} {}", dest_label(d), v(d));
            }
        };
    per_dest(
        o,
        "nats_scion_path_switches",
        "counter",
        "Active path changes toward the peer.",
        |d| d.path_switches.to_string(),
    );
    o.head(
        "nats_scion_path_switches_by_cause",
        "counter",
        "Active path changes toward the peer, by cause (scmp-down, probe-loss, better, expiry, refresh).",
    );
    for d in dests {
        for (cause, n) in &d.switches_by_cause {
            let _ = writeln!(
                o.0,
                "nats_scion_path_switches_by_cause{{{},cause=\"{}\"}} {n}",
                dest_label(d),
                label(cause)
            );
        }
    }
    o.head(
        "nats_scion_path_last_switch_gap_seconds",
        "gauge",
        "How long the old path had been silent when the last switch toward the peer happened (the failover gap).",
    );
    for d in dests {
        if let Some(gap) = d.last_switch.as_ref().and_then(|s| s.gap.map(|g| (s, g))) {
            let _ = writeln!(
                o.0,
                "nats_scion_path_last_switch_gap_seconds{{{},cause=\"{}\"}} {}",
                dest_label(d),
                label(&gap.0.cause),
                num(gap.1.as_secs_f64())
            );
        }
    }
    per_dest(
        o,
        "nats_scion_path_outages",
        "counter",
        "Stretches with every usable path toward the peer down (failover cannot help), the current one included.",
        |d| d.outages.count.to_string(),
    );
    per_dest(
        o,
        "nats_scion_path_outage_seconds",
        "counter",
        "Total time with every usable path toward the peer down, the current outage up to now included.",
        |d| num(d.outages.total.as_secs_f64()),
    );
    per_dest(
        o,
        "nats_scion_path_all_down",
        "gauge",
        "1 while every usable path toward the peer is down.",
        |d| u8::from(d.outages.current.is_some()).to_string(),
    );
    per_dest(
        o,
        "nats_scion_path_candidates",
        "gauge",
        "Candidate paths toward the peer.",
        |d| d.paths.len().to_string(),
    );
    type PathValue = fn(&super::pathz::PathCandidate) -> Option<f64>;
    // State, RTT and loss only for watched paths: a path outside the watched set is only
    // surveyed now and then, and its figures are those of its last survey probe.
    let per_path: [(&str, &str, PathValue); 5] = [
        ("nats_scion_path_active", "1 for the path in use.", |p| {
            Some(if p.active { 1.0 } else { 0.0 })
        }),
        (
            "nats_scion_path_probed",
            "1 while the path is watched (active set and a few backups; the others are surveyed now and then).",
            |p| Some(if p.probed { 1.0 } else { 0.0 }),
        ),
        (
            "nats_scion_path_alive",
            "1 while the path answers probes (probed paths only).",
            |p| {
                p.probed
                    .then_some(if p.state == "alive" { 1.0 } else { 0.0 })
            },
        ),
        (
            "nats_scion_path_rtt_seconds",
            "Smoothed probe RTT of the path (probed paths that are not down).",
            |p| (p.probed && p.state != "down").then_some(p.rtt?.as_secs_f64()),
        ),
        (
            "nats_scion_path_loss_ratio",
            "Lost fraction of recent probes (probed paths only).",
            |p| p.probed.then_some(p.loss?.0),
        ),
    ];
    for (name, help, f) in per_path {
        o.head(name, "gauge", help);
        for d in dests {
            for p in &d.paths {
                if let Some(v) = f(p) {
                    let _ = writeln!(
                        o.0,
                        "{name}{{{},fingerprint=\"{}\"}} {}",
                        dest_label(d),
                        label(&p.fingerprint),
                        num(v)
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::routez::ScionLinkInfo;
    use crate::monitor::varz::{varz, Runtime};
    use crate::options::Options;
    use crate::sublist::SublistStats;
    use std::time::{Duration, SystemTime};

    #[test]
    fn renders_valid_exposition_lines() {
        let mut rt = Runtime {
            server_id: "NID".into(),
            server_name: "a\"b".into(),
            in_msgs: 42,
            routes: 1,
            ..Default::default()
        };
        rt.http_req_stats.insert("/varz".into(), 3);
        let v = varz(&Options::default(), rt);
        let route = RouteInfo {
            rid: 9,
            remote_id: "NR".into(),
            did_solicit: false,
            is_configured: false,
            ip: String::new(),
            port: 0,
            start: SystemTime::UNIX_EPOCH,
            last_activity: SystemTime::UNIX_EPOCH,
            rtt: Some(Duration::from_millis(2)),
            import: None,
            export: None,
            pending_size: 0,
            in_msgs: 5,
            out_msgs: 0,
            in_bytes: 0,
            out_bytes: 0,
            num_subs: 0,
            subs: Vec::new(),
            scion: Some(ScionLinkInfo {
                path_switches: 4,
                ..Default::default()
            }),
        };
        let sl = StatsJson::from(&SublistStats::default());
        let text = render(&v, 1.5, 1e9, &sl, &[route], &[], &[]);
        assert!(text.contains(
            "nats_scion_info{server_id=\"NID\",server_name=\"a\\\"b\",version=\"\"} 1\n"
        ));
        assert!(text.contains("\nnats_scion_varz_in_msgs 42\n"));
        assert!(text.contains("\nnats_scion_route_in_msgs{rid=\"9\",remote_id=\"NR\"} 5\n"));
        assert!(text.contains("\nnats_scion_route_rtt_seconds{rid=\"9\",remote_id=\"NR\"} 0.002\n"));
        assert!(text.contains("\nnats_scion_route_path_switches{rid=\"9\",remote_id=\"NR\"} 4\n"));
        assert!(text.contains("\nnats_scion_http_requests{path=\"/varz\"} 3\n"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap_or(("", ""));
            assert!(name.starts_with("nats_scion_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn path_metrics() {
        use crate::monitor::gofmt::{GoFloat, GoTime};
        use crate::monitor::pathz::{PathCandidate, PathzDest};
        let path = PathCandidate {
            fingerprint: "ab".into(),
            hops: Vec::new(),
            state: "alive".into(),
            active: true,
            in_active_set: true,
            probed: true,
            rank: Some(0),
            rtt: Some(Duration::from_millis(20)),
            rtt_var: None,
            rtt_age: Some(Duration::from_millis(40)),
            loss: Some(GoFloat(0.25)),
            mtu: 1472,
            expiry: GoTime(SystemTime::UNIX_EPOCH),
            latency: None,
            bandwidth_kbps: None,
            probes_sent: 4,
            probes_answered: 3,
            reason: None,
        };
        let dest = PathzDest {
            remote: "[1-ff00:0:111,10.0.0.2]:30555".into(),
            link: "route",
            connected: true,
            id: 3,
            remote_id: String::new(),
            path_switches: 2,
            switches_by_cause: [("probe-loss".to_string(), 1), ("better".to_string(), 1)]
                .into_iter()
                .collect(),
            active: None,
            why_active: String::new(),
            last_switch: Some(crate::monitor::pathz::PathSwitch {
                cause: "better".into(),
                at: GoTime(SystemTime::UNIX_EPOCH),
                from: None,
                to: "ab".into(),
                gap: Some(Duration::from_millis(35)),
            }),
            outages: crate::monitor::pathz::Outages {
                current: Some(Duration::from_millis(1500)),
                count: 2,
                total: Duration::from_millis(4250),
            },
            // A path outside the watched set: its last figures are not exported as current.
            paths: vec![
                path.clone(),
                PathCandidate {
                    fingerprint: "cd".into(),
                    active: false,
                    in_active_set: false,
                    probed: false,
                    rank: Some(1),
                    rtt_age: Some(Duration::from_secs(30)),
                    ..path
                },
            ],
        };
        let v = varz(&Options::default(), Runtime::default());
        let sl = StatsJson::from(&SublistStats::default());
        let mut h = GapHistogram::default();
        h.observe(Duration::from_millis(6));
        h.observe(Duration::from_millis(300));
        let gaps = [("route", "[1-ff00:0:111,10.0.0.2]:30555".to_string(), h)];
        let text = render(&v, 0.0, 0.0, &sl, &[], std::slice::from_ref(&dest), &gaps);
        let g = "nats_scion_path_failover_gap_seconds";
        let gl = "link=\"route\",remote=\"[1-ff00:0:111,10.0.0.2]:30555\"";
        assert!(text.contains(&format!("# TYPE {g} histogram\n")), "{text}");
        for (le, n) in [
            ("0.005", 0),
            ("0.01", 1),
            ("0.25", 1),
            ("0.5", 2),
            ("10", 2),
            ("+Inf", 2),
        ] {
            assert!(
                text.contains(&format!("\n{g}_bucket{{{gl},le=\"{le}\"}} {n}\n")),
                "le {le}: {text}"
            );
        }
        assert!(text.contains(&format!("\n{g}_count{{{gl}}} 2\n")), "{text}");
        assert!(
            text.contains(&format!("\n{g}_sum{{{gl}}} 0.306\n")),
            "{text}"
        );
        let l = "link=\"route\",id=\"3\",remote=\"[1-ff00:0:111,10.0.0.2]:30555\"";
        assert!(
            text.contains(&format!("\nnats_scion_path_switches{{{l}}} 2\n")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "\nnats_scion_path_rtt_seconds{{{l},fingerprint=\"ab\"}} 0.02\n"
        )));
        assert!(text.contains(&format!(
            "\nnats_scion_path_probed{{{l},fingerprint=\"cd\"}} 0\n"
        )));
        for gauge in ["alive", "rtt_seconds", "loss_ratio"] {
            assert!(
                !text.contains(&format!(
                    "nats_scion_path_{gauge}{{{l},fingerprint=\"cd\"}}"
                )),
                "{gauge} of an unprobed path: {text}"
            );
        }
        assert!(text.contains(&format!(
            "\nnats_scion_path_loss_ratio{{{l},fingerprint=\"ab\"}} 0.25\n"
        )));
        assert!(text.contains(&format!(
            "\nnats_scion_path_active{{{l},fingerprint=\"ab\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "\nnats_scion_path_switches_by_cause{{{l},cause=\"probe-loss\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "\nnats_scion_path_last_switch_gap_seconds{{{l},cause=\"better\"}} 0.035\n"
        )));
        assert!(text.contains(&format!("\nnats_scion_path_outages{{{l}}} 2\n")));
        assert!(text.contains(&format!("\nnats_scion_path_outage_seconds{{{l}}} 4.25\n")));
        assert!(text.contains(&format!("\nnats_scion_path_all_down{{{l}}} 1\n")));

        // Three clients of one proxy (one SCION address, shared paths) and one of another:
        // each peer's series once, under its oldest link's id.
        let client = |id: u64, remote: &str| PathzDest {
            link: "client",
            id,
            remote: remote.into(),
            ..dest.clone()
        };
        let (p1, p2) = (
            "[1-ff00:0:112,10.0.0.5]:31000",
            "[1-ff00:0:112,10.0.0.6]:31000",
        );
        let dests = [client(9, p1), client(5, p1), client(7, p1), client(8, p2)];
        let text = render(&v, 0.0, 0.0, &sl, &[], &dests, &[]);
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("nats_scion_path_switches{"))
            .collect();
        assert_eq!(
            series,
            [
                format!("nats_scion_path_switches{{link=\"client\",id=\"5\",remote=\"{p1}\"}} 2"),
                format!("nats_scion_path_switches{{link=\"client\",id=\"8\",remote=\"{p2}\"}} 2"),
            ],
            "{text}"
        );
    }

    #[test]
    fn a_route_without_an_rtt_yet_has_no_rtt_sample() {
        let v = varz(&Options::default(), Runtime::default());
        let route = RouteInfo {
            rid: 2,
            remote_id: "NR".into(),
            did_solicit: false,
            is_configured: false,
            ip: String::new(),
            port: 0,
            start: SystemTime::UNIX_EPOCH,
            last_activity: SystemTime::UNIX_EPOCH,
            rtt: None,
            import: None,
            export: None,
            pending_size: 0,
            in_msgs: 1,
            out_msgs: 0,
            in_bytes: 0,
            out_bytes: 0,
            num_subs: 0,
            subs: Vec::new(),
            scion: None,
        };
        let sl = StatsJson::from(&SublistStats::default());
        let text = render(&v, 0.0, 0.0, &sl, &[route], &[], &[]);
        assert!(text.contains("\nnats_scion_route_in_msgs{rid=\"2\",remote_id=\"NR\"} 1\n"));
        assert!(
            !text.contains("\nnats_scion_route_rtt_seconds{"),
            "an unknown RTT is no sample, not 0: {text}"
        );
    }
}
