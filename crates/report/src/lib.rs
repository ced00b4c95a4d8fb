//! # slimbench-report
//!
//! Turns a finished run directory into charts, a self-contained HTML report and a
//! markdown summary; no libtorch.
//!
//! * [`load_run`] reads `run.json` and the run's tables (through `slimbench-metrics`)
//!   into a [`ReportInput`]; a report can always be re-rendered from the directory alone.
//! * [`render`] writes `charts/<name>.png|.svg` (per [`ChartFormat`]), `report.html`
//!   and `summary.md` into the run directory, each atomically.
//! * Charts ([`ChartKind`]) are drawn with plotters by one generic function per chart,
//!   so the PNG and SVG versions are the same drawing; text uses the DejaVu Sans font
//!   embedded in the binary (slim Docker images have no system fonts).
//! * `report.html` opens offline: styles inline, charts inlined as SVG markup. All text
//!   that comes from the run (pipeline, variant and stage names, notes) is escaped.
//! * [`summary_markdown`] is the GitHub-flavoured table for CI job summaries.
//! * "Does it really get faster?" (HTML and markdown, and the `speedup` chart): each
//!   compressed variant's baseline, simulated and materialized forms timed side by
//!   side, variants that are not faster marked, with the reasons known.
//! * Parallel training, async staleness, the machine during the run and CPU vs GPU
//!   (HTML and markdown, and the `parallel_throughput`, `sync_vs_async` and `system`
//!   charts), from `parallel.parquet`, `staleness.parquet` and `system.parquet` where
//!   the run has them.
//! * Backends: when an evaluate stage timed more than libtorch (`backends:`), each
//!   variant on every backend side by side, the fastest named (HTML, markdown and the
//!   `backend_latency` chart). Every other table and chart shows libtorch's rows, the
//!   ones every run has.
//! * [`pareto_front_within`] picks the variants no other variant beats on both latency
//!   and accuracy, a latency beating another only when its 95% interval lies entirely
//!   below the other's; the report highlights them.
//! * Every latency and throughput figure is shown with its interval, and a figure whose
//!   timing is invalid is marked (`⚠`, with the reason) in every table and chart; each
//!   evaluate stage's timing protocol is stated under the results.
//!
//! * [`kit`] and [`format`] lend the charts' style, axes and file output, the page
//!   style and the escaping to other renderers (`slimbench compare`, `slimbench history`).
//!
//! Errors are a [`ReportError`] naming the file or chart involved.

mod backends;
mod charts;
pub mod format;
mod html;
mod markdown;
mod parallel;
mod pareto;
mod results;
mod server;
mod speedup;
mod table;

/// The report's drawing and page pieces, for other renderers of slimbench results
/// (`slimbench-compare`), so that their charts and pages look like the report's and
/// escape text the same way.
pub mod kit {
    pub use crate::charts::{
        DrawResult, Drawing, FONT, GRID, INK, INVALID, MUTED, PALETTE, accuracy_range, distinct, fixed_ticks,
        label_style, labelled_line, legend, mesh, min_max, padded_range, percent_ticks, sample_line,
        subtitle_style, svg, title_style, write_chart, write_png,
    };
    pub use crate::html::{STYLE, is_inert_svg};
    pub use crate::markdown::{cell as md_cell, code as md_code};
}

use std::path::{Path, PathBuf};

use slimbench_core::artifact::RunInfo;
use slimbench_core::fsutil::{self, FsError};
use slimbench_core::records::{
    CurvePoint, MetricRow, ParallelRow, REFERENCE_BACKEND, RepeatRow, ServerRow, SpeedupRow, StalenessRow,
    SystemSample, ThroughputRow, TimingRound, backend_or_reference,
};
use slimbench_metrics::{MetricsError, Table};

pub use charts::ChartKind;
pub use markdown::summary_markdown;
pub use pareto::{Cost, pareto_front, pareto_front_within};
/// Chart file formats (the `formats:` of a `report` stage).
pub use slimbench_core::config::ChartFormat;

/// The run's metadata file inside a run directory.
pub const RUN_JSON: &str = "run.json";
/// The HTML report's file name.
pub const REPORT_HTML: &str = "report.html";
/// The markdown summary's file name.
pub const SUMMARY_MD: &str = "summary.md";
/// The folder charts are written to, inside the run directory.
pub const CHARTS_DIR: &str = "charts";

