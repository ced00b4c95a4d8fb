//! Rows that stages emit and that become the run's Polars tables
//! (`metrics`, `training`, `latency`, `throughput`, `speedup`, `system`, `parallel`,
//! `staleness`). Column names are the field names.

use serde::{Deserialize, Serialize};

/// One evaluated model variant: a row of `metrics.parquet`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricRow {
    /// Variant name, unique in a run (`train`, `fp16`, `prune[sparsity=0.9]`, ...).
    pub variant: String,
    /// Stage that produced the model.
    pub stage: String,
    /// Inference engine the row was measured on (`libtorch`, `onnxruntime`, `tract`);
    /// a run has one row per variant and backend. Empty in tables written before
    /// slimbench had backends: those rows are libtorch's (see [`MetricRow::backend`]).
    #[serde(default)]
    pub backend: String,
    /// What the backend ran: execution providers, graph optimisation, kernels,
    /// precision, threads.
    #[serde(default)]
    pub backend_detail: String,
    /// Test images whose top-1 prediction differs from libtorch's (0 on libtorch).
    #[serde(default)]
    pub disagreements: u64,
    /// Largest absolute difference of a logit from libtorch's over the test split; NaN
    /// on libtorch.
    #[serde(default = "nan", with = "nan_as_null")]
    pub max_logit_diff: f64,
    /// Compression technique (`baseline`, `fp16`, `prune-magnitude`, `distill-response`, ...).
    pub technique: String,
    /// Model name (a key of `models:`).
    pub model: String,
    /// Model family (`seed-cnn`, `mlp`, ...).
    pub model_kind: String,
    /// Dataset name.
    pub dataset: String,
    /// Device the measurements ran on (`cpu`, `cuda:0`).
    pub device: String,
    /// Precision the weights are stored in (`fp32`, `fp16`, `bf16`).
    pub precision: String,
    /// Precision the arithmetic ran in; differs from `precision` when weights were upcast.
    pub compute_precision: String,
    /// Fraction of zero weights in conv/linear layers.
    pub sparsity: f64,
    /// Top-1 accuracy on the test set.
    pub accuracy: f64,
    /// Test images the accuracy was measured on.
    pub test_images: u64,
    /// Batch-1 latency percentiles and mean, in microseconds.
    pub latency_p50_us: f64,
    /// 90th percentile.
    pub latency_p90_us: f64,
    /// 99th percentile.
    pub latency_p99_us: f64,
    /// Mean.
    pub latency_mean_us: f64,
    /// Lower end of the 95% confidence interval of `latency_p50_us` (distribution-free,
    /// from the binomial order statistics of the samples).
    #[serde(default = "nan", with = "nan_as_null")]
    pub latency_p50_lo_us: f64,
    /// Upper end of that interval.
    #[serde(default = "nan", with = "nan_as_null")]
    pub latency_p50_hi_us: f64,
    /// One-sided 95% upper bound of the true p90 (LoadGen's early-stopping estimate);
    /// NaN when too few queries were timed for one.
    #[serde(default = "nan", with = "nan_as_null")]
    pub latency_p90_bound_us: f64,
    /// The same for p99 (needs at least 299 queries).
    #[serde(default = "nan", with = "nan_as_null")]
    pub latency_p99_bound_us: f64,
    /// Timed batch-1 inferences.
    pub latency_iters: u64,
    /// Untimed warm-up inferences before them.
    pub latency_warmup: u64,
    /// Seconds the timed batch-1 inferences took, all together.
    #[serde(default)]
    pub latency_duration_s: f64,
    /// Interleaved rounds of the stage's timing plan (every variant is timed in each).
    #[serde(default)]
    pub rounds: u64,
    /// Times the timing plan ran (`--repeat`); its figures pool every repetition.
    #[serde(default)]
    pub repeats: u64,
    /// Spread of the batch-1 p50 over the repetitions, (max - min) / median in percent;
    /// NaN with one repetition.
    #[serde(default = "nan", with = "nan_as_null")]
    pub repeat_spread_pct: f64,
    /// `valid` when the timing met its minimum duration and query count on a quiet
    /// machine, `invalid` otherwise (see `invalid_reason`); empty in runs made before
    /// slimbench checked.
    #[serde(default)]
    pub validity: String,
    /// Why the timing is invalid; empty when it is valid.
    #[serde(default)]
    pub invalid_reason: String,
    /// libtorch intra-op threads during the measurement.
    pub threads: u64,
    /// Images per second at `batch_size` (the largest measured).
    pub throughput_ips: f64,
    /// Batch size of `throughput_ips`.
    pub batch_size: u64,
    /// 95% confidence interval of `throughput_ips` (from that of the median time).
    #[serde(default = "nan", with = "nan_as_null")]
    pub throughput_lo_ips: f64,
    /// Upper end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub throughput_hi_ips: f64,
    /// Size of the saved model file.
    pub file_size_bytes: u64,
    /// Parameters (weights and biases).
    pub params: u64,
    /// Parameters that are not zero.
    pub nonzero_params: u64,
    /// Bytes of the model's tensors in memory (weights, biases, quantization
    /// parameters, packed int8 weights counted at their int8 size).
    #[serde(default)]
    pub weights_bytes: u64,
    /// Resident memory of a process that has loaded libtorch but no model (what
    /// `mem_*` are measured above); 0 when memory was not measured.
    #[serde(default)]
    pub mem_baseline_bytes: u64,
    /// Resident memory the loaded model adds over `mem_baseline_bytes`.
    #[serde(default)]
    pub mem_load_bytes: u64,
    /// Peak resident memory over the baseline during batch-1 forwards (the model
    /// included).
    #[serde(default)]
    pub mem_peak_b1_bytes: u64,
    /// The same during forwards at `batch_size`.
    #[serde(default)]
    pub mem_peak_large_bytes: u64,
    /// Peak of libtorch's CUDA caching allocator during those forwards; 0 on a CPU.
    #[serde(default)]
    pub cuda_peak_bytes: u64,
    /// How memory was measured (`child process` or `in process: ...` with why).
    #[serde(default)]
    pub mem_method: String,
    /// Seconds of training spent producing this variant in its stage (fine-tuning for
    /// pruned models, 0 for conversions).
    pub train_time_s: f64,
    /// Remarks (e.g. why compute was upcast).
    pub notes: String,
    /// Batch-1 speedup of this variant as stored over the model it was compressed from
    /// (baseline p50 / its p50, timed side by side; see the `speedup` table); NaN when
    /// it was not checked.
    #[serde(with = "nan_as_null")]
    pub speedup_b1: f64,
    /// 95% bootstrap interval of `speedup_b1`, lower end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub speedup_b1_lo: f64,
    /// Upper end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub speedup_b1_hi: f64,
    /// The same at `batch_size` (the largest measured).
    #[serde(with = "nan_as_null")]
    pub speedup_large: f64,
    /// 95% bootstrap interval of `speedup_large`, lower end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub speedup_large_lo: f64,
    /// Upper end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub speedup_large_hi: f64,
    /// Whether it is really faster than its baseline (see [`faster_verdict`]): `yes`,
    /// `no`, `same within noise`, `batch 1 only`, `large batch only`; empty when not
    /// checked.
    pub faster: String,
    /// Joules per 1,000 batch-1 inferences while its latency was timed, from the
    /// device's energy counter (NVML on a GPU, RAPL on a CPU where readable); NaN when
    /// the machine has no counter.
    #[serde(default = "nan", with = "nan_as_null")]
    pub energy_per_1k_inferences_j: f64,
    /// 95% interval of `energy_per_1k_inferences_j` over the timing rounds, lower end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub energy_per_1k_lo_j: f64,
    /// Upper end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub energy_per_1k_hi_j: f64,
    /// Joules per training epoch of the stage that produced it; NaN when unknown.
    #[serde(default = "nan", with = "nan_as_null")]
    pub train_energy_per_epoch_j: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// The backend every run has, whose predictions the others are checked against, and
