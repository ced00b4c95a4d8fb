//! The seed experiment's CNN: Conv2d(12 filters, 3x3, valid) + ReLU -> MaxPool(2x2) ->
//! Flatten -> Linear to the classes. 20,410 parameters on MNIST. (The filter count is
//! a parameter only so that structured pruning can lower it.)

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Preset;
use crate::Builder;
use crate::ir::{Activation, Graph, Op, PoolKind};

/// Parameters of the seed CNN: only its filter count (the seed experiment's 12).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedCnnConfig {
    /// Convolution filters.
    #[serde(default = "d_filters", skip_serializing_if = "is_default_filters")]
    pub filters: i64,
}

fn d_filters() -> i64 {
    12
}
fn is_default_filters(f: &i64) -> bool {
    *f == 12
}

impl Default for SeedCnnConfig {
    fn default() -> Self {
        SeedCnnConfig { filters: d_filters() }
    }
}

impl Preset for SeedCnnConfig {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        if self.filters < 1 {
            return Err(format!("seed-cnn filters must be positive, got {}", self.filters));
        }
        if input[1] < 4 || input[2] < 4 {
            return Err(format!("seed-cnn needs images of at least 4x4, got {}x{}", input[1], input[2]));
        }
        let mut b = Builder::new(input);
        b.then("conv", Op::conv(self.filters, 3, 1, 0, 1, true));
        b.auto(Op::Act { f: Activation::Relu });
        b.auto(Op::pool(PoolKind::Max, 2, 2, 0));
        b.auto(Op::Flatten);
        b.then("fc", Op::Linear { out: classes, bias: true });
        Ok(b.finish())
    }
}
