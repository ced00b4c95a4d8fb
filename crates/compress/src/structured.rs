//! Structured pruning: remove whole convolution channels and hidden neurons, and
//! rebuild a smaller dense model, so the saving is real at run time (fewer FLOPs,
//! smaller tensors), not a mask over zeros.
//!
//! The model's graph is read as a list of [`Group`]s: a layer whose output units can go
//! (a conv's output channels, a linear layer's rows), the batch norms after it, and
//! the layer that consumes them (the next conv's input channels, or the columns of the
//! linear layer after a flatten, where each channel owns a block of `h * w` columns).
//! Each group keeps the `round((1 - fraction) * units)` units of largest L1 or L2 norm
//! (at least one), and every tensor of the group is sliced consistently. The smaller
//! graph is built, and every tensor is copied in. Layers whose channels are tied to
//! others (through a residual add, a concat or a depthwise convolution) are kept
//! whole: in a ResNet the first convolution of each block is pruned, the second (which
//! feeds the add) is not.

use std::collections::HashMap;

use slimbench_core::config::{ModelConfig, PruneNorm};
use slimbench_graph::{Activation, Graph, Op as NodeOp, PoolKind};
use slimbench_models::{Model, ModelError};
use tch::{Device, Kind, Tensor};

/// Output units of `producer` that feed `consumer`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    /// Layer name (`fc0`, `conv`), whose `.weight` rows / `.bias` entries are units.
    pub(crate) producer: String,
    /// Layer whose `.weight` columns (dim 1) take them, `block` columns per unit.
    pub(crate) consumer: String,
    /// Whether the consumer is a padded convolution (a constant input channel then does
    /// not contribute a constant: the zero padding breaks it at the borders).
    pub(crate) consumer_conv: bool,
    /// Batch norms between the two, whose channels go with the units.
    pub(crate) norms: Vec<String>,
    /// Whether only ReLU, max pooling, flatten and dropout lie between the two (a unit
    /// with no input weights then outputs the constant `relu(bias)`: dead-path removal
    /// can fold it).
    pub(crate) simple: bool,
}

/// What structured pruning did to one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Pruned {
    /// Layer name.
    pub layer: String,
    /// Units before.
    pub before: i64,
    /// Units kept.
    pub after: i64,
    /// Indices (in the original layer, ascending) of the units kept, so the smaller
    /// model can be laid back into the original shape ([`expand`]).
    pub kept: Vec<i64>,
}

/// Why a model cannot be pruned this way.
#[derive(Debug, thiserror::Error)]
pub enum StructuredError {
    /// No layer's units can be removed on their own.
    #[error(
        "structured pruning found no layer of `{0}` whose channels can be removed on their own (each feeds a residual add, a concat, a depthwise convolution or the output)"
    )]
    Unsupported(String),
    /// Low-rank factors have no channels to remove.
    #[error(
        "structured pruning cannot rebuild the low-rank factored layer(s) {0}: prune before the `low-rank` stage, not after"
    )]
    Factored(String),
    /// Building or filling the smaller model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// libtorch refused a slice.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// The producer/consumer pairs of a graph, input to output: each convolution (not
/// grouped) or linear layer whose output reaches exactly one next layer through
/// nodes that keep channels apart (activations, batch norm, pooling, flatten,
/// dropout). Channels tied through residual adds, concats or depthwise convolutions
/// are left alone.
pub(crate) fn groups(graph: &Graph) -> Result<Vec<Group>, StructuredError> {
    let readers = graph.consumers();
    let mut out = Vec::new();
    for (p, node) in graph.nodes.iter().enumerate() {
        match node.op {
            NodeOp::Conv2d { groups: 1, .. } | NodeOp::Linear { .. } => {}
            _ => continue,
        }
        let (mut cur, mut norms, mut simple) = (p, Vec::new(), true);
        let found = loop {
            let [next] = readers[cur].as_slice() else { break None };
            let n = &graph.nodes[*next];
            match &n.op {
                NodeOp::BatchNorm { .. } => {
                    norms.push(n.id.clone());
                    simple = false;
                }
                NodeOp::Act { f: Activation::Relu }
                | NodeOp::Pool { kind: PoolKind::Max, .. }
                | NodeOp::Flatten
                | NodeOp::Dropout { .. } => {}
                NodeOp::Act { .. } | NodeOp::Pool { .. } | NodeOp::GlobalAvgPool => simple = false,
                NodeOp::Conv2d { groups: 1, .. } => break Some((n.id.clone(), true)),
                NodeOp::Linear { .. } => break Some((n.id.clone(), false)),
                _ => break None,
            }
            cur = *next;
        };
        if let Some((consumer, consumer_conv)) = found {
            out.push(Group { producer: node.id.clone(), consumer, consumer_conv, norms, simple });
        }
    }
    Ok(out)
}

