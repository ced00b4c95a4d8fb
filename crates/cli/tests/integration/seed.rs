//! The seed experiment on the real MNIST (skipped, with a note, when the data is absent;
//! failed instead under `SLIMBENCH_REQUIRE_DATA=1`).

use crate::util::*;

#[test]
fn mnist_seed_reproduces_the_seed_experiment() {
    let Some(data) = shared_data("mnist") else { return };
    let env = Env::new();
    let p = pipelines().join("mnist-seed.yaml");
    // A short timing plan and server search keep the test short (the pipeline times each
    // figure for 10 s, as a real run should); accuracy uses all 10,000 images.
    let out = env.run(&[
        "run",
        p.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--set",
        "stages.eval.with.latency.iters=2000",
        "--set",
        "stages.eval.with.latency.min_duration_s=0.2",
        "--set",
        "stages.eval.with.server.duration_s=0.2",
        "--set",
        "stages.eval.with.server.steps=3",
    ]);
    assert_code(&out, 0);
    let run = env.runs("mnist-seed").pop().unwrap();
    let rows = metrics(&run);
    let fp32 = row(&rows, "train");
    let fp16 = row(&rows, "fp16");
    let p90 = row(&rows, "prune[sparsity=0.9]");
    assert_eq!(fp32.test_images, 10_000);
    assert!(fp32.accuracy >= 0.96, "fp32 accuracy {}", fp32.accuracy);
    assert!(
        (fp16.accuracy - fp32.accuracy).abs() <= 0.001,
        "fp16 {} vs fp32 {}",
        fp16.accuracy,
        fp32.accuracy
    );
    assert!(fp16.file_size_bytes as f64 <= 0.52 * fp32.file_size_bytes as f64);
    assert!(p90.accuracy >= 0.96, "90% pruned accuracy {}", p90.accuracy);
    assert!(p90.file_size_bytes as f64 <= 0.2 * fp32.file_size_bytes as f64);
    assert!(row(&rows, "prune[sparsity=0.94]").sparsity > 0.935);
}
