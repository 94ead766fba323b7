//! Small SVG drawing kit for the report's charts: scales, nice ticks, axes,
//! and the shaded nemesis bands. Plain strings, no dependencies.
//!
//! Coordinates are written with one decimal: enough for a screen, and it
//! keeps large plots small.

use super::html::Esc;
use std::fmt::Write;

/// A chart's size and margins, in SVG user units.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    pub fn x0(&self) -> f64 {
        self.left
    }
    pub fn x1(&self) -> f64 {
        self.width - self.right
    }
    pub fn y0(&self) -> f64 {
        self.height - self.bottom
    }
    pub fn y1(&self) -> f64 {
        self.top
    }

    /// `<svg ...>` opening tag, scaling to the container's width.
    pub fn open(&self, class: &str, label: &str) -> String {
        format!(
            r#"<svg class="{}" viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">"#,
            Esc(class),
            self.width,
            self.height,
            Esc(label)
        )
    }
}

/// Maps a domain interval linearly onto a range.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
}

impl Linear {
    pub fn new(d0: f64, d1: f64, r0: f64, r1: f64) -> Linear {
        let d1 = if d1 > d0 { d1 } else { d0 + 1.0 };
        Linear { d0, d1, r0, r1 }
    }
    pub fn map(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }
}

/// Maps a positive domain logarithmically (base 10) onto a range.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    lin: Linear,
}

impl Log {
    /// The domain is widened to whole decades.
    pub fn new(lo: f64, hi: f64, r0: f64, r1: f64) -> Log {
        let lo = lo.max(1e-12).log10().floor();
        let hi = hi.max(1e-12).log10().ceil().max(lo + 1.0);
        Log {
            lin: Linear::new(lo, hi, r0, r1),
        }
    }
    pub fn map(&self, v: f64) -> f64 {
        self.lin.map(v.max(1e-12).log10())
    }
    /// One tick per decade (at most 12).
    pub fn decades(&self) -> Vec<f64> {
        let (lo, hi) = (self.lin.d0 as i32, self.lin.d1 as i32);
        let step = ((hi - lo) / 12 + 1).max(1) as usize;
        (lo..=hi).step_by(step).map(|e| 10f64.powi(e)).collect()
    }
}

/// About `target` round tick values covering [lo, hi].
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if hi <= lo || !hi.is_finite() || !lo.is_finite() {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last.min(first + 100))
        .map(|i| i as f64 * step)
        .collect()
}

/// `3`, `2.5`, `1k`, `20k`, `1.5M`.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = format!("{x:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    format!("{s}{suffix}")
}

/// A tick value with as many decimals as its step needs: `0.25`, `1.5`, `20`.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = (0..=12)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(12) as usize;
    if v.abs() >= 1e3 && decimals == 0 {
        short_number(v)
    } else {
        format!("{v:.decimals$}")
    }
}

/// Latency tick labels: `1µs`, `10ms`, `1s`.
pub fn latency_label(ns: f64) -> String {
    match ns {
        n if n >= 1e9 => format!("{}s", short_number(n / 1e9)),
        n if n >= 1e6 => format!("{}ms", short_number(n / 1e6)),
        n if n >= 1e3 => format!("{}µs", short_number(n / 1e3)),
        n => format!("{}ns", short_number(n)),
    }
}

