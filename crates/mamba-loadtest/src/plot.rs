//! Pictures of a run: latency CDFs of TTFT, ITL and E2EL; for a sweep, latency against
//! throughput beside the TTFT CDF of every point. SVG or PNG by the file's extension; the PNG's
//! text is drawn with the DejaVu Sans font compiled in, so no system font library is needed.

use std::fmt;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::report::BenchResult;

/// Width and height of a single run's picture (three panels).
pub const RUN_SIZE: (u32, u32) = (1500, 480);
/// Width and height of a sweep's picture (two panels).
pub const SWEEP_SIZE: (u32, u32) = (1400, 560);

/// A picture that could not be drawn or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotError(String);

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlotError {}

fn err(e: impl fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

const FONT: &str = "sans-serif";

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font; a failure would only leave text undrawn.
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

#[derive(Clone, Copy)]
enum Format {
    Svg,
    Png,
}

fn format_of(path: &Path) -> Result<Format, PlotError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(PlotError(format!("{}: a plot file ends in .svg or .png", path.display()))),
    }
}

/// Draws one run's latency CDFs (TTFT, ITL, E2EL) into `path` (`.svg` or `.png`), [`RUN_SIZE`].
pub fn plot_run(result: &BenchResult, path: &Path) -> Result<(), PlotError> {
    fonts();
    match format_of(path)? {
        Format::Svg => draw_run(SVGBackend::new(path, RUN_SIZE).into_drawing_area(), result),
        Format::Png => draw_run(BitMapBackend::new(path, RUN_SIZE).into_drawing_area(), result),
    }
}

/// Draws a sweep: latency against request throughput, and the TTFT CDF of every point, into
/// `path` (`.svg` or `.png`), [`SWEEP_SIZE`].
pub fn plot_sweep(results: &[(String, BenchResult)], path: &Path) -> Result<(), PlotError> {
    fonts();
    match format_of(path)? {
        Format::Svg => draw_sweep(SVGBackend::new(path, SWEEP_SIZE).into_drawing_area(), results),
        Format::Png => draw_sweep(BitMapBackend::new(path, SWEEP_SIZE).into_drawing_area(), results),
    }
}

