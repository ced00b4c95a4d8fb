//! What a finished stage leaves in the cache: a [`StageManifest`] (`stage.json`) and
//! the model files it names, each carrying its [`ModelMeta`] in the file header.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{ComputeMode, ModelConfig, OptimSettings};
use crate::records::Records;

/// Precision the weights are stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit float.
    #[default]
    Fp32,
    /// IEEE half.
    Fp16,
    /// bfloat16.
    Bf16,
    /// int8 linear weights with per-channel scales (other layers fp32).
    Int8,
}

impl Precision {
    /// Short name (`fp32`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

/// Shape of the model's input and output, fixed by the dataset it was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoShape {
    /// Image channels.
    pub channels: i64,
    /// Image height.
    pub height: i64,
    /// Image width.
    pub width: i64,
    /// Number of classes.
    pub classes: i64,
}

/// Everything needed to rebuild and describe a saved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// The model's name (a key of `models:`).
    pub model: String,
    /// Its family and hyper-parameters.
    pub config: ModelConfig,
    /// Input/output shape.
    pub io: IoShape,
    /// Dataset it was trained on.
    pub dataset: String,
    /// Technique that produced it (`baseline`, `fp16`, `prune-magnitude`, ...).
    pub technique: String,
    /// Stored weight precision.
    pub precision: Precision,
    /// How evaluation should compute with it.
    #[serde(default)]
    pub compute: ComputeMode,
    /// Fraction of zero weights in conv/linear layers.
    #[serde(default)]
    pub sparsity: f64,
    /// How it was last trained (fine-tuning reuses these settings by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optim: Option<OptimSettings>,
    /// Which kernels its linear layers run on.
    #[serde(default, skip_serializing_if = "Kernel::is_dense")]
    pub kernel: Kernel,
    /// Linear layers stored as two low-rank factors, by layer name (`fc0`) -> rank.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub factored: BTreeMap<String, i64>,
    /// The model it was compressed (or distilled) from; `None` for a model trained from
    /// scratch, and for files written before lineage was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineRef>,
    /// Layers an int8 model keeps in fp32 (accuracy-aware quantization fell back on
    /// them, most sensitive first), by layer name (`conv`, `fc1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fp32_layers: Vec<String>,
    /// Static int8 quantization: the calibrated scale and zero point of every quantized
    /// activation, for [`Kernel::Int8Static`] and [`Kernel::FakeQuant`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_quant: Option<StaticQuant>,
    /// The graph the model computes, as saved (a pruned model's is smaller than its
    /// config's); `None` in files that predate graphs: then the config is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<slimbench_graph::Graph>,
}

impl ModelMeta {
    /// An fp32 model trained from scratch (`technique` names how), on dense kernels,
    /// with nothing compressed yet; set the other fields with struct update syntax.
    pub fn new(model: &str, config: ModelConfig, io: IoShape, dataset: &str, technique: &str) -> Self {
        ModelMeta {
            model: model.to_string(),
            config,
            io,
            dataset: dataset.to_string(),
            technique: technique.to_string(),
            precision: Precision::Fp32,
            compute: ComputeMode::Auto,
            sparsity: 0.0,
            optim: None,
            kernel: Kernel::Dense,
            factored: BTreeMap::new(),
            baseline: None,
            fp32_layers: Vec::new(),
            static_quant: None,
            graph: None,
        }
    }

    /// Whether the layer `layer` (`fc0`, `conv`) is kept in fp32 in an int8 model.
    pub fn keeps_fp32(&self, layer: &str) -> bool {
        self.fp32_layers.iter().any(|l| l == layer)
    }
}

/// Scale and zero point of an affine quantization: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    /// Step between two quantized values.
    pub scale: f64,
    /// The quantized value of real 0.
    pub zero_point: i64,
}

/// How a statically quantized model computes: int8 weights (symmetric, per output
/// channel or per tensor), and uint8 activations whose ranges were calibrated (or
/// learned by quantization-aware training) at fixed points of the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticQuant {
    /// Quantization of the activation at each point, by point name: `input` (the
    /// image), then each conv/linear layer's output after its ReLU (`conv`, `fc0`, and
    /// `fc0.lr_in` between the factors of a low-rank layer).
    pub activations: BTreeMap<String, QParams>,
    /// One weight scale per output channel (else one per tensor).
    pub per_channel: bool,
    /// Activations use 7 of the 8 bits (fbgemm needs it on CPUs without VNNI, where
    /// its 16-bit accumulation could overflow).
    pub reduce_range: bool,
    /// Observer that set the activation ranges (`minmax`, `moving-average`,
    /// `percentile`, or `qat` when learned in training).
    pub observer: String,
    /// Images the ranges were calibrated on.
    pub calibration_samples: u64,
}

/// Which model a compressed one came from: a variant of an earlier stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineRef {
    /// Stage (instance) id that produced it.
    pub stage: String,
    /// Variant name.
    pub variant: String,
}

