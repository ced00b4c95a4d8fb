//! Join two runs by variant and judge every gated metric.
//!
//! A gate's rule bounds the candidate's value: `max_drop` from below (baseline minus the
//! allowed drop), `max_increase` from above, `min`/`max` absolutely. Table metrics are
//! judged on their values ([`Test::Threshold`]). Latency metrics are judged on the raw
//! samples ([`Test::Bootstrap`], see [`crate::stats`]): a `max_increase` fires only when
//! the lower end of the bootstrap interval of `candidate / baseline` lies above the
//! allowed ratio. A variant without samples in either run falls back to its table values
//! ([`Test::NoSamples`]). `improved` is the mirror image: better by more than the gate
//! allows the other way (by anything, for a zero threshold).
//!
//! Timing metrics (latency and throughput) are judged only when both runs timed the
//! variant validly (a run made before slimbench checked counts as valid): when the
//! baseline's row is `invalid` the check is flagged and not gated
//! ([`Verdict::BaselineInvalid`]), when the candidate's is, the verdict says so
//! ([`Verdict::CandidateInvalid`]) instead of reporting a regression; neither fails the
//! comparison, and the latency samples of such a variant are not used.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use slimbench_core::gates::{GateRule, Gates, Threshold, metric_value};
use slimbench_core::records::MetricRow;

use crate::render::{signed, value};
use crate::stats::{Bootstrap, RatioInterval, Stat, bootstrap_ratios, mann_whitney_p};
use crate::{CompareError, DEFAULT_COMPARE_METRICS, RunData, load_run_data};

/// How a comparison runs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CompareOptions {
    /// Variants of the baseline missing from the candidate fail the comparison.
    pub require_all: bool,
    /// The latency test's resampling.
    pub bootstrap: Bootstrap,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the gate.
    Ok,
    /// Beyond the gate: the comparison fails.
    Regression,
    /// Better by more than the gate allows the other way.
    Improved,
    /// A value is missing in one of the runs.
    NoData,
    /// Not gated; compared for information.
    Info,
    /// A timing metric of a variant the baseline timed on a disturbed machine (its row
    /// is `invalid`): nothing to hold the candidate to, so not gated.
    BaselineInvalid,
    /// A timing metric of a variant the candidate timed on a disturbed machine: its
    /// figure is not trusted, so not gated.
    CandidateInvalid,
}

impl Verdict {
    /// `ok`, `regression`, `improved`, `no-data`, `info`, `baseline-invalid`,
    /// `candidate-invalid`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Regression => "regression",
            Verdict::Improved => "improved",
            Verdict::NoData => "no-data",
            Verdict::Info => "info",
            Verdict::BaselineInvalid => "baseline-invalid",
            Verdict::CandidateInvalid => "candidate-invalid",
        }
    }

    /// Whether a run's timing made the check unjudged.
    pub fn is_invalid(self) -> bool {
        matches!(self, Verdict::BaselineInvalid | Verdict::CandidateInvalid)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a check was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// The table values against the rule's bounds.
    Threshold,
    /// The bootstrap interval of the latency ratio (see [`crate::stats`]).
    Bootstrap,
    /// A latency metric judged on table values: a run has no samples for the variant.
    NoSamples,
    /// Nothing judged: a value is missing, or the metric is not gated.
    None,
}

impl Test {
    /// `threshold`, `bootstrap`, `none (no samples)`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Test::Threshold => "threshold",
            Test::Bootstrap => "bootstrap",
            Test::NoSamples => "none (no samples)",
            Test::None => "none",
        }
    }
}

/// One metric of one variant, baseline against candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The variant.
    pub variant: String,
    /// The metric (a column of the metrics table).
    pub metric: String,
    /// Its value in the baseline run.
    pub baseline: Option<f64>,
    /// Its value in the candidate run.
    pub candidate: Option<f64>,
    /// The gate (`None`: compared for information).
    pub rule: Option<GateRule>,
    /// The bound the candidate is held to, in the metric's units: the one crossed, else
    /// the one on the side the value moved towards.
    pub limit: Option<f64>,
    /// Latency metrics with samples: `candidate / baseline` of the statistic and its
    /// bootstrap interval.
    pub ratio: Option<RatioInterval>,
    /// Latency metrics with samples: Mann–Whitney U two-sided p-value (information).
    pub p_value: Option<f64>,
    /// How it was judged.
    pub test: Test,
    /// The outcome.
    pub verdict: Verdict,
    /// The change and what was allowed, in words (`-0.0541, allowed -0.005`).
    pub detail: String,
}

