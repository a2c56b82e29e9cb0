//! Websocket client connections (nats-server 2.9.10 `websocket.go`): the HTTP upgrade, then
//! NATS protocol in websocket frames. Clients send masked frames (unless they asked for
//! `Nats-No-Masking`), text or binary, possibly fragmented; the server answers in unmasked
//! binary frames, answers PING frames with PONG, and ends with a CLOSE frame whose status
//! says why (websocket.go wsEnqueueCloseMessage). With `compression: true`, a client that
//! offers `permessage-deflate` gets it without context takeover (websocket.go
//! wsPMCExtensionSupport): each message deflated on its own.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::client::ClientShared;
use super::closed::ClosedState;
use super::io::ChunkSink;
use super::outbound::{consume, write_chunks, Chunks, WriteEnd};
use crate::monitor::http::{parse_request, HttpError, Request};

/// RFC 6455 section 1.3.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_CONTROL_PAYLOAD: usize = 125;
const OP_CONTINUATION: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_NO_STATUS: u16 = 1005;
const CLOSE_ABNORMAL: u16 = 1006;
const CLOSE_INVALID_PAYLOAD: u16 = 1007;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_INTERNAL: u16 = 1011;
const CLOSE_TLS: u16 = 1015;

/// Default bound of a websocket connection's TLS handshake and HTTP upgrade together.
/// nats-server waits without a bound unless `handshake_timeout` is set; a connection that
/// never finishes its upgrade should not hold a task for ever.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The running websocket port's settings.
pub struct WsListen {
    /// `websocket.tls` (None: `no_tls`).
    pub tls: Option<Arc<super::tls::ClientTls>>,
    pub origins: OriginRules,
    pub handshake_timeout: Duration,
    /// `compression`: offer per-message deflate to clients that ask for it.
    pub compression: bool,
}

impl WsListen {
    pub fn new(o: &crate::options::WebsocketOpts) -> Result<WsListen, String> {
        let timeout = o.handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
        let tls = match &o.tls {
            Some(t) => Some(super::tls::client_tls_from(
                t,
                timeout,
                false,
                "websocket tls",
            )?),
            None => None,
        };
        Ok(WsListen {
            tls,
            origins: OriginRules::new(o.same_origin, &o.allowed_origins),
            handshake_timeout: timeout,
            compression: o.compression,
        })
    }
}

/// What the websocket listener checks requests against (`websocket { same_origin,
/// allowed_origins }`).
#[derive(Debug, Clone, Default)]
pub struct OriginRules {
    pub same_origin: bool,
    /// Allowed origins by lower-case host: (scheme, port).
    pub allowed: Vec<(String, String, String)>,
}

impl OriginRules {
    /// From `allowed_origins` as configured (URLs; ones that do not parse are skipped, as
    /// websocket.go wsSetOriginOptions skips them after logging).
    pub fn new(same_origin: bool, allowed: &[String]) -> OriginRules {
        // websocket.go keeps them in a map by host: a later entry for a host replaces an
        // earlier one.
        let mut by_host: Vec<(String, String, String)> = Vec::new();
        for o in allowed {
            let Some((scheme, host)) = split_origin(o) else {
                continue;
            };
            let (h, p) = host_and_port(scheme == "https", host);
            by_host.retain(|(bh, _, _)| *bh != h);
            by_host.push((h, scheme.to_string(), p));
        }
        let allowed = by_host;
        OriginRules {
            same_origin,
            allowed,
        }
    }

    /// websocket.go checkOrigin: no rules, or no `Origin` header, accept.
    fn check(&self, req: &Request, tls: bool) -> Result<(), String> {
        if !self.same_origin && self.allowed.is_empty() {
            return Ok(());
        }
        let origin = req
            .header("Origin")
            .filter(|o| !o.is_empty())
            .or_else(|| req.header("Sec-Websocket-Origin"))
            .unwrap_or("");
        if origin.is_empty() {
            return Ok(());
        }
        let Some((scheme, host)) = split_origin(origin) else {
            return Err(format!("parse {origin:?}: invalid URI for request"));
        };
        let (oh, op) = host_and_port(scheme == "https", host);
        if self.same_origin {
            let (rh, rp) = host_and_port(tls, req.header("Host").unwrap_or(""));
            if oh != rh || op != rp {
                return Err("not same origin".into());
            }
        }
        if !self.allowed.is_empty() {
            let ok = self
                .allowed
                .iter()
                .any(|(h, s, p)| *h == oh && s == scheme && *p == op);
            if !ok {
                return Err("not in the allowed list".into());
            }
        }
        Ok(())
    }
}

/// `scheme://host[:port][/...]` as (scheme, host[:port]).
fn split_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    if scheme.is_empty() || rest.is_empty() {
        return None;
    }
    let host = rest.split('/').next().unwrap_or(rest);
    Some((scheme, host))
}