/// the one rows written before slimbench had backends were measured on.
pub const REFERENCE_BACKEND: &str = "libtorch";

/// A row's backend: its `backend` column, or [`REFERENCE_BACKEND`] where that is empty
/// (tables written before the column existed).
pub fn backend_or_reference(backend: &str) -> &str {
    if backend.is_empty() { REFERENCE_BACKEND } else { backend }
}

impl MetricRow {
    /// The backend it was measured on ([`backend_or_reference`]).
    pub fn backend(&self) -> &str {
        backend_or_reference(&self.backend)
    }

    /// Whether it was measured on the reference backend (libtorch).
    pub fn is_reference(&self) -> bool {
        self.backend() == REFERENCE_BACKEND
    }
}

/// A speedup below this is "not faster" even when its interval excludes 1: repeated
/// timings of one model on a shared CPU differ by a few percent, so 5% is the least we
/// call a real gain.
pub const MIN_SPEEDUP: f64 = 1.05;

/// How a variant's time compares with its baseline's at one batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Faster beyond noise: the speedup reaches [`MIN_SPEEDUP`] and its interval lies
    /// above 1.
    Faster,
    /// Slower beyond noise: the mirror image.
    Slower,
    /// Within noise: the interval holds 1, or the difference is under 5%.
    Same,
    /// Not measured.
    Unknown,
}

