//! Protocol tracing for `-V` / `-DV` / `trace: true`, in nats-server's
//! words: `<<- [PUB foo 5]`, `<<- MSG_PAYLOAD: ["hello"]`, `->> [PONG]`,
//! `->> [MSG foo 1 5]` (client.go traceInOp / traceOutOp / traceMsg, which
//! format the op and its argument as a Go slice, hence the brackets).
//!
//! Callers check `tracing::enabled!(Level::TRACE)` first, so none of this
//! runs, and nothing is allocated, unless tracing is on.

use tracing::trace;

/// Logs one inbound operation of a client or route connection. `raw` is
/// the whole operation as the parser consumed it (control line, and for
/// PUB/HPUB/RMSG/HMSG the payload and its CRLF). `max_payload_len` is
/// `max_traced_msg_len` (0 = the whole payload).
pub fn trace_in(prefix: &str, raw: &[u8], max_payload_len: usize) {
    trace_in_parts(prefix, raw, max_payload_len, true, true);
}

/// The control line of an inbound operation alone, as nats-server traces it as
/// soon as the line is parsed: before the payload has come, and before the
/// arguments are checked.
pub fn trace_in_line(prefix: &str, raw: &[u8]) {
    trace_in_parts(prefix, raw, 0, true, false);
}

/// The payload of an inbound message whose control line [`trace_in_line`] traced.
pub fn trace_in_payload(prefix: &str, raw: &[u8], max_payload_len: usize) {
    trace_in_parts(prefix, raw, max_payload_len, false, true);
}

fn trace_in_parts(prefix: &str, raw: &[u8], max_payload_len: usize, line: bool, body: bool) {
    let Some((name, arg, payload)) = split_op(raw) else {
        return;
    };
    if name == "INFO" {
        // parser.go hands INFO to processInfo without tracing it.
        return;
    }
    let arg = arg.filter(|_| line);
    let payload = payload.filter(|_| body);
    match arg {
        Some(arg) if name == "CONNECT" => {
            trace!("{prefix} - <<- [{name} {}]", redact_pass(arg))
        }
        Some(arg) => trace!("{prefix} - <<- [{name} {}]", String::from_utf8_lossy(arg)),
        None if line => trace!("{prefix} - <<- [{name}]"),
        None => {}
    }
    if let Some(p) = payload {
        trace!(
            "{prefix} - <<- MSG_PAYLOAD: [{}]",
            payload_text(p, max_payload_len)
        );
    }
}

/// The bracketed part of a MSG_PAYLOAD trace line. client.go traceMsg: when
/// the payload is longer than `max` (> 0), it quotes the first `max` bytes
/// and keeps `max` bytes of that quoted text after the opening quote (so an
/// escape can be cut in half), then adds `...` inside the quotes.
fn payload_text(p: &[u8], max: usize) -> String {
    if max == 0 || p.len() <= max {
        return go_quote_bytes(p);
    }
    let quoted = go_quote_bytes(&p[..max]);
    let q = quoted.as_bytes();
    let cut = &q[1.min(q.len())..(max + 1).min(q.len())];
    format!("\"{}...\"", String::from_utf8_lossy(cut))
}

/// Logs one outbound protocol reply (`PONG`, `PING`, `+OK`, `-ERR '…'`)
/// as nats-server's sendPong / sendPing / sendOK / sendErr trace it.
pub fn trace_out_proto(prefix: &str, data: &[u8]) {
    let line = first_line(data);
    if let Some(err) = line.strip_prefix(b"-ERR ") {
        // sendErr traces the text without the quotes it sends.
        let text = err
            .strip_prefix(b"'")
            .and_then(|t| t.strip_suffix(b"'"))
            .unwrap_or(err);
        trace!("{prefix} - ->> [-ERR {}]", String::from_utf8_lossy(text));
    } else if line == b"+OK" {
        trace!("{prefix} - ->> [OK]");
    } else if line == b"PING" || line == b"PONG" {
        trace!("{prefix} - ->> [{}]", String::from_utf8_lossy(line));
    }
}

