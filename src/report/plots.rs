//! The charts: latency over time (one panel per function, ok / fail / info
//! distinguished), throughput over time, both under the nemesis bands, and
//! the latency percentiles table.
//!
//! Large histories are drawn binned: points are snapped to a grid of cells
//! a little larger than a pixel and each occupied cell is drawn once, so a
//! million operations make a chart of bounded size that looks the same.

use super::html::{Esc, duration_ns, thousands};
use super::svg::{self, Band, Frame, Linear, Log};
use crate::checker::perf::{Percentiles, Perf, Throughput, outcome_slot, throughput};
use std::collections::HashMap;
use std::fmt::Write;

const WIDTH: f64 = 1000.0;
/// Cell size of the point grid, in SVG units.
const CELL: f64 = 2.0;
/// Throughput bins over the run.
const THROUGHPUT_BINS: usize = 240;
const OUTCOMES: [&str; 3] = ["ok", "fail", "info"];

fn frame(height: f64) -> Frame {
    Frame {
        width: WIDTH,
        height,
        left: 64.0,
        right: 12.0,
        top: 22.0,
        bottom: 30.0,
    }
}

fn time_scale(perf: &Perf, f: &Frame) -> Linear {
    Linear::new(0.0, perf.end_ns as f64 / 1e9, f.x0(), f.x1())
}

