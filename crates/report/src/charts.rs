//! The report's charts, drawn once per chart by functions generic over the plotters
//! backend, so the PNG (bitmap backend) and the SVG (SVG backend, also inlined into
//! the HTML) are the same picture.
//!
//! Variant names come from user YAML and are passed to plotters as they are: the SVG
//! backend escapes `<`, `>`, `&`, `"` and `'` in text and attributes (see the
//! `svg_text_is_escaped` test), and a bitmap has nothing to escape.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use slimbench_core::fsutil;
use slimbench_core::records::{
    CurvePoint, MetricRow, ParallelRow, ServerRow, SpeedupRow, SystemSample, ThroughputRow,
};

use crate::{ChartFormat, ReportError, ReportInput, format};

/// The charts a report can contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChartKind {
    /// Accuracy vs model file size (log KB), one labelled point per variant.
    AccuracyVsSize,
    /// Accuracy vs batch-1 p50 latency, with the Pareto front.
    AccuracyVsLatency,
    /// Loss and accuracy vs optimizer step for every trained variant.
    TrainingCurves,
    /// Accuracy vs sparsity of the pruned variants and their dense baselines.
    AccuracyVsSparsity,
    /// Images per second vs batch size (log-log).
    Throughput,
    /// Speedup over the baseline of each compressed variant's forms, at batch 1 and the
    /// largest batch.
    Speedup,
    /// Training images/s of every training stage, one bar per stage, by parallelism
    /// (loader workers, data-parallel replicas and processes, pipeline stages).
    ParallelThroughput,
    /// Training loss of the data-parallel stages, sync against async (and a
    /// single-process baseline), over the staleness of the async updates.
    SyncVsAsync,
    /// The machine over the run: CPU use and memory, GPU utilization and power when a
    /// GPU was sampled.
    System,
    /// The server scenario: p99 latency against the offered rate per variant, with the
    /// p99 target.
    Server,
    /// Batch-1 p50 latency of every variant on every backend (`backends:`), one bar
    /// per backend, with the 95% intervals.
    Backends,
}

impl ChartKind {
    /// Every chart, in report order.
    pub const ALL: [ChartKind; 11] = [
        ChartKind::AccuracyVsSize,
        ChartKind::AccuracyVsLatency,
        ChartKind::TrainingCurves,
        ChartKind::AccuracyVsSparsity,
        ChartKind::Throughput,
        ChartKind::Speedup,
        ChartKind::Backends,
        ChartKind::Server,
        ChartKind::ParallelThroughput,
        ChartKind::SyncVsAsync,
        ChartKind::System,
    ];

    /// File stem under `charts/` (`accuracy_vs_size`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ChartKind::AccuracyVsSize => "accuracy_vs_size",
            ChartKind::AccuracyVsLatency => "accuracy_vs_latency",
            ChartKind::TrainingCurves => "training_curves",
            ChartKind::AccuracyVsSparsity => "accuracy_vs_sparsity",
            ChartKind::Throughput => "throughput",
            ChartKind::Speedup => "speedup",
            ChartKind::ParallelThroughput => "parallel_throughput",
            ChartKind::SyncVsAsync => "sync_vs_async",
            ChartKind::System => "system",
            ChartKind::Server => "server_latency",
            ChartKind::Backends => "backend_latency",
        }
    }

    /// The chart's title.
    pub fn title(self) -> &'static str {
        match self {
            ChartKind::AccuracyVsSize => "Accuracy vs model size",
            ChartKind::AccuracyVsLatency => "Accuracy vs batch-1 latency",
            ChartKind::TrainingCurves => "Training curves",
            ChartKind::AccuracyVsSparsity => "Accuracy vs sparsity",
            ChartKind::Throughput => "Throughput vs batch size",
            ChartKind::Speedup => "Speedup over the baseline",
            ChartKind::ParallelThroughput => "Training throughput by parallelism",
            ChartKind::SyncVsAsync => "Sync vs async data parallelism",
            ChartKind::System => "The machine during the run",
            ChartKind::Server => "Server scenario: p99 latency vs offered rate",
            ChartKind::Backends => "Batch-1 latency by backend",
        }
    }

    /// Width and height in pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            ChartKind::TrainingCurves => (1100, 520),
            ChartKind::SyncVsAsync => (1000, 760),
            ChartKind::System => (1100, 860),
            _ => (900, 560),
        }
    }
}

/// File extension of a chart format.
pub(crate) fn extension(format: ChartFormat) -> &'static str {
    match format {
        ChartFormat::Png => "png",
        ChartFormat::Svg => "svg",
    }
}

/// One chart of the report: its SVG markup, or why it was skipped.
#[derive(Debug)]
pub(crate) struct Chart {
    pub(crate) kind: ChartKind,
    pub(crate) svg: Option<String>,
    pub(crate) skipped: Option<&'static str>,
}

/// Tableau 10: distinct, colour-blind-friendly enough, dark enough on white.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
];
/// Text and axes.
pub const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
/// Secondary lines and markers.
pub const MUTED: RGBColor = RGBColor(0x88, 0x88, 0x88);
/// Grid lines.
pub const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
/// Registered with plotters under this name (any string is a valid key), which the SVG
/// then asks the browser for: the embedded font where installed, a sans-serif elsewhere.
pub const FONT: &str = "DejaVu Sans, sans-serif";

/// The input plus what every chart shares: each variant's colour, assigned in the order
/// variants first appear (metrics, then curves, then throughput) so a variant has the
/// same colour in every chart and in the HTML table (then the server scenario's).
pub(crate) struct ChartData<'a> {
    input: &'a ReportInput,
    colours: HashMap<&'a str, RGBColor>,
}

impl<'a> ChartData<'a> {
    pub(crate) fn new(input: &'a ReportInput) -> Self {
        let names = input
            .metrics
            .iter()
            .map(|m| m.variant.as_str())
            .chain(input.curves.iter().map(|c| c.variant.as_str()))
            .chain(input.throughput.iter().map(|t| t.variant.as_str()))
            .chain(input.server.iter().map(|r| r.variant.as_str()));
        let mut colours = HashMap::new();
        for name in names {
            let next = PALETTE[colours.len() % PALETTE.len()];
            colours.entry(name).or_insert(next);
        }
        ChartData { input, colours }
    }

    fn colour(&self, variant: &str) -> RGBColor {
        self.colours.get(variant).copied().unwrap_or(MUTED)
    }

    /// The variant's colour as `#rrggbb`, for the HTML.
    pub(crate) fn colour_hex(&self, variant: &str) -> String {
        let RGBColor(r, g, b) = self.colour(variant);
        format!("#{r:02x}{g:02x}{b:02x}")
    }

    /// Why `kind` cannot be drawn from this run, if it cannot.
    pub(crate) fn skip_reason(&self, kind: ChartKind) -> Option<&'static str> {
        let input = self.input;
        let empty = match kind {
            ChartKind::AccuracyVsSize => size_points(&input.metrics).next().is_none(),
            ChartKind::AccuracyVsLatency => crate::latency_points(&input.metrics).next().is_none(),
            ChartKind::TrainingCurves => curve_points(&input.curves).next().is_none(),
            ChartKind::AccuracyVsSparsity => !input.metrics.iter().any(is_pruned),
            ChartKind::Throughput => throughput_points(self).next().is_none(),
            ChartKind::Speedup => speedup_bars(&crate::speedup::group(&input.speedup)).is_empty(),
            ChartKind::ParallelThroughput => !input.parallel.iter().any(crate::parallel::measured),
            ChartKind::SyncVsAsync => crate::parallel::sync_async_rows(input).is_empty(),
            ChartKind::System => crate::parallel::timeline(&input.system).samples.is_empty(),
            ChartKind::Server => server_points(&input.server).next().is_none(),
            ChartKind::Backends => crate::backends::group(&input.backends).is_empty(),
        };
        empty.then_some(match kind {
            ChartKind::AccuracyVsSize => "no variant has both an accuracy and a model file size",
            ChartKind::AccuracyVsLatency => "no batch-1 latency was measured",
            ChartKind::TrainingCurves => "no training curves were recorded",
            ChartKind::AccuracyVsSparsity => "no pruned variant (sparsity > 0) in this run",
            ChartKind::Throughput => "no throughput was measured",
            ChartKind::Speedup => "no compressed variant was timed beside its baseline",
            ChartKind::ParallelThroughput => "no training stage recorded its throughput and parallelism",
            ChartKind::SyncVsAsync => "no data-parallel training stage recorded a loss curve",
            ChartKind::System => "the machine was not sampled while stages ran",
            ChartKind::Server => "the server scenario was not run",
            ChartKind::Backends => "only libtorch was timed (no `backends:` beyond it)",
        })
    }
}

