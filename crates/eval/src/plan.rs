//! One timing plan per evaluate stage.
//!
//! Every subject (a variant, or a form of one, on one backend) is timed at batch 1 and
//! at every configured batch size in each of `rounds` interleaved rounds, in a rotating
//! order, on the same threads. Drift of the machine (turbo, a neighbour, a warmer
//! cache) then lands on every subject alike, so any two figures of the stage are
//! comparable.
//!
//! * Runners: a subject holds one [`Runner`] per batch size (from
//!   [`crate::backend`]). Each runner's inputs are prepared once, before any timing,
//!   and shared by the runners of the same split and input key; a timed call is one
//!   [`Runner::run`] (which waits for a GPU's result).
//! * Sizing: after the warm-up, each (subject, batch size) is timed a few times to
//!   estimate a call; it then gets enough calls per round to reach both its minimum
//!   count and `min_duration_s` over all rounds (with 10% to spare).
//! * Watching: a [`Watch`] brackets every round. A round on a busy machine is rerun
//!   (its samples dropped) while the plan's retry budget lasts; a round that stays
//!   busy is kept and makes every figure it fed `invalid`, with the reason.
//! * Energy: where the machine has a counter, each block's joules per call become one
//!   sample per round.
//!
//! [`Figure`] turns the samples into a median with its 95% interval, tail bounds and a
//! validity verdict; [`speedup`] compares two figures by bootstrap.

use std::time::Instant;

use slimbench_core::cancel;
use slimbench_core::config::LatencyParams;
use slimbench_core::progress::Progress;
use slimbench_core::records::{TimingRound, percentile};
use slimbench_data::Split;
use slimbench_metrics::stats::{Bootstrap, Stat, bootstrap_ratios, quantile_interval, quantile_upper_bound};
use slimbench_metrics::{EnergyMeter, Thresholds, Watch};
use slimbench_models::runtime::gpu_index;
use tch::Device;

use crate::backend::{BackendError, Input, Runner};
use crate::variant::EvalError;

/// Confidence of every interval the plan reports.
pub const CONFIDENCE: f64 = 0.95;

/// A variant on one backend to time, under a name unique in the plan.
pub struct Subject<'a> {
    /// Its name (a variant, `variant (simulated)`, or `variant [backend]`).
    pub name: String,
    /// One runner per batch size of the plan, in the order of [`batch_sizes`].
    pub runners: Vec<Box<dyn Runner + 'a>>,
    /// The test split its inputs come from.
    pub test: &'a Split,
}

/// The batch sizes a plan times with `lp`: batch 1, then the configured ones, ascending
/// and without repeats.
pub fn batch_sizes(lp: &LatencyParams) -> Vec<usize> {
    let mut batches: Vec<usize> = std::iter::once(1).chain(lp.batch_sizes.iter().copied()).collect();
    batches.sort_unstable();
    batches.dedup();
    batches
}

/// What the plan times and how.
#[derive(Debug, Clone)]
pub struct PlanSettings<'a> {
    /// Warm-up, minimum counts and duration, rounds, retries, batch sizes.
    pub latency: &'a LatencyParams,
    /// When a round counts as run on a busy machine.
    pub thresholds: Thresholds,
    /// Where the subjects run.
    pub device: Device,
    /// The stage, for the `timing` table.
    pub stage: &'a str,
    /// Which repetition of the plan this is.
    pub repeat: u64,
}

/// The timings of one subject at one batch size.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Images per call.
    pub batch_size: usize,
    /// Microseconds per call, in the order taken.
    pub samples_us: Vec<f64>,
    /// The round of each sample.
    pub rounds: Vec<u64>,
    /// Joules per call, one value per round (empty without an energy counter).
    pub energy_per_call_j: Vec<f64>,
    /// Reasons of the busy rounds kept, one per round.
    pub busy: Vec<String>,
    /// Rounds the figure was timed in.
    pub rounds_timed: usize,
    /// Least calls it needed.
    pub min_count: usize,
    /// Least seconds it needed.
    pub min_duration_s: f64,
    /// Least relative half-width of the median's interval (run-to-run variation).
    pub noise_floor: f64,
}

