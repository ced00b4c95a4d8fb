//! Does a compressed variant really run faster than the model it came from?
//!
//! Masks and fake quantization shrink nothing at run time, so a variant is timed in
//! up to three forms beside its baseline: the baseline itself, the *simulated* form
//! (the original shape and arithmetic with the compression's zeros or rounding in it)
//! and the *materialized* form (the variant as stored: smaller layers, int8 kernels).
//!
//! Timings drift on a shared CPU (turbo, other processes), so the forms are timed in
//! interleaved rounds in one process on the same threads: each round times every form
//! at batch 1 and at every configured batch size, in a rotating order, and the medians are
//! taken over all rounds. Batch-1 and batched timings reuse [`crate::latency`]. A form
//! is "faster" when its speedup reaches [`MIN_SPEEDUP`].

use std::path::Path;

use slimbench_core::artifact::{Kernel, ModelMeta, Precision};
use slimbench_core::config::LatencyParams;
use slimbench_core::progress::{NoProgress, Progress};
use slimbench_core::records::{MIN_SPEEDUP, SpeedupRow, is_faster, percentile};
use slimbench_data::Split;
use tch::Device;

use crate::latency;
use crate::variant::{EvalError, Loaded, load_for_eval};

/// Interleaved rounds; each times every form `iters / ROUNDS` times at batch 1.
pub const ROUNDS: usize = 10;

/// Which form of a compressed variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The model it was compressed from.
    Baseline,
    /// The compression simulated in the original shape and arithmetic.
    Simulated,
    /// The variant as stored: what is physically smaller or on faster kernels.
    Materialized,
}

impl Form {
    /// Its name in the `form` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Baseline => "baseline",
            Form::Simulated => "simulated",
            Form::Materialized => "materialized",
        }
    }
}

/// One model file to time, and how to load it.
#[derive(Debug, Clone)]
pub struct FormSpec<'a> {
    /// Which form it is.
    pub form: Form,
    /// Its model file.
    pub file: &'a Path,
    /// A kernel overriding the file's own (the simulated form of an int8 file).
    pub kernel: Option<Kernel>,
    /// What it is, for the report.
    pub what: String,
}

/// A compressed variant and its forms (the baseline first).
#[derive(Debug)]
pub struct SpeedupCheck<'a> {
    /// The compressed variant's name.
    pub variant: &'a str,
    /// Its baseline's name.
    pub baseline: &'a str,
    /// The forms to time; exactly one must be the baseline.
    pub forms: Vec<FormSpec<'a>>,
    /// Test split the inputs come from.
    pub test: &'a Split,
    /// Warm-up, iterations and batch sizes (batch 1 and every one of them are timed;
    /// the verdict reads batch 1 and the largest).
    pub latency: &'a LatencyParams,
    /// Where to run.
    pub device: Device,
}

/// Medians of one form at one batch size.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Timing {
    samples: usize,
    p50_us: f64,
}

