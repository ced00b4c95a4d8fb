//! Inference backends: the engines a variant is timed on, behind one seam.
//!
//! After optimum-benchmark's `backends/base.py`: a [`Backend`] has a name, says whether
//! it can run here ([`Backend::available`], with the reason when not) and loads a
//! variant into a [`Runner`] for one batch size. A runner prepares its inputs once,
//! outside the timed region ([`Runner::prepare`]: libtorch tensors, ONNX Runtime
//! values, tract `TValue`s), runs a batch ([`Runner::run`], returning the logits) and
//! says what it ran ([`RunnerInfo`]: kernels, precision, execution providers, graph
//! optimisation, threads).
//!
//! * [`libtorch`]: the model as slimbench trains it, eager, through tch (the reference).
//! * [`onnxruntime`]: the variant's ONNX export on ONNX Runtime, loaded at run time from
//!   the `onnxruntime` wheel's library.
//! * [`tract`]: the variant's ONNX export on tract (pure Rust), one optimised plan per
//!   batch size.
//!
//! Another engine (OpenVINO, TensorRT) is one more file: a [`Backend`] and its
//! [`Runner`], and an arm in [`backend`].

pub mod libtorch;
pub mod onnxruntime;
pub mod tract;

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use slimbench_core::config::BackendName;
use slimbench_data::Split;
use tch::{Device, Kind, Tensor};

use crate::variant::Loaded;

/// Why a backend could not load or run a variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{backend}: {msg}")]
pub struct BackendError {
    /// The backend.
    pub backend: &'static str,
    /// What went wrong, as a sentence.
    pub msg: String,
}

impl BackendError {
    /// An error of `backend`.
    pub fn new(backend: &'static str, msg: impl Into<String>) -> Self {
        BackendError { backend, msg: msg.into() }
    }
}

/// What a runner runs, for the metrics row's `backend_detail` and the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerInfo {
    /// The backend's name.
    pub backend: &'static str,
    /// Arithmetic precision (`fp32`, `int8 (QDQ)`, ...).
    pub precision: String,
    /// Kernels or operators run (`eager`, the ONNX op types, tract's optimised ops).
    pub kernels: String,
    /// Execution providers, in order of preference (ONNX Runtime), or the device.
    pub providers: Vec<String>,
    /// Graph optimisation applied at load.
    pub graph_optimization: String,
    /// Intra-op threads.
    pub threads: usize,
}

impl RunnerInfo {
    /// One line: `onnxruntime: CPUExecutionProvider; graph optimisation all; fp32; 2 threads; ops: Conv x2, ...`.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.providers.join(", ")];
        if !self.graph_optimization.is_empty() {
            parts.push(format!("graph optimisation: {}", self.graph_optimization));
        }
        if !self.precision.is_empty() {
            parts.push(self.precision.clone());
        }
        parts.push(format!("{} intra-op thread(s)", self.threads));
        if !self.kernels.is_empty() {
            parts.push(self.kernels.clone());
        }
        format!("{}: {}", self.backend, parts.join("; "))
    }
}

/// One prepared input of a timed call: built by [`Runner::prepare`] outside the timed
/// region, shared (not copied) by runners whose [`Runner::input_key`] is equal.
#[derive(Clone)]
pub struct Input(Rc<dyn Any>);

impl Input {
    /// Wrap a backend's own input value.
    pub fn new<T: 'static>(value: T) -> Self {
        Input(Rc::new(value))
    }

    /// The value, when it is a `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

/// Logits of one batch.
pub enum Logits {
    /// A libtorch tensor `[batch, classes]`, on its device, in its precision.
    Torch(Tensor),
    /// Host values, row-major.
    Host {
        /// `rows * cols` values.
        values: Vec<f32>,
        /// Images.
        rows: usize,
        /// Classes.
        cols: usize,
    },
}

impl Logits {
    /// The values as f32 on the host, row-major, with `(rows, cols)`.
    pub fn into_host(self) -> (Vec<f32>, usize, usize) {
        match self {
            Logits::Torch(t) => {
                let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
                let size = t.size();
                let (rows, cols) = (size[0] as usize, size.get(1).copied().unwrap_or(1) as usize);
                let mut values = vec![0f32; rows * cols];
                t.view([-1]).copy_data(&mut values, rows * cols);
                (values, rows, cols)
            }
            Logits::Host { values, rows, cols } => (values, rows, cols),
        }
    }
}

