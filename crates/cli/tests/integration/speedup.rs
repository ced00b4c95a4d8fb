//! The real-speedup check: compressed variants timed beside their baselines in their
//! simulated and materialized forms, on tiny data.

use std::path::Path;

use slimbench_core::records::{Pace, SpeedupRow};

use crate::util::*;

const PIPELINE: &str = r#"
name: speedup
defaults: { seed: 3, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 600, test_size: 100 }
models:
  seed: { kind: seed-cnn }
stages:
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 1, batch_size: 32 } }
  - { id: int8, uses: quantize, needs: cnn, with: { method: int8-dynamic } }
  - { id: sparse, uses: prune, needs: cnn, with: { method: magnitude, sparsity: 0.9 } }
  - { id: half, uses: prune, needs: cnn, with: { method: structured, sparsity: 0.5 } }
  - id: eval
    uses: evaluate
    needs: [cnn, int8, sparse, half]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 5, iters: 40, batch_sizes: [1, 64], repeats: 4 } }
  - { id: report, uses: report, needs: eval }
"#;

fn forms(rows: &[SpeedupRow], variant: &str) -> Vec<(String, u64)> {
    rows.iter().filter(|r| r.variant == variant).map(|r| (r.form.clone(), r.batch_size)).collect()
}

/// Size of a file a stage wrote, as the run directory's artifacts show it.
fn stage_file(run: &Path, stage: &str, file: &str) -> u64 {
    std::fs::metadata(run.join("artifacts").join(stage).join(file)).unwrap().len()
}

#[test]
fn compressed_variants_are_timed_beside_their_baselines() {
    let env = Env::new();
    env.write("speedup.yaml", PIPELINE);
    let out = env.run(&["run", "speedup.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("speedup")[0];
    let rows = slimbench_metrics::read_speedup_rows(run).unwrap();
    assert!(run.join("speedup.csv").is_file());

    let all = |forms: &[&str]| -> Vec<(String, u64)> {
        forms.iter().flat_map(|f| [(f.to_string(), 1), (f.to_string(), 64)]).collect()
    };
    // int8: the same file on dense kernels (fake quantization) and on fbgemm.
    assert_eq!(forms(&rows, "int8"), all(&["baseline", "simulated", "materialized"]));
    // structured: the zero-padded original-size model and the smaller one.
    assert_eq!(forms(&rows, "half"), all(&["baseline", "simulated", "materialized"]));
    // magnitude: the masked model is all there is.
    assert_eq!(forms(&rows, "sparse"), all(&["baseline", "simulated"]));
    // The baseline is not compared with anything.
    assert!(forms(&rows, "cnn").is_empty());

    for r in &rows {
        assert_eq!(r.baseline, "cnn");
        assert!(r.p50_us > 0.0 && r.images_per_s > 0.0, "{r:?}");
        assert_eq!(r.samples, if r.batch_size == 1 { 40 } else { 4 }, "{r:?}");
        if r.form == "baseline" {
            assert_eq!(r.speedup, 1.0);
        } else {
            assert!(r.speedup > 0.0 && !r.why.is_empty(), "{r:?}");
            // The verdict reads the bootstrap interval, which holds the point value.
            assert!(r.speedup_lo <= r.speedup && r.speedup <= r.speedup_hi, "{r:?}");
            assert_eq!(r.faster, Pace::of(r.speedup, r.speedup_lo, r.speedup_hi).as_str());
            // Four batched timings are too few for a 95% interval of their median (NaN).
            assert!(!(r.p50_lo_us > r.p50_us || r.p50_hi_us < r.p50_us), "{r:?}");
        }
    }

    // Sizes are the real files: the baseline, the int8 file (both int8 forms), the
    // structured simulated file (original size) and the smaller model.
    let size = |variant: &str, form: &str| {
        rows.iter().find(|r| r.variant == variant && r.form == form).unwrap().file_bytes
    };
    let cnn = stage_file(run, "cnn", "model.safetensors");
    assert_eq!(size("int8", "baseline"), cnn);
    let int8 = stage_file(run, "int8", "model.safetensors");
    assert_eq!((size("int8", "simulated"), size("int8", "materialized")), (int8, int8));
    assert!(int8 * 3 < cnn);
    assert_eq!(size("half", "simulated"), stage_file(run, "half", "simulated.safetensors"));
    assert_eq!(size("half", "materialized"), stage_file(run, "half", "model.safetensors"));
    assert!(size("half", "materialized") < size("half", "simulated"));
    assert_eq!(size("sparse", "simulated"), stage_file(run, "sparse", "model.safetensors"));

    // The metrics rows carry the verdict of the variant as stored.
    let metrics = metrics(run);
    for v in ["int8", "sparse", "half"] {
        let m = row(&metrics, v);
        let stored = if v == "sparse" { "simulated" } else { "materialized" };
        let b1 = rows.iter().find(|r| r.variant == v && r.form == stored && r.batch_size == 1).unwrap();
        assert_eq!(m.speedup_b1, b1.speedup);
        assert!(
            ["yes", "no", "same within noise", "batch 1 only", "large batch only"]
                .contains(&m.faster.as_str()),
            "{}",
            m.faster
        );
    }
    assert!(row(&metrics, "cnn").faster.is_empty() && row(&metrics, "cnn").speedup_b1.is_nan());

    // Reasons drawn from what is known.
    let why = |v: &str| rows.iter().find(|r| r.variant == v && r.form != "baseline").unwrap().why.clone();
    assert!(why("sparse").contains("unstructured zeros"), "{}", why("sparse"));
    assert!(why("sparse").contains("still multiplied by dense kernels"));
    assert!(why("int8").contains("1 convolution(s) kept in fp32"), "{}", why("int8"));
    assert!(why("half").contains("parameters 20410 -> 10210"), "{}", why("half"));

    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<h2>Does it really get faster?</h2>"));
    assert!(
        html.contains("unstructured zeros (90% of the weights) are still multiplied by dense kernels"),
        "no reason for sparse"
    );
    assert!(html.contains("none: the stored model is the simulated one"));
    assert!(html.contains("id=\"chart-speedup\""));
    let md = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(md.contains("#### Does it really get faster?"));
}

#[test]
fn a_baseline_outside_the_inputs_is_a_note_not_a_failure() {
    let env = Env::new();
    env.write(
        "nobase.yaml",
        r#"
name: nobase
defaults: { seed: 3, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 300, test_size: 50 }
models:
  mlp: { kind: mlp, hidden: [32] }
stages:
  - { id: mlp, uses: train, with: { model: mlp, dataset: digits, epochs: 1, batch_size: 32 } }
  - { id: int8, uses: quantize, needs: mlp, with: { method: int8-dynamic } }
  - id: eval
    uses: evaluate
    needs: int8
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 2, iters: 10, batch_sizes: [1, 16], repeats: 2 } }
"#,
    );
    let out = env.run(&["run", "nobase.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("nobase")[0];
    assert!(slimbench_metrics::read_speedup_rows(run).unwrap().is_empty());
    assert!(row(&metrics(run), "int8").faster.is_empty());
    let notes = run_json(run)["notes"].to_string();
    assert!(
        notes.contains(
            "int8: speedup not checked: its baseline `mlp` (stage `mlp`) is not among the inputs of `eval`"
        ),
        "{notes}"
    );
}
