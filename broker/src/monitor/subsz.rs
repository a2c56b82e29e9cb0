//! `/subsz` (nats-server `server/monitor.go` `Subsz`, `HandleSubsz`).

use std::time::SystemTime;

use serde::Serialize;

use super::gofmt::{GoFloat, GoTime};
use super::http::{decode_bool, decode_int, ParamError, Query};
use crate::proto::ConnKind;
use crate::server::{ServerState, Subscription};
use crate::sublist::{subject_matches, SublistStats};

/// nats-server `DefaultSubListSize`.
pub const DEFAULT_SUB_LIST_SIZE: i64 = 1024;
/// We have one account; nats-server names the global one `$G`.
pub const GLOBAL_ACCOUNT: &str = "$G";

/// One subscription (nats-server `SubDetail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qgroup: Option<String>,
    pub sid: String,
    pub msgs: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: i64,
    pub cid: u64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl SubDetail {
    /// nats-server `newClientSubDetail` (no account).
    pub fn of(sub: &Subscription) -> SubDetail {
        use std::sync::atomic::Ordering::Relaxed;
        SubDetail {
            account: None,
            subject: sub.subject.clone(),
            qgroup: sub.queue.clone(),
            sid: String::from_utf8_lossy(&sub.sid).into_owned(),
            msgs: sub.delivered.load(Relaxed).min(i64::MAX as u64) as i64,
            max: sub.max.load(Relaxed).min(i64::MAX as u64) as i64,
            cid: sub.client.cid,
        }
    }

    /// nats-server `newSubDetail` as saveClosedClient takes it for a closed
    /// connection: with the account, and no `max` (closeConnection zeroes
    /// it before the save).
    pub fn at_close(sub: &Subscription) -> SubDetail {
        SubDetail {
            account: Some(GLOBAL_ACCOUNT.to_string()),
            max: 0,
            ..SubDetail::of(sub)
        }
    }
}

/// nats-server `SublistStats` JSON.
#[derive(Debug, Clone, Serialize)]
pub struct StatsJson {
    pub num_subscriptions: u32,
    pub num_cache: u32,
    pub num_inserts: u64,
    pub num_removes: u64,
    pub num_matches: u64,
    pub cache_hit_rate: GoFloat,
    pub max_fanout: u32,
    pub avg_fanout: GoFloat,
}

impl From<&SublistStats> for StatsJson {
    fn from(s: &SublistStats) -> Self {
        StatsJson {
            num_subscriptions: s.num_subscriptions,
            num_cache: s.num_cache,
            num_inserts: s.num_inserts,
            num_removes: s.num_removes,
            num_matches: s.num_matches,
            cache_hit_rate: GoFloat(s.cache_hit_rate),
            max_fanout: s.max_fanout,
            avg_fanout: GoFloat(s.avg_fanout),
        }
    }
}

/// /subsz with a subscription list (nats-server `Subsz`).
#[derive(Debug, Serialize)]
pub struct SubszFull {
    pub server_id: String,
    pub now: GoTime,
    #[serde(flatten)]
    pub stats: StatsJson,
    pub total: usize,
    pub offset: i64,
    pub limit: i64,
    pub subscriptions_list: Vec<SubDetail>,
}

/// What /subsz answers: nats-server writes only the statistics when the
/// list is empty (`HandleSubsz`: `if len(st.Subs) == 0`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Subsz {
    Stats(StatsJson),
    Full(SubszFull),
}

/// Query options (nats-server `SubszOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubszOptions {
    pub subs: bool,
    pub offset: i64,
    pub limit: i64,
    pub test: String,
    /// `acc`: only this account's subscriptions (we have `$G` only).
    pub account: String,
}

/// Decodes the parameters in nats-server's order: subs, offset, limit, test, acc.
pub fn parse_options(q: &Query) -> Result<SubszOptions, ParamError> {
    Ok(SubszOptions {
        subs: decode_bool(q, "subs")?,
        offset: decode_int(q, "offset")?,
        limit: decode_int(q, "limit")?,
        test: q.get("test").to_string(),
        account: q.get("acc").to_string(),
    })
}

/// sublist.go IsValidLiteralSubject: no empty token and no `*` or `>` token (anything
/// else, spaces included, is taken).
fn go_valid_literal_subject(s: &str) -> bool {
    s.split('.').all(|t| !t.is_empty() && t != "*" && t != ">")
}

/// Builds /subsz at `now`.
pub fn subsz(state: &ServerState, o: &SubszOptions, now: SystemTime) -> Result<Subsz, ParamError> {
    let offset = o.offset.max(0);
    let limit = if o.limit <= 0 {
        DEFAULT_SUB_LIST_SIZE
    } else {
        o.limit
    };
    if !o.test.is_empty() && !go_valid_literal_subject(&o.test) {
        return Err(ParamError(format!(
            "invalid test subject, must be valid publish subject: {}",
            o.test
        )));
    }
    // monitor.go Subsz: accounts not named `acc` are left out; ours is `$G` alone.
    let other_account = !o.account.is_empty() && o.account != GLOBAL_ACCOUNT;
    let (stats, all) = if other_account {
        (SublistStats::default(), Vec::new())
    } else {
        let sl = state.sublist.read().unwrap_or_else(|e| e.into_inner());
        let all = if o.subs { sl.all() } else { Vec::new() };
        (sl.stats(), all)
    };
    let stats = StatsJson::from(&stats);
    if !o.subs {
        return Ok(Subsz::Stats(stats));
    }
    // Local subscriptions only, like nats-server `localSubs`; trie order.
    let details: Vec<SubDetail> = all
        .iter()
        .filter(|(_, _, s)| s.client.kind == ConnKind::Client)
        .filter(|(subject, _, _)| o.test.is_empty() || subject_matches(subject, &o.test))
        .map(|(_, _, s)| SubDetail {
            account: Some(GLOBAL_ACCOUNT.to_string()),
            ..SubDetail::of(s)
        })
        .collect();
    let lo = (offset as usize).min(details.len());
    let hi = (offset.saturating_add(limit) as usize).min(details.len());
    let page: Vec<SubDetail> = details[lo..hi].to_vec();
    if page.is_empty() {
        return Ok(Subsz::Stats(stats));
    }
    Ok(Subsz::Full(SubszFull {
        server_id: state.id.clone(),
        now: GoTime(now),
        stats,
        // nats-server sets `Total = len(sz.Subs)`: the size of this page.
        total: page.len(),
        offset,
        limit,
        subscriptions_list: page,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_json_fields_and_floats() {
        let s = SublistStats {
            num_subscriptions: 3,
            num_cache: 2,
            num_inserts: 3,
            num_removes: 0,
            num_matches: 5,
            cache_hit_rate: 0.6,
            max_fanout: 2,
            avg_fanout: 1.0,
        };
        let txt = serde_json::to_string(&Subsz::Stats(StatsJson::from(&s))).unwrap_or_default();
        assert_eq!(
            txt,
            r#"{"num_subscriptions":3,"num_cache":2,"num_inserts":3,"num_removes":0,"num_matches":5,"cache_hit_rate":0.6,"max_fanout":2,"avg_fanout":1}"#
        );
    }

    #[test]
    fn sub_detail_omits_empty_fields() {
        let d = SubDetail {
            account: None,
            subject: "foo".into(),
            qgroup: None,
            sid: "1".into(),
            msgs: 1,
            max: 0,
            cid: 5,
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap_or_default(),
            r#"{"subject":"foo","sid":"1","msgs":1,"cid":5}"#
        );
    }
}