impl Figure {
    /// Median microseconds per call.
    pub fn p50_us(&self) -> f64 {
        percentile(&self.samples_us, 50.0)
    }

    /// 95% interval of the median from the samples' order statistics, widened to at
    /// least the noise floor either side; NaN ends when there are too few samples.
    pub fn p50_interval(&self) -> (f64, f64) {
        let (lo, hi) = quantile_interval(&self.samples_us, 50.0, CONFIDENCE);
        let p50 = self.p50_us();
        if lo.is_nan() || hi.is_nan() {
            return (lo, hi);
        }
        (lo.min(p50 * (1.0 - self.noise_floor)), hi.max(p50 * (1.0 + self.noise_floor)))
    }

    /// One-sided 95% upper bound of the `p`-th percentile.
    pub fn upper_bound(&self, p: f64) -> f64 {
        quantile_upper_bound(&self.samples_us, p, CONFIDENCE)
    }

    /// Seconds of timed calls.
    pub fn duration_s(&self) -> f64 {
        self.samples_us.iter().sum::<f64>() / 1e6
    }

    /// Median joules per 1,000 images and its 95% interval over the rounds; NaN
    /// without a counter.
    pub fn energy_per_1k_j(&self) -> (f64, f64, f64) {
        if self.energy_per_call_j.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        let per_1k: Vec<f64> =
            self.energy_per_call_j.iter().map(|j| j / self.batch_size as f64 * 1000.0).collect();
        let (lo, hi) = quantile_interval(&per_1k, 50.0, CONFIDENCE);
        (percentile(&per_1k, 50.0), lo, hi)
    }

    /// `("valid", "")` or `("invalid", why)`: a busy round kept, too little time or
    /// too few calls.
    pub fn validity(&self) -> (String, String) {
        let mut why = Vec::new();
        if let Some(first) = self.busy.first() {
            why.push(format!(
                "{} of {} rounds on a busy machine: {first}",
                self.busy.len(),
                self.rounds_timed
            ));
        }
        let d = self.duration_s();
        // A hair under the minimum is rounding of the sizing estimate, not a short run.
        if d < self.min_duration_s * 0.98 {
            why.push(format!("{d:.2} s timed, under the {} s minimum", self.min_duration_s));
        }
        if self.samples_us.len() < self.min_count {
            why.push(format!(
                "{} calls timed, under the minimum of {}",
                self.samples_us.len(),
                self.min_count
            ));
        }
        if why.is_empty() { ("valid".into(), String::new()) } else { ("invalid".into(), why.join("; ")) }
    }
}

/// Everything one run of the plan measured.
#[derive(Debug, Clone, Default)]
pub struct PlanResult {
    /// Batch sizes timed, batch 1 first.
    pub batches: Vec<usize>,
    /// `figures[subject][batch]`, subjects in the order given.
    pub figures: Vec<Vec<Figure>>,
    /// Every round attempted, retried ones included.
    pub rounds: Vec<TimingRound>,
    /// Untimed batch-1 calls per subject before timing.
    pub warmup: usize,
}

impl PlanResult {
    /// Index of `batch` in [`PlanResult::batches`].
    pub fn batch_index(&self, batch: usize) -> Option<usize> {
        self.batches.iter().position(|&b| b == batch)
    }
}

/// Which inputs a runner reads: its split (by address), its backend's input key, the
/// batch size.
type InputKey = (*const Split, String, usize);

/// Time `count` calls, cycling through `inputs` from `start`; microseconds each. A
/// call runs the batch to its end (a GPU runner waits for its result); the logits it
/// returns are dropped after the clock stops.
fn time_calls(
    runner: &mut dyn Runner,
    inputs: &[Input],
    start: usize,
    count: usize,
) -> Result<Vec<f64>, BackendError> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let x = &inputs[(start + i) % inputs.len()];
        let t = Instant::now();
        let y = runner.run(x)?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
        drop(y);
    }
    Ok(out)
}

