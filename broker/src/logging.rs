//! nats-server-style log lines on top of `tracing`.
//!
//! nats-server (`logger/log.go`) prints `[pid] 2006/01/02 15:04:05.000000 [INF] text`;
//! external harnesses grep for lines such as `Server is ready`, so the shape
//! matters more than the structured fields, which are appended as `key=value`.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Logging choices from the options (`debug`, `trace`, `logtime`, `log_file`).
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    pub debug: bool,
    pub trace: bool,
    pub logtime: bool,
    pub log_file: Option<std::path::PathBuf>,
}

/// The event formatter.
pub struct NatsFormat {
    pid: u32,
    logtime: bool,
}

impl NatsFormat {
    pub fn new(logtime: bool) -> Self {
        NatsFormat {
            pid: std::process::id(),
            logtime,
        }
    }
}

fn level_tag(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "[ERR]",
        Level::WARN => "[WRN]",
        Level::INFO => "[INF]",
        Level::DEBUG => "[DBG]",
        Level::TRACE => "[TRC]",
    }
}

impl<S, N> FormatEvent<S, N> for NatsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "[{}] ", self.pid)?;
        if self.logtime {
            write!(writer, "{} ", local_timestamp())?;
        }
        write!(writer, "{} ", level_tag(event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// `2006/01/02 15:04:05.000000` in local time (UTC when the zone is unknown,
/// which is what containers usually have).
fn local_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let micros = now.subsec_micros();
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    format!("{y:04}/{mo:02}/{d:02} {h:02}:{mi:02}:{s:02}.{micros:06}")
}

/// Converts unix seconds to a UTC civil date/time (Howard Hinnant's
/// days-from-civil algorithm, inverted).
pub fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    );
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d, h, mi, s)
}

/// A writer that appends to a log file (`-l`), shared by all threads.
struct FileWriter(Mutex<std::fs::File>);

impl Write for &FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// Installs the global subscriber. Safe to call more than once (later calls
/// are ignored), so tests can start several servers.
pub fn init(cfg: &LogConfig) -> std::io::Result<()> {
    let level = if cfg.trace {
        Level::TRACE
    } else if cfg.debug {
        Level::DEBUG
    } else {
        Level::INFO
    };
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing_subscriber::filter::LevelFilter::WARN)
        .with_target("broker", level)
        .with_target("scion_transport", level);
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    match &cfg.log_file {
        Some(path) => {
            let file = open_log(path)?;
            let writer: &'static FileWriter = Box::leak(Box::new(FileWriter(Mutex::new(file))));
            let layer = tracing_subscriber::fmt::layer()
                .event_format(NatsFormat::new(cfg.logtime))
                // Plain text like nats-server: harnesses grep these lines.
                .with_ansi(false)
                .with_writer(move || writer);
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init();
        }
        None => {
            let layer = tracing_subscriber::fmt::layer()
                .event_format(NatsFormat::new(cfg.logtime))
                .with_ansi(false)
                .with_writer(std::io::stderr);
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init();
        }
    }
    Ok(())
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_from_unix(1_795_400_000), (2026, 11, 23, 2, 13, 20));
    }
}
