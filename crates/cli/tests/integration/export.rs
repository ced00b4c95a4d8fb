//! `slimbench export`: every variant of a real run (trained, half-precision, int8
//! dynamic and static, pruned, low-rank) written as ONNX and TorchScript, loaded back
//! by ONNX Runtime and PyTorch (`scripts/roundtrip_check.py` in the torch venv) and
//! compared with slimbench's own logits on 2,000 images; plus the errors for what is
//! not a finished run.

use std::path::{Path, PathBuf};

use serde_json::json;
use slimbench_core::artifact::{Kernel, StageManifest};
use slimbench_core::config::SyntheticDigitsConfig;
use slimbench_data::synthetic::{self, Params, SplitKind};
use tch::{Device, Kind, Tensor};

use crate::util::*;

const PIPELINE: &str = r#"
name: export
defaults: { seed: 5, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 1200, test_size: 200 }
models:
  seed: { kind: seed-cnn }
  mlp: { kind: mlp, hidden: [64, 32] }
  cnn: { kind: cnn, channels: [8, 16], hidden: 32, dropout: 0.1 }
stages:
  - { id: seed, uses: train, with: { model: seed, dataset: digits, epochs: 1, batch_size: 32 } }
  - { id: mlp, uses: train, with: { model: mlp, dataset: digits, epochs: 1, batch_size: 32 } }
  - { id: cnn, uses: train, with: { model: cnn, dataset: digits, epochs: 3, batch_size: 32 } }
  - { id: fp16, uses: quantize, needs: seed, with: { method: fp16 } }
  - { id: bf16, uses: quantize, needs: seed, with: { method: bf16 } }
  - { id: fp16-dynamic, uses: quantize, needs: mlp, with: { method: fp16-dynamic } }
  - { id: dynamic, uses: quantize, needs: mlp, with: { method: int8-dynamic } }
  - { id: static, uses: quantize, needs: seed, with: { method: int8-static, calibration_samples: 256 } }
  - id: static-tensor
    uses: quantize
    needs: seed
    with: { method: int8-static, per_channel: false, calibration_samples: 256 }
  - { id: cnn-static, uses: quantize, needs: cnn, with: { method: int8-static, calibration_samples: 256 } }
  - { id: mlp-static, uses: quantize, needs: mlp, with: { method: int8-static, calibration_samples: 256 } }
  - { id: structured, uses: prune, needs: seed, with: { method: structured, sparsity: 0.5 } }
  - { id: magnitude, uses: prune, needs: seed, with: { sparsity: 0.8 } }
  - { id: lowrank, uses: low-rank, needs: mlp, with: { rank: 8 } }
  - { id: lowrank-dynamic, uses: quantize, needs: lowrank, with: { method: int8-dynamic } }
"#;

/// The torch venv's python, from the `.torch` link at the repository root (a link to
/// the venv's `torch` package: `<venv>/lib/python3.X/site-packages/torch`).
fn venv_python() -> PathBuf {
    let link = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.torch");
    let target = std::fs::read_link(&link).unwrap_or_else(|e| {
        panic!(
            "{}: not a link to the torch venv ({e}); run scripts/setup-torch.sh, which installs torch, onnxruntime \
             and onnx there",
            link.display()
        )
    });
    let target = if target.is_relative() { link.parent().unwrap().join(target) } else { target };
    // Lexically: the venv's python must be called by its venv path to find its packages.
    let mut venv = target.clone();
    for _ in 0..4 {
        venv = venv.parent().map(Path::to_path_buf).unwrap_or_default();
    }
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing (the torch venv's python, from {}); run scripts/setup-torch.sh",
        python.display(),
        target.display()
    );
    python
}

