//! Rows <-> DataFrames <-> files.
//!
//! Each table is declared once (struct, column kinds) by `record_table!`, which derives
//! the frame builder, the schema and the reader from that single list, so the three
//! can never disagree on a column name or type.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use polars::prelude::*;
use slimbench_core::fsutil;
use slimbench_core::records::{
    CurvePoint, LatencySample, MetricRow, ParallelRow, Records, RepeatRow, ServerRow, SpeedupRow,
    StalenessRow, SystemSample, ThroughputRow, TimingRound,
};

use crate::MetricsError;

/// The CSV copy of the metrics table (for spreadsheets and quick looks), beside
/// [`Table::Metrics`]'s parquet file.
pub const METRICS_CSV: &str = "metrics.csv";

/// The CSV copy of the speedup table, beside [`Table::Speedup`]'s parquet file.
pub const SPEEDUP_CSV: &str = "speedup.csv";

/// The tables of a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// One row per evaluated variant ([`MetricRow`]).
    Metrics,
    /// Training curves ([`CurvePoint`]).
    Training,
    /// Raw latency samples ([`LatencySample`]).
    Latency,
    /// Throughput by batch size ([`ThroughputRow`]).
    Throughput,
    /// Compressed variants timed beside their baselines ([`SpeedupRow`]).
    Speedup,
    /// The machine sampled while stages ran ([`SystemSample`]).
    System,
    /// How each training run used its parallelism ([`ParallelRow`]).
    Parallel,
    /// Async data-parallel updates and their staleness ([`StalenessRow`]).
    Staleness,
    /// The server scenario's offered loads ([`ServerRow`]).
    Server,
    /// Timing rounds and the machine during each ([`TimingRound`]).
    Timing,
    /// Per-repetition medians ([`RepeatRow`]).
    Repeats,
}

impl Table {
    /// Every table, in the order [`write_tables`] writes them.
    pub const ALL: [Table; 11] = [
        Table::Metrics,
        Table::Training,
        Table::Latency,
        Table::Throughput,
        Table::Speedup,
        Table::System,
        Table::Parallel,
        Table::Staleness,
        Table::Server,
        Table::Timing,
        Table::Repeats,
    ];

    /// The table's short name (`metrics`, `training`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Table::Metrics => "metrics",
            Table::Training => "training",
            Table::Latency => "latency",
            Table::Throughput => "throughput",
            Table::Speedup => "speedup",
            Table::System => "system",
            Table::Parallel => "parallel",
            Table::Staleness => "staleness",
            Table::Server => "server",
            Table::Timing => "timing",
            Table::Repeats => "repeats",
        }
    }

    /// Its parquet file's name inside a run directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Table::Metrics => "metrics.parquet",
            Table::Training => "training.parquet",
            Table::Latency => "latency.parquet",
            Table::Throughput => "throughput.parquet",
            Table::Speedup => "speedup.parquet",
            Table::System => "system.parquet",
            Table::Parallel => "parallel.parquet",
            Table::Staleness => "staleness.parquet",
            Table::Server => "server.parquet",
            Table::Timing => "timing.parquet",
            Table::Repeats => "repeats.parquet",
        }
    }

    /// Its columns and their types.
    pub fn schema(self) -> Schema {
        match self {
            Table::Metrics => metrics_schema(),
            Table::Training => curves_schema(),
            Table::Latency => latency_schema(),
            Table::Throughput => throughput_schema(),
            Table::Speedup => speedup_schema(),
            Table::System => system_schema(),
            Table::Parallel => parallel_schema(),
            Table::Staleness => staleness_schema(),
            Table::Server => server_schema(),
            Table::Timing => timing_schema(),
            Table::Repeats => repeats_schema(),
        }
    }
}

/// How one Rust field type maps to a Polars column, both ways.
trait Kind {
    type Value;
    fn dtype() -> DataType;
    fn column<'a>(name: &str, values: impl Iterator<Item = &'a Self::Value>) -> Column
    where
        Self::Value: 'a;
    /// Set the field from column `name`. A column the frame lacks leaves the default,
    /// so tables written by an older slimbench with fewer columns still load; a column
    /// of another type is cast (CSV infers i64 for u64 columns), or an error if it
    /// cannot be.
    fn fill<R>(
        df: &DataFrame,
        name: &str,
        rows: &mut [R],
        set: impl Fn(&mut R, Self::Value),
    ) -> PolarsResult<()>;
}

