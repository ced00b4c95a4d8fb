//! # slimbench-graph
//!
//! Every model slimbench trains, compresses and measures is one [`Graph`]: a directed
//! acyclic graph of typed [`Node`]s ([`Op`]: convolutions with stride, padding,
//! dilation and groups, batch norm, linear layers, activations, pools, flatten and
//! reshape, residual adds, concats, dropout) over one image input `C x H x W`, ending
//! in a vector of class logits. This crate has no libtorch in it: it describes graphs,
//! checks them and infers their shapes; `slimbench-models` runs them.
//!
//! * [`ir`]: the node kinds and the graph, each node kind's parameters (names and
//!   shapes) and output shape in one place ([`Op::params`], [`Op::infer`]).
//! * [`Graph::shapes`] infers every node's output shape; a mismatch is a
//!   [`GraphError`] naming the node and both shapes.
//! * [`presets`]: model families built as graphs (`seed-cnn`, `mlp`, `cnn`, `dsconv`,
//!   `lenet5`, `resnet`, `mobilenet-v1`, `mobilenet-v2`), one file each.
//! * [`layers`]: a model written as a YAML list of layers with named skip inputs.
//! * [`channels`]: which channels are tied together (structured pruning's dependency
//!   groups).
//! * [`Builder`]: how presets and layer lists add nodes.

mod builder;
pub mod channels;
pub mod ir;
pub mod layers;
pub mod presets;

pub use builder::Builder;
pub use ir::{Activation, Graph, GraphError, INPUT, Node, Op, PoolKind, Shape};
