//! Training with the quantization simulated: quantization-aware training, and the
//! fine-tuning that recovers accuracy after post-training quantization.
//!
//! [`FakeQuantTraining`] is a [`slimbench_train::Objective`] (cross-entropy) that runs
//! the model past a tap rounding every quantized weight to its int8 grid and every
//! activation point to its uint8 grid; `fake_quantize_*` pass gradients straight
//! through (zero outside the range), so the fp32 weights learn to sit well on the grid.
//!
//! * Quantization-aware training ([`FakeQuantTraining::qat`]): activation ranges start
//!   from a calibration and follow moving-average observers during training; the
//!   ranges at the end become the static int8 model's ([`FakeQuantTraining::static_quant`]).
//! * Fine-tuning after static PTQ ([`FakeQuantTraining::frozen`]): the calibrated
//!   ranges are held; the weights adapt to them.
//! * Fine-tuning after dynamic int8 ([`FakeQuantTraining::weights_only`]): only the
//!   linear weights are fake-quantized (dynamic quantization measures activations on
//!   every call, so their rounding is small and not simulated).

use std::collections::{BTreeMap, BTreeSet};

use slimbench_core::artifact::{QParams, StaticQuant};
use slimbench_core::config::ObserverKind;
use slimbench_models::Model;
use slimbench_models::int8::{fake_quant_act, fake_quant_weight};
use slimbench_models::ops::Tap;
use slimbench_train::Objective;
use tch::Tensor;

use crate::observe::Observer;

/// The training objective with quantization simulated.
#[derive(Debug)]
pub struct FakeQuantTraining {
    /// Weights to fake-quantize, by the name the tap sees (`conv`, `fc0.lr_in`).
    weights: BTreeSet<String>,
    per_channel: bool,
    /// Activation points: fixed grids, or observers that move during training.
    acts: Acts,
    reduce_range: bool,
    observer: String,
    calibration_samples: u64,
}

#[derive(Debug)]
enum Acts {
    None,
    Frozen(BTreeMap<String, QParams>),
    Learned(BTreeMap<String, Observer>),
}

/// The names of a model's weights as the tap sees them; `linear_only` leaves out the
/// convolutions.
fn weight_names(model: &Model, linear_only: bool) -> BTreeSet<String> {
    let mut names: BTreeSet<String> =
        model.dense_layers().iter().flat_map(|d| d.weights().into_iter().map(|(n, _)| n)).collect();
    if !linear_only {
        names.extend(model.convs().iter().map(|c| c.name().to_string()));
    }
    names
}

impl FakeQuantTraining {
    /// Quantization-aware training from a calibration `init`: every conv and linear
    /// weight fake-quantized, activation ranges learned by moving averages.
    pub fn qat(model: &Model, init: &StaticQuant) -> Self {
        let observers = init
            .activations
            .iter()
            .map(|(point, q)| {
                // Seed each observer with the calibrated range, then let it move.
                let mut o = Observer::new(ObserverKind::MovingAverage, 0.0);
                let lo = -(q.zero_point as f64) * q.scale;
                let hi = lo + q.scale * slimbench_models::int8::act_qmax(init.reduce_range) as f64;
                o.observe(&Tensor::from_slice(&[lo as f32, hi as f32]));
                (point.clone(), o)
            })
            .collect();
        FakeQuantTraining {
            weights: weight_names(model, false),
            per_channel: init.per_channel,
            acts: Acts::Learned(observers),
            reduce_range: init.reduce_range,
            observer: "qat".into(),
            calibration_samples: init.calibration_samples,
        }
    }

    /// Fine-tuning after static quantization: the calibrated grids of `sq` held.
    pub fn frozen(model: &Model, sq: &StaticQuant) -> Self {
        FakeQuantTraining {
            weights: weight_names(model, false),
            per_channel: sq.per_channel,
            acts: Acts::Frozen(sq.activations.clone()),
            reduce_range: sq.reduce_range,
            observer: sq.observer.clone(),
            calibration_samples: sq.calibration_samples,
        }
    }

    /// Fine-tuning after dynamic int8: linear weights only, per output channel.
    pub fn weights_only(model: &Model) -> Self {
        FakeQuantTraining {
            weights: weight_names(model, true),
            per_channel: true,
            acts: Acts::None,
            reduce_range: true,
            observer: String::new(),
            calibration_samples: 0,
        }
    }

