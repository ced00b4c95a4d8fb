//! The compare and history charts, drawn with the report's palette, fonts and axes
//! (`slimbench_report::kit`), once per chart for both PNG and SVG.
//!
//! * [`Dumbbell`]: one row per variant, the baseline as a ring and the candidate as a
//!   dot coloured by verdict, the gate's limit as a red tick and, for latency, the
//!   bootstrap interval as a band. A dot plot rather than bars: accuracy and latency
//!   differences are small next to the values, and bars must start at zero.
//! * [`Ecdf`]: per variant, the distribution of every batch-1 latency sample of both runs.
//! * [`Trend`]: one line per variant over the runs of a history.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use slimbench_report::kit::{
    DrawResult, Drawing, INK, INVALID, MUTED, PALETTE, accuracy_range, fixed_ticks, label_style,
    labelled_line, legend, mesh, padded_range, percent_ticks, sample_line, subtitle_style, title_style,
};

use crate::compare::{Check, Comparison, Verdict};
use crate::history::History;
use crate::render::unit;

const RED: RGBColor = PALETTE[2];
const GREEN: RGBColor = PALETTE[4];
const BLUE: RGBColor = PALETTE[0];

fn verdict_colour(v: Verdict) -> RGBColor {
    match v {
        Verdict::Regression => RED,
        Verdict::Improved => GREEN,
        v if v.is_invalid() => INVALID,
        _ => BLUE,
    }
}

/// Fractions are shown as percentages, like the report's accuracy axes.
fn is_fraction(metric: &str) -> bool {
    matches!(metric, "accuracy" | "sparsity")
}

/// Tick labels of an axis.
type TickFormat = Box<dyn Fn(&f64) -> String>;

/// A value axis around `values` and its tick labels.
fn value_axis(metric: &str, values: impl IntoIterator<Item = f64>) -> (Range<f64>, TickFormat) {
    if is_fraction(metric) {
        let range = accuracy_range(values);
        let fmt = percent_ticks(&range);
        (range, Box::new(fmt))
    } else {
        let range = padded_range(values);
        let fmt = fixed_ticks(&range);
        (range, Box::new(fmt))
    }
}

/// A linear axis ticked exactly at `ticks` (variant rows, runs). Plotters' own key-point
/// wrapper drops the formatter bound the shared `mesh` needs, hence this small axis.
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        Ticked { inner: range.into(), ticks }
    }
}

impl Ranged for Ticked {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }
    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let max = hint.max_num_points();
        if max == 0 {
            return Vec::new();
        }
        let stride = self.ticks.len().div_ceil(max).max(1);
        self.ticks.iter().copied().step_by(stride).collect()
    }
    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// `accuracy (%)`, `latency_p50_us (µs)`.
fn axis_title(metric: &str) -> String {
    match unit(metric) {
        "" => metric.to_string(),
        "fraction" => format!("{metric} (%)"),
        u => format!("{metric} ({u})"),
    }
}

/// Width of the axis area that holds `labels`, in pixels.
fn label_width<'a>(labels: impl Iterator<Item = &'a str>) -> u32 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(8);
    (longest as u32 * 8 + 24).clamp(80, 320)
}

/// Baseline against candidate for one metric, a row per variant.
pub(crate) struct Dumbbell<'a> {
    pub(crate) comparison: &'a Comparison,
    pub(crate) metric: &'a str,
}

impl Dumbbell<'_> {
    /// The checks with both values, in table order.
    fn rows(&self) -> Vec<&Check> {
        let c = self.comparison;
        c.checks
            .iter()
            .filter(|k| k.metric == self.metric && k.baseline.is_some() && k.candidate.is_some())
            .collect()
    }

    pub(crate) fn has_data(&self) -> bool {
        !self.rows().is_empty()
    }

    pub(crate) fn caption(&self) -> String {
        let mut s = format!(
            "{}: baseline (ring) and candidate (dot: red a regression, green an improvement) per variant",
            self.metric
        );
        if self.rows().iter().any(|k| k.limit.is_some()) {
            s.push_str("; the red tick is the gate's limit");
        }
        if self.rows().iter().any(|k| k.ratio.is_some()) {
            s.push_str("; the band is the bootstrap interval of the candidate's value");
        }
        if self.rows().iter().any(|k| k.verdict.is_invalid()) {
            s.push_str("; a grey dot is an invalid timing (not judged)");
        }
        s.push('.');
        s
    }
}