/// A chart that can be drawn on any plotters backend, so that its PNG and its SVG are
/// the same picture. The report's charts are one; `slimbench-compare` draws its own.
pub trait Drawing {
    /// The chart's name, for errors (`accuracy_vs_size`, `compare-accuracy`).
    fn name(&self) -> String;
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draw onto `root`, already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// One of the report's charts.
pub(crate) struct ReportChart<'a, 'd> {
    pub(crate) data: &'a ChartData<'d>,
    pub(crate) kind: ChartKind,
}

impl Drawing for ReportChart<'_, '_> {
    fn name(&self) -> String {
        self.kind.name().to_string()
    }
    fn size(&self) -> (u32, u32) {
        self.kind.size()
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let data = self.data;
        match self.kind {
            ChartKind::AccuracyVsSize => accuracy_vs_size(data, root),
            ChartKind::AccuracyVsLatency => accuracy_vs_latency(data, root),
            ChartKind::TrainingCurves => training_curves(data, root),
            ChartKind::AccuracyVsSparsity => accuracy_vs_sparsity(data, root),
            ChartKind::Throughput => throughput(data, root),
            ChartKind::Speedup => speedup(data, root),
            ChartKind::ParallelThroughput => parallel_throughput(data, root),
            ChartKind::SyncVsAsync => sync_vs_async(data, root),
            ChartKind::System => system(data, root),
            ChartKind::Server => server(data, root),
            ChartKind::Backends => backend_latency(data, root),
        }
    }
}

/// Draw every chart as SVG (the HTML inlines them all), noting the ones without data.
pub(crate) fn draw_svgs(data: &ChartData<'_>) -> Result<Vec<Chart>, ReportError> {
    ChartKind::ALL
        .iter()
        .map(|&kind| {
            if let Some(reason) = data.skip_reason(kind) {
                return Ok(Chart { kind, svg: None, skipped: Some(reason) });
            }
            Ok(Chart { kind, svg: Some(svg(&ReportChart { data, kind })?), skipped: None })
        })
        .collect()
}

/// Fill, draw and present `chart` on `root`.
fn paint<DB: DrawingBackend>(chart: &impl Drawing, root: &DrawingArea<DB, Shift>) -> Result<(), ReportError> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| ReportError::Chart {
        chart: chart.name(),
        message: e.to_string(),
    };
    root.fill(&WHITE).map_err(fail)?;
    chart.draw(root).map_err(fail)?;
    root.present().map_err(fail)
}

/// `chart` as SVG markup.
pub fn svg(chart: &impl Drawing) -> Result<String, ReportError> {
    register_font();
    let mut svg = String::new();
    paint(chart, &SVGBackend::with_string(&mut svg, chart.size()).into_drawing_area())?;
    Ok(svg)
}

/// Draw `chart` as a PNG at `path`, atomically: drawn into an RGB buffer, encoded with
/// `png` (plotters' own file output would pull in the whole `image` crate and write in
/// place).
pub fn write_png(chart: &impl Drawing, path: &Path) -> Result<(), ReportError> {
    register_font();
    let (width, height) = chart.size();
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    paint(chart, &BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area())?;
    fsutil::atomic_write_with(path, |file| {
        let mut encoder = png::Encoder::new(file, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        Ok(writer.finish()?)
    })?;
    Ok(())
}

/// Write `chart` as `<dir>/<stem>.png` and `<dir>/<stem>.svg`; returns the SVG markup
/// (for inlining into a page) and the two paths.
pub fn write_chart(
    chart: &impl Drawing,
    dir: &Path,
    stem: &str,
) -> Result<(String, [PathBuf; 2]), ReportError> {
    let markup = svg(chart)?;
    let (png_path, svg_path) = (dir.join(format!("{stem}.png")), dir.join(format!("{stem}.svg")));
    write_png(chart, &png_path)?;
    fsutil::atomic_write(&svg_path, markup.as_bytes())?;
    Ok((markup, [png_path, svg_path]))
}

/// Plotters' `ab_glyph` text needs fonts registered by name; slim images have none.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // A failure surfaces as a "font unavailable" drawing error, naming the chart.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// What drawing on a plotters backend returns.
pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

// ---- styles ---------------------------------------------------------------------

/// Chart titles.
pub fn title_style() -> TextStyle<'static> {
    (FONT, 22).into_font().style(FontStyle::Bold).color(&INK)
}

/// Panel titles.
pub fn subtitle_style() -> TextStyle<'static> {
    (FONT, 16).into_font().style(FontStyle::Bold).color(&INK)
}

/// Point labels and small text.
pub fn label_style() -> TextStyle<'static> {
    (FONT, 13).into_font().color(&INK)
}

/// Grid, axis descriptions and tick labels, the same on every chart, whatever the
/// coordinate types.
pub fn mesh<DB, X, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
    x_fmt: &dyn Fn(&X::ValueType) -> String,
    y_fmt: &dyn Fn(&Y::ValueType) -> String,
) -> DrawResult<DB>
where
    DB: DrawingBackend,
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FONT, 15).into_font().color(&INK))
        .label_style((FONT, 13).into_font().color(&INK))
        .axis_style(MUTED)
        .bold_line_style(GRID)
        // A minor grid every tenth of a tick is noise at these sizes.
        .max_light_lines(0)
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .draw()
}

/// Legend box, placed in the corner of the plot that covers the fewest of `pixels`.
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pixels: &[(i32, i32)],
) -> DrawResult<DB> {
    let corner = emptiest_corner(&chart.plotting_area().get_pixel_range(), pixels);
    chart
        .configure_series_labels()
        .position(corner)
        .margin(12)
        .label_font((FONT, 13).into_font().color(&INK))
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .draw()
}

/// A labelled line with a dot at each point; its pixels are added to `occupied`, for
/// [`legend`] to keep clear of.
pub fn labelled_line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    label: &str,
    occupied: &mut Vec<(i32, i32)>,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    occupied.extend(sample_line(&points.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
    chart
        .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    Ok(())
}

// ---- axes -----------------------------------------------------------------------

/// The smallest and largest finite values, if any.
pub fn min_max(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Accuracy axis: the data plus some air, within [0, 1] unless a point sits at 100%.
pub fn accuracy_range(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = min_max(values).unwrap_or((0.0, 1.0));
    let pad = ((hi - lo) * 0.12).max(0.005);
    let top = if hi + pad / 2.0 <= 1.0 { (hi + pad).min(1.0) } else { hi + pad };
    (lo - pad).max(0.0)..top
}

/// Linear axis around non-negative values, with some air each side but not below 0.
pub fn padded_range(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = min_max(values).unwrap_or((0.0, 1.0));
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.05).max(1e-9);
    (lo - pad).max(0.0)..hi + pad
}

/// Log axis around positive values, with half a factor of two of air each side.
fn log_range(values: impl IntoIterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = min_max(values.into_iter().filter(|v| *v > 0.0)).unwrap_or((1.0, 10.0));
    (lo / 1.5)..(hi * 1.5)
}

/// Ticks for a log axis: powers of ten, else 1-2-5, else every integer multiple,
/// whichever first gives at least three ticks inside the range (plotters' own log
/// ticks leave a range under a decade with one tick or none).
fn log_ticks(range: &Range<f64>) -> Vec<f64> {
    let (lo, hi) = (range.start, range.end);
    let ticks = |mults: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        let mut decade = 10f64.powf(lo.log10().floor());
        while decade <= hi {
            out.extend(mults.iter().map(|m| m * decade).filter(|t| (lo..=hi).contains(t)));
            decade *= 10.0;
        }
        out
    };
    let mut chosen = Vec::new();
    for mults in [&[1.0][..], &[1.0, 2.0, 5.0], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]] {
        chosen = ticks(mults);
        if chosen.len() >= 3 {
            break;
        }
    }
    // Very wide ranges: every other (third, ...) power of ten.
    let stride = chosen.len().div_ceil(10).max(1);
    chosen.into_iter().step_by(stride).collect()
}

/// The ticks plotters labels on a linear axis over `range`: its own key points for
/// the mesh's default of at most 11 labels (what [`mesh`] draws).
pub fn linear_ticks(range: &Range<f64>) -> Vec<f64> {
    if !(range.start.is_finite() && range.end.is_finite()) {
        return Vec::new();
    }
    plotters::coord::types::RangedCoordf64::from(range.clone()).key_points(11usize)
}

/// Decimals that show a difference of `step`: the fewest with which `step` is a whole
/// number of the last digit (0.2 → 1, 0.25 → 2, 5 → 0), at most 6.
pub fn step_decimals(step: f64) -> usize {
    if !step.is_finite() || step <= 0.0 {
        return 0;
    }
    (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            scaled >= 1.0 - 1e-9 && (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6)
}

/// A tick value with `decimals` decimals: thousands separators on whole numbers
/// (`1,200`), no `-0`.
pub fn tick_label(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = if decimals == 0 && v.abs() >= 1000.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        format!("{sign}{}", crate::format::thousands(v.abs().round() as u64))
    } else {
        format!("{v:.decimals$}")
    };
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => s,
    }
}

/// The one tick formatter of every linear axis: `scale` times the value (100 for a
/// fraction shown in percent) followed by `suffix`, with as many decimals as the step
/// between the ticks plotters draws on `range` needs, the same on every tick (ticks
/// finer than the labels read `99%, 99%, 100%`; this reads `99.4%, 99.6%, 99.8%`).
pub fn axis_ticks(range: &Range<f64>, scale: f64, suffix: &'static str) -> impl Fn(&f64) -> String + use<> {
    let ticks = linear_ticks(range);
    let step = ticks.windows(2).map(|w| (w[1] - w[0]).abs()).filter(|d| *d > 0.0).fold(f64::NAN, f64::min);
    // One tick (or none): decimals from the range's span.
    let step = if step.is_finite() { step } else { (range.end - range.start).abs() / 10.0 };
    let d = step_decimals(step * scale);
    move |v: &f64| format!("{}{suffix}", tick_label(v * scale, d))
}

/// Tick labels of a linear axis of plain numbers.
pub fn fixed_ticks(range: &Range<f64>) -> impl Fn(&f64) -> String + use<> {
    axis_ticks(range, 1.0, "")
}

/// Tick labels of a fraction axis shown as percentages.
pub fn percent_ticks(range: &Range<f64>) -> impl Fn(&f64) -> String + use<> {
    axis_ticks(range, 100.0, "%")
}