/// Logs a message delivered to a client: the MSG/HMSG control line without
/// its CRLF (client.go deliverMsg traces `mh`).
pub fn trace_out_msg(prefix: &str, encoded: &[u8]) {
    trace!(
        "{prefix} - ->> [{}]",
        String::from_utf8_lossy(first_line(encoded))
    );
}

fn first_line(data: &[u8]) -> &[u8] {
    let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let line = &data[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// An inbound operation taken apart for its trace lines.
type TracedOp<'a> = (String, Option<&'a [u8]>, Option<&'a [u8]>);

/// Splits an operation into its upper-case name, its argument (after the
/// separating spaces/tabs, as parser.go slices `arg`) and, for PUB/HPUB,
/// the payload without its CRLF.
fn split_op(raw: &[u8]) -> Option<TracedOp<'_>> {
    let line_end = raw.iter().position(|&b| b == b'\n')?;
    let line = &raw[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let name_end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let name = String::from_utf8_lossy(&line[..name_end]).to_ascii_uppercase();
    let arg = crate::proto::goerr::op_args(line);
    let arg = (!arg.is_empty()).then_some(arg);
    let payload = if matches!(name.as_str(), "PUB" | "HPUB" | "RMSG" | "HMSG" | "MSG") {
        let body = &raw[line_end + 1..];
        Some(body.strip_suffix(b"\r\n").unwrap_or(body))
    } else {
        None
    };
    Some((name, arg, payload))
}

/// Replaces the first password value in a CONNECT argument with
/// `[REDACTED]` (client.go removePassFromTrace: the first match of
/// `"?\s*pass\S*?"?\s*[:=]\s*"?(([^",\r\n}])*)`).
fn redact_pass(arg: &[u8]) -> String {
    let s = String::from_utf8_lossy(arg);
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(off) = s[i..].find("pass") {
        let at = i + off;
        // `pass\S*?"?` then optional spaces, then ':' or '='.
        let mut j = at + 4;
        let mut found = None;
        loop {
            let mut k = j;
            if k < b.len() && b[k] == b'"' {
                k += 1;
            }
            while k < b.len() && b[k].is_ascii_whitespace() {
                k += 1;
            }
            if k < b.len() && (b[k] == b':' || b[k] == b'=') {
                found = Some(k + 1);
                break;
            }
            if j >= b.len() || b[j].is_ascii_whitespace() {
                break;
            }
            j += 1;
        }
        if let Some(mut v) = found {
            while v < b.len() && b[v].is_ascii_whitespace() {
                v += 1;
            }
            if v < b.len() && b[v] == b'"' {
                v += 1;
            }
            let end = b[v..]
                .iter()
                .position(|&c| matches!(c, b'"' | b',' | b'\r' | b'\n' | b'}'))
                .map_or(b.len(), |p| v + p);
            return format!("{}[REDACTED]{}", &s[..v], &s[end..]);
        }
        i = at + 4;
    }
    s.into_owned()
}

/// Go's `%q` of a byte slice (strconv.Quote of the bytes as a string):
/// printable text as is, the usual backslash escapes, `\x..` for bytes
/// that are not UTF-8 and for control bytes, `\u....` for non-printable
/// runes.
pub fn go_quote_bytes(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() + 2);
    out.push('"');
    for chunk in data.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c if !go_is_print(c) => {
                    if (c as u32) < 0x10000 {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        out.push_str(&format!("\\U{:08x}", c as u32));
                    }
                }
                c => out.push(c),
            }
        }
        for &byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('"');
    out
}

