//! `slimbench plan`.

use slimbench_core::progress::NoProgress;
use slimbench_pipeline::executor::PlannedStatus;
use slimbench_pipeline::{Executor, RunOptions};

use super::prepare;
use crate::Failure;
use crate::cli::PlanArgs;

/// Print the stages in execution order with their needs and cache status.
pub fn run(a: PlanArgs) -> Result<(), Failure> {
    let (plan, runner, datasets) = prepare(&a.pipeline)?;
    if a.yaml {
        print!("{}", plan.to_yaml());
        return Ok(());
    }
    let opts = RunOptions { results_dir: a.pipeline.results.clone(), ..Default::default() };
    let exec = Executor::new(&plan, &runner, &datasets, &NoProgress, opts);
    let shard = a.pipeline.shard.map(|s| format!(" (shard {s})")).unwrap_or_default();
    println!(
        "pipeline `{}`{shard}: {} stage(s), results in {}",
        plan.name,
        plan.stages.len(),
        exec.pipeline_dir().display()
    );
    if !plan.description.is_empty() {
        println!("{}", plan.description.trim());
    }
    println!();
    let width = plan.stages.iter().map(|s| s.id.len()).max().unwrap_or(5).max(5);
    println!("{:<width$}  {:<9}  {:<30}  status", "stage", "kind", "needs");
    for (stage, (_, status)) in plan.stages.iter().zip(exec.statuses()) {
        let needs = if stage.needs.is_empty() { "-".to_string() } else { stage.needs.join(", ") };
        let status = match status {
            PlannedStatus::Cached { key, duration_s } => {
                format!("cached ({}, ran {duration_s:.1} s)", &key[..12])
            }
            PlannedStatus::WillRun(why) => format!("will run ({why})"),
            PlannedStatus::Renders => "renders every run".into(),
        };
        println!("{:<width$}  {:<9}  {:<30}  {status}", stage.id, stage.kind(), needs);
    }
    Ok(())
}
