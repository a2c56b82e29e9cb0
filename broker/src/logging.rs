//! nats-server-style log lines on top of `tracing`.
//!
//! nats-server (`logger/log.go`) prints `[pid] 2006/01/02 15:04:05.000000 [INF] text`;
//! external harnesses grep for lines such as `Server is ready`, so the shape
//! matters more than the structured fields, which are appended as `key=value`.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Logging choices from the options (`debug`, `trace`, `logtime`, `log_file`,
/// `syslog`, `remote_syslog`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub debug: bool,
    pub trace: bool,
    pub logtime: bool,
    pub log_file: Option<std::path::PathBuf>,
    pub syslog: bool,
    pub remote_syslog: Option<String>,
}

impl LogConfig {
    pub fn from_options(o: &crate::options::Options) -> Self {
        LogConfig {
            debug: o.debug,
            trace: o.trace,
            logtime: o.logtime,
            log_file: o.log_file.clone(),
            syslog: o.syslog,
            remote_syslog: o.remote_syslog.clone(),
        }
    }
}

/// The event formatter. `logtime` is read per line so that a reload can
/// switch it; syslog lines carry no pid/time (the syslog header has them).
pub struct NatsFormat {
    pid: u32,
}

impl NatsFormat {
    pub fn new() -> Self {
        NatsFormat {
            pid: std::process::id(),
        }
    }
}

