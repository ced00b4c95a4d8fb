//! Backends (`backends:` of an evaluate stage): each variant timed on every backend
//! (libtorch, ONNX Runtime, tract) in the same timing plan, for the HTML "Backends"
//! section, the markdown summary and the `backend_latency` chart; and the fastest
//! deployment of each variant. Runs that timed libtorch alone have no such rows (the
//! section says so in one line; the summary leaves it out).

use std::fmt::Write;

use slimbench_core::config::BackendName;
use slimbench_core::records::{MetricRow, REFERENCE_BACKEND};

use crate::charts::distinct;
use crate::format::{self, Timed, invalid_footnote};
use crate::markdown::cell;
use crate::pareto::Cost;
use crate::results::{p50, throughput};
use crate::table::{Cell, HTML, MARKDOWN, Show, Style, Table, empty_section};

/// One variant on every backend it was timed on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deployments<'a> {
    pub(crate) variant: &'a str,
    /// Its rows, libtorch first, then in [`BackendName::ALL`] order (unknown names last).
    pub(crate) rows: Vec<&'a MetricRow>,
    /// Indices into `rows` of the fastest at batch 1: the lowest p50 and those whose
    /// interval overlaps its (the same within noise); valid timings only, unless none
    /// is valid.
    pub(crate) fastest: Vec<usize>,
}

impl Deployments<'_> {
    /// Its libtorch row.
    pub(crate) fn reference(&self) -> Option<&MetricRow> {
        self.rows.iter().copied().find(|m| m.is_reference())
    }
}

fn order(backend: &str) -> usize {
    BackendName::ALL.iter().position(|b| b.as_str() == backend).unwrap_or(BackendName::ALL.len())
}

fn cost(m: &MetricRow) -> Cost {
    Cost::new(m.latency_p50_us, m.latency_p50_lo_us, m.latency_p50_hi_us)
}

/// The rows grouped per variant, in the order variants first appear; empty when every
/// row is libtorch's.
pub(crate) fn group(rows: &[MetricRow]) -> Vec<Deployments<'_>> {
    if rows.iter().all(MetricRow::is_reference) {
        return Vec::new();
    }
    distinct(rows.iter().map(|m| m.variant.as_str()))
        .into_iter()
        .map(|variant| {
            let mut mine: Vec<&MetricRow> = rows.iter().filter(|m| m.variant == variant).collect();
            mine.sort_by_key(|m| order(m.backend()));
            let timed = |m: &&MetricRow| m.latency_p50_us.is_finite() && m.latency_p50_us > 0.0;
            let valid: Vec<usize> = (0..mine.len())
                .filter(|&i| timed(&mine[i]) && !format::is_invalid(&mine[i].validity))
                .collect();
            let pool =
                if valid.is_empty() { (0..mine.len()).filter(|&i| timed(&mine[i])).collect() } else { valid };
            let best = pool
                .iter()
                .copied()
                .min_by(|&a, &b| mine[a].latency_p50_us.total_cmp(&mine[b].latency_p50_us));
            let fastest = match best {
                Some(b) => {
                    let mut f = vec![b];
                    f.extend(
                        pool.iter().copied().filter(|&i| i != b && !cost(mine[b]).below(&cost(mine[i]))),
                    );
                    f
                }
                None => Vec::new(),
            };
            Deployments { variant, rows: mine, fastest }
        })
        .collect()
}

/// `onnxruntime`, or `onnxruntime and tract (the same within noise)`.
fn fastest_names(d: &Deployments<'_>, st: &Style) -> String {
    let names: Vec<String> = d.fastest.iter().map(|&i| (st.name)(d.rows[i].backend())).collect();
    match names.len() {
        0 => String::new(),
        1 => names[0].clone(),
        _ => format!("{} (the same within noise)", names.join(" and ")),
    }
}

