//! Dead-path removal: after magnitude pruning, drop the neurons and channels that no
//! longer carry information, and rebuild a smaller dense model computing the same
//! function as the masked one.
//!
//! A unit (a hidden neuron, a conv output channel) is dead when
//!
//! * every outgoing weight is zero: nothing downstream reads it, or
//! * every incoming weight is zero: it outputs the constant `relu(bias)` whatever the
//!   input (a max-pool of a constant is that constant). That constant times the
//!   consumer's weights is folded into the consumer's bias before the unit goes, so
//!   the outputs stay equal. Where the consumer is a padded convolution the
//!   contribution is not constant (the padding is zero at the borders), so such a
//!   unit goes only when `relu(bias) = 0`.
//!
//! Removing units can kill others (a neuron fed only by removed constant units now has
//! zero incoming weights; a neuron whose readers all went has no outgoing weights), so
//! the passes repeat until nothing changes. Every layer keeps at least one unit. The
//! smaller model is built by the machinery of [`crate::structured`].

use slimbench_models::Model;
use tch::{Device, Kind, Tensor};

use crate::structured::{Pruned, StructuredError, cpu_tensors, groups, keep_units, rebuild};

/// Remove the dead units of a (masked) model; returns the smaller model (on the CPU,
/// fp32, same outputs up to float rounding) and the units per layer before and after.
pub fn remove_dead(model: &Model) -> Result<(Model, Vec<Pruned>), StructuredError> {
    let _g = tch::no_grad_guard();
    // Only where the constant a dead unit outputs is known (ReLU and max pooling).
    let groups: Vec<_> = groups(&model.graph)?.into_iter().filter(|g| g.simple).collect();
    let mut tensors = cpu_tensors(model);
    let unit_count = |t: &std::collections::HashMap<String, Tensor>, layer: &str| -> i64 {
        t[&format!("{layer}.weight")].size()[0]
    };
    let before: Vec<i64> = groups.iter().map(|g| unit_count(&tensors, &g.producer)).collect();
    // Per group, the original index of each unit still there (removal can take several
    // passes, each renumbering what is left).
    let mut origin: Vec<Vec<i64>> = before.iter().map(|&n| (0..n).collect()).collect();
    loop {
        let mut changed = false;
        for (gi, g) in groups.iter().enumerate() {
            let w = &tensors[&format!("{}.weight", g.producer)];
            let units = w.size()[0];
            let bias = tensors[&format!("{}.bias", g.producer)].to_kind(Kind::Float);
            let consumer = &tensors[&format!("{}.weight", g.consumer)];
            let out = consumer.size()[0];
            // [out, units, block]: the consumer's weights on each unit.
            let per_unit = consumer.to_kind(Kind::Float).reshape([out, units, -1]);
            let no_in = w.reshape([units, -1]).abs().amax(1, false).eq(0.0);
            let no_out = per_unit.abs().amax([0, 2].as_slice(), false).eq(0.0);
            let constant = bias.relu();
            let foldable =
                if g.consumer_conv { constant.eq(0.0) } else { constant.ones_like().to_kind(Kind::Bool) };
            let dead = no_out.logical_or(&no_in.logical_and(&foldable));
            let n_dead = dead.sum(Kind::Int64).int64_value(&[]);
            if n_dead == 0 {
                continue;
            }
            let mut alive = dead.logical_not();
            if n_dead == units {
                // A layer cannot be empty: keep one unit, preferably one that is read.
                let first = no_out.logical_not().to_kind(Kind::Int64).argmax(0, false).int64_value(&[]);
                alive = alive.index_fill(0, &Tensor::from_slice(&[first]), 1);
            }
            // Fold the constant output of the removed units that are still read into the
            // consumer's bias: bias_c += sum_u relu(b_u) * sum(block columns of u).
            let folded = alive.logical_not().logical_and(&no_in).logical_and(&no_out.logical_not());
            if folded.sum(Kind::Int64).int64_value(&[]) > 0 {
                let weight = (constant * folded.to_kind(Kind::Float)).unsqueeze(0);
                let add = (per_unit.sum_dim_intlist(2, false, Kind::Float) * weight).sum_dim_intlist(
                    1,
                    false,
                    Kind::Float,
                );
                let name = format!("{}.bias", g.consumer);
                let b = &tensors[&name];
                let updated = b + add.to_kind(b.kind());
                tensors.insert(name, updated);
            }
            let keep = alive.nonzero().squeeze_dim(1).to_device(Device::Cpu);
            if keep.size()[0] < units {
                keep_units(&mut tensors, g, &keep)?;
                origin[gi] = Vec::<i64>::try_from(&keep)?.iter().map(|&i| origin[gi][i as usize]).collect();
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let after: Vec<i64> = groups.iter().map(|g| unit_count(&tensors, &g.producer)).collect();
    let small = rebuild(model, &tensors, &groups, &after)?;
    let report = groups
        .iter()
        .zip(before.iter().zip(&after).zip(origin))
        .map(|(g, ((&before, &after), kept))| Pruned { layer: g.producer.clone(), before, after, kept })
        .collect();
    Ok((small, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{CnnConfig, MlpConfig, ModelConfig, PruneScope, SeedCnnConfig};

    const IO: IoShape = IoShape { channels: 1, height: 28, width: 28, classes: 10 };

    fn build(config: ModelConfig) -> Model {
        Model::build("m", &config, IO, Device::Cpu, Some(11)).unwrap()
    }

    fn param(m: &Model, name: &str) -> Tensor {
        m.named().into_iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Zero rows `rows` of `layer.weight` (incoming) or columns `cols` (outgoing).
    fn zero(m: &Model, layer: &str, dim: i64, idx: &[i64]) {
        tch::no_grad(|| {
            let w = param(m, &format!("{layer}.weight"));
            let _ = w.shallow_clone().index_fill_(dim, &Tensor::from_slice(idx), 0.0);
        });
    }

    fn max_diff(a: &Model, b: &Model) -> f64 {
        let xs = Tensor::rand([16, 1, 28, 28], (Kind::Float, Device::Cpu));
        (a.forward(&xs) - b.forward(&xs)).abs().max().double_value(&[])
    }

    #[test]
    fn mlp_loses_dead_neurons_and_keeps_its_outputs() {
        let m = build(ModelConfig::Mlp(MlpConfig { hidden: vec![32, 16] }));
        // Large biases make the folded constants matter.
        tch::no_grad(|| {
            let _ = param(&m, "fc0.bias").shallow_clone().fill_(0.5);
        });
        zero(&m, "fc0", 0, &[1, 2, 3]); // no inputs: constant relu(0.5), folded into fc1.bias
        zero(&m, "fc1", 1, &[5, 6]); // nobody reads them
        zero(&m, "fc2", 1, &[0]); // fc1 neuron 0 is not read
        let (small, report) = remove_dead(&m).unwrap();
        assert_eq!(
            report,
            [
                Pruned {
                    layer: "fc0".into(),
                    before: 32,
                    after: 27,
                    kept: [0].into_iter().chain(4..32).filter(|i| ![5, 6].contains(i)).collect()
                },
                Pruned { layer: "fc1".into(), before: 16, after: 15, kept: (1..16).collect() },
            ]
        );
        assert_eq!(small.config, ModelConfig::Mlp(MlpConfig { hidden: vec![27, 15] }));
        let d = max_diff(&m, &small);
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn removal_cascades_through_layers() {
        let m = build(ModelConfig::Mlp(MlpConfig { hidden: vec![8, 4] }));
        tch::no_grad(|| {
            let _ = param(&m, "fc0.bias").shallow_clone().fill_(0.3);
        });
        // fc1 neuron 2 reads only fc0 units 0..4, all without inputs: once they are
        // folded away it has no inputs itself and goes too.
        zero(&m, "fc0", 0, &[0, 1, 2, 3]);
        tch::no_grad(|| {
            let w = param(&m, "fc1.weight");
            let _ = w.get(2).narrow(0, 4, 4).shallow_clone().fill_(0.0);
        });
        let (small, report) = remove_dead(&m).unwrap();
        assert_eq!(report[0].after, 4);
        assert_eq!(report[1].after, 3);
        assert!(max_diff(&m, &small) < 1e-5);
        // Kept indices are the original ones across both passes, so the smaller model
        // expands back to the original shape with the same outputs.
        assert_eq!(report[0].kept, [4, 5, 6, 7]);
        assert_eq!(report[1].kept, [0, 1, 3]);
        let full = crate::structured::expand(&small, &m.config, &m.graph, &report).unwrap();
        assert!(max_diff(&m, &full) < 1e-5);
    }

    #[test]
    fn seed_cnn_channel_without_inputs_is_folded_into_the_dense_bias() {
        let m = build(ModelConfig::SeedCnn(SeedCnnConfig::default()));
        tch::no_grad(|| {
            let _ = param(&m, "conv.bias").shallow_clone().fill_(0.2);
        });
        zero(&m, "conv", 0, &[0, 7]);
        let (small, report) = remove_dead(&m).unwrap();
        assert_eq!(
            report,
            [Pruned {
                layer: "conv".into(),
                before: 12,
                after: 10,
                kept: vec![1, 2, 3, 4, 5, 6, 8, 9, 10, 11]
            }]
        );
        assert_eq!(small.param_count(), 10 * 10 + 10 * 169 * 10 + 10);
        assert!(max_diff(&m, &small) < 1e-5);
    }

    #[test]
    fn cnn_keeps_a_constant_channel_that_feeds_a_padded_conv() {
        let m = build(ModelConfig::Cnn(CnnConfig { channels: vec![4, 6], hidden: 8, dropout: 0.0 }));
        tch::no_grad(|| {
            let b = param(&m, "conv0.bias");
            let _ = b.shallow_clone().fill_(0.1);
            let _ = b.get(3).shallow_clone().fill_(-0.1);
        });
        // Channel 1 (bias 0.1) outputs a constant the padding breaks: kept. Channel 3
        // (bias -0.1) outputs zero: removed. conv1 channel 2 is not read: removed.
        zero(&m, "conv0", 0, &[1, 3]);
        zero(&m, "hidden", 1, &Vec::from_iter(2 * 49..3 * 49));
        let (small, report) = remove_dead(&m).unwrap();
        let units: Vec<i64> = report.iter().map(|p| p.after).collect();
        assert_eq!(units, [3, 5, 8]);
        assert!(max_diff(&m, &small) < 1e-5);
    }

    #[test]
    fn magnitude_pruned_model_shrinks_with_equal_outputs() {
        let m = build(ModelConfig::Mlp(MlpConfig { hidden: vec![64, 64] }));
        crate::prune::magnitude_masks(&m, 0.97, PruneScope::Global).apply(&m);
        let (small, report) = remove_dead(&m).unwrap();
        assert!(small.param_count() < m.param_count(), "{report:?}");
        assert!(max_diff(&m, &small) < 1e-5);
        // Nothing more to remove the second time.
        let (_, again) = remove_dead(&small).unwrap();
        assert!(again.iter().all(|p| p.before == p.after), "{again:?}");
    }
}
