//! Folding batch norm into the convolution before it, as quantization toolchains do
//! before int8 (PyTorch's `fuse_modules`, TensorRT): at inference a batch norm is a
//! per-channel `x * scale + shift`, so `bn(conv(x))` is one convolution with its
//! weights scaled per output channel and a bias `b * scale + shift`.

use std::collections::HashMap;

use slimbench_graph::Op as NodeOp;
use tch::{Kind, Tensor};

use crate::{Model, ModelError};

impl Model {
    /// A copy (same device, fp32) with every batch norm whose input is a convolution
    /// read by nothing else folded into that convolution; returns it and how many were
    /// folded. Other batch norms stay.
    pub fn fold_batch_norms(&self) -> Result<(Model, usize), ModelError> {
        let _g = tch::no_grad_guard();
        let readers = self.graph.consumers();
        let index = self.graph.index();
        // bn id -> conv id it folds into.
        let mut folds: HashMap<String, String> = HashMap::new();
        for n in &self.graph.nodes {
            if !matches!(n.op, NodeOp::BatchNorm { .. }) {
                continue;
            }
            let Some(&c) = n.inputs.first().and_then(|i| index.get(i.as_str())) else { continue };
            if matches!(self.graph.nodes[c].op, NodeOp::Conv2d { .. }) && readers[c].len() == 1 {
                folds.insert(n.id.clone(), self.graph.nodes[c].id.clone());
            }
        }
        if folds.is_empty() {
            return Ok((self.try_clone()?, 0));
        }
        let mut graph = self.graph.clone();
        graph.nodes.retain(|n| !folds.contains_key(&n.id));
        for n in &mut graph.nodes {
            for input in &mut n.inputs {
                if let Some(conv) = folds.get(input) {
                    *input = conv.clone();
                }
            }
            if folds.values().any(|c| c == &n.id)
                && let NodeOp::Conv2d { bias, .. } = &mut n.op
            {
                *bias = true;
            }
        }
        let folded = Model::from_graph(&self.name, &self.config, graph, self.io, self.device(), None)?;
        let old: HashMap<String, Tensor> =
            self.named().into_iter().map(|(n, t)| (n, t.detach().to_kind(Kind::Float))).collect();
        let norms: HashMap<&str, (Tensor, Tensor)> =
            self.norms().into_iter().map(|n| (n.name(), n.affine())).collect();
        let conv_bn: HashMap<&str, &str> = folds.iter().map(|(b, c)| (c.as_str(), b.as_str())).collect();
        for (name, var) in folded.named() {
            let (layer, part) = name.rsplit_once('.').unwrap_or((name.as_str(), ""));
            let value = match (conv_bn.get(layer), part) {
                (Some(bn), "weight") => {
                    let (scale, _) = &norms[bn];
                    &old[&name] * scale.view([-1, 1, 1, 1])
                }
                (Some(bn), "bias") => {
                    let (scale, shift) = &norms[bn];
                    let b = old.get(&name).map_or_else(|| shift.zeros_like(), Tensor::shallow_clone);
                    b * scale + shift
                }
                _ => old
                    .get(&name)
                    .ok_or_else(|| ModelError::Format {
                        path: name.clone(),
                        msg: "no such tensor to fold".into(),
                    })?
                    .shallow_clone(),
            };
            var.shallow_clone().f_copy_(&value.to_device(var.device()))?;
        }
        Ok((folded, folds.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, ResnetConfig};
    use tch::Device;

    #[test]
    fn folding_keeps_the_function_and_removes_the_norms() {
        let io = IoShape { channels: 3, height: 16, width: 16, classes: 10 };
        let c = ModelConfig::Resnet(ResnetConfig { depth: 8, width: 4, ..Default::default() });
        let m = Model::build("r", &c, io, Device::Cpu, Some(3)).unwrap();
        // Running statistics away from 0/1, as after training.
        tch::no_grad(|| {
            for (n, t) in m.named() {
                if n.ends_with("running_var") || n.ends_with("bn.weight") {
                    let _ = t.shallow_clone().uniform_(0.5, 2.0);
                } else if n.ends_with("running_mean") || n.ends_with("bn.bias") {
                    let _ = t.shallow_clone().uniform_(-0.5, 0.5);
                }
            }
        });
        let (f, n) = m.fold_batch_norms().unwrap();
        assert_eq!(n, m.norms().len());
        assert!(f.norms().is_empty());
        let xs = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
        let d = (m.forward(&xs) - f.forward(&xs)).abs().max().double_value(&[]);
        assert!(d < 1e-4, "{d}");
        assert!(f.param_count() < m.param_count());
    }
}
