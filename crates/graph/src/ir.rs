//! The graph IR: [`Graph`], [`Node`], and the node kinds ([`Op`]).
//!
//! A graph has one input (an image, `C x H x W`, the batch dimension left out) named
//! [`INPUT`], and nodes in topological order, each reading the outputs of earlier nodes
//! (or the input) by id; the last node's output is the model's output. Each node kind
//! says, in one place, which parameters it owns ([`Op::params`]) and what shape it
//! produces from the shapes it reads ([`Op::infer`]).
//!
//! Parameters are named `<node id>.<name>` (`conv1.weight`, `bn1.running_var`), the
//! names a tch `VarStore` gives them when a node's layer is built under `root / id`.

use std::collections::HashMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The id by which nodes read the graph's input.
pub const INPUT: &str = "input";

/// A shape without the batch dimension: `[C, H, W]` for images, `[F]` for vectors.
pub type Shape = Vec<i64>;

/// Writes a shape as `16x32x32`.
pub fn show(s: &[i64]) -> String {
    s.iter().map(i64::to_string).collect::<Vec<_>>().join("x")
}

/// An element-wise activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(x, 0).
    Relu,
    /// min(max(x, 0), 6), MobileNet's.
    Relu6,
    /// Gaussian error linear unit (exact, erf form).
    Gelu,
    /// x * sigmoid(x) (swish).
    Silu,
    /// x * relu6(x + 3) / 6, MobileNetV3's.
    Hardswish,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// tanh(x).
    Tanh,
}

impl Activation {
    /// Its name in YAML and messages.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Hardswish => "hardswish",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

/// Max or average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// The window's maximum.
    Max,
    /// The window's mean (zero padding counted, as PyTorch's default).
    Avg,
}

/// What a node computes. Sizes are per sample; `[h, w]` pairs are height then width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Op {
    /// 2-D convolution; `groups` = input channels = `out` makes it depthwise.
    Conv2d {
        /// Output channels.
        out: i64,
        /// Kernel `[h, w]`.
        kernel: [i64; 2],
        /// Stride `[h, w]`.
        stride: [i64; 2],
        /// Zero padding `[h, w]`, on both sides.
        padding: [i64; 2],
        /// Dilation `[h, w]`.
        dilation: [i64; 2],
        /// Channel groups.
        groups: i64,
        /// Whether it adds a bias.
        bias: bool,
    },
    /// Batch normalisation over the channels (running statistics at inference).
    BatchNorm {
        /// Added to the variance.
        eps: f64,
        /// Weight of each batch in the running statistics.
        momentum: f64,
    },
    /// Fully connected layer on a vector.
    Linear {
        /// Output features.
        out: i64,
        /// Whether it adds a bias.
        bias: bool,
    },
    /// An element-wise activation.
    Act {
        /// Which.
        f: Activation,
    },
    /// Max or average pooling.
    Pool {
        /// Max or average.
        kind: PoolKind,
        /// Window `[h, w]`.
        kernel: [i64; 2],
        /// Stride `[h, w]`.
        stride: [i64; 2],
        /// Padding `[h, w]`.
        padding: [i64; 2],
    },
    /// Average over each channel's whole plane, to `C x 1 x 1`.
    GlobalAvgPool,
    /// Everything but the batch into one vector.
    Flatten,
    /// To this shape (one entry may be -1: inferred).
    Reshape {
        /// The shape, batch left out.
        shape: Vec<i64>,
    },
    /// Element-wise sum of its inputs (a residual connection).
    Add,
    /// Its inputs side by side along the channels (the first dimension).
    Concat,
    /// Zeroes each value with probability `p` while training.
    Dropout {
        /// The probability.
        p: f64,
    },
    /// Every `stride`-th row and column (`x[:, :, ::s, ::s]`; ResNet's option-A
    /// shortcut).
    Subsample {
        /// The step.
        stride: i64,
    },
    /// Zero channels added before and after (ResNet's option-A shortcut).
    PadChannels {
        /// Zero channels in front.
        before: i64,
        /// Zero channels behind.
        after: i64,
    },
}