/// Calls per round for the `rounds_left` rounds to reach `min_count` calls and
/// `min_duration_s` seconds (10% to spare) when `done` calls took `done_s` so far;
/// `timed` are the calls' microseconds seen so far (for their mean).
fn calls_per_round(
    min_count: usize,
    min_duration_s: f64,
    timed: &[f64],
    done: usize,
    done_s: f64,
    rounds_left: usize,
) -> usize {
    if rounds_left == 0 {
        return 0;
    }
    let mean_s = (timed.iter().sum::<f64>() / timed.len().max(1) as f64).max(0.1) / 1e6;
    let for_duration = done + ((min_duration_s * 1.1 - done_s).max(0.0) / mean_s).ceil() as usize;
    min_count.max(for_duration).saturating_sub(done).div_ceil(rounds_left).max(1)
}

/// Run the plan over `subjects`.
pub fn run_plan(
    subjects: &mut [Subject<'_>],
    s: &PlanSettings<'_>,
    progress: &dyn Progress,
) -> Result<PlanResult, EvalError> {
    let _guard = tch::no_grad_guard();
    let lp = s.latency;
    let batches = batch_sizes(lp);
    for sub in subjects.iter() {
        assert_eq!(sub.runners.len(), batches.len(), "subject `{}`: one runner per batch size", sub.name);
    }
    let rounds = lp.rounds.max(1);
    let on_cpu = s.device == Device::Cpu;
    let gpu = gpu_index(s.device);
    let has_energy = EnergyMeter::start(gpu).joules().is_some();

    // inputs[subject][batch], prepared once, outside the timed calls. Runners reading
    // the same split with the same input key (backend, device, precision) share one set
    // of inputs: where an input lies in memory moves a model's time by a few percent,
    // which must not pass for a difference between models.
    let mut shared: Vec<(InputKey, Vec<Input>)> = Vec::new();
    let mut all_inputs: Vec<Vec<Vec<Input>>> = Vec::with_capacity(subjects.len());
    for sub in subjects.iter() {
        let mut per_batch = Vec::with_capacity(batches.len());
        for (runner, &b) in sub.runners.iter().zip(&batches) {
            let key = (sub.test as *const Split, runner.input_key(), b);
            let set = match shared.iter().find(|(k, _)| *k == key) {
                Some((_, set)) => set.clone(),
                None => {
                    let set = runner.prepare(sub.test, b)?;
                    shared.push((key, set.clone()));
                    set
                }
            };
            per_batch.push(set);
        }
        all_inputs.push(per_batch);
    }

    // Warm-up, then a few calls to size each block.
    let mut per_round = vec![vec![0usize; batches.len()]; subjects.len()];
    let mut figures: Vec<Vec<Figure>> = Vec::with_capacity(subjects.len());
    for (i, sub) in subjects.iter_mut().enumerate() {
        let mut row = Vec::new();
        for (j, &b) in batches.iter().enumerate() {
            let x = &all_inputs[i][j];
            let runner = sub.runners[j].as_mut();
            let warm = if b == 1 { lp.warmup } else { 2 };
            let _ = time_calls(runner, x, 0, warm)?;
            let probe = time_calls(runner, x, warm, if b == 1 { 9 } else { 3 })?;
            let min_count = if b == 1 { lp.min_queries() } else { lp.repeats.max(1) };
            per_round[i][j] = calls_per_round(min_count, lp.min_duration_s, &probe, 0, 0.0, rounds);
            row.push(Figure {
                batch_size: b,
                min_count,
                min_duration_s: lp.min_duration_s,
                noise_floor: lp.noise_floor_pct.max(0.0) / 100.0,
                rounds_timed: 0,
                ..Default::default()
            });
        }
        figures.push(row);
        cancel::check()?;
    }

    let bar = progress.bar("timing plan (rounds)", rounds as u64);
    let mut log = Vec::new();
    let mut retries_left = lp.retries;
    let mut offset = vec![vec![0usize; batches.len()]; subjects.len()];
    for round in 0..rounds {
        for attempt in 0.. {
            // samples[subject][batch], energy[subject][batch]
            let mut taken: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); batches.len()]; subjects.len()];
            let mut joules: Vec<Vec<Option<f64>>> = vec![vec![None; batches.len()]; subjects.len()];
            let watch = Watch::start();
            for k in 0..subjects.len() {
                // Rotate the order so no subject always runs right after another.
                let i = (k + round) % subjects.len();
                for j in 0..batches.len() {
                    cancel::check()?;
                    let meter = has_energy.then(|| EnergyMeter::start(gpu));
                    let n = per_round[i][j];
                    taken[i][j] =
                        time_calls(subjects[i].runners[j].as_mut(), &all_inputs[i][j], offset[i][j], n)?;
                    joules[i][j] = meter.and_then(|m| m.joules()).map(|e| e / n as f64);
                }
            }
            let obs = watch.finish(on_cpu);
            let verdict = obs.verdict(&s.thresholds);
            let retry = verdict.is_err() && retries_left > 0;
            log.push(TimingRound {
                stage: s.stage.to_string(),
                repeat: s.repeat,
                round: round as u64,
                attempt,
                wall_s: obs.wall_s,
                thread_cpu_ratio: obs.thread_cpu_ratio,
                others_cpu_share: obs.others_cpu_share,
                steal_share: obs.steal_share,
                cpu_mhz: obs.cpu_mhz,
                validity: if verdict.is_ok() { "valid" } else { "invalid" }.into(),
                invalid_reason: verdict.clone().err().unwrap_or_default(),
            });
            if retry {
                retries_left -= 1;
                tracing::warn!(round, attempt, "timing round rerun: {}", verdict.unwrap_err());
                continue;
            }
            for (i, row) in figures.iter_mut().enumerate() {
                for (j, f) in row.iter_mut().enumerate() {
                    let t = std::mem::take(&mut taken[i][j]);
                    offset[i][j] += t.len();
                    f.rounds.extend(std::iter::repeat_n(round as u64, t.len()));
                    f.samples_us.extend(t);
                    f.energy_per_call_j.extend(joules[i][j]);
                    f.rounds_timed += 1;
                    if let Err(why) = &verdict {
                        f.busy.push(why.clone());
                    }
                    // Resize the next rounds on what the calls really took so far.
                    per_round[i][j] = calls_per_round(
                        f.min_count,
                        f.min_duration_s,
                        &f.samples_us,
                        f.samples_us.len(),
                        f.duration_s(),
                        rounds - round - 1,
                    );
                }
            }
            break;
        }
        bar.inc(1);
    }
    bar.finish();
    Ok(PlanResult { batches, figures, rounds: log, warmup: lp.warmup })
}

