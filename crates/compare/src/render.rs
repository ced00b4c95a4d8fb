//! A comparison on disk and in a terminal: `compare.md` (GitHub markdown, for CI job
//! summaries), `compare.html` (self-contained, charts inlined as SVG), `compare.parquet`
//! and `compare.csv` (one row per variant and metric), `charts/compare-*.png|.svg`, and
//! [`terminal_table`] for stdout. Also the number formats and page pieces `history`
//! shares.

use std::collections::HashSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use slimbench_core::artifact::RunInfo;
use slimbench_core::fsutil;
use slimbench_metrics::polars::prelude::{Column, DataFrame, PolarsResult};
use slimbench_report::CHARTS_DIR;
use slimbench_report::format::{MISSING, html as esc, thousands};
use slimbench_report::kit::{self, Drawing, md_cell, md_code};

use crate::CompareError;
use crate::charts::{Dumbbell, Ecdf};
use crate::compare::{Check, Comparison, Verdict};

/// The markdown comparison.
pub const COMPARE_MD: &str = "compare.md";
/// The HTML comparison.
pub const COMPARE_HTML: &str = "compare.html";
/// One row per variant and metric.
pub const COMPARE_PARQUET: &str = "compare.parquet";
/// The same as CSV.
pub const COMPARE_CSV: &str = "compare.csv";

// ---- numbers --------------------------------------------------------------------

/// Decimals a metric is shown with; `None` for counts shown with thousands separators.
fn decimals(metric: &str) -> Option<usize> {
    match metric {
        "accuracy" | "sparsity" => Some(4),
        m if m.starts_with("latency_") => Some(1),
        "train_time_s" => Some(2),
        "throughput_ips" | "file_size_bytes" | "params" | "nonzero_params" | "weights_bytes"
        | "mem_peak_b1_bytes" => None,
        _ => Some(4),
    }
}

/// A metric's value as the tables show it (`0.9642`, `41.3`, `82,304`).
pub(crate) fn value(metric: &str, v: f64) -> String {
    match decimals(metric) {
        _ if !v.is_finite() => MISSING.into(),
        Some(d) => format!("{v:.d$}"),
        None if v < 0.0 => format!("-{}", thousands(v.abs().round() as u64)),
        None => thousands(v.round() as u64),
    }
}

/// A change in a metric, always signed (`-0.0541`, `+3.2`, `+1,024`).
pub(crate) fn signed(metric: &str, d: f64) -> String {
    match value(metric, d) {
        s if s.starts_with('-') || s == MISSING => s,
        s => format!("+{s}"),
    }
}

/// `+3.2%`.
pub(crate) fn signed_pct(fraction: Option<f64>) -> String {
    match fraction {
        Some(f) if f.is_finite() => format!("{:+.1}%", f * 100.0),
        _ => MISSING.into(),
    }
}

/// A p-value with two significant digits, or `<0.001`.
fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.001 => "<0.001".into(),
        Some(p) if p.is_finite() => format!("{p:.3}"),
        _ => MISSING.into(),
    }
}

/// The metric's unit, for headings.
pub(crate) fn unit(metric: &str) -> &'static str {
    match metric {
        m if m.starts_with("latency_") => "µs",
        "throughput_ips" => "images/s",
        "file_size_bytes" | "weights_bytes" | "mem_peak_b1_bytes" => "bytes",
        "train_time_s" => "s",
        "accuracy" | "sparsity" => "fraction",
        _ => "",
    }
}

/// The bootstrap's one-sided confidence, `99%`.
pub(crate) fn level(c: &Comparison) -> String {
    format!("{}%", (c.confidence * 1000.0).round() / 10.0)
}

fn show(metric: &str, v: Option<f64>) -> String {
    v.map_or_else(|| MISSING.to_string(), |v| value(metric, v))
}

/// `-0.0541 (-5.6%)`.
fn change(c: &Check) -> String {
    match c.change() {
        Some(d) => format!("{} ({})", signed(&c.metric, d), signed_pct(c.change_pct())),
        None => MISSING.into(),
    }
}

