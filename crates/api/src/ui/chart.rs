//! Charts drawn by the server as SVG: a time axis over the span asked
//! for, a value axis from zero to a round maximum, a line per series
//! (broken where a sample has no value), and a legend. Styled by class
//! only (the page's security policy allows no inline styles); text is
//! escaped. The root says how many points it drew (`data-points`).

use bale_core::samples::{Chart, Unit};
use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 24.0;

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

/// A round number at or above `x`: 1, 2, 2.5 or 5 times a power of ten.
fn nice(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= x * 0.999_999)
        .unwrap_or(10.0 * p)
}

fn si(x: f64) -> String {
    let (v, suffix) = match x.abs() {
        a if a >= 1e12 => (x / 1e12, "T"),
        a if a >= 1e9 => (x / 1e9, "G"),
        a if a >= 1e6 => (x / 1e6, "M"),
        a if a >= 1e3 => (x / 1e3, "k"),
        _ => (x, ""),
    };
    let digits = if v.fract().abs() < 1e-9 {
        0
    } else if v.abs() < 10.0 {
        2
    } else {
        1
    };
    format!("{v:.digits$}{suffix}")
}

/// A value for people, in the chart's unit.
pub fn format(unit: Unit, x: f64) -> String {
    match unit {
        Unit::BytesPerSecond => format!("{}B/s", si(x)),
        Unit::Bytes => format!("{}B", si(x)),
        Unit::FilesPerSecond => format!("{}/s", si(x)),
        Unit::Count => si(x),
        Unit::Drives => format!("{} s/s", si(x)),
        Unit::Seconds if x >= 3600.0 => format!("{:.1} h", x / 3600.0),
        Unit::Seconds if x >= 60.0 => format!("{:.1} min", x / 60.0),
        Unit::Seconds => format!("{} s", si(x)),
    }
}

fn hhmm(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", s / 3600, (s / 60) % 60)
}

/// The chart as an SVG document.
pub fn svg(c: &Chart) -> String {
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
    let span = (c.to - c.from).max(1) as f64;
    let max = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = nice(max);
    let x = |t: i64| x0 + (t - c.from) as f64 / span * (x1 - x0);
    let y = |v: f64| y0 - (v / top).clamp(0.0, 1.05) * (y0 - y1);
    let points: usize = c
        .lines
        .iter()
        .map(|l| l.points.iter().filter(|p| p.1.is_some()).count())
        .sum();
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" role="img" data-chart="{}" data-points="{points}" aria-label="{}">"#,
        esc(c.name),
        esc(c.title)
    );
    let _ = write!(s, "<title>{}</title>", esc(c.title));
    // The value axis: five grid lines with labels.
    for i in 0..=4 {
        let v = top * i as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{x0}" x2="{x1}" y1="{yy:.1}" y2="{yy:.1}"/><text class="label" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 6.0,
            yy + 4.0,
            esc(&format(c.unit, v))
        );
    }
    // The time axis: six ticks, UTC.
    for i in 0..=5 {
        let t = c.from + ((c.to - c.from) as f64 * i as f64 / 5.0) as i64;
        let xx = x(t);
        let anchor = match i {
            0 => "start",
            5 => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            r#"<line class="axis" x1="{xx:.1}" x2="{xx:.1}" y1="{y0}" y2="{:.1}"/><text class="label" x="{xx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            y0 + 4.0,
            H - 6.0,
            hhmm(t)
        );
    }
    let _ = write!(s, r#"<line class="axis" x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}"/>"#);
    let _ = write!(
        s,
        r#"<text class="label" x="{x1}" y="{:.1}" text-anchor="end">UTC</text>"#,
        H - 6.0 - 12.0
    );
    // The lines, broken at gaps; a lone point is a dot.
    for (i, line) in c.lines.iter().enumerate() {
        let class = format!("series-{}", i % 6);
        let _ = write!(s, r#"<g class="{class}" data-series="{}">"#, esc(&line.label));
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, s: &mut String| {
            match run.len() {
                0 => {}
                1 => {
                    let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5"/>"#, run[0].0, run[0].1);
                }
                _ => {
                    s.push_str(r#"<polyline points=""#);
                    for (j, (px, py)) in run.iter().enumerate() {
                        if j > 0 {
                            s.push(' ');
                        }
                        let _ = write!(s, "{px:.1},{py:.1}");
                    }
                    s.push_str(r#""/>"#);
                }
            }
            run.clear();
        };
        for (t, v) in &line.points {
            match v {
                Some(v) if v.is_finite() => run.push((x(*t), y(*v))),
                _ => flush(&mut run, &mut s),
            }
        }
        flush(&mut run, &mut s);
        s.push_str("</g>");
    }
    // The legend, along the top.
    let mut lx = x0;
    for (i, line) in c.lines.iter().enumerate() {
        let last = line.points.iter().rev().find_map(|p| p.1);
        let text = match last {
            Some(v) => format!("{} {}", line.label, format(c.unit, v)),
            None => line.label.clone(),
        };
        let _ = write!(
            s,
            r#"<g class="legend series-{}"><rect x="{lx:.1}" y="6" width="10" height="10"/><text x="{:.1}" y="15">{}</text></g>"#,
            i % 6,
            lx + 14.0,
            esc(&text)
        );
        lx += 24.0 + 6.5 * text.chars().count() as f64;
    }
    if points == 0 {
        let _ = write!(
            s,
            r#"<text class="nodata" x="{:.1}" y="{:.1}" text-anchor="middle">no data in this span yet</text>"#,
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use bale_core::samples::Line;

    #[test]
    fn draws_lines_broken_at_gaps_and_escapes_text() {
        let c = Chart {
            name: "ingest",
            title: "Ingest <&>",
            unit: Unit::BytesPerSecond,
            from: 0,
            to: 10_000,
            lines: vec![Line {
                label: "a\"b".into(),
                points: vec![(1000, Some(1.0)), (2000, Some(2.0)), (3000, None), (4000, Some(3.5e6))],
            }],
        };
        let s = svg(&c);
        assert!(s.contains(r#"data-points="3""#), "{s}");
        assert_eq!(s.matches("<polyline").count(), 1);
        assert_eq!(s.matches("<circle").count(), 1, "the lone point after the gap");
        assert!(s.contains("Ingest &lt;&amp;&gt;"));
        assert!(s.contains("a&quot;b 3.50MB/s"), "{s}");
        assert!(s.contains(">5MB/s<"), "the axis tops at a round 5 MB/s");
        assert!(
            !s.contains("style="),
            "classes only: the page's policy forbids inline styles"
        );
    }

    #[test]
    fn round_maxima_and_units() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(3.2), 5.0);
        assert_eq!(nice(2.2e9), 2.5e9);
        assert_eq!(nice(100.0), 100.0);
        assert_eq!(format(Unit::Seconds, 90.0), "1.5 min");
        assert_eq!(format(Unit::Bytes, 1_500_000.0), "1.50MB");
        assert_eq!(hhmm(3_600_000 + 61_000), "01:01");
    }
}
