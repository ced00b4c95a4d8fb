//! Accuracy over a split.

use slimbench_data::Split;
use slimbench_models::Model;
use tch::{Device, Kind, Tensor};

use crate::backend::{BackendError, Runner};

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

/// Logits of every image of `split` on `runner`, row-major (`split.len() x classes`),
/// in batches of `batch_size` (the runner's own batch size where it has one; the last
/// batch is then filled up with copies of its first image, whose logits are dropped).
pub fn runner_logits(
    runner: &mut dyn Runner,
    split: &Split,
    batch_size: usize,
) -> Result<Vec<f32>, BackendError> {
    let _guard = tch::no_grad_guard();
    let batch_size = runner.batch().unwrap_or(batch_size).max(1);
    let (c, h, w) = (split.channels, split.rows, split.cols);
    let mut out = Vec::new();
    let mut start = 0;
    while start < split.len() {
        let n = batch_size.min(split.len() - start);
        let mut images = slimbench_data::pixels_f32(split, start..start + n, split.normalize.as_ref());
        let rows = if runner.batch().is_some() { batch_size } else { n };
        let first = images[..c * h * w].to_vec();
        while images.len() < rows * c * h * w {
            images.extend_from_slice(&first);
        }
        let (values, got, cols) = runner.run_images(&images, [rows, c, h, w])?.into_host();
        if got != rows || values.len() != rows * cols {
            return Err(BackendError::new(
                runner.info().backend,
                format!("{rows} images gave logits of {got} x {cols}"),
            ));
        }
        out.extend_from_slice(&values[..n * cols]);
        start += n;
    }
    Ok(out)
}

impl Accuracy {
    /// Accuracy and mean cross-entropy of `logits` (`labels.len() x classes`, row-major).
    pub fn of_logits(logits: &[f32], labels: &[u16]) -> Accuracy {
        let n = labels.len();
        let classes = logits.len().checked_div(n).unwrap_or(0);
        let (mut correct, mut loss_sum) = (0usize, 0f64);
        for (row, &label) in logits.chunks(classes.max(1)).zip(labels) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let log_sum = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
            loss_sum += log_sum - row.get(label as usize).copied().unwrap_or(f32::NAN) as f64;
            correct += usize::from(argmax(row) == label as usize);
        }
        Accuracy { loss: loss_sum / n.max(1) as f64, accuracy: correct as f64 / n.max(1) as f64, n }
    }
}

/// Index of the largest value (the first of ties).
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
        .0
}

/// How far two backends' logits of the same images are apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Images whose top-1 class differs.
    pub disagreements: usize,
    /// Images compared.
    pub n: usize,
    /// Largest absolute difference of a logit.
    pub max_logit_diff: f64,
}

impl Agreement {
    /// Compare `other` with `reference` (`n x classes` each, row-major).
    pub fn of(reference: &[f32], other: &[f32], n: usize) -> Agreement {
        let classes = reference.len().checked_div(n).unwrap_or(0);
        let disagreements = reference
            .chunks(classes.max(1))
            .zip(other.chunks(classes.max(1)))
            .filter(|(a, b)| argmax(a) != argmax(b))
            .count();
        let max_logit_diff =
            reference.iter().zip(other).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
        Agreement { disagreements, n, max_logit_diff }
    }

    /// More than a handful: over 2 images and over 0.1% of them.
    pub fn is_flagged(&self) -> bool {
        self.disagreements > 2 && self.disagreements as f64 > self.n as f64 * 0.001
    }
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

    #[test]
    fn accuracy_of_host_logits_and_agreement_between_backends() {
        // Two images, three classes: the first is right (class 0), the second wrong.
        let logits = [2.0f32, 0.0, 0.0, 0.0, 3.0, 0.0];
        let a = Accuracy::of_logits(&logits, &[0, 2]);
        assert_eq!((a.n, a.accuracy), (2, 0.5));
        let l0 = (2f64.exp() + 2.0).ln() - 2.0;
        let l1 = (3f64.exp() + 2.0).ln();
        assert!((a.loss - (l0 + l1) / 2.0).abs() < 1e-9, "{}", a.loss);
        let other = [2.0f32, 0.5, 0.0, 4.0, 3.0, 0.0];
        let g = Agreement::of(&logits, &other, 2);
        assert_eq!((g.disagreements, g.n, g.max_logit_diff), (1, 2, 4.0));
        assert!(!g.is_flagged());
        assert!(Agreement { disagreements: 3, n: 1000, max_logit_diff: 0.0 }.is_flagged());
        assert!(!Agreement { disagreements: 3, n: 10_000, max_logit_diff: 0.0 }.is_flagged());
        assert!(!Agreement { disagreements: 2, n: 10, max_logit_diff: 0.0 }.is_flagged());
    }

    #[test]
    fn runner_logits_fill_a_fixed_batch_and_drop_the_filler() {
        use crate::backend::libtorch::TorchRunner;
        let io = IoShape { channels: 1, height: 2, width: 2, classes: 3 };
        let m = Model::build("m", &ModelConfig::Mlp(MlpConfig { hidden: vec![4] }), io, Device::Cpu, Some(1))
            .unwrap();
        let split = Split {
            images: (0..7 * 4).map(|i| (i * 9 % 256) as u8).collect(),
            labels: vec![0; 7],
            channels: 1,
            rows: 2,
            cols: 2,
            normalize: None,
        };
        let mut r = TorchRunner::new(&m, 1);
        let all = runner_logits(&mut r, &split, 3).unwrap();
        assert_eq!(all.len(), 7 * 3);
        let one_go = runner_logits(&mut r, &split, 100).unwrap();
        assert!(all.iter().zip(&one_go).all(|(a, b)| (a - b).abs() < 1e-6));
        let a = Accuracy::of_logits(&all, &split.labels);
        let b = accuracy(&m, &split, 3);
        assert_eq!(a.accuracy, b.accuracy);
        assert!((a.loss - b.loss).abs() < 1e-5);
    }
}