/// The *simulated* form of a compressed variant: what the compression computes while
/// the model keeps its original shape and arithmetic (masks over zeros, fake-quantized
/// weights in fp32), beside the variant's own file, its *materialized* form
/// (physically smaller layers, real int8 kernels). `evaluate` times both against the
/// baseline, so a report can tell a saving on paper from one at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulatedForm {
    /// Model file, relative to the stage directory (may be the variant's own file).
    pub file: String,
    /// Kernel to load it with instead of the one in its metadata (e.g. `dense` for an
    /// int8 file: dequantized weights in fp32 arithmetic, which is what fake
    /// quantization computes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Kernel>,
    /// What it is, in a short phrase for the report.
    pub what: String,
}

impl SimulatedForm {
    /// The same file as the variant, run on another kernel.
    pub fn on_kernel(file: &str, kernel: Kernel, what: impl Into<String>) -> Self {
        SimulatedForm { file: file.to_string(), kernel: Some(kernel), what: what.into() }
    }

    /// Another model file of the stage, run as its metadata says.
    pub fn file(file: &str, what: impl Into<String>) -> Self {
        SimulatedForm { file: file.to_string(), kernel: None, what: what.into() }
    }
}

/// The kernels a model's linear layers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kernel {
    /// libtorch's ordinary dense kernels, in the tensors' precision.
    #[default]
    Dense,
    /// fbgemm's dynamic int8 linear (`quantized::linear_dynamic`).
    Int8Dynamic,
    /// fbgemm's fp16-weight linear (`quantized::linear_dynamic_fp16`).
    Fp16Dynamic,
    /// Static int8: the whole chain of convolutions, linear layers, ReLUs and pools on
    /// fbgemm's quantized kernels (`quantized::conv2d_relu`, `quantized::linear`, ...),
    /// activations quantized with calibrated scales ([`ModelMeta::static_quant`]).
    Int8Static,
    /// Fake quantization: fp32 arithmetic on dequantized int8 weights, with every
    /// calibrated activation rounded to its int8 grid and back; what quantization-aware
    /// training computes, and the simulated form of a static int8 model.
    FakeQuant,
    /// CUDA: int8 weights and per-row dynamically quantized activations multiplied by
    /// `torch._int_mm` (int32 accumulation), then rescaled.
    Int8Mm,
    /// CUDA (compute capability 8.9+): fp8 e4m3 weights and activations multiplied by
    /// `torch._scaled_mm`.
    Fp8,
    /// CUDA autocast to bfloat16: fp32 weights, matmuls and convolutions in bf16.
    AmpBf16,
    /// CUDA autocast to float16.
    AmpFp16,
}

impl Kernel {
    /// Whether it is [`Kernel::Dense`].
    pub fn is_dense(&self) -> bool {
        *self == Kernel::Dense
    }

    /// The kernel in a phrase ("fbgemm's dynamic int8 kernel"), for notes.
    pub fn describe(self) -> &'static str {
        match self {
            Kernel::Dense => "libtorch's dense kernels",
            Kernel::Int8Dynamic => "fbgemm's dynamic int8 kernel",
            Kernel::Fp16Dynamic => "fbgemm's fp16-weight kernel",
            Kernel::Int8Static => "fbgemm's static int8 kernels",
            Kernel::FakeQuant => "fp32 kernels with fake quantization",
            Kernel::Int8Mm => "CUDA's int8 matmul (_int_mm)",
            Kernel::Fp8 => "CUDA's fp8 matmul (_scaled_mm)",
            Kernel::AmpBf16 => "CUDA autocast to bf16",
            Kernel::AmpFp16 => "CUDA autocast to fp16",
        }
    }

    /// Whether it quantizes only the linear layers (convolutions stay fp32).
    pub fn linear_only(self) -> bool {
        matches!(self, Kernel::Int8Dynamic | Kernel::Fp16Dynamic | Kernel::Int8Mm | Kernel::Fp8)
    }

    /// Whether it runs only on CUDA devices.
    pub fn cuda_only(self) -> bool {
        matches!(self, Kernel::Int8Mm | Kernel::Fp8 | Kernel::AmpBf16 | Kernel::AmpFp16)
    }

    /// Whether it runs only on the CPU (fbgemm is a CPU library).
    pub fn cpu_only(self) -> bool {
        matches!(self, Kernel::Int8Dynamic | Kernel::Fp16Dynamic | Kernel::Int8Static)
    }

    /// What the metrics table's `compute_precision` says for models on this kernel;
    /// `None` for dense, whose arithmetic follows the tensors' precision.
    pub fn compute_precision(self) -> Option<&'static str> {
        match self {
            Kernel::Dense => None,
            Kernel::Int8Dynamic => Some("int8 (fbgemm, dynamic)"),
            Kernel::Fp16Dynamic => Some("fp16 weights (fbgemm)"),
            Kernel::Int8Static => Some("int8 (fbgemm, static)"),
            Kernel::FakeQuant => Some("fp32 (fake-quantized)"),
            Kernel::Int8Mm => Some("int8 (_int_mm)"),
            Kernel::Fp8 => Some("fp8 e4m3 (_scaled_mm)"),
            Kernel::AmpBf16 => Some("bf16 (autocast)"),
            Kernel::AmpFp16 => Some("fp16 (autocast)"),
        }
    }
}

