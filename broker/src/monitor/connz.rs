//! `/connz` (nats-server `server/monitor.go` `Connz`, `HandleConnz`, and
//! `monitor_sort_opts.go`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::gofmt::{my_uptime, rtt_string, GoTime};
use super::http::{
    decode_bool, decode_int, decode_state, decode_subs, decode_uint64, ConnState, ParamError,
    Query, SubsLevel,
};
use super::routez::ScionLinkInfo;
use super::subsz::SubDetail;
use crate::proto::ConnKind;
use crate::server::client::ConnSnapshot;
use crate::server::{lock, ClientShared, ServerState};

/// nats-server `DefaultConnListSize`.
pub const DEFAULT_CONN_LIST_SIZE: i64 = 1024;

/// Sort orders (nats-server 2.9.10 `SortOpt`; `rtt` came with 2.10 and is refused
/// here as there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOpt {
    Cid,
    Start,
    Subs,
    Pending,
    MsgsTo,
    MsgsFrom,
    BytesTo,
    BytesFrom,
    Last,
    Idle,
    Uptime,
    Stop,
    Reason,
}

impl SortOpt {
    /// `""` is the default (cid); unknown names give nats-server's error.
    pub fn parse(s: &str) -> Result<SortOpt, ParamError> {
        Ok(match s {
            "" | "cid" => SortOpt::Cid,
            "start" => SortOpt::Start,
            "subs" => SortOpt::Subs,
            "pending" => SortOpt::Pending,
            "msgs_to" => SortOpt::MsgsTo,
            "msgs_from" => SortOpt::MsgsFrom,
            "bytes_to" => SortOpt::BytesTo,
            "bytes_from" => SortOpt::BytesFrom,
            "last" => SortOpt::Last,
            "idle" => SortOpt::Idle,
            "uptime" => SortOpt::Uptime,
            "stop" => SortOpt::Stop,
            "reason" => SortOpt::Reason,
            _ => return Err(ParamError(format!("invalid sorting option: {s}"))),
        })
    }
}

/// Query options (nats-server `ConnzOptions`), decoded but not validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnzOptions {
    pub sort: String,
    pub auth: bool,
    pub subs: SubsLevel,
    pub offset: i64,
    pub limit: i64,
    pub cid: u64,
    pub state: ConnState,
    pub user: String,
    /// `acc`: every client is in the global account `$G` here; any other name
    /// matches no account (nats-server then answers an empty document).
    pub account: String,
    /// `mqtt_client`: we have no MQTT clients, so any value matches none.
    pub mqtt_client: String,
}

/// Decodes in nats-server `HandleConnz` order: auth, subs, offset, limit,
/// cid, state (the first bad one is reported).
pub fn parse_options(q: &Query) -> Result<ConnzOptions, ParamError> {
    Ok(ConnzOptions {
        sort: q.get("sort").to_string(),
        auth: decode_bool(q, "auth")?,
        subs: decode_subs(q)?,
        offset: decode_int(q, "offset")?,
        limit: decode_int(q, "limit")?,
        cid: decode_uint64(q, "cid")?,
        state: decode_state(q)?,
        user: q.get("user").to_string(),
        account: q.get("acc").to_string(),
        mqtt_client: q.get("mqtt_client").to_string(),
    })
}

/// The /connz document.
#[derive(Debug, Serialize)]
pub struct Connz {
    pub server_id: String,
    pub now: GoTime,
    pub num_connections: usize,
    pub total: usize,
    pub offset: i64,
    pub limit: i64,
    /// `null` for an unknown `acc` (monitor.go returns its bare document).
    pub connections: Option<Vec<ConnInfo>>,
}

