//! Static int8 in the QDQ format, mirroring slimbench's static int8 chain
//! (`slimbench_models::int8::StaticChain`) node by node:
//!
//! * every value is either *int8* (held as `QuantizeLinear` -> `DequantizeLinear` at
//!   its grid; consumers read the dequantized tensor) or *fp32*, possibly with the grid
//!   it would be quantized to (the image's, a layer kept in fp32's calibrated output);
//! * a convolution or linear layer with int8 weights reads its input in int8
//!   (quantizing an fp32 one at its grid), computes with `DequantizeLinear`'d int8
//!   weights (axis 0 per channel) and an int32 bias at input scale x weight scale, its
//!   ReLU (when it is the layer's only reader) fused, and quantizes its output at its
//!   calibrated point (`<layer>.lr_in` between the factors of a low-rank layer);
//! * a residual add reads int8 inputs and requantizes at its point, pairwise;
//! * max/average pools, flatten, reshape and ReLU keep an int8 value on its grid
//!   (requantized at the same grid after the op, which ONNX Runtime drops or fuses);
//!   dropout is left out;
//! * batch norm, subsample and channel padding, concat and other activations, and the
//!   layers with float weights (kept in fp32) compute in fp32 on dequantized values.
//!
//! ONNX Runtime fuses `DQ -> Conv -> (Relu) -> Q` into `QLinearConv`, `DQ -> Gemm -> Q`
//! into `QGemm`, `DQ, DQ -> Add -> Q` into `QLinearAdd`, and runs max pools on uint8.

use std::collections::HashMap;

use slimbench_graph::{Activation, INPUT, Node, Op};

use super::emit::{Emitter, attr_int};
use super::{ActQuant, ExportError, StaticSpec, WeightData};
use crate::tensor::dt;

/// A value as the chain holds it.
#[derive(Debug, Clone)]
struct Val {
    /// The fp32 tensor (the dequantized one for an int8 value).
    name: String,
    /// Whether it is held in int8 (at `grid`).
    int8: bool,
    /// Its grid, or the grid it would be quantized to.
    grid: Option<(String, ActQuant)>,
}

/// For each node, whether it is a ReLU fused into the layer before it: it reads only
/// that layer, and nothing else reads the layer (`slimbench_models::ops::fused_relus`).
fn fused_relus(nodes: &[Node], readers: &[Vec<usize>]) -> Vec<bool> {
    (0..nodes.len())
        .map(|i| {
            i > 0
                && nodes[i].op == (Op::Act { f: Activation::Relu })
                && nodes[i - 1].op.is_layer()
                && nodes[i].inputs == [nodes[i - 1].id.clone()]
                && readers[i - 1] == [i]
        })
        .collect()
}

struct Qdq<'s> {
    spec: &'s StaticSpec,
    /// fp32 tensor -> its quantized-and-dequantized twin, once per tensor.
    quantized: HashMap<String, String>,
}