    /// The static quantization at this point of training (the learned ranges for QAT).
    pub fn static_quant(&self) -> Option<StaticQuant> {
        let activations = match &self.acts {
            Acts::None => return None,
            Acts::Frozen(q) => q.clone(),
            Acts::Learned(o) => o.iter().map(|(k, o)| (k.clone(), o.qparams(self.reduce_range))).collect(),
        };
        Some(StaticQuant {
            activations,
            per_channel: self.per_channel,
            reduce_range: self.reduce_range,
            observer: self.observer.clone(),
            calibration_samples: self.calibration_samples,
        })
    }
}

impl Tap for FakeQuantTraining {
    fn weight(&mut self, layer: &str, w: &Tensor) -> Option<Tensor> {
        self.weights.contains(layer).then(|| fake_quant_weight(w, self.per_channel))
    }

    fn activation(&mut self, point: &str, x: &Tensor) -> Option<Tensor> {
        let q = match &mut self.acts {
            Acts::None => return None,
            Acts::Frozen(q) => *q.get(point)?,
            Acts::Learned(o) => {
                let o = o.get_mut(point)?;
                o.observe(x);
                o.qparams(self.reduce_range)
            }
        };
        Some(fake_quant_act(x, q, self.reduce_range))
    }
}

impl Objective for FakeQuantTraining {
    fn loss(&mut self, model: &Model, xs: &Tensor, ys: &Tensor) -> (Tensor, Tensor) {
        let logits = model.forward_tapped(xs, true, self);
        (logits.cross_entropy_for_logits(ys), logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{MlpConfig, ModelConfig};
    use tch::{Device, Kind};

    fn mlp() -> Model {
        let io = IoShape { channels: 1, height: 4, width: 4, classes: 3 };
        Model::build("m", &ModelConfig::Mlp(MlpConfig { hidden: vec![8] }), io, Device::Cpu, Some(2)).unwrap()
    }

    fn sq() -> StaticQuant {
        let q = |s: f64, z: i64| QParams { scale: s, zero_point: z };
        StaticQuant {
            activations: [
                ("input".into(), q(1.0 / 127.0, 0)),
                ("fc0".into(), q(0.05, 0)),
                ("fc1".into(), q(0.1, 64)),
            ]
            .into(),
            per_channel: true,
            reduce_range: true,
            observer: "minmax".into(),
            calibration_samples: 8,
        }
    }

    #[test]
    fn frozen_grids_round_every_point_and_gradients_flow() {
        let m = mlp();
        let mut t = FakeQuantTraining::frozen(&m, &sq());
        let xs = Tensor::rand([5, 1, 4, 4], (Kind::Float, Device::Cpu));
        let ys = Tensor::from_slice(&[0i64, 1, 2, 0, 1]);
        let (loss, logits) = t.loss(&m, &xs, &ys);
        // The logits sit on fc1's grid: multiples of 0.1 around zero point 64.
        let steps = (&logits / 0.1).round() * 0.1 - &logits;
        assert!(steps.abs().max().double_value(&[]) < 1e-5);
        loss.backward();
        for (name, p) in m.named() {
            assert!(p.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name} got no gradient");
        }
    }

    #[test]
    fn qat_ranges_move_with_training() {
        let m = mlp();
        let mut t = FakeQuantTraining::qat(&m, &sq());
        let before = t.static_quant().unwrap().activations["fc0"];
        let xs = Tensor::rand([5, 1, 4, 4], (Kind::Float, Device::Cpu)) * 10.0;
        let _ = t.loss(&m, &xs, &Tensor::from_slice(&[0i64, 1, 2, 0, 1]));
        let after = t.static_quant().unwrap();
        assert_eq!(after.observer, "qat");
        assert_ne!(after.activations["fc0"], before);
    }

    #[test]
    fn weights_only_leaves_activations_alone() {
        let m = mlp();
        let mut t = FakeQuantTraining::weights_only(&m);
        assert!(t.static_quant().is_none());
        let x = Tensor::rand([2, 8], (Kind::Float, Device::Cpu));
        assert!(t.activation("fc0", &x).is_none());
        assert!(t.weight("fc0", &x).is_some());
    }
}
