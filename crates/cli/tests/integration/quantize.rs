//! Static int8, quantization-aware training, fine-tuning after quantization, the
//! accuracy-aware fallback and the CUDA methods, on tiny data: each test checks what
//! the method claims (int8 tensors on disk, the kernels that ran, layers kept in fp32,
//! a clear skip where the hardware lacks a kernel).

use std::collections::BTreeMap;
use std::path::Path;

use slimbench_core::artifact::ModelMeta;

use crate::util::*;

/// The tensors of a safetensors file (name -> (dtype, shape)) and its slimbench metadata.
fn tensors(path: &Path) -> (BTreeMap<String, (String, Vec<u64>)>, ModelMeta) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut out = BTreeMap::new();
    for (k, v) in header.as_object().unwrap() {
        if k == "__metadata__" {
            continue;
        }
        let shape = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        out.insert(k.clone(), (v["dtype"].as_str().unwrap().to_string(), shape));
    }
    let meta = serde_json::from_str(header["__metadata__"]["slimbench.meta"].as_str().unwrap()).unwrap();
    (out, meta)
}

fn model_file(run: &Path, stage: &str) -> std::path::PathBuf {
    run.join("artifacts").join(stage).join("model.safetensors")
}

const STATIC: &str = r#"
name: static
defaults: { seed: 5, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 1200, test_size: 300 }
models:
  seed: { kind: seed-cnn }
  mlp: { kind: mlp, hidden: [128] }
stages:
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 2, batch_size: 32 } }
  - { id: mlp, uses: train, with: { model: mlp, dataset: digits, epochs: 2, batch_size: 32 } }
  - { id: cnn-static, uses: quantize, needs: cnn, with: { method: int8-static, calibration_samples: 256 } }
  - id: cnn-tensor
    uses: quantize
    needs: cnn
    with: { method: int8-static, per_channel: false, observer: percentile, percentile: 99.9 }
  - { id: cnn-ft, uses: quantize, needs: cnn, with: { method: int8-static, finetune_epochs: 1 } }
  - { id: cnn-qat, uses: quantize, needs: cnn, with: { method: qat, epochs: 1, observer: moving-average } }
  - { id: mlp-static, uses: quantize, needs: mlp, with: { method: int8-static } }
  - id: eval
    uses: evaluate
    needs: [cnn, mlp, cnn-static, cnn-tensor, cnn-ft, cnn-qat, mlp-static]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 5, iters: 40, batch_sizes: [1, 64], repeats: 3 } }
"#;

