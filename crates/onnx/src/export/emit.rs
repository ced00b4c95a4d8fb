//! [`Emitter`]: collects ONNX nodes and initializers, and writes each IR node kind in
//! floating point (the whole model, or the fp32 parts of a static int8 one).

use std::collections::{HashMap, HashSet};

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use slimbench_graph::{Activation, Graph, INPUT, Node, Op, PoolKind};

use super::{
    BATCH_DIM, EXPORT_IR_VERSION, EXPORT_OPSET, ExportError, ExportOptions, INPUT_NAME, OUTPUT_NAME, Weight,
    WeightData,
};
use crate::tensor::dt;

/// An attribute.
pub(super) fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::INT.into(), i: v, ..Default::default() }
}

/// An attribute.
pub(super) fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An attribute.
pub(super) fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::FLOAT.into(), f: v, ..Default::default() }
}

/// What was written, for the notes.
#[derive(Debug, Default)]
pub(super) struct Counts {
    /// Half-precision weights cast to fp32, by ONNX type name.
    pub half: Vec<&'static str>,
    /// int8 weights dequantized for fp32 arithmetic.
    pub weight_only: usize,
    /// Linear layers (factors counted) on dynamic int8.
    pub dynamic: usize,
    /// Layers (factors counted) in QDQ int8.
    pub qdq: usize,
    /// Layers kept in fp32 in a QDQ model.
    pub qdq_fp32: Vec<String>,
    /// Biases quantized to int32 in a QDQ model.
    pub int32_biases: usize,
    /// Dropout nodes left out.
    pub dropouts: usize,
}

/// Collects the nodes and initializers of one model.
pub(super) struct Emitter<'g> {
    pub graph: &'g Graph,
    /// Each node's output shape.
    pub shapes: &'g [Vec<i64>],
    weights: HashMap<&'g str, &'g Weight>,
    /// Linear layers with int8 weights on dynamic int8.
    pub dynamic: bool,
    /// Dynamic int8 quantizes activations to 7 bits, as fbgemm does.
    pub reduce_range: bool,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    init_names: HashSet<String>,
    pub counts: Counts,
}

impl<'g> Emitter<'g> {
    pub fn new(graph: &'g Graph, shapes: &'g [Vec<i64>], weights: HashMap<&'g str, &'g Weight>) -> Self {
        Emitter {
            graph,
            shapes,
            weights,
            dynamic: false,
            reduce_range: false,
            nodes: Vec::new(),
            inits: Vec::new(),
            init_names: HashSet::new(),
            counts: Counts::default(),
        }
    }

    /// An error about `node`.
    pub fn err(node: &Node, msg: impl Into<String>) -> ExportError {
        ExportError::Node { node: node.id.clone(), kind: node.op.kind(), msg: msg.into() }
    }

    /// The tensor that holds a node's output (its id; the graph input for [`INPUT`]).
    pub fn tensor_of(id: &str) -> String {
        match id {
            INPUT => INPUT_NAME.to_string(),
            // The graph output is renamed `logits` at the end; a node that happens to be
            // called so keeps another name.
            OUTPUT_NAME => format!("{OUTPUT_NAME}/value"),
            id => id.to_string(),
        }
    }

