//! How sure a timing is, and is one timing really different from another?
//!
//! * [`quantile_interval`] and [`quantile_upper_bound`]: distribution-free confidence
//!   bounds of a percentile from the binomial order statistics of the samples (the
//!   bound MLPerf LoadGen's early stopping puts on a tail latency). They assume nothing
//!   about the shape of the distribution, and cost one sort.
//!
//! The rest answers the latency gate's question: is the candidate slower by more than
//! the gate allows, beyond what measurement noise explains?
//!
//! Every timed batch-1 inference is kept (`latency.parquet`), so a latency gate is judged
//! on thousands of samples rather than on one percentile. A significance test alone is
//! the wrong question there: with thousands of samples any tiny systematic drift (a
//! neighbour on a shared machine, a different CPU frequency, a warmer cache) is
//! "significant", and a gate that fires on significance fires on noise. A gate must fire
//! only when the shift is both larger than the allowed threshold and outside sampling
//! noise. So:
//!
//! * [`bootstrap_ratios`] resamples both runs' samples with replacement (seeded, so the
//!   same inputs always give the same interval) and computes the ratio
//!   `candidate_stat / baseline_stat` for each resample, where the stat is the metric's
//!   percentile or the mean. The interval's ends are the `(1 - confidence)` and
//!   `confidence` quantiles of those ratios: each end is a one-sided bound at
//!   `confidence`.
//! * The caller declares a regression only when the whole interval lies beyond the
//!   allowed increase: its lower end above `1 + limit` (an absolute limit is turned into
//!   a ratio through the baseline value).
//! * [`mann_whitney_p`], the two-sided Mann–Whitney U p-value (normal approximation,
//!   tie-corrected), is reported beside it for information only.
//!
//! Percentiles interpolate linearly between order statistics, as the metrics table does
//! ([`slimbench_core::records::percentile`]); they are found with `select_nth_unstable`
//! rather than a sort, since each resample needs only a few of them.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// A statistic of a latency sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// A percentile, 0..=100.
    Percentile(f64),
    /// The arithmetic mean.
    Mean,
}

impl Stat {
    /// The statistic behind a latency metric of the metrics table (`latency_p90_us` is
    /// the 90th percentile); `None` for every other metric.
    pub fn of_metric(metric: &str) -> Option<Stat> {
        match metric {
            "latency_p50_us" => Some(Stat::Percentile(50.0)),
            "latency_p90_us" => Some(Stat::Percentile(90.0)),
            "latency_p99_us" => Some(Stat::Percentile(99.0)),
            "latency_mean_us" => Some(Stat::Mean),
            _ => None,
        }
    }

    /// The statistic of `buf`, which it may reorder; NaN when empty.
    pub fn compute(self, buf: &mut [f64]) -> f64 {
        match self {
            _ if buf.is_empty() => f64::NAN,
            Stat::Mean => buf.iter().sum::<f64>() / buf.len() as f64,
            Stat::Percentile(p) => percentile_in_place(buf, p),
        }
    }
}

/// Percentile `p` (0..=100) of `buf` by linear interpolation, reordering `buf` partially
/// instead of sorting it. `buf` must not be empty.
pub fn percentile_in_place(buf: &mut [f64], p: f64) -> f64 {
    let rank = (p / 100.0).clamp(0.0, 1.0) * (buf.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let frac = rank - lo as f64;
    let (_, &mut at_lo, above) = buf.select_nth_unstable_by(lo, f64::total_cmp);
    if frac == 0.0 || above.is_empty() {
        return at_lo;
    }
    // The next order statistic is the smallest of those above.
    let next = above.iter().copied().fold(f64::INFINITY, f64::min);
    at_lo + (next - at_lo) * frac
}

/// How the bootstrap runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// Resamples drawn (each draws both runs' samples anew).
    pub resamples: usize,
    /// One-sided confidence of each end of the interval (0.99: each end is a 99% bound).
    pub confidence: f64,
    /// Seed of the resampling: the same inputs and seed give the same interval.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap { resamples: 2000, confidence: 0.99, seed: 0x5eed_1a7e_ca11 }
    }
}

/// The ratio `candidate_stat / baseline_stat` and its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioInterval {
    /// The ratio of the full samples' statistics.
    pub ratio: f64,
    /// Lower end: the ratio is above this with the bootstrap's confidence.
    pub low: f64,
    /// Upper end: the ratio is below this with the bootstrap's confidence.
    pub high: f64,
}

/// Resamples per parallel chunk; each chunk has its own random stream, so results do
/// not depend on how many threads rayon uses.
const CHUNK: usize = 64;

