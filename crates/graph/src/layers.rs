//! `kind: layers`: a model written in the pipeline YAML as a list of layers.
//!
//! ```yaml
//! layers:
//!   - { conv: 16, kernel: 3, padding: 1, bn: true, act: relu, id: stem }
//!   - { conv: 16, kernel: 3, padding: 1, bn: true, act: relu }
//!   - { add: stem }                # the previous layer + `stem` (a residual connection)
//!   - { pool: max, kernel: 2 }
//!   - { conv: 8, kernel: 1, input: stem, id: side }   # a branch reading `stem`
//!   - { flatten: true }
//!   - { linear: 10 }
//! ```
//!
//! Each layer names one main operation (`conv`, `linear`, `pool`, `flatten`,
//! `reshape`, `add`, `concat`, `dropout`, `bn`, `act`) and reads the layer before it,
//! or `input:` (a layer id or `input`, the image). A conv or linear layer may carry
//! `bn: true` and `act:`; it becomes up to three nodes (`<id>`, `<id>_bn`,
//! `<id>_<act>`) and its id names the last of them. Errors name the layer's position
//! ([`LayerError::layer`]) so the pipeline can point at its line.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Builder;
use crate::ir::{Activation, Graph, GraphError, INPUT, Op, PoolKind};
use crate::presets::Preset;

/// `kind: layers`: the model as a list of layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayersConfig {
    /// The layers, input to output; the last must give one score per class.
    pub layers: Vec<Layer>,
}

/// A size given once for both dimensions (`3`) or as `[h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Pair {
    /// The same for height and width.
    One(i64),
    /// `[height, width]`.
    Two([i64; 2]),
}

impl Pair {
    fn get(self) -> [i64; 2] {
        match self {
            Pair::One(v) => [v, v],
            Pair::Two(v) => v,
        }
    }
}

/// One id or a list of ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Ids {
    /// One id.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Ids {
    fn list(&self) -> Vec<String> {
        match self {
            Ids::One(s) => vec![s.clone()],
            Ids::Many(v) => v.clone(),
        }
    }
}

/// Pooling of a `pool:` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolLayer {
    /// Max pooling over `kernel`.
    Max,
    /// Average pooling over `kernel`.
    Avg,
    /// Average over the whole plane, to 1x1.
    Global,
}

/// One layer of a `layers` model; exactly one of the main keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// A name other layers use in `input:`, `add:` or `concat:` (letters, digits, `_`, `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What it reads, when not the layer before it: a layer id or `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Convolution with this many output channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<i64>,
    /// Fully connected layer with this many outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<i64>,
    /// Pooling: `max`, `avg` (over `kernel`) or `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolLayer>,
    /// `true`: flatten to a vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten: Option<bool>,
    /// Reshape to this shape (batch left out; one -1 allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reshape: Option<Vec<i64>>,
    /// Add this layer's input and the named layer(s) (a residual connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Ids>,
    /// Concatenate this layer's input and the named layer(s) along the channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<Ids>,
    /// Dropout with this probability while training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// Kernel of a conv or pool (default 3 for conv, 2 for pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Pair>,
    /// Stride of a conv (default 1) or pool (default: the kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Pair>,
    /// Zero padding of a conv or pool (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<Pair>,
    /// Dilation of a conv (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dilation: Option<Pair>,
    /// Channel groups of a conv (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<i64>,
    /// `true`: a depthwise conv (groups = input channels = output channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depthwise: Option<bool>,
    /// Whether a conv or linear adds a bias (default: yes, unless `bn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<bool>,
    /// Batch norm after a conv or linear, or alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn: Option<bool>,
    /// Activation after a conv or linear (and its bn), or alone: relu, relu6, gelu,
    /// silu, hardswish, sigmoid, tanh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Activation>,
}

/// A layer that cannot be built, by its position in the list.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("layer {layer}{}: {msg}", id.as_ref().map(|i| format!(" (`{i}`)")).unwrap_or_default())]
pub struct LayerError {
    /// Position in `layers:`, from 0.
    pub layer: usize,
    /// Its id, when it has one.
    pub id: Option<String>,
    /// What is wrong.
    pub msg: String,
}

