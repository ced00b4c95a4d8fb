//! The server scenario (`server.parquet`): per variant, the highest offered rate whose
//! p99 latency met the target, for the HTML section, the markdown summary and the
//! `server_latency` chart.

use std::fmt::Write;

use slimbench_core::records::ServerRow;

use crate::charts::distinct;
use crate::format::{self, Timed, invalid_footnote};
use crate::markdown::cell;
use crate::table::{Cell, Show, Table, empty_section};

/// A rate in queries per second: whole numbers with separators, else one decimal.
pub(crate) fn qps(rate: f64) -> String {
    if !rate.is_finite() || rate <= 0.0 {
        format::MISSING.into()
    } else if rate.fract() == 0.0 {
        format::thousands(rate as u64)
    } else {
        format!("{rate:.1}")
    }
}

/// One variant's loads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VariantServer<'a> {
    pub(crate) variant: &'a str,
    /// Its rows by offered rate.
    pub(crate) rows: Vec<&'a ServerRow>,
    /// The highest rate that met the target (the row evaluate marked `best`, else the
    /// highest with `meets`).
    pub(crate) best: Option<&'a ServerRow>,
    /// An invalid load that puts the figure in doubt: the best itself, or a higher rate
    /// that missed the target on a disturbed machine (it might have met it).
    pub(crate) doubt: Option<&'a ServerRow>,
}

/// The rows grouped per variant, in the order variants first appear.
pub(crate) fn group(rows: &[ServerRow]) -> Vec<VariantServer<'_>> {
    distinct(rows.iter().map(|r| r.variant.as_str()))
        .into_iter()
        .map(|variant| {
            let mut mine: Vec<&ServerRow> = rows.iter().filter(|r| r.variant == variant).collect();
            mine.sort_by(|a, b| a.rate_qps.total_cmp(&b.rate_qps));
            let best = mine
                .iter()
                .copied()
                .find(|r| r.best == "yes")
                .or_else(|| mine.iter().copied().rfind(|r| r.meets == "yes"));
            let floor = best.map_or(f64::NEG_INFINITY, |b| b.rate_qps);
            let doubt = best.filter(|b| format::is_invalid(&b.validity)).or_else(|| {
                mine.iter()
                    .copied()
                    .find(|r| r.rate_qps > floor && r.meets != "yes" && format::is_invalid(&r.validity))
            });
            VariantServer { variant, rows: mine, best, doubt }
        })
        .collect()
}

/// A row's p99 with its one-sided bound, marked when invalid.
pub(crate) fn p99(r: &ServerRow) -> Timed<'_> {
    Timed::bound(r.p99_ms, r.p99_bound_ms, format::millis).validity(&r.validity, &r.invalid_reason)
}

