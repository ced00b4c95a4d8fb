//! CIFAR-style ResNet (He et al. 2016, section 4.2): a 3x3 stem of 16 channels, three
//! stages of `n` basic blocks at 16, 32 and 64 channels (`depth` = 6n + 2), the
//! second and third starting with stride 2, then global average pooling and a linear
//! classifier. A basic block is conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then
//! ReLU. Where a block changes shape the shortcut is option A (subsample and pad the
//! new channels with zeros: no parameters, the paper's CIFAR choice) or option B (a
//! 1x1 convolution with stride and BN).
//!
//! Node ids: `stem`, `s<stage>b<block>_conv1`, `..._conv2`, `..._add`, `..._down`, `fc`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Preset, conv_bn_act};
use crate::Builder;
use crate::ir::{Activation, Graph, Op};

/// How a block that changes shape carries its input to the sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Shortcut {
    /// Option A: subsample, pad the extra channels with zeros (no parameters).
    A,
    /// Option B: a 1x1 convolution with stride, and batch norm.
    Conv,
}

/// Parameters of `resnet`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ResnetConfig {
    /// 6n + 2 layers: 20, 32, 44, 56, 110, ...
    pub depth: i64,
    /// Channels of the first stage (the paper: 16); the others double it.
    pub width: i64,
    /// `a` (zero-padding, the paper's CIFAR choice) or `conv` (1x1 projection).
    pub shortcut: Shortcut,
}

impl Default for ResnetConfig {
    fn default() -> Self {
        ResnetConfig { depth: 20, width: 16, shortcut: Shortcut::A }
    }
}

impl Preset for ResnetConfig {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        if self.depth < 8 || (self.depth - 2) % 6 != 0 {
            return Err(format!("resnet depth must be 6n + 2 (20, 32, 44, 56, ...), got {}", self.depth));
        }
        if self.width < 1 {
            return Err(format!("resnet width must be positive, got {}", self.width));
        }
        if input[1] < 4 || input[2] < 4 {
            return Err(format!("resnet needs images of at least 4x4, got {}x{}", input[1], input[2]));
        }
        let n = (self.depth - 2) / 6;
        let relu = Some(Activation::Relu);
        let mut b = Builder::new(input);
        conv_bn_act(&mut b, "stem", Op::conv(self.width, 3, 1, 1, 1, false), relu);
        let mut ch = self.width;
        for stage in 0..3 {
            let out = self.width << stage;
            for block in 0..n {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                let name = format!("s{}b{block}", stage + 1);
                let entry = b.last().to_string();
                conv_bn_act(&mut b, &format!("{name}_conv1"), Op::conv(out, 3, stride, 1, 1, false), relu);
                let main =
                    conv_bn_act(&mut b, &format!("{name}_conv2"), Op::conv(out, 3, 1, 1, 1, false), None);
                let short = if stride == 1 && ch == out {
                    entry
                } else {
                    b.from(&entry);
                    match self.shortcut {
                        Shortcut::A => {
                            b.then(&format!("{name}_sub"), Op::Subsample { stride });
                            let extra = out - ch;
                            b.then(
                                &format!("{name}_pad"),
                                Op::PadChannels { before: extra / 2, after: extra - extra / 2 },
                            )
                        }
                        Shortcut::Conv => conv_bn_act(
                            &mut b,
                            &format!("{name}_down"),
                            Op::conv(out, 1, stride, 0, 1, false),
                            None,
                        ),
                    }
                };
                b.node(&format!("{name}_add"), Op::Add, vec![main, short]);
                b.then(&format!("{name}_relu"), Op::Act { f: Activation::Relu });
                ch = out;
            }
        }
        b.auto(Op::GlobalAvgPool);
        b.auto(Op::Flatten);
        b.then("fc", Op::Linear { out: classes, bias: true });
        Ok(b.finish())
    }
}