impl Check {
    /// Candidate minus baseline.
    pub fn change(&self) -> Option<f64> {
        Some(self.candidate? - self.baseline?)
    }

    /// The change as a fraction of the baseline.
    pub fn change_pct(&self) -> Option<f64> {
        let b = self.baseline?;
        (b != 0.0).then(|| self.change().map(|d| d / b.abs())).flatten()
    }

    /// `prune[sparsity=0.9] accuracy 0.9642 -> 0.9101 (-0.0541, allowed -0.005)`.
    pub fn summary(&self) -> String {
        let show = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| value(&self.metric, v));
        format!(
            "{} {} {} -> {} ({})",
            self.variant,
            self.metric,
            show(self.baseline),
            show(self.candidate),
            self.detail
        )
    }
}

/// Two runs compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The reference run.
    pub baseline: RunData,
    /// The run judged against it.
    pub candidate: RunData,
    /// The gates applied; empty when nothing is gated and the default metrics were
    /// compared for information.
    pub gates: Gates,
    /// One check per variant in both runs and metric, variants in the candidate's order.
    pub checks: Vec<Check>,
    /// Variants only in the candidate.
    pub added: Vec<String>,
    /// Variants only in the baseline.
    pub removed: Vec<String>,
    /// Whether removed variants fail the comparison.
    pub require_all: bool,
    /// Caveats (runs from different machines, devices or thread counts).
    pub notes: Vec<String>,
    /// One-sided confidence of each end of the latency intervals.
    pub confidence: f64,
}

impl Comparison {
    /// Whether any metric is gated.
    pub fn gated(&self) -> bool {
        !self.gates.is_empty()
    }

