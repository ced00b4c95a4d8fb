//! # slimbench-train
//!
//! The training loop every stage shares: [`train`] runs epochs of mini-batches from a
//! [`slimbench_data::loader::Loader`] (batches prepared ahead by worker threads when
//! `workers > 0`), reads `forward -> loss -> backward_step`, and records loss/accuracy
//! curves ([`slimbench_core::records::CurvePoint`]) every `log_every` steps plus the
//! test accuracy after each epoch.
//!
//! What differs between stages plugs in:
//! * an [`Objective`] computes the loss of a batch ([`CrossEntropy`] by default;
//!   distillation brings its own teacher-guided loss);
//! * a [`StepHook`] runs after each optimizer step (pruning re-applies its mask there,
//!   so fine-tuning keeps pruned weights at zero).
//!
//! Data parallelism ([`replica`]) plugs into the same loop: with a
//! [`replica::Replica`] in the [`TrainConfig`], each replica computes its share of every
//! global batch and the gradients are summed by PyTorch's Gloo engine before each step.
//! Asynchronous data parallelism ([`async_ps`]) runs a parameter server and workers;
//! pipeline model parallelism ([`model_parallel`]) splits the layers into stages on
//! devices or CPU thread groups and micro-batches every batch (GPipe).

pub mod amp;
pub mod async_ps;
pub mod model_parallel;
mod objective;
mod optim;
pub mod replica;
mod run;
#[cfg(test)]
mod testutil;

pub use objective::{CrossEntropy, Objective};
pub use optim::build_optimizer;
pub use run::{StepHook, TrainConfig, TrainError, TrainOutcome, train};