/// Bootstrap intervals of `candidate_stat / baseline_stat` for several statistics at
/// once (one resample serves them all). `None` when either sample is empty.
pub fn bootstrap_ratios(
    baseline: &[f64],
    candidate: &[f64],
    stats: &[Stat],
    opts: &Bootstrap,
) -> Option<Vec<RatioInterval>> {
    if baseline.is_empty() || candidate.is_empty() || stats.is_empty() {
        return None;
    }
    let chunks = opts.resamples.max(1).div_ceil(CHUNK);
    // ratios[chunk][resample * stats.len() + stat]
    let ratios: Vec<Vec<f64>> = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            rng.set_stream(chunk as u64);
            let count = CHUNK.min(opts.resamples.max(1) - chunk * CHUNK);
            let (mut b, mut c) = (vec![0.0; baseline.len()], vec![0.0; candidate.len()]);
            let mut out = Vec::with_capacity(count * stats.len());
            for _ in 0..count {
                resample(&mut rng, baseline, &mut b);
                resample(&mut rng, candidate, &mut c);
                out.extend(stats.iter().map(|s| s.compute(&mut c) / s.compute(&mut b)));
            }
            out
        })
        .collect();
    let full = |s: Stat, data: &[f64]| s.compute(&mut data.to_vec());
    let tail = (1.0 - opts.confidence).clamp(0.0, 0.5) * 100.0;
    Some(
        stats
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let mut dist: Vec<f64> = ratios
                    .iter()
                    .flat_map(|chunk| chunk.iter().skip(i).step_by(stats.len()).copied())
                    .filter(|r| r.is_finite())
                    .collect();
                let ratio = full(s, candidate) / full(s, baseline);
                if dist.is_empty() {
                    return RatioInterval { ratio, low: f64::NAN, high: f64::NAN };
                }
                let low = percentile_in_place(&mut dist, tail);
                let high = percentile_in_place(&mut dist, 100.0 - tail);
                RatioInterval { ratio, low, high }
            })
            .collect(),
    )
}

/// Fill `out` with draws from `data`, with replacement. Indices by multiply-shift of a
/// 64-bit draw: its bias (below n / 2^64) is far beneath what a bootstrap can see, and it
/// is several times cheaper than unbiased rejection sampling in this, the hot loop.
fn resample(rng: &mut ChaCha8Rng, data: &[f64], out: &mut [f64]) {
    let n = data.len() as u128;
    for slot in out.iter_mut() {
        *slot = data[((u128::from(rng.next_u64()) * n) >> 64) as usize];
    }
}

/// Two-sided p-value of the Mann–Whitney U test that the two samples come from the same
/// distribution: normal approximation with continuity and tie corrections. NaN when a
/// sample is empty. With thousands of samples it is tiny for any systematic shift, however
/// small, which is why it is information and not the gate.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f64, bool)> =
        a.iter().map(|&x| (x, true)).chain(b.iter().map(|&x| (x, false))).collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut rank_sum_a, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        // Ranks i+1..=j+1 share their average.
        let avg = (i + j + 2) as f64 / 2.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_sum_a += avg * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let n = n1 + n2;
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 || !var.is_finite() {
        // Every value equal: nothing tells the samples apart.
        return 1.0;
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / var.sqrt();
    erfc(z / std::f64::consts::SQRT_2).min(1.0)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error
/// below 1.2e-7 everywhere: plenty for a p-value shown with two significant digits).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// `n` latency-like samples: lognormal around `median` with log-sd `sigma`, plus a few
/// slow outliers, as a shared machine produces (seeded; for tests and examples).
pub fn lognormal(seed: u64, n: usize, median: f64, sigma: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            // Box–Muller.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let outlier = if rng.random::<f64>() < 0.01 { 3.0 } else { 1.0 };
            median * (sigma * z).exp() * outlier
        })
        .collect()
}

/// `P(B <= k)` for `B ~ Binomial(n, q)` and every `k` in `0..=n`, summed in log space
/// so that large `n` does not underflow the first terms into a wrong total.
fn binomial_cdf(n: usize, q: f64) -> Vec<f64> {
    let q = q.clamp(1e-12, 1.0 - 1e-12);
    let (lq, lnq) = (q.ln(), (1.0 - q).ln());
    let mut log_pmf = n as f64 * lnq;
    let mut cdf = Vec::with_capacity(n + 1);
    let mut acc = 0.0;
    for k in 0..=n {
        acc += log_pmf.exp();
        cdf.push(acc.min(1.0));
        if k < n {
            log_pmf += ((n - k) as f64 / (k + 1) as f64).ln() + lq - lnq;
        }
    }
    cdf
}

/// The two-sided `confidence` interval of the `p`-th percentile (0..100) of the
/// distribution `samples` come from: a pair of order statistics `[x_(l), x_(u)]` with
/// `P(l <= B < u) >= confidence`, `B ~ Binomial(n, p/100)`. NaN ends when there are
/// too few samples for one.
pub fn quantile_interval(samples: &[f64], p: f64, confidence: f64) -> (f64, f64) {
    let n = samples.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cdf = binomial_cdf(n, p / 100.0);
    let tail = (1.0 - confidence) / 2.0;
    // Lower: the largest l with P(B <= l-1) <= tail; then x_(l) is below the quantile
    // with probability >= 1 - tail.
    let lo = (1..=n).take_while(|&l| cdf[l - 1] <= tail).last().map_or(f64::NAN, |l| sorted[l - 1]);
    // Upper: the smallest u with P(B <= u-1) >= 1 - tail.
    let hi = (1..=n).find(|&u| cdf[u - 1] >= 1.0 - tail).map_or(f64::NAN, |u| sorted[u - 1]);
    (lo, hi)
}

