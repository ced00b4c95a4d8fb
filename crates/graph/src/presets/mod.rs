//! Model families as graphs, one file each. A preset is a config (its YAML
//! parameters, `deny_unknown_fields`) that builds a [`Graph`] for an input shape and a
//! class count ([`Preset::graph`]); the graph is then checked like any other.
//!
//! Parameter names follow what the families were before they were graphs (`conv`,
//! `fc0`, `stem`, `dw1`), so a seeded build draws the same initial weights.

mod cnn;
mod dsconv;
mod lenet5;
mod mlp;
mod mobilenet;
mod resnet;
mod seed_cnn;

pub use cnn::CnnConfig;
pub use dsconv::DsConvConfig;
pub use lenet5::Lenet5Config;
pub use mlp::MlpConfig;
pub use mobilenet::{MobileNetV1Config, MobileNetV2Config};
pub use resnet::{ResnetConfig, Shortcut};
pub use seed_cnn::SeedCnnConfig;

use crate::Builder;
use crate::ir::{Activation, Graph, Op};

/// A model family that builds its graph from its parameters.
pub trait Preset {
    /// The graph for `[C, H, W]` images and `classes` classes, or why this config
    /// cannot describe one.
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String>;
}

/// conv (no bias) -> batch norm -> activation, the block modern CNNs repeat; the conv
/// is `id`, the norm `<id>_bn`. Returns the last node's id.
pub(crate) fn conv_bn_act(b: &mut Builder, id: &str, conv: Op, act: Option<Activation>) -> String {
    b.then(id, conv);
    let last = b.then(&format!("{id}_bn"), Op::batch_norm());
    match act {
        Some(f) => b.then(&format!("{id}_{}", f.name()), Op::Act { f }),
        None => last,
    }
}

/// `c * width` rounded to a multiple of `divisor` (at least `divisor`, and never below
/// 90% of `c * width`): MobileNet's `_make_divisible`.
pub(crate) fn scaled(c: i64, width: f64, divisor: i64) -> i64 {
    let v = c as f64 * width;
    let mut r = ((v + divisor as f64 / 2.0) as i64 / divisor * divisor).max(divisor);
    if (r as f64) < 0.9 * v {
        r += divisor;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(g: &Graph) -> u64 {
        g.check(10).unwrap();
        g.param_count().unwrap()
    }

    #[test]
    fn the_four_original_families_keep_their_parameter_names_and_counts() {
        let g = SeedCnnConfig::default().graph([1, 28, 28], 10).unwrap();
        let names: Vec<String> = g.params().unwrap().into_iter().map(|p| p.0).collect();
        assert_eq!(names, ["conv.bias", "conv.weight", "fc.bias", "fc.weight"]);
        assert_eq!(params(&g), 20_410);
        let g = MlpConfig { hidden: vec![256, 128] }.graph([1, 28, 28], 10).unwrap();
        assert_eq!(params(&g), 784 * 256 + 256 + 256 * 128 + 128 + 1290);
        let g = DsConvConfig::default().graph([1, 28, 28], 10).unwrap();
        assert!(g.node("dw2").is_some() && g.node("pw2").is_some() && g.node("stem").is_some());
        let g = CnnConfig::default().graph([1, 28, 28], 10).unwrap();
        assert!(g.node("conv1").is_some() && g.node("hidden").is_some());
    }

    #[test]
    fn resnet_depths_have_the_papers_parameter_counts() {
        // He et al. 2016, table 6: ResNet-20 0.27M, 32 0.46M, 44 0.66M, 56 0.85M.
        for (depth, millions) in [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85)] {
            let cfg = ResnetConfig { depth, ..Default::default() };
            let g = cfg.graph([3, 32, 32], 10).unwrap();
            // Running statistics are not trainable: count weights only.
            let n: i64 = g
                .params()
                .unwrap()
                .iter()
                .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
                .map(|(_, s)| s.iter().product::<i64>())
                .sum();
            assert!(((n as f64 / 1e6) - millions).abs() < 0.01, "resnet-{depth}: {n}");
        }
        assert!(ResnetConfig { depth: 21, ..Default::default() }.graph([3, 32, 32], 10).is_err());
        let b =
            ResnetConfig { shortcut: Shortcut::Conv, ..Default::default() }.graph([3, 32, 32], 10).unwrap();
        assert!(b.check(10).is_ok() && b.node("s2b0_down").is_some());
    }

    #[test]
    fn mobilenets_and_lenet_build_for_small_and_grey_images() {
        for input in [[3, 32, 32], [1, 28, 28], [3, 64, 48]] {
            for g in [
                MobileNetV1Config::default().graph(input, 10).unwrap(),
                MobileNetV2Config::default().graph(input, 10).unwrap(),
                MobileNetV2Config { width: 0.5, ..Default::default() }.graph(input, 10).unwrap(),
                Lenet5Config::default().graph(input, 10).unwrap(),
            ] {
                g.check(10).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            }
        }
        // MobileNetV2 at width 1 on 224x224 has 3.5M parameters (Sandler et al.).
        let g = MobileNetV2Config::default().graph([3, 224, 224], 1000).unwrap();
        g.check(1000).unwrap();
        let n = g.param_count().unwrap();
        assert!((3.4e6..3.6e6).contains(&(n as f64)), "{n}");
        assert_eq!(scaled(32, 0.5, 8), 16);
        assert_eq!(scaled(24, 0.35, 8), 8);
    }

    #[test]
    fn bad_configs_explain_themselves() {
        let e =
            CnnConfig { channels: vec![4; 6], hidden: 0, dropout: 0.0 }.graph([1, 28, 28], 10).unwrap_err();
        assert!(e.contains("too many pooling blocks"), "{e}");
        let e = SeedCnnConfig { filters: 0 }.graph([1, 28, 28], 10).unwrap_err();
        assert!(e.contains("positive"), "{e}");
    }
}
