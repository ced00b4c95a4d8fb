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
use slimbench_torch_ext::quantized::{PackedConv, PackedLinear, quantize_weight_with, weight_scales};
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
/// those a quantized layer writes or reads.
pub fn active_points(ops: &[GraphStep<'_>], fp32: &[String]) -> HashSet<String> {
    let quantized = |l: &Option<String>| l.as_ref().is_some_and(|l| !fp32.contains(l));
    ops::points(ops)
        .into_iter()
        .filter(|p| quantized(&p.producer) || quantized(&p.consumer))
        .map(|p| p.name)
        .collect()
}

fn qparams_of<'a>(sq: &'a StaticQuant, point: &str) -> Result<&'a QParams, String> {
    sq.activations
        .get(point)
        .ok_or_else(|| format!("no calibrated quantization for the activation point `{point}`"))
}

/// The ops of a model the static int8 chain can run, or which node it cannot.
pub fn chain_ops<'a>(steps: &[GraphStep<'a>]) -> Result<Vec<Op<'a>>, String> {
    if !ops::is_chain(steps) {
        return Err(
            "static int8 runs chains of layers; this model has branches (residual adds or concats)".into()
        );
    }
    steps
        .iter()
        .map(|s| match s.op {
            Op::Conv(_) | Op::Linear(_) => Ok(s.op),
            Op::Plain(
                NodeOp::Act { f: Activation::Relu }
                | NodeOp::Pool { kind: PoolKind::Max, kernel: [2, 2], stride: [2, 2], padding: [0, 0] }
                | NodeOp::GlobalAvgPool
                | NodeOp::Flatten
                | NodeOp::Dropout { .. },
            ) => Ok(s.op),
            other => Err(format!("static int8 has no kernel for node `{}` ({})", s.id, other.kind())),
        })
        .collect()
}

/// One step of the static int8 chain.
#[derive(Debug)]
enum Step {
    Quantize(QParams),
    Dequantize,
    QConv { conv: PackedConv, relu: bool, out: QParams },
    QLinear { lin: PackedLinear, relu: bool, out: QParams },
    Conv { w: Tensor, b: Option<Tensor>, geometry: Geometry },
    Linear { w: Tensor, b: Option<Tensor> },
    Relu,
    MaxPool2,
    GlobalAvgPool,
    Flatten,
}

/// A model's forward pass on fbgemm's static int8 kernels.
#[derive(Debug)]
pub struct StaticChain {
    steps: Vec<Step>,
}