impl Default for NatsFormat {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether lines start with a timestamp (`logtime`), switchable on reload.
static LOGTIME: AtomicBool = AtomicBool::new(true);
/// Lines go to syslog: no pid/time/level prefix (logger/syslog.go writes
/// the bare message with the level as syslog severity).
static TO_SYSLOG: AtomicBool = AtomicBool::new(false);

/// Target of events nats-server logs with `Fatalf` (`[FTL]`, syslog LOG_CRIT):
/// `error!(target: FATAL, ...)`, for errors that stop the server.
pub const FATAL: &str = "nats_fatal";

fn level_tag(meta: &tracing::Metadata<'_>) -> &'static str {
    if meta.target() == FATAL {
        return "[FTL]";
    }
    match *meta.level() {
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
        // Trace (-V) without debug (-D) shows [TRC] and not [DBG], as nats-server's Tracef
        // and Debugf check their own flags; the level filter lets DEBUG through with TRACE.
        if *event.metadata().level() == Level::DEBUG && !DEBUG_ON.load(Ordering::Relaxed) {
            return Ok(());
        }
        if TO_SYSLOG.load(Ordering::Relaxed) {
            // The sink reads the severity from this one-byte prefix.
            write!(writer, "{}", syslog_severity(event.metadata()))?;
        } else {
            write!(writer, "[{}] ", self.pid)?;
            if LOGTIME.load(Ordering::Relaxed) {
                write!(writer, "{} ", local_timestamp())?;
            }
            write!(writer, "{} ", level_tag(event.metadata()))?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Syslog severity per level, as logger/syslog.go maps them (Noticef ->
/// LOG_NOTICE, Warnf -> LOG_WARNING, Errorf -> LOG_ERR, Debugf -> LOG_DEBUG,
/// Tracef -> LOG_NOTICE).
fn syslog_severity(meta: &tracing::Metadata<'_>) -> u8 {
    if meta.target() == FATAL {
        return 2;
    }
    match *meta.level() {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 5,
        Level::DEBUG => 7,
        Level::TRACE => 5,
    }
}

/// `2006/01/02 15:04:05.000000` in local time, as Go's log package writes it.
fn local_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let micros = now.subsec_micros();
    let t = local_civil(now.as_secs() as i64);
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{micros:06}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// A civil time and its offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// Seconds east of UTC.
    pub offset: i64,
}

/// `secs` (Unix time) in the local zone: libc's `localtime_r`, which follows `TZ` and
/// `/etc/localtime` as Go's `time.Local` does; UTC when that fails.
pub fn local_civil(secs: i64) -> Civil {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills; both pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        Civil {
            year: i64::from(tm.tm_year) + 1900,
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
            // c_long: i64 here, i32 on 32-bit targets.
            #[allow(clippy::useless_conversion)]
            offset: i64::from(tm.tm_gmtoff),
        }
    } else {
        let (year, month, day, hour, minute, second) = civil_from_unix(secs);
        Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
            offset: 0,
        }
    }
}

/// Go's `Z07:00` zone suffix of RFC 3339: `Z` for UTC, else `+hh:mm` / `-hh:mm`.
fn rfc3339_zone(offset: i64) -> String {
    if offset == 0 {
        return "Z".into();
    }
    // Go time.appendFormat: whole minutes (truncated), the sign of those.
    let minutes = offset / 60;
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
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

/// Where lines go. Swapped under the lock on reopen (SIGUSR1) and reload.
enum Sink {
    Stderr,
    File(std::fs::File),
    /// Local syslog over `/dev/log` (Go log/syslog unixSyslog: facility
    /// LOG_DAEMON, `<PRI>Mmm dd hh:mm:ss tag[pid]: msg`).
    LocalSyslog(std::os::unix::net::UnixDatagram),
    /// `remote_syslog` (Go log/syslog netConn: facility from LOG_DEBUG = kern).
    RemoteSyslog(Remote),
}

/// A `remote_syslog` connection (logger/syslog.go getNetworkAndAddr, Go log/syslog Dial).
enum Remote {
    /// `udp://host:port`: one datagram per line, `<PRI>RFC3339 host tag[pid]: msg\n`.
    Udp(std::net::UdpSocket),
    /// `tcp://host:port` (the same lines) or `unix:///path` (a stream socket; Go writes
    /// the local form there, `<PRI>Mmm dd hh:mm:ss tag[pid]: msg\n`, without the host).
    Stream(StreamSyslog),
}

/// Where a stream syslog server is.
enum StreamAddr {
    Tcp(std::net::SocketAddr),
    Unix(std::path::PathBuf),
}

/// A stream syslog server. Lines go through a bounded queue to a thread of their own, which
/// owns the connection and dials again when a write fails, so a slow, stuck or absent server
/// never holds the logging lock (Go's writer writes and dials under its lock).
struct StreamSyslog {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// Bytes in the queue (lines beyond [`SYSLOG_QUEUE_BYTES`] are dropped).
    queued: Arc<AtomicUsize>,
    /// Disconnected once the writer thread has ended (see [`flush`]).
    done: std::sync::mpsc::Receiver<()>,
    /// A unix socket: Go writes the local form there.
    local: bool,
    /// The syslog facility bits: kern (0) for `remote_syslog`, daemon for `syslog`.
    facility: u8,
}

/// Lines queued for a stream syslog server; more are dropped until it catches up.
const SYSLOG_QUEUE: usize = 4096;

/// Bytes queued for a stream syslog server at most (trace lines can carry whole payloads).
const SYSLOG_QUEUE_BYTES: usize = 4 << 20;

/// Bound on one dial or write to a stream syslog server, and the least time between two
/// dials (lines that come while it is away are dropped). Go's writer has no bound and dials
/// again for every line.
const SYSLOG_STREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Connects a unix stream socket with its connect bounded by `timeout` (SO_SNDTIMEO, which
/// Linux applies to a unix connect: a listener with a full backlog would block it for good).
fn connect_unix_bounded(
    path: &std::path::Path,
    timeout: std::time::Duration,
) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "invalid unix socket path",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, b) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *b as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket that nothing else owns; the stream closes it.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    stream.set_write_timeout(Some(timeout))?;
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes, `fd` an open socket.
    let r = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stream)
}

impl StreamSyslog {
    fn dial(addr: &StreamAddr) -> std::io::Result<Box<dyn Write + Send>> {
        Ok(match addr {
            StreamAddr::Tcp(a) => {
                let c = std::net::TcpStream::connect_timeout(a, SYSLOG_STREAM_TIMEOUT)?;
                c.set_write_timeout(Some(SYSLOG_STREAM_TIMEOUT))?;
                Box::new(c)
            }
            StreamAddr::Unix(p) => Box::new(connect_unix_bounded(p, SYSLOG_STREAM_TIMEOUT)?),
        })
    }

    /// Dials now (a server that cannot be reached stops the start, as in nats-server), then
    /// hands the connection to the writer thread.
    fn connect(addr: StreamAddr) -> std::io::Result<Self> {
        Self::connect_as(addr, 0)
    }

    /// [`connect`](Self::connect) with the syslog `facility` bits.
    fn connect_as(addr: StreamAddr, facility: u8) -> std::io::Result<Self> {
        let conn = Self::dial(&addr)?;
        let local = matches!(addr, StreamAddr::Unix(_));
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(SYSLOG_QUEUE);
        let (done_tx, done) = std::sync::mpsc::channel::<()>();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new()
            .name("syslog".into())
            .spawn(move || {
                Self::run(addr, conn, rx, &q);
                drop(done_tx);
            })?;
        Ok(StreamSyslog {
            tx,
            queued,
            done,
            local,
            facility,
        })
    }

    /// The writer thread: until the sink is replaced (the queue's sender dropped), writes
    /// each line; a failed write dials again (at most once per [`SYSLOG_STREAM_TIMEOUT`])
    /// and retries the line once (Go log/syslog writeAndRetry). Errors are dropped, as Go's
    /// logger drops them.
    fn run(
        addr: StreamAddr,
        conn: Box<dyn Write + Send>,
        rx: std::sync::mpsc::Receiver<Vec<u8>>,
        queued: &AtomicUsize,
    ) {
        let mut conn = Some(conn);
        let mut redial_at = std::time::Instant::now();
        for pkt in rx {
            queued.fetch_sub(pkt.len(), Ordering::Relaxed);
            if let Some(c) = conn.as_mut() {
                if c.write_all(&pkt).is_ok() {
                    continue;
                }
                conn = None;
            }
            if std::time::Instant::now() < redial_at {
                continue;
            }
            let dialled = Self::dial(&addr);
            redial_at = std::time::Instant::now() + SYSLOG_STREAM_TIMEOUT;
            if let Ok(mut c) = dialled {
                if c.write_all(&pkt).is_ok() {
                    conn = Some(c);
                }
            }
        }
    }

    /// Queues one line (dropped when the queue is full).
    fn send(&self, line: &[u8]) {
        let pkt = syslog_packet(line, self.facility, !self.local);
        let n = pkt.len();
        if self.queued.fetch_add(n, Ordering::Relaxed) + n > SYSLOG_QUEUE_BYTES
            || self.tx.try_send(pkt).is_err()
        {
            self.queued.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Ends the queue and waits, at most `bound`, until the writer thread has sent it.
    fn finish(self, bound: std::time::Duration) {
        let StreamSyslog { tx, done, .. } = self;
        drop(tx);
        let _ = done.recv_timeout(bound);
    }
}

/// Before the process exits: lines still queued for a stream syslog server go out (waiting
/// at most `bound`), as Go's logger, which writes each line before it returns, has them out.
/// Later lines go to standard error.
pub fn flush(bound: std::time::Duration) {
    let sink = SINK.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(Sink::RemoteSyslog(Remote::Stream(s))) = sink {
        s.finish(bound);
    }
}

impl Remote {
    fn send(&mut self, line: &[u8]) {
        match self {
            Remote::Udp(s) => {
                let _ = s.send(&syslog_packet(line, 0, true));
            }
            Remote::Stream(s) => s.send(line),
        }
    }
}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);
type FilterHandle = tracing_subscriber::reload::Handle<
    tracing_subscriber::filter::Targets,
    tracing_subscriber::Registry,
>;
static FILTER: OnceLock<FilterHandle> = OnceLock::new();
/// Debug logging is on (`-D`, `debug: true`): see `format_event`.
static DEBUG_ON: AtomicBool = AtomicBool::new(false);
static CURRENT: Mutex<Option<LogConfig>> = Mutex::new(None);

/// The writer handed to `tracing_subscriber`: buffers one formatted line
/// and passes it to the current sink when dropped.
pub struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut g = SINK.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_mut() {
            None | Some(Sink::Stderr) => {
                let _ = std::io::stderr().write_all(&self.0);
            }
            Some(Sink::File(f)) => {
                let _ = f.write_all(&self.0);
            }
            Some(Sink::LocalSyslog(s)) => {
                let _ = s.send(&syslog_packet(&self.0, 3 << 3, false));
            }
            Some(Sink::RemoteSyslog(r)) => r.send(&self.0),
        }
    }
}

/// Builds a syslog message from a line formatted with the severity digit
/// first (see [`NatsFormat`]); it ends in a newline, as Go log/syslog's do.
fn syslog_packet(line: &[u8], facility: u8, remote: bool) -> Vec<u8> {
    let (sev, msg) = match line.split_first() {
        Some((d, rest)) if d.is_ascii_digit() => (d - b'0', rest),
        _ => (5, line),
    };
    let msg = msg.strip_suffix(b"\n").unwrap_or(msg);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    // Go log/syslog: time.Now() in the local zone.
    let Civil {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
        offset,
    } = local_civil(secs);
    let tag = syslog_tag();
    let pid = std::process::id();
    let pri = facility | sev;
    let head = if remote {
        let host = hostname();
        let zone = rfc3339_zone(offset);
        format!("<{pri}>{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{zone} {host} {tag}[{pid}]: ")
    } else {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let mon = MONTHS[(mo as usize).saturating_sub(1) % 12];
        format!("<{pri}>{mon} {d:>2} {h:02}:{mi:02}:{s:02} {tag}[{pid}]: ")
    };
    let mut v = head.into_bytes();
    v.extend_from_slice(msg);
    v.push(b'\n');
    v
}

/// logger/syslog.go GetSysLoggerTag: the program name without its path (once per process).
fn syslog_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        std::env::args()
            .next()
            .and_then(|a| a.rsplit('/').next().map(str::to_string))
            .unwrap_or_else(|| "broker".into())
    })
}

