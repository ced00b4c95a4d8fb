//! How numbers and text appear in the HTML and markdown tables (one place, so both
//! agree). Decimal units throughout (1 KB = 1000 bytes) except host memory, which
//! machines report in GiB.

use slimbench_core::records::MetricRow;

/// Placeholder for a value that was not measured.
pub const MISSING: &str = "—";

/// Escape text for HTML element content and attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `12.3 s`, `3 min 05 s`, `1 h 02 min`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return MISSING.into();
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let whole = secs.round() as u64;
    if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
    }
}

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fraction as a percentage: `96.01%`.
pub fn percent(x: f64, decimals: usize) -> String {
    if x.is_finite() { format!("{:.*}%", decimals, x * 100.0) } else { MISSING.into() }
}

/// A measured positive quantity with `decimals` decimals; [`MISSING`] when not measured
/// (0 or not finite).
pub fn measured(x: f64, decimals: usize) -> String {
    if x.is_finite() && x > 0.0 { format!("{x:.decimals$}") } else { MISSING.into() }
}

/// Images per second, rounded, with thousands separators.
pub fn rate(x: f64) -> String {
    if x.is_finite() && x > 0.0 { thousands(x.round() as u64) } else { MISSING.into() }
}

/// Bytes in KB with one decimal.
pub fn kb(bytes: u64) -> String {
    measured(bytes as f64 / 1e3, 1)
}

/// Bytes in MB with one decimal.
pub fn mb(bytes: u64) -> String {
    measured(bytes as f64 / 1e6, 1)
}

/// Bytes with their unit, three significant figures or so: `820 B`, `82.3 KB`,
/// `12.4 MB`, `1.50 GB` (decimal units); [`MISSING`] for 0.
pub fn bytes(n: u64) -> String {
    let v = n as f64;
    let (scaled, unit) = match n {
        0 => return MISSING.into(),
        1..1_000 => return format!("{n} B"),
        1_000..1_000_000 => (v / 1e3, "KB"),
        1_000_000..1_000_000_000 => (v / 1e6, "MB"),
        _ => (v / 1e9, "GB"),
    };
    let d = if scaled < 10.0 {
        2
    } else if scaled < 100.0 {
        1
    } else {
        0
    };
    format!("{scaled:.d$} {unit}")
}

/// Milliseconds, three significant figures or so (`0.412`, `4.12`, `41.2`, `412`);
/// [`MISSING`] when not measured.
pub fn millis(ms: f64) -> String {
    match ms {
        _ if !ms.is_finite() || ms <= 0.0 => MISSING.into(),
        _ if ms < 1.0 => format!("{ms:.3}"),
        _ if ms < 10.0 => format!("{ms:.2}"),
        _ if ms < 100.0 => format!("{ms:.1}"),
        _ => thousands(ms.round() as u64),
    }
}

/// Bytes in GiB with one decimal.
pub fn gib(bytes: u64) -> String {
    measured(bytes as f64 / (1u64 << 30) as f64, 1)
}

/// Joules: three significant figures or so (`0.53`, `12.4`, `1,234`); [`MISSING`]
/// when not measured.
pub fn joules(j: f64) -> String {
    if !j.is_finite() || j < 0.0 {
        MISSING.into()
    } else if j >= 100.0 {
        thousands(j.round() as u64)
    } else if j >= 10.0 {
        format!("{j:.1}")
    } else {
        format!("{j:.2}")
    }
}

/// A ratio: `1.85×`; [`MISSING`] when not finite.
pub fn ratio(x: f64) -> String {
    if x.is_finite() { format!("{x:.2}×") } else { MISSING.into() }
}

/// Count with separators, [`MISSING`] for 0.
pub fn count(n: u64) -> String {
    if n == 0 { MISSING.into() } else { thousands(n) }
}

/// Whether a row's `validity` column says its timing is invalid. Empty (a run made
/// before slimbench checked) counts as valid.
pub fn is_invalid(validity: &str) -> bool {
    validity == "invalid"
}

/// A 95% interval `[lo, hi]` when it is one: both ends finite, in order, not both 0
/// (what a row built without one holds); `None` for runs made before intervals.
pub fn interval(lo: f64, hi: f64) -> Option<(f64, f64)> {
    (lo.is_finite() && hi.is_finite() && lo <= hi && hi > 0.0).then_some((lo, hi))
}

/// Marks a figure whose timing is invalid; it is never shown without it.
pub const INVALID_MARK: &str = "⚠";

