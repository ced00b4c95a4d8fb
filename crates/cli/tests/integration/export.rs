//! `slimbench export`: every variant of a real run (trained, half-precision, int8
//! dynamic and static, pruned, low-rank) written as ONNX and TorchScript, loaded back
//! by ONNX Runtime and PyTorch (`scripts/roundtrip_check.py` in the torch venv) and
//! compared with slimbench's own logits on 2,000 images; plus the errors for what is
//! not a finished run.

use std::path::{Path, PathBuf};

use serde_json::json;
use slimbench_core::artifact::{Kernel, ModelMeta, StageManifest};
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

/// A variant of a run: name, model file, metadata.
type Variant = (String, PathBuf, ModelMeta);

/// Every variant of the run, by name.
fn variants_of(run: &Path) -> Vec<Variant> {
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
    variants
}

/// Runs `pipeline` and `slimbench export` on its run; checks that each variant has
/// both files, each listed on one line. Returns the env, the run, its variants and
/// the listing.
fn run_and_export(pipeline: &str) -> (Env, PathBuf, Vec<Variant>, String) {
    let env = Env::new();
    env.write("p.yaml", pipeline);
    assert_code(&env.run(&["run", "p.yaml"]), 0);
    let run = env
        .path()
        .join("results")
        .join(std::fs::read_dir(env.path().join("results")).unwrap().next().unwrap().unwrap().file_name());
    let run = {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("run.json").is_file() && !p.ends_with("latest"))
            .collect();
        runs.sort();
        runs.pop().unwrap()
    };
    let rel = run.strip_prefix(env.path()).unwrap().to_str().unwrap().to_string();
    let out = env.run(&["export", &rel]);
    assert_code(&out, 0);
    let listing = stdout(&out);
    println!("{listing}");
    let variants = variants_of(&run);
    assert_eq!(listing.lines().count(), 2 * variants.len(), "{listing}");
    for (name, file, _) in &variants {
        for ext in ["onnx", "pt"] {
            let f = file.with_extension(ext);
            let line = Path::new(&rel).join(f.strip_prefix(&run).unwrap());
            assert!(f.is_file(), "{name}: {} missing", f.display());
            assert!(listing.contains(&line.display().to_string()), "{name}: {} not listed", line.display());
        }
    }
    (env, run, variants, listing)
}

