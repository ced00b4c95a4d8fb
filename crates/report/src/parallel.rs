//! Parallel training, async staleness, the machine during the run, and CPU vs GPU:
//! `parallel.parquet`, `staleness.parquet` and `system.parquet` (and the devices of
//! the metric rows) summarised for the HTML sections, the markdown summary and the
//! `parallel_throughput`, `sync_vs_async` and `system` charts.

use std::fmt::Write;

use slimbench_core::records::{MetricRow, ParallelRow, StalenessRow, SystemSample};

use crate::ReportInput;
use crate::charts::distinct;
use crate::format::{self, html as esc};
use crate::markdown::cell;
use crate::table::{Cell, HTML, MARKDOWN, Show, Style, Table, empty_section};

// ---- parallel training ----------------------------------------------------------

/// The strategy's place in the chart and the table: the loader-workers sweep, then
/// data parallelism (sync, then async), then the model-parallel pipelines.
fn group_rank(r: &ParallelRow) -> u8 {
    match (r.strategy.as_str(), r.mode.as_str()) {
        ("single", _) => 0,
        ("data-parallel", "async") => 2,
        ("data-parallel", _) => 1,
        ("model-parallel", _) => 3,
        _ => 4,
    }
}

/// Where a row sits along its strategy's parallel dimension.
fn dimension(r: &ParallelRow) -> (u64, u64) {
    match r.strategy.as_str() {
        "single" => (u64::from(r.workers), 0),
        "data-parallel" => (u64::from(r.replicas.max(1)) * u64::from(r.processes.max(1)), 0),
        "model-parallel" => (u64::from(r.pipeline_stages), u64::from(r.micro_batches)),
        _ => (0, 0),
    }
}

/// The rows in chart and table order: by device (in the order devices first appear),
/// then strategy, then along the strategy's parallel dimension; run order among equals.
pub(crate) fn ordered(rows: &[ParallelRow]) -> Vec<&ParallelRow> {
    let devices = distinct(rows.iter().map(|r| r.device.as_str()));
    let models = distinct(rows.iter().map(|r| r.model.as_str()));
    let mut out: Vec<&ParallelRow> = rows.iter().collect();
    out.sort_by_key(|r| {
        (
            devices.iter().position(|d| *d == r.device),
            models.iter().position(|m| *m == r.model),
            group_rank(r),
            dimension(r),
        )
    });
    out
}

/// Whether two rows are compared with each other: the same model on the same device.
pub(crate) fn same_group(a: &ParallelRow, b: &ParallelRow) -> bool {
    a.device == b.device && a.model == b.model
}

/// One row of each group (model, device), in the order of [`ordered`].
pub(crate) fn groups(rows: &[ParallelRow]) -> Vec<&ParallelRow> {
    let mut out: Vec<&ParallelRow> = Vec::new();
    for r in ordered(rows) {
        if !out.iter().any(|g| same_group(g, r)) {
            out.push(r);
        }
    }
    out
}

/// A row's parallelism, short: `workers 2`, `sync ×2`, `2 procs`, `async ×2`,
/// `pipeline 2×4` (stages × micro-batches).
pub(crate) fn config_label(r: &ParallelRow) -> String {
    match r.strategy.as_str() {
        "single" => format!("workers {}", r.workers),
        "data-parallel" => {
            let mode = if r.mode.is_empty() { "data-parallel" } else { r.mode.as_str() };
            match (r.processes.max(1), r.replicas.max(1)) {
                (1, n) => format!("{mode} ×{n}"),
                (p, 1) if mode == "sync" => format!("{p} procs"),
                (p, 1) => format!("{mode}, {p} procs"),
                (p, n) => format!("{mode} ×{n}, {p} procs"),
            }
        }
        "model-parallel" => format!("pipeline {}×{}", r.pipeline_stages, r.micro_batches),
        "" => "?".into(),
        other => other.to_string(),
    }
}

/// Whether the row's throughput was measured.
pub(crate) fn measured(r: &ParallelRow) -> bool {
    r.images_per_s.is_finite() && r.images_per_s > 0.0
}

/// What a row is compared with: the single-process row of the same model on the same
/// device with the fewest loader workers (the first of equals).
pub(crate) fn baseline<'a>(rows: &'a [ParallelRow], of: &ParallelRow) -> Option<&'a ParallelRow> {
    rows.iter()
        .filter(|r| r.strategy == "single" && same_group(r, of) && measured(r))
        .min_by_key(|r| r.workers)
}

