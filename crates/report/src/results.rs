//! The results of the evaluated variants, for the HTML "Results" section and the
//! markdown summary: the metrics table (every latency and throughput figure with its
//! interval, invalid timings marked), the size and memory table, the protocol of each
//! evaluate stage's timing with a summary of its timing plan, and the repetitions.

use std::fmt::Write;

use slimbench_core::records::{MetricRow, RepeatRow, TimingRound};

use crate::charts::{ChartData, distinct};
use crate::format::{self, Timed, html as esc, invalid_footnote};
use crate::markdown::cell;
use crate::table::{Cell, HTML, MARKDOWN, Show, Style, Table};
use crate::{Highlight, ReportInput};

/// µs with one decimal, the unit of every latency column.
fn us(v: f64) -> String {
    format::measured(v, 1)
}

/// The batch-1 p50 of a row with its interval, marked when invalid.
pub(crate) fn p50(m: &MetricRow) -> Timed<'_> {
    Timed::interval(m.latency_p50_us, m.latency_p50_lo_us, m.latency_p50_hi_us, us)
        .validity(&m.validity, &m.invalid_reason)
}

/// The throughput of a row at its largest batch (`@256`) with its interval.
pub(crate) fn throughput(m: &MetricRow) -> Timed<'_> {
    let t = Timed::interval(m.throughput_ips, m.throughput_lo_ips, m.throughput_hi_ips, format::rate);
    let t = if m.batch_size > 0 { t.note(format!("@{}", m.batch_size)) } else { t };
    t.validity(&m.validity, &m.invalid_reason)
}

/// Whether any row measured energy.
fn any_energy(metrics: &[MetricRow]) -> bool {
    metrics.iter().any(|m| m.energy_per_1k_inferences_j.is_finite() || m.train_energy_per_epoch_j.is_finite())
}

/// Whether any row measured memory the way slimbench does since it measures each
/// model (rows of older runs have none).
fn any_memory(metrics: &[MetricRow]) -> bool {
    metrics.iter().any(|m| m.weights_bytes > 0 || m.mem_load_bytes > 0 || m.mem_peak_b1_bytes > 0)
}