/// A variant loaded on one backend for one batch size.
pub trait Runner {
    /// What it runs.
    fn info(&self) -> &RunnerInfo;

    /// The one batch size it runs, when it is fixed at load (tract); `None`: any.
    fn batch(&self) -> Option<usize>;

    /// Runners with equal keys read the same prepared inputs (for one split and batch
    /// size): where an input lies in memory moves a model's time by a few percent,
    /// which must not pass for a difference between models.
    fn input_key(&self) -> String;

    /// The inputs of its timed calls at `batch` (see [`host_batches`]), built once.
    fn prepare(&self, split: &Split, batch: usize) -> Result<Vec<Input>, BackendError>;

    /// Run one batch on a prepared input: the timed call (on a GPU it waits for the
    /// result).
    fn run(&mut self, x: &Input) -> Result<Logits, BackendError>;

    /// Run `images` (`[n, C, H, W]`, f32, host) and return the logits; not timed (the
    /// accuracy pass). The default prepares and runs.
    fn run_images(&mut self, images: &[f32], shape: [usize; 4]) -> Result<Logits, BackendError> {
        let x = self.prepare_images(images, shape)?;
        self.run(&x)
    }

    /// One input from host images `[n, C, H, W]`.
    fn prepare_images(&self, images: &[f32], shape: [usize; 4]) -> Result<Input, BackendError>;
}

/// What a backend needs of a variant: its libtorch form (loaded already) and the path of
/// its ONNX export, or why there is none.
pub struct Variant<'a> {
    /// Its name (for messages).
    pub name: &'a str,
    /// The safetensors model file.
    pub file: &'a Path,
    /// The model as libtorch computes it.
    pub loaded: &'a Loaded,
    /// Its ONNX export, or why it could not be made.
    pub onnx: Result<&'a Path, &'a str>,
}

impl Variant<'_> {
    /// The ONNX file, or `backend`'s error saying why there is none.
    pub fn onnx_for(&self, backend: &'static str) -> Result<&Path, BackendError> {
        self.onnx
            .map_err(|why| BackendError::new(backend, format!("no ONNX file for `{}`: {why}", self.name)))
    }
}

/// Where and how backends run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// The evaluate stage's device.
    pub device: Device,
    /// Intra-op threads (the stage's threads).
    pub threads: usize,
}

/// An inference engine.
pub trait Backend {
    /// Its name, as written in `backends:`.
    fn name(&self) -> &'static str;

    /// `Ok` when it can run here; otherwise why not and what to do about it.
    fn available(&self) -> Result<(), String>;

    /// Whether it runs the variant's ONNX export (so the export must exist first).
    fn needs_onnx(&self) -> bool;

    /// Load `variant` to run batches of `batch` images.
    fn load<'a>(&self, variant: &Variant<'a>, batch: usize) -> Result<Box<dyn Runner + 'a>, BackendError>;
}

/// The backend named `name`.
pub fn backend(name: BackendName, opts: Options) -> Box<dyn Backend> {
    match name {
        BackendName::Libtorch => Box::new(libtorch::Libtorch::new(opts)),
        BackendName::Onnxruntime => Box::new(onnxruntime::OnnxRuntime::new(opts)),
        BackendName::Tract => Box::new(tract::Tract::new(opts)),
    }
}

/// The timed inputs at `batch` as host images `[n, C, H, W]`: batch 1 is up to 256 test
/// images, one per call (cycled); a larger batch is the first `batch` test images,
/// repeated when the split is smaller. The libtorch runner builds the same images as
/// tensors.
pub fn host_batches(split: &Split, batch: usize) -> Vec<(Vec<f32>, [usize; 4])> {
    let (c, h, w) = (split.channels, split.rows, split.cols);
    let len = c * h * w;
    if batch == 1 {
        let n = split.len().clamp(1, 256);
        let all = slimbench_data::pixels_f32(split, 0..n, split.normalize.as_ref());
        return all.chunks(len.max(1)).map(|x| (x.to_vec(), [1, c, h, w])).collect();
    }
    let n = batch.min(split.len()).max(1);
    let base = slimbench_data::pixels_f32(split, 0..n, split.normalize.as_ref());
    let mut out = Vec::with_capacity(batch * len);
    while out.len() < batch * len && !base.is_empty() {
        let take = (batch * len - out.len()).min(base.len());
        out.extend_from_slice(&base[..take]);
    }
    vec![(out, [batch, c, h, w])]
}

