//! [`Dense`]: the linear layer of every graph. It runs on libtorch's dense kernels
//! until [`Dense::pack`] hands its weights to another kernel: fbgemm's (int8 or fp16,
//! through `slimbench-torch-ext`) on the CPU, CUDA's int8 or fp8 matmuls
//! ([`crate::cuda_linear`]) on a GPU; from then on its forward runs that kernel.
//!
//! A layer can also be *factored* ([`crate::Model::factorize`]): its `[out, in]` weight
//! replaced by two low-rank factors `outer [out, r] x inner [r, in]`, stored as the
//! layers `<name>.lr_in` and `<name>.lr_out`, so that `x -> (x W_in^T) W_out^T + b`
//! costs `r * (in + out)` multiply-adds instead of `in * out`.

use std::sync::OnceLock;

use slimbench_core::artifact::Kernel;
use slimbench_torch_ext::quantized::{PackedLinear, quantize_weight};
use tch::{Tensor, nn};

use crate::cuda_linear::{Fp8Linear, Int8MmLinear};

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
    inner: Option<Kernelled>,
    outer: Kernelled,
}

/// One weight on a kernel other than libtorch's dense one.
#[derive(Debug)]
enum Kernelled {
    Fbgemm(PackedLinear),
    Int8Mm(Int8MmLinear),
    Fp8(Fp8Linear),
}

impl Kernelled {
    fn forward(&self, x: &Tensor) -> Result<Tensor, String> {
        match self {
            Kernelled::Fbgemm(p) => p.forward(x).map_err(|e| e.to_string()),
            Kernelled::Int8Mm(l) => l.forward(x).map_err(|e| e.to_string()),
            Kernelled::Fp8(l) => l.forward(x).map_err(|e| e.to_string()),
        }
    }
}

impl Dense {
    /// `in_dim -> out_dim` with weight (and bias) under `p` (`p/weight`, `p/bias`).
    pub fn new(p: nn::Path<'_>, in_dim: i64, out_dim: i64, bias: bool) -> Self {
        let name = p.components().collect::<Vec<_>>().join(".");
        Dense {
            lin: nn::linear(p, in_dim, out_dim, nn::LinearConfig { bias, ..Default::default() }),
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

    /// Its own `[out, in]` weight variable (no longer a parameter once factored).
    pub fn own_weight(&self) -> &Tensor {
        &self.lin.ws
    }

    /// Its bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.lin.bs.as_ref()
    }

    /// Its factors `(inner [r, in], outer [out, r])`, when factored.
    pub fn factors(&self) -> Option<(&Tensor, &Tensor)> {
        self.factors.get().map(|f| (&f.inner, &f.outer))
    }

    /// The weights it runs, each with its name (`fc0`, or `fc0.lr_in` then
    /// `fc0.lr_out` when factored), input side first; the bias goes with the last.
    pub fn weights(&self) -> Vec<(String, &Tensor)> {
        match self.factors.get() {
            Some(f) => {
                vec![(format!("{}.lr_in", self.name), &f.inner), (format!("{}.lr_out", self.name), &f.outer)]
            }
            None => vec![(self.name.clone(), &self.lin.ws)],
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

    /// Pack the current weights for `kernel` (a no-op for kernels that are not per
    /// layer, or when already packed): fbgemm's int8 or fp16 kernels (fp32 weights on
    /// the CPU), or CUDA's `_int_mm` / `_scaled_mm`. A factored layer packs both
    /// factors (the bias goes with the outer one).
    pub fn pack(&self, kernel: Kernel) -> Result<(), String> {
        if !matches!(kernel, Kernel::Int8Dynamic | Kernel::Fp16Dynamic | Kernel::Int8Mm | Kernel::Fp8)
            || self.packed.get().is_some()
        {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        let b = self.lin.bs.as_ref().map(|b| b.detach());
        let one = |w: &Tensor, b: Option<&Tensor>| -> Result<Kernelled, String> {
            let w = w.detach().contiguous();
            let e = |e: &dyn std::fmt::Display| e.to_string();
            Ok(match kernel {
                Kernel::Int8Dynamic => Kernelled::Fbgemm(
                    quantize_weight(&w).and_then(|q| PackedLinear::int8(&q, b)).map_err(|x| e(&x))?,
                ),
                Kernel::Fp16Dynamic => Kernelled::Fbgemm(PackedLinear::fp16(&w, b).map_err(|x| e(&x))?),
                Kernel::Int8Mm => Kernelled::Int8Mm(Int8MmLinear::new(&w, b).map_err(|x| e(&x))?),
                _ => Kernelled::Fp8(Fp8Linear::new(&w, b).map_err(|x| e(&x))?),
            })
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
        let run = |p: &Kernelled, x: &Tensor| {
            p.forward(x).unwrap_or_else(|e| panic!("packed linear layer `{}`: {e}", self.name))
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
