//! `slimbench compare` and `slimbench history` on real runs of a tiny pipeline.

use std::path::Path;

use slimbench_metrics::polars::prelude::{DataFrame, ParquetReader, SerReader};

use crate::util::*;

/// Seconds per run: an MLP on a few hundred generated digits.
const TINY: &str = r#"name: tiny
defaults: { seed: 42, device: cpu, threads: 1 }
datasets:
  d: { kind: synthetic-digits, train_size: 600, test_size: 200 }
models:
  mlp: { kind: mlp, hidden: [32] }
stages:
  - { id: train, uses: train, with: { model: mlp, dataset: d, epochs: 3 } }
  - { id: fp16, uses: quantize, needs: train, with: { method: fp16 } }
  - id: eval
    uses: evaluate
    needs: [train, fp16]
    with: { latency: { min_duration_s: 0, rounds: 2, iters: 300, warmup: 20, batch_sizes: [1, 16], repeats: 3 } }
gates:
  accuracy: { max_drop: 0.005 }
  # Generous: tests run in parallel on 2 cores, and batch-1 latency follows the load.
  latency_p50_us: { max_increase: 200% }
  file_size_bytes: { max_increase: 0 }
"#;

fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

/// `<page>.md`, `.html`, `.parquet`, `.csv` and each chart as PNG and SVG are in `dir`,
/// none empty.
fn assert_written(dir: &Path, page: &str, charts: &[String]) {
    let docs = ["md", "html", "parquet", "csv"].map(|ext| format!("{page}.{ext}"));
    let charts = charts.iter().flat_map(|c| [format!("{c}.png"), format!("{c}.svg")]);
    for f in docs.into_iter().chain(charts) {
        let len = std::fs::metadata(dir.join(&f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "missing or empty: {}", dir.join(&f).display());
    }
}

fn strings(df: &DataFrame, column: &str) -> Vec<String> {
    df.column(column).unwrap().str().unwrap().iter().map(|s| s.unwrap_or_default().to_string()).collect()
}

#[test]
fn compare_passes_a_rerun_fails_an_accuracy_drop_and_history_follows_the_runs() {
    let env = Env::new();
    env.write("tiny.yaml", TINY);
    assert_code(&env.run(&["run", "tiny.yaml"]), 0);
    // Training is cached; evaluation reruns, so the latency samples are new ones.
    assert_code(&env.run(&["run", "tiny.yaml", "--force-stage", "eval"]), 0);
    let runs = env.runs("tiny");
    let (first, second) = (runs[0].to_str().unwrap(), runs[1].to_str().unwrap());

    let out = env.run(&["compare", first, second]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("no regressions in 6 checks"), "{text}");
    assert!(text.contains("gates from ") && text.contains("pipeline.yaml"), "{text}");
    let charts = ["accuracy", "latency_p50_us", "file_size_bytes", "latency_ecdf"]
        .map(|c| format!("charts/compare-{c}"));
    assert_written(&runs[1], "compare", &charts);
    let md = std::fs::read_to_string(runs[1].join("compare.md")).unwrap();
    assert!(md.contains("no regressions in 6 checks"), "{md}");
    let html = std::fs::read_to_string(runs[1].join("compare.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("src=\"http"), "compare.html must open offline");
    let df = read_parquet(&runs[1].join("compare.parquet"));
    assert_eq!(df.height(), 6);
    let pairs: Vec<(String, String)> =
        strings(&df, "variant").into_iter().zip(strings(&df, "metric")).collect();
    for v in ["train", "fp16"] {
        for m in ["accuracy", "latency_p50_us", "file_size_bytes"] {
            assert!(pairs.contains(&(v.into(), m.into())), "no row {v} {m}: {pairs:?}");
        }
    }
    let tests: Vec<String> = strings(&df, "test");
    let verdicts = strings(&df, "verdict");
    for (i, (_, metric)) in pairs.iter().enumerate() {
        let expect = if metric == "latency_p50_us" { "bootstrap" } else { "threshold" };
        assert_eq!(tests[i], expect, "{metric}");
        assert_ne!(verdicts[i], "regression", "{metric}");
    }

    // One epoch instead of three: accuracy really drops, and the gate says so.
    assert_code(&env.run(&["run", "tiny.yaml", "--set", "stages.train.with.epochs=1"]), 0);
    let third = env.runs("tiny").pop().unwrap();
    // `results/tiny` means its latest run.
    let out = env.run(&["compare", first, "results/tiny"]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.starts_with("error: 2 regressions: "), "{err}");
    assert!(err.contains("train accuracy 0.") && err.contains("fp16 accuracy 0."), "{err}");
    assert!(err.contains("allowed -0.005"), "{err}");
    let df = read_parquet(&third.join("compare.parquet"));
    assert_eq!(strings(&df, "verdict").iter().filter(|v| *v == "regression").count(), 2);
    assert!(stdout(&out).contains("REGRESSION"));

    // A flag replaces the YAML's rule for its metric; --no-yaml-gates drops the YAML.
    let out = env.run(&["compare", first, "results/tiny/latest", "--gate", "accuracy:max_drop=90%"]);
    assert_code(&out, 0);
    let out = env.run(&["compare", first, "results/tiny", "--no-yaml-gates", "--out", "cmp"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("nothing is gated"), "{}", stdout(&out));
    assert!(env.path().join("cmp/compare.html").is_file());
    assert_eq!(read_parquet(&env.path().join("cmp/compare.parquet")).height(), 8);

    // History of the three runs.
    let out = env.run(&["history", "results/tiny"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("3 runs, from "), "{}", stdout(&out));
    let dir = env.path().join("results/tiny/history");
    assert_written(
        &dir,
        "history",
        &["charts/history-accuracy".into(), "charts/history-latency_p50_us".into()],
    );
    // 3 runs x 2 variants x 5 metrics.
    let df = read_parquet(&dir.join("history.parquet"));
    assert_eq!(df.height(), 30);
    let out = env.run(&["history", "results/tiny", "--last", "2", "--metric", "accuracy", "--out", "h2"]);
    assert_code(&out, 0);
    let df = read_parquet(&env.path().join("h2/history.parquet"));
    assert_eq!(df.height(), 2 * 2);
    assert_eq!(strings(&df, "run_id")[0], runs[1].file_name().unwrap().to_string_lossy());
}

#[test]
fn missing_runs_are_invalid_input() {
    let env = Env::new();
    std::fs::create_dir_all(env.path().join("results/empty")).unwrap();
    let out = env.run(&["compare", "not-a-run", "results/empty"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("not a slimbench run directory: not-a-run"), "{}", stderr(&out));
    let out = env.run(&["compare", "results/empty", "results/empty"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("results/empty"), "{}", stderr(&out));
    let out = env.run(&["history", "results/empty"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("no finished runs in results/empty"), "{}", stderr(&out));
}

#[test]
fn bad_gate_flag() {
    let env = Env::new();
    let out = env.run(&["compare", "a", "b", "--gate", "accuracy:max_dorp=0.005"]);
    assert_code(&out, 2);
    insta::assert_snapshot!(stderr(&out));
    let out = env.run(&["compare", "a", "b", "--gate", "latency_p50_us:max_increase=ten%"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("a number or a percentage such as"), "{}", stderr(&out));
}
