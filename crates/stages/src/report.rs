//! `report`: charts, report.html and summary.md from the run's tables.

use std::path::{Path, PathBuf};

use slimbench_core::config::ReportParams;
use slimbench_pipeline::executor::{BoxError, StageContext};

pub fn render(ctx: &StageContext<'_>, p: &ReportParams, run_dir: &Path) -> Result<Vec<PathBuf>, BoxError> {
    let mut input = slimbench_report::load_run(run_dir)?;
    input.title = p.title.clone().unwrap_or_else(|| ctx.plan.name.clone());
    Ok(slimbench_report::render(&input, run_dir, &p.formats)?)
}
