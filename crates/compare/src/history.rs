//! `slimbench history`: how a pipeline's metrics moved over its runs.
//!
//! [`load_history`] scans `results/<pipeline>/` for finished runs (folders holding
//! `run.json` and `metrics.parquet`; `cache/`, `latest`, hidden staging folders such as
//! `.partial-*` and the history output itself are skipped), orders them by
//! `started_at` and keeps the newest `--last N`. [`History::frame`] is the long trend
//! table (one row per run, variant and metric); [`write_history`] writes it as
//! `history.parquet`/`.csv`, a wide `history.md` (variant × metric rows, one column per
//! recent run, and the last change), a self-contained `history.html` and one chart per
//! metric, `charts/history-<metric>.png|.svg`.

use std::collections::HashSet;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use slimbench_core::artifact::RunInfo;
use slimbench_core::fsutil::{self, FsError};
use slimbench_core::gates::metric_value;
use slimbench_core::records::MetricRow;
use slimbench_metrics::polars::prelude::{Column, DataFrame, PolarsResult};
use slimbench_report::RUN_JSON;
use slimbench_report::format::{MISSING, html as esc};
use slimbench_report::kit::{md_cell, md_code};

use crate::charts::Trend;
use crate::compare::{is_invalid, is_timing};
use crate::render::{
    Figure, Outputs, aligned, figure, page_foot, page_head, signed, signed_pct, unit, value,
};
use crate::{CompareError, DEFAULT_HISTORY_METRICS, is_run_dir};

/// The default output folder, inside the pipeline's results folder.
pub const HISTORY_DIR: &str = "history";
/// The long trend table.
pub const HISTORY_PARQUET: &str = "history.parquet";
/// The same as CSV.
pub const HISTORY_CSV: &str = "history.csv";
/// The wide markdown table.
pub const HISTORY_MD: &str = "history.md";
/// The HTML page.
pub const HISTORY_HTML: &str = "history.html";

/// Runs shown as columns of the wide tables (the charts show every run kept).
const TABLE_RUNS: usize = 6;

/// What a history covers.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryOptions {
    /// Keep only the newest N runs.
    pub last: Option<usize>,
    /// Metrics to follow (columns of the metrics table).
    pub metrics: Vec<String>,
    /// Folders never taken for runs (the output folder, when it is inside).
    pub exclude: Vec<PathBuf>,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            last: None,
            metrics: DEFAULT_HISTORY_METRICS.iter().map(|m| m.to_string()).collect(),
            exclude: Vec::new(),
        }
    }
}

/// One finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRun {
    /// Its directory.
    pub dir: PathBuf,
    /// Its `run.json`.
    pub info: RunInfo,
    /// Its metrics table.
    pub metrics: Vec<MetricRow>,
}

/// One row of the trend table: a metric of a variant in a run.
struct TrendRow<'a> {
    run: u32,
    info: &'a RunInfo,
    row: &'a MetricRow,
    metric: &'a str,
}

/// A pipeline's runs, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The pipeline's results folder.
    pub dir: PathBuf,
    /// The runs kept, oldest first.
    pub runs: Vec<HistoryRun>,
    /// The metrics followed.
    pub metrics: Vec<String>,
}

/// The finished run folders directly inside `pipeline_dir`, in directory order.
pub fn scan_runs(pipeline_dir: &Path, exclude: &[PathBuf]) -> Result<Vec<PathBuf>, CompareError> {
    let entries =
        std::fs::read_dir(pipeline_dir).map_err(|e| FsError::new("reading directory", pipeline_dir, e))?;
    let excluded: HashSet<PathBuf> = exclude.iter().filter_map(|p| p.canonicalize().ok()).collect();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `latest` is a link to a run already in the list; dot-folders are unfinished.
        if matches!(name.as_str(), "cache" | "latest" | HISTORY_DIR) || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !is_dir || !is_run_dir(&path) || path.canonicalize().is_ok_and(|p| excluded.contains(&p)) {
            continue;
        }
        out.push(path);
    }
    Ok(out)
}