/// Time every form of `check` side by side; one row per form and batch size, with the
/// reasons it is or is not faster (see [`reasons`]) on every non-baseline row.
pub fn check_speedup(check: &SpeedupCheck<'_>) -> Result<Vec<SpeedupRow>, EvalError> {
    let base_idx =
        check.forms.iter().position(|f| f.form == Form::Baseline).ok_or_else(|| EvalError::Compute {
            variant: check.variant.to_string(),
            msg: "speedup check without a baseline".into(),
        })?;
    let loaded = check
        .forms
        .iter()
        .map(|f| load_for_eval(check.variant, f.file, f.kernel, check.device, check.test))
        .collect::<Result<Vec<Loaded>, _>>()?;
    let lp = check.latency;
    // Batch 1 and every configured batch size, smallest first.
    let mut batches: Vec<usize> = std::iter::once(1).chain(lp.batch_sizes.iter().copied()).collect();
    batches.sort_unstable();
    batches.dedup();
    let large = *batches.last().expect("batch 1 is always there");
    let iters = lp.iters.unwrap_or(check.test.len()).max(1);
    let rounds = ROUNDS.min(iters).min(lp.repeats.max(1)).max(1);
    let per_round_b1 = iters.div_ceil(rounds);
    let per_round_large = lp.repeats.div_ceil(rounds).max(1);
    let warmup = lp.warmup.div_ceil(rounds);

    // samples[form][batch]
    let mut samples: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); batches.len()]; loaded.len()];
    for round in 0..rounds {
        // Rotate the order so no form always runs right after another's cache traffic.
        for k in 0..loaded.len() {
            let i = (k + round) % loaded.len();
            let model = &loaded[i].model;
            for (j, &b) in batches.iter().enumerate() {
                if b == 1 {
                    let lat = latency::batch1(
                        model,
                        check.test,
                        warmup,
                        per_round_b1,
                        &NoProgress as &dyn Progress,
                    )?;
                    samples[i][j].extend(lat.samples_us);
                } else {
                    let t = latency::throughput(model, check.test, b, per_round_large)?;
                    samples[i][j].extend(t.samples_ms.iter().map(|ms| ms * 1e3));
                }
            }
        }
    }
    let timings: Vec<Vec<Timing>> = samples
        .iter()
        .map(|per_batch| {
            per_batch.iter().map(|s| Timing { samples: s.len(), p50_us: percentile(s, 50.0) }).collect()
        })
        .collect();

    let speedup = |i: usize, j: usize| timings[base_idx][j].p50_us / timings[i][j].p50_us;
    // The variant as stored: materialized where it exists, otherwise its simulated form.
    let stored = check
        .forms
        .iter()
        .position(|f| f.form == Form::Materialized)
        .or_else(|| check.forms.iter().position(|f| f.form == Form::Simulated))
        .unwrap_or(base_idx);
    let large_speedup = if batches.len() > 1 { speedup(stored, batches.len() - 1) } else { f64::NAN };
    let why = reasons(&Evidence {
        variant: &loaded[stored].meta,
        variant_compute: &loaded[stored].compute_precision,
        variant_params: loaded[stored].model.param_count(),
        baseline: &loaded[base_idx].meta,
        baseline_params: loaded[base_idx].model.param_count(),
        convs: conv_count(&loaded[stored].model),
        conv_shapes: loaded[stored]
            .model
            .convs()
            .iter()
            .map(|c| (c.name().to_string(), c.weight().size()[1] * c.geometry().groups, c.weight().size()[0]))
            .collect(),
        materialized: check.forms.iter().any(|f| f.form == Form::Materialized),
        speedup_b1: speedup(stored, 0),
        speedup_large: large_speedup,
        large,
    })
    .join("; ");

    let mut rows = Vec::new();
    for (i, f) in check.forms.iter().enumerate() {
        let file_bytes = std::fs::metadata(f.file).map(|m| m.len()).unwrap_or(0);
        for (j, &b) in batches.iter().enumerate() {
            let t = timings[i][j];
            let s = speedup(i, j);
            let is_base = f.form == Form::Baseline;
            rows.push(SpeedupRow {
                variant: check.variant.to_string(),
                baseline: check.baseline.to_string(),
                form: f.form.as_str().to_string(),
                what: f.what.clone(),
                batch_size: b as u64,
                samples: t.samples as u64,
                p50_us: t.p50_us,
                images_per_s: b as f64 / (t.p50_us / 1e6),
                file_bytes,
                speedup: s,
                faster: if is_base {
                    String::new()
                } else {
                    if is_faster(s) { "yes" } else { "no" }.to_string()
                },
                why: if is_base { String::new() } else { why.clone() },
                ..Default::default()
            });
        }
    }
    Ok(rows)
}

fn conv_count(model: &slimbench_models::Model) -> usize {
    model.named().iter().filter(|(n, t)| n.ends_with(".weight") && t.dim() == 4).count()
}

/// Convolutions with at most this many input x output channels count as small.
const SMALL_CONV: i64 = 256;

