//! Linear layers on libtorch's low-precision matrix multiplications, which tch exposes
//! as bare operators: int8 through `torch._int_mm` (int32 accumulation) and fp8 e4m3
//! through `torch._scaled_mm`. Both are CUDA paths (`_int_mm` runs on CPUs too, but
//! much slower than fp32 there, so slimbench offers these only on CUDA); fp8 needs
//! compute capability 8.9+ (Ada, Hopper).
//!
//! Weights are quantized once, symmetrically: int8 per output row, fp8 per tensor.
//! Activations are quantized on every call the same way (int8 per row of the batch,
//! fp8 per tensor). The kernels' shape rules (`_int_mm`: more than 16 rows, inner and
//! outer sizes multiples of 8; `_scaled_mm`: multiples of 16) are met by zero padding,
//! which changes no result.

use tch::{Kind, TchError, Tensor};

/// Largest finite float8 e4m3 value.
const E4M3_MAX: f64 = 448.0;

fn round_up(n: i64, m: i64) -> i64 {
    (n + m - 1) / m * m
}

/// Zero-pad a 2-D tensor to `rows x cols`.
fn pad2(x: &Tensor, rows: i64, cols: i64) -> Result<Tensor, TchError> {
    let s = x.size();
    if s[0] == rows && s[1] == cols {
        return Ok(x.shallow_clone());
    }
    x.f_constant_pad_nd([0, cols - s[1], 0, rows - s[0]])
}

/// A linear layer on `_int_mm`.
#[derive(Debug)]
pub struct Int8MmLinear {
    /// int8 weight `[n_pad, k_pad]`, row-major (its transpose is the column-major mat2).
    wq: Tensor,
    /// fp32 scale per output row `[1, n_pad]`.
    w_scale: Tensor,
    bias: Option<Tensor>,
    in_dim: i64,
    out_dim: i64,
}

impl Int8MmLinear {
    /// Quantize `w` (`[out, in]`, fp32) and keep `bias`, on `w`'s device.
    pub fn new(w: &Tensor, bias: Option<&Tensor>) -> Result<Self, TchError> {
        let (out_dim, in_dim) = (w.size()[0], w.size()[1]);
        let w = pad2(&w.detach().to_kind(Kind::Float), round_up(out_dim, 8), round_up(in_dim, 8))?;
        let scale = (w.abs().f_amax(1, true)? / 127.0).clamp_min(1e-12);
        let wq = (&w / &scale).round().clamp(-127, 127).f_to_kind(Kind::Int8)?.contiguous();
        Ok(Int8MmLinear {
            wq,
            w_scale: scale.reshape([1, -1]),
            bias: bias.map(|b| b.detach().to_kind(Kind::Float)),
            in_dim,
            out_dim,
        })
    }

    /// `x @ W^T + b` for `x` of shape `[m, in]`, in fp32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let m = x.size()[0];
        let (n_pad, k_pad) = (self.wq.size()[0], self.wq.size()[1]);
        let x = pad2(&x.to_kind(Kind::Float), round_up(m.max(17), 8), k_pad)?;
        let x_scale = (x.abs().f_amax(1, true)? / 127.0).clamp_min(1e-12);
        let xq = (&x / &x_scale).round().clamp(-127, 127).f_to_kind(Kind::Int8)?;
        let acc = xq.f_internal_int_mm(&self.wq.tr())?;
        let y = acc.f_to_kind(Kind::Float)? * x_scale * &self.w_scale;
        let y = y.f_narrow(0, 0, m)?.f_narrow(1, 0, self.out_dim.min(n_pad))?;
        Ok(match &self.bias {
            Some(b) => y + b,
            None => y,
        })
    }

    /// `(in, out)` widths.
    pub fn dims(&self) -> (i64, i64) {
        (self.in_dim, self.out_dim)
    }
}

/// A linear layer on `_scaled_mm` in float8 e4m3.
#[derive(Debug)]
pub struct Fp8Linear {
    /// fp8 weight `[n_pad, k_pad]`, row-major.
    wf8: Tensor,
    /// fp32 scalar scale of the weight.
    w_scale: Tensor,
    bias: Option<Tensor>,
    out_dim: i64,
}

impl Fp8Linear {
    /// Quantize `w` (`[out, in]`, fp32) to e4m3 with one scale, keep `bias`.
    pub fn new(w: &Tensor, bias: Option<&Tensor>) -> Result<Self, TchError> {
        let (out_dim, in_dim) = (w.size()[0], w.size()[1]);
        let w = pad2(&w.detach().to_kind(Kind::Float), round_up(out_dim, 16), round_up(in_dim, 16))?;
        let w_scale = (w.abs().max() / E4M3_MAX).clamp_min(1e-12);
        let wf8 = (&w / &w_scale).f_to_kind(Kind::Float8e4m3fn)?.contiguous();
        Ok(Fp8Linear { wf8, w_scale, bias: bias.map(|b| b.detach().to_kind(Kind::Float)), out_dim })
    }

    /// `x @ W^T + b` for `x` of shape `[m, in]`, in fp32 (bf16 out of the kernel).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let m = x.size()[0];
        let k_pad = self.wf8.size()[1];
        let x = pad2(&x.to_kind(Kind::Float), round_up(m, 16), k_pad)?;
        let x_scale = (x.abs().max() / E4M3_MAX).clamp_min(1e-12);
        let xf8 = (&x / &x_scale).f_to_kind(Kind::Float8e4m3fn)?;
        let y = xf8.f_internal_scaled_mm(
            &self.wf8.tr(),
            &x_scale,
            &self.w_scale,
            None::<Tensor>,
            None::<Tensor>,
            Kind::BFloat16,
            false,
        )?;
        let y = y.f_to_kind(Kind::Float)?.f_narrow(0, 0, m)?.f_narrow(1, 0, self.out_dim)?;
        Ok(match &self.bias {
            Some(b) => y + b,
            None => y,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).norm().double_value(&[]) / b.norm().double_value(&[])
    }

    #[test]
    fn int8_mm_linear_matches_fp32_on_odd_shapes() {
        // `_int_mm` also runs on the CPU, which lets the padding and rescaling be checked
        // here; slimbench uses it only on CUDA.
        tch::manual_seed(5);
        let opts = (Kind::Float, Device::Cpu);
        let w = Tensor::randn([10, 2028], opts) * 0.05;
        let b = Tensor::randn([10], opts);
        let lin = Int8MmLinear::new(&w, Some(&b)).unwrap();
        for m in [1, 3, 40] {
            let x = Tensor::rand([m, 2028], opts);
            let y = lin.forward(&x).unwrap();
            assert_eq!(y.size(), [m, 10]);
            let e = rel_err(&y, &x.linear(&w, Some(&b)));
            assert!(e > 0.0 && e < 0.02, "m={m}: relative error {e}");
        }
    }

    #[test]
    fn fp8_linear_matches_fp32_or_says_why_not() {
        tch::manual_seed(6);
        let opts = (Kind::Float, Device::Cpu);
        let w = Tensor::randn([24, 40], opts) * 0.1;
        let x = Tensor::rand([5, 40], opts);
        let lin = Fp8Linear::new(&w, None).unwrap();
        match lin.forward(&x) {
            // e4m3 keeps 3 mantissa bits: a few percent of error.
            Ok(y) => assert!(rel_err(&y, &x.linear(&w, None::<&Tensor>)) < 0.1),
            // This libtorch has no CPU kernel for it: an error, not a crash.
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}