/// A model a stage produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantOut {
    /// Variant name, unique in a run.
    pub name: String,
    /// Model file, relative to the stage directory.
    pub file: String,
    /// Whether this is the stage's main output (what downstream stages take as input);
    /// e.g. `distill` also emits its student-alone baseline as a non-primary variant.
    pub primary: bool,
    /// Description of the model.
    pub meta: ModelMeta,
    /// Seconds of training that produced it in this stage.
    pub train_time_s: f64,
    /// Joules per epoch of that training, where the machine has an energy counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_energy_per_epoch_j: Option<f64>,
    /// Its simulated form, where the compression has one (see [`SimulatedForm`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<SimulatedForm>,
}

impl VariantOut {
    /// Declare the variant's simulated form.
    pub fn with_simulated(mut self, form: SimulatedForm) -> Self {
        self.simulated = Some(form);
        self
    }

    /// Whether its simulated form is its own file on its own kernel: nothing smaller or
    /// faster was materialized (e.g. a magnitude-pruned model, whose zeros are still
    /// multiplied).
    pub fn simulated_is_stored(&self) -> bool {
        self.simulated
            .as_ref()
            .is_some_and(|s| s.file == self.file && s.kernel.is_none_or(|k| k == self.meta.kernel))
    }
}

/// `stage.json`: the record of one finished stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageManifest {
    /// Stage id.
    pub stage: String,
    /// Stage kind.
    pub kind: String,
    /// Cache key it was stored under.
    pub key: String,
    /// slimbench version that produced it.
    pub tool_version: String,
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// Wall-clock seconds it ran.
    pub duration_s: f64,
    /// Models it produced.
    #[serde(default)]
    pub variants: Vec<VariantOut>,
    /// Content hash of every file it wrote, by relative path.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Rows for the run's tables.
    #[serde(default)]
    pub records: Records,
    /// Remarks for the report.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl StageManifest {
    /// The primary model variants.
    pub fn primary_variants(&self) -> impl Iterator<Item = &VariantOut> {
        self.variants.iter().filter(|v| v.primary)
    }
}

/// The machine a run ran on (filled in by `slimbench-metrics` from sysinfo).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// Operating system and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU brand string.
    pub cpu_model: String,
    /// Physical cores (0 when unknown).
    pub physical_cores: u64,
    /// Logical cores.
    pub logical_cores: u64,
    /// Total memory in bytes.
    pub memory_bytes: u64,
}

/// One CUDA device as the run saw it (filled in by `slimbench-metrics`: the CUDA driver
/// for the device itself, NVML for the driver version and power limit).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GpuInfo {
    /// CUDA device ordinal (`cuda:N`), as numbered under `CUDA_VISIBLE_DEVICES`.
    pub ordinal: u32,
    /// Device name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Compute capability, `major.minor` (`9.0`).
    pub compute_capability: String,
    /// Total device memory in bytes.
    pub memory_total_bytes: u64,
    /// Device memory free when probed, in bytes (0 when unknown).
    pub memory_free_bytes: u64,
    /// Streaming multiprocessors.
    pub multiprocessors: u32,
    /// NVIDIA driver version (`580.82.07`); empty when NVML is unavailable.
    pub driver_version: String,
    /// Enforced board power limit in watts (0 when unknown).
    pub power_limit_w: f64,
}

/// What happened to a stage in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// It ran in this run.
    Ran,
    /// Its cached result was reused.
    Cached,
    /// It was rendered (reports are never cached).
    Rendered,
}

/// One stage's line in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    /// Stage id.
    pub id: String,
    /// Stage kind.
    pub kind: String,
    /// What happened.
    pub status: StageStatus,
    /// Seconds it took when it ran (for cached stages: when it originally ran).
    pub duration_s: f64,
    /// Cache key.
    pub key: String,
}

/// `run.json`: the run's metadata.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id (also the run directory's name).
    pub run_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Pipeline description.
    pub description: String,
    /// Pipeline file it was loaded from.
    pub pipeline_file: String,
    /// slimbench version.
    pub tool_version: String,
    /// Git revision slimbench was built from.
    pub git_revision: String,
    /// libtorch version.
    pub torch_version: String,
    /// Device the run used (`cpu`, `cuda:0`).
    pub device: String,
    /// Whether CUDA was available.
    pub cuda_available: bool,
    /// libtorch intra-op threads.
    pub threads: u64,
    /// Seed.
    pub seed: u64,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// End time (RFC 3339).
    pub finished_at: String,
    /// Wall-clock seconds.
    pub duration_s: f64,
    /// The machine.
    pub host: HostInfo,
    /// Its CUDA devices (through the driver API and NVML), empty without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuInfo>,
    /// Why no GPU is listed, when none is (no driver, no device).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub no_gpu_reason: String,
    /// Every stage, in execution order.
    pub stages: Vec<StageSummary>,
    /// Remarks collected from stages.
    #[serde(default)]
    pub notes: Vec<String>,
    /// `INDEX/COUNT` when the run was one shard of a pipeline (`run --shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The process's place in a distributed launch (MASTER_ADDR, RANK, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dist: Option<crate::dist::DistEnv>,
}