/// One connection (nats-server `ConnInfo`; TLS, JWT, account and MQTT
/// fields are never set here because we have none of those).
#[derive(Debug, Clone, Serialize)]
pub struct ConnInfo {
    pub cid: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub kind: &'static str,
    #[serde(rename = "type", skip_serializing_if = "str::is_empty")]
    pub conn_type: &'static str,
    pub ip: String,
    pub port: u16,
    pub start: GoTime,
    pub last_activity: GoTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<GoTime>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rtt: String,
    pub uptime: String,
    pub idle: String,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_cipher_suite: String,
    /// With `auth=true` (monitor.go fill: `auth && len(cs.PeerCertificates) > 0`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_peer_certs: Vec<crate::server::peer_cert::PeerCert>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authorized_user: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list_detail: Vec<SubDetail>,
    /// Our addition for clients connected over SCION: peer address, active
    /// path, path switches (absent for TCP clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scion: Option<ScionLinkInfo>,
    /// Sort key only.
    #[serde(skip)]
    pub rtt_raw: Duration,
}

/// nats-server `kindString` / `clientTypeString`.
fn kind_names(kind: ConnKind) -> (&'static str, &'static str) {
    match kind {
        ConnKind::Client => ("Client", "nats"),
        ConnKind::Route => ("Router", ""),
    }
}

/// A row from a snapshot. `now` is the request time for open connections;
/// closed ones are measured at their stop time, as nats-server fills
/// closed entries when they close (`saveClosedClient`).
fn row(s: &ConnSnapshot, now: SystemTime, auth: bool) -> ConnInfo {
    let (kind, mut conn_type) = kind_names(s.kind);
    if s.websocket {
        conn_type = "websocket";
    }
    // A connection that never sent anything was last active when it started
    // (nats-server sets `c.last = c.start`).
    let last = s.last_activity.max(s.start);
    let at = s.stop.unwrap_or(now);
    let since = |t: SystemTime| at.duration_since(t).unwrap_or_default();
    ConnInfo {
        cid: s.cid,
        kind,
        conn_type,
        ip: s.ip.clone(),
        port: s.port,
        start: GoTime(s.start),
        last_activity: GoTime(last),
        stop: s.stop.map(GoTime),
        reason: s.reason.map(|r| r.as_str()).unwrap_or(""),
        rtt: rtt_string(s.rtt),
        uptime: my_uptime(since(s.start)),
        idle: my_uptime(since(last)),
        pending_bytes: s.pending_bytes,
        in_msgs: s.in_msgs,
        out_msgs: s.out_msgs,
        in_bytes: s.in_bytes,
        out_bytes: s.out_bytes,
        subscriptions: s.subscriptions.min(u32::MAX as usize) as u32,
        name: s.name.clone(),
        lang: s.lang.clone(),
        version: s.version.clone(),
        tls_version: s.tls.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
        tls_cipher_suite: s.tls.as_ref().map(|t| t.1.clone()).unwrap_or_default(),
        // monitor.go makePeerCerts, when the request asks for auth.
        tls_peer_certs: if auth {
            crate::server::peer_cert::peer_certs(s.tls_peer_der.iter().map(Vec::as_slice))
        } else {
            Vec::new()
        },
        // client.go getRawAuthUser: the nkey, else the user name, else the token as given.
        authorized_user: if auth {
            s.nkey
                .clone()
                .or_else(|| s.user.clone())
                .or_else(|| s.token.clone())
                .unwrap_or_default()
        } else {
            String::new()
        },
        subscriptions_list: Vec::new(),
        subscriptions_list_detail: Vec::new(),
        scion: None,
        rtt_raw: s.rtt.unwrap_or_default(),
    }
}

