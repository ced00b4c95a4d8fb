//! Unstructured magnitude pruning.
//!
//! The `k = round(sparsity * n)` weights of smallest magnitude are zeroed, exactly
//! `k` even when magnitudes tie (the mask comes from a top-k, not a threshold), over
//! all conv/linear weights together (`global`: layers lose different fractions) or per
//! layer (`layer`). Biases are kept.

use slimbench_core::config::PruneScope;
use slimbench_models::Model;
use slimbench_train::StepHook;
use tch::{Kind, Tensor};

/// One 0/1 mask per prunable weight, on the model's device.
#[derive(Debug)]
pub struct Masks {
    masks: Vec<(String, Tensor)>,
}

/// Indices to keep: 1 except at the `k` smallest magnitudes of `scores`.
fn keep_mask(scores: &Tensor, k: i64) -> Tensor {
    let mask = scores.ones_like().to_kind(Kind::Float);
    if k > 0 {
        let (_, idx) = scores.topk(k, 0, false, false);
        mask.index_fill(0, &idx, 0.0)
    } else {
        mask
    }
}

/// Masks that remove the fraction `sparsity` of the smallest-magnitude weights.
pub fn magnitude_masks(model: &Model, sparsity: f64, scope: PruneScope) -> Masks {
    let _g = tch::no_grad_guard();
    let weights = model.prunable();
    let flat: Vec<Tensor> =
        weights.iter().map(|(_, w)| w.abs().to_kind(Kind::Float).flatten(0, -1)).collect();
    let masks = match scope {
        PruneScope::Global => {
            let all = Tensor::cat(&flat, 0);
            let k = (sparsity * all.numel() as f64).round() as i64;
            let keep = keep_mask(&all, k);
            let sizes: Vec<i64> = flat.iter().map(|f| f.numel() as i64).collect();
            keep.split_with_sizes(&sizes, 0)
                .into_iter()
                .zip(&weights)
                .map(|(m, (name, w))| (name.clone(), m.view(w.size().as_slice()).to_kind(w.kind())))
                .collect()
        }
        PruneScope::Layer => flat
            .iter()
            .zip(&weights)
            .map(|(f, (name, w))| {
                let k = (sparsity * f.numel() as f64).round() as i64;
                (name.clone(), keep_mask(f, k).view(w.size().as_slice()).to_kind(w.kind()))
            })
            .collect(),
    };
    Masks { masks }
}

impl Masks {
    /// Zero the masked weights of `model` (in place).
    pub fn apply(&self, model: &Model) {
        let _g = tch::no_grad_guard();
        let params = model.named();
        for (name, mask) in &self.masks {
            if let Some((_, w)) = params.iter().find(|(n, _)| n == name) {
                let mut w = w.shallow_clone();
                let _ = w.g_mul_(mask);
            }
        }
    }

    /// Fraction of zeros each mask imposes, by layer.
    pub fn layer_sparsity(&self) -> Vec<(String, f64)> {
        self.masks
            .iter()
            .map(|(n, m)| (n.clone(), 1.0 - m.sum(Kind::Float).double_value(&[]) / m.numel() as f64))
            .collect()
    }
}

impl StepHook for Masks {
    fn after_step(&mut self, model: &Model) {
        self.apply(model);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{MlpConfig, ModelConfig};
    use tch::Device;

    fn mlp() -> Model {
        let io = IoShape { channels: 1, height: 8, width: 8, classes: 10 };
        Model::build("m", &ModelConfig::Mlp(MlpConfig { hidden: vec![32] }), io, Device::Cpu, Some(5))
            .unwrap()
    }

    #[test]
    fn global_pruning_hits_the_exact_sparsity_and_keeps_large_weights() {
        let m = mlp();
        let before: Vec<Tensor> = m.prunable().iter().map(|(_, w)| w.copy()).collect();
        let masks = magnitude_masks(&m, 0.9, PruneScope::Global);
        masks.apply(&m);
        let total: i64 = before.iter().map(|w| w.numel() as i64).sum();
        assert!((m.sparsity() - 0.9).abs() < 1.0 / total as f64 + 1e-9, "{}", m.sparsity());
        // Every surviving weight is at least as large as every removed one.
        let all_before = Tensor::cat(&before.iter().map(|w| w.abs().flatten(0, -1)).collect::<Vec<_>>(), 0);
        let all_after =
            Tensor::cat(&m.prunable().iter().map(|(_, w)| w.abs().flatten(0, -1)).collect::<Vec<_>>(), 0);
        let kept = all_after.ne(0.0);
        let min_kept = all_before.masked_select(&kept).min().double_value(&[]);
        let max_removed = all_before.masked_select(&kept.logical_not()).max().double_value(&[]);
        assert!(min_kept >= max_removed);
        // Biases untouched.
        assert!(
            m.named()
                .iter()
                .filter(|(n, _)| n.ends_with(".bias"))
                .all(|(_, b)| b.count_nonzero(None::<i64>).int64_value(&[]) > 0)
        );
    }

    #[test]
    fn layer_scope_prunes_each_layer_equally() {
        let m = mlp();
        let masks = magnitude_masks(&m, 0.5, PruneScope::Layer);
        for (name, s) in masks.layer_sparsity() {
            assert!((s - 0.5).abs() < 0.01, "{name}: {s}");
        }
    }

    #[test]
    fn masks_hold_through_an_update() {
        let m = mlp();
        let mut masks = magnitude_masks(&m, 0.7, PruneScope::Global);
        masks.apply(&m);
        tch::no_grad(|| {
            for (_, w) in m.prunable() {
                let mut w = w.shallow_clone();
                let _ = w.g_add_scalar_(0.5);
            }
        });
        masks.after_step(&m);
        assert!((m.sparsity() - 0.7).abs() < 0.01);
    }
}
