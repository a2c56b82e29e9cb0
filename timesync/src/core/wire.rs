//! Subjects, header names and payload formats shared by sources, followers and the CLI.
//!
//! Requests and replies are small JSON objects (self-describing, easy to inspect with
//! `nats sub`); the `time.system` beacon keeps the seed system's payload, the decimal count of
//! microseconds since the Unix epoch, and carries everything else in NATS headers
//! (`HPUB`, supported by nats-server since 2.2; see server/parser.go `HPUB`).

use super::{discipline::SyncState, engine::Tracking, WallNs};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Sources answer NTP-style requests on `time.sync.<source-id>`.
pub const SYNC_PREFIX: &str = "time.sync";
/// The beacon subject of the seed system (payload: decimal microseconds since the epoch).
pub const BEACON_SUBJECT: &str = "time.system";
/// Sources announce their quality on `time.announce.<source-id>`.
pub const ANNOUNCE_PREFIX: &str = "time.announce";
/// Followers publish their tracking status on `time.status.<follower-id>`.
pub const STATUS_PREFIX: &str = "time.status";

/// Beacon header: id of the publishing source.
pub const HDR_SOURCE: &str = "Timesync-Source";
/// Beacon header: per-epoch sequence number, starting at 1.
pub const HDR_SEQ: &str = "Timesync-Seq";
/// Beacon header: transmit time, nanoseconds since the Unix epoch (the payload has µs only).
pub const HDR_TX_NS: &str = "Timesync-Tx-Ns";
/// Beacon header: stratum of the source (1 = primary reference).
pub const HDR_STRATUM: &str = "Timesync-Stratum";
/// Beacon header: leap indicator as in RFC 5905 (0 none, 1 +1 s, 2 -1 s, 3 unsynchronised).
pub const HDR_LEAP: &str = "Timesync-Leap";
/// Beacon header: the source's epoch, the Unix time in ms at which this source instance
/// started; it changes on restart, so a sequence reset is not mistaken for loss.
pub const HDR_EPOCH: &str = "Timesync-Epoch";
/// Header the broker adds to messages forwarded over a SCION route: the path fingerprint.
/// Followers key their filter state by (source, this value).
pub const HDR_SCION_PATH: &str = "Nats-Scion-Path";
/// Reply header set by our sources: the `Nats-Scion-Path` the request arrived with. Each end
/// of a SCION route picks its own path, so the request may travel a path the reply does not;
/// a follower keys its filter by both legs (the broker replaces `Nats-Scion-Path` on every
/// SCION hop, so the request's value has to travel under another name).
pub const HDR_REQUEST_PATH: &str = "Timesync-Request-Path";

/// Wire format version carried in requests and replies.
pub const VERSION: u8 = 1;
/// Longest accepted source/follower id (ids are one NATS subject token).
pub const MAX_ID_LEN: usize = 64;

/// Errors decoding peer messages.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported wire version {0}")]
    Version(u8),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {name} has an invalid value {value:?}")]
    BadHeader { name: &'static str, value: String },
    #[error("payload is not a decimal microsecond count")]
    BadPayload,
}

/// Why an id cannot be used as a subject token.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("id is empty")]
    Empty,
    #[error("id is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    #[error("id {0:?} contains a character not allowed in a subject token (use A-Z a-z 0-9 - _)")]
    BadChar(String),
}

/// Ids become subject tokens, so they are restricted to a conservative character set (no
/// `.`, `*`, `>` or whitespace, which nats-server treats specially in subjects).
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::BadChar(id.to_string()));
    }
    Ok(())
}

pub fn sync_subject(source: &str) -> String {
    format!("{SYNC_PREFIX}.{source}")
}

pub fn announce_subject(source: &str) -> String {
    format!("{ANNOUNCE_PREFIX}.{source}")
}

pub fn status_subject(follower: &str) -> String {
    format!("{STATUS_PREFIX}.{follower}")
}

/// Follower -> source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub v: u8,
    pub nonce: u64,
    /// Follower transmit time (ns since the epoch), echoed back.
    pub t1: WallNs,
}

/// Source -> follower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReply {
    pub v: u8,
    pub nonce: u64,
    pub t1: WallNs,
    pub t2: WallNs,
    pub t3: WallNs,
    pub source: String,
    pub stratum: u8,
    pub leap: u8,
    /// Round-trip delay from the source to its own reference (0 for stratum 1), ns.
    pub root_delay_ns: i64,
    /// Error budget of the source relative to its reference, ns.
    pub root_dispersion_ns: i64,
    pub epoch: u64,
}