/// Everything a report shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReportInput {
    /// The run's metadata (`run.json`), including its stages and notes.
    pub run: RunInfo,
    /// Report title (the pipeline's name unless the `report` stage sets one).
    pub title: String,
    /// One row per evaluated variant, timed on libtorch (the rows every run has).
    pub metrics: Vec<MetricRow>,
    /// Every metrics row of every backend (libtorch's included) when an evaluate stage
    /// timed more than libtorch (`backends:`); empty otherwise.
    pub backends: Vec<MetricRow>,
    /// Training curves.
    pub curves: Vec<CurvePoint>,
    /// Throughput by batch size.
    pub throughput: Vec<ThroughputRow>,
    /// Compressed variants timed beside their baselines (the "Does it really get
    /// faster?" section).
    pub speedup: Vec<SpeedupRow>,
    /// How each training stage used its parallelism (`parallel.parquet`; empty for
    /// runs that predate it).
    pub parallel: Vec<ParallelRow>,
    /// Async data-parallel updates and their staleness (`staleness.parquet`).
    pub staleness: Vec<StalenessRow>,
    /// The machine sampled while stages ran (`system.parquet`).
    pub system: Vec<SystemSample>,
    /// The server scenario's offered loads (`server.parquet`; empty when it was not run).
    pub server: Vec<ServerRow>,
    /// The rounds of each evaluate stage's timing plan (`timing.parquet`).
    pub timing: Vec<TimingRound>,
    /// Per-repetition medians (`repeats.parquet`, from `--repeat`).
    pub repeats: Vec<RepeatRow>,
}

/// Why a report could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The directory lacks `run.json` or `metrics.parquet`.
    #[error("not a slimbench run directory: {} (no {missing})", dir.display())]
    NotARunDir {
        /// The directory given.
        dir: PathBuf,
        /// The file it lacks.
        missing: &'static str,
    },
    /// Reading `run.json` or writing an output file failed; the error names the path.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Reading one of the run's tables failed; the error names the file.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Plotters failed to draw a chart.
    #[error("drawing chart {chart}: {message}")]
    Chart {
        /// The chart's name.
        chart: String,
        /// What plotters said.
        message: String,
    },
}

/// Read a run directory: `run.json` and the metrics, training, throughput, speedup,
/// parallel, staleness, system, server, timing and repeats tables. All but the metrics table are optional (older
/// or partial runs lack them: empty); the run metadata and the metrics table are not. The title is the pipeline's name.
pub fn load_run(run_dir: &Path) -> Result<ReportInput, ReportError> {
    for required in [RUN_JSON, Table::Metrics.file_name()] {
        if !run_dir.join(required).is_file() {
            return Err(ReportError::NotARunDir { dir: run_dir.to_path_buf(), missing: required });
        }
    }
    let run: RunInfo = fsutil::read_json(&run_dir.join(RUN_JSON))?;
    // libtorch's rows feed every per-variant table and chart; all rows, the backends
    // section (tables from before backends have no `backend` column: libtorch's).
    let all = slimbench_metrics::read_metric_rows(run_dir)?;
    let backends = if all.iter().all(MetricRow::is_reference) { Vec::new() } else { all.clone() };
    let metrics: Vec<MetricRow> = all.into_iter().filter(MetricRow::is_reference).collect();
    let reference = |backend: &str| backend_or_reference(backend) == REFERENCE_BACKEND;
    let optional = |table: Table| run_dir.join(table.file_name()).is_file();
    let curves =
        if optional(Table::Training) { slimbench_metrics::read_curve_points(run_dir)? } else { Vec::new() };
    let mut throughput = if optional(Table::Throughput) {
        slimbench_metrics::read_throughput_rows(run_dir)?
    } else {
        Vec::new()
    };
    throughput.retain(|t| reference(&t.backend));
    let mut speedup =
        if optional(Table::Speedup) { slimbench_metrics::read_speedup_rows(run_dir)? } else { Vec::new() };
    speedup.retain(|t| reference(&t.backend));
    let mut repeats = slimbench_metrics::read_repeat_rows(run_dir)?;
    repeats.retain(|t| reference(&t.backend));
    let parallel =
        if optional(Table::Parallel) { slimbench_metrics::read_parallel_rows(run_dir)? } else { Vec::new() };
    let staleness = if optional(Table::Staleness) {
        slimbench_metrics::read_staleness_rows(run_dir)?
    } else {
        Vec::new()
    };
    let system =
        if optional(Table::System) { slimbench_metrics::read_system_samples(run_dir)? } else { Vec::new() };
    let title = if run.pipeline.is_empty() { run.run_id.clone() } else { run.pipeline.clone() };
    Ok(ReportInput {
        run,
        title,
        metrics,
        backends,
        curves,
        throughput,
        speedup,
        parallel,
        staleness,
        system,
        server: slimbench_metrics::read_server_rows(run_dir)?,
        timing: slimbench_metrics::read_timing_rounds(run_dir)?,
        repeats,
    })
}

