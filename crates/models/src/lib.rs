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
//! * [`runtime`]: device resolution, threads and the libtorch version.

pub mod families;
mod model;
pub mod runtime;
pub mod store;

pub use model::{Model, ModelError};