/// The host name, read once (Go log/syslog takes it when it dials).
fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}

/// Errors setting up a log destination.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// logger/syslog.go NewSysLogger when Go log/syslog's unixSyslog finds no daemon.
    #[error("error connecting to syslog: \"Unix syslog delivery error\"")]
    Syslog,
    #[error("error invalid network type: {0:?}")]
    RemoteScheme(String),
    /// A `remote_syslog` that Go's url.Parse refuses (logger/syslog.go log.Fatal(err)).
    #[error("{0}")]
    Url(String),
    /// log.Fatalf("error connecting to syslog: %q") in logger/syslog.go, with the text of
    /// Go's dial error (`dial tcp 127.0.0.1:514: connect: connection refused`).
    #[error("error connecting to syslog: {}", crate::server::auth::go_quote(.0))]
    Remote(String),
}

/// Opens the destination server/log.go ConfigureLogger picks: the log file
/// first, then `remote_syslog`, then `syslog`, else stderr.
fn open_sink(cfg: &LogConfig) -> Result<Sink, LogError> {
    if let Some(path) = &cfg.log_file {
        return open_log(path)
            .map(Sink::File)
            .map_err(|source| LogError::File {
                path: path.clone(),
                source,
            });
    }
    if let Some(url) = cfg.remote_syslog.as_deref().filter(|u| !u.is_empty()) {
        return open_remote(url);
    }
    if cfg.syslog {
        return open_local_syslog();
    }
    Ok(Sink::Stderr)
}

