//! `slimbench run`.

use slimbench_pipeline::{Executor, RunError, RunOptions};
use slimbench_stages::DistJob;

use super::{chain, prepare};
use crate::Failure;
use crate::cli::RunArgs;
use crate::ui::UiProgress;

/// Run a pipeline; print the run directory and the summary table on stdout.
pub fn run(a: RunArgs, progress: &UiProgress) -> Result<(), Failure> {
    let (plan, mut runner, datasets) = prepare(&a.pipeline)?;
    let dist = slimbench_core::dist::DistEnv::from_env()
        .map_err(|e| Failure::Invalid(format!("distributed launch environment: {e}")))?;
    if let Some(d) = &dist {
        tracing::info!(
            rank = d.rank,
            world_size = d.world_size,
            master = %format!("{}:{}", d.master_addr, d.master_port),
            "distributed launch environment (recorded in run.json)"
        );
        if d.world_size > 1 {
            let job = DistJob::connect(d, runner.device()).map_err(|e| Failure::Failed(chain(&e)))?;
            runner = runner.with_dist(job);
        }
    }
    // Ranks other than 0 only lend their hands to rank 0's data-parallel stages.
    if let Some(job) = runner.dist()
        && job.rank() != 0
    {
        job.follow(&runner, &plan, &datasets).map_err(|e| Failure::Failed(chain(e.as_ref())))?;
        tracing::info!(rank = job.rank(), "rank 0 finished the run; this rank wrote nothing");
        return Ok(());
    }
    if let Some(shard) = a.pipeline.shard
        && plan.stages.is_empty()
    {
        println!("shard {shard}: nothing to run (the pipeline has fewer matrix instances than shards)");
        return Ok(());
    }
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
        shard: a.pipeline.shard,
        dist,
    };
    let exec = Executor::new(&plan, &runner, &datasets, progress, opts);
    let result = exec.run();
    if let Some(job) = runner.dist()
        && let Err(e) = job.finish(result.is_ok())
    {
        // The results are written; a rank that left early is worth a warning only.
        tracing::warn!("could not tell the other ranks the run is over: {}", chain(&e));
    }
    let summary = result.map_err(|e| match e {
        RunError::Interrupted { .. } => Failure::Interrupted(e.to_string()),
        RunError::Fs(ref fs) if fs.source.kind() == std::io::ErrorKind::PermissionDenied => {
            Failure::Failed(format!(
                "{}\n  = hint: the results directory is not writable by uid {}; in Docker, run with \
                 `--user \"$(id -u):$(id -g)\"` so the container writes to the mounted directory as you",
                chain(&e),
                // SAFETY: getuid has no preconditions and cannot fail.
                unsafe { libc::getuid() }
            ))
        }
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
