//! End-to-end tests: synthetic runs rendered into temporary directories.

use std::path::{Path, PathBuf};

use slimbench_core::artifact::{HostInfo, StageStatus, StageSummary};
use slimbench_core::records::{Records, SpeedupRow};

use super::*;

const EVIL: &str = r#"<script>alert(1)</script> & "x""#;

fn metric(
    variant: &str,
    technique: &str,
    precision: &str,
    sparsity: f64,
    accuracy: f64,
    p50: f64,
) -> MetricRow {
    let params = 20_410;
    MetricRow {
        variant: variant.into(),
        stage: "eval".into(),
        technique: technique.into(),
        model: "seed-cnn".into(),
        model_kind: "seed-cnn".into(),
        dataset: "mnist".into(),
        device: "cpu".into(),
        precision: precision.into(),
        compute_precision: "fp32".into(),
        sparsity,
        accuracy,
        test_images: 10_000,
        latency_p50_us: p50,
        latency_p90_us: p50 * 1.1,
        latency_p99_us: p50 * 1.4,
        latency_mean_us: p50 * 1.02,
        latency_iters: 1000,
        latency_warmup: 100,
        threads: 2,
        throughput_ips: 1e6 / p50 * 40.0,
        batch_size: 256,
        file_size_bytes: if precision == "fp16" { 44_000 } else { 83_000 },
        params,
        nonzero_params: (params as f64 * (1.0 - sparsity)) as u64,
        peak_rss_bytes: 180_000_000,
        train_time_s: if technique == "fp16" { 0.0 } else { 41.5 },
        notes: String::new(),
        speedup_b1: if technique == "baseline" { 0.0 } else { 1.0 },
        speedup_large: if technique == "baseline" { 0.0 } else { 1.2 },
        faster: if technique == "baseline" { String::new() } else { "large batch only".into() },
        energy_per_1k_inferences_j: f64::NAN,
        train_energy_per_epoch_j: f64::NAN,
    }
}

/// A compressed variant's forms timed beside `train`, with a speedup per form at
/// batch 1 and 256.
fn speedup(variant: &str, forms: &[(&str, f64, f64)], why: &str) -> Vec<SpeedupRow> {
    let mut rows = Vec::new();
    for &(form, b1, large) in [("baseline", 1.0, 1.0)].iter().chain(forms) {
        for (batch_size, s) in [(1u64, b1), (256, large)] {
            let p50_us = if batch_size == 1 { 194.1 } else { 4100.0 } / s;
            rows.push(SpeedupRow {
                variant: variant.into(),
                baseline: "train".into(),
                form: form.into(),
                what: format!("{form} of {variant}"),
                batch_size,
                samples: 100,
                p50_us,
                images_per_s: batch_size as f64 * 1e6 / p50_us,
                file_bytes: if form == "baseline" { 83_000 } else { 44_000 },
                speedup: s,
                faster: match form {
                    "baseline" => String::new(),
                    _ if s >= 1.05 => "yes".into(),
                    _ => "no".into(),
                },
                why: if form == "baseline" { String::new() } else { why.into() },
            });
        }
    }
    rows
}

fn curve(variant: &str, steps: u64, final_acc: f64) -> Vec<CurvePoint> {
    let mut points: Vec<CurvePoint> = (1..=10)
        .map(|i| {
            let t = i as f64 / 10.0;
            CurvePoint {
                stage: variant.into(),
                variant: variant.into(),
                epoch: 1 + (i > 5) as u32,
                step: steps * i / 10,
                split: "train".into(),
                loss: 2.3 * (-3.0 * t).exp() + 0.1,
                accuracy: final_acc * (1.0 - (-4.0 * t).exp()),
                elapsed_s: t * 40.0,
            }
        })
        .collect();
    for epoch in 1..=2u32 {
        points.push(CurvePoint {
            stage: variant.into(),
            variant: variant.into(),
            epoch,
            step: steps * epoch as u64 / 2,
            split: "test".into(),
            loss: 0.3 / epoch as f64,
            accuracy: final_acc - 0.02 / epoch as f64,
            elapsed_s: 20.0 * epoch as f64,
        });
    }
    points
}