/// Most samples per side a speedup's bootstrap resamples: evenly thinned beyond it
/// (the interval widens a little; it stays honest).
const BOOTSTRAP_SAMPLES: usize = 4000;

fn thinned(samples: &[f64]) -> Vec<f64> {
    let step = samples.len().div_ceil(BOOTSTRAP_SAMPLES).max(1);
    samples.iter().step_by(step).copied().collect()
}

/// Speedup of `candidate` over `baseline` (baseline median / candidate median) and its
/// 95% interval: the bootstrap interval over the samples, widened to cover the
/// speedups of the rounds, then by the noise floor either side.
///
/// The samples of one block are not independent: the host's speed drifts from block to
/// block (seen here: the same fp32 arithmetic 9% "faster" in one run, 6% slower in the
/// next, each with a tight sample-level interval). The round is the unit that repeats,
/// so each round's speedup (its two block medians, timed back to back) is one
/// observation, and the interval is at least the 95% order-statistics interval of their
/// median, or their whole range when there are too few rounds for one.
pub fn speedup(baseline: &Figure, candidate: &Figure) -> (f64, f64, f64) {
    let opts =
        Bootstrap { resamples: 1000, confidence: 1.0 - (1.0 - CONFIDENCE) / 2.0, ..Bootstrap::default() };
    let Some(r) = bootstrap_ratios(
        &thinned(&baseline.samples_us),
        &thinned(&candidate.samples_us),
        &[Stat::Percentile(50.0)],
        &opts,
    ) else {
        return (f64::NAN, f64::NAN, f64::NAN);
    };
    // The ratio is candidate / baseline time: the speedup is its inverse.
    let (mut lo, mut hi) = (1.0 / r[0].high, 1.0 / r[0].low);
    let per_round = round_speedups(baseline, candidate);
    if per_round.len() >= 2 {
        let (rlo, rhi) = match quantile_interval(&per_round, 50.0, CONFIDENCE) {
            (a, b) if a.is_finite() && b.is_finite() => (a, b),
            _ => few_rounds_interval(&per_round),
        };
        (lo, hi) = (lo.min(rlo), hi.max(rhi));
    }
    // And by the noise floor, as each median is: where a subject's tensors lie moves its
    // time by a few percent for the whole process, in every round alike.
    let floor = baseline.noise_floor.max(candidate.noise_floor);
    (baseline.p50_us() / candidate.p50_us(), lo * (1.0 - floor), hi * (1.0 + floor))
}

