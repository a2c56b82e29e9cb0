//! A minimal HTTP/1.1 request parser and response writer for the monitoring
//! port (RFC 9112), plus nats-server's query-parameter decoders
//! (`server/monitor.go` `decodeBool`, `decodeInt`, ...) with their exact
//! error texts.
//!
//! Pure: no I/O here. Only GET and HEAD without a body are served; the head
//! of a request is bounded by [`MAX_HEAD`].

use super::gofmt::go_quote;

/// Largest request head (request line + headers) we read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines we accept.
pub const MAX_HEADERS: usize = 100;

/// Why a request could not be parsed; each maps to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("malformed header line")]
    BadHeader,
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("unsupported HTTP version")]
    BadVersion,
    #[error("request bodies are not accepted")]
    BodyNotAllowed,
    /// Go's net/http answers an HTTP/1.1 request without `Host` this way.
    #[error("missing required Host header")]
    MissingHost,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => 431,
            HttpError::BadVersion => 505,
            HttpError::BodyNotAllowed => 413,
            HttpError::BadRequestLine | HttpError::BadHeader | HttpError::MissingHost => 400,
        }
    }
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    pub query: Query,
    /// The query as sent (for redirects).
    pub raw_query: String,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// The header lines as sent (name, value without surrounding blanks).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (case-insensitive, as Go canonicalises names).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// websocket.go wsHeaderContains: any value of `name` has the comma-separated token
    /// `value` (case-insensitive).
    pub fn contains(&self, name: &str, value: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(value))
    }
}

/// Query parameters in order, decoded like Go's `url.ParseQuery`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Go's `url.ParseQuery`: `&`-separated `key=value` pairs, `+` is a
    /// space, `%XX` escapes; pairs with a `;` (rejected since Go 1.17) or a
    /// bad escape are dropped, as `Query()` drops them.
    pub fn parse(raw: &str) -> Query {
        let mut pairs = Vec::new();
        for part in raw.split('&') {
            if part.is_empty() || part.contains(';') {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if let (Some(k), Some(v)) = (unescape(k, true), unescape(v, true)) {
                pairs.push((k, v));
            }
        }
        Query { pairs }
    }

    /// The first value of `key`, or "" (Go's `Values.Get`).
    pub fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decoding; `plus` turns `+` into a space (query form).
fn unescape(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Finds the end of the request head: the index just past the empty line.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&c| c == b'\n') {
        let nl = i + off;
        let next = &buf[nl + 1..];
        if next.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        if next.starts_with(b"\n") {
            return Some(nl + 2);
        }
        i = nl + 1;
    }
    None
}

/// Parses one request head from the start of `buf`. `Ok(None)` = need more
/// bytes. On success returns the request and the bytes it used.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let skip = buf
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[skip..];
    let Some(end) = head_end(rest) else {
        if buf.len() > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        return Ok(None);
    };
    if skip + end > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&rest[..end]).map_err(|_| HttpError::BadHeader)?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().ok_or(HttpError::BadRequestLine)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    if method.is_empty() || !method.bytes().all(|c| c.is_ascii_alphabetic()) {
        return Err(HttpError::BadRequestLine);
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Err(HttpError::BadVersion),
        _ => return Err(HttpError::BadRequestLine),
    };
    let (path, query, raw_query) = split_target(target)?;

    let mut keep_alive = http11;
    let mut host = false;
    let mut headers = Vec::new();
    let mut count = 0;
    for l in lines {
        if l.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(HttpError::TooManyHeaders);
        }
        let (name, value) = l.split_once(':').ok_or(HttpError::BadHeader)?;
        if name.is_empty() || name.ends_with(' ') || name.ends_with('\t') {
            // RFC 9112 §5.1: no whitespace between name and colon.
            return Err(HttpError::BadHeader);
        }
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        headers.push((name.to_string(), value.to_string()));
        if name.eq_ignore_ascii_case("host") {
            host = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if value != "0" {
                return Err(HttpError::BodyNotAllowed);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::BodyNotAllowed);
        }
    }
    if http11 && !host {
        return Err(HttpError::MissingHost);
    }
    Ok(Some((
        Request {
            method: method.to_string(),
            path,
            query,
            raw_query,
            keep_alive,
            headers,
        },
        skip + end,
    )))
}

/// Origin form `/p?q`, or absolute form `http://host/p?q`.
fn split_target(target: &str) -> Result<(String, Query, String), HttpError> {
    // Go's url.Parse: "invalid control character in URL" (a 400).
    if target.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(HttpError::BadRequestLine);
    }
    let t = if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        rest.find('/').map(|i| &rest[i..]).unwrap_or("/")
    } else {
        target
    };
    if !t.starts_with('/') {
        return Err(HttpError::BadRequestLine);
    }
    let (raw_path, raw_query) = t.split_once('?').unwrap_or((t, ""));
    let path = unescape(raw_path, false).ok_or(HttpError::BadRequestLine)?;
    Ok((path, Query::parse(raw_query), raw_query.to_string()))
}