/// Read the finished runs of a pipeline's results folder, oldest first (by `started_at`,
/// then run id), the newest `opts.last` of them. Exits with [`CompareError::NoRuns`]
/// when there is none.
pub fn load_history(pipeline_dir: &Path, opts: &HistoryOptions) -> Result<History, CompareError> {
    let mut runs: Vec<(PathBuf, RunInfo)> = Vec::new();
    for dir in scan_runs(pipeline_dir, &opts.exclude)? {
        let info: RunInfo = fsutil::read_json(&dir.join(RUN_JSON))?;
        runs.push((dir, info));
    }
    if runs.is_empty() {
        return Err(CompareError::NoRuns { dir: pipeline_dir.to_path_buf() });
    }
    // RFC 3339 times from different offsets do not sort as text.
    let when = |info: &RunInfo| chrono::DateTime::parse_from_rfc3339(&info.started_at).ok();
    runs.sort_by(|a, b| (when(&a.1), &a.1.run_id).cmp(&(when(&b.1), &b.1.run_id)));
    if let Some(n) = opts.last {
        runs.drain(..runs.len().saturating_sub(n.max(1)));
    }
    let runs = runs
        .into_iter()
        .map(|(dir, info)| {
            let mut metrics = slimbench_metrics::read_metric_rows(&dir)?;
            // Histories follow libtorch, the backend every run has.
            metrics.retain(|m| m.is_reference());
            Ok(HistoryRun { dir, info, metrics })
        })
        .collect::<Result<Vec<_>, CompareError>>()?;
    Ok(History { dir: pipeline_dir.to_path_buf(), runs, metrics: opts.metrics.clone() })
}

impl History {
    /// Variants in the order they first appear, oldest run first.
    pub fn variants(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for m in self.runs.iter().flat_map(|r| &r.metrics) {
            if !out.contains(&m.variant.as_str()) {
                out.push(&m.variant);
            }
        }
        out
    }

    /// The value of `metric` for `variant` in run `run` (an index into [`Self::runs`]).
    pub fn value(&self, run: usize, variant: &str, metric: &str) -> Option<f64> {
        metric_value(self.row(run, variant)?, metric)
    }

    fn row(&self, run: usize, variant: &str) -> Option<&MetricRow> {
        self.runs.get(run)?.metrics.iter().find(|m| m.variant == variant)
    }

    /// Whether `metric` of `variant` in run `run` comes from a timing that run marked
    /// invalid.
    pub fn invalid(&self, run: usize, variant: &str, metric: &str) -> bool {
        is_timing(metric) && self.row(run, variant).is_some_and(is_invalid)
    }

    /// The pipeline's name (from the newest run).
    pub fn pipeline(&self) -> String {
        let newest = self.runs.last().map(|r| r.info.pipeline.clone()).unwrap_or_default();
        if newest.is_empty() {
            self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            newest
        }
    }

