//! `slimbench run`.

use slimbench_pipeline::{Executor, RunError, RunOptions};

use super::{chain, prepare};
use crate::Failure;
use crate::cli::RunArgs;
use crate::ui::UiProgress;

/// Run a pipeline; print the run directory and the summary table on stdout.
pub fn run(a: RunArgs, progress: &UiProgress) -> Result<(), Failure> {
    let (plan, runner, datasets) = prepare(&a.pipeline)?;
    for f in &a.force_stage {
        if !plan.stages.iter().any(|s| &s.id == f || &s.base_id == f) {
            let ids: Vec<&str> = plan.stages.iter().map(|s| s.id.as_str()).collect();
            return Err(Failure::Invalid(format!(
                "--force-stage {f}: no such stage (stages: {})",
                ids.join(", ")
            )));
        }
    }
    let opts = RunOptions {
        results_dir: a.pipeline.results.clone(),
        force: a.force,
        force_stages: a.force_stage.clone(),
    };
    let exec = Executor::new(&plan, &runner, &datasets, progress, opts);
    let summary = exec.run().map_err(|e| match e {
        RunError::Interrupted { .. } => Failure::Interrupted(e.to_string()),
        other => Failure::Failed(format!(
            "{}\n  = hint: stages that finished are cached; the next run resumes after them",
            chain(&other)
        )),
    })?;
    progress.clear();
    let ran =
        summary.info.stages.iter().filter(|s| s.status == slimbench_core::artifact::StageStatus::Ran).count();
    let cached = summary
        .info
        .stages
        .iter()
        .filter(|s| s.status == slimbench_core::artifact::StageStatus::Cached)
        .count();
    tracing::info!(ran, cached, "run {} finished in {:.1} s", summary.info.run_id, summary.info.duration_s);
    if let Ok(md) = std::fs::read_to_string(summary.dir.join("summary.md")) {
        println!("{md}");
    }
    println!("results: {}", summary.dir.display());
    if summary.dir.join("report.html").exists() {
        println!("report:  {}", summary.dir.join("report.html").display());
    }
    Ok(())
}