impl Op {
    /// A square convolution with one stride, padding and no dilation.
    pub fn conv(out: i64, kernel: i64, stride: i64, padding: i64, groups: i64, bias: bool) -> Op {
        Op::Conv2d {
            out,
            kernel: [kernel; 2],
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [1, 1],
            groups,
            bias,
        }
    }

    /// A square pooling window.
    pub fn pool(kind: PoolKind, kernel: i64, stride: i64, padding: i64) -> Op {
        Op::Pool { kind, kernel: [kernel; 2], stride: [stride; 2], padding: [padding; 2] }
    }

    /// Batch norm with PyTorch's defaults.
    pub fn batch_norm() -> Op {
        Op::BatchNorm { eps: 1e-5, momentum: 0.1 }
    }

    /// Its kind's name in messages (`conv2d`, `batch-norm`, `relu`).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::BatchNorm { .. } => "batch-norm",
            Op::Linear { .. } => "linear",
            Op::Act { f } => f.name(),
            Op::Pool { kind: PoolKind::Max, .. } => "max-pool",
            Op::Pool { kind: PoolKind::Avg, .. } => "avg-pool",
            Op::GlobalAvgPool => "global-avg-pool",
            Op::Flatten => "flatten",
            Op::Reshape { .. } => "reshape",
            Op::Add => "add",
            Op::Concat => "concat",
            Op::Dropout { .. } => "dropout",
            Op::Subsample { .. } => "subsample",
            Op::PadChannels { .. } => "pad-channels",
        }
    }

    /// How many inputs it reads: `(min, max)`.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Add | Op::Concat => (2, usize::MAX),
            _ => (1, 1),
        }
    }

    /// Whether it is a convolution or a linear layer (the layers that hold weights the
    /// compression techniques act on).
    pub fn is_layer(&self) -> bool {
        matches!(self, Op::Conv2d { .. } | Op::Linear { .. })
    }

    /// Its parameters, name and shape, given the shape it reads (in the order a tch
    /// layer creates them, so a seeded build draws the same numbers).
    pub fn params(&self, input: &[i64]) -> Vec<(&'static str, Shape)> {
        match *self {
            Op::Conv2d { out, kernel, groups, bias, .. } => {
                let cin = input.first().copied().unwrap_or(0);
                let mut v = Vec::new();
                if bias {
                    v.push(("bias", vec![out]));
                }
                v.push(("weight", vec![out, cin / groups.max(1), kernel[0], kernel[1]]));
                v
            }
            Op::BatchNorm { .. } => {
                let c = input.first().copied().unwrap_or(0);
                vec![
                    ("weight", vec![c]),
                    ("bias", vec![c]),
                    ("running_mean", vec![c]),
                    ("running_var", vec![c]),
                ]
            }
            Op::Linear { out, bias } => {
                let fin = input.first().copied().unwrap_or(0);
                let mut v = Vec::new();
                if bias {
                    v.push(("bias", vec![out]));
                }
                v.push(("weight", vec![out, fin]));
                v
            }
            _ => Vec::new(),
        }
    }

    /// Its output shape from the shapes of its inputs, or why they do not fit.
    pub fn infer(&self, inputs: &[&[i64]]) -> Result<Shape, String> {
        let x = inputs.first().copied().unwrap_or(&[]);
        let image = |what: &str| -> Result<[i64; 3], String> {
            match *x {
                [c, h, w] => Ok([c, h, w]),
                _ => Err(format!("{what} needs a C x H x W input, got {}", show(x))),
            }
        };
        let window = |h: i64, k: i64, s: i64, p: i64, d: i64| (h + 2 * p - d * (k - 1) - 1).div_euclid(s) + 1;
        match self {
            Op::Conv2d { out, kernel, stride, padding, dilation, groups, .. } => {
                let [c, h, w] = image("a convolution")?;
                if kernel.iter().chain(stride).chain(dilation).any(|&v| v < 1)
                    || padding.iter().any(|&p| p < 0)
                {
                    return Err(
                        "kernel, stride and dilation must be positive and padding not negative".into()
                    );
                }
                if *out < 1 || *groups < 1 || c % groups != 0 || out % groups != 0 {
                    return Err(format!(
                        "{c} input and {out} output channels cannot be split into {groups} groups"
                    ));
                }
                let oh = window(h, kernel[0], stride[0], padding[0], dilation[0]);
                let ow = window(w, kernel[1], stride[1], padding[1], dilation[1]);
                if oh < 1 || ow < 1 {
                    return Err(format!("a {}x{} kernel does not fit a {h}x{w} input", kernel[0], kernel[1]));
                }
                Ok(vec![*out, oh, ow])
            }
            Op::BatchNorm { eps, momentum } => {
                if x.is_empty() || eps.is_nan() || *eps <= 0.0 || !(0.0..=1.0).contains(momentum) {
                    return Err(
                        "batch norm needs an input with channels, eps > 0 and momentum in [0, 1]".into()
                    );
                }
                Ok(x.to_vec())
            }
            Op::Linear { out, .. } => match *x {
                [_] if *out >= 1 => Ok(vec![*out]),
                [_] => Err(format!("a linear layer needs at least one output, got {out}")),
                _ => Err(format!("a linear layer needs a flat input, got {}: flatten first", show(x))),
            },
            Op::Act { .. } | Op::Dropout { .. } => {
                if let Op::Dropout { p } = self
                    && !(0.0..1.0).contains(p)
                {
                    return Err(format!("dropout probability must be in [0, 1), got {p}"));
                }
                Ok(x.to_vec())
            }
            Op::Pool { kernel, stride, padding, .. } => {
                let [c, h, w] = image("pooling")?;
                if kernel.iter().chain(stride).any(|&v| v < 1)
                    || padding.iter().zip(kernel).any(|(&p, &k)| p < 0 || 2 * p > k)
                {
                    return Err(
                        "pool kernel and stride must be positive, padding at most half the kernel".into()
                    );
                }
                let oh = window(h, kernel[0], stride[0], padding[0], 1);
                let ow = window(w, kernel[1], stride[1], padding[1], 1);
                if oh < 1 || ow < 1 {
                    return Err(format!("a {}x{} window does not fit a {h}x{w} input", kernel[0], kernel[1]));
                }
                Ok(vec![c, oh, ow])
            }
            Op::GlobalAvgPool => {
                let [c, _, _] = image("global average pooling")?;
                Ok(vec![c, 1, 1])
            }
            Op::Flatten => Ok(vec![x.iter().product()]),
            Op::Reshape { shape } => {
                let total: i64 = x.iter().product();
                let unknown = shape.iter().filter(|&&d| d == -1).count();
                let known: i64 = shape.iter().filter(|&&d| d != -1).product();
                if unknown > 1 || shape.iter().any(|&d| d == 0 || d < -1) || known == 0 {
                    return Err(format!("cannot reshape to {shape:?}: one -1 at most, other sizes positive"));
                }
                if (unknown == 0 && known != total) || (unknown == 1 && total % known != 0) {
                    return Err(format!("cannot reshape {} ({total} values) to {shape:?}", show(x)));
                }
                Ok(shape.iter().map(|&d| if d == -1 { total / known } else { d }).collect())
            }
            Op::Add => {
                for other in &inputs[1..] {
                    if *other != x {
                        return Err(format!("cannot add {} and {}: the shapes differ", show(x), show(other)));
                    }
                }
                Ok(x.to_vec())
            }
            Op::Concat => {
                let mut out = x.to_vec();
                for other in &inputs[1..] {
                    if other.len() != x.len() || other.is_empty() || other[1..] != x[1..] {
                        return Err(format!(
                            "cannot concatenate {} and {} along the channels: the other sizes differ",
                            show(x),
                            show(other)
                        ));
                    }
                    out[0] += other[0];
                }
                Ok(out)
            }
            Op::Subsample { stride } => {
                let [c, h, w] = image("subsampling")?;
                if *stride < 1 {
                    return Err(format!("subsample stride must be positive, got {stride}"));
                }
                Ok(vec![c, (h + stride - 1) / stride, (w + stride - 1) / stride])
            }
            Op::PadChannels { before, after } => {
                let [c, h, w] = image("channel padding")?;
                if *before < 0 || *after < 0 {
                    return Err("channel padding cannot be negative".into());
                }
                Ok(vec![c + before + after, h, w])
            }
        }
    }
}

