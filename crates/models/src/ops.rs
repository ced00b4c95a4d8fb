//! A network as a chain of [`Op`]s: what every family's forward pass runs, and what
//! quantization and feature distillation walk through.
//!
//! Every family lists its steps once ([`crate::families::Net::ops`]) and runs them with
//! [`run`]. [`run_tapped`] runs the same chain past a [`Tap`], which sees (and may
//! replace) each layer's weight and each activation at a named *point*:
//!
//! * [`INPUT`], the image as it enters;
//! * after each convolution or linear layer, *after* the ReLU that directly follows it
//!   (quantized kernels fuse the two), named after the layer (`conv`, `fc0`);
//! * between the two factors of a low-rank layer, `<layer>.lr_in`.
//!
//! Those are the points where a statically quantized model holds int8 activations, so
//! calibration observes them, quantization-aware training fake-quantizes them, and
//! [`points`] lists them with the layers on either side.

use tch::Tensor;
use tch::nn::Module;

use crate::families::{Conv, Dense};

/// The point of the model's input.
pub const INPUT: &str = "input";

/// One step of a forward pass.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// A 2-D convolution.
    Conv(&'a Conv),
    /// A linear layer (possibly factored or packed).
    Linear(&'a Dense),
    /// ReLU.
    Relu,
    /// 2x2 max pooling with stride 2.
    MaxPool2,
    /// Global average pooling to 1x1.
    GlobalAvgPool,
    /// `[N, C, H, W]` -> `[N, C*H*W]`.
    Flatten,
    /// Dropout with this probability, in training only.
    Dropout(f64),
}

impl Op<'_> {
    /// The layer's name, for the steps with parameters.
    pub fn layer(&self) -> Option<&str> {
        match self {
            Op::Conv(c) => Some(c.name()),
            Op::Linear(d) => Some(d.name()),
            _ => None,
        }
    }
}

/// Sees what flows through a chain; each method may return a replacement.
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

/// Run `ops` on `xs` (`train` enables dropout).
pub fn run(ops: &[Op<'_>], xs: &Tensor, train: bool) -> Tensor {
    run_tapped(ops, xs, train, &mut NoTap)
}

/// Run `ops` on `xs` past `tap`.
pub fn run_tapped(ops: &[Op<'_>], xs: &Tensor, train: bool, tap: &mut dyn Tap) -> Tensor {
    let mut x = tap.activation(INPUT, xs).unwrap_or_else(|| xs.shallow_clone());
    let mut i = 0;
    while i < ops.len() {
        let layer = match ops[i] {
            Op::Conv(c) => {
                x = match tap.weight(c.name(), c.weight()) {
                    Some(w) => c.forward_with(&x, &w),
                    None => x.apply(c),
                };
                Some(c.name())
            }
            Op::Linear(d) => {
                x = d.forward_tapped(&x, tap);
                Some(d.name())
            }
            Op::Relu => {
                x = x.relu();
                None
            }
            Op::MaxPool2 => {
                x = x.max_pool2d_default(2);
                None
            }
            Op::GlobalAvgPool => {
                x = x.adaptive_avg_pool2d([1, 1]);
                None
            }
            Op::Flatten => {
                x = x.flatten(1, -1);
                None
            }
            Op::Dropout(p) => {
                x = x.dropout(p, train);
                None
            }
        };
        if let Some(name) = layer {
            if matches!(ops.get(i + 1), Some(Op::Relu)) {
                x = x.relu();
                i += 1;
            }
            if let Some(y) = tap.activation(name, &x) {
                x = y;
            }
        }
        i += 1;
    }
    x
}

/// An activation point and the layers on either side of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// Its name ([`INPUT`], a layer name, or `<layer>.lr_in`).
    pub name: String,
    /// The layer whose output it is (`None` for the input).
    pub producer: Option<String>,
    /// The next layer to read it (`None` for the network's output).
    pub consumer: Option<String>,
}

/// The activation points of `ops`, input to output. The factors of a low-rank layer
/// both belong to that layer.
pub fn points(ops: &[Op<'_>]) -> Vec<Point> {
    let mut out = vec![Point { name: INPUT.into(), producer: None, consumer: None }];
    let reach = |out: &mut Vec<Point>, layer: &str, name: String| {
        if let Some(last) = out.last_mut() {
            last.consumer = Some(layer.to_string());
        }
        out.push(Point { name, producer: Some(layer.to_string()), consumer: None });
    };
    for op in ops {
        match op {
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