fn open_row(state: &ServerState, c: &ClientShared, o: &ConnzOptions, now: SystemTime) -> ConnInfo {
    let mut r = row(&c.snapshot(state, None), now, o.auth);
    // No RTT yet: measure one for the next request (nats-server `getRTT`).
    if r.rtt_raw.is_zero() {
        c.request_rtt();
    }
    r.scion = super::scion_view::client_link(state, c);
    if o.subs != SubsLevel::None {
        let mut details: Vec<SubDetail> =
            lock(&c.subs).values().map(|s| SubDetail::of(s)).collect();
        details.sort_by(|a, b| a.sid.cmp(&b.sid));
        if o.subs == SubsLevel::Detail {
            r.subscriptions_list_detail = details;
        } else {
            r.subscriptions_list = details.into_iter().map(|d| d.subject).collect();
        }
    }
    r
}

fn closed_row(s: &ConnSnapshot, o: &ConnzOptions, now: SystemTime) -> ConnInfo {
    // No peer certificates: closed snapshots keep none (server.go saveClosedClient fills the
    // saved row with auth off).
    let mut r = row(s, now, o.auth);
    // nats-server monitor.go Connz: a closed client's saved `SubDetail`s
    // (with the account) for `subs=detail`, their subjects for `subs=1`.
    match o.subs {
        SubsLevel::None => {}
        SubsLevel::Detail => r.subscriptions_list_detail = s.subs.clone(),
        SubsLevel::Subjects => {
            r.subscriptions_list = s.subs.iter().map(|d| d.subject.clone()).collect()
        }
    }
    r
}