/// One node: an id, what it computes and what it reads. (Not `deny_unknown_fields`:
/// serde cannot combine it with the flattened op.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Node {
    /// Unique within the graph; its parameters are `<id>.weight` etc. Letters, digits,
    /// `_` and `-` only.
    pub id: String,
    /// What it computes.
    #[serde(flatten)]
    pub op: Op,
    /// The ids it reads ([`INPUT`] for the image), in order.
    pub inputs: Vec<String>,
}

/// A model as a graph of nodes over one image input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// The input image's `[C, H, W]`.
    pub input: [i64; 3],
    /// The nodes, each after every node it reads; the last is the output.
    pub nodes: Vec<Node>,
}

/// Why a graph is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// The graph has no node.
    #[error("the model has no layers")]
    Empty,
    /// A node's id is malformed or taken.
    #[error("node `{node}`: {msg}")]
    Id {
        /// The node.
        node: String,
        /// What is wrong.
        msg: String,
    },
    /// A node reads an id that is not before it.
    #[error("node `{node}` reads `{input}`, which is not an earlier node (earlier: {earlier})")]
    UnknownInput {
        /// The node.
        node: String,
        /// The missing id.
        input: String,
        /// The ids it could read.
        earlier: String,
    },
    /// A node's inputs do not fit it.
    #[error("node `{node}` ({kind}) reads {inputs}: {msg}")]
    Shape {
        /// The node.
        node: String,
        /// Its kind.
        kind: &'static str,
        /// The shapes it reads, with their producers (`16x32x32 from conv1`).
        inputs: String,
        /// What is wrong.
        msg: String,
    },
    /// The output is not a vector of class scores.
    #[error("the model's output (node `{node}`) is {shape}, but the data has {classes} classes: {hint}")]
    Output {
        /// The last node.
        node: String,
        /// Its shape.
        shape: String,
        /// The dataset's classes.
        classes: i64,
        /// How to fix it.
        hint: String,
    },
}