/// A timed figure as every table shows it: the value, its 95% interval (`82.9 [80.0,
/// 86.0]`) or one-sided upper bound (`116.1 ≤120.0`) where known, and [`INVALID_MARK`]
/// in front when the timing is invalid, with the reason (a tooltip in HTML; markdown
/// lists the reasons under its table, see [`invalid_footnote`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<'a> {
    value: String,
    note: String,
    spread: String,
    invalid: Option<&'a str>,
}

impl<'a> Timed<'a> {
    /// `value` and its interval `[lo, hi]`, each shown by `num`; the value alone where an
    /// end is not finite (runs made before intervals) or it was not measured.
    pub fn interval(value: f64, lo: f64, hi: f64, num: impl Fn(f64) -> String) -> Self {
        let shown = num(value);
        let spread = match interval(lo, hi) {
            Some((lo, hi)) if shown != MISSING => format!("[{}, {}]", num(lo), num(hi)),
            _ => String::new(),
        };
        Timed { value: shown, note: String::new(), spread, invalid: None }
    }

    /// `value` and a one-sided upper bound of it (`≤120.0`), where known.
    pub fn bound(value: f64, bound: f64, num: impl Fn(f64) -> String) -> Self {
        let shown = num(value);
        let spread =
            if shown != MISSING && bound.is_finite() { format!("≤{}", num(bound)) } else { String::new() };
        Timed { value: shown, note: String::new(), spread, invalid: None }
    }

    /// A word or a number already formatted (`none`, `400`), with no interval.
    pub fn word(value: &str) -> Self {
        Timed { value: value.to_string(), note: String::new(), spread: String::new(), invalid: None }
    }

    /// With a note after the value (`@256`, the batch size), dim in HTML.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        if self.value != MISSING {
            self.note = note.into();
        }
        self
    }

    /// Marked invalid when `validity` says so, for `reason`.
    pub fn validity(mut self, validity: &str, reason: &'a str) -> Self {
        if is_invalid(validity) && self.value != MISSING {
            self.invalid = Some(reason);
        }
        self
    }

    /// Whether it is marked invalid.
    pub fn is_invalid(&self) -> bool {
        self.invalid.is_some()
    }

    /// Plain text: `⚠ 82.9 [80.0, 86.0]`.
    pub fn text(&self) -> String {
        let mut s = match self.invalid {
            Some(_) => format!("{INVALID_MARK} {}", self.value),
            None => self.value.clone(),
        };
        if !self.note.is_empty() {
            s.push(' ');
            s.push_str(&self.note);
        }
        if !self.spread.is_empty() {
            s.push(' ');
            s.push_str(&self.spread);
        }
        s
    }

    /// For an HTML cell: the interval on a line of its own under the value (narrow
    /// columns), an invalid value marked, its reason in a tooltip.
    pub fn html(&self) -> String {
        let value = match self.invalid {
            Some(reason) => format!(
                "<span class=\"invalid\" title=\"invalid timing: {}\">{INVALID_MARK} {}</span>",
                html(if reason.is_empty() { "no reason recorded" } else { reason }),
                html(&self.value)
            ),
            None => html(&self.value),
        };
        let value = if self.note.is_empty() {
            value
        } else {
            format!("{value} <span class=\"dim\">{}</span>", html(&self.note))
        };
        if self.spread.is_empty() {
            value
        } else {
            format!("{value}<span class=\"ci\">{}</span>", html(&self.spread))
        }
    }
}

/// The line under a markdown table that gives the reasons of its [`INVALID_MARK`]s:
/// `⚠ invalid timing: train (3 of 10 rounds preempted); fp16 (...)`, one entry per
/// distinct `(name, reason)`; `None` when nothing is invalid. Names and reasons come
/// from the run: the caller escapes them for its document.
pub fn invalid_footnote<'a>(
    invalid: impl IntoIterator<Item = (&'a str, &'a str)>,
    escape: impl Fn(&str) -> String,
) -> Option<String> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for item in invalid {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    if seen.is_empty() {
        return None;
    }
    let items: Vec<String> =
        seen.iter()
            .map(|(name, reason)| {
                if reason.is_empty() {
                    escape(name)
                } else {
                    format!("{} ({})", escape(name), escape(reason))
                }
            })
            .collect();
    Some(format!("{INVALID_MARK} invalid timing, not to be trusted: {}", items.join("; ")))
}

