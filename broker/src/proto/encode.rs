//! Encoders for server-to-client and server-to-route lines.
//!
//! Delivery lines are written straight into the receiver's outbound buffer to
//! avoid an intermediate allocation per message.

pub const PING: &[u8] = b"PING\r\n";
pub const PONG: &[u8] = b"PONG\r\n";
pub const OK: &[u8] = b"+OK\r\n";
pub const CRLF: &[u8] = b"\r\n";

pub const ERR_UNKNOWN_OP: &[u8] = b"-ERR 'Unknown Protocol Operation'\r\n";
pub const ERR_MAX_CONTROL_LINE: &[u8] = b"-ERR 'maximum control line exceeded'\r\n";
pub const ERR_MAX_PAYLOAD: &[u8] = b"-ERR 'Maximum Payload Violation'\r\n";
pub const ERR_AUTH_VIOLATION: &[u8] = b"-ERR 'Authorization Violation'\r\n";
pub const ERR_AUTH_TIMEOUT: &[u8] = b"-ERR 'Authentication Timeout'\r\n";
pub const ERR_STALE: &[u8] = b"-ERR 'Stale Connection'\r\n";
pub const ERR_MAX_CONNECTIONS: &[u8] = b"-ERR 'maximum connections exceeded'\r\n";
pub const ERR_MAX_SUBS: &[u8] = b"-ERR 'maximum subscriptions exceeded'\r\n";
pub const ERR_INVALID_SUBJECT: &[u8] = b"-ERR 'Invalid Subject'\r\n";
pub const ERR_INVALID_PUB_SUBJECT: &[u8] = b"-ERR 'Invalid Publish Subject'\r\n";
pub const ERR_BAD_PROTOCOL: &[u8] = b"-ERR 'invalid client protocol'\r\n";
pub const ERR_NO_RESPONDERS_HEADERS: &[u8] = b"-ERR 'no responders requires headers support'\r\n";
pub const ERR_HEADERS_NOT_SUPPORTED: &[u8] = b"-ERR 'message headers not supported'\r\n";

/// `-ERR '<text>'\r\n`
pub fn err_line(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 10);
    v.extend_from_slice(b"-ERR '");
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(b"'\r\n");
    v
}

/// What a delivered message looks like to its receiver.
pub struct Delivery<'a> {
    pub subject: &'a [u8],
    pub sid: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Header length of `payload` (0 = no headers).
    pub hdr_len: usize,
    /// Raw size tokens as the publisher wrote them (nats-server copies them).
    pub hdr_raw: &'a [u8],
    pub size_raw: &'a [u8],
    /// Headers + payload.
    pub payload: &'a [u8],
}

/// Appends `MSG`/`HMSG` for a client. A client that did not ask for headers
/// gets a plain MSG with the headers stripped (`client.go` `msgHeader`).
pub fn write_client_msg(out: &mut Vec<u8>, d: &Delivery<'_>, receiver_headers: bool) {
    let with_hdr = d.hdr_len > 0 && receiver_headers;
    out.reserve(d.subject.len() + d.sid.len() + d.payload.len() + 48);
    if with_hdr {
        out.extend_from_slice(b"HMSG ");
    } else {
        out.extend_from_slice(b"MSG ");
    }
    out.extend_from_slice(d.subject);
    out.push(b' ');
    out.extend_from_slice(d.sid);
    out.push(b' ');
    if let Some(r) = d.reply {
        out.extend_from_slice(r);
        out.push(b' ');
    }
    let body = if d.hdr_len > 0 {
        if with_hdr {
            out.extend_from_slice(d.hdr_raw);
            out.push(b' ');
            out.extend_from_slice(d.size_raw);
            d.payload
        } else {
            let body = &d.payload[d.hdr_len.min(d.payload.len())..];
            push_usize(out, body.len());
            body
        }
    } else {
        out.extend_from_slice(d.size_raw);
        d.payload
    };
    out.extend_from_slice(CRLF);
    out.extend_from_slice(body);
    out.extend_from_slice(CRLF);
}

/// Appends the decimal form of `n`.
pub fn push_usize(out: &mut Vec<u8>, mut n: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// The no-responders status message (`client.go`: 503 with a 16-byte header).
pub fn write_no_responders(out: &mut Vec<u8>, reply: &[u8], sid: &[u8]) {
    out.extend_from_slice(b"HMSG ");
    out.extend_from_slice(reply);
    out.push(b' ');
    out.extend_from_slice(sid);
    out.extend_from_slice(b" 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d<'a>(
        payload: &'a [u8],
        hdr_len: usize,
        hdr_raw: &'a [u8],
        size_raw: &'a [u8],
    ) -> Delivery<'a> {
        Delivery {
            subject: b"foo",
            sid: b"9",
            reply: Some(b"r"),
            hdr_len,
            hdr_raw,
            size_raw,
            payload,
        }
    }

    #[test]
    fn msg_and_hmsg() {
        let mut out = Vec::new();
        write_client_msg(&mut out, &d(b"hi", 0, b"", b"2"), true);
        assert_eq!(out, b"MSG foo 9 r 2\r\nhi\r\n");
        out.clear();
        let p = b"NATS/1.0\r\n\r\nhi";
        write_client_msg(&mut out, &d(p, 12, b"12", b"14"), true);
        assert_eq!(out, b"HMSG foo 9 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
        out.clear();
        write_client_msg(&mut out, &d(p, 12, b"12", b"14"), false);
        assert_eq!(out, b"MSG foo 9 r 2\r\nhi\r\n");
    }

    #[test]
    fn numbers() {
        for n in [0usize, 7, 10, 12345, usize::MAX] {
            let mut v = Vec::new();
            push_usize(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
    }
}
