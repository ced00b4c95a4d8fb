//! MobileNets: v1 (Howard et al. 2017), depthwise-separable blocks (3x3 depthwise +
//! BN + ReLU, 1x1 pointwise + BN + ReLU); v2 (Sandler et al. 2018), inverted residual
//! blocks (1x1 expansion + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 linear
//! projection + BN, and a residual add when the shape is kept). Both take a width
//! multiplier. On small images (64 pixels or less, CIFAR's 32x32) the stem and the
//! first downsampling stage keep stride 1, as CIFAR ports of both do, so that the
//! last feature map is not smaller than one pixel.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Preset, conv_bn_act, scaled};
use crate::Builder;
use crate::ir::{Activation, Graph, Op};

/// Parameters of `mobilenet-v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MobileNetV1Config {
    /// Width multiplier alpha (channels scaled and rounded to multiples of 8).
    pub width: f64,
    /// Dropout before the classifier, while training.
    pub dropout: f64,
}

impl Default for MobileNetV1Config {
    fn default() -> Self {
        MobileNetV1Config { width: 1.0, dropout: 0.0 }
    }
}

/// Parameters of `mobilenet-v2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MobileNetV2Config {
    /// Width multiplier alpha (channels scaled and rounded to multiples of 8).
    pub width: f64,
    /// Dropout before the classifier, while training (the paper: 0.2).
    pub dropout: f64,
}

impl Default for MobileNetV2Config {
    fn default() -> Self {
        MobileNetV2Config { width: 1.0, dropout: 0.2 }
    }
}

fn check(width: f64, dropout: f64, input: [i64; 3], what: &str) -> Result<bool, String> {
    if !(width > 0.0 && width <= 4.0 && (0.0..1.0).contains(&dropout)) {
        return Err(format!("{what} width must be in (0, 4] and dropout in [0, 1)"));
    }
    if input[1] < 8 || input[2] < 8 {
        return Err(format!("{what} needs images of at least 8x8, got {}x{}", input[1], input[2]));
    }
    Ok(input[1].max(input[2]) <= 64)
}

fn head(b: &mut Builder, dropout: f64, classes: i64) {
    b.auto(Op::GlobalAvgPool);
    b.auto(Op::Flatten);
    if dropout > 0.0 {
        b.auto(Op::Dropout { p: dropout });
    }
    b.then("fc", Op::Linear { out: classes, bias: true });
}

impl Preset for MobileNetV1Config {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        let small = check(self.width, self.dropout, input, "mobilenet-v1")?;
        let relu = Some(Activation::Relu);
        let mut b = Builder::new(input);
        let mut ch = scaled(32, self.width, 8);
        conv_bn_act(&mut b, "stem", Op::conv(ch, 3, if small { 1 } else { 2 }, 1, 1, false), relu);
        // (channels, stride) of the 13 depthwise-separable blocks.
        let blocks = [
            (64, 1),
            (128, 2),
            (128, 1),
            (256, 2),
            (256, 1),
            (512, 2),
            (512, 1),
            (512, 1),
            (512, 1),
            (512, 1),
            (512, 1),
            (1024, 2),
            (1024, 1),
        ];
        for (i, (c, s)) in blocks.into_iter().enumerate() {
            let out = scaled(c, self.width, 8);
            let s = if small && i == 1 { 1 } else { s };
            conv_bn_act(&mut b, &format!("dw{}", i + 1), Op::conv(ch, 3, s, 1, ch, false), relu);
            conv_bn_act(&mut b, &format!("pw{}", i + 1), Op::conv(out, 1, 1, 0, 1, false), relu);
            ch = out;
        }
        head(&mut b, self.dropout, classes);
        Ok(b.finish())
    }
}

impl Preset for MobileNetV2Config {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        let small = check(self.width, self.dropout, input, "mobilenet-v2")?;
        let relu6 = Some(Activation::Relu6);
        let mut b = Builder::new(input);
        let mut ch = scaled(32, self.width, 8);
        conv_bn_act(&mut b, "stem", Op::conv(ch, 3, if small { 1 } else { 2 }, 1, 1, false), relu6);
        // (expansion t, channels c, repeats n, first stride s), the paper's table 2.
        let settings = [
            (1, 16, 1, 1),
            (6, 24, 2, 2),
            (6, 32, 3, 2),
            (6, 64, 4, 2),
            (6, 96, 3, 1),
            (6, 160, 3, 2),
            (6, 320, 1, 1),
        ];
        for (si, (t, c, n, s)) in settings.into_iter().enumerate() {
            let out = scaled(c, self.width, 8);
            for r in 0..n {
                let stride = if r > 0 || (small && si == 1) { 1 } else { s };
                let name = format!("b{}_{r}", si + 1);
                let entry = b.last().to_string();
                let hidden = ch * t;
                if t != 1 {
                    conv_bn_act(
                        &mut b,
                        &format!("{name}_expand"),
                        Op::conv(hidden, 1, 1, 0, 1, false),
                        relu6,
                    );
                }
                conv_bn_act(
                    &mut b,
                    &format!("{name}_dw"),
                    Op::conv(hidden, 3, stride, 1, hidden, false),
                    relu6,
                );
                let proj =
                    conv_bn_act(&mut b, &format!("{name}_project"), Op::conv(out, 1, 1, 0, 1, false), None);
                if stride == 1 && ch == out {
                    b.node(&format!("{name}_add"), Op::Add, vec![proj, entry]);
                }
                ch = out;
            }
        }
        let last = if self.width > 1.0 { scaled(1280, self.width, 8) } else { 1280 };
        conv_bn_act(&mut b, "last", Op::conv(last, 1, 1, 0, 1, false), relu6);
        head(&mut b, self.dropout, classes);
        Ok(b.finish())
    }
}
