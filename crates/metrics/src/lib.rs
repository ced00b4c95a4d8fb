//! # slimbench-metrics
//!
//! The run's tables and the probes that fill in where a run happened; no libtorch.
//!
//! * Tables: the rows stages record ([`MetricRow`], [`CurvePoint`], [`LatencySample`],
//!   [`ThroughputRow`], [`SpeedupRow`], gathered in [`Records`]) become Polars
//!   [`DataFrame`]s with one column per field ([`metrics_frame`], [`curves_frame`],
//!   [`latency_frame`], [`throughput_frame`], [`speedup_frame`]) and are written into the run directory by [`write_tables`]
//!   as the files a [`Table`] names. [`read_table`] reads one back;
//!   [`read_metric_rows`] and friends turn it back into rows.
//! * Host: [`probe_host`] describes the machine ([`HostInfo`]); [`peak_rss_bytes`],
//!   [`reset_peak_rss`] and [`current_rss_bytes`] measure the process's memory.
//!
//! Every file is written atomically (temporary sibling, then rename), and every error
//! ([`MetricsError`]) names the file it happened on.
//!
//! [`MetricRow`]: slimbench_core::records::MetricRow
//! [`CurvePoint`]: slimbench_core::records::CurvePoint
//! [`LatencySample`]: slimbench_core::records::LatencySample
//! [`ThroughputRow`]: slimbench_core::records::ThroughputRow
//! [`SpeedupRow`]: slimbench_core::records::SpeedupRow
//! [`Records`]: slimbench_core::records::Records
//! [`HostInfo`]: slimbench_core::artifact::HostInfo

mod host;
mod tables;

use std::path::PathBuf;

pub use host::{current_rss_bytes, peak_rss_bytes, probe_host, reset_peak_rss};
/// The Polars version these tables are built with, for callers that want to work on
/// the frames without depending on Polars themselves.
pub use polars;
pub use polars::prelude::{DataFrame, PolarsError, PolarsResult};
pub use tables::{
    METRICS_CSV, SPEEDUP_CSV, Table, curve_points_from_frame, curves_frame, curves_schema, latency_frame,
    latency_samples_from_frame, latency_schema, metric_rows_from_frame, metrics_frame, metrics_schema,
    parallel_frame, parallel_rows_from_frame, parallel_schema, read_curve_points, read_latency_samples,
    read_metric_rows, read_metrics_csv, read_parallel_rows, read_speedup_rows, read_staleness_rows,
    read_system_samples, read_table, read_throughput_rows, speedup_frame, speedup_rows_from_frame,
    speedup_schema, staleness_frame, staleness_rows_from_frame, staleness_schema, system_frame,
    system_samples_from_frame, system_schema, throughput_frame, throughput_rows_from_frame,
    throughput_schema, write_csv, write_parquet, write_tables,
};

/// Why a table could not be built, written or read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Writing a file (or creating its directory) failed; the error names the path.
    #[error(transparent)]
    Fs(#[from] slimbench_core::fsutil::FsError),
    /// The rows could not be turned into a frame.
    #[error("building the {table} table: {source}")]
    Frame {
        /// Which table.
        table: &'static str,
        /// What Polars said.
        #[source]
        source: PolarsError,
    },
    /// A table file could not be opened.
    #[error("opening {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A table file could not be read or does not have the expected columns.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What Polars said.
        #[source]
        source: PolarsError,
    },
}
