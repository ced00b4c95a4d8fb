//! Reduced-precision weights.

use slimbench_core::artifact::Precision;
use slimbench_core::config::QuantMethod;
use slimbench_models::Model;
use slimbench_models::store::kind_of;

/// The stored precision a method gives.
pub fn precision_of(method: QuantMethod) -> Precision {
    match method {
        QuantMethod::Fp16 => Precision::Fp16,
        QuantMethod::Bf16 => Precision::Bf16,
    }
}

/// Cast every weight of `model` to the method's precision; returns it.
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
        let cfg = ModelConfig::SeedCnn(SeedCnnConfig {});
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
