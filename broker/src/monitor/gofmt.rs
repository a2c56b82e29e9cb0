//! Go value formats that nats-server's monitoring JSON uses, so that tools
//! parsing nats-server output parse ours the same way.
//!
//! Pure functions: every time value comes in as a parameter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A `time.Time` as Go's `encoding/json` writes it: RFC 3339 with up to nine
/// fractional digits, trailing zeros trimmed (`time.RFC3339Nano`). We always
/// write UTC (`Z`); nats-server writes `Now` in UTC and `start` in local
/// time, which is the same on the usual UTC hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoTime(pub SystemTime);

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339_nano(self.0))
    }
}

/// A `float64` as Go's `encoding/json` writes it: integral values without a
/// fraction (`2`, not `2.0`), others in shortest form. Non-finite values
/// (which Go refuses to encode) become 0.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct GoFloat(pub f64);

impl Serialize for GoFloat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if !v.is_finite() {
            return s.serialize_i64(0);
        }
        if v.fract() == 0.0 && v.abs() < 1e15 {
            return s.serialize_i64(v as i64);
        }
        s.serialize_f64(v)
    }
}

impl GoFloat {
    pub fn is_zero(&self) -> bool {
        self.0 == 0.0
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Splits a time into (days since epoch, seconds of day, nanoseconds).
fn split(t: SystemTime) -> (i64, u32, u32) {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            // Before 1970: borrow a second when there is a fraction.
            let d = e.duration();
            let mut secs = -(d.as_secs() as i64);
            let mut nanos = d.subsec_nanos();
            if nanos > 0 {
                secs -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            (secs, nanos)
        }
    };
    (
        secs.div_euclid(86_400),
        secs.rem_euclid(86_400) as u32,
        nanos,
    )
}

/// `2006-01-02T15:04:05.999999999Z`.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let (days, sod, nanos) = split(t);
    let (y, mo, d) = civil_from_days(days);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        y,
        mo,
        d,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The HTTP `Date` header value (RFC 9110 §5.6.7 IMF-fixdate).
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, sod, _) = split(t);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(mo - 1) as usize],
        y,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// nats-server `myUptime`: whole seconds as `1y2d3h4m5s`, leading zero
/// units dropped.
pub fn my_uptime(d: Duration) -> String {
    let tsecs = d.as_secs();
    let tmins = tsecs / 60;
    let thrs = tmins / 60;
    let tdays = thrs / 24;
    let tyrs = tdays / 365;
    if tyrs > 0 {
        format!(
            "{}y{}d{}h{}m{}s",
            tyrs,
            tdays % 365,
            thrs % 24,
            tmins % 60,
            tsecs % 60
        )
    } else if tdays > 0 {
        format!("{}d{}h{}m{}s", tdays, thrs % 24, tmins % 60, tsecs % 60)
    } else if thrs > 0 {
        format!("{}h{}m{}s", thrs, tmins % 60, tsecs % 60)
    } else if tmins > 0 {
        format!("{}m{}s", tmins, tsecs % 60)
    } else {
        format!("{tsecs}s")
    }
}

/// `v` with `prec` decimal digits as a fraction, trailing zeros (and a bare
/// point) removed: the way Go's `Duration.String` prints fractions.
fn frac(v: u64, prec: u32) -> String {
    let div = 10u64.pow(prec);
    let (int, rem) = (v / div, v % div);
    if rem == 0 {
        return int.to_string();
    }
    let digits = format!("{:0width$}", rem, width = prec as usize);
    format!("{}.{}", int, digits.trim_end_matches('0'))
}

/// Go's `time.Duration.String` (`1h2m3.5s`, `1.5ms`, `250µs`, `0s`).
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos().min(u64::MAX as u128) as u64;
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 6));
    }
    let secs_ns = ns % 60_000_000_000;
    let mins_total = ns / 60_000_000_000;
    let (h, m) = (mins_total / 60, mins_total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&frac(secs_ns, 9));
    out.push('s');
    out
}

/// nats-server `client.getRTT`: an RTT between 1µs and 1ms is truncated to
/// whole microseconds before printing.
pub fn rtt_string(rtt: Option<Duration>) -> String {
    let rtt = rtt.unwrap_or_default();
    let shown = if rtt > Duration::from_micros(1) && rtt < Duration::from_millis(1) {
        Duration::from_micros(rtt.as_micros() as u64)
    } else {
        rtt
    };
    go_duration(shown)
}

