//! Static int8: a model's whole chain on fbgemm's quantized kernels, and its
//! fake-quantized twin in fp32.
//!
//! Weights are symmetric `qint8` (zero point 0), per output channel or per tensor;
//! activations are affine `quint8` at the calibrated [`QParams`] of each activation
//! point ([`crate::ops`]), using 7 bits when `reduce_range` (fbgemm's requirement on
//! CPUs without VNNI). [`StaticChain`] quantizes the image once, runs every quantized
//! convolution and linear layer with its ReLU fused (`quantized::conv2d_relu`,
//! `quantized::linear_relu`), max-pools, average-pools and flattens int8 tensors, and
//! dequantizes the logits. A layer kept in fp32 (accuracy-aware quantization) gets a
//! dequantize before it and a quantize after it.
//!
//! [`FakeQuant`] computes what that chain computes, in fp32: each quantized layer's
//! weight rounded to its int8 grid, and each activation the chain holds in int8
//! rounded to its grid ([`fake_quant_act`], [`fake_quant_weight`]: the straight-through
//! estimators quantization-aware training differentiates through).

use std::collections::{BTreeMap, HashSet};

use slimbench_core::artifact::{QParams, StaticQuant};
use slimbench_torch_ext::quantized::{
    PackedConv, PackedLinear, quantize_weight_with, quantized_add, weight_scales,
};
use tch::{Kind, Tensor};

use slimbench_graph::{Activation, Op as NodeOp, PoolKind};

use crate::layers::Geometry;
use crate::ops::{self, Op, Step as GraphStep, Tap};

/// Largest quint8 activation value: 127 with `reduce_range`, else 255.
pub fn act_qmax(reduce_range: bool) -> i64 {
    if reduce_range { 127 } else { 255 }
}

/// The quint8 scale and zero point covering `[min, max]` (widened to include 0, so
/// that zero padding and ReLU's zeros are exact).
pub fn act_qparams(min: f64, max: f64, reduce_range: bool) -> QParams {
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    let qmax = act_qmax(reduce_range);
    let scale = ((hi - lo) / qmax as f64).max(1e-8);
    let zero_point = ((-lo / scale).round() as i64).clamp(0, qmax);
    QParams { scale, zero_point }
}

/// `x` rounded to the quint8 grid of `q` and back (gradients pass straight through
/// inside the range).
pub fn fake_quant_act(x: &Tensor, q: QParams, reduce_range: bool) -> Tensor {
    x.fake_quantize_per_tensor_affine(q.scale, q.zero_point, 0, act_qmax(reduce_range))
}

/// `w` rounded to its symmetric int8 grid and back, per output channel or per tensor;
/// the scales are taken from `w` without gradient, which passes straight through.
pub fn fake_quant_weight(w: &Tensor, per_channel: bool) -> Tensor {
    let scales = weight_scales(w, per_channel).to_kind(Kind::Float);
    if per_channel && w.dim() > 1 {
        let zp = Tensor::zeros([w.size()[0]], (Kind::Int, w.device()));
        w.fake_quantize_per_channel_affine(&scales, &zp, 0, -128, 127)
    } else {
        w.fake_quantize_per_tensor_affine(scales.double_value(&[0]), 0, -128, 127)
    }
}

/// The activation points a model with the layers `fp32` kept in fp32 holds in int8:
/// those a quantized layer writes or reads, and every join (residual add, concat,
/// unfused activation), where the model requantizes.
pub fn active_points(ops: &[GraphStep<'_>], fp32: &[String]) -> HashSet<String> {
    let quantized = |l: &Option<String>| l.as_ref().is_some_and(|l| !fp32.contains(l));
    ops::points(ops)
        .into_iter()
        .filter(|p| p.join || quantized(&p.producer) || quantized(&p.consumer))
        .map(|p| p.name)
        .collect()
}

fn qparams_of<'a>(sq: &'a StaticQuant, point: &str) -> Result<&'a QParams, String> {
    sq.activations
        .get(point)
        .ok_or_else(|| format!("no calibrated quantization for the activation point `{point}`"))
}

