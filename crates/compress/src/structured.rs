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

/// The dependency groups of a graph ([`slimbench_graph::channels`]).
pub(crate) use slimbench_graph::channels::{ChannelGroup as Space, dependency_groups as spaces};

/// Slice a dependency group down to the channels `keep` (ascending), of `units`.
fn keep_channels(
    tensors: &mut HashMap<String, Tensor>,
    s: &Space,
    units: i64,
    keep: &Tensor,
) -> Result<(), StructuredError> {
    let rows = s.producers.iter().flat_map(|p| [format!("{p}.weight"), format!("{p}.bias")]);
    let norm_parts = ["weight", "bias", "running_mean", "running_var"];
    let rows = rows
        .chain(s.norms.iter().flat_map(|n| norm_parts.iter().map(move |p| format!("{n}.{p}"))))
        .chain(s.depthwise.iter().flat_map(|d| [format!("{d}.weight"), format!("{d}.bias")]));
    for name in rows.collect::<Vec<_>>() {
        if let Some(t) = tensors.get(&name) {
            let sliced = t.f_index_select(0, keep)?;
            tensors.insert(name, sliced);
        }
    }
    for c in &s.consumers {
        let cname = format!("{c}.weight");
        let w = &tensors[&cname];
        let block = w.size()[1] / units;
        let cols = (keep.unsqueeze(1) * block
            + Tensor::arange(block, (Kind::Int64, Device::Cpu)).unsqueeze(0))
        .flatten(0, -1);
        let sliced = w.f_index_select(1, &cols)?;
        tensors.insert(cname, sliced);
    }
    Ok(())
}

