//! [`Norm`]: batch normalisation over channels (images) or features (vectors), with
//! its running statistics as (non-trainable) variables of the model, so they are
//! saved, loaded, copied and moved with the weights.

use tch::{Tensor, nn};

/// A batch-norm layer.
#[derive(Debug)]
pub struct Norm {
    bn: nn::BatchNorm,
    name: String,
    eps: f64,
}

impl Norm {
    /// Over `channels`, under `p` (`weight`, `bias`, `running_mean`, `running_var`),
    /// initialised as PyTorch does (weight 1, bias 0).
    pub fn new(p: nn::Path<'_>, channels: i64, eps: f64, momentum: f64) -> Self {
        let name = p.components().collect::<Vec<_>>().join(".");
        let cfg = nn::BatchNormConfig { eps, momentum, ws_init: nn::Init::Const(1.0), ..Default::default() };
        Norm { bn: nn::batch_norm2d(p, channels, cfg), name, eps }
    }

    /// Its name in the model: the prefix of its variables.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The per-channel `(scale, shift)` it applies at inference:
    /// `y = x * scale + shift`, with `scale = weight / sqrt(var + eps)` and
    /// `shift = bias - mean * scale` (what folding it into a convolution multiplies in).
    pub fn affine(&self) -> (Tensor, Tensor) {
        let w = self.bn.ws.as_ref().expect("affine batch norm");
        let b = self.bn.bs.as_ref().expect("affine batch norm");
        let scale = w / (&self.bn.running_var + self.eps).sqrt();
        let shift = b - &self.bn.running_mean * &scale;
        (scale, shift)
    }
}

impl nn::ModuleT for Norm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(xs, train)
    }
}