    /// The long trend table: run_index, run_id, started_at, git_revision, device,
    /// variant, metric, value (null when not measured), validity (`invalid` when the value
    /// comes from a timing its run marked invalid, else empty); one row per run, variant
    /// and metric.
    pub fn frame(&self) -> PolarsResult<DataFrame> {
        let mut rows: Vec<TrendRow<'_>> = Vec::new();
        for (i, run) in self.runs.iter().enumerate() {
            for row in &run.metrics {
                rows.extend(self.metrics.iter().map(|metric| TrendRow {
                    run: i as u32,
                    info: &run.info,
                    row,
                    metric,
                }));
            }
        }
        let text = |name: &str, f: &dyn Fn(&TrendRow<'_>) -> String| {
            Column::new(name.into(), rows.iter().map(f).collect::<Vec<String>>())
        };
        // The device each variant was measured on; older tables lack it.
        let device = |r: &TrendRow<'_>| {
            if r.row.device.is_empty() { r.info.device.clone() } else { r.row.device.clone() }
        };
        DataFrame::new(
            rows.len(),
            vec![
                Column::new("run_index".into(), rows.iter().map(|r| r.run).collect::<Vec<u32>>()),
                text("run_id", &|r| r.info.run_id.clone()),
                text("started_at", &|r| r.info.started_at.clone()),
                text("git_revision", &|r| r.info.git_revision.clone()),
                text("device", &device),
                text("variant", &|r| r.row.variant.clone()),
                text("metric", &|r| r.metric.to_string()),
                Column::new(
                    "value".into(),
                    rows.iter().map(|r| metric_value(r.row, r.metric)).collect::<Vec<Option<f64>>>(),
                ),
                text("validity", &|r| {
                    if is_timing(r.metric) && is_invalid(r.row) { "invalid".into() } else { String::new() }
                }),
            ],
        )
    }

    /// Indices of the runs the wide tables show (the newest few).
    fn table_runs(&self) -> std::ops::Range<usize> {
        self.runs.len().saturating_sub(TABLE_RUNS)..self.runs.len()
    }

    /// Rows of the wide table: variant, metric, a value per shown run (`⚠` in front of
    /// an invalid timing), and the change between the last two shown runs that have a
    /// valid value.
    fn wide_rows(&self) -> Vec<Vec<String>> {
        let shown = self.table_runs();
        let mut rows = Vec::new();
        for variant in self.variants() {
            for metric in &self.metrics {
                let values: Vec<Option<f64>> =
                    shown.clone().map(|i| self.value(i, variant, metric)).collect();
                if values.iter().all(Option::is_none) {
                    continue;
                }
                let invalid: Vec<bool> = shown.clone().map(|i| self.invalid(i, variant, metric)).collect();
                let mut row = vec![variant.to_string(), metric.clone()];
                row.extend(values.iter().zip(&invalid).map(|(v, &bad)| match v {
                    None => MISSING.to_string(),
                    Some(v) if bad => format!("⚠ {}", value(metric, *v)),
                    Some(v) => value(metric, *v),
                }));
                let present: Vec<f64> =
                    values.iter().zip(&invalid).filter(|(_, bad)| !**bad).filter_map(|(v, _)| *v).collect();
                row.push(match present.as_slice() {
                    [.., prev, last] => {
                        let pct = (*prev != 0.0).then(|| (last - prev) / prev.abs());
                        format!("{} ({})", signed(metric, last - prev), signed_pct(pct))
                    }
                    _ => MISSING.into(),
                });
                rows.push(row);
            }
        }
        rows
    }

    /// `N runs from <first> to <last>`.
    fn span(&self) -> String {
        let (first, last) = (&self.runs[0].info, &self.runs[self.runs.len() - 1].info);
        match self.runs.len() {
            1 => format!("1 run ({})", first.run_id),
            n => format!("{n} runs, from {} to {}", first.run_id, last.run_id),
        }
    }
}

/// The legend of the wide tables.
const CHANGE_NOTE: &str = "change: between the last two runs shown that measured the value validly; ⚠: a \
     latency or throughput its run timed on a disturbed machine (invalid), left out of the change.";

/// `history.md`: the span of runs and the wide table.
pub fn history_markdown(h: &History) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### slimbench history: {}\n", md_cell(&h.pipeline()));
    let _ = writeln!(md, "{}\n", md_cell(&h.span()));
    let shown = h.table_runs();
    let mut header = "| variant | metric |".to_string();
    let mut rule = "|---|---|".to_string();
    for run in &h.runs[shown] {
        let _ = write!(header, " `{}` |", md_code(&run.info.run_id));
        rule.push_str("--:|");
    }
    let _ = writeln!(md, "{header} change |\n{rule}--:|");
    for row in h.wide_rows() {
        let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    md.push_str(&format!("\n{CHANGE_NOTE}\n"));
    md
}

/// The wide table for a terminal.
pub fn history_table(h: &History) -> String {
    let mut header = vec!["variant".to_string(), "metric".to_string()];
    header.extend(h.runs[h.table_runs()].iter().map(|r| r.info.run_id.clone()));
    header.push("change".into());
    let mut rows = vec![header];
    rows.extend(h.wide_rows());
    let mut right = vec![false, false];
    right.extend(std::iter::repeat_n(true, h.table_runs().len() + 1));
    format!("{}: {}\n\n{}", h.pipeline(), h.span(), aligned(&rows, &right))
}

