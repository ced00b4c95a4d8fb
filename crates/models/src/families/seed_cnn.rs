//! The seed experiment's CNN: input 28x28 -> Conv2d(12 filters, 3x3, valid) + ReLU ->
//! MaxPool(2x2) -> Flatten -> Dense(10) logits. 20,410 parameters on MNIST. (The filter
//! count is a parameter only so that structured pruning can lower it.)

use slimbench_core::artifact::IoShape;
use slimbench_core::config::SeedCnnConfig;
use tch::{Tensor, nn};

use super::{Conv, Dense, Net};
use crate::ops::{self, Op};

/// The seed CNN.
#[derive(Debug)]
pub struct SeedCnn {
    conv: Conv,
    fc: Dense,
}

impl SeedCnn {
    /// Build under `p`.
    pub fn new(p: &nn::Path, c: &SeedCnnConfig, io: IoShape) -> Result<Self, String> {
        let (h, w) = ((io.height - 2) / 2, (io.width - 2) / 2);
        if h < 1 || w < 1 {
            return Err(format!("seed-cnn needs images of at least 4x4, got {}x{}", io.height, io.width));
        }
        if c.filters < 1 {
            return Err(format!("seed-cnn filters must be positive, got {}", c.filters));
        }
        Ok(SeedCnn {
            conv: Conv::new(p / "conv", io.channels, c.filters, 3, 1, 0, 1),
            fc: Dense::new(p / "fc", c.filters * h * w, io.classes),
        })
    }
}

impl nn::ModuleT for SeedCnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        ops::run(&self.ops(), xs, train)
    }
}

impl Net for SeedCnn {
    fn ops(&self) -> Vec<Op<'_>> {
        vec![Op::Conv(&self.conv), Op::Relu, Op::MaxPool2, Op::Flatten, Op::Linear(&self.fc)]
    }
}
