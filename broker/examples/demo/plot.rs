//! A hand-written SVG of the run (pure): follower error with its claimed bound, messages
//! delivered per 100 ms with their one-way latency, and the path the stream used, against time.

use std::fmt::Write as _;

use crate::stats::{OffsetSample, PathChange};

/// Everything the plot shows. Times are seconds since the stream started.
#[derive(Debug, Default)]
pub struct PlotData {
    pub title: String,
    pub duration: f64,
    /// Vertical markers, e.g. (10.0, "cut 18-ffaa:1:10a0#1").
    pub events: Vec<(f64, String)>,
    pub followers: Vec<(String, Vec<OffsetSample>)>,
    /// Path changes of the stream and a label per tag.
    pub paths: Vec<PathChange>,
    pub path_labels: Vec<(String, String)>,
    /// (bucket start, messages delivered in the bucket, max one-way latency ms).
    pub delivery: Vec<(f64, u32, f64)>,
    pub bucket_s: f64,
}

const W: f64 = 1100.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

struct Panel {
    top: f64,
    height: f64,
    duration: f64,
}

impl Panel {
    fn x(&self, t: f64) -> f64 {
        LEFT + (W - LEFT - RIGHT) * (t / self.duration.max(1e-9)).clamp(0.0, 1.0)
    }
    /// Maps `v` in `lo..hi` to the panel's height (higher values up).
    fn y(&self, v: f64, lo: f64, hi: f64) -> f64 {
        let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        self.top + self.height * (1.0 - f.clamp(0.0, 1.0))
    }
    fn frame(&self, out: &mut String, title: &str) {
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
            self.top,
            W - LEFT - RIGHT,
            self.height
        );
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{}</text>"##,
            self.top - 6.0,
            esc(title)
        );
    }
    fn y_tick(&self, out: &mut String, v: f64, lo: f64, hi: f64, label: &str) {
        let y = self.y(v, lo, hi);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            esc(label)
        );
    }
    fn events(&self, out: &mut String, events: &[(f64, String)]) {
        for (t, _) in events {
            let x = self.x(*t);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#e377c2" stroke-dasharray="5,4"/>"##,
                self.top,
                self.top + self.height
            );
        }
    }
}

