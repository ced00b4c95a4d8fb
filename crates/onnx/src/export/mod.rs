//! The writer: an IR [`Graph`] with its weights (and, for int8 models, how they are
//! quantized) to an ONNX `ModelProto` that ONNX Runtime, PyTorch's `onnx` tools and
//! [`crate::import`] read.
//!
//! What every file has: opset 17 (IR version 8), producer `slimbench <version>`, one
//! input `input` `[batch, C, H, W]` (float, symbolic batch), one output `logits`
//! `[batch, classes]`. Each IR node becomes ONNX nodes of which the main one is named
//! by the node id (`conv1`, `fc0`); helpers around it (casts, quantize and dequantize
//! nodes, the parts of GELU's erf form) are named `<id>/<what>`. Weights are
//! initializers named as slimbench names its parameters (`conv1.weight`).
//!
//! How weights are stored ([`WeightData`]):
//!
//! * fp32 as FLOAT;
//! * fp16 and bf16 as FLOAT16 / BFLOAT16, each followed by a `Cast` to FLOAT: the
//!   arithmetic is fp32, as slimbench computes with half-precision files on CPUs
//!   (ONNX Runtime folds the casts at load, so the file stays half-size on disk);
//! * int8 (symmetric, per output channel or per tensor) as INT8 with its scales; how
//!   they compute depends on [`Quantization`]:
//!   * [`Quantization::WeightOnly`]: a `DequantizeLinear` of each weight, fp32
//!     arithmetic;
//!   * [`Quantization::Dynamic`]: linear layers quantize their input per tensor at
//!     run time, then `MatMulInteger` -> `Cast` -> `Mul` (scales) -> `Add` (bias); the
//!     input by `DynamicQuantizeLinear` (8 bits: the form ONNX Runtime's
//!     `quantize_dynamic` writes and fuses into `DynamicQuantizeMatMul`) or, with
//!     `reduce_range`, to 7 bits exactly as fbgemm's dynamic kernel does;
//!   * [`Quantization::Static`]: the QDQ format, `QuantizeLinear`/`DequantizeLinear`
//!     pairs at exactly the activation points slimbench's static int8 chain holds in
//!     int8 (see [`qdq`]), which ONNX Runtime fuses into `QLinearConv`, `QGemm`,
//!     `QLinearAdd`, uint8 pools. Biases stay fp32 (or int32, [`StaticSpec::int32_bias`]).
//!
//! Low-rank layers (weights `<id>.lr_in.weight` and `<id>.lr_out.weight` instead of
//! `<id>.weight`) become two `Gemm`s, `<id>/lr_in` then `<id>`.

mod emit;
mod qdq;

use std::collections::{BTreeMap, HashMap};

use onnx_protobuf::{Message, ModelProto};
use slimbench_graph::{Graph, GraphError, Op};

use emit::Emitter;

/// The default-domain opset every exported file imports.
pub const EXPORT_OPSET: i64 = 17;

/// The ONNX IR version that goes with [`EXPORT_OPSET`] (ONNX 1.12+: opset 17, IR 8).
pub const EXPORT_IR_VERSION: i64 = 8;

/// The name of the exported model's input (an `N x C x H x W` float image batch).
pub const INPUT_NAME: &str = "input";

/// The name of the exported model's output (`N x classes` logits).
pub const OUTPUT_NAME: &str = "logits";

/// The symbolic batch dimension of the input and output.
pub const BATCH_DIM: &str = "batch";

/// One parameter: its name (`conv1.weight`, `fc0.lr_in.weight`), shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// `<node id>.<param>`, as [`Graph::params`] names it (factors:
    /// `<id>.lr_in.weight`, `<id>.lr_out.weight`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Its values, row-major.
    pub data: WeightData,
}