/// Go log/syslog unixSyslog: a datagram socket, then a stream socket, at `/dev/log`,
/// `/var/run/syslog` and `/var/run/log`, the first that connects; facility daemon.
fn open_local_syslog() -> Result<Sink, LogError> {
    const PATHS: [&str; 3] = ["/dev/log", "/var/run/syslog", "/var/run/log"];
    for path in PATHS {
        let Ok(s) = std::os::unix::net::UnixDatagram::unbound() else {
            continue;
        };
        if s.connect(path).is_ok() {
            return Ok(Sink::LocalSyslog(s));
        }
    }
    for path in PATHS {
        if let Ok(s) = StreamSyslog::connect_as(StreamAddr::Unix(path.into()), 3 << 3) {
            return Ok(Sink::RemoteSyslog(Remote::Stream(s)));
        }
    }
    Err(LogError::Syslog)
}

/// What logger/syslog.go getNetworkAndAddr takes from Go's url.Parse: the scheme in lower
/// case, the host and the path, with url.Parse's refusals in its words. A bare `host:port`
/// is refused as there: `127.0.0.1:514` does not parse, and in `localhost:514` the scheme is
/// `localhost`.
fn syslog_url(url: &str) -> Result<(String, &str, &str), LogError> {
    let refused = |why: &str| {
        LogError::Url(format!(
            "parse {}: {why}",
            crate::server::auth::go_quote(url)
        ))
    };
    // url.go getScheme.
    let (mut scheme, mut rest) = ("", url);
    for (i, c) in url.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err(refused("missing protocol scheme")),
            b':' => {
                (scheme, rest) = (&url[..i], &url[i + 1..]);
                break;
            }
            _ => break,
        }
    }
    if scheme.is_empty() && !rest.starts_with('/') {
        let segment = rest.split('/').next().unwrap_or(rest);
        if segment.contains(':') {
            return Err(refused("first path segment in URL cannot contain colon"));
        }
    }
    let (host, path) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            let authority = &after[..end];
            // Without the user information, as url.Parse keeps the host.
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (host, &after[end..])
        }
        None => ("", rest),
    };
    Ok((scheme.to_ascii_lowercase(), host, path))
}

