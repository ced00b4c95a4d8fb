//! "Does it really get faster?": the `speedup` table grouped per compressed variant,
//! for the HTML section, the markdown summary and the speedup chart.
//!
//! A variant is marked "not faster" when its form as stored (materialized, else
//! simulated) is not faster beyond noise ([`Pace`]: its speedup reaches [`MIN_SPEEDUP`]
//! and its 95% interval lies above 1) at batch 1 or at the large batch, "same speed
//! within noise" when neither faster nor slower; the reasons evaluation recorded
//! (kernels, precisions, technique) are shown beside it. Every p50 and speedup is shown
//! with its interval, and invalid timings are marked.

use std::fmt::Write;

use slimbench_core::records::{MIN_SPEEDUP, Pace, SpeedupRow, faster_verdict};

use crate::format::{self, Timed, html as esc};
use crate::markdown::cell;

/// One form of a variant at both batch sizes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FormLine<'a> {
    pub(crate) form: &'a str,
    pub(crate) what: &'a str,
    pub(crate) b1: Option<&'a SpeedupRow>,
    pub(crate) large: Option<&'a SpeedupRow>,
    pub(crate) file_bytes: u64,
}

/// A compressed variant and its timed forms (baseline first).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VariantSpeed<'a> {
    pub(crate) variant: &'a str,
    pub(crate) baseline: &'a str,
    pub(crate) forms: Vec<FormLine<'a>>,
    /// The large batch size (`None` when only batch 1 was timed).
    pub(crate) large: Option<u64>,
    pub(crate) why: &'a str,
}

impl VariantSpeed<'_> {
    /// The form that stands for the variant as stored.
    pub(crate) fn stored(&self) -> Option<&FormLine<'_>> {
        self.forms
            .iter()
            .find(|f| f.form == "materialized")
            .or_else(|| self.forms.iter().find(|f| f.form == "simulated"))
    }

    /// Whether a materialized form was timed.
    pub(crate) fn materialized(&self) -> bool {
        self.forms.iter().any(|f| f.form == "materialized")
    }

    /// Why a timing of the form as stored is invalid, if one is (its verdict is then
    /// not to be trusted).
    pub(crate) fn invalid(&self) -> Option<&str> {
        let f = self.stored()?;
        [f.b1, f.large].into_iter().flatten().find(|r| format::is_invalid(&r.validity)).map(|r| {
            if r.invalid_reason.is_empty() { "no reason recorded" } else { r.invalid_reason.as_str() }
        })
    }

    /// `yes`, `no`, `batch 1 only` or `large batch only` for the form as stored.
    pub(crate) fn verdict(&self) -> &'static str {
        match self.stored() {
            Some(f) => faster_verdict(pace(f.b1), pace(f.large)),
            None => "no",
        }
    }
}

/// The speedup rows grouped per variant, in table order; forms in the order
/// baseline, simulated, materialized.
pub(crate) fn group(rows: &[SpeedupRow]) -> Vec<VariantSpeed<'_>> {
    let mut out: Vec<VariantSpeed<'_>> = Vec::new();
    for r in rows {
        let v = match out.iter_mut().position(|v| v.variant == r.variant) {
            Some(i) => &mut out[i],
            None => {
                out.push(VariantSpeed {
                    variant: &r.variant,
                    baseline: &r.baseline,
                    forms: Vec::new(),
                    large: None,
                    why: "",
                });
                out.last_mut().expect("just pushed")
            }
        };
        if v.why.is_empty() && !r.why.is_empty() {
            v.why = &r.why;
        }
        if r.batch_size > 1 {
            v.large = Some(v.large.map_or(r.batch_size, |b| b.max(r.batch_size)));
        }
        let f = match v.forms.iter().position(|f| f.form == r.form) {
            Some(i) => &mut v.forms[i],
            None => {
                v.forms.push(FormLine {
                    form: &r.form,
                    what: &r.what,
                    b1: None,
                    large: None,
                    file_bytes: r.file_bytes,
                });
                v.forms.last_mut().expect("just pushed")
            }
        };
        if r.batch_size == 1 {
            f.b1 = Some(r);
        } else if f.large.is_none_or(|l| l.batch_size < r.batch_size) {
            f.large = Some(r);
        }
    }
    let rank =
        |form: &str| ["baseline", "simulated", "materialized"].iter().position(|f| *f == form).unwrap_or(3);
    for v in &mut out {
        v.forms.sort_by_key(|f| rank(f.form));
    }
    out
}

