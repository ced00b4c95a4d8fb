//! Optimizers from settings.

use slimbench_core::config::{OptimSettings, OptimizerKind};
use tch::nn::{self, OptimizerConfig};

/// Build the optimizer the settings describe over every trainable variable of `vs`.
pub fn build_optimizer(vs: &nn::VarStore, o: &OptimSettings) -> Result<nn::Optimizer, tch::TchError> {
    match o.optimizer {
        OptimizerKind::Adam => nn::Adam { wd: o.weight_decay, ..Default::default() }.build(vs, o.lr),
        OptimizerKind::Adamw => nn::AdamW { wd: o.weight_decay, ..Default::default() }.build(vs, o.lr),
        OptimizerKind::Sgd => {
            nn::Sgd { momentum: o.momentum, wd: o.weight_decay, ..Default::default() }.build(vs, o.lr)
        }
    }
}