/// `x`, or `x–y` when the values differ (a figure of several variants), each shown by
/// `num`; [`MISSING`] when there is none.
pub fn span(values: impl IntoIterator<Item = f64>, num: impl Fn(f64) -> String) -> String {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    match (lo.is_finite(), num(lo), num(hi)) {
        (false, _, _) => MISSING.into(),
        (true, a, b) if a == b => a,
        (true, a, b) => format!("{a}–{b}"),
    }
}

/// `fp16`, or `fp16→fp32` when the arithmetic ran in another precision than storage.
pub fn precision(m: &MetricRow) -> String {
    if m.compute_precision.is_empty() || m.compute_precision == m.precision {
        m.precision.clone()
    } else {
        format!("{}→{}", m.precision, m.compute_precision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(html(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(percent(0.96014, 2), "96.01%");
        assert_eq!(measured(0.0, 1), MISSING);
        assert_eq!(measured(f64::NAN, 1), MISSING);
        assert_eq!(kb(83_456), "83.5");
        assert_eq!(gib(16 << 30), "16.0");
        assert_eq!(
            (joules(0.531), joules(12.44), joules(1234.4)),
            ("0.53".into(), "12.4".into(), "1,234".into())
        );
        assert_eq!(
            (joules(f64::NAN), ratio(1.849), ratio(f64::INFINITY)),
            (MISSING.into(), "1.85×".into(), MISSING.into())
        );
        assert_eq!(
            [0, 820, 82_304, 12_400_000, 1_500_000_000].map(bytes),
            ["—", "820 B", "82.3 KB", "12.4 MB", "1.50 GB"]
        );
        assert_eq!(
            [0.4123, 4.123, 41.23, 4123.0, f64::NAN].map(millis),
            ["0.412", "4.12", "41.2", "4,123", "—"]
        );
        assert_eq!(span([2.0, 1.0, 3.0], |v| format!("{v:.1}")), "1.0–3.0");
        assert_eq!(span([2.0, 2.04], |v| format!("{v:.1}")), "2.0");
        assert_eq!(span([f64::NAN], |v| format!("{v:.1}")), MISSING);
    }

    #[test]
    fn timed_figures_show_intervals_and_invalid_marks() {
        let us = |v: f64| measured(v, 1);
        let t = Timed::interval(82.94, 80.0, 86.04, us);
        assert_eq!(t.text(), "82.9 [80.0, 86.0]");
        assert_eq!(t.html(), "82.9<span class=\"ci\">[80.0, 86.0]</span>");
        // Old runs: no interval.
        assert_eq!(Timed::interval(82.94, f64::NAN, f64::NAN, us).text(), "82.9");
        assert_eq!(Timed::interval(82.94, 0.0, 0.0, us).text(), "82.9");
        assert_eq!(Timed::bound(116.1, 120.0, us).text(), "116.1 ≤120.0");
        assert_eq!(Timed::bound(116.1, f64::NAN, us).text(), "116.1");
        let at = Timed::interval(12_345.4, 12_100.0, 12_600.0, rate).note("@256");
        assert_eq!(at.text(), "12,345 @256 [12,100, 12,600]");
        assert_eq!(
            at.html(),
            "12,345 <span class=\"dim\">@256</span><span class=\"ci\">[12,100, 12,600]</span>"
        );
        let bad = Timed::interval(41.2, 40.1, 42.3, us).validity("invalid", "others used 40% <of> the CPU");
        assert!(bad.is_invalid());
        assert_eq!(bad.text(), "⚠ 41.2 [40.1, 42.3]");
        assert_eq!(
            bad.html(),
            "<span class=\"invalid\" title=\"invalid timing: others used 40% &lt;of&gt; the CPU\">⚠ 41.2</span>\
             <span class=\"ci\">[40.1, 42.3]</span>"
        );
        // Valid, unknown (old runs) and unmeasured figures carry no mark.
        for (v, validity) in [(41.2, "valid"), (41.2, ""), (0.0, "invalid")] {
            assert!(!Timed::interval(v, f64::NAN, f64::NAN, us).validity(validity, "x").is_invalid());
        }
        assert_eq!(Timed::interval(0.0, 1.0, 2.0, us).text(), MISSING);
        assert_eq!(
            invalid_footnote([("a", "busy"), ("b", ""), ("a", "busy")], |s| s.to_uppercase()),
            Some("⚠ invalid timing, not to be trusted: A (BUSY); B".into())
        );
        assert_eq!(invalid_footnote([], |s| s.to_string()), None);
    }
}
