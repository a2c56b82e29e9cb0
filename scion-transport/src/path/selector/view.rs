//! What the selector tells the I/O side: actions, switch causes, path states and the /pathz
//! view of a candidate.

use std::fmt;
use std::time::{Duration, Instant};

use crate::path::model::{PathFingerprint, PathInfo};

/// Why the selector changed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchCause {
    /// First path chosen.
    Initial,
    /// The active path crosses an interface reported down by SCMP.
    ScmpDown,
    /// The active path stopped answering probes.
    ProbeLoss,
    /// A better path has been stable for the hold time.
    Better,
    /// The active path's hop fields expired.
    Expiry,
    /// A path refresh no longer lists (or no longer allows) the active path.
    Refresh,
}

impl SwitchCause {
    /// Whether the old path failed (SCMP down, lost probes): such switches are warnings.
    /// Expiry and refresh are routine path life-cycle, `better` and `initial` are choices.
    pub fn is_failure(self) -> bool {
        matches!(self, SwitchCause::ScmpDown | SwitchCause::ProbeLoss)
    }
}

impl fmt::Display for SwitchCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SwitchCause::Initial => "initial",
            SwitchCause::ScmpDown => "scmp-down",
            SwitchCause::ProbeLoss => "probe-loss",
            SwitchCause::Better => "better",
            SwitchCause::Expiry => "expiry",
            SwitchCause::Refresh => "refresh",
        })
    }
}

/// What the I/O side must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorAction {
    /// Send probe `seq` over this path now, then call `on_probe_sent`.
    SendProbe {
        fingerprint: PathFingerprint,
        seq: u64,
    },
    /// Use this path for data from now on.
    SwitchTo {
        fingerprint: PathFingerprint,
        cause: SwitchCause,
    },
    /// Ask the path source for fresh paths and pass them to `set_paths`.
    RefreshPaths,
}

/// A path's standing, as shown on /pathz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathState {
    /// Answers probes.
    Alive,
    /// Not probed yet (or no outcome yet).
    Unprobed,
    /// Lost its last one or two probes.
    Suspect,
    /// SCMP interface down, or too many lost probes in a row.
    Down,
    /// Hop fields expired.
    Expired,
    /// Removed by MTU or policy (see `reason`).
    Filtered,
}

impl fmt::Display for PathState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathState::Alive => "alive",
            PathState::Unprobed => "unprobed",
            PathState::Suspect => "suspect",
            PathState::Down => "down",
            PathState::Expired => "expired",
            PathState::Filtered => "filtered",
        })
    }
}

/// One path as /pathz shows it.
#[derive(Debug, Clone)]
pub struct CandidateView {
    pub info: PathInfo,
    pub state: PathState,
    /// Smoothed probe RTT.
    pub rtt: Option<Duration>,
    pub rtt_var: Option<Duration>,
    /// Lost fraction of the recent probes.
    pub loss: Option<f64>,
    /// Why the path is Down, Filtered or Expired.
    pub reason: Option<String>,
    pub active: bool,
    pub in_active_set: bool,
    /// Position in the selector's current ranking (0 = best), if usable at all.
    pub rank: Option<usize>,
    pub probes_sent: u64,
    pub probes_answered: u64,
    /// When data last arrived from the peer over this path (`on_data_received`).
    pub last_data_rx: Option<Instant>,
    /// Whether the path is watched now (the active set and a few backups, probed every few
    /// hundred ms). A path outside it is surveyed: one probe every `survey_interval` for the
    /// least recently probed, so its state and RTT are as old as `last_answer` says.
    pub probed: bool,
    /// When its last probe answer arrived.
    pub last_answer: Option<Instant>,
}