/// Go's `url.PathEscape`-like escaping of a path for `URL.String()`
/// (`shouldEscape` in encodePath mode): letters, digits and `-_.~$&+,/:;=@`
/// stay; every other byte (controls, space, `?`, `#`, `%`, `\`, non-ASCII) is
/// written `%XX`. Keeps a decoded path from injecting headers or a new
/// query into a redirect's `Location`.
pub fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for &b in p.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Go's ServeMux `cleanPath`: `path.Clean` (no `.`/`..` segments, no repeated
/// slashes), keeping a trailing slash. A request whose path differs is
/// redirected there (301) before any handler runs.
pub fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut np = format!("/{}", out.join("/"));
    if p.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

/// A response about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Headers beyond the ones every response carries.
    pub extra: Vec<(&'static str, String)>,
}

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";
/// Prometheus text exposition format 0.0.4.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type,
            body,
            extra: Vec::new(),
        }
    }

    pub fn json(body: Vec<u8>) -> Self {
        Response::new(200, JSON, body)
    }

    /// A plain-text error, as nats-server's handlers write them.
    pub fn text(status: u16, msg: impl Into<String>) -> Self {
        Response::new(status, TEXT, msg.into().into_bytes())
    }

    /// Go's `http.NotFound` (via `http.Error`, which adds `nosniff`).
    pub fn not_found() -> Self {
        let mut r = Response::text(404, "404 page not found\n");
        r.extra
            .push(("X-Content-Type-Options", "nosniff".to_string()));
        r
    }

    /// Go's `http.Redirect` with 301, as ServeMux sends for an unclean path:
    /// `location` must be escaped already ([`escape_path`]); the HTML body only
    /// goes with GET (and its length with HEAD).
    pub fn moved_permanently(location: &str, method: &str) -> Self {
        let mut r = if method == "GET" || method == "HEAD" {
            let body = format!(
                "<a href=\"{}\">Moved Permanently</a>.\n\n",
                html_escape(location)
            );
            Response::new(301, HTML, body.into_bytes())
        } else {
            Response::new(301, "", Vec::new())
        };
        r.extra.push(("Location", location.to_string()));
        r
    }

    /// The bytes on the wire. `head_only` for HEAD requests.
    pub fn encode(&self, head_only: bool, keep_alive: bool, date: &str) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        if !self.content_type.is_empty() {
            out.push_str(&format!("Content-Type: {}\r\n", self.content_type));
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nDate: {}\r\n",
            self.body.len(),
            date
        ));
        for (name, value) in &self.extra {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !keep_alive {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// Go's `htmlEscape` in net/http (`<>&"'`).
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A bad query parameter: the 400 body nats-server writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// nats-server `decodeBool`.
pub fn decode_bool(q: &Query, param: &str) -> Result<bool, ParamError> {
    let s = q.get(param);
    if s.is_empty() {
        return Ok(false);
    }
    crate::cli::parse_go_bool(s).ok_or_else(|| {
        ParamError(format!(
            "Error decoding boolean for '{param}': strconv.ParseBool: parsing {}: invalid syntax",
            go_quote(s)
        ))
    })
}

/// Digits only, with overflow reported separately (Go's two strconv errors).
fn parse_digits(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err("invalid syntax");
    }
    s.parse::<u64>().map_err(|_| "value out of range")
}

/// nats-server `decodeInt` (Go `strconv.Atoi`, 64-bit int).
pub fn decode_int(q: &Query, param: &str) -> Result<i64, ParamError> {
    let s = q.get(param);
    if s.is_empty() {
        return Ok(0);
    }
    let (neg, digits) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let v = parse_digits(digits).and_then(|v| {
        let limit = if neg {
            i64::MAX as u64 + 1
        } else {
            i64::MAX as u64
        };
        if v > limit {
            Err("value out of range")
        } else if neg {
            Ok((v as i64).wrapping_neg())
        } else {
            Ok(v as i64)
        }
    });
    v.map_err(|why| {
        ParamError(format!(
            "Error decoding int for '{param}': strconv.Atoi: parsing {}: {why}",
            go_quote(s)
        ))
    })
}

/// nats-server `decodeUint64` (Go `strconv.ParseUint`, no sign allowed).
pub fn decode_uint64(q: &Query, param: &str) -> Result<u64, ParamError> {
    let s = q.get(param);
    if s.is_empty() {
        return Ok(0);
    }
    parse_digits(s).map_err(|why| {
        ParamError(format!(
            "Error decoding uint64 for '{param}': strconv.ParseUint: parsing {}: {why}",
            go_quote(s)
        ))
    })
}

/// Which connections /connz lists (nats-server `ConnState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Open,
    Closed,
    All,
}