    /// The checks that crossed their gate.
    pub fn regressions(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Regression)
    }

    /// The checks not judged because a run's timing of the variant is invalid.
    pub fn invalid(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict.is_invalid())
    }

    /// The metrics compared, in order.
    pub fn metrics(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in &self.checks {
            if !out.contains(&c.metric.as_str()) {
                out.push(&c.metric);
            }
        }
        out
    }

    /// Whether the comparison fails: a regression, or (with `require_all`) a variant
    /// missing from the candidate.
    pub fn failed(&self) -> bool {
        self.regressions().next().is_some() || (self.require_all && !self.removed.is_empty())
    }

    /// `2 regressions in 12 checks`, `no regressions in 12 checks`, or for an ungated
    /// comparison `nothing is gated: 8 values compared for information`.
    pub fn headline(&self) -> String {
        let n = self.checks.len();
        if !self.gated() {
            return format!("nothing is gated: {n} value{} compared for information", plural(n));
        }
        let r = self.regressions().count();
        let mut line = match r {
            0 => format!("no regressions in {n} check{}", plural(n)),
            r => format!("{r} regression{} in {n} check{}", plural(r), plural(n)),
        };
        if self.require_all && !self.removed.is_empty() {
            let m = self.removed.len();
            line.push_str(&format!("; {m} variant{} missing from the candidate", plural(m)));
        }
        let i = self.invalid().count();
        if i > 0 {
            line.push_str(&format!("; {i} not judged (invalid timing)"));
        }
        line
    }

    /// Why the comparison failed, naming each failing variant and metric; `None` when it
    /// did not fail.
    pub fn failure_message(&self) -> Option<String> {
        if !self.failed() {
            return None;
        }
        let mut parts: Vec<String> = self.regressions().map(Check::summary).collect();
        let r = parts.len();
        if self.require_all && !self.removed.is_empty() {
            parts.push(format!("missing from the candidate (--require-all): {}", self.removed.join(", ")));
        }
        let head = match r {
            0 => "the candidate lacks variants of the baseline".to_string(),
            r => format!("{r} regression{}", plural(r)),
        };
        Some(format!("{head}: {}", parts.join("; ")))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Compare the runs in two directories (see [`compare_runs`]).
pub fn compare(
    baseline_dir: &Path,
    candidate_dir: &Path,
    gates: &Gates,
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let baseline = load_run_data(baseline_dir)?;
    let candidate = load_run_data(candidate_dir)?;
    Ok(compare_runs(baseline, candidate, gates, opts))
}

/// Join two runs by variant and check every gated metric of every variant in both
/// (with no gates: [`DEFAULT_COMPARE_METRICS`], for information).
pub fn compare_runs(
    baseline: RunData,
    candidate: RunData,
    gates: &Gates,
    opts: &CompareOptions,
) -> Comparison {
    let metrics: Vec<(&str, Option<&GateRule>)> = if gates.is_empty() {
        DEFAULT_COMPARE_METRICS.iter().map(|m| (*m, None)).collect()
    } else {
        gates.iter().map(|(m, r)| (m.as_str(), Some(r))).collect()
    };
    let base_rows = first_by_variant(&baseline.metrics);
    let cand_rows = first_by_variant(&candidate.metrics);
    let added: Vec<String> = unique_variants(&candidate.metrics)
        .filter(|v| !base_rows.contains_key(v))
        .map(str::to_string)
        .collect();
    let removed: Vec<String> = unique_variants(&baseline.metrics)
        .filter(|v| !cand_rows.contains_key(v))
        .map(str::to_string)
        .collect();

    let stats: Vec<(&str, Stat)> =
        metrics.iter().filter_map(|(m, _)| Some((*m, Stat::of_metric(m)?))).collect();
    let mut checks = Vec::new();
    for variant in unique_variants(&candidate.metrics) {
        let (Some(b_row), Some(c_row)) = (base_rows.get(variant), cand_rows.get(variant)) else { continue };
        // Samples timed on a disturbed machine judge nothing.
        let valid = !is_invalid(b_row) && !is_invalid(c_row);
        let samples = match (baseline.latency.get(variant), candidate.latency.get(variant)) {
            (Some(b), Some(c)) if valid && !b.is_empty() && !c.is_empty() && !stats.is_empty() => {
                Some((b, c))
            }
            _ => None,
        };
        let only_stats: Vec<Stat> = stats.iter().map(|s| s.1).collect();
        let intervals = samples.and_then(|(b, c)| bootstrap_ratios(b, c, &only_stats, &opts.bootstrap));
        let p_value = samples.map(|(b, c)| mann_whitney_p(b, c));
        for &(metric, rule) in &metrics {
            let ratio =
                stats.iter().position(|(m, _)| *m == metric).and_then(|i| intervals.as_ref().map(|iv| iv[i]));
            let sampled = Stat::of_metric(metric).is_some();
            checks.push(check(
                variant,
                metric,
                b_row,
                c_row,
                rule,
                ratio,
                if sampled { p_value } else { None },
            ));
        }
    }
    let notes = caveats(&baseline, &candidate);
    Comparison {
        baseline,
        candidate,
        gates: gates.clone(),
        checks,
        added,
        removed,
        require_all: opts.require_all,
        notes,
        confidence: opts.bootstrap.confidence,
    }
}

/// Whether the row's timing is invalid; rows of runs made before slimbench checked
/// (no `validity`) are not.
pub(crate) fn is_invalid(row: &MetricRow) -> bool {
    row.validity == "invalid"
}

/// Whether a metric comes from the timing (and so is only as good as its validity).
pub(crate) fn is_timing(metric: &str) -> bool {
    metric.starts_with("latency_") || metric == "throughput_ips"
}

fn unique_variants(rows: &[MetricRow]) -> impl Iterator<Item = &str> {
    let mut seen = HashSet::new();
    rows.iter().map(|r| r.variant.as_str()).filter(move |v| seen.insert(*v))
}

fn first_by_variant(rows: &[MetricRow]) -> HashMap<&str, &MetricRow> {
    let mut map = HashMap::new();
    for r in rows {
        map.entry(r.variant.as_str()).or_insert(r);
    }
    map
}

/// Why latency or throughput may not be comparable between the two runs.
fn caveats(b: &RunData, c: &RunData) -> Vec<String> {
    let mut notes = Vec::new();
    let differ = |what: &str, x: &str, y: &str, notes: &mut Vec<String>| {
        if !x.is_empty() && !y.is_empty() && x != y {
            notes.push(format!(
                "the runs used different {what} (`{x}` vs `{y}`): latency and throughput may not be comparable"
            ));
        }
    };
    differ("devices", &b.info.device, &c.info.device, &mut notes);
    differ("hosts", &b.info.host.hostname, &c.info.host.hostname, &mut notes);
    differ("CPUs", &b.info.host.cpu_model, &c.info.host.cpu_model, &mut notes);
    if b.info.threads != c.info.threads && b.info.threads > 0 && c.info.threads > 0 {
        differ("thread counts", &b.info.threads.to_string(), &c.info.threads.to_string(), &mut notes);
    }
    notes
}

/// Which side of the candidate a bound holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Below,
    Above,
}