/// Whether this CPU has int8 dot-product instructions (AVX-512 VNNI or AVX-VNNI),
/// which fbgemm's int8 kernels use.
fn cpu_has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni") || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What is known about a variant and its baseline, for [`reasons`].
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// The variant's metadata (its stored form).
    pub variant: &'a ModelMeta,
    /// What its arithmetic ran in (`fp32 (upcast)`, `int8 (fbgemm, dynamic)`, ...).
    pub variant_compute: &'a str,
    /// Its parameters.
    pub variant_params: u64,
    /// The baseline's metadata.
    pub baseline: &'a ModelMeta,
    /// The baseline's parameters.
    pub baseline_params: u64,
    /// Convolutions in the variant.
    pub convs: usize,
    /// Each convolution's name, input and output channels.
    pub conv_shapes: Vec<(String, i64, i64)>,
    /// Whether a materialized form exists (else the stored model is the simulated one).
    pub materialized: bool,
    /// Speedup of the stored variant at batch 1.
    pub speedup_b1: f64,
    /// Speedup at the large batch size (NaN when only batch 1 was timed).
    pub speedup_large: f64,
    /// The large batch size.
    pub large: usize,
}

/// Why a variant is (or is not) faster than its baseline, in short phrases drawn from
/// its kernel, precision, technique and the measured speedups.
pub fn reasons(e: &Evidence<'_>) -> Vec<String> {
    let mut why = Vec::new();
    let v = e.variant;
    if !e.materialized {
        why.push(if v.sparsity > 0.0 {
            format!(
                "no materialized form: unstructured zeros ({:.0}% of the weights) are still multiplied by dense kernels",
                v.sparsity * 100.0
            )
        } else {
            "no materialized form: the stored model computes like its simulated form".to_string()
        });
    }
    if v.kernel != Kernel::Dense {
        if e.convs > 0 && v.kernel.linear_only() {
            why.push(format!(
                "{} convolution(s) kept in fp32: only the linear layers run on {}",
                e.convs,
                v.kernel.describe()
            ));
        }
        if !v.fp32_layers.is_empty() {
            why.push(format!(
                "{} layer(s) kept in fp32 by the accuracy-aware search: {}",
                v.fp32_layers.len(),
                v.fp32_layers.join(", ")
            ));
        }
        match v.kernel {
            Kernel::Int8Dynamic => {
                why.push("dynamic quantization measures and quantizes the activations on every call".into())
            }
            Kernel::Fp16Dynamic => {
                why.push("fbgemm's fp16 kernel halves the weights but still computes in fp32".into())
            }
            Kernel::Int8Static => {
                if !is_faster(e.speedup_b1) {
                    why.push(
                        "static int8 quantizes the input, reorders activations into fbgemm's channels-last \
                         layout and dequantizes the logits on every call: a fixed cost batch 1 feels most"
                            .into(),
                    );
                }
                let small: Vec<String> = e
                    .conv_shapes
                    .iter()
                    .filter(|(_, i, o)| i * o <= SMALL_CONV)
                    .map(|(n, i, o)| format!("{n} {i}->{o}"))
                    .collect();
                let faster_both = is_faster(e.speedup_large) && is_faster(e.speedup_b1);
                if !small.is_empty() && !faster_both {
                    why.push(format!(
                        "fbgemm's int8 convolutions gain little or lose against oneDNN's fp32 ones with few \
                         channels ({}){}",
                        small.join(", "),
                        if cpu_has_vnni() { "" } else { " on a CPU without VNNI (int8 dot-product instructions)" }
                    ));
                }
            }
            Kernel::Int8Mm | Kernel::Fp8 => why.push(
                "activations are quantized on every call, and small matmuls are padded to the kernel's tile sizes"
                    .into(),
            ),
            Kernel::AmpBf16 | Kernel::AmpFp16 => {
                why.push("autocast casts weights and activations on every call; small layers gain little".into())
            }
            Kernel::Dense | Kernel::FakeQuant => {}
        }
    } else if v.precision != Precision::Fp32 && e.variant_compute.contains("upcast") {
        why.push(format!(
            "{} weights upcast to fp32 on the CPU: the same fp32 arithmetic as the baseline",
            v.precision.as_str()
        ));
    }
    if v.technique.starts_with("distill") && v.config != e.baseline.config {
        why.push(format!(
            "a smaller student, not a compressed form of its teacher ({} parameters against {})",
            e.variant_params, e.baseline_params
        ));
    } else if e.variant_params < e.baseline_params {
        why.push(format!("parameters {} -> {}", e.baseline_params, e.variant_params));
    }
    match (is_faster(e.speedup_b1), is_faster(e.speedup_large)) {
        (false, true) => why.push(format!(
            "faster at batch {} only: at batch 1 the fixed cost of each call outweighs the arithmetic saved",
            e.large
        )),
        (true, false) if !e.speedup_large.is_nan() => {
            why.push(format!("faster at batch 1 only: at batch {} the saving does not hold", e.large))
        }
        (false, false) if why.is_empty() => why
            .push(format!("nothing known to make it faster: below {MIN_SPEEDUP:.2}x is within timing noise")),
        _ => {}
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};

    fn meta(technique: &str, precision: Precision, kernel: Kernel, sparsity: f64) -> ModelMeta {
        ModelMeta {
            precision,
            sparsity,
            kernel,
            ..ModelMeta::new(
                "seed",
                ModelConfig::SeedCnn(SeedCnnConfig::default()),
                IoShape { channels: 1, height: 28, width: 28, classes: 10 },
                "mnist",
                technique,
            )
        }
    }

    fn evidence<'a>(v: &'a ModelMeta, base: &'a ModelMeta, compute: &'a str) -> Evidence<'a> {
        Evidence {
            variant: v,
            variant_compute: compute,
            variant_params: 20_410,
            baseline: base,
            baseline_params: 20_410,
            convs: 1,
            conv_shapes: vec![("conv".into(), 1, 12)],
            materialized: true,
            speedup_b1: 1.0,
            speedup_large: 1.0,
            large: 256,
        }
    }

    #[test]
    fn reasons_name_what_keeps_a_variant_slow() {
        let base = meta("baseline", Precision::Fp32, Kernel::Dense, 0.0);
        let sparse = meta("prune-magnitude", Precision::Fp32, Kernel::Dense, 0.94);
        let why = reasons(&Evidence { materialized: false, ..evidence(&sparse, &base, "fp32") }).join("; ");
        assert!(
            why.contains("unstructured zeros (94% of the weights) are still multiplied by dense kernels"),
            "{why}"
        );

        let int8 = meta("int8-dynamic", Precision::Int8, Kernel::Int8Dynamic, 0.0);
        let why = reasons(&evidence(&int8, &base, "int8 (fbgemm, dynamic)")).join("; ");
        assert!(why.contains("1 convolution(s) kept in fp32"), "{why}");
        assert!(why.contains("activations on every call"), "{why}");

        let fp16 = meta("fp16", Precision::Fp16, Kernel::Dense, 0.0);
        let why = reasons(&evidence(&fp16, &base, "fp32 (upcast)")).join("; ");
        assert!(why.contains("fp16 weights upcast to fp32 on the CPU"), "{why}");

        let mut student = meta("distill-response", Precision::Fp32, Kernel::Dense, 0.0);
        student.config = ModelConfig::SeedCnn(SeedCnnConfig { filters: 4 });
        let why =
            reasons(&Evidence { variant_params: 7_000, ..evidence(&student, &base, "fp32") }).join("; ");
        assert!(why.contains(
            "a smaller student, not a compressed form of its teacher (7000 parameters against 20410)"
        ));
    }

    #[test]
    fn reasons_follow_the_measured_speedups() {
        let base = meta("baseline", Precision::Fp32, Kernel::Dense, 0.0);
        let small = meta("prune-structured", Precision::Fp32, Kernel::Dense, 0.0);
        let e = Evidence {
            variant_params: 10_000,
            speedup_b1: 1.01,
            speedup_large: 1.9,
            ..evidence(&small, &base, "fp32")
        };
        let why = reasons(&e);
        assert_eq!(why[0], "parameters 20410 -> 10000");
        assert!(why[1].starts_with("faster at batch 256 only"), "{why:?}");
        let e = Evidence { speedup_b1: 1.5, speedup_large: 1.6, ..e };
        assert_eq!(reasons(&e), ["parameters 20410 -> 10000"]);
        let same = meta("baseline", Precision::Fp32, Kernel::Dense, 0.0);
        let why = reasons(&evidence(&same, &base, "fp32"));
        assert!(why[0].contains("within timing noise"), "{why:?}");
    }
}

