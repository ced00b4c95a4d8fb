//! Does a compressed variant really run faster than the model it came from?
//!
//! [`Pace`]: slimbench_core::records::Pace
//!
//! Masks and fake quantization shrink nothing at run time, so a variant is timed in
//! up to three forms beside its baseline: the baseline itself, the *simulated* form
//! (the original shape and arithmetic with the compression's zeros or rounding in it)
//! and the *materialized* form (the variant as stored: smaller layers, int8 kernels).
//!
//! The forms are subjects of the stage's timing plan ([`crate::plan`]), timed in the
//! same interleaved rounds as every variant. A form is "faster" when its speedup
//! reaches [`MIN_SPEEDUP`] and its bootstrap interval lies above 1 ([`Pace`]); this
//! module says *why* it is or is not ([`reasons`]).

use std::path::PathBuf;

use slimbench_core::artifact::{Kernel, ModelMeta, Precision};
use slimbench_core::records::{MIN_SPEEDUP, is_faster};

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

/// One model file to time beside a variant, and how to load it.
#[derive(Debug, Clone)]
pub struct FormSpec {
    /// Which form it is.
    pub form: Form,
    /// Its model file.
    pub file: PathBuf,
    /// A kernel overriding the file's own (the simulated form of an int8 file).
    pub kernel: Option<Kernel>,
    /// What it is, for the report.
    pub what: String,
}

/// Number of convolutions of a model.
pub(crate) fn conv_count(model: &slimbench_models::Model) -> usize {
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
