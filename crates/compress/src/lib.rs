//! # slimbench-compress
//!
//! Compression techniques, each acting on a [`slimbench_models::Model`]:
//!
//! * [`quantize`]: store weights in fp16 or bf16 (the file really halves), or int8 with
//!   linear layers on fbgemm's int8/fp16 kernels.
//! * [`prune`]: unstructured magnitude pruning to an exact sparsity, globally or per
//!   layer; the [`prune::Masks`] it returns re-apply themselves after every fine-tuning
//!   step (they are a [`slimbench_train::StepHook`]).
//! * [`structured`]: structured pruning: whole channels and neurons removed by norm and
//!   a smaller dense model rebuilt, so latency really drops.
//! * [`lowrank`]: truncated-SVD factorization of linear layers into two thinner ones,
//!   by rank or kept energy.
//! * [`distill`]: response-based knowledge distillation, a
//!   [`slimbench_train::Objective`] mixing the frozen teacher's softened outputs
//!   (KL divergence scaled by T^2) with the hard labels.

pub mod distill;
pub mod lowrank;
pub mod prune;
pub mod quantize;
pub mod structured;
