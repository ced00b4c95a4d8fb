//! Activation observers and calibration for static int8.
//!
//! An [`Observer`] watches the values flowing through one activation point and turns
//! them into a range, hence a quint8 scale and zero point:
//!
//! * `minmax`: the smallest and largest value seen;
//! * `moving-average`: each batch's minimum and maximum, averaged with a constant of
//!   0.01 after the first batch (PyTorch's `MovingAverageMinMaxObserver`, the observer
//!   of quantization-aware training);
//! * `percentile`: the `p`-th and `(100 - p)`-th percentiles of a deterministic sample
//!   of the values (up to 2^16 per batch), which clips rare outliers so the common
//!   values get a finer grid.
//!
//! [`calibrate`] runs the fp32 model on calibration images past a [`Calibrator`] (an
//! [`ops::Tap`](slimbench_models::ops::Tap) with one observer per point) and returns
//! the [`StaticQuant`] the int8 chain is built from.

use std::collections::BTreeMap;

use slimbench_core::artifact::{QParams, StaticQuant};
use slimbench_core::config::ObserverKind;
use slimbench_data::Split;
use slimbench_eval::images_tensor;
use slimbench_models::Model;
use slimbench_models::int8::act_qparams;
use slimbench_models::ops::Tap;
use tch::{Device, Kind, Tensor};

/// The moving-average observer's averaging constant (PyTorch's default).
pub const AVERAGING: f64 = 0.01;
/// Values the percentile observer samples from each batch.
const SAMPLE_PER_BATCH: i64 = 1 << 16;
/// Most values it keeps in all (torch.quantile takes at most 16M).
const SAMPLE_CAP: i64 = 1 << 22;

/// The range of one activation point.
#[derive(Debug)]
pub struct Observer {
    kind: ObserverKind,
    percentile: f64,
    min: Option<f64>,
    max: Option<f64>,
    sample: Vec<Tensor>,
    sampled: i64,
    batches: u64,
}

impl Observer {
    /// A fresh observer (`percentile` is used by the percentile kind only).
    pub fn new(kind: ObserverKind, percentile: f64) -> Self {
        Observer { kind, percentile, min: None, max: None, sample: Vec::new(), sampled: 0, batches: 0 }
    }

    /// Watch one batch of values.
    pub fn observe(&mut self, x: &Tensor) {
        let x = x.detach();
        self.batches += 1;
        match self.kind {
            ObserverKind::Minmax => {
                let (lo, hi) = (x.min().double_value(&[]), x.max().double_value(&[]));
                self.min = Some(self.min.map_or(lo, |m| m.min(lo)));
                self.max = Some(self.max.map_or(hi, |m| m.max(hi)));
            }
            ObserverKind::MovingAverage => {
                let (lo, hi) = (x.min().double_value(&[]), x.max().double_value(&[]));
                self.min = Some(self.min.map_or(lo, |m| m + AVERAGING * (lo - m)));
                self.max = Some(self.max.map_or(hi, |m| m + AVERAGING * (hi - m)));
            }
            ObserverKind::Percentile => {
                if self.sampled >= SAMPLE_CAP {
                    return;
                }
                let flat = x.flatten(0, -1).to_device(Device::Cpu).to_kind(Kind::Float);
                let n = flat.size()[0];
                let k = n.min(SAMPLE_PER_BATCH).min(SAMPLE_CAP - self.sampled);
                // A deterministic spread of indices (a large odd stride modulo n, shifted
                // per batch), so that no channel or pixel position is favoured.
                let idx = (Tensor::arange(k, (Kind::Int64, Device::Cpu)) * 7919
                    + self.batches as i64 * 104_729)
                    .remainder(n);
                self.sample.push(flat.index_select(0, &idx));
                self.sampled += k;
            }
        }
    }

    /// The observed `(min, max)`; `(0, 0)` before any batch.
    pub fn range(&self) -> (f64, f64) {
        match self.kind {
            ObserverKind::Percentile if !self.sample.is_empty() => {
                let all = Tensor::cat(&self.sample, 0);
                let q = self.percentile / 100.0;
                let hi = all.quantile_scalar(q, None, false, "linear").double_value(&[]);
                let lo = all.quantile_scalar(1.0 - q, None, false, "linear").double_value(&[]);
                (lo, hi)
            }
            _ => (self.min.unwrap_or(0.0), self.max.unwrap_or(0.0)),
        }
    }

    /// The quint8 scale and zero point of the range.
    pub fn qparams(&self, reduce_range: bool) -> QParams {
        let (lo, hi) = self.range();
        act_qparams(lo, hi, reduce_range)
    }
}

/// A tap with one observer per activation point.
#[derive(Debug)]
pub struct Calibrator {
    kind: ObserverKind,
    percentile: f64,
    /// The observers, by point.
    pub observers: BTreeMap<String, Observer>,
}

