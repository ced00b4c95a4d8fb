//! [`Dense`]: the linear layer every family uses. It runs on libtorch's dense kernels
//! until [`Dense::pack`] hands its weights to fbgemm (int8 or fp16, through
//! `slimbench-torch-ext`); from then on its forward runs the packed kernel.

use std::sync::OnceLock;

use slimbench_core::artifact::Kernel;
use slimbench_torch_ext::BridgeError;
use slimbench_torch_ext::quantized::{PackedLinear, quantize_weight};
use tch::{Tensor, nn};

/// A linear layer, optionally packed for fbgemm.
#[derive(Debug)]
pub struct Dense {
    lin: nn::Linear,
    packed: OnceLock<PackedLinear>,
}

impl Dense {
    /// `in_dim -> out_dim` with weight and bias under `p` (`p/weight`, `p/bias`).
    pub fn new(p: nn::Path<'_>, in_dim: i64, out_dim: i64) -> Self {
        Dense { lin: nn::linear(p, in_dim, out_dim, Default::default()), packed: OnceLock::new() }
    }

    /// Pack the current weights for `kernel` (a no-op for [`Kernel::Dense`] or when
    /// already packed). The weights must be fp32 on the CPU.
    pub fn pack(&self, kernel: Kernel) -> Result<(), BridgeError> {
        if kernel == Kernel::Dense || self.packed.get().is_some() {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        let w = self.lin.ws.detach().contiguous();
        let b = self.lin.bs.as_ref().map(|b| b.detach());
        let packed = match kernel {
            Kernel::Int8Dynamic => PackedLinear::int8(&quantize_weight(&w)?, b.as_ref())?,
            Kernel::Fp16Dynamic => PackedLinear::fp16(&w, b.as_ref())?,
            Kernel::Dense => unreachable!("returned above"),
        };
        let _ = self.packed.set(packed);
        Ok(())
    }

    /// Whether it runs on a packed kernel.
    pub fn is_packed(&self) -> bool {
        self.packed.get().is_some()
    }
}

impl nn::Module for Dense {
    fn forward(&self, xs: &Tensor) -> Tensor {
        match self.packed.get() {
            // The packed layer was built from this layer's own shapes; an error here is
            // a bug, as a shape mismatch in `apply` would be.
            Some(p) => p.forward(xs).unwrap_or_else(|e| panic!("packed linear layer: {e}")),
            None => xs.apply(&self.lin),
        }
    }
}
