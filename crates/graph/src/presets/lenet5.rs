//! LeNet-5 (LeCun et al. 1998) as it is usually rebuilt: conv 6 5x5 -> pool -> conv 16
//! 5x5 -> pool -> linear 120 -> linear 84 -> classes. Images smaller than 32x32 get
//! the first convolution padded (2 on 28x28 MNIST, as the original padded its digits).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Preset;
use crate::Builder;
use crate::ir::{Activation, Graph, Op, PoolKind};

/// Parameters of `lenet5`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Lenet5Config {
    /// The activation after each layer (the original used tanh).
    pub act: Activation,
    /// Subsampling: `max` or `avg` (the original's) pooling.
    pub pool: PoolKind,
}

impl Default for Lenet5Config {
    fn default() -> Self {
        Lenet5Config { act: Activation::Relu, pool: PoolKind::Max }
    }
}

impl Preset for Lenet5Config {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        let side = input[1].min(input[2]);
        if side < 20 {
            return Err(format!("lenet5 needs images of at least 20x20, got {}x{}", input[1], input[2]));
        }
        let pad = ((32 - side) / 2).clamp(0, 2);
        let act = Op::Act { f: self.act };
        let mut b = Builder::new(input);
        b.then("conv1", Op::conv(6, 5, 1, pad, 1, true));
        b.auto(act.clone());
        b.auto(Op::pool(self.pool, 2, 2, 0));
        b.then("conv2", Op::conv(16, 5, 1, 0, 1, true));
        b.auto(act.clone());
        b.auto(Op::pool(self.pool, 2, 2, 0));
        b.auto(Op::Flatten);
        b.then("fc1", Op::Linear { out: 120, bias: true });
        b.auto(act.clone());
        b.then("fc2", Op::Linear { out: 84, bias: true });
        b.auto(act);
        b.then("fc3", Op::Linear { out: classes, bias: true });
        Ok(b.finish())
    }
}