/// Builds /connz at `now` (nats-server `Server.Connz`).
pub fn connz(state: &ServerState, o: &ConnzOptions, now: SystemTime) -> Result<Connz, ParamError> {
    let sort = SortOpt::parse(&o.sort)?;
    let offset = o.offset.max(0);
    let mut limit = if o.limit <= 0 {
        DEFAULT_CONN_LIST_SIZE
    } else {
        o.limit
    };
    if sort == SortOpt::Stop && o.state != ConnState::Closed {
        return Err(ParamError(
            "sort by stop only valid on closed connections".into(),
        ));
    }
    if sort == SortOpt::Reason && o.state != ConnState::Closed {
        return Err(ParamError(
            "sort by reason only valid on closed connections".into(),
        ));
    }
    if o.cid > 0 {
        limit = 1;
    }
    if !o.account.is_empty() && o.account != "$G" {
        // monitor.go Connz: lookupAccount fails, and the document built so far goes
        // out: no server id, no counts, `connections: null`.
        return Ok(Connz {
            server_id: String::new(),
            now: GoTime(now),
            num_connections: 0,
            total: 0,
            offset,
            limit,
            connections: None,
        });
    }
    let want_open = o.state != ConnState::Closed;
    let want_closed = o.state != ConnState::Open;

    let open: Vec<Arc<ClientShared>> = if want_open {
        lock(&state.clients)
            .values()
            .filter(|c| c.kind == ConnKind::Client)
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    // nats-server never records `$G` as a closed client's account (server.go
    // saveClosedClient), so `acc=$G` finds open connections only.
    let closed: Vec<ConnSnapshot> = if want_closed && o.account.is_empty() {
        lock(&state.closed)
            .iter()
            .filter(|c| c.snapshot.kind == ConnKind::Client)
            .map(|c| c.snapshot.clone())
            .collect()
    } else {
        Vec::new()
    };
    // nats-server reports the unfiltered count of the requested state.
    let total = open.len() + closed.len();

    let user_ok = |u: &Option<String>| o.user.is_empty() || u.as_deref() == Some(o.user.as_str());
    let cid_ok = |cid: u64| (o.cid == 0 || cid == o.cid) && o.mqtt_client.is_empty();
    let mut rows: Vec<ConnInfo> = Vec::new();
    for c in &open {
        if !cid_ok(c.cid) {
            continue;
        }
        if !o.user.is_empty() && !user_ok(&lock(&c.meta).user) {
            continue;
        }
        rows.push(open_row(state, c, o, now));
    }
    for s in &closed {
        if cid_ok(s.cid) && user_ok(&s.user) {
            rows.push(closed_row(s, o, now));
        }
    }
    sort_rows(&mut rows, sort, now);

    let lo = (offset as usize).min(rows.len());
    let hi = (offset.saturating_add(limit) as usize).min(rows.len());
    let page: Vec<ConnInfo> = rows.drain(lo..hi).collect();
    Ok(Connz {
        server_id: state.id.clone(),
        now: GoTime(now),
        num_connections: page.len(),
        total,
        offset,
        limit,
        connections: Some(page),
    })
}

/// Sorts like nats-server: cid/start ascending, uptime ascending, reason
/// ascending, everything else descending. Ties keep cid order. `idle` is
/// 2.9.10's: last activity minus start, largest first (monitor_sort_opts.go
/// byIdle; 2.10 changed it to the time since last activity).
pub fn sort_rows(rows: &mut [ConnInfo], sort: SortOpt, now: SystemTime) {
    rows.sort_by_key(|r| r.cid);
    let up = |r: &ConnInfo| {
        let end = r.stop.map(|s| s.0).unwrap_or(now);
        end.duration_since(r.start.0).unwrap_or_default()
    };
    let idle = |r: &ConnInfo| {
        // Go subtracts Times: a last activity before the start (none yet) is negative.
        let (last, start) = (r.last_activity.0, r.start.0);
        match last.duration_since(start) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        }
    };
    use std::cmp::Reverse;
    match sort {
        SortOpt::Cid | SortOpt::Start => {}
        SortOpt::Subs => rows.sort_by_key(|r| Reverse(r.subscriptions)),
        SortOpt::Pending => rows.sort_by_key(|r| Reverse(r.pending_bytes)),
        SortOpt::MsgsTo => rows.sort_by_key(|r| Reverse(r.out_msgs)),
        SortOpt::MsgsFrom => rows.sort_by_key(|r| Reverse(r.in_msgs)),
        SortOpt::BytesTo => rows.sort_by_key(|r| Reverse(r.out_bytes)),
        SortOpt::BytesFrom => rows.sort_by_key(|r| Reverse(r.in_bytes)),
        SortOpt::Last => rows.sort_by_key(|r| Reverse(r.last_activity)),
        SortOpt::Idle => rows.sort_by_key(|r| Reverse(idle(r))),
        SortOpt::Uptime => rows.sort_by_key(|r| up(r)),
        SortOpt::Stop => rows.sort_by_key(|r| Reverse(r.stop)),
        SortOpt::Reason => rows.sort_by_key(|r| r.reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn snap(cid: u64) -> ConnSnapshot {
        ConnSnapshot {
            cid,
            kind: ConnKind::Client,
            ip: "127.0.0.1".into(),
            port: 40000 + cid as u16,
            start: t(1000 + cid),
            last_activity: t(1000 + cid * 10),
            stop: None,
            reason: None,
            rtt: Some(Duration::from_micros(100 * cid)),
            pending_bytes: (cid as usize * 7) % 5,
            in_msgs: cid * 3 % 4,
            out_msgs: 10 - cid,
            in_bytes: cid,
            out_bytes: 100 - cid,
            subscriptions: (cid % 3) as usize,
            subs: ["a", "b"]
                .iter()
                .enumerate()
                .map(|(i, subject)| SubDetail {
                    account: Some("$G".into()),
                    subject: subject.to_string(),
                    qgroup: None,
                    sid: (i + 1).to_string(),
                    msgs: 0,
                    max: 0,
                    cid,
                })
                .collect(),
            name: String::new(),
            lang: String::new(),
            version: String::new(),
            tls: None,
            tls_peer_der: Vec::new(),
            user: Some(format!("u{cid}")),
            token: None,
            nkey: None,
            websocket: false,
        }
    }

    fn opts() -> ConnzOptions {
        parse_options(&Query::parse("")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn order(sort: SortOpt) -> Vec<u64> {
        let now = t(2000);
        let mut rows: Vec<ConnInfo> = [3u64, 1, 4, 2]
            .iter()
            .map(|&c| row(&snap(c), now, false))
            .collect();
        sort_rows(&mut rows, sort, now);
        rows.iter().map(|r| r.cid).collect()
    }

    #[test]
    fn sort_orders() {
        assert_eq!(order(SortOpt::Cid), vec![1, 2, 3, 4]);
        assert_eq!(order(SortOpt::Start), vec![1, 2, 3, 4]);
        assert_eq!(order(SortOpt::MsgsTo), vec![1, 2, 3, 4]);
        assert_eq!(order(SortOpt::BytesFrom), vec![4, 3, 2, 1]);
        // subs: 1,2,0,1 for cids 1..4 -> 2 first, ties by cid.
        assert_eq!(order(SortOpt::Subs), vec![2, 1, 4, 3]);
        assert_eq!(order(SortOpt::Last), vec![4, 3, 2, 1]);
        // idle (2.9.10) = last - start, largest first: 9 s × cid.
        assert_eq!(order(SortOpt::Idle), vec![4, 3, 2, 1]);
        // uptime ascending: the newest (cid 4) first.
        assert_eq!(order(SortOpt::Uptime), vec![4, 3, 2, 1]);
        assert_eq!(
            SortOpt::parse("rtt").unwrap_err().0,
            "invalid sorting option: rtt"
        );
    }

    #[test]
    fn closed_rows_measure_at_stop() {
        let mut s = snap(1);
        s.stop = Some(t(1071));
        s.reason = Some(crate::server::ClosedState::StaleConnection);
        let r = closed_row(
            &s,
            &ConnzOptions {
                subs: SubsLevel::Subjects,
                ..opts()
            },
            t(9999),
        );
        assert_eq!(r.uptime, "1m10s");
        assert_eq!(r.idle, "1m1s");
        assert_eq!(r.reason, "Stale Connection");
        assert_eq!(r.subscriptions_list, vec!["a", "b"]);
        assert!(r.subscriptions_list_detail.is_empty());
        let d = closed_row(
            &s,
            &ConnzOptions {
                subs: SubsLevel::Detail,
                ..opts()
            },
            t(9999),
        );
        assert!(d.subscriptions_list.is_empty());
        assert_eq!(d.subscriptions_list_detail, s.subs);
        let v = serde_json::to_value(&r).unwrap_or_default();
        assert_eq!(v["rtt"], "100µs");
        assert_eq!(v["kind"], "Client");
        assert_eq!(v["type"], "nats");
        assert!(v.get("authorized_user").is_none());
        assert!(v.get("rtt_raw").is_none());
    }

    #[test]
    fn never_active_connection_was_last_active_at_start() {
        let mut s = snap(2);
        s.last_activity = t(5);
        let r = row(&s, t(1062), true);
        assert_eq!(r.last_activity, GoTime(s.start));
        assert_eq!(r.idle, "1m0s");
        assert_eq!(r.authorized_user, "u2");
    }

    #[test]
    fn sort_parse_errors_like_nats_server() {
        assert_eq!(
            SortOpt::parse("foo").unwrap_err().0,
            "invalid sorting option: foo"
        );
        assert_eq!(SortOpt::parse(""), Ok(SortOpt::Cid));
        assert_eq!(SortOpt::parse("bytes_to"), Ok(SortOpt::BytesTo));
    }

    #[test]
    fn options_decode_order() {
        // auth is decoded before limit, so its error wins.
        let e = parse_options(&Query::parse("limit=x&auth=y")).unwrap_err();
        assert!(e.0.starts_with("Error decoding boolean for 'auth'"));
        let o = parse_options(&Query::parse("subs=detail&state=closed&cid=4&user=bob"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.subs, SubsLevel::Detail);
        assert_eq!(o.state, ConnState::Closed);
        assert_eq!(o.cid, 4);
        assert_eq!(o.user, "bob");
    }
}
