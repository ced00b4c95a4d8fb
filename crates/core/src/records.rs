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
    /// Timed batch-1 inferences.
    pub latency_iters: u64,
    /// Untimed warm-up inferences before them.
    pub latency_warmup: u64,
    /// libtorch intra-op threads during the measurement.
    pub threads: u64,
    /// Images per second at `batch_size` (the largest measured).
    pub throughput_ips: f64,
    /// Batch size of `throughput_ips`.
    pub batch_size: u64,
    /// Size of the saved model file.
    pub file_size_bytes: u64,
    /// Parameters (weights and biases).
    pub params: u64,
    /// Parameters that are not zero.
    pub nonzero_params: u64,
    /// Peak resident memory of the process while this variant was evaluated.
    pub peak_rss_bytes: u64,
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
    /// The same at `batch_size` (the largest measured).
    #[serde(with = "nan_as_null")]
    pub speedup_large: f64,
    /// Whether it is really faster than its baseline ([`MIN_SPEEDUP`] or more): `yes`,
    /// `no`, `batch 1 only`, `large batch only`; empty when not checked.
    pub faster: String,
    /// Joules per 1,000 batch-1 inferences while its latency was timed, from the
    /// device's energy counter (NVML on a GPU, RAPL on a CPU where readable); NaN when
    /// the machine has no counter.
    #[serde(default = "nan", with = "nan_as_null")]
    pub energy_per_1k_inferences_j: f64,
    /// Joules per training epoch of the stage that produced it; NaN when unknown.
    #[serde(default = "nan", with = "nan_as_null")]
    pub train_energy_per_epoch_j: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// A speedup below this is "not faster": repeated timings of one model on a shared CPU
/// differ by a few percent, so 5% is the least we call a real gain.
pub const MIN_SPEEDUP: f64 = 1.05;

/// Whether a speedup (baseline time / variant time) is a real gain.
pub fn is_faster(speedup: f64) -> bool {
    speedup.is_finite() && speedup >= MIN_SPEEDUP
}

/// The `faster` verdict of a variant from its speedups at batch 1 and at a large batch
/// (`NaN` for a batch size that was not measured).
pub fn faster_verdict(b1: f64, large: f64) -> &'static str {
    match (is_faster(b1), is_faster(large) || (large.is_nan() && is_faster(b1))) {
        (true, true) => "yes",
        (true, false) => "batch 1 only",
        (false, true) if !large.is_nan() => "large batch only",
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
    /// Images per second at the median.
    pub images_per_s: f64,
    /// Size of the form's model file.
    pub file_bytes: u64,
    /// Baseline p50 / this form's p50 (1 for the baseline row).
    pub speedup: f64,
    /// `yes` or `no` ([`MIN_SPEEDUP`] or more); empty on the baseline row.
    pub faster: String,
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
    /// Images per inference.
    pub batch_size: u64,
    /// Iteration index.
    pub iter: u64,
    /// Wall-clock microseconds.
    pub micros: f64,
}

/// Throughput at one batch size: a row of `throughput.parquet`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThroughputRow {
    /// Variant.
    pub variant: String,
    /// Images per inference.
    pub batch_size: u64,
    /// Timed repetitions.
    pub repeats: u64,
    /// Median milliseconds per batch.
    pub p50_ms: f64,
    /// Images per second at the median.
    pub images_per_s: f64,
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
    use super::{MetricRow, faster_verdict, is_faster, percentile};

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
        assert_eq!(faster_verdict(1.2, 1.5), "yes");
        assert_eq!(faster_verdict(1.02, 1.5), "large batch only");
        assert_eq!(faster_verdict(1.5, 0.9), "batch 1 only");
        assert_eq!(faster_verdict(1.03, 1.04), "no");
        // Only batch 1 measured: batch 1 decides.
        assert_eq!(faster_verdict(1.5, f64::NAN), "yes");
        assert_eq!(faster_verdict(1.0, f64::NAN), "no");
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