impl LayersConfig {
    /// The graph, checked for `classes` outputs; errors name the layer.
    pub fn build(&self, input: [i64; 3], classes: i64) -> Result<Graph, LayerError> {
        if self.layers.is_empty() {
            return Err(LayerError {
                layer: 0,
                id: None,
                msg: "a layers model needs at least one layer".into(),
            });
        }
        let mut b = Builder::new(input);
        // Layer id -> the node that is its output; node id -> its layer.
        let mut alias: HashMap<String, String> = HashMap::new();
        let mut layer_of: HashMap<String, usize> = HashMap::new();
        for (i, l) in self.layers.iter().enumerate() {
            let err = |msg: String| LayerError { layer: i, id: l.id.clone(), msg };
            let resolve = |name: &str| -> Result<String, LayerError> {
                if name == INPUT {
                    return Ok(INPUT.into());
                }
                alias.get(name).cloned().ok_or_else(|| {
                    let mut known: Vec<&str> = alias.keys().map(String::as_str).collect();
                    known.sort();
                    err(format!(
                        "`{name}` is not the id of an earlier layer (earlier ids: {})",
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ))
                })
            };
            if let Some(id) = &l.id
                && (alias.contains_key(id) || id == INPUT)
            {
                return Err(err(format!("the id `{id}` is already taken")));
            }
            if let Some(from) = &l.input {
                let node = resolve(from)?;
                b.from(&node);
            }
            let first = b.graph().nodes.len();
            self.layer(&mut b, l, &resolve).map_err(err)?;
            let out = b.last().to_string();
            for n in &b.graph().nodes[first..] {
                layer_of.insert(n.id.clone(), i);
            }
            if let Some(id) = &l.id {
                alias.insert(id.clone(), out);
            }
        }
        let graph = b.finish();
        graph.check(classes).map_err(|e| {
            let layer = e.node().and_then(|n| layer_of.get(n)).copied().unwrap_or(self.layers.len() - 1);
            let msg = match &e {
                GraphError::Shape { kind, inputs, msg, .. } => format!("{kind} reads {inputs}: {msg}"),
                other => other.to_string(),
            };
            LayerError { layer, id: self.layers[layer].id.clone(), msg }
        })?;
        Ok(graph)
    }

    fn layer(
        &self,
        b: &mut Builder,
        l: &Layer,
        resolve: &dyn Fn(&str) -> Result<String, LayerError>,
    ) -> Result<(), String> {
        let mains = [
            ("conv", l.conv.is_some()),
            ("linear", l.linear.is_some()),
            ("pool", l.pool.is_some()),
            ("flatten", l.flatten.is_some()),
            ("reshape", l.reshape.is_some()),
            ("add", l.add.is_some()),
            ("concat", l.concat.is_some()),
            ("dropout", l.dropout.is_some()),
        ];
        let given: Vec<&str> = mains.iter().filter(|m| m.1).map(|m| m.0).collect();
        let names = "conv, linear, pool, flatten, reshape, add, concat, dropout, bn or act";
        let main = match given.as_slice() {
            [one] => *one,
            [] if l.bn == Some(true) => "bn",
            [] if l.act.is_some() => "act",
            [] => return Err(format!("give one of {names}")),
            many => return Err(format!("give one of {names}, not {}", many.join(" and "))),
        };
        let geometry = l.kernel.is_some() || l.stride.is_some() || l.padding.is_some();
        let conv_only = l.dilation.is_some() || l.groups.is_some() || l.depthwise.is_some();
        if conv_only && main != "conv" {
            return Err("dilation, groups and depthwise are for conv layers".into());
        }
        if geometry && !matches!(main, "conv" | "pool") {
            return Err("kernel, stride and padding are for conv and pool layers".into());
        }
        if (l.bias.is_some() || (l.bn.is_some() && main != "bn") || (l.act.is_some() && main != "act"))
            && !matches!(main, "conv" | "linear")
        {
            return Err("bias, bn and act go with conv and linear layers (or alone)".into());
        }
        let id_or = |b: &mut Builder, prefix: &'static str| l.id.clone().unwrap_or_else(|| b.fresh(prefix));
        let bn = l.bn == Some(true);
        match main {
            "conv" | "linear" => {
                let id = id_or(b, if main == "conv" { "conv" } else { "linear" });
                let bias = l.bias.unwrap_or(!bn);
                let op = if let Some(out) = l.conv {
                    let groups = if l.depthwise == Some(true) {
                        if l.groups.is_some() {
                            return Err("give groups or depthwise, not both".into());
                        }
                        out
                    } else {
                        l.groups.unwrap_or(1)
                    };
                    Op::Conv2d {
                        out,
                        kernel: l.kernel.map_or([3, 3], Pair::get),
                        stride: l.stride.map_or([1, 1], Pair::get),
                        padding: l.padding.map_or([0, 0], Pair::get),
                        dilation: l.dilation.map_or([1, 1], Pair::get),
                        groups,
                        bias,
                    }
                } else {
                    Op::Linear { out: l.linear.unwrap_or_default(), bias }
                };
                b.then(&id, op);
                if bn {
                    b.then(&format!("{id}_bn"), Op::batch_norm());
                }
                if let Some(f) = l.act {
                    b.then(&format!("{id}_{}", f.name()), Op::Act { f });
                }
            }
            "pool" => {
                let id = id_or(b, "pool");
                let op = match l.pool.expect("main key") {
                    PoolLayer::Global => {
                        if geometry {
                            return Err("global pooling takes no kernel, stride or padding".into());
                        }
                        Op::GlobalAvgPool
                    }
                    kind => {
                        let kernel = l.kernel.map_or([2, 2], Pair::get);
                        Op::Pool {
                            kind: if kind == PoolLayer::Max { PoolKind::Max } else { PoolKind::Avg },
                            kernel,
                            stride: l.stride.map_or(kernel, Pair::get),
                            padding: l.padding.map_or([0, 0], Pair::get),
                        }
                    }
                };
                b.then(&id, op);
            }
            "flatten" => {
                if l.flatten != Some(true) {
                    return Err("`flatten: false` is not a layer; leave it out".into());
                }
                let id = id_or(b, "flatten");
                b.then(&id, Op::Flatten);
            }
            "reshape" => {
                let id = id_or(b, "reshape");
                b.then(&id, Op::Reshape { shape: l.reshape.clone().expect("main key") });
            }
            "add" | "concat" => {
                let others =
                    if main == "add" { l.add.as_ref() } else { l.concat.as_ref() }.expect("main key").list();
                if others.is_empty() {
                    return Err(format!("{main} needs at least one layer id to join"));
                }
                let others =
                    others.iter().map(|o| resolve(o).map_err(|e| e.msg)).collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&str> = others.iter().map(String::as_str).collect();
                let id = id_or(b, if main == "add" { "add" } else { "concat" });
                b.join(&id, if main == "add" { Op::Add } else { Op::Concat }, &refs);
            }
            "dropout" => {
                let id = id_or(b, "dropout");
                b.then(&id, Op::Dropout { p: l.dropout.expect("main key") });
            }
            "bn" => {
                let id = id_or(b, "bn");
                b.then(&id, Op::batch_norm());
            }
            _ => {
                let f = l.act.expect("main key");
                let id = id_or(b, f.name());
                b.then(&id, Op::Act { f });
            }
        }
        Ok(())
    }
}