/// A weight's values as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightData {
    /// fp32.
    F32(Vec<f32>),
    /// IEEE half, as bits.
    F16(Vec<u16>),
    /// bfloat16, as bits.
    Bf16(Vec<u16>),
    /// Symmetric int8 (zero point 0): `real = values * scale`, with one scale per
    /// output channel (the first dimension) or one for the whole tensor.
    Int8 {
        /// The integers, row-major.
        values: Vec<i8>,
        /// One scale per output channel, or one.
        scales: Vec<f32>,
    },
}

impl WeightData {
    fn len(&self) -> usize {
        match self {
            WeightData::F32(v) => v.len(),
            WeightData::F16(v) | WeightData::Bf16(v) => v.len(),
            WeightData::Int8 { values, .. } => values.len(),
        }
    }

    fn is_int8(&self) -> bool {
        matches!(self, WeightData::Int8 { .. })
    }
}

/// The affine uint8 quantization of an activation: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    /// Step between two quantized values.
    pub scale: f64,
    /// The quantized value of real 0 (0..=255).
    pub zero_point: i64,
}

/// Static int8: the calibrated activation grids by point name (`input`, a layer id
/// after its fused ReLU, `<layer>.lr_in`, a join's id; the points of
/// `slimbench_models::ops`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StaticSpec {
    /// Grid of each activation point.
    pub activations: BTreeMap<String, ActQuant>,
    /// Whether the grids use 7 of the 8 bits (they are uint8 all the same: a value
    /// beyond the calibrated range still rounds up to 255, as in libtorch).
    pub reduce_range: bool,
    /// Store the biases of int8 layers as int32 at input scale x weight scale behind a
    /// `DequantizeLinear` (what `QLinearConv`/`QGemm` take, and what ONNX Runtime's
    /// QDQ selectors look for); else fp32, as fbgemm adds them (ONNX Runtime 1.31
    /// quantizes fp32 biases itself when it fuses the layer).
    pub int32_bias: bool,
}

/// How int8 weights compute.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Quantization {
    /// Each int8 weight dequantized, fp32 arithmetic.
    #[default]
    WeightOnly,
    /// Linear layers with int8 weights quantize their input per tensor at run time
    /// and multiply in integers (`MatMulInteger`); other int8 weights as
    /// [`Quantization::WeightOnly`].
    Dynamic {
        /// Quantize inputs to 7 bits as fbgemm's `quantized::linear_dynamic` does
        /// (`ReduceMin`/`ReduceMax` + `QuantizeLinear`); else to 8 bits with
        /// `DynamicQuantizeLinear`, the form ONNX Runtime's `quantize_dynamic` writes.
        reduce_range: bool,
    },
    /// QDQ: layers with int8 weights compute on uint8 activations at these grids;
    /// layers with float weights stay fp32 between a dequantize and a quantize.
    Static(StaticSpec),
}

/// What to write besides the graph.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The graph's name (the model's).
    pub name: String,
    /// slimbench's version (the producer is `slimbench <version>`).
    pub producer_version: String,
    /// Key-value pairs for the model's `metadata_props` (precision, technique, ...).
    pub metadata: Vec<(String, String)>,
}

/// Why a model could not be written. Node errors name the node and its kind.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The graph itself does not check.
    #[error("the graph is not valid: {0}")]
    Graph(#[from] GraphError),
    /// A node (or its weights, or its quantization) cannot be written.
    #[error("node `{node}` ({kind}): {msg}")]
    Node {
        /// The node id.
        node: String,
        /// Its kind (`conv2d`, `linear`).
        kind: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// Something about the weights as a whole.
    #[error("{0}")]
    Weights(String),
}

impl ExportError {
    /// The node the error is about, if one.
    pub fn node(&self) -> Option<&str> {
        match self {
            ExportError::Node { node, .. } => Some(node),
            ExportError::Graph(g) => g.node(),
            ExportError::Weights(_) => None,
        }
    }
}

/// A written model and what the writer wants said about it.
#[derive(Debug, Clone)]
pub struct Written {
    /// The model.
    pub model: ModelProto,
    /// Remarks (how half weights, int8 layers and biases were written).
    pub notes: Vec<String>,
}

impl Written {
    /// The model's protobuf bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.model.write_to_bytes().expect("an in-memory ModelProto serializes")
    }
}

