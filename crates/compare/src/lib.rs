//! # slimbench-compare
//!
//! Two finished runs side by side, and many runs over time; no libtorch.
//!
//! * [`compare()`] joins a baseline and a candidate run directory by variant and judges
//!   every gated metric ([`Gates`]) into a [`Comparison`] of [`Check`]s with a
//!   [`Verdict`] each. Latency metrics are judged on the raw samples with a bootstrap
//!   confidence interval ([`stats`]), everything else on the table values. A latency or
//!   throughput a run timed on a disturbed machine (its row's `validity` is `invalid`)
//!   is not judged: the check says which run is invalid and why, and does not fail.
//! * [`write_comparison`] renders a comparison into `compare.md`, `compare.html`,
//!   `compare.parquet`/`.csv` and `charts/compare-*.png|.svg`;
//!   [`terminal_table`] is the same table for a terminal.
//! * [`history`] scans a pipeline's results folder for finished runs and builds a long
//!   trend table ([`History`]), written by [`write_history`] as parquet, CSV, markdown,
//!   HTML and one chart per metric; invalid timings are marked and left out of the
//!   change.
//!
//! Charts, page style and escaping come from `slimbench-report`'s [`kit`], so these
//! pages look like the run report. Every file is written atomically, and every error
//! ([`CompareError`]) names the path it is about.
//!
//! [`Gates`]: slimbench_core::gates::Gates
//! [`kit`]: slimbench_report::kit

mod charts;
pub mod compare;
pub mod history;
mod render;
pub use slimbench_metrics::stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use slimbench_core::artifact::RunInfo;
use slimbench_core::fsutil::{self, FsError};
use slimbench_core::records::MetricRow;
use slimbench_metrics::{MetricsError, PolarsError, Table};
use slimbench_report::{RUN_JSON, ReportError};

pub use compare::{Check, CompareOptions, Comparison, Test, Verdict, compare, compare_runs};
pub use history::{History, HistoryOptions, history_table, load_history, write_history};
pub use render::{
    COMPARE_CSV, COMPARE_HTML, COMPARE_MD, COMPARE_PARQUET, comparison_frame, comparison_markdown,
    terminal_table, write_comparison,
};

/// Metrics compared when nothing is gated (for information).
pub const DEFAULT_COMPARE_METRICS: [&str; 4] =
    ["accuracy", "latency_p50_us", "throughput_ips", "file_size_bytes"];

/// Metrics `slimbench history` follows unless told otherwise.
pub const DEFAULT_HISTORY_METRICS: [&str; 5] =
    ["accuracy", "latency_p50_us", "throughput_ips", "file_size_bytes", "mem_peak_b1_bytes"];

/// Why runs could not be read, compared or rendered.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A path that should be a run directory is not one.
    #[error("not a slimbench run directory: {} ({reason})", dir.display())]
    NotARunDir {
        /// The path given.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A pipeline results folder holds no finished run.
    #[error("no finished runs in {} (a run is a folder with run.json and metrics.parquet)", dir.display())]
    NoRuns {
        /// The folder.
        dir: PathBuf,
    },
    /// Reading `run.json` or writing an output failed; the error names the path.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Reading or writing a table failed; the error names the file.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Drawing or writing a chart failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A table could not be built.
    #[error("building the {table} table: {source}")]
    Frame {
        /// Which table.
        table: &'static str,
        /// What Polars said.
        #[source]
        source: PolarsError,
    },
}

/// What a comparison needs from one run directory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunData {
    /// The run directory.
    pub dir: PathBuf,
    /// Its `run.json`.
    pub info: RunInfo,
    /// One row per variant (`metrics.parquet`).
    pub metrics: Vec<MetricRow>,
    /// Batch-1 latency samples in µs by variant (`latency.parquet`; empty when the run
    /// has no such table).
    pub latency: HashMap<String, Vec<f64>>,
}

/// Whether `dir` holds a finished run (`run.json` and `metrics.parquet`).
pub fn is_run_dir(dir: &Path) -> bool {
    dir.join(RUN_JSON).is_file() && dir.join(Table::Metrics.file_name()).is_file()
}

/// The run a path means: a run directory itself, or a pipeline's results folder
/// (`results/<pipeline>`), meaning its `latest` run. A `latest` link is followed, so
/// messages and outputs name the real run.
pub fn resolve_run_dir(path: &Path) -> Result<PathBuf, CompareError> {
    let not_a_run =
        |reason: &str| CompareError::NotARunDir { dir: path.to_path_buf(), reason: reason.into() };
    if !path.is_dir() {
        return Err(not_a_run(if path.exists() { "not a directory" } else { "no such directory" }));
    }
    let candidate = if is_run_dir(path) { path.to_path_buf() } else { path.join("latest") };
    if !is_run_dir(&candidate) {
        return Err(not_a_run(
            "no run.json and metrics.parquet, and no `latest` run inside; give results/<pipeline>/<run-id>, \
             results/<pipeline>/latest or results/<pipeline>",
        ));
    }
    Ok(follow_latest(&candidate))
}

/// `…/latest` -> `…/<run-id>` when it is a link; any other path as it is.
fn follow_latest(path: &Path) -> PathBuf {
    match (path.file_name(), std::fs::read_link(path), path.parent()) {
        (Some(name), Ok(target), Some(parent)) if name == "latest" && target.is_relative() => {
            parent.join(target)
        }
        (Some(name), Ok(target), _) if name == "latest" => target,
        _ => path.to_path_buf(),
    }
}

/// Read what a comparison needs from a run directory. The latency table is optional
/// (runs without latency measurements have none). Runs are compared on libtorch, the
/// backend every run has: rows of other backends (`backends:`) are left out.
pub fn load_run_data(dir: &Path) -> Result<RunData, CompareError> {
    if !is_run_dir(dir) {
        return Err(CompareError::NotARunDir {
            dir: dir.to_path_buf(),
            reason: "no run.json and metrics.parquet".into(),
        });
    }
    let info: RunInfo = fsutil::read_json(&dir.join(RUN_JSON))?;
    let mut metrics = slimbench_metrics::read_metric_rows(dir)?;
    metrics.retain(|m| m.is_reference());
    let mut latency: HashMap<String, Vec<f64>> = HashMap::new();
    if dir.join(Table::Latency.file_name()).is_file() {
        // Batch 1 only: larger batches are throughput, not single-image latency.
        for s in slimbench_metrics::read_latency_samples(dir)? {
            let reference = slimbench_core::records::backend_or_reference(&s.backend)
                == slimbench_core::records::REFERENCE_BACKEND;
            if reference && s.batch_size == 1 && s.micros.is_finite() && s.micros > 0.0 {
                latency.entry(s.variant).or_default().push(s.micros);
            }
        }
    }
    Ok(RunData { dir: dir.to_path_buf(), info, metrics, latency })
}

#[cfg(test)]
pub(crate) mod testutil;