/// Looks up `name` and casts it to `dtype`; `None` when the frame has no such column.
fn typed_column(df: &DataFrame, name: &str, dtype: &DataType) -> PolarsResult<Option<Column>> {
    match df.column(name) {
        Ok(c) if c.dtype() == dtype => Ok(Some(c.clone())),
        Ok(c) => c.strict_cast(dtype).map(Some),
        Err(_) => Ok(None),
    }
}

struct Str;
struct F64;
struct U64;
struct U32;

impl Kind for Str {
    type Value = String;
    fn dtype() -> DataType {
        DataType::String
    }
    fn column<'a>(name: &str, values: impl Iterator<Item = &'a String>) -> Column {
        Column::new(name.into(), values.map(String::as_str).collect::<Vec<&str>>())
    }
    fn fill<R>(df: &DataFrame, name: &str, rows: &mut [R], set: impl Fn(&mut R, String)) -> PolarsResult<()> {
        if let Some(col) = typed_column(df, name, &Self::dtype())? {
            for (row, v) in rows.iter_mut().zip(col.str()?.iter()) {
                set(row, v.unwrap_or_default().to_owned());
            }
        }
        Ok(())
    }
}

/// The numeric kinds differ only in their Polars type and accessor.
macro_rules! numeric_kind {
    ($kind:ident, $ty:ty, $dtype:expr, $accessor:ident, $null:expr) => {
        impl Kind for $kind {
            type Value = $ty;
            fn dtype() -> DataType {
                $dtype
            }
            fn column<'a>(name: &str, values: impl Iterator<Item = &'a $ty>) -> Column {
                Column::new(name.into(), values.copied().collect::<Vec<$ty>>())
            }
            fn fill<R>(
                df: &DataFrame,
                name: &str,
                rows: &mut [R],
                set: impl Fn(&mut R, $ty),
            ) -> PolarsResult<()> {
                if let Some(col) = typed_column(df, name, &Self::dtype())? {
                    for (row, v) in rows.iter_mut().zip(col.$accessor()?.iter()) {
                        set(row, v.unwrap_or($null));
                    }
                }
                Ok(())
            }
        }
    };
}

numeric_kind!(F64, f64, DataType::Float64, f64, f64::NAN);
numeric_kind!(U64, u64, DataType::UInt64, u64, 0);
numeric_kind!(U32, u32, DataType::UInt32, u32, 0);

/// Declares a table: its frame builder, schema and row reader from one field list.
macro_rules! record_table {
    (
        $row:ident, $table:literal, $frame_fn:ident, $schema_fn:ident, $rows_fn:ident;
        $($field:ident: $kind:ident),+ $(,)?
    ) => {
        #[doc = concat!("The `", $table, "` table: one row per [`", stringify!($row),
            "`], one column per field with the same name. No rows give an empty frame with the full schema.")]
        pub fn $frame_fn(rows: &[$row]) -> PolarsResult<DataFrame> {
            DataFrame::new(rows.len(), vec![
                $(<$kind as Kind>::column(stringify!($field), rows.iter().map(|r| &r.$field)),)+
            ])
        }

        #[doc = concat!("Column names and types of the `", $table, "` table.")]
        pub fn $schema_fn() -> Schema {
            Schema::from_iter([$(Field::new(stringify!($field).into(), <$kind as Kind>::dtype()),)+])
        }

        #[doc = concat!("Rows of a `", $table, "` frame (inverse of [`", stringify!($frame_fn),
            "`]). Columns the frame lacks take their default value; columns of another type are cast.")]
        pub fn $rows_fn(df: &DataFrame) -> PolarsResult<Vec<$row>> {
            let mut rows = vec![<$row>::default(); df.height()];
            $(<$kind as Kind>::fill(df, stringify!($field), &mut rows, |r, v| r.$field = v)?;)+
            Ok(rows)
        }
    };
}

