//! Multi-layer perceptron on the flattened image: Linear + ReLU per hidden width, then
//! a Linear to the classes (layers `fc0`, `fc1`, ...).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Preset;
use crate::Builder;
use crate::ir::{Activation, Graph, Op};

/// Parameters of the `mlp` family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    /// Widths of the hidden layers, input to output.
    pub hidden: Vec<i64>,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig { hidden: vec![256, 128] }
    }
}

impl Preset for MlpConfig {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        if let Some(w) = self.hidden.iter().find(|&&w| w < 1) {
            return Err(format!("mlp hidden widths must be positive, got {w}"));
        }
        let mut b = Builder::new(input);
        b.auto(Op::Flatten);
        for (i, &w) in self.hidden.iter().enumerate() {
            b.then(&format!("fc{i}"), Op::Linear { out: w, bias: true });
            b.auto(Op::Act { f: Activation::Relu });
        }
        b.then(&format!("fc{}", self.hidden.len()), Op::Linear { out: classes, bias: true });
        Ok(b.finish())
    }
}