/// Tick labels of a log axis (1-2-5 values): the step at a tick is its decade, so
/// whole numbers with separators and small values with the decimals of their decade
/// (`0.05`, `0.2`, `20,000`).
fn log_tick(v: &f64) -> String {
    if !(v.is_finite() && *v > 0.0) {
        return tick_label(*v, 0);
    }
    tick_label(*v, step_decimals(10f64.powf(v.log10().floor())))
}

// ---- placement ------------------------------------------------------------------

/// The plot corner whose quadrant holds the fewest of `pixels` (ties: upper left,
/// upper right, lower right, lower left).
fn emptiest_corner(plot: &(Range<i32>, Range<i32>), pixels: &[(i32, i32)]) -> SeriesLabelPosition {
    let (xs, ys) = plot;
    let (mx, my) = ((xs.start + xs.end) / 2, (ys.start + ys.end) / 2);
    let count = |left: bool, upper: bool| {
        pixels.iter().filter(|&&(x, y)| (x < mx) == left && (y < my) == upper).count()
    };
    [
        (count(true, true), SeriesLabelPosition::UpperLeft),
        (count(false, true), SeriesLabelPosition::UpperRight),
        (count(false, false), SeriesLabelPosition::LowerRight),
        (count(true, false), SeriesLabelPosition::LowerLeft),
    ]
    .into_iter()
    .min_by_key(|(n, _)| *n)
    .map(|(_, corner)| corner)
    .unwrap_or(SeriesLabelPosition::UpperRight)
}

#[derive(Clone, Copy)]
struct Rect {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
    fn inside(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }
}

/// A square of half-width `r` around a pixel.
fn around((x, y): (i32, i32), r: i32) -> Rect {
    Rect { x0: x - r, y0: y - r, x1: x + r, y1: y + r }
}

/// Label every point with its variant name, next to it: the first of sixteen positions
/// around the point (eight directions, near then farther out) that stays inside the plot
/// and clear of every point, obstacle and label placed so far; failing that, the
/// position that needs the shortest push down to get clear, with a leader line back to
/// its point. `points` and `obstacles` are in backend pixels.
fn draw_point_labels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: (Range<i32>, Range<i32>),
    points: &[((i32, i32), &str)],
    obstacles: &[Rect],
) -> DrawResult<DB> {
    const R: i32 = 7; // a marker's half-width
    let style = label_style();
    let bounds = Rect { x0: plot.0.start, y0: plot.1.start, x1: plot.0.end, y1: plot.1.end };
    let mut taken: Vec<Rect> = points.iter().map(|&(p, _)| around(p, R)).collect();
    taken.extend_from_slice(obstacles);
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].0.1, points[i].0.0));
    for i in order {
        let ((ax, ay), text) = points[i];
        let (w, h) = root.estimate_text_size(text, &style)?;
        let (w, h) = (w as i32, h as i32);
        let at = |x: i32, y: i32| Rect { x0: x, y0: y, x1: x + w, y1: y + h };
        let candidates: Vec<Rect> = [R + 3, R + 9]
            .into_iter()
            .flat_map(|d| {
                let diag = d * 2 / 3;
                [
                    at(ax + d, ay - h / 2),
                    at(ax + diag, ay - h - diag),
                    at(ax + diag, ay + diag),
                    at(ax - d - w, ay - h / 2),
                    at(ax - diag - w, ay - h - diag),
                    at(ax - diag - w, ay + diag),
                    at(ax - w / 2, ay - h - d),
                    at(ax - w / 2, ay + d),
                ]
            })
            .collect();
        let clear = |r: &Rect| !taken.iter().any(|t| t.overlaps(r));
        let rect = match candidates.iter().find(|r| r.inside(&bounds) && clear(r)) {
            Some(r) => *r,
            None => {
                let pushed = |mut r: Rect| {
                    while let Some(t) = taken.iter().find(|t| t.overlaps(&r)) {
                        r = at(r.x0, t.y1 + 1);
                    }
                    r
                };
                let r = candidates
                    .iter()
                    .filter(|r| r.inside(&bounds))
                    .map(|&r| pushed(r))
                    .min_by_key(|r| (r.y0 - ay).abs())
                    .unwrap_or_else(|| pushed(candidates[0]));
                let end = if r.x0 > ax { (r.x0 - 2, r.y0 + h / 2) } else { (r.x1 + 2, r.y0 + h / 2) };
                root.draw(&PathElement::new(vec![(ax, ay), end], MUTED.stroke_width(1)))?;
                r
            }
        };
        root.draw(&Text::new(text, (rect.x0, rect.y0), style.clone()))?;
        taken.push(rect);
    }
    Ok(())
}

/// Pixels every few pixels along a polyline, so that legends and labels can avoid
/// the line and not only its vertices.
pub fn sample_line(pixels: &[(i32, i32)]) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = pixels.first().copied().into_iter().collect();
    for pair in pixels.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        let n = ((x1 - x0).abs().max((y1 - y0).abs()) / 6).max(1);
        out.extend((1..=n).map(|k| (x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n)));
    }
    out
}

// ---- the charts -------------------------------------------------------------------

/// (size in KB, accuracy, row) of rows with both measured.
fn size_points(metrics: &[MetricRow]) -> impl Iterator<Item = (f64, f64, &MetricRow)> {
    metrics
        .iter()
        .filter(|m| m.file_size_bytes > 0 && m.accuracy.is_finite())
        .map(|m| (m.file_size_bytes as f64 / 1e3, m.accuracy, m))
}

fn accuracy_vs_size<DB: DrawingBackend>(
    data: &ChartData<'_>,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    let points: Vec<_> = size_points(&data.input.metrics).collect();
    let x_range = log_range(points.iter().map(|p| p.0));
    let y_range = accuracy_range(points.iter().map(|p| p.1));
    let x_ticks = log_ticks(&x_range);
    let y_fmt = percent_ticks(&y_range);
    let mut chart = ChartBuilder::on(root)
        .caption(ChartKind::AccuracyVsSize.title(), title_style())
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.log_scale().with_key_points(x_ticks), y_range)?;
    mesh(&mut chart, "Model file size (KB, log scale)", "Top-1 accuracy (test set)", &log_tick, &y_fmt)?;
    chart.draw_series(
        points.iter().map(|&(x, y, m)| Circle::new((x, y), 6, data.colour(&m.variant).filled())),
    )?;
    let labels: Vec<_> =
        points.iter().map(|&(x, y, m)| (chart.backend_coord(&(x, y)), m.variant.as_str())).collect();
    draw_point_labels(root, chart.plotting_area().get_pixel_range(), &labels, &[])
}

fn accuracy_vs_latency<DB: DrawingBackend>(
    data: &ChartData<'_>,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    let metrics = &data.input.metrics;
    let all: Vec<crate::LatencyPoint> = crate::latency_points(metrics).collect();
    let at = |p: &crate::LatencyPoint| (p.cost.value, p.accuracy);
    // The front of the valid timings, latencies compared within their intervals.
    let valid: Vec<&crate::LatencyPoint> = all.iter().filter(|p| !p.invalid).collect();
    let costs: Vec<(crate::Cost, f64)> = valid.iter().map(|p| (p.cost, p.accuracy)).collect();
    let front: Vec<(f64, f64)> =
        crate::pareto_front_within(&costs).into_iter().map(|i| at(valid[i])).collect();
    let x_range = padded_range(all.iter().flat_map(|p| [p.cost.lo, p.cost.hi]));
    let y_range = accuracy_range(all.iter().map(|p| p.accuracy));
    let (x_fmt, y_fmt) = (fixed_ticks(&x_range), percent_ticks(&y_range));
    let x_end = x_range.end;
    let mut chart = ChartBuilder::on(root)
        .caption(ChartKind::AccuracyVsLatency.title(), title_style())
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, y_range)?;
    mesh(&mut chart, "Batch-1 latency, median (µs)", "Top-1 accuracy (test set)", &x_fmt, &y_fmt)?;

    // The best accuracy reachable within a latency budget: a step up at each optimal
    // variant, flat to the right edge after the last.
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for &p in &front {
        if let Some(&(_, prev)) = steps.last() {
            steps.push((p.0, prev));
        }
        steps.push(p);
    }
    if let Some(&(_, last)) = steps.last() {
        steps.push((x_end, last));
    }
    let front_style = INK.mix(0.75).stroke_width(2);
    chart
        .draw_series(LineSeries::new(steps.clone(), front_style))?
        .label("Pareto front (latencies within noise count as equal)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], front_style));
    chart
        .draw_series(front.iter().map(|&p| Circle::new(p, 10, INK.stroke_width(2))))?
        .label("Pareto-optimal variant")
        .legend(|(x, y)| Circle::new((x + 10, y), 6, INK.stroke_width(2)));
    let timed: Vec<TimedPoint> = all
        .iter()
        .map(|p| TimedPoint {
            at: at(p),
            from: (p.cost.lo, p.accuracy),
            to: (p.cost.hi, p.accuracy),
            colour: data.colour(&metrics[p.row].variant),
            invalid: p.invalid,
        })
        .collect();
    draw_timed(&mut chart, &timed, 6, "median's 95% interval")?;

    let names: Vec<String> = all.iter().map(|p| timed_name(&metrics[p.row].variant, p.invalid)).collect();
    let labels: Vec<_> =
        all.iter().zip(&names).map(|(p, n)| (chart.backend_coord(&at(p)), n.as_str())).collect();
    let step_pixels = sample_line(&steps.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>());
    // Labels keep clear of the rings, the error bars and the front's line.
    let mut obstacles: Vec<Rect> = front.iter().map(|p| around(chart.backend_coord(p), 11)).collect();
    obstacles.extend(step_pixels.iter().map(|&p| around(p, 2)));
    obstacles.extend(timed.iter().flat_map(|t| bar_pixels(&chart, t)).map(|p| around(p, 2)));
    draw_point_labels(root, chart.plotting_area().get_pixel_range(), &labels, &obstacles)?;
    let mut occupied = step_pixels;
    occupied.extend(labels.iter().map(|l| l.0));
    legend(&mut chart, &occupied)?;
    Ok(())
}