/// The row's throughput over its baseline; NaN without one.
pub(crate) fn vs_baseline(rows: &[ParallelRow], r: &ParallelRow) -> f64 {
    match baseline(rows, r) {
        Some(b) if measured(r) => r.images_per_s / b.images_per_s,
        _ => f64::NAN,
    }
}

/// The takeaways of the parallel rows, per device: the fastest configuration against
/// the single-process baseline, the loader-workers sweep, async against sync, and the
/// pipelines' bubbles.
pub(crate) fn takeaways(rows: &[ParallelRow], st: &Style) -> Vec<String> {
    let (name, text) = (st.name, st.text);
    let devices = distinct(rows.iter().map(|r| r.device.as_str()));
    let models = distinct(rows.iter().map(|r| r.model.as_str()));
    let mut out = Vec::new();
    for group in groups(rows) {
        let mut on = String::new();
        if models.len() > 1 && !group.model.is_empty() {
            on.push_str(&format!(" ({})", name(&group.model)));
        }
        if devices.len() > 1 {
            on.push_str(&format!(" on {}", name(&group.device)));
        }
        let here: Vec<&ParallelRow> = rows.iter().filter(|r| same_group(r, group) && measured(r)).collect();
        let Some(best) =
            here.iter().copied().reduce(|a, b| if b.images_per_s > a.images_per_s { b } else { a })
        else {
            continue;
        };
        let described = |r: &ParallelRow| {
            format!(
                "{} ({}, {} images/s)",
                name(&r.stage),
                text(&config_label(r)),
                format::rate(r.images_per_s)
            )
        };
        match baseline(rows, group) {
            Some(base) if !std::ptr::eq(best, base) => out.push(format!(
                "Fastest{on}: {} ({}) at {} images/s, {} the single-process baseline {}.",
                name(&best.stage),
                text(&config_label(best)),
                format::rate(best.images_per_s),
                format::ratio(best.images_per_s / base.images_per_s),
                described(base),
            )),
            Some(base) if here.len() > 1 => out.push(format!(
                "No parallel configuration{on} beat the single-process baseline {}.",
                described(base)
            )),
            None if here.len() > 1 => out.push(format!(
                "Fastest{on}: {}; no single-process stage to compare it with.",
                described(best)
            )),
            _ => {}
        }
        let singles: Vec<&ParallelRow> = here.iter().copied().filter(|r| r.strategy == "single").collect();
        if let (Some(lo), Some(hi)) =
            (singles.iter().min_by_key(|r| r.workers), singles.iter().rev().max_by_key(|r| r.workers))
            && lo.workers != hi.workers
        {
            out.push(format!(
                "Loader workers {} → {}{on}: {} the throughput ({} → {} images/s).",
                lo.workers,
                hi.workers,
                format::ratio(hi.images_per_s / lo.images_per_s),
                format::rate(lo.images_per_s),
                format::rate(hi.images_per_s),
            ));
        }
        for a in here.iter().filter(|r| r.strategy == "data-parallel" && r.mode == "async") {
            let sync = here.iter().find(|s| {
                s.strategy == "data-parallel"
                    && s.mode == "sync"
                    && (s.replicas, s.processes) == (a.replicas, a.processes)
            });
            if let Some(s) = sync {
                out.push(format!(
                    "{} against {}{on}: {} the throughput, accuracy {} against {}.",
                    text(&config_label(a)),
                    text(&config_label(s)),
                    format::ratio(a.images_per_s / s.images_per_s),
                    format::percent(a.accuracy, 2),
                    format::percent(s.accuracy, 2),
                ));
            }
        }
        for m in here.iter().filter(|r| r.strategy == "model-parallel" && r.bubble_fraction.is_finite()) {
            let ideal = if m.ideal_bubble_fraction.is_finite() {
                format!(
                    ", against {} for an ideal GPipe schedule",
                    format::percent(m.ideal_bubble_fraction, 1)
                )
            } else {
                String::new()
            };
            out.push(format!(
                "{}{on}: the pipeline's stages sat idle {} of the time (bubble){ideal}.",
                text(&config_label(m)),
                format::percent(m.bubble_fraction, 1),
            ));
        }
    }
    out
}

