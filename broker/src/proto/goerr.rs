//! nats-server's parser error text for an unknown operation (parser.go `parseErr`):
//! `Client parser ERROR, state=S, i=I: proto='"…"...'`, where S is the state of Go's
//! byte-at-a-time parser when the offending byte came (the iota numbering of its
//! parser constants) and I that byte's index in the read buffer.

use super::ConnKind;

/// Go's parser states for the operation names (parser.go `OP_START = iota` …), by
/// the upper-case prefix read so far.
fn state_of(prefix: &[u8]) -> Option<u8> {
    Some(match prefix {
        b"" => 0,
        b"+" => 1,
        b"+O" => 2,
        b"+OK" => 3,
        b"-" => 4,
        b"-E" => 5,
        b"-ER" => 6,
        b"-ERR" => 7,
        b"C" => 10,
        b"CO" => 11,
        b"CON" => 12,
        b"CONN" => 13,
        b"CONNE" => 14,
        b"CONNEC" => 15,
        b"CONNECT" => 16,
        b"H" => 18,
        b"HP" => 19,
        b"HPU" => 20,
        b"HPUB" => 21,
        b"HM" => 24,
        b"HMS" => 25,
        b"HMSG" => 26,
        b"P" => 29,
        b"PU" => 30,
        b"PUB" => 31,
        b"PI" => 34,
        b"PIN" => 35,
        b"PING" => 36,
        b"PO" => 37,
        b"PON" => 38,
        b"PONG" => 39,
        b"S" => 43,
        b"SU" => 44,
        b"SUB" | b"RS+" | b"LS+" => 45,
        b"A" => 48,
        b"A+" => 49,
        b"A-" | b"AU" => 52,
        b"L" => 55,
        b"LS" => 56,
        b"R" => 57,
        b"RS" => 58,
        b"U" => 59,
        b"UN" => 60,
        b"UNS" => 61,
        b"UNSU" => 62,
        b"UNSUB" | b"RS-" | b"LS-" => 63,
        b"RM" | b"LM" => 66,
        b"RMS" | b"LMS" => 67,
        b"RMSG" | b"LMSG" => 68,
        b"I" => 71,
        b"IN" => 72,
        b"INF" => 73,
        b"INFO" => 74,
        _ => return None,
    })
}

/// Whether Go's parser leaves the operation-name states on byte `b` after `prefix`
/// without an error (into an argument, or a keyword that takes anything up to LF).
fn leaves_names(prefix: &[u8], b: u8) -> bool {
    let space = b == b' ' || b == b'\t';
    match prefix {
        b"CONNECT" | b"INFO" | b"PING" | b"PONG" | b"+OK" => true,
        b"PUB" | b"HPUB" | b"HMSG" | b"SUB" | b"UNSUB" | b"RS+" | b"RS-" | b"LS+" | b"LS-"
        | b"RMSG" | b"LMSG" | b"A+" | b"A-" | b"AU" | b"-ERR" => space,
        _ => false,
    }
}

/// Where Go's parser fails on the operation starting at `op_start` of `buf`:
/// (state, index in `buf`). `None` when its name states accept the operation (the
/// error is then in the arguments, reported differently).
fn position(buf: &[u8], op_start: usize, kind: ConnKind) -> Option<(u8, usize)> {
    let mut prefix: Vec<u8> = Vec::with_capacity(8);
    for (k, &b) in buf[op_start..].iter().enumerate() {
        let i = op_start + k;
        let state = state_of(&prefix)?;
        if leaves_names(&prefix, b) {
            return None;
        }
        let up = b.to_ascii_uppercase();
        // Operations only some kinds may send (parser.go OP_START).
        let allowed = match (prefix.as_slice(), up) {
            (b"", b'R' | b'A') => kind != ConnKind::Client,
            (b"", b'L') => false,
            (b"", b'M') => false,
            _ => true,
        };
        prefix.push(up);
        if !allowed || state_of(&prefix).is_none() {
            return Some((state, i));
        }
    }
    None
}