fn sorted_ms(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.map(|s| s * 1000.0).filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The CDF as points (value, % of values ≤ it).
fn cdf(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len() as f64;
    // At most ~2000 points: enough for a smooth line, small files.
    let step = (sorted.len() / 2000).max(1);
    let mut points: Vec<(f64, f64)> =
        sorted.iter().enumerate().step_by(step).map(|(i, v)| (*v, (i + 1) as f64 / n * 100.0)).collect();
    if let Some(last) = sorted.last() {
        points.push((*last, 100.0));
    }
    points
}

/// The x range: from 0, or from just below the smallest value when all values sit far from
/// 0 (an E2EL CDF would otherwise be a vertical line at the right edge).
fn x_range(sets: &[&[f64]]) -> std::ops::Range<f64> {
    let max = sets.iter().filter_map(|s| s.last()).copied().fold(0.0, f64::max);
    let min = sets.iter().filter_map(|s| s.first()).copied().fold(f64::INFINITY, f64::min);
    if max <= 0.0 {
        return 0.0..1.0;
    }
    if min.is_finite() && min > 0.5 * max {
        let pad = ((max - min) * 0.05).max(max * 0.001);
        (min - pad).max(0.0)..max + pad
    } else {
        0.0..max * 1.05
    }
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn cdf_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[(String, Vec<f64>)],
) -> Result<(), PlotError> {
    let sets: Vec<&[f64]> = series.iter().map(|(_, v)| v.as_slice()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(52)
        .build_cartesian_2d(x_range(&sets), 0f64..100f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("milliseconds")
        .y_desc("% of requests at or below")
        .light_line_style(TRANSPARENT)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    for (i, (label, values)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let drawn = chart.draw_series(LineSeries::new(cdf(values), color.stroke_width(2))).map_err(err)?;
        if !label.is_empty() {
            drawn
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
    }
    if series.iter().any(|(l, _)| !l.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

fn draw_run<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, result: &BenchResult) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(err)?;
    let ok = || result.records.iter().filter(|r| r.success);
    let m = &result.metrics;
    let panels = [
        ("TTFT", sorted_ms(ok().map(|r| r.ttft)), m.ttft.median),
        ("ITL", sorted_ms(ok().flat_map(|r| r.itl.iter().copied())), m.itl.median),
        ("E2EL", sorted_ms(ok().map(|r| r.latency)), m.e2el.median),
    ];
    let areas = root.split_evenly((1, 3));
    for (area, (name, values, median)) in areas.iter().zip(panels) {
        let title = format!("{name} CDF (median {median:.2} ms, n = {})", values.len());
        let label = format!("{} req/s, {} done", fmt_rate(result), m.completed);
        cdf_panel(area, &title, &[(label, values)])?;
    }
    root.present().map_err(err)
}

fn fmt_rate(result: &BenchResult) -> String {
    match result.info.rate {
        crate::schedule::Rate::Infinite => "inf".to_owned(),
        crate::schedule::Rate::PerSecond(r) => format!("{r}"),
    }
}

fn draw_sweep<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    results: &[(String, BenchResult)],
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(err)?;
    let (left, right) = root.split_horizontally(SWEEP_SIZE.0 / 2);
    let p99 = |s: &crate::metrics::Stats| s.percentiles.iter().find(|(p, _)| *p == 99.0).map_or(s.median, |(_, v)| *v);
    let lines: [(&str, Vec<(f64, f64)>); 3] = [
        ("median TTFT", results.iter().map(|(_, r)| (r.metrics.request_throughput, r.metrics.ttft.median)).collect()),
        ("P99 TTFT", results.iter().map(|(_, r)| (r.metrics.request_throughput, p99(&r.metrics.ttft))).collect()),
        ("median E2EL", results.iter().map(|(_, r)| (r.metrics.request_throughput, r.metrics.e2el.median)).collect()),
    ];
    let x_hi = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.0)).fold(0.0, f64::max).max(1e-9) * 1.08;
    let y_hi = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(0.0, f64::max).max(1e-9) * 1.08;
    let mut chart = ChartBuilder::on(&left)
        .caption("Latency against throughput", (FONT, 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_hi, 0f64..y_hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("completed requests per second")
        .y_desc("milliseconds")
        .light_line_style(TRANSPARENT)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    let series: Vec<(String, Vec<f64>)> = results
        .iter()
        .map(|(label, r)| (label.clone(), sorted_ms(r.records.iter().filter(|x| x.success).map(|x| x.ttft))))
        .collect();
    cdf_panel(&right, "TTFT CDF per point", &series)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_points_end_at_100_percent() {
        let p = cdf(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(p.first(), Some(&(1.0, 25.0)));
        assert_eq!(p.last(), Some(&(4.0, 100.0)));
        assert!(cdf(&[]).is_empty());
        assert_eq!(cdf(&(0..10_000).map(f64::from).collect::<Vec<_>>()).len(), 2001);
    }

    #[test]
    fn extension_picks_the_format() {
        assert!(format_of(Path::new("a.svg")).is_ok());
        assert!(format_of(Path::new("a.PNG")).is_ok());
        assert!(format_of(Path::new("a.jpg")).is_err());
    }

    #[test]
    fn x_range_starts_at_zero_unless_values_are_far_from_it() {
        assert_eq!(x_range(&[&[1.0, 2.0]]), 0.0..2.1);
        let r = x_range(&[&[120.0, 140.0]]);
        assert!(r.start > 100.0 && r.start < 120.0 && r.end > 140.0, "{r:?}");
        assert_eq!(x_range(&[&[]]), 0.0..1.0);
    }
}
