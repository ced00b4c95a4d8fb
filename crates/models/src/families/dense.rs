//! [`Dense`]: the linear layer every family uses. It runs on libtorch's dense kernels
//! until [`Dense::pack`] hands its weights to fbgemm (int8 or fp16, through
//! `slimbench-torch-ext`); from then on its forward runs the packed kernel.
//!
//! A layer can also be *factored* ([`crate::Model::factorize`]): its `[out, in]` weight
//! replaced by two low-rank factors `outer [out, r] x inner [r, in]`, stored as the
//! layers `<name>.lr_in` and `<name>.lr_out`, so that `x -> (x W_in^T) W_out^T + b`
//! costs `r * (in + out)` multiply-adds instead of `in * out`.

use std::sync::OnceLock;

use slimbench_core::artifact::Kernel;
use slimbench_torch_ext::BridgeError;
use slimbench_torch_ext::quantized::{PackedLinear, quantize_weight};
use tch::{Tensor, nn};

/// A linear layer, optionally factored and optionally packed for fbgemm.
#[derive(Debug)]
pub struct Dense {
    lin: nn::Linear,
    name: String,
    in_dim: i64,
    out_dim: i64,
    factors: OnceLock<Factors>,
    packed: OnceLock<Packed>,
}

/// Low-rank factors of a weight: `W ~ outer x inner`.
#[derive(Debug)]
struct Factors {
    inner: Tensor,
    outer: Tensor,
}

/// The packed kernels: one layer, or the two factors in order.
#[derive(Debug)]
struct Packed {
    inner: Option<PackedLinear>,
    outer: PackedLinear,
}

impl Dense {
    /// `in_dim -> out_dim` with weight and bias under `p` (`p/weight`, `p/bias`).
    pub fn new(p: nn::Path<'_>, in_dim: i64, out_dim: i64) -> Self {
        let name = p.components().collect::<Vec<_>>().join(".");
        Dense {
            lin: nn::linear(p, in_dim, out_dim, Default::default()),
            name,
            in_dim,
            out_dim,
            factors: OnceLock::new(),
            packed: OnceLock::new(),
        }
    }

    /// Its name in the model (`fc`, `fc0`, `hidden`): the prefix of its parameters.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `(in, out)` widths.
    pub fn dims(&self) -> (i64, i64) {
        (self.in_dim, self.out_dim)
    }

    /// The rank of its factors, when factored.
    pub fn rank(&self) -> Option<i64> {
        self.factors.get().map(|f| f.inner.size()[0])
    }

    /// Its full `[out, in]` weight (the product of the factors when factored).
    pub fn weight(&self) -> Tensor {
        match self.factors.get() {
            Some(f) => f.outer.matmul(&f.inner),
            None => self.lin.ws.shallow_clone(),
        }
    }

    /// Use `inner [r, in]` and `outer [out, r]` (variables of the model's store) instead
    /// of the full weight from now on. Called once, by `Model::factorize`.
    pub(crate) fn set_factors(&self, inner: Tensor, outer: Tensor) -> Result<(), String> {
        if self.packed.get().is_some() {
            return Err(format!("layer `{}` is already packed", self.name));
        }
        self.factors
            .set(Factors { inner, outer })
            .map_err(|_| format!("layer `{}` is already factored", self.name))
    }

    /// Pack the current weights for `kernel` (a no-op for [`Kernel::Dense`] or when
    /// already packed). The weights must be fp32 on the CPU. A factored layer packs both
    /// factors (the bias goes with the outer one).
    pub fn pack(&self, kernel: Kernel) -> Result<(), BridgeError> {
        if kernel == Kernel::Dense || self.packed.get().is_some() {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        let b = self.lin.bs.as_ref().map(|b| b.detach());
        let one = |w: &Tensor, b: Option<&Tensor>| {
            let w = w.detach().contiguous();
            match kernel {
                Kernel::Int8Dynamic => PackedLinear::int8(&quantize_weight(&w)?, b),
                Kernel::Fp16Dynamic => PackedLinear::fp16(&w, b),
                Kernel::Dense => unreachable!("returned above"),
            }
        };
        let packed = match self.factors.get() {
            Some(f) => Packed { inner: Some(one(&f.inner, None)?), outer: one(&f.outer, b.as_ref())? },
            None => Packed { inner: None, outer: one(&self.lin.ws, b.as_ref())? },
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
        // The packed layers were built from this layer's own shapes; an error here is a
        // bug, as a shape mismatch in `apply` would be.
        let run = |p: &PackedLinear, x: &Tensor| {
            p.forward(x).unwrap_or_else(|e| panic!("packed linear layer: {e}"))
        };
        match (self.packed.get(), self.factors.get()) {
            (Some(p), _) => match &p.inner {
                Some(inner) => run(&p.outer, &run(inner, xs)),
                None => run(&p.outer, xs),
            },
            (None, Some(f)) => xs.linear(&f.inner, None::<&Tensor>).linear(&f.outer, self.lin.bs.as_ref()),
            (None, None) => xs.apply(&self.lin),
        }
    }
}
