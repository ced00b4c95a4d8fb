//! Low-rank factorization of linear layers by truncated SVD: `W = U S V^T` keeps its
//! `r` largest singular values and becomes `(U_r sqrt(S_r)) x (sqrt(S_r) V_r^T)`, two
//! thinner layers (see [`slimbench_models::families::Dense`]). The rank is given, or
//! the smallest one keeping a fraction of the weight's energy (sum of squared singular
//! values). A layer is left whole when the factors would not have fewer parameters
//! than the weight, since then nothing is saved.

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

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{MlpConfig, ModelConfig};
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
