//! `low-rank`: SVD factorization on tiny data. The saved model must really hold two
//! thin factors instead of the full weight, fine-tuning must keep it accurate, and the
//! factored layers must also run on fbgemm when quantized afterwards.

use std::path::Path;

use crate::util::*;

const LOWRANK: &str = r#"
name: lowrank
defaults: { seed: 5, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 1500, test_size: 300 }
models:
  mlp: { kind: mlp, hidden: [256, 128] }
stages:
  - { id: train, uses: train, with: { model: mlp, dataset: digits, epochs: 2, batch_size: 32 } }
  - { id: lr8, uses: low-rank, needs: train, with: { rank: 8, finetune_epochs: 1 } }
  - { id: energy, uses: low-rank, needs: train, with: { energy: 0.5, layers: [fc1] } }
  - { id: lr8-int8, uses: quantize, needs: lr8, with: { method: int8-dynamic } }
  - id: eval
    uses: evaluate
    needs: [train, lr8, energy, lr8-int8]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 5, iters: 50, batch_sizes: [1, 64], repeats: 3 } }
"#;

/// Tensor name -> (dtype, shape) from a safetensors header (8-byte length + JSON).
fn tensors(path: &Path) -> Vec<(String, String, Vec<u64>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut out: Vec<_> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let shape = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            (k.clone(), v["dtype"].as_str().unwrap().to_string(), shape)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn low_rank_stores_thin_factors_that_stay_accurate_and_pack_for_int8() {
    let env = Env::new();
    env.write("lowrank.yaml", LOWRANK);
    let out = env.run(&["run", "lowrank.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("lowrank")[0];
    let rows = metrics(run);
    let (base, lr8, energy, int8) =
        (row(&rows, "train"), row(&rows, "lr8"), row(&rows, "energy"), row(&rows, "lr8-int8"));

    // fc0 (784 -> 256) and fc1 (256 -> 128) become rank-8 factors; the classifier stays.
    let t = tensors(&run.join("artifacts/lr8/model.safetensors"));
    let shape = |name: &str| t.iter().find(|(n, ..)| n == name).map(|(_, _, s)| s.clone());
    assert_eq!(shape("fc0.lr_in.weight"), Some(vec![8, 784]), "{t:?}");
    assert_eq!(shape("fc0.lr_out.weight"), Some(vec![256, 8]));
    assert_eq!(shape("fc1.lr_in.weight"), Some(vec![8, 256]));
    assert_eq!(shape("fc0.weight"), None);
    assert_eq!(shape("fc2.weight"), Some(vec![10, 128]));
    let full = 784 * 256 + 256 * 128 + 128 * 10 + 256 + 128 + 10;
    let factored = 8 * (784 + 256) + 8 * (256 + 128) + 128 * 10 + 256 + 128 + 10;
    assert_eq!(base.params, full);
    assert_eq!(lr8.params, factored);
    assert!((lr8.file_size_bytes as f64) < 0.1 * base.file_size_bytes as f64);
    // One fine-tuning epoch keeps it close to the full model on these easy digits.
    assert!(lr8.accuracy >= base.accuracy - 0.1, "{} vs {}", lr8.accuracy, base.accuracy);

    // Energy 0.5 on fc1 only: the rank is chosen from the spectrum, fc0 untouched.
    let t = tensors(&run.join("artifacts/energy/model.safetensors"));
    let r = t.iter().find(|(n, ..)| n == "fc1.lr_in.weight").map(|(_, _, s)| s[0]).unwrap();
    assert!((1..128).contains(&r), "rank {r}");
    assert!(t.iter().any(|(n, ..)| n == "fc0.weight"));
    assert!(energy.params < base.params);

    // Quantized afterwards: both factors of each layer are int8 on disk and run on fbgemm.
    let t = tensors(&run.join("artifacts/lr8-int8/model.safetensors"));
    assert!(t.iter().any(|(n, d, _)| n == "fc0.lr_in.weight.__int8" && d == "I8"), "{t:?}");
    assert_eq!(int8.compute_precision, "int8 (fbgemm, dynamic)");
    assert!(int8.notes.contains("3 linear layer(s)"), "{}", int8.notes);
    assert!((int8.accuracy - lr8.accuracy).abs() <= 0.03);

    let notes = run_json(run)["notes"].to_string();
    assert!(notes.contains("lr8: low-rank factorization: fc0 256x784 -> rank 8"), "{notes}");
    assert!(notes.contains("fc1 128x256 -> rank 8"), "{notes}");
}

#[test]
fn structured_pruning_after_low_rank_is_refused_with_a_reason() {
    let env = Env::new();
    let yaml = LOWRANK.replace(
        "  - { id: lr8-int8, uses: quantize, needs: lr8, with: { method: int8-dynamic } }",
        "  - { id: lr8-int8, uses: prune, needs: lr8, with: { method: structured, sparsity: 0.5 } }",
    );
    env.write("lowrank.yaml", &yaml);
    let out = env.run(&["run", "lowrank.yaml"]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("structured pruning cannot rebuild the low-rank factored layer(s) fc0, fc1"),
        "{}",
        stderr(&out)
    );
}