/// websocket.go wsGetHostAndPort: the host in lower case and the port, 443 or 80 by
/// scheme when it has none.
fn host_and_port(tls: bool, hostport: &str) -> (String, String) {
    let split = if let Some(rest) = hostport.strip_prefix('[') {
        rest.split_once(']').map(|(h, p)| (h, p.strip_prefix(':')))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => Some((h, Some(p))),
            _ => Some((hostport, None)),
        }
    };
    let (host, port) = split.unwrap_or((hostport, None));
    let port = port
        .map(str::to_string)
        .unwrap_or_else(|| if tls { "443" } else { "80" }.to_string());
    (host.to_ascii_lowercase(), port)
}

/// What the upgrade settled.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// The client sends unmasked frames (`Nats-No-Masking: true`).
    pub no_masking: bool,
    /// `X-Forwarded-For`, when it is an IP address: shown in the log prefix.
    pub forwarded_for: Option<IpAddr>,
    /// Per-message deflate was negotiated.
    pub compress: bool,
    /// A browser (`User-Agent: Mozilla/…`): server frames are cut at 4 KB.
    pub browser: bool,
    /// Safari (`Version/` and `Safari/`): compressed messages are not fragmented.
    pub no_compressed_fragments: bool,
}

/// A refused upgrade: the HTTP status and the reason logged.
struct Refusal(u16, String);

/// websocket.go wsUpgrade's checks, in its order (RFC 6455 section 4.2.1).
fn check(req: &Request, origins: &OriginRules, tls: bool) -> Result<Upgrade, Refusal> {
    let bad = |r: &str| Err(Refusal(400, r.to_string()));
    if req.method != "GET" {
        return Err(Refusal(405, "request method must be GET".into()));
    }
    if req.header("Host").is_none_or(str::is_empty) {
        return bad("'Host' missing in request");
    }
    if !req.contains("Upgrade", "websocket") {
        return bad("invalid value for header 'Upgrade'");
    }
    if !req.contains("Connection", "Upgrade") {
        return bad("invalid value for header 'Connection'");
    }
    if req.header("Sec-Websocket-Key").is_none_or(str::is_empty) {
        return bad("key missing");
    }
    if !req.contains("Sec-Websocket-Version", "13") {
        return bad("invalid version");
    }
    if let Err(e) = origins.check(req, tls) {
        return Err(Refusal(403, format!("origin not allowed: {e}")));
    }
    Ok(Upgrade {
        compress: false,
        browser: req
            .header("User-Agent")
            .is_some_and(|ua| ua.starts_with("Mozilla/")),
        no_compressed_fragments: false,
        no_masking: req.header("Nats-No-Masking") == Some("true"),
        forwarded_for: req
            .header("X-Forwarded-For")
            .and_then(|v| v.parse::<IpAddr>().ok()),
    })
}

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key + GUID)).
fn accept_key(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(GUID.as_bytes());
    data_encoding::BASE64.encode(ctx.finish().as_ref())
}

/// The reply of Go's http.Error for a refused upgrade (websocket.go wsReturnHTTPError).
fn refusal_response(status: u16) -> Vec<u8> {
    let text = match status {
        403 => "Forbidden",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    let date = crate::monitor::gofmt::http_date(std::time::SystemTime::now());
    format!(
        "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\nDate: {date}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}\n",
        text.len() + 1
    )
    .into_bytes()
}

/// Reads the upgrade request from `stream` and answers it: `101 Switching Protocols`, or
/// Go's error reply. Err: the reason to log (`websocket handshake error: …`), or None when
/// the request was not HTTP at all (answered `400 Bad Request` without a log line, as Go's
/// http.Server does).
pub async fn handshake<S>(
    stream: &mut S,
    listen: &WsListen,
    tls: bool,
) -> Result<Upgrade, Option<String>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The request head, read with the monitoring port's parser.
    let mut buf = Vec::with_capacity(1024);
    let (req, used) = loop {
        let refused: &[u8] = match parse_request(&buf) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.map_err(|_| None)?;
                if n == 0 {
                    return Err(None);
                }
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            // Go's http.Server answers these itself, before the websocket handler (which
            // then logs nothing).
            Err(HttpError::HeadTooLarge) => b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large",
            Err(HttpError::MissingHost) => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header",
            Err(_) => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request",
        };
        let _ = stream.write_all(refused).await;
        return Err(None);
    };
    let checked = check(&req, &listen.origins, tls);
    // websocket.go wsUpgrade: bytes after the request are found after the other checks,
    // once the connection is taken over, and get no reply.
    if checked.is_ok() && buf.len() > used {
        return Err(Some("client sent data before handshake is complete".into()));
    }
    let mut up = match checked {
        Ok(up) => up,
        Err(Refusal(status, reason)) => {
            let _ = stream.write_all(&refusal_response(status)).await;
            let _ = stream.flush().await;
            return Err(Some(reason));
        }
    };
    let key = req.header("Sec-Websocket-Key").unwrap_or("");
    let mut reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key)
    );
    up.compress = listen.compression && offers_deflate(&req);
    // websocket.go wsUpgrade: Safari takes no fragmented compressed frames.
    up.no_compressed_fragments = up.compress
        && up.browser
        && req
            .header("User-Agent")
            .is_some_and(|ua| ua.contains("Version/") && ua.contains("Safari/"));
    if up.compress {
        reply.push_str(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n",
        );
    }
    if up.no_masking {
        reply.push_str("Nats-No-Masking: true\r\n");
    }
    reply.push_str("\r\n");
    stream.write_all(reply.as_bytes()).await.map_err(|_| None)?;
    stream.flush().await.map_err(|_| None)?;
    Ok(up)
}

