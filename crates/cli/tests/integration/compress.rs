//! Compression methods on tiny data: each test checks the effect the method claims
//! (smaller file, kernels that really ran, accuracy kept), not only that it ran.

use crate::util::*;

const INT8: &str = r#"
name: int8
defaults: { seed: 3, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 1500, test_size: 300 }
models:
  mlp: { kind: mlp, hidden: [256] }
  seed: { kind: seed-cnn }
stages:
  - { id: mlp, uses: train, with: { model: mlp, dataset: digits, epochs: 2, batch_size: 32 } }
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 2, batch_size: 32 } }
  - { id: mlp-int8, uses: quantize, needs: mlp, with: { method: int8-dynamic } }
  - { id: mlp-fp16, uses: quantize, needs: mlp, with: { method: fp16-dynamic } }
  - { id: cnn-int8, uses: quantize, needs: cnn, with: { method: int8-dynamic } }
  - id: eval
    uses: evaluate
    needs: [mlp, cnn, mlp-int8, mlp-fp16, cnn-int8]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 5, iters: 50, batch_sizes: [1, 64], repeats: 3 } }
"#;

#[test]
fn int8_and_fp16_dynamic_run_on_fbgemm_and_shrink_the_file() {
    let env = Env::new();
    env.write("int8.yaml", INT8);
    let out = env.run(&["run", "int8.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("int8")[0];
    let rows = metrics(run);

    let (fp32, int8, fp16) = (row(&rows, "mlp"), row(&rows, "mlp-int8"), row(&rows, "mlp-fp16"));
    assert_eq!(int8.precision, "int8");
    assert_eq!(int8.compute_precision, "int8 (fbgemm, dynamic)");
    assert_eq!(fp16.compute_precision, "fp16 weights (fbgemm)");
    // int8 weights take a byte instead of four (biases and scales stay fp32).
    let ratio = int8.file_size_bytes as f64 / fp32.file_size_bytes as f64;
    assert!(ratio < 0.27, "int8 file is {ratio:.3} of fp32");
    assert!(fp16.file_size_bytes * 2 < fp32.file_size_bytes + 4096);
    // Real int8 arithmetic: close to fp32, but not bit-identical.
    assert!((int8.accuracy - fp32.accuracy).abs() <= 0.02, "{} vs {}", int8.accuracy, fp32.accuracy);
    assert!((fp16.accuracy - fp32.accuracy).abs() <= 0.01);
    assert!(int8.notes.contains("fbgemm"), "{}", int8.notes);

    // The seed CNN: its dense layer goes int8, its convolution stays fp32 and is named.
    let (cnn, cnn8) = (row(&rows, "cnn"), row(&rows, "cnn-int8"));
    assert!((cnn8.file_size_bytes as f64) < 0.28 * cnn.file_size_bytes as f64);
    assert!((cnn8.accuracy - cnn.accuracy).abs() <= 0.02);
    let notes = run_json(run)["notes"].to_string();
    assert!(
        notes.contains(
            "cnn-int8: linear layers on fbgemm's dynamic int8 kernel; 1 convolution(s) kept in fp32"
        ),
        "{notes}"
    );
}

#[test]
fn fbgemm_methods_are_left_out_of_a_cuda_evaluation_clearly() {
    // Only meaningful where CUDA exists: the fbgemm variants are not evaluated, with a
    // note, and the rest is. Elsewhere `device: cuda` fails before anything runs.
    let env = Env::new();
    env.write("int8.yaml", INT8);
    let out = env.run(&["run", "int8.yaml", "--device", "cuda"]);
    if std::process::Command::new("nvidia-smi").output().is_ok_and(|o| o.status.success()) {
        assert_code(&out, 0);
        let notes = run_json(&env.runs("int8")[0])["notes"].to_string();
        assert!(
            notes.contains("mlp-int8: not evaluated: it runs on fbgemm's dynamic int8 kernel, a CPU library"),
            "{notes}"
        );
    } else {
        assert_code(&out, 2);
        assert!(stderr(&out).contains("CUDA"), "{}", stderr(&out));
    }
}

#[test]
fn structured_pruning_rebuilds_a_smaller_dense_model() {
    let env = Env::new();
    env.write(
        "structured.yaml",
        r#"
name: structured
defaults: { seed: 3, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 1500, test_size: 300 }
models:
  seed: { kind: seed-cnn }
  mlp: { kind: mlp, hidden: [64, 32] }
stages:
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 2, batch_size: 32 } }
  - { id: mlp, uses: train, with: { model: mlp, dataset: digits, epochs: 2, batch_size: 32 } }
  - { id: cnn-half, uses: prune, needs: cnn, with: { method: structured, sparsity: 0.5, finetune_epochs: 1 } }
  - { id: mlp-quarter, uses: prune, needs: mlp, with: { method: structured, norm: l2, sparsity: 0.75 } }
  - id: eval
    uses: evaluate
    needs: [cnn, mlp, cnn-half, mlp-quarter]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 5, iters: 50, batch_sizes: [1, 64], repeats: 3 } }
"#,
    );
    let out = env.run(&["run", "structured.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("structured")[0];
    let rows = metrics(run);
    let (cnn, half) = (row(&rows, "cnn"), row(&rows, "cnn-half"));
    assert_eq!(half.technique, "prune-structured");
    // 12 -> 6 filters: conv 6*9+6, dense 6*169*10+10 parameters, all of them non-zero.
    assert_eq!((cnn.params, half.params), (20_410, 10_210));
    assert_eq!(half.nonzero_params, half.params, "a rebuilt model, not a mask");
    assert!((half.file_size_bytes as f64) < 0.55 * cnn.file_size_bytes as f64);
    assert!(half.accuracy > 0.5, "fine-tuned half-width CNN: {}", half.accuracy);
    let mlp4 = row(&rows, "mlp-quarter");
    // 784-64-32-10 -> 784-16-8-10.
    assert_eq!(mlp4.params, 784 * 16 + 16 + 16 * 8 + 8 + 8 * 10 + 10);
    let notes = run_json(run)["notes"].to_string();
    assert!(notes.contains("conv 12 -> 6") && notes.contains("parameters 20410 -> 10210"), "{notes}");
    assert!(notes.contains("fc0 64 -> 16, fc1 32 -> 8"), "{notes}");
}
