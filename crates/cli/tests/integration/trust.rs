//! Figures a reviewer can trust: memory per variant measured in a child process, the
//! server scenario, repeated timing plans. (Validity under load and run-to-run
//! agreement need a quiet machine: they are in `tests/quiet.rs`, a binary of their own.)

use crate::util::*;

const MEMORY: &str = r#"
name: memory
defaults: { seed: 1, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 64, test_size: 64 }
models:
  big: { kind: mlp, hidden: [2048, 2048] }
  seed: { kind: seed-cnn }
stages:
  - { id: mlp, uses: train, with: { model: big, dataset: digits, epochs: 0 } }
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 0 } }
  - { id: mlp-int8, uses: quantize, needs: mlp, with: { method: int8-dynamic } }
  - id: eval
    uses: evaluate
    needs: [mlp, cnn, mlp-int8]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 2, iters: 10, batch_sizes: [1, 32], repeats: 2 } }
"#;

#[test]
fn memory_is_what_the_model_costs_not_the_process() {
    let env = Env::new();
    env.write("memory.yaml", MEMORY);
    let out = env.run(&["run", "memory.yaml"]);
    assert_code(&out, 0);
    let rows = metrics(&env.runs("memory")[0]);
    let (mlp, int8, cnn) = (row(&rows, "mlp"), row(&rows, "mlp-int8"), row(&rows, "cnn"));
    for r in [mlp, int8, cnn] {
        assert!(r.mem_method.starts_with("child process"), "{}: {}", r.variant, r.mem_method);
        assert!(r.mem_baseline_bytes > 50 << 20, "{}: the empty process holds libtorch", r.variant);
        assert!(r.mem_peak_b1_bytes >= r.mem_load_bytes && r.mem_peak_large_bytes >= r.mem_load_bytes);
    }
    // 5.8M parameters: 23 MB of fp32 weights, held as such.
    assert_eq!(mlp.params, 5_824_522);
    assert_eq!(mlp.weights_bytes, mlp.params * 4);
    let held = mlp.mem_load_bytes as f64 / mlp.weights_bytes as f64;
    assert!((0.9..1.3).contains(&held), "fp32 MLP holds {held:.2}x its weights");
    // int8: a quarter of the weights, and of what the process holds for them (the fp32
    // source of each packed layer is released).
    let quarter = int8.weights_bytes as f64 / mlp.weights_bytes as f64;
    assert!((0.24..0.3).contains(&quarter), "int8 weights are {quarter:.3} of fp32");
    let held = int8.mem_load_bytes as f64 / mlp.mem_load_bytes as f64;
    assert!((0.2..0.35).contains(&held), "int8 holds {held:.3} of fp32");
    // The seed CNN: tens of KB, not the process's hundreds of MB.
    assert_eq!(cnn.weights_bytes, cnn.params * 4);
    assert!(cnn.weights_bytes < 100_000 && cnn.mem_load_bytes < 200_000, "{cnn:?}");
}

const SERVER: &str = r#"
name: server
defaults: { seed: 1, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 64, test_size: 64 }
models:
  seed: { kind: seed-cnn }
stages:
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 0 } }
  - id: eval
    uses: evaluate
    needs: [cnn]
    with:
      latency: { min_duration_s: 0, rounds: 2, warmup: 5, iters: 50, batch_sizes: [1, 16], repeats: 3 }
      server: { target_p99_ms: 20, max_batch: 16, duration_s: 0.2, steps: 4 }
      memory: false
"#;

#[test]
fn the_server_scenario_finds_a_rate_within_the_target_and_repeats_pool() {
    let env = Env::new();
    env.write("server.yaml", SERVER);
    let out = env.run(&["run", "server.yaml", "--repeat", "2"]);
    assert_code(&out, 0);
    let run = &env.runs("server")[0];
    let rows = slimbench_metrics::read_server_rows(run).unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r.variant == "cnn" && r.queries > 0 && r.target_p99_ms == 20.0));
    let best: Vec<_> = rows.iter().filter(|r| r.best == "yes").collect();
    assert_eq!(best.len(), 1, "{rows:?}");
    assert!(best[0].meets == "yes" && best[0].p99_ms <= 20.0 && best[0].rate_qps > 0.0);
    assert!(best[0].queries >= 300, "the best rate's p99 rests on at least 300 queries: {:?}", best[0]);
    // No rate that met the target is above the best one.
    assert!(rows.iter().filter(|r| r.meets == "yes").all(|r| r.rate_qps <= best[0].rate_qps));

    // --repeat 2: two plans pooled, each kept.
    let m = &metrics(run)[0];
    assert_eq!((m.repeats, m.rounds), (2, 4));
    assert!(m.repeat_spread_pct.is_finite() && m.repeat_spread_pct >= 0.0);
    let reps = slimbench_metrics::read_repeat_rows(run).unwrap();
    assert_eq!(reps.len(), 4, "2 repetitions x 2 batch sizes");
    assert_eq!(m.mem_method, "", "memory: false measures none");
    let timing = slimbench_metrics::read_timing_rounds(run).unwrap();
    assert!(timing.len() >= 4 && timing.iter().all(|t| t.stage == "eval"));
}