/// A readable µs/ms label.
fn us_label(us: f64) -> String {
    if us.abs() >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// Renders the SVG document.
pub fn render(d: &PlotData) -> String {
    let lanes = d.path_labels.len().max(1);
    let p1 = Panel {
        top: 60.0,
        height: 230.0,
        duration: d.duration,
    };
    let p2 = Panel {
        top: p1.top + p1.height + 50.0,
        height: 130.0,
        duration: d.duration,
    };
    let p3 = Panel {
        top: p2.top + p2.height + 50.0,
        height: 28.0 * lanes as f64,
        duration: d.duration,
    };
    let h = p3.top + p3.height + 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">"##
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        out,
        r##"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"##,
        esc(&d.title)
    );

    // Panel 1: true error of each follower, and its claimed bound as a band.
    p1.frame(
        &mut out,
        "follower error (follower clock - source clock) and its claimed bound",
    );
    let synced = |s: &&OffsetSample| s.state != "startup";
    // Scale to the error, not the bound: the bound is often 100x the error and would flatten
    // it; the band is clipped to the panel and the legend gives the largest bound.
    let mut span: f64 = 10.0;
    let mut max_bound: Vec<f64> = Vec::new();
    for (_, samples) in &d.followers {
        let mut b: f64 = 0.0;
        for s in samples.iter().filter(synced) {
            span = span.max(s.true_offset_ns.unsigned_abs() as f64 / 1e3);
            b = b.max(s.max_error_ns.max(0) as f64 / 1e3);
        }
        max_bound.push(b);
    }
    let span = span * 1.5;
    for v in [-span, -span / 2.0, 0.0, span / 2.0, span] {
        p1.y_tick(&mut out, v, -span, span, &us_label(v));
    }
    for (i, (name, samples)) in d.followers.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<&OffsetSample> = samples.iter().filter(synced).collect();
        if pts.len() >= 2 {
            let mut band = String::new();
            for s in &pts {
                let _ = write!(
                    band,
                    "{:.1},{:.1} ",
                    p1.x(s.t),
                    p1.y(s.max_error_ns as f64 / 1e3, -span, span)
                );
            }
            for s in pts.iter().rev() {
                let _ = write!(
                    band,
                    "{:.1},{:.1} ",
                    p1.x(s.t),
                    p1.y(-(s.max_error_ns as f64) / 1e3, -span, span)
                );
            }
            let _ = writeln!(
                out,
                r##"<polygon points="{band}" fill="{color}" fill-opacity="0.12" stroke="none"/>"##
            );
        }
        let line: String = pts
            .iter()
            .map(|s| {
                format!(
                    "{:.1},{:.1} ",
                    p1.x(s.t),
                    p1.y(s.true_offset_ns as f64 / 1e3, -span, span)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            r##"<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.8"/>"##
        );
        for s in pts.iter().filter(|s| s.breaks_bound()) {
            let _ = writeln!(
                out,
                r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="red"/>"##,
                p1.x(s.t),
                p1.y(s.true_offset_ns as f64 / 1e3, -span, span)
            );
        }
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" font-size="12" fill="{color}">{}: error; band: ± claimed bound (up to {})</text>"##,
            LEFT + 10.0 + 400.0 * i as f64,
            p1.top + 16.0,
            esc(name),
            us_label(max_bound.get(i).copied().unwrap_or(0.0))
        );
    }
    p1.events(&mut out, &d.events);

    // Panel 2: delivery per bucket and worst one-way latency.
    p2.frame(
        &mut out,
        &format!(
            "messages delivered per {:.0} ms (bars) and worst one-way latency (line)",
            d.bucket_s * 1e3
        ),
    );
    let max_n = d.delivery.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let max_lat = d.delivery.iter().map(|b| b.2).fold(1.0, f64::max).max(1.0);
    p2.y_tick(&mut out, max_n, 0.0, max_n, &format!("{max_n:.0}"));
    p2.y_tick(&mut out, 0.0, 0.0, max_n, "0");
    let bw = (p2.x(d.bucket_s) - p2.x(0.0)).max(1.0);
    for (t, n, _) in &d.delivery {
        let y = p2.y(f64::from(*n), 0.0, max_n);
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="#aec7e8"/>"##,
            p2.x(*t),
            p2.top + p2.height - y
        );
    }
    let lat: String = d
        .delivery
        .iter()
        .filter(|b| b.1 > 0)
        .map(|(t, _, l)| {
            format!(
                "{:.1},{:.1} ",
                p2.x(t + d.bucket_s / 2.0),
                p2.y(*l, 0.0, max_lat)
            )
        })
        .collect();
    let _ = writeln!(
        out,
        r##"<polyline points="{lat}" fill="none" stroke="#ff7f0e" stroke-width="1.5"/><text x="{}" y="{}" font-size="11" fill="#ff7f0e">latency max {max_lat:.0} ms</text>"##,
        W - RIGHT - 130.0,
        p2.top + 14.0
    );
    p2.events(&mut out, &d.events);

    // Panel 3: one lane per path the stream used.
    p3.frame(
        &mut out,
        "path of the stream (from the Nats-Scion-Path header of each message)",
    );
    let lane_y = |i: usize| p3.top + 28.0 * i as f64 + 14.0;
    for (i, (_, label)) in d.path_labels.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{:.1}" font-size="11" fill="{}">{}</text>"##,
            LEFT + 6.0,
            lane_y(i) - 4.0,
            COLORS[i % COLORS.len()],
            esc(label)
        );
    }
    for (k, c) in d.paths.iter().enumerate() {
        let Some(i) = d.path_labels.iter().position(|(tag, _)| *tag == c.tag) else {
            continue;
        };
        let end = d.paths.get(k + 1).map(|n| n.t).unwrap_or(d.duration);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="8"/>"##,
            p3.x(c.t),
            lane_y(i) + 4.0,
            p3.x(end),
            lane_y(i) + 4.0,
            COLORS[i % COLORS.len()]
        );
    }
    p3.events(&mut out, &d.events);

    // Time axis and event labels.
    let step = if d.duration > 30.0 { 5.0 } else { 2.0 };
    let mut t = 0.0;
    while t <= d.duration + 1e-9 {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{t:.0}</text>"##,
            p3.x(t),
            p3.top + p3.height + 16.0
        );
        t += step;
    }
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">time since the stream started (s)</text>"##,
        (LEFT + W - RIGHT) / 2.0,
        p3.top + p3.height + 34.0
    );
    for (t, label) in &d.events {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#e377c2">{}</text>"##,
            p1.x(*t) + 3.0,
            p1.top + 32.0,
            esc(label)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_panel_and_escapes_text() {
        let s = |t: f64, off: i64, bound: i64| OffsetSample {
            t,
            state: "sync".into(),
            true_offset_ns: off,
            max_error_ns: bound,
            path_switches: 0,
        };
        let d = PlotData {
            title: "demo <run>".into(),
            duration: 20.0,
            events: vec![(10.0, "cut a#1".into())],
            followers: vec![(
                "f1".into(),
                vec![s(1.0, 1000, 5000), s(2.0, -2000, 5000), s(3.0, 9000, 5000)],
            )],
            paths: vec![
                PathChange {
                    t: 0.0,
                    tag: "aa".into(),
                },
                PathChange {
                    t: 10.1,
                    tag: "bb".into(),
                },
            ],
            path_labels: vec![("aa".into(), "A".into()), ("bb".into(), "B".into())],
            delivery: vec![(0.0, 100, 15.0), (0.1, 0, 0.0), (0.2, 100, 26.0)],
            bucket_s: 0.1,
        };
        let svg = render(&d);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("demo &lt;run&gt;"));
        assert_eq!(svg.matches("<polygon").count(), 1);
        // The sample at 9 µs outside a 5 µs bound is marked.
        assert_eq!(svg.matches("<circle").count(), 1);
        assert_eq!(svg.matches(r#"stroke-width="8""#).count(), 2);
        assert!(svg.contains("cut a#1"));
    }
}