impl Qdq<'_> {
    fn point(&self, name: &str) -> Option<(String, ActQuant)> {
        self.spec.activations.get(name).map(|q| (name.to_string(), *q))
    }

    fn need_point(&self, node: &Node, name: &str) -> Result<(String, ActQuant), ExportError> {
        let p = self.point(name).ok_or_else(|| {
            Emitter::err(node, format!("no calibrated quantization for the activation point `{name}`"))
        })?;
        let scale_ok = p.1.scale > 0.0 && p.1.scale.is_finite();
        if !(0..=255).contains(&p.1.zero_point) || !scale_ok {
            return Err(Emitter::err(
                node,
                format!(
                    "activation point `{name}` has scale {} and zero point {}: uint8 needs a positive scale and \
                     a zero point in 0..=255",
                    p.1.scale, p.1.zero_point
                ),
            ));
        }
        Ok(p)
    }

    /// The scale and zero point initializers of a grid.
    fn qparams(e: &mut Emitter<'_>, (point, q): &(String, ActQuant)) -> (String, String) {
        let s = e.init_f32(format!("{point}/scale"), &[], &[q.scale as f32]);
        let z = e.init(format!("{point}/zero_point"), dt::UINT8, &[], vec![q.zero_point as u8]);
        (s, z)
    }

    /// `x` quantized at `grid` and dequantized again, as `out` (the Q and DQ nodes
    /// named `<name>/quantize`, `<name>/dequantize`).
    fn qdq(e: &mut Emitter<'_>, name: &str, x: &str, grid: &(String, ActQuant), out: &str) {
        let (s, z) = Self::qparams(e, grid);
        let q = format!("{out}/quantized");
        e.node("QuantizeLinear", format!("{name}/quantize"), &[x, &s, &z], &[&q], vec![]);
        e.node("DequantizeLinear", format!("{name}/dequantize"), &[&q, &s, &z], &[out], vec![]);
    }

    /// The tensor a node reads an input through in int8 (an fp32 value quantized at
    /// its grid, once), and the grid.
    fn int8_input(
        &mut self,
        e: &mut Emitter<'_>,
        node: &Node,
        v: &Val,
    ) -> Result<(String, ActQuant), ExportError> {
        if v.int8 {
            return Ok((v.name.clone(), v.grid.as_ref().expect("int8 values have a grid").1));
        }
        let grid = v.grid.clone().ok_or_else(|| {
            Emitter::err(node, format!("it reads `{}`, a value with no calibrated int8 grid", v.name))
        })?;
        let name = match self.quantized.get(&v.name) {
            Some(n) => n.clone(),
            None => {
                let out = format!("{}/int8", v.name);
                Self::qdq(e, &v.name, &v.name, &grid, &out);
                self.quantized.insert(v.name.clone(), out.clone());
                out
            }
        };
        Ok((name, grid.1))
    }

    /// A convolution or linear layer on int8: weights, bias (fp32, or int32 at input
    /// scale x weight scale with [`StaticSpec::int32_bias`]), the layer, its fused
    /// ReLU, the quantized output. Returns the output value.
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        e: &mut Emitter<'_>,
        node: &Node,
        name: &str,
        x: &(String, ActQuant),
        weight: &super::Weight,
        with_bias: bool,
        relu: Option<&str>,
        point: &str,
        out: &str,
    ) -> Result<Val, ExportError> {
        let grid = self.need_point(node, point)?;
        let WeightData::Int8 { scales, values } = &weight.data else { unreachable!("int8 layers") };
        // A channel whose integers are all 0 may take any scale: give it one its bias
        // fits under at input scale x weight scale (a pruned channel's is 1e-12 / 127),
        // where it is stored, or where a runtime quantizes it (ONNX Runtime does).
        let per = values.len() / weight.shape[0].max(1) as usize;
        let mut scales = scales.clone();
        let x_scale = x.1.scale as f32;
        let bias = if with_bias { Some(e.weight(node, "bias")?) } else { None };
        let bias_values: Option<Vec<f32>> = match bias.map(|b| &b.data) {
            Some(WeightData::F32(v)) => Some(v.clone()),
            Some(_) => return Err(Emitter::err(node, "the bias of an int8 layer must be fp32")),
            None => None,
        };
        if let Some(b) = &bias_values
            && scales.len() > 1
        {
            for (c, s) in scales.iter_mut().enumerate() {
                let zero = values[c * per..(c + 1) * per].iter().all(|&v| v == 0);
                if zero && (f64::from(b[c]) / f64::from(x_scale * *s)).abs() > f64::from(i32::MAX / 2) {
                    *s = 1.0;
                }
            }
        }
        let w = super::Weight {
            name: weight.name.clone(),
            shape: weight.shape.clone(),
            data: WeightData::Int8 { values: values.clone(), scales: scales.clone() },
        };
        let (q, s, z, per_channel) = e.int8_parts(&w, false);
        let axis = if per_channel { vec![attr_int("axis", 0)] } else { vec![] };
        let wd = format!("{}/dequantized", w.name);
        e.node("DequantizeLinear", format!("{name}/dequantize_weight"), &[&q, &s, &z], &[&wd], axis.clone());
        let mut ins = vec![x.0.clone(), wd];
        if bias_values.is_some() && !self.spec.int32_bias {
            ins.push(e.float_weight(node, "bias")?);
        } else if let Some(b) = &bias_values {
            let bscales: Vec<f32> = if per_channel {
                scales.iter().map(|&ws| x_scale * ws).collect()
            } else {
                vec![x_scale * scales[0]]
            };
            let mut bq = Vec::with_capacity(b.len());
            for (c, &v) in b.iter().enumerate() {
                let s = bscales[if per_channel { c } else { 0 }];
                let r = (f64::from(v) / f64::from(s)).round();
                if r.abs() > f64::from(i32::MAX) {
                    return Err(Emitter::err(
                        node,
                        format!(
                            "bias {v} of output channel {c} does not fit int32 at input scale x weight scale = {s:e}"
                        ),
                    ));
                }
                bq.push(r as i32);
            }
            let bname = format!("{}.bias", node.id);
            let sdims: Vec<i64> = if per_channel { vec![bscales.len() as i64] } else { vec![] };
            let bq = e.init(
                format!("{bname}/int32"),
                dt::INT32,
                &[b.len() as i64],
                bq.iter().flat_map(|v| v.to_le_bytes()).collect(),
            );
            let bs = e.init_f32(format!("{bname}/scale"), &sdims, &bscales);
            let bz = e.init(format!("{bname}/zero_point"), dt::INT32, &sdims, vec![0; 4 * bscales.len()]);
            let bd = format!("{bname}/dequantized");
            e.node("DequantizeLinear", format!("{name}/dequantize_bias"), &[&bq, &bs, &bz], &[&bd], axis);
            ins.push(bd);
            e.counts.int32_biases += 1;
        }
        let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
        let raw = format!("{name}/fp32");
        match node.op {
            Op::Conv2d { .. } => e.conv(node, name, &ins, &raw),
            _ => e.gemm(name, &ins, &raw),
        }
        let pre_q = match relu {
            Some(relu_id) => {
                let r = format!("{relu_id}/fp32");
                e.node("Relu", relu_id, &[&raw], &[&r], vec![]);
                r
            }
            None => raw,
        };
        Self::qdq(e, name, &pre_q, &grid, out);
        e.counts.qdq += 1;
        Ok(Val { name: out.to_string(), int8: true, grid: Some(grid) })
    }
}