/// The legend of fault colours, shared by every chart.
pub fn fault_legend(bands: &[Band]) -> String {
    if bands.is_empty() {
        return r#"<p class="note">No nemesis faults in this history.</p>"#.into();
    }
    let mut seen: Vec<(&str, usize, usize)> = Vec::new();
    for b in bands {
        match seen.iter_mut().find(|(f, _, _)| *f == b.fault) {
            Some(s) => s.2 += 1,
            None => seen.push((&b.fault, b.colour, 1)),
        }
    }
    let mut out = String::from(r#"<div class="legend faults">Faults: "#);
    for (fault, colour, n) in seen {
        let _ = write!(
            out,
            r#"<span><i class="sw f{}"></i>{} ×{n}</span>"#,
            colour % svg::FAULT_COLOURS,
            Esc(fault)
        );
    }
    out.push_str("</div>");
    out
}

/// `1 operation`, `1,204 operations`.
pub fn plural(n: usize, word: &str) -> String {
    format!(
        "{} {word}{}",
        thousands(n as u64),
        if n == 1 { "" } else { "s" }
    )
}

/// Latency scatter, one panel per function.
pub fn latency(perf: &Perf, bands: &[Band]) -> String {
    let plotted = || {
        perf.timings
            .iter()
            .filter_map(|t| t.latency_ns.map(|l| (t, l)))
    };
    let (lo, hi) = plotted().fold((u64::MAX, 0), |(lo, hi), (_, l)| {
        (lo.min(l.max(1)), hi.max(l))
    });
    if hi == 0 {
        return r#"<p class="note">No completed operations: nothing to plot.</p>"#.into();
    }
    let mut out = String::from(
        r#"<div class="legend"><span><i class="sw ok"></i>ok</span><span><i class="sw fail"></i>fail</span><span><i class="sw info"></i>info (unknown)</span></div>"#,
    );
    let never = perf
        .timings
        .iter()
        .filter(|t| t.latency_ns.is_none())
        .count();
    if never > 0 {
        let _ = write!(
            out,
            r#"<p class="note">{} never completed and {} no latency.</p>"#,
            plural(never, "operation"),
            if never == 1 { "has" } else { "have" }
        );
    }
    for (fi, fname) in perf.fs.iter().enumerate() {
        let f = frame(190.0);
        let x = time_scale(perf, &f);
        let y = Log::new(lo as f64, hi as f64, f.y0(), f.y1());
        let _ = write!(
            out,
            r#"<figure class="panel" data-f="{}"><figcaption><code>{}</code> latency</figcaption>"#,
            Esc(fname),
            Esc(fname)
        );
        out.push_str(&f.open("chart latency", &format!("latency of {fname} over time")));
        svg::bands(&mut out, &f, &x, bands, true);
        svg::x_axis(&mut out, &f, &x, true);
        let ticks: Vec<(f64, String)> = y
            .decades()
            .into_iter()
            .map(|v| (y.map(v), svg::latency_label(v)))
            .collect();
        svg::y_axis(&mut out, &f, &ticks, "");
        // Draw ok first, so rarer fail and info marks stay on top.
        for (slot, outcome) in OUTCOMES.iter().enumerate() {
            let mut cells: HashMap<(u32, u32), u32> = HashMap::new();
            for (t, l) in plotted().filter(|(t, _)| t.f as usize == fi) {
                if outcome_slot(t.outcome) == slot {
                    let px = x.map(t.start_ns as f64 / 1e9);
                    let py = y.map(l.max(1) as f64);
                    *cells
                        .entry(((px / CELL) as u32, (py / CELL) as u32))
                        .or_default() += 1;
                }
            }
            // Few points: bigger marks, so each one is seen.
            let base = if perf.timings.len() < 5_000 {
                CELL * 1.5
            } else {
                CELL
            };
            let size = if slot == 0 { base } else { base * 1.5 };
            // Denser cells are drawn darker, so a crowded band still shows where most ops are.
            for (level, counts) in [(0, 1..=1), (1, 2..=7), (2, 8..=u32::MAX)] {
                let mut level_cells: Vec<(u32, u32)> = cells
                    .iter()
                    .filter(|(_, n)| counts.contains(*n))
                    .map(|(c, _)| *c)
                    .collect();
                if level_cells.is_empty() {
                    continue;
                }
                level_cells.sort_unstable();
                let _ = write!(
                    out,
                    r#"<path class="pts {outcome} d{level}" data-points="{}" d=""#,
                    level_cells.len()
                );
                for (cx, cy) in level_cells {
                    let _ = write!(
                        out,
                        "M{:.1} {:.1}h{size}v{size}h-{size}z",
                        cx as f64 * CELL,
                        cy as f64 * CELL
                    );
                }
                out.push_str(r#""/>"#);
            }
        }
        out.push_str("</svg></figure>");
    }
    out
}

/// Completed operations per second: a line per function (ok), one for all
/// failures and one for all info completions.
pub fn throughput_chart(perf: &Perf, bands: &[Band]) -> String {
    let tp = throughput(perf, THROUGHPUT_BINS);
    let bin_s = tp.bin_ns as f64 / 1e9;
    let mut series: Vec<(String, String, Vec<u32>)> = perf
        .fs
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("{f} ok"),
                format!("s{}", i % 6),
                tp.counts[i][0].clone(),
            )
        })
        .collect();
    for (slot, name) in [(1, "fail"), (2, "info")] {
        let sum = sum_over_fs(&tp, slot);
        if sum.iter().any(|&c| c > 0) {
            series.push((format!("all {name}"), name.to_string(), sum));
        }
    }
    let max = series
        .iter()
        .flat_map(|s| s.2.iter())
        .copied()
        .max()
        .unwrap_or(0) as f64
        / bin_s;
    let f = frame(240.0);
    let x = time_scale(perf, &f);
    let top = svg::nice_ticks(0.0, max.max(1.0), 5)
        .last()
        .copied()
        .unwrap_or(1.0)
        .max(max);
    let y = Linear::new(0.0, top, f.y0(), f.y1());
    let mut out = String::from(r#"<div class="legend">"#);
    for (name, class, _) in &series {
        let _ = write!(
            out,
            r#"<span><i class="ln {class}"></i>{}</span>"#,
            Esc(name)
        );
    }
    let _ = write!(
        out,
        r#"<span class="muted">bins of {}</span></div>"#,
        duration_ns(tp.bin_ns)
    );
    out.push_str(&f.open("chart throughput", "throughput over time"));
    svg::bands(&mut out, &f, &x, bands, true);
    svg::x_axis(&mut out, &f, &x, true);
    let ticks: Vec<(f64, String)> = svg::nice_ticks(0.0, top, 5)
        .into_iter()
        .map(|v| (y.map(v), svg::short_number(v)))
        .collect();
    svg::y_axis(&mut out, &f, &ticks, "ops/s");
    for (name, class, counts) in &series {
        let _ = write!(
            out,
            r#"<polyline class="line {class}" data-series="{}" points=""#,
            Esc(name)
        );
        for (i, &c) in counts.iter().enumerate() {
            let mid_s = (i as f64 + 0.5) * bin_s;
            let _ = write!(
                out,
                "{:.1},{:.1} ",
                x.map(mid_s.min(x.d1)),
                y.map(c as f64 / bin_s)
            );
        }
        out.push_str(r#""/>"#);
    }
    out.push_str("</svg>");
    out
}

fn sum_over_fs(tp: &Throughput, slot: usize) -> Vec<u32> {
    let mut sum = vec![0u32; tp.bins()];
    for per_f in &tp.counts {
        for (s, c) in sum.iter_mut().zip(&per_f[slot]) {
            *s += c;
        }
    }
    sum
}

/// Latency percentiles of ok operations, per function.
pub fn percentiles_table(rows: &[Percentiles]) -> String {
    let mut out = String::from(
        r#"<table class="num percentiles"><thead><tr><th>function</th><th>ops</th><th>ok</th><th>fail</th><th>info</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr></thead><tbody>"#,
    );
    let cell = |v: Option<u64>| v.map_or("–".to_string(), duration_ns);
    for r in rows {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            Esc(&r.f),
            thousands(r.count as u64),
            thousands(r.ok as u64),
            thousands(r.fail as u64),
            thousands(r.unknown as u64),
            cell(r.latency_ns_p50),
            cell(r.latency_ns_p90),
            cell(r.latency_ns_p99),
            cell(r.latency_ns_p999),
            cell(r.latency_ns_max)
        );
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::perf::Timing;
    use crate::history::Outcome;

    fn perf(n: u64) -> Perf {
        Perf {
            fs: vec!["read".into(), "<w>".into()],
            timings: (0..n)
                .map(|i| Timing {
                    f: (i % 2) as u32,
                    outcome: if i % 10 == 0 {
                        Outcome::Fail
                    } else {
                        Outcome::Ok
                    },
                    completed: true,
                    start_ns: i * 1_000_000,
                    latency_ns: Some(1_000_000 + (i % 97) * 10_000),
                })
                .collect(),
            end_ns: n * 1_000_000,
        }
    }

    #[test]
    fn binned_scatter_stays_bounded_and_escapes_names() {
        let small = latency(&perf(1_000), &[]);
        let big = latency(&perf(200_000), &[]);
        assert!(small.contains("<code>&lt;w&gt;</code> latency") && !small.contains("<w>"));
        assert_eq!(
            small.matches("<figure class=\"panel\"").count(),
            2,
            "one panel per function"
        );
        // Binned: 200x the points, bounded by the pixel grid (about 500 x 80 cells per series).
        assert!(big.len() < 40 * 500 * 80, "{} bytes", big.len());
        assert!(big.contains(r#"class="pts fail d"#));
        assert!(
            big.contains(r#"class="pts ok d2""#),
            "dense cells are drawn darkest"
        );
    }

    #[test]
    fn throughput_has_a_line_per_function_and_one_for_failures() {
        let svg = throughput_chart(&perf(1_000), &[]);
        assert_eq!(
            svg.matches("<polyline").count(),
            3,
            "read ok, <w> ok, all fail"
        );
        assert!(svg.contains(r#"data-series="all fail""#));
    }
}
