//! `slimbench compare`: a candidate run against a baseline run, judged by the gates of
//! the candidate's pipeline (or `--pipeline FILE`), overridden per metric by `--gate`.

use std::path::{Path, PathBuf};

use slimbench_compare::{
    COMPARE_HTML, COMPARE_MD, CompareOptions, resolve_run_dir, terminal_table, write_comparison,
};
use slimbench_core::gates::{self, Gates};
use slimbench_pipeline::diag::did_you_mean;

use super::chain;
use crate::Failure;
use crate::cli::CompareArgs;

/// Compare two runs; print the table and the files written on stdout; fail (exit 1)
/// naming every regression.
pub fn run(a: CompareArgs) -> Result<(), Failure> {
    // Flags first: a typo should not wait for two runs to be read.
    let flag_gates = gate_flags(&a.gates)?;
    let run_dir = |p: &Path| resolve_run_dir(p).map_err(|e| Failure::Invalid(chain(&e)));
    let (baseline, candidate) = (run_dir(&a.baseline)?, run_dir(&a.candidate)?);
    let (mut gates, source) =
        if a.no_yaml_gates { (Gates::new(), None) } else { yaml_gates(a.pipeline.as_deref(), &candidate)? };
    // A metric named by a flag takes the flags' rule instead of the YAML's.
    for (metric, rule) in flag_gates {
        gates.insert(metric, rule);
    }

    let opts = CompareOptions { require_all: a.require_all, ..Default::default() };
    let comparison = slimbench_compare::compare(&baseline, &candidate, &gates, &opts)
        .map_err(|e| Failure::Invalid(chain(&e)))?;
    let out = a.out.clone().unwrap_or_else(|| candidate.clone());
    write_comparison(&comparison, &out).map_err(|e| Failure::Failed(chain(&e)))?;

    match (&source, a.gates.is_empty()) {
        _ if gates.is_empty() => {
            let yaml = match &source {
                _ if a.no_yaml_gates => "--no-yaml-gates".to_string(),
                Some(s) => format!("no `gates:` in {}", s.display()),
                None => "the candidate run has no pipeline.yaml".to_string(),
            };
            println!("note: nothing is gated ({yaml}, no --gate); compared for information\n");
        }
        (Some(s), true) => println!("gates from {}\n", s.display()),
        (Some(s), false) => println!("gates from {} and --gate\n", s.display()),
        (None, _) => println!("gates from --gate\n"),
    }
    print!("{}", terminal_table(&comparison));
    println!("\ncompare: {}", out.join(COMPARE_MD).display());
    println!("report:  {}", out.join(COMPARE_HTML).display());
    match comparison.failure_message() {
        Some(msg) => Err(Failure::Failed(msg)),
        None => Ok(()),
    }
}

/// The gates of `--pipeline FILE`, else of the candidate run's `pipeline.yaml`, parsed
/// and checked like any pipeline (errors point at file:line:col), with the file they
/// came from. A run without `pipeline.yaml` has no gates.
fn yaml_gates(pipeline: Option<&Path>, candidate: &Path) -> Result<(Gates, Option<PathBuf>), Failure> {
    let spec = match pipeline {
        Some(file) => slimbench_pipeline::spec::load_file(file, &[]).map(|s| (s, file.to_path_buf())),
        None => {
            let file = candidate.join("pipeline.yaml");
            let Ok(text) = std::fs::read_to_string(&file) else { return Ok((Gates::new(), None)) };
            slimbench_pipeline::spec::parse(&file.display().to_string(), &text, &[]).map(|s| (s, file))
        }
    };
    let (spec, file) = spec.map_err(|e| Failure::Invalid(e.to_string()))?;
    Ok((spec.gates, Some(file)))
}

/// `--gate METRIC:RULE=VALUE` flags as gates, several flags of one metric combined.
fn gate_flags(flags: &[String]) -> Result<Gates, Failure> {
    let mut out = Gates::new();
    for flag in flags {
        let fail =
            |msg: String, hint: String| Failure::Invalid(format!("--gate {flag}: {msg}\n  = hint: {hint}"));
        let Some((metric, key, value)) = flag
            .split_once(':')
            .and_then(|(m, rest)| rest.split_once('=').map(|(k, v)| (m.trim(), k.trim(), v)))
        else {
            return Err(fail(
                "expected METRIC:RULE=VALUE".into(),
                "e.g. --gate accuracy:max_drop=0.005 or --gate latency_p50_us:max_increase=10%".into(),
            ));
        };
        if !gates::METRICS.contains(&metric) {
            let hint = match did_you_mean(metric, gates::METRICS) {
                Some(m) => format!("did you mean `{m}`?"),
                None => format!("metrics that can be gated: {}", gates::METRICS.join(", ")),
            };
            return Err(fail(format!("unknown metric `{metric}`"), hint));
        }
        let rules = gates::RULE_KEYS.join(", ");
        if !gates::RULE_KEYS.contains(&key) {
            let hint = match did_you_mean(key, gates::RULE_KEYS) {
                Some(k) => format!("did you mean `{k}`? (rules: {rules})"),
                None => format!("rules: {rules}"),
            };
            return Err(fail(format!("unknown rule `{key}`"), hint));
        }
        out.entry(metric.to_string()).or_default().set(key, value).map_err(|m| {
            fail(m, "a threshold is a number in the metric's units or a percentage like 10%".into())
        })?;
    }
    for (metric, rule) in &out {
        if let Some((_, msg)) = rule.check().into_iter().next() {
            return Err(Failure::Invalid(format!("--gate {metric}: gate `{metric}` {msg}")));
        }
    }
    Ok(out)
}
