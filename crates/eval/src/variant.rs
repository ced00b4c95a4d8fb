//! Evaluate one saved model variant into a metrics row.

use std::path::Path;

use slimbench_core::artifact::{Kernel, ModelMeta, Precision};
use slimbench_core::cancel::Cancelled;
use slimbench_core::config::{ComputeMode, EvaluateParams};
use slimbench_core::progress::Progress;
use slimbench_core::records::{LatencySample, MetricRow, ThroughputRow};
use slimbench_data::Split;
use slimbench_models::runtime::device_name;
use slimbench_models::{Model, ModelError, store};
use tch::{Device, Kind};

use crate::{accuracy, latency};

/// Why a variant could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model file could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model cannot compute the way it was asked to.
    #[error("variant `{variant}`: {msg}")]
    Compute {
        /// Variant.
        variant: String,
        /// Why.
        msg: String,
    },
    /// Ctrl-C.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
}

/// What to evaluate.
#[derive(Debug)]
pub struct VariantEval<'a> {
    /// Variant name.
    pub name: &'a str,
    /// Stage that produced it.
    pub stage: &'a str,
    /// Its model file.
    pub file: &'a Path,
    /// Test split of its dataset.
    pub test: &'a Split,
    /// Evaluation settings.
    pub params: &'a EvaluateParams,
    /// Where to run.
    pub device: Device,
    /// Training seconds spent producing it.
    pub train_time_s: f64,
    /// Joules per epoch of the training that produced it, where measured.
    pub train_energy_per_epoch_j: Option<f64>,
}

/// A variant's metrics row and raw timings.
#[derive(Debug, Clone)]
pub struct VariantResult {
    /// The metrics row.
    pub row: MetricRow,
    /// Every timed batch-1 inference.
    pub latency: Vec<LatencySample>,
    /// Throughput per batch size.
    pub throughput: Vec<ThroughputRow>,
}

/// A model file loaded the way evaluation computes with it.
pub struct Loaded {
    /// The model, packed onto its kernel or upcast as decided.
    pub model: Model,
    /// Its metadata, as stored.
    pub meta: ModelMeta,
    /// What its arithmetic runs in (the metrics table's `compute_precision`).
    pub compute_precision: String,
    /// Remarks on how it computes (packed layers, upcasts).
    pub notes: Vec<String>,
}

/// Load `file` for evaluation: put it on its kernel (or on `kernel`, which overrides
/// it): fbgemm's int8/fp16 linear kernels or its static int8 chain on the CPU, fake
/// quantization, or CUDA's autocast and low-precision matmuls; and decide the
/// arithmetic precision (a half-precision model is upcast on CPUs unless `compute:
/// native`). A `Some(Dense)` override on a file stored in reduced precision always
/// computes in fp32: dequantized weights, as weight-only fake quantization does.
/// `name` names the variant in errors; `probe` is a split to try one forward on when
/// libtorch might lack the precision.
pub fn load_for_eval(
    name: &str,
    file: &Path,
    kernel: Option<Kernel>,
    device: Device,
    probe: &Split,
) -> Result<Loaded, EvalError> {
    let (mut model, meta) = store::load(file, device)?;
    let stored = meta.precision;
    let kernel = kernel.unwrap_or(meta.kernel);
    let fake_quant = kernel == Kernel::Dense && meta.kernel != Kernel::Dense;
    let mut notes = Vec::new();
    let refuse = |msg: String| EvalError::Compute { variant: name.to_string(), msg };

    // Any kernel but the dense one: fp32 weights handed to it.
    let packed = kernel.compute_precision();
    if packed.is_some() {
        if kernel.cpu_only() && device != Device::Cpu {
            return Err(refuse(format!(
                "{} runs on fbgemm, a CPU library; evaluate it with `device: cpu`",
                meta.technique
            )));
        }
        if kernel.cuda_only() && !device.is_cuda() {
            return Err(refuse(format!(
                "{} runs on {}, a CUDA kernel; evaluate it with `device: cuda`",
                meta.technique,
                kernel.describe()
            )));
        }
        model.set_kind(Kind::Float);
        let n = model.set_kernel(kernel, &meta)?;
        let what = if kernel.linear_only() { "linear layer(s)" } else { "layer(s)" };
        notes.push(format!("{n} {what} on {}", kernel.describe()));
        if !meta.fp32_layers.is_empty() && kernel != Kernel::FakeQuant {
            notes.push(format!("kept in fp32: {}", meta.fp32_layers.join(", ")));
        }
    }
    // Decide the arithmetic precision; say so when it differs from the storage.
    let upcast = packed.is_none()
        && stored != Precision::Fp32
        && (fake_quant
            || match meta.compute {
                ComputeMode::Upcast => true,
                ComputeMode::Native => false,
                ComputeMode::Auto => device == Device::Cpu,
            });
    let compute_precision = if let Some(p) = packed {
        p.to_string()
    } else if upcast {
        model.set_kind(Kind::Float);
        notes.push(format!(
            "weights stored in {0}, upcast to fp32 at load: compute ran in fp32{1}",
            stored.as_str(),
            if fake_quant {
                " (the fake-quantized form)"
            } else if meta.compute == ComputeMode::Auto {
                " (CPUs lack native half-precision arithmetic; set compute: native to force it)"
            } else {
                ""
            }
        ));
        "fp32 (upcast)".to_string()
    } else {
        stored.as_str().to_string()
    };
    if packed.is_none() && !upcast && stored != Precision::Fp32 {
        // libtorch panics (rather than erroring) when a kernel lacks this precision on
        // this device; probe once so the failure is a message, not a crash.
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = tch::no_grad_guard();
            let x = crate::images_tensor(probe, 0, 1, device, model.kind());
            let _ = model.forward(&x);
        }));
        if let Err(e) = probe {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(EvalError::Compute {
                variant: name.to_string(),
                msg: format!(
                    "libtorch cannot compute in {} on {}: {}; use `compute: upcast`",
                    stored.as_str(),
                    device_name(device),
                    msg.lines().next().unwrap_or("")
                ),
            });
        }
    }
    Ok(Loaded { model, meta, compute_precision, notes })
}

