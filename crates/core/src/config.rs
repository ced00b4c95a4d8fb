//! Everything a pipeline YAML can configure, as typed serde structs.
//!
//! Kinds (`kind:` of a model or dataset, `uses:` of a stage) are dispatched by hand
//! through [`KindSet`] rather than by serde's internally-tagged enums, so an error in
//! a kind's parameters keeps its exact path (`stages[2].with.epochs`) and the pipeline
//! crate can point at the line and column. Each parameter struct is documented field
//! by field; `slimbench list` prints those docs from the JSON schema.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::device::DeviceSpec;

/// One kind of a tagged family (a model family, a dataset kind, a stage kind).
#[derive(Debug, Clone)]
pub struct KindInfo {
    /// The name used in YAML (`seed-cnn`, `train`, ...).
    pub name: &'static str,
    /// One-line description.
    pub summary: &'static str,
    /// JSON schema of the kind's parameters.
    pub schema: fn() -> schemars::Schema,
}

/// A family of kinds that can be built from a kind name and a deserializer of its
/// parameters.
pub trait KindSet: Sized {
    /// What the family is called in messages ("model kind", "stage kind").
    const WHAT: &'static str;
    /// Every kind of the family.
    fn kinds() -> Vec<KindInfo>;
    /// Deserialize the parameters of `kind`; `Ok(None)` when the kind is unknown.
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Option<Self>, D::Error>;
    /// The kind name of a value.
    fn kind(&self) -> &'static str;
}

/// Declares a tagged family: the enum, its `KindSet` impl and its serde form
/// (`{kind: <name>, ...params}`, used for artifacts and resolved plans).
macro_rules! kind_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $what:literal, tag = $tag:literal {
            $( $(#[doc = $doc:literal])* $kind:literal => $variant:ident($params:ty) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = $tag)]
        $vis enum $name {
            $( $(#[doc = $doc])* #[serde(rename = $kind)] $variant($params), )+
        }

        impl KindSet for $name {
            const WHAT: &'static str = $what;
            fn kinds() -> Vec<KindInfo> {
                vec![$( KindInfo {
                    name: $kind,
                    summary: concat!($($doc),+).trim_ascii(),
                    schema: || schemars::schema_for!($params),
                }, )+]
            }
            fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Option<Self>, D::Error> {
                Ok(Some(match kind {
                    $( $kind => $name::$variant(<$params>::deserialize(d)?), )+
                    _ => return Ok(None),
                }))
            }
            fn kind(&self) -> &'static str {
                match self { $( $name::$variant(_) => $kind, )+ }
            }
        }
    };
}

// ---------------------------------------------------------------------------------
// defaults

/// The `defaults:` block: settings every stage inherits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Random seed for weight initialisation, shuffling and synthetic data.
    pub seed: u64,
    /// Where to compute: cpu, cuda, cuda:N or auto (CUDA when present).
    pub device: DeviceSpec,
    /// libtorch intra-op threads; 0 uses every core.
    pub threads: usize,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { seed: 42, device: DeviceSpec::Auto, threads: 0 }
    }
}

impl Defaults {
    /// Check value ranges; each problem is `(field path inside defaults:, message)`.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if self.threads > limits::MAX_THREADS {
            errs.push((
                "threads".into(),
                format!("must be at most {} (0 uses every core)", limits::MAX_THREADS),
            ));
        }
        errs
    }

    /// More intra-op threads than logical cores only slows libtorch down: clamp
    /// `threads` to `cores`, returning the number asked for when it was more.
    pub fn clamp_threads(&mut self, cores: usize) -> Option<usize> {
        (self.threads > cores).then(|| std::mem::replace(&mut self.threads, cores))
    }
}

/// Upper bounds on the counts that size what a run starts or allocates (threads,
/// batches, repetitions). A value above one is refused by `validate`, and by `run`
/// before it writes anything: it is a slip of the keyboard, and would otherwise hang or
/// exhaust memory long before anything failed. They are fixed rather than taken from
/// the machine, so a pipeline valid on one machine is valid on every other.
pub mod limits {
    /// `defaults.threads` (libtorch intra-op threads; above this machine's logical cores
    /// they are also clamped to them, with a warning) and every stage's `workers:`.
    pub const MAX_THREADS: usize = 1024;
    /// Every batch size: a stage's `batch_size` and `latency.batch_sizes`.
    pub const MAX_BATCH_SIZE: usize = 65_536;
    /// `latency.repeats`: rounds of the latency measurement.
    pub const MAX_REPEATS: usize = 1_000;
    /// `latency.iters` and `latency.warmup`: inferences per round.
    pub const MAX_LATENCY_ITERS: usize = 1_000_000;
    /// `slimbench launch --nproc`: local processes.
    pub const MAX_PROCESSES: usize = 256;
}

// ---------------------------------------------------------------------------------
// datasets

kind_set! {
    /// A dataset declared under `datasets:`.
    pub enum DatasetConfig: "dataset kind", tag = "kind" {
        /// MNIST handwritten digits (60,000 train / 10,000 test, 28x28 grey).
        "mnist" => Mnist(IdxDatasetConfig),
        /// Fashion-MNIST clothing images (60,000 train / 10,000 test, 28x28 grey).
        "fashion-mnist" => FashionMnist(IdxDatasetConfig),
        /// Digits rendered in-process with random affine jitter and noise; needs no download.
        "synthetic-digits" => SyntheticDigits(SyntheticDigitsConfig),
        /// CIFAR-10 colour photos (50,000 train / 10,000 test, 32x32 RGB, 10 classes), binary archive.
        "cifar10" => Cifar10(Cifar10Config),
        /// CIFAR-100 colour photos (50,000 train / 10,000 test, 32x32 RGB, 100 fine or 20 coarse classes).
        "cifar100" => Cifar100(Cifar100Config),
        /// PNG/JPEG files in one sub-directory per class (torchvision's ImageFolder layout), resized.
        "image-folder" => ImageFolder(ImageFolderConfig),
        /// Coloured shapes on cluttered backgrounds rendered in-process (32x32 RGB, 10 classes); needs no download.
        "synthetic-shapes" => SyntheticShapes(SyntheticShapesConfig),
    }
}

impl DatasetConfig {
    /// The image shape `[C, H, W]` and class count this dataset has, where the config
    /// says so before any file is read (an image folder's classes are its subfolders:
    /// `None` there), so models can be checked against their data at `validate` time.
    pub fn shape_hint(&self) -> ([i64; 3], Option<i64>) {
        match self {
            DatasetConfig::Mnist(_) | DatasetConfig::FashionMnist(_) | DatasetConfig::SyntheticDigits(_) => {
                ([1, 28, 28], Some(10))
            }
            DatasetConfig::Cifar10(_) | DatasetConfig::SyntheticShapes(_) => ([3, 32, 32], Some(10)),
            DatasetConfig::Cifar100(c) => {
                ([3, 32, 32], Some(if c.labels == Cifar100Labels::Coarse { 20 } else { 100 }))
            }
            DatasetConfig::ImageFolder(c) => ([c.channels as i64, c.size[0] as i64, c.size[1] as i64], None),
        }
    }

    /// The per-channel `mean:` and `std:` the dataset's pixels (in 0..1) are normalised
    /// with, as written; checked against the channel count when the dataset is loaded.
    pub fn normalization(&self) -> (Option<&[f64]>, Option<&[f64]>) {
        let (mean, std) = match self {
            DatasetConfig::Mnist(c) | DatasetConfig::FashionMnist(c) => (&c.mean, &c.std),
            DatasetConfig::SyntheticDigits(c) => (&c.mean, &c.std),
            DatasetConfig::Cifar10(c) => (&c.mean, &c.std),
            DatasetConfig::Cifar100(c) => (&c.mean, &c.std),
            DatasetConfig::ImageFolder(c) => (&c.mean, &c.std),
            DatasetConfig::SyntheticShapes(c) => (&c.mean, &c.std),
        };
        (mean.as_deref(), std.as_deref())
    }

    /// The dataset's `path:` when its kind reads files and one is set, so a pipeline
    /// loader can make a relative one relative to the pipeline file.
    pub fn path_mut(&mut self) -> Option<&mut PathBuf> {
        match self {
            DatasetConfig::Mnist(c) | DatasetConfig::FashionMnist(c) => c.path.as_mut(),
            DatasetConfig::Cifar10(c) => c.path.as_mut(),
            DatasetConfig::Cifar100(c) => c.path.as_mut(),
            DatasetConfig::ImageFolder(c) => Some(&mut c.path),
            DatasetConfig::SyntheticDigits(_) | DatasetConfig::SyntheticShapes(_) => None,
        }
    }
}

/// Parameters of the IDX-file datasets (MNIST, Fashion-MNIST).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdxDatasetConfig {
    /// Directory holding the four IDX files (gzipped or raw). Default: the data dir
    /// (`--data-dir` / SLIMBENCH_DATA_DIR), then the user cache, then a verified download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Use only the first N training images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Base URLs to download from, tried in order. Default: the dataset's canonical mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<Vec<String>>,
    /// Per-channel mean subtracted from the pixels (scaled to 0..1) before they reach the
    /// model, one value per channel; default: none (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation the pixels are divided by after the mean, one
    /// positive value per channel; default: none (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
}