record_table! {
    MetricRow, "metrics", metrics_frame, metrics_schema, metric_rows_from_frame;
    variant: Str,
    stage: Str,
    backend: Str,
    backend_detail: Str,
    disagreements: U64,
    max_logit_diff: F64,
    technique: Str,
    model: Str,
    model_kind: Str,
    dataset: Str,
    device: Str,
    precision: Str,
    compute_precision: Str,
    sparsity: F64,
    accuracy: F64,
    test_images: U64,
    latency_p50_us: F64,
    latency_p90_us: F64,
    latency_p99_us: F64,
    latency_mean_us: F64,
    latency_p50_lo_us: F64,
    latency_p50_hi_us: F64,
    latency_p90_bound_us: F64,
    latency_p99_bound_us: F64,
    latency_iters: U64,
    latency_warmup: U64,
    latency_duration_s: F64,
    rounds: U64,
    repeats: U64,
    repeat_spread_pct: F64,
    validity: Str,
    invalid_reason: Str,
    threads: U64,
    throughput_ips: F64,
    batch_size: U64,
    throughput_lo_ips: F64,
    throughput_hi_ips: F64,
    file_size_bytes: U64,
    params: U64,
    nonzero_params: U64,
    weights_bytes: U64,
    mem_baseline_bytes: U64,
    mem_load_bytes: U64,
    mem_peak_b1_bytes: U64,
    mem_peak_large_bytes: U64,
    cuda_peak_bytes: U64,
    mem_method: Str,
    train_time_s: F64,
    notes: Str,
    speedup_b1: F64,
    speedup_b1_lo: F64,
    speedup_b1_hi: F64,
    speedup_large: F64,
    speedup_large_lo: F64,
    speedup_large_hi: F64,
    faster: Str,
    energy_per_1k_inferences_j: F64,
    energy_per_1k_lo_j: F64,
    energy_per_1k_hi_j: F64,
    train_energy_per_epoch_j: F64,
}

record_table! {
    CurvePoint, "training", curves_frame, curves_schema, curve_points_from_frame;
    stage: Str,
    variant: Str,
    epoch: U32,
    step: U64,
    split: Str,
    loss: F64,
    accuracy: F64,
    elapsed_s: F64,
}

record_table! {
    LatencySample, "latency", latency_frame, latency_schema, latency_samples_from_frame;
    variant: Str,
    backend: Str,
    batch_size: U64,
    iter: U64,
    micros: F64,
    round: U64,
}

record_table! {
    ThroughputRow, "throughput", throughput_frame, throughput_schema, throughput_rows_from_frame;
    variant: Str,
    backend: Str,
    batch_size: U64,
    repeats: U64,
    p50_ms: F64,
    p50_lo_ms: F64,
    p50_hi_ms: F64,
    images_per_s: F64,
    duration_s: F64,
    validity: Str,
    invalid_reason: Str,
}

record_table! {
    SpeedupRow, "speedup", speedup_frame, speedup_schema, speedup_rows_from_frame;
    variant: Str,
    backend: Str,
    baseline: Str,
    form: Str,
    what: Str,
    batch_size: U64,
    samples: U64,
    p50_us: F64,
    p50_lo_us: F64,
    p50_hi_us: F64,
    images_per_s: F64,
    file_bytes: U64,
    speedup: F64,
    speedup_lo: F64,
    speedup_hi: F64,
    faster: Str,
    validity: Str,
    invalid_reason: Str,
    why: Str,
}

record_table! {
    SystemSample, "system", system_frame, system_schema, system_samples_from_frame;
    stage: Str,
    t_s: F64,
    cpu_percent: F64,
    host_cpu_percent: F64,
    rss_bytes: U64,
    gpu: Str,
    gpu_util_percent: F64,
    gpu_mem_used_bytes: U64,
    gpu_power_w: F64,
    gpu_temp_c: F64,
    gpu_sm_clock_mhz: F64,
    gpu_mem_clock_mhz: F64,
    energy_j: F64,
}