impl Pace {
    /// Judge a speedup (baseline time / variant time) and its interval `[lo, hi]`
    /// (NaN ends: judged on the point value alone).
    pub fn of(speedup: f64, lo: f64, hi: f64) -> Pace {
        if !speedup.is_finite() {
            return Pace::Unknown;
        }
        let (lo, hi) = (if lo.is_nan() { speedup } else { lo }, if hi.is_nan() { speedup } else { hi });
        if speedup >= MIN_SPEEDUP && lo > 1.0 {
            Pace::Faster
        } else if speedup <= 1.0 / MIN_SPEEDUP && hi < 1.0 {
            Pace::Slower
        } else {
            Pace::Same
        }
    }

    /// Its word in the `faster` column of the speedup table.
    pub fn as_str(self) -> &'static str {
        match self {
            Pace::Faster => "yes",
            Pace::Slower => "no (slower)",
            Pace::Same => "same within noise",
            Pace::Unknown => "",
        }
    }
}

/// Whether a speedup (baseline time / variant time) is a real gain, judged on the point
/// value alone (use [`Pace::of`] where an interval is known).
pub fn is_faster(speedup: f64) -> bool {
    speedup.is_finite() && speedup >= MIN_SPEEDUP
}

/// The `faster` verdict of a variant from its paces at batch 1 and at a large batch.
pub fn faster_verdict(b1: Pace, large: Pace) -> &'static str {
    use Pace::*;
    match (b1, large) {
        (Faster, Faster | Unknown) => "yes",
        (Faster, _) => "batch 1 only",
        (Same | Slower | Unknown, Faster) => "large batch only",
        (Same, Same | Unknown) | (Unknown, Same) => "same within noise",
        (Unknown, Unknown) => "",
        _ => "no",
    }
}