/// Parameters of the generated `synthetic-digits` dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticDigitsConfig {
    /// Number of training images.
    pub train_size: usize,
    /// Number of test images.
    pub test_size: usize,
    /// Generator seed; default: `defaults.seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Standard deviation of the additive pixel noise (pixels in 0..1).
    pub noise: f64,
    /// Strength of the random affine jitter (rotation, scale, shear, shift); 0 disables it.
    pub jitter: f64,
    /// Per-channel mean subtracted from the pixels (scaled to 0..1) before they reach the
    /// model, one value per channel; default: none (0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation the pixels are divided by after the mean, one
    /// positive value per channel; default: none (1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
}

impl Default for SyntheticDigitsConfig {
    fn default() -> Self {
        SyntheticDigitsConfig {
            train_size: 12_000,
            test_size: 2_000,
            seed: None,
            noise: 0.15,
            jitter: 1.0,
            mean: None,
            std: None,
        }
    }
}

/// Parameters of the CIFAR-10 binary archive (`cifar-10-binary.tar.gz`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cifar10Config {
    /// Directory holding `cifar-10-batches-bin/*.bin` (or the `.bin` files themselves, or
    /// `cifar-10-binary.tar.gz`). Default: the data dir's `cifar-10/` (`--data-dir` /
    /// SLIMBENCH_DATA_DIR), then the user cache, then a verified download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Use only the first N training images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Base URLs to download the archive from, tried in order. Default: the University of
    /// Toronto's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<Vec<String>>,
    /// Per-channel mean subtracted from the pixels (scaled to 0..1) before they reach the
    /// model, one value per channel; default: none (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation the pixels are divided by after the mean, one
    /// positive value per channel; default: none (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
}

/// Which CIFAR-100 labels become the classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Cifar100Labels {
    /// The 100 fine classes.
    #[default]
    Fine,
    /// The 20 coarse superclasses.
    Coarse,
}

/// Parameters of the CIFAR-100 binary archive (`cifar-100-binary.tar.gz`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cifar100Config {
    /// Directory holding `cifar-100-binary/train.bin` and `test.bin` (or the files
    /// themselves, or `cifar-100-binary.tar.gz`). Default: the data dir's `cifar-100/`,
    /// then the user cache, then a verified download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The classes: `fine` (100) or `coarse` (20 superclasses).
    #[serde(default)]
    pub labels: Cifar100Labels,
    /// Use only the first N training images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Base URLs to download the archive from, tried in order. Default: the University of
    /// Toronto's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<Vec<String>>,
    /// Per-channel mean subtracted from the pixels (scaled to 0..1) before they reach the
    /// model, one value per channel; default: none (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation the pixels are divided by after the mean, one
    /// positive value per channel; default: none (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
}

fn default_channels() -> usize {
    3
}

fn default_test_fraction() -> f64 {
    0.2
}

/// Parameters of an `image-folder` dataset: `<path>/<class>/<image>` files, or
/// `<path>/train/<class>/...` and `<path>/test/<class>/...`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageFolderConfig {
    /// Directory with one sub-directory per class (sorted by name: the first is class 0),
    /// or with `train/` and `test/` sub-directories laid out that way.
    pub path: PathBuf,
    /// `[height, width]` every image is resized to.
    pub size: [usize; 2],
    /// Resize the shorter side to fit and cut out the centre, keeping the aspect ratio;
    /// false stretches the whole image to `size`.
    #[serde(default)]
    pub center_crop: bool,
    /// 3 for RGB, 1 for grey.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Share of each class held out for testing when there are no `train/` and `test/`
    /// sub-directories.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the train/test split; default: `defaults.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Leave out files that cannot be decoded (counted in a note) instead of failing.
    #[serde(default)]
    pub skip_unreadable: bool,
    /// Per-channel mean subtracted from the pixels (scaled to 0..1) before they reach the
    /// model, one value per channel; default: none (0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation the pixels are divided by after the mean, one
    /// positive value per channel; default: none (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
}

/// Parameters of the generated `synthetic-shapes` dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticShapesConfig {
    /// Number of training images.
    pub train_size: usize,
    /// Number of test images.
    pub test_size: usize,
    /// Generator seed; default: `defaults.seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Standard deviation of the additive pixel noise (pixels in 0..1).
    pub noise: f64,
    /// Per-channel mean subtracted from the pixels (scaled to 0..1) before they reach the
    /// model, one value per channel; default: none (0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    /// Per-channel standard deviation the pixels are divided by after the mean, one
    /// positive value per channel; default: none (1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
}

impl Default for SyntheticShapesConfig {
    fn default() -> Self {
        SyntheticShapesConfig {
            train_size: 10_000,
            test_size: 2_000,
            seed: None,
            noise: 0.04,
            mean: None,
            std: None,
        }
    }
}

// ---------------------------------------------------------------------------------
// models

pub use slimbench_graph::layers::LayersConfig;
pub use slimbench_graph::presets::{
    CnnConfig, DsConvConfig, Lenet5Config, MlpConfig, MobileNetV1Config, MobileNetV2Config, ResnetConfig,
    SeedCnnConfig, Shortcut,
};

kind_set! {
    /// A model declared under `models:`: a preset, a layer list, or an ONNX file.
    pub enum ModelConfig: "model kind", tag = "kind" {
        /// The seed experiment's CNN: Conv2d(12, 3x3) + ReLU, MaxPool 2x2, Flatten, Dense(10).
        "seed-cnn" => SeedCnn(SeedCnnConfig),
        /// Multi-layer perceptron on the flattened image (ReLU between layers).
        "mlp" => Mlp(MlpConfig),
        /// MobileNet-style CNN of depthwise-separable convolution blocks.
        "dsconv" => DsConv(DsConvConfig),
        /// Configurable CNN (conv-ReLU-pool blocks, then a hidden dense layer): the usual teacher.
        "cnn" => Cnn(CnnConfig),
        /// LeNet-5: two 5x5 convolutions with pooling, then 120-84-classes linear layers.
        "lenet5" => Lenet5(Lenet5Config),
        /// CIFAR-style ResNet (He et al. 2016): depth 6n+2 of basic blocks with batch norm and residual adds.
        "resnet" => Resnet(ResnetConfig),
        /// MobileNetV1: depthwise-separable blocks with batch norm, width multiplier.
        "mobilenet-v1" => MobileNetV1(MobileNetV1Config),
        /// MobileNetV2: inverted residual blocks with linear bottlenecks and ReLU6, width multiplier.
        "mobilenet-v2" => MobileNetV2(MobileNetV2Config),
        /// Layers listed in the YAML (conv, linear, pool, bn, act, add, concat, ...) with named skip inputs.
        "layers" => Layers(LayersConfig),
        /// A network and its trained weights imported from an ONNX file (PyTorch, Keras, ... exports).
        "onnx" => Onnx(OnnxModelConfig),
    }
}

/// Parameters of `kind: onnx`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnnxModelConfig {
    /// The `.onnx` file (relative to the pipeline file's directory).
    pub path: PathBuf,
}

impl ModelConfig {
    /// The graph this config describes for `io`-shaped data, or why it cannot. An ONNX
    /// model's graph comes from its file (`slimbench-onnx`), not from here.
    pub fn graph(&self, io: crate::artifact::IoShape) -> Result<slimbench_graph::Graph, String> {
        use slimbench_graph::presets::Preset;
        let input = [io.channels, io.height, io.width];
        let classes = io.classes;
        match self {
            ModelConfig::SeedCnn(c) => c.graph(input, classes),
            ModelConfig::Mlp(c) => c.graph(input, classes),
            ModelConfig::DsConv(c) => c.graph(input, classes),
            ModelConfig::Cnn(c) => c.graph(input, classes),
            ModelConfig::Lenet5(c) => c.graph(input, classes),
            ModelConfig::Resnet(c) => c.graph(input, classes),
            ModelConfig::MobileNetV1(c) => c.graph(input, classes),
            ModelConfig::MobileNetV2(c) => c.graph(input, classes),
            ModelConfig::Layers(c) => c.graph(input, classes),
            ModelConfig::Onnx(c) => Err(format!("the graph of {} is read from the file", c.path.display())),
        }
    }

    /// The activation points of the network this config builds for `io`: `input`, then
    /// each convolution and linear layer by id, input to output (the points where
    /// quantization observes activations and distillation takes features). `None` for
    /// an ONNX model (its layers are known once the file is read).
    pub fn points(&self, io: crate::artifact::IoShape) -> Option<Result<Vec<String>, String>> {
        if matches!(self, ModelConfig::Onnx(_)) {
            return None;
        }
        Some(self.graph(io).map(|g| {
            let mut v = vec![slimbench_graph::INPUT.to_string()];
            v.extend(g.nodes.iter().filter(|n| n.op.is_layer()).map(|n| n.id.clone()));
            v
        }))
    }
}

// ---------------------------------------------------------------------------------
// stages