impl GraphError {
    /// The node the error is about, if one.
    pub fn node(&self) -> Option<&str> {
        match self {
            GraphError::Empty => None,
            GraphError::Id { node, .. }
            | GraphError::UnknownInput { node, .. }
            | GraphError::Shape { node, .. }
            | GraphError::Output { node, .. } => Some(node),
        }
    }
}

impl Graph {
    /// The index of each node id.
    pub fn index(&self) -> HashMap<&str, usize> {
        self.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect()
    }

    /// For each node, the indices of what it reads: `None` for the graph input.
    /// Checks ids and order.
    pub fn wiring(&self) -> Result<Vec<Vec<Option<usize>>>, GraphError> {
        if self.nodes.is_empty() {
            return Err(GraphError::Empty);
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::with_capacity(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            if n.id.is_empty()
                || n.id == INPUT
                || !n.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(GraphError::Id {
                    node: n.id.clone(),
                    msg: format!("ids are letters, digits, `_` and `-`, and not `{INPUT}`"),
                });
            }
            let (lo, hi) = n.op.arity();
            if n.inputs.len() < lo || n.inputs.len() > hi {
                return Err(GraphError::Id {
                    node: n.id.clone(),
                    msg: format!(
                        "{} reads {} input(s), it has {}",
                        n.op.kind(),
                        if lo == hi { lo.to_string() } else { format!("{lo} or more") },
                        n.inputs.len()
                    ),
                });
            }
            let mut ins = Vec::with_capacity(n.inputs.len());
            for input in &n.inputs {
                if input == INPUT {
                    ins.push(None);
                } else if let Some(&j) = seen.get(input.as_str()) {
                    ins.push(Some(j));
                } else {
                    let mut earlier: Vec<&str> = vec![INPUT];
                    earlier.extend(self.nodes[..i].iter().map(|n| n.id.as_str()));
                    return Err(GraphError::UnknownInput {
                        node: n.id.clone(),
                        input: input.clone(),
                        earlier: earlier.join(", "),
                    });
                }
            }
            if seen.insert(&n.id, i).is_some() {
                return Err(GraphError::Id { node: n.id.clone(), msg: "this id is used twice".into() });
            }
            out.push(ins);
        }
        Ok(out)
    }

