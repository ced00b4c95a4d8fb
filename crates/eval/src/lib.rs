//! # slimbench-eval
//!
//! What a model variant is worth, measured honestly:
//!
//! * [`accuracy`]: top-1 accuracy and mean loss over a split, in inference mode.
//! * [`latency`]: batch-1 latency over the test images (warm-up, then one timed
//!   forward per image; p50/p90/p99 and every sample kept) and batched throughput at
//!   each configured batch size (median of repeated timings).
//! * [`evaluate_variant`]: loads a saved model, decides how it computes (a half-precision
//!   model is upcast on CPUs unless `compute: native`, and the table says so), and
//!   fills a [`slimbench_core::records::MetricRow`] with accuracy, latency,
//!   throughput, file size, parameter counts and the peak resident memory.
//! * [`speedup`]: a compressed variant timed side by side with its baseline, in its
//!   simulated and materialized forms ([`check_speedup`]), with the reasons it is or is
//!   not faster.

mod accuracy;
pub mod latency;
pub mod speedup;
mod variant;

pub use accuracy::{Accuracy, accuracy, images_tensor, labels_tensor};
pub use speedup::{Form, FormSpec, SpeedupCheck, check_speedup};
pub use variant::{EvalError, Loaded, VariantEval, VariantResult, evaluate_variant, load_for_eval};