/// Go's strconv.IsPrint, closely enough: not a control, not a space other than U+0020
/// (Zs, Zl, Zp), not a format character (Cf: soft hyphen, zero-width and bidi marks, the
/// byte-order mark, ...), not private use, not a noncharacter. (Unassigned code points,
/// which Go also escapes, are printed as they are.)
fn go_is_print(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let nonchar = matches!(u, 0xFDD0..=0xFDEF) || u & 0xFFFE == 0xFFFE;
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go_strconv() {
        assert_eq!(go_quote_bytes("a\u{feff}b".as_bytes()), "\"a\\ufeffb\"");
        assert_eq!(
            go_quote_bytes("\u{200b}\u{a0}é".as_bytes()),
            "\"\\u200b\\u00a0é\""
        );
        assert_eq!(go_quote_bytes("\u{f0000}".as_bytes()), "\"\\U000f0000\"");
        assert_eq!(go_quote_bytes(b"\x01\xff ok"), "\"\\x01\\xff ok\"");
        assert_eq!(
            go_quote_bytes("日本 \u{1f600}".as_bytes()),
            "\"日本 \u{1f600}\""
        );
    }

    #[test]
    fn ops_split_like_the_go_parser() {
        let (n, a, p) = split_op(b"pub foo  5\r\nhello\r\n").unwrap();
        assert_eq!(n, "PUB");
        assert_eq!(a, Some(&b"foo  5"[..]));
        assert_eq!(p, Some(&b"hello"[..]));
        let (n, a, p) = split_op(b"PING\r\n").unwrap();
        assert_eq!((n.as_str(), a, p), ("PING", None, None));
        let (n, a, _) = split_op(b"SUB\tfoo q 1\n").unwrap();
        assert_eq!((n.as_str(), a), ("SUB", Some(&b"foo q 1"[..])));
        assert!(split_op(b"PUB foo").is_none());
        let (n, a, p) = split_op(b"RMSG $G foo r 2\r\nhi\r\n").unwrap();
        assert_eq!(
            (n.as_str(), a, p),
            ("RMSG", Some(&b"$G foo r 2"[..]), Some(&b"hi"[..]))
        );
        let (n, _, p) = split_op(b"RS+ $G foo q 1\r\n").unwrap();
        assert_eq!((n.as_str(), p), ("RS+", None));
    }

    #[test]
    fn passwords_are_redacted_once() {
        assert_eq!(
            redact_pass(br#"{"user":"a","pass":"s3cret","name":"x"}"#),
            r#"{"user":"a","pass":"[REDACTED]","name":"x"}"#
        );
        assert_eq!(
            redact_pass(br#"{"password": "p w"}"#),
            r#"{"password": "[REDACTED]"}"#
        );
        assert_eq!(redact_pass(br#"{"verbose":false}"#), r#"{"verbose":false}"#);
        // Only the first match, like removePassFromTrace's `break`.
        assert_eq!(
            redact_pass(br#"{"pass":"a","pass":"b"}"#),
            r#"{"pass":"[REDACTED]","pass":"b"}"#
        );
    }

    #[test]
    fn long_payloads_are_cut_like_trace_msg() {
        assert_eq!(payload_text(b"hello world", 0), r#""hello world""#);
        assert_eq!(payload_text(b"hello world", 11), r#""hello world""#);
        assert_eq!(payload_text(b"hello world", 4), r#""hell...""#);
        // Cut in the quoted text: 4 bytes of `\x01\xff…` keep only `\x01`.
        assert_eq!(payload_text(b"\x01\xff\x02abc", 4), r#""\x01...""#);
        assert_eq!(payload_text(b"ab\"cd", 3), r#""ab\...""#);
    }

    #[test]
    fn payloads_quote_like_go() {
        assert_eq!(go_quote_bytes(b"hello"), r#""hello""#);
        assert_eq!(go_quote_bytes(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            go_quote_bytes(b"\x07\x08\x0c\n\r\t\x0b\x01\x7f"),
            r#""\a\b\f\n\r\t\v\x01\x7f""#
        );
        assert_eq!(go_quote_bytes(b"\xff\xfeok"), r#""\xff\xfeok""#);
        assert_eq!(go_quote_bytes("é\u{85}".as_bytes()), "\"é\\u0085\"");
    }
}