/// Writes `graph` with `weights` as an ONNX model (see the module docs). Every
/// parameter of the graph must be among `weights` with its shape (a low-rank layer's
/// two factors instead of its weight), and every weight must belong to the graph.
pub fn export(
    graph: &Graph,
    weights: &[Weight],
    quant: &Quantization,
    opts: &ExportOptions,
) -> Result<Written, ExportError> {
    let shapes = graph.shapes()?;
    let in_shapes = graph.input_shapes()?;
    let by_name: HashMap<&str, &Weight> = weights.iter().map(|w| (w.name.as_str(), w)).collect();
    if by_name.len() != weights.len() {
        return Err(ExportError::Weights("a weight is given twice".into()));
    }
    check_weights(graph, &in_shapes, &by_name)?;
    let mut e = Emitter::new(graph, &shapes, by_name);
    let last = match quant {
        Quantization::Static(spec) => qdq::emit(&mut e, spec)?,
        Quantization::WeightOnly => e.emit_float()?,
        Quantization::Dynamic { reduce_range } => {
            e.dynamic = true;
            e.reduce_range = *reduce_range;
            e.emit_float()?
        }
    };
    let mut notes = e.notes();
    let model = e.finish(&last, opts);
    notes.dedup();
    Ok(Written { model, notes })
}

/// Checks that `weights` holds exactly the graph's parameters, with their shapes.
fn check_weights(
    graph: &Graph,
    in_shapes: &[Vec<i64>],
    by_name: &HashMap<&str, &Weight>,
) -> Result<(), ExportError> {
    let mut used = 0;
    for (node, input) in graph.nodes.iter().zip(in_shapes) {
        let err = |msg: String| ExportError::Node { node: node.id.clone(), kind: node.op.kind(), msg };
        let mut expected: Vec<(String, Vec<i64>)> =
            node.op.params(input).into_iter().map(|(p, s)| (format!("{}.{p}", node.id), s)).collect();
        if let Op::Linear { out, .. } = node.op {
            let lr_in = format!("{}.lr_in.weight", node.id);
            if let Some(w) = by_name.get(lr_in.as_str()) {
                let r = w.shape.first().copied().unwrap_or(0);
                let fin = input.first().copied().unwrap_or(0);
                expected.retain(|(n, _)| !n.ends_with(".weight"));
                expected.push((lr_in, vec![r, fin]));
                expected.push((format!("{}.lr_out.weight", node.id), vec![out, r]));
            }
        }
        for (name, shape) in expected {
            let w = by_name.get(name.as_str()).ok_or_else(|| err(format!("no weight `{name}` given")))?;
            if w.shape != shape || w.data.len() as i64 != shape.iter().product::<i64>() {
                return Err(err(format!(
                    "weight `{name}` is {:?} with {} values, the graph needs {shape:?}",
                    w.shape,
                    w.data.len()
                )));
            }
            if let WeightData::Int8 { scales, .. } = &w.data
                && scales.len() != 1
                && scales.len() as i64 != shape[0]
            {
                return Err(err(format!(
                    "int8 weight `{name}` has {} scales: one per output channel ({}) or one",
                    scales.len(),
                    shape[0]
                )));
            }
            used += 1;
        }
    }
    if used != by_name.len() {
        let mut extra: Vec<&str> = by_name
            .keys()
            .copied()
            .filter(|n| {
                let (node, _) = n.split_once('.').unwrap_or((n, ""));
                graph.node(node).is_none()
            })
            .collect();
        extra.sort_unstable();
        return Err(ExportError::Weights(format!(
            "{} weight(s) belong to no node of the graph{}",
            by_name.len() - used,
            if extra.is_empty() { String::new() } else { format!(": {}", extra.join(", ")) }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