/// How one node runs in the static int8 model.
#[derive(Debug)]
enum Exec {
    /// fbgemm's int8 convolution (ReLU fused when `relu`), quint8 in and out.
    QConv { conv: PackedConv, relu: bool, out: QParams },
    /// fbgemm's int8 linear layer(s): one, or a low-rank layer's two factors.
    QLinear { layers: Vec<(PackedLinear, bool, QParams)> },
    /// A convolution kept in fp32.
    Conv { w: Tensor, b: Option<Tensor>, geometry: Geometry, relu: bool },
    /// A linear layer kept in fp32 (its factors in order).
    Linear { layers: Vec<(Tensor, Option<Tensor>)>, relu: bool },
    /// Batch norm that could not be folded into a convolution, in fp32.
    Norm { scale: Tensor, shift: Tensor },
    /// fbgemm's quantized add of the inputs.
    QAdd { out: QParams },
    /// An operation without parameters, on int8 or fp32 values as they come.
    Plain(NodeOp),
}

/// One node: what it runs, what it reads (by value slot; `None` the image) and how each
/// input is converted first.
#[derive(Debug)]
struct Node {
    exec: Exec,
    inputs: Vec<(Option<usize>, Convert)>,
    slot: usize,
}

/// A conversion of an input before a node reads it.
#[derive(Debug, Clone, Copy)]
enum Convert {
    None,
    Quantize(QParams),
    Dequantize,
}

/// Where a value lives: int8 (quint8 at its grid) or fp32, and the grid it would be
/// quantized to (its activation point's, or what it inherits through pooling).
#[derive(Debug, Clone, Copy)]
struct Domain {
    int8: bool,
    grid: Option<QParams>,
}

/// A model's forward pass on fbgemm's static int8 kernels, for any graph: every
/// convolution and linear layer not kept in fp32 runs in int8 (ReLU fused where it
/// follows), residual adds on `quantized::add`, pooling and flatten on int8 values;
/// batch norm (when not folded), other activations and concats run in fp32 between a
/// dequantize and a requantize at their calibrated point.
#[derive(Debug)]
pub struct StaticChain {
    nodes: Vec<Node>,
    output: usize,
    output_int8: bool,
    slots: usize,
}

