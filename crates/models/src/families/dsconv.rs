//! MobileNet-style CNN: a 3x3 stem convolution, then depthwise-separable blocks
//! (3x3 depthwise convolution with stride 2 + ReLU, 1x1 pointwise convolution + ReLU),
//! global average pooling and a linear classifier. A depthwise-separable block costs
//! K^2*C + C*C' weights where a full convolution costs K^2*C*C'.

use slimbench_core::artifact::IoShape;
use slimbench_core::config::DsConvConfig;
use tch::{Tensor, nn};

use super::{Conv, Dense, Net};
use crate::ops::{self, Op};

/// The depthwise-separable CNN.
#[derive(Debug)]
pub struct DsConv {
    stem: Conv,
    blocks: Vec<(Conv, Conv)>,
    fc: Dense,
}

impl DsConv {
    /// Build under `p` (`stem`, `dw1`/`pw1`, ..., `fc`).
    pub fn new(p: &nn::Path, c: &DsConvConfig, io: IoShape) -> Result<Self, String> {
        if c.channels.is_empty() || c.channels.iter().any(|&ch| ch < 1) {
            return Err("dsconv needs at least one positive channel count".into());
        }
        let stem = Conv::new(p / "stem", io.channels, c.channels[0], 3, 1, 1, 1);
        let blocks = c
            .channels
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                (
                    Conv::new(p / format!("dw{}", i + 1), w[0], w[0], 3, 2, 1, w[0]),
                    Conv::new(p / format!("pw{}", i + 1), w[0], w[1], 1, 1, 0, 1),
                )
            })
            .collect();
        let fc = Dense::new(p / "fc", *c.channels.last().expect("non-empty"), io.classes);
        Ok(DsConv { stem, blocks, fc })
    }
}

impl nn::ModuleT for DsConv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        ops::run(&self.ops(), xs, train)
    }
}

impl Net for DsConv {
    fn ops(&self) -> Vec<Op<'_>> {
        let mut v = vec![Op::Conv(&self.stem), Op::Relu];
        for (dw, pw) in &self.blocks {
            v.extend([Op::Conv(dw), Op::Relu, Op::Conv(pw), Op::Relu]);
        }
        v.extend([Op::GlobalAvgPool, Op::Flatten, Op::Linear(&self.fc)]);
        v
    }
}
