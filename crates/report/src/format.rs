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
    }
}