/// Load, measure and describe one variant.
pub fn evaluate_variant(v: &VariantEval<'_>, progress: &dyn Progress) -> Result<VariantResult, EvalError> {
    let rss_reset = slimbench_metrics::reset_peak_rss();
    let rss_before = slimbench_metrics::current_rss_bytes().unwrap_or(0);
    let Loaded { model, meta, compute_precision, notes } =
        load_for_eval(v.name, v.file, None, v.device, v.test)?;
    let stored = meta.precision;

    let acc = accuracy::accuracy(&model, v.test, v.params.batch_size);
    let lp = &v.params.latency;
    let iters = lp.iters.unwrap_or(v.test.len());
    // Energy of the batch-1 inferences (warm-up included, and counted), from the
    // device's counter; none on machines without one.
    let meter = slimbench_metrics::EnergyMeter::start(slimbench_models::runtime::gpu_index(v.device));
    let lat = latency::batch1(&model, v.test, lp.warmup, iters, progress)?;
    let inferences = (lat.samples_us.len() + lat.warmup) as f64;
    let energy_per_1k = meter.joules().map_or(f64::NAN, |j| j / inferences * 1000.0);
    let mut throughput = Vec::new();
    for &b in &lp.batch_sizes {
        let t = latency::throughput(&model, v.test, b, lp.repeats)?;
        throughput.push(ThroughputRow {
            variant: v.name.to_string(),
            batch_size: b as u64,
            repeats: t.samples_ms.len() as u64,
            p50_ms: t.p50_ms,
            images_per_s: t.images_per_s,
            ..Default::default()
        });
    }
    let headline = throughput.iter().max_by_key(|t| t.batch_size).cloned().unwrap_or_default();
    let peak_rss_bytes = if rss_reset {
        slimbench_metrics::peak_rss_bytes().unwrap_or(0)
    } else {
        // Without a resettable high-water mark, the best we can say is "at least now".
        slimbench_metrics::current_rss_bytes().unwrap_or(rss_before).max(rss_before)
    };
    let row = MetricRow {
        variant: v.name.to_string(),
        stage: v.stage.to_string(),
        technique: meta.technique.clone(),
        model: meta.model.clone(),
        model_kind: {
            use slimbench_core::config::KindSet;
            meta.config.kind().to_string()
        },
        dataset: meta.dataset.clone(),
        device: device_name(v.device),
        precision: stored.as_str().to_string(),
        compute_precision,
        sparsity: model.sparsity(),
        accuracy: acc.accuracy,
        test_images: acc.n as u64,
        latency_p50_us: lat.p50_us,
        latency_p90_us: lat.p90_us,
        latency_p99_us: lat.p99_us,
        latency_mean_us: lat.mean_us,
        latency_iters: lat.samples_us.len() as u64,
        latency_warmup: lat.warmup as u64,
        threads: tch::get_num_threads() as u64,
        throughput_ips: headline.images_per_s,
        batch_size: headline.batch_size,
        file_size_bytes: std::fs::metadata(v.file).map(|m| m.len()).unwrap_or(0),
        params: model.param_count(),
        nonzero_params: model.nonzero_count(),
        mem_peak_b1_bytes: peak_rss_bytes,
        train_time_s: v.train_time_s,
        notes: notes.join("; "),
        // Filled in by the speedup check, for variants with a baseline beside them.
        speedup_b1: f64::NAN,
        speedup_large: f64::NAN,
        faster: String::new(),
        energy_per_1k_inferences_j: energy_per_1k,
        train_energy_per_epoch_j: v.train_energy_per_epoch_j.unwrap_or(f64::NAN),
        ..Default::default()
    };
    let latency = lat
        .samples_us
        .iter()
        .enumerate()
        .map(|(i, &us)| LatencySample {
            variant: v.name.to_string(),
            batch_size: 1,
            iter: i as u64,
            micros: us,
            round: 0,
        })
        .collect();
    Ok(VariantResult { row, latency, throughput })
}
