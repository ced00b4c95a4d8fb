//! The `server` scenario, after MLPerf LoadGen's: single-image queries arrive at
//! Poisson times at an offered rate; the server takes every query that has arrived (up
//! to `max_batch`) into one forward. A query's latency runs from its *scheduled*
//! arrival to the end of its batch, so time spent queueing behind a busy server counts,
//! as it does for a user. The highest rate whose p99 meets the target is found by
//! bisection between a rate that meets it and one that does not.
//!
//! One thread plays both sides: arrivals are drawn in advance (seeded), and the server
//! loop waits (spinning, for precision) only while nothing has arrived. Each offered
//! load is watched like a timing round; a busy one is rerun once.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slimbench_core::cancel::{self, Cancelled};
use slimbench_core::config::ServerParams;
use slimbench_core::records::{ServerRow, percentile};
use slimbench_data::Split;
use slimbench_metrics::stats::quantile_upper_bound;
use slimbench_metrics::{Thresholds, Watch};
use slimbench_models::Model;
use slimbench_models::runtime::synchronize;
use tch::Tensor;

use crate::backend::libtorch::batch_of;
use crate::plan::CONFIDENCE;

/// Least queries per offered load (the p99's 95% bound needs 299), unless the rate is
/// so low that they would take over five times the load's duration.
pub const MIN_QUERIES: usize = 300;

/// One offered load's outcome.
struct Load {
    latencies_ms: Vec<f64>,
    batches: usize,
    largest: usize,
    wall_s: f64,
    busy: Option<String>,
}

/// Offer `rate` queries per second for `duration_s` (at least [`MIN_QUERIES`]).
fn offer(model: &Model, xs: &Tensor, max_batch: usize, rate: f64, duration_s: f64, seed: u64) -> Load {
    let device = model.device();
    // At least MIN_QUERIES, unless that would take over 5x the duration (a low rate).
    let floor = MIN_QUERIES.min((rate * duration_s * 5.0).ceil() as usize).max(1);
    let n = ((rate * duration_s).ceil() as usize).max(floor);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = 0.0;
    let arrivals: Vec<f64> = (0..n)
        .map(|_| {
            t += -(1.0 - rng.random::<f64>()).ln() / rate;
            t
        })
        .collect();
    // A server that falls this far behind fails the target anyway: stop it there.
    let give_up = arrivals[n - 1] * 2.0 + 1.0;
    let watch = Watch::start();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    let (mut next, mut batches, mut largest) = (0, 0, 0);
    while next < n {
        let now = start.elapsed().as_secs_f64();
        if now > give_up {
            latencies.extend(std::iter::repeat_n(f64::INFINITY, n - next));
            break;
        }
        if arrivals[next] > now {
            let wait = arrivals[next] - now;
            if wait > 2e-3 {
                std::thread::sleep(Duration::from_secs_f64(wait - 1e-3));
            }
            continue;
        }
        let ready = arrivals[next..].iter().take(max_batch).take_while(|&&a| a <= now).count();
        let y = model.forward(&xs.narrow(0, 0, ready as i64));
        synchronize(device);
        drop(y);
        let done = start.elapsed().as_secs_f64();
        latencies.extend(arrivals[next..next + ready].iter().map(|a| (done - a) * 1e3));
        next += ready;
        batches += 1;
        largest = largest.max(ready);
    }
    // The thread waits for arrivals by design: only the machine's load is judged.
    let busy = watch.finish(false).verdict(&Thresholds::default()).err();
    Load { latencies_ms: latencies, batches, largest, wall_s: start.elapsed().as_secs_f64(), busy }
}

/// Search the highest rate `model` serves within the p99 target. `b1_us` and
/// `large_us` (the median time of one image and of a `max_batch` batch, from the
/// timing plan) bound the search: above `max_batch / large` no server keeps up.
pub fn search(
    variant: &str,
    model: &Model,
    test: &Split,
    p: &ServerParams,
    b1_us: f64,
    large_us: f64,
) -> Result<Vec<ServerRow>, Cancelled> {
    let _guard = tch::no_grad_guard();
    let max_batch = p.max_batch.max(1);
    let xs = batch_of(model, test, max_batch);
    let capacity = if large_us.is_finite() && large_us > 0.0 {
        max_batch as f64 / (large_us / 1e6)
    } else {
        1e6 / b1_us.max(1.0)
    };
    let mut rows = Vec::new();
    let (mut good, mut bad) = (0.0f64, capacity * 1.2);
    let mut rate = (0.5 * 1e6 / b1_us.max(1.0)).min(capacity * 0.5);
    for step in 0..p.steps.max(1) {
        cancel::check()?;
        let mut load = offer(model, &xs, max_batch, rate, p.duration_s, step as u64);
        if load.busy.is_some() {
            load = offer(model, &xs, max_batch, rate, p.duration_s, step as u64);
        }
        let p99 = percentile(&load.latencies_ms, 99.0);
        let meets = p99 <= p.target_p99_ms;
        rows.push(ServerRow {
            variant: variant.to_string(),
            rate_qps: rate,
            queries: load.latencies_ms.len() as u64,
            duration_s: load.wall_s,
            max_batch: load.largest as u64,
            mean_batch: load.latencies_ms.len() as f64 / load.batches.max(1) as f64,
            p50_ms: percentile(&load.latencies_ms, 50.0),
            p99_ms: p99,
            p99_bound_ms: quantile_upper_bound(&load.latencies_ms, 99.0, CONFIDENCE),
            target_p99_ms: p.target_p99_ms,
            meets: if meets { "yes" } else { "no" }.into(),
            best: String::new(),
            validity: if load.busy.is_some() { "invalid" } else { "valid" }.into(),
            invalid_reason: load.busy.unwrap_or_default(),
        });
        if meets {
            good = good.max(rate);
        } else {
            bad = bad.min(rate);
        }
        // Geometric bisection; until a failing rate is seen, double.
        rate = if bad <= capacity * 1.2 && good > 0.0 {
            (good * bad).sqrt()
        } else if good > 0.0 {
            (rate * 2.0).min(capacity * 1.2)
        } else {
            rate / 4.0
        };
    }
    if let Some(best) =
        rows.iter_mut().filter(|r| r.meets == "yes").max_by(|a, b| a.rate_qps.total_cmp(&b.rate_qps))
    {
        best.best = "yes".into();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};
    use tch::Device;

    #[test]
    fn the_search_finds_a_rate_that_meets_the_target_and_one_that_does_not() {
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let m = Model::build("m", &ModelConfig::SeedCnn(SeedCnnConfig::default()), io, Device::Cpu, Some(1))
            .unwrap();
        let test = Split {
            images: vec![7; 40 * 784],
            labels: vec![0; 40],
            channels: 1,
            rows: 28,
            cols: 28,
            normalize: None,
        };
        let p = ServerParams { target_p99_ms: 5.0, max_batch: 8, duration_s: 0.1, steps: 5, variants: None };
        let rows = search("m", &m, &test, &p, 200.0, 800.0).unwrap();
        assert_eq!(rows.len(), 5);
        for r in &rows {
            assert!(r.queries >= MIN_QUERIES as u64 || r.duration_s < 1.0, "{r:?}");
            assert!(r.max_batch >= 1 && r.max_batch <= 8, "{r:?}");
            assert!(r.p50_ms <= r.p99_ms, "{r:?}");
            assert_eq!(r.meets == "yes", r.p99_ms <= 5.0);
        }
        assert!(rows.iter().filter(|r| r.best == "yes").count() <= 1);
    }
}
