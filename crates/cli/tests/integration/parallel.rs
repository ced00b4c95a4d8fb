//! Data-parallel training on PyTorch's Gloo engine: two processes under `launch`, a
//! rank that dies, replicas as threads of one process.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::*;

/// A seed CNN trained alone and data-parallel with the same global batch.
fn pipeline(single_epochs: u32, dp_epochs: u32, dp_extra: &str) -> String {
    format!(
        "name: dp
defaults: {{ seed: 42, device: cpu, threads: 1 }}
datasets:
  digits: {{ kind: synthetic-digits, train_size: 1200, test_size: 300 }}
models:
  seed-cnn: {{ kind: seed-cnn }}
stages:
  - id: single
    uses: train
    with: {{ model: seed-cnn, dataset: digits, epochs: {single_epochs}, batch_size: 32 }}
  - id: dp
    uses: train
    with: {{ model: seed-cnn, dataset: digits, epochs: {dp_epochs}, batch_size: 32, strategy: data-parallel{dp_extra} }}
  - id: eval
    uses: evaluate
    needs: [single, dp]
    with: {{ latency: {{ min_duration_s: 0, rounds: 2, warmup: 2, iters: 10, batch_sizes: [1] }} }}
"
    )
}

fn note(run: &std::path::Path, stage: &str) -> String {
    let info = run_json(run);
    let notes = info["notes"].as_array().unwrap();
    let prefix = format!("{stage}:");
    notes.iter().map(|n| n.as_str().unwrap()).find(|n| n.starts_with(&prefix)).unwrap().to_string()
}

#[test]
fn two_processes_train_like_one_and_only_rank_0_writes() {
    let env = Env::new();
    env.write("dp.yaml", &pipeline(2, 2, ""));
    let out = env.run(&["launch", "--nproc", "2", "dp.yaml"]);
    assert_code(&out, 0);
    // Rank 0 printed the results; rank 1 made no run of its own.
    assert!(stdout(&out).contains("results:"), "{}", stdout(&out));
    let runs = env.runs("dp");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    let info = run_json(run);
    assert_eq!(info["dist"]["world_size"], 2);
    assert_eq!(info["dist"]["rank"], 0);
    assert!(note(run, "dp").contains("data-parallel over 2 processes (Gloo)"), "{}", note(run, "dp"));
    let rows = metrics(run);
    let (single, dp) = (row(&rows, "single").accuracy, row(&rows, "dp").accuracy);
    assert!(dp > 0.5, "data-parallel training learned nothing: {dp}");
    assert!((single - dp).abs() <= 0.03, "single {single} vs data-parallel {dp}");
}