/// `config` with these unit counts, where the family has a parameter for them (so the
/// stored config reads like the smaller model); the graph is what is rebuilt.
fn shrunk(config: &ModelConfig, groups: &[Group], units: &[i64]) -> ModelConfig {
    let mut config = config.clone();
    let by: HashMap<&str, i64> =
        groups.iter().map(|g| g.producer.as_str()).zip(units.iter().copied()).collect();
    match &mut config {
        ModelConfig::Mlp(c) => {
            for (i, h) in c.hidden.iter_mut().enumerate() {
                *h = by.get(format!("fc{i}").as_str()).copied().unwrap_or(*h);
            }
        }
        ModelConfig::SeedCnn(c) => c.filters = by.get("conv").copied().unwrap_or(c.filters),
        ModelConfig::Cnn(c) => {
            for (i, ch) in c.channels.iter_mut().enumerate() {
                *ch = by.get(format!("conv{i}").as_str()).copied().unwrap_or(*ch);
            }
            c.hidden = by.get("hidden").copied().unwrap_or(c.hidden);
        }
        _ => {}
    }
    config
}

/// `graph` with the producers' widths set to `units` (in group order).
fn shrunk_graph(graph: &Graph, groups: &[Group], units: &[i64]) -> Graph {
    let mut graph = graph.clone();
    for (g, &u) in groups.iter().zip(units) {
        if let Some(n) = graph.nodes.iter_mut().find(|n| n.id == g.producer) {
            match &mut n.op {
                NodeOp::Conv2d { out, .. } | NodeOp::Linear { out, .. } => *out = u,
                _ => {}
            }
        }
    }
    graph
}

/// Slice group `g` down to the units `keep` (ascending indices): the producer's rows and
/// bias entries, and the consumer's matching columns (one block of `h * w` columns per
/// unit after a flatten, one otherwise).
pub(crate) fn keep_units(
    tensors: &mut HashMap<String, Tensor>,
    g: &Group,
    keep: &Tensor,
) -> Result<(), StructuredError> {
    let before = tensors[&format!("{}.weight", g.producer)].size()[0];
    let norm_parts = ["weight", "bias", "running_mean", "running_var"];
    let parts = ["weight", "bias"].iter().map(|p| format!("{}.{p}", g.producer));
    let parts = parts.chain(g.norms.iter().flat_map(|n| norm_parts.iter().map(move |p| format!("{n}.{p}"))));
    for name in parts.collect::<Vec<_>>() {
        if let Some(t) = tensors.get(&name) {
            let sliced = t.f_index_select(0, keep)?;
            tensors.insert(name, sliced);
        }
    }
    let cname = format!("{}.weight", g.consumer);
    let c = &tensors[&cname];
    let block = c.size()[1] / before;
    let cols = (keep.unsqueeze(1) * block + Tensor::arange(block, (Kind::Int64, Device::Cpu)).unsqueeze(0))
        .flatten(0, -1);
    let sliced = c.f_index_select(1, &cols)?;
    tensors.insert(cname, sliced);
    Ok(())
}

/// The model's parameters, detached, on the CPU, by name.
pub(crate) fn cpu_tensors(model: &Model) -> HashMap<String, Tensor> {
    model.named().into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect()
}