fn any_energy(rows: &[ParallelRow]) -> bool {
    rows.iter().any(|r| r.energy_j.is_finite())
}

/// A row's parallelism in full, for the tooltip of its short label.
fn config_detail(r: &ParallelRow) -> String {
    let mut parts = vec![format!("strategy {}", if r.strategy.is_empty() { "?" } else { &r.strategy })];
    if !r.mode.is_empty() {
        parts.push(format!("mode {}", r.mode));
    }
    parts.push(format!("{} loader worker{}", r.workers, if r.workers == 1 { "" } else { "s" }));
    parts.push(format!("{} replica{}", r.replicas, if r.replicas == 1 { "" } else { "s" }));
    parts.push(format!("{} process{}", r.processes, if r.processes == 1 { "" } else { "es" }));
    if r.strategy == "model-parallel" {
        parts.push(format!("{} pipeline stages × {} micro-batches", r.pipeline_stages, r.micro_batches));
    }
    parts.join(", ")
}

/// The parallel rows, in the order of [`ordered`]: the parallelism as one short label
/// (its details in a tooltip), so the table fits the page; markdown keeps the headline
/// columns.
fn parallel_table(rows: &[ParallelRow]) -> Table {
    let energy = any_energy(rows);
    let mut t = Table::new("parallel");
    t.text("Stage", Show::Both)
        .text("Parallelism", Show::Both)
        .text("Device", Show::Both)
        .num("Batch", Show::Html)
        .num("Epochs", Show::Html)
        .num("Train time", Show::Html)
        .num("Images/s", Show::Both)
        .num("× baseline", Show::Both)
        .num("Bubble measured / ideal", Show::Html)
        .num("Accuracy", Show::Both);
    if energy {
        t.num("Energy J", Show::Html);
    }
    for r in ordered(rows) {
        let is_base = baseline(rows, r).is_some_and(|b| std::ptr::eq(b, r));
        let bubble = if r.bubble_fraction.is_finite() || r.ideal_bubble_fraction.is_finite() {
            format!(
                "{} / {}",
                format::percent(r.bubble_fraction, 1),
                format::percent(r.ideal_bubble_fraction, 1)
            )
        } else {
            format::MISSING.into()
        };
        let label = config_label(r);
        let mut cells = vec![
            Cell::name(&r.stage),
            Cell::raw(
                format!("<span title=\"{}\">{}</span>", esc(&config_detail(r)), esc(&label)),
                cell(&label),
            ),
            Cell::text(if r.device.is_empty() { format::MISSING } else { &r.device }),
            Cell::text(&format::count(r.batch_size)),
            Cell::text(&r.epochs.to_string()),
            Cell::text(&if r.train_time_s > 0.0 {
                format::duration(r.train_time_s)
            } else {
                format::MISSING.into()
            }),
            Cell::text(&format::rate(r.images_per_s)),
            if is_base {
                Cell::raw("<span class=\"dim\">baseline</span>".into(), "baseline".into())
            } else {
                Cell::text(&format::ratio(vs_baseline(rows, r)))
            },
            Cell::text(&bubble),
            Cell::text(&format::percent(r.accuracy, 2)),
        ];
        if energy {
            cells.push(Cell::text(&format::joules(r.energy_j)));
        }
        t.row("", cells);
    }
    t
}

/// "Parallel training": the parallel rows with their takeaways; one line without any.
pub(crate) fn parallel_html(h: &mut String, rows: &[ParallelRow]) {
    if rows.is_empty() {
        empty_section(h, "parallel", "Parallel training", messages::NO_PARALLEL);
        return;
    }
    h.push_str("<section id=\"parallel\">\n<h2>Parallel training</h2>\n");
    h.push_str(&parallel_table(rows).html());
    let lines = takeaways(rows, &HTML);
    if !lines.is_empty() {
        h.push_str("<ul class=\"takeaways\">\n");
        for line in lines {
            let _ = writeln!(h, "<li>{line}</li>");
        }
        h.push_str("</ul>\n");
    }
    let _ = writeln!(h, "<p class=\"legend\">{}</p>\n</section>", messages::PARALLEL_LEGEND);
}