/// How a form's time compares with its baseline's, judged on the speedup's interval
/// where it has one.
pub(crate) fn pace(r: Option<&SpeedupRow>) -> Pace {
    let Some(r) = r else { return Pace::Unknown };
    let (lo, hi) = format::interval(r.speedup_lo, r.speedup_hi).unwrap_or((f64::NAN, f64::NAN));
    Pace::of(r.speedup, lo, hi)
}

fn speedup_text(r: Option<&SpeedupRow>) -> Timed<'_> {
    match r {
        Some(r) => Timed::interval(r.speedup, r.speedup_lo, r.speedup_hi, format::ratio)
            .validity(&r.validity, &r.invalid_reason),
        None => Timed::interval(f64::NAN, f64::NAN, f64::NAN, format::ratio),
    }
}

fn p50_text(r: Option<&SpeedupRow>) -> Timed<'_> {
    match r {
        Some(r) => Timed::interval(r.p50_us, r.p50_lo_us, r.p50_hi_us, |v| format::measured(v, 1))
            .validity(&r.validity, &r.invalid_reason),
        None => Timed::interval(f64::NAN, f64::NAN, f64::NAN, format::ratio),
    }
}

/// The HTML class of a speedup cell.
fn pace_class(r: Option<&SpeedupRow>) -> &'static str {
    match (r.map(|r| r.form.as_str()), pace(r)) {
        (Some("baseline"), _) | (_, Pace::Unknown) => "",
        (_, Pace::Slower) => " slow",
        (_, Pace::Faster) => " fast",
        (_, Pace::Same) => " same",
    }
}

