//! Process memory and CPU for /varz `mem` and `cpu`, read from Linux
//! `/proc` like nats-server's `server/pse/pse_linux.go`.
//!
//! The parsers are pure; [`CpuSampler`] takes the time and tick counts as
//! parameters. Only the two `read_*` functions touch the file system.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clock ticks per second. nats-server hard-codes 100 (`pse_linux.go`,
/// "Avoiding to generate docker image without CGO"); so do we, which holds
/// on every mainstream Linux configuration.
pub const TICKS_PER_SEC: u64 = 100;

/// Resident set size in bytes from `/proc/self/status` text (`VmRSS: N kB`).
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut it = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    match it.next() {
        Some("kB") => n.checked_mul(1024),
        _ => None,
    }
}

/// CPU time used so far and process start, from `/proc/self/stat` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTimes {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Process start after boot, in clock ticks.
    pub start_ticks: u64,
}

/// Parses `/proc/self/stat`. The command name (field 2) is in parentheses
/// and may hold spaces, so fields are counted after the last `)`.
pub fn parse_stat(stat: &str) -> Option<StatTimes> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so field N is index N - 3.
    let utime: u64 = f.get(14 - 3)?.parse().ok()?;
    let stime: u64 = f.get(15 - 3)?.parse().ok()?;
    let start: u64 = f.get(22 - 3)?.parse().ok()?;
    Some(StatTimes {
        cpu_ticks: utime.checked_add(stime)?,
        start_ticks: start,
    })
}

/// Seconds since boot from `/proc/uptime` text.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// RSS of this process, if `/proc` is readable.
pub fn read_rss() -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// CPU ticks so far and seconds this process has been alive.
pub fn read_cpu() -> Option<(u64, f64)> {
    let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
    let up = parse_uptime(&std::fs::read_to_string("/proc/uptime").ok()?)?;
    let alive = up - stat.start_ticks as f64 / TICKS_PER_SEC as f64;
    Some((stat.cpu_ticks, alive))
}

/// CPU percent over the last window of at least [`CpuSampler::WINDOW`],
/// like nats-server's 1 s sampling; the first reading averages over the
/// process lifetime. Values are floored to 0.1 % as nats-server's integer
/// per-mille arithmetic does.
#[derive(Debug, Default)]
pub struct CpuSampler {
    state: Mutex<Option<Sample>>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    ticks: u64,
    percent: f64,
}

impl CpuSampler {
    pub const WINDOW: Duration = Duration::from_secs(1);

    /// Updates with the current reading. `alive_secs` is only used for the
    /// first reading.
    pub fn update(&self, now: Instant, ticks: u64, alive_secs: f64) -> f64 {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let percent = match *g {
            None => per_mille(ticks, alive_secs),
            Some(prev) => {
                let dt = now.saturating_duration_since(prev.at);
                if dt < Self::WINDOW {
                    return prev.percent;
                }
                per_mille(ticks.saturating_sub(prev.ticks), dt.as_secs_f64())
            }
        };
        *g = Some(Sample {
            at: now,
            ticks,
            percent,
        });
        percent
    }
}

fn per_mille(ticks: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    let pm = (ticks as f64 * 1000.0 / TICKS_PER_SEC as f64 / secs).floor();
    pm / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_from_status() {
        let s = "Name:\tbroker\nVmPeak:\t  100 kB\nVmRSS:\t   11612 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(s), Some(11612 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: x kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: 12 MB\n"), None);
    }

    #[test]
    fn stat_with_spaces_in_name() {
        let mut fields = vec!["S".to_string()];
        for i in 4..=52 {
            fields.push(i.to_string());
        }
        let s = format!("1234 (my (odd) name) {}", fields.join(" "));
        let t = parse_stat(&s).unwrap();
        assert_eq!(t.cpu_ticks, 14 + 15);
        assert_eq!(t.start_ticks, 22);
        assert_eq!(parse_stat("1234 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn real_proc_is_readable() {
        // Linux CI: the parsers agree with the kernel's real files.
        assert!(read_rss().unwrap_or(0) > 0);
        let (_, alive) = read_cpu().unwrap_or((0, -1.0));
        assert!(alive >= 0.0);
    }

    #[test]
    fn uptime() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735.47));
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn sampler_windows() {
        let s = CpuSampler::default();
        let t0 = Instant::now();
        // 50 ticks over 10 s of life = 5 %.
        assert_eq!(s.update(t0, 50, 10.0), 5.0);
        // Inside the window: the previous value.
        assert_eq!(s.update(t0 + Duration::from_millis(500), 90, 0.0), 5.0);
        // 2 s later, 100 more ticks = 1 s of CPU in 2 s = 50 %.
        assert_eq!(s.update(t0 + Duration::from_secs(2), 150, 0.0), 50.0);
        // Floors to 0.1 %: 1 tick in 3 s = 0.333 % -> 0.3.
        assert_eq!(s.update(t0 + Duration::from_secs(5), 151, 0.0), 0.3);
        // A counter going backwards never yields a negative value.
        assert_eq!(s.update(t0 + Duration::from_secs(7), 10, 0.0), 0.0);
    }
}