/// A 95% interval for the typical round speedup from under six rounds, too few for a
/// distribution-free one: their range (which covers the median with only 1 - 2^(1-n),
/// 87.5% for four rounds; CI once saw four rounds of the same arithmetic all land 8-25%
/// one side) widened to Student's t interval of their log mean.
fn few_rounds_interval(per_round: &[f64]) -> (f64, f64) {
    // t(0.975) for 1..=4 degrees of freedom.
    const T975: [f64; 4] = [12.706, 4.303, 3.182, 2.776];
    let n = per_round.len();
    let range = per_round.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let Some(&t) = T975.get(n.wrapping_sub(2)) else { return range };
    let logs: Vec<f64> = per_round.iter().map(|x| x.ln()).collect();
    let mean = logs.iter().sum::<f64>() / n as f64;
    let sd = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let half = t * sd / (n as f64).sqrt();
    (range.0.min((mean - half).exp()), range.1.max((mean + half).exp()))
}

/// Baseline block median / candidate block median, for each round that timed both.
fn round_speedups(baseline: &Figure, candidate: &Figure) -> Vec<f64> {
    let blocks = |f: &Figure| {
        let mut by: std::collections::BTreeMap<u64, Vec<f64>> = std::collections::BTreeMap::new();
        for (&r, &x) in f.rounds.iter().zip(&f.samples_us) {
            by.entry(r).or_default().push(x);
        }
        by
    };
    let (b, c) = (blocks(baseline), blocks(candidate));
    b.iter()
        .filter_map(|(r, bs)| {
            let cs = c.get(r)?;
            let ratio = percentile(bs, 50.0) / percentile(cs, 50.0);
            ratio.is_finite().then_some(ratio)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};
    use slimbench_core::progress::NoProgress;
    use slimbench_models::Model;

    use crate::backend::libtorch::TorchRunner;

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

    fn model(filters: i64) -> Model {
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        Model::build("m", &ModelConfig::SeedCnn(SeedCnnConfig { filters }), io, Device::Cpu, Some(1)).unwrap()
    }

    #[test]
    fn every_subject_is_timed_in_every_round_to_its_minimum() {
        let (a, b) = (model(12), model(4));
        let lp = LatencyParams {
            warmup: 3,
            iters: Some(40),
            batch_sizes: vec![16],
            repeats: 5,
            min_duration_s: 0.0,
            rounds: 4,
            retries: 0,
            noise_floor_pct: 1.0,
        };
        // Thresholds nothing can fail: this test is about the bookkeeping.
        let quiet = Thresholds {
            min_thread_cpu_ratio: 0.0,
            max_others_share: 1.0,
            max_steal_share: 1.0,
            max_clock_change: f64::INFINITY,
        };
        let settings =
            PlanSettings { latency: &lp, thresholds: quiet, device: Device::Cpu, stage: "eval", repeat: 0 };
        let test = split(30);
        let runners = |m| -> Vec<Box<dyn Runner + '_>> {
            batch_sizes(&lp).iter().map(|_| Box::new(TorchRunner::new(m, 1)) as Box<dyn Runner>).collect()
        };
        let mut subjects = [
            Subject { name: "a".into(), runners: runners(&a), test: &test },
            Subject { name: "b".into(), runners: runners(&b), test: &test },
        ];
        let r = run_plan(&mut subjects, &settings, &NoProgress).unwrap();
        assert_eq!(r.batches, [1, 16]);
        assert_eq!(r.rounds.len(), 4);
        for row in &r.figures {
            // 40 queries over 4 rounds; 5 batches: 2 in the first round, then what is
            // left spread over the rest.
            assert_eq!(row[0].samples_us.len(), 40);
            assert_eq!(row[1].samples_us.len(), 5);
            assert_eq!(row[0].rounds.iter().filter(|&&x| x == 3).count(), 10);
            assert_eq!(row[0].validity(), ("valid".to_string(), String::new()));
            let (lo, hi) = row[0].p50_interval();
            assert!(lo <= row[0].p50_us() && row[0].p50_us() <= hi);
        }
        let (s, lo, hi) = speedup(&r.figures[0][0], &r.figures[0][0]);
        assert_eq!(s, 1.0);
        assert!(lo <= 1.0 && hi >= 1.0);
    }

    /// Three rounds say the candidate is 10% faster, two say it is slower: the samples
    /// alone give a tight interval above 1, the rounds make it span 1.
    #[test]
    fn a_speedup_the_rounds_disagree_on_is_not_called_faster() {
        let figure = |per_round: &[f64]| {
            let mut f = Figure { batch_size: 1, ..Default::default() };
            for (r, &us) in per_round.iter().enumerate() {
                for i in 0..200 {
                    f.samples_us.push(us + (i % 7) as f64 * 0.01);
                    f.rounds.push(r as u64);
                }
            }
            f
        };
        let base = figure(&[100.0; 5]);
        let cand = figure(&[90.0, 90.0, 90.0, 105.0, 108.0]);
        let (s, lo, hi) = speedup(&base, &cand);
        assert!(s > 1.1, "{s}");
        assert!(lo < 0.96 && hi > 1.1, "[{lo}, {hi}]");
        assert_eq!(slimbench_core::records::Pace::of(s, lo, hi), slimbench_core::records::Pace::Same);
        // Rounds that agree leave the interval tight.
        let (s, lo, _) = speedup(&base, &figure(&[90.0; 5]));
        assert!(s > 1.1 && lo > 1.1, "{s} {lo}");
    }

    #[test]
    fn few_rounds_get_a_t_interval_wider_than_their_range() {
        // Four rounds all one side of 1: their range would call it faster; the t interval
        // of four such spread rounds reaches back past 1.
        let rounds = [1.03, 1.12, 1.06, 1.22];
        let (lo, hi) = few_rounds_interval(&rounds);
        assert!(lo < 1.0 && hi > 1.22, "[{lo}, {hi}]");
        // Rounds that agree stay tight; with six or more rounds the order statistics rule.
        let (lo, hi) = few_rounds_interval(&[1.2, 1.2, 1.2]);
        assert!((lo - 1.2).abs() < 1e-9 && (hi - 1.2).abs() < 1e-9, "[{lo}, {hi}]");
        assert_eq!(few_rounds_interval(&[0.9, 1.0, 1.1, 1.0, 1.0, 1.0, 1.2]), (0.9, 1.2));
    }

    #[test]
    fn a_figure_short_of_its_minimums_or_busy_is_invalid() {
        let f = Figure {
            batch_size: 1,
            samples_us: vec![100.0; 50],
            rounds: vec![0; 50],
            busy: vec!["other processes used 48% of the CPUs".into()],
            rounds_timed: 2,
            min_count: 100,
            min_duration_s: 1.0,
            ..Default::default()
        };
        let (v, why) = f.validity();
        assert_eq!(v, "invalid");
        assert_eq!(
            why,
            "1 of 2 rounds on a busy machine: other processes used 48% of the CPUs; 0.01 s timed, under the \
             1 s minimum; 50 calls timed, under the minimum of 100"
        );
    }
}
