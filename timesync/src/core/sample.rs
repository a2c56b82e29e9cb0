//! One NTP-style four-timestamp exchange turned into an offset/delay sample.
//!
//! RFC 5905 section 8: `offset = ((t2 - t1) + (t3 - t4)) / 2`,
//! `delay = (t4 - t1) - (t3 - t2)`, where t1/t4 are the follower's transmit/receive times and
//! t2/t3 the source's receive/transmit times. The sanity checks are the ones of RFC 5905
//! section 8 ("bogus" / "duplicate" / origin-timestamp checks) adapted to request/reply: the
//! reply must echo our nonce and our t1, the source may not transmit before it received, and
//! the round-trip delay must be positive and plausible.

use super::{MonoNs, WallNs, NS_PER_S};
use thiserror::Error;

/// Largest round-trip delay accepted (RFC 5905 `MAXDISP` is 16 s; a NATS request that took
/// longer than this is useless for timekeeping anyway).
pub const MAX_DELAY_NS: i128 = 16_000_000_000;

/// Largest offset accepted, 200 years: far more than any clock can be off (an RTC reset to
/// 1970 is 56 years), while larger values (a hostile or broken source's timestamps near the
/// ends of i64, which spans ±292 years) would overflow the clocks' arithmetic when applied.
pub const MAX_OFFSET_NS: i128 = 200 * 365 * 86_400 * 1_000_000_000;

/// What the follower recorded when it sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outstanding {
    pub nonce: u64,
    /// Follower clock when the request left.
    pub t1: WallNs,
}

/// What the source put in its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTimes {
    pub nonce: u64,
    /// The t1 the source saw in the request (echoed back).
    pub t1_echo: WallNs,
    /// Source clock when the request arrived.
    pub t2: WallNs,
    /// Source clock when the reply left.
    pub t3: WallNs,
}

/// A validated measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Source clock minus follower clock, seconds (positive: the follower is behind).
    pub offset: f64,
    /// Round-trip delay excluding the source's processing time, seconds.
    pub delay: f64,
    /// Local monotonic time at which the reply was received.
    pub mono: MonoNs,
    /// The engine's cumulative clock correction at `mono` (seconds), so an older sample can be
    /// aged to "now" after the clock has been slewed or stepped in between.
    pub correction: f64,
}

/// Why an exchange was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SampleError {
    #[error("reply nonce {got} does not match the request nonce {want}")]
    NonceMismatch { want: u64, got: u64 },
    #[error("reply echoes origin timestamp {got}, we sent {want}")]
    OriginMismatch { want: WallNs, got: WallNs },
    #[error("source transmit time precedes its receive time (t3 < t2)")]
    SourceTimeReversed,
    #[error("offset {offset_ns} ns is beyond 200 years: not a clock this follower can track")]
    OffsetTooLarge { offset_ns: i128 },
    #[error("round-trip delay {delay_ns} ns is not positive")]
    NonPositiveDelay { delay_ns: i128 },
    #[error("round-trip delay {delay_ns} ns exceeds the 16 s limit")]
    DelayTooLarge { delay_ns: i128 },
}