/// One form of a compressed variant timed beside its baseline: a row of
/// `speedup.parquet`. A variant has a `baseline` row, a `simulated` row where the
/// compression has a simulated form (masks, fake quantization) and a `materialized`
/// row where something physically smaller or on faster kernels exists, each at batch
/// 1 and at the largest configured batch size.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpeedupRow {
    /// The compressed variant.
    pub variant: String,
    /// Backend both forms ran on (empty: libtorch, in older tables).
    #[serde(default)]
    pub backend: String,
    /// The variant it was compressed from.
    pub baseline: String,
    /// `baseline`, `simulated` or `materialized`.
    pub form: String,
    /// What this form is (file, kernel, arithmetic).
    pub what: String,
    /// Images per forward.
    pub batch_size: u64,
    /// Timed forwards.
    pub samples: u64,
    /// Median microseconds per forward.
    pub p50_us: f64,
    /// 95% confidence interval of `p50_us`, lower end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub p50_lo_us: f64,
    /// Upper end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub p50_hi_us: f64,
    /// Images per second at the median.
    pub images_per_s: f64,
    /// Size of the form's model file.
    pub file_bytes: u64,
    /// Baseline p50 / this form's p50 (1 for the baseline row).
    pub speedup: f64,
    /// 95% bootstrap interval of `speedup`, lower end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub speedup_lo: f64,
    /// Upper end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub speedup_hi: f64,
    /// [`Pace::as_str`]: `yes`, `no (slower)` or `same within noise`; empty on the
    /// baseline row.
    pub faster: String,
    /// `valid` or `invalid` (see the metrics table's column of that name).
    #[serde(default)]
    pub validity: String,
    /// Why it is invalid.
    #[serde(default)]
    pub invalid_reason: String,
    /// Why the variant is or is not faster, from what is known (kernels, notes).
    pub why: String,
}

/// One point of a training curve: a row of `training.parquet`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Stage that trained.
    pub stage: String,
    /// Variant being trained.
    pub variant: String,
    /// Epoch, from 1.
    pub epoch: u32,
    /// Optimizer steps taken so far in this stage.
    pub step: u64,
    /// `train` (running mean over the last interval) or `test` (end of epoch).
    pub split: String,
    /// Mean loss.
    pub loss: f64,
    /// Accuracy.
    pub accuracy: f64,
    /// Seconds since the stage's training began.
    pub elapsed_s: f64,
}

/// One timed inference: a row of `latency.parquet` (kept so later runs can be compared
/// with a statistical test rather than a single number).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencySample {
    /// Variant.
    pub variant: String,
    /// Backend (empty: libtorch, in older tables).
    #[serde(default)]
    pub backend: String,
    /// Images per inference.
    pub batch_size: u64,
    /// Iteration index.
    pub iter: u64,
    /// Wall-clock microseconds.
    pub micros: f64,
    /// Round of the timing plan it was taken in (from 0).
    #[serde(default)]
    pub round: u64,
}

/// Throughput at one batch size: a row of `throughput.parquet`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThroughputRow {
    /// Variant.
    pub variant: String,
    /// Backend (empty: libtorch, in older tables).
    #[serde(default)]
    pub backend: String,
    /// Images per inference.
    pub batch_size: u64,
    /// Timed repetitions.
    pub repeats: u64,
    /// Median milliseconds per batch.
    pub p50_ms: f64,
    /// 95% confidence interval of `p50_ms`, lower end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub p50_lo_ms: f64,
    /// Upper end.
    #[serde(default = "nan", with = "nan_as_null")]
    pub p50_hi_ms: f64,
    /// Images per second at the median.
    pub images_per_s: f64,
    /// Seconds the timed batches took, all together.
    #[serde(default)]
    pub duration_s: f64,
    /// `valid` or `invalid`.
    #[serde(default)]
    pub validity: String,
    /// Why it is invalid.
    #[serde(default)]
    pub invalid_reason: String,
}

/// One offered load of the `server` scenario: a row of `server.parquet`. Queries
/// arrive one image at a time at Poisson times at `rate_qps`; the server takes every
/// query waiting (up to `max_batch`) into one forward; a query's latency runs from its
/// scheduled arrival to the end of its batch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerRow {
    /// Variant.
    pub variant: String,
    /// Offered arrival rate, queries per second.
    pub rate_qps: f64,
    /// Queries answered.
    pub queries: u64,
    /// Seconds the load ran.
    pub duration_s: f64,
    /// Most queries batched into one forward.
    pub max_batch: u64,
    /// Mean queries per forward.
    pub mean_batch: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, milliseconds.
    pub p99_ms: f64,
    /// One-sided 95% upper bound of the true p99 (NaN under 299 queries).
    #[serde(with = "nan_as_null")]
    pub p99_bound_ms: f64,
    /// The p99 target.
    pub target_p99_ms: f64,
    /// `yes` when `p99_ms` met the target.
    pub meets: String,
    /// `yes` on the highest rate that met the target, the variant's server figure.
    pub best: String,
    /// `valid` or `invalid`.
    pub validity: String,
    /// Why it is invalid.
    pub invalid_reason: String,
}