fn history_html(h: &History, figures: &[Figure]) -> String {
    let mut out = page_head(&format!("History: {}", h.pipeline()));
    let _ = writeln!(out, "<p class=\"sub\">{}</p>\n</header>", esc(&h.span()));
    out.push_str(
        "<section id=\"runs\">\n<h2>Runs</h2>\n<table>\n<thead><tr><th>Run id</th><th>Started</th>\
         <th>Git revision</th><th>Device</th><th class=\"num\">Variants</th></tr></thead>\n<tbody>\n",
    );
    for run in &h.runs {
        let i = &run.info;
        let rev: String = i.git_revision.chars().take(12).collect();
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td></tr>",
            esc(&i.run_id),
            esc(&i.started_at),
            esc(&rev),
            esc(&i.device),
            run.metrics.len()
        );
    }
    out.push_str("</tbody></table>\n</section>\n<section id=\"trend\">\n<h2>Recent runs</h2>\n");
    out.push_str("<div class=\"scroll\"><table>\n<thead><tr><th>Variant</th><th>Metric</th>");
    for run in &h.runs[h.table_runs()] {
        let _ = write!(out, "<th class=\"num\"><code>{}</code></th>", esc(&run.info.run_id));
    }
    out.push_str("<th class=\"num\">Change</th></tr></thead>\n<tbody>\n");
    for row in h.wide_rows() {
        let _ = write!(out, "<tr><td><code>{}</code></td><td>{}</td>", esc(&row[0]), esc(&row[1]));
        for cell in &row[2..] {
            let _ = write!(out, "<td class=\"num\">{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str(&format!(
        "</tbody></table></div>\n<p class=\"legend\">{}</p>\n</section>\n<section id=\"charts\">\n\
             <h2>Charts</h2>\n",
        esc(CHANGE_NOTE)
    ));
    for f in figures {
        figure(&mut out, f);
    }
    out.push_str("</section>\n");
    out.push_str(&page_foot());
    out
}