#[test]
fn static_int8_and_qat_store_int8_and_run_the_whole_chain_on_fbgemm() {
    let env = Env::new();
    env.write("static.yaml", STATIC);
    let out = env.run(&["run", "static.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("static")[0];
    let rows = metrics(run);
    let cnn = row(&rows, "cnn");

    for v in ["cnn-static", "cnn-tensor", "cnn-ft", "cnn-qat"] {
        let r = row(&rows, v);
        assert_eq!(
            (r.precision.as_str(), r.compute_precision.as_str()),
            ("int8", "int8 (fbgemm, static)"),
            "{v}"
        );
        // The convolution is int8 too: the file is about a quarter of fp32.
        let ratio = r.file_size_bytes as f64 / cnn.file_size_bytes as f64;
        assert!(ratio < 0.28, "{v}: int8 file is {ratio:.3} of fp32");
        // Close to fp32 (fine-tuning and QAT may also gain: the model is under-trained).
        assert!(r.accuracy >= cnn.accuracy - 0.03, "{v}: {} vs fp32 {}", r.accuracy, cnn.accuracy);
        if matches!(v, "cnn-static" | "cnn-tensor") {
            assert!(r.accuracy <= cnn.accuracy + 0.03, "{v}: {} vs fp32 {}", r.accuracy, cnn.accuracy);
        }
        assert!(r.notes.contains("2 layer(s) on fbgemm's static int8 kernels"), "{v}: {}", r.notes);
    }
    assert_eq!(row(&rows, "cnn-qat").technique, "int8-qat");

    // On disk: int8 weights with one scale per output channel (or one per tensor), and
    // the calibrated activation grids in the metadata.
    let (t, meta) = tensors(&model_file(run, "cnn-static"));
    assert_eq!(t["conv.weight.__int8"], ("I8".into(), vec![12, 1, 3, 3]));
    assert_eq!(t["conv.weight.__scale"], ("F32".into(), vec![12]));
    assert_eq!(t["fc.weight.__int8"], ("I8".into(), vec![10, 2028]));
    assert_eq!(t["conv.bias"].0, "F32");
    let sq = meta.static_quant.expect("calibration");
    assert_eq!((sq.observer.as_str(), sq.calibration_samples, sq.per_channel), ("minmax", 256, true));
    assert_eq!(sq.activations.keys().collect::<Vec<_>>(), ["conv", "fc", "input"]);
    let (t, meta) = tensors(&model_file(run, "cnn-tensor"));
    assert_eq!(t["conv.weight.__scale"].1, [1]);
    assert_eq!(meta.static_quant.unwrap().observer, "percentile");
    // QAT learned its ranges, and trained (curves in the run's tables).
    let (_, meta) = tensors(&model_file(run, "cnn-qat"));
    assert_eq!(meta.static_quant.unwrap().observer, "qat");
    let notes = run_json(run)["notes"].to_string();
    assert!(notes.contains("cnn-qat: 1 epoch(s) of quantization-aware training"), "{notes}");
    assert!(notes.contains("cnn-ft: fine-tuned 1 epoch(s) with the calibrated int8 grids held"), "{notes}");
    let curves: std::collections::BTreeSet<String> =
        slimbench_metrics::read_curve_points(run).unwrap().into_iter().map(|c| c.stage).collect();
    assert!(
        curves.contains("cnn-qat") && curves.contains("cnn-ft") && !curves.contains("cnn-static"),
        "{curves:?}"
    );

    // Fine-tuning and QAT change the weights; plain calibration does not.
    let weights = |stage: &str| std::fs::read(model_file(run, stage)).unwrap();
    assert_ne!(weights("cnn-ft"), weights("cnn-static"));

    // Each is timed beside fp32 as fake quantization (simulated) and the int8 chain.
    let speed = slimbench_metrics::read_speedup_rows(run).unwrap();
    for v in ["cnn-static", "mlp-static"] {
        let forms: Vec<&str> =
            speed.iter().filter(|r| r.variant == v && r.batch_size == 1).map(|r| r.form.as_str()).collect();
        assert_eq!(forms, ["baseline", "simulated", "materialized"], "{v}");
        let sim = speed.iter().find(|r| r.variant == v && r.form == "simulated").unwrap();
        assert!(sim.what.contains("fake-quantized"), "{sim:?}");
    }
    let mlp = row(&rows, "mlp-static");
    assert!((mlp.file_size_bytes as f64) < 0.27 * row(&rows, "mlp").file_size_bytes as f64);
}

#[test]
fn accuracy_aware_quantization_keeps_the_sensitive_layers_in_fp32() {
    // Ranges between the 40th and 60th percentiles clip most activations: all-int8 loses
    // much accuracy, and with a point of loss tolerated layers must go back to fp32.
    let env = Env::new();
    env.write(
        "tol.yaml",
        r#"
name: tol
defaults: { seed: 5, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 1200, test_size: 300 }
models:
  cnn: { kind: cnn, channels: [8, 16], hidden: 32 }
stages:
  - { id: train, uses: train, with: { model: cnn, dataset: digits, epochs: 2, batch_size: 32 } }
  - id: q
    uses: quantize
    needs: train
    with:
      method: int8-static
      observer: percentile
      percentile: 60
      tolerable_loss: 0.01
      validation_samples: 300
  - id: dyn
    uses: quantize
    needs: train
    with: { method: int8-dynamic, tolerable_loss: 0.5 }
  - id: eval
    uses: evaluate
    needs: [train, q, dyn]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 2, iters: 20, batch_sizes: [1, 16], repeats: 2 } }
"#,
    );
    let out = env.run(&["run", "tol.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("tol")[0];
    let (t, meta) = tensors(&model_file(run, "q"));
    assert!(!meta.fp32_layers.is_empty(), "nothing fell back");
    let layers = ["conv0", "conv1", "hidden", "fc"];
    for l in &meta.fp32_layers {
        assert!(layers.contains(&l.as_str()), "{l}");
        // A layer kept in fp32 is stored in fp32.
        assert_eq!(t[&format!("{l}.weight")].0, "F32", "{l}");
        assert!(!t.contains_key(&format!("{l}.weight.__int8")), "{l}");
    }
    for l in layers.iter().filter(|l| !meta.keeps_fp32(l)) {
        assert_eq!(t[&format!("{l}.weight.__int8")].0, "I8", "{l}");
    }
    let notes = run_json(run)["notes"].to_string();
    assert!(notes.contains("q: accuracy-aware quantization on 300 held-out training image(s)"), "{notes}");
    assert!(notes.contains(&format!("kept in fp32: {}", meta.fp32_layers.join(", "))), "{notes}");
    let rows = metrics(run);
    let q = row(&rows, "q");
    assert!(q.notes.contains("kept in fp32"), "{}", q.notes);
    // A generous tolerance keeps everything int8.
    let (_, meta) = tensors(&model_file(run, "dyn"));
    assert!(meta.fp32_layers.is_empty());
    assert!(
        notes.contains("dyn: accuracy-aware quantization") && notes.contains("every layer stays int8"),
        "{notes}"
    );
}

#[test]
fn cuda_methods_are_skipped_with_a_reason_without_a_gpu() {
    if std::process::Command::new("nvidia-smi").output().is_ok_and(|o| o.status.success()) {
        return; // On a GPU machine these run for real (pipelines/gpu.yaml).
    }
    let env = Env::new();
    env.write(
        "cuda.yaml",
        r#"
name: cuda
defaults: { seed: 5, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 300, test_size: 100 }
models:
  seed: { kind: seed-cnn }
stages:
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 1 } }
  - { id: fp8, uses: quantize, needs: cnn, with: { method: fp8 } }
  - { id: mm, uses: quantize, needs: cnn, with: { method: int8-mm } }
  - { id: amp, uses: quantize, needs: cnn, with: { method: amp-bf16 } }
  - id: eval
    uses: evaluate
    needs: [cnn, fp8, mm, amp]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 2, iters: 10, batch_sizes: [1], repeats: 2 } }
