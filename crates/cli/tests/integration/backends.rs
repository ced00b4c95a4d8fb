//! `backends:` of an evaluate stage: every variant timed on libtorch, ONNX Runtime and
//! tract in one timing plan, on tiny synthetic data.

use slimbench_core::records::MetricRow;

use crate::util::*;

/// A seed CNN and its fp16 form, evaluated on every backend.
const PIPELINE: &str = r#"
name: backends
defaults: { seed: 5, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 400, test_size: 120 }
models:
  seed: { kind: seed-cnn }
stages:
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 1, batch_size: 32 } }
  - { id: half, uses: quantize, needs: cnn, with: { method: fp16 } }
  - id: eval
    uses: evaluate
    needs: [cnn, half]
    with:
      backends: [libtorch, onnxruntime, tract]
      memory: false
      latency: { min_duration_s: 0, rounds: 2, warmup: 5, iters: 30, batch_sizes: [1, 16], repeats: 3 }
  - { id: report, uses: report, needs: eval }
"#;

fn rows_of<'a>(rows: &'a [MetricRow], backend: &str) -> Vec<&'a str> {
    rows.iter().filter(|r| r.backend == backend).map(|r| r.variant.as_str()).collect()
}

/// The whole pipeline on the three backends. ONNX Runtime's library comes from
/// scripts/setup-torch.sh, which `make test` runs: without it this test fails (the next
/// one checks the message a user without it gets).
#[test]
fn every_variant_is_timed_on_every_backend() {
    let env = Env::new();
    env.write("backends.yaml", PIPELINE);
    let out = env.run(&["run", "backends.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("backends")[0];
    let rows = metrics(run);
    let notes = run_json(run)["notes"].to_string();
    assert_eq!(rows_of(&rows, "libtorch"), ["cnn", "half"]);
    // The ONNX files the other backends ran are in the run's artifacts, beside the
    // safetensors they came from.
    for stage in ["cnn", "half"] {
        let dir = run.join("artifacts").join(stage);
        assert!(
            dir.join("model.safetensors").is_file() && dir.join("model.onnx").is_file(),
            "{dir:?}: {notes}"
        );
    }
    for backend in ["tract", "onnxruntime"] {
        assert_eq!(rows_of(&rows, backend), ["cnn", "half"], "{backend}");
        for r in rows.iter().filter(|r| r.backend == backend) {
            let reference = rows.iter().find(|l| l.backend == "libtorch" && l.variant == r.variant).unwrap();
            assert!(r.latency_p50_us > 0.0 && r.throughput_ips > 0.0, "{r:?}");
            assert_eq!((r.latency_iters, r.batch_size, r.test_images), (30, 16, 120), "{r:?}");
            assert!(r.backend_detail.starts_with(&format!("{backend}: ")), "{r:?}");
            // Its own accuracy, and predictions that agree with libtorch's.
            assert!((r.accuracy - reference.accuracy).abs() <= 2.0 / 120.0, "{r:?} vs {reference:?}");
            assert!(r.disagreements <= 2, "{r:?}");
            assert!(r.file_size_bytes > 0 && r.notes.contains(".onnx"), "{r:?}");
        }
        // fp16 against the fp32 model, both on this backend.
        let half = rows.iter().find(|r| r.backend == backend && r.variant == "half").unwrap();
        assert!(half.speedup_b1 > 0.0 && !half.faster.is_empty(), "{half:?}");
    }
    let speed = slimbench_metrics::read_speedup_rows(run).unwrap();
    assert!(speed.iter().any(|s| s.backend == "tract" && s.variant == "half" && s.form == "materialized"));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<section id=\"backends\">") && html.contains("fastest on"), "no Backends section");
    assert!(run.join("charts/backend_latency.png").is_file());
}

/// A missing ONNX Runtime library skips that backend, with every path tried and how to
/// install it in the run's notes; libtorch is measured as ever.
#[test]
fn a_missing_onnxruntime_library_skips_the_backend_and_says_why() {
    let env = Env::new();
    env.write(
        "backends.yaml",
        &PIPELINE.replace("[libtorch, onnxruntime, tract]", "[libtorch, onnxruntime]"),
    );
    let out = env
        .cmd()
        .args(["run", "backends.yaml"])
        .env("SLIMBENCH_ONNXRUNTIME", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert_code(&out, 0);
    let run = &env.runs("backends")[0];
    let rows = metrics(run);
    assert_eq!(
        rows.iter().map(|r| (r.variant.as_str(), r.backend.as_str())).collect::<Vec<_>>(),
        [("cnn", "libtorch"), ("half", "libtorch")]
    );
    let notes = run_json(run)["notes"].to_string();
    assert!(
        notes.contains(
            "backend onnxruntime: not timed: the ONNX Runtime library could not be loaded; tried:\\n  - \
             /nonexistent/libonnxruntime.so: not found\\nhint: run scripts/setup-torch.sh"
        ),
        "{notes}"
    );
    assert!(notes.contains("pip install onnxruntime==1.31.1"), "{notes}");
    assert!(stderr(&out).contains("not timed"), "{}", stderr(&out));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("only libtorch was timed in this run"), "the Backends section says so");
}