fn input() -> ReportInput {
    let mut distilled = metric("distill", "distill-response", "fp32", 0.0, 0.9512, 120.0);
    distilled.model = "student".into();
    distilled.notes = "student | smaller".into();
    let metrics = vec![
        metric("train", "baseline", "fp32", 0.0, 0.9601, 194.1),
        metric("fp16", "fp16", "fp16", 0.0, 0.9601, 193.8),
        metric("prune[sparsity=0.5]", "prune-magnitude", "fp32", 0.5, 0.9588, 190.0),
        metric("prune[sparsity=0.9]", "prune-magnitude", "fp32", 0.9, 0.9420, 189.0),
        metric("prune[sparsity=0.94]", "prune-magnitude", "fp32", 0.94, 0.9105, 188.5),
        distilled,
    ];
    let mut curves = curve("train", 1875, 0.96);
    curves.extend(curve("prune[sparsity=0.9]", 1875, 0.94));
    curves.extend(curve("distill", 1875, 0.95));
    let throughput = metrics
        .iter()
        .flat_map(|m| {
            [1u64, 16, 64, 256].map(|bs| ThroughputRow {
                variant: m.variant.clone(),
                batch_size: bs,
                repeats: 30,
                p50_ms: m.latency_p50_us / 1e3 * (bs as f64).powf(0.45),
                images_per_s: bs as f64 / (m.latency_p50_us / 1e6 * (bs as f64).powf(0.45)),
            })
        })
        .collect();
    let mut speedups = speedup(
        "fp16",
        &[("materialized", 1.01, 0.99)],
        "fp16 weights upcast to fp32 on the CPU: the same fp32 arithmetic as the baseline",
    );
    speedups.extend(speedup(
        "prune[sparsity=0.9]",
        &[("simulated", 1.0, 1.02)],
        "no materialized form: unstructured zeros (90% of the weights) are still multiplied by dense kernels",
    ));
    speedups.extend(speedup(
        "distill",
        &[("materialized", 1.6, 2.1)],
        "a smaller student, not a compressed form of its teacher (9000 parameters against 20410)",
    ));
    let stage = |id: &str, kind: &str, status, duration_s| StageSummary {
        id: id.into(),
        kind: kind.into(),
        status,
        duration_s,
        key: "b3a1c9e0f00dfeedbeef0123".into(),
    };
    ReportInput {
        run: RunInfo {
            run_id: "20260101-120000-ab12".into(),
            pipeline: "mnist-seed".into(),
            description: "float16 study on MNIST, extended with pruning and distillation".into(),
            pipeline_file: "pipelines/mnist-seed.yaml".into(),
            tool_version: "0.1.0".into(),
            git_revision: "abc1234".into(),
            torch_version: "2.11.0".into(),
            device: "cpu".into(),
            cuda_available: false,
            threads: 2,
            seed: 42,
            started_at: "2026-01-01T12:00:00+00:00".into(),
            finished_at: "2026-01-01T12:03:05+00:00".into(),
            duration_s: 185.0,
            host: HostInfo {
                hostname: "ci-runner".into(),
                os: "Linux (Debian 12)".into(),
                kernel: "6.8.0".into(),
                cpu_model: "AMD EPYC 7763".into(),
                physical_cores: 1,
                logical_cores: 2,
                memory_bytes: 8 << 30,
            },
            stages: vec![
                stage("train", "train", StageStatus::Ran, 45.2),
                stage("fp16", "quantize", StageStatus::Cached, 0.4),
                stage("eval", "evaluate", StageStatus::Ran, 60.0),
                StageSummary { key: String::new(), ..stage("report", "report", StageStatus::Rendered, 1.2) },
            ],
            notes: vec!["fp16 compute was upcast to fp32 on CPU".into()],
            ..Default::default()
        },
        title: "mnist-seed".into(),
        metrics,
        curves,
        throughput,
        speedup: speedups,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Width and height of a PNG, decoding all of it (so a truncated file fails).
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    let mut reader = png::Decoder::new(bytes.as_slice()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    (frame.width, frame.height)
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// Where a test renders: a temporary directory, or `$SLIMBENCH_KEEP_REPORT/<test>` to
/// keep the output for looking at.
fn out_dir(test: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("SLIMBENCH_KEEP_REPORT") {
        Some(root) => (None, Path::new(&root).join(test)),
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    }
}

#[test]
fn renders_every_chart_and_document() {
    let (_tmp, dir) = out_dir("full");
    let input = input();
    let written = render(&input, dir.as_path(), &[ChartFormat::Png, ChartFormat::Svg]).unwrap();
    assert_eq!(written.len(), 6 * 2 + 2, "{written:?}");
    for path in &written {
        assert!(std::fs::metadata(path).unwrap().len() > 0, "{} is empty", path.display());
    }
    for kind in ChartKind::ALL {
        let png = dir.as_path().join("charts").join(format!("{}.png", kind.name()));
        assert_eq!(png_size(&png), kind.size(), "{}", kind.name());
        let svg = read(&dir.as_path().join("charts").join(format!("{}.svg", kind.name())));
        assert!(svg.starts_with("<svg"), "{}", kind.name());
    }
    // Nothing half-written left behind.
    assert_eq!(file_names(dir.as_path()), ["charts", "report.html", "summary.md"]);
    assert_eq!(file_names(&dir.as_path().join("charts")).len(), 12);

    let html = read(&dir.as_path().join(REPORT_HTML));
    assert_eq!(html.matches("<svg").count(), 6);
    for m in &input.metrics {
        assert!(html.contains(&format::html(&m.variant)), "{}", m.variant);
    }
    for needle in ["mnist-seed", "20260101-120000-ab12", "AMD EPYC 7763", "3 min 05 s", "cached", "rendered"]
    {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(html.contains("★ best"));
    assert!(html.contains("student | smaller"));
    // Does it really get faster? The not-faster variants are marked, with their reasons.
    assert!(html.contains("<h2>Does it really get faster?</h2>"));
    assert_eq!(html.matches("<span class=\"badge slow\">not faster</span>").count(), 2);
    assert_eq!(html.matches("<span class=\"badge fast\">faster</span>").count(), 1);
    assert!(html.contains("unstructured zeros (90% of the weights) are still multiplied by dense kernels"));
    assert!(html.contains("a smaller student, not a compressed form of its teacher"));
    assert!(html.contains("id=\"chart-speedup\""));
    // Self-contained: nothing is loaded from anywhere.
    for external in ["src=\"http", "href=\"http", "<link", "<img", "<script", "@import", "url("] {
        assert!(!html.contains(external), "report.html contains {external}");
    }
}

#[test]
fn run_text_is_escaped_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = input();
    input.metrics[2].variant = EVIL.into();
    input.metrics[0].notes = EVIL.into();
    input.run.description = EVIL.into();
    input.run.notes.push(EVIL.into());
    input.run.stages[0].id = EVIL.into();
    input.title = EVIL.into();
    for r in &mut input.speedup {
        if r.variant == "fp16" {
            r.variant = EVIL.into();
            r.why = EVIL.into();
        }
    }
    for c in &mut input.curves {
        if c.variant == "train" {
            c.variant = EVIL.into();
        }
    }
    render(&input, dir.path(), &[ChartFormat::Svg]).unwrap();

    let html = read(&dir.path().join(REPORT_HTML));
    assert!(!html.contains("<script"), "raw <script> in report.html");
    assert!(!html.contains("\"x\""));
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;";
    assert!(html.matches(escaped).count() >= 6, "escaped form missing");

    // The SVG backend escapes text itself (variant labels, legends).
    let svg = read(&dir.path().join("charts/accuracy_vs_size.svg"));
    assert!(svg.contains(escaped), "plotters did not escape SVG text");
    assert!(!svg.contains("<script"));
    let curves = read(&dir.path().join("charts/training_curves.svg"));
    assert!(curves.contains(escaped) && !curves.contains("<script"));

    let md = read(&dir.path().join(SUMMARY_MD));
    assert!(!md.contains("<script"));
    assert!(md.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; \"x\""));
}

#[test]
fn summary_markdown_snapshot() {
    insta::assert_snapshot!(summary_markdown(&input()));
}

#[test]
fn empty_run_skips_charts_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let input = ReportInput { run: input().run, title: "empty".into(), ..Default::default() };
    let written = render(&input, dir.path(), &[ChartFormat::Png, ChartFormat::Svg]).unwrap();
    assert_eq!(written.len(), 2);
    assert!(!dir.path().join("charts").exists() || file_names(&dir.path().join("charts")).is_empty());
    let html = read(&dir.path().join(REPORT_HTML));
    assert!(!html.contains("<svg"));
    for kind in ChartKind::ALL {
        assert!(html.contains(&format!("<b>{}</b> chart skipped", kind.title())), "{}", kind.name());
    }
    assert!(read(&dir.path().join(SUMMARY_MD)).contains("No variant was evaluated."));
}

#[test]
fn charts_without_data_are_skipped_and_stale_files_removed() {
    let dir = tempfile::tempdir().unwrap();
    let full = input();
    render(&full, dir.path(), &[ChartFormat::Png, ChartFormat::Svg]).unwrap();
    // No pruning, no curves, no throughput this time.
    let mut dense = full.clone();
    dense.metrics.retain(|m| m.sparsity == 0.0);
    dense.curves.clear();
    dense.throughput.clear();
    dense.speedup.clear();
    render(&dense, dir.path(), &[ChartFormat::Png]).unwrap();
    let charts = file_names(&dir.path().join("charts"));
    // Skipped charts lose their files, and so does the format no longer asked for.
    assert_eq!(charts, ["accuracy_vs_latency.png", "accuracy_vs_size.png"]);
    let html = read(&dir.path().join(REPORT_HTML));
    assert!(html.contains("no pruned variant (sparsity &gt; 0) in this run"));
    assert!(html.contains("no training curves were recorded"));
    assert!(html.contains("no throughput was measured"));
    assert!(html.contains("no compressed variant was timed beside its baseline"));
    assert!(html.contains("No compressed variant was timed beside its baseline in this run"));
}

#[test]
fn degenerate_values_do_not_break_charts() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = input();
    input.metrics.truncate(3);
    input.metrics[0].accuracy = f64::NAN;
    input.metrics[1].accuracy = 1.0;
    input.metrics[1].latency_p50_us = 0.0; // not measured
    input.metrics[2].file_size_bytes = 0;
    input.metrics[2].sparsity = 1.0;
    input.curves.truncate(1);
    input.curves[0].loss = f64::NAN;
    input.throughput.truncate(1);
    input.throughput.push(ThroughputRow {
        variant: "ghost".into(),
        images_per_s: f64::INFINITY,
        ..input.throughput[0].clone()
    });
    input.speedup[3].speedup = f64::NAN;
    input.speedup[2].p50_us = f64::INFINITY;
    let written = render(&input, dir.path(), &[ChartFormat::Png]).unwrap();
    assert_eq!(written.len(), 6 + 2, "{written:?}");
    let html = read(&dir.path().join(REPORT_HTML));
    assert!(html.contains("100.00%"));

    // One variant only, with every optional figure missing.
    let mut single = input.clone();
    single.metrics = vec![MetricRow { variant: "only".into(), accuracy: 0.5, ..Default::default() }];
    single.curves.clear();
    single.throughput.clear();
    single.speedup.clear();
    render(&single, dir.path(), &[ChartFormat::Png]).unwrap();
    assert!(read(&dir.path().join(SUMMARY_MD)).contains("| only ★ |"));
}