#[test]
fn replicas_as_threads_in_one_process() {
    let env = Env::new();
    env.write("dp.yaml", &pipeline(1, 1, ", replicas: 3"));
    let out = env.run(&["run", "dp.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("dp")[0];
    assert!(note(run, "dp").contains("data-parallel over 3 replicas in this process"), "{}", note(run, "dp"));
    let rows = metrics(run);
    assert!((row(&rows, "single").accuracy - row(&rows, "dp").accuracy).abs() <= 0.05);
}

#[test]
fn a_rank_that_dies_fails_the_other_within_a_minute() {
    let env = Env::new();
    env.write("dp.yaml", &pipeline(1, 500, ""));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spawn = |rank: usize| {
        env.cmd()
            .args(["run", "dp.yaml", "--force"])
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("WORLD_SIZE", "2")
            .env("RANK", rank.to_string())
            .env("SLIMBENCH_DIST_TIMEOUT", "20")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut leader = spawn(0);
    let mut follower = spawn(1);
    // Collect both logs in the background.
    let collect = |child: &mut std::process::Child| {
        let log = Arc::new(Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        log
    };
    let (leader_log, follower_log) = (collect(&mut leader), collect(&mut follower));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !follower_log.lock().unwrap().contains("joining data-parallel stage") {
        assert!(Instant::now() < deadline, "rank 1 never joined:\n{}", follower_log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    follower.kill().unwrap();
    follower.wait().unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = leader.try_wait().unwrap() {
            break s;
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "rank 0 still running 60 s after rank 1 died");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("rank 0 exited {:.1} s after rank 1 was killed", killed.elapsed().as_secs_f64());
    assert_eq!(status.code(), Some(1), "{}", leader_log.lock().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    let log = leader_log.lock().unwrap().clone();
    assert!(log.contains("data-parallel replica 0 of 2"), "{log}");
}

#[test]
fn launch_reports_the_ranks_that_failed() {
    let env = Env::new();
    // A pipeline that does not exist: every rank exits 2, and launch names them.
    let out = env.run(&["launch", "--nproc", "2", "missing.yaml"]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("rank 0 exited with status 2") && err.contains("rank 1 exited with status 2"),
        "{err}"
    );
}

#[test]
fn asynchronous_workers_record_their_staleness() {
    let env = Env::new();
    env.write("dp.yaml", &pipeline(1, 2, ", mode: async, replicas: 3"));
    let out = env.run(&["run", "dp.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("dp")[0];
    let note = note(run, "dp");
    assert!(
        note.contains("asynchronous data-parallel: 3 workers and a parameter server, 76 updates"),
        "{note}"
    );
    let max: u64 = note.rsplit("max ").next().unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(max > 0, "no stale update with 3 workers: {note}");
    assert!(row(&metrics(run), "dp").accuracy > 0.5);
    // Its curves are there beside the synchronous ones, for the convergence chart.
    let curves = slimbench_metrics::read_curve_points(run).unwrap();
    assert!(curves.iter().any(|c| c.variant == "dp" && c.split == "train"));
    // Every update is a row of staleness.parquet, numbered in the order applied.
    let updates = slimbench_metrics::read_staleness_rows(run).unwrap();
    assert_eq!(updates.len(), 76);
    assert_eq!(updates.iter().map(|u| u.update).collect::<Vec<_>>(), (1..=76).collect::<Vec<u64>>());
    assert_eq!(updates.iter().map(|u| u.staleness).max(), Some(max));
    assert!((0..3).all(|w| updates.iter().any(|u| u.worker == w)), "every worker pushed");
    assert!(updates.iter().any(|u| u.epoch == 2));
    let par = slimbench_metrics::read_parallel_rows(run).unwrap();
    let dp = par.iter().find(|r| r.stage == "dp").unwrap();
    assert_eq!((dp.strategy.as_str(), dp.mode.as_str(), dp.replicas), ("data-parallel", "async", 3));
}

#[test]
fn model_parallel_pipeline_trains_like_one_device_and_records_its_bubble() {
    let env = Env::new();
    env.write(
        "mp.yaml",
        &(pipeline(2, 2, "")
            .replace("strategy: data-parallel", "strategy: model-parallel, micro_batches: 4")
            + "  - id: report\n    uses: report\n    needs: eval\n"),
    );
    let out = env.run(&["run", "mp.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("dp")[0];
    let note = note(run, "dp");
    assert!(note.contains("model-parallel: 2 pipeline stages [conv] on "), "{note}");
    assert!(note.contains("-> [fc] on ") && note.contains("x 4 micro-batches, bubble "), "{note}");
    // The same batches and the same arithmetic as the single model (10-step loss
    // equality is the unit test's; here the end of two epochs).
    let rows = metrics(run);
    let (single, mp) = (row(&rows, "single").accuracy, row(&rows, "dp").accuracy);
    assert!(single > 0.5 && (single - mp).abs() <= 0.01, "single {single} vs pipelined {mp}");
    let par = slimbench_metrics::read_parallel_rows(run).unwrap();
    let mp = par.iter().find(|r| r.stage == "dp").unwrap();
    assert_eq!((mp.strategy.as_str(), mp.pipeline_stages, mp.micro_batches), ("model-parallel", 2, 4));
    assert!((mp.ideal_bubble_fraction - 0.2).abs() < 1e-12);
    assert!(mp.bubble_fraction > 0.0 && mp.bubble_fraction < 1.0, "{}", mp.bubble_fraction);
    assert_eq!(mp.images, 2 * 1200);
    assert!(mp.images_per_s > 0.0 && mp.train_time_s > 0.0);
    let single = par.iter().find(|r| r.stage == "single").unwrap();
    assert_eq!((single.strategy.as_str(), single.pipeline_stages), ("single", 1));
    assert!(single.bubble_fraction.is_nan());
    // The machine was sampled during every stage that ran.
    let system = slimbench_metrics::read_system_samples(run).unwrap();
    for stage in ["single", "dp", "eval"] {
        let s: Vec<_> = system.iter().filter(|s| s.stage == stage).collect();
        assert!(!s.is_empty(), "no samples of {stage}");
        assert!(s.iter().all(|s| s.rss_bytes > 0 && s.t_s >= 0.0));
    }
    for chart in ["parallel_throughput", "system"] {
        assert!(run.join(format!("charts/{chart}.png")).is_file(), "{chart}");
    }
}

#[test]
fn a_cuda_stage_on_a_machine_without_one_is_skipped_with_a_note() {
    let env = Env::new();
    // Every stage kind but `report` takes its own `device:`; the CPU ones run.
    let extra = "  - { id: prune-gpu, uses: prune, needs: single, with: { sparsity: 0.5, device: cuda } }
  - { id: prune-cpu, uses: prune, needs: single, with: { sparsity: 0.5, finetune_epochs: 1, device: cpu } }
  - { id: fp16-gpu, uses: quantize, needs: single, with: { method: fp16, device: 'cuda:0' } }
  - { id: distill-gpu, uses: distill, needs: single, with: { student: seed-cnn, device: cuda } }
";
    let yaml = pipeline(1, 1, ", device: cuda, amp: bf16")
        .replace(", strategy: data-parallel", "")
        .replace("needs: [single, dp]", "needs: [single, dp, prune-gpu, prune-cpu, fp16-gpu, distill-gpu]")
        .replace("  - id: eval\n", &format!("{extra}  - id: eval\n"));
    env.write("gpu.yaml", &yaml);
    let out = env.run(&["run", "gpu.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("dp")[0];
    if run_json(run)["cuda_available"] == true {
        eprintln!("skipped: this machine has CUDA");
        return;
    }
    for stage in ["dp", "prune-gpu", "fp16-gpu", "distill-gpu"] {
        let note = note(run, stage);
        assert!(note.starts_with(&format!("{stage}: skipped: device cuda:0 was requested but ")), "{note}");
    }
    // Nothing of them was evaluated; the CPU stages were.
    let rows = metrics(run);
    assert_eq!(rows.iter().map(|r| r.variant.as_str()).collect::<Vec<_>>(), ["single", "prune-cpu"]);
    assert!(rows.iter().all(|r| r.device == "cpu"));
    assert!(!run_json(run)["no_gpu_reason"].as_str().unwrap().is_empty());
}