/// Build the graph with these unit counts (in the order of `groups`) on the CPU and
/// copy `tensors` into it.
pub(crate) fn rebuild(
    model: &Model,
    tensors: &HashMap<String, Tensor>,
    groups: &[Group],
    units: &[i64],
) -> Result<Model, StructuredError> {
    let config = shrunk(&model.config, groups, units);
    let graph = shrunk_graph(&model.graph, groups, units);
    let small = Model::from_graph(&model.name, &config, graph, model.io, Device::Cpu, None)?;
    for (name, var) in small.named() {
        let src = &tensors[&name];
        if src.size() != var.size() {
            return Err(ModelError::Format {
                path: name,
                msg: format!("pruned shape {:?} does not fit the rebuilt layer {:?}", src.size(), var.size()),
            }
            .into());
        }
        var.shallow_clone().f_copy_(src)?;
    }
    Ok(small)
}

/// Remove `fraction` of the channels/neurons of every group (by `norm`), returning the
/// smaller model (on the CPU, fp32) and what changed per layer.
pub fn prune(model: &Model, fraction: f64, norm: PruneNorm) -> Result<(Model, Vec<Pruned>), StructuredError> {
    let _g = tch::no_grad_guard();
    let factored = model.factored();
    if !factored.is_empty() {
        return Err(StructuredError::Factored(factored.into_keys().collect::<Vec<_>>().join(", ")));
    }
    let groups = groups(&model.graph)?;
    if groups.is_empty() {
        return Err(StructuredError::Unsupported(model.name.clone()));
    }
    let mut tensors = cpu_tensors(model);
    let mut report = Vec::new();
    let mut units = Vec::new();
    for g in &groups {
        let w = &tensors[&format!("{}.weight", g.producer)];
        let before = w.size()[0];
        let flat = w.flatten(1, -1).to_kind(Kind::Float);
        let scores = match norm {
            PruneNorm::L1 => flat.abs().sum_dim_intlist(1, false, Kind::Float),
            PruneNorm::L2 => flat.square().sum_dim_intlist(1, false, Kind::Float).sqrt(),
        };
        let after = (((1.0 - fraction) * before as f64).round() as i64).clamp(1, before);
        // Keep the strongest units, in their original order.
        let (_, keep) = scores.topk(after, 0, true, false);
        let keep = keep.sort(0, false).0;
        keep_units(&mut tensors, g, &keep)?;
        units.push(after);
        let kept = Vec::<i64>::try_from(&keep)?;
        report.push(Pruned { layer: g.producer.clone(), before, after, kept });
    }
    Ok((rebuild(model, &tensors, &groups, &units)?, report))
}

