//! Accuracy over a split.

use slimbench_data::Split;
use slimbench_models::Model;
use tch::{Device, Kind, Tensor};

/// Accuracy and loss over a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Images seen.
    pub n: usize,
}

/// Images `start..start+n` of a split as a `[n, C, H, W]` tensor of pixels/255
/// and the split's normalisation ([`slimbench_data::pixels_f32`]) on `device` in
/// `kind`.
pub fn images_tensor(split: &Split, start: usize, n: usize, device: Device, kind: Kind) -> Tensor {
    let pixels = slimbench_data::pixels_f32(split, start..start + n, split.normalize.as_ref());
    Tensor::from_slice(&pixels)
        .view([n as i64, split.channels as i64, split.rows as i64, split.cols as i64])
        .to_device(device)
        .to_kind(kind)
}

/// Labels `start..start+n` as an int64 tensor on `device`.
pub fn labels_tensor(split: &Split, start: usize, n: usize, device: Device) -> Tensor {
    let labels: Vec<i64> = split.labels[start..start + n].iter().map(|&l| l as i64).collect();
    Tensor::from_slice(&labels).to_device(device)
}

/// Accuracy of `model` over `split`, in batches of `batch_size`, without gradients.
/// Inputs are given in the model's own precision.
pub fn accuracy(model: &Model, split: &Split, batch_size: usize) -> Accuracy {
    let _guard = tch::no_grad_guard();
    let (device, kind) = (model.device(), model.kind());
    let (mut correct, mut loss_sum) = (0i64, 0f64);
    let mut start = 0;
    while start < split.len() {
        let n = batch_size.min(split.len() - start);
        let xs = images_tensor(split, start, n, device, kind);
        let ys = labels_tensor(split, start, n, device);
        let logits = model.forward(&xs).to_kind(Kind::Float);
        loss_sum += logits.cross_entropy_for_logits(&ys).double_value(&[]) * n as f64;
        correct += logits.argmax(-1, false).eq_tensor(&ys).sum(Kind::Int64).int64_value(&[]);
        start += n;
    }
    let n = split.len().max(1);
    Accuracy { loss: loss_sum / n as f64, accuracy: correct as f64 / n as f64, n: split.len() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{MlpConfig, ModelConfig};

    #[test]
    fn counts_correct_predictions_over_uneven_batches() {
        let io = IoShape { channels: 1, height: 2, width: 2, classes: 3 };
        let m = Model::build("m", &ModelConfig::Mlp(MlpConfig { hidden: vec![] }), io, Device::Cpu, Some(1))
            .unwrap();
        // Zero weights and a bias favouring class 2: every prediction is 2.
        tch::no_grad(|| {
            for (name, t) in m.named() {
                let mut t = t.shallow_clone();
                if name.ends_with("bias") {
                    t.copy_(&Tensor::from_slice(&[0.0f32, 0.0, 1.0]));
                } else {
                    let _ = t.zero_();
                }
            }
        });
        let split = Split {
            images: vec![0; 7 * 4],
            labels: vec![2, 2, 0, 1, 2, 0, 2],
            channels: 1,
            rows: 2,
            cols: 2,
            normalize: None,
        };
        let a = accuracy(&m, &split, 3);
        assert_eq!(a.n, 7);
        assert!((a.accuracy - 4.0 / 7.0).abs() < 1e-12);
        assert!(a.loss > 0.0);
    }
}