/// The metrics table: every column in HTML, the headline ones in markdown.
fn metrics_table(input: &ReportInput, data: Option<&ChartData<'_>>) -> Table {
    let metrics = &input.metrics;
    let energy = any_energy(metrics);
    let memory = any_memory(metrics);
    let mut t = Table::new("metrics");
    t.text("Variant", Show::Both)
        .text("Technique", Show::Both)
        .text("Model", Show::Html)
        .text("Dataset", Show::Html)
        .text("Precision", Show::Both)
        .num("Sparsity", Show::Both)
        .num("Accuracy", Show::Both)
        .num("p50 (µs)", Show::Both)
        .num("p90 (µs)", Show::Html)
        .num("p99 (µs)", Show::Html)
        .num("Throughput (img/s)", Show::Both)
        .num("Size (KB)", Show::Markdown);
    if memory {
        t.num("Weights", Show::Markdown).num("Peak, batch 1", Show::Markdown);
    }
    t.num("Train time", Show::Html);
    if energy {
        t.num("J / 1,000 inferences", Show::Html).num("Train J / epoch", Show::Html);
    }
    for (m, hl) in metrics.iter().zip(crate::highlights(metrics)) {
        let Highlight { best, fastest, pareto } = hl;
        let mut badges = String::new();
        let mut marks = String::new();
        for (on, class, title, text, mark) in [
            (best, "best", "best accuracy of the run", "★ best", " ★"),
            (
                fastest,
                "fast",
                "lowest batch-1 latency: no other variant's p50 interval lies entirely below its own",
                "⚡ fastest",
                " ⚡",
            ),
            (
                pareto,
                "pareto",
                "no other variant is both faster (beyond noise) and more accurate",
                "Pareto",
                " ◆",
            ),
        ] {
            if on {
                let _ = write!(badges, "<span class=\"badge {class}\" title=\"{title}\">{text}</span>");
                marks.push_str(mark);
            }
        }
        let swatch = data.map_or(String::new(), |d| {
            format!("<span class=\"swatch\" style=\"background:{}\"></span>", d.colour_hex(&m.variant))
        });
        let accuracy = format::percent(m.accuracy, 2);
        let bound =
            |v: f64, b: f64| Cell::timed(&Timed::bound(v, b, us).validity(&m.validity, &m.invalid_reason));
        let mut cells = vec![
            Cell::raw(format!("{swatch}{}{badges}", esc(&m.variant)), format!("{}{marks}", cell(&m.variant))),
            Cell::text(&m.technique),
            Cell::text(&m.model),
            Cell::text(&m.dataset),
            Cell::text(&format::precision(m)),
            Cell::text(&format::percent(m.sparsity, 1)),
            if best {
                Cell::raw(format!("<b>{accuracy}</b>"), format!("**{accuracy}**"))
            } else {
                Cell::text(&accuracy)
            },
            Cell::timed(&p50(m)),
            bound(m.latency_p90_us, m.latency_p90_bound_us),
            bound(m.latency_p99_us, m.latency_p99_bound_us),
            Cell::timed(&throughput(m)),
            Cell::text(&format::kb(m.file_size_bytes)),
        ];
        if memory {
            cells.push(Cell::text(&format::bytes(m.weights_bytes)));
            cells.push(Cell::text(&format::bytes(m.mem_peak_b1_bytes)));
        }
        cells.push(Cell::text(&if m.train_time_s > 0.0 {
            format::duration(m.train_time_s)
        } else {
            format::MISSING.into()
        }));
        if energy {
            let j = |v, lo, hi| Timed::interval(v, lo, hi, format::joules);
            cells.push(Cell::timed(
                &j(m.energy_per_1k_inferences_j, m.energy_per_1k_lo_j, m.energy_per_1k_hi_j)
                    .validity(&m.validity, &m.invalid_reason),
            ));
            cells.push(Cell::text(&format::joules(m.train_energy_per_epoch_j)));
        }
        t.row(if best { "best" } else { "" }, cells);
    }
    t
}

/// The size and memory table (HTML).
fn memory_table(metrics: &[MetricRow]) -> Table {
    let memory = any_memory(metrics);
    let cuda = metrics.iter().any(|m| m.cuda_peak_bytes > 0);
    let mut t = Table::new("memory");
    t.text("Variant", Show::Both)
        .num("File", Show::Both)
        .num("Params", Show::Both)
        .num("Non-zero", Show::Both);
    if memory {
        t.num("Weights", Show::Both)
            .num("Load", Show::Both)
            .num("Peak, batch 1", Show::Both)
            .num("Peak, large batch", Show::Both);
        if cuda {
            t.num("CUDA peak", Show::Both);
        }
    }
    for m in metrics {
        let mut cells = vec![
            Cell::name(&m.variant),
            Cell::text(&format::bytes(m.file_size_bytes)),
            Cell::text(&format::count(m.params)),
            Cell::text(&format::count(m.nonzero_params)),
        ];
        if memory {
            let large = match (m.mem_peak_large_bytes, m.batch_size) {
                (0, _) => format::MISSING.to_string(),
                (b, 0) => format::bytes(b),
                (b, n) => format!("{} @{n}", format::bytes(b)),
            };
            cells.extend([
                Cell::text(&format::bytes(m.weights_bytes)),
                Cell::text(&format::bytes(m.mem_load_bytes)),
                Cell::text(&format::bytes(m.mem_peak_b1_bytes)),
                Cell::text(&large),
            ]);
            if cuda {
                cells.push(Cell::text(&format::bytes(m.cuda_peak_bytes)));
            }
        }
        t.row("", cells);
    }
    t
}

