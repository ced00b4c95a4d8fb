//! fbgemm's quantized kernels, the CPU path where int8 (and fp16 weights) are really
//! faster than fp32: weights are packed once into fbgemm's layout.
//!
//! * [`quantize_weight`] / [`quantize_weight_with`]: symmetric int8 (`qint8`, zero
//!   point 0) per output channel (the scheme PyTorch uses for fbgemm) or per tensor.
//! * Dynamic: [`PackedLinear::int8`] / [`PackedLinear::forward`]
//!   (`quantized::linear_prepack`, `quantized::linear_dynamic`: activations quantized
//!   per call from their observed range); [`PackedLinear::fp16`]
//!   (`quantized::linear_prepack_fp16`, `quantized::linear_dynamic_fp16`: fp16
//!   weights, fp32 arithmetic in fbgemm).
//! * Static: [`PackedLinear::forward_static`] (`quantized::linear[_relu]`) and
//!   [`PackedConv`] (`quantized::conv2d_prepack`, `quantized::conv2d[_relu].new`) take
//!   quint8 activations and return quint8 activations at a calibrated scale and zero
//!   point, so a chain of layers stays in int8 from input to output.

use tch::{Kind, Tensor};

use crate::{Arg, BridgeError, Result, Value, call, call_tensor};

/// Symmetric per-output-channel int8 quantization of a weight: each output channel's
/// scale is its largest magnitude / 127 (never 0), zero points are 0.
pub fn quantize_weight(w: &Tensor) -> Result<Tensor> {
    quantize_weight_with(w, true)
}

/// The symmetric int8 scales of a weight `[out, ...]`: one per output channel (its
/// largest magnitude / 127, never 0), or a single one for the whole tensor.
pub fn weight_scales(w: &Tensor, per_channel: bool) -> Tensor {
    let a = w.detach().abs();
    let amax = if per_channel && w.dim() > 1 {
        a.flatten(1, -1).amax(1, false)
    } else {
        a.amax(Vec::<i64>::new().as_slice(), false).reshape([1])
    };
    (amax.to_kind(Kind::Double) / 127.0).clamp_min(1e-12)
}