/// A measured point with its interval: drawn with an error bar from `from` to `to`
/// where they differ, filled in its colour, or hollow and grey when its timing is
/// invalid.
pub struct TimedPoint {
    /// The point (the median).
    pub at: (f64, f64),
    /// One end of its interval (the point itself where there is none).
    pub from: (f64, f64),
    /// The other end.
    pub to: (f64, f64),
    /// Its series' colour.
    pub colour: RGBColor,
    /// Its timing is invalid.
    pub invalid: bool,
}

impl TimedPoint {
    fn has_bar(&self) -> bool {
        let finite = |(x, y): (f64, f64)| x.is_finite() && y.is_finite();
        finite(self.from) && finite(self.to) && self.from != self.to
    }
}

/// The colour an invalid timing is drawn in.
pub const INVALID: RGBColor = RGBColor(0x9E, 0x9E, 0x9E);

/// A point's label: its name, and `(invalid)` when its timing is.
pub fn timed_name(name: &str, invalid: bool) -> String {
    if invalid { format!("{name} (invalid)") } else { name.to_string() }
}

/// Draw `points` with their error bars (capped, in the points' colours) and markers of
/// radius `r` (none for 0: bars drawn by the caller); legend entries for the bars (`bar_label`) and, when a point is invalid,
/// for the hollow marker.
pub fn draw_timed<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    points: &[TimedPoint],
    r: i32,
    bar_label: &str,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    const CAP: i32 = 4;
    for t in points.iter().filter(|t| t.has_bar()) {
        let style = if t.invalid { INVALID.stroke_width(1) } else { t.colour.mix(0.8).stroke_width(2) };
        let cap = if t.from.1 == t.to.1 { [(0, -CAP), (0, CAP)] } else { [(-CAP, 0), (CAP, 0)] };
        chart.draw_series([PathElement::new(vec![t.from, t.to], style)])?;
        chart.draw_series(
            [t.from, t.to].map(|end| EmptyElement::at(end) + PathElement::new(cap.to_vec(), style)),
        )?;
    }
    chart.draw_series(points.iter().filter(|_| r > 0).map(|t| {
        if t.invalid {
            Circle::new(t.at, r, INVALID.stroke_width(2))
        } else {
            Circle::new(t.at, r, t.colour.filled())
        }
    }))?;
    if points.iter().any(TimedPoint::has_bar) {
        chart.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?.label(bar_label).legend(
            |(x, y)| {
                let style = MUTED.stroke_width(2);
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (20, 0)], style)
                    + PathElement::new(vec![(0, -CAP), (0, CAP)], style)
                    + PathElement::new(vec![(20, -CAP), (20, CAP)], style)
            },
        );
    }
    if points.iter().any(|t| t.invalid) {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
            .label("invalid timing (hollow, grey)")
            .legend(move |(x, y)| {
                // Bars (r = 0) are drawn in outline; points as a ring.
                let shape: DynElement<'static, DB, (i32, i32)> = if r > 0 {
                    Circle::new((x + 10, y), r, INVALID.stroke_width(2)).into_dyn()
                } else {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], INVALID.stroke_width(2)).into_dyn()
                };
                shape
            });
    }
    Ok(())
}

/// Pixels along a point's error bar, for labels and legends to keep clear of.
fn bar_pixels<DB, X, Y>(chart: &ChartContext<'_, DB, Cartesian2d<X, Y>>, t: &TimedPoint) -> Vec<(i32, i32)>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if t.has_bar() {
        sample_line(&[chart.backend_coord(&t.from), chart.backend_coord(&t.to)])
    } else {
        Vec::new()
    }
}

/// Curve points with a finite loss or accuracy.
fn curve_points(curves: &[CurvePoint]) -> impl Iterator<Item = &CurvePoint> {
    curves.iter().filter(|c| c.loss.is_finite() || c.accuracy.is_finite())
}

/// Distinct values in first-seen order.
pub fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// One panel of the training curves: `value` against step, the train split as lines,
/// the test split as markers; the legend names the variants or explains the encoding.
struct Panel<'p> {
    title: &'p str,
    y_desc: &'p str,
    y_range: Range<f64>,
    y_fmt: &'p dyn Fn(&f64) -> String,
    value: fn(&CurvePoint) -> f64,
    variant_legend: bool,
}

fn training_curves<DB: DrawingBackend>(
    data: &ChartData<'_>,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    let area = root.titled(ChartKind::TrainingCurves.title(), title_style())?;
    let (left, right) = area.split_horizontally(area.dim_in_pixel().0 / 2);
    let curves: Vec<&CurvePoint> = curve_points(&data.input.curves).collect();
    let max_loss = min_max(curves.iter().map(|c| c.loss)).map_or(1.0, |(_, hi)| hi.max(1e-3));
    let loss_range = 0.0..max_loss * 1.08;
    let acc_range = accuracy_range(curves.iter().map(|c| c.accuracy));
    let (loss_fmt, acc_fmt) = (fixed_ticks(&loss_range), percent_ticks(&acc_range));
    let loss = Panel {
        title: "Loss",
        y_desc: "Mean loss",
        y_range: loss_range,
        y_fmt: &loss_fmt,
        value: |c| c.loss,
        variant_legend: true,
    };
    let accuracy = Panel {
        title: "Accuracy",
        y_desc: "Accuracy",
        y_range: acc_range,
        y_fmt: &acc_fmt,
        value: |c| c.accuracy,
        variant_legend: false,
    };
    curve_panel(data, &curves, &left, loss)?;
    curve_panel(data, &curves, &right, accuracy)
}

fn curve_panel<DB: DrawingBackend>(
    data: &ChartData<'_>,
    curves: &[&CurvePoint],
    area: &DrawingArea<DB, Shift>,
    panel: Panel<'_>,
) -> DrawResult<DB> {
    let max_step = curves.iter().map(|c| c.step).max().unwrap_or(0).max(1) as f64;
    let x_range = 0.0..max_step * 1.03;
    let x_fmt = fixed_ticks(&x_range);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, subtitle_style())
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, panel.y_range)?;
    mesh(&mut chart, "Optimizer step", panel.y_desc, &x_fmt, panel.y_fmt)?;
    let mut occupied = Vec::new();
    for variant in distinct(curves.iter().map(|c| c.variant.as_str())) {
        let colour = data.colour(variant);
        let split = |split: &str| {
            let mut pts: Vec<(f64, f64)> = curves
                .iter()
                .filter(|c| c.variant == variant && c.split == split && (panel.value)(c).is_finite())
                .map(|c| (c.step as f64, (panel.value)(c)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts
        };
        let (train, test) = (split("train"), split("test"));
        occupied.extend(sample_line(&train.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
        occupied.extend(test.iter().map(|p| chart.backend_coord(p)));
        let line = chart.draw_series(LineSeries::new(train, colour.stroke_width(2)))?;
        if panel.variant_legend {
            line.label(variant)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        chart.draw_series(test.into_iter().map(|p| Circle::new(p, 5, colour.filled())))?;
    }
    if !panel.variant_legend {
        // The other panel names the variants; this one explains the encoding.
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
            .label("train split (running mean)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], MUTED.stroke_width(2)));
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
            .label("test split (end of epoch)")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, MUTED.filled()));
    }
    legend(&mut chart, &occupied)?;
    Ok(())
}

/// A pruned variant: some weights are zero.
fn is_pruned(m: &MetricRow) -> bool {
    m.sparsity.is_finite() && m.sparsity > 0.0 && m.accuracy.is_finite()
}

/// A dense baseline the pruned variants are compared against.
fn is_dense_baseline(m: &MetricRow) -> bool {
    m.sparsity == 0.0 && m.technique == "baseline" && m.accuracy.is_finite()
}

fn accuracy_vs_sparsity<DB: DrawingBackend>(
    data: &ChartData<'_>,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    let rows: Vec<&MetricRow> =
        data.input.metrics.iter().filter(|m| is_pruned(m) || is_dense_baseline(m)).collect();
    let x_range = -0.03..1.03;
    let y_range = accuracy_range(rows.iter().map(|m| m.accuracy));
    let (x_fmt, y_fmt) = (percent_ticks(&x_range), percent_ticks(&y_range));
    let mut chart = ChartBuilder::on(root)
        .caption(ChartKind::AccuracyVsSparsity.title(), title_style())
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, y_range)?;
    mesh(
        &mut chart,
        "Sparsity (share of zero weights in conv/linear layers)",
        "Top-1 accuracy (test set)",
        &x_fmt,
        &y_fmt,
    )?;
    // One sweep line per model: its baseline through its pruned variants.
    let mut obstacles = Vec::new();
    for model in distinct(rows.iter().map(|m| m.model.as_str())) {
        let mut sweep: Vec<(f64, f64)> =
            rows.iter().filter(|m| m.model == model).map(|m| (m.sparsity, m.accuracy)).collect();
        sweep.sort_by(|a, b| a.0.total_cmp(&b.0));
        if sweep.len() > 1 {
            let pixels: Vec<_> = sweep.iter().map(|p| chart.backend_coord(p)).collect();
            obstacles.extend(sample_line(&pixels).into_iter().map(|p| around(p, 2)));
            chart.draw_series(LineSeries::new(sweep, MUTED.stroke_width(1)))?;
        }
    }
    chart.draw_series(
        rows.iter().map(|m| Circle::new((m.sparsity, m.accuracy), 6, data.colour(&m.variant).filled())),
    )?;
    let labels: Vec<_> =
        rows.iter().map(|m| (chart.backend_coord(&(m.sparsity, m.accuracy)), m.variant.as_str())).collect();
    draw_point_labels(root, chart.plotting_area().get_pixel_range(), &labels, &obstacles)
}

/// Both axes of a log-log chart.
type LogLog = Cartesian2d<WithKeyPoints<LogCoord<f64>>, WithKeyPoints<LogCoord<f64>>>;

/// The `kind` chart as a log-log plot of `xs` against `ys` with the report's mesh
/// (`descs`: the axes' descriptions), the x axis ticked at the values measured unless
/// there are too many to read.
fn log_log<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    kind: ChartKind,
    mut xs: Vec<f64>,
    ys: impl IntoIterator<Item = f64>,
    descs: (&str, &str),
) -> Result<ChartContext<'a, DB, LogLog>, DrawingAreaErrorKind<DB::ErrorType>> {
    let x_range = log_range(xs.iter().copied());
    let y_range = log_range(ys);
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let x_ticks = if xs.len() <= 10 { xs } else { log_ticks(&x_range) };
    let y_ticks = log_ticks(&y_range);
    let mut chart = ChartBuilder::on(root)
        .caption(kind.title(), title_style())
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            x_range.log_scale().with_key_points(x_ticks),
            y_range.log_scale().with_key_points(y_ticks),
        )?;
    mesh(&mut chart, descs.0, descs.1, &log_tick, &log_tick)?;
    Ok(chart)
}