/// The markdown section: the parallel rows, short, and the takeaways; nothing when the
/// run has none.
pub(crate) fn parallel_markdown(md: &mut String, rows: &[ParallelRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = write!(md, "\n#### Parallel training\n\n{}", parallel_table(rows).markdown());
    let lines = takeaways(rows, &MARKDOWN);
    if !lines.is_empty() {
        md.push('\n');
        for line in lines {
            let _ = writeln!(md, "- {line}");
        }
    }
}

// ---- the stages the sync-vs-async chart draws -------------------------------------

fn has_loss_curve(input: &ReportInput, stage: &str) -> bool {
    input.curves.iter().any(|c| c.stage == stage && c.split == "train" && c.loss.is_finite())
}

/// Every data-parallel row whose stage recorded a training loss curve, plus at most
/// one single-process row with a curve (the same batch size as the first data-parallel
/// row where there is one, fewest loader workers) as the baseline.
pub(crate) fn sync_async_rows(input: &ReportInput) -> Vec<&ParallelRow> {
    let mut rows: Vec<&ParallelRow> = input
        .parallel
        .iter()
        .filter(|r| r.strategy == "data-parallel" && has_loss_curve(input, &r.stage))
        .collect();
    let Some(first) = rows.first().copied() else {
        return rows;
    };
    let singles =
        || input.parallel.iter().filter(|r| r.strategy == "single" && has_loss_curve(input, &r.stage));
    let single = singles()
        .filter(|r| r.batch_size == first.batch_size)
        .min_by_key(|r| r.workers)
        .or_else(|| singles().min_by_key(|r| r.workers));
    rows.sort_by_key(|r| (group_rank(r), dimension(r)));
    if let Some(s) = single {
        rows.insert(0, s);
    }
    rows
}

// ---- async staleness --------------------------------------------------------------

/// One async stage's updates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Staleness<'a> {
    pub(crate) stage: &'a str,
    pub(crate) updates: usize,
    pub(crate) workers: usize,
    pub(crate) mean: f64,
    pub(crate) median: f64,
    pub(crate) max: u64,
    /// (update, staleness), by update.
    pub(crate) points: Vec<(u64, u64)>,
}

/// The staleness rows per stage, in the order stages first appear.
pub(crate) fn staleness(rows: &[StalenessRow]) -> Vec<Staleness<'_>> {
    distinct(rows.iter().map(|r| r.stage.as_str()))
        .into_iter()
        .map(|stage| {
            let mine: Vec<&StalenessRow> = rows.iter().filter(|r| r.stage == stage).collect();
            let mut points: Vec<(u64, u64)> = mine.iter().map(|r| (r.update, r.staleness)).collect();
            points.sort_unstable();
            let mut values: Vec<u64> = points.iter().map(|p| p.1).collect();
            values.sort_unstable();
            let n = values.len();
            let median = if n % 2 == 1 {
                values[n / 2] as f64
            } else {
                (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0
            };
            let mut workers: Vec<u32> = mine.iter().map(|r| r.worker).collect();
            workers.sort_unstable();
            workers.dedup();
            Staleness {
                stage,
                updates: n,
                workers: workers.len(),
                mean: values.iter().sum::<u64>() as f64 / n as f64,
                median,
                max: values.last().copied().unwrap_or(0),
                points,
            }
        })
        .collect()
}

/// "Async staleness": per async stage, how stale its updates were.
pub(crate) fn staleness_html(h: &mut String, input: &ReportInput) {
    let stages = staleness(&input.staleness);
    if stages.is_empty() {
        empty_section(h, "staleness", "Async staleness", messages::NO_STALENESS);
        return;
    }
    h.push_str("<section id=\"staleness\">\n<h2>Async staleness</h2>\n");
    h.push_str(
        "<table class=\"staleness\">\n<thead><tr><th>Stage</th><th>Parallelism</th><th class=\"num\">Updates</th>\
         <th class=\"num\">Workers</th><th class=\"num\">Mean</th><th class=\"num\">Median</th>\
         <th class=\"num\">Max</th></tr></thead>\n<tbody>\n",
    );
    for s in &stages {
        let config = input
            .parallel
            .iter()
            .find(|r| r.stage == s.stage)
            .map_or(format::MISSING.to_string(), |r| esc(&config_label(r)));
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{config}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.2}</td><td class=\"num\">{:.1}</td><td class=\"num\">{}</td></tr>",
            esc(s.stage),
            format::thousands(s.updates as u64),
            s.workers,
            s.mean,
            s.median,
            s.max,
        );
    }
    let _ =
        writeln!(h, "</tbody></table>\n<p class=\"legend\">{}</p>\n</section>", messages::STALENESS_LEGEND);
}