/// parser.go protoSnippet: Go's `%q` of up to 32 bytes from `start` (one byte short
/// when the buffer ends first, as Go computes it).
fn snippet(buf: &[u8], start: usize) -> String {
    snippet_of(buf, start, 32)
}

/// protoSnippet with its `max` argument.
fn snippet_of(buf: &[u8], start: usize, max: usize) -> String {
    if start >= buf.len() {
        return "\"\"".to_string();
    }
    let mut stop = start + max;
    if stop > buf.len() {
        stop = buf.len() - 1;
    }
    crate::server::trace::go_quote_bytes(&buf[start..stop.max(start)])
}

/// The arguments of the operation at the start of `buf` as parser.go hands them to
/// the process functions: after the name and the spaces or tabs that follow it, up to
/// the line end (without a CR before the LF).
pub fn op_args(buf: &[u8]) -> &[u8] {
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = &buf[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let name = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let rest = &line[name..];
    let skip = rest
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(rest.len());
    &rest[skip..]
}

/// Go's states after a message payload (parser.go MSG_END_R, MSG_END_N).
const MSG_END_R: u8 = 41;
const MSG_END_N: u8 = 42;

/// Where Go's parser fails after the payload of the message operation (PUB, HPUB,
/// RMSG, HMSG, …) starting at `op_start`: the payload (its size is the last
/// argument) must be followed by CR (state MSG_END_R) and LF (MSG_END_N).
fn payload_end_position(buf: &[u8], op_start: usize) -> Option<(u8, usize)> {
    let op = &buf[op_start..];
    let nl = op.iter().position(|&b| b == b'\n')?;
    let size: usize = std::str::from_utf8(super::split_args(op_args(op)).last()?)
        .ok()?
        .parse()
        .ok()?;
    let end = op_start + nl + 1 + size;
    match (buf.get(end), buf.get(end + 1)) {
        (Some(&b), _) if b != b'\r' => Some((MSG_END_R, end)),
        (Some(_), Some(&b)) if b != b'\n' => Some((MSG_END_N, end + 1)),
        _ => None,
    }
}

/// What nats-server logs when the client operation at the start of `buf` exceeds
/// `max_control_line` (parser.go overMaxControlLineLimit): the argument state of its
/// parser, the arguments held over from an earlier read (0 once the line is complete)
/// and a snippet of up to 128 bytes of the arguments.
pub fn max_control_line_text(buf: &[u8], max: usize) -> String {
    let name_end = buf
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(buf.len());
    let state = match buf[..name_end].to_ascii_uppercase().as_slice() {
        b"-ERR" => 9,
        b"CONNECT" => 17,
        b"HPUB" => 23,
        b"PUB" => 33,
        b"SUB" => 47,
        b"UNSUB" => 65,
        b"INFO" => 75,
        _ => 0,
    };
    let rest = &buf[name_end..];
    let start = name_end
        + rest
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(rest.len());
    let (end, held) = match buf[start..].iter().position(|&b| b == b'\n') {
        Some(nl) => (start + nl, false),
        None => (buf.len(), true),
    };
    let arg = &buf[start..end];
    let arg = arg.strip_suffix(b"\r").unwrap_or(arg);
    format!(
        "maximum control line exceeded: State {state}, max_control_line {max}, Buffer len {} (snip: {}...)",
        if held { arg.len() } else { 0 },
        snippet_of(arg, 0, 128)
    )
}

/// Whether `buf` starts with a client message operation (PUB, HPUB) whose control
/// line is complete.
pub fn is_message_line_complete(buf: &[u8]) -> bool {
    let name_end = buf
        .iter()
        .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(buf.len());
    let name = &buf[..name_end];
    (name.eq_ignore_ascii_case(b"PUB") || name.eq_ignore_ascii_case(b"HPUB"))
        && buf[name_end..].contains(&b'\n')
}

/// Whether the operation at the start of `buf` fails on what follows its payload
/// (not on its name).
pub fn fails_after_payload(buf: &[u8]) -> bool {
    position(buf, 0, ConnKind::Client).is_none() && payload_end_position(buf, 0).is_some()
}

/// The error nats-server logs for an unknown operation at `op_start` of `buf`, or for
/// bytes other than CRLF after a message's payload; `None` if its parser would not
/// fail there. `read_start` is where the newest read begins in `buf`: Go's parser
/// sees one read at a time (an operation split across reads is carried over in its
/// own buffers), so its index and snippet are relative to that read.
pub fn unknown_op_text(
    buf: &[u8],
    op_start: usize,
    read_start: usize,
    kind: ConnKind,
) -> Option<String> {
    let (state, at) =
        position(buf, op_start, kind).or_else(|| payload_end_position(buf, op_start))?;
    let read_start = read_start.min(at);
    let (read, i) = (&buf[read_start..], at - read_start);
    let who = match kind {
        ConnKind::Client => "Client",
        ConnKind::Route => "Router",
    };
    Some(format!(
        "{who} parser ERROR, state={state}, i={i}: proto='{}...'",
        snippet(read, i)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_like_go_parser() {
        // Checked against nats-server 2.9.10's logs.
        assert_eq!(
            unknown_op_text(b"BOGUS\r\n", 0, 0, ConnKind::Route).as_deref(),
            Some("Router parser ERROR, state=0, i=0: proto='\"BOGUS\\r\"...'")
        );
        assert_eq!(
            unknown_op_text(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:4222\r\n\r\n", 0, 0, ConnKind::Client)
                .as_deref(),
            Some("Client parser ERROR, state=0, i=0: proto='\"GET / HTTP/1.1\\r\\nHost: 127.0.0.1:\"...'")
        );
        // PUBX: the X comes in OP_PUB (31), at index 3.
        assert_eq!(
            position(b"PUBX foo 1\r\n", 0, ConnKind::Client),
            Some((31, 3))
        );
        // After an earlier operation in the same read.
        assert_eq!(
            position(b"PING\r\nSUBB\r\n", 6, ConnKind::Client),
            Some((45, 9))
        );
        // A client may not send RS+ or MSG; a route may.
        assert_eq!(position(b"RS+ $G a\r\n", 0, ConnKind::Client), Some((0, 0)));
        assert_eq!(position(b"RS+ $G a\r\n", 0, ConnKind::Route), None);
        assert_eq!(
            position(b"MSG a 1 1\r\n", 0, ConnKind::Client),
            Some((0, 0))
        );
        // Names Go takes, whatever follows.
        assert_eq!(position(b"PINGX\r\n", 0, ConnKind::Client), None);
        assert_eq!(position(b"connect {}\r\n", 0, ConnKind::Client), None);
        assert_eq!(op_args(b"PUB  \tfoo  bar\r\nPING"), b"foo  bar");
        assert_eq!(op_args(b"SUB\r\n"), b"");
    }

    #[test]
    fn payload_end_errors_like_go_parser() {
        // Checked against nats-server 2.9.10: "PUB foo 5\r\nhel" then "loXX\r\n" logs
        // state=41, i=2, proto='"XX\r"...' (the index is in the second read).
        let buf = b"PUB foo 5\r\nhelloXX\r\n";
        assert_eq!(
            unknown_op_text(buf, 0, 14, ConnKind::Client).as_deref(),
            Some("Client parser ERROR, state=41, i=2: proto='\"XX\\r\"...'")
        );
        // All in one read: the index counts from the read's start.
        assert_eq!(payload_end_position(buf, 0), Some((MSG_END_R, 16)));
        assert_eq!(
            payload_end_position(b"PING\r\nHPUB a 2 4\r\n\r\nhi\rX", 6),
            Some((MSG_END_N, 23))
        );
        assert_eq!(
            payload_end_position(b"RMSG $G a r 1\r\nzX", 0),
            Some((MSG_END_R, 16))
        );
        // A good or incomplete end is no error.
        assert_eq!(payload_end_position(b"PUB a 1\r\nz\r\n", 0), None);
        assert_eq!(payload_end_position(b"PUB a 1\r\nz\r", 0), None);
        assert_eq!(payload_end_position(b"PUB a 1\r\nz", 0), None);
    }
}
