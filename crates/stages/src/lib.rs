//! # slimbench-stages
//!
//! [`TorchRunner`] implements the pipeline's
//! [`StageRunner`](slimbench_pipeline::StageRunner): one module per stage kind turns
//! the stage's typed parameters and inputs into calls to the domain crates
//! (`slimbench-train`, `-compress`, `-eval`, `-report`) and writes model files with
//! their metadata into the stage's directory.
//!
//! | kind | reads | writes |
//! |---|---|---|
//! | `train` | a dataset | `model.safetensors`, curves |
//! | `quantize` | one model (+ dataset to calibrate, fine-tune or train aware) | `model.safetensors`: fp16/bf16, or int8 weights + scales (+ calibrated activation grids), curves; nothing, with a note, for a CUDA method without CUDA |
//! | `prune` | one model (+ dataset to fine-tune) | sparse `model.safetensors` (smaller after dead-path removal), curves |
//! | `low-rank` | one model (+ dataset to fine-tune) | factored `model.safetensors`, curves |
//! | `distill` | a teacher model + dataset | `student.safetensors` (response, feature or relation), `baseline.safetensors` (the student alone), curves |
//! | `evaluate` | every model of its needs | metric rows, latency samples, throughput, the speedup check (a kernel the device lacks is left out with a note) |
//! | `report` | the run's tables | charts, `report.html`, `summary.md` |
//!
//! A `train` stage with `strategy: data-parallel` trains replicas as threads, or, in a
//! multi-process job ([`DistJob`]: `slimbench launch`, torchrun, a PyTorchJob), across
//! the processes: rank 0 runs the pipeline and the other ranks follow its
//! data-parallel stages.

mod common;
mod dist;
mod distill;
mod evaluate;
mod lowrank;
mod prune;
mod quantize;
mod report;
mod runner;
mod train;

pub use dist::{DistError, DistJob};
pub use runner::{StageError, TorchRunner};