kind_set! {
    /// The typed `with:` parameters of a stage, by its `uses:` kind.
    pub enum StageParams: "stage kind", tag = "uses" {
        /// Train a model from scratch; records loss/accuracy curves and a checkpoint.
        "train" => Train(TrainParams),
        /// Store a trained model at lower precision: fp16/bf16 weights, int8 on fbgemm kernels (dynamic, static, QAT), or CUDA formats.
        "quantize" => Quantize(QuantizeParams),
        /// Zero the smallest weights (magnitude, one-shot or on a schedule; 2:4 semi-structured) or remove channels (structured), fine-tune with the mask held, store sparse.
        "prune" => Prune(PruneParams),
        /// Factor linear layers into two thin ones by truncated SVD, then fine-tune.
        "low-rank" => LowRank(LowRankParams),
        /// Train a student from a frozen teacher's soft targets, plus a student-alone baseline.
        "distill" => Distill(DistillParams),
        /// Measure accuracy, latency, throughput, size and memory of every model its needs produced.
        "evaluate" => Evaluate(EvaluateParams),
        /// Render charts, report.html and summary.md from the run's tables.
        "report" => Report(ReportParams),
    }
}

impl StageParams {
    /// The stage's own `device:`, where its kind has one (`report` runs on no device).
    pub fn device(&self) -> Option<DeviceSpec> {
        match self {
            StageParams::Train(p) => p.device,
            StageParams::Quantize(p) => p.device,
            StageParams::Prune(p) => p.device,
            StageParams::LowRank(p) => p.device,
            StageParams::Distill(p) => p.device,
            StageParams::Evaluate(p) => p.device,
            StageParams::Report(_) => None,
        }
    }

    /// Whether the stage runs across the processes of a multi-process job (a
    /// data-parallel `train`); every other stage runs on rank 0 alone.
    pub fn is_distributed(&self) -> bool {
        matches!(self, StageParams::Train(p) if p.strategy == Strategy::DataParallel && p.mode.is_sync())
    }

    /// Check value ranges; each problem is `(field path inside with:, message)`.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut need = |ok: bool, field: &str, msg: &str| {
            if !ok {
                errs.push((field.to_string(), msg.to_string()));
            }
        };
        // The resources every kind that trains or measures sizes: `workers` and `batch_size`.
        let (batch, workers) = match self {
            StageParams::Train(p) => (Some(p.batch_size), p.workers),
            StageParams::Quantize(p) => (p.batch_size, p.workers),
            StageParams::Prune(p) => (p.batch_size, p.workers),
            StageParams::LowRank(p) => (p.batch_size, p.workers),
            StageParams::Distill(p) => (Some(p.batch_size), p.workers),
            StageParams::Evaluate(p) => (Some(p.batch_size), 0),
            StageParams::Report(_) => (None, 0),
        };
        let at_most = |max: usize| format!("must be at most {max}");
        need(
            batch.is_none_or(|b| b <= limits::MAX_BATCH_SIZE),
            "batch_size",
            &at_most(limits::MAX_BATCH_SIZE),
        );
        need(workers <= limits::MAX_THREADS, "workers", &at_most(limits::MAX_THREADS));
        match self {
            StageParams::Train(p) => {
                need(
                    p.epochs >= 1 || p.strategy == Strategy::Single,
                    "epochs",
                    "0 (take the model as it is) needs strategy: single",
                );
                need(p.batch_size >= 1, "batch_size", "must be at least 1");
                need(p.lr > 0.0 && p.lr.is_finite(), "lr", "must be a positive number");
                need(p.log_every >= 1, "log_every", "must be at least 1");
                need(
                    p.replicas.is_none_or(|r| (1..=64).contains(&r)),
                    "replicas",
                    "must be between 1 and 64",
                );
                need(
                    p.replicas.is_none() || p.strategy == Strategy::DataParallel,
                    "replicas",
                    "applies to `strategy: data-parallel` only",
                );
                need(
                    p.mode.is_sync() || p.strategy == Strategy::DataParallel,
                    "mode",
                    "applies to `strategy: data-parallel` only",
                );
                let model_parallel_only = "applies to `strategy: model-parallel` only";
                need(
                    p.pipeline_stages.is_none() || p.strategy == Strategy::ModelParallel,
                    "pipeline_stages",
                    model_parallel_only,
                );
                need(
                    p.micro_batches.is_none() || p.strategy == Strategy::ModelParallel,
                    "micro_batches",
                    model_parallel_only,
                );
                need(
                    p.pipeline_stages.is_none_or(|k| (2..=16).contains(&k)),
                    "pipeline_stages",
                    "must be between 2 and 16",
                );
                need(
                    p.micro_batches.is_none_or(|m| (1..=1024).contains(&m)),
                    "micro_batches",
                    "must be between 1 and 1024",
                );
                need(
                    p.micro_batches.is_none_or(|m| m <= p.batch_size),
                    "micro_batches",
                    "must not exceed batch_size (each micro-batch needs at least one image)",
                );
                need(
                    p.amp.is_none() || p.strategy == Strategy::Single,
                    "amp",
                    "mixed precision is available with `strategy: single` only",
                );
            }
            StageParams::Quantize(p) => {
                let m = p.method;
                let static_only = "applies to `method: int8-static` and `method: qat` only";
                need(p.observer.is_none() || m.is_static(), "observer", static_only);
                need(p.per_channel.is_none() || m.is_static(), "per_channel", static_only);
                need(p.calibration_samples.is_none() || m.is_static(), "calibration_samples", static_only);
                need(
                    p.percentile.is_none() || p.observer() == ObserverKind::Percentile,
                    "percentile",
                    "applies to `observer: percentile` only",
                );
                need(
                    p.percentile.is_none_or(|q| q > 50.0 && q <= 100.0),
                    "percentile",
                    "must be in (50, 100]",
                );
                need(
                    p.calibration_samples.is_none_or(|n| n >= 1),
                    "calibration_samples",
                    "must be at least 1",
                );
                need(p.epochs.is_none() || m == QuantMethod::Qat, "epochs", "applies to `method: qat` only");
                need(p.epochs.is_none_or(|e| e >= 1), "epochs", "must be at least 1");
                need(
                    p.finetune_epochs == 0 || matches!(m, QuantMethod::Int8Dynamic | QuantMethod::Int8Static),
                    "finetune_epochs",
                    "applies to int8-dynamic and int8-static (qat trains for `epochs`)",
                );
                need(
                    p.tolerable_loss.is_none()
                        || matches!(m, QuantMethod::Int8Dynamic | QuantMethod::Int8Static | QuantMethod::Qat),
                    "tolerable_loss",
                    "applies to int8-dynamic, int8-static and qat",
                );
                need(
                    p.tolerable_loss.is_none_or(|t| (0.0..1.0).contains(&t)),
                    "tolerable_loss",
                    "must be in [0, 1) (a fraction: 0.01 is one point of accuracy)",
                );
                need(
                    p.validation_samples.is_none() || p.tolerable_loss.is_some(),
                    "validation_samples",
                    "applies with `tolerable_loss` only",
                );
                need(p.validation_samples.is_none_or(|n| n >= 1), "validation_samples", "must be at least 1");
                need(p.batch_size.is_none_or(|b| b >= 1), "batch_size", "must be at least 1");
                need(p.lr.is_none_or(|lr| lr > 0.0 && lr.is_finite()), "lr", "must be a positive number");
                need(p.log_every >= 1, "log_every", "must be at least 1");
            }
            StageParams::Prune(p) => {
                match (p.method, p.sparsity) {
                    (PruneMethod::SemiStructured, s) => need(
                        s.is_none_or(|s| s == 0.5),
                        "sparsity",
                        "must be left out or 0.5: semi-structured (2:4) pruning always zeroes 2 of every 4 weights",
                    ),
                    (_, None) => need(false, "sparsity", "is required for magnitude and structured pruning"),
                    (_, Some(s)) => need((0.0..1.0).contains(&s), "sparsity", "must be in [0, 1)"),
                }
                need(p.batch_size.is_none_or(|b| b >= 1), "batch_size", "must be at least 1");
                need(p.lr.is_none_or(|lr| lr > 0.0 && lr.is_finite()), "lr", "must be a positive number");
                if let Some(s) = &p.schedule {
                    need(
                        p.method == PruneMethod::Magnitude,
                        "schedule",
                        "only `method: magnitude` prunes on a schedule",
                    );
                    need(
                        p.finetune_epochs >= 1,
                        "finetune_epochs",
                        "must be at least 1 when a schedule is given (the schedule runs during fine-tuning)",
                    );
                    need(
                        s.end_step > s.begin_step,
                        "schedule.end_step",
                        "must be greater than schedule.begin_step",
                    );
                    need(s.frequency >= 1, "schedule.frequency", "must be at least 1");
                    need(s.power > 0.0 && s.power.is_finite(), "schedule.power", "must be a positive number");
                    need(
                        (0.0..=p.sparsity.unwrap_or(0.0)).contains(&s.initial_sparsity),
                        "schedule.initial_sparsity",
                        "must be in [0, sparsity]",
                    );
                }
            }
            StageParams::LowRank(p) => {
                need(
                    p.rank.is_some() != p.energy.is_some(),
                    "rank",
                    "give either `rank` (a number of singular values) or `energy` (a fraction to keep), not both",
                );
                need(p.rank.is_none_or(|r| r >= 1), "rank", "must be at least 1");
                need(p.energy.is_none_or(|e| e > 0.0 && e <= 1.0), "energy", "must be in (0, 1]");
                need(
                    p.layers.as_ref().is_none_or(|l| !l.is_empty()),
                    "layers",
                    "must name at least one layer",
                );
                need(p.batch_size.is_none_or(|b| b >= 1), "batch_size", "must be at least 1");
                need(p.lr.is_none_or(|lr| lr > 0.0 && lr.is_finite()), "lr", "must be a positive number");
            }
            StageParams::Distill(p) => {
                let k = p.kind;
                let layered = "applies to `kind: feature` and `kind: relation` only";
                need(p.student_layer.is_none() || k != DistillKind::Response, "student_layer", layered);
                need(p.teacher_layer.is_none() || k != DistillKind::Response, "teacher_layer", layered);
                need(
                    p.hint_epochs.is_none() || k == DistillKind::Feature,
                    "hint_epochs",
                    "applies to `kind: feature` only",
                );
                need(p.hint_epochs.is_none_or(|e| e >= 1), "hint_epochs", "must be at least 1");
                need(
                    p.beta.is_none() || k == DistillKind::Relation,
                    "beta",
                    "applies to `kind: relation` only",
                );
                need(
                    p.beta.is_none_or(|b| b >= 0.0 && b.is_finite()),
                    "beta",
                    "must be a non-negative number",
                );
                need(p.epochs >= 1, "epochs", "must be at least 1");
                need(p.batch_size >= 1, "batch_size", "must be at least 1");
                need(p.lr > 0.0 && p.lr.is_finite(), "lr", "must be a positive number");
                need(p.temperature > 0.0, "temperature", "must be positive");
                need((0.0..=1.0).contains(&p.alpha), "alpha", "must be in [0, 1]");
            }
            StageParams::Evaluate(p) => {
                need(p.batch_size >= 1, "batch_size", "must be at least 1");
                need(
                    !p.latency.batch_sizes.is_empty(),
                    "latency.batch_sizes",
                    "must list at least one batch size",
                );
                need(
                    p.latency.batch_sizes.iter().all(|&b| b >= 1),
                    "latency.batch_sizes",
                    "batch sizes must be at least 1",
                );
                need(
                    p.latency.batch_sizes.iter().all(|&b| b <= limits::MAX_BATCH_SIZE),
                    "latency.batch_sizes",
                    &format!("batch sizes must be at most {}", limits::MAX_BATCH_SIZE),
                );
                need(p.latency.repeats >= 1, "latency.repeats", "must be at least 1");
                need(
                    p.latency.repeats <= limits::MAX_REPEATS,
                    "latency.repeats",
                    &at_most(limits::MAX_REPEATS),
                );
                need(p.latency.iters.is_none_or(|i| i >= 1), "latency.iters", "must be at least 1");
                let max_iters = at_most(limits::MAX_LATENCY_ITERS);
                need(
                    p.latency.iters.is_none_or(|i| i <= limits::MAX_LATENCY_ITERS),
                    "latency.iters",
                    &max_iters,
                );
                need(p.latency.warmup <= limits::MAX_LATENCY_ITERS, "latency.warmup", &max_iters);
                need(
                    p.backends.contains(&BackendName::Libtorch),
                    "backends",
                    "must include libtorch (the other backends' predictions are checked against it)",
                );
                let mut seen = Vec::new();
                for b in &p.backends {
                    need(!seen.contains(b), "backends", &format!("lists `{b}` more than once"));
                    seen.push(*b);
                }
            }
            StageParams::Report(_) => {}
        }
        errs
    }

    /// Whether the stage is cached like the others. Reports are cheap and embed the run's
    /// metadata, so they are rendered afresh for every run.
    pub fn is_cached(&self) -> bool {
        !matches!(self, StageParams::Report(_))
    }
}

/// Optimizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (betas 0.9/0.999).
    #[default]
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
    /// Stochastic gradient descent with optional momentum.
    Sgd,
}

/// How the learning rate changes over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Cosine decay from the rate to zero over all steps (`lr * (1 + cos(pi * t / T)) / 2`).
    Cosine,
}

impl LrSchedule {
    /// Whether it is [`LrSchedule::Constant`].
    pub fn is_constant(&self) -> bool {
        *self == LrSchedule::Constant
    }

    /// The rate at step `step` of `total` for a base rate `lr`.
    pub fn at(self, lr: f64, step: u64, total: u64) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => {
                let t = step.min(total) as f64 / total.max(1) as f64;
                lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// How a model is optimised: what `train` used, and what fine-tuning reuses by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimSettings {
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// Momentum (SGD only).
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Learning-rate schedule.
    #[serde(default, skip_serializing_if = "LrSchedule::is_constant")]
    pub schedule: LrSchedule,
}

fn d_one() -> u32 {
    1
}
fn d_batch() -> usize {
    32
}
fn d_lr() -> f64 {
    1e-3
}
fn d_log_every() -> usize {
    50
}
fn d_true() -> bool {
    true
}

/// Parameters of `train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// The model to train: a key of `models:`.
    pub model: String,
    /// The dataset to train on: a key of `datasets:`.
    pub dataset: String,
    /// Passes over the training set; 0 takes the model as it is (an imported ONNX
    /// model's trained weights), measured and saved for the stages after it.
    #[serde(default = "d_one")]
    pub epochs: u32,
    /// Mini-batch size.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// adam, adamw or sgd.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Learning rate.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f64,
    /// Weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning-rate schedule: constant or cosine (decay to zero by the last step).
    #[serde(default, skip_serializing_if = "LrSchedule::is_constant")]
    pub lr_schedule: LrSchedule,
    /// Seed for initialisation and shuffling; default: `defaults.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Threads preparing batches ahead of the training step (0: on the training thread;
    /// `all`: one per logical core).
    #[serde(default, deserialize_with = "workers::deserialize")]
    #[schemars(schema_with = "workers::schema")]
    pub workers: usize,
    /// Train-time augmentation on the loader workers, seeded: `crop` (pad by
    /// `crop_padding` zeros, crop back at a random offset), `flip` (horizontal, p=0.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub augment: Vec<Augmentation>,
    /// Zero padding of the `crop` augmentation, in pixels on each side.
    #[serde(default = "d_crop_padding")]
    pub crop_padding: usize,
    /// Record a training-curve point every N steps.
    #[serde(default = "d_log_every")]
    pub log_every: usize,
    /// How training is spread: single (one model), data-parallel (replicas, each on
    /// its share of every batch, through PyTorch's Gloo or NCCL engine) or
    /// model-parallel (the layers split into a micro-batched pipeline).
    #[serde(default, skip_serializing_if = "Strategy::is_single")]
    pub strategy: Strategy,
    /// data-parallel in one process: the number of replicas (threads); under
    /// `slimbench launch` each process is one replica. Default 2 in one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<usize>,
    /// data-parallel: sync (gradients summed every step, replicas identical) or async
    /// (a parameter server applies each worker's gradient as it arrives; in one process).
    #[serde(default, skip_serializing_if = "DpMode::is_sync")]
    pub mode: DpMode,
    /// model-parallel: the number of pipeline stages K the layers are split into (one
    /// per CUDA device when there are K, else CPU thread groups). Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_stages: Option<usize>,
    /// model-parallel: micro-batches M each batch is split into (GPipe schedule).
    /// Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_batches: Option<usize>,
    /// Mixed precision on CUDA: bf16 or fp16 autocast (fp16 with dynamic loss
    /// scaling); the weights and optimizer stay fp32. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amp: Option<AmpKind>,
    /// Where this stage trains (cpu, cuda, cuda:N, auto); default: `defaults.device`.
    /// A CUDA device on a machine without one skips the stage, with a note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSpec>,
}

/// Mixed-precision training's lower precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AmpKind {
    /// bfloat16 autocast (no loss scaling needed).
    Bf16,
    /// float16 autocast with dynamic loss scaling.
    Fp16,
}

impl AmpKind {
    /// `bf16` or `fp16`.
    pub fn as_str(self) -> &'static str {
        match self {
            AmpKind::Bf16 => "bf16",
            AmpKind::Fp16 => "fp16",
        }
    }
}

/// How data-parallel replicas combine their gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DpMode {
    /// All-reduce before every step: every replica takes the same step.
    #[default]
    Sync,
    /// Parameter server: workers pull parameters and push gradients without waiting for
    /// each other, so gradients can be computed from stale parameters.
    Async,
}

impl DpMode {
    /// Whether it is [`DpMode::Sync`].
    pub fn is_sync(&self) -> bool {
        *self == DpMode::Sync
    }
}

/// How the `low-rank` stage treats convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConvLowRank {
    /// Left whole.
    #[default]
    None,
    /// Tucker-2: 1x1 to the input rank, a KxK core, 1x1 back to the outputs.
    Tucker2,
}