/// websocket.go wsPMCExtensionSupport: a `Sec-WebSocket-Extensions` parameter is
/// `permessage-deflate`.
fn offers_deflate(req: &Request) -> bool {
    req.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
        .flat_map(|(_, v)| v.split(','))
        .flat_map(|ext| ext.split(';'))
        .any(|p| {
            p.trim_matches([' ', '\t'])
                .eq_ignore_ascii_case("permessage-deflate")
        })
}

/// Largest frame sent to a browser (websocket.go wsFrameSizeForBrowsers).
const BROWSER_FRAME: usize = 4096;

/// Messages at most this long go uncompressed (websocket.go wsCompressThreshold).
const COMPRESS_THRESHOLD: usize = 64;
/// Largest message a compressed frame may inflate to: a bound on what a small frame can
/// make the server hold (nats-server has none).
const MAX_INFLATED: u64 = 64 * 1024 * 1024;

/// Raw deflate of one message, sync-flushed, without the trailing empty block
/// (RFC 7692 section 7.2.1).
fn deflate(parts: &[&[u8]]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    for p in parts {
        e.write_all(p)?;
    }
    e.flush()?;
    let mut out = std::mem::take(e.get_mut());
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    Ok(out)
}

/// Inflates one message (websocket.go decompress: the payload and a final empty block).
fn inflate(data: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    const LAST: [u8; 9] = [0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff];
    let input = data.iter().chain(LAST.iter()).copied().collect::<Vec<u8>>();
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(&input[..])
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(format!(
            "decompressed message larger than {MAX_INFLATED} bytes"
        ));
    }
    Ok(out)
}

/// A frame header for a server frame (never masked): opcode, FIN, length.
fn frame_header(opcode: u8, len: usize) -> Vec<u8> {
    frame_header_rsv(opcode, len, false)
}