fn rule(c: &Check) -> String {
    c.rule.map_or_else(|| "—".to_string(), |r| r.to_string())
}

/// `×1.012–1.043, p <0.001` for checks judged on samples.
fn interval(c: &Check) -> String {
    match c.ratio {
        Some(r) => format!("×{:.3}–{:.3}, p {}", r.low, r.high, p_value(c.p_value)),
        None => String::new(),
    }
}

// ---- table ----------------------------------------------------------------------

/// One row per check: variant, metric, baseline, candidate, change, change_pct, limit,
/// ci_low, ci_high (bounds of the candidate/baseline ratio, latency with samples only),
/// p_value, test, verdict, rule. Missing numbers are nulls.
pub fn comparison_frame(c: &Comparison) -> PolarsResult<DataFrame> {
    let checks = &c.checks;
    let text = |name: &str, f: fn(&Check) -> String| {
        Column::new(name.into(), checks.iter().map(f).collect::<Vec<String>>())
    };
    let num = |name: &str, f: &dyn Fn(&Check) -> Option<f64>| {
        Column::new(name.into(), checks.iter().map(f).collect::<Vec<Option<f64>>>())
    };
    DataFrame::new(
        checks.len(),
        vec![
            text("variant", |k| k.variant.clone()),
            text("metric", |k| k.metric.clone()),
            num("baseline", &|k| k.baseline),
            num("candidate", &|k| k.candidate),
            num("change", &|k| k.change()),
            num("change_pct", &|k| k.change_pct()),
            num("limit", &|k| k.limit),
            num("ci_low", &|k| k.ratio.map(|r| r.low)),
            num("ci_high", &|k| k.ratio.map(|r| r.high)),
            num("p_value", &|k| k.p_value),
            text("test", |k| k.test.as_str().to_string()),
            text("verdict", |k| k.verdict.as_str().to_string()),
            text("rule", |k| k.rule.map(|r| r.to_string()).unwrap_or_default()),
        ],
    )
}

// ---- terminal -------------------------------------------------------------------