impl StaticChain {
    /// Build from a model's steps (fp32 weights on the CPU), its calibration, and the
    /// layers to keep in fp32.
    pub fn build(steps: &[GraphStep<'_>], sq: &StaticQuant, fp32: &[String]) -> Result<Self, String> {
        let _guard = tch::no_grad_guard();
        let e = |layer: &str, err: &dyn std::fmt::Display| format!("layer `{layer}`: {err}");
        let fused = ops::fused_relus(steps);
        let keep = |l: &str| fp32.iter().any(|x| x == l);
        let input = Domain { int8: false, grid: Some(*qparams_of(sq, ops::INPUT)?) };
        let mut dom: Vec<Option<Domain>> = vec![None; steps.len()];
        let mut nodes = Vec::new();
        let mut last = 0;
        for (i, step) in steps.iter().enumerate() {
            if fused[i] {
                continue;
            }
            let relu = i + 1 < steps.len() && fused[i + 1];
            let slot = if relu { i + 1 } else { i };
            let src: Vec<(Option<usize>, Domain)> = step
                .inputs
                .iter()
                .map(|&j| (j, j.map_or(Some(input), |j| dom[j]).expect("inputs run first")))
                .collect();
            let to_int8 = |(j, d): (Option<usize>, Domain)| -> Result<(Option<usize>, Convert), String> {
                if d.int8 {
                    return Ok((j, Convert::None));
                }
                let grid = d.grid.ok_or_else(|| {
                    format!("node `{}` reads a value with no calibrated int8 grid", step.id)
                })?;
                Ok((j, Convert::Quantize(grid)))
            };
            let to_fp32 = |(j, d): (Option<usize>, Domain)| {
                (j, if d.int8 { Convert::Dequantize } else { Convert::None })
            };
            let point = |name: &str| sq.activations.get(name).copied();
            let (exec, inputs, out) = match step.op {
                Op::Conv(c) if !keep(c.name()) => {
                    let wq = quantize_weight_with(&c.weight().detach().contiguous(), sq.per_channel)
                        .map_err(|x| e(c.name(), &x))?;
                    let g = c.geometry();
                    let bias = c.bias().map(Tensor::detach);
                    let conv = PackedConv::new(&wq, bias.as_ref(), g.stride, g.padding, g.dilation, g.groups)
                        .map_err(|x| e(c.name(), &x))?;
                    let out = *qparams_of(sq, c.name())?;
                    (
                        Exec::QConv { conv, relu, out },
                        vec![to_int8(src[0])?],
                        Domain { int8: true, grid: Some(out) },
                    )
                }
                Op::Linear(d) if !keep(d.name()) => {
                    let weights = d.weights();
                    let n = weights.len();
                    let mut layers = Vec::new();
                    let mut out = None;
                    for (k, (name, w)) in weights.into_iter().enumerate() {
                        let wq = quantize_weight_with(&w.detach().contiguous(), sq.per_channel)
                            .map_err(|x| e(&name, &x))?;
                        let outer = k + 1 == n;
                        let bias = if outer { d.bias().map(Tensor::detach) } else { None };
                        let lin = PackedLinear::int8(&wq, bias.as_ref()).map_err(|x| e(&name, &x))?;
                        let p = if outer { d.name().to_string() } else { format!("{}.lr_in", d.name()) };
                        let q = *qparams_of(sq, &p)?;
                        layers.push((lin, relu && outer, q));
                        out = Some(q);
                    }
                    (Exec::QLinear { layers }, vec![to_int8(src[0])?], Domain { int8: true, grid: out })
                }
                Op::Conv(c) => {
                    let (w, b) = (c.weight().detach(), c.bias().map(Tensor::detach));
                    let exec = Exec::Conv { w, b, geometry: c.geometry(), relu };
                    (exec, vec![to_fp32(src[0])], Domain { int8: false, grid: point(c.name()) })
                }
                Op::Linear(d) => {
                    let weights = d.weights();
                    let n = weights.len();
                    let layers = weights
                        .into_iter()
                        .enumerate()
                        .map(|(k, (_, w))| {
                            (w.detach(), if k + 1 == n { d.bias().map(Tensor::detach) } else { None })
                        })
                        .collect();
                    (
                        Exec::Linear { layers, relu },
                        vec![to_fp32(src[0])],
                        Domain { int8: false, grid: point(d.name()) },
                    )
                }
                Op::BatchNorm(norm) => {
                    let (scale, shift) = norm.affine();
                    let exec = Exec::Norm { scale: scale.detach(), shift: shift.detach() };
                    (exec, vec![to_fp32(src[0])], Domain { int8: false, grid: None })
                }
                Op::Plain(NodeOp::Add) => {
                    let out = *qparams_of(sq, step.id)?;
                    let inputs = src.iter().map(|&s| to_int8(s)).collect::<Result<Vec<_>, _>>()?;
                    (Exec::QAdd { out }, inputs, Domain { int8: true, grid: Some(out) })
                }
                Op::Plain(
                    op @ (NodeOp::Pool { .. }
                    | NodeOp::GlobalAvgPool
                    | NodeOp::Flatten
                    | NodeOp::Reshape { .. }
                    | NodeOp::Dropout { .. }
                    | NodeOp::Act { f: Activation::Relu }),
                ) => {
                    // quint8 in, quint8 out on the same grid (ReLU's zeros are exact).
                    let d = src[0].1;
                    let grid = if matches!(op, NodeOp::Act { .. }) && !d.int8 {
                        point(step.id).or(d.grid)
                    } else {
                        d.grid
                    };
                    (Exec::Plain(op.clone()), vec![(src[0].0, Convert::None)], Domain { int8: d.int8, grid })
                }
                Op::Plain(op @ (NodeOp::Subsample { .. } | NodeOp::PadChannels { .. })) => {
                    // In fp32; the grid still holds (zero padding is exact on it).
                    let grid = src[0].1.grid;
                    (Exec::Plain(op.clone()), vec![to_fp32(src[0])], Domain { int8: false, grid })
                }
                Op::Plain(op) => {
                    let inputs = src.iter().map(|&s| to_fp32(s)).collect();
                    (Exec::Plain(op.clone()), inputs, Domain { int8: false, grid: point(step.id) })
                }
            };
            dom[slot] = Some(out);
            nodes.push(Node { exec, inputs, slot });
            last = slot;
        }
        let output_int8 = dom[last].is_some_and(|d| d.int8);
        Ok(StaticChain { nodes, output: last, output_int8, slots: steps.len() })
    }

    /// Logits for fp32 images.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, String> {
        let _guard = tch::no_grad_guard();
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let mut vals: Vec<Option<Tensor>> = (0..self.slots).map(|_| None).collect();
        for node in &self.nodes {
            let mut ins = Vec::with_capacity(node.inputs.len());
            for &(j, conv) in &node.inputs {
                let x = match j {
                    None => xs.shallow_clone(),
                    Some(j) => {
                        vals[j].as_ref().map(Tensor::shallow_clone).ok_or("a value read before it ran")?
                    }
                };
                ins.push(match conv {
                    Convert::None => x,
                    Convert::Quantize(q) => {
                        x.f_quantize_per_tensor(q.scale, q.zero_point, Kind::QUInt8).map_err(|e| err(&e))?
                    }
                    Convert::Dequantize => x.f_dequantize().map_err(|e| err(&e))?,
                });
            }
            let x = &ins[0];
            let y = match &node.exec {
                Exec::QConv { conv, relu, out } => {
                    conv.forward(x, out.scale, out.zero_point, *relu).map_err(|e| err(&e))?
                }
                Exec::QLinear { layers } => {
                    let mut h = x.shallow_clone();
                    for (lin, relu, q) in layers {
                        h = lin.forward_static(&h, q.scale, q.zero_point, *relu).map_err(|e| err(&e))?;
                    }
                    h
                }
                Exec::Conv { w, b, geometry: g, relu } => {
                    let y = x
                        .f_conv2d(w, b.as_ref(), g.stride, g.padding, g.dilation, g.groups)
                        .map_err(|e| err(&e))?;
                    if *relu { y.relu() } else { y }
                }
                Exec::Linear { layers, relu } => {
                    let mut h = x.shallow_clone();
                    for (w, b) in layers {
                        h = h.f_linear(w, b.as_ref()).map_err(|e| err(&e))?;
                    }
                    if *relu { h.relu() } else { h }
                }
                Exec::Norm { scale, shift } => {
                    let shape: Vec<i64> = std::iter::once(-1)
                        .chain(std::iter::repeat_n(1, x.dim().saturating_sub(2)))
                        .collect();
                    x * scale.view(shape.as_slice()) + shift.view(shape.as_slice())
                }
                Exec::QAdd { out } => {
                    let mut acc = x.shallow_clone();
                    for other in &ins[1..] {
                        acc = quantized_add(&acc, other, out.scale, out.zero_point, false)
                            .map_err(|e| err(&e))?;
                    }
                    acc
                }
                Exec::Plain(NodeOp::Pool { kind: PoolKind::Max, kernel, stride, padding }) => {
                    x.f_max_pool2d(kernel, stride, padding, [1, 1], false).map_err(|e| err(&e))?
                }
                Exec::Plain(NodeOp::Pool { kind: PoolKind::Avg, kernel, stride, padding }) => {
                    x.f_avg_pool2d(kernel, stride, padding, false, true, None).map_err(|e| err(&e))?
                }
                Exec::Plain(NodeOp::GlobalAvgPool) => x.f_adaptive_avg_pool2d([1, 1]).map_err(|e| err(&e))?,
                Exec::Plain(NodeOp::Flatten) => x.f_flatten(1, -1).map_err(|e| err(&e))?,
                Exec::Plain(NodeOp::Dropout { .. }) => x.shallow_clone(),
                Exec::Plain(NodeOp::Act { f: Activation::Relu }) => x.f_relu().map_err(|e| err(&e))?,
                Exec::Plain(op) => ops::apply(op, &ins, false),
            };
            vals[node.slot] = Some(y);
        }
        let y = vals[self.output].take().ok_or("the model produced no output")?;
        if self.output_int8 { y.f_dequantize().map_err(|e| err(&e)) } else { Ok(y) }
    }

