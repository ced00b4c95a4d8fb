//! fbgemm's dynamic quantized linear kernels, the CPU path where int8 (and fp16
//! weights) are really faster than fp32: weights are packed once into fbgemm's layout,
//! activations are quantized per call from their observed range.
//!
//! * [`quantize_weight`]: symmetric per-output-channel int8 (`qint8`, zero point 0),
//!   the scheme PyTorch's `quantize_dynamic` uses for linear weights.
//! * [`PackedLinear::int8`] / [`PackedLinear::forward`]: `quantized::linear_prepack`
//!   and `quantized::linear_dynamic`.
//! * [`PackedLinear::fp16`]: `quantized::linear_prepack_fp16` and
//!   `quantized::linear_dynamic_fp16` (fp16 weights, fp32 arithmetic in fbgemm).

use tch::{Kind, Tensor};

use crate::{Arg, BridgeError, Result, Value, call, call_tensor};

/// Symmetric per-output-channel int8 quantization of a `[out, in]` weight: each row's
/// scale is its largest magnitude / 127 (never 0), zero points are 0.
pub fn quantize_weight(w: &Tensor) -> Result<Tensor> {
    let amax = w.abs().amax(1, false).to_kind(Kind::Double);
    let scales = (amax / 127.0).clamp_min(1e-12);
    let zero_points = Tensor::zeros([w.size()[0]], (Kind::Int64, w.device()));
    w.f_quantize_per_channel(&scales, &zero_points, 0, Kind::QInt8)
        .map_err(|e| BridgeError::Torch { op: "quantize_per_channel".into(), message: e.to_string() })
}

/// Precision of a packed layer's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedKind {
    /// int8 weights, activations quantized at run time.
    Int8,
    /// fp16 weights.
    Fp16,
}

/// A linear layer packed for fbgemm.
#[derive(Debug, Clone)]
pub struct PackedLinear {
    packed: Value,
    kind: PackedKind,
    /// Activations quantized to 7 bits (what fbgemm needs on CPUs without VNNI to
    /// avoid overflow in its 16-bit accumulation; PyTorch's default there too).
    pub reduce_range: bool,
}

impl PackedLinear {
    /// Pack an int8 weight (from [`quantize_weight`]) and an fp32 bias.
    pub fn int8(weight_q: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let packed = one(
            "quantized::linear_prepack",
            call("quantized::linear_prepack", &[Arg::Tensor(weight_q), Arg::OptTensor(bias)])?,
        )?;
        Ok(PackedLinear { packed, kind: PackedKind::Int8, reduce_range: true })
    }

    /// Pack an fp32 weight as fp16.
    pub fn fp16(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let packed = one(
            "quantized::linear_prepack_fp16",
            call("quantized::linear_prepack_fp16", &[Arg::Tensor(weight), Arg::OptTensor(bias)])?,
        )?;
        Ok(PackedLinear { packed, kind: PackedKind::Fp16, reduce_range: false })
    }

    /// Its weight precision.
    pub fn kind(&self) -> PackedKind {
        self.kind
    }

    /// `x @ W^T + b` for fp32 `x` of shape `[.., in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.kind {
            PackedKind::Int8 => call_tensor(
                "quantized::linear_dynamic",
                &[Arg::Tensor(x), Arg::Value(&self.packed), Arg::Bool(self.reduce_range)],
            ),
            PackedKind::Fp16 => {
                call_tensor("quantized::linear_dynamic_fp16", &[Arg::Tensor(x), Arg::Value(&self.packed)])
            }
        }
    }
}

fn one(op: &str, mut out: Vec<Value>) -> Result<Value> {
    if out.len() != 1 {
        return Err(BridgeError::Type {
            op: op.into(),
            expected: "one value",
            got: format!("{}", out.len()),
        });
    }
    Ok(out.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn data() -> (Tensor, Tensor, Tensor) {
        tch::manual_seed(7);
        let opts = (Kind::Float, Device::Cpu);
        let w = Tensor::randn([64, 128], opts) * 0.1;
        let b = Tensor::randn([64], opts) * 0.1;
        let x = Tensor::randn([8, 128], opts);
        (w, b, x)
    }

    fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
        let d: f64 = (a - b).norm().double_value(&[]);
        d / b.norm().double_value(&[])
    }

    #[test]
    fn int8_dynamic_linear_matches_fp32() {
        let (w, b, x) = data();
        let reference = x.linear(&w, Some(&b));
        let wq = quantize_weight(&w).unwrap();
        assert_eq!(wq.kind(), Kind::QInt8);
        let packed = PackedLinear::int8(&wq, Some(&b)).unwrap();
        let y = packed.forward(&x).unwrap();
        assert_eq!(y.size(), [8, 64]);
        let e = rel_err(&y, &reference);
        assert!(e < 0.03, "relative error {e}");
        assert!(e > 0.0, "int8 arithmetic cannot be exact");
    }

    #[test]
    fn fp16_dynamic_linear_matches_fp32() {
        let (w, b, x) = data();
        let y = PackedLinear::fp16(&w, Some(&b)).unwrap().forward(&x).unwrap();
        let e = rel_err(&y, &x.linear(&w, Some(&b)));
        assert!(e < 2e-3, "relative error {e}");
    }

    #[test]
    fn wrong_input_width_is_an_error() {
        let (w, b, _) = data();
        let packed = PackedLinear::int8(&quantize_weight(&w).unwrap(), Some(&b)).unwrap();
        let x = Tensor::randn([2, 100], (Kind::Float, Device::Cpu));
        let e = packed.forward(&x).unwrap_err().to_string();
        assert!(e.starts_with("quantized::linear_dynamic: "), "{e}");
    }
}