/// A one-sided `confidence` upper bound of the `p`-th percentile: the smallest order
/// statistic `x_(k)` with `P(B <= k-1) >= confidence`. NaN when even the largest sample
/// is not one (the 99th percentile needs at least 299 samples at 95%).
pub fn quantile_upper_bound(samples: &[f64], p: f64, confidence: f64) -> f64 {
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    let cdf = binomial_cdf(n, p / 100.0);
    match (1..=n).find(|&k| cdf[k - 1] >= confidence) {
        Some(k) => {
            let mut buf = samples.to_vec();
            let (_, &mut v, _) = buf.select_nth_unstable_by(k - 1, f64::total_cmp);
            v
        }
        None => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_statistic_bounds_cover_the_true_quantile() {
        // Median of lognormal(40, 0.2) is 40 (the outliers move it a little): over 200
        // seeded samples of 400, the 95% interval should miss it rarely.
        let misses = (0..200)
            .filter(|&seed| {
                let (lo, hi) = quantile_interval(&lognormal(seed, 400, 40.0, 0.2), 50.0, 0.95);
                assert!(lo < hi);
                !(lo..=hi).contains(&40.1)
            })
            .count();
        assert!(misses <= 20, "{misses} misses of 200");
        let s = lognormal(7, 1000, 40.0, 0.2);
        let p99 = slimbench_core::records::percentile(&s, 99.0);
        assert!(quantile_upper_bound(&s, 99.0, 0.95) >= p99);
        // 298 samples cannot bound the 99th percentile at 95%; 299 can.
        assert!(quantile_upper_bound(&s[..298], 99.0, 0.95).is_nan());
        assert!(quantile_upper_bound(&s[..299], 99.0, 0.95).is_finite());
        assert!(quantile_interval(&[], 50.0, 0.95).0.is_nan());
        // Two samples cannot give a 95% interval of the median.
        assert!(quantile_interval(&[1.0, 2.0], 50.0, 0.95).0.is_nan());
    }

    #[test]
    fn in_place_percentiles_match_the_tables() {
        let v: Vec<f64> = (0..101).map(|i| ((i * 37) % 101) as f64 * 1.5).collect();
        for p in [0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            let expect = slimbench_core::records::percentile(&v, p);
            assert_eq!(percentile_in_place(&mut v.clone(), p), expect, "p{p}");
        }
        assert_eq!(percentile_in_place(&mut [4.0], 90.0), 4.0);
        assert_eq!(Stat::Mean.compute(&mut [1.0, 2.0, 6.0]), 3.0);
        assert!(Stat::Mean.compute(&mut []).is_nan());
    }

    #[test]
    fn identical_samples_give_an_interval_around_one() {
        let s = lognormal(1, 2000, 40.0, 0.2);
        let stats = [Stat::Percentile(50.0), Stat::Percentile(99.0), Stat::Mean];
        for r in bootstrap_ratios(&s, &s, &stats, &Bootstrap::default()).unwrap() {
            assert_eq!(r.ratio, 1.0);
            assert!(r.low < 1.0 && r.high > 1.0, "{r:?}");
        }
        assert!(mann_whitney_p(&s, &s) > 0.99);
    }

    #[test]
    fn the_interval_is_deterministic_and_brackets_the_shift() {
        let b = lognormal(2, 3000, 40.0, 0.15);
        let c: Vec<f64> = lognormal(3, 3000, 40.0, 0.15).iter().map(|x| x * 1.05).collect();
        let opts = Bootstrap::default();
        let r1 = bootstrap_ratios(&b, &c, &[Stat::Percentile(50.0)], &opts).unwrap();
        let r2 = bootstrap_ratios(&b, &c, &[Stat::Percentile(50.0)], &opts).unwrap();
        assert_eq!(r1, r2);
        let r = r1[0];
        assert!(r.low < 1.05 && 1.05 < r.high, "{r:?}");
        assert!(r.high - r.low < 0.05, "{r:?}");
        // Thousands of samples make a 5% shift overwhelmingly "significant".
        assert!(mann_whitney_p(&b, &c) < 1e-6);
        assert!(bootstrap_ratios(&[], &c, &[Stat::Mean], &opts).is_none());
    }

    #[test]
    fn mann_whitney_matches_a_hand_computed_case() {
        // a = [1, 2, 3], b = [4, 5, 6]: U = 0, mean 4.5, var 5.25, z = (4.5 - 0.5) / 2.291.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((p - 0.0809).abs() < 1e-3, "{p}");
        // Ties: every value equal.
        assert_eq!(mann_whitney_p(&[2.0, 2.0], &[2.0, 2.0, 2.0]), 1.0);
        assert!((erfc(0.0) - 1.0).abs() < 1e-7 && (erfc(1.0) - 0.157_299_2).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
    }
}
