//! Configurable CNN, the usual teacher: per channel count a Conv2d(3x3, padding 1) +
//! ReLU + MaxPool(2x2) block (`conv0`, `conv1`, ...), then an optional hidden Linear +
//! ReLU (`hidden`), dropout while training, and the classifier (`fc`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Preset;
use crate::Builder;
use crate::ir::{Activation, Graph, Op, PoolKind};

/// Parameters of the `cnn` family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CnnConfig {
    /// Output channels of each conv(3x3, padding 1)-ReLU-maxpool(2x2) block.
    pub channels: Vec<i64>,
    /// Width of the hidden dense layer (0: none).
    pub hidden: i64,
    /// Dropout probability before the last layer, during training only.
    pub dropout: f64,
}

impl Default for CnnConfig {
    fn default() -> Self {
        CnnConfig { channels: vec![32, 64], hidden: 128, dropout: 0.0 }
    }
}

impl Preset for CnnConfig {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        if self.channels.iter().any(|&ch| ch < 1) || self.hidden < 0 || !(0.0..1.0).contains(&self.dropout) {
            return Err("cnn channels must be positive, hidden >= 0 and dropout in [0, 1)".into());
        }
        let mut b = Builder::new(input);
        let (mut h, mut w) = (input[1], input[2]);
        for (i, &out) in self.channels.iter().enumerate() {
            b.then(&format!("conv{i}"), Op::conv(out, 3, 1, 1, 1, true));
            b.auto(Op::Act { f: Activation::Relu });
            b.auto(Op::pool(PoolKind::Max, 2, 2, 0));
            (h, w) = (h / 2, w / 2);
            if h < 1 || w < 1 {
                return Err(format!("cnn has too many pooling blocks for {}x{} images", input[1], input[2]));
            }
        }
        b.auto(Op::Flatten);
        if self.hidden > 0 {
            b.then("hidden", Op::Linear { out: self.hidden, bias: true });
            b.auto(Op::Act { f: Activation::Relu });
        }
        if self.dropout > 0.0 {
            b.auto(Op::Dropout { p: self.dropout });
        }
        b.then("fc", Op::Linear { out: classes, bias: true });
        Ok(b.finish())
    }
}
