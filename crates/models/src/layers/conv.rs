//! [`Conv`]: the 2-D convolution of every graph. It keeps its geometry (stride,
//! padding, dilation, groups) beside its parameters, which tch's `Conv2D` keeps
//! private, so that quantization can repack it for fbgemm's int8 kernels.

use tch::{Tensor, nn};

/// Where a convolution's kernel goes over its input: `[h, w]` pairs and groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Stride.
    pub stride: [i64; 2],
    /// Zero padding on both sides.
    pub padding: [i64; 2],
    /// Dilation.
    pub dilation: [i64; 2],
    /// Channel groups (input channels for a depthwise convolution).
    pub groups: i64,
}

/// A 2-D convolution with zero padding.
#[derive(Debug)]
pub struct Conv {
    conv: nn::Conv2D,
    name: String,
    geometry: Geometry,
}

impl Conv {
    /// `in_ch -> out_ch` channels with a `kernel` and `geometry`, weight (and bias) under
    /// `p`, initialised as PyTorch does (Kaiming-uniform weights; tch's zero bias).
    pub fn new(
        p: nn::Path<'_>,
        in_ch: i64,
        out_ch: i64,
        kernel: [i64; 2],
        geometry: Geometry,
        bias: bool,
    ) -> Self {
        let name = p.components().collect::<Vec<_>>().join(".");
        let cfg = nn::ConvConfigND::<[i64; 2]> {
            stride: geometry.stride,
            padding: geometry.padding,
            dilation: geometry.dilation,
            groups: geometry.groups,
            bias,
            ..Default::default()
        };
        Conv { conv: nn::conv(p, in_ch, out_ch, kernel, cfg), name, geometry }
    }

    /// Its name in the model (`conv`, `conv0`, `dw1`): the prefix of its parameters.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its `[out, in / groups, kh, kw]` weight.
    pub fn weight(&self) -> &Tensor {
        &self.conv.ws
    }

    /// Its bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.conv.bs.as_ref()
    }

    /// Stride, padding, dilation and groups.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Whether it is depthwise (one group per input channel, more than one group).
    pub fn is_depthwise(&self) -> bool {
        self.geometry.groups > 1 && self.conv.ws.size()[1] == 1
    }

    /// The convolution with `weight` (and `bias`) in place of its own (fake-quantized
    /// weights, batch norm folded in).
    pub fn forward_with_bias(&self, xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        let g = self.geometry;
        xs.conv2d(weight, bias, g.stride, g.padding, g.dilation, g.groups)
    }

    /// The convolution with `weight` in place of its own (fake-quantized weights).
    pub fn forward_with(&self, xs: &Tensor, weight: &Tensor) -> Tensor {
        self.forward_with_bias(xs, weight, self.conv.bs.as_ref())
    }
}

impl nn::Module for Conv {
    fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_with(xs, &self.conv.ws)
    }
}
