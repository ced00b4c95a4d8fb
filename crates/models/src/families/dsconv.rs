//! MobileNet-style CNN: a 3x3 stem convolution, then depthwise-separable blocks
//! (3x3 depthwise convolution with stride 2 + ReLU, 1x1 pointwise convolution + ReLU),
//! global average pooling and a linear classifier. A depthwise-separable block costs
//! K^2*C + C*C' weights where a full convolution costs K^2*C*C'.

use slimbench_core::artifact::IoShape;
use slimbench_core::config::DsConvConfig;
use tch::{Tensor, nn};

use super::{Dense, Net};

/// The depthwise-separable CNN.
#[derive(Debug)]
pub struct DsConv {
    stem: nn::Conv2D,
    blocks: Vec<(nn::Conv2D, nn::Conv2D)>,
    fc: Dense,
}

impl DsConv {
    /// Build under `p` (`stem`, `dw1`/`pw1`, ..., `fc`).
    pub fn new(p: &nn::Path, c: &DsConvConfig, io: IoShape) -> Result<Self, String> {
        if c.channels.is_empty() || c.channels.iter().any(|&ch| ch < 1) {
            return Err("dsconv needs at least one positive channel count".into());
        }
        let pad = nn::ConvConfig { padding: 1, ..Default::default() };
        let stem = nn::conv2d(p / "stem", io.channels, c.channels[0], 3, pad);
        let blocks = c
            .channels
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let dw = nn::ConvConfig { stride: 2, padding: 1, groups: w[0], ..Default::default() };
                (
                    nn::conv2d(p / format!("dw{}", i + 1), w[0], w[0], 3, dw),
                    nn::conv2d(p / format!("pw{}", i + 1), w[0], w[1], 1, Default::default()),
                )
            })
            .collect();
        let fc = Dense::new(p / "fc", *c.channels.last().expect("non-empty"), io.classes);
        Ok(DsConv { stem, blocks, fc })
    }
}

impl nn::ModuleT for DsConv {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let mut x = xs.apply(&self.stem).relu();
        for (dw, pw) in &self.blocks {
            x = x.apply(dw).relu().apply(pw).relu();
        }
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1).apply(&self.fc)
    }
}

impl Net for DsConv {
    fn dense_layers(&self) -> Vec<&Dense> {
        vec![&self.fc]
    }
}