/// One bound a rule puts on the candidate.
struct Bound {
    side: Side,
    /// In the metric's units.
    value: f64,
    /// The threshold it came from (`None`: an absolute `min`/`max`).
    threshold: Option<Threshold>,
}

fn bounds(rule: &GateRule, b: f64) -> Vec<Bound> {
    let mut out = Vec::new();
    if let Some(t) = rule.max_drop {
        out.push(Bound { side: Side::Below, value: b - t.amount(b), threshold: Some(t) });
    }
    if let Some(t) = rule.max_increase {
        out.push(Bound { side: Side::Above, value: b + t.amount(b), threshold: Some(t) });
    }
    if let Some(v) = rule.min {
        out.push(Bound { side: Side::Below, value: v, threshold: None });
    }
    if let Some(v) = rule.max {
        out.push(Bound { side: Side::Above, value: v, threshold: None });
    }
    out
}

/// `-0.005`, `+10%`, `min 0.9500`.
fn allowed(bound: &Bound, metric: &str) -> String {
    match (bound.threshold, bound.side) {
        (Some(t), Side::Below) => format!("-{t}"),
        (Some(t), Side::Above) => format!("+{t}"),
        (None, Side::Below) => format!("min {}", value(metric, bound.value)),
        (None, Side::Above) => format!("max {}", value(metric, bound.value)),
    }
}