/// logger/syslog.go getNetworkAndAddr: `udp://host:port`, `tcp://host:port` or
/// `unix:///path` (a stream socket). The server is dialled now: one that cannot be reached
/// stops the start, as in nats-server.
fn open_remote(url: &str) -> Result<Sink, LogError> {
    let (scheme, host_port, path) = syslog_url(url)?;
    let scheme = scheme.as_str();
    let addr = path;
    let dial_error = |to: &dyn std::fmt::Display, e: &std::io::Error| {
        LogError::Remote(format!("dial {scheme} {to}: {}", go_errno_text(e)))
    };
    let r = match scheme {
        "udp" | "tcp" if host_port.is_empty() => {
            return Err(LogError::Remote(format!("dial {scheme}: missing address")))
        }
        "udp" | "tcp" => {
            let addrs: Vec<std::net::SocketAddr> =
                std::net::ToSocketAddrs::to_socket_addrs(host_port)
                    .map_err(|_| {
                        // Go's net.DNSError for a name that does not resolve.
                        let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
                        LogError::Remote(format!("dial {scheme}: lookup {host}: no such host"))
                    })?
                    .collect();
            // Go's dialSerial reports the first address's error.
            let mut first = None;
            let mut found = None;
            for a in addrs {
                let opened = if scheme == "udp" {
                    let unspecified: std::net::SocketAddr = if a.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    std::net::UdpSocket::bind(unspecified)
                        .and_then(|s| s.connect(a).map(|()| s))
                        .map(Remote::Udp)
                } else {
                    StreamSyslog::connect(StreamAddr::Tcp(a)).map(Remote::Stream)
                };
                match opened {
                    Ok(r) => {
                        found = Some(r);
                        break;
                    }
                    Err(e) => {
                        first.get_or_insert(dial_error(&a, &e));
                    }
                }
            }
            match (found, first) {
                (Some(r), _) => r,
                (None, Some(e)) => return Err(e),
                (None, None) => {
                    return Err(LogError::Remote(format!(
                        "dial {scheme}: lookup {host_port}: no such host"
                    )))
                }
            }
        }
        "unix" => Remote::Stream(
            StreamSyslog::connect(StreamAddr::Unix(std::path::PathBuf::from(addr)))
                .map_err(|e| dial_error(&addr, &e))?,
        ),
        other => return Err(LogError::RemoteScheme(other.to_string())),
    };
    Ok(Sink::RemoteSyslog(r))
}