/// The measured throughput rows.
fn throughput_points<'a>(data: &'a ChartData<'_>) -> impl Iterator<Item = &'a ThroughputRow> {
    data.input
        .throughput
        .iter()
        .filter(|t| t.batch_size > 0 && t.images_per_s.is_finite() && t.images_per_s > 0.0)
}

/// Images/s of a throughput row and its interval (from that of the median time per
/// batch; the point value where there is none).
fn images_per_s_interval(t: &ThroughputRow) -> (f64, f64, f64) {
    let ips = |ms: f64| if ms.is_finite() && ms > 0.0 { t.batch_size as f64 * 1e3 / ms } else { f64::NAN };
    let (lo, hi) = (ips(t.p50_hi_ms), ips(t.p50_lo_ms));
    if lo.is_finite() && hi.is_finite() {
        (t.images_per_s, lo, hi)
    } else {
        (t.images_per_s, t.images_per_s, t.images_per_s)
    }
}

fn throughput<DB: DrawingBackend>(data: &ChartData<'_>, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let rows: Vec<&ThroughputRow> = throughput_points(data).collect();
    let mut chart = log_log(
        root,
        ChartKind::Throughput,
        rows.iter().map(|t| t.batch_size as f64).collect(),
        rows.iter().flat_map(|t| {
            let (v, lo, hi) = images_per_s_interval(t);
            [v, lo, hi]
        }),
        ("Batch size (images, log scale)", "Throughput (images/s, log scale)"),
    )?;
    let mut occupied = Vec::new();
    let mut points = Vec::new();
    for variant in distinct(rows.iter().map(|t| t.variant.as_str())) {
        let colour = data.colour(variant);
        let mut mine: Vec<&ThroughputRow> = rows.iter().copied().filter(|t| t.variant == variant).collect();
        mine.sort_by_key(|t| t.batch_size);
        let line: Vec<(f64, f64)> = mine.iter().map(|t| (t.batch_size as f64, t.images_per_s)).collect();
        occupied.extend(sample_line(&line.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
        chart
            .draw_series(LineSeries::new(line, colour.stroke_width(2)))?
            .label(variant)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        points.extend(mine.iter().map(|t| {
            let (v, lo, hi) = images_per_s_interval(t);
            let x = t.batch_size as f64;
            TimedPoint {
                at: (x, v),
                from: (x, lo),
                to: (x, hi),
                colour,
                invalid: format::is_invalid(&t.validity),
            }
        }));
    }
    draw_timed(&mut chart, &points, 4, "95% interval (from the median time per batch)")?;
    legend(&mut chart, &occupied)?;
    Ok(())
}

/// One bar of the speedup chart.
struct SpeedupBar<'r> {
    /// Index of the variant (the bar group).
    variant: usize,
    /// 0, 1: simulated at batch 1, large; 2, 3: materialized.
    series: usize,
    row: &'r SpeedupRow,
}

fn speedup_bars<'r>(variants: &[crate::speedup::VariantSpeed<'r>]) -> Vec<SpeedupBar<'r>> {
    let mut bars = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        for f in &v.forms {
            let series = match f.form {
                "simulated" => 0,
                "materialized" => 2,
                _ => continue,
            };
            for (k, r) in [f.b1, f.large].into_iter().enumerate() {
                if let Some(row) = r.filter(|r| r.speedup.is_finite() && r.speedup > 0.0) {
                    bars.push(SpeedupBar { variant: i, series: series + k, row });
                }
            }
        }
    }
    bars
}

fn speedup<DB: DrawingBackend>(data: &ChartData<'_>, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    use slimbench_core::records::MIN_SPEEDUP;
    let variants = crate::speedup::group(&data.input.speedup);
    let bars = speedup_bars(&variants);
    let large = variants.iter().filter_map(|v| v.large).max().unwrap_or(1);
    let series: [(String, RGBColor); 4] = [
        ("simulated, batch 1".into(), RGBColor(0xA0, 0xCB, 0xE8)),
        (format!("simulated, batch {large}"), PALETTE[0]),
        ("materialized, batch 1".into(), RGBColor(0xFF, 0xBE, 0x7D)),
        (format!("materialized, batch {large}"), PALETTE[1]),
    ];
    let n = variants.len();
    let top = bars
        .iter()
        .flat_map(|b| [b.row.speedup, b.row.speedup_hi])
        .filter(|v| v.is_finite())
        .fold(MIN_SPEEDUP, f64::max)
        * 1.15;
    let names: Vec<&str> = variants.iter().map(|v| v.variant).collect();
    let y_fmt = axis_ticks(&(0.0..top), 1.0, "×");
    let mut chart = ChartBuilder::on(root)
        .caption(ChartKind::Speedup.title(), title_style())
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.6..n as f64 - 0.4, 0.0..top)?;
    // Variant names at the whole-number ticks (the bar groups), nothing between.
    let x_fmt = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-6 || i < 0.0 {
            String::new()
        } else {
            names.get(i as usize).map_or(String::new(), |s| s.to_string())
        }
    };
    mesh(&mut chart, "Compressed variant", "Speedup over its baseline (×)", &x_fmt, &y_fmt)?;
    let width = 0.19;
    let x_of = |b: &SpeedupBar<'_>| b.variant as f64 + (b.series as f64 - 1.5) * (width + 0.01);
    for (s, (label, colour)) in series.iter().enumerate() {
        let colour = *colour;
        chart
            .draw_series(bars.iter().filter(|b| b.series == s).map(|b| {
                let (x, v) = (x_of(b), b.row.speedup);
                // An invalid timing: an outline only.
                let style = if format::is_invalid(&b.row.validity) {
                    INVALID.stroke_width(2)
                } else {
                    colour.filled()
                };
                Rectangle::new([(x - width / 2.0, 0.0), (x + width / 2.0, v)], style)
            }))?
            .label(label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
    }
    let points: Vec<TimedPoint> = bars
        .iter()
        .map(|b| {
            let x = x_of(b);
            let (lo, hi) = (b.row.speedup_lo, b.row.speedup_hi);
            TimedPoint {
                at: (x, b.row.speedup),
                from: (x, if lo.is_finite() { lo } else { b.row.speedup }),
                to: (x, if hi.is_finite() { hi } else { b.row.speedup }),
                colour: INK,
                invalid: format::is_invalid(&b.row.validity),
            }
        })
        .collect();
    draw_timed(&mut chart, &points, 0, "95% bootstrap interval")?;
    // 1× is the baseline; below the threshold a form is "not faster".
    let span = vec![(-0.6, 1.0), (n as f64 - 0.4, 1.0)];
    chart.draw_series(LineSeries::new(span.clone(), INK.stroke_width(1)))?;
    chart
        .draw_series(LineSeries::new(
            span.iter().map(|&(x, _)| (x, MIN_SPEEDUP)).collect::<Vec<_>>(),
            RGBColor(0xB7, 0x1C, 0x1C).mix(0.6).stroke_width(1),
        ))?
        .label(format!("not-faster threshold ({MIN_SPEEDUP:.2}×)"))
        .legend(|(x, y)| {
            PathElement::new(vec![(x, y), (x + 14, y)], RGBColor(0xB7, 0x1C, 0x1C).stroke_width(1))
        });
    let pixels: Vec<(i32, i32)> = points.iter().map(|p| chart.backend_coord(&p.to)).collect();
    legend(&mut chart, &pixels)
}

/// Colour of a backend in the `backend_latency` chart.
fn backend_colour(backend: &str) -> RGBColor {
    match backend {
        "libtorch" => PALETTE[0],
        "onnxruntime" => PALETTE[1],
        "tract" => PALETTE[4],
        _ => MUTED,
    }
}

