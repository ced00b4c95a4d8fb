//! Pruning methods on tiny data: the polynomial schedule, dead-path removal and 2:4
//! semi-structured sparsity, each checked by what it claims on disk and in the table
//! (sparsity reached, schedule recorded, layers physically smaller, file following
//! sparsity), plus their validation errors.

use std::path::Path;

use crate::util::*;

// 1500 images at batch 32: 47 steps per epoch.
const PRUNES: &str = r#"
name: prunes
defaults: { seed: 3, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 1500, test_size: 300 }
models:
  mlp: { kind: mlp, hidden: [128, 64] }
  seed: { kind: seed-cnn }
stages:
  - { id: mlp, uses: train, with: { model: mlp, dataset: digits, epochs: 2, batch_size: 32 } }
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 2, batch_size: 32 } }
  - id: scheduled
    uses: prune
    needs: mlp
    with: { sparsity: 0.97, finetune_epochs: 2, schedule: { end_step: 60, frequency: 20 } }
  - { id: one-shot, uses: prune, needs: mlp, with: { sparsity: 0.97, finetune_epochs: 2 } }
  - { id: masked, uses: prune, needs: mlp, with: { sparsity: 0.97, remove_dead: false } }
  - { id: removed, uses: prune, needs: mlp, with: { sparsity: 0.97 } }
  - { id: cnn-24, uses: prune, needs: cnn, with: { method: semi-structured, finetune_epochs: 1 } }
  - id: eval
    uses: evaluate
    needs: [mlp, cnn, scheduled, one-shot, masked, removed, cnn-24]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 2, iters: 20, batch_sizes: [1], repeats: 1 } }
"#;

/// Tensor shapes of a saved model, by parameter name (sparse-encoded tensors under
/// their logical shape), from the safetensors header.
fn shapes(file: &Path) -> serde_json::Value {
    let bytes = std::fs::read(file).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut out = serde_json::Map::new();
    if let Some(sparse) = header["__metadata__"]["slimbench.sparse"].as_str() {
        out = serde_json::from_str(sparse).unwrap();
    }
    for (name, t) in header.as_object().unwrap() {
        // Sparse tensors are stored as `<name>.__mask` and `<name>.__values`.
        if name != "__metadata__" && !name.contains(".__") {
            out.entry(name.clone()).or_insert_with(|| t["shape"].clone());
        }
    }
    serde_json::Value::Object(out)
}

