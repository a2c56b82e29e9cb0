//! Incremental parser for the NATS client and route protocols.
//!
//! The parser is stateless between calls: [`parse_op`] looks at the bytes that
//! start at an operation boundary and either returns one complete operation
//! (borrowing the input), says how many more bytes it needs, or reports a
//! protocol error. The caller keeps the unconsumed tail of its read buffer and
//! calls again once more bytes have arrived. Re-scanning a control line whose
//! payload has not fully arrived costs one short line scan per read, which is
//! cheaper than carrying state.
//!
//! Acceptance rules follow nats-server 2.9.10 `server/parser.go`:
//! - operation names are case-insensitive and must be followed by a space or
//!   tab (PING, PONG and +OK ignore anything up to the newline);
//! - arguments are separated by any run of spaces or tabs;
//! - lines end with `\n`, an optional `\r` before it is dropped;
//! - a payload is exactly `size` bytes followed by `\r\n`;
//! - the control-line limit applies to the argument part only, and is checked
//!   both on complete lines and on lines still waiting for their newline.

use super::{ConnKind, ParseError};

/// One protocol operation, borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// `CONNECT <json>`
    Connect(&'a [u8]),
    /// `INFO <json>` (routes, and clients that echo it back)
    Info(&'a [u8]),
    /// `PUB <subject> [reply] <size>` + payload
    Pub(PubArgs<'a>),
    /// `HPUB <subject> [reply] <hdr size> <total size>` + headers+payload
    HPub(PubArgs<'a>),
    /// `SUB <subject> [queue] <sid>`
    Sub {
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        sid: &'a [u8],
    },
    /// `UNSUB <sid> [max]`; an unparsable max is `Some(-1)` as in nats-server.
    Unsub {
        sid: &'a [u8],
        max: Option<i64>,
    },
    Ping,
    Pong,
    /// `+OK`
    Ok,
    /// `-ERR <text>`
    Err(&'a [u8]),
    /// Route `RS+ <args>` (raw argument line, see `route` module).
    RouteSub(&'a [u8]),
    /// Route `RS- <args>`.
    RouteUnsub(&'a [u8]),
    /// Route `LS+ <args>` (leaf-origin interest forwarded over a route).
    LeafSub(&'a [u8]),
    /// Route `LS- <args>`.
    LeafUnsub(&'a [u8]),
    /// Route `RMSG <args>` + payload (args raw, payload without CRLF).
    RouteMsg {
        args: &'a [u8],
        payload: &'a [u8],
    },
    /// Route `HMSG <args>` + headers+payload.
    RouteHMsg {
        args: &'a [u8],
        hdr_len: usize,
        payload: &'a [u8],
    },
    /// Route `LMSG <args>` + payload.
    LeafMsg {
        args: &'a [u8],
        payload: &'a [u8],
    },
}

/// Arguments of PUB/HPUB. Size tokens are kept raw because nats-server copies
/// them byte for byte into the MSG/HMSG line it delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubArgs<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Header length (0 for PUB).
    pub hdr_len: usize,
    /// The raw header-size token (HPUB only).
    pub hdr_raw: &'a [u8],
    /// The raw total-size token.
    pub size_raw: &'a [u8],
    /// Headers followed by the payload (without the trailing CRLF).
    pub payload: &'a [u8],
}

/// Result of one parse step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    /// A complete operation that used `consumed` bytes of the input.
    Op { op: Op<'a>, consumed: usize },
    /// More input is needed. `total_hint` is the full length of this
    /// operation when already known (a control line waiting for its payload).
    Incomplete { total_hint: Option<usize> },
}

/// Limits the parser enforces.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub max_control_line: usize,
    /// Maximum payload; `None` for no limit (routes).
    pub max_payload: Option<usize>,
    /// Whether HPUB is allowed: the client announced `headers` in CONNECT (routes: always).
    /// nats-server refuses HPUB on its control line otherwise (processHeaderPub).
    pub headers: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kw {
    Connect,
    Info,
    Pub,
    HPub,
    Sub,
    Unsub,
    Ping,
    Pong,
    Ok,
    Err,
    RSub,
    RUnsub,
    LSub,
    LUnsub,
    RMsg,
    HMsg,
    LMsg,
}

impl Kw {
    /// Keyword text, upper case.
    fn text(self) -> &'static [u8] {
        match self {
            Kw::Connect => b"CONNECT",
            Kw::Info => b"INFO",
            Kw::Pub => b"PUB",
            Kw::HPub => b"HPUB",
            Kw::Sub => b"SUB",
            Kw::Unsub => b"UNSUB",
            Kw::Ping => b"PING",
            Kw::Pong => b"PONG",
            Kw::Ok => b"+OK",
            Kw::Err => b"-ERR",
            Kw::RSub => b"RS+",
            Kw::RUnsub => b"RS-",
            Kw::LSub => b"LS+",
            Kw::LUnsub => b"LS-",
            Kw::RMsg => b"RMSG",
            Kw::HMsg => b"HMSG",
            Kw::LMsg => b"LMSG",
        }
    }

    /// Whether the keyword takes arguments (then a space or tab must follow).
    fn takes_args(self) -> bool {
        !matches!(self, Kw::Ping | Kw::Pong | Kw::Ok)
    }
}

const CLIENT_KWS: &[Kw] = &[
    Kw::Pub,
    Kw::HPub,
    Kw::Sub,
    Kw::Unsub,
    Kw::Ping,
    Kw::Pong,
    Kw::Connect,
    Kw::Info,
    Kw::Ok,
    Kw::Err,
];

const ROUTE_KWS: &[Kw] = &[
    Kw::RMsg,
    Kw::HMsg,
    Kw::RSub,
    Kw::RUnsub,
    Kw::LSub,
    Kw::LUnsub,
    Kw::LMsg,
    Kw::Pub,
    Kw::HPub,
    Kw::Sub,
    Kw::Unsub,
    Kw::Ping,
    Kw::Pong,
    Kw::Connect,
    Kw::Info,
    Kw::Ok,
    Kw::Err,
];

/// Outcome of matching the keyword prefix of `buf`.
enum KwMatch {
    /// Keyword and the index right after it.
    Found(Kw, usize),
    /// The input is a prefix of at least one keyword: wait.
    Partial,
    /// No keyword can match.
    None,
}

fn match_keyword(buf: &[u8], kind: ConnKind) -> KwMatch {
    // Fast path for the hot client op: "PUB" then a separator. `x | 0x20`
    // equals b'p'/b'u'/b'b' only for that letter in either case, so this
    // answers exactly what the table scan below would (PUB is its first
    // entry).
    if kind == ConnKind::Client
        && buf.len() > 3
        && buf[0] | 0x20 == b'p'
        && buf[1] | 0x20 == b'u'
        && buf[2] | 0x20 == b'b'
        && is_space(buf[3])
    {
        return KwMatch::Found(Kw::Pub, 3);
    }
    let table = match kind {
        ConnKind::Client => CLIENT_KWS,
        ConnKind::Route => ROUTE_KWS,
    };
    let mut partial = false;
    for &kw in table {
        let text = kw.text();
        let n = text.len().min(buf.len());
        if !buf[..n].eq_ignore_ascii_case(&text[..n]) {
            continue;
        }
        if buf.len() < text.len() {
            partial = true;
            continue;
        }
        // The whole keyword matched; check the separator rule.
        if !kw.takes_args() {
            return KwMatch::Found(kw, text.len());
        }
        match buf.get(text.len()) {
            None => partial = true,
            Some(b' ') | Some(b'\t') => return KwMatch::Found(kw, text.len()),
            // parser.go OP_CONNECT / OP_INFO: any other byte starts the argument
            // ("CONNECT\r\n" and "CONNECTX {}" are CONNECTs whose JSON then fails).
            Some(_) if matches!(kw, Kw::Connect | Kw::Info) => {
                return KwMatch::Found(kw, text.len())
            }
            // "SUBX" is not SUB, but it could not be UNSUB either; keep looking
            // (HPUB vs HMSG share a prefix, handled by the table scan).
            Some(_) => {}
        }
    }
    if partial {
        KwMatch::Partial
    } else {
        KwMatch::None
    }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits an argument line on runs of spaces, tabs and stray CRs (nats-server
/// `splitArg`, which also splits on LF; an LF ends the line here).
pub fn split_args(arg: &[u8]) -> ArgIter<'_> {
    ArgIter {
        rest: arg,
        cr_splits: true,
    }
}

/// Splits PUB/HPUB arguments on runs of spaces and tabs only: nats-server's
/// `processPub`/`processHeaderPub` keep a stray CR inside a token, so
/// `PUB a\rb 1` publishes to the subject `a\rb` (not `a` with reply `b`).
fn split_pub_args(arg: &[u8]) -> ArgIter<'_> {
    ArgIter {
        rest: arg,
        cr_splits: false,
    }
}

/// Iterator over the whitespace-separated tokens of an argument line.
pub struct ArgIter<'a> {
    rest: &'a [u8],
    cr_splits: bool,
}

impl<'a> Iterator for ArgIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        // Every separator is <= b' ', so most bytes are rejected by the
        // first comparison.
        let cr = self.cr_splits;
        let sep =
            |b: u8| b <= b' ' && (b == b' ' || b == b'\t' || (cr && matches!(b, b'\r' | b'\n')));
        let start = self.rest.iter().position(|&b| !sep(b))?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| sep(b)).unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// nats-server `parseSize`: decimal digits only, at most 9 of them.
pub fn parse_size(d: &[u8]) -> Option<usize> {
    if d.is_empty() || d.len() > 9 {
        return None;
    }
    let mut n: usize = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as usize;
    }
    Some(n)
}

/// Collects up to `N` tokens; returns the count (which may exceed N: then
/// the extra tokens were not stored).
fn collect_args<'a, const N: usize>(args: ArgIter<'a>, out: &mut [&'a [u8]; N]) -> usize {
    let mut n = 0;
    for tok in args {
        if n < N {
            out[n] = tok;
        }
        n += 1;
    }
    n
}

/// Parses one operation starting at `buf[0]`.
pub fn parse_op<'a>(
    buf: &'a [u8],
    kind: ConnKind,
    limits: &ParseLimits,
) -> Result<Step<'a>, ParseError> {
    let incomplete = Ok(Step::Incomplete { total_hint: None });
    if buf.is_empty() {
        return incomplete;
    }
    let (kw, after_kw) = match match_keyword(buf, kind) {
        KwMatch::Found(kw, i) => (kw, i),
        KwMatch::Partial => return incomplete,
        KwMatch::None => return Err(ParseError::UnknownOp),
    };
    if !kw.takes_args() {
        // PING/PONG/+OK: anything until the newline is ignored (parser.go
        // OP_PING only reacts to '\n').
        return match memchr(b'\n', &buf[after_kw..]) {
            Some(p) => {
                let op = match kw {
                    Kw::Ping => Op::Ping,
                    Kw::Pong => Op::Pong,
                    _ => Op::Ok,
                };
                Ok(Step::Op {
                    op,
                    consumed: after_kw + p + 1,
                })
            }
            None => incomplete,
        };
    }
    // Skip the separator run, then find the end of line.
    let mut as_ = after_kw;
    while as_ < buf.len() && is_space(buf[as_]) {
        as_ += 1;
    }
    let nl = match memchr(b'\n', &buf[as_..]) {
        Some(p) => as_ + p,
        None => {
            // Control-line limit on a line still waiting for its end
            // (parser.go: split-buffer check on argBuf, which leaves out a
            // CR already seen, so a line split between its CR and LF is
            // judged like the whole line).
            let mut pending = buf.len() - as_;
            if buf.last() == Some(&b'\r') {
                pending -= 1;
            }
            if kind == ConnKind::Client && pending > limits.max_control_line {
                return Err(ParseError::MaxControlLine);
            }
            return incomplete;
        }
    };
    let mut arg_end = nl;
    if arg_end > as_ && buf[arg_end - 1] == b'\r' {
        arg_end -= 1;
    }
    let arg = &buf[as_..arg_end];
    if kind == ConnKind::Client && arg.len() > limits.max_control_line {
        return Err(ParseError::MaxControlLine);
    }
    let line_len = nl + 1;
    match kw {
        Kw::Connect => Ok(Step::Op {
            op: Op::Connect(arg),
            consumed: line_len,
        }),
        Kw::Info => Ok(Step::Op {
            op: Op::Info(arg),
            consumed: line_len,
        }),
        Kw::Err => Ok(Step::Op {
            op: Op::Err(arg),
            consumed: line_len,
        }),
        Kw::Sub => {
            let mut a: [&[u8]; 3] = [&[]; 3];
            let op = match collect_args(split_args(arg), &mut a) {
                2 => Op::Sub {
                    subject: a[0],
                    queue: None,
                    sid: a[1],
                },
                3 => Op::Sub {
                    subject: a[0],
                    queue: Some(a[1]),
                    sid: a[2],
                },
                _ => return Err(ParseError::BadArgs("processSub Parse Error")),
            };
            Ok(Step::Op {
                op,
                consumed: line_len,
            })
        }
        Kw::Unsub => {
            let mut a: [&[u8]; 2] = [&[]; 2];
            let op = match collect_args(split_args(arg), &mut a) {
                1 => Op::Unsub {
                    sid: a[0],
                    max: None,
                },
                2 => Op::Unsub {
                    sid: a[0],
                    max: Some(parse_size(a[1]).map(|v| v as i64).unwrap_or(-1)),
                },
                _ => return Err(ParseError::BadArgs("processUnsub Parse Error")),
            };
            Ok(Step::Op {
                op,
                consumed: line_len,
            })
        }
        Kw::RSub => Ok(Step::Op {
            op: Op::RouteSub(arg),
            consumed: line_len,
        }),
        Kw::RUnsub => Ok(Step::Op {
            op: Op::RouteUnsub(arg),
            consumed: line_len,
        }),
        Kw::LSub => Ok(Step::Op {
            op: Op::LeafSub(arg),
            consumed: line_len,
        }),
        Kw::LUnsub => Ok(Step::Op {
            op: Op::LeafUnsub(arg),
            consumed: line_len,
        }),
        Kw::Pub | Kw::HPub => parse_pub(buf, kw == Kw::HPub, arg, line_len, limits),
        Kw::RMsg | Kw::HMsg | Kw::LMsg => parse_routed_msg(buf, kw, arg, line_len),
        Kw::Ping | Kw::Pong | Kw::Ok => unreachable_no_args(),
    }
}

/// PING/PONG/+OK return before the argument path; keep the match exhaustive
/// without a panic.
fn unreachable_no_args<'a>() -> Result<Step<'a>, ParseError> {
    Err(ParseError::UnknownOp)
}

fn parse_pub<'a>(
    buf: &'a [u8],
    headers: bool,
    arg: &'a [u8],
    line_len: usize,
    limits: &ParseLimits,
) -> Result<Step<'a>, ParseError> {
    if headers && !limits.headers {
        return Err(ParseError::HeadersNotSupported);
    }
    let mut a: [&[u8]; 4] = [&[]; 4];
    let n = collect_args(split_pub_args(arg), &mut a);
    let empty: &[u8] = &[];
    let (subject, reply, hdr_raw, size_raw) = match (headers, n) {
        (false, 2) => (a[0], None, empty, a[1]),
        (false, 3) => (a[0], Some(a[1]), empty, a[2]),
        (true, 3) => (a[0], None, a[1], a[2]),
        (true, 4) => (a[0], Some(a[1]), a[2], a[3]),
        (false, _) => return Err(ParseError::BadArgs("processPub Parse Error")),
        (true, _) => return Err(ParseError::BadArgs("processHeaderPub Parse Error")),
    };
    let hdr_len = if headers {
        parse_size(hdr_raw).ok_or(ParseError::BadArgs(
            "processHeaderPub Bad or Missing Header Size",
        ))?
    } else {
        0
    };
    let size = parse_size(size_raw).ok_or(ParseError::BadArgs(if headers {
        "processHeaderPub Bad or Missing Total Size"
    } else {
        "processPub Bad or Missing Size"
    }))?;
    if headers && hdr_len > size {
        return Err(ParseError::BadArgs(
            "processHeaderPub Header Size larger then TotalSize",
        ));
    }
    if let Some(max) = limits.max_payload {
        if size > max {
            return Err(ParseError::MaxPayload);
        }
    }
    let payload = match take_payload(buf, line_len, size)? {
        Some(p) => p,
        None => {
            return Ok(Step::Incomplete {
                total_hint: Some(line_len + size + 2),
            })
        }
    };
    let args = PubArgs {
        subject,
        reply,
        hdr_len,
        hdr_raw,
        size_raw,
        payload,
    };
    let op = if headers {
        Op::HPub(args)
    } else {
        Op::Pub(args)
    };
    Ok(Step::Op {
        op,
        consumed: line_len + size + 2,
    })
}

