//! # slimbench-models
//!
//! The model families slimbench trains and compresses, on tch (libtorch), one family
//! per file under [`families`]: `seed-cnn` (the seed experiment's CNN), `mlp`,
//! `dsconv` (depthwise-separable, MobileNet-style) and `cnn` (a configurable teacher).
//!
//! * [`Model`] owns a `VarStore` and a network built from a
//!   [`slimbench_core::config::ModelConfig`]; it counts parameters and non-zeros,
//!   changes precision, lists its prunable weights.
//! * [`store`] saves and loads models as safetensors with the
//!   [`slimbench_core::artifact::ModelMeta`] in the header; weights are dense at their
//!   stored precision or, when that is smaller, a bitmask plus the non-zero values, so
//!   a pruned model's file shrinks with its sparsity.
//! * [`ops`]: every family's forward pass as a chain of steps, runnable past a
//!   [`ops::Tap`] that sees each weight and each activation point (calibration,
//!   quantization-aware training, feature distillation).
//! * [`int8`]: the static int8 chain on fbgemm's quantized kernels and its
//!   fake-quantized twin; [`cuda_linear`]: linear layers on CUDA's `_int_mm` and
//!   `_scaled_mm`. [`Model::set_kernel`] switches a model onto either.
//! * [`runtime`]: device resolution, threads and the libtorch version.

pub mod cuda_linear;
pub mod families;
pub mod int8;
mod model;
pub mod ops;
pub mod runtime;
pub mod store;

pub use model::{Model, ModelError};