impl SyncRequest {
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let r: SyncRequest = serde_json::from_slice(bytes)?;
        if r.v != VERSION {
            return Err(WireError::Version(r.v));
        }
        Ok(r)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl SyncReply {
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let r: SyncReply = serde_json::from_slice(bytes)?;
        if r.v != VERSION {
            return Err(WireError::Version(r.v));
        }
        if r.leap > 3 {
            return Err(WireError::BadHeader {
                name: "leap",
                value: r.leap.to_string(),
            });
        }
        Ok(r)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Periodic quality announcement of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announce {
    pub id: String,
    pub subject: String,
    pub stratum: u8,
    pub priority: u8,
    pub leap: u8,
    pub root_delay_ns: i64,
    pub root_dispersion_ns: i64,
    pub epoch: u64,
    pub beacon_interval_ms: u64,
    pub uptime_s: u64,
    pub served: u64,
}

/// Status a follower publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowerStatus {
    pub id: String,
    /// The follower's address as its NATS server sees it.
    pub address: String,
    pub mode: String,
    pub tracking: Tracking,
    /// Follower clock minus this host's CLOCK_REALTIME, ns: ground truth for tests and benches
    /// that run source and follower on one host.
    pub host_offset_ns: i64,
    /// Host CLOCK_REALTIME when this status was taken, ns since the epoch.
    #[serde(default)]
    pub at_unix_ns: i64,
}

impl FollowerStatus {
    pub fn state(&self) -> SyncState {
        self.tracking.state
    }
}

/// A decoded `time.system` beacon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Beacon {
    pub micros: i64,
    pub source: Option<String>,
    pub seq: Option<u64>,
    pub tx_ns: Option<i64>,
    pub stratum: Option<u8>,
    pub leap: Option<u8>,
    pub epoch: Option<u64>,
}

/// Beacon payload: decimal microseconds since the epoch (the seed format).
pub fn beacon_payload(tx: WallNs) -> String {
    tx.div_euclid(1000).to_string()
}

/// Decode a beacon; `header` looks a header up by name. Headers are optional so beacons of the
/// seed publisher decode too, but a present header with a bad value is an error.
pub fn decode_beacon<'a>(
    payload: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<Beacon, WireError> {
    let text = std::str::from_utf8(payload).map_err(|_| WireError::BadPayload)?;
    let micros: i64 = text.trim().parse().map_err(|_| WireError::BadPayload)?;
    fn num<T: std::str::FromStr>(
        name: &'static str,
        v: Option<&str>,
    ) -> Result<Option<T>, WireError> {
        v.map(|s| {
            s.trim().parse().map_err(|_| WireError::BadHeader {
                name,
                value: s.to_string(),
            })
        })
        .transpose()
    }
    Ok(Beacon {
        micros,
        source: header(HDR_SOURCE).map(str::to_string),
        seq: num(HDR_SEQ, header(HDR_SEQ))?,
        tx_ns: num(HDR_TX_NS, header(HDR_TX_NS))?,
        stratum: num(HDR_STRATUM, header(HDR_STRATUM))?,
        leap: num(HDR_LEAP, header(HDR_LEAP))?,
        epoch: num(HDR_EPOCH, header(HDR_EPOCH))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_single_subject_tokens() {
        assert!(validate_id("src-1_a").is_ok());
        assert_eq!(validate_id(""), Err(IdError::Empty));
        assert!(matches!(validate_id("a.b"), Err(IdError::BadChar(_))));
        assert!(matches!(validate_id("a*"), Err(IdError::BadChar(_))));
        assert!(matches!(validate_id("a b"), Err(IdError::BadChar(_))));
        assert_eq!(validate_id(&"x".repeat(65)), Err(IdError::TooLong));
    }

    #[test]
    fn request_reply_round_trip_and_reject_garbage() {
        let r = SyncRequest {
            v: VERSION,
            nonce: 9,
            t1: -5,
        };
        assert_eq!(SyncRequest::decode(&r.encode()).unwrap(), r);
        assert!(SyncRequest::decode(b"{").is_err());
        assert!(SyncRequest::decode(b"{\"v\":2,\"nonce\":1,\"t1\":1}").is_err());
        let rep = SyncReply {
            v: VERSION,
            nonce: 9,
            t1: 1,
            t2: 2,
            t3: 3,
            source: "a".into(),
            stratum: 1,
            leap: 0,
            root_delay_ns: 0,
            root_dispersion_ns: 10,
            epoch: 77,
        };
        assert_eq!(SyncReply::decode(&rep.encode()).unwrap(), rep);
        let mut bad = rep.clone();
        bad.leap = 9;
        assert!(SyncReply::decode(&bad.encode()).is_err());
    }

    #[test]
    fn beacon_payload_is_seed_compatible() {
        assert_eq!(
            beacon_payload(1_700_000_000_123_456_789),
            "1700000000123456"
        );
        let b = decode_beacon(b"1700000000123456", |_| None).unwrap();
        assert_eq!(b.micros, 1_700_000_000_123_456);
        assert_eq!(b.seq, None);
        let b = decode_beacon(b"5", |h| match h {
            HDR_SOURCE => Some("s1"),
            HDR_SEQ => Some("3"),
            HDR_LEAP => Some("0"),
            _ => None,
        })
        .unwrap();
        assert_eq!(b.source.as_deref(), Some("s1"));
        assert_eq!(b.seq, Some(3));
        assert!(decode_beacon(b"x", |_| None).is_err());
        assert!(decode_beacon(b"5", |h| (h == HDR_SEQ).then_some("-1")).is_err());
    }
}
