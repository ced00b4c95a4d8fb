//! [`GraphNet`]: a [`Graph`] built on tch. Each node with parameters becomes a layer
//! ([`Conv`], [`Dense`], [`Norm`]) under `root / <node id>`, created in node order so a
//! seeded build draws the same initial weights as the families did; the forward pass
//! walks the nodes ([`crate::ops::run`]).

use slimbench_graph::{Graph, GraphError, Op as NodeOp};
use tch::nn;

use crate::layers::{Conv, Dense, Geometry, Norm};
use crate::ops::{Op, Step};

/// A node on tch: its layer, or the plain operation.
#[derive(Debug)]
enum Built {
    Conv(Conv),
    Linear(Dense),
    Norm(Norm),
    Plain(NodeOp),
}

/// The runnable form of a graph.
#[derive(Debug)]
pub struct GraphNet {
    ids: Vec<String>,
    inputs: Vec<Vec<Option<usize>>>,
    nodes: Vec<Built>,
}

impl GraphNet {
    /// Build every node of `graph` under `p`; the graph is checked first.
    pub fn new(p: &nn::Path, graph: &Graph) -> Result<Self, GraphError> {
        let inputs = graph.wiring()?;
        let in_shapes = graph.input_shapes()?;
        let nodes = graph
            .nodes
            .iter()
            .zip(&in_shapes)
            .map(|(n, shape)| {
                let cin = shape.first().copied().unwrap_or(0);
                match &n.op {
                    NodeOp::Conv2d { out, kernel, stride, padding, dilation, groups, bias } => {
                        let g = Geometry {
                            stride: *stride,
                            padding: *padding,
                            dilation: *dilation,
                            groups: *groups,
                        };
                        Built::Conv(Conv::new(p / n.id.as_str(), cin, *out, *kernel, g, *bias))
                    }
                    NodeOp::Linear { out, bias } => {
                        Built::Linear(Dense::new(p / n.id.as_str(), cin, *out, *bias))
                    }
                    NodeOp::BatchNorm { eps, momentum } => {
                        Built::Norm(Norm::new(p / n.id.as_str(), cin, *eps, *momentum))
                    }
                    other => Built::Plain(other.clone()),
                }
            })
            .collect();
        Ok(GraphNet { ids: graph.nodes.iter().map(|n| n.id.clone()).collect(), inputs, nodes })
    }

    /// The forward pass as steps, input to output.
    pub fn ops(&self) -> Vec<Step<'_>> {
        self.nodes
            .iter()
            .zip(&self.ids)
            .zip(&self.inputs)
            .map(|((b, id), inputs)| Step {
                id,
                inputs,
                op: match b {
                    Built::Conv(c) => Op::Conv(c),
                    Built::Linear(d) => Op::Linear(d),
                    Built::Norm(n) => Op::BatchNorm(n),
                    Built::Plain(op) => Op::Plain(op),
                },
            })
            .collect()
    }

    /// Its linear layers, input to output.
    pub fn dense_layers(&self) -> Vec<&Dense> {
        self.nodes.iter().filter_map(|b| if let Built::Linear(d) = b { Some(d) } else { None }).collect()
    }

    /// Its convolutions, input to output.
    pub fn convs(&self) -> Vec<&Conv> {
        self.nodes.iter().filter_map(|b| if let Built::Conv(c) = b { Some(c) } else { None }).collect()
    }

    /// Its batch norms, input to output.
    pub fn norms(&self) -> Vec<&Norm> {
        self.nodes.iter().filter_map(|b| if let Built::Norm(n) = b { Some(n) } else { None }).collect()
    }
}

impl nn::ModuleT for GraphNet {
    fn forward_t(&self, xs: &tch::Tensor, train: bool) -> tch::Tensor {
        crate::ops::run(&self.ops(), xs, train)
    }
}