/// Returns the payload when `size` bytes plus CRLF are present after the line.
fn take_payload(buf: &[u8], line_len: usize, size: usize) -> Result<Option<&[u8]>, ParseError> {
    let end = line_len + size;
    if buf.len() < end + 2 {
        // A wrong byte where the CR must be is an error as soon as it is seen.
        if buf.len() == end + 1 && buf[end] != b'\r' {
            return Err(ParseError::UnknownOp);
        }
        return Ok(None);
    }
    if buf[end] != b'\r' || buf[end + 1] != b'\n' {
        return Err(ParseError::UnknownOp);
    }
    Ok(Some(&buf[line_len..end]))
}

fn parse_routed_msg<'a>(
    buf: &'a [u8],
    kw: Kw,
    arg: &'a [u8],
    line_len: usize,
) -> Result<Step<'a>, ParseError> {
    // The total size is always the last token; HMSG carries the header size
    // right before it (nats-server processRoutedMsgArgs / HeaderMsgArgs).
    let mut last: &[u8] = &[];
    let mut prev: &[u8] = &[];
    let mut count = 0;
    for tok in split_args(arg) {
        prev = last;
        last = tok;
        count += 1;
    }
    let min = if kw == Kw::HMsg { 4 } else { 3 };
    if count < min {
        return Err(ParseError::BadArgs("processRoutedMsgArgs Parse Error"));
    }
    let size = parse_size(last).ok_or(ParseError::BadArgs(
        "processRoutedMsgArgs Bad or Missing Size",
    ))?;
    let hdr_len = if kw == Kw::HMsg {
        let h = parse_size(prev).ok_or(ParseError::BadArgs(
            "processRoutedHeaderMsgArgs Bad or Missing Header Size",
        ))?;
        if h > size {
            return Err(ParseError::BadArgs(
                "processRoutedHeaderMsgArgs Header Size larger then TotalSize",
            ));
        }
        h
    } else {
        0
    };
    let payload = match take_payload(buf, line_len, size)? {
        Some(p) => p,
        None => {
            return Ok(Step::Incomplete {
                total_hint: Some(line_len + size + 2),
            })
        }
    };
    let op = match kw {
        Kw::HMsg => Op::RouteHMsg {
            args: arg,
            hdr_len,
            payload,
        },
        Kw::LMsg => Op::LeafMsg { args: arg, payload },
        _ => Op::RouteMsg { args: arg, payload },
    };
    Ok(Step::Op {
        op,
        consumed: line_len + size + 2,
    })
}