#[test]
fn schedule_dead_path_removal_and_2_4_do_what_they_claim() {
    let env = Env::new();
    env.write("prunes.yaml", PRUNES);
    let out = env.run(&["run", "prunes.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("prunes")[0];
    let rows = metrics(run);
    let notes = run_json(run)["notes"].to_string();
    let dense = row(&rows, "mlp");
    assert_eq!(dense.params, 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);

    // The masked model: exactly the sparsity asked for, full size, a file that follows.
    let masked = row(&rows, "masked");
    assert_eq!(masked.params, dense.params);
    assert!((masked.sparsity - 0.97).abs() < 0.001, "{}", masked.sparsity);
    assert!((masked.file_size_bytes as f64) < 0.12 * dense.file_size_bytes as f64);

    // Dead paths removed: the same function (same accuracy, same non-zeros at most),
    // physically smaller layers in the saved file.
    let removed = row(&rows, "removed");
    assert_eq!(removed.accuracy, masked.accuracy, "removal must not change the outputs");
    assert!(removed.nonzero_params <= masked.nonzero_params);
    assert!(removed.params < masked.params, "{} vs {}", removed.params, masked.params);
    let file = shapes(&run.join("artifacts/removed/model.safetensors"));
    let fc0 = file["fc0.weight"].as_array().unwrap();
    let fc1 = file["fc1.weight"].as_array().unwrap();
    assert!(fc0[0].as_u64().unwrap() < 128 || fc1[0].as_u64().unwrap() < 64, "{file}");
    assert_eq!(fc1[1], fc0[0], "fc1 reads exactly the neurons fc0 kept: {file}");
    assert_eq!(file["fc2.weight"].as_array().unwrap()[1], fc1[0]);
    assert!(removed.file_size_bytes < masked.file_size_bytes);
    assert!(notes.contains("removed: dead-path removal (fc0 128 -> "), "{notes}");

    // The schedule: recorded step by step, ending exactly at the target.
    let scheduled = row(&rows, "scheduled");
    assert!(
        notes.contains("scheduled: sparsity by fine-tuning step 0:0.0% 20:") && notes.contains(" 60:97.0%"),
        "{notes}"
    );
    assert!(
        notes.contains("polynomial schedule (power 3) from 0.0% at step 0 to 97.0% at step 60"),
        "{notes}"
    );
    // Pruning gradually while training recovers more than pruning at once, with the same
    // fine-tuning (0.43 against 0.26 when written: global pruning empties fc0 at once).
    let one_shot = row(&rows, "one-shot");
    assert!(scheduled.accuracy > one_shot.accuracy + 0.05, "{} vs {}", scheduled.accuracy, one_shot.accuracy);

    // 2:4: half of every full group of four; the seed conv's rows of 9 keep 5.
    let cnn = row(&rows, "cnn");
    let semi = row(&rows, "cnn-24");
    assert_eq!(semi.technique, "prune-2:4");
    assert_eq!(semi.params, cnn.params);
    assert_eq!(semi.nonzero_params, 12 * 5 + 12 + 10 * 1014 + 10);
    assert!(semi.accuracy > cnn.accuracy - 0.05, "{} vs {}", semi.accuracy, cnn.accuracy);
    assert!((semi.file_size_bytes as f64) < 0.6 * cnn.file_size_bytes as f64);
    if !std::process::Command::new("nvidia-smi").output().is_ok_and(|o| o.status.success()) {
        assert!(
            notes.contains("2:4 kernels need a CUDA GPU with cuSPARSELt; evaluated as dense with zeros"),
            "{notes}"
        );
    }
}

/// `slimbench validate` on a prune stage with `with`: exit code 2 and the stderr.
fn invalid(with: &str) -> String {
    let env = Env::new();
    env.write(
        "bad.yaml",
        &format!(
            "name: t\ndatasets:\n  d: {{ kind: synthetic-digits, train_size: 200, test_size: 50 }}\nmodels:\n  \
             m: {{ kind: mlp, hidden: [8] }}\nstages:\n  - {{ id: train, uses: train, with: {{ model: m, dataset: \
             d }} }}\n  - id: prune\n    uses: prune\n    needs: train\n    with: {with}\n"
        ),
    );
    let out = env.run(&["validate", "bad.yaml"]);
    assert_code(&out, 2);
    stderr(&out)
}

#[test]
fn schedule_without_fine_tuning_and_bad_values() {
    insta::assert_snapshot!(invalid(
        "{ sparsity: 0.9, schedule: { begin_step: 10, end_step: 5, power: 0, initial_sparsity: 0.95 } }"
    ));
}

#[test]
fn semi_structured_with_another_sparsity() {
    insta::assert_snapshot!(invalid("{ method: semi-structured, sparsity: 0.75 }"));
}

#[test]
fn schedule_past_the_end_of_fine_tuning() {
    // 200 images at batch 32: 7 steps per epoch.
    let env = Env::new();
    env.write(
        "late.yaml",
        "name: late\ndefaults: { seed: 1, device: cpu, threads: 1 }\ndatasets:\n  d: { kind: synthetic-digits, \
         train_size: 200, test_size: 50 }\nmodels:\n  m: { kind: mlp, hidden: [8] }\nstages:\n  - { id: train, \
         uses: train, with: { model: m, dataset: d, batch_size: 32 } }\n  - { id: prune, uses: prune, needs: train, \
         with: { sparsity: 0.9, finetune_epochs: 2, schedule: { end_step: 15 } } }\n",
    );
    let out = env.run(&["run", "late.yaml"]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(
            "stage `prune`: with.schedule.end_step = 15 is past the end of fine-tuning (2 epoch(s) x 7 batches = \
             14 steps); lower schedule.end_step or raise finetune_epochs"
        ),
        "{err}"
    );
}