    /// Every node's output shape, input to output.
    pub fn shapes(&self) -> Result<Vec<Shape>, GraphError> {
        let wiring = self.wiring()?;
        let mut shapes: Vec<Shape> = Vec::with_capacity(self.nodes.len());
        for (n, ins) in self.nodes.iter().zip(&wiring) {
            let input_shapes: Vec<&[i64]> =
                ins.iter().map(|i| i.map_or(&self.input[..], |j| shapes[j].as_slice())).collect();
            let s = n.op.infer(&input_shapes).map_err(|msg| GraphError::Shape {
                node: n.id.clone(),
                kind: n.op.kind(),
                inputs: ins
                    .iter()
                    .zip(&input_shapes)
                    .map(|(i, s)| {
                        format!("{} from `{}`", show(s), i.map_or(INPUT, |j| self.nodes[j].id.as_str()))
                    })
                    .collect::<Vec<_>>()
                    .join(" and "),
                msg,
            })?;
            shapes.push(s);
        }
        Ok(shapes)
    }

    /// Checks the graph end to end for `classes` outputs; returns every node's shape.
    pub fn check(&self, classes: i64) -> Result<Vec<Shape>, GraphError> {
        let shapes = self.shapes()?;
        let last = shapes.last().expect("shapes() refuses empty graphs");
        if *last != [classes] {
            let node = self.nodes.last().expect("non-empty").id.clone();
            let hint = if last.len() != 1 {
                "end with a flatten and a linear layer".to_string()
            } else {
                format!("make the last layer's width {classes}")
            };
            return Err(GraphError::Output { node, shape: show(last), classes, hint });
        }
        Ok(shapes)
    }

    /// The shape each node reads first (its main input), input to output.
    pub fn input_shapes(&self) -> Result<Vec<Shape>, GraphError> {
        let shapes = self.shapes()?;
        let wiring = self.wiring()?;
        Ok(wiring
            .iter()
            .map(|ins| ins.first().copied().flatten().map_or(self.input.to_vec(), |j| shapes[j].clone()))
            .collect())
    }

    /// Every parameter, `<id>.<name>` and shape, in creation order.
    pub fn params(&self) -> Result<Vec<(String, Shape)>, GraphError> {
        let ins = self.input_shapes()?;
        Ok(self
            .nodes
            .iter()
            .zip(&ins)
            .flat_map(|(n, s)| {
                n.op.params(s).into_iter().map(move |(p, shape)| (format!("{}.{p}", n.id), shape))
            })
            .collect())
    }

    /// How many parameters it has (running statistics included).
    pub fn param_count(&self) -> Result<u64, GraphError> {
        Ok(self.params()?.iter().map(|(_, s)| s.iter().product::<i64>() as u64).sum())
    }

