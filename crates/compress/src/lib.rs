//! # slimbench-compress
//!
//! Compression techniques, each acting on a [`slimbench_models::Model`]:
//!
//! * [`quantize`]: store weights in fp16 or bf16 (the file really halves), or int8 with
//!   layers on fbgemm's int8/fp16 kernels (dynamic, or static with calibrated
//!   activations), or for CUDA's autocast, `_int_mm` and `_scaled_mm`; the
//!   accuracy-aware search keeps the most sensitive layers in fp32
//!   ([`quantize::accuracy_aware`]).
//! * [`observe`]: activation observers (min-max, moving average, percentile) and the
//!   calibration that gives a static int8 model its activation ranges.
//! * [`qat`]: training with the quantization simulated (fake quantization with
//!   straight-through gradients): quantization-aware training, and fine-tuning after
//!   post-training quantization.
//! * [`prune`]: unstructured magnitude pruning to an exact sparsity, globally or per
//!   layer, one-shot or along a polynomial schedule ([`prune::Scheduled`]); the
//!   [`prune::Masks`] re-apply themselves after every fine-tuning step (they are a
//!   [`slimbench_train::StepHook`]).
//! * [`dead`]: dead-path removal after magnitude pruning: neurons and channels left
//!   without inputs (their constant output folded into the next bias) or without
//!   readers go, and a smaller dense model with the same outputs is rebuilt;
//!   [`prune::magnitude_forms`] returns the masked and the materialized forms.
//! * [`semi`]: 2:4 semi-structured sparsity (2 of every 4 consecutive weights kept),
//!   with cuSPARSELt's kernels on CUDA.
//! * [`structured`]: structured pruning: whole channels and neurons removed by norm and
//!   a smaller dense model rebuilt, so latency really drops.
//! * [`lowrank`]: truncated-SVD factorization of linear layers into two thinner ones,
//!   by rank or kept energy.
//! * [`distill`]: response-based knowledge distillation, a
//!   [`slimbench_train::Objective`] mixing the frozen teacher's softened outputs
//!   (KL divergence scaled by T^2) with the hard labels.

pub mod dead;
pub mod distill;
pub mod lowrank;
pub mod observe;
pub mod prune;
pub mod qat;
pub mod quantize;
pub mod semi;
pub mod structured;
