//! Reduced-precision weights: fp16/bf16 storage; the fbgemm methods whose layers really
//! compute in int8 (or with fp16 weights) at evaluation; the CUDA methods (autocast,
//! `_int_mm`, `_scaled_mm`); and the accuracy-aware search that keeps the most
//! sensitive layers in fp32 ([`accuracy_aware`]). Calibration lives in
//! [`crate::observe`], training with the quantization simulated in [`crate::qat`].

use slimbench_core::artifact::{Kernel, Precision};
use slimbench_core::config::QuantMethod;
use slimbench_models::Model;
use slimbench_models::store::kind_of;

/// The stored precision a method gives.
pub fn precision_of(method: QuantMethod) -> Precision {
    match method {
        // fp8 weights are made from fp16 ones at load (the store keeps no fp8 tensors).
        QuantMethod::Fp16 | QuantMethod::Fp16Dynamic | QuantMethod::Fp8 => Precision::Fp16,
        QuantMethod::Bf16 => Precision::Bf16,
        QuantMethod::Int8Dynamic | QuantMethod::Int8Static | QuantMethod::Qat | QuantMethod::Int8Mm => {
            Precision::Int8
        }
        QuantMethod::AmpBf16 | QuantMethod::AmpFp16 => Precision::Fp32,
    }
}

/// The kernels a method's model runs on.
pub fn kernel_of(method: QuantMethod) -> Kernel {
    match method {
        QuantMethod::Fp16 | QuantMethod::Bf16 => Kernel::Dense,
        QuantMethod::Int8Dynamic => Kernel::Int8Dynamic,
        QuantMethod::Fp16Dynamic => Kernel::Fp16Dynamic,
        QuantMethod::Int8Static | QuantMethod::Qat => Kernel::Int8Static,
        QuantMethod::AmpBf16 => Kernel::AmpBf16,
        QuantMethod::AmpFp16 => Kernel::AmpFp16,
        QuantMethod::Int8Mm => Kernel::Int8Mm,
        QuantMethod::Fp8 => Kernel::Fp8,
    }
}

/// The technique name in the metrics table.
pub fn technique_of(method: QuantMethod) -> &'static str {
    match method {
        QuantMethod::Qat => "int8-qat",
        m => m.as_str(),
    }
}

/// Cast every weight of `model` to the method's storage precision; returns it (int8
/// keeps fp32 tensors: the file stores them as int8, see `slimbench_models::store`).
pub fn convert(model: &mut Model, method: QuantMethod) -> Precision {
    let p = precision_of(method);
    model.set_kind(kind_of(p));
    p
}

/// What the accuracy-aware search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    /// Layers kept in fp32, most sensitive first (empty when all-int8 was within
    /// tolerance).
    pub layers: Vec<String>,
    /// Each layer's sensitivity: the accuracy regained by keeping it alone in fp32
    /// (computed only when all-int8 missed the tolerance), most sensitive first.
    pub sensitivity: Vec<(String, f64)>,
    /// Accuracy with every layer quantized.
    pub all_int8: f64,
    /// Accuracy of the model chosen.
    pub chosen: f64,
    /// Whether its drop is within the tolerance (it may not be, even with every layer
    /// in fp32, when training changed the fp32 weights).
    pub met: bool,
    /// Models evaluated.
    pub evaluations: usize,
}