/// One round of a timing plan and what the machine did meanwhile: a row of
/// `timing.parquet`, so an invalid figure can be traced to the rounds that made it so.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TimingRound {
    /// Stage that timed.
    pub stage: String,
    /// Repetition of the plan (from 0).
    pub repeat: u64,
    /// Round (from 0).
    pub round: u64,
    /// Attempt of this round (from 0; a retried round has more).
    pub attempt: u64,
    /// Wall seconds of the round.
    pub wall_s: f64,
    /// The timing thread's CPU time / wall time: below 1 when it was preempted.
    #[serde(with = "nan_as_null")]
    pub thread_cpu_ratio: f64,
    /// CPU time of other processes, as a fraction of all the machine's CPUs.
    #[serde(with = "nan_as_null")]
    pub others_cpu_share: f64,
    /// Time the hypervisor took from this machine's CPUs, as a fraction of them.
    #[serde(with = "nan_as_null")]
    pub steal_share: f64,
    /// Mean CPU clock, MHz, where readable.
    #[serde(with = "nan_as_null")]
    pub cpu_mhz: f64,
    /// `valid` or `invalid`.
    pub validity: String,
    /// Why it is invalid.
    pub invalid_reason: String,
}

/// One repetition of a timing plan (`--repeat`): a row of `repeats.parquet`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RepeatRow {
    /// Variant.
    pub variant: String,
    /// Backend (empty: libtorch, in older tables).
    pub backend: String,
    /// Repetition (from 0).
    pub repeat: u64,
    /// Images per forward.
    pub batch_size: u64,
    /// Median microseconds per forward in this repetition.
    pub p50_us: f64,
    /// 95% interval, lower end.
    #[serde(with = "nan_as_null")]
    pub p50_lo_us: f64,
    /// Upper end.
    #[serde(with = "nan_as_null")]
    pub p50_hi_us: f64,
    /// `valid` or `invalid`.
    pub validity: String,
}

/// One sample of the machine while a stage ran (about 10 per second): a row of
/// `system.parquet`. GPU columns are NaN (or 0, empty) when there is no GPU.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemSample {
    /// Stage that was running.
    pub stage: String,
    /// Seconds since the stage began.
    pub t_s: f64,
    /// This process's CPU use in percent of one core (200 = two cores busy).
    #[serde(with = "nan_as_null")]
    pub cpu_percent: f64,
    /// The whole machine's CPU use, 0-100.
    #[serde(with = "nan_as_null")]
    pub host_cpu_percent: f64,
    /// This process's resident memory.
    pub rss_bytes: u64,
    /// The GPU sampled (`cuda:0`), empty when none.
    pub gpu: String,
    /// GPU utilization in percent (NVML).
    #[serde(with = "nan_as_null")]
    pub gpu_util_percent: f64,
    /// GPU memory in use.
    pub gpu_mem_used_bytes: u64,
    /// GPU board power in watts.
    #[serde(with = "nan_as_null")]
    pub gpu_power_w: f64,
    /// GPU temperature in degrees Celsius.
    #[serde(with = "nan_as_null")]
    pub gpu_temp_c: f64,
    /// GPU SM clock in MHz.
    #[serde(with = "nan_as_null")]
    pub gpu_sm_clock_mhz: f64,
    /// GPU memory clock in MHz.
    #[serde(with = "nan_as_null")]
    pub gpu_mem_clock_mhz: f64,
    /// Energy used since the stage began, in joules (GPU counter, else CPU RAPL); NaN
    /// when the machine has no energy counter.
    #[serde(with = "nan_as_null")]
    pub energy_j: f64,
}