/// Grid lines and labels of the x (time, seconds) axis.
pub fn x_axis(out: &mut String, f: &Frame, x: &Linear, labels: bool) {
    out.push_str(r#"<g class="axis x">"#);
    let ticks = nice_ticks(x.d0, x.d1, 10);
    let step = if ticks.len() > 1 {
        ticks[1] - ticks[0]
    } else {
        1.0
    };
    for t in ticks {
        let px = x.map(t);
        let _ = write!(
            out,
            r#"<line x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{:.1}"/>"#,
            f.y1(),
            f.y0()
        );
        if labels {
            let _ = write!(
                out,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                f.y0() + 14.0,
                tick_label(t, step)
            );
        }
    }
    if labels {
        let _ = write!(
            out,
            r#"<text class="title" x="{:.1}" y="{:.1}" text-anchor="end">time (s)</text>"#,
            f.x1(),
            f.y0() + 26.0
        );
    }
    out.push_str("</g>");
}

/// Horizontal grid lines with labels at `ticks`, and the unit at the top left.
pub fn y_axis(out: &mut String, f: &Frame, ticks: &[(f64, String)], unit: &str) {
    out.push_str(r#"<g class="axis y">"#);
    for (py, label) in ticks {
        let _ = write!(
            out,
            r#"<line x1="{:.1}" x2="{:.1}" y1="{py:.1}" y2="{py:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            f.x0(),
            f.x1(),
            f.x0() - 6.0,
            py + 4.0,
            Esc(label)
        );
    }
    let _ = write!(
        out,
        r#"<text class="unit" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
        f.x0() - 6.0,
        f.y1() - 12.0,
        Esc(unit)
    );
    out.push_str("</g>");
}

/// A nemesis fault interval, in seconds, with its colour slot.
#[derive(Debug, Clone)]
pub struct Band {
    pub fault: String,
    pub start_s: f64,
    /// The end of the history when the fault was never healed.
    pub end_s: f64,
    pub healed: bool,
    pub colour: usize,
    /// What exactly was done, as short text.
    pub detail: String,
}

/// How many fault colours the stylesheet defines (`.f0` ... `.f7`).
pub const FAULT_COLOURS: usize = 8;

/// Draws each band as a shaded rectangle over the plot area, labelled with
/// its fault in the top margin when the band is wide enough for the label
/// and the label does not run into the previous one.
pub fn bands(out: &mut String, f: &Frame, x: &Linear, bands: &[Band], labels: bool) {
    out.push_str(r#"<g class="bands">"#);
    let mut label_end = f64::MIN;
    for b in bands {
        let x0 = x.map(b.start_s).clamp(f.x0(), f.x1());
        let x1 = x.map(b.end_s).clamp(f.x0(), f.x1());
        let w = (x1 - x0).max(1.0);
        let healed = if b.healed { "" } else { " (never healed)" };
        let _ = write!(
            out,
            r#"<rect class="band f{}" data-fault="{}" x="{x0:.1}" y="{:.1}" width="{w:.1}" height="{:.1}"><title>{} from {:.2} s to {:.2} s{healed}{}{}</title></rect>"#,
            b.colour % FAULT_COLOURS,
            Esc(&b.fault),
            f.y1(),
            f.y0() - f.y1(),
            Esc(&b.fault),
            b.start_s,
            b.end_s,
            if b.detail.is_empty() { "" } else { ": " },
            Esc(&b.detail)
        );
        // Roughly 6 units per character at the label size.
        let text_w = 6.0 * b.fault.chars().count() as f64 + 4.0;
        if labels && w >= text_w && x0 >= label_end {
            label_end = x0 + text_w;
            let _ = write!(
                out,
                r#"<text class="band-label c{}" x="{:.1}" y="{:.1}">{}</text>"#,
                b.colour % FAULT_COLOURS,
                x0 + 2.0,
                f.y1() - 4.0,
                Esc(&b.fault)
            );
        }
    }
    out.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(nice_ticks(0.0, 1.0, 4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(nice_ticks(3.0, 3.0, 4), vec![3.0]);
        let l = Log::new(2e3, 3e8, 100.0, 0.0);
        assert_eq!(l.decades().len(), 7, "1µs .. 1s");
        assert!((l.map(1e3) - 100.0).abs() < 1e-9);
        assert!((l.map(1e9) - 0.0).abs() < 1e-9);
    }

    #[test]
    fn labels() {
        assert_eq!(short_number(1500.0), "1.5k");
        assert_eq!(short_number(20.0), "20");
        assert_eq!(latency_label(1e7), "10ms");
        assert_eq!(latency_label(1e3), "1µs");
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(0.3, 0.1), "0.3");
        assert_eq!(tick_label(20.0, 5.0), "20");
        assert_eq!(tick_label(5000.0, 1000.0), "5k");
    }

    #[test]
    fn one_shaded_rectangle_per_band_and_escaped_labels() {
        let f = Frame {
            width: 500.0,
            height: 100.0,
            left: 10.0,
            right: 10.0,
            top: 20.0,
            bottom: 10.0,
        };
        let x = Linear::new(0.0, 10.0, f.x0(), f.x1());
        let b = |fault: &str, s, e| Band {
            fault: fault.into(),
            start_s: s,
            end_s: e,
            healed: true,
            colour: 0,
            detail: "<x>".into(),
        };
        let mut out = String::new();
        bands(
            &mut out,
            &f,
            &x,
            &[
                b("partition", 1.0, 3.0),
                b("<kill>", 3.0, 5.0),
                b("x", 3.1, 3.2),
            ],
            true,
        );
        assert_eq!(out.matches("<rect class=\"band").count(), 3);
        assert_eq!(
            out.matches("<text class=\"band-label").count(),
            2,
            "no label on a narrow band"
        );
        assert!(out.contains("&lt;kill&gt;") && !out.contains("<kill>"));
        assert!(!out.contains("<x>"));
    }
}