/// Writes the graph as static int8 QDQ; returns the last tensor.
pub(super) fn emit(e: &mut Emitter<'_>, spec: &StaticSpec) -> Result<String, ExportError> {
    let graph = e.graph;
    let nodes = &graph.nodes;
    let index = graph.index();
    let readers = graph.consumers();
    let fused = fused_relus(nodes, &readers);
    let mut st = Qdq { spec, quantized: HashMap::new() };
    let input_grid = st.point(INPUT).ok_or_else(|| {
        ExportError::Weights("no calibrated quantization for the activation point `input` (the image)".into())
    })?;
    let input = Val { name: Emitter::tensor_of(INPUT), int8: false, grid: Some(input_grid) };
    let mut vals: Vec<Option<Val>> = vec![None; nodes.len()];
    let mut last = None;
    for (i, node) in nodes.iter().enumerate() {
        if fused[i] {
            continue;
        }
        let relu = i + 1 < nodes.len() && fused[i + 1];
        let slot = if relu { i + 1 } else { i };
        let relu_id = relu.then_some(nodes[slot].id.as_str());
        let out = Emitter::tensor_of(&nodes[slot].id);
        let src: Vec<Val> = node
            .inputs
            .iter()
            .map(|id| match index.get(id.as_str()) {
                Some(&j) => vals[j].clone().expect("inputs come first"),
                None => input.clone(),
            })
            .collect();
        let id = node.id.as_str();
        let int8_weights = node.op.is_layer()
            && match &node.op {
                Op::Conv2d { .. } => e.weight(node, "weight")?.data.is_int8(),
                _ => e.linear_weights(node)?.iter().all(|w| w.data.is_int8()),
            };
        let val = match &node.op {
            Op::Conv2d { bias, .. } if int8_weights => {
                let x = st.int8_input(e, node, &src[0])?;
                let w = e.weight(node, "weight")?;
                st.layer(e, node, id, &x, w, *bias, relu_id, id, &out)?
            }
            Op::Linear { bias, .. } if int8_weights => {
                let weights = e.linear_weights(node)?;
                let (mut x, mut xq) = st.int8_input(e, node, &src[0])?;
                let n = weights.len();
                let mut v = None;
                for (k, w) in weights.into_iter().enumerate() {
                    let outer = k + 1 == n;
                    let (name, point, o) = if outer {
                        (id.to_string(), id.to_string(), out.clone())
                    } else {
                        (format!("{id}/lr_in"), format!("{id}.lr_in"), format!("{id}/lr_in"))
                    };
                    let r = if outer { relu_id } else { None };
                    let y = st.layer(e, node, &name, &(x, xq), w, *bias && outer, r, &point, &o)?;
                    xq = y.grid.as_ref().expect("int8").1;
                    x = y.name.clone();
                    v = Some(y);
                }
                v.expect("a layer has weights")
            }
            Op::Conv2d { .. } | Op::Linear { .. } => {
                // Kept in fp32.
                let x = src[0].name.clone();
                let raw = if relu { format!("{id}/fp32") } else { out.clone() };
                if let Op::Conv2d { .. } = node.op {
                    let w = e.float_weight(node, "weight")?;
                    let mut ins = vec![x, w];
                    ins.extend(e.float_bias(node)?);
                    let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
                    e.conv(node, id, &ins, &raw);
                } else {
                    let dynamic = std::mem::replace(&mut e.dynamic, false);
                    e.linear(node, &x, &raw)?;
                    e.dynamic = dynamic;
                }
                if relu {
                    e.node("Relu", nodes[slot].id.as_str(), &[&raw], &[&out], vec![]);
                }
                e.counts.qdq_fp32.push(id.to_string());
                Val { name: out, int8: false, grid: st.point(id) }
            }
            Op::BatchNorm { .. } => {
                e.batch_norm(node, &src[0].name, &out)?;
                Val { name: out, int8: false, grid: None }
            }
            Op::Add => {
                let grid = st.need_point(node, id)?;
                let ins = src
                    .iter()
                    .map(|v| st.int8_input(e, node, v).map(|x| x.0))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut acc = ins[0].clone();
                for (k, y) in ins[1..].iter().enumerate() {
                    let last = k + 2 == ins.len();
                    let (name, o) = if last {
                        (id.to_string(), out.clone())
                    } else {
                        (format!("{id}/add{k}"), format!("{id}/sum{k}"))
                    };
                    let raw = format!("{name}/fp32");
                    e.node("Add", name.as_str(), &[&acc, y], &[&raw], vec![]);
                    Qdq::qdq(e, &name, &raw, &grid, &o);
                    acc = o;
                }
                Val { name: out, int8: true, grid: Some(grid) }
            }
            Op::Dropout { .. } => {
                e.counts.dropouts += 1;
                src[0].clone()
            }
            Op::Pool { .. }
            | Op::GlobalAvgPool
            | Op::Flatten
            | Op::Reshape { .. }
            | Op::Act { f: Activation::Relu } => {
                // On int8 values: the same grid out (quint8 in libtorch), else fp32.
                let d = &src[0];
                if d.int8 {
                    let raw = format!("{id}/fp32");
                    e.plain(node, &[&d.name], &raw)?;
                    let grid = d.grid.clone().expect("int8 values have a grid");
                    Qdq::qdq(e, id, &raw, &grid, &out);
                    Val { name: out, int8: true, grid: Some(grid) }
                } else {
                    e.plain(node, &[&d.name], &out)?;
                    let grid = if matches!(node.op, Op::Act { .. }) {
                        st.point(id).or(d.grid.clone())
                    } else {
                        d.grid.clone()
                    };
                    Val { name: out, int8: false, grid }
                }
            }
            Op::Subsample { .. } | Op::PadChannels { .. } => {
                // In fp32; the grid still holds (zero padding is exact on it).
                e.plain(node, &[&src[0].name], &out)?;
                Val { name: out, int8: false, grid: src[0].grid.clone() }
            }
            Op::Concat | Op::Act { .. } => {
                let ins: Vec<&str> = src.iter().map(|v| v.name.as_str()).collect();
                e.plain(node, &ins, &out)?;
                Val { name: out, int8: false, grid: st.point(id) }
            }
        };
        vals[slot] = Some(val.clone());
        last = Some(val);
    }
    Ok(last.expect("graphs have nodes").name)
}
