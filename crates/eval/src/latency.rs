//! Timing inference.
//!
//! Batch-1 latency is what a single request costs: one forward per test image, each
//! timed on its own after a warm-up (libtorch's first calls allocate and pick kernels).
//! Inputs are prepared before timing. On CUDA every timed call is synchronised.
//! Throughput repeats a batched forward and reports the median.

use std::time::Instant;

use slimbench_core::cancel::{self, Cancelled};
use slimbench_core::progress::Progress;
use slimbench_core::records::percentile;
use slimbench_data::Split;
use slimbench_models::Model;
use slimbench_models::runtime::synchronize;

use crate::images_tensor;

/// Batch-1 latency samples and their summary.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Every timed inference, in microseconds.
    pub samples_us: Vec<f64>,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Warm-up inferences before timing.
    pub warmup: usize,
}

/// Time `iters` single-image inferences (cycling through the split) after `warmup`.
pub fn batch1(
    model: &Model,
    split: &Split,
    warmup: usize,
    iters: usize,
    progress: &dyn Progress,
) -> Result<Latency, Cancelled> {
    let _guard = tch::no_grad_guard();
    let (device, kind) = (model.device(), model.kind());
    let n = split.len().min(iters).max(1);
    let all = images_tensor(split, 0, n, device, kind);
    let inputs: Vec<_> = (0..n as i64).map(|i| all.narrow(0, i, 1)).collect();
    for i in 0..warmup {
        let _ = model.forward(&inputs[i % n]);
    }
    synchronize(device);
    let bar = progress.bar("latency (batch 1)", iters as u64);
    let mut samples = Vec::with_capacity(iters);
    for i in 0..iters {
        if i % 256 == 0 {
            cancel::check()?;
            bar.inc(if i == 0 { 0 } else { 256 });
        }
        let x = &inputs[i % n];
        let t = Instant::now();
        let y = model.forward(x);
        synchronize(device);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        drop(y);
    }
    bar.finish();
    Ok(summarize(samples, warmup))
}

fn summarize(samples_us: Vec<f64>, warmup: usize) -> Latency {
    let mean_us = samples_us.iter().sum::<f64>() / samples_us.len().max(1) as f64;
    Latency {
        p50_us: percentile(&samples_us, 50.0),
        p90_us: percentile(&samples_us, 90.0),
        p99_us: percentile(&samples_us, 99.0),
        mean_us,
        samples_us,
        warmup,
    }
}

/// Batched throughput at one batch size.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Images per forward.
    pub batch_size: usize,
    /// Every timed forward, in milliseconds.
    pub samples_ms: Vec<f64>,
    /// Median milliseconds per forward.
    pub p50_ms: f64,
    /// Images per second at the median.
    pub images_per_s: f64,
}

/// Time `repeats` forwards of a batch of `batch_size` test images (repeated if the
/// split is smaller), after two untimed ones.
pub fn throughput(
    model: &Model,
    split: &Split,
    batch_size: usize,
    repeats: usize,
) -> Result<Throughput, Cancelled> {
    let _guard = tch::no_grad_guard();
    let (device, kind) = (model.device(), model.kind());
    let n = batch_size.min(split.len()).max(1);
    let base = images_tensor(split, 0, n, device, kind);
    let xs = if n < batch_size {
        let reps = batch_size.div_ceil(n) as i64;
        base.repeat([reps, 1, 1, 1]).narrow(0, 0, batch_size as i64)
    } else {
        base
    };
    for _ in 0..2 {
        let _ = model.forward(&xs);
    }
    synchronize(device);
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        cancel::check()?;
        let t = Instant::now();
        let y = model.forward(&xs);
        synchronize(device);
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        drop(y);
    }
    let p50_ms = percentile(&samples, 50.0);
    Ok(Throughput {
        batch_size,
        images_per_s: batch_size as f64 / (p50_ms / 1e3),
        p50_ms,
        samples_ms: samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};
    use slimbench_core::progress::NoProgress;
    use tch::Device;

    fn split(n: usize) -> Split {
        Split {
            images: (0..n * 784).map(|i| (i % 251) as u8).collect(),
            labels: vec![0; n],
            channels: 1,
            rows: 28,
            cols: 28,
            normalize: None,
        }
    }

    fn model() -> Model {
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        Model::build("m", &ModelConfig::SeedCnn(SeedCnnConfig::default()), io, Device::Cpu, Some(1)).unwrap()
    }

    #[test]
    fn batch1_times_every_iteration_and_orders_percentiles() {
        let lat = batch1(&model(), &split(30), 5, 70, &NoProgress).unwrap();
        assert_eq!(lat.samples_us.len(), 70);
        assert!(lat.samples_us.iter().all(|&s| s > 0.0));
        assert!(lat.p50_us <= lat.p90_us && lat.p90_us <= lat.p99_us);
        assert_eq!(lat.warmup, 5);
    }

    #[test]
    fn throughput_repeats_small_splits_up_to_the_batch() {
        let t = throughput(&model(), &split(10), 64, 4).unwrap();
        assert_eq!((t.batch_size, t.samples_ms.len()), (64, 4));
        assert!((t.images_per_s - 64.0 / (t.p50_ms / 1e3)).abs() < 1e-6);
    }
}
