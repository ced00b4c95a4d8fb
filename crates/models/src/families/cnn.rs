//! Configurable CNN, the usual teacher: per channel count a Conv2d(3x3, padding 1) +
//! ReLU + MaxPool(2x2) block, then an optional hidden Linear + ReLU (+ dropout while
//! training) and the classifier.

use slimbench_core::artifact::IoShape;
use slimbench_core::config::CnnConfig;
use tch::{Tensor, nn};

use super::{Conv, Dense, Net};
use crate::ops::{self, Op};

/// The configurable CNN.
#[derive(Debug)]
pub struct Cnn {
    convs: Vec<Conv>,
    hidden: Option<Dense>,
    fc: Dense,
    dropout: f64,
}

impl Cnn {
    /// Build under `p` (`conv0`, `conv1`, ..., `hidden`, `fc`).
    pub fn new(p: &nn::Path, c: &CnnConfig, io: IoShape) -> Result<Self, String> {
        if c.channels.iter().any(|&ch| ch < 1) || c.hidden < 0 || !(0.0..1.0).contains(&c.dropout) {
            return Err("cnn channels must be positive, hidden >= 0 and dropout in [0, 1)".into());
        }
        let (mut ch, mut h, mut w) = (io.channels, io.height, io.width);
        let mut convs = Vec::new();
        for (i, &out) in c.channels.iter().enumerate() {
            convs.push(Conv::new(p / format!("conv{i}"), ch, out, 3, 1, 1, 1));
            (ch, h, w) = (out, h / 2, w / 2);
            if h < 1 || w < 1 {
                return Err(format!("cnn has too many pooling blocks for {}x{} images", io.height, io.width));
            }
        }
        let flat = ch * h * w;
        let (hidden, fc_in) = if c.hidden > 0 {
            (Some(Dense::new(p / "hidden", flat, c.hidden)), c.hidden)
        } else {
            (None, flat)
        };
        Ok(Cnn { convs, hidden, fc: Dense::new(p / "fc", fc_in, io.classes), dropout: c.dropout })
    }
}

impl nn::ModuleT for Cnn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        ops::run(&self.ops(), xs, train)
    }
}

impl Net for Cnn {
    fn ops(&self) -> Vec<Op<'_>> {
        let mut v = Vec::new();
        for conv in &self.convs {
            v.extend([Op::Conv(conv), Op::Relu, Op::MaxPool2]);
        }
        v.push(Op::Flatten);
        if let Some(h) = &self.hidden {
            v.extend([Op::Linear(h), Op::Relu]);
        }
        v.extend([Op::Dropout(self.dropout), Op::Linear(&self.fc)]);
        v
    }
}