#[cfg(test)]
mod timing_tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};
    use slimbench_models::Model;
    use slimbench_models::store::{self, Encoding};

    fn split(n: usize) -> Split {
        Split {
            images: (0..n * 784).map(|i| (i % 251) as u8).collect(),
            labels: vec![0; n],
            channels: 1,
            rows: 28,
            cols: 28,
            normalize: None,
        }
    }

    fn save(
        dir: &Path,
        file: &str,
        filters: i64,
        precision: Precision,
        kernel: Kernel,
    ) -> std::path::PathBuf {
        let config = ModelConfig::SeedCnn(SeedCnnConfig { filters });
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let m = Model::build("seed", &config, io, Device::Cpu, Some(1)).unwrap();
        let meta = ModelMeta { precision, kernel, ..ModelMeta::new("seed", config, io, "d", "t") };
        let path = dir.join(file);
        store::save(&m, &meta, &path, Encoding::Dense).unwrap();
        path
    }

    #[test]
    fn every_form_is_timed_at_every_batch_size() {
        let dir = tempfile::tempdir().unwrap();
        let base = save(dir.path(), "base.safetensors", 12, Precision::Fp32, Kernel::Dense);
        let int8 = save(dir.path(), "int8.safetensors", 12, Precision::Int8, Kernel::Int8Dynamic);
        let test = split(20);
        let lp = LatencyParams { warmup: 2, iters: Some(40), batch_sizes: vec![1, 8, 32], repeats: 4 };
        let form = |form, file, kernel| FormSpec { form, file, kernel, what: format!("{form:?}") };
        let rows = check_speedup(&SpeedupCheck {
            variant: "int8",
            baseline: "base",
            forms: vec![
                form(Form::Baseline, &base, None),
                form(Form::Simulated, &int8, Some(Kernel::Dense)),
                form(Form::Materialized, &int8, None),
            ],
            test: &test,
            latency: &lp,
            device: Device::Cpu,
        })
        .unwrap();
        let keys: Vec<(&str, u64)> = rows.iter().map(|r| (r.form.as_str(), r.batch_size)).collect();
        assert_eq!(
            keys,
            [
                ("baseline", 1),
                ("baseline", 8),
                ("baseline", 32),
                ("simulated", 1),
                ("simulated", 8),
                ("simulated", 32),
                ("materialized", 1),
                ("materialized", 8),
                ("materialized", 32)
            ]
        );
        for r in &rows {
            let expected = std::fs::metadata(if r.form == "baseline" { &base } else { &int8 }).unwrap().len();
            assert_eq!(r.file_bytes, expected);
            assert!(r.p50_us > 0.0 && r.images_per_s > 0.0);
            // 4 rounds (limited by the repeats): 10 batch-1 and 1 batched timing each.
            assert_eq!(r.samples, if r.batch_size == 1 { 40 } else { 4 });
            assert!((r.images_per_s - r.batch_size as f64 * 1e6 / r.p50_us).abs() < 1e-6);
            if r.form == "baseline" {
                assert_eq!((r.speedup, r.faster.as_str(), r.why.as_str()), (1.0, "", ""));
            } else {
                assert_eq!(r.faster, if is_faster(r.speedup) { "yes" } else { "no" });
                assert!(r.why.contains("1 convolution(s) kept in fp32"), "{}", r.why);
            }
        }
    }

    #[test]
    fn a_check_without_a_baseline_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = save(dir.path(), "m.safetensors", 4, Precision::Fp32, Kernel::Dense);
        let lp = LatencyParams { warmup: 0, iters: Some(2), batch_sizes: vec![1], repeats: 1 };
        let err = check_speedup(&SpeedupCheck {
            variant: "v",
            baseline: "b",
            forms: vec![FormSpec { form: Form::Materialized, file: &f, kernel: None, what: String::new() }],
            test: &split(2),
            latency: &lp,
            device: Device::Cpu,
        })
        .unwrap_err();
        assert!(err.to_string().contains("without a baseline"), "{err}");
    }
}