/// [`frame_header`], with RSV1 set for a compressed message.
fn frame_header_rsv(opcode: u8, len: usize, compressed: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(10);
    h.push(0x80 | if compressed { 0x40 } else { 0 } | opcode);
    if len <= 125 {
        h.push(len as u8);
    } else if len < 65_536 {
        h.push(126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h
}

/// websocket.go wsCreateCloseMessage: the status, then the text, cut to fit a control
/// frame with "..." at the end.
fn close_payload(status: u16, body: &str) -> Vec<u8> {
    let mut body = body.to_string();
    if body.len() > MAX_CONTROL_PAYLOAD - 2 {
        let mut cut = MAX_CONTROL_PAYLOAD - 5;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push_str("...");
    }
    let mut p = status.to_be_bytes().to_vec();
    p.extend_from_slice(body.as_bytes());
    p
}

/// websocket.go wsEnqueueCloseMessage: the close status for why the connection ends.
fn close_status(reason: ClosedState) -> u16 {
    use ClosedState::*;
    match reason {
        ClientClosed => CLOSE_NORMAL,
        AuthenticationTimeout
        | AuthenticationViolation
        | SlowConsumerPendingBytes
        | SlowConsumerWriteDeadline
        | MaxConnectionsExceeded
        | MaxControlLineExceeded
        | MaxSubscriptionsExceeded => CLOSE_POLICY,
        TlsHandshakeError => CLOSE_TLS,
        ParseError | ProtocolViolation | BadClientProtocolVersion => CLOSE_PROTOCOL_ERROR,
        MaxPayloadExceeded => CLOSE_TOO_BIG,
        ServerShutdown => CLOSE_GOING_AWAY,
        WriteError | ReadError | StaleConnection => CLOSE_ABNORMAL,
        _ => CLOSE_INTERNAL,
    }
}

/// Control frames the reader owes the peer (PONGs, the CLOSE reply), sent by the writer.
#[derive(Default)]
pub struct WsControl {
    /// PONG frames owed, sent before the next data.
    pongs: Mutex<Vec<u8>>,
    /// The CLOSE frame, sent after the data already pending (websocket.go keeps `closeMsg`
    /// apart and appends it last), then nothing more.
    close: Mutex<Option<Vec<u8>>>,
    /// A CLOSE frame is queued or sent: only one goes out.
    close_queued: AtomicBool,
}

/// Most PONG bytes kept for a peer that sends PINGs and does not read: further PINGs go
/// unanswered until these are written (RFC 6455 5.5.3 lets a PONG answer only the latest
/// PING). nats-server queues without a bound.
const MAX_PENDING_PONGS: usize = 64 * 1024;

impl WsControl {
    fn queue_pong(&self, payload: &[u8]) {
        let mut f = super::lock(&self.pongs);
        if f.len() < MAX_PENDING_PONGS {
            f.extend_from_slice(&frame_header(OP_PONG, payload.len()));
            f.extend_from_slice(payload);
        }
    }

    fn queue_close(&self, payload: &[u8]) {
        if self.close_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut f = frame_header(OP_CLOSE, payload.len());
        f.extend_from_slice(payload);
        *super::lock(&self.close) = Some(f);
    }

    fn take_pongs(&self) -> Vec<u8> {
        std::mem::take(&mut *super::lock(&self.pongs))
    }

    fn take_close(&self) -> Option<Vec<u8>> {
        super::lock(&self.close).take()
    }

    fn pending(&self) -> bool {
        !super::lock(&self.pongs).is_empty() || super::lock(&self.close).is_some()
    }
}

/// A websocket protocol error on the read side (the connection closes as Read Error and
/// logs `read error: …`, client.go readLoop).
#[derive(Debug)]
pub struct WsProtocolError(pub String);

impl std::fmt::Display for WsProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WsProtocolError {}

enum ReadState {
    Header,
    Payload {
        rem: u64,
        key: Option<[u8; 4]>,
        kpos: usize,
    },
    /// The peer's CLOSE was answered: end of stream.
    Closed,
}

/// The read half: websocket frames in, NATS protocol bytes out.
pub struct WsReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    state: ReadState,
    /// A fragmented message is in progress (websocket.go `!r.ff`).
    in_message: bool,
    masked: bool,
    /// The message in progress is compressed: its payload collects here (websocket.go
    /// `r.fc`, `r.cbufs`).
    deflated: Option<Vec<u8>>,
    /// An inflated message not yet handed out, and how much of it was.
    inflated: Vec<u8>,
    inflated_pos: usize,
    ctrl: Arc<WsControl>,
    shared: Arc<ClientShared>,
}

impl<R> WsReader<R> {
    pub fn new(inner: R, ctrl: Arc<WsControl>, shared: Arc<ClientShared>, up: &Upgrade) -> Self {
        WsReader {
            inner,
            buf: vec![0; 32 * 1024],
            start: 0,
            end: 0,
            state: ReadState::Header,
            in_message: false,
            masked: !up.no_masking,
            deflated: None,
            inflated: Vec::new(),
            inflated_pos: 0,
            ctrl,
            shared,
        }
    }

    /// A read error that is not a framing error (a compressed message that does not
    /// inflate or is too large): the connection closes as Read Error without a CLOSE frame,
    /// as in websocket.go, which returns these errors as they are.
    fn protocol_error(&self, msg: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, WsProtocolError(msg))
    }

    /// A framing error (websocket.go wsHandleProtocolError): a CLOSE 1002 with the reason
    /// is queued, then the connection closes as Read Error. The writer sends that frame
    /// before it closes (RFC 6455 7.1.7: an endpoint that fails the connection SHOULD send
    /// one). nats-server queues it too but closes at once, so there the frame reaches the
    /// peer only when its flusher wins that race.
    fn framing_error(&self, msg: String) -> io::Error {
        self.ctrl
            .queue_close(&close_payload(CLOSE_PROTOCOL_ERROR, &msg));
        self.protocol_error(msg)
    }

    /// Parses one frame header at the front of the buffer (a control frame with its
    /// payload). Ok(false): more bytes are needed.
    fn parse_header(&mut self) -> io::Result<bool> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return Ok(false);
        }
        let (b0, b1) = (b[0], b[1]);
        let opcode = b0 & 0x0F;
        let fin = b0 & 0x80 != 0;
        let compressed = b0 & 0x40 != 0;
        let masked = b1 & 0x80 != 0;
        if self.masked && !masked {
            return Err(self.framing_error("mask bit missing".into()));
        }
        let len7 = (b1 & 0x7F) as usize;
        let control = matches!(opcode, OP_CLOSE | OP_PING | OP_PONG);
        match opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if len7 > MAX_CONTROL_PAYLOAD {
                    return Err(self.framing_error(format!(
                        "control frame length bigger than maximum allowed of {MAX_CONTROL_PAYLOAD} bytes"
                    )));
                }
                if !fin {
                    return Err(
                        self.framing_error("control frame does not have final bit set".into())
                    );
                }
            }
            OP_TEXT | OP_BINARY => {
                if self.in_message {
                    return Err(self.framing_error(
                        "new message started before final frame for previous message was received"
                            .into(),
                    ));
                }
                // nats-server inflates a compressed message even when compression was
                // not negotiated; so do we.
            }
            OP_CONTINUATION => {
                if !self.in_message || compressed {
                    return Err(self.framing_error("invalid continuation frame".into()));
                }
            }
            other => return Err(self.framing_error(format!("unknown opcode {other}"))),
        }
        let (len, mut at) = match len7 {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(l), 10)
            }
            126 | 127 => return Ok(false),
            n => (n as u64, 2),
        };
        let key = if masked {
            if b.len() < at + 4 {
                return Ok(false);
            }
            let k = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(k)
        } else {
            None
        };
        if control {
            let len = len as usize;
            if b.len() < at + len {
                return Ok(false);
            }
            let mut payload = b[at..at + len].to_vec();
            if let Some(k) = key {
                unmask(&mut payload, k, 0);
            }
            self.start += at + len;
            self.control(opcode, &payload);
            return Ok(true);
        }
        // websocket.go `r.ff = final` for data frames; RSV1 on a message's first frame.
        self.in_message = !fin;
        if opcode != OP_CONTINUATION && compressed {
            self.deflated = Some(Vec::new());
        }
        self.start += at;
        self.state = ReadState::Payload {
            rem: len,
            key,
            kpos: 0,
        };
        Ok(true)
    }

    /// websocket.go wsHandleControlFrame.
    fn control(&mut self, opcode: u8, payload: &[u8]) {
        match opcode {
            OP_PING => self.ctrl.queue_pong(payload),
            OP_CLOSE => {
                let mut status = CLOSE_NO_STATUS;
                let mut body = String::new();
                if payload.len() >= 2 {
                    status = u16::from_be_bytes([payload[0], payload[1]]);
                    if payload.len() > 2 {
                        match std::str::from_utf8(&payload[2..]) {
                            Ok(s) => body = s.to_string(),
                            Err(_) => {
                                status = CLOSE_INVALID_PAYLOAD;
                                body = "invalid utf8 body in close frame".into();
                            }
                        }
                    }
                }
                self.ctrl.queue_close(&close_payload(status, &body));
                self.state = ReadState::Closed;
            }
            _ => {}
        }
        self.shared.out.flush_signal();
    }
}

