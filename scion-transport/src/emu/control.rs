//! Run-time control of the emulated links: one command per line.
//!
//! `link <ISD-AS>#<ifid> up|down|blackhole`, `link <ISD-AS>#<ifid> latency <ms>`,
//! `... jitter <ms>`, `... loss <0..1>`, `... bandwidth <kbit/s>`, and `show`.

use std::time::Duration;

use super::topo::{parse_link_end, LinkEnd, LinkState};

/// A change to one link (both directions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkChange {
    State(LinkState),
    Latency(Duration),
    Jitter(Duration),
    Loss(f64),
    BandwidthKbps(u64),
}

/// A parsed control command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    Link(LinkEnd, LinkChange),
    Show,
}

/// Errors of parsing a control line.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CommandError {
    #[error("empty command")]
    Empty,
    #[error("unknown command {0:?} (expected link or show)")]
    Unknown(String),
    #[error(
        "usage: link <ISD-AS>#<ifid> up|down|blackhole|latency <ms>|jitter <ms>|loss <p>|bandwidth <kbps>"
    )]
    Usage,
    #[error("bad interface {0:?}")]
    Interface(String),
    #[error("bad value {0:?}")]
    Value(String),
}

fn millis(text: &str) -> Result<Duration, CommandError> {
    let v: f64 = text.parse().map_err(|_| CommandError::Value(text.into()))?;
    if !(v.is_finite() && (0.0..60_000.0).contains(&v)) {
        return Err(CommandError::Value(text.into()));
    }
    Ok(Duration::from_secs_f64(v / 1000.0))
}

/// Parses one control line.
pub fn parse_command(line: &str) -> Result<Command, CommandError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => Err(CommandError::Empty),
        ["show"] => Ok(Command::Show),
        ["link", end, rest @ ..] => {
            let end = parse_link_end(end).map_err(|_| CommandError::Interface(end.to_string()))?;
            let change = match rest {
                ["up"] => LinkChange::State(LinkState::Up),
                ["down"] => LinkChange::State(LinkState::Down),
                ["blackhole"] => LinkChange::State(LinkState::Blackhole),
                ["latency", v] => LinkChange::Latency(millis(v)?),
                ["jitter", v] => LinkChange::Jitter(millis(v)?),
                ["loss", v] => {
                    let p: f64 = v.parse().map_err(|_| CommandError::Value(v.to_string()))?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(CommandError::Value(v.to_string()));
                    }
                    LinkChange::Loss(p)
                }
                ["bandwidth", v] => LinkChange::BandwidthKbps(
                    v.parse().map_err(|_| CommandError::Value(v.to_string()))?,
                ),
                _ => return Err(CommandError::Usage),
            };
            Ok(Command::Link(end, change))
        }
        ["link", ..] => Err(CommandError::Usage),
        [other, ..] => Err(CommandError::Unknown(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let end = parse_link_end("1-ff00:0:110#2").expect("end");
        let cases = [
            (
                "link 1-ff00:0:110#2 down",
                LinkChange::State(LinkState::Down),
            ),
            ("link 1-ff00:0:110#2 up", LinkChange::State(LinkState::Up)),
            (
                "  link 1-ff00:0:110#2   blackhole ",
                LinkChange::State(LinkState::Blackhole),
            ),
            (
                "link 1-ff00:0:110#2 latency 12.5",
                LinkChange::Latency(Duration::from_micros(12_500)),
            ),
            (
                "link 1-ff00:0:110#2 jitter 1",
                LinkChange::Jitter(Duration::from_millis(1)),
            ),
            ("link 1-ff00:0:110#2 loss 0.25", LinkChange::Loss(0.25)),
            (
                "link 1-ff00:0:110#2 bandwidth 1000",
                LinkChange::BandwidthKbps(1000),
            ),
        ];
        for (line, change) in cases {
            assert_eq!(
                parse_command(line),
                Ok(Command::Link(end, change)),
                "{line}"
            );
        }
        assert_eq!(parse_command("show"), Ok(Command::Show));
    }

    #[test]
    fn rejects_bad_lines() {
        for line in [
            "",
            "frob",
            "link",
            "link 1-ff00:0:110#2",
            "link 1-ff00:0:110#2 sideways",
            "link 1-ff00:0:110 down",
            "link 1-ff00:0:110#0 down",
            "link 1-ff00:0:110#2 latency -1",
            "link 1-ff00:0:110#2 latency NaN",
            "link 1-ff00:0:110#2 loss 1.5",
            "link 1-ff00:0:110#2 bandwidth fast",
        ] {
            assert!(parse_command(line).is_err(), "{line}");
        }
    }
}
