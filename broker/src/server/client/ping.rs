//! The client ping timer's decision (client.go `processPingTimer`), kept
//! pure: it takes `now` as nanoseconds since server start.

use std::time::Duration;

/// Upper bound of the delay before a client's first PING (nats-server
/// `firstClientPingInterval`).
const FIRST_CLIENT_PING_INTERVAL: Duration = Duration::from_secs(2);
/// A PING is sent regardless of activity when the last one went out longer
/// ago than this (nats-server `DEFAULT_RTT_MEASUREMENT_INTERVAL`).
const RTT_MEASUREMENT_INTERVAL: Duration = Duration::from_secs(3600);

/// Times (nanoseconds since server start) the ping timer looks at.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PingClock {
    /// Last activity: CONNECT, a read with messages or (un)subscriptions, or
    /// messages delivered to the connection (client.go `c.last`).
    pub(super) last: u64,
    /// Last PING received from the client (`c.ping.last`).
    pub(super) ping_in: Option<u64>,
    /// Last PING we sent (`c.rttStart`).
    pub(super) rtt_start: Option<u64>,
    /// An RTT estimate exists (nats-server sets one at CONNECT).
    pub(super) rtt_known: bool,
    /// A CONNECT arrived: the timer starts over with the short first delay
    /// (client.go processConnect: clearPingTimer + setFirstPingTimer).
    pub(super) restart: bool,
}

/// Delay from a client's CONNECT to its first PING: min(ping_interval, 2 s)
/// plus `jitter` (a fraction in 0..0.2) of it (client.go setFirstPingTimer:
/// `d += rand.Int63n(d / 5)`). Before CONNECT the timer runs with the full
/// ping_interval, as armed by createClient (setPingTimer).
pub(super) fn first_ping_delay(interval: Duration, jitter: f64) -> Duration {
    let d = interval.min(FIRST_CLIENT_PING_INTERVAL);
    d + d.mul_f64(jitter.clamp(0.0, 0.2))
}

/// Why the ping timer does not send a PING this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PingSkip {
    /// Client activity this long ago.
    Activity(Duration),
    /// The client's own PING this long ago.
    RemotePing(Duration),
}

/// client.go `processPingTimer` for a CLIENT: no PING is needed when the
/// connection had activity, or the client pinged us, within the interval,
/// unless an RTT measurement is due (none yet, or the last PING we sent is
/// over an hour old). Pure: `now` is nanoseconds since server start.
pub(super) fn ping_skip(now: u64, c: &PingClock, interval: Duration) -> Option<PingSkip> {
    let hour = RTT_MEASUREMENT_INTERVAL.as_nanos() as u64;
    let need_rtt = !c.rtt_known || c.rtt_start.is_none_or(|t| now.saturating_sub(t) > hour);
    if need_rtt {
        return None;
    }
    let iv = interval.as_nanos() as u64;
    let since = |t: u64| now.saturating_sub(t);
    if since(c.last) < iv {
        return Some(PingSkip::Activity(Duration::from_nanos(since(c.last))));
    }
    match c.ping_in {
        Some(p) if since(p) < iv => Some(PingSkip::RemotePing(Duration::from_nanos(since(p)))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn clock(last: u64, ping_in: Option<u64>, rtt_start: Option<u64>) -> PingClock {
        PingClock {
            last,
            ping_in,
            rtt_start,
            rtt_known: true,
            restart: false,
        }
    }

    #[test]
    fn first_ping_delay_is_short_and_jittered() {
        let s = Duration::from_secs;
        assert_eq!(first_ping_delay(s(120), 0.0), s(2));
        assert_eq!(first_ping_delay(s(120), 0.1), Duration::from_millis(2200));
        // A short ping_interval is the base itself.
        assert_eq!(first_ping_delay(s(1), 0.0), s(1));
        assert_eq!(first_ping_delay(s(1), 0.5), Duration::from_millis(1200));
    }

    #[test]
    fn first_ping_always_goes_out() {
        let iv = Duration::from_secs(1);
        // No PING sent yet: an RTT sample is due even if busy.
        assert_eq!(ping_skip(2 * S, &clock(2 * S, None, None), iv), None);
        // No CONNECT yet (no RTT estimate).
        let mut c = clock(2 * S, None, Some(S));
        c.rtt_known = false;
        assert_eq!(ping_skip(2 * S, &c, iv), None);
    }

    #[test]
    fn activity_or_remote_ping_delays() {
        let iv = Duration::from_secs(1);
        let now = 10 * S;
        let busy = clock(now - S / 5, None, Some(5 * S));
        assert_eq!(
            ping_skip(now, &busy, iv),
            Some(PingSkip::Activity(Duration::from_millis(200)))
        );
        let pinged = clock(0, Some(now - S / 2), Some(5 * S));
        assert_eq!(
            ping_skip(now, &pinged, iv),
            Some(PingSkip::RemotePing(Duration::from_millis(500)))
        );
        // Exactly one interval ago is no longer recent (Go: delta < interval).
        assert_eq!(
            ping_skip(now, &clock(now - S, Some(now - S), Some(5 * S)), iv),
            None
        );
        // An hour after the last PING we sent, one goes out regardless.
        let hour = 3600 * S;
        let stale_rtt = clock(hour + 2 * S, None, Some(S));
        assert_eq!(ping_skip(hour + 2 * S + 1, &stale_rtt, iv), None);
    }
}
