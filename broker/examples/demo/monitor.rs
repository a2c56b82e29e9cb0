//! Reading the brokers' monitoring endpoints (/routez, /pathz) and timesync status messages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::OffsetSample;

/// One HTTP/1.1 GET with `Connection: close`, bounded to 2 s; returns the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .with_context(|| format!("GET http://{addr}{path}: no answer within 2 s"))?
        .with_context(|| format!("GET http://{addr}{path}"))?;
    let text = String::from_utf8_lossy(&buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("GET http://{addr}{path}: malformed response");
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "GET http://{addr}{path}: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_string())
}

/// The SCION side of a broker's first route, as /routez shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteView {
    pub up: bool,
    pub fingerprint: Option<String>,
    pub hops: Vec<String>,
    pub rtt_ms: Option<f64>,
    pub path_switches: u64,
}

/// Parses a Go duration string as nats-server writes it ("41.5ms", "1.2s", "830µs").
pub fn go_duration_ms(s: &str) -> Option<f64> {
    let units = [
        ("ms", 1.0),
        ("µs", 1e-3),
        ("us", 1e-3),
        ("ns", 1e-6),
        ("s", 1e3),
    ];
    for (suffix, scale) in units {
        if let Some(num) = s.strip_suffix(suffix) {
            // "1m2.5s" style values are not expected for RTTs; refuse them.
            return num.parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}

/// Parses /routez: the first route that carries a `scion` object.
pub fn parse_routez(body: &str) -> Result<RouteView> {
    let v: Value = serde_json::from_str(body).context("routez JSON")?;
    let routes = v["routes"].as_array().cloned().unwrap_or_default();
    let Some(r) = routes.iter().find(|r| r.get("scion").is_some()) else {
        return Ok(RouteView::default());
    };
    let s = &r["scion"];
    let path = &s["path"];
    Ok(RouteView {
        up: true,
        fingerprint: path["fingerprint"].as_str().map(str::to_string),
        hops: path["hops"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        rtt_ms: path["rtt"]
            .as_str()
            .and_then(go_duration_ms)
            .or_else(|| r["rtt"].as_str().and_then(go_duration_ms)),
        path_switches: s["path_switches"].as_u64().unwrap_or(0),
    })
}

/// Parses /pathz into short fingerprint (16 hex digits, the Nats-Scion-Path form) → hops.
pub fn parse_pathz(body: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let v: Value = serde_json::from_str(body).context("pathz JSON")?;
    let mut out = BTreeMap::new();
    for d in v["destinations"].as_array().cloned().unwrap_or_default() {
        for p in d["paths"].as_array().cloned().unwrap_or_default() {
            let Some(fp) = p["fingerprint"].as_str() else {
                continue;
            };
            let hops = p["hops"]
                .as_array()
                .map(|h| {
                    h.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(fp.chars().take(16).collect(), hops);
        }
    }
    Ok(out)
}

/// Short form of a path's interface list: the AS sequence with the end interfaces, e.g.
/// `10a0#1 > 1208 > 1201 > 1206 > 10bf#1` for `18-ffaa:1:10a0#1 18-ffaa:0:1208#2 ...`.
pub fn short_path(hops: &[String]) -> String {
    let mut ases: Vec<String> = Vec::new();
    for (i, h) in hops.iter().enumerate() {
        let (ia, ifid) = h.split_once('#').unwrap_or((h.as_str(), ""));
        let short = ia.rsplit(':').next().unwrap_or(ia).to_string();
        let end = i == 0 || i + 1 == hops.len();
        let label = if end {
            format!("{short}#{ifid}")
        } else {
            short
        };
        let last_as = ases
            .last()
            .map(|l| l.split('#').next().unwrap_or("").to_string());
        if last_as.as_deref() != Some(label.split('#').next().unwrap_or("")) {
            ases.push(label);
        } else if end {
            // Keep the interface of the destination end.
            if let Some(l) = ases.last_mut() {
                *l = label;
            }
        }
    }
    ases.join(" > ")
}

/// The link to cut for "cut the active path": the last interface of the active path of the
/// stream's sender (the destination AS's attachment link), or the first of the receiver's.
pub fn link_to_cut(sender: &RouteView, receiver: &RouteView) -> Option<String> {
    sender
        .hops
        .last()
        .or(receiver.hops.first())
        .filter(|h| h.contains('#'))
        .cloned()
}

/// A follower status message (`time.status.<id>`, timesync's FollowerStatus JSON).
pub fn parse_status(body: &[u8], t: f64) -> Result<(String, OffsetSample)> {
    let v: Value = serde_json::from_slice(body).context("status JSON")?;
    let id = v["id"].as_str().context("status without id")?.to_string();
    let tr = &v["tracking"];
    Ok((
        id,
        OffsetSample {
            t,
            state: tr["state"].as_str().unwrap_or("unknown").to_string(),
            true_offset_ns: v["host_offset_ns"]
                .as_i64()
                .context("status without host_offset_ns")?,
            max_error_ns: tr["max_error_ns"]
                .as_i64()
                .context("status without tracking.max_error_ns")?,
            path_switches: tr["path_switches"].as_u64().unwrap_or(0),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(go_duration_ms("41.5ms"), Some(41.5));
        assert_eq!(go_duration_ms("1.5s"), Some(1500.0));
        assert!((go_duration_ms("830µs").unwrap_or(0.0) - 0.83).abs() < 1e-9);
        assert_eq!(go_duration_ms("nope"), None);
    }

    const HOPS: [&str; 8] = [
        "18-ffaa:1:10a0#1",
        "18-ffaa:0:1208#2",
        "18-ffaa:0:1208#1",
        "18-ffaa:0:1201#3",
        "18-ffaa:0:1201#2",
        "18-ffaa:0:1206#1",
        "18-ffaa:0:1206#2",
        "18-ffaa:1:10bf#1",
    ];

    #[test]
    fn routez_and_short_path() {
        let body = serde_json::json!({"routes": [{"rtt": "50ms", "scion": {
            "remote": "x", "path_switches": 2,
            "path": {"fingerprint": "f38abada895ec7d8ff", "hops": HOPS, "rtt": "41.5ms"}}}]})
        .to_string();
        let r = parse_routez(&body).expect("routez");
        assert!(r.up);
        assert_eq!(r.rtt_ms, Some(41.5));
        assert_eq!(r.path_switches, 2);
        assert_eq!(short_path(&r.hops), "10a0#1 > 1208 > 1201 > 1206 > 10bf#1");
        assert_eq!(
            link_to_cut(&RouteView::default(), &r).as_deref(),
            Some("18-ffaa:1:10a0#1")
        );
        let none = parse_routez(r#"{"routes": []}"#).expect("empty");
        assert!(!none.up);
        assert!(parse_routez("not json").is_err());
    }

    #[test]
    fn pathz_and_status() {
        let body = serde_json::json!({"destinations": [{"paths": [
            {"fingerprint": "f38abada895ec7d8fbabe1b7", "hops": HOPS}]}]})
        .to_string();
        let m = parse_pathz(&body).expect("pathz");
        assert_eq!(m["f38abada895ec7d8"].len(), 8);
        let st = serde_json::json!({"id": "f1", "host_offset_ns": -1200,
            "tracking": {"state": "sync", "max_error_ns": 900000, "path_switches": 1}});
        let (id, s) = parse_status(st.to_string().as_bytes(), 3.0).expect("status");
        assert_eq!(id, "f1");
        assert_eq!(s.true_offset_ns, -1200);
        assert_eq!(s.max_error_ns, 900_000);
        assert!(parse_status(br#"{"id":"f1"}"#, 0.0).is_err());
    }
}
