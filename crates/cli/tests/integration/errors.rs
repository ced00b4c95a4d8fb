//! Bad input: clear messages (snapshot-tested), exit code 2, nothing written.

use crate::util::*;

/// A valid pipeline to break in small ways.
const GOOD: &str = r#"name: t
datasets:
  digits: { kind: synthetic-digits, train_size: 200, test_size: 50 }
models:
  m: { kind: seed-cnn }
stages:
  - id: train
    uses: train
    with: { model: m, dataset: digits, epochs: 1 }
  - id: fp16
    uses: quantize
    needs: train
    with: { method: fp16 }
  - id: eval
    uses: evaluate
    needs: [train, fp16]
"#;

/// `slimbench validate` on `text`: exit code 2 and the stderr, for a snapshot.
fn invalid(text: &str) -> String {
    let env = Env::new();
    env.write("bad.yaml", text);
    let out = env.run(&["validate", "bad.yaml"]);
    assert_code(&out, 2);
    assert!(!env.path().join("results").exists());
    stderr(&out)
}

#[test]
fn the_good_pipeline_validates() {
    let env = Env::new();
    env.write("good.yaml", GOOD);
    let out = env.run(&["validate", "good.yaml"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("ok: good.yaml (pipeline `t`, 3 stages)"));
}

#[test]
fn unknown_key_in_stage_parameters() {
    insta::assert_snapshot!(invalid(&GOOD.replace("epochs: 1", "epoch: 1")));
}

#[test]
fn unknown_top_level_key() {
    insta::assert_snapshot!(invalid(&GOOD.replace("models:", "modles:")));
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(invalid(&GOOD.replace("epochs: 1", "epochs: two")));
}

#[test]
fn unknown_stage_kind() {
    insta::assert_snapshot!(invalid(&GOOD.replace("uses: quantize", "uses: quantise")));
}

#[test]
fn unknown_need() {
    insta::assert_snapshot!(invalid(&GOOD.replace("needs: [train, fp16]", "needs: [train, fp61]")));
}

#[test]
fn cycle() {
    let text = GOOD.replace("    uses: train\n", "    uses: train\n    needs: eval\n");
    insta::assert_snapshot!(invalid(&text));
}

#[test]
fn duplicate_ids() {
    insta::assert_snapshot!(invalid(&GOOD.replace("id: fp16", "id: train")));
}

#[test]
fn unknown_model_reference() {
    insta::assert_snapshot!(invalid(&GOOD.replace("model: m,", "model: mm,")));
}

#[test]
fn unknown_model_parameter() {
    insta::assert_snapshot!(invalid(&GOOD.replace("{ kind: seed-cnn }", "{ kind: mlp, hiden: [64] }")));
}

#[test]
fn yaml_syntax_error() {
    insta::assert_snapshot!(invalid(&GOOD.replace("with: { method: fp16 }", "with: { method: fp16")));
}

#[test]
fn matrix_value_out_of_range() {
    let text = format!(
        "{GOOD}  - id: prune\n    uses: prune\n    needs: train\n    matrix: {{ sparsity: [0.5, 1.5] }}\n"
    );
    insta::assert_snapshot!(invalid(&text));
}

#[test]
fn data_parallel_parameters() {
    // replicas without the strategy, and a number of replicas out of range.
    let text = GOOD.replace("epochs: 1 }", "epochs: 1, replicas: 2 }");
    insta::assert_snapshot!("replicas_without_data_parallel", invalid(&text));
    let text = GOOD.replace("epochs: 1 }", "epochs: 1, strategy: data-parallel, replicas: 0 }");
    insta::assert_snapshot!("replicas_out_of_range", invalid(&text));
}

#[test]
fn model_parallel_and_mixed_precision_parameters() {
    let text = GOOD.replace("epochs: 1 }", "epochs: 1, strategy: model-parallel, pipeline_stages: 1 }");
    insta::assert_snapshot!("pipeline_stages_out_of_range", invalid(&text));
    let text = GOOD.replace("epochs: 1 }", "epochs: 1, micro_batches: 4 }");
    insta::assert_snapshot!("micro_batches_without_model_parallel", invalid(&text));
    let text = GOOD
        .replace("epochs: 1 }", "epochs: 1, strategy: model-parallel, batch_size: 8, micro_batches: 16 }");
    insta::assert_snapshot!("micro_batches_above_batch_size", invalid(&text));
    let text = GOOD.replace("epochs: 1 }", "epochs: 1, amp: fp8 }");
    insta::assert_snapshot!("amp_unknown", invalid(&text));
    let text = GOOD.replace("epochs: 1 }", "epochs: 1, workers: many }");
    insta::assert_snapshot!("workers_word", invalid(&text));
    let text = GOOD.replace("epochs: 1 }", "epochs: 1, device: tpu }");
    insta::assert_snapshot!("stage_device_unknown", invalid(&text));
}

#[test]
fn evaluate_backends() {
    let with = |list: &str| {
        GOOD.replace(
            "needs: [train, fp16]\n",
            &format!("needs: [train, fp16]\n    with: {{ backends: {list} }}\n"),
        )
    };
    insta::assert_snapshot!("backend_unknown", invalid(&with("[libtorch, openvino]")));
    insta::assert_snapshot!("backends_without_libtorch_and_repeated", invalid(&with("[tract, tract]")));
}

#[test]
fn absurd_resource_counts_are_refused_at_validate_and_before_run_writes_anything() {
    // Used to start 100,000 libtorch threads (over a minute before anything happened).
    let threads =
        format!("name: t\ndefaults: {{ seed: 1, threads: 100000 }}\n{}", &GOOD["name: t\n".len()..]);
    insta::assert_snapshot!("threads_out_of_range", invalid(&threads));
    let env = Env::new();
    env.write("p.yaml", &threads);
    let t = std::time::Instant::now();
    let err = run_invalid(&env, "p.yaml", &[]);
    assert!(err.contains("`threads` in `defaults` must be at most 1024"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(60), "{:?}", t.elapsed());
    // The shorthand flag is an override, named as such.
    env.write("good.yaml", GOOD);
    let err = run_invalid(&env, "good.yaml", &["--threads", "5000"]);
    assert!(err.contains("(from --set defaults.threads=5000)"), "{err}");
    // Processes of `launch` likewise, before any is started.
    let out = env.run(&["launch", "--nproc", "100000", "good.yaml"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--nproc must be between 1 and 256, not 100000"), "{}", stderr(&out));
    assert!(!env.path().join("results").exists());

    let text = GOOD
        .replace("epochs: 1 }", "epochs: 1, batch_size: 1000000, workers: 4096 }")
        .replace(
            "    needs: [train, fp16]\n",
            "    needs: [train, fp16]\n    with: { latency: { batch_sizes: [1, 100000], repeats: 5000, iters: 2000000 } }\n",
        );
    insta::assert_snapshot!("resource_counts_out_of_range", invalid(&text));
}

#[test]
fn threads_above_the_cores_are_clamped_with_a_warning() {
    let env = Env::new();
    env.write("p.yaml", &GOOD.replace("name: t\n", "name: t\ndefaults: { threads: 1024 }\n"));
    let out = env.run(&["validate", "p.yaml"]);
    assert_code(&out, 0);
    let cores = std::thread::available_parallelism().unwrap().get();
    if cores < 1024 {
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "defaults.threads is 1024, more than the {cores} logical cores here; using {cores}"
            )),
            "{err}"
        );
    }
}

#[test]
fn several_problems_are_reported_together() {
    let text =
        GOOD.replace("epochs: 1", "epochs: 1, batch_size: 0").replace("uses: quantize", "uses: quantise");
    insta::assert_snapshot!(invalid(&text));
}

#[test]
fn pipelines_with_gates_validate() {
    let env = Env::new();
    let gates = "gates:\n  accuracy: { max_drop: 0.005 }\n  latency_p50_us: { max_increase: 25% }\n";
    env.write("good.yaml", &format!("{GOOD}{gates}"));
    let out = env.run(&["validate", "good.yaml"]);
    assert_code(&out, 0);
}

#[test]
fn unknown_gate_metric() {
    insta::assert_snapshot!(invalid(&format!("{GOOD}gates:\n  acuracy: {{ max_drop: 0.005 }}\n")));
}

#[test]
fn bad_gate_thresholds() {
    let gates = "gates:\n  latency_p50_us: { max_increase: ten% }\n  file_size_bytes: { max_increase: -1 }\n  params: {}\n";
    insta::assert_snapshot!(invalid(&format!("{GOOD}{gates}")));
}

#[test]
fn bad_override() {
    let env = Env::new();
    env.write("p.yaml", GOOD);
    let out = env.run(&["validate", "p.yaml", "--set", "stages.train.with.epochs=many"]);
    assert_code(&out, 2);
    insta::assert_snapshot!(stderr(&out));
    let out = env.run(&["validate", "p.yaml", "--set", "stages.trian.with.epochs=2"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("has no entry `trian` (ids: train, fp16, eval)"), "{}", stderr(&out));
}

#[test]
fn missing_pipeline_file() {
    let env = Env::new();
    let out = env.run(&["validate", "nope.yaml"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("cannot read the pipeline file"));
}

/// `slimbench run` on invalid input: exit 2 and no results directory at all.
fn run_invalid(env: &Env, file: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", file];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    assert_code(&out, 2);
    assert!(!env.path().join("results").exists(), "a results directory was left behind");
    stderr(&out)
}

#[test]
fn missing_dataset() {
    let env = Env::new();
    let text = GOOD.replace("{ kind: synthetic-digits, train_size: 200, test_size: 50 }", "{ kind: mnist }");
    env.write("p.yaml", &text);
    let err = run_invalid(&env, "p.yaml", &["--data-dir", "no-such-dir"]);
    assert!(err.contains("mnist"), "{err}");
    assert!(err.contains("hint"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// IDX files with a header promising more images than the file holds.
fn write_truncated_mnist(env: &Env) {
    use std::io::Write;
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let images = |n: u32, present: usize| {
        let mut v = vec![0, 0, 8, 3];
        v.extend(n.to_be_bytes());
        v.extend(28u32.to_be_bytes());
        v.extend(28u32.to_be_bytes());
        v.extend(vec![7u8; present * 784]);
        v
    };
    let labels = |n: u32| {
        let mut v = vec![0, 0, 8, 1];
        v.extend(n.to_be_bytes());
        v.extend((0..n).map(|i| (i % 10) as u8));
        v
    };
    let dir = env.path().join("data/mnist");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz(&images(100, 60))).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gz(&labels(100))).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz(&images(20, 20))).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gz(&labels(20))).unwrap();
}

#[test]
fn truncated_idx_file() {
    let env = Env::new();
    write_truncated_mnist(&env);
    let text = GOOD.replace("{ kind: synthetic-digits, train_size: 200, test_size: 50 }", "{ kind: mnist }");
    env.write("p.yaml", &text);
    let err = run_invalid(&env, "p.yaml", &["--data-dir", "data"]);
    assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");
    assert!(err.to_lowercase().contains("truncated") || err.contains("expected"), "{err}");
}

#[test]
fn unavailable_cuda_device() {
    let env = Env::new();
    env.write("p.yaml", GOOD);
    if slimbench_stages_probe_cuda() {
        return;
    }
    let err = run_invalid(&env, "p.yaml", &["--device", "cuda:0"]);
    assert!(err.contains("no CUDA device"), "{err}");
}

/// Whether this machine has CUDA (then the test above does not apply).
fn slimbench_stages_probe_cuda() -> bool {
    std::process::Command::new("nvidia-smi").output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn unknown_force_stage() {
    let env = Env::new();
    env.write("p.yaml", GOOD);
    let err = run_invalid(&env, "p.yaml", &["--force-stage", "nope"]);
    assert!(err.contains("--force-stage nope: no such stage"), "{err}");
}