/// One train-time augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Augmentation {
    /// Random crop after zero padding (CIFAR's standard 4 pixels).
    Crop,
    /// Horizontal flip with probability 0.5.
    Flip,
}

fn d_crop_padding() -> usize {
    4
}

/// How a `train` stage spreads its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// One model, one loop.
    #[default]
    Single,
    /// Synchronous data parallelism: every replica computes gradients on its share of
    /// the global batch, the gradients are averaged (all-reduce) before every step.
    DataParallel,
    /// Pipeline model parallelism: the layers split into stages on devices or CPU
    /// thread groups, each batch cut into micro-batches (GPipe schedule).
    ModelParallel,
}

impl Strategy {
    /// Whether it is [`Strategy::Single`].
    pub fn is_single(&self) -> bool {
        *self == Strategy::Single
    }
}

impl TrainParams {
    /// The optimisation settings.
    pub fn optim(&self) -> OptimSettings {
        OptimSettings {
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            schedule: self.lr_schedule,
        }
    }

    /// model-parallel: pipeline stages K (default 2).
    pub fn pipeline_stages(&self) -> usize {
        self.pipeline_stages.unwrap_or(2)
    }

    /// model-parallel: micro-batches per batch M (default 4).
    pub fn micro_batches(&self) -> usize {
        self.micro_batches.unwrap_or(4)
    }
}

/// Quantization methods of this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuantMethod {
    /// IEEE half precision weights.
    Fp16,
    /// bfloat16 weights.
    Bf16,
    /// int8 linear weights (per output channel) run on fbgemm's dynamic int8 kernels:
    /// activations are quantized per call. Convolutions stay fp32.
    #[serde(rename = "int8-dynamic")]
    Int8Dynamic,
    /// fp16 linear weights run on fbgemm's fp16 kernel (fp32 activations).
    #[serde(rename = "fp16-dynamic")]
    Fp16Dynamic,
    /// Post-training static int8: activation ranges calibrated on training images,
    /// convolutions, linear layers, ReLUs and pools all on fbgemm's int8 kernels.
    #[serde(rename = "int8-static")]
    Int8Static,
    /// Quantization-aware training: fine-tune with fake-quantized weights and
    /// activations (straight-through gradients, moving-average ranges), then convert to
    /// the static int8 model.
    Qat,
    /// CUDA: fp32 weights, evaluated under autocast to bfloat16.
    #[serde(rename = "amp-bf16")]
    AmpBf16,
    /// CUDA: fp32 weights, evaluated under autocast to float16.
    #[serde(rename = "amp-fp16")]
    AmpFp16,
    /// CUDA: int8 linear weights, activations quantized per row, multiplied by
    /// `torch._int_mm`.
    #[serde(rename = "int8-mm")]
    Int8Mm,
    /// CUDA, compute capability 8.9+ (Ada, Hopper): fp8 e4m3 linear layers on
    /// `torch._scaled_mm`.
    Fp8,
}

impl QuantMethod {
    /// Its name in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            QuantMethod::Fp16 => "fp16",
            QuantMethod::Bf16 => "bf16",
            QuantMethod::Int8Dynamic => "int8-dynamic",
            QuantMethod::Fp16Dynamic => "fp16-dynamic",
            QuantMethod::Int8Static => "int8-static",
            QuantMethod::Qat => "qat",
            QuantMethod::AmpBf16 => "amp-bf16",
            QuantMethod::AmpFp16 => "amp-fp16",
            QuantMethod::Int8Mm => "int8-mm",
            QuantMethod::Fp8 => "fp8",
        }
    }

    /// Whether it gives int8 weights (and so can fine-tune and fall back to fp32).
    pub fn is_int8(self) -> bool {
        matches!(
            self,
            QuantMethod::Int8Dynamic | QuantMethod::Int8Static | QuantMethod::Qat | QuantMethod::Int8Mm
        )
    }

    /// Whether activations are quantized at calibrated ranges (int8-static, qat).
    pub fn is_static(self) -> bool {
        matches!(self, QuantMethod::Int8Static | QuantMethod::Qat)
    }

    /// Whether it needs a CUDA device.
    pub fn needs_cuda(self) -> bool {
        matches!(self, QuantMethod::AmpBf16 | QuantMethod::AmpFp16 | QuantMethod::Int8Mm | QuantMethod::Fp8)
    }
}

/// How calibration sets an activation's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ObserverKind {
    /// The smallest and largest value seen.
    #[default]
    Minmax,
    /// Minimum and maximum of each batch, averaged with a constant of 0.01 (PyTorch's
    /// MovingAverageMinMaxObserver; what quantization-aware training uses).
    MovingAverage,
    /// The `percentile`-th and (100 - `percentile`)-th percentiles of a sample of the
    /// values: outliers are clipped for a finer grid.
    Percentile,
}

impl ObserverKind {
    /// Its name in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            ObserverKind::Minmax => "minmax",
            ObserverKind::MovingAverage => "moving-average",
            ObserverKind::Percentile => "percentile",
        }
    }
}

/// How evaluation computes with reduced-precision weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComputeMode {
    /// Native half precision on CUDA; upcast to fp32 on CPUs (most lack half arithmetic,
    /// which is also what TF Lite does with fp16 models).
    #[default]
    Auto,
    /// Compute in the stored precision, wherever it runs.
    Native,
    /// Convert the weights back to fp32 when loading; compute in fp32.
    Upcast,
}

/// Parameters of `quantize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantizeParams {
    /// fp16, bf16 (weights only); int8-dynamic, fp16-dynamic, int8-static, qat (fbgemm
    /// kernels, CPU); amp-bf16, amp-fp16, int8-mm, fp8 (CUDA; skipped with a note
    /// elsewhere).
    pub method: QuantMethod,
    /// How `evaluate` computes with the result: auto, native or upcast.
    #[serde(default)]
    pub compute: ComputeMode,
    /// int8-static and qat: how activation ranges are calibrated: minmax,
    /// moving-average or percentile (default minmax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observer: Option<ObserverKind>,
    /// The percentile observer's upper percentile, in (50, 100] (default 99.99).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<f64>,
    /// int8-static and qat: one weight scale per output channel (true, the default) or
    /// one per tensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_channel: Option<bool>,
    /// int8-static and qat: training images the activation ranges are calibrated on
    /// (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_samples: Option<usize>,
    /// qat: epochs of quantization-aware training (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    /// int8-dynamic and int8-static: epochs of fine-tuning after quantizing, with the
    /// quantization simulated (fake-quantized weights, and activations at their
    /// calibrated ranges for int8-static) so the weights adapt to it (0: none).
    #[serde(default)]
    pub finetune_epochs: u32,
    /// int8 methods: the largest accuracy drop (a fraction: 0.01 is one point) allowed
    /// against the fp32 model on held-out training images; the most sensitive layers
    /// fall back to fp32 until it holds. Default: no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerable_loss: Option<f64>,
    /// Held-out images (the last ones of the training split) the accuracy-aware search
    /// measures on (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_samples: Option<usize>,
    /// Training optimizer (qat, fine-tuning); default: the one the model was trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
    /// Training learning rate; default: a tenth of the model's training rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Training batch size; default: the model's training batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Dataset for calibration and training; default: the one the model was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Seed for training; default: `defaults.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Batch-preparation threads for training.
    #[serde(default, deserialize_with = "workers::deserialize")]
    #[schemars(schema_with = "workers::schema")]
    pub workers: usize,
    /// Record a training-curve point every N steps.
    #[serde(default = "d_log_every")]
    pub log_every: usize,
    /// Which stage in `needs` supplies the model (needed when several do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Where this stage runs (cpu, cuda, cuda:N, auto); default: `defaults.device`.
    /// A CUDA device on a machine without one skips the stage, with a note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSpec>,
}

impl QuantizeParams {
    /// The observer (default minmax).
    pub fn observer(&self) -> ObserverKind {
        self.observer.unwrap_or_default()
    }

    /// The percentile observer's upper percentile.
    pub fn percentile(&self) -> f64 {
        self.percentile.unwrap_or(99.99)
    }

    /// Per-channel weight scales.
    pub fn per_channel(&self) -> bool {
        self.per_channel.unwrap_or(true)
    }

    /// Calibration images.
    pub fn calibration_samples(&self) -> usize {
        self.calibration_samples.unwrap_or(1024)
    }

    /// Quantization-aware training epochs.
    pub fn qat_epochs(&self) -> u32 {
        self.epochs.unwrap_or(1)
    }

    /// Held-out images for the accuracy-aware search.
    pub fn validation_samples(&self) -> usize {
        self.validation_samples.unwrap_or(2000)
    }
}

/// Pruning methods of this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PruneMethod {
    /// Unstructured: zero the weights of smallest magnitude.
    #[default]
    Magnitude,
    /// Structured: remove whole channels and neurons of smallest norm, rebuilding
    /// smaller dense layers (the model really shrinks and speeds up).
    Structured,
    /// 2:4 semi-structured: in every group of 4 consecutive inputs of each output row
    /// (conv weights flattened per output channel) keep the 2 largest weights, the
    /// pattern NVIDIA's sparse tensor cores (cuSPARSELt) run at up to 2x.
    #[serde(rename = "semi-structured")]
    SemiStructured,
}

