//! `evaluate` with `backends: [libtorch, onnxruntime, tract]`, end to end, on a model
//! whose ONNX form is known: the `grey_cnn` fixture of slimbench-onnx, imported into
//! slimbench (libtorch) and saved as two variants (a baseline and a copy compressed
//! from it). The exporter is the test's own (the fixture copied beside each model file,
//! as `slimbench_models::export::ensure` writes `<stem>.onnx`), so this runs before
//! the real exporter lands; the pipeline-level test (`crates/cli/tests/integration/
//! backends.rs`) runs the real one.

use std::path::{Path, PathBuf};

use slimbench_core::artifact::{IoShape, ModelMeta};
use slimbench_core::config::{EvaluateParams, ModelConfig, OnnxModelConfig};
use slimbench_core::progress::NoProgress;
use slimbench_data::Split;
use slimbench_eval::backend::onnxruntime::OnnxRuntime;
use slimbench_eval::backend::{Backend, Options};
use slimbench_eval::{Candidate, Form, FormSpec, Settings, evaluate};
use slimbench_metrics::Thresholds;
use slimbench_models::Model;
use slimbench_models::export::Exported;
use slimbench_models::store::{self, Encoding};
use tch::Device;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../onnx/tests/fixtures/grey_cnn.folded.onnx")
        .canonicalize()
        .unwrap()
}

/// The test's exporter: the fixture, copied to `<stem>.onnx` beside the model file.
fn copy_fixture(file: &Path) -> Result<Exported, String> {
    let path = file.with_extension("onnx");
    let bytes = std::fs::copy(fixture(), &path).map_err(|e| e.to_string())?;
    Ok(Exported { path, bytes, notes: vec!["the grey_cnn fixture (test exporter)".into()] })
}

fn no_export(file: &Path) -> Result<Exported, String> {
    Err(format!("{}: ONNX export is not built yet", file.display()))
}

/// 150 test images of pseudo-random pixels (the labels are arbitrary: the check is
/// that every backend predicts what libtorch predicts).
fn split() -> Split {
    let n = 150;
    let mut x: u32 = 12345;
    let images = (0..n * 784)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 24) as u8
        })
        .collect();
    Split {
        images,
        labels: (0..n).map(|i| (i % 10) as u16).collect(),
        channels: 1,
        rows: 28,
        cols: 28,
        normalize: None,
    }
}

/// The fixture as a slimbench model file, saved as `name.safetensors`.
fn save(dir: &Path, name: &str, technique: &str) -> PathBuf {
    let config = ModelConfig::Onnx(OnnxModelConfig { path: fixture() });
    let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
    let m = Model::build("grey", &config, io, Device::Cpu, None).unwrap();
    let path = dir.join(format!("{name}.safetensors"));
    store::save(&m, &ModelMeta::new("grey", config, io, "noise", technique), &path, Encoding::Dense).unwrap();
    path
}

fn params(backends: &str) -> EvaluateParams {
    serde_json::from_str(&format!(
        r#"{{ "batch_size": 64, "memory": false, "backends": {backends},
             "latency": {{ "warmup": 3, "iters": 30, "batch_sizes": [16], "repeats": 3, "min_duration_s": 0,
                           "rounds": 2, "retries": 0 }} }}"#
    ))
    .unwrap()
}

/// Thresholds nothing fails: these tests are about what is measured, not how quietly.
fn quiet() -> Thresholds {
    Thresholds {
        min_thread_cpu_ratio: 0.0,
        max_others_share: 1.0,
        max_steal_share: 1.0,
        max_clock_change: f64::INFINITY,
    }
}