#[test]
fn svg_only_and_no_chart_files() {
    let dir = tempfile::tempdir().unwrap();
    let written = render(&input(), dir.path(), &[]).unwrap();
    assert_eq!(written.len(), 2);
    // The HTML inlines the charts whether or not chart files are written.
    assert_eq!(read(&dir.path().join(REPORT_HTML)).matches("<svg").count(), 6);

    let written = render(&input(), dir.path(), &[ChartFormat::Svg]).unwrap();
    assert_eq!(written.iter().filter(|p| p.extension().unwrap() == "svg").count(), 6);
    assert!(!written.iter().any(|p| p.extension().unwrap() == "png"));
}

#[test]
fn loads_and_renders_a_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = input();
    let records = Records {
        metrics: input.metrics.clone(),
        curves: input.curves.clone(),
        throughput: input.throughput.clone(),
        speedup: input.speedup.clone(),
        ..Default::default()
    };
    slimbench_metrics::write_tables(dir.path(), &records).unwrap();
    fsutil::write_json(&dir.path().join(RUN_JSON), &input.run).unwrap();

    let loaded = load_run(dir.path()).unwrap();
    assert_eq!(loaded, input);
    render(&loaded, dir.path(), &[ChartFormat::Png]).unwrap();
    assert!(dir.path().join("charts/accuracy_vs_latency.png").is_file());
}

