//! Low-rank factorization.
//!
//! * Linear layers by truncated SVD ([`factorize`]): `W = U S V^T` keeps its `r` largest
//!   singular values and becomes `(U_r sqrt(S_r)) x (sqrt(S_r) V_r^T)`, two thinner
//!   layers (see [`slimbench_models::layers::Dense`]).
//! * Convolutions by Tucker-2 ([`tucker2`], Kim et al. 2016): a `KxK` convolution's
//!   `[O, I, K, K]` weight becomes a 1x1 convolution `I -> r_in`, a `KxK` core
//!   `r_in -> r_out` (with the original stride, padding and dilation) and a 1x1
//!   `r_out -> O` carrying the bias; the two 1x1 weights are the leading left singular
//!   vectors of the weight unfolded along its input and output channels (HOSVD), the
//!   core the weight projected onto them.
//!
//! The rank is given, or the smallest one keeping a fraction of the weight's energy
//! (sum of squared singular values). A layer is left whole when the factors would not
//! have fewer parameters than the weight, since then nothing is saved.

use slimbench_models::{Model, ModelError};
use tch::{Kind, Tensor};

/// How the rank of each layer is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RankRule {
    /// This rank (capped at the layer's smaller side).
    Rank(i64),
    /// The smallest rank keeping this fraction of the squared singular values.
    Energy(f64),
}

/// What happened to one linear layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerFactoring {
    /// Layer name.
    pub layer: String,
    /// Input width.
    pub in_dim: i64,
    /// Output width.
    pub out_dim: i64,
    /// The rank chosen (the full rank when kept whole).
    pub rank: i64,
    /// Fraction of the weight's energy the rank keeps.
    pub energy: f64,
    /// Whether the layer was factored (false: the factors would not be smaller).
    pub factored: bool,
}

impl LayerFactoring {
    /// Weight parameters before (`in * out`) and after (`r * (in + out)` when factored).
    pub fn weights(&self) -> (i64, i64) {
        let full = self.in_dim * self.out_dim;
        (full, if self.factored { self.rank * (self.in_dim + self.out_dim) } else { full })
    }
}

/// The rank a rule picks for singular values `s` (descending), and the energy it keeps.
pub fn choose_rank(s: &[f64], rule: RankRule) -> (i64, f64) {
    let total: f64 = s.iter().map(|x| x * x).sum();
    let kept = |r: usize| if total > 0.0 { s[..r].iter().map(|x| x * x).sum::<f64>() / total } else { 1.0 };
    let r = match rule {
        RankRule::Rank(r) => (r.max(1) as usize).min(s.len()),
        RankRule::Energy(f) => (1..=s.len()).find(|&r| kept(r) >= f - 1e-12).unwrap_or(s.len()),
    };
    (r as i64, kept(r))
}

/// Factor the linear layers named in `layers` (default: every one but the last, the
/// classifier, whose few outputs leave nothing to save) of `model` in place.
pub fn factorize(
    model: &mut Model,
    rule: RankRule,
    layers: Option<&[String]>,
) -> Result<Vec<LayerFactoring>, ModelError> {
    let all: Vec<(String, (i64, i64), Tensor, bool)> = {
        let dense = model.dense_layers();
        let last = dense.len().saturating_sub(1);
        dense
            .iter()
            .enumerate()
            .map(|(i, d)| {
                (d.name().to_string(), d.dims(), d.weight().detach(), i < last && d.rank().is_none())
            })
            .collect()
    };
    if let Some(names) = layers
        && let Some(bad) = names.iter().find(|n| !all.iter().any(|(a, ..)| a == *n))
    {
        let known: Vec<&str> = all.iter().map(|(n, ..)| n.as_str()).collect();
        return Err(ModelError::Build {
            name: model.name.clone(),
            msg: format!("it has no linear layer `{bad}` (its linear layers: {})", known.join(", ")),
        });
    }
    let mut out = Vec::new();
    for (name, (i, o), w, default) in all {
        let chosen = layers.map_or(default, |l| l.contains(&name));
        if !chosen {
            continue;
        }
        let w = w.to_kind(Kind::Float).to_device(tch::Device::Cpu);
        // tch's `linalg_svd` always passes a `driver`, which CPU builds reject; the
        // reduced `svd` gives the same factors (V rather than V^T).
        let (u, s, v) = tch::no_grad(|| w.f_svd(true, true))?;
        let sv: Vec<f64> = Vec::<f64>::try_from(s.to_kind(Kind::Double))?;
        let (r, energy) = choose_rank(&sv, rule);
        let factored = r * (i + o) < i * o;
        if factored {
            let root = s.narrow(0, 0, r).sqrt();
            let inner = v.narrow(1, 0, r).tr() * root.unsqueeze(1);
            let outer = u.narrow(1, 0, r) * root.unsqueeze(0);
            let dev = model.device();
            model.factorize(&name, &inner.to_device(dev), &outer.to_device(dev))?;
        }
        out.push(LayerFactoring { layer: name, in_dim: i, out_dim: o, rank: r, energy, factored });
    }
    Ok(out)
}

