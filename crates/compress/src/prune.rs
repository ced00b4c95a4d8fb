//! Unstructured magnitude pruning.
//!
//! The `k = round(sparsity * n)` weights of smallest magnitude are zeroed, exactly
//! `k` even when magnitudes tie (the mask comes from a top-k, not a threshold), over
//! all conv/linear weights together (`global`: layers lose different fractions) or per
//! layer (`layer`). Biases are kept.
//!
//! One-shot pruning computes [`Masks`] once ([`magnitude_masks`]); [`Scheduled`]
//! raises the sparsity during fine-tuning along a [`Polynomial`] schedule (Zhu & Gupta
//! 2017), recomputing the masks from the current weights every few steps.
//! [`magnitude_forms`] gives both forms a speed comparison needs: the masked full-size
//! model and the smaller one left after dead-path removal.

use slimbench_core::config::{PruneSchedule, PruneScope};
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
    /// Masks from `(parameter name, 0/1 mask of its shape)` pairs.
    pub(crate) fn from_parts(masks: Vec<(String, Tensor)>) -> Self {
        Masks { masks }
    }

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

/// The polynomial sparsity schedule of Zhu & Gupta (2017), as TF-MOT's
/// `PolynomialDecay`: `s_t = s_f + (s_i - s_f) * (1 - (t - begin) / (end - begin))^power`
/// for `begin <= t <= end`, with updates every `frequency` steps and at `end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polynomial {
    /// Step of the first pruning.
    pub begin: u64,
    /// Step at which `final_sparsity` is reached.
    pub end: u64,
    /// Steps between mask updates.
    pub frequency: u64,
    /// Exponent.
    pub power: f64,
    /// Sparsity at `begin`.
    pub initial_sparsity: f64,
    /// Sparsity at and after `end`.
    pub final_sparsity: f64,
}

impl Polynomial {
    /// The schedule a stage's `schedule:` and `sparsity` describe.
    pub fn new(s: &PruneSchedule, final_sparsity: f64) -> Self {
        Polynomial {
            begin: s.begin_step,
            end: s.end_step,
            frequency: s.frequency.max(1),
            power: s.power,
            initial_sparsity: s.initial_sparsity,
            final_sparsity,
        }
    }

    /// Scheduled sparsity at step `t` (t clamped into `[begin, end]`).
    pub fn sparsity_at(&self, t: u64) -> f64 {
        if t >= self.end {
            return self.final_sparsity;
        }
        let t = t.max(self.begin);
        let progress = (t - self.begin) as f64 / (self.end - self.begin).max(1) as f64;
        self.final_sparsity
            + (self.initial_sparsity - self.final_sparsity) * (1.0 - progress).powf(self.power)
    }

    /// Whether the masks are recomputed after step `t`.
    pub fn is_update(&self, t: u64) -> bool {
        (self.begin..=self.end).contains(&t)
            && ((t - self.begin).is_multiple_of(self.frequency) || t == self.end)
    }
}

/// Magnitude pruning along a [`Polynomial`] schedule, as a [`StepHook`]: after each
/// optimizer step `t` it recomputes the masks to `sparsity_at(t)` when `t` is an update
/// step, and re-applies the masks it holds otherwise. Weights pruned earlier are zero,
/// so they rank lowest and stay pruned as the sparsity rises.
#[derive(Debug)]
pub struct Scheduled {
    schedule: Polynomial,
    scope: PruneScope,
    step: u64,
    masks: Option<Masks>,
    history: Vec<(u64, f64)>,
}

impl Scheduled {
    /// Start the schedule on `model` (steps count from 0: with `begin == 0` the first
    /// pruning happens now, before any fine-tuning step).
    pub fn new(model: &Model, schedule: Polynomial, scope: PruneScope) -> Self {
        let mut s = Scheduled { schedule, scope, step: 0, masks: None, history: Vec::new() };
        s.update(model);
        s
    }

    fn update(&mut self, model: &Model) {
        if self.schedule.is_update(self.step) {
            let m = magnitude_masks(model, self.schedule.sparsity_at(self.step), self.scope);
            m.apply(model);
            self.history.push((self.step, model.sparsity()));
            self.masks = Some(m);
        } else if let Some(m) = &self.masks {
            m.apply(model);
        }
    }

    /// The schedule followed.
    pub fn schedule(&self) -> &Polynomial {
        &self.schedule
    }

    /// `(step, measured sparsity of the prunable weights)` after each mask update.
    pub fn history(&self) -> &[(u64, f64)] {
        &self.history
    }

    /// The masks in force (None before `begin`).
    pub fn masks(&self) -> Option<&Masks> {
        self.masks.as_ref()
    }
}

impl StepHook for Scheduled {
    fn after_step(&mut self, model: &Model) {
        self.step += 1;
        self.update(model);
    }
}

