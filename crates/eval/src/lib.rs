//! # slimbench-eval
//!
//! What a model variant is worth, measured so that the numbers can be trusted:
//!
//! * [`accuracy`]: top-1 accuracy and mean loss over a split, in inference mode.
//! * [`backend`]: the inference engines a variant is timed on (libtorch, ONNX Runtime,
//!   tract) behind one seam: load a variant, prepare inputs, run a batch, say what ran.
//! * [`plan`]: one timing plan per evaluate stage: every variant, every form of one and
//!   every backend timed in interleaved rounds on the same threads, with each round watched for a
//!   busy machine; figures with 95% intervals, tail bounds and a `valid`/`invalid`
//!   verdict.
//! * [`speedup`]: the forms a compressed variant is timed in beside its baseline
//!   (simulated, materialized) and the reasons it is or is not faster.
//! * [`memory`]: what one model costs in memory, measured in a child process.
//! * [`server`]: the server scenario (Poisson arrivals, dynamic batching, p99 target).
//! * [`evaluate`]: all of it for a stage's variants, into the run's [`Records`].
//!
//! [`Records`]: slimbench_core::records::Records

mod accuracy;
pub mod backend;
mod evaluation;
pub mod memory;
pub mod plan;
pub mod server;
pub mod speedup;
mod variant;

pub use accuracy::{Accuracy, Agreement, accuracy, images_tensor, labels_tensor, runner_logits};
pub use evaluation::{Candidate, Outcome, Settings, evaluate, onnx_export};
pub use speedup::{Form, FormSpec};
pub use variant::{EvalError, Loaded, load_for_eval};