/// How one training run used its parallelism: a row of `parallel.parquet`, from
/// every `train` stage (so throughput can be charted against workers, replicas,
/// processes and pipeline stages).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ParallelRow {
    /// Stage that trained.
    pub stage: String,
    /// Variant trained.
    pub variant: String,
    /// Model trained (a key of `models:`): rows of one model on one device are
    /// compared with each other.
    pub model: String,
    /// `single`, `data-parallel` or `model-parallel`.
    pub strategy: String,
    /// `sync` or `async` for data-parallel, empty otherwise.
    pub mode: String,
    /// Device trained on (`cpu`, `cuda:0`).
    pub device: String,
    /// Loader workers preparing batches (0: on the training thread).
    pub workers: u32,
    /// Data-parallel replicas (async: workers of the parameter server); 1 otherwise.
    pub replicas: u32,
    /// Processes in the c10d group (1 unless launched).
    pub processes: u32,
    /// Model-parallel pipeline stages; 1 otherwise.
    pub pipeline_stages: u32,
    /// Micro-batches per batch in a model-parallel pipeline; 1 otherwise.
    pub micro_batches: u32,
    /// Global batch size.
    pub batch_size: u64,
    /// Epochs trained.
    pub epochs: u32,
    /// Training images processed (all epochs).
    pub images: u64,
    /// Seconds spent training (tests excluded).
    pub train_time_s: f64,
    /// `images / train_time_s`.
    pub images_per_s: f64,
    /// Fraction of the pipeline's stage-time slots left idle (model-parallel; NaN
    /// otherwise): measured from each stage's busy time, beside the GPipe schedule's
    /// ideal `(K-1)/(M+K-1)`.
    #[serde(with = "nan_as_null")]
    pub bubble_fraction: f64,
    /// The GPipe schedule's ideal bubble fraction `(K-1)/(M+K-1)`; NaN otherwise.
    #[serde(with = "nan_as_null")]
    pub ideal_bubble_fraction: f64,
    /// Test accuracy at the end.
    pub accuracy: f64,
    /// Mean training loss of the last epoch.
    pub final_loss: f64,
    /// Energy used while training, in joules; NaN when the machine has no counter.
    #[serde(with = "nan_as_null")]
    pub energy_j: f64,
}

/// One update a parameter server applied in asynchronous data-parallel training: a
/// row of `staleness.parquet`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StalenessRow {
    /// Stage that trained.
    pub stage: String,
    /// Variant trained.
    pub variant: String,
    /// The update's index (the server's version after it, from 1).
    pub update: u64,
    /// Worker that pushed it.
    pub worker: u32,
    /// Epoch, from 1.
    pub epoch: u32,
    /// Server versions applied between the worker's pull and this update.
    pub staleness: u64,
}

/// Everything a stage recorded.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Records {
    /// Metric rows (from `evaluate`).
    #[serde(default)]
    pub metrics: Vec<MetricRow>,
    /// Training curves.
    #[serde(default)]
    pub curves: Vec<CurvePoint>,
    /// Raw latency samples.
    #[serde(default)]
    pub latency: Vec<LatencySample>,
    /// Throughput by batch size.
    #[serde(default)]
    pub throughput: Vec<ThroughputRow>,
    /// Compressed variants timed beside their baselines.
    #[serde(default)]
    pub speedup: Vec<SpeedupRow>,
    /// Samples of the machine while the stage ran.
    #[serde(default)]
    pub system: Vec<SystemSample>,
    /// How training used its parallelism (from `train`).
    #[serde(default)]
    pub parallel: Vec<ParallelRow>,
    /// Async data-parallel updates and their staleness.
    #[serde(default)]
    pub staleness: Vec<StalenessRow>,
    /// The server scenario's offered loads (from `evaluate`).
    #[serde(default)]
    pub server: Vec<ServerRow>,
    /// Timing rounds and the machine during each (from `evaluate`).
    #[serde(default)]
    pub timing: Vec<TimingRound>,
    /// Per-repetition medians (from `evaluate` with `--repeat`).
    #[serde(default)]
    pub repeats: Vec<RepeatRow>,
}