/// Keep layers in fp32, most sensitive first, until the accuracy is within
/// `tolerable_loss` of `reference` (Intel Neural Compressor's fallback strategy):
///
/// 1. every layer quantized: done if the drop is within tolerance;
/// 2. otherwise each layer's sensitivity is the accuracy regained by keeping it alone
///    in fp32;
/// 3. layers go back to fp32 one at a time in that order until the drop is within
///    tolerance, or none is left.
///
/// `accuracy(fp32_layers)` measures the model with those layers kept in fp32.
pub fn accuracy_aware<E>(
    layers: &[String],
    reference: f64,
    tolerable_loss: f64,
    mut accuracy: impl FnMut(&[String]) -> Result<f64, E>,
) -> Result<Fallback, E> {
    let ok = |acc: f64| reference - acc <= tolerable_loss + 1e-12;
    let all_int8 = accuracy(&[])?;
    let mut out = Fallback {
        layers: vec![],
        sensitivity: vec![],
        all_int8,
        chosen: all_int8,
        met: ok(all_int8),
        evaluations: 1,
    };
    if out.met {
        return Ok(out);
    }
    for l in layers {
        let acc = accuracy(std::slice::from_ref(l))?;
        out.evaluations += 1;
        out.sensitivity.push((l.clone(), acc - all_int8));
    }
    // Most regained first; ties keep the network's order.
    out.sensitivity.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (l, _) in out.sensitivity.clone() {
        out.layers.push(l);
        out.chosen = accuracy(&out.layers)?;
        out.evaluations += 1;
        out.met = ok(out.chosen);
        if out.met {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};
    use tch::{Device, Kind};

    #[test]
    fn accuracy_aware_falls_back_most_sensitive_first_until_within_tolerance() {
        let layers: Vec<String> = ["conv", "fc0", "fc1"].map(String::from).to_vec();
        // Losses each layer causes when quantized: fc0 hurts most, then conv.
        let loss = |l: &str| match l {
            "conv" => 0.02,
            "fc0" => 0.05,
            _ => 0.001,
        };
        let acc = |fp32: &[String]| -> Result<f64, ()> {
            Ok(0.95 - layers.iter().filter(|l| !fp32.contains(l)).map(|l| loss(l)).sum::<f64>())
        };
        let f = accuracy_aware(&layers, 0.95, 0.03, acc).unwrap();
        assert_eq!(f.layers, ["fc0"]);
        assert_eq!(f.sensitivity[0].0, "fc0");
        assert!((f.chosen - (0.95 - 0.021)).abs() < 1e-9);
        let f = accuracy_aware(&layers, 0.95, 0.01, acc).unwrap();
        assert_eq!(f.layers, ["fc0", "conv"]);
        // Within tolerance from the start: nothing falls back, one evaluation.
        let f = accuracy_aware(&layers, 0.95, 0.1, acc).unwrap();
        assert!(f.layers.is_empty() && f.sensitivity.is_empty());
        assert_eq!(f.evaluations, 1);
        // Zero tolerance with every layer hurting: all fall back.
        let f = accuracy_aware(&layers, 0.95, 0.0, acc).unwrap();
        assert_eq!((f.layers.len(), f.met), (3, true));
        // A reference the fp32 model itself misses: all fall back, and it says so.
        let f = accuracy_aware(&layers, 0.99, 0.0, acc).unwrap();
        assert_eq!((f.layers.len(), f.met), (3, false));
    }

    #[test]
    fn every_method_maps_to_a_precision_and_kernel() {
        assert_eq!(kernel_of(QuantMethod::Qat), Kernel::Int8Static);
        assert_eq!(technique_of(QuantMethod::Qat), "int8-qat");
        assert_eq!(precision_of(QuantMethod::Int8Static), Precision::Int8);
        assert_eq!(precision_of(QuantMethod::AmpBf16), Precision::Fp32);
        assert!(kernel_of(QuantMethod::Fp8).cuda_only());
    }

    #[test]
    fn fp16_rounds_weights_to_half() {
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let cfg = ModelConfig::SeedCnn(SeedCnnConfig::default());
        let full = Model::build("m", &cfg, io, Device::Cpu, Some(1)).unwrap();
        let mut half = full.try_clone().unwrap();
        assert_eq!(convert(&mut half, QuantMethod::Fp16), Precision::Fp16);
        assert_eq!(half.kind(), Kind::Half);
        for ((_, a), (_, b)) in full.named().iter().zip(half.named()) {
            let err = (a - b.to_kind(Kind::Float)).abs().max().double_value(&[]);
            assert!(err < 1e-3, "{err}");
        }
    }
}
