//! Bridges the SCION link layer's path view (`scion_transport`) to
//! /routez (`"scion"` of a route), /pathz and /metrics.
//!
//! Per peer the endpoint gives the candidate paths (`path_stats`) and the
//! switch count; the last switch (cause, gap) is what the server's follower of
//! the endpoint's event stream kept since start (`ScionLinks::last_switch`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use scion_transport::address::ScionAddr;
use scion_transport::path::CandidateView;
use scion_transport::quic::ScionEndpoint;
use scion_transport::socket::PathEvent;

use super::gofmt::{GoFloat, GoTime};
use super::pathz::{bottleneck_kbps, total_latency, Outages, PathCandidate, PathSwitch, PathzDest};
use super::routez::{ScionLinkInfo, ScionPathInfo};
use crate::options::RouteTarget;
use crate::proto::ConnKind;
use crate::server::{lock, ClientShared, ServerState};

/// One candidate path as /pathz shows it.
pub fn candidate(c: &CandidateView) -> PathCandidate {
    let info = &c.info;
    PathCandidate {
        fingerprint: info.fingerprint.to_string(),
        hops: info.interfaces.iter().map(|i| i.to_string()).collect(),
        state: c.state.to_string(),
        active: c.active,
        in_active_set: c.in_active_set,
        probed: c.probed,
        rank: c.rank,
        rtt: c.rtt,
        rtt_var: c.rtt_var,
        rtt_age: c
            .last_answer
            .map(|t| Instant::now().saturating_duration_since(t)),
        loss: c.loss.map(GoFloat),
        mtu: info.mtu,
        expiry: GoTime(UNIX_EPOCH + Duration::from_secs(info.expiry_unix_secs)),
        latency: total_latency(&info.latency, info.interfaces.len()),
        bandwidth_kbps: bottleneck_kbps(&info.bandwidth_kbps),
        probes_sent: c.probes_sent,
        probes_answered: c.probes_answered,
        reason: c.reason.clone(),
    }
}

/// Path switches toward `remote` by cause name (`scmp-down`, `probe-loss`, `better`, …).
fn by_cause(ep: &ScionEndpoint, remote: ScionAddr) -> BTreeMap<String, u64> {
    ep.switch_counts(remote)
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect()
}

/// A path switch event as /pathz shows it.
pub fn switch(e: &PathEvent) -> PathSwitch {
    PathSwitch {
        cause: e.cause.to_string(),
        at: GoTime(e.at),
        from: e.from.map(|f| f.to_string()),
        to: e.to.to_string(),
        gap: e.gap,
    }
}

/// The `"scion"` object of a route: peer address, active path, switches.
pub fn link_info(ep: &ScionEndpoint, remote: ScionAddr) -> ScionLinkInfo {
    let active = ep.path_stats(remote).into_iter().find(|c| c.active);
    ScionLinkInfo {
        remote: remote.to_string(),
        path: active.map(|c| {
            let p = candidate(&c);
            ScionPathInfo {
                fingerprint: p.fingerprint,
                hops: p.hops,
                rtt: p.rtt,
                mtu: Some(p.mtu),
                expiry: Some(p.expiry),
                latency: p.latency,
                bandwidth_kbps: p.bandwidth_kbps,
            }
        }),
        path_switches: ep.switch_count(remote),
    }
}

/// The last path switch toward `remote` over a `link` ("route" or "client") since start.
fn last_switch(state: &ServerState, link: &'static str, remote: ScionAddr) -> Option<PathSwitch> {
    lock(&state.scion)
        .last_switch
        .get(&(link, remote))
        .map(switch)
}

/// Failover gap histograms per peer, for /metrics.
pub fn failover_gaps(state: &ServerState) -> Vec<super::metrics::FailoverGaps> {
    let mut gaps: Vec<_> = lock(&state.scion)
        .failover_gaps
        .iter()
        .map(|((link, remote), h)| (*link, remote.to_string(), h.clone()))
        .collect();
    gaps.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    gaps
}

/// The server's SCION endpoints, if any.
pub fn endpoints(state: &ServerState) -> Vec<Arc<ScionEndpoint>> {
    let links = lock(&state.scion);
    let mut eps: Vec<Arc<ScionEndpoint>> = Vec::new();
    for ep in [&links.route_endpoint, &links.client_endpoint]
        .into_iter()
        .flatten()
    {
        if !eps.iter().any(|e| Arc::ptr_eq(e, ep)) {
            eps.push(ep.clone());
        }
    }
    eps
}

/// The `"scion"` object of a client connected over SCION (its peer label
/// is the SCION address the client endpoint saw).
pub fn client_link(state: &ServerState, c: &ClientShared) -> Option<ScionLinkInfo> {
    let remote: ScionAddr = c.label.as_deref()?.parse().ok()?;
    let ep = lock(&state.scion).client_endpoint.clone()?;
    Some(link_info(&ep, remote))
}

/// `why_active` of a peer in our own AS: packets go to its host directly, with an empty
/// SCION path, so there are no paths to choose from (and that is not a fault).
pub const SAME_AS: &str = "same AS: straight to the host, no inter-AS path needed";

