//! Multi-layer perceptron on the flattened image: Linear + ReLU per hidden width, then
//! a Linear to the classes.

use slimbench_core::artifact::IoShape;
use slimbench_core::config::MlpConfig;
use tch::{Tensor, nn};

use super::{Dense, Net};
use crate::ops::{self, Op};

/// The MLP.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<Dense>,
}

impl Mlp {
    /// Build under `p` (layers `fc0`, `fc1`, ...).
    pub fn new(p: &nn::Path, c: &MlpConfig, io: IoShape) -> Result<Self, String> {
        if let Some(w) = c.hidden.iter().find(|&&w| w < 1) {
            return Err(format!("mlp hidden widths must be positive, got {w}"));
        }
        let mut widths = vec![io.channels * io.height * io.width];
        widths.extend(&c.hidden);
        widths.push(io.classes);
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| Dense::new(p / format!("fc{i}"), w[0], w[1]))
            .collect();
        Ok(Mlp { layers })
    }
}

impl nn::ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        ops::run(&self.ops(), xs, train)
    }
}

impl Net for Mlp {
    fn ops(&self) -> Vec<Op<'_>> {
        let mut v = vec![Op::Flatten];
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                v.push(Op::Relu);
            }
            v.push(Op::Linear(layer));
        }
        v
    }
}