impl StaticChain {
    /// Build from a model's ops (fp32 weights on the CPU), its calibration, and the
    /// layers to keep in fp32. The model must be a chain of convolutions, linear
    /// layers, ReLUs, max pools, global average pools, flattens and dropouts.
    pub fn build(steps: &[GraphStep<'_>], sq: &StaticQuant, fp32: &[String]) -> Result<Self, String> {
        let _guard = tch::no_grad_guard();
        let ops = chain_ops(steps)?;
        let ops = ops.as_slice();
        let e = |layer: &str, err: &dyn std::fmt::Display| format!("layer `{layer}`: {err}");
        let mut steps = Vec::new();
        let mut quantized = false;
        let mut last = *qparams_of(sq, ops::INPUT)?;
        let mut i = 0;
        while i < ops.len() {
            let op = ops[i];
            let relu = ops.get(i + 1).is_some_and(Op::is_relu);
            match op {
                Op::Conv(c) if !fp32.iter().any(|l| l == c.name()) => {
                    if !quantized {
                        steps.push(Step::Quantize(last));
                    }
                    let wq = quantize_weight_with(&c.weight().detach().contiguous(), sq.per_channel)
                        .map_err(|x| e(c.name(), &x))?;
                    let g = c.geometry();
                    let bias = c.bias().map(Tensor::detach);
                    let conv = PackedConv::new(&wq, bias.as_ref(), g.stride, g.padding, g.dilation, g.groups)
                        .map_err(|x| e(c.name(), &x))?;
                    last = *qparams_of(sq, c.name())?;
                    steps.push(Step::QConv { conv, relu, out: last });
                    quantized = true;
                    i += usize::from(relu);
                }
                Op::Linear(d) if !fp32.iter().any(|l| l == d.name()) => {
                    if !quantized {
                        steps.push(Step::Quantize(last));
                    }
                    let weights = d.weights();
                    let n = weights.len();
                    for (k, (name, w)) in weights.into_iter().enumerate() {
                        let wq = quantize_weight_with(&w.detach().contiguous(), sq.per_channel)
                            .map_err(|x| e(&name, &x))?;
                        let outer = k + 1 == n;
                        let bias = if outer { d.bias().map(Tensor::detach) } else { None };
                        let lin = PackedLinear::int8(&wq, bias.as_ref()).map_err(|x| e(&name, &x))?;
                        let point = if outer { d.name().to_string() } else { format!("{}.lr_in", d.name()) };
                        last = *qparams_of(sq, &point)?;
                        steps.push(Step::QLinear { lin, relu: relu && outer, out: last });
                    }
                    quantized = true;
                    i += usize::from(relu);
                }
                Op::Conv(c) => {
                    if quantized {
                        steps.push(Step::Dequantize);
                        quantized = false;
                    }
                    let (w, b) = (c.weight().detach(), c.bias().map(Tensor::detach));
                    steps.push(Step::Conv { w, b, geometry: c.geometry() });
                    if let Some(q) = sq.activations.get(c.name()) {
                        last = *q;
                    }
                }
                Op::Linear(d) => {
                    if quantized {
                        steps.push(Step::Dequantize);
                        quantized = false;
                    }
                    let weights = d.weights();
                    let n = weights.len();
                    for (k, (_, w)) in weights.into_iter().enumerate() {
                        let b = if k + 1 == n { d.bias().map(Tensor::detach) } else { None };
                        steps.push(Step::Linear { w: w.detach(), b });
                    }
                    if let Some(q) = sq.activations.get(d.name()) {
                        last = *q;
                    }
                }
                Op::Plain(NodeOp::Act { f: Activation::Relu }) => steps.push(Step::Relu),
                Op::Plain(NodeOp::Pool {
                    kind: PoolKind::Max,
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                }) => steps.push(Step::MaxPool2),
                Op::Plain(NodeOp::GlobalAvgPool) => steps.push(Step::GlobalAvgPool),
                Op::Plain(NodeOp::Flatten) => steps.push(Step::Flatten),
                Op::Plain(NodeOp::Dropout { .. }) => {}
                other => unreachable!("chain_ops refused {}", other.kind()),
            }
            i += 1;
        }
        if quantized {
            steps.push(Step::Dequantize);
        }
        Ok(StaticChain { steps })
    }

    /// Logits for fp32 images.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, String> {
        let _guard = tch::no_grad_guard();
        let mut x = xs.shallow_clone();
        let err = |e: &dyn std::fmt::Display| e.to_string();
        for step in &self.steps {
            x = match step {
                Step::Quantize(q) => {
                    x.f_quantize_per_tensor(q.scale, q.zero_point, Kind::QUInt8).map_err(|e| err(&e))?
                }
                Step::Dequantize => x.f_dequantize().map_err(|e| err(&e))?,
                Step::QConv { conv, relu, out } => {
                    conv.forward(&x, out.scale, out.zero_point, *relu).map_err(|e| err(&e))?
                }
                Step::QLinear { lin, relu, out } => {
                    lin.forward_static(&x, out.scale, out.zero_point, *relu).map_err(|e| err(&e))?
                }
                Step::Conv { w, b, geometry: g } => x
                    .f_conv2d(w, b.as_ref(), g.stride, g.padding, g.dilation, g.groups)
                    .map_err(|e| err(&e))?,
                Step::Linear { w, b } => x.f_linear(w, b.as_ref()).map_err(|e| err(&e))?,
                Step::Relu => x.f_relu().map_err(|e| err(&e))?,
                Step::MaxPool2 => {
                    x.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false).map_err(|e| err(&e))?
                }
                Step::GlobalAvgPool => x.f_adaptive_avg_pool2d([1, 1]).map_err(|e| err(&e))?,
                Step::Flatten => x.f_flatten(1, -1).map_err(|e| err(&e))?,
            };
        }
        Ok(x)
    }

    /// How many convolution and linear steps run in int8, and how many in fp32.
    pub fn counts(&self) -> (usize, usize) {
        let q = self.steps.iter().filter(|s| matches!(s, Step::QConv { .. } | Step::QLinear { .. })).count();
        let f = self.steps.iter().filter(|s| matches!(s, Step::Conv { .. } | Step::Linear { .. })).count();
        (q, f)
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