    /// For each node, the indices of the nodes that read it.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let index = self.index();
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for input in &n.inputs {
                if let Some(&j) = index.get(input.as_str()) {
                    out[j].push(i);
                }
            }
        }
        out
    }

    /// Whether every node reads only the node before it (the first reads the input):
    /// a plain chain.
    pub fn is_chain(&self) -> bool {
        self.nodes.iter().enumerate().all(|(i, n)| {
            let before = if i == 0 { INPUT } else { self.nodes[i - 1].id.as_str() };
            n.inputs.len() == 1 && n.inputs[0] == before
        })
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// A one-line-per-node description: id, kind, inputs, output shape.
    pub fn summary(&self) -> Result<String, GraphError> {
        let shapes = self.shapes()?;
        Ok(self
            .nodes
            .iter()
            .zip(&shapes)
            .map(|(n, s)| {
                format!("{:<16} {:<16} <- {:<24} {}", n.id, n.op.kind(), n.inputs.join(", "), show(s))
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "graph of {} nodes on {} input", self.nodes.len(), show(&self.input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Builder;

    #[test]
    fn shapes_flow_through_convs_pools_and_adds() {
        let mut b = Builder::new([3, 32, 32]);
        let stem = b.then("stem", Op::conv(16, 3, 1, 1, 1, false));
        b.then("c1", Op::conv(16, 3, 1, 1, 1, false));
        b.join("res", Op::Add, &[&stem]);
        b.then("pool", Op::pool(PoolKind::Max, 2, 2, 0));
        b.then("dw", Op::conv(16, 3, 2, 1, 16, true));
        b.then("gap", Op::GlobalAvgPool);
        b.then("flat", Op::Flatten);
        b.then("fc", Op::Linear { out: 10, bias: true });
        let g = b.finish();
        let shapes = g.check(10).unwrap();
        assert_eq!(shapes[3], vec![16, 16, 16]);
        assert_eq!(shapes[4], vec![16, 8, 8]);
        assert_eq!(g.params().unwrap()[0], ("stem.weight".to_string(), vec![16, 3, 3, 3]));
        assert_eq!(g.node("dw").map(|n| n.op.params(&[16, 16, 16])[1].1.clone()), Some(vec![16, 1, 3, 3]));
        assert!(!g.is_chain());
    }

    #[test]
    fn mismatched_add_names_the_node_and_both_shapes() {
        let mut b = Builder::new([3, 8, 8]);
        let stem = b.then("stem", Op::conv(8, 3, 1, 1, 1, true));
        b.then("down", Op::conv(16, 3, 2, 1, 1, true));
        b.join("res", Op::Add, &[&stem]);
        let err = b.finish().shapes().unwrap_err();
        assert_eq!(
            err.to_string(),
            "node `res` (add) reads 16x4x4 from `down` and 8x8x8 from `stem`: cannot add 16x4x4 and 8x8x8: the shapes differ"
        );
    }

    #[test]
    fn linear_on_an_image_and_a_wrong_output_are_explained() {
        let mut b = Builder::new([1, 4, 4]);
        b.then("fc", Op::Linear { out: 10, bias: true });
        let err = b.finish().shapes().unwrap_err();
        assert!(err.to_string().contains("needs a flat input, got 1x4x4: flatten first"), "{err}");
        let mut b = Builder::new([1, 4, 4]);
        b.then("flat", Op::Flatten);
        b.then("fc", Op::Linear { out: 5, bias: true });
        let err = b.finish().check(10).unwrap_err();
        assert!(err.to_string().contains("is 5, but the data has 10 classes"), "{err}");
    }

    #[test]
    fn ids_and_inputs_are_checked() {
        let g = Graph {
            input: [1, 4, 4],
            nodes: vec![Node { id: "a".into(), op: Op::Flatten, inputs: vec!["nope".into()] }],
        };
        assert!(matches!(g.wiring(), Err(GraphError::UnknownInput { .. })));
        let g = Graph {
            input: [1, 4, 4],
            nodes: vec![Node { id: "a.b".into(), op: Op::Flatten, inputs: vec![INPUT.into()] }],
        };
        assert!(matches!(g.wiring(), Err(GraphError::Id { .. })));
    }

    #[test]
    fn graphs_round_trip_through_json() {
        let mut b = Builder::new([3, 8, 8]);
        b.then("c", Op::conv(4, 3, 1, 1, 1, true));
        b.then("a", Op::Act { f: Activation::Relu6 });
        let g = b.finish();
        let json = serde_json::to_string(&g).unwrap();
        assert!(json.contains(r#""op":"conv2d""#), "{json}");
        assert_eq!(serde_json::from_str::<Graph>(&json).unwrap(), g);
    }

    #[test]
    fn reshape_infers_minus_one() {
        assert_eq!(Op::Reshape { shape: vec![-1] }.infer(&[&[4, 2, 2]]).unwrap(), vec![16]);
        assert!(Op::Reshape { shape: vec![3, -1] }.infer(&[&[4, 2, 2]]).is_err());
    }
}