fn check(
    variant: &str,
    metric: &str,
    b_row: &MetricRow,
    c_row: &MetricRow,
    rule: Option<&GateRule>,
    ratio: Option<RatioInterval>,
    p_value: Option<f64>,
) -> Check {
    let (baseline, candidate) = (metric_value(b_row, metric), metric_value(c_row, metric));
    let sampled = Stat::of_metric(metric).is_some();
    let mut out = Check {
        variant: variant.to_string(),
        metric: metric.to_string(),
        baseline,
        candidate,
        rule: rule.copied(),
        limit: None,
        ratio,
        p_value,
        test: match (sampled, ratio, rule) {
            (true, Some(_), _) => Test::Bootstrap,
            (true, None, _) => Test::NoSamples,
            (false, _, Some(_)) => Test::Threshold,
            (false, _, None) => Test::None,
        },
        verdict: Verdict::Info,
        detail: String::new(),
    };
    let (Some(b), Some(c)) = (baseline, candidate) else {
        out.test = Test::None;
        out.verdict = Verdict::NoData;
        out.detail =
            format!("not measured in the {}", if baseline.is_none() { "baseline" } else { "candidate" });
        return out;
    };
    let pct = |x: f64| if b != 0.0 { format!("{:+.1}%", x / b.abs() * 100.0) } else { "—".into() };
    let interval = ratio.map(|r| format!(", ratio {:.3}–{:.3}", r.low, r.high)).unwrap_or_default();
    if is_timing(metric) && (is_invalid(b_row) || is_invalid(c_row)) {
        let why = |side: &str, row: &MetricRow| {
            let reason =
                if row.invalid_reason.is_empty() { "no reason recorded" } else { &row.invalid_reason };
            is_invalid(row).then(|| format!("{side} invalid: {reason}"))
        };
        let reasons: Vec<String> =
            [why("candidate", c_row), why("baseline", b_row)].into_iter().flatten().collect();
        out.test = Test::None;
        out.verdict = if is_invalid(c_row) { Verdict::CandidateInvalid } else { Verdict::BaselineInvalid };
        out.detail = format!("{}; {} (not gated)", reasons.join("; "), signed(metric, c - b));
        return out;
    }
    let Some(rule) = rule else {
        out.detail = format!("{}{interval}", signed(metric, c - b));
        return out;
    };

    let eps = 1e-9 * b.abs().max(c.abs()).max(1.0);
    let bounds = bounds(rule, b);
    // A bound crossed by the candidate. Latency thresholds are judged on the interval
    // of the ratio (scaled to the metric by the baseline), the rest on the values.
    let crossed = |bd: &Bound| match (bd.threshold, ratio) {
        (Some(_), Some(r)) => match bd.side {
            Side::Above => r.low * b > bd.value + eps,
            Side::Below => r.high * b < bd.value - eps,
        },
        _ => match bd.side {
            Side::Above => c > bd.value + eps,
            Side::Below => c < bd.value - eps,
        },
    };
    // Better by more than the threshold allows the other way.
    let improved = |bd: &Bound| {
        let Some(t) = bd.threshold else { return false };
        let mirror = match bd.side {
            Side::Above => b - t.amount(b),
            Side::Below => b + t.amount(b),
        };
        match (ratio, bd.side) {
            (Some(r), Side::Above) => r.high * b < mirror - eps,
            (Some(r), Side::Below) => r.low * b > mirror + eps,
            (None, Side::Above) => c < mirror - eps,
            (None, Side::Below) => c > mirror + eps,
        }
    };
    let toward = if c < b { Side::Below } else { Side::Above };
    let hit = bounds.iter().find(|bd| crossed(bd));
    let shown = hit
        .or_else(|| bounds.iter().find(|bd| bd.side == toward))
        .or_else(|| bounds.first())
        .expect("a checked rule sets at least one bound");
    out.limit = Some(shown.value);
    out.verdict = match hit {
        Some(_) => Verdict::Regression,
        None if bounds.iter().any(improved) => Verdict::Improved,
        None => Verdict::Ok,
    };
    let change = match shown.threshold {
        Some(Threshold::Relative(_)) => pct(c - b),
        _ => signed(metric, c - b),
    };
    out.detail = match shown.threshold {
        Some(_) => format!("{change}{interval}, allowed {}", allowed(shown, metric)),
        None if hit.is_some() => {
            let side = if shown.side == Side::Below { "below" } else { "above" };
            format!("{change}, {side} {}", allowed(shown, metric))
        }
        None => format!("{change}, {}", allowed(shown, metric)),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{lognormal, run};

    fn gates(yaml: &[(&str, &str, &str)]) -> Gates {
        let mut g = Gates::new();
        for (metric, key, v) in yaml {
            g.entry(metric.to_string()).or_default().set(key, v).unwrap();
        }
        g
    }

    fn only(c: &Comparison, variant: &str, metric: &str) -> Check {
        c.checks.iter().find(|k| k.variant == variant && k.metric == metric).cloned().unwrap()
    }

    fn quick() -> CompareOptions {
        CompareOptions {
            bootstrap: Bootstrap { resamples: 1000, ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn a_small_systematic_shift_does_not_fire_a_larger_latency_gate() {
        let b = lognormal(10, 4000, 40.0, 0.15);
        let c: Vec<f64> = lognormal(11, 4000, 40.0, 0.15).iter().map(|x| x * 1.05).collect();
        let g =
            gates(&[("latency_p50_us", "max_increase", "10%"), ("latency_p99_us", "max_increase", "10%")]);
        let cmp = compare_runs(run("a", &[("m", 0.9, b)]), run("b", &[("m", 0.9, c)]), &g, &quick());
        let k = only(&cmp, "m", "latency_p50_us");
        assert_eq!((k.test, k.verdict), (Test::Bootstrap, Verdict::Ok), "{k:?}");
        // Significant by Mann–Whitney, and rightly not a regression.
        assert!(k.p_value.unwrap() < 1e-6, "{k:?}");
        let r = k.ratio.unwrap();
        assert!(r.low > 1.0 && r.low < 1.1, "{r:?}");
        assert!(!cmp.failed(), "{}", cmp.headline());
        assert_eq!(cmp.headline(), "no regressions in 2 checks");
    }

    #[test]
    fn a_large_shift_fires_and_names_the_variant() {
        let b = lognormal(20, 3000, 40.0, 0.15);
        let c: Vec<f64> = lognormal(21, 3000, 40.0, 0.15).iter().map(|x| x * 1.3).collect();
        let g = gates(&[("latency_p50_us", "max_increase", "10%")]);
        let cmp = compare_runs(run("a", &[("m", 0.9, b)]), run("b", &[("m", 0.9, c)]), &g, &quick());
        let k = only(&cmp, "m", "latency_p50_us");
        assert_eq!(k.verdict, Verdict::Regression, "{k:?}");
        assert!(k.ratio.unwrap().low > 1.1);
        assert!((k.limit.unwrap() - k.baseline.unwrap() * 1.1).abs() < 1e-9);
        let msg = cmp.failure_message().unwrap();
        assert!(msg.starts_with("1 regression: m latency_p50_us "), "{msg}");
        assert!(msg.contains("allowed +10%"), "{msg}");
        // The other way round it is an improvement.
        let cmp = compare_runs(cmp.candidate, cmp.baseline, &g, &quick());
        assert_eq!(only(&cmp, "m", "latency_p50_us").verdict, Verdict::Improved);
    }

    #[test]
    fn few_noisy_samples_do_not_fire_on_a_point_estimate_beyond_the_gate() {
        // 30 samples each: the medians differ by ~15%, but the interval is wide.
        let b = lognormal(30, 30, 40.0, 0.4);
        let c: Vec<f64> = lognormal(31, 30, 40.0, 0.4).iter().map(|x| x * 1.15).collect();
        let g = gates(&[("latency_p50_us", "max_increase", "10%")]);
        let cmp = compare_runs(run("a", &[("m", 0.9, b)]), run("b", &[("m", 0.9, c)]), &g, &quick());
        let k = only(&cmp, "m", "latency_p50_us");
        assert!(k.ratio.unwrap().low < 1.1 && k.verdict != Verdict::Regression, "{k:?}");
    }

    #[test]
    fn absolute_latency_limits_become_ratios_and_missing_samples_fall_back() {
        let b = lognormal(40, 2000, 40.0, 0.1);
        let c: Vec<f64> = lognormal(41, 2000, 40.0, 0.1).iter().map(|x| x + 6.0).collect();
        let g5 = gates(&[("latency_p50_us", "max_increase", "5")]);
        let g10 = gates(&[("latency_p50_us", "max_increase", "10")]);
        let (rb, rc) = (run("a", &[("m", 0.9, b)]), run("b", &[("m", 0.9, c)]));
        let k = only(&compare_runs(rb.clone(), rc.clone(), &g5, &quick()), "m", "latency_p50_us");
        assert_eq!(k.verdict, Verdict::Regression, "{k:?}");
        assert!(k.detail.contains("allowed +5"), "{}", k.detail);
        let k = only(&compare_runs(rb.clone(), rc.clone(), &g10, &quick()), "m", "latency_p50_us");
        assert_eq!(k.verdict, Verdict::Ok, "{k:?}");

        let mut no_samples = rc;
        no_samples.latency.clear();
        let k = only(&compare_runs(rb, no_samples, &g5, &quick()), "m", "latency_p50_us");
        assert_eq!((k.test, k.verdict), (Test::NoSamples, Verdict::Regression), "{k:?}");
        assert_eq!(k.test.as_str(), "none (no samples)");
        assert!(k.ratio.is_none() && k.p_value.is_none());
    }

    #[test]
    fn accuracy_drops_absolute_and_relative() {
        let s = lognormal(50, 100, 40.0, 0.1);
        let b = run("a", &[("train", 0.9642, s.clone()), ("prune[sparsity=0.9]", 0.9642, s.clone())]);
        let c = run("b", &[("train", 0.9600, s.clone()), ("prune[sparsity=0.9]", 0.9101, s)]);
        let g = gates(&[("accuracy", "max_drop", "0.005")]);
        let cmp = compare_runs(b.clone(), c.clone(), &g, &quick());
        assert_eq!(only(&cmp, "train", "accuracy").verdict, Verdict::Ok);
        let k = only(&cmp, "prune[sparsity=0.9]", "accuracy");
        assert_eq!(k.verdict, Verdict::Regression);
        assert_eq!(k.summary(), "prune[sparsity=0.9] accuracy 0.9642 -> 0.9101 (-0.0541, allowed -0.005)");
        assert!((k.limit.unwrap() - 0.9592).abs() < 1e-12);
        assert_eq!(
            cmp.failure_message().unwrap(),
            "1 regression: prune[sparsity=0.9] accuracy 0.9642 -> 0.9101 (-0.0541, allowed -0.005)"
        );
        // 6% of 0.9642 is 0.0579: the same drop passes a relative gate.
        let cmp = compare_runs(b.clone(), c.clone(), &gates(&[("accuracy", "max_drop", "6%")]), &quick());
        let k = only(&cmp, "prune[sparsity=0.9]", "accuracy");
        assert_eq!(k.verdict, Verdict::Ok, "{k:?}");
        assert!(k.detail.starts_with("-5.6%"), "{}", k.detail);
        // Exactly at the limit passes (no floating-point surprise).
        let at = run("c", &[("train", 0.9642 - 0.005, vec![])]);
        let cmp = compare_runs(b.clone(), at, &g, &quick());
        assert_eq!(only(&cmp, "train", "accuracy").verdict, Verdict::Ok);
        // Better than baseline + the allowed drop is an improvement.
        let better = run("d", &[("train", 0.98, vec![])]);
        let cmp = compare_runs(b, better, &g, &quick());
        assert_eq!(only(&cmp, "train", "accuracy").verdict, Verdict::Improved);
    }

    #[test]
    fn zero_tolerance_and_absolute_bounds() {
        let s = lognormal(60, 50, 40.0, 0.1);
        let b = run("a", &[("m", 0.95, s.clone())]);
        let mut c = run("b", &[("m", 0.93, s)]);
        c.metrics[0].file_size_bytes += 1;
        let g = gates(&[("file_size_bytes", "max_increase", "0"), ("accuracy", "min", "0.94")]);
        let cmp = compare_runs(b.clone(), c, &g, &quick());
        let k = only(&cmp, "m", "file_size_bytes");
        assert_eq!(k.verdict, Verdict::Regression);
        assert_eq!(k.detail, "+1, allowed +0");
        let k = only(&cmp, "m", "accuracy");
        assert_eq!((k.verdict, k.limit), (Verdict::Regression, Some(0.94)));
        assert_eq!(k.detail, "-0.0200, below min 0.9400");
        assert_eq!(cmp.headline(), "2 regressions in 2 checks");

        let g = gates(&[("accuracy", "max", "0.9")]);
        let k = only(&compare_runs(b.clone(), b.clone(), &g, &quick()), "m", "accuracy");
        assert_eq!((k.verdict, k.detail.as_str()), (Verdict::Regression, "+0.0000, above max 0.9000"));
        let g = gates(&[("accuracy", "min", "0.9"), ("file_size_bytes", "max_increase", "0")]);
        let cmp = compare_runs(b.clone(), b, &g, &quick());
        assert!(cmp.checks.iter().all(|k| k.verdict == Verdict::Ok), "{:?}", cmp.checks);
    }

    #[test]
    fn added_and_removed_variants() {
        let s = lognormal(70, 50, 40.0, 0.1);
        let b = run("a", &[("train", 0.9, s.clone()), ("fp16", 0.9, s.clone())]);
        let c = run("b", &[("train", 0.9, s.clone()), ("bf16", 0.9, s)]);
        let g = gates(&[("accuracy", "max_drop", "0.005")]);
        let cmp = compare_runs(b.clone(), c.clone(), &g, &quick());
        assert_eq!((cmp.added.clone(), cmp.removed.clone()), (vec!["bf16".into()], vec!["fp16".into()]));
        assert_eq!(cmp.checks.len(), 1);
        assert!(!cmp.failed());
        let strict = CompareOptions { require_all: true, ..quick() };
        let cmp = compare_runs(b, c, &g, &strict);
        assert!(cmp.failed());
        assert_eq!(cmp.headline(), "no regressions in 1 check; 1 variant missing from the candidate");
        assert_eq!(
            cmp.failure_message().unwrap(),
            "the candidate lacks variants of the baseline: missing from the candidate (--require-all): fp16"
        );
    }

    #[test]
    fn no_gates_compares_the_default_metrics_for_information() {
        let s = lognormal(80, 200, 40.0, 0.1);
        let mut c = run("b", &[("m", 0.5, s.clone())]);
        c.metrics[0].mem_peak_b1_bytes = 0;
        c.info.device = "cuda:0".into();
        let cmp = compare_runs(run("a", &[("m", 0.9, s)]), c, &Gates::new(), &quick());
        assert_eq!(cmp.metrics(), DEFAULT_COMPARE_METRICS);
        assert!(cmp.checks.iter().all(|k| k.verdict == Verdict::Info));
        assert!(!cmp.failed() && cmp.failure_message().is_none());
        assert_eq!(cmp.headline(), "nothing is gated: 4 values compared for information");
        assert!(cmp.notes[0].contains("different devices (`cpu` vs `cuda:0`)"), "{:?}", cmp.notes);
        // A value not measured in one run is no data, not a failure.
        let g = gates(&[("mem_peak_b1_bytes", "max_increase", "10%")]);
        let s = lognormal(81, 20, 40.0, 0.1);
        let mut c = run("b", &[("m", 0.9, s.clone())]);
        c.metrics[0].mem_peak_b1_bytes = 0;
        let k = only(&compare_runs(run("a", &[("m", 0.9, s)]), c, &g, &quick()), "m", "mem_peak_b1_bytes");
        assert_eq!((k.verdict, k.test), (Verdict::NoData, Test::None));
    }

    /// A row timed on a disturbed machine.
    fn invalid(mut run: crate::RunData, reason: &str) -> crate::RunData {
        for m in &mut run.metrics {
            m.validity = "invalid".into();
            m.invalid_reason = reason.into();
        }
        run
    }

    fn valid(mut run: crate::RunData) -> crate::RunData {
        for m in &mut run.metrics {
            m.validity = "valid".into();
        }
        run
    }

    #[test]
    fn an_invalid_candidate_is_said_to_be_invalid_not_a_regression() {
        let b = lognormal(90, 2000, 40.0, 0.1);
        let c: Vec<f64> = lognormal(91, 2000, 40.0, 0.1).iter().map(|x| x * 1.5).collect();
        let g = gates(&[("latency_p50_us", "max_increase", "10%"), ("accuracy", "max_drop", "0.005")]);
        let base = valid(run("a", &[("m", 0.9, b)]));
        let slow = run("b", &[("m", 0.8, c)]);
        // Valid, it is a regression judged on the samples.
        let k = only(&compare_runs(base.clone(), valid(slow.clone()), &g, &quick()), "m", "latency_p50_us");
        assert_eq!((k.test, k.verdict), (Test::Bootstrap, Verdict::Regression));
        // Invalid: not judged, says why, and does not fail; accuracy is still gated.
        let cmp = compare_runs(base, invalid(slow, "others used 40% of the CPUs"), &g, &quick());
        let k = only(&cmp, "m", "latency_p50_us");
        assert_eq!((k.test, k.verdict), (Test::None, Verdict::CandidateInvalid), "{k:?}");
        assert!(k.ratio.is_none() && k.p_value.is_none(), "the samples are not used");
        assert!(k.detail.starts_with("candidate invalid: others used 40% of the CPUs; +"), "{}", k.detail);
        assert_eq!(only(&cmp, "m", "accuracy").verdict, Verdict::Regression);
        assert_eq!(cmp.regressions().count(), 1);
        assert_eq!(cmp.headline(), "1 regression in 2 checks; 1 not judged (invalid timing)");
        assert_eq!(k.verdict.as_str(), "candidate-invalid");
    }

    #[test]
    fn an_invalid_baseline_is_flagged_and_not_gated() {
        let s = lognormal(92, 500, 40.0, 0.1);
        let fast: Vec<f64> = s.iter().map(|x| x * 0.5).collect();
        let g = gates(&[("latency_p50_us", "max_increase", "10%"), ("throughput_ips", "max_drop", "5%")]);
        let base = invalid(run("a", &[("m", 0.9, fast)]), "");
        let cmp = compare_runs(base, valid(run("b", &[("m", 0.9, s)])), &g, &quick());
        for metric in ["latency_p50_us", "throughput_ips"] {
            let k = only(&cmp, "m", metric);
            assert_eq!(k.verdict, Verdict::BaselineInvalid, "{k:?}");
            assert!(k.detail.starts_with("baseline invalid: no reason recorded"), "{}", k.detail);
        }
        assert!(!cmp.failed(), "{}", cmp.headline());
        let md = crate::comparison_markdown(&cmp);
        assert!(md.contains("| ⚠ baseline invalid |"), "{md}");
        assert!(md.contains("⚠ invalid: a run timed the variant on a disturbed machine"), "{md}");
    }

    #[test]
    fn runs_without_validity_behave_as_before() {
        let b = lognormal(94, 2000, 40.0, 0.1);
        let c: Vec<f64> = lognormal(95, 2000, 40.0, 0.1).iter().map(|x| x * 1.5).collect();
        let g = gates(&[("latency_p50_us", "max_increase", "10%")]);
        let (old_b, old_c) = (run("a", &[("m", 0.9, b)]), run("b", &[("m", 0.9, c)]));
        assert!(old_b.metrics[0].validity.is_empty());
        let k = only(&compare_runs(old_b, old_c, &g, &quick()), "m", "latency_p50_us");
        assert_eq!((k.test, k.verdict), (Test::Bootstrap, Verdict::Regression));
    }

    /// Validity travels through the run directories' tables.
    #[test]
    fn validity_is_read_from_run_directories() {
        let b = lognormal(96, 400, 40.0, 0.1);
        let c: Vec<f64> = b.iter().map(|x| x * 1.5).collect();
        let root = tempfile::tempdir().unwrap();
        let base = crate::testutil::write_run(root.path(), &valid(run("a", &[("m", 0.9, b)])));
        let cand = crate::testutil::write_run(root.path(), &invalid(run("b", &[("m", 0.9, c)]), "steal 30%"));
        let g = gates(&[("latency_p50_us", "max_increase", "10%")]);
        let cmp = crate::compare(&base, &cand, &g, &quick()).unwrap();
        let k = only(&cmp, "m", "latency_p50_us");
        assert_eq!(k.verdict, Verdict::CandidateInvalid, "{k:?}");
        assert!(k.detail.starts_with("candidate invalid: steal 30%"), "{}", k.detail);
        assert!(!cmp.failed());
    }
}