    /// How many convolution and linear steps run in int8, and how many in fp32.
    pub fn counts(&self) -> (usize, usize) {
        let q = self
            .nodes
            .iter()
            .map(|n| match &n.exec {
                Exec::QConv { .. } => 1,
                Exec::QLinear { layers } => layers.len(),
                _ => 0,
            })
            .sum();
        let f = self
            .nodes
            .iter()
            .map(|n| match &n.exec {
                Exec::Conv { .. } => 1,
                Exec::Linear { layers, .. } => layers.len(),
                _ => 0,
            })
            .sum();
        (q, f)
    }

    /// The nodes that run in fp32 between a dequantize and a requantize (besides the
    /// layers kept in fp32): `(kind, count)`, for the notes.
    pub fn fp32_nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().any(|(_, c)| matches!(c, Convert::Dequantize)))
            .filter_map(|n| match &n.exec {
                Exec::Norm { .. } => Some("batch-norm".to_string()),
                Exec::Plain(op) => Some(op.kind().to_string()),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The fake-quantized form of a static int8 model.
#[derive(Debug)]
pub struct FakeQuant {
    /// Per weight (`conv`, `fc0.lr_in`): its fake-quantized copy, computed once.
    weights: BTreeMap<String, Tensor>,
    /// Active activation points and their grids.
    acts: BTreeMap<String, QParams>,
    reduce_range: bool,
}

impl FakeQuant {
    /// From a model's ops, its calibration and the layers kept in fp32.
    pub fn build(ops: &[GraphStep<'_>], sq: &StaticQuant, fp32: &[String]) -> Result<Self, String> {
        let _guard = tch::no_grad_guard();
        let mut weights = BTreeMap::new();
        for step in ops {
            match &step.op {
                Op::Conv(c) if !fp32.iter().any(|l| l == c.name()) => {
                    weights.insert(c.name().to_string(), fake_quant_weight(c.weight(), sq.per_channel));
                }
                Op::Linear(d) if !fp32.iter().any(|l| l == d.name()) => {
                    for (name, w) in d.weights() {
                        weights.insert(name, fake_quant_weight(w, sq.per_channel));
                    }
                }
                _ => {}
            }
        }
        let mut acts = BTreeMap::new();
        for point in active_points(ops, fp32) {
            acts.insert(point.clone(), *qparams_of(sq, &point)?);
        }
        Ok(FakeQuant { weights, acts, reduce_range: sq.reduce_range })
    }

    /// Number of fake-quantized weights.
    pub fn weight_count(&self) -> usize {
        self.weights.len()
    }
}

impl Tap for &FakeQuant {
    fn weight(&mut self, layer: &str, _w: &Tensor) -> Option<Tensor> {
        self.weights.get(layer).map(Tensor::shallow_clone)
    }

    fn activation(&mut self, point: &str, x: &Tensor) -> Option<Tensor> {
        self.acts.get(point).map(|q| fake_quant_act(x, *q, self.reduce_range))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Model;
    use slimbench_core::artifact::{IoShape, Kernel, ModelMeta};
    use slimbench_core::config::*;
    use tch::Device;

    /// A min-max calibration, as `slimbench-compress` does it.
    #[derive(Default)]
    struct MinMax(BTreeMap<String, (f64, f64)>);

    impl Tap for MinMax {
        fn activation(&mut self, point: &str, x: &Tensor) -> Option<Tensor> {
            let (lo, hi) = (x.min().double_value(&[]), x.max().double_value(&[]));
            let e = self.0.entry(point.to_string()).or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
            None
        }
    }

    fn calibrated(m: &Model, xs: &Tensor, per_channel: bool) -> ModelMeta {
        let mut mm = MinMax::default();
        let _ = tch::no_grad(|| m.forward_tapped(xs, false, &mut mm));
        let sq = StaticQuant {
            activations: mm.0.iter().map(|(k, (lo, hi))| (k.clone(), act_qparams(*lo, *hi, true))).collect(),
            per_channel,
            reduce_range: true,
            observer: "minmax".into(),
            calibration_samples: xs.size()[0] as u64,
        };
        ModelMeta {
            static_quant: Some(sq),
            ..ModelMeta::new("m", m.config.clone(), m.io, "d", "int8-static")
        }
    }

    fn rel(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-9)
    }

    const IO: IoShape = IoShape { channels: 1, height: 28, width: 28, classes: 10 };

    fn families() -> Vec<Model> {
        let configs = [
            ModelConfig::SeedCnn(SeedCnnConfig::default()),
            ModelConfig::Mlp(MlpConfig { hidden: vec![64, 32] }),
            ModelConfig::DsConv(DsConvConfig::default()),
            ModelConfig::Cnn(CnnConfig { channels: vec![8, 16], hidden: 32, dropout: 0.1 }),
        ];
        let mut models: Vec<Model> =
            configs.iter().map(|c| Model::build("m", c, IO, Device::Cpu, Some(11)).unwrap()).collect();
        // A low-rank factored layer too.
        let mut lr = Model::build("lr", &configs[1], IO, Device::Cpu, Some(12)).unwrap();
        let opts = (Kind::Float, Device::Cpu);
        lr.factorize("fc0", &(Tensor::randn([6, 784], opts) * 0.05), &(Tensor::randn([64, 6], opts) * 0.3))
            .unwrap();
        models.push(lr);
        models
    }

    #[test]
    fn the_static_chain_and_its_fake_twin_track_fp32_in_every_family() {
        tch::manual_seed(21);
        let xs = Tensor::rand([16, 1, 28, 28], (Kind::Float, Device::Cpu));
        for m in families() {
            let meta = calibrated(&m, &xs, true);
            let reference = tch::no_grad(|| m.forward(&xs));
            let q = m.try_clone().unwrap();
            let n = q.set_kernel(Kernel::Int8Static, &meta).unwrap();
            assert_eq!(n, m.layer_names().len() + usize::from(!m.factored().is_empty()), "{:?}", m.config);
            let y = tch::no_grad(|| q.forward(&xs));
            let e = rel(&y, &reference);
            assert!(e > 0.0 && e < 0.1, "{:?}: int8 vs fp32 relative error {e}", m.config);
            let f = m.try_clone().unwrap();
            f.set_kernel(Kernel::FakeQuant, &meta).unwrap();
            let yf = tch::no_grad(|| f.forward(&xs));
            // The simulation rounds (it is not fp32) and stays near the int8 chain (which
            // also rounds inside its kernels, after pooling, and in its own order).
            assert!(rel(&yf, &reference) > 0.0, "{:?}", m.config);
            assert!(rel(&yf, &y) < 0.05, "{:?}: fake vs real {}", m.config, rel(&yf, &y));
        }
    }

    #[test]
    fn layers_kept_in_fp32_compute_in_fp32() {
        tch::manual_seed(22);
        let xs = Tensor::rand([8, 1, 28, 28], (Kind::Float, Device::Cpu));
        let m = &families()[3];
        let mut meta = calibrated(m, &xs, false);
        meta.fp32_layers = m.layer_names();
        let q = m.try_clone().unwrap();
        assert_eq!(q.set_kernel(Kernel::Int8Static, &meta).unwrap(), 0);
        let reference = tch::no_grad(|| m.forward(&xs));
        assert!(rel(&tch::no_grad(|| q.forward(&xs)), &reference) < 1e-6);
        // Only the classifier in fp32: the rest stays int8, and says so.
        meta.fp32_layers = vec!["fc".into()];
        let q = m.try_clone().unwrap();
        assert_eq!(q.set_kernel(Kernel::Int8Static, &meta).unwrap(), 3);
        assert!(!active_points(&m.ops(), &meta.fp32_layers).contains("fc"));
        // Static int8 needs a calibration, and the CPU.
        let bare = ModelMeta { static_quant: None, ..meta };
        let e = m.try_clone().unwrap().set_kernel(Kernel::Int8Static, &bare).unwrap_err().to_string();
        assert!(e.contains("no static quantization"), "{e}");
    }

    #[test]
    fn activation_grids_cover_the_range_and_zero() {
        let q = act_qparams(-1.0, 3.0, true);
        assert!((q.scale - 4.0 / 127.0).abs() < 1e-12);
        assert_eq!(q.zero_point, 32);
        // A ReLU output: zero maps to 0 exactly.
        let r = act_qparams(0.5, 2.0, false);
        assert_eq!(r.zero_point, 0);
        assert!((r.scale - 2.0 / 255.0).abs() < 1e-12);
        // A constant zero activation still gets a usable scale.
        assert!(act_qparams(0.0, 0.0, true).scale > 0.0);
    }

    #[test]
    fn fake_quantization_rounds_to_the_grid_and_passes_gradients() {
        let w = Tensor::from_slice(&[1.0f32, -1.0, 0.25, 0.126]).view([2, 2]).set_requires_grad(true);
        let fq = fake_quant_weight(&w, true);
        // Row 0: scale 1 / 127; row 1: 0.25 / 127.
        let v: Vec<f32> = Vec::try_from(fq.flatten(0, -1)).unwrap();
        assert!((v[0] - 1.0).abs() < 1e-6 && (v[2] - 0.25).abs() < 1e-6);
        assert!((v[3] - 0.126).abs() <= 0.25 / 127.0 / 2.0 + 1e-6);
        fq.sum(Kind::Float).backward();
        let g: Vec<f32> = Vec::try_from(w.grad().flatten(0, -1)).unwrap();
        assert_eq!(g, [1.0, 1.0, 1.0, 1.0]);
    }
}
