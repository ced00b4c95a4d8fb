//! Training objectives.

use slimbench_models::Model;
use tch::{Tensor, nn};

/// The loss of one mini-batch.
pub trait Objective {
    /// Return `(loss, logits)` of `model` on `xs` with labels `ys`, in training mode.
    fn loss(&mut self, model: &Model, xs: &Tensor, ys: &Tensor) -> (Tensor, Tensor);

    /// Parameters of the objective's own that train beside the model's (a
    /// distillation regressor), with the same optimizer settings.
    fn parameters(&self) -> Option<&nn::VarStore> {
        None
    }
}

/// Plain cross-entropy on the labels.
#[derive(Debug, Default, Clone, Copy)]
pub struct CrossEntropy;

impl Objective for CrossEntropy {
    fn loss(&mut self, model: &Model, xs: &Tensor, ys: &Tensor) -> (Tensor, Tensor) {
        let logits = model.forward_t(xs, true);
        (logits.cross_entropy_for_logits(ys), logits)
    }
}