    /// Adds a node.
    pub fn node(
        &mut self,
        op: &str,
        name: impl Into<String>,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        });
    }

    /// Adds an initializer (once per name: a second call with the same name reuses the
    /// first); returns its name.
    pub fn init(&mut self, name: impl Into<String>, dtype: i32, dims: &[i64], raw: Vec<u8>) -> String {
        let name = name.into();
        if self.init_names.insert(name.clone()) {
            self.inits.push(TensorProto {
                name: name.clone(),
                data_type: dtype,
                dims: dims.to_vec(),
                raw_data: raw,
                ..Default::default()
            });
        }
        name
    }

    pub fn init_f32(&mut self, name: impl Into<String>, dims: &[i64], v: &[f32]) -> String {
        self.init(name, dt::FLOAT, dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    pub fn init_i64(&mut self, name: impl Into<String>, dims: &[i64], v: &[i64]) -> String {
        self.init(name, dt::INT64, dims, v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    /// The weight `<node>.<param>`.
    pub fn weight(&self, node: &Node, param: &str) -> Result<&'g Weight, ExportError> {
        let name = format!("{}.{param}", node.id);
        self.weights.get(name.as_str()).copied().ok_or_else(|| Self::err(node, format!("no weight `{name}`")))
    }

    /// Whether `<node>.<param>` was given.
    pub fn has_weight(&self, node: &Node, param: &str) -> bool {
        self.weights.contains_key(format!("{}.{param}", node.id).as_str())
    }

    /// A linear layer's weights in the order they run: its own, or its two factors.
    pub fn linear_weights(&self, node: &Node) -> Result<Vec<&'g Weight>, ExportError> {
        if self.has_weight(node, "lr_in.weight") {
            Ok(vec![self.weight(node, "lr_in.weight")?, self.weight(node, "lr_out.weight")?])
        } else {
            Ok(vec![self.weight(node, "weight")?])
        }
    }

    /// The int8 initializers of a weight: values (transposed to `[in, out]` for
    /// `MatMulInteger` when `transpose`), scales and zero points; the scale and zero
    /// point are scalars for a per-tensor weight. Returns (values, scales, zero points,
    /// per channel).
    pub fn int8_parts(&mut self, w: &Weight, transpose: bool) -> (String, String, String, bool) {
        let WeightData::Int8 { values, scales } = &w.data else { unreachable!("called on int8 weights") };
        let per_channel = scales.len() > 1;
        let (dims, raw): (Vec<i64>, Vec<u8>) = if transpose {
            let (o, i) = (w.shape[0] as usize, w.shape[1] as usize);
            let mut t = vec![0u8; o * i];
            for r in 0..o {
                for c in 0..i {
                    t[c * o + r] = values[r * i + c] as u8;
                }
            }
            (vec![w.shape[1], w.shape[0]], t)
        } else {
            (w.shape.clone(), values.iter().map(|&v| v as u8).collect())
        };
        let q = self.init(w.name.clone(), dt::INT8, &dims, raw);
        let sdims: Vec<i64> = if per_channel { vec![scales.len() as i64] } else { vec![] };
        let s = self.init_f32(format!("{}/scale", w.name), &sdims, scales);
        let z = self.init(format!("{}/zero_point", w.name), dt::INT8, &sdims, vec![0; scales.len()]);
        (q, s, z, per_channel)
    }

    /// The tensor holding `<node>.<param>` in fp32: the initializer itself, a `Cast` of
    /// a half-precision one, or a `DequantizeLinear` of an int8 one.
    pub fn float_weight(&mut self, node: &Node, param: &str) -> Result<String, ExportError> {
        let w = self.weight(node, param)?;
        let raw16 = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (dtype, raw, what) = match &w.data {
            WeightData::F32(v) => return Ok(self.init_f32(w.name.clone(), &w.shape, v)),
            WeightData::F16(v) => (dt::FLOAT16, raw16(v), "FLOAT16"),
            WeightData::Bf16(v) => (dt::BFLOAT16, raw16(v), "BFLOAT16"),
            WeightData::Int8 { .. } => {
                let (q, s, z, per_channel) = self.int8_parts(w, false);
                let out = format!("{}/dequantized", w.name);
                let attrs = if per_channel { vec![attr_int("axis", 0)] } else { vec![] };
                self.node(
                    "DequantizeLinear",
                    format!("{}/dequantize_{param}", node.id),
                    &[&q, &s, &z],
                    &[&out],
                    attrs,
                );
                self.counts.weight_only += 1;
                return Ok(out);
            }
        };
        let stored = self.init(w.name.clone(), dtype, &w.shape, raw);
        let out = format!("{}/fp32", w.name);
        self.node("Cast", format!("{}/cast_{param}", node.id), &[&stored], &[&out], vec![attr_int("to", 1)]);
        self.counts.half.push(what);
        Ok(out)
    }

    /// The fp32 bias of a layer, when it has one.
    pub fn float_bias(&mut self, node: &Node) -> Result<Option<String>, ExportError> {
        if self.has_weight(node, "bias") { self.float_weight(node, "bias").map(Some) } else { Ok(None) }
    }

    /// `Conv` named `node`'s id.
    pub fn conv(&mut self, node: &Node, name: &str, ins: &[&str], out: &str) {
        let Op::Conv2d { kernel, stride, padding, dilation, groups, .. } = node.op else {
            unreachable!("a convolution")
        };
        let attrs = vec![
            attr_ints("kernel_shape", &kernel),
            attr_ints("strides", &stride),
            attr_ints("pads", &[padding[0], padding[1], padding[0], padding[1]]),
            attr_ints("dilations", &dilation),
            attr_int("group", groups),
        ];
        self.node("Conv", name, ins, &[out], attrs);
    }

    /// `Gemm` with the weight `[out, in]` (`transB = 1`).
    pub fn gemm(&mut self, name: &str, ins: &[&str], out: &str) {
        self.node("Gemm", name, ins, &[out], vec![attr_int("transB", 1)]);
    }

    /// A linear layer in floating point, or on dynamic int8 when its weights are int8
    /// and [`Emitter::dynamic`] is set.
    pub fn linear(&mut self, node: &Node, x: &str, out: &str) -> Result<(), ExportError> {
        let weights = self.linear_weights(node)?;
        let bias = self.float_bias(node)?;
        let n = weights.len();
        let mut h = x.to_string();
        for (k, w) in weights.into_iter().enumerate() {
            let last = k + 1 == n;
            let (name, y) = if last {
                (node.id.clone(), out.to_string())
            } else {
                let name = format!("{}/lr_in", node.id);
                (name.clone(), name)
            };
            let b = if last { bias.clone() } else { None };
            if self.dynamic && w.data.is_int8() {
                self.dynamic_matmul(&name, &h, w, b.as_deref(), &y);
            } else {
                let param = w.name.strip_prefix(&format!("{}.", node.id)).unwrap_or(&w.name).to_string();
                let wt = self.float_weight(node, &param)?;
                let mut ins = vec![h.as_str(), wt.as_str()];
                if let Some(b) = &b {
                    ins.push(b);
                }
                self.gemm(&name, &ins, &y);
            }
            h = y;
        }
        Ok(())
    }

    /// `y = x W^T + b` on dynamic int8: the input quantized per tensor to uint8 from its
    /// range at run time, an integer matmul with the int8 weight, rescaled by the input
    /// scale times each output channel's weight scale.
    ///
    /// With [`Emitter::reduce_range`] unset the input is quantized by
    /// `DynamicQuantizeLinear` (8 bits, ONNX Runtime's `quantize_dynamic` form, which
    /// it fuses into `DynamicQuantizeMatMul`); set, the way fbgemm's
    /// `quantized::linear_dynamic` does with `reduce_range`: 7 bits,
    /// `scale = max((max(x, 0) - min(x, 0)) / 127, 6.1e-5)`, `zero point =
    /// round(-min(x, 0) / scale)` clamped to 0..127 (PyTorch's
    /// `ChooseQuantizationParams`), then `QuantizeLinear`.
    fn dynamic_matmul(&mut self, name: &str, x: &str, w: &Weight, bias: Option<&str>, out: &str) {
        let (q, s, z, _) = self.int8_parts(w, true);
        let t = |what: &str| format!("{name}/{what}");
        let (xq, xs, xz) = (t("x_quantized"), t("x_scale"), t("x_zero_point"));
        if self.reduce_range {
            let zero = self.init_f32("const/0", &[], &[0.0]);
            let qmax = self.init_f32("const/127", &[], &[127.0]);
            let min_scale = self.init_f32("const/6.1e-5", &[], &[6.1e-5]);
            let tiny = self.init_f32("const/1e-30", &[], &[1e-30]);
            let (lo, hi, lo0, hi0, range, raw, safe, neg, zf, zr, zc) = (
                t("x_min"),
                t("x_max"),
                t("x_min_0"),
                t("x_max_0"),
                t("x_range"),
                t("x_scale_raw"),
                t("x_scale_safe"),
                t("x_zero_real"),
                t("x_zero_unrounded"),
                t("x_zero_rounded"),
                t("x_zero_clipped"),
            );
            self.node("ReduceMin", t("min"), &[x], &[&lo], vec![attr_int("keepdims", 0)]);
            self.node("ReduceMax", t("max"), &[x], &[&hi], vec![attr_int("keepdims", 0)]);
            self.node("Min", t("min_0"), &[&lo, &zero], &[&lo0], vec![]);
            self.node("Max", t("max_0"), &[&hi, &zero], &[&hi0], vec![]);
            self.node("Sub", t("range"), &[&hi0, &lo0], &[&range], vec![]);
            self.node("Div", t("scale_raw"), &[&range, &qmax], &[&raw], vec![]);
            self.node("Max", t("scale_cutoff"), &[&raw, &min_scale], &[&xs], vec![]);
            // The zero point from the scale before its cut-off, as PyTorch computes it.
            self.node("Max", t("scale_safe"), &[&raw, &tiny], &[&safe], vec![]);
            self.node("Neg", t("neg_min"), &[&lo0], &[&neg], vec![]);
            self.node("Div", t("zero_real"), &[&neg, &safe], &[&zf], vec![]);
            self.node("Round", t("zero_round"), &[&zf], &[&zr], vec![]);
            self.node("Clip", t("zero_clip"), &[&zr, &zero, &qmax], &[&zc], vec![]);
            self.node("Cast", t("zero_cast"), &[&zc], &[&xz], vec![attr_int("to", i64::from(dt::UINT8))]);
            self.node("QuantizeLinear", t("quantize_input"), &[x, &xs, &xz], &[&xq], vec![]);
        } else {
            self.node("DynamicQuantizeLinear", t("quantize_input"), &[x], &[&xq, &xs, &xz], vec![]);
        }
        let acc = t("accumulator");
        self.node("MatMulInteger", t("matmul_integer"), &[&xq, &q, &xz, &z], &[&acc], vec![]);
        let accf = t("accumulator_fp32");
        self.node("Cast", t("cast"), &[&acc], &[&accf], vec![attr_int("to", 1)]);
        let scale = t("scale");
        self.node("Mul", t("scale"), &[&xs, &s], &[&scale], vec![]);
        match bias {
            Some(b) => {
                let y = t("unbiased");
                self.node("Mul", t("rescale"), &[&accf, &scale], &[&y], vec![]);
                self.node("Add", name, &[&y, b], &[out], vec![]);
            }
            None => self.node("Mul", name, &[&accf, &scale], &[out], vec![]),
        }
        self.counts.dynamic += 1;
    }

    /// `BatchNormalization` (inference: running statistics).
    pub fn batch_norm(&mut self, node: &Node, x: &str, out: &str) -> Result<(), ExportError> {
        let Op::BatchNorm { eps, momentum } = node.op else { unreachable!("a batch norm") };
        let mut ins = vec![x.to_string()];
        for p in ["weight", "bias", "running_mean", "running_var"] {
            ins.push(self.float_weight(node, p)?);
        }
        let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
        // ONNX's momentum weighs the running statistic, PyTorch's the batch.
        let attrs = vec![attr_float("epsilon", eps as f32), attr_float("momentum", (1.0 - momentum) as f32)];
        self.node("BatchNormalization", node.id.as_str(), &ins, &[out], attrs);
        Ok(())
    }

    /// An operation without parameters (not dropout, which the callers alias).
    pub fn plain(&mut self, node: &Node, ins: &[&str], out: &str) -> Result<(), ExportError> {
        let id = node.id.as_str();
        let x = ins[0];
        let t = |what: &str| format!("{id}/{what}");
        match &node.op {
            Op::Act { f } => match f {
                Activation::Relu => self.node("Relu", id, &[x], &[out], vec![]),
                Activation::Relu6 => {
                    let lo = self.init_f32("const/0", &[], &[0.0]);
                    let hi = self.init_f32("const/6", &[], &[6.0]);
                    self.node("Clip", id, &[x, &lo, &hi], &[out], vec![]);
                }
                Activation::Gelu => {
                    // x * 0.5 * (1 + erf(x / sqrt 2)): opset 17 has no Gelu.
                    let sqrt2 = self.init_f32("const/sqrt2", &[], &[std::f32::consts::SQRT_2]);
                    let one = self.init_f32("const/1", &[], &[1.0]);
                    let half = self.init_f32("const/0.5", &[], &[0.5]);
                    let (a, b, c, d) = (t("scaled"), t("erf"), t("one_plus_erf"), t("x_times"));
                    self.node("Div", t("div"), &[x, &sqrt2], &[&a], vec![]);
                    self.node("Erf", t("erf"), &[&a], &[&b], vec![]);
                    self.node("Add", t("add"), &[&b, &one], &[&c], vec![]);
                    self.node("Mul", t("mul"), &[x, &c], &[&d], vec![]);
                    self.node("Mul", id, &[&d, &half], &[out], vec![]);
                }
                Activation::Silu => {
                    let s = t("sigmoid");
                    self.node("Sigmoid", s.as_str(), &[x], &[&s], vec![]);
                    self.node("Mul", id, &[x, &s], &[out], vec![]);
                }
                Activation::Hardswish => self.node("HardSwish", id, &[x], &[out], vec![]),
                Activation::Sigmoid => self.node("Sigmoid", id, &[x], &[out], vec![]),
                Activation::Tanh => self.node("Tanh", id, &[x], &[out], vec![]),
            },
            Op::Pool { kind, kernel, stride, padding } => {
                let mut attrs = vec![
                    attr_ints("kernel_shape", kernel),
                    attr_ints("strides", stride),
                    attr_ints("pads", &[padding[0], padding[1], padding[0], padding[1]]),
                ];
                let op = match kind {
                    PoolKind::Max => "MaxPool",
                    PoolKind::Avg => {
                        // PyTorch's default: the zero padding counts in the mean.
                        attrs.push(attr_int("count_include_pad", 1));
                        "AveragePool"
                    }
                };
                self.node(op, id, &[x], &[out], attrs);
            }
            Op::GlobalAvgPool => self.node("GlobalAveragePool", id, &[x], &[out], vec![]),
            Op::Flatten => self.node("Flatten", id, &[x], &[out], vec![attr_int("axis", 1)]),
            Op::Reshape { shape } => {
                // 0 copies the batch dimension.
                let mut s = vec![0];
                s.extend(shape);
                let s = self.init_i64(t("shape"), &[s.len() as i64], &s);
                self.node("Reshape", id, &[x, &s], &[out], vec![]);
            }
            Op::Add => {
                // ONNX's Add is binary: more inputs are summed left to right.
                let mut acc = x.to_string();
                for (k, y) in ins[1..].iter().enumerate() {
                    let last = k + 2 == ins.len();
                    let (name, o) = if last {
                        (id.to_string(), out.to_string())
                    } else {
                        (t(&format!("add{k}")), t(&format!("sum{k}")))
                    };
                    self.node("Add", name, &[&acc, y], &[&o], vec![]);
                    acc = o;
                }
            }
            Op::Concat => self.node("Concat", id, ins, &[out], vec![attr_int("axis", 1)]),
            Op::Subsample { stride } => {
                let starts = self.init_i64("const/slice_starts", &[2], &[0, 0]);
                let ends = self.init_i64("const/slice_ends", &[2], &[i64::MAX, i64::MAX]);
                let axes = self.init_i64("const/slice_axes", &[2], &[2, 3]);
                let steps = self.init_i64(t("steps"), &[2], &[*stride, *stride]);
                self.node("Slice", id, &[x, &starts, &ends, &axes, &steps], &[out], vec![]);
            }
            Op::PadChannels { before, after } => {
                let pads = self.init_i64(t("pads"), &[8], &[0, *before, 0, 0, 0, *after, 0, 0]);
                self.node("Pad", id, &[x, &pads], &[out], vec![]);
            }
            Op::Dropout { .. } | Op::Conv2d { .. } | Op::Linear { .. } | Op::BatchNorm { .. } => {
                return Err(Self::err(node, "not an operation without parameters (a bug in the writer)"));
            }
        }
        Ok(())
    }

    /// The whole graph in floating point (int8 weights dequantized, or linear layers on
    /// dynamic int8); returns the tensor of the last node.
    pub fn emit_float(&mut self) -> Result<String, ExportError> {
        let graph = self.graph;
        let index = graph.index();
        let mut vals: Vec<String> = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let ins: Vec<String> = node
                .inputs
                .iter()
                .map(|i| index.get(i.as_str()).map_or_else(|| Self::tensor_of(i), |&j| vals[j].clone()))
                .collect();
            let out = Self::tensor_of(&node.id);
            match &node.op {
                Op::Dropout { .. } => {
                    self.counts.dropouts += 1;
                    vals.push(ins[0].clone());
                    continue;
                }
                Op::Conv2d { .. } => {
                    let w = self.float_weight(node, "weight")?;
                    let mut conv_ins = vec![ins[0].clone(), w];
                    conv_ins.extend(self.float_bias(node)?);
                    let conv_ins: Vec<&str> = conv_ins.iter().map(String::as_str).collect();
                    self.conv(node, &node.id, &conv_ins, &out);
                }
                Op::Linear { .. } => self.linear(node, &ins[0], &out)?,
                Op::BatchNorm { .. } => self.batch_norm(node, &ins[0], &out)?,
                _ => {
                    let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                    self.plain(node, &ins, &out)?;
                }
            }
            vals.push(out);
        }
        Ok(vals.pop().expect("graphs have nodes"))
    }

    /// The notes about what was written.
    pub fn notes(&self) -> Vec<String> {
        let c = &self.counts;
        let mut notes = Vec::new();
        for ty in ["FLOAT16", "BFLOAT16"] {
            let n = c.half.iter().filter(|&&t| t == ty).count();
            if n > 0 {
                notes.push(format!(
                    "{n} weight tensor(s) stored as {ty}, each with a Cast to FLOAT: fp32 arithmetic, as \
                     slimbench computes half-precision files on CPUs"
                ));
            }
        }
        if c.weight_only > 0 {
            notes.push(format!(
                "{} int8 weight tensor(s), each with a DequantizeLinear: fp32 arithmetic on the dequantized \
                 weights",
                c.weight_only
            ));
        }
        if c.dynamic > 0 && self.reduce_range {
            notes.push(format!(
                "{} linear layer(s) on dynamic int8: each input quantized per call over the whole batch to 7 \
                 bits as fbgemm does (ReduceMin/ReduceMax + QuantizeLinear; DynamicQuantizeLinear would use 8), \
                 then MatMulInteger (ONNX Runtime: MatMulIntegerToFloat)",
                c.dynamic
            ));
        } else if c.dynamic > 0 {
            notes.push(format!(
                "{} linear layer(s) on dynamic int8: DynamicQuantizeLinear + MatMulInteger (ONNX Runtime fuses \
                 them into DynamicQuantizeMatMul)",
                c.dynamic
            ));
        }
        if c.qdq > 0 {
            notes.push(format!(
                "static int8 in QDQ form: {} layer(s) between QuantizeLinear/DequantizeLinear at slimbench's \
                 calibrated grids (ONNX Runtime: QLinearConv/QGemm)",
                c.qdq
            ));
        }
        if c.qdq > 0 && c.int32_biases == 0 {
            notes.push(
                "biases of int8 layers fp32, as fbgemm adds them (ONNX Runtime quantizes them to int32 at input x \
                 weight scale when it fuses the layers: at most half an accumulator step apart)"
                    .to_string(),
            );
        }
        if c.int32_biases > 0 {
            notes.push(format!(
                "{} bias(es) of int8 layers as int32 at input x weight scale, which QLinearConv/QGemm need \
                 (fbgemm adds them in fp32: at most half an accumulator step apart)",
                c.int32_biases
            ));
        }
        if !c.qdq_fp32.is_empty() {
            notes
                .push(format!("kept in fp32 between a dequantize and a quantize: {}", c.qdq_fp32.join(", ")));
        }
        if c.dropouts > 0 {
            notes.push(format!("{} dropout node(s) left out (identity at inference)", c.dropouts));
        }
        notes
    }

    /// The model: `last` renamed to the output, input and output declared.
    pub fn finish(mut self, last: &str, opts: &ExportOptions) -> ModelProto {
        let produced = self.nodes.iter().any(|n| n.output.iter().any(|o| o == last));
        if produced {
            for n in &mut self.nodes {
                for t in n.input.iter_mut().chain(n.output.iter_mut()) {
                    if t == last {
                        *t = OUTPUT_NAME.to_string();
                    }
                }
            }
        } else {
            self.node("Identity", "output", &[last], &[OUTPUT_NAME], vec![]);
        }
        let [c, h, w] = self.graph.input;
        let classes = self.shapes.last().and_then(|s| s.first()).copied().unwrap_or(0);
        let graph = GraphProto {
            name: if opts.name.is_empty() { "slimbench".into() } else { opts.name.clone() },
            node: self.nodes,
            initializer: self.inits,
            input: vec![value_info(INPUT_NAME, &[None, Some(c), Some(h), Some(w)])],
            output: vec![value_info(OUTPUT_NAME, &[None, Some(classes)])],
            ..Default::default()
        };
        ModelProto {
            ir_version: EXPORT_IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: EXPORT_OPSET,
                ..Default::default()
            }],
            producer_name: "slimbench".into(),
            producer_version: opts.producer_version.clone(),
            graph: Some(graph).into(),
            metadata_props: opts
                .metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: k.clone(),
                    value: v.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// A float tensor's declaration; `None` dimensions are the symbolic batch.
fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam(BATCH_DIM.into()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor {
        elem_type: dt::FLOAT,
        shape: Some(TensorShapeProto { dim, ..Default::default() }).into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() })
            .into(),
        ..Default::default()
    }
}
