//! # slimbench-pipeline
//!
//! A pipeline goes YAML -> [`Spec`] -> [`Plan`] -> run:
//!
//! * [`spec::load_file`] / [`spec::parse`] read the YAML (through [`yaml`], the one
//!   place that knows serde_yaml), apply `--set` [`overrides`] and dispatch model and
//!   dataset kinds. Every problem becomes a [`diag::Diagnostic`] with file:line:col.
//! * [`resolve::resolve`] types stage parameters by kind, expands `matrix` sweeps,
//!   checks `needs` (unknown ids, cycles) and cross-references, and orders the stages.
//! * [`executor::Executor`] runs the plan through a [`executor::StageRunner`] (the
//!   libtorch side lives in `slimbench-stages`), reusing [`cache::Cache`] entries and
//!   assembling the run directory atomically.
//!
//! Nothing here links libtorch, so validation and planning build and test quickly.

pub mod cache;
pub mod diag;
pub mod executor;
pub mod overrides;
pub mod resolve;
mod rundir;
pub mod shard;
pub mod spec;
pub mod yaml;

pub use diag::{Diagnostic, SpecError};
pub use executor::{Executor, RunError, RunOptions, StageRunner};
pub use resolve::{Plan, PlannedStage, resolve};
pub use shard::{Shard, shard_plan};
pub use spec::Spec;

/// Load, override and resolve a pipeline file in one step.
pub fn load_plan(path: &std::path::Path, overrides: &[String]) -> Result<Plan, SpecError> {
    load_plan_repeated(path, overrides, None)
}

/// [`load_plan`], with every `evaluate` stage's timing plan run `repeat` times when
/// given (`slimbench run --repeat N`).
pub fn load_plan_repeated(
    path: &std::path::Path,
    overrides: &[String],
    repeat: Option<usize>,
) -> Result<Plan, SpecError> {
    let mut spec = spec::load_file(path, overrides)?;
    if let Some(n) = repeat {
        for st in spec.stages.iter_mut().filter(|s| s.uses == "evaluate") {
            st.with.insert("repeat".into(), (n as u64).into());
        }
    }
    resolve(&spec)
}