impl Calibrator {
    /// Observers of `kind` at every point the model passes.
    pub fn new(kind: ObserverKind, percentile: f64) -> Self {
        Calibrator { kind, percentile, observers: BTreeMap::new() }
    }

    /// Every point's scale and zero point.
    pub fn qparams(&self, reduce_range: bool) -> BTreeMap<String, QParams> {
        self.observers.iter().map(|(k, o)| (k.clone(), o.qparams(reduce_range))).collect()
    }
}

impl Tap for Calibrator {
    fn activation(&mut self, point: &str, x: &Tensor) -> Option<Tensor> {
        let (kind, percentile) = (self.kind, self.percentile);
        self.observers.entry(point.to_string()).or_insert_with(|| Observer::new(kind, percentile)).observe(x);
        None
    }
}

/// How to calibrate.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// The observer.
    pub observer: ObserverKind,
    /// Its percentile (percentile observer only).
    pub percentile: f64,
    /// Images to run (the first ones of the split).
    pub samples: usize,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Per-channel weight scales.
    pub per_channel: bool,
    /// 7-bit activations (fbgemm without VNNI).
    pub reduce_range: bool,
}

/// Run `model` (fp32) on the first `c.samples` images of `split` and return the static
/// quantization its activation ranges give.
pub fn calibrate(model: &Model, split: &Split, c: &Calibration) -> StaticQuant {
    let _guard = tch::no_grad_guard();
    let mut cal = Calibrator::new(c.observer, c.percentile);
    let n = c.samples.min(split.len());
    let mut start = 0;
    while start < n {
        let b = c.batch_size.max(1).min(n - start);
        let xs = images_tensor(split, start, b, model.device(), Kind::Float);
        let _ = model.forward_tapped(&xs, false, &mut cal);
        start += b;
    }
    StaticQuant {
        activations: cal.qparams(c.reduce_range),
        per_channel: c.per_channel,
        reduce_range: c.reduce_range,
        observer: c.observer.as_str().to_string(),
        calibration_samples: n as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches() -> Vec<Tensor> {
        // Values in [0, 1] with one outlier of 50 in the second batch.
        let a = Tensor::linspace(0.0, 1.0, 1000, (Kind::Float, Device::Cpu));
        let b = Tensor::cat(
            &[Tensor::linspace(0.0, 1.0, 999, (Kind::Float, Device::Cpu)), Tensor::from_slice(&[50f32])],
            0,
        );
        vec![a, b]
    }

    #[test]
    fn minmax_sees_the_outlier_and_percentile_clips_it() {
        let mut mm = Observer::new(ObserverKind::Minmax, 99.9);
        let mut pc = Observer::new(ObserverKind::Percentile, 99.0);
        for x in batches() {
            mm.observe(&x);
            pc.observe(&x);
        }
        assert_eq!(mm.range(), (0.0, 50.0));
        let (lo, hi) = pc.range();
        assert!(lo < 0.02 && (0.95..1.01).contains(&hi), "{lo} {hi}");
        // The clipped range gives a 50x finer grid.
        assert!(mm.qparams(true).scale > 40.0 * pc.qparams(true).scale);
    }

    #[test]
    fn moving_average_moves_slowly() {
        let mut ma = Observer::new(ObserverKind::MovingAverage, 0.0);
        for x in batches() {
            ma.observe(&x);
        }
        let (lo, hi) = ma.range();
        assert_eq!(lo, 0.0);
        assert!((hi - (1.0 + AVERAGING * 49.0)).abs() < 1e-6, "{hi}");
    }

    #[test]
    fn calibration_observes_every_point() {
        use slimbench_core::artifact::IoShape;
        use slimbench_core::config::{ModelConfig, SeedCnnConfig};
        let io = IoShape { channels: 1, height: 8, width: 8, classes: 3 };
        let m =
            Model::build("s", &ModelConfig::SeedCnn(SeedCnnConfig { filters: 2 }), io, Device::Cpu, Some(1))
                .unwrap();
        let split = Split {
            images: (0..=255).cycle().take(64 * 5).collect(),
            labels: vec![0; 5],
            channels: 1,
            rows: 8,
            cols: 8,
            normalize: None,
        };
        let c = Calibration {
            observer: ObserverKind::Minmax,
            percentile: 99.99,
            samples: 4,
            batch_size: 3,
            per_channel: true,
            reduce_range: true,
        };
        let sq = calibrate(&m, &split, &c);
        assert_eq!(sq.activations.keys().collect::<Vec<_>>(), ["conv", "fc", "input"]);
        assert_eq!(sq.calibration_samples, 4);
        // The input is pixels / 255 in [0, 1]: 127 steps of 1/127, zero point 0.
        let input = sq.activations["input"];
        assert_eq!(input.zero_point, 0);
        assert!((input.scale - 1.0 / 127.0).abs() < 1e-6, "{input:?}");
        // After the ReLU nothing is negative.
        assert_eq!(sq.activations["conv"].zero_point, 0);
    }
}
