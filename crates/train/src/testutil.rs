//! What the loop tests share: generated digits, a small MLP, a training config.

use std::sync::Arc;

use slimbench_core::artifact::IoShape;
use slimbench_core::config::{MlpConfig, ModelConfig, OptimSettings, OptimizerKind, SyntheticDigitsConfig};
use slimbench_data::Split;
use slimbench_models::Model;
use tch::Device;

use crate::TrainConfig;

/// Train and test splits of generated digits.
pub fn digits(train_size: usize, test_size: usize) -> (Arc<Split>, Arc<Split>) {
    let cfg = SyntheticDigitsConfig { train_size, test_size, ..Default::default() };
    let ds = slimbench_data::synthetic::dataset("d", &cfg, 1).unwrap();
    (ds.train.clone(), ds.test.clone())
}

/// An MLP with one hidden layer, initialised from `seed`.
pub fn mlp(hidden: i64, seed: u64) -> Model {
    let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
    Model::build("m", &ModelConfig::Mlp(MlpConfig { hidden: vec![hidden] }), io, Device::Cpu, Some(seed))
        .unwrap()
}

/// A config with these settings, no workers, a curve point every 10 steps, alone.
pub fn config(epochs: u32, optimizer: OptimizerKind, lr: f64, batch_size: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        optim: OptimSettings {
            optimizer,
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            batch_size,
            schedule: Default::default(),
        },
        seed: 3,
        workers: 0,
        log_every: 10,
        eval_batch_size: 100,
        stage: "s".into(),
        variant: "v".into(),
        replica: None,
        augment: Default::default(),
        amp: None,
    }
}
