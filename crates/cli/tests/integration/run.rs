//! Real runs of the quickstart, shrunk with `--set`, and what they leave on disk.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;
use slimbench_core::records::MetricRow;

/// Overrides that shrink the quickstart to seconds.
const SMALL: &[&str] = &[
    "--set",
    "datasets.digits.train_size=1500",
    "--set",
    "datasets.digits.test_size=300",
    "--set",
    "datasets.shapes.train_size=600",
    "--set",
    "datasets.shapes.test_size=300",
    "--set",
    "stages.colour.with.epochs=1",
    "--set",
    "stages.train.with.epochs=1",
    "--set",
    "stages.teacher.with.epochs=1",
    "--set",
    "stages.eval.with.latency.iters=200",
    "--set",
    "stages.eval.with.latency.batch_sizes=[1, 32]",
    "--set",
    "stages.eval.with.latency.repeats=3",
    "--set",
    "stages.eval.with.latency.min_duration_s=0",
    "--set",
    "stages.eval.with.server.duration_s=0.1",
    "--set",
    "stages.eval.with.server.steps=3",
];

fn quickstart(env: &Env, extra: &[&str]) -> std::process::Output {
    let q = pipelines().join("quickstart.yaml");
    let mut args = vec!["run", q.to_str().unwrap()];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn quickstart_writes_tables_charts_and_report_then_reuses_every_stage() {
    let env = Env::new();
    let out = quickstart(&env, &[]);
    assert_code(&out, 0);
    let runs = env.runs("quickstart");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];

    for f in [
        "run.json",
        "plan.resolved.yaml",
        "pipeline.yaml",
        "metrics.parquet",
        "metrics.csv",
        "training.parquet",
        "latency.parquet",
        "throughput.parquet",
        "report.html",
        "summary.md",
        "charts/accuracy_vs_size.png",
        "charts/accuracy_vs_size.svg",
        "charts/accuracy_vs_latency.png",
        "charts/training_curves.svg",
        "charts/accuracy_vs_sparsity.png",
        "artifacts/train/model.safetensors",
        "artifacts/train/stage.json",
        "artifacts/prune@sparsity-0.9/model.safetensors",
        "artifacts/distill/student.safetensors",
        "artifacts/distill/baseline.safetensors",
    ] {
        let p = run.join(f);
        assert!(p.is_file() && std::fs::metadata(&p).unwrap().len() > 0, "missing or empty: {f}");
    }
    // stdout carries the summary table and where the results are.
    assert!(stdout(&out).contains("| variant |"), "{}", stdout(&out));
    assert!(
        stdout(&out)
            .contains(&format!("results: results/quickstart/{}", run.file_name().unwrap().to_string_lossy()))
    );

    let rows = metrics(run);
    let mut names: Vec<&str> = rows.iter().map(|r| r.variant.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bf16",
            "colour",
            "colour-int8",
            "distill",
            "distill/student-alone",
            "fp16",
            "int8",
            "lowrank",
            "prune[sparsity=0.5]",
            "prune[sparsity=0.9]",
            "teacher",
            "train"
        ]
    );
    for r in &rows {
        assert!((0.0..=1.0).contains(&r.accuracy), "{r:?}");
        assert!(
            r.latency_p50_us > 0.0
                && r.latency_p50_us <= r.latency_p90_us
                && r.latency_p90_us <= r.latency_p99_us,
            "{r:?}"
        );
        assert_eq!(r.latency_iters, 200);
        assert_eq!(r.test_images, 300);
        assert!(r.throughput_ips > 0.0 && r.batch_size == 32, "{r:?}");
        assert!(r.params > 0 && r.nonzero_params <= r.params && r.file_size_bytes > 0, "{r:?}");
        assert_eq!(r.device, "cpu");
        assert_eq!(r.threads, 2);
    }
    let train = row(&rows, "train");
    assert!(train.accuracy > 0.5, "the seed CNN learned nothing: {}", train.accuracy);
    assert_eq!(train.params, 20_410);
    assert!(train.train_time_s > 0.0);
    // fp16 really halves the file; the table says compute was upcast on the CPU.
    let fp16 = row(&rows, "fp16");
    assert!((fp16.file_size_bytes as f64) <= 0.52 * train.file_size_bytes as f64);
    assert_eq!(fp16.precision, "fp16");
    assert_eq!(fp16.compute_precision, "fp32 (upcast)");
    assert!((fp16.accuracy - train.accuracy).abs() <= 0.01);
    // Pruning: the sparsity asked for, the non-zeros that implies, a file that shrinks.
    let p90 = row(&rows, "prune[sparsity=0.9]");
    assert!((p90.sparsity - 0.9).abs() < 0.005, "{}", p90.sparsity);
    assert!(p90.nonzero_params < train.params / 5);
    assert!((p90.file_size_bytes as f64) < 0.2 * train.file_size_bytes as f64);
    let p50 = row(&rows, "prune[sparsity=0.5]");
    assert!(p50.file_size_bytes > p90.file_size_bytes);
    // int8: the dense layer on fbgemm's kernel, a quarter of the file.
    let int8 = row(&rows, "int8");
    assert_eq!(int8.compute_precision, "int8 (fbgemm, dynamic)");
    assert!((int8.file_size_bytes as f64) < 0.3 * train.file_size_bytes as f64);
    assert!((int8.accuracy - train.accuracy).abs() <= 0.03);
    // Low-rank: the teacher's hidden layer as two rank-16 factors, fewer parameters.
    let (teacher, lowrank) = (row(&rows, "teacher"), row(&rows, "lowrank"));
    assert!(lowrank.params < teacher.params, "{} vs {}", lowrank.params, teacher.params);
    assert!(lowrank.file_size_bytes < teacher.file_size_bytes);
    // Distillation reports the student alone beside the distilled one.
    assert_eq!(row(&rows, "distill").technique, "distill-response");
    assert_eq!(row(&rows, "distill/student-alone").technique, "student-alone");

    let curves = slimbench_metrics::read_curve_points(run).unwrap();
    for v in ["train", "teacher", "prune[sparsity=0.5]", "distill", "distill/student-alone"] {
        assert!(curves.iter().any(|c| c.variant == v && c.split == "train"), "no train curve for {v}");
        assert!(curves.iter().any(|c| c.variant == v && c.split == "test"), "no test point for {v}");
    }
    let samples = slimbench_metrics::read_latency_samples(run).unwrap();
    assert_eq!(samples.len(), 12 * 200);

    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("prune[sparsity=0.9]"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "the report must open offline");
    let info = run_json(run);
    assert_eq!(info["pipeline"], "quickstart");
    assert!(info["torch_version"].as_str().unwrap().starts_with("2.11.0"));
    assert!(info["host"]["logical_cores"].as_u64().unwrap() > 0);
    assert!(statuses(run).iter().all(|(id, s)| if id == "report" { s == "rendered" } else { s == "ran" }));

    // Unchanged pipeline: every stage comes from the cache.
    let out = quickstart(&env, &[]);
    assert_code(&out, 0);
    let runs = env.runs("quickstart");
    assert_eq!(runs.len(), 2);
    let second = &runs[1];
    assert!(
        statuses(second).iter().all(|(id, s)| if id == "report" { s == "rendered" } else { s == "cached" }),
        "{:?}",
        statuses(second)
    );
    // Compared as JSON: NaN ("not checked") is never equal to itself as an f64.
    let json = |rows: &[MetricRow]| serde_json::to_value(rows).unwrap();
    assert_eq!(json(&metrics(second)), json(&rows));
    assert_eq!(
        std::fs::read_link(env.path().join("results/quickstart/latest")).unwrap(),
        Path::new(second.file_name().unwrap())
    );

    // A changed parameter reruns that stage and what depends on it, nothing else.
    let out = quickstart(&env, &["--set", "stages.fp16.with.compute=upcast"]);
    assert_code(&out, 0);
    let third = env.runs("quickstart").pop().unwrap();
    for (id, s) in statuses(&third) {
        let expect = match id.as_str() {
            "fp16" | "eval" => "ran",
            "report" => "rendered",
            _ => "cached",
        };
        assert_eq!(s, expect, "{id}");
    }

    // --force-stage reruns one stage (and, its output changing, its dependents).
    let out = quickstart(&env, &["--force-stage", "bf16"]);
    assert_code(&out, 0);
    let fourth = env.runs("quickstart").pop().unwrap();
    let st = statuses(&fourth);
    assert!(st.contains(&("bf16".into(), "ran".into())), "{st:?}");
    assert!(st.contains(&("train".into(), "cached".into())), "{st:?}");

    // `plan` sees the cache.
    let q = pipelines().join("quickstart.yaml");
    let mut args = vec!["plan", q.to_str().unwrap()];
    args.extend_from_slice(SMALL);
    let out = env.run(&args);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("train ") && l.contains("cached")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("report ") && l.contains("renders every run")), "{text}");
}