/// Validate an exchange and compute offset and delay. `t4` is the follower clock at receipt,
/// `mono` the monotonic receipt time and `correction` the engine's cumulative correction then.
pub fn measure(
    sent: Outstanding,
    reply: ReplyTimes,
    t4: WallNs,
    mono: MonoNs,
    correction: f64,
) -> Result<Sample, SampleError> {
    if reply.nonce != sent.nonce {
        return Err(SampleError::NonceMismatch {
            want: sent.nonce,
            got: reply.nonce,
        });
    }
    if reply.t1_echo != sent.t1 {
        return Err(SampleError::OriginMismatch {
            want: sent.t1,
            got: reply.t1_echo,
        });
    }
    if reply.t3 < reply.t2 {
        return Err(SampleError::SourceTimeReversed);
    }
    // i128: the timestamps come from the peer and may be anything; no overflow possible.
    let (t1, t2, t3, t4) = (
        sent.t1 as i128,
        reply.t2 as i128,
        reply.t3 as i128,
        t4 as i128,
    );
    let delay_ns = (t4 - t1) - (t3 - t2);
    if delay_ns <= 0 {
        return Err(SampleError::NonPositiveDelay { delay_ns });
    }
    if delay_ns > MAX_DELAY_NS {
        return Err(SampleError::DelayTooLarge { delay_ns });
    }
    let offset2_ns = (t2 - t1) + (t3 - t4);
    if offset2_ns.abs() > 2 * MAX_OFFSET_NS {
        return Err(SampleError::OffsetTooLarge {
            offset_ns: offset2_ns / 2,
        });
    }
    Ok(Sample {
        offset: offset2_ns as f64 / 2.0 / NS_PER_S,
        delay: delay_ns as f64 / NS_PER_S,
        mono,
        correction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out() -> Outstanding {
        Outstanding {
            nonce: 7,
            t1: 1_000_000_000,
        }
    }

    #[test]
    fn timestamps_near_the_ends_of_i64_are_refused() {
        let far = i64::MAX - 1_000_000_000;
        let reply = ReplyTimes {
            nonce: 7,
            t1_echo: out().t1,
            t2: far,
            t3: far,
        };
        assert!(matches!(
            measure(out(), reply, out().t1 + 1_000_000, 0, 0.0),
            Err(SampleError::OffsetTooLarge { .. })
        ));
        // A clock reset to 1970, 56 years behind, still gets a sample.
        let t2 = out().t1 + 56 * 365 * 86_400 * 1_000_000_000;
        let reply = ReplyTimes {
            t2,
            t3: t2,
            ..reply
        };
        let s = measure(out(), reply, out().t1 + 1_000_000, 0, 0.0).expect("sample");
        assert!(s.offset > 55.0 * 365.0 * 86_400.0, "{s:?}");
    }

    #[test]
    fn offset_and_delay_follow_rfc5905() {
        // Source is 5 ms ahead; 10 ms each way; 1 ms processing.
        let r = ReplyTimes {
            nonce: 7,
            t1_echo: 1_000_000_000,
            t2: 1_015_000_000,
            t3: 1_016_000_000,
        };
        let s = measure(out(), r, 1_021_000_000, 42, 0.0).unwrap();
        assert!((s.offset - 0.005).abs() < 1e-12, "{}", s.offset);
        assert!((s.delay - 0.020).abs() < 1e-12, "{}", s.delay);
        assert_eq!(s.mono, 42);
    }

    #[test]
    fn rejects_wrong_nonce_and_origin() {
        let mut r = ReplyTimes {
            nonce: 8,
            t1_echo: 1_000_000_000,
            t2: 1_000_000_100,
            t3: 1_000_000_200,
        };
        assert!(matches!(
            measure(out(), r, 1_000_001_000, 0, 0.0),
            Err(SampleError::NonceMismatch { .. })
        ));
        r.nonce = 7;
        r.t1_echo = 5;
        assert!(matches!(
            measure(out(), r, 1_000_001_000, 0, 0.0),
            Err(SampleError::OriginMismatch { .. })
        ));
    }

    #[test]
    fn rejects_reversed_source_time_and_bad_delay() {
        let r = ReplyTimes {
            nonce: 7,
            t1_echo: 1_000_000_000,
            t2: 1_000_000_300,
            t3: 1_000_000_200,
        };
        assert_eq!(
            measure(out(), r, 1_000_001_000, 0, 0.0),
            Err(SampleError::SourceTimeReversed)
        );
        // Source claims to have held the request longer than the whole round trip.
        let r = ReplyTimes {
            nonce: 7,
            t1_echo: 1_000_000_000,
            t2: 1_000_000_000,
            t3: 1_000_002_000,
        };
        assert!(matches!(
            measure(out(), r, 1_000_001_000, 0, 0.0),
            Err(SampleError::NonPositiveDelay { .. })
        ));
        let r = ReplyTimes {
            nonce: 7,
            t1_echo: 1_000_000_000,
            t2: 1_000_000_000,
            t3: 1_000_000_000,
        };
        assert!(matches!(
            measure(out(), r, 1_000_000_000 + 20_000_000_000, 0, 0.0),
            Err(SampleError::DelayTooLarge { .. })
        ));
    }

    #[test]
    fn extreme_peer_timestamps_do_not_overflow() {
        let r = ReplyTimes {
            nonce: 7,
            t1_echo: 1_000_000_000,
            t2: i64::MIN,
            t3: i64::MAX,
        };
        assert!(measure(out(), r, i64::MAX, 0, 0.0).is_err());
    }
}