/// nats-server `decodeState`.
pub fn decode_state(q: &Query) -> Result<ConnState, ParamError> {
    let s = q.get("state");
    match s.to_ascii_lowercase().as_str() {
        "" | "open" => Ok(ConnState::Open),
        "closed" => Ok(ConnState::Closed),
        "any" | "all" => Ok(ConnState::All),
        _ => Err(ParamError(format!("Error decoding state for {s}"))),
    }
}

/// How much of a connection's subscriptions to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubsLevel {
    #[default]
    None,
    Subjects,
    Detail,
}

/// nats-server `decodeSubs`: `subs=detail`, or a boolean.
pub fn decode_subs(q: &Query) -> Result<SubsLevel, ParamError> {
    if q.get("subs").eq_ignore_ascii_case("detail") {
        return Ok(SubsLevel::Detail);
    }
    Ok(if decode_bool(q, "subs")? {
        SubsLevel::Subjects
    } else {
        SubsLevel::None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Option<(Request, usize)>, HttpError> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn parses_a_get_with_query() {
        let raw = "GET /connz?sort=bytes_to&limit=2&x=a+b%21 HTTP/1.1\r\nHost: h\r\n\r\nrest";
        let (r, used) = req(raw).unwrap().unwrap();
        assert_eq!(used, raw.len() - 4);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/connz");
        assert_eq!(r.query.get("sort"), "bytes_to");
        assert_eq!(r.query.get("limit"), "2");
        assert_eq!(r.query.get("x"), "a b!");
        assert_eq!(r.query.get("missing"), "");
        assert!(r.keep_alive);
    }

    #[test]
    fn incomplete_heads_wait_for_more() {
        assert_eq!(req("GET /varz HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(req(""), Ok(None));
        assert_eq!(req("\r\n"), Ok(None));
    }

    #[test]
    fn every_split_point_waits_then_parses_the_same() {
        let raw = b"GET /connz?subs=1&sort=cid HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
        let (whole, used) = parse_request(raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        for cut in 0..raw.len() {
            assert_eq!(parse_request(&raw[..cut]), Ok(None), "cut at {cut}");
        }
        // Two pipelined requests: the first is taken, the rest stays.
        let mut two = raw.to_vec();
        two.extend_from_slice(b"GET /varz HTTP/1.1\r\nHost: a\r\n\r\n");
        let (first, used) = parse_request(&two).unwrap().unwrap();
        assert_eq!(first, whole);
        let (second, _) = parse_request(&two[used..]).unwrap().unwrap();
        assert_eq!(second.path, "/varz");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Deterministic pseudo-random inputs, including near-valid ones.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"GET /?=&%+ HTP1.0\r\n:ab\xff";
        for len in 0..400 {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = parse_request(&buf);
            let _ = Query::parse(&String::from_utf8_lossy(&buf));
        }
    }

    #[test]
    fn bare_lf_and_leading_empty_lines() {
        let raw = "\r\nGET /varz HTTP/1.0\nConnection: keep-alive\n\n";
        let (r, used) = req(raw).unwrap().unwrap();
        assert_eq!(r.path, "/varz");
        assert!(r.keep_alive);
        assert_eq!(used, raw.len());
    }

    #[test]
    fn connection_close_and_http10_default() {
        let (r, _) = req("GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!r.keep_alive);
        let (r, _) = req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!r.keep_alive);
    }

    #[test]
    fn absolute_form_and_escaped_path() {
        let (r, _) = req("GET http://h:8222/var%7A?a=1 HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.path, "/varz");
        assert_eq!(r.query.get("a"), "1");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(req("GET /\r\n\r\n"), Err(HttpError::BadRequestLine));
        assert_eq!(
            req("GET  / HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadRequestLine)
        );
        assert_eq!(req("GET / HTTP/2.0\r\n\r\n"), Err(HttpError::BadVersion));
        assert_eq!(req("GET / FOO\r\n\r\n"), Err(HttpError::BadRequestLine));
        assert_eq!(
            req("GET varz HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadRequestLine)
        );
        assert_eq!(
            req("GET /%zz HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadRequestLine)
        );
        assert_eq!(
            req("G3T / HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadRequestLine)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
            Err(HttpError::BadHeader)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nA : b\r\n\r\n"),
            Err(HttpError::BadHeader)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
            Err(HttpError::BodyNotAllowed)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::BodyNotAllowed)
        );
        assert!(req("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").is_ok());
        // Go's net/http: HTTP/1.1 needs Host (HTTP/1.0 does not).
        assert_eq!(req("GET / HTTP/1.1\r\n\r\n"), Err(HttpError::MissingHost));
        assert!(req("GET / HTTP/1.0\r\n\r\n").is_ok());
        assert_eq!(
            parse_request(&[0xff, b' ', b'/', b'\n', b'\n']),
            Err(HttpError::BadHeader)
        );
    }

    #[test]
    fn bounded_head() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(req(&big), Err(HttpError::HeadTooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            req(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(HttpError::TooManyHeaders)
        );
    }

    #[test]
    fn query_like_go() {
        let q = Query::parse("a=1&a=2&b&c=%41&bad=%zz&semi=1;x=2&&d=x%20y");
        assert_eq!(q.get("a"), "1");
        assert_eq!(q.get("b"), "");
        assert_eq!(q.get("c"), "A");
        assert_eq!(q.get("bad"), "");
        assert_eq!(q.get("semi"), "");
        assert_eq!(q.get("d"), "x y");
    }

    #[test]
    fn decoders_match_nats_server_texts() {
        let q = Query::parse("subs=zz&limit=x&cid=-1&big=99999999999999999999&neg=-5&t=T");
        assert_eq!(
            decode_bool(&q, "subs").unwrap_err().0,
            "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"zz\": invalid syntax"
        );
        assert_eq!(
            decode_int(&q, "limit").unwrap_err().0,
            "Error decoding int for 'limit': strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            decode_uint64(&q, "cid").unwrap_err().0,
            "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(
            decode_int(&q, "big").unwrap_err().0,
            "Error decoding int for 'big': strconv.Atoi: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(decode_int(&q, "neg"), Ok(-5));
        assert_eq!(decode_int(&q, "absent"), Ok(0));
        assert_eq!(decode_bool(&q, "t"), Ok(true));
        assert_eq!(
            decode_state(&Query::parse("state=zz")).unwrap_err().0,
            "Error decoding state for zz"
        );
        assert_eq!(decode_state(&Query::parse("state=ALL")), Ok(ConnState::All));
        assert_eq!(
            decode_subs(&Query::parse("subs=Detail")),
            Ok(SubsLevel::Detail)
        );
        assert_eq!(
            decode_subs(&Query::parse("subs=1")),
            Ok(SubsLevel::Subjects)
        );
        assert_eq!(decode_subs(&Query::parse("")), Ok(SubsLevel::None));
    }

    #[test]
    fn encodes_responses() {
        let r = Response::json(b"{}".to_vec());
        let wire = String::from_utf8(r.encode(false, true, "D")).unwrap();
        assert_eq!(
            wire,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nDate: D\r\n\r\n{}"
        );
        let head = String::from_utf8(r.encode(true, false, "D")).unwrap();
        assert!(head.ends_with("Connection: close\r\n\r\n"));
        assert!(head.contains("Content-Length: 2\r\n"));
        let m = String::from_utf8(Response::not_found().encode(false, true, "D")).unwrap();
        assert!(m.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(m.contains("X-Content-Type-Options: nosniff\r\n"));
        let m = String::from_utf8(
            Response::moved_permanently("/varz?a=1", "GET").encode(false, true, "D"),
        )
        .unwrap();
        assert!(m.starts_with("HTTP/1.1 301 Moved Permanently\r\n"));
        assert!(m.contains("Location: /varz?a=1\r\n"));
        assert!(m.ends_with("<a href=\"/varz?a=1\">Moved Permanently</a>.\n\n"));
    }

    #[test]
    fn redirect_targets_are_escaped() {
        assert_eq!(
            escape_path("/x\r\nSet-Cookie: a=1"),
            "/x%0D%0ASet-Cookie:%20a=1"
        );
        assert_eq!(escape_path("/\\evil.com"), "/%5Cevil.com");
        assert_eq!(escape_path("/varz?a#b%"), "/varz%3Fa%23b%25");
        assert_eq!(escape_path("/a-b_c.d~e$&+,:;=@"), "/a-b_c.d~e$&+,:;=@");
        assert_eq!(escape_path("/\u{e9}"), "/%C3%A9");
        let post = Response::moved_permanently("/varz", "POST");
        assert!(post.body.is_empty());
        // Raw control bytes in the target are refused, as by Go's url.Parse.
        assert_eq!(
            req("GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n"),
            Err(HttpError::BadRequestLine)
        );
    }

    #[test]
    fn clean_path_follows_go() {
        for (p, want) in [
            ("/varz", "/varz"),
            ("//varz", "/varz"),
            ("/a/./b/../varz", "/a/varz"),
            ("/../varz", "/varz"),
            ("/connz/", "/connz/"),
            ("/connz//", "/connz/"),
            ("/", "/"),
        ] {
            assert_eq!(clean_path(p), want, "{p}");
        }
    }
}