/// The round trip: slimbench's own logits on `split`'s images, in the form `evaluate`
/// computes (fbgemm's kernels for the int8 variants) and in the form each TorchScript
/// file says it computes, written as raw f32 beside the checks for
/// `scripts/roundtrip_check.py`, which the torch venv's python runs; returns its
/// report (one entry per file).
fn roundtrip(
    env: &Env,
    variants: &[Variant],
    split: &slimbench_data::Split,
    int8_compare: &str,
) -> Vec<serde_json::Value> {
    let python = venv_python();
    let n = split.len();
    let shape = [n as i64, split.channels as i64, split.rows as i64, split.cols as i64];
    let pixels = slimbench_data::pixels_f32(split, 0..n, split.normalize.as_ref());
    let x = Tensor::from_slice(&pixels).view(shape);
    let dir = env.path().join("roundtrip");
    std::fs::create_dir_all(&dir).unwrap();
    write_f32(&dir.join("inputs.f32"), &x);
    let labels: Vec<u8> = split.labels.iter().flat_map(|&l| i64::from(l).to_le_bytes()).collect();
    std::fs::write(dir.join("labels.i64"), labels).unwrap();
    let mut checks = Vec::new();
    for (name, file, meta) in variants {
        let int8 = matches!(meta.kernel, Kernel::Int8Dynamic | Kernel::Int8Static);
        let kernel_ref = format!("{name}.kernel.f32");
        write_f32(&dir.join(&kernel_ref), &logits(name, file, None, &x, split));
        let mut onnx = json!({
            "variant": name, "format": "onnx", "file": file.with_extension("onnx"),
            "reference": kernel_ref, "compare": if int8 { int8_compare } else { "close" },
        });
        // A static int8 model's logits are on its last layer's output grid: ONNX
        // Runtime's int8 kernels may round a value to the next step, no further.
        let last =
            meta.graph.as_ref().and_then(|g| g.nodes.last()).map_or("fc".to_string(), |n| n.id.clone());
        if let Some(q) = meta.static_quant.as_ref().and_then(|sq| sq.activations.get(&last)) {
            onnx["step"] = json!(q.scale);
        }
        checks.push(onnx);
        let mut ts = json!({
            "variant": name, "format": "torchscript", "file": file.with_extension("pt"),
            "reference": kernel_ref, "compare": "close",
        });
        if int8 {
            // The .pt computes the fp32 form (its notes say which): compared with
            // slimbench's own run of that form; its agreement with the int8 kernels
            // is reported.
            let form = slimbench_models::export::torchscript_kernel(meta);
            let form_ref = format!("{name}.traced-form.f32");
            write_f32(&dir.join(&form_ref), &logits(name, file, Some(form), &x, split));
            ts["reference"] = json!(form_ref);
            ts["also"] = json!({"name": "int8 kernels", "reference": kernel_ref});
        }
        checks.push(ts);
    }
    let spec = json!({"input": "inputs.f32", "shape": shape, "labels": "labels.i64", "checks": checks});
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
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// The op types ONNX Runtime runs for a variant's ONNX file, after its optimisations.
fn ort_ops(report: &[serde_json::Value], v: &str) -> Vec<String> {
    let e = report.iter().find(|e| e["variant"] == v && e["format"] == "onnx").unwrap();
    e["ops"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()).collect()
}

#[test]
fn every_variant_exports_to_onnx_and_torchscript_that_give_slimbenchs_logits() {
    let (env, run, variants, listing) = run_and_export(PIPELINE);
    assert_eq!(variants.len(), 15, "{variants:?}");
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
    let rel = run.strip_prefix(env.path()).unwrap().to_str().unwrap().to_string();
    let before = std::fs::metadata(run.join("artifacts/seed/model.onnx")).unwrap().modified().unwrap();
    let again = env.run(&["export", &rel, "--variant", "seed", "--format", "onnx"]);
    assert_code(&again, 0);
    assert_eq!(stdout(&again).lines().count(), 1);
    assert_eq!(std::fs::metadata(run.join("artifacts/seed/model.onnx")).unwrap().modified().unwrap(), before);

    // 2,000 digits the models never trained on.
    let cfg = SyntheticDigitsConfig { train_size: 1, test_size: 2000, ..Default::default() };
    let split = synthetic::generate(SplitKind::Test, 2000, &Params::new(&cfg, 77));
    let report = roundtrip(&env, &variants, &split, "argmax");

    // ONNX Runtime runs the int8 files on its int8 kernels.
    for v in ["static", "static-tensor", "cnn-static"] {
        assert!(ort_ops(&report, v).iter().any(|o| o == "QLinearConv"), "{v}: {:?}", ort_ops(&report, v));
        assert!(ort_ops(&report, v).iter().any(|o| o == "QGemm"), "{v}: {:?}", ort_ops(&report, v));
    }
    assert!(ort_ops(&report, "mlp-static").iter().any(|o| o == "QGemm"));
    for v in ["dynamic", "lowrank-dynamic"] {
        assert!(
            ort_ops(&report, v).iter().any(|o| o == "MatMulIntegerToFloat"),
            "{v}: {:?}",
            ort_ops(&report, v)
        );
    }
}

/// Graphs: residual adds, batch norm, every activation, depthwise and dilated convs,
/// concat, average pooling, Tucker-factored convs.
const GRAPHS: &str = r#"
name: graphs
defaults: { seed: 3, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 2000, test_size: 64 }
models:
  r8: { kind: resnet, depth: 8, width: 4 }
  acts:
    kind: layers
    layers:
      - { conv: 8, kernel: 3, padding: 1, bn: true, act: gelu, id: stem }
      - { conv: 8, kernel: 3, padding: 1, depthwise: true, act: relu6 }
      - { conv: 8, kernel: 1, act: silu, id: mix }
      - { conv: 4, kernel: 3, padding: 2, dilation: 2, input: stem, act: hardswish }
      - { concat: mix }
      - { pool: avg, kernel: 3, stride: 2, padding: 1 }
      - { conv: 8, kernel: 3, stride: 2, act: relu }
      - { pool: max, kernel: 2 }
      - { flatten: true }
      - { linear: 32, act: sigmoid }
      - { dropout: 0.1 }
      - { linear: 16, act: tanh }
      - { linear: 10 }
stages:
  - { id: r8, uses: train, with: { model: r8, dataset: digits, epochs: 3, batch_size: 32 } }
  - { id: acts, uses: train, with: { model: acts, dataset: digits, epochs: 3, batch_size: 32 } }
  - { id: r8-static, uses: quantize, needs: r8, with: { method: int8-static, calibration_samples: 256 } }
  - { id: acts-static, uses: quantize, needs: acts, with: { method: int8-static, calibration_samples: 256 } }
  - { id: acts-fp16, uses: quantize, needs: acts, with: { method: fp16 } }
  - { id: r8-slim, uses: prune, needs: r8, with: { method: structured, sparsity: 0.5 } }
  - { id: r8-tucker, uses: low-rank, needs: r8, with: { rank: 2, convs: tucker2 } }
"#;

#[test]
fn graph_models_export_their_adds_activations_and_factored_convs() {
    let (env, _run, variants, _) = run_and_export(GRAPHS);
    assert_eq!(variants.len(), 7, "{variants:?}");
    let cfg = SyntheticDigitsConfig { train_size: 1, test_size: 1000, ..Default::default() };
    let split = synthetic::generate(SplitKind::Test, 1000, &Params::new(&cfg, 77));
    // Int8 with residual adds and fp32 activations between int8 layers: the file's own
    // arithmetic (ONNX Runtime unoptimised) gives slimbench's argmax; ONNX Runtime's
    // fused int8 kernels round like fbgemm within one step per layer, but those steps
    // add up through the network (docs/export.md): there the accuracy must match, and
    // the argmax agreement is reported.
    let report = roundtrip(&env, &variants, &split, "accuracy");
    // Residual adds on QLinearAdd, global pooling on uint8.
    let ops = ort_ops(&report, "r8-static");
    assert!(ops.iter().any(|o| o == "QLinearAdd") && ops.iter().any(|o| o == "QLinearConv"), "{ops:?}");
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