fn table(variants: &[VariantServer<'_>]) -> Table {
    let mut t = Table::new("server");
    t.text("Variant", Show::Both)
        .num("Highest rate meeting the target (q/s)", Show::Both)
        .num("p99 there (ms)", Show::Both)
        .num("p50 there (ms)", Show::Html)
        .num("Target p99 (ms)", Show::Both)
        .num("Max batch", Show::Both)
        .num("Mean batch", Show::Html)
        .num("Rates tried (q/s)", Show::Html);
    for v in variants {
        // No rate met the target: the lowest rate tried shows how far off it was.
        let (row, rate, at) = match (v.best, v.rows.first()) {
            (Some(b), _) => (b, Timed::word(&qps(b.rate_qps)), String::new()),
            (None, Some(&low)) => (low, Timed::word("none"), format!("at {} q/s", qps(low.rate_qps))),
            (None, None) => continue,
        };
        let rate = match v.doubt {
            Some(d) => rate.validity(&d.validity, &d.invalid_reason),
            None => rate,
        };
        let rate = if v.best.is_none() { Cell::timed(&rate).class("slow") } else { Cell::timed(&rate) };
        let p50 = Timed::interval(row.p50_ms, f64::NAN, f64::NAN, format::millis);
        t.row(
            "",
            vec![
                Cell::name(v.variant),
                rate,
                Cell::timed(&p99(row).note(at.clone())),
                Cell::timed(&p50.note(at).validity(&row.validity, &row.invalid_reason)),
                Cell::text(&format::millis(row.target_p99_ms)),
                Cell::text(&format::count(row.max_batch)),
                Cell::text(&format::measured(row.mean_batch, 1)),
                Cell::text(&format::span(v.rows.iter().map(|r| r.rate_qps), qps)),
            ],
        );
    }
    t
}

/// The scenario in a sentence.
const LEGEND: &str = "Queries arrive one image at a time at Poisson times at the offered rate; the server takes every \
     query waiting (up to the max batch) into one forward, and a query's latency runs from its scheduled arrival to \
     the end of its batch. A variant's server figure is the highest offered rate whose p99 met the target (marked ⚠ when \
     it, or a higher rate that missed the target, was timed on a disturbed machine); ≤ is a one-sided 95% upper \
     bound of the true p99 (none under 299 queries).";

/// The invalid loads the table marks, for the footnote under the markdown table.
fn invalid<'a>(variants: &'a [VariantServer<'a>]) -> impl Iterator<Item = (&'a str, &'a str)> {
    variants
        .iter()
        .flat_map(|v| [v.best.or(v.rows.first().copied()), v.doubt])
        .flatten()
        .filter(|r| format::is_invalid(&r.validity))
        .map(|r| (r.variant.as_str(), r.invalid_reason.as_str()))
}

/// The HTML section; one line when the scenario was not run.
pub(crate) fn html_section(h: &mut String, rows: &[ServerRow]) {
    let variants = group(rows);
    if variants.is_empty() {
        empty_section(
            h,
            "server",
            "Server scenario",
            "not run in this run (evaluate recorded no offered loads).",
        );
        return;
    }
    h.push_str("<section id=\"server\">\n<h2>Server scenario</h2>\n");
    h.push_str(&table(&variants).html());
    let _ = writeln!(h, "<p class=\"legend\">{}</p>\n</section>", format::html(LEGEND));
}

/// The markdown section; nothing when the scenario was not run.
pub(crate) fn markdown_section(md: &mut String, rows: &[ServerRow]) {
    let variants = group(rows);
    if variants.is_empty() {
        return;
    }
    let _ = write!(md, "\n#### Server scenario\n\n{}", table(&variants).markdown());
    if let Some(note) = invalid_footnote(invalid(&variants), cell) {
        let _ = writeln!(md, "\n{note}");
    }
    let _ = writeln!(md, "\n{}", cell(LEGEND));
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn load(variant: &str, rate: f64, p99: f64, target: f64) -> ServerRow {
        ServerRow {
            variant: variant.into(),
            rate_qps: rate,
            queries: (rate * 10.0) as u64,
            duration_s: 10.0,
            max_batch: 8,
            mean_batch: rate / 400.0 + 1.0,
            p50_ms: p99 / 3.0,
            p99_ms: p99,
            p99_bound_ms: p99 * 1.1,
            target_p99_ms: target,
            meets: if p99 <= target { "yes" } else { "no" }.into(),
            best: String::new(),
            validity: "valid".into(),
            invalid_reason: String::new(),
        }
    }

    #[test]
    fn the_highest_rate_meeting_the_target_is_the_figure() {
        let rows = vec![
            load("a", 400.0, 6.0, 10.0),
            load("a", 100.0, 2.0, 10.0),
            load("a", 800.0, 40.0, 10.0),
            load("b", 100.0, 12.0, 10.0),
        ];
        let g = group(&rows);
        assert_eq!(g[0].rows.iter().map(|r| r.rate_qps).collect::<Vec<_>>(), [100.0, 400.0, 800.0]);
        assert_eq!(g[0].best.unwrap().rate_qps, 400.0);
        assert!(g[1].best.is_none());
        let md = table(&g).markdown();
        assert!(md.contains("| a | 400 | 6.00 ≤6.60 | 10.0 | 8 |"), "{md}");
        assert!(md.contains("| b | none | 12.0 at 100 q/s ≤13.2 | 10.0 | 8 |"), "{md}");
        assert_eq!((qps(12.5), qps(1000.0)), ("12.5".to_string(), "1,000".to_string()));
        // A higher rate that missed the target on a busy machine puts the figure in doubt.
        let mut busy = rows.clone();
        busy[2].validity = "invalid".into();
        busy[2].invalid_reason = "busy".into();
        let g = group(&busy);
        assert_eq!(g[0].doubt.unwrap().rate_qps, 800.0);
        let mut md = String::new();
        markdown_section(&mut md, &busy);
        assert!(md.contains("| a | ⚠ 400 | 6.00 ≤6.60 |"), "{md}");
        assert!(md.contains("⚠ invalid timing, not to be trusted: a (busy)"), "{md}");
        // evaluate's own choice wins.
        let mut marked = rows.clone();
        marked[1].best = "yes".into();
        assert_eq!(group(&marked)[0].best.unwrap().rate_qps, 100.0);
    }
}