impl Preset for LayersConfig {
    fn graph(&self, input: [i64; 3], classes: i64) -> Result<Graph, String> {
        self.build(input, classes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> LayersConfig {
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(yaml).unwrap()).unwrap()
    }

    const TINY: &str = r#"{"layers": [
        {"conv": 16, "kernel": 3, "padding": 1, "bn": true, "act": "relu", "id": "stem"},
        {"conv": 16, "kernel": 3, "padding": 1, "bn": true, "act": "relu"},
        {"add": "stem"},
        {"pool": "max", "kernel": 2},
        {"flatten": true},
        {"linear": 10}
    ]}"#;

    #[test]
    fn the_issue_example_builds_a_residual_graph() {
        let g = parse(TINY).build([3, 32, 32], 10).unwrap();
        let add = g.nodes.iter().find(|n| n.op == Op::Add).unwrap();
        assert_eq!(add.inputs, ["conv0_relu", "stem_relu"]);
        assert_eq!(g.node("stem").unwrap().op.params(&[3, 32, 32]).len(), 1, "no bias before bn");
        assert_eq!(g.shapes().unwrap().last().unwrap(), &vec![10]);
    }

    #[test]
    fn shape_errors_name_the_layer_and_both_shapes() {
        let mut cfg = parse(TINY);
        cfg.layers[1].stride = Some(Pair::One(2));
        let e = cfg.build([3, 32, 32], 10).unwrap_err();
        assert_eq!(e.layer, 2);
        assert_eq!(
            e.to_string(),
            "layer 2: add reads 16x16x16 from `conv0_relu` and 16x32x32 from `stem_relu`: cannot add 16x16x16 and 16x32x32: the shapes differ"
        );
        let e = parse(TINY).build([3, 32, 32], 5).unwrap_err();
        assert_eq!(e.layer, 5);
        assert!(e.msg.contains("the data has 5 classes"), "{e}");
    }

    #[test]
    fn bad_layers_are_explained() {
        let e = |json: &str| parse(json).build([1, 8, 8], 10).unwrap_err().to_string();
        assert_eq!(
            e(r#"{"layers": [{"conv": 4, "linear": 3}]}"#),
            "layer 0: give one of conv, linear, pool, flatten, reshape, add, concat, dropout, bn or act, not conv and linear"
        );
        assert!(e(r#"{"layers": [{"add": "nope"}]}"#).contains("`nope` is not the id of an earlier layer"));
        assert!(e(r#"{"layers": [{"flatten": true, "act": "relu"}]}"#).contains("go with conv and linear"));
        assert!(e(r#"{"layers": []}"#).contains("at least one layer"));
    }

    #[test]
    fn branches_read_named_inputs_and_concat() {
        let g = parse(
            r#"{"layers": [
            {"conv": 4, "padding": 1, "id": "a"},
            {"conv": 6, "kernel": 1, "input": "input", "id": "b"},
            {"concat": "a"},
            {"pool": "global"}, {"flatten": true}, {"linear": 3}
        ]}"#,
        )
        .build([1, 8, 8], 3)
        .unwrap();
        assert_eq!(g.shapes().unwrap()[2], vec![10, 8, 8]);
    }
}