/// `graph` with each group's channels at its new count.
fn narrowed_graph(graph: &Graph, spaces: &[Space], units: &[i64]) -> Graph {
    let mut graph = graph.clone();
    for (s, &u) in spaces.iter().zip(units) {
        for n in graph.nodes.iter_mut() {
            match &mut n.op {
                NodeOp::Conv2d { out, .. } | NodeOp::Linear { out, .. } if s.producers.contains(&n.id) => {
                    *out = u
                }
                NodeOp::Conv2d { out, groups, .. } if s.depthwise.contains(&n.id) => (*out, *groups) = (u, u),
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
    let space = Space {
        producers: vec![g.producer.clone()],
        norms: g.norms.clone(),
        consumers: vec![g.consumer.clone()],
        ..Default::default()
    };
    keep_channels(tensors, &space, before, keep)
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

/// Remove `fraction` of the channels/neurons of every dependency group (scored by the
/// `norm` of its producers' rows, summed), returning the smaller model (on the CPU,
/// fp32) and what changed per group (named after its first producer).
pub fn prune(model: &Model, fraction: f64, norm: PruneNorm) -> Result<(Model, Vec<Pruned>), StructuredError> {
    let _g = tch::no_grad_guard();
    let factored = model.factored();
    if !factored.is_empty() {
        return Err(StructuredError::Factored(factored.into_keys().collect::<Vec<_>>().join(", ")));
    }
    let spaces = spaces(&model.graph);
    if spaces.is_empty() {
        return Err(StructuredError::Unsupported(model.name.clone()));
    }
    let mut tensors = cpu_tensors(model);
    let mut report = Vec::new();
    let mut units = Vec::new();
    for s in &spaces {
        let before = tensors[&format!("{}.weight", s.producers[0])].size()[0];
        let mut scores = Tensor::zeros([before], (Kind::Float, Device::Cpu));
        for p in &s.producers {
            let flat = tensors[&format!("{p}.weight")].flatten(1, -1).to_kind(Kind::Float);
            scores += match norm {
                PruneNorm::L1 => flat.abs().sum_dim_intlist(1, false, Kind::Float),
                PruneNorm::L2 => flat.square().sum_dim_intlist(1, false, Kind::Float).sqrt(),
            };
        }
        let after = (((1.0 - fraction) * before as f64).round() as i64).clamp(1, before);
        // Keep the strongest channels, in their original order.
        let (_, keep) = scores.topk(after, 0, true, false);
        let keep = keep.sort(0, false).0;
        keep_channels(&mut tensors, s, before, &keep)?;
        units.push(after);
        let kept = Vec::<i64>::try_from(&keep)?;
        report.push(Pruned { layer: s.producers.join("+"), before, after, kept });
    }
    let config = shrunk_config(&model.config, &spaces, &units);
    let graph = narrowed_graph(&model.graph, &spaces, &units);
    let small = Model::from_graph(&model.name, &config, graph, model.io, Device::Cpu, None)?;
    fill(&small, &tensors)?;
    Ok((small, report))
}

/// Copy `tensors` into `model`'s variables of the same names and shapes.
fn fill(model: &Model, tensors: &HashMap<String, Tensor>) -> Result<(), StructuredError> {
    for (name, var) in model.named() {
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
    Ok(())
}

/// `config` with the groups' new widths where the family has a parameter for them.
fn shrunk_config(config: &ModelConfig, spaces: &[Space], units: &[i64]) -> ModelConfig {
    let groups: Vec<Group> = spaces
        .iter()
        .map(|s| Group {
            producer: s.producers[0].clone(),
            consumer: String::new(),
            consumer_conv: false,
            norms: Vec::new(),
            simple: false,
        })
        .collect();
    shrunk(config, &groups, units)
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
    let all = spaces(graph);
    let full = Model::from_graph(&small.name, config, graph.clone(), small.io, Device::Cpu, None)?;
    let index = |kept: &[i64]| Tensor::from_slice(kept);
    // Per tensor: the kept rows (it produces or carries a group's channels) and kept
    // columns with the group's size (it reads them).
    let mut rows: HashMap<String, Tensor> = HashMap::new();
    let mut cols: HashMap<String, (Tensor, i64)> = HashMap::new();
    for r in report {
        let s =
            all.iter().find(|s| s.producers.join("+") == r.layer).filter(|_| r.kept.len() as i64 == r.after);
        let Some(s) = s else {
            return Err(ModelError::Format {
                path: r.layer.clone(),
                msg: "pruning report does not match a channel group of the original model".into(),
            }
            .into());
        };
        let norm_parts = ["weight", "bias", "running_mean", "running_var"];
        let names =
            s.producers.iter().chain(&s.depthwise).flat_map(|p| [format!("{p}.weight"), format!("{p}.bias")]);
        let names =
            names.chain(s.norms.iter().flat_map(|n| norm_parts.iter().map(move |p| format!("{n}.{p}"))));
        for name in names {
            rows.insert(name, index(&r.kept));
        }
        for c in &s.consumers {
            cols.insert(format!("{c}.weight"), (index(&r.kept), r.before));
        }
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
    fn depthwise_convs_and_residual_adds_are_pruned_with_the_channels_they_tie() {
        // dsconv: a depthwise conv carries its input's channels, so each pointwise conv's
        // channels go with the next depthwise conv's filters.
        let m = build(ModelConfig::DsConv(DsConvConfig::default()));
        let (small, report) = prune(&m, 0.5, PruneNorm::L1).unwrap();
        assert_eq!(report.iter().map(|r| r.layer.as_str()).collect::<Vec<_>>(), ["stem", "pw1", "pw2"]);
        assert_eq!(small.forward(&x()).size(), [4, 10]);
        let dw1 = small.named().into_iter().find(|(n, _)| n == "dw1.weight").unwrap().1;
        assert_eq!(dw1.size(), [8, 1, 3, 3]);
        // A ResNet with 1x1 shortcuts: each stage's residual stream (stem or shortcut,
        // and every block's second conv) is one group, pruned together with its batch
        // norms; the simulated form computes the same function.
        let io = IoShape { channels: 3, height: 16, width: 16, classes: 10 };
        let c = ModelConfig::Resnet(slimbench_core::config::ResnetConfig {
            depth: 14,
            width: 8,
            shortcut: slimbench_core::config::Shortcut::Conv,
        });
        let m = Model::build("r", &c, io, Device::Cpu, Some(5)).unwrap();
        let (small, report) = prune(&m, 0.5, PruneNorm::L2).unwrap();
        assert!(report.iter().any(|r| r.layer == "stem+s1b0_conv2+s1b1_conv2"), "{report:?}");
        assert!(
            small.param_count() < m.param_count() * 2 / 5 + 1000,
            "{} vs {}",
            small.param_count(),
            m.param_count()
        );
        let xs = Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu));
        let full = expand(&small, &c, &m.graph, &report).unwrap();
        let d = (small.forward(&xs) - full.forward(&xs)).abs().max().double_value(&[]);
        assert!(d < 1e-4, "{d}");
        // MobileNetV2: the expansion's channels go with the depthwise conv and its norms.
        let c =
            ModelConfig::MobileNetV2(slimbench_core::config::MobileNetV2Config { width: 0.25, dropout: 0.0 });
        let m = Model::build("mb", &c, io, Device::Cpu, Some(6)).unwrap();
        let (small, report) = prune(&m, 0.5, PruneNorm::L1).unwrap();
        assert!(report.iter().any(|r| r.layer == "b2_0_expand"), "{report:?}");
        assert_eq!(small.forward(&xs).size(), [2, 10]);
        assert!(small.param_count() < m.param_count());
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
