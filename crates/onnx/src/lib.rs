//! # slimbench-onnx
//!
//! Imports an ONNX model (opset 13 and later) into slimbench's graph IR
//! ([`slimbench_graph::Graph`]) with its trained weights, and writes IR graphs back out
//! as ONNX (opset 17), without libtorch.
//!
//! Writing: [`export()`] takes a graph, its [`Weight`]s (fp32, fp16, bf16 or int8 with
//! scales) and a [`Quantization`] (int8 weights dequantized, dynamic int8 linear
//! layers, or static int8 in the QDQ format at given activation grids) and returns the
//! `ModelProto` with notes; see [`mod@export`] for what each node kind and precision
//! becomes. Errors ([`ExportError`]) name the node.
//!
//! Reading: [`import`] reads a file, [`import_bytes`] a buffer. ONNX nodes map to IR nodes one to
//! one where they can (Conv, BatchNormalization, Gemm, activations, pools, Add,
//! Concat); patterns exporters write map to one node (MatMul + Add to a linear layer
//! with bias, `x * Sigmoid(x)` to SiLU, GELU's erf form `x * 0.5 * (1 + Erf(x / sqrt 2))`
//! to GELU, Clip(0, 6) to ReLU6, ReduceMean over H and W to global pooling, the `Shape -> Gather ->
//! Unsqueeze -> Concat -> Reshape` chain to a flatten, `Slice(::2, ::2)` + `Pad` of the
//! channels to ResNet's option-A shortcut); computations on constants (shape chains,
//! pad lists, `Cast`s) are folded statically. What cannot be represented is an
//! [`OnnxError`] that names the file, the node and its op type.
//!
//! [`SUPPORTED_OPS`] lists the op types it reads.

pub mod export;
mod import;
mod tensor;

pub use export::{
    ActQuant, ExportError, ExportOptions, Quantization, StaticSpec, Weight, WeightData, Written, export,
};

use std::path::Path;

/// A model read from ONNX: the graph, its weights and what the import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The model as an IR graph (it checks for its class count).
    pub graph: slimbench_graph::Graph,
    /// Every parameter of `graph.params()`, same names and order: (name, shape, f32
    /// values row-major).
    pub weights: Vec<(String, Vec<i64>, Vec<f32>)>,
    /// What was folded or simplified at import (e.g. "Cast `x` folded", "batch norm
    /// kept"), for the run notes.
    pub notes: Vec<String>,
    /// The default-domain opset the model imports.
    pub opset: i64,
    /// Who wrote the file (`producer_name producer_version`, e.g. `pytorch 2.11.0`).
    pub producer: String,
}

/// The op types (default ONNX domain) that [`import`] reads.
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Div",
    "Dropout",
    "Erf",
    "Flatten",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "HardSwish",
    "Identity",
    "MatMul",
    "MaxPool",
    "Mul",
    "Pad",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// The oldest default-domain opset [`import`] reads.
pub const MIN_OPSET: i64 = 13;

/// Why a model could not be imported. Every message names the file (or the origin
/// given to [`import_bytes`]).
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model.
    #[error("{origin} is not an ONNX model ({why})")]
    NotOnnx {
        /// The file.
        origin: String,
        /// Why (`protobuf decode failed: ...`, `the file is empty`, ...).
        why: String,
    },
    /// The model's opset is older than [`MIN_OPSET`].
    #[error(
        "{origin} uses opset {opset}, but slimbench imports opset {MIN_OPSET} and later \
         (hint: export again with opset_version=17, or convert it with onnx.version_converter.convert_version)"
    )]
    Opset {
        /// The file.
        origin: String,
        /// Its default-domain opset (0 when it declares none).
        opset: i64,
    },
    /// A node's op type is not one slimbench reads.
    #[error("{origin}: node `{node}` ({op}) is not supported: slimbench imports {supported}")]
    UnsupportedOp {
        /// The file.
        origin: String,
        /// The node's name.
        node: String,
        /// Its op type (with its domain when not the default one).
        op: String,
        /// [`SUPPORTED_OPS`], comma-separated.
        supported: String,
    },
    /// A node slimbench reads, in a form (attributes, inputs, weights) it cannot
    /// represent.
    #[error("{origin}: node `{node}` ({op}): {msg}")]
    Node {
        /// The file.
        origin: String,
        /// The node's name.
        node: String,
        /// Its op type.
        op: String,
        /// What is wrong, with a `hint:` where one helps.
        msg: String,
    },
    /// Something about the model as a whole (inputs, outputs, declared shapes).
    #[error("{origin}: {msg}")]
    Model {
        /// The file.
        origin: String,
        /// What is wrong.
        msg: String,
    },
    /// The imported graph does not check (a bug in the importer or an odd model).
    #[error("{origin}: the imported graph is not valid: {source}")]
    Graph {
        /// The file.
        origin: String,
        /// Why.
        source: slimbench_graph::GraphError,
    },
}

impl OnnxError {
    /// Whether the model uses an op type slimbench does not import (the CLI's exit 2).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, OnnxError::UnsupportedOp { .. })
    }
}

/// Reads an ONNX file into the IR with its weights; weights in external data files
/// (what torch's dynamo exporter writes: `model.onnx.data`) are read from the model's
/// folder.
pub fn import(path: &Path) -> Result<Imported, OnnxError> {
    let bytes =
        std::fs::read(path).map_err(|source| OnnxError::Read { path: path.display().to_string(), source })?;
    import::run(&bytes, &path.display().to_string(), Some(path.parent().unwrap_or(Path::new("."))))
}

/// Reads an ONNX model from bytes; `origin` names it in messages (a path). A model
/// whose weights are in external data files is refused (use [`import`]).
pub fn import_bytes(bytes: &[u8], origin: &str) -> Result<Imported, OnnxError> {
    import::run(bytes, origin, None)
}