/// Columns padded to their widest cell; the last column is not padded.
pub(crate) fn aligned(rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = |i: usize| rows.iter().filter_map(|r| r.get(i)).map(|s| s.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols).map(width).collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            let last = i + 1 == row.len();
            match right.get(i) {
                Some(true) => line.push_str(&format!("{pad}{cell}")),
                _ if last => line.push_str(cell),
                _ => line.push_str(&format!("{cell}{pad}")),
            }
            if !last {
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The checks as a table for a terminal, with the headline, added/removed variants and
/// caveats.
pub fn terminal_table(c: &Comparison) -> String {
    let mut header =
        ["variant", "metric", "baseline", "candidate", "change", "gate", "", "verdict"].map(String::from);
    header[6] = format!("ratio {} CI", level(c));
    let mut rows = vec![header.to_vec()];
    for k in &c.checks {
        let verdict = match k.verdict {
            Verdict::Regression => "REGRESSION".to_string(),
            v => v.to_string(),
        };
        let ci = match k.ratio {
            Some(r) => format!("{:.3}-{:.3}", r.low, r.high),
            None if k.test == crate::Test::NoSamples => "no samples".into(),
            None => String::new(),
        };
        rows.push(vec![
            k.variant.clone(),
            k.metric.clone(),
            show(&k.metric, k.baseline),
            show(&k.metric, k.candidate),
            change(k),
            rule(k),
            ci,
            verdict,
        ]);
    }
    let mut out =
        format!("compare {} -> {}: {}\n\n", c.baseline.info.run_id, c.candidate.info.run_id, c.headline());
    out.push_str(&aligned(&rows, &[false, false, true, true, true, false, false, false]));
    for line in extra_lines(c) {
        out.push_str(&format!("\n{line}"));
    }
    if !extra_lines(c).is_empty() {
        out.push('\n');
    }
    out
}

/// Added and removed variants and caveats, as sentences.
fn extra_lines(c: &Comparison) -> Vec<String> {
    let mut lines = Vec::new();
    if !c.added.is_empty() {
        lines.push(format!("only in the candidate (not compared): {}", c.added.join(", ")));
    }
    if !c.removed.is_empty() {
        let fails = if c.require_all { " (fails: --require-all)" } else { "" };
        lines.push(format!("only in the baseline{fails}: {}", c.removed.join(", ")));
    }
    lines.extend(c.notes.iter().map(|n| format!("note: {n}")));
    lines
}

// ---- markdown -------------------------------------------------------------------

/// What an invalid verdict means, under the tables that show one.
const INVALID_NOTE: &str = "⚠ invalid: a run timed the variant on a disturbed machine (or timed too little), so its \
     latency and throughput are not judged and do not fail the comparison; the verdict's detail gives the reason.";

fn verdict_md(v: Verdict) -> &'static str {
    match v {
        Verdict::Regression => "❌ **regression**",
        Verdict::Ok => "✅ ok",
        Verdict::Improved => "🟢 improved",
        Verdict::NoData => "no data",
        Verdict::Info => "info",
        Verdict::BaselineInvalid => "⚠ baseline invalid",
        Verdict::CandidateInvalid => "⚠ candidate invalid",
    }
}

/// `compare.md`: headline, the two runs, one table row per check, added/removed
/// variants and caveats.
pub fn comparison_markdown(c: &Comparison) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### slimbench compare: {}\n", md_cell(&pipeline_name(c)));
    let mark = match (c.gated(), c.failed()) {
        (false, _) => "ℹ️",
        (true, true) => "❌",
        (true, false) => "✅",
    };
    let _ = writeln!(md, "**{mark} {}**\n", c.headline());
    let _ = writeln!(md, "Baseline {} → candidate {}\n", run_md(&c.baseline.info), run_md(&c.candidate.info));
    if c.checks.is_empty() {
        md.push_str("No variant is in both runs.\n");
    } else {
        md.push_str(
            "| variant | metric | baseline | candidate | change | gate | test | verdict |\n\
             |---|---|--:|--:|--:|---|---|---|\n",
        );
        for k in &c.checks {
            let test = match interval(k) {
                s if s.is_empty() => k.test.as_str().to_string(),
                s => format!("{} {s}", k.test.as_str()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&k.variant),
                k.metric,
                show(&k.metric, k.baseline),
                show(&k.metric, k.candidate),
                change(k),
                md_cell(&rule(k)),
                md_cell(&test),
                verdict_md(k.verdict),
            );
        }
    }
    let extra = extra_lines(c);
    if !extra.is_empty() {
        md.push('\n');
        for line in extra {
            let _ = writeln!(md, "- {}", md_cell(&line));
        }
    }
    if c.invalid().next().is_some() {
        let _ = writeln!(md, "\n{}", INVALID_NOTE);
    }
    if c.checks.iter().any(|k| k.ratio.is_some()) {
        let _ = writeln!(
            md,
            "\nLatency is judged on every timed inference: `×low–high` is the bootstrap interval of \
             candidate/baseline (each end a one-sided {} bound); a gate fires only when the whole interval \
             lies beyond it. The Mann–Whitney p-value is shown for information.",
            level(c)
        );
    }
    md
}

fn pipeline_name(c: &Comparison) -> String {
    let name = &c.candidate.info.pipeline;
    if name.is_empty() { c.candidate.info.run_id.clone() } else { name.clone() }
}

fn run_md(info: &RunInfo) -> String {
    let mut s = format!("`{}`", md_code(&info.run_id));
    if !info.git_revision.is_empty() {
        s.push_str(&format!(" (rev `{}`)", md_code(&short_rev(&info.git_revision))));
    }
    s
}

fn short_rev(rev: &str) -> String {
    rev.chars().take(12).collect()
}

// ---- HTML -----------------------------------------------------------------------