/// Shape of a pruning schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Zhu & Gupta (2017), TF-MOT's PolynomialDecay:
    /// `s_t = s_f + (s_i - s_f) * (1 - (t - begin_step) / (end_step - begin_step))^power`.
    #[default]
    Polynomial,
}

/// Iterative magnitude pruning during fine-tuning: the masks are recomputed from the
/// current weights every `frequency` optimizer steps from `begin_step` to `end_step`,
/// rising from `initial_sparsity` to the stage's `sparsity`, and held in between and
/// after. Steps count the fine-tuning's optimizer steps from 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneSchedule {
    /// polynomial (the only kind so far).
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Fine-tuning step of the first pruning (at `initial_sparsity`); before it the
    /// model trains unpruned.
    #[serde(default)]
    pub begin_step: u64,
    /// Step at which `sparsity` is reached exactly; it must fall within the fine-tuning
    /// (finetune_epochs x batches per epoch).
    pub end_step: u64,
    /// Recompute the masks every this many steps between begin_step and end_step.
    #[serde(default = "d_prune_frequency")]
    pub frequency: u64,
    /// Exponent of the decay: higher prunes faster early, when the network recovers best.
    #[serde(default = "d_prune_power")]
    pub power: f64,
    /// Sparsity at begin_step, in [0, sparsity].
    #[serde(default)]
    pub initial_sparsity: f64,
}

fn d_prune_frequency() -> u64 {
    100
}
fn d_prune_power() -> f64 {
    3.0
}

/// Norm that ranks channels and neurons in structured pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PruneNorm {
    /// Sum of absolute weights.
    #[default]
    L1,
    /// Euclidean norm.
    L2,
}

/// Where the magnitude threshold is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PruneScope {
    /// One threshold over all prunable weights: layers lose different fractions.
    #[default]
    Global,
    /// Each layer loses the same fraction.
    Layer,
}

/// Parameters of `prune`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneParams {
    /// magnitude (unstructured), structured (channels and neurons removed) or
    /// semi-structured (2:4: two of every four consecutive weights zeroed).
    #[serde(default)]
    pub method: PruneMethod,
    /// Structured pruning: l1 or l2 norm of each channel's or neuron's weights.
    #[serde(default, skip_serializing_if = "is_default_norm")]
    pub norm: PruneNorm,
    /// global or layer.
    #[serde(default)]
    pub scope: PruneScope,
    /// Fraction of the weights of conv and linear layers to zero (magnitude), or of the
    /// channels and hidden neurons to remove (structured), in [0, 1). Required by those
    /// two; semi-structured always zeroes half (leave it out, or give 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparsity: Option<f64>,
    /// Epochs of fine-tuning with the pruning mask held (0: none).
    #[serde(default)]
    pub finetune_epochs: u32,
    /// Magnitude pruning: reach `sparsity` gradually during fine-tuning instead of at
    /// once (default: one-shot, before fine-tuning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<PruneSchedule>,
    /// Magnitude pruning: after fine-tuning, remove the neurons and channels left with
    /// no non-zero incoming weights (their constant output folded into the next layer's
    /// bias) or no non-zero outgoing weights, and save the smaller model: same outputs,
    /// fewer parameters. Default true (lossless); mlp, seed-cnn and cnn only.
    #[serde(default = "d_true")]
    pub remove_dead: bool,
    /// Fine-tuning optimizer; default: the one the model was trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
    /// Fine-tuning learning rate; default: the training learning rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Fine-tuning batch size; default: the training batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Fine-tuning dataset; default: the one the model was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Seed for fine-tuning; default: `defaults.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Batch-preparation threads for fine-tuning.
    #[serde(default, deserialize_with = "workers::deserialize")]
    #[schemars(schema_with = "workers::schema")]
    pub workers: usize,
    /// Record a training-curve point every N steps.
    #[serde(default = "d_log_every")]
    pub log_every: usize,
    /// Which stage in `needs` supplies the model (needed when several do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Where this stage prunes and fine-tunes (cpu, cuda, cuda:N, auto); default: `defaults.device`.
    /// A CUDA device on a machine without one skips the stage, with a note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSpec>,
}

fn is_default_norm(n: &PruneNorm) -> bool {
    *n == PruneNorm::L1
}

/// Parameters of `low-rank`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LowRankParams {
    /// Keep this many singular values per layer (or give `energy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<i64>,
    /// Keep the fewest singular values holding this fraction of each weight's energy
    /// (sum of squared singular values), in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<f64>,
    /// Convolutions too: `tucker2` factors every ungrouped convolution larger than 1x1
    /// into 1x1, KxK core, 1x1 (Tucker-2); `none` (default) leaves them.
    #[serde(default)]
    pub convs: ConvLowRank,
    /// Linear layers to factor, by name (`fc0`, `hidden`); default: every one but the
    /// classifier. A layer whose factors would not be smaller stays whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<String>>,
    /// Epochs of fine-tuning the factors (0: none).
    #[serde(default)]
    pub finetune_epochs: u32,
    /// Fine-tuning optimizer; default: the one the model was trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
    /// Fine-tuning learning rate; default: the training learning rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Fine-tuning batch size; default: the training batch size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Fine-tuning dataset; default: the one the model was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Seed for fine-tuning; default: `defaults.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Batch-preparation threads for fine-tuning.
    #[serde(default, deserialize_with = "workers::deserialize")]
    #[schemars(schema_with = "workers::schema")]
    pub workers: usize,
    /// Record a training-curve point every N steps.
    #[serde(default = "d_log_every")]
    pub log_every: usize,
    /// Which stage in `needs` supplies the model (needed when several do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Where this stage factors and fine-tunes (cpu, cuda, cuda:N, auto); default: `defaults.device`.
    /// A CUDA device on a machine without one skips the stage, with a note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSpec>,
}

fn d_distill_epochs() -> u32 {
    2
}
// Measured on Fashion-MNIST (seed CNN student, 2 epochs, a 0.9313 teacher, README
// "Distillation"): alpha=0.9 beat 0.5 at every temperature tried; T=2 gave the largest
// mean gain at lr 3e-3 (+0.76 points over the student alone, 3 seeds).
fn d_temperature() -> f64 {
    2.0
}
// Soft targets pay off most where hard labels alone make training noisy: at 3e-3 the
// gain was +0.76 points (3 seeds), at 1e-3 +0.02 with the same T and alpha.
fn d_distill_lr() -> f64 {
    3.0e-3
}
fn d_alpha() -> f64 {
    0.9
}

/// What knowledge the student learns from the teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DistillKind {
    /// The teacher's softened class probabilities (Hinton et al.).
    #[default]
    Response,
    /// FitNets: first a hint stage (a learned regressor maps the student's activation at
    /// one layer onto the teacher's at another, mean squared error), then response-based.
    Feature,
    /// Similarity-preserving: the student's activations relate the images of a batch as
    /// the teacher's do, added to the response-based loss.
    Relation,
}

impl DistillKind {
    /// Its name in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            DistillKind::Response => "response",
            DistillKind::Feature => "feature",
            DistillKind::Relation => "relation",
        }
    }
}

/// Parameters of `distill`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistillParams {
    /// The student model: a key of `models:`.
    pub student: String,
    /// response, feature (FitNets hints) or relation (similarity-preserving).
    #[serde(default)]
    pub kind: DistillKind,
    /// feature and relation: the student's activation point (a layer name, e.g. `conv`;
    /// default: its last convolution, else the layer before its classifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student_layer: Option<String>,
    /// feature and relation: the teacher's activation point (default as for the student).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_layer: Option<String>,
    /// feature: epochs of the hint stage before the `epochs` of response-based training
    /// (default 1); the student alone trains for both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint_epochs: Option<u32>,
    /// relation: weight of the similarity-preserving loss (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// The stage in `needs` whose model is the teacher (needed when several stages are listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
    /// Dataset; default: the one the teacher was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Training epochs, for the distilled student and the baseline alike.
    #[serde(default = "d_distill_epochs")]
    pub epochs: u32,
    /// Mini-batch size.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// adam, adamw or sgd.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Learning rate, for the distilled student and the baseline alike.
    #[serde(default = "d_distill_lr")]
    pub lr: f64,
    /// Learning-rate schedule, for the distilled student and the baseline alike.
    #[serde(default, skip_serializing_if = "LrSchedule::is_constant")]
    pub lr_schedule: LrSchedule,
    /// Softmax temperature T for the soft targets.
    #[serde(default = "d_temperature")]
    pub temperature: f64,
    /// Weight of the soft-target loss (KL * T^2); the hard-label loss gets 1 - alpha.
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// Also train the student alone with the same budget, for comparison.
    #[serde(default = "d_true")]
    pub baseline: bool,
    /// Seed; default: `defaults.seed`. Student and baseline start from the same weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Batch-preparation threads.
    #[serde(default, deserialize_with = "workers::deserialize")]
    #[schemars(schema_with = "workers::schema")]
    pub workers: usize,
    /// Record a training-curve point every N steps.
    #[serde(default = "d_log_every")]
    pub log_every: usize,
    /// Where this stage trains the students (cpu, cuda, cuda:N, auto); default: `defaults.device`.
    /// A CUDA device on a machine without one skips the stage, with a note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSpec>,
}

