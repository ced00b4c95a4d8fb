//! 2:4 semi-structured sparsity: in every group of 4 consecutive input weights of each
//! output row, the 2 of largest magnitude stay and the other 2 are zeroed (conv weights
//! are flattened per output channel, `[out, in * kh * kw]`). That is the pattern NVIDIA's
//! sparse tensor cores (Ampere and later) run through cuSPARSELt.
//!
//! A row whose length is not a multiple of 4 is treated as padded with zeros to the
//! next multiple, as the kernels require: the padding ranks lowest, so a last group of
//! 1 or 2 real weights keeps them all, and one of 3 keeps 2.
//!
//! [`masks_2_4`] gives the pattern as [`Masks`] (held during fine-tuning like magnitude
//! masks). On CUDA, [`CsltLinear`] runs a linear layer on cuSPARSELt through libtorch's
//! `_cslt_compress` / `_cslt_sparse_mm`; [`cslt_available`] says whether that works
//! here (a CUDA device and a libtorch built with cuSPARSELt). Elsewhere a 2:4 model
//! runs on dense kernels with zeros.

use slimbench_models::Model;
use tch::{Device, Kind, Tensor};

use crate::prune::Masks;

/// What the notes say when the 2:4 kernels cannot run.
pub const NO_KERNEL_NOTE: &str = "2:4 kernels need a CUDA GPU with cuSPARSELt; evaluated as dense with zeros";

/// The 0/1 mask keeping the 2 largest magnitudes of every 4 consecutive inputs of each
/// output row of `w` (`[out, ...]`), in `w`'s shape and kind.
pub fn mask_2_4(w: &Tensor) -> Tensor {
    let _g = tch::no_grad_guard();
    let out = w.size()[0];
    let scores = w.detach().abs().to_kind(Kind::Float).reshape([out, -1]);
    let n = scores.size()[1];
    let pad = (4 - n % 4) % 4;
    let scores = if pad > 0 {
        // Padding scores below any magnitude: it is what gets pruned first.
        Tensor::cat(&[scores, Tensor::full([out, pad], -1.0, (Kind::Float, w.device()))], 1)
    } else {
        scores
    };
    let groups = scores.view([out, -1, 4]);
    let (_, idx) = groups.topk(2, -1, true, false);
    groups
        .zeros_like()
        .scatter_value(-1, &idx, 1.0)
        .view([out, -1])
        .narrow(1, 0, n)
        .reshape(w.size())
        .to_kind(w.kind())
}

/// 2:4 masks for every conv and linear weight of `model`.
pub fn masks_2_4(model: &Model) -> Masks {
    Masks::from_parts(model.prunable().into_iter().map(|(n, w)| (n, mask_2_4(&w))).collect())
}

/// Whether cuSPARSELt's 2:4 kernels run on `device`: CUDA, and libtorch's
/// `_cslt_compress` accepts a small 2:4 fp16 matrix there (libtorch builds without
/// cuSPARSELt, or GPUs before Ampere, refuse it).
pub fn cslt_available(device: Device) -> bool {
    if !matches!(device, Device::Cuda(_)) || !tch::Cuda::is_available() {
        return false;
    }
    let w = Tensor::ones([64, 64], (Kind::Half, device));
    let w = &w * mask_2_4(&w);
    w.f_internal_cslt_compress().is_ok()
}

/// A linear layer whose 2:4-sparse weight is compressed for cuSPARSELt.
#[derive(Debug)]
pub struct CsltLinear {
    compressed: Tensor,
    bias: Option<Tensor>,
    /// Output features.
    pub out_features: i64,
}

impl CsltLinear {
    /// Compress `weight` (`[out, in]`, already 2:4 sparse, on a CUDA device, in the
    /// kind the inputs will have: fp16 or bf16 for the tensor-core path).
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self, tch::TchError> {
        let compressed = weight.detach().contiguous().f_internal_cslt_compress()?;
        Ok(CsltLinear {
            compressed,
            bias: bias.map(|b| b.detach().to_kind(weight.kind())),
            out_features: weight.size()[0],
        })
    }

    /// `xs @ weight^T + bias` for `xs` of `[N, in]`: the kernel computes
    /// `weight @ xs^T` and returns it transposed.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, tch::TchError> {
        Tensor::f_internal_cslt_sparse_mm(
            &self.compressed,
            &xs.tr(),
            self.bias.as_ref(),
            None::<&Tensor>,
            None::<Kind>,
            true,
            0,
            1,
            -1,
        )
    }
}