/// The HTML section.
pub(crate) fn html_section(h: &mut String, rows: &[SpeedupRow]) {
    let variants = group(rows);
    if variants.is_empty() {
        crate::table::empty_section(
            h,
            "speedup",
            "Speedup over the baseline",
            "No compressed variant was timed beside its baseline in this run (evaluate needs both the variant \
             and the model it was compressed from).",
        );
        return;
    }
    h.push_str("<section id=\"speedup\">\n<h2>Does it really get faster?</h2>\n");
    let lb = variants.iter().filter_map(|v| v.large).max().map_or("large".to_string(), |b| b.to_string());
    let _ = writeln!(
        h,
        "<div class=\"scroll\"><table class=\"speedup\">\n<thead><tr><th>Variant</th><th>Form</th><th>What</th>\
         <th class=\"num\">p50 µs @1</th><th class=\"num\">Speedup @1</th><th class=\"num\">p50 µs @{0}</th>\
         <th class=\"num\">Speedup @{0}</th><th class=\"num\">Size KB</th></tr></thead>\n<tbody>",
        esc(&lb)
    );
    for v in &variants {
        let verdict = v.verdict();
        let n = v.forms.len() + usize::from(!v.materialized()) + 1;
        let mut badge = match verdict {
            "yes" => "<span class=\"badge fast\">faster</span>".to_string(),
            "same within noise" => "<span class=\"badge same\">same speed within noise</span>".to_string(),
            _ => format!("<span class=\"badge slow\">{}</span>", esc(&not_faster_label(verdict, v.large))),
        };
        if let Some(reason) = v.invalid() {
            let _ = write!(
                badge,
                "<span class=\"badge invalid\" title=\"invalid timing: {}\">{} invalid timing</span>",
                esc(reason),
                format::INVALID_MARK
            );
        }
        for (i, f) in v.forms.iter().enumerate() {
            let lead = if i == 0 {
                format!(
                    "<td rowspan=\"{n}\"><code>{}</code>{badge}<br><span class=\"dim\">vs <code>{}</code></span></td>",
                    esc(v.variant),
                    esc(v.baseline)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                h,
                "<tr>{lead}<td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num{}\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num{}\">{}</td><td class=\"num\">{}</td></tr>",
                esc(f.form),
                esc(f.what),
                p50_text(f.b1).html(),
                pace_class(f.b1),
                speedup_text(f.b1).html(),
                p50_text(f.large).html(),
                pace_class(f.large),
                speedup_text(f.large).html(),
                format::kb(f.file_bytes),
            );
        }
        if !v.materialized() {
            h.push_str(
                "<tr><td>materialized</td><td colspan=\"6\" class=\"dim\">none: the stored model is the \
                 simulated one</td></tr>\n",
            );
        }
        let _ = writeln!(
            h,
            "<tr class=\"why\"><td colspan=\"7\"><b>{}</b> {}</td></tr>",
            if verdict == "yes" { "Known:" } else { "Why not faster:" },
            if v.why.is_empty() { format::MISSING.to_string() } else { esc(v.why) }
        );
    }
    let _ = writeln!(
        h,
        "</tbody></table></div>\n<p class=\"legend\">Each variant is timed beside the model it was compressed \
         from, in interleaved rounds in one process on the same threads (medians). <i>Simulated</i>: the \
         compression in the original shape and arithmetic (masks, fake quantization); <i>materialized</i>: \
         the variant as stored (smaller layers, int8 kernels). Speedup = baseline p50 / form p50, with its \
         95% bootstrap interval (p50s with theirs). A form is <b>faster</b> only when its speedup reaches \
         {MIN_SPEEDUP:.2}× and the interval lies above 1× (timing noise on a shared CPU is a few percent), \
         slower when the mirror holds, and otherwise the <b>same speed within noise</b>. {} marks an invalid \
         timing (hover for the reason).</p>\n</section>",
        format::INVALID_MARK
    );
}

fn not_faster_label(verdict: &str, large: Option<u64>) -> String {
    match verdict {
        "batch 1 only" => format!("not faster at batch {}", large.unwrap_or(0)),
        "large batch only" => "not faster at batch 1".into(),
        "same within noise" => "same speed within noise".into(),
        _ => "not faster".into(),
    }
}

/// The markdown section (appended to `summary.md`); nothing when no variant was timed.
pub(crate) fn markdown_section(md: &mut String, rows: &[SpeedupRow]) {
    let variants = group(rows);
    if variants.is_empty() {
        return;
    }
    let large = variants.iter().filter_map(|v| v.large).max();
    let lb = large.map_or("large".to_string(), |b| b.to_string());
    let _ = writeln!(
        md,
        "\n#### Does it really get faster?\n\n\
         | variant | form | p50 @1 (µs) | speedup @1 | p50 @{lb} (µs) | speedup @{lb} | size (KB) |\n\
         |---|---|--:|--:|--:|--:|--:|"
    );
    for v in &variants {
        for f in &v.forms {
            let mark = |r: Option<&SpeedupRow>| {
                let t = cell(&speedup_text(r).text());
                match pace_class(r) {
                    " slow" => format!("{t} ✗"),
                    " same" => format!("{t} ≈"),
                    _ => t,
                }
            };
            let _ = writeln!(
                md,
                "| {}{} | {} | {} | {} | {} | {} | {} |",
                cell(v.variant),
                if f.form == "baseline" { format!(" (vs {})", cell(v.baseline)) } else { String::new() },
                cell(f.form),
                cell(&p50_text(f.b1).text()),
                mark(f.b1),
                cell(&p50_text(f.large).text()),
                mark(f.large),
                format::kb(f.file_bytes),
            );
        }
    }
    md.push('\n');
    for v in &variants {
        let verdict = v.verdict();
        let head = if verdict == "yes" {
            "faster".to_string()
        } else {
            format!("**{}**", not_faster_label(verdict, v.large))
        };
        let head = match v.invalid() {
            Some(_) => format!("{head} ({} invalid timing)", format::INVALID_MARK),
            None => head,
        };
        let _ = writeln!(
            md,
            "- {}: {head}{}{}",
            cell(v.variant),
            if v.materialized() || v.why.starts_with("no materialized form") {
                ""
            } else {
                " (no materialized form)"
            },
            if v.why.is_empty() { String::new() } else { format!(" — {}", cell(v.why)) }
        );
    }
    let _ = writeln!(
        md,
        "\n✗ slower than its baseline beyond noise · ≈ the same speed within noise (the 95% interval holds 1×, \
         or the gain is under {MIN_SPEEDUP:.2}×)"
    );
    let invalid = rows
        .iter()
        .filter(|r| format::is_invalid(&r.validity))
        .map(|r| (r.variant.as_str(), r.invalid_reason.as_str()));
    if let Some(note) = format::invalid_footnote(invalid, cell) {
        let _ = writeln!(md, "\n{note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(variant: &str, form: &str, batch_size: u64, speedup: f64) -> SpeedupRow {
        SpeedupRow {
            variant: variant.into(),
            baseline: "train".into(),
            form: form.into(),
            what: format!("{form} form"),
            batch_size,
            samples: 10,
            p50_us: 100.0 / speedup,
            images_per_s: 1.0,
            file_bytes: 1000,
            speedup,
            faster: if form == "baseline" {
                String::new()
            } else if speedup >= MIN_SPEEDUP {
                "yes".into()
            } else {
                "no".into()
            },
            why: if form == "baseline" { String::new() } else { format!("{variant} reasons") },
            // A run made before intervals: judged on the point values.
            speedup_lo: f64::NAN,
            speedup_hi: f64::NAN,
            p50_lo_us: f64::NAN,
            p50_hi_us: f64::NAN,
            ..Default::default()
        }
    }

    fn rows() -> Vec<SpeedupRow> {
        vec![
            row("int8", "baseline", 1, 1.0),
            row("int8", "baseline", 256, 1.0),
            row("int8", "materialized", 1, 0.9),
            row("int8", "materialized", 256, 1.6),
            row("int8", "simulated", 1, 0.97),
            row("int8", "simulated", 256, 0.99),
            row("sparse", "baseline", 1, 1.0),
            row("sparse", "baseline", 256, 1.0),
            row("sparse", "simulated", 1, 1.01),
            row("sparse", "simulated", 256, 0.98),
            row("half", "baseline", 1, 1.0),
            row("half", "baseline", 256, 1.0),
            row("half", "materialized", 1, 1.4),
            row("half", "materialized", 256, 1.9),
        ]
    }

    #[test]
    fn rows_group_per_variant_with_forms_in_order() {
        let rows = rows();
        let g = group(&rows);
        assert_eq!(g.iter().map(|v| v.variant).collect::<Vec<_>>(), ["int8", "sparse", "half"]);
        assert_eq!(
            g[0].forms.iter().map(|f| f.form).collect::<Vec<_>>(),
            ["baseline", "simulated", "materialized"]
        );
        assert_eq!(g[0].large, Some(256));
        assert_eq!(g[0].why, "int8 reasons");
        // sparse is 1% faster at batch 1 and 2% slower at 256: the same speed within noise.
        assert_eq!(
            (g[0].verdict(), g[1].verdict(), g[2].verdict()),
            ("large batch only", "same within noise", "yes")
        );
        assert!(!g[1].materialized() && g[1].stored().unwrap().form == "simulated");
    }

    #[test]
    fn html_marks_what_is_not_faster_and_says_why() {
        let mut h = String::new();
        html_section(&mut h, &rows());
        assert!(h.contains("Does it really get faster?"));
        assert!(h.contains("<span class=\"badge slow\">not faster at batch 1</span>"), "{h}");
        assert!(h.contains("<span class=\"badge same\">same speed within noise</span>"), "{h}");
        assert!(h.contains("<span class=\"badge fast\">faster</span>"));
        assert!(h.contains("none: the stored model is the simulated one"));
        assert!(h.contains("<b>Why not faster:</b> sparse reasons"));
        assert!(h.contains("<td class=\"num slow\">0.90×</td>"), "{h}");
        let mut empty = String::new();
        html_section(&mut empty, &[]);
        assert!(empty.contains("No compressed variant was timed"));
    }

    #[test]
    fn markdown_lists_verdicts() {
        let mut md = String::new();
        markdown_section(&mut md, &rows());
        assert!(md.contains("| int8 | materialized | 111.1 | 0.90× ✗ | 62.5 | 1.60× | 1.0 |"), "{md}");
        assert!(md.contains("| sparse | simulated | 99.0 | 1.01× ≈ | 102.0 | 0.98× ≈ | 1.0 |"), "{md}");
        assert!(
            md.contains("- sparse: **same speed within noise** (no materialized form) — sparse reasons"),
            "{md}"
        );
        assert!(md.contains("✗ slower than its baseline beyond noise · ≈ the same speed within noise"));
        assert!(!md.contains("invalid timing"));
        assert!(md.contains("- half: faster — half reasons"));
        let mut none = String::new();
        markdown_section(&mut none, &[]);
        assert!(none.is_empty());
    }

    #[test]
    fn intervals_decide_and_invalid_timings_are_marked() {
        let mut rows = rows();
        // half at batch 1: 1.4× on the point value, but the interval reaches 0.98×.
        let r =
            rows.iter_mut().find(|r| r.variant == "half" && r.form == "materialized" && r.batch_size == 1);
        let r = r.unwrap();
        (r.speedup_lo, r.speedup_hi) = (0.98, 1.7);
        (r.p50_lo_us, r.p50_hi_us) = (60.0, 80.0);
        r.validity = "invalid".into();
        r.invalid_reason = "busy machine".into();
        let g = group(&rows);
        assert_eq!(g[2].verdict(), "large batch only");
        let mut md = String::new();
        markdown_section(&mut md, &rows);
        assert!(
            md.contains("| half | materialized | ⚠ 71.4 [60.0, 80.0] | ⚠ 1.40× [0.98×, 1.70×] ≈ |"),
            "{md}"
        );
        assert!(md.contains("⚠ invalid timing, not to be trusted: half (busy machine)"), "{md}");
        let mut h = String::new();
        html_section(&mut h, &rows);
        assert!(
            h.contains("<span class=\"invalid\" title=\"invalid timing: busy machine\">⚠ 1.40×</span>"),
            "{h}"
        );
    }
}