/// A magnitude-pruned model in the two forms a speed comparison needs.
#[derive(Debug)]
pub struct Forms {
    /// Full-size model with the pruned weights zeroed: sparsity *simulated* on dense
    /// kernels (the same latency as the original).
    pub simulated: Model,
    /// The same function after dead-path removal: a smaller dense model (on the CPU),
    /// the part of the sparsity dense kernels can turn into speed.
    pub materialized: Model,
    /// Units per layer before and after dead-path removal.
    pub removed: Vec<crate::structured::Pruned>,
}

/// Magnitude-prune a copy of `model` to `sparsity` and materialize it
/// ([`crate::dead::remove_dead`]). Families without dead-path removal (dsconv) are an
/// error.
pub fn magnitude_forms(
    model: &Model,
    sparsity: f64,
    scope: PruneScope,
) -> Result<Forms, crate::structured::StructuredError> {
    let simulated = model.try_clone()?;
    magnitude_masks(&simulated, sparsity, scope).apply(&simulated);
    materialize(simulated)
}

/// The [`Forms`] of an already masked (and perhaps fine-tuned) model.
pub fn materialize(simulated: Model) -> Result<Forms, crate::structured::StructuredError> {
    let (materialized, removed) = crate::dead::remove_dead(&simulated)?;
    Ok(Forms { simulated, materialized, removed })
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

    fn poly(begin: u64, end: u64, frequency: u64, initial: f64) -> Polynomial {
        Polynomial { begin, end, frequency, power: 3.0, initial_sparsity: initial, final_sparsity: 0.9 }
    }

    #[test]
    fn polynomial_schedule_values_at_the_key_steps() {
        let p = poly(100, 500, 50, 0.1);
        assert!((p.sparsity_at(0) - 0.1).abs() < 1e-12);
        assert!((p.sparsity_at(100) - 0.1).abs() < 1e-12);
        // Half way: 0.9 + (0.1 - 0.9) * 0.5^3 = 0.8.
        assert!((p.sparsity_at(300) - 0.8).abs() < 1e-12);
        // A quarter: 0.9 - 0.8 * 0.75^3.
        assert!((p.sparsity_at(200) - (0.9 - 0.8 * 0.421875)).abs() < 1e-12);
        assert_eq!(p.sparsity_at(500), 0.9);
        assert_eq!(p.sparsity_at(10_000), 0.9);
        // Monotone.
        assert!((100..=500).all(|t| p.sparsity_at(t) <= p.sparsity_at(t + 1)));
        let updates: Vec<u64> = (0..600).filter(|&t| p.is_update(t)).collect();
        assert_eq!(updates, [100, 150, 200, 250, 300, 350, 400, 450, 500]);
        // `end` off the frequency grid is still an update, so the target is reached.
        let q = poly(0, 130, 50, 0.0);
        assert_eq!((0..200).filter(|&t| q.is_update(t)).collect::<Vec<_>>(), [0, 50, 100, 130]);
    }

    #[test]
    fn scheduled_hook_rises_to_the_target_and_holds() {
        let m = mlp();
        let mut s = Scheduled::new(&m, poly(2, 10, 4, 0.0), PruneScope::Global);
        assert!(s.masks().is_none() && m.sparsity() == 0.0, "nothing before begin");
        for _ in 0..14 {
            // A stand-in for an optimizer step: every weight moves.
            tch::no_grad(|| {
                for (_, w) in m.prunable() {
                    let _ = w.shallow_clone().g_add_(&(w.randn_like() * 0.01));
                }
            });
            s.after_step(&m);
        }
        let steps: Vec<u64> = s.history().iter().map(|h| h.0).collect();
        assert_eq!(steps, [2, 6, 10]);
        let reached: Vec<f64> = s.history().iter().map(|h| h.1).collect();
        assert!(reached[0] < 0.01 && reached[1] > 0.7 && reached[1] < 0.9, "{reached:?}");
        assert!((reached[2] - 0.9).abs() < 0.001, "{reached:?}");
        // Held after the end, through the later steps.
        assert!((m.sparsity() - 0.9).abs() < 0.001);
    }

    #[test]
    fn forms_compute_the_same_function() {
        let io = IoShape { channels: 1, height: 8, width: 8, classes: 10 };
        let m =
            Model::build("m", &ModelConfig::Mlp(MlpConfig { hidden: vec![48] }), io, Device::Cpu, Some(2))
                .unwrap();
        let f = magnitude_forms(&m, 0.95, PruneScope::Layer).unwrap();
        assert!(f.materialized.param_count() < f.simulated.param_count(), "{:?}", f.removed);
        assert_eq!(f.simulated.param_count(), m.param_count());
        let xs = Tensor::rand([8, 1, 8, 8], (Kind::Float, Device::Cpu));
        let d = (f.simulated.forward(&xs) - f.materialized.forward(&xs)).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{d}");
        // The original is untouched.
        assert_eq!(m.sparsity(), 0.0);
    }
}