#[test]
fn every_variant_is_timed_and_checked_on_every_backend() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base", "baseline");
    let copy = save(dir.path(), "copy", "copy");
    let test = split();
    let forms = vec![
        FormSpec { form: Form::Baseline, file: base.clone(), kernel: None, what: "the baseline".into() },
        FormSpec { form: Form::Materialized, file: copy.clone(), kernel: None, what: "as stored".into() },
    ];
    let candidate = |name: &'static str, file: &Path, forms: Vec<FormSpec>| Candidate {
        name,
        stage: "s",
        file: file.to_path_buf(),
        test: &test,
        train_time_s: 0.0,
        train_energy_per_epoch_j: None,
        baseline: if forms.is_empty() { String::new() } else { "base".into() },
        forms,
    };
    let candidates = [candidate("base", &base, Vec::new()), candidate("copy", &copy, forms)];
    let p = params(r#"["libtorch", "onnxruntime", "tract"]"#);
    let settings = Settings {
        params: &p,
        device: Device::Cpu,
        stage: "eval",
        thresholds: quiet(),
        export: copy_fixture,
    };
    let out = evaluate(&candidates, &settings, &NoProgress).unwrap();

    // ONNX Runtime is there where scripts/setup-torch.sh ran; otherwise the notes say why.
    let ort = OnnxRuntime::new(Options { device: Device::Cpu, threads: 1 }).available();
    let mut backends = vec!["libtorch", "onnxruntime", "tract"];
    if let Err(why) = &ort {
        assert!(out.notes.iter().any(|n| n.contains(why.as_str())), "{:?}", out.notes);
        assert!(std::env::var_os("SLIMBENCH_REQUIRE_ORT").is_none(), "{why}");
        backends.remove(1);
    }
    let rows = &out.records.metrics;
    let got: Vec<(&str, &str)> = rows.iter().map(|r| (r.variant.as_str(), r.backend.as_str())).collect();
    let want: Vec<(&str, &str)> = backends.iter().flat_map(|&b| [("base", b), ("copy", b)]).collect();
    assert_eq!(got, want);
    let libtorch_accuracy = rows[0].accuracy;
    for r in rows {
        assert!(r.latency_p50_us > 0.0 && r.throughput_ips > 0.0, "{r:?}");
        assert_eq!((r.latency_iters, r.batch_size), (30, 16), "{r:?}");
        assert!(r.backend_detail.starts_with(&format!("{}: ", r.backend)), "{}", r.backend_detail);
        assert_eq!(r.test_images, 150);
        // The same network on every backend: the same predictions.
        assert_eq!(r.accuracy, libtorch_accuracy, "{r:?}");
        assert_eq!(r.disagreements, 0, "{r:?}");
        if r.backend == "libtorch" {
            assert!(r.max_logit_diff.is_nan());
        } else {
            assert!(r.max_logit_diff < 1e-4, "{r:?}");
            eprintln!("{} {}: max |logit diff| vs libtorch {:e}", r.variant, r.backend, r.max_logit_diff);
            assert_eq!(r.compute_precision, "fp32");
            assert_eq!(r.file_size_bytes, std::fs::metadata(fixture()).unwrap().len());
            assert!(r.notes.contains("copy.onnx") || r.notes.contains("base.onnx"), "{}", r.notes);
        }
        // The copy is timed beside its baseline on its own backend.
        if r.variant == "copy" {
            assert!(r.speedup_b1 > 0.0 && r.speedup_large > 0.0, "{r:?}");
            assert!(!r.faster.is_empty(), "{r:?}");
        }
    }
    for b in &backends {
        let speed: Vec<_> = out.records.speedup.iter().filter(|s| s.backend == *b).collect();
        assert_eq!(speed.len(), 4, "{b}: baseline and materialized, at batch 1 and 16");
        let lat = out.records.latency.iter().filter(|l| l.backend == *b).count();
        assert_eq!(lat, 2 * 30, "{b}");
        let thr: Vec<_> = out.records.throughput.iter().filter(|t| t.backend == *b).collect();
        assert_eq!(thr.len(), 2, "{b}");
    }
    // Every subject of every backend was timed in the same rounds.
    assert_eq!(out.records.timing.len(), 2);
}

#[test]
fn without_an_onnx_export_only_libtorch_is_timed_and_the_notes_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let base = save(dir.path(), "base", "baseline");
    let test = split();
    let candidates = [Candidate {
        name: "base",
        stage: "s",
        file: base.clone(),
        test: &test,
        train_time_s: 0.0,
        train_energy_per_epoch_j: None,
        baseline: String::new(),
        forms: Vec::new(),
    }];
    let p = params(r#"["libtorch", "tract"]"#);
    let settings =
        Settings { params: &p, device: Device::Cpu, stage: "eval", thresholds: quiet(), export: no_export };
    let out = evaluate(&candidates, &settings, &NoProgress).unwrap();
    let backends: Vec<&str> = out.records.metrics.iter().map(|r| r.backend.as_str()).collect();
    assert_eq!(backends, ["libtorch"]);
    let note =
        format!("base: not timed on tract: no ONNX export: {}: ONNX export is not built yet", base.display());
    assert!(out.notes.contains(&note), "{:?}", out.notes);
}

#[test]
fn tract_is_not_offered_on_a_gpu() {
    let t = slimbench_eval::backend::tract::Tract::new(Options { device: Device::Cuda(0), threads: 1 });
    assert_eq!(
        t.available().unwrap_err(),
        "tract runs on the CPU only; evaluate with `device: cpu` to time it"
    );
}