/// How memory was measured, in a sentence: the methods (with the variants of each when
/// they differ) and the empty process the figures are over.
pub(crate) fn memory_legend(metrics: &[MetricRow], st: &Style) -> String {
    if !any_memory(metrics) {
        return "Memory: not measured per model in this run (it predates slimbench's per-model memory \
                measurement)."
            .into();
    }
    let methods = distinct(metrics.iter().map(|m| m.mem_method.as_str()).filter(|s| !s.is_empty()));
    let how = match methods.as_slice() {
        [] => String::new(),
        [one] => format!(" Measured: {}.", (st.text)(one)),
        many => {
            let each: Vec<String> = many
                .iter()
                .map(|method| {
                    let names: Vec<String> = metrics
                        .iter()
                        .filter(|m| m.mem_method == *method)
                        .map(|m| (st.name)(&m.variant))
                        .collect();
                    format!("{} ({})", (st.text)(method), names.join(", "))
                })
                .collect();
            format!(" Measured: {}.", each.join("; "))
        }
    };
    let base = format::span(
        metrics.iter().filter(|m| m.mem_baseline_bytes > 0).map(|m| m.mem_baseline_bytes as f64),
        |v| format::bytes(v as u64),
    );
    let em = st.em;
    format!(
        "Memory, each model in a process of its own: {} are the bytes of its weights as stored; {} is what \
         the process holds for the model (the allocator's bytes in use with it less those without it, in a \
         warmed-up libtorch process of {base}); {} adds the resident memory's growth during batch-1 and \
         large-batch forwards{}.{how}",
        em("weights"),
        em("load"),
        em("peak"),
        if metrics.iter().any(|m| m.cuda_peak_bytes > 0) {
            format!("; {} is the peak of libtorch's CUDA caching allocator", em("CUDA peak"))
        } else {
            String::new()
        }
    )
}

/// What the rounds of one stage's timing plan show.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Rounds (all repetitions).
    pub(crate) rounds: usize,
    /// Rounds run again after an attempt the machine disturbed.
    pub(crate) retried: usize,
    /// Rounds whose kept attempt is invalid.
    pub(crate) invalid: usize,
    /// The largest share of the machine's CPUs other processes used in a kept attempt.
    pub(crate) others_max: f64,
    /// The largest share the hypervisor stole.
    pub(crate) steal_max: f64,
    /// The lowest CPU time / wall time of the timing thread.
    pub(crate) thread_min: f64,
    /// Lowest and highest mean clock, MHz.
    pub(crate) mhz: (f64, f64),
}

/// The timing plan of `stage` from its rounds, judged on the attempt each round kept
/// (its last); `None` when the stage recorded none.
pub(crate) fn plan(timing: &[TimingRound], stage: &str) -> Option<Plan> {
    let mine: Vec<&TimingRound> = timing.iter().filter(|r| r.stage == stage).collect();
    let mut kept: Vec<&TimingRound> = Vec::new();
    for r in &mine {
        match kept.iter_mut().find(|k| (k.repeat, k.round) == (r.repeat, r.round)) {
            Some(k) if k.attempt < r.attempt => *k = r,
            Some(_) => {}
            None => kept.push(r),
        }
    }
    if kept.is_empty() {
        return None;
    }
    let max = |f: fn(&TimingRound) -> f64| {
        kept.iter().map(|r| f(r)).filter(|v| v.is_finite()).fold(f64::NAN, f64::max)
    };
    let min = |f: fn(&TimingRound) -> f64| {
        kept.iter().map(|r| f(r)).filter(|v| v.is_finite()).fold(f64::NAN, f64::min)
    };
    Some(Plan {
        rounds: kept.len(),
        retried: kept.iter().filter(|r| r.attempt > 0).count(),
        invalid: kept.iter().filter(|r| format::is_invalid(&r.validity)).count(),
        others_max: max(|r| r.others_cpu_share),
        steal_max: max(|r| r.steal_share),
        thread_min: min(|r| r.thread_cpu_ratio),
        mhz: (min(|r| r.cpu_mhz), max(|r| r.cpu_mhz)),
    })
}

