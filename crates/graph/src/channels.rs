//! Which channels of a graph must be kept or removed together, the analysis structured
//! pruning needs (and `validate` uses to say when it cannot apply).
//!
//! A convolution (not grouped) or a linear layer starts a set of channels; batch
//! norms, activations, pooling, flatten and depthwise convolutions carry it on; a
//! residual add merges the sets of its inputs (every producer of a residual stream
//! then keeps or loses the same channels); the layers that read a set take its
//! channels as their input columns. A set that the image, the output, a concat, a
//! reshape, a grouped convolution or an option-A shortcut's zero channels touch is
//! fixed.

use crate::ir::{Graph, INPUT, Op as NodeOp};

/// Channels that are kept or removed together (a dependency group, as NNI's
/// ModelSpeedup finds them): the layers that produce them (rows of their weights), the
/// per-channel parameters that go with them (batch norms, depthwise convolutions), and
/// the layers that read them (columns of their weights). Residual adds tie their
/// inputs' channels into one such set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelGroup {
    /// Ungrouped convolutions and linear layers whose output rows are these channels.
    pub producers: Vec<String>,
    /// Batch norms over these channels.
    pub norms: Vec<String>,
    /// Depthwise convolutions over these channels (one filter per channel).
    pub depthwise: Vec<String>,
    /// Layers that read them (weight dim 1; a flatten gives each channel a block).
    pub consumers: Vec<String>,
    /// Whether they cannot be removed (the image, the output, a concat, a reshape, a
    /// grouped convolution or an option-A shortcut's zero channels touch them).
    pub fixed: bool,
}

/// The groups of a graph whose channels can be removed, input to output (empty when
/// every layer's channels are tied to the image, the output or a fixed shape).
pub fn dependency_groups(graph: &Graph) -> Vec<ChannelGroup> {
    let mut sets: Vec<ChannelGroup> = vec![ChannelGroup { fixed: true, ..Default::default() }];
    let mut parent: Vec<usize> = vec![0];
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let index = graph.index();
    let in_shapes = graph.input_shapes().unwrap_or_default();
    let mut of_node: Vec<usize> = Vec::with_capacity(graph.nodes.len());
    let fresh = |sets: &mut Vec<ChannelGroup>, parent: &mut Vec<usize>, s: ChannelGroup| {
        sets.push(s);
        parent.push(parent.len());
        parent.len() - 1
    };
    for n in &graph.nodes {
        let ins: Vec<usize> = n
            .inputs
            .iter()
            .map(|i| if i == INPUT { 0 } else { of_node[index[i.as_str()]] })
            .map(|s| find(&mut parent, s))
            .collect();
        let first = ins.first().copied().unwrap_or(0);
        let out = match &n.op {
            NodeOp::Conv2d { out, groups, .. } => {
                let cin = in_shapes.get(of_node.len()).and_then(|s| s.first().copied());
                if *groups == 1 {
                    sets[first].consumers.push(n.id.clone());
                    fresh(
                        &mut sets,
                        &mut parent,
                        ChannelGroup { producers: vec![n.id.clone()], ..Default::default() },
                    )
                } else if Some(*groups) == cin && *out == *groups {
                    sets[first].depthwise.push(n.id.clone());
                    first
                } else {
                    sets[first].fixed = true;
                    fresh(&mut sets, &mut parent, ChannelGroup { fixed: true, ..Default::default() })
                }
            }
            NodeOp::Linear { .. } => {
                sets[first].consumers.push(n.id.clone());
                fresh(
                    &mut sets,
                    &mut parent,
                    ChannelGroup { producers: vec![n.id.clone()], ..Default::default() },
                )
            }
            NodeOp::BatchNorm { .. } => {
                sets[first].norms.push(n.id.clone());
                first
            }
            NodeOp::Act { .. }
            | NodeOp::Pool { .. }
            | NodeOp::GlobalAvgPool
            | NodeOp::Dropout { .. }
            | NodeOp::Subsample { .. }
            | NodeOp::Flatten => first,
            NodeOp::Add => {
                let root = first;
                for &other in &ins[1..] {
                    let o = find(&mut parent, other);
                    if o != root {
                        let moved = std::mem::take(&mut sets[o]);
                        let r = &mut sets[root];
                        r.producers.extend(moved.producers);
                        r.norms.extend(moved.norms);
                        r.depthwise.extend(moved.depthwise);
                        r.consumers.extend(moved.consumers);
                        r.fixed |= moved.fixed;
                        parent[o] = root;
                    }
                }
                root
            }
            NodeOp::Concat | NodeOp::Reshape { .. } | NodeOp::PadChannels { .. } => {
                for &i in &ins {
                    sets[i].fixed = true;
                }
                fresh(&mut sets, &mut parent, ChannelGroup { fixed: true, ..Default::default() })
            }
        };
        of_node.push(out);
    }
    if let Some(&last) = of_node.last() {
        let r = find(&mut parent, last);
        sets[r].fixed = true;
    }
    let roots: Vec<usize> = (0..sets.len()).filter(|&i| find(&mut parent, i) == i).collect();
    // Input to output: each list in node order, the groups by their first producer.
    let pos = |id: &String| index[id.as_str()];
    let mut out: Vec<ChannelGroup> =
        roots.into_iter().map(|i| sets[i].clone()).filter(|s| !s.fixed && !s.producers.is_empty()).collect();
    for s in &mut out {
        for list in [&mut s.producers, &mut s.norms, &mut s.depthwise, &mut s.consumers] {
            list.sort_by_key(pos);
        }
    }
    out.sort_by_key(|s| pos(&s.producers[0]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::{MobileNetV2Config, Preset, ResnetConfig, SeedCnnConfig, Shortcut};

    fn producers(g: &Graph) -> Vec<String> {
        dependency_groups(g).into_iter().map(|s| s.producers.join("+")).collect()
    }

    #[test]
    fn residual_streams_are_one_group_unless_option_a_pads_them() {
        let a = ResnetConfig { depth: 8, width: 4, shortcut: Shortcut::A }.graph([3, 16, 16], 10).unwrap();
        assert_eq!(producers(&a), ["s1b0_conv1", "s2b0_conv1", "s3b0_conv1"]);
        let b = ResnetConfig { depth: 8, width: 4, shortcut: Shortcut::Conv }.graph([3, 16, 16], 10).unwrap();
        assert!(producers(&b).contains(&"stem+s1b0_conv2".to_string()), "{:?}", producers(&b));
        let seed = SeedCnnConfig::default().graph([1, 28, 28], 10).unwrap();
        let g = &dependency_groups(&seed)[0];
        assert_eq!(
            (g.producers.clone(), g.consumers.clone()),
            (vec!["conv".to_string()], vec!["fc".to_string()])
        );
    }

    #[test]
    fn depthwise_convs_carry_their_input_channels() {
        let g = MobileNetV2Config { width: 0.25, dropout: 0.0 }.graph([3, 32, 32], 10).unwrap();
        let groups = dependency_groups(&g);
        let expand = groups.iter().find(|s| s.producers == ["b2_0_expand"]).unwrap();
        assert_eq!(expand.depthwise, ["b2_0_dw"]);
        assert_eq!(expand.norms, ["b2_0_expand_bn", "b2_0_dw_bn"]);
        assert_eq!(expand.consumers, ["b2_0_project"]);
    }
}
