//! [`Builder`]: adds nodes to a graph one after the other, the way presets and layer
//! lists describe networks.

use std::collections::HashMap;

use crate::ir::{Graph, INPUT, Node, Op};

/// Builds a [`Graph`] node by node; each node reads the last one unless told otherwise.
#[derive(Debug, Clone)]
pub struct Builder {
    graph: Graph,
    last: String,
    counters: HashMap<&'static str, usize>,
}

impl Builder {
    /// An empty graph on a `[C, H, W]` input.
    pub fn new(input: [i64; 3]) -> Self {
        Builder {
            graph: Graph { input, nodes: Vec::new() },
            last: INPUT.to_string(),
            counters: HashMap::new(),
        }
    }

    /// The id of the last node added ([`INPUT`] before any).
    pub fn last(&self) -> &str {
        &self.last
    }

    /// Continue from `id` (an earlier node or [`INPUT`]): the next node reads it.
    pub fn from(&mut self, id: &str) {
        self.last = id.to_string();
    }

    /// A fresh id `<prefix><n>` (`relu0`, `relu1`, ...) that no node has.
    pub fn fresh(&mut self, prefix: &'static str) -> String {
        loop {
            let n = self.counters.entry(prefix).or_insert(0);
            let id = format!("{prefix}{n}");
            *n += 1;
            if self.graph.nodes.iter().all(|node| node.id != id) {
                return id;
            }
        }
    }

    /// Add `op` as `id`, reading `inputs`; returns the id.
    pub fn node(&mut self, id: &str, op: Op, inputs: Vec<String>) -> String {
        self.graph.nodes.push(Node { id: id.to_string(), op, inputs });
        self.last = id.to_string();
        self.last.clone()
    }

    /// Add `op` as `id` reading the last node.
    pub fn then(&mut self, id: &str, op: Op) -> String {
        let input = self.last.clone();
        self.node(id, op, vec![input])
    }

    /// Add `op` under a fresh id named after its kind (`relu0`, `flatten0`), reading
    /// the last node.
    pub fn auto(&mut self, op: Op) -> String {
        let prefix = match &op {
            Op::Act { f } => f.name(),
            Op::Pool { .. } => "pool",
            Op::GlobalAvgPool => "gap",
            Op::BatchNorm { .. } => "bn",
            other => other.kind(),
        };
        let id = self.fresh(prefix);
        self.then(&id, op)
    }

    /// Add a joining `op` (add, concat) as `id`, reading the last node and `others`.
    pub fn join(&mut self, id: &str, op: Op, others: &[&str]) -> String {
        let mut inputs = vec![self.last.clone()];
        inputs.extend(others.iter().map(|s| s.to_string()));
        self.node(id, op, inputs)
    }

    /// The graph so far.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The finished graph.
    pub fn finish(self) -> Graph {
        self.graph
    }
}
