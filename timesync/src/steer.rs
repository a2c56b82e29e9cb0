//! Decisions for `--clock discipline`, kept apart from the system calls so they can be tested
//! without touching this machine's clock.

use thiserror::Error;

/// Process names of time daemons that would fight us over the kernel clock.
pub const CONFLICTING_DAEMONS: &[&str] = &[
    "chronyd",
    "ntpd",
    "openntpd",
    "systemd-timesyncd",
    "systemd-timesyn", // /proc/<pid>/comm is truncated to 15 bytes
    "ntp-daemon",      // ntpd-rs
    "ntpd-rs",
    "timemaster",
    "phc2sys",
    "ptp4l",
];

/// RFC 5905 `PANICT`: an offset this large is a configuration error, never a correction.
pub const DEFAULT_MAX_STEP_S: f64 = 1000.0;

/// Linux capability number of CAP_SYS_TIME (include/uapi/linux/capability.h).
const CAP_SYS_TIME: u32 = 25;

#[derive(Debug, Error, PartialEq)]
pub enum SteerError {
    #[error("another time daemon is running ({0}); stop it or pass --force to discipline anyway")]
    DaemonActive(String),
    #[error("--clock discipline needs CAP_SYS_TIME (run as root or grant the capability)")]
    NoCapability,
    #[error("refusing to step the clock by {offset:.3} s (limit {limit:.0} s): check the source")]
    AbsurdStep { offset: f64, limit: f64 },
}

/// A running process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
}

/// Processes among `procs` that are known time daemons.
pub fn conflicts(procs: &[Process]) -> Vec<Process> {
    procs
        .iter()
        .filter(|p| CONFLICTING_DAEMONS.contains(&p.comm.trim()))
        .cloned()
        .collect()
}

/// List processes from /proc (pid, comm). Unreadable entries are skipped.
pub fn scan_processes() -> std::io::Result<Vec<Process>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            out.push(Process {
                pid,
                comm: comm.trim().to_string(),
            });
        }
    }
    Ok(out)
}

/// Whether the `CapEff:` line of /proc/self/status grants CAP_SYS_TIME.
pub fn has_cap_sys_time(proc_status: &str) -> bool {
    proc_status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_TIME) != 0)
}

/// May discipline mode start? Returns the warnings to log when it may.
pub fn check_start(
    found: &[Process],
    has_cap: bool,
    force: bool,
) -> Result<Vec<String>, SteerError> {
    if !has_cap {
        return Err(SteerError::NoCapability);
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let names = found
        .iter()
        .map(|p| format!("{} (pid {})", p.comm, p.pid))
        .collect::<Vec<_>>()
        .join(", ");
    if force {
        Ok(vec![format!(
            "--force: disciplining the clock although {names} is running"
        )])
    } else {
        Err(SteerError::DaemonActive(names))
    }
}

/// Refuse absurd steps (and non-finite ones).
pub fn check_step(offset: f64, limit: f64) -> Result<(), SteerError> {
    if !offset.is_finite() || offset.abs() > limit {
        return Err(SteerError::AbsurdStep { offset, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, comm: &str) -> Process {
        Process {
            pid,
            comm: comm.into(),
        }
    }

    #[test]
    fn detects_known_daemons_only() {
        let procs = [
            p(1, "systemd"),
            p(5, "chronyd"),
            p(9, "bash"),
            p(11, "systemd-timesyn"),
        ];
        let c = conflicts(&procs);
        assert_eq!(c, vec![p(5, "chronyd"), p(11, "systemd-timesyn")]);
    }

    #[test]
    fn refuses_with_daemon_unless_forced() {
        let found = [p(5, "ntpd")];
        assert!(matches!(
            check_start(&found, true, false),
            Err(SteerError::DaemonActive(s)) if s.contains("ntpd (pid 5)")
        ));
        let w = check_start(&found, true, true).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(check_start(&[], true, false).unwrap(), Vec::<String>::new());
        assert_eq!(check_start(&[], false, true), Err(SteerError::NoCapability));
    }

    #[test]
    fn capability_parsing() {
        assert!(has_cap_sys_time("Name:\tx\nCapEff:\t000001fffeffffff\n"));
        assert!(!has_cap_sys_time("CapEff:\t0000000000000000\n"));
        assert!(!has_cap_sys_time("CapEff:\tzz\n"));
        assert!(!has_cap_sys_time(""));
    }

    #[test]
    fn absurd_steps_are_refused() {
        assert!(check_step(0.25, DEFAULT_MAX_STEP_S).is_ok());
        assert!(check_step(-999.0, DEFAULT_MAX_STEP_S).is_ok());
        assert!(check_step(1001.0, DEFAULT_MAX_STEP_S).is_err());
        assert!(check_step(f64::NAN, DEFAULT_MAX_STEP_S).is_err());
    }
}
