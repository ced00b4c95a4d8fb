//! Training objectives.

use slimbench_models::Model;
use tch::Tensor;

/// The loss of one mini-batch.
pub trait Objective {
    /// Return `(loss, logits)` of `model` on `xs` with labels `ys`, in training mode.
    fn loss(&mut self, model: &Model, xs: &Tensor, ys: &Tensor) -> (Tensor, Tensor);
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
