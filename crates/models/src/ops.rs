//! A network's forward pass as [`Step`]s over its graph: what every model runs, and
//! what quantization, feature distillation and pipelining walk through.
//!
//! [`run`] runs the steps in order, each on the outputs of the steps it reads.
//! [`run_tapped`] runs them past a [`Tap`], which sees (and may replace) each layer's
//! weight and each activation at a named *point*:
//!
//! * [`INPUT`], the image as it enters;
//! * after each convolution or linear layer, *after* the ReLU that directly follows it
//!   when that ReLU is its only reader (quantized kernels fuse the two), named after
//!   the layer (`conv`, `fc0`);
//! * between the two factors of a low-rank layer, `<layer>.lr_in`;
//! * after each residual add, concat, and activation that is not a fused ReLU, named
//!   after the node (a static int8 model requantizes there).
//!
//! Those are the points where a statically quantized model holds int8 activations, so
//! calibration observes them, quantization-aware training fake-quantizes them, and
//! [`points`] lists them with the layers on either side.

use std::ops::Range;

use slimbench_graph::{Activation, Op as NodeOp, PoolKind};
use tch::Tensor;
use tch::nn::{Module, ModuleT};

use crate::layers::{Conv, Dense, Norm};

pub use slimbench_graph::INPUT;

/// What one step computes.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// A 2-D convolution.
    Conv(&'a Conv),
    /// A linear layer (possibly factored or packed).
    Linear(&'a Dense),
    /// Batch normalisation.
    BatchNorm(&'a Norm),
    /// An operation without parameters (activation, pooling, flatten, add, ...).
    Plain(&'a NodeOp),
}

impl Op<'_> {
    /// The layer's name, for convolutions and linear layers.
    pub fn layer(&self) -> Option<&str> {
        match self {
            Op::Conv(c) => Some(c.name()),
            Op::Linear(d) => Some(d.name()),
            _ => None,
        }
    }

    /// Whether it is a ReLU.
    pub fn is_relu(&self) -> bool {
        matches!(self, Op::Plain(NodeOp::Act { f: Activation::Relu }))
    }

    /// The node kind's name (`conv2d`, `relu`, `add`).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(_) => "conv2d",
            Op::Linear(_) => "linear",
            Op::BatchNorm(_) => "batch-norm",
            Op::Plain(op) => op.kind(),
        }
    }
}

/// One node of the forward pass: its id, what it computes and which earlier steps it
/// reads (`None`: the image).
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// The node id.
    pub id: &'a str,
    /// What it computes.
    pub op: Op<'a>,
    /// The steps it reads, by index (`None`: the graph's input).
    pub inputs: &'a [Option<usize>],
}

/// Sees what flows through a network; each method may return a replacement.
pub trait Tap {
    /// The weight `layer` (`conv`, `fc0`, or `fc0.lr_in` / `fc0.lr_out` for the factors
    /// of a low-rank layer) is about to be used with.
    fn weight(&mut self, _layer: &str, _w: &Tensor) -> Option<Tensor> {
        None
    }

    /// The activation at `point` (see the module docs).
    fn activation(&mut self, _point: &str, _x: &Tensor) -> Option<Tensor> {
        None
    }
}

/// A tap that looks at nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTap;

impl Tap for NoTap {}

/// For each step, whether it is a ReLU fused into the layer before it: it reads only
/// that layer, and nothing else reads the layer.
pub fn fused_relus(steps: &[Step<'_>]) -> Vec<bool> {
    let readers = readers(steps);
    (0..steps.len())
        .map(|i| {
            i > 0
                && steps[i].op.is_relu()
                && steps[i - 1].op.layer().is_some()
                && steps[i].inputs == [Some(i - 1)]
                && readers[i - 1] == [i]
        })
        .collect()
}

/// For each step, the steps that read it.
pub fn readers(steps: &[Step<'_>]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for j in s.inputs.iter().flatten() {
            out[*j].push(i);
        }
    }
    out
}

/// Whether a step's output is an activation point of its own (see the module docs):
/// a join (add, concat) or an activation that is not a fused ReLU.
pub fn is_join_point(step: &Step<'_>, fused: bool) -> bool {
    matches!(step.op, Op::Plain(NodeOp::Add | NodeOp::Concat))
        || (matches!(step.op, Op::Plain(NodeOp::Act { .. })) && !fused)
}