record_table! {
    ParallelRow, "parallel", parallel_frame, parallel_schema, parallel_rows_from_frame;
    stage: Str,
    variant: Str,
    model: Str,
    strategy: Str,
    mode: Str,
    device: Str,
    workers: U32,
    replicas: U32,
    processes: U32,
    pipeline_stages: U32,
    micro_batches: U32,
    batch_size: U64,
    epochs: U32,
    images: U64,
    train_time_s: F64,
    images_per_s: F64,
    bubble_fraction: F64,
    ideal_bubble_fraction: F64,
    accuracy: F64,
    final_loss: F64,
    energy_j: F64,
}

record_table! {
    StalenessRow, "staleness", staleness_frame, staleness_schema, staleness_rows_from_frame;
    stage: Str,
    variant: Str,
    update: U64,
    worker: U32,
    epoch: U32,
    staleness: U64,
}

record_table! {
    ServerRow, "server", server_frame, server_schema, server_rows_from_frame;
    variant: Str,
    rate_qps: F64,
    queries: U64,
    duration_s: F64,
    max_batch: U64,
    mean_batch: F64,
    p50_ms: F64,
    p99_ms: F64,
    p99_bound_ms: F64,
    target_p99_ms: F64,
    meets: Str,
    best: Str,
    validity: Str,
    invalid_reason: Str,
}

record_table! {
    TimingRound, "timing", timing_frame, timing_schema, timing_rounds_from_frame;
    stage: Str,
    repeat: U64,
    round: U64,
    attempt: U64,
    wall_s: F64,
    thread_cpu_ratio: F64,
    others_cpu_share: F64,
    steal_share: F64,
    cpu_mhz: F64,
    validity: Str,
    invalid_reason: Str,
}

record_table! {
    RepeatRow, "repeats", repeats_frame, repeats_schema, repeat_rows_from_frame;
    variant: Str,
    backend: Str,
    repeat: U64,
    batch_size: U64,
    p50_us: F64,
    p50_lo_us: F64,
    p50_hi_us: F64,
    validity: Str,
}

/// Write every table of `records` into `run_dir` (created if needed): the parquet file
/// of each [`Table`] plus [`METRICS_CSV`] and [`SPEEDUP_CSV`]. Tables without rows are still written, empty
/// but with their schema, so readers can rely on the files being there. Returns the
/// paths written.
pub fn write_tables(run_dir: &Path, records: &Records) -> Result<Vec<PathBuf>, MetricsError> {
    let frame_err = |table: Table| move |source| MetricsError::Frame { table: table.name(), source };
    let mut metrics = metrics_frame(&records.metrics).map_err(frame_err(Table::Metrics))?;
    let mut training = curves_frame(&records.curves).map_err(frame_err(Table::Training))?;
    let mut latency = latency_frame(&records.latency).map_err(frame_err(Table::Latency))?;
    let mut throughput = throughput_frame(&records.throughput).map_err(frame_err(Table::Throughput))?;
    let mut speedup = speedup_frame(&records.speedup).map_err(frame_err(Table::Speedup))?;
    let mut system = system_frame(&records.system).map_err(frame_err(Table::System))?;
    let mut parallel = parallel_frame(&records.parallel).map_err(frame_err(Table::Parallel))?;
    let mut staleness = staleness_frame(&records.staleness).map_err(frame_err(Table::Staleness))?;
    let mut server = server_frame(&records.server).map_err(frame_err(Table::Server))?;
    let mut timing = timing_frame(&records.timing).map_err(frame_err(Table::Timing))?;
    let mut repeats = repeats_frame(&records.repeats).map_err(frame_err(Table::Repeats))?;

    let mut written = Vec::with_capacity(Table::ALL.len() + 2);
    for (table, df) in [
        (Table::Metrics, &mut metrics),
        (Table::Training, &mut training),
        (Table::Latency, &mut latency),
        (Table::Throughput, &mut throughput),
        (Table::Speedup, &mut speedup),
        (Table::System, &mut system),
        (Table::Parallel, &mut parallel),
        (Table::Staleness, &mut staleness),
        (Table::Server, &mut server),
        (Table::Timing, &mut timing),
        (Table::Repeats, &mut repeats),
    ] {
        let path = run_dir.join(table.file_name());
        write_parquet(&path, df)?;
        written.push(path);
    }
    let csv = run_dir.join(METRICS_CSV);
    write_csv(&csv, &mut metrics)?;
    written.insert(1, csv);
    let csv = run_dir.join(SPEEDUP_CSV);
    write_csv(&csv, &mut speedup)?;
    written.push(csv);
    Ok(written)
}

