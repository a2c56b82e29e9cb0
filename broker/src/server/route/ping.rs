//! The route ping timer's decision (nats-server 2.9.10 client.go
//! `processPingTimer` for a ROUTER connection), kept pure: times are
//! nanoseconds since server start, passed in by the caller.

use std::time::Duration;

/// A PING is sent regardless of activity when the last one went out longer
/// ago than this (nats-server `DEFAULT_RTT_MEASUREMENT_INTERVAL`).
const RTT_MEASUREMENT_INTERVAL: Duration = Duration::from_secs(3600);

/// What the ping timer looks at, besides the connection's last activity.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PingClock {
    /// Last PING received from the peer (`c.ping.last`).
    pub(super) ping_in: Option<u64>,
    /// Last PING we sent (`c.rttStart`).
    pub(super) rtt_start: Option<u64>,
    /// A PONG arrived, so an RTT is known (processPong sets `c.rtt`).
    pub(super) rtt_known: bool,
    /// PINGs sent without a PONG since (`c.ping.out`).
    pub(super) pings_out: u32,
}

/// What the ping timer does this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PingAction {
    /// Activity (messages or interest in either direction) this long ago.
    SkipActivity(Duration),
    /// The peer's own PING this long ago.
    SkipRemotePing(Duration),
    /// `ping_max` PINGs are unanswered: close as a Stale Connection.
    Stale,
    /// Send a PING.
    Send,
}

/// client.go `processPingTimer` for a route: no PING is needed when the
/// route had activity (`last`: client.go readLoop sets `c.last` after a
/// read with routed messages or RS+/RS-/LS+/LS-, flushClients after
/// messages were queued to the route), or the peer pinged us, within the
/// interval, unless an RTT measurement is due (no PONG yet, or the last PING
/// we sent is over an hour old). When a PING is due and `ping_max` are
/// already out (`c.ping.out+1 > MaxPingsOut`), the route is stale.
pub(super) fn ping_action(
    now: u64,
    last: u64,
    c: &PingClock,
    interval: Duration,
    ping_max: u32,
) -> PingAction {
    let hour = RTT_MEASUREMENT_INTERVAL.as_nanos() as u64;
    let since = |t: u64| now.saturating_sub(t);
    let need_rtt = !c.rtt_known || c.rtt_start.is_none_or(|t| since(t) > hour);
    if !need_rtt {
        let iv = interval.as_nanos() as u64;
        if since(last) < iv {
            return PingAction::SkipActivity(Duration::from_nanos(since(last)));
        }
        if let Some(p) = c.ping_in.filter(|p| since(*p) < iv) {
            return PingAction::SkipRemotePing(Duration::from_nanos(since(p)));
        }
    }
    if c.pings_out + 1 > ping_max {
        return PingAction::Stale;
    }
    PingAction::Send
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const IV: Duration = Duration::from_secs(1);

    fn answered() -> PingClock {
        PingClock {
            ping_in: None,
            rtt_start: Some(S),
            rtt_known: true,
            pings_out: 0,
        }
    }

    #[test]
    fn first_ping_ignores_activity() {
        let c = PingClock::default();
        assert_eq!(ping_action(S, S, &c, IV, 2), PingAction::Send);
    }

    #[test]
    fn activity_or_remote_ping_delays() {
        let c = answered();
        assert_eq!(
            ping_action(3 * S, 3 * S - S / 2, &c, IV, 2),
            PingAction::SkipActivity(Duration::from_millis(500))
        );
        let c = PingClock {
            ping_in: Some(3 * S - S / 4),
            ..answered()
        };
        assert_eq!(
            ping_action(3 * S, 0, &c, IV, 2),
            PingAction::SkipRemotePing(Duration::from_millis(250))
        );
        // Exactly one interval ago no longer counts.
        assert_eq!(
            ping_action(3 * S, 2 * S, &answered(), IV, 2),
            PingAction::Send
        );
    }

    #[test]
    fn rtt_due_after_an_hour() {
        let hour = 3600 * S;
        let c = answered();
        let now = S + hour + 1;
        assert_eq!(ping_action(now, now, &c, IV, 2), PingAction::Send);
    }

    #[test]
    fn stale_at_ping_max() {
        let mut c = PingClock {
            pings_out: 1,
            ..Default::default()
        };
        assert_eq!(ping_action(5 * S, 0, &c, IV, 2), PingAction::Send);
        c.pings_out = 2;
        assert_eq!(ping_action(5 * S, 0, &c, IV, 2), PingAction::Stale);
        // Activity delays the stale check too (no PING due, no check).
        c.rtt_known = true;
        c.rtt_start = Some(4 * S);
        assert_eq!(
            ping_action(5 * S, 5 * S, &c, IV, 2),
            PingAction::SkipActivity(Duration::ZERO)
        );
    }
}