"#,
    );
    let out = env.run(&["run", "cuda.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("cuda")[0];
    let notes = run_json(run)["notes"].to_string();
    for (id, m) in [("fp8", "fp8"), ("mm", "int8-mm"), ("amp", "amp-bf16")] {
        assert!(
            notes.contains(&format!("{id}: skipped: `{m}` runs on CUDA only and this run is on cpu")),
            "{notes}"
        );
    }
    // Nothing was produced for them; the rest was measured.
    let rows = metrics(run);
    assert_eq!(rows.iter().map(|r| r.variant.as_str()).collect::<Vec<_>>(), ["cnn"]);
    assert!(stderr(&out).contains("skipped"), "{}", stderr(&out));
}

/// `validate` on a quantize stage's parameters: exit 2, the message for a snapshot.
fn invalid(with: &str) -> String {
    let env = Env::new();
    env.write(
        "bad.yaml",
        &format!(
            "name: t\ndatasets:\n  d: {{ kind: synthetic-digits }}\nmodels:\n  m: {{ kind: seed-cnn }}\nstages:\n  - id: train\n    uses: train\n    with: {{ model: m, dataset: d }}\n  - id: q\n    uses: quantize\n    needs: train\n    with: {with}\n"
        ),
    );
    let out = env.run(&["validate", "bad.yaml"]);
    assert_code(&out, 2);
    stderr(&out)
}

#[test]
fn quantize_parameters_that_do_not_apply_are_errors() {
    insta::assert_snapshot!(invalid(
        "{ method: int8-dynamic, observer: percentile, epochs: 2, tolerable_loss: 1.5 }"
    ));
}