/// Seconds per run: an MLP on a few hundred generated digits, no report stage.
const TINY: &str = r#"name: tiny
datasets:
  d: { kind: synthetic-digits, train_size: 400, test_size: 100 }
models:
  mlp: { kind: mlp, hidden: [32] }
stages:
  - { id: train, uses: train, with: { model: mlp, dataset: d, epochs: 1 } }
  - { id: eval, uses: evaluate, needs: train, with: { latency: { min_duration_s: 0, rounds: 2, iters: 20, warmup: 2, batch_sizes: [8], repeats: 2 } } }
"#;

#[test]
fn report_command_rerenders_from_the_tables() {
    let env = Env::new();
    let p = env.write("p.yaml", TINY);
    let out = env.run(&["run", p.to_str().unwrap()]);
    assert_code(&out, 0);
    let run = env.runs("tiny").pop().unwrap();
    // No report stage: tables but no report yet.
    assert!(run.join("metrics.parquet").exists());
    assert!(!run.join("report.html").exists());
    let out = env.run(&["report", run.to_str().unwrap(), "--title", "<b>Tiny</b>"]);
    assert_code(&out, 0);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("&lt;b&gt;Tiny&lt;/b&gt;") && !html.contains("<b>Tiny</b>"));
    assert!(run.join("charts/accuracy_vs_size.svg").exists() && run.join("summary.md").exists());

    let out = env.run(&["report", "not-a-run"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("not-a-run"), "{}", stderr(&out));
}