/// The evaluate stages of the run: from `run.json`, and those that recorded timing
/// rounds.
fn evaluate_stages(input: &ReportInput) -> Vec<&str> {
    let from_run = input.run.stages.iter().filter(|s| s.kind == "evaluate").map(|s| s.id.as_str());
    distinct(from_run.chain(input.timing.iter().map(|r| r.stage.as_str())))
}

/// The timed rows grouped by how they were timed (device, warm-up, rounds, threads,
/// repetitions), in the order groups first appear. Iterations differ per variant within
/// one plan (each is sized to the minimum duration), so they are a span, not a key. A metric row does not name
/// the evaluate stage that timed it (its `stage` is the one that produced the model),
/// so rows timed alike share one protocol line.
fn protocol_groups(metrics: &[MetricRow]) -> Vec<Vec<&MetricRow>> {
    let key = |m: &MetricRow| (m.device.clone(), m.latency_warmup, m.rounds, m.threads, m.repeats);
    let mut groups: Vec<Vec<&MetricRow>> = Vec::new();
    for m in metrics.iter().filter(|m| m.latency_iters > 0) {
        match groups.iter_mut().find(|g| key(g[0]) == key(m)) {
            Some(g) => g.push(m),
            None => groups.push(vec![m]),
        }
    }
    groups
}

/// How one group of rows was timed, from its warm-up on (`100 warm-up and 1,000 timed
/// batch-1 inferences per variant over 0.12–0.19 s, ...`).
fn protocol_text(rows: &[&MetricRow]) -> String {
    let count = |f: fn(&MetricRow) -> u64| format::thousands(f(rows[0]));
    let mut s = format!(
        "{} warm-up and {} timed batch-1 inferences per variant",
        count(|m| m.latency_warmup),
        format::span(rows.iter().map(|m| m.latency_iters as f64), |v| format::thousands(v as u64))
    );
    let durations = || rows.iter().map(|m| m.latency_duration_s).filter(|d| *d > 0.0);
    match durations().fold(f64::NAN, f64::max) {
        longest if longest < 10.0 => {
            let _ = write!(s, " over {} s", format::span(durations(), |v| format!("{v:.2}")));
        }
        longest if longest.is_finite() => {
            let _ = write!(s, " over {}", format::span(durations(), format::duration));
        }
        _ => {}
    }
    if rows[0].rounds > 0 {
        let _ = write!(s, ", interleaved in {} rounds (every variant timed in each)", count(|m| m.rounds));
    }
    let threads = rows[0].threads;
    let _ = write!(s, ", on {threads} thread{}", if threads == 1 { "" } else { "s" });
    if rows[0].repeats > 1 {
        let _ = write!(s, "; the plan ran {} times, its figures pool every repetition", count(|m| m.repeats));
    }
    s.push('.');
    s
}

/// What a timing plan's rounds show, in a sentence after `Timing plan: `.
fn plan_text(p: &Plan) -> String {
    let none = |n: usize| if n == 0 { "none".to_string() } else { n.to_string() };
    let rounds = if p.rounds == 1 { "1 round".to_string() } else { format!("{} rounds", p.rounds) };
    let mut s = format!("{rounds}, {} retried, {} invalid", none(p.retried), none(p.invalid));
    if p.others_max.is_finite() {
        let _ = write!(s, "; at worst other processes used {} of the CPUs", format::percent(p.others_max, 1));
        if p.steal_max.is_finite() {
            let _ = write!(s, " (steal {})", format::percent(p.steal_max, 1));
        }
    }
    if p.thread_min.is_finite() {
        let _ = write!(s, ", the timing thread ran {} of its wall time", format::percent(p.thread_min, 0));
    }
    if p.mhz.0.is_finite() {
        let mhz = format::span([p.mhz.0, p.mhz.1], |v| format::thousands(v.round() as u64));
        let _ = write!(s, ", clock {mhz} MHz");
    }
    s.push('.');
    s
}