/// Run every linear layer of a 2:4-pruned model on cuSPARSELt against the dense
/// product (fp16, on `device`, a random batch of `batch` rows); returns
/// `(layer, largest |difference| relative to the largest |output|)` per layer.
pub fn check_cslt(model: &Model, device: Device, batch: i64) -> Result<Vec<(String, f64)>, tch::TchError> {
    let _g = tch::no_grad_guard();
    let named = model.named();
    let mut out = Vec::new();
    for (name, w) in named.iter().filter(|(n, w)| n.ends_with(".weight") && w.dim() == 2) {
        let layer = name.trim_end_matches(".weight");
        let w = w.to_device(device).to_kind(Kind::Half);
        let b = named.iter().find(|(n, _)| *n == format!("{layer}.bias")).map(|(_, b)| b.to_device(device));
        let xs = Tensor::randn([batch, w.size()[1]], (Kind::Half, device));
        let dense = xs.f_linear(&w, b.as_ref().map(|b| b.to_kind(Kind::Half)).as_ref())?;
        let sparse = CsltLinear::new(&w, b.as_ref())?.forward(&xs)?;
        let diff = (&sparse - &dense).abs().max().to_kind(Kind::Float).double_value(&[]);
        let scale = dense.abs().max().to_kind(Kind::Float).double_value(&[]).max(1e-6);
        out.push((layer.to_string(), diff / scale));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};

    #[test]
    fn every_group_of_four_keeps_exactly_its_two_largest() {
        let w = Tensor::randn([16, 32], (Kind::Float, Device::Cpu));
        let m = mask_2_4(&w);
        let groups = m.view([16, 8, 4]);
        assert!(groups.sum_dim_intlist(-1, false, Kind::Float).eq(2.0).all().int64_value(&[]) == 1);
        // The kept pair is at least as large as the dropped pair, in every group.
        let a = w.abs().view([16, 8, 4]);
        let dropped: Tensor = 1 - &groups;
        let kept_min = (&a + &dropped * 1e9).amin(-1, false);
        let dropped_max = (&a * &dropped).amax(-1, false);
        assert!(kept_min.ge_tensor(&dropped_max).all().int64_value(&[]) == 1);
        // Ties still give exactly 2 of 4.
        let ties = mask_2_4(&Tensor::ones([3, 8], (Kind::Float, Device::Cpu)));
        assert_eq!(ties.sum(Kind::Float).double_value(&[]), 12.0);
    }

    #[test]
    fn a_row_that_is_not_a_multiple_of_four_is_padded() {
        // 9 inputs per filter: groups of 4, 4 and a padded 1, which is kept.
        let w = Tensor::arange(2 * 9, (Kind::Float, Device::Cpu)).view([2, 1, 3, 3]) + 1.0;
        let m = mask_2_4(&w).view([2, 9]);
        let expect = Tensor::from_slice(&[0f32, 0., 1., 1., 0., 0., 1., 1., 1.]);
        assert!(m.get(0).equal(&expect) && m.get(1).equal(&expect), "{m}");
    }

    #[test]
    fn a_2_4_model_is_half_zeros_in_every_full_group() {
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let model =
            Model::build("s", &ModelConfig::SeedCnn(SeedCnnConfig::default()), io, Device::Cpu, Some(3))
                .unwrap();
        masks_2_4(&model).apply(&model);
        let fc = model.named().into_iter().find(|(n, _)| n == "fc.weight").unwrap().1;
        // 2028 inputs: 507 groups per row, each with exactly 2 non-zeros.
        let nnz = fc.view([10, 507, 4]).ne(0.0).sum_dim_intlist(-1, false, Kind::Int64);
        assert!(nnz.eq(2).all().int64_value(&[]) == 1);
        // conv rows of 9: 5 of 9 kept (2 + 2 + the padded last one).
        let conv = model.named().into_iter().find(|(n, _)| n == "conv.weight").unwrap().1;
        assert_eq!(conv.count_nonzero(None::<i64>).int64_value(&[]), 12 * 5);
    }

    #[test]
    fn cslt_is_not_claimed_without_cuda() {
        assert!(!cslt_available(Device::Cpu));
    }
}
