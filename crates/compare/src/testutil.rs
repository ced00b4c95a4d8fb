//! Synthetic samples and run directories for the unit tests (no libtorch needed).

use std::path::{Path, PathBuf};

use slimbench_core::artifact::RunInfo;
use slimbench_core::fsutil;
use slimbench_core::records::{LatencySample, MetricRow, Records, percentile};

use crate::RunData;

pub use slimbench_metrics::stats::lognormal;

/// A metric row whose latency columns are those of `samples`.
pub fn row(variant: &str, accuracy: f64, samples: &[f64]) -> MetricRow {
    MetricRow {
        variant: variant.into(),
        stage: "eval".into(),
        technique: "baseline".into(),
        model: "seed-cnn".into(),
        model_kind: "seed-cnn".into(),
        dataset: "digits".into(),
        device: "cpu".into(),
        precision: "fp32".into(),
        compute_precision: "fp32".into(),
        accuracy,
        test_images: 1000,
        latency_p50_us: percentile(samples, 50.0),
        latency_p90_us: percentile(samples, 90.0),
        latency_p99_us: percentile(samples, 99.0),
        latency_mean_us: samples.iter().sum::<f64>() / samples.len().max(1) as f64,
        latency_iters: samples.len() as u64,
        threads: 2,
        throughput_ips: 20_000.0,
        batch_size: 256,
        file_size_bytes: 82_304,
        params: 20_410,
        nonzero_params: 20_410,
        mem_peak_b1_bytes: 200_000_000,
        train_time_s: 3.5,
        ..Default::default()
    }
}

/// A run in memory: one row per `(variant, accuracy, samples)`.
pub fn run(id: &str, variants: &[(&str, f64, Vec<f64>)]) -> RunData {
    RunData {
        dir: PathBuf::from(format!("results/p/{id}")),
        info: info(id, "2025-01-01T00:00:00+00:00"),
        metrics: variants.iter().map(|(v, a, s)| row(v, *a, s)).collect(),
        latency: variants.iter().map(|(v, _, s)| (v.to_string(), s.clone())).collect(),
    }
}

/// `run.json` of a synthetic run.
pub fn info(id: &str, started_at: &str) -> RunInfo {
    RunInfo {
        run_id: id.into(),
        pipeline: "p".into(),
        git_revision: format!("rev-{id}"),
        device: "cpu".into(),
        threads: 2,
        started_at: started_at.into(),
        ..Default::default()
    }
}

/// Write `run` as a run directory `dir/<run_id>` (run.json and the tables).
pub fn write_run(dir: &Path, run: &RunData) -> PathBuf {
    let out = dir.join(&run.info.run_id);
    let latency = run
        .latency
        .iter()
        .flat_map(|(v, s)| {
            s.iter().enumerate().map(|(i, &micros)| LatencySample {
                variant: v.clone(),
                backend: String::new(),
                batch_size: 1,
                iter: i as u64,
                micros,
                round: 0,
            })
        })
        .collect();
    let records = Records { metrics: run.metrics.clone(), latency, ..Default::default() };
    slimbench_metrics::write_tables(&out, &records).unwrap();
    fsutil::write_json(&out.join("run.json"), &run.info).unwrap();
    out
}