/// Empty rows kept below the variants so the legend never covers a dot.
const LEGEND_ROWS: f64 = 3.0;

impl Drawing for Dumbbell<'_> {
    fn name(&self) -> String {
        format!("compare-{}", self.metric)
    }

    fn size(&self) -> (u32, u32) {
        // 40 px a variant, plus LEGEND_ROWS empty rows at the bottom for the legend.
        (900, (150 + 40 * (self.rows().len() as u32 + LEGEND_ROWS as u32)).max(300))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let rows = self.rows();
        let n = rows.len();
        let y_of = |i: usize| (n - 1 - i) as f64;
        let band = |k: &Check| k.ratio.zip(k.baseline).map(|(r, b)| (b * r.low, b * r.high));
        let mut xs: Vec<f64> = Vec::new();
        for k in &rows {
            xs.extend([k.baseline, k.candidate, k.limit].into_iter().flatten());
            xs.extend(band(k).into_iter().flat_map(|(lo, hi)| [lo, hi]));
        }
        let (x_range, x_fmt) = value_axis(self.metric, xs);
        let names: Vec<&str> = rows.iter().map(|k| k.variant.as_str()).collect();
        let y_fmt = |y: &f64| {
            let i = n as f64 - 1.0 - y.round();
            if i >= 0.0 && (y - y.round()).abs() < 1e-6 {
                names.get(i as usize).copied().unwrap_or("").into()
            } else {
                String::new()
            }
        };
        let c = self.comparison;
        let title = format!("{}: {} → {}", self.metric, c.baseline.info.run_id, c.candidate.info.run_id);
        let mut chart = ChartBuilder::on(root)
            .caption(title, title_style())
            .margin(20)
            .x_label_area_size(48)
            .y_label_area_size(label_width(names.iter().copied()))
            .build_cartesian_2d(
                x_range,
                Ticked::new(-0.7 - LEGEND_ROWS..n as f64 - 0.3, (0..n).map(|i| i as f64).collect()),
            )?;
        mesh(&mut chart, &axis_title(self.metric), "", &*x_fmt, &y_fmt)?;

        let mut occupied = Vec::new();
        for (i, k) in rows.iter().enumerate() {
            let y = y_of(i);
            let (b, v) = (k.baseline.unwrap_or(f64::NAN), k.candidate.unwrap_or(f64::NAN));
            let colour = verdict_colour(k.verdict);
            if let Some((lo, hi)) = band(k) {
                chart.draw_series([Rectangle::new(
                    [(lo, y - 0.13), (hi, y + 0.13)],
                    colour.mix(0.25).filled(),
                )])?;
            }
            chart.draw_series([PathElement::new(vec![(b, y), (v, y)], MUTED.stroke_width(2))])?;
            if let Some(limit) = k.limit {
                chart.draw_series([PathElement::new(
                    vec![(limit, y - 0.32), (limit, y + 0.32)],
                    RED.stroke_width(2),
                )])?;
                occupied.push(chart.backend_coord(&(limit, y)));
            }
            chart.draw_series([Circle::new((b, y), 6, MUTED.stroke_width(2))])?;
            chart.draw_series([Circle::new((v, y), 6, colour.filled())])?;
            occupied.extend([chart.backend_coord(&(b, y)), chart.backend_coord(&(v, y))]);
        }
        let none = || std::iter::empty::<Circle<(f64, f64), i32>>();
        chart
            .draw_series(none())?
            .label(format!("baseline {}", c.baseline.info.run_id))
            .legend(|(x, y)| Circle::new((x + 10, y), 5, MUTED.stroke_width(2)));
        chart
            .draw_series(none())?
            .label(format!("candidate {}", c.candidate.info.run_id))
            .legend(|(x, y)| Circle::new((x + 10, y), 5, BLUE.filled()));
        if rows.iter().any(|k| k.limit.is_some()) {
            chart.draw_series(none())?.label("gate limit").legend(|(x, y)| {
                PathElement::new(vec![(x + 10, y - 6), (x + 10, y + 6)], RED.stroke_width(2))
            });
        }
        if rows.iter().any(|k| k.ratio.is_some()) {
            chart
                .draw_series(none())?
                .label(format!("{} interval (bootstrap)", crate::render::level(c)))
                .legend(|(x, y)| Rectangle::new([(x, y - 4), (x + 20, y + 4)], BLUE.mix(0.25).filled()));
        }
        legend(&mut chart, &occupied)
    }
}