fn backend_latency<DB: DrawingBackend>(
    data: &ChartData<'_>,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    let groups = crate::backends::group(&data.input.backends);
    let backends = distinct(
        slimbench_core::config::BackendName::ALL
            .iter()
            .map(|b| b.as_str())
            .filter(|b| groups.iter().any(|g| g.rows.iter().any(|m| m.backend() == *b))),
    );
    let n = groups.len();
    let k = backends.len().max(1);
    let top = groups
        .iter()
        .flat_map(|g| g.rows.iter().flat_map(|m| [m.latency_p50_us, m.latency_p50_hi_us]))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.35;
    let names: Vec<&str> = groups.iter().map(|g| g.variant).collect();
    let y_fmt = axis_ticks(&(0.0..top), 1.0, "");
    let mut chart = ChartBuilder::on(root)
        .caption(ChartKind::Backends.title(), title_style())
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.6..n as f64 - 0.4, 0.0..top)?;
    let x_fmt = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-6 || i < 0.0 {
            String::new()
        } else {
            names.get(i as usize).map_or(String::new(), |s| s.to_string())
        }
    };
    mesh(&mut chart, "Variant", "Batch-1 p50 latency (µs)", &x_fmt, &y_fmt)?;
    let width = 0.8 / k as f64;
    let x_of =
        |variant: usize, series: usize| variant as f64 + (series as f64 - (k as f64 - 1.0) / 2.0) * width;
    let mut points = Vec::new();
    for (s, &backend) in backends.iter().enumerate() {
        let colour = backend_colour(backend);
        let bars: Vec<(f64, &MetricRow)> = groups
            .iter()
            .enumerate()
            .filter_map(|(v, g)| g.rows.iter().find(|m| m.backend() == backend).map(|m| (x_of(v, s), *m)))
            .filter(|(_, m)| m.latency_p50_us.is_finite() && m.latency_p50_us > 0.0)
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x, m)| {
                let style =
                    if format::is_invalid(&m.validity) { INVALID.stroke_width(2) } else { colour.filled() };
                Rectangle::new([(x - width * 0.45, 0.0), (x + width * 0.45, m.latency_p50_us)], style)
            }))?
            .label(backend)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
        points.extend(bars.iter().map(|&(x, m)| {
            let (lo, hi) = (m.latency_p50_lo_us, m.latency_p50_hi_us);
            TimedPoint {
                at: (x, m.latency_p50_us),
                from: (x, if lo.is_finite() { lo } else { m.latency_p50_us }),
                to: (x, if hi.is_finite() { hi } else { m.latency_p50_us }),
                colour: INK,
                invalid: format::is_invalid(&m.validity),
            }
        }));
    }
    draw_timed(&mut chart, &points, 0, "95% interval of the median")?;
    // The bars fill the plot from the bottom: the legend keeps clear of all of them.
    let pixels: Vec<(i32, i32)> = points
        .iter()
        .flat_map(|p| (0..=4).map(move |k| (p.at.0, p.to.1 * k as f64 / 4.0)))
        .map(|xy| chart.backend_coord(&xy))
        .collect();
    legend(&mut chart, &pixels)
}

/// The server rows with a measured rate and p99.
fn server_points(rows: &[ServerRow]) -> impl Iterator<Item = &ServerRow> {
    rows.iter().filter(|r| r.rate_qps > 0.0 && r.p99_ms.is_finite() && r.p99_ms > 0.0)
}

fn server<DB: DrawingBackend>(data: &ChartData<'_>, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let rows: Vec<&ServerRow> = server_points(&data.input.server).collect();
    let mut targets: Vec<f64> =
        rows.iter().map(|r| r.target_p99_ms).filter(|t| t.is_finite() && *t > 0.0).collect();
    targets.sort_by(f64::total_cmp);
    targets.dedup();
    let ys = rows.iter().flat_map(|r| [r.p99_ms, r.p99_bound_ms]).chain(targets.iter().copied());
    let mut chart = log_log(
        root,
        ChartKind::Server,
        rows.iter().map(|r| r.rate_qps).collect(),
        ys,
        ("Offered rate (queries/s, log scale)", "p99 latency (ms, log scale)"),
    )?;
    let (x_start, x_end) = (chart.x_range().start, chart.x_range().end);
    let red = RGBColor(0xB7, 0x1C, 0x1C);
    for (k, &target) in targets.iter().enumerate() {
        let line = chart.draw_series(DashedLineSeries::new(
            vec![(x_start, target), (x_end, target)],
            8,
            5,
            red.mix(0.7).stroke_width(2),
        ))?;
        if k == 0 {
            line.label(if targets.len() == 1 {
                format!("p99 target ({} ms)", crate::format::millis(target))
            } else {
                "p99 targets".to_string()
            })
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2)));
        }
    }
    let groups = crate::server::group(&data.input.server);
    let mut occupied = Vec::new();
    let mut points = Vec::new();
    let mut best = Vec::new();
    for v in &groups {
        let colour = data.colour(v.variant);
        let mine: Vec<&ServerRow> =
            v.rows.iter().copied().filter(|r| rows.iter().any(|p| std::ptr::eq(*p, *r))).collect();
        let line: Vec<(f64, f64)> = mine.iter().map(|r| (r.rate_qps, r.p99_ms)).collect();
        occupied.extend(sample_line(&line.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
        chart
            .draw_series(LineSeries::new(line, colour.stroke_width(2)))?
            .label(v.variant)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        points.extend(mine.iter().map(|r| {
            let at = (r.rate_qps, r.p99_ms);
            let bound =
                if r.p99_bound_ms.is_finite() && r.p99_bound_ms > 0.0 { r.p99_bound_ms } else { r.p99_ms };
            TimedPoint {
                at,
                from: at,
                to: (r.rate_qps, bound),
                colour,
                invalid: format::is_invalid(&r.validity),
            }
        }));
        best.extend(v.best.filter(|b| b.p99_ms > 0.0).map(|b| (b.rate_qps, b.p99_ms)));
    }
    draw_timed(&mut chart, &points, 4, "p99 to its 95% upper bound")?;
    chart
        .draw_series(best.iter().map(|&p| Circle::new(p, 9, INK.stroke_width(2))))?
        .label("highest rate meeting the target")
        .legend(|(x, y)| Circle::new((x + 10, y), 6, INK.stroke_width(2)));
    occupied.extend(best.iter().map(|p| chart.backend_coord(p)));
    legend(&mut chart, &occupied)
}

// ---- parallel training and the machine ------------------------------------------------

/// A bar's legend group, colour and legend text, by strategy.
fn strategy_style(r: &ParallelRow) -> (usize, RGBColor, &'static str) {
    match (r.strategy.as_str(), r.mode.as_str()) {
        ("single", _) => (0, PALETTE[0], "single process"),
        ("data-parallel", "async") => (2, PALETTE[1], "data-parallel, async"),
        ("data-parallel", _) => (1, PALETTE[4], "data-parallel, sync"),
        ("model-parallel", _) => (3, PALETTE[6], "model-parallel"),
        _ => (4, MUTED, "other"),
    }
}

fn parallel_throughput<DB: DrawingBackend>(
    data: &ChartData<'_>,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    use crate::parallel::{baseline, config_label, groups, measured, ordered, same_group};
    let rows = &data.input.parallel;
    let bars: Vec<&ParallelRow> = ordered(rows).into_iter().filter(|r| measured(r)).collect();
    let n = bars.len();
    let devices = distinct(bars.iter().map(|r| r.device.as_str()));
    let models = distinct(bars.iter().map(|r| r.model.as_str()));
    let labels: Vec<String> = bars
        .iter()
        .map(|r| {
            let mut label = config_label(r);
            if models.len() > 1 && !r.model.is_empty() {
                label = format!("{} · {label}", r.model);
            }
            if devices.len() > 1 {
                label = format!("{label} · {}", r.device);
            }
            label
        })
        .collect();
    let values: Vec<String> = bars
        .iter()
        .map(|r| {
            let rate = crate::format::rate(r.images_per_s);
            match baseline(rows, r) {
                Some(b) if std::ptr::eq(b, *r) => format!("{rate} img/s (baseline)"),
                Some(b) => {
                    format!("{rate} img/s · {}", crate::format::ratio(r.images_per_s / b.images_per_s))
                }
                None => format!("{rate} img/s"),
            }
        })
        .collect();
    let style = label_style();
    let mut label_width = 0;
    for label in &labels {
        label_width = label_width.max(root.estimate_text_size(label, &style)?.0);
    }
    // Room on the right for the value labels (and the legend).
    let x_range = 0.0..bars.iter().map(|r| r.images_per_s).fold(0.0, f64::max) * 1.5;
    let x_fmt = fixed_ticks(&x_range);
    // The first row at the top.
    let y_of = |i: usize| (n - 1 - i) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(ChartKind::ParallelThroughput.title(), title_style())
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(label_width + 44)
        .build_cartesian_2d(x_range, -0.6..n as f64 - 0.4)?;
    // The categories are labelled below, one per bar; plotters would tick round numbers.
    chart
        .configure_mesh()
        .x_desc("Training throughput (images/s)")
        .y_desc("Parallelism")
        .axis_desc_style((FONT, 15).into_font().color(&INK))
        .label_style((FONT, 13).into_font().color(&INK))
        .axis_style(MUTED)
        .bold_line_style(GRID)
        .max_light_lines(0)
        .disable_y_mesh()
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&|_| String::new())
        .draw()?;
    let category_style = label_style().pos(Pos::new(HPos::Right, VPos::Center));
    let left = chart.plotting_area().get_pixel_range().0.start;
    for (i, label) in labels.iter().enumerate() {
        let (_, y) = chart.backend_coord(&(0.0, y_of(i)));
        root.draw(&Text::new(label.as_str(), (left - 8, y), category_style.clone()))?;
    }
    let half = 0.34;
    for group in 0..5 {
        let mine: Vec<(usize, &ParallelRow)> =
            bars.iter().copied().enumerate().filter(|(_, r)| strategy_style(r).0 == group).collect();
        let Some(&(_, first)) = mine.first() else { continue };
        let (_, colour, label) = strategy_style(first);
        chart
            .draw_series(mine.iter().map(|&(i, r)| {
                Rectangle::new([(0.0, y_of(i) - half), (r.images_per_s, y_of(i) + half)], colour.filled())
            }))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled()));
    }
    // Each group's baseline (a model on a device), across that group's bars.
    let base_style = INK.mix(0.7).stroke_width(1);
    let mut labelled = false;
    for group in groups(rows) {
        let Some(b) = baseline(rows, group) else { continue };
        let mine: Vec<usize> = (0..n).filter(|&i| same_group(bars[i], group)).collect();
        let (Some(&first), Some(&last)) = (mine.first(), mine.last()) else { continue };
        let x = b.images_per_s;
        let line = chart
            .draw_series(LineSeries::new(vec![(x, y_of(last) - 0.5), (x, y_of(first) + 0.5)], base_style))?;
        if !labelled {
            line.label("single-process baseline")
                .legend(move |(x, y)| PathElement::new(vec![(x + 7, y - 7), (x + 7, y + 7)], base_style));
            labelled = true;
        }
    }
    let value_style = label_style().pos(Pos::new(HPos::Left, VPos::Center));
    chart.draw_series(bars.iter().enumerate().map(|(i, r)| {
        EmptyElement::at((r.images_per_s, y_of(i)))
            + Text::new(values[i].clone(), (6, 0), value_style.clone())
    }))?;
    let mut occupied = Vec::new();
    for (i, r) in bars.iter().enumerate() {
        let (x0, y) = chart.backend_coord(&(0.0, y_of(i)));
        let (x1, _) = chart.backend_coord(&(r.images_per_s, y_of(i)));
        let width = root.estimate_text_size(&values[i], &style)?.0 as i32;
        occupied.extend(sample_line(&[(x0, y), (x1 + 6 + width, y)]));
    }
    legend(&mut chart, &occupied)
}