/// Whether every step reads only the step before it (the first: the image).
pub fn is_chain(steps: &[Step<'_>]) -> bool {
    steps.iter().enumerate().all(|(i, s)| s.inputs == [i.checked_sub(1)])
}

/// The places a network can be cut into consecutive parts that pass one tensor: the
/// `k` such that steps `k..` read nothing before step `k - 1` (and not the image).
pub fn cut_points(steps: &[Step<'_>]) -> Vec<usize> {
    (1..steps.len())
        .filter(|&k| {
            steps[k..].iter().all(|s| s.inputs.iter().all(|j| j.is_some_and(|j| j + 1 >= k)))
                && !fused_relus(steps)[k]
        })
        .collect()
}

/// Run `steps` on `xs` (`train` enables dropout and batch statistics).
pub fn run(steps: &[Step<'_>], xs: &Tensor, train: bool) -> Tensor {
    run_tapped(steps, xs, train, &mut NoTap)
}

/// Run `steps` on `xs` past `tap`.
pub fn run_tapped(steps: &[Step<'_>], xs: &Tensor, train: bool, tap: &mut dyn Tap) -> Tensor {
    let x = tap.activation(INPUT, xs).unwrap_or_else(|| xs.shallow_clone());
    run_range(steps, 0..steps.len(), &x, train, tap)
}

/// Run the steps `range` of a network, `x` being what step `range.start - 1` gave (the
/// image when the range starts at 0). The range must start at 0 or at one of
/// [`cut_points`], and be non-empty.
pub fn run_range(
    steps: &[Step<'_>],
    range: Range<usize>,
    x: &Tensor,
    train: bool,
    tap: &mut dyn Tap,
) -> Tensor {
    let fused = fused_relus(steps);
    let boundary = range.start.checked_sub(1);
    let mut last_use = vec![0usize; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for j in s.inputs.iter().flatten() {
            last_use[*j] = last_use[*j].max(i);
        }
    }
    let mut vals: Vec<Option<Tensor>> = (0..steps.len()).map(|_| None).collect();
    let mut out = None;
    for i in range.clone() {
        if fused[i] {
            continue;
        }
        let step = &steps[i];
        let ins: Vec<Tensor> = step
            .inputs
            .iter()
            .map(|&j| match j {
                j if j == boundary => x.shallow_clone(),
                Some(j) => vals[j].as_ref().map(Tensor::shallow_clone).unwrap_or_else(|| {
                    panic!("step `{}` reads step {j}, which has not run (a cut inside a branch?)", step.id)
                }),
                None => panic!("step `{}` reads the image inside a cut range", step.id),
            })
            .collect();
        let (mut y, point) = match step.op {
            Op::Conv(c) => {
                let y = match tap.weight(c.name(), c.weight()) {
                    Some(w) => c.forward_with(&ins[0], &w),
                    None => ins[0].apply(c),
                };
                (y, Some(c.name()))
            }
            Op::Linear(d) => (d.forward_tapped(&ins[0], tap), Some(d.name())),
            Op::BatchNorm(n) => (n.forward_t(&ins[0], train), None),
            Op::Plain(op) => (apply(op, &ins, train), is_join_point(step, false).then_some(step.id)),
        };
        let mut at = i;
        if point.is_some() && step.op.layer().is_some() && i + 1 < range.end && fused[i + 1] {
            y = y.relu();
            at = i + 1;
        }
        if let Some(name) = point
            && let Some(z) = tap.activation(name, &y)
        {
            y = z;
        }
        for j in step.inputs.iter().flatten() {
            if last_use[*j] <= at && Some(*j) != boundary {
                vals[*j] = None;
            }
        }
        if at + 1 == range.end {
            out = Some(y);
        } else {
            vals[at] = Some(y);
        }
    }
    out.expect("a non-empty range")
}

/// One operation without parameters on its inputs.
pub fn apply(op: &NodeOp, ins: &[Tensor], train: bool) -> Tensor {
    let x = &ins[0];
    match op {
        NodeOp::Act { f } => match f {
            Activation::Relu => x.relu(),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Gelu => x.gelu("none"),
            Activation::Silu => x.silu(),
            Activation::Hardswish => x.hardswish(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
        },
        NodeOp::Pool { kind: PoolKind::Max, kernel, stride, padding } => {
            x.max_pool2d(kernel, stride, padding, [1, 1], false)
        }
        NodeOp::Pool { kind: PoolKind::Avg, kernel, stride, padding } => {
            x.avg_pool2d(kernel, stride, padding, false, true, None)
        }
        NodeOp::GlobalAvgPool => x.adaptive_avg_pool2d([1, 1]),
        NodeOp::Flatten => x.flatten(1, -1),
        NodeOp::Reshape { shape } => {
            // The batch as -1, not as the number this batch has: a traced module
            // (TorchScript export) must take any batch size. A -1 of the shape is
            // resolved from the size of one sample.
            let per_sample: i64 = x.size()[1..].iter().product();
            let known: i64 = shape.iter().filter(|&&d| d != -1).product();
            let mut s = vec![-1];
            s.extend(shape.iter().map(|&d| if d == -1 { per_sample / known.max(1) } else { d }));
            x.reshape(s)
        }
        NodeOp::Add => ins[1..].iter().fold(x.shallow_clone(), |acc, y| acc + y),
        NodeOp::Concat => Tensor::cat(ins, 1),
        NodeOp::Dropout { p } => x.dropout(*p, train),
        NodeOp::Subsample { stride } => x.slice(2, 0, None, *stride).slice(3, 0, None, *stride),
        NodeOp::PadChannels { before, after } => x.constant_pad_nd([0, 0, 0, 0, *before, *after]),
        NodeOp::Conv2d { .. } | NodeOp::Linear { .. } | NodeOp::BatchNorm { .. } => {
            unreachable!("layers with parameters are built, not applied")
        }
    }
}

/// An activation point and the layers on either side of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// Its name ([`INPUT`], a layer name, `<layer>.lr_in`, or a join's node id).
    pub name: String,
    /// Whether it is a join (add, concat, unfused activation), which a static int8
    /// model always requantizes.
    pub join: bool,
    /// The layer whose output it is (`None` for the input).
    pub producer: Option<String>,
    /// The next layer, in step order (`None` after the last one).
    pub consumer: Option<String>,
}

/// The activation points of `steps`, input to output. The factors of a low-rank layer
/// both belong to that layer.
pub fn points(steps: &[Step<'_>]) -> Vec<Point> {
    let mut out = vec![Point { name: INPUT.into(), join: false, producer: None, consumer: None }];
    let reach = |out: &mut Vec<Point>, layer: &str, name: String| {
        if let Some(last) = out.iter_mut().rev().find(|p| !p.join) {
            last.consumer.get_or_insert_with(|| layer.to_string());
        }
        out.push(Point { name, join: false, producer: Some(layer.to_string()), consumer: None });
    };
    let fused = fused_relus(steps);
    for (i, step) in steps.iter().enumerate() {
        if is_join_point(step, fused[i]) {
            out.push(Point { name: step.id.to_string(), join: true, producer: None, consumer: None });
            continue;
        }
        match step.op {
            Op::Conv(c) => reach(&mut out, c.name(), c.name().to_string()),
            Op::Linear(d) => {
                if d.rank().is_some() {
                    reach(&mut out, d.name(), format!("{}.lr_in", d.name()));
                }
                reach(&mut out, d.name(), d.name().to_string());
            }
            _ => {}
        }
    }
    out
}

impl Dense {
    /// The layer's forward past `tap` (a packed layer runs its kernel untapped).
    pub(crate) fn forward_tapped(&self, xs: &Tensor, tap: &mut dyn Tap) -> Tensor {
        if self.is_packed() {
            return self.forward(xs);
        }
        match self.factors() {
            Some((inner, outer)) => {
                let name = self.name();
                let wi = tap.weight(&format!("{name}.lr_in"), inner).unwrap_or_else(|| inner.shallow_clone());
                let h = xs.linear(&wi, None::<&Tensor>);
                let h = tap.activation(&format!("{name}.lr_in"), &h).unwrap_or(h);
                let wo =
                    tap.weight(&format!("{name}.lr_out"), outer).unwrap_or_else(|| outer.shallow_clone());
                h.linear(&wo, self.bias())
            }
            None => match tap.weight(self.name(), self.own_weight()) {
                Some(w) => xs.linear(&w, self.bias()),
                None => self.forward(xs),
            },
        }
    }
}