/// An I/O error as Go's net package words a failed connect: `connect: ` and the errno text
/// in lower case (`connection refused`, `no such file or directory`).
fn go_errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let text = std::io::Error::from_raw_os_error(n).to_string();
            let text = text
                .strip_suffix(&format!(" (os error {n})"))
                .unwrap_or(&text);
            let mut c = text.chars();
            let lower = match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => String::new(),
            };
            format!("connect: {lower}")
        }
        None if e.kind() == std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        None => e.to_string(),
    }
}

fn targets(cfg: &LogConfig) -> tracing_subscriber::filter::Targets {
    let level = if cfg.trace {
        Level::TRACE
    } else if cfg.debug {
        Level::DEBUG
    } else {
        Level::INFO
    };
    tracing_subscriber::filter::Targets::new()
        .with_default(tracing_subscriber::filter::LevelFilter::WARN)
        .with_target("broker", level)
        .with_target("scion_transport", level)
}

fn install_sink(cfg: &LogConfig, sink: Sink) {
    TO_SYSLOG.store(
        matches!(sink, Sink::LocalSyslog(_) | Sink::RemoteSyslog(_)),
        Ordering::Relaxed,
    );
    LOGTIME.store(cfg.logtime, Ordering::Relaxed);
    DEBUG_ON.store(cfg.debug, Ordering::Relaxed);
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(cfg.clone());
}

/// Installs the global subscriber. Safe to call more than once (later calls
/// only swap the destination), so tests can start several servers.
pub fn init(cfg: &LogConfig) -> Result<(), LogError> {
    let sink = open_sink(cfg)?;
    install_sink(cfg, sink);
    if FILTER.get().is_some() {
        return reconfigure(cfg);
    }
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(targets(cfg));
    let layer = tracing_subscriber::fmt::layer()
        .event_format(NatsFormat::new())
        // Plain text like nats-server: harnesses grep these lines.
        .with_ansi(false)
        .with_writer(|| LineWriter(Vec::with_capacity(128)));
    if tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .is_ok()
    {
        let _ = FILTER.set(handle);
    }
    Ok(())
}

/// Applies changed logging options at run time (server/reload.go
/// logfileOption / debugOption / traceOption / logtimeOption /
/// syslogOption / remoteSyslogOption all end in `s.ConfigureLogger()`).
/// On error the old destination stays.
pub fn reconfigure(cfg: &LogConfig) -> Result<(), LogError> {
    let sink = open_sink(cfg)?;
    install_sink(cfg, sink);
    if let Some(h) = FILTER.get() {
        let _ = h.reload(targets(cfg));
    }
    Ok(())
}

