//! [`Conv`]: the 2-D convolution every family uses. It keeps its geometry (stride,
//! padding, groups) beside its parameters, which tch's `Conv2D` keeps private, so that
//! quantization can repack it for fbgemm's int8 kernels.

use tch::{Tensor, nn};

/// A square-kernel 2-D convolution with zero padding.
#[derive(Debug)]
pub struct Conv {
    conv: nn::Conv2D,
    name: String,
    stride: i64,
    padding: i64,
    groups: i64,
}

impl Conv {
    /// `in_ch -> out_ch` channels, `k x k` kernel, weight and bias under `p`.
    pub fn new(
        p: nn::Path<'_>,
        in_ch: i64,
        out_ch: i64,
        k: i64,
        stride: i64,
        padding: i64,
        groups: i64,
    ) -> Self {
        let name = p.components().collect::<Vec<_>>().join(".");
        let cfg = nn::ConvConfig { stride, padding, groups, ..Default::default() };
        Conv { conv: nn::conv2d(p, in_ch, out_ch, k, cfg), name, stride, padding, groups }
    }

    /// Its name in the model (`conv`, `conv0`, `dw1`): the prefix of its parameters.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its `[out, in / groups, k, k]` weight.
    pub fn weight(&self) -> &Tensor {
        &self.conv.ws
    }

    /// Its bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.conv.bs.as_ref()
    }

    /// `(stride, padding, groups)`.
    pub fn geometry(&self) -> (i64, i64, i64) {
        (self.stride, self.padding, self.groups)
    }

    /// The convolution with `weight` in place of its own (fake-quantized weights).
    pub fn forward_with(&self, xs: &Tensor, weight: &Tensor) -> Tensor {
        let (s, p) = ([self.stride; 2], [self.padding; 2]);
        xs.conv2d(weight, self.conv.bs.as_ref(), s, p, [1, 1], self.groups)
    }
}

impl nn::Module for Conv {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_with(xs, &self.conv.ws)
    }
}
