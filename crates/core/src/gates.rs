//! Regression gates: the `gates:` block of a pipeline YAML and the `--gate` flags of
//! `slimbench compare`.
//!
//! ```yaml
//! gates:
//!   accuracy: { max_drop: 0.005 }          # candidate >= baseline - 0.005
//!   latency_p50_us: { max_increase: 10% }  # relative to the baseline
//!   file_size_bytes: { max_increase: 0 }
//! ```
//!
//! A [`Gates`] maps a metric (one of [`METRICS`], the numeric columns of
//! [`MetricRow`]) to a [`GateRule`]; a rule's [`Threshold`] is a number in the metric's
//! units or a percentage of the baseline. How a rule is judged (and why latency needs a
//! statistical test) is `slimbench-compare`'s business; this module only says what a
//! rule is and checks that it makes sense.

use std::fmt;
use std::str::FromStr;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::{self, Unexpected};
use serde::{Deserialize, Serialize};

use crate::records::MetricRow;

/// Gates by metric name, in the order they were written.
pub type Gates = IndexMap<String, GateRule>;

/// The metrics a gate can name: the numeric columns of [`MetricRow`].
pub const METRICS: [&str; 13] = [
    "accuracy",
    "latency_p50_us",
    "latency_p90_us",
    "latency_p99_us",
    "latency_mean_us",
    "throughput_ips",
    "file_size_bytes",
    "params",
    "nonzero_params",
    "weights_bytes",
    "mem_peak_b1_bytes",
    "train_time_s",
    "sparsity",
];

/// The keys of a [`GateRule`], as written in YAML and in `--gate` flags.
pub const RULE_KEYS: [&str; 4] = ["max_drop", "max_increase", "min", "max"];

/// The value of `metric` in `row`, or `None` when it was not measured. Measurements
/// that cannot be 0 (latency, throughput, sizes, memory) use 0 for "not measured", as
/// the report does; accuracy and times use NaN.
pub fn metric_value(row: &MetricRow, metric: &str) -> Option<f64> {
    let positive = |v: f64| (v.is_finite() && v > 0.0).then_some(v);
    let finite = |v: f64| v.is_finite().then_some(v);
    match metric {
        "accuracy" => finite(row.accuracy),
        "latency_p50_us" => positive(row.latency_p50_us),
        "latency_p90_us" => positive(row.latency_p90_us),
        "latency_p99_us" => positive(row.latency_p99_us),
        "latency_mean_us" => positive(row.latency_mean_us),
        "throughput_ips" => positive(row.throughput_ips),
        "file_size_bytes" => positive(row.file_size_bytes as f64),
        "params" => positive(row.params as f64),
        // All weights pruned is a value; no parameter count at all is not.
        "nonzero_params" => (row.params > 0).then_some(row.nonzero_params as f64),
        "weights_bytes" => positive(row.weights_bytes as f64),
        "mem_peak_b1_bytes" => positive(row.mem_peak_b1_bytes as f64),
        "train_time_s" => finite(row.train_time_s),
        "sparsity" => finite(row.sparsity),
        _ => None,
    }
}

/// How much a metric may move: an amount in the metric's units, or a fraction of the
/// baseline value (written `"10%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// In the metric's units (`0.005` accuracy, `5` µs).
    Absolute(f64),
    /// A fraction of the baseline (`"10%"` is `Relative(0.1)`).
    Relative(f64),
}

impl Threshold {
    /// The allowed amount for a baseline value.
    pub fn amount(self, baseline: f64) -> f64 {
        match self {
            Threshold::Absolute(a) => a,
            Threshold::Relative(r) => r * baseline.abs(),
        }
    }
}

/// Why a threshold did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ThresholdError {
    NotANumber,
    Negative,
}

impl ThresholdError {
    const EXPECTED_NUMBER: &'static str = "a number or a percentage such as \"10%\"";
    const EXPECTED_POSITIVE: &'static str = "a threshold of 0 or more";