/// Write the history into `out_dir` (created if needed): `history.parquet`,
/// `history.csv`, `history.md`, `history.html` and `charts/history-<metric>.png|.svg`
/// for each metric with data. Every file is written atomically. Returns the files
/// written.
pub fn write_history(h: &History, out_dir: &Path) -> Result<Vec<PathBuf>, CompareError> {
    let mut out = Outputs::new(out_dir, "history-")?;
    for metric in &h.metrics {
        let chart = Trend { history: h, metric };
        if chart.has_data() {
            let caption =
                format!("{metric} ({}) of every variant over the runs, oldest first.", unit(metric));
            out.chart(&chart, metric, caption)?;
        }
    }
    let html = history_html(h, &out.figures);
    out.finish([(HISTORY_HTML, html), (HISTORY_MD, history_markdown(h))], "history", h.frame())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{info, lognormal, run, write_run};

    /// Four runs written out of order, plus things that are not runs.
    fn pipeline_dir() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let s = lognormal(1, 50, 40.0, 0.1);
        for (id, started, acc) in [
            ("20250103-000000", "2025-01-03T00:00:00+00:00", 0.93),
            ("20250101-000000", "2025-01-01T00:00:00+00:00", 0.91),
            // Started earlier than its id suggests, in another offset.
            ("20250104-000000", "2025-01-02T05:00:00+03:00", 0.92),
            ("20250105-000000", "2025-01-05T00:00:00+00:00", 0.94),
        ] {
            let mut r = run(id, &[("train", acc, s.clone()), ("fp16", acc - 0.001, s.clone())]);
            r.info = info(id, started);
            if id == "20250101-000000" {
                r.metrics.truncate(1); // fp16 appeared later
            }
            if id == "20250105-000000" {
                // The newest run timed train on a busy machine.
                r.metrics[0].validity = "invalid".into();
                r.metrics[0].invalid_reason = "busy".into();
                r.metrics[0].latency_p50_us *= 2.0;
            }
            write_run(root.path(), &r);
        }
        // Not runs: the cache, a staging folder, `latest`, a folder with no tables.
        let decoy = run("x", &[("train", 0.1, s)]);
        write_run(&root.path().join("cache"), &decoy);
        write_run(&root.path().join(".partial-y"), &decoy);
        std::fs::create_dir_all(root.path().join("notes")).unwrap();
        std::os::unix::fs::symlink("20250105-000000", root.path().join("latest")).unwrap();
        root
    }

    #[test]
    fn runs_are_found_ordered_and_trimmed() {
        let root = pipeline_dir();
        let h = load_history(root.path(), &HistoryOptions::default()).unwrap();
        let ids: Vec<&str> = h.runs.iter().map(|r| r.info.run_id.as_str()).collect();
        assert_eq!(ids, ["20250101-000000", "20250104-000000", "20250103-000000", "20250105-000000"]);
        assert_eq!(h.variants(), ["train", "fp16"]);
        assert_eq!(h.value(0, "fp16", "accuracy"), None);
        assert_eq!(h.value(3, "train", "accuracy"), Some(0.94));

        let opts = HistoryOptions { last: Some(2), metrics: vec!["accuracy".into()], ..Default::default() };
        let h = load_history(root.path(), &opts).unwrap();
        assert_eq!(h.runs.len(), 2);
        assert_eq!(h.runs[0].info.run_id, "20250103-000000");

        let empty = tempfile::tempdir().unwrap();
        let err = load_history(empty.path(), &HistoryOptions::default()).unwrap_err();
        assert!(matches!(err, CompareError::NoRuns { .. }), "{err}");
    }

    #[test]
    fn the_trend_table_is_long_and_the_markdown_wide() {
        let root = pipeline_dir();
        let h = load_history(root.path(), &HistoryOptions::default()).unwrap();
        let df = h.frame().unwrap();
        // (1 + 2 + 2 + 2) variant rows x 5 metrics.
        assert_eq!(df.height(), 7 * 5);
        let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
        assert_eq!(
            names,
            [
                "run_index",
                "run_id",
                "started_at",
                "git_revision",
                "device",
                "variant",
                "metric",
                "value",
                "validity"
            ]
        );
        // train's latency and throughput in the newest run.
        let validity =
            df.column("validity").unwrap().str().unwrap().iter().flatten().filter(|v| *v == "invalid");
        assert_eq!(validity.count(), 2);
        let md = history_markdown(&h);
        assert!(md.contains("4 runs, from 20250101-000000 to 20250105-000000"), "{md}");
        assert!(
            md.contains("| train | accuracy | 0.9100 | 0.9200 | 0.9300 | 0.9400 | +0.0100 (+1.1%) |"),
            "{md}"
        );
        assert!(md.contains("| fp16 | accuracy | — | 0.9190 |"), "{md}");
        // The invalid latency is marked and left out of the change (the samples are the
        // same in every other run).
        let p50 = format!("{:.1}", h.value(0, "train", "latency_p50_us").unwrap());
        let doubled = format!("{:.1}", h.value(3, "train", "latency_p50_us").unwrap());
        assert!(
            md.contains(&format!(
                "| train | latency_p50_us | {p50} | {p50} | {p50} | ⚠ {doubled} | +0.0 (+0.0%) |"
            )),
            "{md}"
        );
        let text = history_table(&h);
        assert!(text.lines().any(|l| l.starts_with("train") && l.contains("0.9400")), "{text}");
    }

    #[test]
    fn writes_tables_pages_and_charts() {
        let root = pipeline_dir();
        let out = root.path().join(HISTORY_DIR);
        let h = load_history(root.path(), &HistoryOptions::default()).unwrap();
        let files = write_history(&h, &out).unwrap();
        for f in [
            "history.parquet",
            "history.csv",
            "history.md",
            "history.html",
            "charts/history-accuracy.png",
            "charts/history-accuracy.svg",
            "charts/history-latency_p50_us.svg",
        ] {
            assert!(files.contains(&out.join(f)), "{f} not in {files:?}");
        }
        let html = std::fs::read_to_string(out.join("history.html")).unwrap();
        assert!(html.contains("<svg") && html.contains("20250105-000000"));
        // The output folder is never mistaken for a run, even when named otherwise.
        let elsewhere = root.path().join("trend");
        write_history(&h, &elsewhere).unwrap();
        let opts = HistoryOptions { exclude: vec![elsewhere], ..Default::default() };
        assert_eq!(load_history(root.path(), &opts).unwrap().runs.len(), 4);
    }
}
