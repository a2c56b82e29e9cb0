//! A hand-written SVG line plot (no plotting dependency): one or more panels, each with
//! series of (x, y) points, axes, ticks and vertical markers.

use std::fmt::Write as _;

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Vertical marker (x, label), drawn in every panel.
pub type Marker = (f64, String);

const W: f64 = 1000.0;
const PANEL_H: f64 = 300.0;
const ML: f64 = 80.0;
const MR: f64 = 20.0;
const MT: f64 = 40.0;
const MB: f64 = 40.0;

fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= n as f64)
        .unwrap_or(10.0 * mag);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + step * 1e-9 && out.len() < 50 {
        out.push(v);
        v += step;
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Render panels stacked vertically, sharing the x axis (seconds).
pub fn render(title: &str, panels: &[Panel], markers: &[Marker]) -> String {
    let h = MT + panels.len() as f64 * PANEL_H;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="22" font-size="16" text-anchor="middle">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let all = panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter()));
    let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, _) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
    }
    if !x0.is_finite() {
        x0 = 0.0;
        x1 = 1.0;
    }
    for (pi, p) in panels.iter().enumerate() {
        let top = MT + pi as f64 * PANEL_H;
        let (pt, pb) = (top + 20.0, top + PANEL_H - MB);
        let (pl, pr) = (ML, W - MR);
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for s in &p.series {
            for &(_, y) in &s.points {
                if y.is_finite() {
                    y0 = y0.min(y);
                    y1 = y1.max(y);
                }
            }
        }
        if !y0.is_finite() {
            y0 = -1.0;
            y1 = 1.0;
        }
        if y1 - y0 < 1e-9 {
            y0 -= 1.0;
            y1 += 1.0;
        }
        let pad = (y1 - y0) * 0.05;
        let (y0, y1) = (y0 - pad, y1 + pad);
        let sx = |x: f64| pl + (x - x0) / (x1 - x0).max(1e-9) * (pr - pl);
        let sy = |y: f64| pb - (y.clamp(y0, y1) - y0) / (y1 - y0) * (pb - pt);
        let _ = writeln!(
            o,
            r#"<text x="{pl}" y="{}" font-size="13">{}</text>"#,
            top + 14.0,
            esc(&p.title)
        );
        let _ = writeln!(
            o,
            r##"<rect x="{pl}" y="{pt}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
            pr - pl,
            pb - pt
        );
        for t in nice_ticks(y0, y1, 6) {
            let y = sy(t);
            let _ = writeln!(
                o,
                r##"<line x1="{pl}" x2="{pr}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                pl - 4.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        for t in nice_ticks(x0, x1, 10) {
            let x = sx(t);
            let _ = writeln!(
                o,
                r##"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                pb + 16.0,
                fmt_tick(t)
            );
        }
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle">time (s)</text>"#,
            (pl + pr) / 2.0,
            pb + 32.0
        );
        let _ = writeln!(
            o,
            r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{}</text>"#,
            (pt + pb) / 2.0,
            (pt + pb) / 2.0,
            esc(&p.y_label)
        );
        if y0 < 0.0 && y1 > 0.0 {
            let y = sy(0.0);
            let _ = writeln!(
                o,
                r##"<line x1="{pl}" x2="{pr}" y1="{y:.1}" y2="{y:.1}" stroke="#aaa"/>"##
            );
        }
        for (mx, label) in markers {
            let x = sx(*mx);
            let _ = writeln!(
                o,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{pt}" y2="{pb}" stroke="#c90" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#a60">{}</text>"##,
                x + 3.0,
                pt + 12.0,
                esc(label)
            );
        }
        for (si, s) in p.series.iter().enumerate() {
            let mut d = String::new();
            for (i, &(x, y)) in s.points.iter().enumerate() {
                if !y.is_finite() {
                    continue;
                }
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if i == 0 { "M" } else { "L" },
                    sx(x),
                    sy(y)
                );
            }
            let _ = writeln!(
                o,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.2"/>"#,
                s.color
            );
            let ly = pt + 14.0 + si as f64 * 14.0;
            let _ = writeln!(
                o,
                r#"<rect x="{}" y="{}" width="12" height="3" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                pr - 220.0,
                ly - 4.0,
                s.color,
                pr - 204.0,
                ly,
                esc(&s.name)
            );
        }
    }
    o.push_str("</svg>\n");
    o
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_well_formed_svg_with_series_and_markers() {
        let p = Panel {
            title: "err".into(),
            y_label: "ms".into(),
            series: vec![Series {
                name: "ours <1>".into(),
                color: "blue",
                points: vec![(0.0, 1.0), (1.0, -1.0), (2.0, f64::NAN)],
            }],
        };
        let s = render("t", &[p], &[(1.0, "switch".into())]);
        assert!(s.starts_with("<svg"));
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("ours &lt;1&gt;"));
        assert!(s.contains("switch"));
        assert_eq!(s.matches("<path").count(), 1);
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
    }
}