fn unmask(data: &mut [u8], key: [u8; 4], kpos: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[(kpos + i) & 3];
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WsReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if dst.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if me.inflated_pos < me.inflated.len() {
                let n = (me.inflated.len() - me.inflated_pos).min(dst.remaining());
                dst.put_slice(&me.inflated[me.inflated_pos..me.inflated_pos + n]);
                me.inflated_pos += n;
                if me.inflated_pos == me.inflated.len() {
                    me.inflated = Vec::new();
                    me.inflated_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            match &mut me.state {
                ReadState::Closed => return Poll::Ready(Ok(())),
                ReadState::Payload { rem, key, kpos } => {
                    if *rem == 0 {
                        me.state = ReadState::Header;
                        // The last frame of a compressed message: inflate it.
                        if !me.in_message {
                            if let Some(d) = me.deflated.take() {
                                match inflate(&d) {
                                    Ok(out) => me.inflated = out,
                                    Err(e) => return Poll::Ready(Err(me.protocol_error(e))),
                                }
                            }
                        }
                        continue;
                    }
                    let avail = me.end - me.start;
                    if avail > 0 {
                        let limit = if me.deflated.is_some() {
                            usize::MAX
                        } else {
                            dst.remaining()
                        };
                        let n = (*rem).min(avail as u64).min(limit as u64) as usize;
                        let data = &mut me.buf[me.start..me.start + n];
                        if let Some(k) = key {
                            unmask(data, *k, *kpos);
                            *kpos = (*kpos + n) & 3;
                        }
                        me.start += n;
                        *rem -= n as u64;
                        match &mut me.deflated {
                            Some(d) => {
                                if (d.len() + n) as u64 > MAX_INFLATED {
                                    return Poll::Ready(Err(me.protocol_error(format!(
                                        "compressed message larger than {MAX_INFLATED} bytes"
                                    ))));
                                }
                                d.extend_from_slice(data);
                                continue;
                            }
                            None => {
                                dst.put_slice(data);
                                return Poll::Ready(Ok(()));
                            }
                        }
                    }
                }
                ReadState::Header => {
                    if me.parse_header()? {
                        continue;
                    }
                }
            }
            // More bytes from the peer.
            if me.start == me.end {
                me.start = 0;
                me.end = 0;
            } else if me.start > 0 && me.end == me.buf.len() {
                me.buf.copy_within(me.start..me.end, 0);
                me.end -= me.start;
                me.start = 0;
            }
            let mut rb = ReadBuf::new(&mut me.buf[me.end..]);
            match Pin::new(&mut me.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    me.end += n;
                }
            }
        }
    }
}

/// The write half: what the connection's writer hands over goes out as binary frames,
/// after any control frames the reader queued.
pub struct WsWriter<W> {
    inner: W,
    ctrl: Arc<WsControl>,
    /// The CLOSE frame went out: nothing follows it.
    closed: bool,
    /// A write failed, timed out or was cancelled, maybe inside a frame: no CLOSE frame may
    /// follow.
    broken: bool,
    /// Per-message deflate was negotiated: messages above 64 bytes go compressed.
    compress: bool,
    /// Cut frames at [`BROWSER_FRAME`] (a browser), and also compressed ones unless
    /// `whole_compressed` (Safari).
    browser: bool,
    whole_compressed: bool,
    /// A frame being written through [`AsyncWrite`] (header + data) and its data length.
    frame: Vec<u8>,
    frame_pos: usize,
    frame_data: usize,
}