/// Render the report into `run_dir`: one file per drawable chart and format under
/// `charts/`, then `report.html` (charts inlined as SVG whatever `formats` says) and
/// `summary.md`. Charts without data are skipped (the HTML says why). Chart files an
/// earlier rendering left that this one does not write (skipped charts, formats no
/// longer asked for) are removed, so `charts/` always matches the report. Every file is
/// written atomically. Returns the files written.
pub fn render(
    input: &ReportInput,
    run_dir: &Path,
    formats: &[ChartFormat],
) -> Result<Vec<PathBuf>, ReportError> {
    let data = charts::ChartData::new(input);
    let charts = charts::draw_svgs(&data)?;
    let charts_dir = run_dir.join(CHARTS_DIR);
    let mut written = Vec::new();
    for chart in &charts {
        for format in [ChartFormat::Png, ChartFormat::Svg] {
            let path = charts_dir.join(format!("{}.{}", chart.kind.name(), charts::extension(format)));
            match &chart.svg {
                Some(svg) if formats.contains(&format) => {
                    match format {
                        ChartFormat::Png => {
                            charts::write_png(&charts::ReportChart { data: &data, kind: chart.kind }, &path)?
                        }
                        ChartFormat::Svg => fsutil::atomic_write(&path, svg.as_bytes())?,
                    }
                    written.push(path);
                }
                // Left over from an earlier rendering, it could contradict this report.
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    let html_path = run_dir.join(REPORT_HTML);
    fsutil::atomic_write(&html_path, html::report(input, &data, &charts).as_bytes())?;
    written.push(html_path);
    let md_path = run_dir.join(SUMMARY_MD);
    fsutil::atomic_write(&md_path, summary_markdown(input).as_bytes())?;
    written.push(md_path);
    Ok(written)
}

/// Highlights shared by the HTML and markdown tables, one entry per metric row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Highlight {
    /// Has the best accuracy of the run (ties all count).
    best: bool,
    /// No other variant is faster at batch 1 beyond noise (see [`Cost::below`]).
    fastest: bool,
    /// On the Pareto front of batch-1 latency (p50, within its interval) vs accuracy.
    pareto: bool,
}

/// The marks of the metric rows. Latency marks compare intervals: a variant is faster
/// than another only when its p50 interval lies entirely below the other's (the point
/// values of runs without intervals), and invalid timings take no part.
fn highlights(metrics: &[MetricRow]) -> Vec<Highlight> {
    let best = metrics.iter().map(|m| m.accuracy).filter(|a| a.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    let mut out: Vec<Highlight> =
        metrics.iter().map(|m| Highlight { best: m.accuracy == best, ..Default::default() }).collect();
    let timed: Vec<LatencyPoint> = latency_points(metrics).filter(|p| !p.invalid).collect();
    for p in &timed {
        out[p.row].fastest = !timed.iter().any(|o| o.cost.below(&p.cost));
    }
    let points: Vec<(Cost, f64)> = timed.iter().map(|p| (p.cost, p.accuracy)).collect();
    for i in pareto_front_within(&points) {
        out[timed[i].row].pareto = true;
    }
    out
}

/// A metric row's batch-1 latency against its accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LatencyPoint {
    /// Index of the row.
    row: usize,
    /// The p50 in µs and its interval.
    cost: Cost,
    accuracy: f64,
    /// Its timing is invalid.
    invalid: bool,
}

/// The rows whose latency and accuracy were measured.
fn latency_points(metrics: &[MetricRow]) -> impl Iterator<Item = LatencyPoint> + '_ {
    metrics
        .iter()
        .enumerate()
        .filter(|(_, m)| m.latency_p50_us.is_finite() && m.latency_p50_us > 0.0 && m.accuracy.is_finite())
        .map(|(row, m)| LatencyPoint {
            row,
            cost: Cost::new(m.latency_p50_us, m.latency_p50_lo_us, m.latency_p50_hi_us),
            accuracy: m.accuracy,
            invalid: format::is_invalid(&m.validity),
        })
}

#[cfg(test)]
mod tests;
