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

/// `slimbench __memory`: measure one model file's memory in this (fresh) process and
/// return the figures as JSON (see [`slimbench_eval::memory`]).
pub fn measure_memory(file: &std::path::Path, device: &str, batch: usize) -> Result<String, String> {
    let spec: slimbench_core::device::DeviceSpec = device.parse()?;
    let device = slimbench_models::runtime::resolve_device(spec)?;
    let figures = slimbench_eval::memory::measure_here(file, device, batch).map_err(|e| e.to_string())?;
    serde_json::to_string(&figures).map_err(|e| e.to_string())
}