/// The timing protocol, stated once per evaluate stage (per group of rows timed alike
/// where the run had several): warm-up, iterations, duration, rounds, threads,
/// repetitions; then what each timing plan's rounds show.
pub(crate) fn protocol(input: &ReportInput, st: &Style) -> Vec<String> {
    let evaluates = evaluate_stages(input);
    let groups = protocol_groups(&input.metrics);
    let devices = distinct(groups.iter().map(|g| g[0].device.as_str()));
    let mut out: Vec<String> = groups
        .iter()
        .map(|g| {
            let of = match evaluates.as_slice() {
                [one] => format!(" of {}", (st.name)(one)),
                _ if groups.len() == 1 => String::new(),
                _ if devices.len() == groups.len() => format!(" on {}", (st.name)(&g[0].device)),
                _ => {
                    format!(" of {}", g.iter().map(|m| (st.name)(&m.variant)).collect::<Vec<_>>().join(", "))
                }
            };
            format!("Timing{of}: {}", protocol_text(g))
        })
        .collect();
    let planned = distinct(input.timing.iter().map(|r| r.stage.as_str()));
    for stage in &planned {
        let Some(p) = plan(&input.timing, stage) else { continue };
        match out.as_mut_slice() {
            [one] if planned.len() == 1 => {
                let _ = write!(one, " Timing plan: {}", plan_text(&p));
            }
            _ => out.push(format!("Timing plan of {}: {}", (st.name)(stage), plan_text(&p))),
        }
    }
    out
}

/// The repetitions of the timing plan: per variant and batch size, each repetition's
/// p50 and the spread over them; empty when the plan ran once.
fn repeats_table(rows: &[RepeatRow]) -> Table {
    let mut t = Table::new("repeats");
    let count = rows.iter().map(|r| r.repeat).max().map_or(0, |m| m + 1);
    if count < 2 {
        return t;
    }
    t.text("Variant", Show::Both).num("Batch", Show::Both);
    for k in 0..count {
        t.num(format!("Repeat {} p50 (µs)", k + 1), Show::Both);
    }
    t.num("Spread", Show::Both);
    let mut keys: Vec<(&str, u64)> = Vec::new();
    for r in rows {
        if !keys.contains(&(r.variant.as_str(), r.batch_size)) {
            keys.push((r.variant.as_str(), r.batch_size));
        }
    }
    for (variant, batch) in keys {
        let mine: Vec<&RepeatRow> =
            rows.iter().filter(|r| r.variant == variant && r.batch_size == batch).collect();
        let mut cells = vec![Cell::name(variant), Cell::text(&batch.to_string())];
        for k in 0..count {
            cells.push(match mine.iter().find(|r| r.repeat == k) {
                Some(r) => Cell::timed(
                    &Timed::interval(r.p50_us, r.p50_lo_us, r.p50_hi_us, us).validity(&r.validity, ""),
                ),
                None => crate::table::missing(),
            });
        }
        cells.push(Cell::text(&format::percent(spread(mine.iter().map(|r| r.p50_us)), 1)));
        t.row("", cells);
    }
    t
}

/// (max - min) / median of the values, a fraction; NaN with fewer than two.
pub(crate) fn spread(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|v| v.is_finite() && *v > 0.0).collect();
    if v.len() < 2 {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let median = slimbench_core::records::percentile(&v, 50.0);
    (v[v.len() - 1] - v[0]) / median
}

/// The invalid timings of the metric rows, for the footnote under a table.
fn invalid_rows(metrics: &[MetricRow]) -> impl Iterator<Item = (&str, &str)> {
    metrics
        .iter()
        .filter(|m| format::is_invalid(&m.validity))
        .map(|m| (m.variant.as_str(), m.invalid_reason.as_str()))
}