/// Write `df` as a parquet file at `path`, atomically.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), MetricsError> {
    fsutil::atomic_write_with(path, |file| {
        ParquetWriter::new(file).finish(df).map(drop).map_err(std::io::Error::other)
    })?;
    Ok(())
}

/// Write `df` as a CSV file with a header at `path`, atomically.
pub fn write_csv(path: &Path, df: &mut DataFrame) -> Result<(), MetricsError> {
    fsutil::atomic_write_with(path, |file| {
        CsvWriter::new(file).include_header(true).finish(df).map_err(std::io::Error::other)
    })?;
    Ok(())
}

/// Read one table of a run directory.
pub fn read_table(run_dir: &Path, table: Table) -> Result<DataFrame, MetricsError> {
    let path = run_dir.join(table.file_name());
    let file = File::open(&path).map_err(|source| MetricsError::Open { path: path.clone(), source })?;
    ParquetReader::new(file).finish().map_err(|source| MetricsError::Read { path, source })
}

/// Read [`METRICS_CSV`] of a run directory, with the metrics schema (CSV does not
/// carry types; without it unsigned columns would come back as i64).
pub fn read_metrics_csv(run_dir: &Path) -> Result<DataFrame, MetricsError> {
    let path = run_dir.join(METRICS_CSV);
    if let Err(source) = std::fs::metadata(&path) {
        return Err(MetricsError::Open { path, source });
    }
    CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(Arc::new(metrics_schema())))
        .try_into_reader_with_file_path(Some(path.clone()))
        .and_then(|reader| reader.finish())
        .map_err(|source| MetricsError::Read { path, source })
}

/// Reads `table` and converts it to rows, naming the file on any error.
fn read_rows<R>(
    run_dir: &Path,
    table: Table,
    convert: fn(&DataFrame) -> PolarsResult<Vec<R>>,
) -> Result<Vec<R>, MetricsError> {
    let df = read_table(run_dir, table)?;
    convert(&df).map_err(|source| MetricsError::Read { path: run_dir.join(table.file_name()), source })
}

/// Rows of a table that runs made before it existed lack: no file is no rows.
fn read_optional_rows<R>(
    run_dir: &Path,
    table: Table,
    convert: fn(&DataFrame) -> PolarsResult<Vec<R>>,
) -> Result<Vec<R>, MetricsError> {
    if !run_dir.join(table.file_name()).exists() {
        return Ok(Vec::new());
    }
    read_rows(run_dir, table, convert)
}

/// The metric rows of a run directory (`metrics.parquet`).
pub fn read_metric_rows(run_dir: &Path) -> Result<Vec<MetricRow>, MetricsError> {
    read_rows(run_dir, Table::Metrics, metric_rows_from_frame)
}

/// The training curves of a run directory (`training.parquet`).
pub fn read_curve_points(run_dir: &Path) -> Result<Vec<CurvePoint>, MetricsError> {
    read_rows(run_dir, Table::Training, curve_points_from_frame)
}

/// The raw latency samples of a run directory (`latency.parquet`).
pub fn read_latency_samples(run_dir: &Path) -> Result<Vec<LatencySample>, MetricsError> {
    read_rows(run_dir, Table::Latency, latency_samples_from_frame)
}

/// The throughput rows of a run directory (`throughput.parquet`).
pub fn read_throughput_rows(run_dir: &Path) -> Result<Vec<ThroughputRow>, MetricsError> {
    read_rows(run_dir, Table::Throughput, throughput_rows_from_frame)
}

/// The speedup rows of a run directory (`speedup.parquet`).
pub fn read_speedup_rows(run_dir: &Path) -> Result<Vec<SpeedupRow>, MetricsError> {
    read_rows(run_dir, Table::Speedup, speedup_rows_from_frame)
}

/// The system samples of a run directory (`system.parquet`).
pub fn read_system_samples(run_dir: &Path) -> Result<Vec<SystemSample>, MetricsError> {
    read_rows(run_dir, Table::System, system_samples_from_frame)
}