/// Colours of the sync-vs-async series by role, as in the parallel-throughput chart:
/// the single-process baseline blue, sync stages greens, async stages oranges and reds.
fn role_colours<'r>(roles: impl Iterator<Item = (&'r str, &'r str)>) -> Vec<RGBColor> {
    const SYNC: [usize; 3] = [4, 3, 9];
    const ASYNC: [usize; 4] = [1, 2, 5, 8];
    let (mut n_sync, mut n_async) = (0, 0);
    roles
        .map(|(strategy, mode)| match (strategy, mode) {
            ("data-parallel", "async") => {
                n_async += 1;
                PALETTE[ASYNC[(n_async - 1) % ASYNC.len()]]
            }
            ("data-parallel", _) => {
                n_sync += 1;
                PALETTE[SYNC[(n_sync - 1) % SYNC.len()]]
            }
            _ => PALETTE[0],
        })
        .collect()
}

fn sync_vs_async<DB: DrawingBackend>(data: &ChartData<'_>, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let input = data.input;
    let rows = crate::parallel::sync_async_rows(input);
    let stale = crate::parallel::staleness(&input.staleness);
    // Async stages keep the colours of their loss curves in the staleness panel.
    let extra: Vec<&str> =
        stale.iter().map(|s| s.stage).filter(|stage| !rows.iter().any(|r| r.stage == *stage)).collect();
    let colours = role_colours(
        rows.iter()
            .map(|r| (r.strategy.as_str(), r.mode.as_str()))
            .chain(extra.iter().map(|_| ("data-parallel", "async"))),
    );
    let area = root.titled(ChartKind::SyncVsAsync.title(), title_style())?;
    if stale.is_empty() {
        return loss_panel(&rows, input, &colours, &area);
    }
    let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 * 56 / 100);
    loss_panel(&rows, input, &colours, &top)?;
    let colour_of = |stage: &str| {
        let i = rows
            .iter()
            .position(|r| r.stage == stage)
            .or_else(|| extra.iter().position(|s| *s == stage).map(|k| rows.len() + k));
        i.and_then(|i| colours.get(i).copied()).unwrap_or(MUTED)
    };
    staleness_panel(&stale, &colour_of, &bottom)
}

