//! Tests that need the machine to themselves: whether a timing is valid depends on what
//! else runs, so they live in their own test binary (cargo runs test binaries one at a
//! time) and run one after another in one test function.

#[path = "integration/util.rs"]
#[allow(dead_code)]
mod util;

use std::process::{Child, Command};

use util::*;

const PIPELINE: &str = r#"
name: quiet
defaults: { seed: 1, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 200, test_size: 100 }
models:
  seed: { kind: seed-cnn }
stages:
  - { id: cnn, uses: train, with: { model: seed, dataset: digits, epochs: 1, batch_size: 50 } }
  - { id: fp16, uses: quantize, needs: cnn, with: { method: fp16 } }
  - id: eval
    uses: evaluate
    needs: [cnn, fp16]
    with:
      latency: { min_duration_s: 0.3, rounds: 10, retries: RETRIES, warmup: 20, iters: 300, batch_sizes: [1, 32], repeats: 5 }
      memory: false
"#;

/// One busy loop per CPU, killed on drop.
struct Spinners(Vec<Child>);

impl Spinners {
    fn start() -> Spinners {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        Spinners(
            (0..n)
                .map(|_| Command::new("sh").args(["-c", "while :; do :; done"]).spawn().expect("sh"))
                .collect(),
        )
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run(env: &Env, retries: usize) -> std::path::PathBuf {
    let name = format!("quiet-{}.yaml", env.runs("quiet").len());
    env.write(&name, &PIPELINE.replace("RETRIES", &retries.to_string()));
    let out = env.run(&["run", &name, "--force"]);
    assert_code(&out, 0);
    env.runs("quiet").last().unwrap().clone()
}

/// Each variant's batch-1 median per round, for a failure message.
fn round_medians(dir: &std::path::Path) -> String {
    let samples = slimbench_metrics::read_latency_samples(dir).expect("latency samples");
    let mut by: std::collections::BTreeMap<(String, u64), Vec<f64>> = Default::default();
    for s in samples.into_iter().filter(|s| s.batch_size == 1) {
        by.entry((s.variant, s.round)).or_default().push(s.micros);
    }
    by.into_iter()
        .map(|((v, r), us)| format!("{v}#{r} {:.1}", slimbench_core::records::percentile(&us, 50.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn timings_are_valid_when_quiet_invalid_when_loaded_and_agree_run_to_run() {
    let env = Env::new();
    // Quiet: valid, twice, with the same accuracies and sizes.
    let a_dir = run(&env, 3);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let b_dir = run(&env, 3);
    let (a, b) = (metrics(&a_dir), metrics(&b_dir));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.validity, "valid", "{}: {}", x.variant, x.invalid_reason);
        assert_eq!(y.validity, "valid", "{}: {}", y.variant, y.invalid_reason);
        assert_eq!((x.accuracy, x.file_size_bytes), (y.accuracy, y.file_size_bytes), "{}", x.variant);
        // Absolute speed is only of the same order from one process to the next: on a
        // shared VM a neighbour on the sibling hyperthread slows every instruction
        // without showing in any counter a guest can read (CI measured this seed CNN at
        // 84 µs, then 60 µs a second later, both runs valid). Hence the side-by-side
        // ratios below, which both runs must agree on.
        let r = x.latency_p50_us / y.latency_p50_us;
        assert!(
            (0.5..2.0).contains(&r),
            "{}: p50 {} µs then {} µs",
            x.variant,
            x.latency_p50_us,
            y.latency_p50_us
        );
    }
    // What the interleaved rounds are for: fp16 against its baseline, timed side by side,
    // agrees run to run: the speedup intervals (which cover the rounds' spread and the
    // noise floor) overlap.
    let speedup = |dir: &std::path::Path| {
        let rows = slimbench_metrics::read_speedup_rows(dir).expect("speedup table");
        let r = rows
            .into_iter()
            .find(|r| r.variant == "fp16" && r.batch_size == 1 && r.form != "baseline")
            .expect("fp16 speedup at batch 1");
        (r.speedup_lo, r.speedup, r.speedup_hi)
    };
    let ((alo, a50, ahi), (blo, b50, bhi)) = (speedup(&a_dir), speedup(&b_dir));
    assert!(
        alo <= bhi && blo <= ahi,
        "fp16 speedup {a50} [{alo}, {ahi}] then {b50} [{blo}, {bhi}]: the intervals do not overlap\n\
         batch-1 medians per round (µs), first run: {}\nsecond run: {}",
        round_medians(&a_dir),
        round_medians(&b_dir)
    );
    // fp16 upcast is the same arithmetic as fp32: never "faster".
    assert_ne!(row(&a, "fp16").faster, "yes");
    assert_ne!(row(&b, "fp16").faster, "yes");

    // Loaded: every CPU busy, no retries: invalid, with the reason.
    let loaded = {
        let _spin = Spinners::start();
        std::thread::sleep(std::time::Duration::from_millis(300));
        metrics(&run(&env, 0))
    };
    for r in &loaded {
        assert_eq!(r.validity, "invalid", "{} was valid on a loaded machine", r.variant);
        assert!(
            r.invalid_reason.contains("other processes used") || r.invalid_reason.contains("preempted"),
            "{}: {}",
            r.variant,
            r.invalid_reason
        );
    }
}
