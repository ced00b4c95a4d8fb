//! One module per subcommand.

pub mod compare;
pub mod export;
pub mod history;
pub mod launch;
pub mod list;
pub mod memory;
pub mod plan;
pub mod report;
pub mod run;
pub mod validate;

use slimbench_data::DataLookup;
use slimbench_pipeline::Plan;
use slimbench_pipeline::executor::{Datasets, load_datasets};
use slimbench_stages::TorchRunner;

use crate::Failure;
use crate::cli::PipelineArgs;

/// Git revision slimbench was built from.
pub const GIT_REVISION: &str = env!("SLIMBENCH_GIT_REVISION");

/// An error and its causes, one per line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let line = c.to_string();
        if !s.contains(&line) {
            s.push_str(&format!("\n  caused by: {line}"));
        }
        cur = c.source();
    }
    s
}

/// Everything `run` and `plan` need before a stage can run: the plan, the device, the
/// datasets. Any failure here is invalid input (exit 2) and happens before any output
/// directory exists.
pub fn prepare(a: &PipelineArgs) -> Result<(Plan, TorchRunner, Datasets), Failure> {
    let mut plan =
        slimbench_pipeline::load_plan_repeated(&a.pipeline, &a.overrides(), a.repeat.map(usize::from))
            .map_err(|e| Failure::Invalid(e.to_string()))?;
    if let Some(shard) = a.shard {
        plan = slimbench_pipeline::shard_plan(&plan, shard);
    }
    let runner =
        TorchRunner::new(&plan.defaults, GIT_REVISION).map_err(|e| Failure::Invalid(e.to_string()))?;
    let lookup = DataLookup::from_env(a.data_dir.clone());
    let datasets = load_datasets(&plan, &lookup).map_err(|e| Failure::Invalid(chain(&e)))?;
    Ok((plan, runner, datasets))
}