// ---- the machine during the run -----------------------------------------------------

/// Whether any sample has a GPU reading.
pub(crate) fn any_gpu(samples: &[SystemSample]) -> bool {
    samples.iter().any(|s| s.gpu_util_percent.is_finite() || s.gpu_power_w.is_finite())
}

/// The samples laid end to end: stages one after another, in the order they first
/// appear, each offset by the previous stages' spans (their largest `t_s`).
pub(crate) struct Timeline<'a> {
    /// (stage, start s, end s).
    pub(crate) stages: Vec<(&'a str, f64, f64)>,
    /// (seconds since the first stage began, sample), stage by stage.
    pub(crate) samples: Vec<(f64, &'a SystemSample)>,
}

pub(crate) fn timeline(samples: &[SystemSample]) -> Timeline<'_> {
    let mut out = Timeline { stages: Vec::new(), samples: Vec::with_capacity(samples.len()) };
    let mut offset = 0.0;
    for stage in distinct(samples.iter().map(|s| s.stage.as_str())) {
        let mut mine: Vec<&SystemSample> =
            samples.iter().filter(|s| s.stage == stage && s.t_s.is_finite()).collect();
        mine.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        let span = mine.last().map_or(0.0, |s| s.t_s.max(0.0));
        out.samples.extend(mine.into_iter().map(|s| (offset + s.t_s.max(0.0), s)));
        out.stages.push((stage, offset, offset + span));
        offset += span;
    }
    out
}

/// One stage's samples, summarised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageMachine<'a> {
    pub(crate) stage: &'a str,
    pub(crate) samples: usize,
    pub(crate) duration_s: f64,
    pub(crate) cpu_mean: f64,
    pub(crate) cpu_max: f64,
    pub(crate) peak_rss: u64,
    pub(crate) gpu: &'a str,
    pub(crate) gpu_util_mean: f64,
    pub(crate) power_mean: f64,
    pub(crate) power_max: f64,
    pub(crate) gpu_mem_peak: u64,
    /// The energy counter's last reading (it counts from the stage's start).
    pub(crate) energy_j: f64,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.filter(|v| v.is_finite()).fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

fn max(values: impl Iterator<Item = f64>) -> f64 {
    values.filter(|v| v.is_finite()).fold(f64::NAN, f64::max)
}

/// The samples per stage, in the order stages first appear.
pub(crate) fn machine(samples: &[SystemSample]) -> Vec<StageMachine<'_>> {
    distinct(samples.iter().map(|s| s.stage.as_str()))
        .into_iter()
        .map(|stage| {
            let mine: Vec<&SystemSample> = samples.iter().filter(|s| s.stage == stage).collect();
            StageMachine {
                stage,
                samples: mine.len(),
                duration_s: max(mine.iter().map(|s| s.t_s)),
                cpu_mean: mean(mine.iter().map(|s| s.cpu_percent)),
                cpu_max: max(mine.iter().map(|s| s.cpu_percent)),
                peak_rss: mine.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
                gpu: mine.iter().map(|s| s.gpu.as_str()).find(|g| !g.is_empty()).unwrap_or(""),
                gpu_util_mean: mean(mine.iter().map(|s| s.gpu_util_percent)),
                power_mean: mean(mine.iter().map(|s| s.gpu_power_w)),
                power_max: max(mine.iter().map(|s| s.gpu_power_w)),
                gpu_mem_peak: mine.iter().map(|s| s.gpu_mem_used_bytes).max().unwrap_or(0),
                energy_j: max(mine.iter().map(|s| s.energy_j)),
            }
        })
        .collect()
}

fn one_decimal(x: f64) -> String {
    if x.is_finite() { format!("{x:.1}") } else { format::MISSING.into() }
}

