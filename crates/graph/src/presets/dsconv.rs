//! MobileNet-style CNN: a 3x3 stem convolution (`stem`), then depthwise-separable
//! blocks (3x3 depthwise convolution with stride 2 + ReLU `dw<i>`, 1x1 pointwise
//! convolution + ReLU `pw<i>`), global average pooling and a linear classifier (`fc`).
//! A depthwise-separable block costs K^2*C + C*C' weights where a full convolution
//! costs K^2*C*C'.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Preset;
use crate::Builder;
use crate::ir::{Activation, Graph, Op};

/// Parameters of the `dsconv` family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DsConvConfig {
    /// Output channels of the stem convolution and of each depthwise-separable block;
    /// every block after the first halves the resolution.
    pub channels: Vec<i64>,
}

impl Default for DsConvConfig {
    fn default() -> Self {
        DsConvConfig { channels: vec![16, 32, 64] }
    }
}

impl Preset for DsConvConfig {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        if self.channels.is_empty() || self.channels.iter().any(|&ch| ch < 1) {
            return Err("dsconv needs at least one positive channel count".into());
        }
        let relu = || Op::Act { f: Activation::Relu };
        let mut b = Builder::new(input);
        b.then("stem", Op::conv(self.channels[0], 3, 1, 1, 1, true));
        b.auto(relu());
        for (i, w) in self.channels.windows(2).enumerate() {
            b.then(&format!("dw{}", i + 1), Op::conv(w[0], 3, 2, 1, w[0], true));
            b.auto(relu());
            b.then(&format!("pw{}", i + 1), Op::conv(w[1], 1, 1, 0, 1, true));
            b.auto(relu());
        }
        b.auto(Op::GlobalAvgPool);
        b.auto(Op::Flatten);
        b.then("fc", Op::Linear { out: classes, bias: true });
        Ok(b.finish())
    }
}