/// Op types of an ONNX file and the precision they compute in, for [`RunnerInfo`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnnxSummary {
    /// Op type -> count, sorted by name.
    pub ops: BTreeMap<String, usize>,
    /// `fp32`, `fp16`, `bf16`, `int8 (QDQ)` or `int8 (integer ops)`.
    pub precision: String,
}

impl OnnxSummary {
    /// Read `path` (a protobuf ModelProto; external data is not read).
    pub fn read(path: &Path) -> Result<OnnxSummary, String> {
        use onnx_protobuf::{Message, ModelProto};
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let model = ModelProto::parse_from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut ops = BTreeMap::new();
        for node in &model.graph.node {
            *ops.entry(node.op_type.clone()).or_insert(0) += 1;
        }
        let has = |names: &[&str]| names.iter().any(|n| ops.contains_key(*n));
        // TensorProto.DataType: 10 FLOAT16, 16 BFLOAT16.
        let float_types: Vec<i32> = model.graph.initializer.iter().map(|t| t.data_type).collect();
        let precision = if has(&["QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger"]) {
            "int8 (integer ops)"
        } else if has(&["QuantizeLinear", "DequantizeLinear"]) {
            "int8 (QDQ)"
        } else if float_types.contains(&10) {
            "fp16"
        } else if float_types.contains(&16) {
            "bf16"
        } else {
            "fp32"
        };
        Ok(OnnxSummary { ops, precision: precision.to_string() })
    }

    /// `ops: Conv x2, Gemm, MaxPool, Relu x2`.
    pub fn ops_line(&self) -> String {
        let list: Vec<String> =
            self.ops.iter().map(|(op, &n)| if n == 1 { op.clone() } else { format!("{op} x{n}") }).collect();
        format!("ops: {}", list.join(", "))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The ONNX fixtures of slimbench-onnx.
    pub(crate) fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../onnx/tests/fixtures")
    }

    /// A raw little-endian f32 fixture.
    pub(crate) fn read_f32(name: &str) -> Vec<f32> {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }

    /// Largest absolute difference.
    pub(crate) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    pub(crate) fn split(n: usize) -> Split {
        Split {
            images: (0..n * 784).map(|i| (i % 251) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u16).collect(),
            channels: 1,
            rows: 28,
            cols: 28,
            normalize: None,
        }
    }

    #[test]
    fn host_batches_cycle_single_images_and_fill_large_batches() {
        let s = split(3);
        let b1 = host_batches(&s, 1);
        assert_eq!(b1.len(), 3);
        assert_eq!(b1[0].1, [1, 1, 28, 28]);
        assert_eq!(b1[2].0, slimbench_data::pixels_f32(&s, 2..3, None));
        let b8 = host_batches(&s, 8);
        assert_eq!(b8.len(), 1);
        assert_eq!(b8[0].1, [8, 1, 28, 28]);
        // Images 0, 1, 2, 0, 1, 2, 0, 1.
        assert_eq!(b8[0].0[3 * 784..4 * 784], b8[0].0[..784]);
        assert_eq!(b8[0].0[7 * 784..], b8[0].0[784..2 * 784]);
    }

    #[test]
    fn onnx_summary_counts_ops_and_finds_the_precision() {
        let s = OnnxSummary::read(&fixtures().join("grey_cnn.folded.onnx")).unwrap();
        assert_eq!(s.precision, "fp32");
        assert_eq!(s.ops.get("Conv"), Some(&2));
        assert!(!s.ops.contains_key("BatchNormalization"), "{:?}", s.ops);
        assert!(s.ops_line().starts_with("ops: "), "{}", s.ops_line());
        let err = OnnxSummary::read(Path::new("/nonexistent.onnx")).unwrap_err();
        assert!(err.contains("/nonexistent.onnx"), "{err}");
    }

    #[test]
    fn runner_info_says_what_ran() {
        let info = RunnerInfo {
            backend: "onnxruntime",
            precision: "fp32".into(),
            kernels: "ops: Conv".into(),
            providers: vec!["CPUExecutionProvider".into()],
            graph_optimization: "all".into(),
            threads: 2,
        };
        assert_eq!(
            info.describe(),
            "onnxruntime: CPUExecutionProvider; graph optimisation: all; fp32; 2 intra-op thread(s); ops: Conv"
        );
    }
}