impl<W> WsWriter<W> {
    pub fn new(inner: W, ctrl: Arc<WsControl>, up: &Upgrade) -> Self {
        WsWriter {
            inner,
            ctrl,
            closed: false,
            broken: false,
            compress: up.compress,
            browser: up.browser,
            whole_compressed: up.no_compressed_fragments,
            frame: Vec::new(),
            frame_pos: 0,
            frame_data: 0,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for WsWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if me.frame.is_empty() {
            me.frame = me.ctrl.take_pongs();
            me.frame
                .extend_from_slice(&frame_header(OP_BINARY, data.len()));
            me.frame.extend_from_slice(data);
            me.frame_pos = 0;
            me.frame_data = data.len();
        }
        while me.frame_pos < me.frame.len() {
            let n = std::task::ready!(
                Pin::new(&mut me.inner).poll_write(cx, &me.frame[me.frame_pos..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            me.frame_pos += n;
        }
        me.frame.clear();
        Poll::Ready(Ok(me.frame_data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The pending bytes of `chunks` from `off` on, as slices.
fn pending_parts(chunks: &Chunks, off: usize) -> Vec<&[u8]> {
    let mut skip = off;
    chunks
        .iter()
        .map(|c| {
            let from = std::mem::take(&mut skip).min(c.len());
            &c[from..]
        })
        .collect()
}

impl<W: AsyncWrite + Unpin> WsWriter<W> {
    /// Writes `frames` carrying `total` data bytes within `deadline`, with a queued CLOSE
    /// after them (then nothing more goes out).
    async fn write_frames(
        &mut self,
        mut frames: Vec<u8>,
        total: usize,
        deadline: Duration,
    ) -> (usize, WriteEnd) {
        if let Some(close) = self.ctrl.take_close() {
            frames.extend_from_slice(&close);
            self.closed = true;
        }
        match tokio::time::timeout(deadline, self.inner.write_all(&frames)).await {
            Ok(Ok(())) => (total, WriteEnd::Done),
            Ok(Err(_)) => (0, WriteEnd::Error),
            Err(_) => (0, WriteEnd::Timeout),
        }
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> ChunkSink for WsWriter<W> {
    async fn write_pending(
        &mut self,
        chunks: &mut Chunks,
        off: &mut usize,
        deadline: Duration,
    ) -> (usize, WriteEnd) {
        // Set while frames are being written: a write that fails, times out or is cancelled
        // (a slow consumer cut) may leave a frame unfinished.
        self.broken = true;
        let (n, end) = self.write_pending_frames(chunks, off, deadline).await;
        self.broken = !matches!(end, WriteEnd::Done);
        (n, end)
    }

    fn has_control(&self) -> bool {
        self.ctrl.pending()
    }

    /// The CLOSE frame the connection ends with, if one is owed.
    async fn finish(&mut self, reason: Option<ClosedState>) {
        use ClosedState::*;
        if self.closed || self.broken {
            return;
        }
        // client.go markConnAsClosed: these close without flushing, so without a CLOSE of
        // their own. A framing error's CLOSE 1002 (`WsReader::framing_error`) is the
        // exception: the writer mostly sends it after the data already pending, woken by the
        // reader; if it is still queued here, it goes out alone, within the writer's bound.
        let skip = matches!(
            reason,
            Some(ReadError | WriteError | SlowConsumerPendingBytes | SlowConsumerWriteDeadline)
                | Some(TlsHandshakeError)
        );
        match reason {
            Some(ReadError) => {}
            _ if skip => return,
            Some(r) => self
                .ctrl
                .queue_close(&close_payload(close_status(r), r.as_str())),
            None => {}
        }
        let mut frames = if skip {
            Vec::new()
        } else {
            self.ctrl.take_pongs()
        };
        if let Some(close) = self.ctrl.take_close() {
            frames.extend_from_slice(&close);
            self.closed = true;
        }
        if !frames.is_empty() {
            let _ = self.inner.write_all(&frames).await;
            let _ = self.inner.flush().await;
        }
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> WsWriter<W> {
    /// [`ChunkSink::write_pending`]: what is pending as frames, with a queued CLOSE after.
    async fn write_pending_frames(
        &mut self,
        chunks: &mut Chunks,
        off: &mut usize,
        deadline: Duration,
    ) -> (usize, WriteEnd) {
        let total = chunks.iter().map(Vec::len).sum::<usize>() - *off;
        if self.closed {
            // After the CLOSE frame the peer takes no data (RFC 6455 5.5.1).
            return (total, WriteEnd::Done);
        }
        let mut head = self.ctrl.take_pongs();
        if self.compress && total > COMPRESS_THRESHOLD {
            // websocket.go wsCollapsePtoNB: what is pending goes out as one compressed
            // message.
            let Ok(body) = deflate(&pending_parts(chunks, *off)) else {
                return (0, WriteEnd::Error);
            };
            if self.browser && !self.whole_compressed && body.len() > BROWSER_FRAME {
                // One compressed message in fragments: RSV1 on the first only.
                let pieces: Vec<&[u8]> = body.chunks(BROWSER_FRAME).collect();
                let last = pieces.len() - 1;
                for (i, p) in pieces.into_iter().enumerate() {
                    let b0 = match i {
                        0 => 0x40 | OP_BINARY,
                        n if n == last => 0x80 | OP_CONTINUATION,
                        _ => OP_CONTINUATION,
                    };
                    let mut h = frame_header(OP_BINARY, p.len());
                    h[0] = b0;
                    head.extend_from_slice(&h);
                    head.extend_from_slice(p);
                }
            } else {
                head.extend_from_slice(&frame_header_rsv(OP_BINARY, body.len(), true));
                head.extend_from_slice(&body);
            }
            return self.write_frames(head, total, deadline).await;
        }
        if total == 0 {
            if let Some(close) = self.ctrl.take_close() {
                head.extend_from_slice(&close);
                self.closed = true;
            }
        }
        if self.browser && total > BROWSER_FRAME {
            // websocket.go wsCollapsePtoNB: browsers get frames of at most 4 KB, each a
            // whole binary message (the NATS protocol is a byte stream).
            let data = pending_parts(chunks, *off).concat();
            for p in data.chunks(BROWSER_FRAME) {
                head.extend_from_slice(&frame_header(OP_BINARY, p.len()));
                head.extend_from_slice(p);
            }
            return self.write_frames(head, total, deadline).await;
        }
        if total > 0 {
            head.extend_from_slice(&frame_header(OP_BINARY, total));
        }
        if !head.is_empty() {
            match tokio::time::timeout(deadline, self.inner.write_all(&head)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return (0, WriteEnd::Error),
                Err(_) => return (0, WriteEnd::Timeout),
            }
        }
        if total == 0 {
            return (0, WriteEnd::Done);
        }
        let (n, end) = write_chunks(&mut self.inner, chunks, *off, deadline).await;
        if end == WriteEnd::Timeout {
            *off = consume(chunks, *off, n);
        }
        if end == WriteEnd::Done {
            if let Some(close) = self.ctrl.take_close() {
                self.closed = true;
                match tokio::time::timeout(deadline, self.inner.write_all(&close)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return (n, WriteEnd::Error),
                    Err(_) => return (n, WriteEnd::Timeout),
                }
            }
        }
        (n, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn origins_follow_scheme_default_ports() {
        let rules = OriginRules::new(false, &["https://example.com".to_string()]);
        let req = |origin: &str| {
            let head = format!("GET / HTTP/1.1\r\nHost: example.com\r\nOrigin: {origin}\r\n\r\n");
            parse_request(head.as_bytes()).unwrap().unwrap().0
        };
        assert!(rules.check(&req("https://EXAMPLE.com:443"), false).is_ok());
        assert!(rules.check(&req("http://example.com"), false).is_err());
        assert!(rules
            .check(&req("https://example.com:8443"), false)
            .is_err());
        let same = OriginRules::new(true, &[]);
        assert!(same.check(&req("http://example.com"), false).is_ok());
        assert!(same.check(&req("http://example.com:81"), false).is_err());
        assert!(same.check(&req("https://example.com"), true).is_ok());
    }

    #[test]
    fn a_later_origin_for_a_host_replaces_an_earlier_one() {
        let rules = OriginRules::new(
            false,
            &["http://a.com".to_string(), "https://a.com".to_string()],
        );
        assert_eq!(rules.allowed.len(), 1);
        assert_eq!(rules.allowed[0].1, "https");
    }

    /// A client frame as a browser would send it: masked with a per-frame key.
    fn client_frame(b0: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut f = vec![b0];
        match payload.len() {
            n if n <= 125 => f.push(0x80 | n as u8),
            n if n < 65_536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        f
    }

    /// The reader gives back exactly the payload bytes, whatever the frame sizes (7-, 16-
    /// and 64-bit lengths), fragmentation, interleaved PINGs and the sizes the bytes arrive
    /// in; every PING is answered.
    #[tokio::test]
    async fn reader_reassembles_any_framing_and_split() {
        use rand::{Rng, SeedableRng};
        for seed in 0..4u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let payload: Vec<u8> = (0..300_000).map(|_| rng.random()).collect();
            let mut wire = Vec::new();
            let mut pings = 0;
            let mut pos = 0;
            let mut in_message = false;
            while pos < payload.len() {
                let n = match rng.random_range(0..10) {
                    0 => rng.random_range(65_536..100_000),
                    1..=3 => rng.random_range(126..5000),
                    _ => rng.random_range(0..126),
                }
                .min(payload.len() - pos);
                let fin = rng.random_bool(0.6) || pos + n == payload.len();
                let op = if in_message {
                    OP_CONTINUATION
                } else {
                    OP_BINARY
                };
                let b0 = if fin { 0x80 | op } else { op };
                let key: [u8; 4] = rng.random();
                wire.extend(client_frame(b0, &payload[pos..pos + n], key));
                in_message = !fin;
                pos += n;
                if rng.random_bool(0.1) {
                    wire.extend(client_frame(0x80 | OP_PING, b"p", rng.random()));
                    pings += 1;
                }
            }
            // Feed it in random pieces through a pipe.
            let (mut tx, rx) = tokio::io::duplex(1 << 16);
            let pieces: Vec<usize> = {
                let mut v = Vec::new();
                let mut left = wire.len();
                while left > 0 {
                    let n = rng.random_range(1..40_000).min(left);
                    v.push(n);
                    left -= n;
                }
                v
            };
            let feeder = tokio::spawn(async move {
                let mut at = 0;
                for n in pieces {
                    tx.write_all(&wire[at..at + n]).await.unwrap();
                    at += n;
                }
            });
            let ctrl = Arc::new(WsControl::default());
            let shared = Arc::new(ClientShared::new(
                1,
                crate::proto::ConnKind::Client,
                "127.0.0.1:1".parse().unwrap(),
                1 << 20,
            ));
            let mut rd = WsReader::new(rx, ctrl.clone(), shared, &Upgrade::default());
            let mut got = Vec::new();
            tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut got))
                .await
                .expect("in time")
                .expect("read");
            feeder.await.unwrap();
            assert_eq!(got.len(), payload.len(), "seed {seed}");
            assert!(got == payload, "seed {seed}: bytes differ");
            let pongs = ctrl.take_pongs();
            assert_eq!(pongs.len(), pings * 3, "seed {seed}");
        }
    }

    /// Each framing error queues a CLOSE 1002 with nats-server's reason text
    /// (wsHandleProtocolError); a compressed message that does not inflate is a read error
    /// without a CLOSE frame, as in websocket.go.
    #[tokio::test]
    async fn framing_errors_queue_close_1002_with_the_reason() {
        let key = [1, 2, 3, 4];
        let mut unmasked = client_frame(0x82, b"PING\r\n", key);
        unmasked[1] &= 0x7F;
        unmasked.drain(2..6);
        let mut long_ping = client_frame(0x80 | OP_PING, &[0; 126], key);
        long_ping[1] = 0x80 | 126;
        let mut bad_deflate = client_frame(0xC2, b"\xff\xff\xff\xff", key);
        bad_deflate[0] = 0x80 | 0x40 | OP_BINARY;
        let cases: Vec<(Vec<u8>, bool, &str)> = vec![
            (unmasked, false, "mask bit missing"),
            (
                long_ping,
                false,
                "control frame length bigger than maximum allowed of 125 bytes",
            ),
            (
                client_frame(OP_PING, b"p", key),
                false,
                "control frame does not have final bit set",
            ),
            (
                [
                    client_frame(OP_BINARY, b"a", key),
                    client_frame(0x82, b"b", key),
                ]
                .concat(),
                false,
                "new message started before final frame for previous message was received",
            ),
            (
                client_frame(0x80 | OP_CONTINUATION, b"a", key),
                false,
                "invalid continuation frame",
            ),
            (client_frame(0x83, b"a", key), false, "unknown opcode 3"),
            (bad_deflate, true, ""),
        ];
        for (wire, compress, reason) in cases {
            let (mut tx, rx) = tokio::io::duplex(1 << 16);
            tx.write_all(&wire).await.unwrap();
            drop(tx);
            let ctrl = Arc::new(WsControl::default());
            let shared = Arc::new(ClientShared::new(
                1,
                crate::proto::ConnKind::Client,
                "127.0.0.1:1".parse().unwrap(),
                1 << 20,
            ));
            let up = Upgrade {
                compress,
                ..Upgrade::default()
            };
            let mut rd = WsReader::new(rx, ctrl.clone(), shared, &up);
            let mut got = Vec::new();
            let err = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut got))
                .await
                .expect("in time")
                .expect_err(reason);
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{reason}: {err}");
            match ctrl.take_close() {
                Some(f) if !compress => {
                    let mut want = frame_header(OP_CLOSE, reason.len() + 2);
                    want.extend_from_slice(&close_payload(CLOSE_PROTOCOL_ERROR, reason));
                    assert_eq!(f, want, "{reason}");
                    assert_eq!(err.to_string(), reason);
                }
                None if compress => {}
                other => panic!("{reason:?}: close frame {other:?}"),
            }
        }
    }

    #[test]
    fn close_text_is_cut_to_a_control_frame() {
        let p = close_payload(1002, &"x".repeat(200));
        assert_eq!(p.len(), MAX_CONTROL_PAYLOAD);
        assert!(p.ends_with(b"..."));
    }
}
