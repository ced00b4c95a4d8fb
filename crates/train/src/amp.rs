//! Mixed precision on CUDA: autocast to bf16 or fp16 around the forward pass, and for
//! fp16 a dynamic loss scale ([`LossScaler`], PyTorch's `GradScaler` on libtorch's own
//! `_amp_non_finite_check_and_unscale_` and `_amp_update_scale_` kernels), so that
//! small fp16 gradients do not flush to zero. Weights and optimizer state stay fp32.

use slimbench_core::config::AmpKind;
use tch::{Device, Kind, Tensor};

/// The reduced precision autocast computes in.
pub fn kind(amp: AmpKind) -> Kind {
    match amp {
        AmpKind::Bf16 => Kind::BFloat16,
        AmpKind::Fp16 => Kind::Half,
    }
}

/// Run `f` under CUDA autocast to `amp`'s precision (this thread only).
pub fn autocast<T>(amp: AmpKind, f: impl FnOnce() -> T) -> Result<T, slimbench_torch_ext::BridgeError> {
    slimbench_torch_ext::set_cuda_autocast_dtype(kind(amp))?;
    Ok(tch::autocast(true, f))
}

/// Dynamic loss scaling for fp16: the loss is multiplied by the scale before the
/// backward pass, the gradients divided by it before the step; a step whose gradients
/// overflowed is skipped and the scale halved, and after 2,000 good steps in a row it
/// doubles (PyTorch's defaults).
#[derive(Debug)]
pub struct LossScaler {
    scale: Tensor,
    growth_tracker: Tensor,
    found_inf: Tensor,
    /// Steps skipped because a gradient was not finite.
    pub skipped: u64,
}

impl LossScaler {
    /// A scaler starting at 2^16, on `device` (CUDA: the kernels exist there only).
    pub fn new(device: Device) -> Self {
        LossScaler {
            scale: Tensor::full([1], 65536.0, (Kind::Float, device)),
            growth_tracker: Tensor::zeros([1], (Kind::Int, device)),
            found_inf: Tensor::zeros([1], (Kind::Float, device)),
            skipped: 0,
        }
    }

    /// `loss` times the current scale.
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        loss * &self.scale
    }

    /// Divide the gradients of `params` by the scale and update it; returns whether
    /// every gradient is finite (whether the optimizer should step).
    pub fn unscale_and_update(&mut self, params: &[Tensor]) -> bool {
        let _ = self.found_inf.zero_();
        let inv = self.scale.reciprocal();
        for p in params {
            let mut g = p.grad();
            if g.defined() {
                g.internal_amp_non_finite_check_and_unscale(&mut self.found_inf, &inv);
            }
        }
        let finite = self.found_inf.double_value(&[0]) == 0.0;
        let _ = self.scale.internal_amp_update_scale_(&self.growth_tracker, &self.found_inf, 2.0, 0.5, 2000);
        if !finite {
            self.skipped += 1;
        }
        finite
    }

    /// The current scale.
    pub fn current(&self) -> f64 {
        self.scale.double_value(&[0])
    }
}