/// The latency distributions of both runs, a panel per variant.
pub(crate) struct Ecdf<'a> {
    comparison: &'a Comparison,
    /// (variant, baseline samples, candidate samples, colour)
    variants: Vec<(&'a str, &'a [f64], &'a [f64], RGBColor)>,
}

/// Points along the empirical CDF: `steps + 1` quantiles of the sorted sample.
fn ecdf_points(samples: &[f64], steps: usize) -> Vec<(f64, f64)> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    (0..=steps)
        .map(|k| {
            let p = k as f64 / steps as f64;
            (s[(p * (s.len() - 1) as f64).round() as usize], p)
        })
        .collect()
}

impl<'a> Ecdf<'a> {
    pub(crate) fn new(comparison: &'a Comparison) -> Self {
        let mut variants: Vec<(&str, &[f64], &[f64], RGBColor)> = Vec::new();
        for k in &comparison.checks {
            if variants.iter().any(|(v, ..)| *v == k.variant) {
                continue;
            }
            let b = comparison.baseline.latency.get(&k.variant);
            let c = comparison.candidate.latency.get(&k.variant);
            if let (Some(b), Some(c)) = (b, c)
                && !b.is_empty()
                && !c.is_empty()
            {
                // The worst verdict of the variant's latency checks colours its candidate line.
                let latency =
                    comparison.checks.iter().filter(|x| x.variant == k.variant && x.ratio.is_some());
                let worst = if latency.clone().any(|x| x.verdict == Verdict::Regression) {
                    Verdict::Regression
                } else if latency.clone().any(|x| x.verdict == Verdict::Improved) {
                    Verdict::Improved
                } else {
                    Verdict::Ok
                };
                variants.push((k.variant.as_str(), b.as_slice(), c.as_slice(), verdict_colour(worst)));
            }
        }
        Ecdf { comparison, variants }
    }

    /// Only when some latency metric is compared and samples exist.
    pub(crate) fn has_data(&self) -> bool {
        !self.variants.is_empty() && self.comparison.checks.iter().any(|k| k.ratio.is_some())
    }

    pub(crate) fn caption(&self) -> String {
        "Share of batch-1 inferences faster than x, every timed sample of both runs (baseline grey, \
         candidate coloured by verdict); the x axis stops at the 99th percentile."
            .into()
    }

    fn grid(&self) -> (usize, usize) {
        let cols = self.variants.len().clamp(1, 3);
        (self.variants.len().div_ceil(cols).max(1), cols)
    }
}

