//! # slimbench-models
//!
//! The models slimbench trains and compresses, on tch (libtorch). Every model is a
//! [`slimbench_graph::Graph`] (from a preset, a YAML layer list or an ONNX file) built
//! into layers ([`layers`]: [`layers::Conv`], [`layers::Dense`], [`layers::Norm`]) by
//! [`net::GraphNet`].
//!
//! * [`Model`] owns a `VarStore` and the network built from its graph; it counts
//!   parameters and non-zeros, changes precision, lists its prunable weights.
//! * [`store`] saves and loads models as safetensors with the
//!   [`slimbench_core::artifact::ModelMeta`] in the header; weights are dense at their
//!   stored precision or, when that is smaller, a bitmask plus the non-zero values, so
//!   a pruned model's file shrinks with its sparsity.
//! * [`ops`]: the forward pass as steps over the graph, runnable past a [`ops::Tap`]
//!   that sees each weight and each activation point (calibration,
//!   quantization-aware training, feature distillation), or in parts (pipelines).
//! * [`int8`]: the static int8 chain on fbgemm's quantized kernels and its
//!   fake-quantized twin; [`cuda_linear`]: linear layers on CUDA's `_int_mm` and
//!   `_scaled_mm`. [`Model::set_kernel`] switches a model onto either.
//! * [`runtime`]: device resolution, threads and the libtorch version.

pub mod cuda_linear;
pub mod export;
mod fold;
pub mod int8;
pub mod layers;
mod model;
pub mod net;
pub mod ops;
pub mod runtime;
pub mod store;

pub use model::{Model, ModelError};