/// What SIGUSR1 does (server/log.go ReOpenLogFile): with a log file,
/// open it again (after rotation the old name is a new file) and log
/// "File log re-opened"; otherwise say why nothing happened.
pub fn reopen() {
    let cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(cfg) = cur else {
        tracing::info!("File log re-open ignored, no logger");
        return;
    };
    let Some(path) = &cfg.log_file else {
        tracing::info!("File log re-open ignored, not a file logger");
        return;
    };
    match open_log(path) {
        Ok(f) => {
            *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Some(Sink::File(f));
            tracing::info!("File log re-opened");
        }
        Err(e) => tracing::error!("File log re-open failed: {}", e),
    }
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
    fn remote_syslog_schemes() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(open_remote(&format!("tcp://{addr}")).is_ok());
        drop(l);
        let e = open_remote(&format!("tcp://{addr}"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            format!("error connecting to syslog: \"dial tcp {addr}: connect: connection refused\"")
        );
        let e = open_remote("foo://127.0.0.1:514")
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("error invalid network type: \"foo\""));
        assert!(open_remote("udp://127.0.0.1:514").is_ok());
        assert!(open_remote("UDP://127.0.0.1:514/x").is_ok());
        // Bare forms, refused as url.Parse and getNetworkAndAddr refuse them.
        let err = |u: &str| {
            open_remote(u)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err("127.0.0.1:514"),
            "parse \"127.0.0.1:514\": first path segment in URL cannot contain colon"
        );
        assert_eq!(
            err("localhost:514"),
            "error invalid network type: \"localhost\""
        );
        assert_eq!(err("loghost"), "error invalid network type: \"\"");
        assert_eq!(err("://x"), "parse \"://x\": missing protocol scheme");
        assert_eq!(
            err("udp:127.0.0.1:514"),
            "error connecting to syslog: \"dial udp: missing address\""
        );
    }

    #[test]
    fn syslog_urls_split_as_go_url_parse() {
        let parts = |u: &str| {
            syslog_url(u)
                .ok()
                .map(|(s, h, p)| (s, h.to_string(), p.to_string()))
        };
        let p =
            |s: &str, h: &str, path: &str| Some((s.to_string(), h.to_string(), path.to_string()));
        assert_eq!(parts("udp://127.0.0.1:514"), p("udp", "127.0.0.1:514", ""));
        assert_eq!(parts("tcp://u@h:1/x"), p("tcp", "h:1", "/x"));
        assert_eq!(parts("unix:///dev/log"), p("unix", "", "/dev/log"));
        assert_eq!(parts("Tcp://h:1"), p("tcp", "h:1", ""));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_unix(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_from_unix(1_795_400_000), (2026, 11, 23, 2, 13, 20));
    }

    /// A TCP syslog server that drops the connection gets the next lines on a new one.
    #[test]
    fn tcp_syslog_dials_again_after_the_server_closes() {
        use std::io::{BufRead, BufReader};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = StreamSyslog::connect(StreamAddr::Tcp(addr)).unwrap();
        let (first, _) = l.accept().unwrap();
        first
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.send(b"5one\n");
        let mut r = BufReader::new(first);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.ends_with("]: one\n"), "{line:?}");
        drop(r);
        l.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let second = loop {
            assert!(std::time::Instant::now() < deadline, "no second connection");
            // The first write after the close may still be taken by the kernel; the reset
            // fails a later one, which dials again.
            s.send(b"5two\n");
            match l.accept() {
                Ok((c, _)) => break c,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        second.set_nonblocking(false).unwrap();
        second
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut line = String::new();
        BufReader::new(second).read_line(&mut line).unwrap();
        assert!(line.ends_with("]: two\n"), "{line:?}");
    }

    #[test]
    fn syslog_packets() {
        let p = String::from_utf8(syslog_packet(b"3oops\n", 3 << 3, false)).unwrap();
        assert!(p.starts_with("<27>"), "{p}");
        assert!(p.ends_with("]: oops\n"), "{p}");
        let p = String::from_utf8(syslog_packet(b"5hi\n", 0, true)).unwrap();
        assert!(p.starts_with("<5>"), "{p}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let zone = rfc3339_zone(local_civil(now).offset);
        assert!(p.contains(&format!("{zone} ")), "{p}");
        assert!(p.ends_with("]: hi\n"), "{p}");
    }

    /// Go's `Z07:00`: `Z` for UTC, else the offset in whole minutes with its sign.
    #[test]
    fn rfc3339_zones() {
        assert_eq!(rfc3339_zone(0), "Z");
        assert_eq!(rfc3339_zone(19_800), "+05:30");
        assert_eq!(rfc3339_zone(-12_600), "-03:30");
        assert_eq!(rfc3339_zone(-30), "+00:00");
        assert_eq!(rfc3339_zone(3_600 + 59), "+01:00");
    }
}