#[test]
fn two_runs_started_together_keep_both_run_directories() {
    let env = Env::new();
    let p = env.write("p.yaml", TINY);
    // Both started before either is waited for: they run at the same time (most often
    // starting in the same second, which used to give them one run id and one directory).
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut c = env.cmd();
            c.args(["run", p.to_str().unwrap(), "--threads", "1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_code(&out, 0);
    }
    let runs = env.runs("tiny");
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        // Complete and readable: the manifest, the tables, the artifacts.
        let info = run_json(run);
        assert_eq!(info["run_id"].as_str().unwrap(), run.file_name().unwrap().to_string_lossy());
        assert_eq!(statuses(run).len(), 2, "{}", run.display());
        let rows = metrics(run);
        assert!(!rows.is_empty() && rows.iter().all(|r| r.accuracy > 0.0), "{}", run.display());
        assert!(run.join("artifacts/train/stage.json").is_file() && run.join("plan.resolved.yaml").is_file());
    }
    let latest = env
        .path()
        .join("results/tiny")
        .join(std::fs::read_link(env.path().join("results/tiny/latest")).unwrap());
    assert!(runs.contains(&latest), "latest -> {}", latest.display());
    // It names the run that started last.
    let started = |d: &Path| {
        run_json(d)["started_at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap()
    };
    assert!(runs.iter().all(|r| started(r) <= started(&latest)));
    // Nothing half-made is left.
    let leftovers: Vec<_> = std::fs::read_dir(env.path().join("results/tiny"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn list_names_every_kind() {
    let env = Env::new();
    let out = env.run(&["list"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    for k in [
        "train",
        "quantize",
        "prune",
        "low-rank",
        "distill",
        "evaluate",
        "report",
        "seed-cnn",
        "mlp",
        "dsconv",
        "cnn",
        "mnist",
        "fashion-mnist",
        "synthetic-digits",
    ] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(k)), "{k} missing from:\n{text}");
    }
    let out = env.run(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stage_kinds"].as_array().unwrap().len(), 7);
}

/// Wait until `path` exists (a stage finished), failing after a generous deadline.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cache_has(env: &Env, stage: &str) -> bool {
    let dir = env.path().join("results/quickstart/cache").join(stage);
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().any(|e| e.path().join("stage.json").exists()))
        .unwrap_or(false)
}

#[test]
fn interrupted_runs_keep_finished_stages_and_resume() {
    for signal in [libc::SIGINT, libc::SIGKILL] {
        let env = Env::new();
        let q = pipelines().join("quickstart.yaml");
        let child = env
            .cmd()
            .args(["run", q.to_str().unwrap()])
            .args(SMALL)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("the train stage", || cache_has(&env, "train"));
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = child.wait_with_output().unwrap();
        if signal == libc::SIGINT {
            assert_code(&out, 130);
            assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
        }
        // No run directory; the finished stage is whole in the cache.
        assert!(env.runs("quickstart").is_empty());
        let out = quickstart(&env, &[]);
        assert_code(&out, 0);
        let run = env.runs("quickstart").pop().unwrap();
        assert!(statuses(&run).contains(&("train".into(), "cached".into())), "{:?}", statuses(&run));
        // Whatever the killed process left half-done was swept away.
        let leftovers: Vec<_> = std::fs::read_dir(env.path().join("results/quickstart"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