impl Records {
    /// Append another stage's records.
    pub fn extend(&mut self, other: &Records) {
        self.metrics.extend(other.metrics.iter().cloned());
        self.curves.extend(other.curves.iter().cloned());
        self.latency.extend(other.latency.iter().cloned());
        self.throughput.extend(other.throughput.iter().cloned());
        self.speedup.extend(other.speedup.iter().cloned());
        self.system.extend(other.system.iter().cloned());
        self.parallel.extend(other.parallel.iter().cloned());
        self.staleness.extend(other.staleness.iter().cloned());
        self.server.extend(other.server.iter().cloned());
        self.timing.extend(other.timing.iter().cloned());
        self.repeats.extend(other.repeats.iter().cloned());
    }
}

/// JSON has no NaN: serde_json writes it as `null`, which a plain `f64` then refuses to
/// read back (and a cached stage whose records cannot be read is run again). NaN means
/// "not measured" in these records, so it round-trips as `null`.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() { s.serialize_none() } else { s.serialize_f64(*v) }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// Percentile (0..=100) of unsorted samples by linear interpolation; NaN when empty.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = (p / 100.0).clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::{MetricRow, Pace, faster_verdict, is_faster, percentile};

    /// A cached stage's records are read back from JSON; a NaN ("not checked") must
    /// survive that, or the stage would never be found in the cache.
    #[test]
    fn unmeasured_speedups_survive_json() {
        let row = MetricRow { speedup_b1: f64::NAN, speedup_large: 2.5, ..Default::default() };
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains("\"speedup_b1\":null"), "{json}");
        let back: MetricRow = serde_json::from_str(&json).unwrap();
        assert!(back.speedup_b1.is_nan());
        assert_eq!(back.speedup_large, 2.5);
    }

    #[test]
    fn faster_needs_the_threshold_at_each_batch_size() {
        assert!(is_faster(1.05) && is_faster(3.0));
        assert!(!is_faster(1.04) && !is_faster(0.5) && !is_faster(f64::NAN) && !is_faster(f64::INFINITY));
        let pace = |s: f64| Pace::of(s, f64::NAN, f64::NAN);
        assert_eq!(faster_verdict(pace(1.2), pace(1.5)), "yes");
        assert_eq!(faster_verdict(pace(1.02), pace(1.5)), "large batch only");
        assert_eq!(faster_verdict(pace(1.5), pace(0.9)), "batch 1 only");
        assert_eq!(faster_verdict(pace(1.03), pace(1.04)), "same within noise");
        assert_eq!(faster_verdict(pace(0.5), pace(0.7)), "no");
        assert_eq!(faster_verdict(pace(0.5), pace(1.0)), "no");
        // Only batch 1 measured: batch 1 decides.
        assert_eq!(faster_verdict(pace(1.5), Pace::Unknown), "yes");
        assert_eq!(faster_verdict(pace(1.0), Pace::Unknown), "same within noise");
        assert_eq!(faster_verdict(Pace::Unknown, Pace::Unknown), "");
    }

    #[test]
    fn a_speedup_whose_interval_holds_one_is_noise() {
        // 8% faster on the point value, but the interval reaches below 1.
        assert_eq!(Pace::of(1.08, 0.97, 1.2), Pace::Same);
        assert_eq!(Pace::of(1.08, 1.02, 1.12), Pace::Faster);
        // An interval above 1 but a gain under 5% is still not called faster.
        assert_eq!(Pace::of(1.03, 1.01, 1.05), Pace::Same);
        assert_eq!(Pace::of(0.8, 0.75, 0.85), Pace::Slower);
        assert_eq!(Pace::of(0.8, 0.7, 1.01), Pace::Same);
        assert_eq!(Pace::of(f64::NAN, 1.0, 1.0), Pace::Unknown);
        assert_eq!(Pace::Same.as_str(), "same within noise");
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 3.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 5.0);
        assert_eq!(percentile(&v, 25.0), 2.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
