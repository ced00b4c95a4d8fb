//! `slimbench report`.

use slimbench_core::config::ChartFormat;

use crate::Failure;
use crate::cli::ReportArgs;

/// Re-render a run's charts and report from its tables.
pub fn run(a: ReportArgs) -> Result<(), Failure> {
    let formats = a
        .formats
        .iter()
        .map(|f| match f.trim() {
            "png" => Ok(ChartFormat::Png),
            "svg" => Ok(ChartFormat::Svg),
            other => Err(Failure::Invalid(format!("--formats: unknown chart format `{other}` (png, svg)"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut input = slimbench_report::load_run(&a.run_dir).map_err(|e| Failure::Invalid(super::chain(&e)))?;
    if let Some(t) = a.title {
        input.title = t;
    } else if input.title.is_empty() {
        input.title = input.run.pipeline.clone();
    }
    let files = slimbench_report::render(&input, &a.run_dir, &formats)
        .map_err(|e| Failure::Failed(super::chain(&e)))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}