    fn expected(self) -> &'static str {
        match self {
            ThresholdError::NotANumber => Self::EXPECTED_NUMBER,
            ThresholdError::Negative => Self::EXPECTED_POSITIVE,
        }
    }
}

fn absolute(v: f64) -> Result<Threshold, ThresholdError> {
    match v {
        v if !v.is_finite() => Err(ThresholdError::NotANumber),
        v if v < 0.0 => Err(ThresholdError::Negative),
        v => Ok(Threshold::Absolute(v)),
    }
}

fn parse_threshold(s: &str) -> Result<Threshold, ThresholdError> {
    let s = s.trim();
    let (number, relative) = match s.strip_suffix('%') {
        Some(n) => (n.trim_end(), true),
        None => (s, false),
    };
    let v: f64 = number.parse().map_err(|_| ThresholdError::NotANumber)?;
    match absolute(v)? {
        _ if relative => Ok(Threshold::Relative(v / 100.0)),
        t => Ok(t),
    }
}

impl FromStr for Threshold {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_threshold(s).map_err(|e| format!("expected {}, found `{s}`", e.expected()))
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rounded so that 7% does not print as 7.000000000000001%.
        let short = |v: f64| {
            let s = format!("{v:.10}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        };
        match self {
            Threshold::Absolute(a) => f.write_str(&short(*a)),
            Threshold::Relative(r) => write!(f, "{}%", short(r * 100.0)),
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Threshold::Absolute(a) => s.serialize_f64(*a),
            Threshold::Relative(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Threshold;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(ThresholdError::EXPECTED_NUMBER)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Threshold, E> {
                absolute(v).map_err(|e| E::invalid_value(Unexpected::Float(v), &e.expected()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Threshold, E> {
                absolute(v as f64).map_err(|e| E::invalid_value(Unexpected::Signed(v), &e.expected()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Threshold, E> {
                Ok(Threshold::Absolute(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Threshold, E> {
                parse_threshold(v).map_err(|e| E::invalid_value(Unexpected::Str(v), &e.expected()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl JsonSchema for Threshold {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Threshold".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "an amount in the metric's units, or a percentage of the baseline such as \"10%\"",
            "oneOf": [
                { "type": "number", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9.eE+]+ *%$" }
            ]
        })
    }
}

/// What one metric must satisfy, the candidate run against the baseline run. At least
/// one field is set; `max_drop` and `max_increase` may both be set for a two-sided gate.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateRule {
    /// Higher is better: the candidate may fall at most this much below the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drop: Option<Threshold>,
    /// Lower is better: the candidate may rise at most this much above the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<Threshold>,
    /// The candidate must be at least this (in the metric's units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The candidate must be at most this (in the metric's units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl GateRule {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == GateRule::default()
    }

    /// Check that the rule makes sense; each problem is `(field, message)`, the field
    /// empty when the problem is the rule as a whole.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut errs = Vec::new();
        if self.is_empty() {
            errs.push(("", "sets no rule".to_string()));
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max)
            && lo > hi
        {
            errs.push(("min", format!("has `min: {lo}` above `max: {hi}`: nothing can pass")));
        }
        errs
    }

    /// Set one field from its key and its value as text (what `--gate METRIC:KEY=VALUE`
    /// says).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let bound = |v: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("`{key}` expects a number, found `{v}`"))
        };
        let threshold = |v: &str| v.parse::<Threshold>().map_err(|e| format!("`{key}`: {e}"));
        match key {
            "max_drop" => self.max_drop = Some(threshold(value)?),
            "max_increase" => self.max_increase = Some(threshold(value)?),
            "min" => self.min = Some(bound(value)?),
            "max" => self.max = Some(bound(value)?),
            other => return Err(format!("unknown rule `{other}`")),
        }
        Ok(())
    }
}

impl fmt::Display for GateRule {
    /// `max_drop 0.005, min 0.9`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(t) = self.max_drop {
            parts.push(format!("max_drop {t}"));
        }
        if let Some(t) = self.max_increase {
            parts.push(format!("max_increase {t}"));
        }
        if let Some(v) = self.min {
            parts.push(format!("min {v}"));
        }
        if let Some(v) = self.max {
            parts.push(format!("max {v}"));
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_numbers_or_percentages() {
        assert_eq!("0.005".parse::<Threshold>().unwrap(), Threshold::Absolute(0.005));
        assert_eq!("10%".parse::<Threshold>().unwrap(), Threshold::Relative(0.1));
        assert_eq!(" 2.5 %".parse::<Threshold>().unwrap(), Threshold::Relative(0.025));
        assert_eq!("0".parse::<Threshold>().unwrap(), Threshold::Absolute(0.0));
        assert!("ten%".parse::<Threshold>().unwrap_err().contains("a percentage such as"));
        assert!("-5%".parse::<Threshold>().unwrap_err().contains("0 or more"));
        assert!("%".parse::<Threshold>().is_err());
        assert_eq!(Threshold::Relative(0.07).to_string(), "7%");
        assert_eq!(Threshold::Absolute(0.005).to_string(), "0.005");
        assert_eq!(Threshold::Relative(0.1).amount(-200.0), 20.0);
    }

    #[test]
    fn rules_deserialize_from_yaml_forms() {
        let r: GateRule =
            serde_json::from_value(serde_json::json!({"max_drop": 0.005, "max_increase": "10%", "min": 0.9}))
                .unwrap();
        assert_eq!(r.max_drop, Some(Threshold::Absolute(0.005)));
        assert_eq!(r.max_increase, Some(Threshold::Relative(0.1)));
        assert_eq!(r.to_string(), "max_drop 0.005, max_increase 10%, min 0.9");
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(json, serde_json::json!({"max_drop": 0.005, "max_increase": "10%", "min": 0.9}));
        let err = serde_json::from_value::<GateRule>(serde_json::json!({"max_drop": -1})).unwrap_err();
        assert!(err.to_string().contains("expected a threshold of 0 or more"), "{err}");
        let err = serde_json::from_value::<GateRule>(serde_json::json!({"max_drop": "x%"})).unwrap_err();
        assert!(err.to_string().contains("a percentage such as"), "{err}");
        assert!(serde_json::from_value::<GateRule>(serde_json::json!({"max_dorp": 1})).is_err());
    }

    #[test]
    fn rules_are_checked_and_set_from_flags() {
        assert_eq!(GateRule::default().check(), vec![("", "sets no rule".to_string())]);
        let mut r = GateRule::default();
        r.set("min", "0.9").unwrap();
        r.set("max", "0.5").unwrap();
        assert_eq!(r.check()[0].0, "min");
        r.set("max_increase", "25%").unwrap();
        assert_eq!(r.max_increase, Some(Threshold::Relative(0.25)));
        assert!(r.set("max_dorp", "1").unwrap_err().contains("unknown rule"));
        assert!(r.set("min", "lots").unwrap_err().contains("expects a number"));
    }

    #[test]
    fn every_metric_has_a_value() {
        let row = MetricRow {
            accuracy: 0.9,
            latency_p50_us: 1.0,
            latency_p90_us: 1.0,
            latency_p99_us: 1.0,
            latency_mean_us: 1.0,
            throughput_ips: 1.0,
            file_size_bytes: 1,
            params: 1,
            nonzero_params: 0,
            mem_peak_b1_bytes: 1,
            weights_bytes: 1,
            ..Default::default()
        };
        for m in METRICS {
            assert!(metric_value(&row, m).is_some(), "{m}");
        }
        assert_eq!(metric_value(&MetricRow::default(), "latency_p50_us"), None);
        assert_eq!(metric_value(&row, "nonsense"), None);
    }
}