/// Training loss against epochs (fractional) of the chosen stages.
fn loss_panel<DB: DrawingBackend>(
    rows: &[&ParallelRow],
    input: &ReportInput,
    colours: &[RGBColor],
    area: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    let series: Vec<(String, Vec<(f64, f64)>)> = rows
        .iter()
        .map(|r| {
            let mine: Vec<&CurvePoint> = input.curves.iter().filter(|c| c.stage == r.stage).collect();
            // Steps per epoch from the last point recorded (a test point closes each epoch).
            let max_step = mine.iter().map(|c| c.step).max().unwrap_or(0);
            let epochs = mine.iter().map(|c| c.epoch).max().unwrap_or(1).max(1);
            let per_epoch = (max_step as f64 / f64::from(epochs)).max(1.0);
            let mut points: Vec<(f64, f64)> = mine
                .iter()
                .filter(|c| c.split == "train" && c.loss.is_finite())
                .map(|c| (c.step as f64 / per_epoch, c.loss))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (format!("{} ({})", r.stage, crate::parallel::config_label(r)), points)
        })
        .collect();
    let all = || series.iter().flat_map(|s| s.1.iter());
    let x_range = 0.0..all().map(|p| p.0).fold(0.0, f64::max).max(1e-3) * 1.03;
    let y_range = 0.0..all().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.08;
    let (x_fmt, y_fmt) = (fixed_ticks(&x_range), fixed_ticks(&y_range));
    let mut chart = ChartBuilder::on(area)
        .caption("Training loss", subtitle_style())
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, y_range)?;
    mesh(&mut chart, "Epochs (fraction of the training data seen)", "Mean training loss", &x_fmt, &y_fmt)?;
    let mut occupied = Vec::new();
    for ((label, points), &colour) in series.into_iter().zip(colours) {
        occupied.extend(sample_line(&points.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
        // Short runs have few curve points (one per `log_every` steps): mark them, so a
        // single point still shows.
        let marks = if points.len() <= 30 { points.clone() } else { Vec::new() };
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(marks.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
    }
    legend(&mut chart, &occupied)
}

/// Most updates drawn per async stage; more are averaged in runs.
const MAX_UPDATES_DRAWN: usize = 200;

/// Staleness per update of the async stages: each update as a dot (the largest of
/// each run of updates when there are many), a rolling mean as a line.
fn staleness_panel<DB: DrawingBackend>(
    stale: &[crate::parallel::Staleness<'_>],
    colour_of: &dyn Fn(&str) -> RGBColor,
    area: &DrawingArea<DB, Shift>,
) -> DrawResult<DB> {
    let max_update = stale.iter().filter_map(|s| s.points.last()).map(|p| p.0).max().unwrap_or(1).max(1);
    let max_stale = stale.iter().map(|s| s.max).max().unwrap_or(0);
    let x_range = 0.0..max_update as f64 * 1.03;
    let y_range = 0.0..(max_stale as f64 + 1.0) * 1.15;
    let x_fmt = fixed_ticks(&x_range);
    // Staleness is a whole number of updates: label only the whole ticks.
    let y_fmt = |v: &f64| if (v - v.round()).abs() < 1e-6 { tick_label(v.round(), 0) } else { String::new() };
    let mut chart = ChartBuilder::on(area)
        .caption("Staleness of the async updates", subtitle_style())
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range, y_range)?;
    mesh(&mut chart, "Update (parameter-server version)", "Staleness (updates)", &x_fmt, &y_fmt)?;
    let mut occupied = Vec::new();
    for s in stale {
        let colour = colour_of(s.stage);
        let n = s.points.len();
        let run = n.div_ceil(MAX_UPDATES_DRAWN).max(1);
        let window = (n / 25).max(run).max(1);
        let mut prefix = vec![0u64; n + 1];
        for (k, p) in s.points.iter().enumerate() {
            prefix[k + 1] = prefix[k] + p.1;
        }
        let (means, maxima): (Points, Points) = s
            .points
            .chunks(run)
            .enumerate()
            .map(|(k, c)| {
                let x = c.iter().map(|p| p.0 as f64).sum::<f64>() / c.len() as f64;
                let centre = k * run + c.len() / 2;
                let (lo, hi) = (centre.saturating_sub(window / 2), (centre + window.div_ceil(2)).min(n));
                let mean = (prefix[hi] - prefix[lo]) as f64 / (hi - lo).max(1) as f64;
                ((x, mean), (x, c.iter().map(|p| p.1).max().unwrap_or(0) as f64))
            })
            .unzip();
        occupied.extend(sample_line(&means.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
        occupied.extend(maxima.iter().map(|p| chart.backend_coord(p)));
        let dots = if run == 1 { "each update".to_string() } else { format!("the largest of every {run}") };
        let label = format!("{}: mean of {window} updates (dots: {dots})", s.stage);
        chart
            .draw_series(LineSeries::new(means, colour.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(maxima.into_iter().map(|p| Circle::new(p, 2, colour.mix(0.5).filled())))?;
    }
    legend(&mut chart, &occupied)
}

/// A line's points.
type Points = Vec<(f64, f64)>;

/// Most points drawn per line of the system chart; more are averaged in runs (the
/// chart is inlined into the HTML).
const MAX_SAMPLES_DRAWN: usize = 1500;

/// At most about `max` points: consecutive points averaged in equal runs.
fn thin(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max {
        return points;
    }
    let run = points.len().div_ceil(max);
    points
        .chunks(run)
        .map(|c| {
            let n = c.len() as f64;
            (c.iter().map(|p| p.0).sum::<f64>() / n, c.iter().map(|p| p.1).sum::<f64>() / n)
        })
        .collect()
}

/// One panel of the system chart.
struct SystemPanel {
    title: &'static str,
    y_desc: &'static str,
    /// The axis reaches at least this high (100 for percentages).
    y_floor: f64,
    /// (label, colour, one line per stage).
    series: Vec<(String, RGBColor, Vec<Points>)>,
}

fn system<DB: DrawingBackend>(data: &ChartData<'_>, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
    let input = data.input;
    let timeline = crate::parallel::timeline(&input.system);
    // One line per stage, so that a stage's last sample is not joined to the next one's first.
    let per_stage = MAX_SAMPLES_DRAWN / timeline.stages.len().max(1);
    let line = |samples: &mut dyn Iterator<Item = &(f64, &SystemSample)>,
                value: &dyn Fn(&SystemSample) -> f64| {
        let mut lines: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
        for (t, s) in samples {
            let v = value(s);
            if !v.is_finite() {
                continue;
            }
            match lines.last_mut() {
                Some((stage, points)) if *stage == s.stage => points.push((*t, v)),
                _ => lines.push((s.stage.as_str(), vec![(*t, v)])),
            }
        }
        lines.into_iter().map(|(_, points)| thin(points, per_stage.max(50))).collect::<Vec<_>>()
    };
    let all = || timeline.samples.iter();
    let mut cpu = vec![("this process".to_string(), PALETTE[0], line(&mut all(), &|s| s.cpu_percent))];
    let cores = input.run.host.logical_cores;
    if cores > 0 {
        let host = line(&mut all(), &|s| s.host_cpu_percent * cores as f64);
        if !host.is_empty() {
            cpu.push((format!("whole machine ({cores} logical cores)"), MUTED, host));
        }
    }
    let mut panels = vec![
        SystemPanel { title: "CPU", y_desc: "CPU (% of one core)", y_floor: 100.0, series: cpu },
        SystemPanel {
            title: "Memory",
            y_desc: "Resident memory (MB)",
            y_floor: 1.0,
            series: vec![(
                "this process (RSS)".to_string(),
                PALETTE[4],
                line(&mut all(), &|s| s.rss_bytes as f64 / 1e6),
            )],
        },
    ];
    if crate::parallel::any_gpu(&input.system) {
        let gpus = distinct(timeline.samples.iter().map(|(_, s)| s.gpu.as_str()));
        let per_gpu = |value: fn(&SystemSample) -> f64, offset: usize| {
            gpus.iter()
                .enumerate()
                .map(|(k, &gpu)| {
                    let points = line(&mut all().filter(|(_, s)| s.gpu == gpu), &value);
                    let name = if gpu.is_empty() { "GPU".to_string() } else { gpu.to_string() };
                    (name, PALETTE[(offset + k) % PALETTE.len()], points)
                })
                .filter(|s| !s.2.is_empty())
                .collect::<Vec<_>>()
        };
        panels.push(SystemPanel {
            title: "GPU utilization",
            y_desc: "GPU utilization (%)",
            y_floor: 100.0,
            series: per_gpu(|s| s.gpu_util_percent, 2),
        });
        panels.push(SystemPanel {
            title: "GPU power",
            y_desc: "Board power (W)",
            y_floor: 1.0,
            series: per_gpu(|s| s.gpu_power_w, 1),
        });
    }
    let end = timeline.stages.last().map_or(0.0, |s| s.2).max(1e-3);
    let x_range = 0.0..end * 1.01;
    let x_fmt = fixed_ticks(&x_range);
    let area = root.titled(ChartKind::System.title(), title_style())?;
    let parts = area.split_evenly((panels.len(), 1));
    let count = panels.len();
    for (k, (panel, part)) in panels.into_iter().zip(&parts).enumerate() {
        let last = k + 1 == count;
        let top = panel.series.iter().flat_map(|s| s.2.iter().flatten().map(|p| p.1)).fold(0.0, f64::max);
        let y_range = 0.0..(top * 1.12).max(panel.y_floor);
        let y_fmt = fixed_ticks(&y_range);
        let y_top = y_range.end;
        let mut chart = ChartBuilder::on(part)
            .caption(panel.title, subtitle_style())
            .margin(6)
            .margin_left(14)
            .margin_right(20)
            .x_label_area_size(if last { 44 } else { 26 })
            .y_label_area_size(72)
            .build_cartesian_2d(x_range.clone(), y_range)?;
        let x_desc =
            if last { "Seconds since the first sampled stage began (stages one after another)" } else { "" };
        mesh(&mut chart, x_desc, panel.y_desc, &x_fmt, &y_fmt)?;
        // Stage boundaries, and the stages' names in the top panel where they fit.
        let boundary = MUTED.mix(0.7).stroke_width(1);
        for &(_, start, _) in timeline.stages.iter().skip(1) {
            chart.draw_series(LineSeries::new(vec![(start, 0.0), (start, y_top)], boundary))?;
        }
        if k == 0 {
            let style = label_style();
            for &(stage, start, stop) in &timeline.stages {
                let room = chart.backend_coord(&(stop, 0.0)).0 - chart.backend_coord(&(start, 0.0)).0;
                if (part.estimate_text_size(stage, &style)?.0 as i32) + 8 <= room {
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((start, y_top))
                            + Text::new(stage.to_string(), (4, 3), style.clone()),
                    ))?;
                }
            }
        }
        let mut occupied = Vec::new();
        for (label, colour, lines) in panel.series {
            for (k, points) in lines.into_iter().enumerate() {
                occupied
                    .extend(sample_line(&points.iter().map(|p| chart.backend_coord(p)).collect::<Vec<_>>()));
                let drawn = chart.draw_series(LineSeries::new(points, colour.stroke_width(1)))?;
                if k == 0 {
                    drawn.label(label.as_str()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
                }
            }
        }
        legend(&mut chart, &occupied)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_readable() {
        assert_eq!(log_ticks(&(0.5..2000.0)), [1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(log_ticks(&(29.0..124.0)), [30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]);
        assert_eq!(log_ticks(&(15.0..600.0)), [20.0, 50.0, 100.0, 200.0, 500.0]);
        assert!(log_ticks(&(1e-3..1e30)).len() <= 10);
    }

    #[test]
    fn tick_labels_share_decimals() {
        let f = fixed_ticks(&(0.0..2.0));
        assert_eq!((f(&0.2), f(&1.0)), ("0.2".to_owned(), "1.0".to_owned()));
        let f = fixed_ticks(&(0.0..2000.0));
        assert_eq!(f(&1200.0), "1,200");
        let p = percent_ticks(&(0.90..0.97));
        assert_eq!((p(&0.9), p(&0.95)), ("90%".to_owned(), "95%".to_owned()));
        let p = percent_ticks(&(0.95..0.97));
        assert_eq!(p(&0.955), "95.5%");
        let f = fixed_ticks(&(0.0..0.05));
        assert_eq!((f(&0.0), f(&0.03)), ("0.000".to_owned(), "0.030".to_owned()));
        let x = axis_ticks(&(0.0..2.3), 1.0, "×");
        assert_eq!(x(&1.0), "1.0×");
        assert_eq!((log_tick(&20000.0), log_tick(&0.05)), ("20,000".to_owned(), "0.05".to_owned()));
        assert_eq!((log_tick(&0.2), log_tick(&1.0)), ("0.2".to_owned(), "1".to_owned()));
        assert_eq!((tick_label(-0.0001, 1), tick_label(-1500.0, 0)), ("0.0".to_owned(), "-1,500".to_owned()));
        assert_eq!((step_decimals(0.2), step_decimals(0.25), step_decimals(5.0)), (1, 2, 0));
    }

    /// The accuracy axis of a run whose variants sit between 99% and 100% once read
    /// "100%, 100%, 99%, 99%": ticks every 0.2% need a decimal.
    #[test]
    fn tick_labels_tell_every_tick_apart() {
        let p = percent_ticks(&(0.9885..1.0));
        let labels: Vec<String> = linear_ticks(&(0.9885..1.0)).iter().map(p).collect();
        assert_eq!(labels, ["99.0%", "99.2%", "99.4%", "99.6%", "99.8%", "100.0%"]);
        // Every axis the charts build: accuracy, latency, loss, images/s, from tiny to huge spans.
        let mut checked = 0;
        for (lo, hi) in [
            (0.0, 1.0),
            (0.9, 1.0),
            (0.985, 1.0),
            (0.9991, 0.9999),
            (41.0, 43.7),
            (0.0, 0.0123),
            (120.0, 125.5),
            (0.0, 2_500_000.0),
            (-0.03, 1.03),
            (1e-4, 3e-4),
        ] {
            for (scale, suffix) in [(1.0, ""), (100.0, "%")] {
                let range = lo..hi;
                let f = axis_ticks(&range, scale, suffix);
                let labels: Vec<String> = linear_ticks(&range).iter().map(&f).collect();
                let mut unique = labels.clone();
                unique.dedup();
                assert_eq!(unique, labels, "{range:?} ×{scale}");
                assert!(labels.len() >= 2, "{range:?}: {labels:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 20);
    }

    #[test]
    fn legend_goes_where_the_data_is_not() {
        let plot = (0..100, 0..100);
        let pts = [(10, 10), (90, 10), (90, 90)];
        assert_eq!(emptiest_corner(&plot, &pts), SeriesLabelPosition::LowerLeft);
        assert_eq!(emptiest_corner(&plot, &[]), SeriesLabelPosition::UpperLeft);
    }
}