/// Styles the compare and history pages add to the report's.
const EXTRA_STYLE: &str = r#"
p.headline { font-size: 17px; font-weight: 600; margin: 14px 0; }
p.headline.fail { color: #c62828; } p.headline.pass { color: #2e7d32; } p.headline.info { color: var(--dim); }
tr.regression td { background: #fdecea; }
tr.improved td { background: #edf7ee; }
.v-regression { color: #c62828; font-weight: 600; } .v-improved, .v-ok { color: #2e7d32; }
.v-no-data, .v-info { color: var(--dim); }
.v-baseline-invalid, .v-candidate-invalid { color: #b26a00; font-weight: 600; }
td.up { color: #2e7d32; } td.down { color: #c62828; }
"#;

/// `<!DOCTYPE html>` up to the opening of `<main>` and the `<h1>`.
pub(crate) fn page_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · slimbench</title>\n<style>{}{EXTRA_STYLE}</style>\n</head>\n<body>\n<main>\n<header>\n<h1>{}</h1>\n",
        esc(title),
        kit::STYLE,
        esc(title)
    )
}

/// The footer and the closing tags.
pub(crate) fn page_foot() -> String {
    format!(
        "<footer>Generated by slimbench {}. This file is self-contained: it needs no network.</footer>\n\
         </main>\n</body>\n</html>\n",
        esc(slimbench_core::TOOL_VERSION)
    )
}

/// A chart figure, or a note when its markup fails the safety check.
pub(crate) fn figure(h: &mut String, f: &Figure) {
    if kit::is_inert_svg(&f.svg) {
        let _ = writeln!(
            h,
            "<figure id=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
            esc(&f.id),
            f.svg.trim(),
            esc(&f.caption)
        );
    } else {
        let _ = writeln!(
            h,
            "<p class=\"skipped\">Chart {} skipped: its markup failed a safety check.</p>",
            esc(&f.id)
        );
    }
}

/// One fact about a run, for the side-by-side table.
type RunField = fn(&RunInfo) -> String;

fn comparison_html(c: &Comparison, charts: &[Figure]) -> String {
    let mut h = page_head(&format!("Compare: {}", pipeline_name(c)));
    let (b, k) = (&c.baseline.info, &c.candidate.info);
    let _ = writeln!(
        h,
        "<p class=\"sub\">Baseline <code>{}</code> → candidate <code>{}</code></p>\n</header>",
        esc(&b.run_id),
        esc(&k.run_id)
    );
    let class = match (c.gated(), c.failed()) {
        (false, _) => "info",
        (true, true) => "fail",
        (true, false) => "pass",
    };
    let _ = writeln!(h, "<p class=\"headline {class}\">{}</p>", esc(&c.headline()));

    h.push_str("<section id=\"runs\">\n<h2>Runs</h2>\n<table class=\"meta\">\n<tr><th></th><th>Baseline</th><th>Candidate</th></tr>\n");
    let rows: [(&str, RunField); 7] = [
        ("Run id", |i| i.run_id.clone()),
        ("Started", |i| i.started_at.clone()),
        ("Git revision", |i| short_rev(&i.git_revision)),
        ("Device", |i| i.device.clone()),
        ("Threads", |i| if i.threads > 0 { i.threads.to_string() } else { String::new() }),
        ("Host", |i| i.host.hostname.clone()),
        ("CPU", |i| i.host.cpu_model.clone()),
    ];
    for (label, f) in rows {
        let cell = |i: &RunInfo| match f(i) {
            s if s.is_empty() => MISSING.to_string(),
            s => esc(&s),
        };
        let _ = writeln!(h, "<tr><th>{label}</th><td>{}</td><td>{}</td></tr>", cell(b), cell(k));
    }
    h.push_str("</table>\n</section>\n");

    h.push_str("<section id=\"checks\">\n<h2>Checks</h2>\n");
    if c.checks.is_empty() {
        h.push_str("<p class=\"skipped\">No variant is in both runs.</p>\n");
    } else {
        let _ = write!(
            h,
            "<div class=\"scroll\"><table>\n<thead><tr><th>Variant</th><th>Metric</th><th class=\"num\">Baseline</th>\
             <th class=\"num\">Candidate</th><th class=\"num\">Change</th><th>Gate</th><th class=\"num\">Limit</th>\
             <th>Test</th><th class=\"num\">Ratio {} CI</th><th class=\"num\">p</th><th>Verdict</th></tr></thead>\n<tbody>\n",
            level(c)
        );
        for k in &c.checks {
            let ci = k.ratio.map_or_else(|| MISSING.to_string(), |r| format!("{:.3}–{:.3}", r.low, r.high));
            let _ = writeln!(
                h,
                "<tr class=\"{v}\"><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{ci}</td>\
                 <td class=\"num\">{}</td><td class=\"v-{v}\" title=\"{}\">{v}</td></tr>",
                esc(&k.variant),
                esc(&k.metric),
                show(&k.metric, k.baseline),
                show(&k.metric, k.candidate),
                esc(&change(k)),
                esc(&rule(k)),
                show(&k.metric, k.limit),
                esc(k.test.as_str()),
                p_value(k.p_value),
                esc(&k.detail),
                v = k.verdict.as_str(),
            );
        }
        h.push_str("</tbody></table></div>\n");
        if c.invalid().next().is_some() {
            let _ = writeln!(h, "<p class=\"legend\">{}</p>", esc(INVALID_NOTE));
        }
    }
    let extra = extra_lines(c);
    if !extra.is_empty() {
        h.push_str("<ul>\n");
        for line in extra {
            let _ = writeln!(h, "<li>{}</li>", esc(&line));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n<section id=\"charts\">\n<h2>Charts</h2>\n");
    if charts.is_empty() {
        h.push_str("<p class=\"skipped\">Nothing to chart.</p>\n");
    }
    for f in charts {
        figure(&mut h, f);
    }
    let _ = write!(
        h,
        "</section>\n<section id=\"method\">\n<h2>How latency is judged</h2>\n<p>Every timed batch-1 inference of \
         both runs is kept. For each variant, both sets of samples are resampled with replacement \
         (a seeded bootstrap) and the ratio candidate/baseline of the metric's percentile or mean is computed \
         each time; each end of the interval shown is a one-sided {} bound. \
         A latency gate fires only when the whole interval lies beyond the allowed increase. With thousands of \
         samples any small systematic drift is statistically significant, so significance alone would fire on \
         the noise of a shared machine; the Mann–Whitney U p-value is shown for information only. A variant \
         either run timed on a disturbed machine (its timing marked invalid) is not judged on latency or \
         throughput at all, and its samples are not used. Other metrics are compared on their table \
         values.</p>\n</section>\n",
        level(c)
    );
    h.push_str(&page_foot());
    h
}

// ---- files ----------------------------------------------------------------------

/// A chart inlined into a page: its id, SVG markup and caption.
pub(crate) struct Figure {
    pub(crate) id: String,
    pub(crate) svg: String,
    pub(crate) caption: String,
}

/// The files of one page (`compare` or `history`) being written into a folder: charts
/// first, since the HTML inlines them, then the documents and the table.
pub(crate) struct Outputs {
    dir: PathBuf,
    /// Chart file names start with it (`compare-`, `history-`).
    prefix: &'static str,
    written: Vec<PathBuf>,
    pub(crate) figures: Vec<Figure>,
}

impl Outputs {
    pub(crate) fn new(dir: &Path, prefix: &'static str) -> Result<Self, CompareError> {
        fsutil::create_dir_all(dir)?;
        Ok(Outputs { dir: dir.to_path_buf(), prefix, written: Vec::new(), figures: Vec::new() })
    }

    /// Write `charts/<prefix><name>.png|.svg` and keep the SVG for the page.
    pub(crate) fn chart(
        &mut self,
        chart: &impl Drawing,
        name: &str,
        caption: String,
    ) -> Result<(), CompareError> {
        let id = format!("{}{name}", self.prefix);
        let (svg, paths) = kit::write_chart(chart, &self.dir.join(CHARTS_DIR), &id)?;
        self.written.extend(paths);
        self.figures.push(Figure { id, svg, caption });
        Ok(())
    }

    /// Write the documents (`(file name, text)`) and the table as `<table>.parquet` and
    /// `<table>.csv`; remove chart files of the prefix an earlier rendering left that this
    /// one did not write, so `charts/` always matches the page. Returns every file written.
    pub(crate) fn finish(
        mut self,
        documents: [(&str, String); 2],
        table: &'static str,
        frame: PolarsResult<DataFrame>,
    ) -> Result<Vec<PathBuf>, CompareError> {
        let keep: HashSet<&Path> = self.written.iter().map(PathBuf::as_path).collect();
        if let Ok(entries) = std::fs::read_dir(self.dir.join(CHARTS_DIR)) {
            for entry in entries.flatten() {
                let (path, name) = (entry.path(), entry.file_name().to_string_lossy().into_owned());
                let chart = name.ends_with(".png") || name.ends_with(".svg");
                if name.starts_with(self.prefix) && chart && !keep.contains(path.as_path()) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        for (name, text) in documents {
            let path = self.dir.join(name);
            fsutil::atomic_write(&path, text.as_bytes())?;
            self.written.push(path);
        }
        let mut frame = frame.map_err(|source| CompareError::Frame { table, source })?;
        let (parquet, csv) =
            (self.dir.join(format!("{table}.parquet")), self.dir.join(format!("{table}.csv")));
        slimbench_metrics::write_parquet(&parquet, &mut frame)?;
        slimbench_metrics::write_csv(&csv, &mut frame)?;
        self.written.extend([parquet, csv]);
        Ok(self.written)
    }
}

/// Write the comparison into `out_dir` (created if needed): `compare.md`,
/// `compare.html`, `compare.parquet`, `compare.csv`, and under `charts/` one
/// `compare-<metric>.png|.svg` per metric plus `compare-latency_ecdf` when latency
/// samples were compared. Every file is written atomically. Returns the files written.
pub fn write_comparison(c: &Comparison, out_dir: &Path) -> Result<Vec<PathBuf>, CompareError> {
    let mut out = Outputs::new(out_dir, "compare-")?;
    for metric in c.metrics() {
        let chart = Dumbbell { comparison: c, metric };
        if chart.has_data() {
            out.chart(&chart, metric, chart.caption())?;
        }
    }
    let ecdf = Ecdf::new(c);
    if ecdf.has_data() {
        out.chart(&ecdf, "latency_ecdf", ecdf.caption())?;
    }
    let html = comparison_html(c, &out.figures);
    out.finish([(COMPARE_HTML, html), (COMPARE_MD, comparison_markdown(c))], "compare", comparison_frame(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{CompareOptions, compare_runs};
    use crate::stats::Bootstrap;
    use crate::testutil::{lognormal, run, write_run};
    use slimbench_core::gates::Gates;

    fn comparison() -> Comparison {
        let s = lognormal(1, 400, 40.0, 0.1);
        let slow: Vec<f64> = lognormal(2, 400, 40.0, 0.1).iter().map(|x| x * 1.5).collect();
        let b = run("20250101-000000", &[("train", 0.9642, s.clone()), ("<b>evil</b>|x", 0.9642, s.clone())]);
        let c = run("20250102-000000", &[("train", 0.9101, slow), ("<b>evil</b>|x", 0.97, s)]);
        let mut g = Gates::new();
        g.entry("accuracy".into()).or_default().set("max_drop", "0.005").unwrap();
        g.entry("latency_p50_us".into()).or_default().set("max_increase", "25%").unwrap();
        let opts = CompareOptions {
            bootstrap: Bootstrap { resamples: 500, ..Default::default() },
            ..Default::default()
        };
        compare_runs(b, c, &g, &opts)
    }

    #[test]
    fn numbers_are_formatted_per_metric() {
        assert_eq!(value("accuracy", 0.96424), "0.9642");
        assert_eq!(value("latency_p50_us", 41.26), "41.3");
        assert_eq!(value("file_size_bytes", 82_304.0), "82,304");
        assert_eq!(signed("file_size_bytes", -1024.0), "-1,024");
        assert_eq!(signed("accuracy", 0.0), "+0.0000");
        assert_eq!(signed_pct(Some(0.0321)), "+3.2%");
        assert_eq!(p_value(Some(0.0001)), "<0.001");
        assert_eq!(value("accuracy", f64::NAN), MISSING);
    }

    #[test]
    fn markdown_has_the_headline_and_escapes_names() {
        let c = comparison();
        let md = comparison_markdown(&c);
        assert!(md.contains("**❌ 2 regressions in 4 checks**"), "{md}");
        assert!(md.contains("| &lt;b>evil&lt;/b>\\|x | accuracy |"), "{md}");
        assert!(md.contains("| train | accuracy | 0.9642 | 0.9101 | -0.0541 (-5.6%) | max_drop 0.005 | threshold | ❌ **regression** |"), "{md}");
        assert!(md.contains("| train | latency_p50_us |"), "{md}");
        assert!(md.contains("bootstrap ×1.5"), "{md}");
        let text = terminal_table(&c);
        assert!(
            text.starts_with("compare 20250101-000000 -> 20250102-000000: 2 regressions in 4 checks\n"),
            "{text}"
        );
        assert!(text.lines().any(|l| l.starts_with("train ") && l.ends_with("REGRESSION")), "{text}");
    }

    #[test]
    fn writes_every_file_and_a_matching_table() {
        let c = comparison();
        let dir = tempfile::tempdir().unwrap();
        let files = write_comparison(&c, dir.path()).unwrap();
        for f in [
            "compare.md",
            "compare.html",
            "compare.parquet",
            "compare.csv",
            "charts/compare-accuracy.png",
            "charts/compare-accuracy.svg",
            "charts/compare-latency_p50_us.svg",
            "charts/compare-latency_ecdf.png",
        ] {
            assert!(files.contains(&dir.path().join(f)), "{f} not in {files:?}");
            assert!(std::fs::metadata(dir.path().join(f)).unwrap().len() > 0, "{f}");
        }
        let html = std::fs::read_to_string(dir.path().join("compare.html")).unwrap();
        assert!(html.contains("&lt;b&gt;evil&lt;/b&gt;") && !html.contains("<b>evil</b>"));
        assert!(html.contains("<svg") && !html.contains("src=\"http"));
        let df = slimbench_metrics::polars::prelude::ParquetReader::new(
            std::fs::File::open(dir.path().join("compare.parquet")).unwrap(),
        );
        use slimbench_metrics::polars::prelude::SerReader;
        let df = df.finish().unwrap();
        assert_eq!(df.height(), 4);
        let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            [
                "variant",
                "metric",
                "baseline",
                "candidate",
                "change",
                "change_pct",
                "limit",
                "ci_low",
                "ci_high",
                "p_value",
                "test",
                "verdict",
                "rule"
            ]
        );
        // A later comparison without latency gates drops the stale latency charts.
        let mut fewer = c.clone();
        fewer.checks.retain(|k| k.metric == "accuracy");
        fewer.baseline.latency.clear();
        write_comparison(&fewer, dir.path()).unwrap();
        assert!(!dir.path().join("charts/compare-latency_p50_us.svg").exists());
        assert!(dir.path().join("charts/compare-accuracy.svg").exists());
    }

    #[test]
    fn compare_reads_run_directories() {
        let c = comparison();
        let root = tempfile::tempdir().unwrap();
        let b = write_run(root.path(), &c.baseline);
        let k = write_run(root.path(), &c.candidate);
        let opts = CompareOptions {
            bootstrap: Bootstrap { resamples: 500, ..Default::default() },
            ..Default::default()
        };
        let again = crate::compare(&b, &k, &c.gates, &opts).unwrap();
        assert_eq!(
            again.checks.iter().map(|k| k.verdict).collect::<Vec<_>>(),
            c.checks.iter().map(|k| k.verdict).collect::<Vec<_>>()
        );
        assert_eq!(again.checks.len(), 4);
    }
}