fn d_eval_batch() -> usize {
    1000
}

impl DistillParams {
    /// Epochs of the hint stage (feature distillation only).
    pub fn hint_epochs(&self) -> u32 {
        if self.kind == DistillKind::Feature { self.hint_epochs.unwrap_or(1) } else { 0 }
    }

    /// Weight of the similarity-preserving loss.
    pub fn beta(&self) -> f64 {
        self.beta.unwrap_or(1000.0)
    }
}

/// Parameters of `evaluate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateParams {
    /// Batch size of the accuracy pass.
    #[serde(default = "d_eval_batch")]
    pub batch_size: usize,
    /// Latency and throughput measurement.
    #[serde(default)]
    pub latency: LatencyParams,
    /// Evaluate only the models of these stages in `needs` (default: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// Where this stage measures (cpu, cuda, cuda:N, auto); default: `defaults.device`.
    /// A CUDA device on a machine without one skips the stage, with a note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSpec>,
    /// Run the whole timing plan this many times and report the spread (`run
    /// --repeat N` sets it on every evaluate stage).
    #[serde(default = "d_one_run", skip_serializing_if = "is_one")]
    pub repeat: usize,
    /// Measure each variant's memory in a child process (weights, load, peaks).
    #[serde(default = "d_true")]
    pub memory: bool,
    /// The server scenario (Poisson arrivals, dynamic batching, p99 target); not run
    /// unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerParams>,
    /// Inference engines every variant is timed on, side by side in the one timing plan
    /// (default `[libtorch]`). `onnxruntime` and `tract` run the variant's ONNX export;
    /// `libtorch` must be among them: its predictions are the ones the others are
    /// checked against.
    #[serde(default = "d_backends", skip_serializing_if = "is_libtorch_only")]
    pub backends: Vec<BackendName>,
}

/// An inference engine of the evaluate stage (`backends:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// libtorch eager, through tch: the model as slimbench trains it (the reference).
    Libtorch,
    /// ONNX Runtime (the `onnxruntime` PyPI wheel's library, loaded at run time), on
    /// the variant's ONNX export.
    Onnxruntime,
    /// tract, pure-Rust ONNX inference, on the variant's ONNX export.
    Tract,
}

impl BackendName {
    /// Every backend, in the order the report lists them.
    pub const ALL: [BackendName; 3] = [BackendName::Libtorch, BackendName::Onnxruntime, BackendName::Tract];

    /// Its name as written in `backends:` and in the `backend` column.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendName::Libtorch => "libtorch",
            BackendName::Onnxruntime => "onnxruntime",
            BackendName::Tract => "tract",
        }
    }
}

impl std::fmt::Display for BackendName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn d_backends() -> Vec<BackendName> {
    vec![BackendName::Libtorch]
}
fn is_libtorch_only(b: &[BackendName]) -> bool {
    b == [BackendName::Libtorch]
}

fn d_one_run() -> usize {
    1
}
fn is_one(n: &usize) -> bool {
    *n == 1
}
fn d_warmup() -> usize {
    100
}
fn d_batch_sizes() -> Vec<usize> {
    vec![1, 256]
}
fn d_repeats() -> usize {
    20
}
fn d_min_duration() -> f64 {
    10.0
}
fn d_rounds() -> usize {
    10
}
fn d_retries() -> usize {
    10
}

/// Latency and throughput measurement settings: one timing plan per evaluate stage,
/// in which every variant (and every form of one) is timed in each of `rounds`
/// interleaved rounds. A figure is `valid` when it got at least `min_duration_s` of
/// timed work and its minimum count of queries on a quiet machine (MLPerf LoadGen's
/// rules, in spirit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyParams {
    /// Untimed single-image inferences before timing starts.
    #[serde(default = "d_warmup")]
    pub warmup: usize,
    /// Least timed single-image inferences per variant (default: 100); more are timed
    /// when `min_duration_s` needs them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iters: Option<usize>,
    /// Batch sizes for the throughput measurement.
    #[serde(default = "d_batch_sizes")]
    pub batch_sizes: Vec<usize>,
    /// Least timed forwards per variant and batch size.
    #[serde(default = "d_repeats")]
    pub repeats: usize,
    /// Least seconds of timed work per variant and batch size (default 10).
    #[serde(default = "d_min_duration")]
    pub min_duration_s: f64,
    /// Interleaved rounds (default 10).
    #[serde(default = "d_rounds")]
    pub rounds: usize,
    /// Rounds found invalid (a busy machine) that may be rerun, in all (default 10).
    #[serde(default = "d_retries")]
    pub retries: usize,
    /// Least half-width of a median's interval, in percent of it (default 2): how much
    /// two runs of one pipeline on one quiet machine differ (process start, memory
    /// layout, the host's drift), which no interval from one run's samples can see.
    #[serde(default = "d_noise_floor")]
    pub noise_floor_pct: f64,
}

fn d_noise_floor() -> f64 {
    2.0
}

impl Default for LatencyParams {
    fn default() -> Self {
        LatencyParams {
            warmup: d_warmup(),
            iters: None,
            batch_sizes: d_batch_sizes(),
            repeats: d_repeats(),
            min_duration_s: d_min_duration(),
            rounds: d_rounds(),
            retries: d_retries(),
            noise_floor_pct: d_noise_floor(),
        }
    }
}

impl LatencyParams {
    /// Least timed single-image inferences.
    pub fn min_queries(&self) -> usize {
        self.iters.unwrap_or(100).max(1)
    }
}

fn d_target_p99() -> f64 {
    10.0
}
fn d_max_batch() -> usize {
    32
}
fn d_server_duration() -> f64 {
    2.0
}
fn d_server_steps() -> usize {
    7
}

/// The `server` scenario: queries of one image arrive at Poisson times at an offered
/// rate; the server puts every query waiting (up to `max_batch`) into one forward. The
/// highest rate whose p99 latency meets `target_p99_ms` is searched for by bisection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerParams {
    /// The p99 latency a rate must meet, milliseconds (default 10).
    #[serde(default = "d_target_p99")]
    pub target_p99_ms: f64,
    /// Most queries per forward (default 32).
    #[serde(default = "d_max_batch")]
    pub max_batch: usize,
    /// Seconds each offered rate runs (default 2); at least 300 queries are sent.
    #[serde(default = "d_server_duration")]
    pub duration_s: f64,
    /// Rates tried by the search (default 7).
    #[serde(default = "d_server_steps")]
    pub steps: usize,
    /// Only these variants (default: every one evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<String>>,
}

/// Chart file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChartFormat {
    /// Raster image.
    Png,
    /// Vector image (also inlined into report.html).
    Svg,
}

/// Parameters of `report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Report title; default: the pipeline's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Chart files to write beside the report.
    #[serde(default = "d_formats")]
    pub formats: Vec<ChartFormat>,
}