#[test]
fn load_run_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_run(dir.path()).unwrap_err().to_string();
    assert_eq!(err, format!("not a slimbench run directory: {} (no run.json)", dir.path().display()));

    fsutil::write_json(&dir.path().join(RUN_JSON), &RunInfo::default()).unwrap();
    let err = load_run(dir.path()).unwrap_err().to_string();
    assert!(err.ends_with("(no metrics.parquet)"), "{err}");

    std::fs::write(dir.path().join(RUN_JSON), "{").unwrap();
    std::fs::write(dir.path().join("metrics.parquet"), "").unwrap();
    let err = load_run(dir.path()).unwrap_err().to_string();
    assert!(err.contains("run.json"), "{err}");
}

#[test]
fn highlights_mark_best_and_pareto() {
    let input = input();
    let hl = highlights(&input.metrics);
    let best: Vec<&str> =
        input.metrics.iter().zip(&hl).filter(|(_, h)| h.best).map(|(m, _)| &*m.variant).collect();
    // train and fp16 tie on accuracy.
    assert_eq!(best, ["train", "fp16"]);
    let pareto: Vec<&str> =
        input.metrics.iter().zip(&hl).filter(|(_, h)| h.pareto).map(|(m, _)| &*m.variant).collect();
    // distill is faster and more accurate than the two sparsest pruned variants.
    assert_eq!(pareto, ["fp16", "prune[sparsity=0.5]", "distill"]);
}
