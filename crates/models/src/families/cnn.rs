//! Configurable CNN, the usual teacher: per channel count a Conv2d(3x3, padding 1) +
//! ReLU + MaxPool(2x2) block, then an optional hidden Linear + ReLU (+ dropout while
//! training) and the classifier.

use slimbench_core::artifact::IoShape;
use slimbench_core::config::CnnConfig;
use tch::{Tensor, nn};

use super::{Dense, Net};

/// The configurable CNN.
#[derive(Debug)]
pub struct Cnn {
    convs: Vec<nn::Conv2D>,
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
        let pad = nn::ConvConfig { padding: 1, ..Default::default() };
        let (mut ch, mut h, mut w) = (io.channels, io.height, io.width);
        let mut convs = Vec::new();
        for (i, &out) in c.channels.iter().enumerate() {
            convs.push(nn::conv2d(p / format!("conv{i}"), ch, out, 3, pad));
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
        let mut x = xs.shallow_clone();
        for conv in &self.convs {
            x = x.apply(conv).relu().max_pool2d_default(2);
        }
        x = x.flatten(1, -1);
        if let Some(h) = &self.hidden {
            x = x.apply(h).relu();
        }
        x.dropout(self.dropout, train).apply(&self.fc)
    }
}

impl Net for Cnn {
    fn dense_layers(&self) -> Vec<&Dense> {
        self.hidden.iter().chain([&self.fc]).collect()
    }
}