impl Drawing for Ecdf<'_> {
    fn name(&self) -> String {
        "compare-latency_ecdf".into()
    }

    fn size(&self) -> (u32, u32) {
        (1100, 70 + 290 * self.grid().0 as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let area = root.titled("Batch-1 latency distributions", title_style())?;
        let panels = area.split_evenly(self.grid());
        for (idx, ((variant, b, c, colour), panel)) in self.variants.iter().zip(&panels).enumerate() {
            let (pb, pc) = (ecdf_points(b, 200), ecdf_points(c, 200));
            let p99 = |pts: &[(f64, f64)]| pts[(pts.len() - 1) * 99 / 100].0;
            let x_max = p99(&pb).max(p99(&pc));
            let x_min = pb[0].0.min(pc[0].0);
            let x_range = padded_range([x_min, x_max]);
            let (x_fmt, y_fmt) = (fixed_ticks(&x_range), percent_ticks(&(0.0..1.0)));
            let mut chart = ChartBuilder::on(panel)
                .caption(*variant, subtitle_style())
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x_range.clone(), 0.0..1.0)?;
            mesh(&mut chart, "µs", "", &x_fmt, &y_fmt)?;
            let within =
                |pts: Vec<(f64, f64)>| pts.into_iter().filter(|p| p.0 <= x_range.end).collect::<Vec<_>>();
            let (pb, pc) = (within(pb), within(pc));
            let mut occupied = sample_line(&pb.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>());
            occupied.extend(sample_line(&pc.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
            let colour = *colour;
            let base = chart.draw_series(LineSeries::new(pb, MUTED.stroke_width(2)))?;
            if idx == 0 {
                base.label("baseline")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MUTED.stroke_width(2)));
            }
            let cand = chart.draw_series(LineSeries::new(pc, colour.stroke_width(2)))?;
            if idx == 0 {
                cand.label("candidate").legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
                legend(&mut chart, &occupied)?;
            }
        }
        Ok(())
    }
}

/// One metric over a history's runs, a line per variant.
pub(crate) struct Trend<'a> {
    pub(crate) history: &'a History,
    pub(crate) metric: &'a str,
}

/// One variant's line.
struct Series<'a> {
    colour: RGBColor,
    variant: &'a str,
    points: Vec<(f64, f64)>,
}

impl Trend<'_> {
    /// The variants with at least one value.
    fn series(&self) -> Vec<Series<'_>> {
        let h = self.history;
        h.variants()
            .into_iter()
            .enumerate()
            .filter_map(|(i, variant)| {
                let points: Vec<(f64, f64)> = (0..h.runs.len())
                    .filter_map(|r| h.value(r, variant, self.metric).map(|y| (r as f64, y)))
                    .collect();
                (!points.is_empty()).then_some(Series { colour: PALETTE[i % PALETTE.len()], variant, points })
            })
            .collect()
    }

    pub(crate) fn has_data(&self) -> bool {
        !self.series().is_empty()
    }
}

impl Drawing for Trend<'_> {
    fn name(&self) -> String {
        format!("history-{}", self.metric)
    }

    fn size(&self) -> (u32, u32) {
        (1000, 540)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let h = self.history;
        let series = self.series();
        let n = h.runs.len();
        let (y_range, y_fmt) =
            value_axis(self.metric, series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
        // Run ids are ~15 characters: label at most about seven runs.
        let keys: Vec<f64> = (0..n).step_by(n.div_ceil(7).max(1)).map(|i| i as f64).collect();
        let x_fmt = |x: &f64| {
            let i = x.round();
            match h.runs.get(i as usize) {
                Some(r) if i >= 0.0 && (x - i).abs() < 1e-6 => r.info.run_id.clone(),
                _ => String::new(),
            }
        };
        let mut chart = ChartBuilder::on(root)
            .caption(format!("{}: {}", h.pipeline(), self.metric), title_style())
            .margin(20)
            .x_label_area_size(52)
            .y_label_area_size(84)
            .build_cartesian_2d(Ticked::new(-0.4..n as f64 - 0.6, keys), y_range)?;
        mesh(&mut chart, "run (oldest → newest)", &axis_title(self.metric), &x_fmt, &*y_fmt)?;
        let mut occupied = Vec::new();
        for Series { colour, variant, points } in series {
            labelled_line(&mut chart, points, colour, variant, &mut occupied)?;
        }
        if n == 1 {
            // One run is a column of dots; say why there is no line.
            root.draw(&Text::new("only one run so far", (110, 70), label_style().color(&INK)))?;
        }
        legend(&mut chart, &occupied)
    }
}
