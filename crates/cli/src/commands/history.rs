//! `slimbench history`: a pipeline's metrics over its runs.

use slimbench_compare::history::{HISTORY_DIR, HISTORY_HTML, HISTORY_MD};
use slimbench_compare::{DEFAULT_HISTORY_METRICS, HistoryOptions, history_table, is_run_dir, load_history};
use slimbench_core::gates;
use slimbench_pipeline::diag::did_you_mean;

use super::chain;
use crate::Failure;
use crate::cli::HistoryArgs;

/// Scan the pipeline's runs, write the trend table, pages and charts, and print the
/// recent runs' table on stdout.
pub fn run(a: HistoryArgs) -> Result<(), Failure> {
    for m in &a.metrics {
        if !gates::METRICS.contains(&m.as_str()) {
            let hint = match did_you_mean(m, gates::METRICS) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("metrics: {}", gates::METRICS.join(", ")),
            };
            return Err(Failure::Invalid(format!("--metric {m}: unknown metric\n  = hint: {hint}")));
        }
    }
    if a.last == Some(0) {
        return Err(Failure::Invalid("--last 0: keep at least one run".into()));
    }
    let dir = &a.pipeline_dir;
    if !dir.is_dir() {
        return Err(Failure::Invalid(format!("{}: no such directory", dir.display())));
    }
    if is_run_dir(dir) {
        let parent = dir.parent().map(|p| p.display().to_string()).unwrap_or_default();
        return Err(Failure::Invalid(format!(
            "{} is a single run; history reads a pipeline's results folder\n  = hint: slimbench history {parent}",
            dir.display()
        )));
    }
    let out = a.out.clone().unwrap_or_else(|| dir.join(HISTORY_DIR));
    let metrics = if a.metrics.is_empty() {
        DEFAULT_HISTORY_METRICS.iter().map(|m| m.to_string()).collect()
    } else {
        a.metrics.clone()
    };
    let opts = HistoryOptions { last: a.last, metrics, exclude: vec![out.clone()] };
    let history = load_history(dir, &opts).map_err(|e| Failure::Invalid(chain(&e)))?;
    slimbench_compare::write_history(&history, &out).map_err(|e| Failure::Failed(chain(&e)))?;
    print!("{}", history_table(&history));
    println!("\nhistory: {}", out.join(HISTORY_MD).display());
    println!("report:  {}", out.join(HISTORY_HTML).display());
    Ok(())
}