/// What `ep` knows of `remote` as a connected /pathz destination (callers adjust the rest).
fn dest(
    state: &ServerState,
    ep: &ScionEndpoint,
    remote: ScionAddr,
    link: &'static str,
    id: u64,
) -> PathzDest {
    PathzDest {
        remote: remote.to_string(),
        link,
        connected: true,
        id,
        remote_id: String::new(),
        path_switches: ep.switch_count(remote),
        switches_by_cause: by_cause(ep, remote),
        active: None,
        why_active: if remote.ia == ep.local_addr().ia {
            SAME_AS.to_string()
        } else {
            ep.why_active(remote).unwrap_or_default()
        },
        last_switch: last_switch(state, link, remote),
        outages: {
            let o = ep.outage_stats(remote);
            Outages {
                current: o.current,
                count: o.count,
                total: o.total,
            }
        },
        paths: ep.path_stats(remote).iter().map(candidate).collect(),
    }
}

/// /pathz destinations: one per route or client link carried over SCION
/// (none when the server has no SCION endpoint).
pub fn pathz_dests(state: &ServerState) -> Vec<PathzDest> {
    if endpoints(state).is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for r in state.cluster.routes() {
        let (peer, remote_id) = {
            let m = lock(&r.meta);
            (m.scion.clone(), m.remote_id.clone())
        };
        let Some(peer) = peer else { continue };
        let mut d = dest(state, &peer.endpoint, peer.remote, "route", r.shared.cid);
        d.remote_id = remote_id;
        // Only this connection's: a switch of an earlier one is not its history.
        d.last_switch = d.last_switch.filter(|w| w.at.0 >= r.shared.start);
        out.push(d);
    }
    // Configured SCION routes that are not up: what the dialler sees of their paths.
    let route_ep = lock(&state.scion).route_endpoint.clone();
    if let Some(ep) = route_ep {
        let opts = state.opts();
        for r in &opts.cluster.routes {
            let RouteTarget::Scion { isd_as, ip, port } = &r.target else {
                continue;
            };
            let Ok(remote) = crate::server::scion::scion_addr("cluster.routes", isd_as, *ip, *port)
            else {
                continue;
            };
            let text = remote.to_string();
            if out.iter().any(|d| d.link == "route" && d.remote == text) {
                continue;
            }
            let mut d = dest(state, &ep, remote, "route", 0);
            d.connected = false;
            out.push(d);
        }
    }
    let client_ep = lock(&state.scion).client_endpoint.clone();
    if let Some(ep) = client_ep {
        let clients: Vec<Arc<ClientShared>> = lock(&state.clients)
            .values()
            .filter(|c| c.kind == ConnKind::Client && c.label.is_some())
            .cloned()
            .collect();
        for c in clients {
            let Some(remote) = c.label.as_deref().and_then(|l| l.parse::<ScionAddr>().ok()) else {
                continue;
            };
            let mut d = dest(state, &ep, remote, "client", c.cid);
            d.last_switch = d.last_switch.filter(|w| w.at.0 >= c.start);
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use scion_transport::path::{PathFingerprint, PathInfo, PathInterface, PathState};

    #[test]
    fn candidate_conversion() {
        let ia = |s: &str| s.parse().unwrap_or_else(|e| panic!("{s}: {e:?}"));
        let info = PathInfo {
            fingerprint: PathFingerprint::from_u64(0xab),
            src: ia("1-ff00:0:110"),
            dst: ia("1-ff00:0:111"),
            interfaces: vec![
                PathInterface::new(ia("1-ff00:0:110"), 1),
                PathInterface::new(ia("1-ff00:0:111"), 7),
            ],
            mtu: 1472,
            expiry_unix_secs: 3600,
            latency: vec![Some(Duration::from_millis(11))],
            bandwidth_kbps: vec![Some(100_000)],
            dataplane: None,
        };
        let view = CandidateView {
            info,
            state: PathState::Alive,
            rtt: Some(Duration::from_micros(12_500)),
            rtt_var: None,
            loss: Some(0.25),
            reason: None,
            active: true,
            in_active_set: true,
            rank: Some(0),
            probes_sent: 8,
            probes_answered: 6,
            last_data_rx: None,
            probed: true,
            last_answer: Instant::now().checked_sub(Duration::from_secs(3)),
        };
        let c = candidate(&view);
        assert!(c.probed);
        assert!(
            c.rtt_age.is_some_and(|a| a >= Duration::from_secs(3)),
            "{:?}",
            c.rtt_age
        );
        assert_eq!(c.hops, vec!["1-ff00:0:110#1", "1-ff00:0:111#7"]);
        assert_eq!(c.state, "alive");
        assert!(c.fingerprint.starts_with("00000000000000ab"));
        assert_eq!(c.latency, Some(Duration::from_millis(11)));
        assert_eq!(c.bandwidth_kbps, Some(100_000));
        assert_eq!(c.loss, Some(GoFloat(0.25)));
        assert_eq!(c.expiry, GoTime(UNIX_EPOCH + Duration::from_secs(3600)));
    }
}
