//! `report.html`: one file that opens offline. Styles are inline, charts are inlined
//! SVG markup, and nothing is fetched. Every string that comes from the run goes
//! through [`format::html`]; the inlined SVG comes from plotters, whose SVG backend
//! escapes text itself.

use std::fmt::Write;

use slimbench_core::artifact::StageStatus;

use crate::ReportInput;
use crate::charts::{Chart, ChartData, ChartKind};
use crate::format::{self, html as esc};

/// The report's style sheet, inlined into every page slimbench writes.
pub const STYLE: &str = r#"
:root { --ink: #222; --dim: #666; --line: #e3e3e3; --bg: #fafafa; --accent: #4e79a7; --best: #fff6d6; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px; color: var(--ink); background: #fff;
  font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 22px 0 8px; }
p.desc { margin: 4px 0; font-size: 15px; }
p.sub, p.legend, footer, .dim { color: var(--dim); }
p.legend { font-size: 13px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
code { font: 12.5px/1.3 "DejaVu Sans Mono", Menlo, Consolas, monospace; background: var(--bg);
  padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; min-width: 4em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.meta th { width: 170px; }
.scroll { overflow-x: auto; }
table.metrics tr.best td { background: var(--best); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; }
.badge { display: inline-block; font-size: 11px; padding: 0 6px; margin-left: 6px; border-radius: 8px;
  border: 1px solid currentColor; white-space: nowrap; }
.badge.best { color: #9a6b00; }
.badge.pareto { color: var(--accent); }
.badge.slow, td.slow { color: #b71c1c; } .badge.fast, td.fast { color: #2e7d32; }
.badge.same, td.same { color: var(--dim); }
.badge.invalid { color: #b26a00; cursor: help; }
.ci { display: block; font-size: 11.5px; color: var(--dim); }
.invalid { color: #b26a00; cursor: help; text-decoration: underline dotted; }
p.protocol { font-size: 13px; margin: 6px 0; }
section.empty p.skipped { margin: 14px 0 0; }
table.speedup tr.why td { background: var(--bg); font-size: 13px; }
.status-ran { color: #2e7d32; } .status-cached { color: var(--dim); } .status-rendered { color: var(--accent); }
figure { margin: 0 0 28px; }
figure svg { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--dim); font-size: 13px; margin-top: 6px; }
p.skipped { color: var(--dim); font-style: italic; }
footer { margin-top: 40px; font-size: 12px; }
"#;

/// The whole document.
pub(crate) fn report(input: &ReportInput, data: &ChartData<'_>, charts: &[Chart]) -> String {
    let run = &input.run;
    let mut h = String::with_capacity(64 * 1024);
    let title = if input.title.is_empty() { "slimbench report" } else { input.title.as_str() };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · slimbench</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<header>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    );
    if !run.description.is_empty() {
        let _ = writeln!(h, "<p class=\"desc\">{}</p>", esc(&run.description));
    }
    let _ = writeln!(
        h,
        "<p class=\"sub\">Run <code>{}</code> of pipeline <code>{}</code>{}</p>",
        esc(&run.run_id),
        esc(&run.pipeline),
        if run.started_at.is_empty() { String::new() } else { format!(", started {}", esc(&run.started_at)) }
    );
    h.push_str(
        "<nav><a href=\"#run\">Run</a><a href=\"#results\">Results</a><a href=\"#speedup\">Speedup</a>\
         <a href=\"#backends\">Backends</a><a href=\"#server\">Server</a>\
         <a href=\"#parallel\">Parallel</a><a href=\"#machine\">Machine</a><a href=\"#cpu-vs-gpu\">CPU vs GPU</a>\
         <a href=\"#charts\">Charts</a>\
         <a href=\"#stages\">Stages</a><a href=\"#notes\">Notes</a></nav>\n</header>\n",
    );
    metadata(&mut h, input);
    crate::results::html_section(&mut h, input, data);
    crate::speedup::html_section(&mut h, &input.speedup);
    crate::backends::html_section(&mut h, &input.backends);
    crate::server::html_section(&mut h, &input.server);
    crate::parallel::parallel_html(&mut h, &input.parallel);
    crate::parallel::staleness_html(&mut h, input);
    crate::parallel::machine_html(&mut h, &input.system);
    crate::parallel::cpu_gpu_html(&mut h, input);
    charts_section(&mut h, charts);
    stages(&mut h, input);
    notes(&mut h, input);
    let _ = writeln!(
        h,
        "<footer>Generated by slimbench {}. This file is self-contained: it needs no network.</footer>\n\
         </main>\n</body>\n</html>",
        esc(&run.tool_version)
    );
    h
}

fn chart_caption(kind: ChartKind) -> &'static str {
    match kind {
        ChartKind::AccuracyVsSize => "Top-1 accuracy against the size of the saved model file (log scale).",
        ChartKind::AccuracyVsLatency => {
            "Top-1 accuracy against median single-image latency, with the median's 95% interval. Up and to the \
             left is better; the step line is the Pareto front, the best accuracy reachable within a latency \
             budget, through the circled variants (latencies whose intervals overlap count as the same speed). \
             Hollow grey points are invalid timings and take no part in the front."
        }
        ChartKind::TrainingCurves => {
            "Loss and accuracy per optimizer step of every trained variant: lines are the training split \
             (running mean), markers the test split at the end of each epoch."
        }
        ChartKind::AccuracyVsSparsity => {
            "Accuracy of the pruned variants against their sparsity, with the dense baselines at 0%; \
             grey lines join the variants of one model."
        }
        ChartKind::Throughput => {
            "Images per second against batch size (log-log), per variant, with the 95% interval of each point \
             (from that of the median time per batch); hollow grey points are invalid timings."
        }
        ChartKind::Backends => {
            "Median single-image latency of every variant on every backend of its evaluate stage, timed in the same \
             interleaved rounds, with the median's 95% interval; outlined grey bars are invalid timings."
        }
        ChartKind::Server => {
            "Server scenario: p99 latency against the offered rate of Poisson arrivals, per variant; whiskers reach \
             the one-sided 95% upper bound of the p99, the dashed line is the p99 target, hollow grey points are \
             invalid timings."
        }
        ChartKind::Speedup => {
            "Speedup of each compressed variant's simulated and materialized forms over its baseline, at \
             batch 1 and the largest batch, timed side by side, with 95% bootstrap intervals. Bars below the \
             dashed line (the not-faster threshold), or whose interval reaches below it, buy nothing at run \
             time; outlined grey bars are invalid timings."
        }
        ChartKind::ParallelThroughput => {
            "Training images per second of every training stage, by parallelism: loader workers of a single \
             process, data-parallel replicas (sync, async) and processes, pipeline stages × micro-batches. \
             The vertical line is the single-process baseline with the fewest loader workers; the ratios are \
             against it."
        }
        ChartKind::SyncVsAsync => {
            "Training loss of the data-parallel stages, sync against async (and a single-process baseline), \
             against the share of the training data seen; below, how stale each async update was when the \
             parameter server applied it."
        }
        ChartKind::System => {
            "This process's CPU use and resident memory over the run, the stages one after another (grey lines \
             mark where each begins); GPU utilization and board power below when a GPU was sampled."
        }
    }
}

/// Plotters never emits active content and escapes all text; checked anyway, because
/// this markup goes into the page unescaped.
pub fn is_inert_svg(svg: &str) -> bool {
    let lower = svg.to_ascii_lowercase();
    lower.trim_start().starts_with("<svg")
        && !["<script", "<foreignobject", "javascript:", "<iframe"].iter().any(|bad| lower.contains(bad))
}

fn charts_section(h: &mut String, charts: &[Chart]) {
    h.push_str("<section id=\"charts\">\n<h2>Charts</h2>\n");
    for chart in charts {
        let kind = chart.kind;
        match (&chart.svg, chart.skipped) {
            (Some(svg), _) if is_inert_svg(svg) => {
                let _ = writeln!(
                    h,
                    "<figure id=\"chart-{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                    kind.name(),
                    svg.trim(),
                    chart_caption(kind)
                );
            }
            (svg, reason) => {
                let reason =
                    if svg.is_some() { "its markup failed a safety check" } else { reason.unwrap_or("") };
                let _ = writeln!(
                    h,
                    "<p class=\"skipped\"><b>{}</b> chart skipped: {}.</p>",
                    kind.title(),
                    esc(reason)
                );
            }
        }
    }
    h.push_str("</section>\n");
}

fn metadata(h: &mut String, input: &ReportInput) {
    let run = &input.run;
    let host = &run.host;
    let or_dash = |s: &str| if s.is_empty() { format::MISSING.to_string() } else { esc(s) };
    let code =
        |s: &str| if s.is_empty() { format::MISSING.to_string() } else { format!("<code>{}</code>", esc(s)) };
    let cores = match (host.physical_cores, host.logical_cores) {
        (0, 0) => format::MISSING.to_string(),
        (0, l) => format!("{l} logical"),
        (p, l) => format!("{p} physical, {l} logical"),
    };
    let pipeline = if run.pipeline_file.is_empty() {
        code(&run.pipeline)
    } else {
        format!("{} <span class=\"dim\">from</span> {}", code(&run.pipeline), code(&run.pipeline_file))
    };
    let os = match (host.os.is_empty(), host.kernel.is_empty()) {
        (false, false) => {
            format!("{} <span class=\"dim\">kernel</span> {}", esc(&host.os), esc(&host.kernel))
        }
        _ => or_dash(if host.os.is_empty() { &host.kernel } else { &host.os }),
    };
    let rows: [(&str, String); 16] = [
        ("Run id", code(&run.run_id)),
        ("Pipeline", pipeline),
        ("Tool version", or_dash(&run.tool_version)),
        ("Git revision", code(&run.git_revision)),
        ("Torch version", or_dash(&run.torch_version)),
        (
            "Device",
            format!("{} <span class=\"dim\">(CUDA {})</span>", code(&run.device), {
                if run.cuda_available { "available" } else { "not available" }
            }),
        ),
        ("Threads", run.threads.to_string()),
        ("Seed", run.seed.to_string()),
        ("Host", or_dash(&host.hostname)),
        ("CPU", or_dash(&host.cpu_model)),
        ("Cores", cores),
        ("Memory", format!("{} GiB", format::gib(host.memory_bytes))),
        ("OS", os),
        ("Started", or_dash(&run.started_at)),
        ("Finished", or_dash(&run.finished_at)),
        ("Duration", format::duration(run.duration_s)),
    ];
    h.push_str("<section id=\"run\">\n<h2>Run</h2>\n<table class=\"meta\">\n");
    for (key, value) in rows {
        let _ = writeln!(h, "<tr><th>{key}</th><td>{value}</td></tr>");
    }
    h.push_str("</table>\n</section>\n");
}

fn stages(h: &mut String, input: &ReportInput) {
    h.push_str("<section id=\"stages\">\n<h2>Stages</h2>\n");
    if input.run.stages.is_empty() {
        h.push_str("<p class=\"skipped\">No stages recorded.</p>\n</section>\n");
        return;
    }
    h.push_str(
        "<table>\n<thead><tr><th>Stage</th><th>Kind</th><th>Status</th><th class=\"num\">Duration</th>\
         <th>Cache key</th></tr></thead>\n<tbody>\n",
    );
    for s in &input.run.stages {
        let status = match s.status {
            StageStatus::Ran => "ran",
            StageStatus::Cached => "cached",
            StageStatus::Rendered => "rendered",
        };
        let duration = match s.status {
            StageStatus::Cached => {
                format!("{} <span class=\"dim\">(when it ran)</span>", format::duration(s.duration_s))
            }
            _ => format::duration(s.duration_s),
        };
        let key = if s.key.is_empty() {
            format::MISSING.to_string()
        } else {
            // The full key is in run.json; a prefix is enough to tell keys apart here.
            let short: String = s.key.chars().take(12).collect();
            format!("<code title=\"{}\">{}</code>", esc(&s.key), esc(&short))
        };
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"status-{status}\">{status}</td>\
             <td class=\"num\">{duration}</td><td>{key}</td></tr>",
            esc(&s.id),
            esc(&s.kind),
        );
    }
    h.push_str("</tbody></table>\n</section>\n");
}

fn notes(h: &mut String, input: &ReportInput) {
    h.push_str("<section id=\"notes\">\n<h2>Notes</h2>\n");
    let run_notes = input.run.notes.iter().filter(|n| !n.trim().is_empty());
    let variant_notes = input.metrics.iter().filter(|m| !m.notes.trim().is_empty());
    if run_notes.clone().next().is_none() && variant_notes.clone().next().is_none() {
        h.push_str("<p class=\"dim\">No notes.</p>\n</section>\n");
        return;
    }
    h.push_str("<ul>\n");
    for n in run_notes {
        let _ = writeln!(h, "<li>{}</li>", esc(n));
    }
    for m in variant_notes {
        let _ = writeln!(h, "<li><code>{}</code>: {}</li>", esc(&m.variant), esc(&m.notes));
    }
    h.push_str("</ul>\n</section>\n");
}