/// "Machine during the run": per stage, CPU use, memory and, where sampled, the GPU.
pub(crate) fn machine_html(h: &mut String, samples: &[SystemSample]) {
    let stages = machine(samples);
    if stages.is_empty() {
        empty_section(h, "machine", "Machine during the run", messages::NO_SAMPLES);
        return;
    }
    h.push_str("<section id=\"machine\">\n<h2>Machine during the run</h2>\n");
    let gpu = any_gpu(samples);
    let energy = stages.iter().any(|s| s.energy_j.is_finite());
    h.push_str(
        "<div class=\"scroll\"><table class=\"machine\">\n<thead><tr><th>Stage</th><th class=\"num\">Samples</th>\
         <th class=\"num\">Duration</th><th class=\"num\">CPU % mean</th><th class=\"num\">CPU % max</th>\
         <th class=\"num\">Peak RSS MB</th>",
    );
    if gpu {
        h.push_str(
            "<th>GPU</th><th class=\"num\">GPU util % mean</th><th class=\"num\">Power W mean</th>\
             <th class=\"num\">Power W max</th><th class=\"num\">GPU memory MB peak</th>",
        );
    }
    if energy {
        h.push_str("<th class=\"num\">Energy J</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for s in &stages {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            esc(s.stage),
            format::thousands(s.samples as u64),
            format::duration(s.duration_s),
            one_decimal(s.cpu_mean),
            one_decimal(s.cpu_max),
            format::mb(s.peak_rss),
        );
        if gpu {
            let _ = write!(
                h,
                "<td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td>",
                if s.gpu.is_empty() {
                    format::MISSING.to_string()
                } else {
                    format!("<code>{}</code>", esc(s.gpu))
                },
                one_decimal(s.gpu_util_mean),
                one_decimal(s.power_mean),
                one_decimal(s.power_max),
                format::mb(s.gpu_mem_peak),
            );
        }
        if energy {
            let _ = write!(h, "<td class=\"num\">{}</td>", format::joules(s.energy_j));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
    if !gpu {
        let _ = writeln!(h, "<p>{}</p>", messages::NO_GPU_SAMPLED);
    }
    let _ = writeln!(h, "<p class=\"legend\">{}</p>\n</section>", messages::MACHINE_LEGEND);
}

// ---- CPU vs GPU ---------------------------------------------------------------------

/// A stage id or variant name without its `device=...` matrix coordinate:
/// `train[device=cuda,lr=0.1]` → `train[lr=0.1]`, `train[device=cpu]` → `train`.
pub(crate) fn strip_device(id: &str) -> String {
    let Some((base, coords)) = id.strip_suffix(']').and_then(|s| s.split_once('[')) else {
        return id.to_string();
    };
    let kept: Vec<&str> = coords.split(',').filter(|c| !c.trim_start().starts_with("device=")).collect();
    if kept.is_empty() { base.to_string() } else { format!("{base}[{}]", kept.join(",")) }
}

fn is_gpu(device: &str) -> bool {
    device.starts_with("cuda") || device == "gpu"
}

/// Items that ran on the CPU and on a GPU, matched on their names without the device
/// coordinate: (the shared name, the CPU one, the GPU one), in the order names first
/// appear.
fn device_pairs<T>(
    items: &[T],
    name: impl Fn(&T) -> &str,
    device: impl Fn(&T) -> &str,
) -> Vec<(String, &T, &T)> {
    let keys: Vec<String> = items.iter().map(|t| strip_device(name(t))).collect();
    let mut out = Vec::new();
    for key in distinct(keys.iter().map(String::as_str)) {
        let mine = || items.iter().zip(&keys).filter(move |(_, k)| *k == key).map(|(t, _)| t);
        if let (Some(cpu), Some(gpu)) =
            (mine().find(|t| device(t) == "cpu"), mine().find(|t| is_gpu(device(t))))
        {
            out.push((key.to_string(), cpu, gpu));
        }
    }
    out
}

pub(crate) fn training_pairs(rows: &[ParallelRow]) -> Vec<(String, &ParallelRow, &ParallelRow)> {
    device_pairs(rows, |r| &r.stage, |r| &r.device)
}

pub(crate) fn inference_pairs(rows: &[MetricRow]) -> Vec<(String, &MetricRow, &MetricRow)> {
    device_pairs(rows, |m| &m.variant, |m| &m.device)
}

/// Whether the run used a GPU anywhere.
fn used_gpu(input: &ReportInput) -> bool {
    is_gpu(&input.run.device)
        || input.parallel.iter().any(|r| is_gpu(&r.device))
        || input.metrics.iter().any(|m| is_gpu(&m.device))
        || any_gpu(&input.system)
}

/// `cpu / gpu` (how many times faster the GPU was when lower is better), or the other
/// way round.
fn speedup(cpu: f64, gpu: f64, lower_is_better: bool) -> f64 {
    let ok = |x: f64| x.is_finite() && x > 0.0;
    if !ok(cpu) || !ok(gpu) {
        f64::NAN
    } else if lower_is_better {
        cpu / gpu
    } else {
        gpu / cpu
    }
}

/// "CPU vs GPU": stages and variants that ran on both.
pub(crate) fn cpu_gpu_html(h: &mut String, input: &ReportInput) {
    let training = training_pairs(&input.parallel);
    let inference = inference_pairs(&input.metrics);
    if training.is_empty() && inference.is_empty() {
        let why = if used_gpu(input) { messages::NO_DEVICE_PAIR } else { messages::NO_GPU };
        empty_section(h, "cpu-vs-gpu", "CPU vs GPU", why);
        return;
    }
    h.push_str("<section id=\"cpu-vs-gpu\">\n<h2>CPU vs GPU</h2>\n");
    h.push_str(
        "<table class=\"cpu-gpu\">\n<thead><tr><th>Stage / variant</th><th>Measure</th><th class=\"num\">CPU</th>\
         <th class=\"num\">GPU</th><th class=\"num\">GPU speedup</th></tr></thead>\n<tbody>\n",
    );
    let mut row = |key: &str, what: String, cpu: String, gpu: String, x: f64| {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{what}</td><td class=\"num\">{cpu}</td><td class=\"num\">{gpu}</td>\
             <td class=\"num\"><b>{}</b></td></tr>",
            esc(key),
            format::ratio(x)
        );
    };
    for (key, cpu, gpu) in &training {
        row(
            key,
            format!("training images/s <span class=\"dim\">({})</span>", esc(&gpu.device)),
            format::rate(cpu.images_per_s),
            format::rate(gpu.images_per_s),
            speedup(cpu.images_per_s, gpu.images_per_s, false),
        );
    }
    for (key, cpu, gpu) in &inference {
        row(
            key,
            format!("inference p50 latency, batch 1 (µs) <span class=\"dim\">({})</span>", esc(&gpu.device)),
            crate::results::p50(cpu).html(),
            crate::results::p50(gpu).html(),
            speedup(cpu.latency_p50_us, gpu.latency_p50_us, true),
        );
        row(
            key,
            "inference throughput (images/s)".into(),
            crate::results::throughput(cpu).html(),
            crate::results::throughput(gpu).html(),
            speedup(cpu.throughput_ips, gpu.throughput_ips, false),
        );
    }
    let _ = writeln!(h, "</tbody></table>\n<p class=\"legend\">{}</p>\n</section>", messages::CPU_GPU_LEGEND);
}

/// The markdown lines for CPU vs GPU; nothing without a pair.
pub(crate) fn cpu_gpu_markdown(md: &mut String, input: &ReportInput) {
    let training = training_pairs(&input.parallel);
    let inference = inference_pairs(&input.metrics);
    if training.is_empty() && inference.is_empty() {
        return;
    }
    md.push_str("\n#### CPU vs GPU\n\n");
    for (key, cpu, gpu) in &training {
        let _ = writeln!(
            md,
            "- {} training: {} images/s on the CPU, {} on {}: **{}**",
            cell(key),
            format::rate(cpu.images_per_s),
            format::rate(gpu.images_per_s),
            cell(&gpu.device),
            format::ratio(speedup(cpu.images_per_s, gpu.images_per_s, false)),
        );
    }
    for (key, cpu, gpu) in &inference {
        let _ = writeln!(
            md,
            "- {} inference: p50 {} µs on the CPU, {} µs on {}: **{}**; throughput {}",
            cell(key),
            cell(&crate::results::p50(cpu).text()),
            cell(&crate::results::p50(gpu).text()),
            cell(&gpu.device),
            format::ratio(speedup(cpu.latency_p50_us, gpu.latency_p50_us, true)),
            format::ratio(speedup(cpu.throughput_ips, gpu.throughput_ips, false)),
        );
    }
}

/// The sections' fixed text (snapshot-tested).
pub(crate) mod messages {
    pub(crate) const NO_PARALLEL: &str = "No training stage recorded its parallelism in this run (it trained nothing, or predates \
         <code>parallel.parquet</code>).";
    pub(crate) const PARALLEL_LEGEND: &str = "One row per training stage; hover a parallelism for all its \
         settings. <i>workers N</i>: N loader threads preparing batches beside the training thread (0: on it). \
         <i>Sync</i> data parallelism averages the replicas' gradients every step; <i>async</i> replicas push \
         theirs to a parameter server as they finish. A pipeline K×M splits the model into K stages and each \
         batch into M micro-batches; its <i>bubble</i> is the share of stage time left idle, measured beside the ideal GPipe schedule's (K−1)/(M+K−1). × baseline: images/s over \
         the single-process stage of the same model with the fewest loader workers on the same device.";
    pub(crate) const NO_STALENESS: &str = "No asynchronous data-parallel stage in this run: staleness is recorded for every update an async \
         parameter server applies.";
    pub(crate) const STALENESS_LEGEND: &str = "Staleness of an update: how many other updates the parameter server applied between the worker's \
         pull of the weights and its push of the gradient (0: computed on the current weights). With N \
         workers running at the same pace it hovers around N−1.";
    pub(crate) const NO_SAMPLES: &str =
        "The machine was not sampled while stages ran in this run (no <code>system.parquet</code>).";
    pub(crate) const NO_GPU_SAMPLED: &str = "No GPU was sampled in this run: only CPU use and memory were recorded, and the GPU utilization \
         and power panels are left out of the chart.";
    pub(crate) const MACHINE_LEGEND: &str = "About ten samples a second per stage. CPU %: this process, in percent of one core (200% = two \
         cores busy). Energy: the counter's reading at the stage's end (GPU board, else CPU package), in \
         joules.";
    pub(crate) const NO_GPU: &str = "No GPU was used in this run, so there is no CPU-vs-GPU comparison.";
    pub(crate) const NO_DEVICE_PAIR: &str = "No stage ran on both the CPU and a GPU in this run, so there is no CPU-vs-GPU pair to compare \
         (sweep <code>device: [cpu, cuda]</code> in a stage's matrix to get one).";
    pub(crate) const CPU_GPU_LEGEND: &str = "Stages and variants matched on their names without the <code>device=...</code> matrix coordinate. \
         GPU speedup: GPU images/s over CPU images/s, or CPU latency over GPU latency (medians, with their 95% \
         intervals where measured); above 1× the GPU is faster.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_coordinates_are_stripped() {
        assert_eq!(strip_device("train[device=cuda]"), "train");
        assert_eq!(strip_device("train[device=cpu,lr=0.1]"), "train[lr=0.1]");
        assert_eq!(strip_device("prune[sparsity=0.5]"), "prune[sparsity=0.5]");
        assert_eq!(strip_device("train"), "train");
    }

    #[test]
    fn labels_name_the_parallelism() {
        let row = |strategy: &str, mode: &str, workers, replicas, processes, k, m| ParallelRow {
            strategy: strategy.into(),
            mode: mode.into(),
            workers,
            replicas,
            processes,
            pipeline_stages: k,
            micro_batches: m,
            ..Default::default()
        };
        let labels: Vec<String> = [
            row("single", "", 2, 1, 1, 1, 1),
            row("data-parallel", "sync", 0, 2, 1, 1, 1),
            row("data-parallel", "sync", 0, 1, 2, 1, 1),
            row("data-parallel", "async", 0, 2, 1, 1, 1),
            row("data-parallel", "async", 0, 2, 2, 1, 1),
            row("model-parallel", "", 0, 1, 1, 2, 4),
        ]
        .iter()
        .map(config_label)
        .collect();
        assert_eq!(
            labels,
            ["workers 2", "sync ×2", "2 procs", "async ×2", "async ×2, 2 procs", "pipeline 2×4"]
        );
    }

    #[test]
    fn staleness_summaries() {
        let rows: Vec<StalenessRow> = [(1, 0, 0), (2, 1, 1), (3, 0, 1), (4, 1, 4)]
            .into_iter()
            .map(|(update, worker, staleness)| StalenessRow {
                stage: "a".into(),
                update,
                worker,
                staleness,
                ..Default::default()
            })
            .collect();
        let s = &staleness(&rows)[0];
        assert_eq!((s.updates, s.workers, s.mean, s.median, s.max), (4, 2, 1.5, 1.0, 4));
    }
}