/// What happened to one convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvFactoring {
    /// Layer name.
    pub layer: String,
    /// Input channels.
    pub in_ch: i64,
    /// Output channels.
    pub out_ch: i64,
    /// Kernel `[h, w]`.
    pub kernel: [i64; 2],
    /// Ranks of the input and output channel modes.
    pub ranks: (i64, i64),
    /// Fraction of the energy each mode's rank keeps.
    pub energy: (f64, f64),
    /// Whether it was factored (false: the factors would not be smaller).
    pub factored: bool,
}

impl ConvFactoring {
    /// Weight parameters before and after.
    pub fn weights(&self) -> (i64, i64) {
        let k = self.kernel[0] * self.kernel[1];
        let full = self.out_ch * self.in_ch * k;
        let (ri, ro) = self.ranks;
        (full, if self.factored { self.in_ch * ri + ri * ro * k + ro * self.out_ch } else { full })
    }
}

/// Factor by Tucker-2 the convolutions named in `convs` (default: every one with a
/// kernel larger than 1x1 that is not grouped); returns the new model (same device,
/// fp32) and what happened to each convolution considered.
pub fn tucker2(
    model: &Model,
    rule: RankRule,
    convs: Option<&[String]>,
) -> Result<(Model, Vec<ConvFactoring>), ModelError> {
    use slimbench_graph::{INPUT, Node, Op as NodeOp};
    let _g = tch::no_grad_guard();
    let fail = |msg: String| ModelError::Build { name: model.name.clone(), msg };
    let candidates: Vec<(String, bool)> = model
        .graph
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            NodeOp::Conv2d { kernel, groups, .. } => Some((n.id.clone(), groups == 1 && kernel != [1, 1])),
            _ => None,
        })
        .collect();
    if let Some(names) = convs
        && let Some(bad) = names.iter().find(|n| !candidates.iter().any(|(c, ok)| c == *n && *ok))
    {
        let known: Vec<&str> = candidates.iter().filter(|c| c.1).map(|c| c.0.as_str()).collect();
        return Err(fail(format!(
            "`{bad}` is not a convolution Tucker-2 can factor (ungrouped, larger than 1x1: {})",
            known.join(", ")
        )));
    }
    let weights: std::collections::HashMap<String, Tensor> = model
        .named()
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_kind(Kind::Float).to_device(tch::Device::Cpu)))
        .collect();
    let mut graph = model.graph.clone();
    let mut report = Vec::new();
    // New weights of the factored layers, by parameter name.
    let mut fresh: std::collections::HashMap<String, Tensor> = std::collections::HashMap::new();
    for (name, ok) in &candidates {
        if !ok || !convs.is_none_or(|c| c.contains(name)) {
            continue;
        }
        let w = &weights[&format!("{name}.weight")];
        let [o, i, kh, kw] =
            <[i64; 4]>::try_from(w.size()).map_err(|_| fail(format!("`{name}` is not 2-D")))?;
        let svd = |m: Tensor| -> Result<(Tensor, Vec<f64>), ModelError> {
            let (u, s, _) = m.f_svd(true, true)?;
            Ok((u, Vec::<f64>::try_from(s.to_kind(Kind::Double))?))
        };
        let (u_out, s_out) = svd(w.reshape([o, i * kh * kw]))?;
        let (u_in, s_in) = svd(w.permute([1, 0, 2, 3]).reshape([i, o * kh * kw]))?;
        let (ro, eo) = choose_rank(&s_out, rule);
        let (ri, ei) = choose_rank(&s_in, rule);
        let f = ConvFactoring {
            layer: name.clone(),
            in_ch: i,
            out_ch: o,
            kernel: [kh, kw],
            ranks: (ri, ro),
            energy: (ei, eo),
            factored: true,
        };
        let factored = f.weights().1 < f.weights().0;
        report.push(ConvFactoring { factored, ..f });
        if !factored {
            continue;
        }
        let (u_out, u_in) = (u_out.narrow(1, 0, ro), u_in.narrow(1, 0, ri));
        // core[b, a, h, w] = sum_{o, i} U_out[o, b] U_in[i, a] W[o, i, h, w]
        let t = u_out.tr().matmul(&w.reshape([o, i * kh * kw])).reshape([ro, i, kh * kw]);
        let t = u_in.tr().matmul(&t.transpose(0, 1).reshape([i, ro * kh * kw])).reshape([ri, ro, kh, kw]);
        let core = t.permute([1, 0, 2, 3]).contiguous();
        let idx = graph.nodes.iter().position(|n| &n.id == name).expect("a candidate");
        let NodeOp::Conv2d { stride, padding, dilation, bias, .. } = graph.nodes[idx].op else {
            unreachable!()
        };
        let (first, mid) = (format!("{name}_lr_in"), format!("{name}_lr_core"));
        let input = graph.nodes[idx].inputs.first().cloned().unwrap_or_else(|| INPUT.to_string());
        let conv1 = |out: i64, b: bool| NodeOp::Conv2d {
            out,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: b,
        };
        let core_op =
            NodeOp::Conv2d { out: ro, kernel: [kh, kw], stride, padding, dilation, groups: 1, bias: false };
        graph.nodes[idx] = Node { id: name.clone(), op: conv1(o, bias), inputs: vec![mid.clone()] };
        graph.nodes.insert(idx, Node { id: mid.clone(), op: core_op, inputs: vec![first.clone()] });
        graph.nodes.insert(idx, Node { id: first.clone(), op: conv1(ri, false), inputs: vec![input] });
        fresh.insert(format!("{first}.weight"), u_in.tr().reshape([ri, i, 1, 1]));
        fresh.insert(format!("{mid}.weight"), core);
        fresh.insert(format!("{name}.weight"), u_out.reshape([o, ro, 1, 1]));
    }
    let mut out = Model::from_graph(&model.name, &model.config, graph, model.io, model.device(), None)?;
    out.factor_shapes(&model.factored())?;
    for (pname, var) in out.named() {
        let src = fresh
            .get(&pname)
            .or_else(|| weights.get(&pname))
            .ok_or_else(|| fail(format!("no tensor for `{pname}`")))?;
        var.shallow_clone().f_copy_(&src.to_device(var.device()))?;
    }
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{MlpConfig, ModelConfig};

    #[test]
    fn tucker2_at_full_rank_is_exact_and_at_lower_rank_smaller() {
        let io = IoShape { channels: 3, height: 16, width: 16, classes: 10 };
        let c = ModelConfig::Cnn(slimbench_core::config::CnnConfig {
            channels: vec![8, 16],
            hidden: 0,
            dropout: 0.0,
        });
        let m = Model::build("c", &c, io, tch::Device::Cpu, Some(2)).unwrap();
        let xs = Tensor::randn([2, 3, 16, 16], (Kind::Float, tch::Device::Cpu));
        // A weight whose channel modes have rank 2: Tucker-2 at rank 2 is exact.
        let opts = (Kind::Float, tch::Device::Cpu);
        let (a, b, core) =
            (Tensor::randn([16, 2], opts), Tensor::randn([8, 2], opts), Tensor::randn([2, 2, 3, 3], opts));
        let w = Tensor::einsum("oa,ib,abhw->oihw", &[a, b, core], None::<i64>) * 0.1;
        tch::no_grad(|| {
            let var = m.named().into_iter().find(|(n, _)| n == "conv1.weight").unwrap().1;
            var.shallow_clone().copy_(&w);
        });
        let (exact, rep) = tucker2(&m, RankRule::Energy(0.999_999), Some(&["conv1".to_string()])).unwrap();
        assert_eq!((rep.len(), rep[0].ranks, rep[0].factored), (1, (2, 2), true), "{rep:?}");
        let d = (m.forward(&xs) - exact.forward(&xs)).abs().max().double_value(&[]);
        assert!(d < 1e-4, "{d}");
        // Rank 2: smaller, still runs, a graph the file can rebuild.
        let (small, rep) = tucker2(&m, RankRule::Rank(2), None).unwrap();
        assert!(rep.iter().all(|r| r.factored), "{rep:?}");
        assert!(small.param_count() < m.param_count());
        assert!(small.graph.node("conv1_lr_core").is_some());
        assert_eq!(small.forward(&xs).size(), [2, 10]);
        let e = tucker2(&m, RankRule::Rank(2), Some(&["fc".to_string()])).unwrap_err();
        assert!(e.to_string().contains("not a convolution Tucker-2 can factor"), "{e}");
    }
    use tch::Device;

    const IO: IoShape = IoShape { channels: 1, height: 8, width: 8, classes: 10 };

    fn mlp() -> Model {
        Model::build("m", &ModelConfig::Mlp(MlpConfig { hidden: vec![48, 32] }), IO, Device::Cpu, Some(5))
            .unwrap()
    }

    #[test]
    fn ranks_follow_the_rule() {
        let s = [4.0, 2.0, 1.0, 1.0];
        assert_eq!(choose_rank(&s, RankRule::Rank(2)).0, 2);
        assert_eq!(choose_rank(&s, RankRule::Rank(99)).0, 4);
        // energies 16, 4, 1, 1 of 22: rank 1 keeps 0.727, rank 2 keeps 0.909
        let (r, e) = choose_rank(&s, RankRule::Energy(0.9));
        assert_eq!(r, 2);
        assert!((e - 20.0 / 22.0).abs() < 1e-12);
        assert_eq!(choose_rank(&s, RankRule::Energy(1.0)).0, 4);
    }

    #[test]
    fn full_rank_factors_reproduce_the_outputs_and_low_rank_shrinks_the_model() {
        let x = Tensor::randn([5, 1, 8, 8], (Kind::Float, Device::Cpu));
        let base = mlp();
        // A layer at full rank would not save anything: it stays whole.
        let mut whole = base.try_clone().unwrap();
        let rep = factorize(&mut whole, RankRule::Energy(1.0), None).unwrap();
        assert_eq!(rep.len(), 2, "{rep:?}");
        assert!(rep.iter().all(|l| !l.factored && (l.energy - 1.0).abs() < 1e-9), "{rep:?}");
        assert!(whole.factored().is_empty());

        // A weight of rank 4 is reproduced exactly by rank-4 factors.
        let mut exact = base.try_clone().unwrap();
        tch::no_grad(|| {
            let w = Tensor::randn([48, 4], (Kind::Float, Device::Cpu))
                .matmul(&Tensor::randn([4, 64], (Kind::Float, Device::Cpu)))
                * 0.05;
            exact.vs().root().sub("fc0").get("weight").unwrap().copy_(&w);
        });
        let y_exact = exact.forward(&x);
        let rep = factorize(&mut exact, RankRule::Energy(0.999999), Some(&["fc0".to_string()])).unwrap();
        assert_eq!((rep.len(), rep[0].rank, rep[0].factored), (1, 4, true), "{rep:?}");
        let err = (exact.forward(&x) - &y_exact).abs().max().double_value(&[]);
        assert!(err < 1e-4, "{err}");

        let mut small = base.try_clone().unwrap();
        let rep = factorize(&mut small, RankRule::Rank(4), None).unwrap();
        assert!(rep.iter().all(|l| l.factored && l.rank == 4));
        let names: Vec<String> = small.named().into_iter().map(|(n, _)| n).collect();
        assert!(
            names.contains(&"fc0.lr_in.weight".to_string()) && !names.contains(&"fc0.weight".to_string())
        );
        // 64*48 + 48*32 weights became 4*(64+48) + 4*(48+32); fc2 and biases stay.
        let removed = (64 * 48 + 48 * 32) - (4 * (64 + 48) + 4 * (48 + 32));
        assert_eq!(base.param_count() - small.param_count(), removed as u64);
        assert_eq!(small.factored().get("fc1"), Some(&4));
        // Only the factors (and the rest) are trainable now.
        assert_eq!(small.vs().trainable_variables().len(), base.vs().trainable_variables().len() + 2);
        // A clone keeps the factored shape and values.
        let c = small.try_clone().unwrap();
        assert!(c.forward(&x).allclose(&small.forward(&x), 1e-5, 1e-6, false));
    }

    #[test]
    fn unknown_layers_are_named() {
        let mut m = mlp();
        let e = factorize(&mut m, RankRule::Rank(2), Some(&["fc9".to_string()])).unwrap_err().to_string();
        assert!(e.contains("no linear layer `fc9`") && e.contains("fc0, fc1, fc2"), "{e}");
    }
}