/// The sentence under the tables on intervals and marks.
const INTERVALS: &str = "Figures in brackets are 95% confidence intervals of the median; ≤ is a one-sided 95% upper \
     bound of the percentile (none where too few inferences were timed for one). A variant is faster than another \
     only when its p50 interval lies entirely below the other's: overlapping intervals are the same speed within \
     noise.";

/// The HTML "Results" section.
pub(crate) fn html_section(h: &mut String, input: &ReportInput, data: &ChartData<'_>) {
    let metrics = &input.metrics;
    if metrics.is_empty() {
        crate::table::empty_section(h, "results", "Results", "no variant was evaluated in this run.");
        return;
    }
    h.push_str("<section id=\"results\">\n<h2>Results</h2>\n");
    h.push_str(&metrics_table(input, Some(data)).html());
    let _ = write!(
        h,
        "<p class=\"legend\">★ best: highest top-1 accuracy of the run. ⚡ fastest: no other variant is faster at \
         batch 1 beyond noise. Pareto: no other variant has both a lower batch-1 median latency (beyond noise) and \
         a higher accuracy; invalid timings take no part in these marks. Latencies are single-image inferences; \
         throughput is at the largest batch size measured (@batch). {} {}",
        esc(INTERVALS),
        format::INVALID_MARK
    );
    h.push_str(
        " marks a figure whose timing is invalid (the machine was disturbed, or too little was timed): hover it for \
         the reason; do not trust it.",
    );
    if any_energy(metrics) {
        h.push_str(
            " Energy (where the machine has a counter): joules per 1,000 single-image inferences, and per epoch of \
             the training that produced the variant.",
        );
    }
    h.push_str("</p>\n");
    for line in protocol(input, &HTML) {
        let _ = writeln!(h, "<p class=\"protocol\">{line}</p>");
    }
    if !any_energy(metrics) {
        h.push_str(
            "<p class=\"legend\">Energy: no energy counter on this machine (no readable RAPL, no NVML GPU).</p>\n",
        );
    }
    h.push_str("<h3>Size and memory</h3>\n");
    h.push_str(&memory_table(metrics).html());
    let _ = writeln!(h, "<p class=\"legend\">{} 1 KB = 1000 bytes.</p>", memory_legend(metrics, &HTML));
    let repeats = repeats_table(&input.repeats);
    if !repeats.is_empty() {
        h.push_str("<h3>Repetitions</h3>\n");
        h.push_str(&repeats.html());
        h.push_str(
            "<p class=\"legend\">Each repetition of the timing plan on its own (the figures above pool them); \
             spread: (slowest − fastest) / median of the repetitions' p50s.</p>\n",
        );
    }
    h.push_str("</section>\n");
}

