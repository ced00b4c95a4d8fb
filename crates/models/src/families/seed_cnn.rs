//! The seed experiment's CNN: input 28x28 -> Conv2d(12 filters, 3x3, valid) + ReLU ->
//! MaxPool(2x2) -> Flatten -> Dense(10) logits. 20,410 parameters on MNIST. (The filter
//! count is a parameter only so that structured pruning can lower it.)

use slimbench_core::artifact::IoShape;
use slimbench_core::config::SeedCnnConfig;
use tch::{Tensor, nn};

use super::{Dense, Net};

/// The seed CNN.
#[derive(Debug)]
pub struct SeedCnn {
    conv: nn::Conv2D,
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
            conv: nn::conv2d(p / "conv", io.channels, c.filters, 3, Default::default()),
            fc: Dense::new(p / "fc", c.filters * h * w, io.classes),
        })
    }
}

impl nn::ModuleT for SeedCnn {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        xs.apply(&self.conv).relu().max_pool2d_default(2).flatten(1, -1).apply(&self.fc)
    }
}

impl Net for SeedCnn {
    fn dense_layers(&self) -> Vec<&Dense> {
        vec![&self.fc]
    }
}
