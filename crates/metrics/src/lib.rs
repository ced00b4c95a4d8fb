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
//! * System sampling: a [`SystemSampler`] records a [`SystemSample`] row (process and
//!   machine CPU, RSS, GPU utilization, memory, power, temperature, clocks, energy)
//!   about every 100 ms ([`SamplerConfig`]) on a background thread while a stage runs;
//!   [`stop`](SystemSampler::stop) hands back a [`SampledStage`] for the `system` table.
//! * Energy: an [`EnergyMeter`] measures joules from the GPU's NVML counter, else the
//!   CPU packages' Linux RAPL counters; cheap enough to wrap single measurements.
//! * Trust: [`Watch`] tells whether the machine was quiet while a block was timed
//!   ([`Observation::verdict`]); [`stats`] puts confidence bounds on percentiles and
//!   ratios of timings.
//! * GPUs: [`probe_gpus`] describes the CUDA devices ([`GpuInfo`]) or says in one line
//!   why there are none.
//!
//! The CUDA driver and NVML are loaded at run time, so nothing CUDA is needed to build
//! or to run on a CPU machine: there the GPU columns are NaN, and the answers say why.
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
//! [`GpuInfo`]: slimbench_core::artifact::GpuInfo
//! [`SystemSample`]: slimbench_core::records::SystemSample

mod energy;
mod gpu;
mod host;
mod sampler;
pub mod stats;
mod tables;
mod watch;

use std::path::PathBuf;

pub use energy::EnergyMeter;
pub use gpu::probe_gpus;
pub use host::{current_rss_bytes, peak_rss_bytes, probe_host, reset_peak_rss};
/// The Polars version these tables are built with, for callers that want to work on
/// the frames without depending on Polars themselves.
pub use polars;
pub use polars::prelude::{DataFrame, PolarsError, PolarsResult};
pub use sampler::{SampledStage, SamplerConfig, SystemSampler};
pub use tables::{
    METRICS_CSV, SPEEDUP_CSV, Table, curve_points_from_frame, curves_frame, curves_schema, latency_frame,
    latency_samples_from_frame, latency_schema, metric_rows_from_frame, metrics_frame, metrics_schema,
    parallel_frame, parallel_rows_from_frame, parallel_schema, read_curve_points, read_latency_samples,
    read_metric_rows, read_metrics_csv, read_parallel_rows, read_repeat_rows, read_server_rows,
    read_speedup_rows, read_staleness_rows, read_system_samples, read_table, read_throughput_rows,
    read_timing_rounds, speedup_frame, speedup_rows_from_frame, speedup_schema, staleness_frame,
    staleness_rows_from_frame, staleness_schema, system_frame, system_samples_from_frame, system_schema,
    throughput_frame, throughput_rows_from_frame, throughput_schema, write_csv, write_parquet, write_tables,
};
pub use watch::{Observation, Thresholds, Watch};

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