/// The parallelism rows of a run directory (`parallel.parquet`).
pub fn read_parallel_rows(run_dir: &Path) -> Result<Vec<ParallelRow>, MetricsError> {
    read_rows(run_dir, Table::Parallel, parallel_rows_from_frame)
}

/// The async updates of a run directory (`staleness.parquet`).
pub fn read_staleness_rows(run_dir: &Path) -> Result<Vec<StalenessRow>, MetricsError> {
    read_rows(run_dir, Table::Staleness, staleness_rows_from_frame)
}

/// The `server` table of a run directory.
pub fn read_server_rows(run_dir: &Path) -> Result<Vec<ServerRow>, MetricsError> {
    read_optional_rows(run_dir, Table::Server, server_rows_from_frame)
}

/// The `timing` table of a run directory.
pub fn read_timing_rounds(run_dir: &Path) -> Result<Vec<TimingRound>, MetricsError> {
    read_optional_rows(run_dir, Table::Timing, timing_rounds_from_frame)
}

/// The `repeats` table of a run directory.
pub fn read_repeat_rows(run_dir: &Path) -> Result<Vec<RepeatRow>, MetricsError> {
    read_optional_rows(run_dir, Table::Repeats, repeat_rows_from_frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(variant: &str, sparsity: f64) -> MetricRow {
        MetricRow {
            variant: variant.into(),
            stage: "eval".into(),
            technique: "prune-magnitude".into(),
            model: "seed-cnn".into(),
            model_kind: "seed-cnn".into(),
            dataset: "mnist".into(),
            device: "cpu".into(),
            precision: "fp32".into(),
            compute_precision: "fp32".into(),
            sparsity,
            accuracy: 0.9601,
            test_images: 10_000,
            latency_p50_us: 194.1,
            latency_p90_us: 210.5,
            latency_p99_us: 250.25,
            latency_mean_us: 196.0,
            latency_iters: 1000,
            latency_warmup: 100,
            threads: 2,
            throughput_ips: 51_234.5,
            batch_size: 256,
            file_size_bytes: u64::MAX - 1, // beyond i64: must survive as u64
            params: 20_410,
            nonzero_params: 2_041,
            weights_bytes: 81_640,
            mem_peak_b1_bytes: 123_456_789,
            mem_method: "child process".into(),
            validity: "invalid".into(),
            invalid_reason: "other processes used 48% of the CPUs".into(),
            latency_p50_lo_us: 190.0,
            latency_p50_hi_us: 199.5,
            rounds: 10,
            train_time_s: 12.5,
            notes: "comma, \"quote\" and\nnewline".into(),
            speedup_b1: 1.25,
            speedup_large: 0.98,
            faster: "batch 1 only".into(),
            energy_per_1k_inferences_j: 41.0,
            train_energy_per_epoch_j: 1200.0,
            backend: "onnxruntime".into(),
            backend_detail: "onnxruntime: CPUExecutionProvider; fp32".into(),
            disagreements: 3,
            max_logit_diff: 2.5e-7,
            ..Default::default()
        }
    }

    fn records() -> Records {
        Records {
            metrics: vec![metric("train", 0.0), metric("prune[sparsity=0.9]", 0.9)],
            curves: (1..=3)
                .map(|i| CurvePoint {
                    stage: "train".into(),
                    variant: "train".into(),
                    epoch: 1,
                    step: i * 100,
                    split: if i == 3 { "test" } else { "train" }.into(),
                    loss: 1.0 / i as f64,
                    accuracy: 0.3 * i as f64,
                    elapsed_s: i as f64,
                })
                .collect(),
            latency: (0..5)
                .map(|i| LatencySample {
                    variant: "train".into(),
                    backend: "tract".into(),
                    batch_size: 1,
                    iter: i,
                    micros: 190.0 + i as f64,
                    round: i / 2,
                })
                .collect(),
            throughput: vec![
                ThroughputRow {
                    variant: "train".into(),
                    batch_size: 1,
                    repeats: 50,
                    p50_ms: 0.2,
                    images_per_s: 5000.0,
                    validity: "valid".into(),
                    ..Default::default()
                },
                ThroughputRow {
                    variant: "train".into(),
                    batch_size: 256,
                    repeats: 50,
                    p50_ms: 5.0,
                    images_per_s: 51_200.0,
                    ..Default::default()
                },
            ],
            speedup: ["baseline", "materialized"]
                .iter()
                .map(|form| SpeedupRow {
                    variant: "int8".into(),
                    baseline: "train".into(),
                    form: form.to_string(),
                    what: "int8 weights, fbgemm".into(),
                    batch_size: 256,
                    samples: 30,
                    p50_us: 5000.0,
                    images_per_s: 51_200.0,
                    file_bytes: 21_000,
                    speedup: 1.0,
                    faster: if *form == "baseline" { "" } else { "no" }.into(),
                    why: "1 convolution(s) kept in fp32".into(),
                    ..Default::default()
                })
                .collect(),
            system: vec![SystemSample {
                stage: "train".into(),
                t_s: 0.1,
                cpu_percent: 180.0,
                host_cpu_percent: 95.0,
                rss_bytes: 300 << 20,
                gpu_util_percent: f64::NAN,
                gpu_power_w: f64::NAN,
                energy_j: f64::NAN,
                ..Default::default()
            }],
            parallel: vec![ParallelRow {
                stage: "train".into(),
                strategy: "model-parallel".into(),
                pipeline_stages: 2,
                micro_batches: 4,
                bubble_fraction: 0.3,
                ideal_bubble_fraction: 0.2,
                energy_j: 12.5,
                ..Default::default()
            }],
            staleness: vec![StalenessRow {
                stage: "async".into(),
                update: 7,
                worker: 1,
                staleness: 2,
                ..Default::default()
            }],
            server: vec![ServerRow {
                variant: "train".into(),
                rate_qps: 5000.0,
                queries: 20_000,
                p99_ms: 0.8,
                meets: "yes".into(),
                best: "yes".into(),
                validity: "valid".into(),
                ..Default::default()
            }],
            timing: vec![TimingRound {
                stage: "eval".into(),
                round: 3,
                thread_cpu_ratio: 0.97,
                others_cpu_share: 0.02,
                validity: "valid".into(),
                ..Default::default()
            }],
            repeats: vec![RepeatRow {
                variant: "train".into(),
                repeat: 1,
                p50_us: 41.0,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn frames_have_one_typed_column_per_field() {
        let df = metrics_frame(&records().metrics).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(df.width(), metrics_schema().len());
        assert!(df.width() > 50);
        assert_eq!(df.column("variant").unwrap().dtype(), &DataType::String);
        assert_eq!(df.column("accuracy").unwrap().dtype(), &DataType::Float64);
        assert_eq!(df.column("params").unwrap().dtype(), &DataType::UInt64);
        assert_eq!(
            curves_frame(&records().curves).unwrap().column("epoch").unwrap().dtype(),
            &DataType::UInt32
        );
    }

    #[test]
    fn empty_frames_keep_their_schema() {
        for (df, table) in [
            (metrics_frame(&[]).unwrap(), Table::Metrics),
            (curves_frame(&[]).unwrap(), Table::Training),
            (latency_frame(&[]).unwrap(), Table::Latency),
            (throughput_frame(&[]).unwrap(), Table::Throughput),
            (speedup_frame(&[]).unwrap(), Table::Speedup),
            (system_frame(&[]).unwrap(), Table::System),
            (parallel_frame(&[]).unwrap(), Table::Parallel),
            (staleness_frame(&[]).unwrap(), Table::Staleness),
        ] {
            assert_eq!(df.height(), 0);
            assert_eq!(**df.schema(), table.schema(), "{}", table.name());
            assert!(df.width() > 0);
        }
    }

    #[test]
    fn tables_round_trip_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records();
        let written = write_tables(dir.path(), &recs).unwrap();
        let names: Vec<_> = written.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "metrics.parquet",
                "metrics.csv",
                "training.parquet",
                "latency.parquet",
                "throughput.parquet",
                "speedup.parquet",
                "system.parquet",
                "parallel.parquet",
                "staleness.parquet",
                "server.parquet",
                "timing.parquet",
                "repeats.parquet",
                "speedup.csv"
            ]
        );
        assert_eq!(read_server_rows(dir.path()).unwrap(), recs.server);
        assert_eq!(read_timing_rounds(dir.path()).unwrap(), recs.timing);
        assert_eq!(read_repeat_rows(dir.path()).unwrap(), recs.repeats);
        // Runs made before a table existed read as having no rows.
        std::fs::remove_file(dir.path().join(Table::Server.file_name())).unwrap();
        assert_eq!(read_server_rows(dir.path()).unwrap(), []);
        assert_eq!(read_metric_rows(dir.path()).unwrap(), recs.metrics);
        assert_eq!(read_curve_points(dir.path()).unwrap(), recs.curves);
        assert_eq!(read_latency_samples(dir.path()).unwrap(), recs.latency);
        assert_eq!(read_throughput_rows(dir.path()).unwrap(), recs.throughput);
        assert_eq!(read_speedup_rows(dir.path()).unwrap(), recs.speedup);
        assert_eq!(read_parallel_rows(dir.path()).unwrap(), recs.parallel);
        assert_eq!(read_staleness_rows(dir.path()).unwrap(), recs.staleness);
        // NaN != NaN: compare the system sample field by field where it matters.
        let system = read_system_samples(dir.path()).unwrap();
        assert_eq!((system[0].rss_bytes, system[0].cpu_percent), (300 << 20, 180.0));
        assert!(system[0].gpu_power_w.is_nan());
        for table in Table::ALL.into_iter().filter(|t| *t != Table::Server) {
            assert_eq!(**read_table(dir.path(), table).unwrap().schema(), table.schema());
        }
    }

    #[test]
    fn metrics_round_trip_through_csv() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records();
        write_tables(dir.path(), &recs).unwrap();
        let df = read_metrics_csv(dir.path()).unwrap();
        assert_eq!(**df.schema(), metrics_schema());
        assert_eq!(metric_rows_from_frame(&df).unwrap(), recs.metrics);
    }

    #[test]
    fn speedup_csv_has_a_header_and_a_line_per_row() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path(), &records()).unwrap();
        let csv = std::fs::read_to_string(dir.path().join(SPEEDUP_CSV)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[0].starts_with("variant,backend,baseline,form,what,batch_size"), "{}", lines[0]);
        assert!(lines[2].starts_with("int8,\"\",train,materialized,"), "{}", lines[2]);
    }

    #[test]
    fn empty_records_write_readable_empty_tables() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path(), &Records::default()).unwrap();
        assert!(read_metric_rows(dir.path()).unwrap().is_empty());
        assert!(read_curve_points(dir.path()).unwrap().is_empty());
        assert_eq!(**read_metrics_csv(dir.path()).unwrap().schema(), metrics_schema());
    }

    #[test]
    fn writes_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path(), &records()).unwrap();
        // Twice: replacing existing files must not leave anything behind either.
        write_tables(dir.path(), &records()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "latency.parquet",
                "metrics.csv",
                "metrics.parquet",
                "parallel.parquet",
                "repeats.parquet",
                "server.parquet",
                "speedup.csv",
                "speedup.parquet",
                "staleness.parquet",
                "system.parquet",
                "throughput.parquet",
                "timing.parquet",
                "training.parquet"
            ]
        );
    }

    #[test]
    fn missing_columns_take_defaults_and_bad_types_fail() {
        let df = DataFrame::new(1, vec![Column::new("variant".into(), ["old"])]).unwrap();
        let rows = metric_rows_from_frame(&df).unwrap();
        assert_eq!(rows[0].variant, "old");
        assert_eq!(rows[0].params, 0);
        // A table from before backends: its rows are libtorch's.
        assert_eq!((rows[0].backend.as_str(), rows[0].backend()), ("", "libtorch"));
        assert!(rows[0].is_reference());

        let df = DataFrame::new(1, vec![Column::new("params".into(), ["many"])]).unwrap();
        assert!(metric_rows_from_frame(&df).is_err());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_metric_rows(dir.path()).unwrap_err().to_string();
        assert!(err.contains("metrics.parquet"), "{err}");

        std::fs::write(dir.path().join("metrics.parquet"), b"not parquet").unwrap();
        let err = read_metric_rows(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("reading ") && err.contains("metrics.parquet"), "{err}");
    }
}