/// Symmetric int8 quantization of a weight of any rank `[out, ...]`, per output
/// channel or per tensor (see [`weight_scales`]).
pub fn quantize_weight_with(w: &Tensor, per_channel: bool) -> Result<Tensor> {
    let err = |op: &str, e: tch::TchError| BridgeError::Torch { op: op.into(), message: e.to_string() };
    let scales = weight_scales(w, per_channel);
    if per_channel && w.dim() > 1 {
        let zero_points = Tensor::zeros([w.size()[0]], (Kind::Int64, w.device()));
        w.f_quantize_per_channel(&scales, &zero_points, 0, Kind::QInt8)
            .map_err(|e| err("quantize_per_channel", e))
    } else {
        w.f_quantize_per_tensor(scales.double_value(&[0]), 0, Kind::QInt8)
            .map_err(|e| err("quantize_per_tensor", e))
    }
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

    /// Static int8: `qx` (quint8, per tensor) in, quint8 at `scale`/`zero_point` out,
    /// with the ReLU fused when `relu`. Only for [`PackedKind::Int8`] layers.
    pub fn forward_static(&self, qx: &Tensor, scale: f64, zero_point: i64, relu: bool) -> Result<Tensor> {
        let op = if relu { "quantized::linear_relu" } else { "quantized::linear" };
        if self.kind != PackedKind::Int8 {
            return Err(BridgeError::Type {
                op: op.into(),
                expected: "int8 packed weights",
                got: "fp16".into(),
            });
        }
        call_tensor(
            op,
            &[Arg::Tensor(qx), Arg::Value(&self.packed), Arg::Double(scale), Arg::Int(zero_point)],
        )
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

/// A 2-D convolution packed for fbgemm's static int8 kernels.
#[derive(Debug, Clone)]
pub struct PackedConv {
    packed: Value,
}

impl PackedConv {
    /// Pack an int8 weight `[out, in / groups, kh, kw]` (from [`quantize_weight_with`])
    /// and an fp32 bias, with the convolution's geometry.
    pub fn new(
        weight_q: &Tensor,
        bias: Option<&Tensor>,
        stride: [i64; 2],
        padding: [i64; 2],
        dilation: [i64; 2],
        groups: i64,
    ) -> Result<Self> {
        let op = "quantized::conv2d_prepack";
        let args = [
            Arg::Tensor(weight_q),
            Arg::OptTensor(bias),
            Arg::IntList(&stride),
            Arg::IntList(&padding),
            Arg::IntList(&dilation),
            Arg::Int(groups),
        ];
        Ok(PackedConv { packed: one(op, call(op, &args)?)? })
    }

    /// `qx` (quint8 `[N, C, H, W]`) in, quint8 at `scale`/`zero_point` out, with the
    /// ReLU fused when `relu`.
    pub fn forward(&self, qx: &Tensor, scale: f64, zero_point: i64, relu: bool) -> Result<Tensor> {
        let op = if relu { "quantized::conv2d_relu.new" } else { "quantized::conv2d.new" };
        call_tensor(
            op,
            &[Arg::Tensor(qx), Arg::Value(&self.packed), Arg::Double(scale), Arg::Int(zero_point)],
        )
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

/// `qa + qb` on fbgemm's quantized add (`quantized::add`, or `quantized::add_relu`
/// with `relu`): two quint8 tensors of one shape in, quint8 at `scale`/`zero_point` out.
pub fn quantized_add(qa: &Tensor, qb: &Tensor, scale: f64, zero_point: i64, relu: bool) -> Result<Tensor> {
    let op = if relu { "quantized::add_relu" } else { "quantized::add" };
    call_tensor(op, &[Arg::Tensor(qa), Arg::Tensor(qb), Arg::Double(scale), Arg::Int(zero_point)])
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

    fn quint8(x: &Tensor) -> (Tensor, f64, i64) {
        let (lo, hi) = (x.min().double_value(&[]).min(0.0), x.max().double_value(&[]).max(0.0));
        let scale = (hi - lo) / 127.0;
        let zp = (-lo / scale).round() as i64;
        (x.quantize_per_tensor(scale, zp, Kind::QUInt8), scale, zp)
    }

    #[test]
    fn static_int8_linear_matches_fp32() {
        let (w, b, x) = data();
        let reference = x.linear(&w, Some(&b)).relu();
        let packed = PackedLinear::int8(&quantize_weight_with(&w, false).unwrap(), Some(&b)).unwrap();
        let (qx, _, _) = quint8(&x);
        let (_, out_scale, out_zp) = quint8(&reference);
        let y = packed.forward_static(&qx, out_scale, out_zp, true).unwrap();
        assert_eq!(y.kind(), Kind::QUInt8);
        let e = rel_err(&y.dequantize(), &reference);
        assert!(e < 0.05, "relative error {e}");
    }

    #[test]
    fn static_int8_conv_matches_fp32() {
        tch::manual_seed(3);
        let opts = (Kind::Float, Device::Cpu);
        let w = Tensor::randn([8, 4, 3, 3], opts) * 0.2;
        let b = Tensor::randn([8], opts) * 0.1;
        let x = Tensor::rand([2, 4, 10, 10], opts);
        let reference = x.conv2d(&w, Some(&b), [1, 1], [1, 1], [1, 1], 1).relu();
        let wq = quantize_weight_with(&w, true).unwrap();
        assert_eq!(wq.q_per_channel_scales().size(), [8]);
        let conv = PackedConv::new(&wq, Some(&b), [1, 1], [1, 1], [1, 1], 1).unwrap();
        let (qx, _, _) = quint8(&x);
        let (_, s, zp) = quint8(&reference);
        let y = conv.forward(&qx, s, zp, true).unwrap();
        assert_eq!(y.size(), [2, 8, 10, 10]);
        let e = rel_err(&y.dequantize(), &reference);
        assert!(e < 0.05, "relative error {e}");
        // Depthwise (groups = channels), the dsconv family's blocks.
        let wd = Tensor::randn([4, 1, 3, 3], opts) * 0.3;
        let dw = PackedConv::new(&quantize_weight(&wd).unwrap(), None, [2, 2], [1, 1], [1, 1], 4).unwrap();
        let reference = x.conv2d(&wd, None::<&Tensor>, [2, 2], [1, 1], [1, 1], 4);
        let (_, s, zp) = quint8(&reference);
        let y = dw.forward(&qx, s, zp, false).unwrap();
        assert!(rel_err(&y.dequantize(), &reference) < 0.06);
    }

    #[test]
    fn per_tensor_weights_have_one_scale() {
        let (w, _, _) = data();
        let q = quantize_weight_with(&w, false).unwrap();
        let amax = w.abs().max().double_value(&[]);
        assert!((q.q_scale() - amax / 127.0).abs() < 1e-9);
        assert_eq!(weight_scales(&w, true).size(), [64]);
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