/// `data` as little-endian f32 in `path`.
fn write_f32(path: &Path, t: &Tensor) {
    let v = Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1)).unwrap();
    std::fs::write(path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

/// A variant's logits on `x` as `evaluate` computes them (on `kernel` when given).
fn logits(
    name: &str,
    file: &Path,
    kernel: Option<Kernel>,
    x: &Tensor,
    probe: &slimbench_data::Split,
) -> Tensor {
    let loaded = slimbench_eval::load_for_eval(name, file, kernel, Device::Cpu, probe)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    tch::no_grad(|| loaded.model.forward(&x.to_kind(loaded.model.kind()))).to_kind(Kind::Float)
}

#[test]
fn every_variant_exports_to_onnx_and_torchscript_that_give_slimbenchs_logits() {
    let python = venv_python();
    let env = Env::new();
    env.write("export.yaml", PIPELINE);
    let out = env.run(&["run", "export.yaml"]);
    assert_code(&out, 0);
    let run = env.runs("export").pop().unwrap();
    let rel = run.strip_prefix(env.path()).unwrap().to_str().unwrap().to_string();

    let out = env.run(&["export", &rel]);
    assert_code(&out, 0);
    let listing = stdout(&out);
    println!("{listing}");

    // Every variant, both formats, one line each: path, size, notes.
    let mut variants = Vec::new();
    for stage in std::fs::read_dir(run.join("artifacts")).unwrap() {
        let dir = stage.unwrap().path();
        let m: StageManifest =
            serde_json::from_slice(&std::fs::read(dir.join("stage.json")).unwrap()).unwrap();
        for v in m.variants {
            variants.push((v.name.clone(), dir.join(&v.file), v.meta));
        }
    }
    variants.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(variants.len(), 15, "{variants:?}");
    assert_eq!(listing.lines().count(), 2 * variants.len(), "{listing}");
    for (name, file, _) in &variants {
        for ext in ["onnx", "pt"] {
            let f = file.with_extension(ext);
            let line = Path::new(&rel).join(f.strip_prefix(&run).unwrap());
            assert!(f.is_file(), "{name}: {} missing", f.display());
            assert!(listing.contains(&line.display().to_string()), "{name}: {} not listed", line.display());
        }
    }
    let line = |v: &str, ext: &str| {
        listing
            .lines()
            .find(|l| l.contains(&format!("/{v}/")) && l.contains(&format!(".{ext} ")))
            .unwrap_or("")
    };
    assert!(line("bf16", "onnx").contains("stored as BFLOAT16, each with a Cast to FLOAT"), "{listing}");
    assert!(line("static", "onnx").contains("static int8 in QDQ form"), "{listing}");
    assert!(line("static", "pt").contains("fake-quantized fp32 form"), "{listing}");
    assert!(line("magnitude", "onnx").contains("are zero: stored dense"), "{listing}");
    assert!(
        line("lowrank", "onnx").contains("low-rank layers as two matrix products each: fc0 (rank 8)"),
        "{listing}"
    );
    // Half-size on disk: the fp16 file holds FLOAT16 weights.
    let size =
        |v: &str, ext: &str| std::fs::metadata(run.join(format!("artifacts/{v}/model.{ext}"))).unwrap().len();
    assert!(
        size("fp16", "onnx") * 10 < size("seed", "onnx") * 6,
        "{} vs {}",
        size("fp16", "onnx"),
        size("seed", "onnx")
    );
    assert!(size("static", "onnx") * 10 < size("seed", "onnx") * 4);

    // A second export finds every file up to date and leaves it alone.
    let before = std::fs::metadata(run.join("artifacts/seed/model.onnx")).unwrap().modified().unwrap();
    let again = env.run(&["export", &rel, "--variant", "seed", "--format", "onnx"]);
    assert_code(&again, 0);
    assert_eq!(stdout(&again).lines().count(), 1);
    assert_eq!(std::fs::metadata(run.join("artifacts/seed/model.onnx")).unwrap().modified().unwrap(), before);

    // slimbench's own logits on 2,000 digits it never trained on, in the form
    // `evaluate` computes (fbgemm's kernels for the int8 variants), and in the form the
    // TorchScript file claims to compute (its notes).
    let cfg = SyntheticDigitsConfig { train_size: 1, test_size: 2000, ..Default::default() };
    let split = synthetic::generate(SplitKind::Test, 2000, &Params::new(&cfg, 77));
    let pixels = slimbench_data::pixels_f32(&split, 0..2000, None);
    let x = Tensor::from_slice(&pixels).view([2000, 1, 28, 28]);
    let dir = env.path().join("roundtrip");
    std::fs::create_dir_all(&dir).unwrap();
    write_f32(&dir.join("inputs.f32"), &x);
    let mut checks = Vec::new();
    for (name, file, meta) in &variants {
        let int8 = matches!(meta.kernel, Kernel::Int8Dynamic | Kernel::Int8Static);
        let kernel_ref = format!("{name}.kernel.f32");
        write_f32(&dir.join(&kernel_ref), &logits(name, file, None, &x, &split));
        let mut onnx = json!({
            "variant": name, "format": "onnx", "file": file.with_extension("onnx"),
            "reference": kernel_ref, "compare": if int8 { "argmax" } else { "close" },
        });
        // A static int8 model's logits are on its last layer's output grid: ONNX
        // Runtime's int8 kernels may round a value to the next step, no further.
        let last =
            meta.graph.as_ref().and_then(|g| g.nodes.last()).map_or("fc".to_string(), |n| n.id.clone());
        if let Some(q) = meta.static_quant.as_ref().and_then(|sq| sq.activations.get(&last)) {
            onnx["step"] = json!(q.scale);
        }
        checks.push(onnx);
        let ts_kernel = slimbench_models::export::torchscript_kernel(meta);
        let mut ts = json!({
            "variant": name, "format": "torchscript", "file": file.with_extension("pt"),
            "reference": kernel_ref, "compare": "close",
        });
        if int8 {
            // The .pt computes the fp32 form: compared with slimbench's fp32 form,
            // and its agreement with the int8 kernels reported.
            let form_ref = format!("{name}.traced-form.f32");
            write_f32(&dir.join(&form_ref), &logits(name, file, Some(ts_kernel), &x, &split));
            ts["reference"] = json!(form_ref);
            ts["also"] = json!({"name": "int8 kernels", "reference": kernel_ref});
        }
        checks.push(ts);
    }
    let spec = json!({"input": "inputs.f32", "shape": [2000, 1, 28, 28], "checks": checks});
    std::fs::write(dir.join("checks.json"), serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/roundtrip_check.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(dir.join("checks.json"))
        .arg(dir.join("report.json"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    println!("{}", stdout(&out));
    assert!(out.status.success(), "round trip failed:\n{}\n{}", stdout(&out), stderr(&out));

    // ONNX Runtime runs the int8 files on its int8 kernels.
    let report: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let ops = |v: &str| -> Vec<String> {
        let e = report.iter().find(|e| e["variant"] == v && e["format"] == "onnx").unwrap();
        e["ops"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()).collect()
    };
    for v in ["static", "static-tensor", "cnn-static"] {
        assert!(ops(v).iter().any(|o| o == "QLinearConv"), "{v}: {:?}", ops(v));
        assert!(ops(v).iter().any(|o| o == "QGemm"), "{v}: {:?}", ops(v));
    }
    assert!(ops("mlp-static").iter().any(|o| o == "QGemm"), "{:?}", ops("mlp-static"));
    for v in ["dynamic", "lowrank-dynamic"] {
        assert!(ops(v).iter().any(|o| o == "MatMulIntegerToFloat"), "{v}: {:?}", ops(v));
    }
}

/// A finished run to break: one train stage.
const SMALL: &str = r#"
name: small
defaults: { seed: 1, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 100, test_size: 20 }
models:
  m: { kind: mlp, hidden: [8] }
stages:
  - { id: train, uses: train, with: { model: m, dataset: digits, epochs: 1 } }
  - { id: fp16, uses: quantize, needs: train, with: { method: fp16 } }
"#;

/// `slimbench export ARGS` in an env holding one finished run of SMALL, renamed
/// `results/small/run` for stable messages: exit code 2 and stderr.
fn refused(prepare: impl Fn(&Path), args: &[&str]) -> String {
    let env = Env::new();
    env.write("small.yaml", SMALL);
    assert_code(&env.run(&["run", "small.yaml"]), 0);
    let run = env.runs("small").pop().unwrap();
    std::fs::rename(&run, env.path().join("results/small/run")).unwrap();
    prepare(&env.path().join("results/small/run"));
    let mut all = vec!["export"];
    all.extend(args);
    let out = env.run(&all);
    assert_code(&out, 2);
    assert!(!env.path().join("results/small/run/artifacts/train/model.onnx").exists(), "nothing written");
    stderr(&out)
}

#[test]
fn a_missing_directory_is_named() {
    insta::assert_snapshot!(refused(|_| {}, &["results/small/nope"]), @r"
    error: results/small/nope: no such directory
      = hint: give a finished run, results/<pipeline>/<run-id>, or results/<pipeline> for its latest run
    ");
}

#[test]
fn a_directory_without_run_json_is_not_a_finished_run() {
    insta::assert_snapshot!(refused(|_| {}, &["results/small/run/artifacts"]), @r"
    error: results/small/run/artifacts is not a finished run: it has no run.json
      = hint: give a finished run, results/<pipeline>/<run-id>, or results/<pipeline> for its latest run
    ");
}

#[test]
fn a_stage_without_its_manifest_is_an_incomplete_run() {
    let gone = |run: &Path| std::fs::remove_file(run.join("artifacts/fp16/stage.json")).unwrap();
    insta::assert_snapshot!(refused(gone, &["results/small/run"]), @"error: results/small/run is an incomplete run: stage `fp16` has no artifacts/fp16/stage.json");
}

#[test]
fn a_missing_model_file_is_named() {
    let gone = |run: &Path| std::fs::remove_file(run.join("artifacts/fp16/model.safetensors")).unwrap();
    insta::assert_snapshot!(refused(gone, &["results/small/run", "--variant", "fp16"]), @"error: results/small/run/artifacts/fp16/model.safetensors (variant `fp16`) is missing: the run is incomplete");
}

#[test]
fn an_unknown_variant_is_named_with_a_suggestion() {
    insta::assert_snapshot!(refused(|_| {}, &["results/small/run", "--variant", "fp61"]), @r"
    error: --variant fp61: results/small/run has no such variant
      = hint: did you mean `fp16`?
    ");
    insta::assert_snapshot!(refused(|_| {}, &["results/small/run", "--variant", "zzz"]), @r"
    error: --variant zzz: results/small/run has no such variant
      = hint: its variants: train, fp16
    ");
}