/// One sentence per variant: where it runs fastest at batch 1, and by how much over
/// libtorch.
fn verdicts(groups: &[Deployments<'_>], st: &Style) -> Vec<String> {
    groups
        .iter()
        .filter(|d| !d.fastest.is_empty())
        .map(|d| {
            let best = d.rows[d.fastest[0]];
            let vs = match d.reference() {
                Some(r) if !best.is_reference() && r.latency_p50_us > 0.0 => {
                    let x = r.latency_p50_us / best.latency_p50_us;
                    if x >= 1.0 {
                        format!(", {} faster than libtorch at batch 1", format::ratio(x))
                    } else {
                        format!(
                            ", {} of libtorch's batch-1 speed (libtorch's timing is invalid)",
                            format::ratio(x)
                        )
                    }
                }
                _ => String::new(),
            };
            let doubt = if format::is_invalid(&best.validity) { " (⚠ on an invalid timing)" } else { "" };
            format!("{}: fastest on {}{vs}{doubt}.", (st.name)(d.variant), fastest_names(d, st))
        })
        .collect()
}

fn table(groups: &[Deployments<'_>]) -> Table {
    let mut t = Table::new("backends");
    t.text("Variant", Show::Both)
        .text("Backend", Show::Both)
        .num("p50 batch 1 (µs)", Show::Both)
        .num("× libtorch", Show::Both)
        .num("Throughput (img/s)", Show::Both)
        .num("Accuracy", Show::Both)
        .num("Differs from libtorch", Show::Both)
        .num("Speedup over baseline", Show::Html)
        .text("What ran", Show::Html);
    for d in groups {
        let reference = d.reference().map(|r| r.latency_p50_us);
        for (i, m) in d.rows.iter().enumerate() {
            let fastest = d.fastest.contains(&i);
            let name = if i == 0 { Cell::name(d.variant) } else { Cell::text("") };
            let backend = if fastest {
                Cell::raw(
                    format!(
                        "{}<span class=\"badge fast\" title=\"lowest batch-1 p50 of this variant (or the same \
                         within noise)\">⚡ fastest</span>",
                        format::html(m.backend())
                    ),
                    format!("{} ⚡", cell(m.backend())),
                )
            } else {
                Cell::text(m.backend())
            };
            let vs = match reference {
                Some(r) if !m.is_reference() && r > 0.0 && m.latency_p50_us > 0.0 => {
                    format::ratio(r / m.latency_p50_us)
                }
                _ => format::MISSING.to_string(),
            };
            let differs = if m.is_reference() {
                Cell::text(format::MISSING)
            } else {
                let text =
                    format!("{} of {}", format::thousands(m.disagreements), format::thousands(m.test_images));
                let flagged = m.disagreements > 2 && m.disagreements as f64 > m.test_images as f64 * 0.001;
                if flagged { Cell::text(&format!("⚠ {text}")).class("slow") } else { Cell::text(&text) }
            };
            let speedup = Timed::interval(m.speedup_b1, m.speedup_b1_lo, m.speedup_b1_hi, format::ratio)
                .validity(&m.validity, &m.invalid_reason);
            t.row(
                "",
                vec![
                    name,
                    backend,
                    Cell::timed(&p50(m)),
                    Cell::text(&vs),
                    Cell::timed(&throughput(m)),
                    Cell::text(&format::percent(m.accuracy, 2)),
                    differs,
                    Cell::timed(&speedup),
                    Cell::text(&m.backend_detail),
                ],
            );
        }
    }
    t
}

/// The section in a sentence.
const LEGEND: &str = "Every variant on every backend of its evaluate stage, timed in the same interleaved rounds on \
     the same threads. onnxruntime and tract run the variant's ONNX export; libtorch runs it as slimbench computes it. \
     × libtorch is libtorch's batch-1 p50 over this backend's (above 1: faster); speedups over the baseline compare \
     the baseline on the same backend. \"Differs from libtorch\" counts test images whose top-1 prediction is not \
     libtorch's (⚠ over 2 images and 0.1%). ⚡ marks the fastest backend of each variant at batch 1, with any whose \
     95% interval overlaps it.";

fn invalid<'a>(groups: &'a [Deployments<'a>]) -> impl Iterator<Item = (&'a str, &'a str)> {
    groups
        .iter()
        .flat_map(|d| d.rows.iter())
        .filter(|m| format::is_invalid(&m.validity))
        .map(|m| (m.variant.as_str(), m.invalid_reason.as_str()))
}

/// The HTML section; one line when only libtorch was timed.
pub(crate) fn html_section(h: &mut String, rows: &[MetricRow]) {
    let groups = group(rows);
    if groups.is_empty() {
        empty_section(
            h,
            "backends",
            "Backends",
            &format!(
                "only {REFERENCE_BACKEND} was timed in this run (add <code>backends: [libtorch, onnxruntime, \
                 tract]</code> to an evaluate stage to time the others beside it)."
            ),
        );
        return;
    }
    h.push_str("<section id=\"backends\">\n<h2>Backends</h2>\n<ul>\n");
    for v in verdicts(&groups, &HTML) {
        let _ = writeln!(h, "<li>{v}</li>");
    }
    h.push_str("</ul>\n<div class=\"scroll\">\n");
    h.push_str(&table(&groups).html());
    let _ = writeln!(h, "</div>\n<p class=\"legend\">{}</p>\n</section>", format::html(LEGEND));
}

/// The markdown section; nothing when only libtorch was timed.
pub(crate) fn markdown_section(md: &mut String, rows: &[MetricRow]) {
    let groups = group(rows);
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n#### Backends\n");
    for v in verdicts(&groups, &MARKDOWN) {
        let _ = writeln!(md, "- {v}");
    }
    let _ = write!(md, "\n{}", table(&groups).markdown());
    if let Some(note) = invalid_footnote(invalid(&groups), cell) {
        let _ = writeln!(md, "\n{note}");
    }
    let _ = writeln!(md, "\n{}", cell(LEGEND));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(variant: &str, backend: &str, p50: f64, half: f64) -> MetricRow {
        MetricRow {
            variant: variant.into(),
            backend: backend.into(),
            latency_p50_us: p50,
            latency_p50_lo_us: p50 - half,
            latency_p50_hi_us: p50 + half,
            throughput_ips: 1e6 / p50 * 10.0,
            batch_size: 64,
            accuracy: 0.95,
            test_images: 1000,
            validity: "valid".into(),
            max_logit_diff: f64::NAN,
            speedup_b1: f64::NAN,
            ..Default::default()
        }
    }

    #[test]
    fn the_fastest_backend_of_each_variant_is_named_with_its_ties() {
        let rows = vec![
            row("train", "libtorch", 100.0, 2.0),
            row("fp16", "libtorch", 120.0, 2.0),
            row("train", "tract", 60.0, 2.0),
            row("train", "onnxruntime", 40.0, 2.0),
            row("fp16", "onnxruntime", 50.0, 5.0),
            row("fp16", "tract", 53.0, 5.0),
        ];
        let g = group(&rows);
        assert_eq!(g.len(), 2);
        let backends: Vec<&str> = g[0].rows.iter().map(|m| m.backend()).collect();
        assert_eq!(backends, ["libtorch", "onnxruntime", "tract"]);
        assert_eq!(g[0].fastest, [1]);
        assert_eq!(g[1].fastest, [1, 2]);
        let v = verdicts(&g, &MARKDOWN);
        assert_eq!(v[0], "train: fastest on onnxruntime, 2.50× faster than libtorch at batch 1.");
        assert_eq!(
            v[1],
            "fp16: fastest on onnxruntime and tract (the same within noise), 2.40× faster than libtorch at batch 1."
        );
        let mut md = String::new();
        markdown_section(&mut md, &rows);
        assert!(md.contains("| train | libtorch | 100.0 [98.0, 102.0] | — |"), "{md}");
        assert!(md.contains("|  | onnxruntime ⚡ | 40.0 [38.0, 42.0] | 2.50× |"), "{md}");
        assert!(md.contains("| 0 of 1,000 |"), "{md}");
    }

    #[test]
    fn invalid_timings_are_not_fastest_and_disagreements_are_flagged() {
        let mut rows = vec![row("a", "libtorch", 100.0, 2.0), row("a", "tract", 50.0, 2.0)];
        rows[1].validity = "invalid".into();
        rows[1].invalid_reason = "busy".into();
        rows[1].disagreements = 7;
        let g = group(&rows);
        assert_eq!(g[0].fastest, [0]);
        let mut md = String::new();
        markdown_section(&mut md, &rows);
        assert!(md.contains("⚠ 7 of 1,000"), "{md}");
        assert!(md.contains("⚠ invalid timing, not to be trusted: a (busy)"), "{md}");
    }

    #[test]
    fn libtorch_only_runs_have_no_section() {
        let rows = vec![row("a", "", 100.0, 2.0), row("b", "libtorch", 90.0, 2.0)];
        assert!(group(&rows).is_empty());
        let mut md = String::new();
        markdown_section(&mut md, &rows);
        assert!(md.is_empty());
        let mut h = String::new();
        html_section(&mut h, &rows);
        assert!(h.contains("only libtorch was timed"), "{h}");
    }
}