/// Position of `needle` in `hay` (the `memchr` crate: SIMD search, and a
/// cheaper call than the byte-by-byte `position` loop on the hot PUB path).
#[inline]
pub fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: ParseLimits = ParseLimits {
        max_control_line: 4096,
        max_payload: Some(1024 * 1024),
        headers: true,
    };

    fn one(buf: &[u8]) -> Result<Step<'_>, ParseError> {
        parse_op(buf, ConnKind::Client, &LIM)
    }

    fn op(buf: &[u8]) -> Op<'_> {
        match one(buf) {
            Ok(Step::Op { op, consumed }) => {
                assert_eq!(consumed, buf.len(), "consumed all of {:?}", buf);
                op
            }
            other => panic!("expected op for {:?}, got {:?}", buf, other),
        }
    }

    #[test]
    fn pub_forms() {
        match op(b"PUB foo 5\r\nhello\r\n") {
            Op::Pub(p) => {
                assert_eq!(p.subject, b"foo");
                assert_eq!(p.reply, None);
                assert_eq!(p.payload, b"hello");
                assert_eq!(p.size_raw, b"5");
            }
            o => panic!("{o:?}"),
        }
        match op(b"pub\tfoo  bar\t\t2\nhi\r\n") {
            Op::Pub(p) => {
                assert_eq!(p.reply, Some(&b"bar"[..]));
                assert_eq!(p.payload, b"hi");
            }
            o => panic!("{o:?}"),
        }
        match op(b"PUB foo 0\r\n\r\n") {
            Op::Pub(p) => assert!(p.payload.is_empty()),
            o => panic!("{o:?}"),
        }
        // nats-server's processPub splits on spaces and tabs only: a stray CR stays in the
        // subject (SUB and the others split on it, below).
        match op(b"PUB a\rb 2\r\nhi\r\n") {
            Op::Pub(p) => {
                assert_eq!(p.subject, b"a\rb");
                assert_eq!(p.reply, None);
            }
            o => panic!("{o:?}"),
        }
        match op(b"HPUB a\rb 12 12\r\nNATS/1.0\r\n\r\n\r\n") {
            Op::HPub(p) => {
                assert_eq!(p.subject, b"a\rb");
                assert_eq!(p.reply, None);
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn hpub_forms() {
        let m = b"HPUB foo r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        match op(m) {
            Op::HPub(p) => {
                assert_eq!(p.hdr_len, 12);
                assert_eq!(p.hdr_raw, b"12");
                assert_eq!(p.payload, b"NATS/1.0\r\n\r\nhi");
                assert_eq!(p.reply, Some(&b"r"[..]));
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            one(b"HPUB foo 20 14\r\n"),
            Err(ParseError::BadArgs(_))
        ));
        assert!(matches!(
            one(b"HPUB foo 14\r\n"),
            Err(ParseError::BadArgs(_))
        ));
    }

    #[test]
    fn sub_unsub() {
        assert_eq!(
            op(b"SUB foo 1\r\n"),
            Op::Sub {
                subject: b"foo",
                queue: None,
                sid: b"1"
            }
        );
        assert_eq!(
            op(b"sub foo q 1\r\n"),
            Op::Sub {
                subject: b"foo",
                queue: Some(b"q"),
                sid: b"1"
            }
        );
        assert!(matches!(one(b"SUB foo\r\n"), Err(ParseError::BadArgs(_))));
        assert_eq!(
            op(b"SUB a\rq 1\r\n"),
            Op::Sub {
                subject: b"a",
                queue: Some(b"q"),
                sid: b"1"
            }
        );
        assert_eq!(
            op(b"UNSUB 1 10\r\n"),
            Op::Unsub {
                sid: b"1",
                max: Some(10)
            }
        );
        assert_eq!(
            op(b"UNSUB 1 x\r\n"),
            Op::Unsub {
                sid: b"1",
                max: Some(-1)
            }
        );
    }

    #[test]
    fn ping_pong_ignore_trailing() {
        assert_eq!(op(b"PING\r\n"), Op::Ping);
        assert_eq!(op(b"ping junk\r\n"), Op::Ping);
        assert_eq!(op(b"PONG\n"), Op::Pong);
        assert_eq!(op(b"+OK\r\n"), Op::Ok);
    }

    #[test]
    fn unknown_ops() {
        assert_eq!(one(b"FOO\r\n"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"PUBX foo 1\r\n"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"SUB\r\n"), Err(ParseError::UnknownOp));
        // Routes-only ops are unknown for clients.
        assert_eq!(one(b"RS+ $G foo\r\n"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"MSG foo 1 1\r\n"), Err(ParseError::UnknownOp));
    }

    #[test]
    fn partial_inputs_wait() {
        for b in [
            &b"P"[..],
            b"PU",
            b"PUB",
            b"PUB ",
            b"PUB foo",
            b"PI",
            b"PING",
            b"+O",
        ] {
            assert_eq!(one(b), Ok(Step::Incomplete { total_hint: None }), "{b:?}");
        }
        assert_eq!(
            one(b"PUB foo 5\r\nhel"),
            Ok(Step::Incomplete {
                total_hint: Some(18)
            })
        );
    }

    #[test]
    fn payload_must_end_with_crlf() {
        assert_eq!(one(b"PUB foo 2\r\nhiX\n"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"PUB foo 2\r\nhiX"), Err(ParseError::UnknownOp));
        assert_eq!(one(b"PUB foo 2\r\nhi\rX"), Err(ParseError::UnknownOp));
    }

    #[test]
    fn limits() {
        let lim = ParseLimits {
            max_control_line: 10,
            max_payload: Some(4),
            headers: true,
        };
        assert_eq!(
            parse_op(b"PUB foo 5\r\nhello\r\n", ConnKind::Client, &lim),
            Err(ParseError::MaxPayload)
        );
        assert_eq!(
            parse_op(b"SUB aaaaaaaaaaaaa 1\r\n", ConnKind::Client, &lim),
            Err(ParseError::MaxControlLine)
        );
        // Without a newline yet, the limit is still enforced.
        assert_eq!(
            parse_op(b"SUB aaaaaaaaaaaaa", ConnKind::Client, &lim),
            Err(ParseError::MaxControlLine)
        );
        // A line of exactly the limit split between CR and LF is fine.
        assert_eq!(
            parse_op(b"SUB aaaaaa 1\r", ConnKind::Client, &lim),
            Ok(Step::Incomplete { total_hint: None })
        );
        assert!(matches!(
            parse_op(b"SUB aaaaaa 1\r\n", ConnKind::Client, &lim),
            Ok(Step::Op { .. })
        ));
    }

    #[test]
    fn route_ops() {
        let k = ConnKind::Route;
        let step = parse_op(b"RS+ $G foo q 1\r\n", k, &LIM).unwrap();
        assert!(matches!(
            step,
            Step::Op {
                op: Op::RouteSub(b"$G foo q 1"),
                ..
            }
        ));
        let step = parse_op(b"RMSG $G foo + r q1 q2 3\r\nabc\r\n", k, &LIM).unwrap();
        match step {
            Step::Op {
                op: Op::RouteMsg { args, payload },
                ..
            } => {
                assert_eq!(args, b"$G foo + r q1 q2 3");
                assert_eq!(payload, b"abc");
            }
            o => panic!("{o:?}"),
        }
        let step = parse_op(b"HMSG $G foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", k, &LIM).unwrap();
        assert!(matches!(
            step,
            Step::Op {
                op: Op::RouteHMsg { hdr_len: 12, .. },
                ..
            }
        ));
    }

    #[test]
    fn every_split_of_a_script_parses_the_same() {
        let script: &[u8] = b"CONNECT {\"verbose\":false}\r\nSUB foo 1\r\nPUB foo 5\r\nhello\r\nHPUB foo r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\nUNSUB 1 3\r\nPONG\r\n";
        let whole = collect_ops(&[script]);
        for cut in 0..script.len() {
            let parts = [&script[..cut], &script[cut..]];
            assert_eq!(collect_ops(&parts), whole, "cut at {cut}");
        }
        for cut1 in 0..script.len() {
            for cut2 in cut1..script.len() {
                let parts = [&script[..cut1], &script[cut1..cut2], &script[cut2..]];
                assert_eq!(collect_ops(&parts), whole, "cuts at {cut1},{cut2}");
            }
        }
    }

    /// Feeds the parts one by one like reads from a socket.
    fn collect_ops(parts: &[&[u8]]) -> Vec<String> {
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for part in parts {
            buf.extend_from_slice(part);
            while let Step::Op { op, consumed } = parse_op(&buf, ConnKind::Client, &LIM).unwrap() {
                out.push(format!("{op:?}"));
                buf.drain(..consumed);
            }
        }
        assert!(buf.is_empty());
        out
    }
}