/// The markdown results: the table, its marks and footnotes, the protocol, the
/// repetitions.
pub(crate) fn markdown_section(md: &mut String, input: &ReportInput) {
    let metrics = &input.metrics;
    md.push_str(&metrics_table(input, None).markdown());
    md.push_str(
        "\n★ best accuracy · ⚡ fastest at batch 1 · ◆ Pareto-optimal (batch-1 latency vs accuracy; latencies \
         whose 95% intervals overlap are the same speed within noise)\n",
    );
    if let Some(note) = invalid_footnote(invalid_rows(metrics), cell) {
        let _ = writeln!(md, "\n{note}");
    }
    md.push('\n');
    for line in protocol(input, &MARKDOWN) {
        let _ = writeln!(md, "{line}");
    }
    if any_memory(metrics) {
        let _ = writeln!(md, "\n{}", memory_legend(metrics, &MARKDOWN));
    }
    let repeats = repeats_table(&input.repeats);
    if !repeats.is_empty() {
        let _ = write!(md, "\n#### Repetitions\n\n{}", repeats.markdown());
        let invalid = input
            .repeats
            .iter()
            .filter(|r| format::is_invalid(&r.validity))
            .map(|r| (r.variant.as_str(), ""));
        if let Some(note) = invalid_footnote(invalid, cell) {
            let _ = writeln!(md, "\n{note}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(stage: &str, repeat: u64, round: u64, attempt: u64, others: f64, validity: &str) -> TimingRound {
        TimingRound {
            stage: stage.into(),
            repeat,
            round,
            attempt,
            wall_s: 0.2,
            thread_cpu_ratio: 0.99 - others,
            others_cpu_share: others,
            steal_share: 0.0,
            cpu_mhz: 2400.0 + round as f64,
            validity: validity.into(),
            invalid_reason: String::new(),
        }
    }

    #[test]
    fn the_timing_plan_is_judged_on_the_attempts_kept() {
        let rounds = [
            round("eval", 0, 0, 0, 0.01, "valid"),
            round("eval", 0, 1, 0, 0.45, "invalid"),
            round("eval", 0, 1, 1, 0.02, "valid"),
            round("eval", 0, 2, 0, 0.30, "invalid"),
            round("other", 0, 0, 0, 0.9, "invalid"),
        ];
        let p = plan(&rounds, "eval").unwrap();
        assert_eq!((p.rounds, p.retried, p.invalid), (3, 1, 1));
        assert!((p.others_max - 0.30).abs() < 1e-12 && (p.thread_min - 0.69).abs() < 1e-12, "{p:?}");
        assert_eq!(p.mhz, (2400.0, 2402.0));
        assert!(plan(&rounds, "nothing").is_none());
    }

    /// Two evaluate stages (CPU and GPU): a protocol line per device, a timing plan
    /// per stage.
    #[test]
    fn protocol_per_way_of_timing() {
        let row = |variant: &str, device: &str, threads| MetricRow {
            variant: variant.into(),
            stage: "train".into(),
            device: device.into(),
            latency_warmup: 10,
            latency_iters: 200,
            latency_duration_s: 0.5,
            rounds: 5,
            threads,
            repeats: 1,
            ..Default::default()
        };
        let input = ReportInput {
            metrics: vec![
                row("a", "cpu", 2),
                row("b", "cpu", 2),
                row("a[cuda]", "cuda:0", 1),
                // Not timed: no line.
                MetricRow { variant: "c".into(), ..Default::default() },
            ],
            timing: vec![
                round("eval-cpu", 0, 0, 0, 0.01, "valid"),
                round("eval-gpu", 0, 0, 0, 0.02, "valid"),
            ],
            ..Default::default()
        };
        let lines = protocol(&input, &MARKDOWN);
        assert_eq!(
            lines,
            [
                "Timing on cpu: 10 warm-up and 200 timed batch-1 inferences per variant over 0.50 s, interleaved in \
                 5 rounds (every variant timed in each), on 2 threads.",
                "Timing on cuda:0: 10 warm-up and 200 timed batch-1 inferences per variant over 0.50 s, interleaved \
                 in 5 rounds (every variant timed in each), on 1 thread.",
                "Timing plan of eval-cpu: 1 round, none retried, none invalid; at worst other processes used 1.0% \
                 of the CPUs (steal 0.0%), the timing thread ran 98% of its wall time, clock 2,400 MHz.",
                "Timing plan of eval-gpu: 1 round, none retried, none invalid; at worst other processes used 2.0% \
                 of the CPUs (steal 0.0%), the timing thread ran 97% of its wall time, clock 2,400 MHz.",
            ]
        );
    }

    #[test]
    fn spread_of_repetitions() {
        assert!((spread([100.0, 102.0, 98.0].into_iter()) - 0.04).abs() < 1e-12);
        assert!(spread([100.0].into_iter()).is_nan());
    }
}