/// Go's `strconv.Quote` for the ASCII/UTF-8 text that appears in error
/// messages: backslash escapes for quotes, backslashes and control bytes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON as Go's `json.MarshalIndent(v, "", "  ")` writes it: two-space
/// indent, and Go's string escaping (`<`, `>`, `&`, U+2028, U+2029 as
/// `\u` escapes; `\b` and `\f` as `\u0008`, `\u000c`), so that text
/// from clients (names, subjects) comes out byte-for-byte like nats-server.
pub fn to_go_json_pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter::default());
    match v.serialize(&mut ser) {
        Ok(()) => out,
        Err(e) => format!("{{\"error\":{:?}}}", e.to_string()).into_bytes(),
    }
}

/// `PrettyFormatter` with Go's string escaping.
#[derive(Default)]
struct GoFormatter(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        e: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        use serde_json::ser::CharEscape;
        match e {
            CharEscape::Backspace => w.write_all(b"\\u0008"),
            CharEscape::FormFeed => w.write_all(b"\\u000c"),
            other => serde_json::ser::CompactFormatter.write_char_escape(w, other),
        }
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn rfc3339_trims_fraction_like_go() {
        assert_eq!(rfc3339_nano(at(0, 0)), "1970-01-01T00:00:00Z");
        // 2026-11-23T02:23:30.767391975Z, as printed by nats-server.
        assert_eq!(
            rfc3339_nano(at(1_795_400_610, 767_391_975)),
            "2026-11-23T02:23:30.767391975Z"
        );
        assert_eq!(
            rfc3339_nano(at(1_795_400_610, 500_000_000)),
            "2026-11-23T02:23:30.5Z"
        );
        assert_eq!(rfc3339_nano(at(951_782_400, 0)), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH - Duration::new(1, 250_000_000)),
            "1969-12-31T23:59:58.75Z"
        );
    }

    #[test]
    fn http_date_format() {
        assert_eq!(http_date(at(0, 0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(at(1_795_400_611, 0)),
            "Mon, 23 Nov 2026 02:23:31 GMT"
        );
    }

    #[test]
    fn uptime_like_nats_server() {
        assert_eq!(my_uptime(Duration::from_millis(999)), "0s");
        assert_eq!(my_uptime(Duration::from_secs(59)), "59s");
        assert_eq!(my_uptime(Duration::from_secs(60)), "1m0s");
        assert_eq!(my_uptime(Duration::from_secs(3600 + 62)), "1h1m2s");
        assert_eq!(my_uptime(Duration::from_secs(86_400 * 2 + 5)), "2d0h0m5s");
        assert_eq!(
            my_uptime(Duration::from_secs(86_400 * 366 + 3661)),
            "1y1d1h1m1s"
        );
    }

    #[test]
    fn duration_like_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(go_duration(Duration::from_nanos(228_000)), "228µs");
        assert_eq!(go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(go_duration(Duration::from_nanos(2_890_625)), "2.890625ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
    }

    #[test]
    fn rtt_truncates_to_micros_below_a_millisecond() {
        assert_eq!(rtt_string(None), "0s");
        assert_eq!(rtt_string(Some(Duration::from_nanos(228_765))), "228µs");
        assert_eq!(rtt_string(Some(Duration::from_nanos(900))), "900ns");
        assert_eq!(
            rtt_string(Some(Duration::from_nanos(2_890_625))),
            "2.890625ms"
        );
    }

    #[test]
    fn floats_like_go_json() {
        let j = |v: f64| serde_json::to_string(&GoFloat(v)).unwrap_or_default();
        assert_eq!(j(2.0), "2");
        assert_eq!(j(0.0), "0");
        assert_eq!(j(0.8), "0.8");
        assert_eq!(j(0.6666666666666666), "0.6666666666666666");
        assert_eq!(j(f64::NAN), "0");
    }

    #[test]
    fn quote() {
        assert_eq!(go_quote("x"), "\"x\"");
        assert_eq!(go_quote("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\x01\"");
    }

    #[test]
    fn json_escaping_like_go() {
        let v = serde_json::json!({"name": "a<b>&c\u{2028}\u{8}\u{c}\n\u{1}\"é", "list": [], "o": {}, "n": [1, 2]});
        let txt = String::from_utf8(to_go_json_pretty(&v)).unwrap_or_default();
        assert_eq!(
            txt,
            "{\n  \"list\": [],\n  \"n\": [\n    1,\n    2\n  ],\n  \"name\": \"a\\u003cb\\u003e\\u0026c\\u2028\\u0008\\u000c\\n\\u0001\\\"é\",\n  \"o\": {}\n}"
        );
    }
}