/// The *simulated* form of a structurally pruned model: `small`'s weights laid back
/// into the original architecture (`config`, `graph`), with the removed
/// channels/neurons (and the weights that consumed them) zero. It computes the same function as `small` at the
/// original cost, which is what a mask-based structured pruning would run. `report`
/// is what [`prune`] returned for that original model. On the CPU, fp32.
pub fn expand(
    small: &Model,
    config: &ModelConfig,
    graph: &Graph,
    report: &[Pruned],
) -> Result<Model, StructuredError> {
    let _g = tch::no_grad_guard();
    let groups: Vec<Group> = {
        let all = groups(graph)?;
        report.iter().filter_map(|r| all.iter().find(|g| g.producer == r.layer).cloned()).collect()
    };
    let full = Model::from_graph(&small.name, config, graph.clone(), small.io, Device::Cpu, None)?;
    let index = |kept: &[i64]| Tensor::from_slice(kept);
    // Per tensor: the kept rows (it produces a group's units) and kept columns with
    // their block size (it consumes them).
    let mut rows: HashMap<String, Tensor> = HashMap::new();
    let mut cols: HashMap<String, (Tensor, i64)> = HashMap::new();
    for (g, r) in groups.iter().zip(report) {
        if g.producer != r.layer || r.kept.len() as i64 != r.after {
            return Err(ModelError::Format {
                path: r.layer.clone(),
                msg: format!(
                    "pruning report does not match the `{}` layer of the original model",
                    g.producer
                ),
            }
            .into());
        }
        for part in ["weight", "bias"] {
            rows.insert(format!("{}.{part}", g.producer), index(&r.kept));
        }
        for n in &g.norms {
            for part in ["weight", "bias", "running_mean", "running_var"] {
                rows.insert(format!("{n}.{part}"), index(&r.kept));
            }
        }
        cols.insert(format!("{}.weight", g.consumer), (index(&r.kept), r.before));
    }
    let smalls: HashMap<String, Tensor> = small
        .named()
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).to_kind(Kind::Float)))
        .collect();
    for (name, var) in full.named() {
        let src = smalls.get(&name).ok_or_else(|| ModelError::Format {
            path: name.clone(),
            msg: "the pruned model has no such tensor".into(),
        })?;
        let mut t = src.shallow_clone();
        if let Some((keep, before)) = cols.get(&name) {
            let block = var.size()[1] / before;
            let idx = (keep.unsqueeze(1) * block
                + Tensor::arange(block, (Kind::Int64, Device::Cpu)).unsqueeze(0))
            .flatten(0, -1);
            let mut shape = t.size();
            shape[1] = var.size()[1];
            t = Tensor::zeros(&shape, (Kind::Float, Device::Cpu)).f_index_copy(1, &idx, &t)?;
        }
        if let Some(keep) = rows.get(&name) {
            let mut shape = t.size();
            shape[0] = var.size()[0];
            t = Tensor::zeros(&shape, (Kind::Float, Device::Cpu)).f_index_copy(0, keep, &t)?;
        }
        if t.size() != var.size() {
            return Err(ModelError::Format {
                path: name,
                msg: format!(
                    "expanded shape {:?} does not fit the original layer {:?}",
                    t.size(),
                    var.size()
                ),
            }
            .into());
        }
        var.shallow_clone().f_copy_(&t)?;
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{CnnConfig, DsConvConfig, MlpConfig, SeedCnnConfig};

    const IO: IoShape = IoShape { channels: 1, height: 28, width: 28, classes: 10 };

    fn build(config: ModelConfig) -> Model {
        Model::build("m", &config, IO, Device::Cpu, Some(5)).unwrap()
    }

    fn x() -> Tensor {
        Tensor::randn([4, 1, 28, 28], (Kind::Float, Device::Cpu))
    }

    #[test]
    fn removing_nothing_keeps_the_function() {
        // With every unit kept the rebuilt model is the same function (units reordered
        // into their original order), for each supported family.
        for config in [
            ModelConfig::Mlp(MlpConfig { hidden: vec![32, 16] }),
            ModelConfig::SeedCnn(SeedCnnConfig::default()),
            ModelConfig::Cnn(CnnConfig { channels: vec![4, 8], hidden: 16, dropout: 0.0 }),
        ] {
            let m = build(config);
            let (same, report) = prune(&m, 0.0, PruneNorm::L1).unwrap();
            assert!(report.iter().all(|p| p.before == p.after));
            let xs = x();
            let diff = (m.forward(&xs) - same.forward(&xs)).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{diff}");
        }
    }

    #[test]
    fn seed_cnn_loses_half_its_filters_and_keeps_the_strongest() {
        let m = build(ModelConfig::SeedCnn(SeedCnnConfig::default()));
        // Make filters 0..6 clearly the strongest.
        tch::no_grad(|| {
            let w = m.named().into_iter().find(|(n, _)| n == "conv.weight").unwrap().1;
            let _ = w.narrow(0, 6, 6).shallow_clone().g_mul_scalar_(0.01);
        });
        let (small, report) = prune(&m, 0.5, PruneNorm::L2).unwrap();
        assert_eq!(report, [Pruned { layer: "conv".into(), before: 12, after: 6, kept: (0..6).collect() }]);
        assert_eq!(small.config, ModelConfig::SeedCnn(SeedCnnConfig { filters: 6 }));
        // conv 6*9+6, fc 6*169*10+10: about half the parameters.
        assert_eq!(small.param_count(), 54 + 6 + 10140 + 10);
        let get = |m: &Model, n: &str| m.named().into_iter().find(|(k, _)| k == n).unwrap().1;
        assert!(get(&small, "conv.weight").equal(&get(&m, "conv.weight").narrow(0, 0, 6)));
        // fc columns of filter j are the block j*169..(j+1)*169.
        assert!(get(&small, "fc.weight").equal(&get(&m, "fc.weight").narrow(1, 0, 6 * 169)));
        assert_eq!(small.forward(&x()).size(), [4, 10]);
    }

    #[test]
    fn mlp_and_cnn_shrink_every_hidden_width() {
        let (small, _) =
            prune(&build(ModelConfig::Mlp(MlpConfig { hidden: vec![40, 20] })), 0.75, PruneNorm::L1).unwrap();
        assert_eq!(small.config, ModelConfig::Mlp(MlpConfig { hidden: vec![10, 5] }));
        let cnn = ModelConfig::Cnn(CnnConfig { channels: vec![8, 16], hidden: 32, dropout: 0.0 });
        let (small, report) = prune(&build(cnn), 0.5, PruneNorm::L1).unwrap();
        assert_eq!(
            small.config,
            ModelConfig::Cnn(CnnConfig { channels: vec![4, 8], hidden: 16, dropout: 0.0 })
        );
        assert_eq!(report.len(), 3);
        assert_eq!(small.forward(&x()).size(), [4, 10]);
    }

    #[test]
    fn expanding_back_computes_the_same_function_with_zeros_where_units_went() {
        for config in [
            ModelConfig::Mlp(MlpConfig { hidden: vec![32, 16] }),
            ModelConfig::SeedCnn(SeedCnnConfig::default()),
            ModelConfig::Cnn(CnnConfig { channels: vec![4, 8], hidden: 16, dropout: 0.0 }),
        ] {
            let m = build(config.clone());
            let (small, report) = prune(&m, 0.5, PruneNorm::L1).unwrap();
            let full = expand(&small, &config, &m.graph, &report).unwrap();
            assert_eq!(full.config, config);
            assert_eq!(full.param_count(), m.param_count());
            // Only the smaller model's weights are non-zero: the rest is padding.
            assert!(full.nonzero_count() <= small.param_count());
            assert!(full.nonzero_count() < m.param_count());
            let xs = x();
            let diff = (small.forward(&xs) - full.forward(&xs)).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{config:?}: {diff}");
        }
        let m = build(ModelConfig::SeedCnn(SeedCnnConfig::default()));
        let (small, report) = prune(&m, 0.5, PruneNorm::L2).unwrap();
        let full = expand(&small, &m.config, &m.graph, &report).unwrap();
        let w = full.named().into_iter().find(|(n, _)| n == "conv.weight").unwrap().1;
        let removed: Vec<i64> = (0..12).filter(|i| !report[0].kept.contains(i)).collect();
        for i in removed {
            assert_eq!(w.get(i).abs().sum(Kind::Float).double_value(&[]), 0.0, "filter {i}");
        }
    }

    #[test]
    fn depthwise_ties_are_left_whole_and_a_model_with_only_ties_is_refused() {
        // dsconv: each pointwise conv feeds a depthwise one (its channels are tied), but
        // the last feeds the classifier through pooling: only that one is pruned.
        let (small, report) =
            prune(&build(ModelConfig::DsConv(DsConvConfig::default())), 0.5, PruneNorm::L1).unwrap();
        assert_eq!(report.iter().map(|r| r.layer.as_str()).collect::<Vec<_>>(), ["pw2"]);
        assert_eq!(small.forward(&x()).size(), [4, 10]);
        // One conv straight into a residual add and out: nothing can go on its own.
        let layers: slimbench_graph::layers::LayersConfig =
            serde_json::from_value(serde_json::json!({"layers": [
                {"conv": 1, "kernel": 3, "padding": 1, "id": "a"}, {"add": "input"},
                {"flatten": true}, {"linear": 10}
            ]}))
            .unwrap();
        let m = build(ModelConfig::Layers(layers));
        let e = prune(&m, 0.5, PruneNorm::L1).unwrap_err();
        assert!(e.to_string().contains("no layer of `m` whose channels can be removed"), "{e}");
    }
}