fn d_formats() -> Vec<ChartFormat> {
    vec![ChartFormat::Png, ChartFormat::Svg]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_decays_from_the_rate_to_zero() {
        let c = LrSchedule::Cosine;
        assert_eq!(c.at(0.1, 0, 100), 0.1);
        assert!((c.at(0.1, 50, 100) - 0.05).abs() < 1e-12);
        assert!(c.at(0.1, 100, 100).abs() < 1e-12);
        assert!(c.at(0.1, 30, 100) > c.at(0.1, 31, 100));
        assert_eq!(LrSchedule::Constant.at(0.1, 99, 100), 0.1);
        // A constant schedule stays out of saved settings (older files still read).
        let o = OptimSettings {
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.0,
            weight_decay: 0.0,
            batch_size: 32,
            schedule: LrSchedule::Constant,
        };
        assert!(!serde_json::to_string(&o).unwrap().contains("schedule"));
    }

    #[test]
    fn workers_take_a_number_or_all() {
        let parse = |w: serde_json::Value| {
            serde_json::from_value::<TrainParams>(
                serde_json::json!({"model": "m", "dataset": "d", "workers": w}),
            )
            .map(|p| p.workers)
        };
        assert_eq!(parse(serde_json::json!(3)).unwrap(), 3);
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(parse(serde_json::json!("all")).unwrap(), cores);
        assert!(parse(serde_json::json!(-1)).unwrap_err().to_string().contains("or `all`"));
        // Absent: on the training thread.
        let p: TrainParams =
            serde_json::from_value(serde_json::json!({"model": "m", "dataset": "d"})).unwrap();
        assert_eq!(p.workers, 0);
    }

    #[test]
    fn kinds_round_trip_through_their_serde_form() {
        let m = ModelConfig::Mlp(MlpConfig { hidden: vec![64] });
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"kind":"mlp","hidden":[64]}"#);
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), m);
    }

    #[test]
    fn dispatch_by_kind_name() {
        let v = serde_json::json!({"hidden": [8, 4]});
        let m = ModelConfig::deserialize_kind("mlp", v).unwrap().unwrap();
        assert_eq!(m.kind(), "mlp");
        assert!(ModelConfig::deserialize_kind("vgg", serde_json::json!({})).unwrap().is_none());
        let bad = ModelConfig::deserialize_kind("mlp", serde_json::json!({"hiden": [8]}));
        assert!(bad.unwrap_err().to_string().contains("unknown field `hiden`"));
    }

    #[test]
    fn dataset_kinds_parse_with_defaults_and_reject_unknown_fields() {
        use serde_json::json;
        let parse = |kind: &str, v: serde_json::Value| DatasetConfig::deserialize_kind(kind, v);
        let c = parse("cifar100", json!({"labels": "coarse", "mean": [0.5, 0.5, 0.5]})).unwrap().unwrap();
        let DatasetConfig::Cifar100(p) = &c else { panic!("{c:?}") };
        assert_eq!((p.labels, p.train_limit), (Cifar100Labels::Coarse, None));
        assert_eq!(c.normalization(), (Some(&[0.5, 0.5, 0.5][..]), None));
        let c = parse("cifar100", json!({})).unwrap().unwrap();
        assert!(matches!(&c, DatasetConfig::Cifar100(p) if p.labels == Cifar100Labels::Fine));
        assert!(parse("cifar100", json!({"labels": "medium"})).is_err());
        let e = parse("cifar10", json!({"labels": "fine"})).unwrap_err().to_string();
        assert!(e.contains("unknown field `labels`"), "{e}");

        let mut c = parse("image-folder", json!({"path": "pics", "size": [24, 32]})).unwrap().unwrap();
        let DatasetConfig::ImageFolder(p) = &c else { panic!("{c:?}") };
        assert_eq!(
            (p.size, p.channels, p.test_fraction, p.center_crop, p.skip_unreadable),
            ([24, 32], 3, 0.2, false, false)
        );
        assert_eq!(c.path_mut().map(|p| p.clone()), Some(PathBuf::from("pics")));
        let e = parse("image-folder", json!({"size": [24, 32]})).unwrap_err().to_string();
        assert!(e.contains("missing field `path`"), "{e}");
        assert!(parse("image-folder", json!({"path": "p", "size": [1, 2], "colour": true})).is_err());

        let mut c = parse("synthetic-shapes", json!({"std": [0.2, 0.2, 0.2]})).unwrap().unwrap();
        assert_eq!(
            c,
            DatasetConfig::SyntheticShapes(SyntheticShapesConfig {
                std: Some(vec![0.2; 3]),
                ..Default::default()
            })
        );
        assert_eq!(c.path_mut(), None);
        let DatasetConfig::SyntheticShapes(p) = &c else { panic!() };
        assert_eq!((p.train_size, p.test_size), (10_000, 2_000));

        // The fields that are not set stay out of the serialised form (plan hashes keep).
        let m = parse("mnist", json!({})).unwrap().unwrap();
        assert_eq!(serde_json::to_value(&m).unwrap(), json!({"kind": "mnist"}));
        let d = parse("synthetic-digits", json!({})).unwrap().unwrap();
        assert!(serde_json::to_value(&d).unwrap().get("mean").is_none());
    }

    #[test]
    fn every_kind_has_a_summary_and_schema() {
        for k in StageParams::kinds().into_iter().chain(ModelConfig::kinds()).chain(DatasetConfig::kinds()) {
            assert!(!k.summary.is_empty(), "{}", k.name);
            assert!((k.schema)().as_object().is_some());
        }
    }

    #[test]
    fn range_checks_name_the_field() {
        let p =
            StageParams::deserialize_kind("prune", serde_json::json!({"sparsity": 1.5})).unwrap().unwrap();
        assert_eq!(p.check(), vec![("sparsity".to_string(), "must be in [0, 1)".to_string())]);
    }

    fn prune_errors(with: serde_json::Value) -> Vec<String> {
        StageParams::deserialize_kind("prune", with)
            .unwrap()
            .unwrap()
            .check()
            .into_iter()
            .map(|e| e.0)
            .collect()
    }

    fn errors(kind: &str, with: serde_json::Value) -> Vec<(String, String)> {
        StageParams::deserialize_kind(kind, with).unwrap().unwrap().check()
    }

    #[test]
    fn resource_counts_have_upper_bounds() {
        use limits::*;
        let train = |extra: serde_json::Value| {
            let mut with = serde_json::json!({"model": "m", "dataset": "d"});
            with.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            errors("train", with)
        };
        assert!(train(serde_json::json!({"batch_size": MAX_BATCH_SIZE, "workers": MAX_THREADS})).is_empty());
        let e = train(serde_json::json!({"batch_size": MAX_BATCH_SIZE + 1, "workers": MAX_THREADS + 1}));
        assert_eq!(
            e,
            [
                ("batch_size".to_string(), "must be at most 65536".to_string()),
                ("workers".to_string(), "must be at most 1024".to_string())
            ]
        );
        for (kind, with) in [
            ("quantize", serde_json::json!({"method": "fp16"})),
            ("prune", serde_json::json!({"sparsity": 0.5})),
            ("low-rank", serde_json::json!({"rank": 2})),
            ("distill", serde_json::json!({"student": "s"})),
        ] {
            let mut with = with;
            with["batch_size"] = serde_json::json!(100_000);
            with["workers"] = serde_json::json!(5000);
            let e = errors(kind, with);
            let fields: Vec<&str> = e.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(fields, ["batch_size", "workers"], "{kind}: {e:?}");
        }
        let eval = |latency: serde_json::Value| errors("evaluate", serde_json::json!({"latency": latency}));
        assert!(
            eval(serde_json::json!({"iters": MAX_LATENCY_ITERS, "warmup": MAX_LATENCY_ITERS,
            "repeats": MAX_REPEATS, "batch_sizes": [1, MAX_BATCH_SIZE]}))
            .is_empty()
        );
        let e = eval(serde_json::json!({"iters": MAX_LATENCY_ITERS + 1, "warmup": MAX_LATENCY_ITERS + 1,
            "repeats": MAX_REPEATS + 1, "batch_sizes": [1, MAX_BATCH_SIZE + 1]}));
        let fields: Vec<&str> = e.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(fields, ["latency.batch_sizes", "latency.repeats", "latency.iters", "latency.warmup"]);
    }

    #[test]
    fn threads_are_bounded_and_clamped_to_the_cores() {
        let mut d = Defaults { threads: limits::MAX_THREADS, ..Defaults::default() };
        assert!(d.check().is_empty());
        assert_eq!(d.clamp_threads(8), Some(limits::MAX_THREADS));
        assert_eq!(d.threads, 8);
        assert_eq!(d.clamp_threads(8), None);
        // 0 (every core) is left to the runtime.
        let mut d = Defaults::default();
        assert_eq!(d.clamp_threads(1), None);
        assert_eq!(d.threads, 0);
        let d = Defaults { threads: 100_000, ..Defaults::default() };
        assert_eq!(
            d.check(),
            [("threads".to_string(), "must be at most 1024 (0 uses every core)".to_string())]
        );
    }

    #[test]
    fn prune_schedule_and_method_checks_name_the_field() {
        assert!(prune_errors(serde_json::json!({"method": "semi-structured"})).is_empty());
        assert_eq!(
            prune_errors(serde_json::json!({"method": "semi-structured", "sparsity": 0.7})),
            ["sparsity"]
        );
        assert_eq!(prune_errors(serde_json::json!({"method": "magnitude"})), ["sparsity"]);
        let sched = serde_json::json!({"sparsity": 0.9, "finetune_epochs": 1,
            "schedule": {"end_step": 100}});
        assert!(prune_errors(sched).is_empty());
        let bad = serde_json::json!({"sparsity": 0.9, "schedule": {"begin_step": 50, "end_step": 50,
            "frequency": 0, "power": -1.0, "initial_sparsity": 0.95}});
        assert_eq!(
            prune_errors(bad),
            [
                "finetune_epochs",
                "schedule.end_step",
                "schedule.frequency",
                "schedule.power",
                "schedule.initial_sparsity"
            ]
        );
        let structured = serde_json::json!({"method": "structured", "sparsity": 0.5, "finetune_epochs": 1,
            "schedule": {"end_step": 10}});
        assert_eq!(prune_errors(structured), ["schedule"]);
    }
}

/// `workers:` takes a number or `all` (one per logical core of this machine).
mod workers {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        N(usize),
        Word(String),
        Other(serde::de::IgnoredAny),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        match Count::deserialize(d)? {
            Count::N(n) => Ok(n),
            Count::Word(w) if w == "all" => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
            Count::Word(w) => Err(serde::de::Error::custom(format!(
                "invalid workers `{w}`, expected a number of threads (0 or more) or `all`"
            ))),
            Count::Other(_) => Err(serde::de::Error::custom(
                "invalid workers, expected a number of threads (0 or more) or `all`",
            )),
        }
    }

    pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "batch-preparation threads: a number, or `all` (one per logical core)",
            "anyOf": [{"type": "integer", "minimum": 0}, {"const": "all"}]
        })
    }
}
