//! Reduced-precision weights: fp16/bf16 storage, and the fbgemm methods whose linear
//! layers really compute in int8 (or with fp16 weights) at evaluation.

use slimbench_core::artifact::{Kernel, Precision};
use slimbench_core::config::QuantMethod;
use slimbench_models::Model;
use slimbench_models::store::kind_of;

/// The stored precision a method gives.
pub fn precision_of(method: QuantMethod) -> Precision {
    match method {
        QuantMethod::Fp16 | QuantMethod::Fp16Dynamic => Precision::Fp16,
        QuantMethod::Bf16 => Precision::Bf16,
        QuantMethod::Int8Dynamic => Precision::Int8,
    }
}

/// The kernels a method's model runs on.
pub fn kernel_of(method: QuantMethod) -> Kernel {
    match method {
        QuantMethod::Fp16 | QuantMethod::Bf16 => Kernel::Dense,
        QuantMethod::Int8Dynamic => Kernel::Int8Dynamic,
        QuantMethod::Fp16Dynamic => Kernel::Fp16Dynamic,
    }
}

/// The technique name in the metrics table.
pub fn technique_of(method: QuantMethod) -> &'static str {
    match method {
        QuantMethod::Fp16 => "fp16",
        QuantMethod::Bf16 => "bf16",
        QuantMethod::Int8Dynamic => "int8-dynamic",
        QuantMethod::Fp16Dynamic => "fp16-dynamic",
    }
}

/// Cast every weight of `model` to the method's storage precision; returns it (int8
/// keeps fp32 tensors: the file stores them as int8, see `slimbench_models::store`).
pub fn convert(model: &mut Model, method: QuantMethod) -> Precision {
    let p = precision_of(method);
    model.set_kind(kind_of(p));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};
    use tch::{Device, Kind};

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
