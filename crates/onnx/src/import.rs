//! The conversion: ONNX nodes, in their (topological) order, to IR nodes.
//!
//! Every ONNX tensor name maps to a [`Value`]: a constant (initializers, `Constant`
//! nodes and everything computed from constants only, folded here), or a tensor the
//! model computes at run time, held by an IR node (or the image input) whose shape is
//! known as soon as the node is added. Patterns are recognised without look-ahead: an
//! `Add` of a constant to a bias-less conv or linear layer becomes its bias; a `Mul`
//! of `x` and the output of a `Sigmoid` of `x` becomes SiLU (the `Sigmoid` node, now
//! unused, is dropped at the end with anything else the output does not read); GELU's
//! erf form is carried as a partial [`Value::Gelu`] from its `Div` to its last `Mul`;
//! a `Slice` of the rows alone waits as [`Value::Rows`] for the `Slice` of the columns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path};

use onnx_protobuf::{AttributeProto, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use slimbench_graph::ir::show;
use slimbench_graph::{Activation, Graph, INPUT, Node, Op, PoolKind};

use crate::tensor::{BATCH, Data, Tensor, dt, dtype_name, is_float};
use crate::{Imported, MIN_OPSET, OnnxError, SUPPORTED_OPS};

/// A tensor computed at run time: the IR node that holds it and its shape (batch left
/// out).
#[derive(Debug, Clone)]
struct Run {
    id: String,
    shape: Vec<i64>,
}

/// What an ONNX tensor name stands for.
#[derive(Debug, Clone)]
enum Value {
    /// Known at import.
    Const(Tensor),
    /// Computed at run time.
    Run(Run),
    /// Every `step`-th row of a run-time tensor (a `Slice` on H alone): only a `Slice`
    /// of the columns with the same step may read it, which makes it a subsample.
    Rows { src: Run, step: i64 },
    /// Part of GELU's erf form `x * 0.5 * (1 + Erf(x / sqrt 2))` (what exporters before
    /// opset 20 write): 1 = `x / sqrt 2`, 2 = `Erf(..)`, 3 = `1 + Erf(..)`, 4 = `x * (..)`,
    /// 5 = `0.5 * (..)`. The last `Mul` makes it one GELU node.
    Gelu { x: Run, stage: u8 },
}

/// Ops whose outputs are folded when every input is a constant.
const FOLDABLE: &[&str] = &[
    "Add",
    "Cast",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Identity",
    "Mul",
    "Reshape",
    "Shape",
    "Slice",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
];

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// An f32 attribute as the decimal the exporter most likely wrote (1e-5, not
/// 9.999999747378752e-6).
fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// `/layer1/layer1.0/conv1/Conv` -> `layer1_0_conv1_Conv`: PyTorch's scope names
/// repeat each parent (`layer1/layer1.0`), so a segment the next one starts with is
/// dropped; characters outside `[A-Za-z0-9_-]` become `_`.
fn sanitise(name: &str) -> String {
    let segs: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
    let kept: Vec<&str> = segs
        .iter()
        .enumerate()
        .filter(|&(i, s)| segs.get(i + 1).is_none_or(|next| !next.starts_with(&format!("{s}."))))
        .map(|(_, s)| *s)
        .collect();
    let mut out = String::new();
    for c in kept.join("/").chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Dimensions as `Nx3x32x32` (symbolic ones as `N`).
fn show_dims(dims: &[Option<i64>]) -> String {
    dims.iter().map(|d| d.map_or("N".to_string(), |v| v.to_string())).collect::<Vec<_>>().join("x")
}

/// A value info's dimensions (`None` where symbolic), if it has a tensor shape.
fn dims_of(v: &ValueInfoProto) -> Option<(i32, Option<Vec<Option<i64>>>)> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as D;
    let tt = v.type_.as_ref()?.tensor_type();
    let shape = tt.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match d.value {
                Some(D::DimValue(x)) if x > 0 => Some(x),
                _ => None,
            })
            .collect()
    });
    Some((tt.elem_type, shape))
}

struct Importer<'a> {
    origin: &'a str,
    values: HashMap<String, Value>,
    nodes: Vec<Node>,
    shapes: HashMap<String, Vec<i64>>,
    weights: HashMap<String, (Vec<i64>, Vec<f32>)>,
    ids: HashSet<String>,
    fallback: HashMap<String, usize>,
    /// How many nodes (and graph outputs) read each ONNX tensor.
    uses: HashMap<String, usize>,
    /// How many ONNX names each IR node's output goes by.
    aliases: HashMap<String, usize>,
    /// Shapes the file declares (value_info, outputs), batch included.
    declared: HashMap<String, Vec<Option<i64>>>,
    outputs: HashSet<String>,
    notes: Vec<String>,
    folded: BTreeMap<String, usize>,
    converted: BTreeMap<&'static str, usize>,
    kept_bn: usize,
    /// The input's batch size where the file fixes it (exports without a dynamic batch
    /// fold `x.view(x.size(0), -1)` to the shape `[1, -1]`).
    fixed_batch: Option<i64>,
}

impl<'a> Importer<'a> {
    fn err(&self, n: &NodeProto, label: &str, msg: impl Into<String>) -> OnnxError {
        OnnxError::Node {
            origin: self.origin.into(),
            node: label.into(),
            op: n.op_type.clone(),
            msg: msg.into(),
        }
    }

    fn model_err(&self, msg: impl Into<String>) -> OnnxError {
        OnnxError::Model { origin: self.origin.into(), msg: msg.into() }
    }

    /// A fresh IR id for a node: its sanitised name, or `<OpType><n>`.
    fn id_for(&mut self, n: &NodeProto) -> String {
        let mut base = sanitise(&n.name);
        if base.is_empty() || base == INPUT {
            let k = self.fallback.entry(n.op_type.clone()).or_insert(0);
            *k += 1;
            base = format!("{}{k}", n.op_type);
        }
        let mut id = base.clone();
        let mut k = 1;
        while self.ids.contains(&id) {
            k += 1;
            id = format!("{base}_{k}");
        }
        self.ids.insert(id.clone());
        id
    }

    /// Adds an IR node reading `inputs`; infers its shape at once.
    fn push(&mut self, n: &NodeProto, label: &str, op: Op, inputs: Vec<String>) -> Result<Run, OnnxError> {
        let ins: Vec<&[i64]> = inputs.iter().map(|i| self.shapes[i].as_slice()).collect();
        let shape = op.infer(&ins).map_err(|msg| {
            let read = ins.iter().map(|s| show(s)).collect::<Vec<_>>().join(" and ");
            self.err(n, label, format!("reads {read}: {msg}"))
        })?;
        let id = self.id_for(n);
        self.shapes.insert(id.clone(), shape.clone());
        self.nodes.push(Node { id: id.clone(), op, inputs });
        Ok(Run { id, shape })
    }

    /// Names output `k` of `n`; checks a run-time tensor against its declared shape.
    fn set(&mut self, n: &NodeProto, label: &str, k: usize, v: Value) -> Result<(), OnnxError> {
        let Some(name) = n.output.get(k).filter(|s| !s.is_empty()) else { return Ok(()) };
        if let Value::Run(r) = &v {
            *self.aliases.entry(r.id.clone()).or_insert(0) += 1;
            if let Some(decl) = self.declared.get(name) {
                let fits = decl.len() == r.shape.len() + 1
                    && decl[1..].iter().zip(&r.shape).all(|(d, &s)| d.is_none_or(|d| d == s));
                if !fits {
                    return Err(self.err(
                        n,
                        label,
                        format!(
                            "output `{name}` is declared {} but slimbench infers Nx{}",
                            show_dims(decl),
                            show(&r.shape)
                        ),
                    ));
                }
            }
        }
        self.values.insert(name.clone(), v);
        Ok(())
    }

    fn run_in(&self, n: &NodeProto, label: &str, ins: &[Option<Value>], k: usize) -> Result<Run, OnnxError> {
        let name = n.input.get(k).map_or("", String::as_str);
        match ins.get(k) {
            Some(Some(Value::Run(r))) => Ok(r.clone()),
            Some(Some(Value::Rows { step, .. })) => Err(self.err(
                n,
                label,
                format!(
                    "reads `{name}`, a tensor whose rows alone are subsampled (step {step}): slimbench \
                     subsamples rows and columns together (a Slice on H and W with the same step)"
                ),
            )),
            Some(Some(Value::Const(_))) => Err(self.err(
                n,
                label,
                format!("reads the constant `{name}` where slimbench expects a computed tensor"),
            )),
            Some(Some(Value::Gelu { .. })) => Err(self.err(
                n,
                label,
                format!(
                    "reads `{name}`, a part of GELU's erf form x * 0.5 * (1 + Erf(x / sqrt 2)): slimbench \
                     imports that pattern whole only"
                ),
            )),
            _ => Err(self.err(n, label, format!("input {k} is missing"))),
        }
    }

    fn const_in<'v>(
        &self,
        n: &NodeProto,
        label: &str,
        ins: &'v [Option<Value>],
        k: usize,
        what: &str,
    ) -> Result<Option<&'v Tensor>, OnnxError> {
        let name = n.input.get(k).map_or("", String::as_str);
        match ins.get(k) {
            Some(Some(Value::Const(t))) => Ok(Some(t)),
            Some(Some(_)) => Err(self.err(
                n,
                label,
                format!(
                    "its {what} `{name}` is computed at run time: slimbench needs it stored in the file \
                     (an initializer or a Constant)"
                ),
            )),
            _ => Ok(None),
        }
    }

    fn need_const<'v>(
        &self,
        n: &NodeProto,
        label: &str,
        ins: &'v [Option<Value>],
        k: usize,
        what: &str,
    ) -> Result<&'v Tensor, OnnxError> {
        self.const_in(n, label, ins, k, what)?
            .ok_or_else(|| self.err(n, label, format!("its {what} (input {k}) is missing")))
    }

    /// A weight's values as f32; integer weights (quantised models) are refused.
    fn floats(&mut self, n: &NodeProto, label: &str, k: usize, t: &Tensor) -> Result<Vec<f32>, OnnxError> {
        match &t.data {
            Data::F(v) => {
                if t.dtype != dt::FLOAT {
                    *self.converted.entry(dtype_name(t.dtype)).or_insert(0) += 1;
                }
                Ok(v.clone())
            }
            Data::I(_) => Err(self.err(
                n,
                label,
                format!(
                    "weight `{}` is {}: slimbench imports float weights (FLOAT; FLOAT16, BFLOAT16 and \
                     DOUBLE are converted to f32)",
                    n.input.get(k).map_or("", String::as_str),
                    dtype_name(t.dtype)
                ),
            )),
        }
    }

    /// The symmetric `[h, w]` padding of a conv or pool, from `pads` or `auto_pad`.
    fn padding(
        &self,
        n: &NodeProto,
        label: &str,
        hw: &[i64],
        k: [i64; 2],
        s: [i64; 2],
        d: [i64; 2],
    ) -> Result<[i64; 2], OnnxError> {
        let auto = attr_s(n, "auto_pad").unwrap_or_default();
        match auto.as_str() {
            "" | "NOTSET" => {
                let p = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                if p.len() != 4 {
                    return Err(self.err(
                        n,
                        label,
                        format!("pads {p:?}: slimbench reads 2-D pads (4 values)"),
                    ));
                }
                if p[0] != p[2] || p[1] != p[3] {
                    return Err(self.err(
                        n,
                        label,
                        format!(
                            "attribute pads = {p:?} (top, left, bottom, right) is asymmetric: slimbench pads \
                             both sides equally (hint: TensorFlow's 'same' padding with stride 2 is \
                             asymmetric; export with symmetric padding)"
                        ),
                    ));
                }
                Ok([p[0], p[1]])
            }
            "VALID" => Ok([0, 0]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut out = [0; 2];
                for a in 0..2 {
                    let o = (hw[a] + s[a] - 1) / s[a];
                    let total = ((o - 1) * s[a] + (k[a] - 1) * d[a] + 1 - hw[a]).max(0);
                    if total % 2 != 0 {
                        return Err(self.err(
                            n,
                            label,
                            format!(
                                "attribute auto_pad = {auto} needs {total} {} of padding on a {} input, \
                                 which cannot be split evenly: slimbench pads both sides equally \
                                 (hint: export with explicit symmetric pads)",
                                if a == 0 { "rows" } else { "columns" },
                                show(hw)
                            ),
                        ));
                    }
                    out[a] = total / 2;
                }
                Ok(out)
            }
            other => Err(self.err(n, label, format!("attribute auto_pad = {other} is unknown"))),
        }
    }

    fn pair(&self, n: &NodeProto, label: &str, name: &str, default: i64) -> Result<[i64; 2], OnnxError> {
        match attr_ints(n, name) {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0], v[1]]),
            Some(v) if v.len() == 2 => {
                Err(self.err(n, label, format!("attribute {name} = {v:?}: must be positive")))
            }
            Some(v) => {
                Err(self.err(n, label, format!("attribute {name} = {v:?}: slimbench reads 2-D (2 values)")))
            }
        }
    }

    /// Folds a node whose inputs are all constants.
    fn fold(&self, n: &NodeProto, c: &[Option<&Tensor>]) -> Result<Tensor, String> {
        let ints = |k: usize| -> Result<Option<Vec<i64>>, String> {
            c.get(k).copied().flatten().map(Tensor::to_ints).transpose()
        };
        let x = || c.first().copied().flatten().ok_or_else(|| "input 0 is missing".to_string());
        match n.op_type.as_str() {
            "Constant" => {
                let a = n.attribute.first().ok_or("a Constant without a value")?;
                match a.name.as_str() {
                    "value" => Tensor::from_proto(a.t.as_ref().ok_or("empty value")?),
                    "value_float" => Ok(Tensor::floats(vec![], vec![a.f])),
                    "value_floats" => Ok(Tensor::floats(vec![a.floats.len() as i64], a.floats.clone())),
                    "value_int" => Ok(Tensor::ints(vec![], vec![a.i])),
                    "value_ints" => Ok(Tensor::ints(vec![a.ints.len() as i64], a.ints.clone())),
                    other => Err(format!("a Constant's {other} is not supported")),
                }
            }
            "ConstantOfShape" => {
                let dims = x()?.to_ints()?;
                let v = match attr(n, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => Tensor::from_proto(t)?,
                    None => Tensor::floats(vec![1], vec![0.0]),
                };
                let len =
                    dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d.max(0))).filter(|&l| l <= 1 << 28);
                let len = len.ok_or("its shape is too large for a constant")? as usize;
                let data = match v.data {
                    Data::F(f) => Data::F(vec![*f.first().ok_or("empty value")?; len]),
                    Data::I(i) => Data::I(vec![*i.first().ok_or("empty value")?; len]),
                };
                Ok(Tensor { dims, data, dtype: v.dtype })
            }
            "Cast" => x()?.cast(attr_i(n, "to", i64::from(dt::FLOAT)) as i32),
            "Identity" | "Dropout" => Ok(x()?.clone()),
            "Shape" => {
                let d = &x()?.dims;
                let r = d.len() as i64;
                let norm = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (s, e) = (norm(attr_i(n, "start", 0)), norm(attr_i(n, "end", r)));
                let v = d[s..e.max(s)].to_vec();
                Ok(Tensor::ints(vec![v.len() as i64], v))
            }
            "Gather" => {
                x()?.gather(c.get(1).copied().flatten().ok_or("indices missing")?, attr_i(n, "axis", 0))
            }
            "Unsqueeze" => {
                let t = x()?;
                let axes = ints(1)?.or_else(|| attr_ints(n, "axes")).ok_or("axes missing")?;
                let r = (t.dims.len() + axes.len()) as i64;
                let mut axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + r } else { a }).collect();
                axes.sort_unstable();
                let mut dims = t.dims.clone();
                for a in axes {
                    if a < 0 || a as usize > dims.len() {
                        return Err(format!("unsqueeze axis {a} out of range"));
                    }
                    dims.insert(a as usize, 1);
                }
                Ok(Tensor { dims, ..t.clone() })
            }
            "Squeeze" => {
                let t = x()?;
                let r = t.dims.len() as i64;
                let axes: Vec<i64> = match ints(1)?.or_else(|| attr_ints(n, "axes")) {
                    Some(a) => a.iter().map(|&a| if a < 0 { a + r } else { a }).collect(),
                    None => (0..r).filter(|&i| t.dims[i as usize] == 1).collect(),
                };
                let dims =
                    t.dims.iter().enumerate().filter(|(i, _)| !axes.contains(&(*i as i64))).map(|(_, &d)| d);
                Ok(Tensor { dims: dims.collect(), ..t.clone() })
            }
            "Concat" => {
                let parts: Vec<&Tensor> = c.iter().copied().flatten().collect();
                Tensor::concat(&parts, attr_i(n, "axis", 0))
            }
            "Reshape" => x()?.reshape(&ints(1)?.ok_or("shape missing")?, attr_i(n, "allowzero", 0) != 0),
            "Flatten" => {
                let t = x()?;
                let a = attr_i(n, "axis", 1);
                let a = if a < 0 { a + t.dims.len() as i64 } else { a } as usize;
                let outer: i64 = t.dims[..a.min(t.dims.len())].iter().product();
                t.reshape(&[outer, -1], false)
            }
            "Slice" => {
                let t = x()?;
                let starts = ints(1)?.ok_or("starts missing")?;
                let ends = ints(2)?.ok_or("ends missing")?;
                let axes = ints(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = ints(4)?.unwrap_or_else(|| vec![1; starts.len()]);
                t.slice(&starts, &ends, &axes, &steps)
            }
            "Transpose" => x()?.transpose(&attr_ints(n, "perm").unwrap_or_default()),
            op @ ("Add" | "Sub" | "Mul" | "Div") => {
                Tensor::binary(op, x()?, c.get(1).copied().flatten().ok_or("input 1 missing")?)
            }
            op => Err(format!("{op} is not folded")),
        }
    }

    fn node(&mut self, i: usize, n: &NodeProto) -> Result<(), OnnxError> {
        let label = if n.name.is_empty() { format!("{}#{i}", n.op_type) } else { n.name.clone() };
        let label = label.as_str();
        let op = n.op_type.as_str();
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        if !default_domain || !SUPPORTED_OPS.contains(&op) {
            return Err(OnnxError::UnsupportedOp {
                origin: self.origin.into(),
                node: label.into(),
                op: if default_domain { op.into() } else { format!("{}.{op}", n.domain) },
                supported: SUPPORTED_OPS.join(", "),
            });
        }
        let mut ins = Vec::with_capacity(n.input.len());
        for name in &n.input {
            if name.is_empty() {
                ins.push(None);
                continue;
            }
            let v = self.values.get(name).cloned().ok_or_else(|| {
                self.err(
                    n,
                    label,
                    format!(
                        "reads `{name}`, which is neither an initializer, the graph input nor an earlier \
                         node's output (hint: the weights may be missing from the file)"
                    ),
                )
            })?;
            ins.push(Some(v));
        }

        let arity = match op {
            "Constant" => 0,
            "Add" | "Sub" | "Mul" | "Div" => 2,
            _ => 1,
        };
        if ins.len() < arity {
            return Err(self.err(n, label, format!("it has {} input(s), {op} needs {arity}", ins.len())));
        }

        // Constants only: fold.
        let consts: Vec<Option<&Tensor>> = ins
            .iter()
            .map(|v| match v {
                Some(Value::Const(t)) => Some(t),
                _ => None,
            })
            .collect();
        let all_const = ins.iter().all(|v| matches!(v, None | Some(Value::Const(_))));
        if all_const && FOLDABLE.contains(&op) {
            let t = self.fold(n, &consts).map_err(|e| self.err(n, label, format!("cannot fold it: {e}")))?;
            *self.folded.entry(op.to_string()).or_insert(0) += 1;
            return self.set(n, label, 0, Value::Const(t));
        }
        if op == "Shape" {
            let x = self.run_in(n, label, &ins, 0)?;
            let mut d = vec![BATCH];
            d.extend(&x.shape);
            let r = d.len() as i64;
            let norm = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (norm(attr_i(n, "start", 0)), norm(attr_i(n, "end", r)));
            let d = d[s..e.max(s)].to_vec();
            let t = Tensor::ints(vec![d.len() as i64], d);
            *self.folded.entry(op.to_string()).or_insert(0) += 1;
            return self.set(n, label, 0, Value::Const(t));
        }

        if ins.iter().any(|v| matches!(v, Some(Value::Gelu { .. }))) {
            let v = self.gelu(n, label, &ins)?;
            return self.set(n, label, 0, v);
        }
        let act = |f| Op::Act { f };
        let near = |v: &Option<Value>, c: f64| matches!(v, Some(Value::Const(t)) if t.scalar().is_some_and(|s| (s - c).abs() < 1e-4 * c.abs().max(1.0)));
        let out: Value = match op {
            // The start of GELU's erf form: x / sqrt 2 (or x * (1 / sqrt 2)).
            "Div" | "Mul"
                if matches!(ins[0], Some(Value::Run(_)))
                    && near(
                        &ins[1],
                        if op == "Div" { std::f64::consts::SQRT_2 } else { std::f64::consts::FRAC_1_SQRT_2 },
                    ) =>
            {
                Value::Gelu { x: self.run_in(n, label, &ins, 0)?, stage: 1 }
            }
            "Erf" => {
                return Err(self.err(
                    n,
                    label,
                    "slimbench imports Erf only within GELU's erf form x * 0.5 * (1 + Erf(x / sqrt 2))",
                ));
            }
            "ReduceMean" => {
                let x = self.run_in(n, label, &ins, 0)?;
                let axes = match self.const_in(n, label, &ins, 1, "axes")? {
                    Some(t) => Some(t.to_ints().map_err(|e| self.err(n, label, e))?),
                    None => attr_ints(n, "axes"),
                };
                let rank = x.shape.len() as i64 + 1;
                let mut axes: Vec<i64> =
                    axes.unwrap_or_default().iter().map(|&a| if a < 0 { a + rank } else { a }).collect();
                axes.sort_unstable();
                if rank != 4 || axes != [2, 3] {
                    return Err(self.err(
                        n,
                        label,
                        format!("averages Nx{} over axes {axes:?}: slimbench imports the mean over H and W (axes 2, 3) of an image only", show(&x.shape)),
                    ));
                }
                let r = self.push(n, label, Op::GlobalAvgPool, vec![x.id])?;
                if attr_i(n, "keepdims", 1) == 0 { self.flatten(n, label, r)? } else { Value::Run(r) }
            }
            "Conv" => {
                let x = self.run_in(n, label, &ins, 0)?;
                let w = self.need_const(n, label, &ins, 1, "weight")?;
                let b = self.const_in(n, label, &ins, 2, "bias")?;
                if w.dims.len() != 4 || x.shape.len() != 3 {
                    return Err(self.err(
                        n,
                        label,
                        format!(
                            "weight {:?} on a {} input: slimbench imports 2-D convolutions only",
                            w.dims,
                            show(&x.shape)
                        ),
                    ));
                }
                let kernel = [w.dims[2], w.dims[3]];
                if let Some(ks) = attr_ints(n, "kernel_shape")
                    && ks != kernel
                {
                    return Err(self.err(
                        n,
                        label,
                        format!("attribute kernel_shape = {ks:?} does not match the weight {:?}", w.dims),
                    ));
                }
                let groups = attr_i(n, "group", 1);
                let (cin, out) = (x.shape[0], w.dims[0]);
                if groups < 1 || cin % groups != 0 || out % groups != 0 || w.dims[1] * groups != cin {
                    return Err(self.err(
                        n,
                        label,
                        format!(
                            "attribute group = {groups} does not fit {cin} input channels and weight {:?} \
                             (slimbench needs in and out channels divisible by the groups, weight \
                             [out, in/groups, kh, kw])",
                            w.dims
                        ),
                    ));
                }
                let stride = self.pair(n, label, "strides", 1)?;
                let dilation = self.pair(n, label, "dilations", 1)?;
                let padding = self.padding(n, label, &x.shape[1..], kernel, stride, dilation)?;
                let wv = self.floats(n, label, 1, w)?;
                let bv = match b {
                    Some(b) if b.len() as i64 == out => Some(self.floats(n, label, 2, b)?),
                    Some(b) => {
                        return Err(self.err(
                            n,
                            label,
                            format!("bias {:?} for {out} output channels", b.dims),
                        ));
                    }
                    None => None,
                };
                let wdims = w.dims.clone();
                let op = Op::Conv2d { out, kernel, stride, padding, dilation, groups, bias: bv.is_some() };
                let r = self.push(n, label, op, vec![x.id])?;
                self.weights.insert(format!("{}.weight", r.id), (wdims, wv));
                if let Some(bv) = bv {
                    self.weights.insert(format!("{}.bias", r.id), (vec![out], bv));
                }
                Value::Run(r)
            }
            "BatchNormalization" => {
                let x = self.run_in(n, label, &ins, 0)?;
                if attr_i(n, "training_mode", 0) != 0
                    || n.output.iter().skip(1).any(|o| !o.is_empty() && self.uses.contains_key(o))
                {
                    return Err(self.err(
                        n,
                        label,
                        "attribute training_mode = 1 (batch statistics): slimbench imports inference graphs \
                         (hint: export the model in eval mode)",
                    ));
                }
                let c = x.shape.first().copied().unwrap_or(0);
                let mut params = Vec::new();
                for (k, name) in [(1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var")] {
                    let t = self.need_const(n, label, &ins, k, name)?;
                    if t.len() as i64 != c {
                        return Err(self.err(
                            n,
                            label,
                            format!("its {name} {:?} does not fit {c} channels", t.dims),
                        ));
                    }
                    params.push((name, self.floats(n, label, k, t)?));
                }
                let eps = decimal(attr_f(n, "epsilon", 1e-5));
                // ONNX's momentum weighs the running statistic, PyTorch's the batch.
                let momentum = ((1.0 - decimal(attr_f(n, "momentum", 0.9))) * 1e9).round() / 1e9;
                let r = self.push(n, label, Op::BatchNorm { eps, momentum }, vec![x.id])?;
                for (name, v) in params {
                    self.weights.insert(format!("{}.{name}", r.id), (vec![c], v));
                }
                self.kept_bn += 1;
                Value::Run(r)
            }
            "Gemm" | "MatMul" => {
                let x = self.run_in(n, label, &ins, 0)?;
                let w = match &ins.get(1) {
                    Some(Some(Value::Const(t))) => t,
                    _ => {
                        return Err(self.err(
                            n,
                            label,
                            "multiplies two computed tensors: slimbench imports a matrix product with a \
                             weight stored in the file (a dense layer)",
                        ));
                    }
                };
                let (trans_b, c) = if op == "Gemm" {
                    for (a, d) in [("alpha", 1.0), ("beta", 1.0)] {
                        let v = attr_f(n, a, d);
                        if v != 1.0 {
                            return Err(self.err(
                                n,
                                label,
                                format!(
                                    "attribute {a} = {v}: slimbench's linear layer computes x·Wᵀ + b \
                                     (hint: fold the scale into the weights before export)"
                                ),
                            ));
                        }
                    }
                    if attr_i(n, "transA", 0) != 0 {
                        return Err(self.err(
                            n,
                            label,
                            "attribute transA = 1: slimbench's linear layer reads its input untransposed",
                        ));
                    }
                    (attr_i(n, "transB", 0) != 0, self.const_in(n, label, &ins, 2, "bias C")?)
                } else {
                    (false, None)
                };
                if w.dims.len() != 2 || x.shape.len() != 1 {
                    return Err(self.err(
                        n,
                        label,
                        format!(
                            "multiplies an Nx{} input by a {:?} weight: slimbench imports dense layers \
                             (a flat input, a 2-D weight; hint: flatten first)",
                            show(&x.shape),
                            w.dims
                        ),
                    ));
                }
                // PyTorch's layout is [out, in]; MatMul and Gemm with transB = 0 store [in, out].
                let w = if trans_b {
                    w.clone()
                } else {
                    w.transpose(&[1, 0]).map_err(|e| self.err(n, label, e))?
                };
                let (out, fin) = (w.dims[0], w.dims[1]);
                if fin != x.shape[0] {
                    return Err(self.err(
                        n,
                        label,
                        format!("a weight for {fin} inputs reads {} features", x.shape[0]),
                    ));
                }
                let wv = self.floats(n, label, 1, &w)?;
                let bv = match c {
                    Some(c) if c.len() as i64 == out || c.len() == 1 => {
                        let v = self.floats(n, label, 2, c)?;
                        Some(if v.len() == 1 { vec![v[0]; out as usize] } else { v })
                    }
                    Some(c) => {
                        return Err(self.err(n, label, format!("bias C {:?} for {out} outputs", c.dims)));
                    }
                    None => None,
                };
                let r = self.push(n, label, Op::Linear { out, bias: bv.is_some() }, vec![x.id])?;
                self.weights.insert(format!("{}.weight", r.id), (vec![out, fin], wv));
                if let Some(bv) = bv {
                    self.weights.insert(format!("{}.bias", r.id), (vec![out], bv));
                }
                Value::Run(r)
            }
            "Add" => match (&ins[0], &ins[1]) {
                (Some(Value::Run(a)), Some(Value::Run(b))) => {
                    Value::Run(self.push(n, label, Op::Add, vec![a.id.clone(), b.id.clone()])?)
                }
                (Some(Value::Run(r)), Some(Value::Const(t)))
                | (Some(Value::Const(t)), Some(Value::Run(r))) => {
                    let tensor =
                        if matches!(ins[0], Some(Value::Run(_))) { &n.input[0] } else { &n.input[1] };
                    self.add_bias(n, label, tensor, r, t)?
                }
                _ => {
                    self.run_in(n, label, &ins, 0)?;
                    self.run_in(n, label, &ins, 1)?;
                    unreachable!("one of the inputs is not a run-time tensor")
                }
            },
            "Mul" => {
                let (a, b) = (self.run_in(n, label, &ins, 0), self.run_in(n, label, &ins, 1));
                let silu = |x: &Run, s: &Run| {
                    self.nodes.iter().any(|nd| {
                        nd.id == s.id
                            && nd.op == (Op::Act { f: Activation::Sigmoid })
                            && nd.inputs == [x.id.clone()]
                    })
                };
                let x = match (&a, &b) {
                    (Ok(a), Ok(b)) if silu(a, b) => a.clone(),
                    (Ok(a), Ok(b)) if silu(b, a) => b.clone(),
                    _ => {
                        return Err(self.err(
                            n,
                            label,
                            "slimbench imports Mul only as x * Sigmoid(x) (SiLU) or on constants",
                        ));
                    }
                };
                self.notes.push(format!("Mul `{label}` of x and Sigmoid(x) read as SiLU"));
                Value::Run(self.push(n, label, act(Activation::Silu), vec![x.id])?)
            }
            "Sub" | "Div" => {
                return Err(self.err(
                    n,
                    label,
                    format!("slimbench folds {op} on constants only, and this one reads a computed tensor"),
                ));
            }
            "Relu" | "Sigmoid" | "Tanh" | "HardSwish" | "Gelu" => {
                let x = self.run_in(n, label, &ins, 0)?;
                let f = match op {
                    "Relu" => Activation::Relu,
                    "Sigmoid" => Activation::Sigmoid,
                    "Tanh" => Activation::Tanh,
                    "HardSwish" => Activation::Hardswish,
                    _ => {
                        let a = attr_s(n, "approximate").unwrap_or_else(|| "none".into());
                        if a != "none" {
                            return Err(self.err(
                                n,
                                label,
                                format!(
                                    "attribute approximate = {a}: slimbench's GELU is the exact (erf) form"
                                ),
                            ));
                        }
                        Activation::Gelu
                    }
                };
                Value::Run(self.push(n, label, act(f), vec![x.id])?)
            }
            "Clip" => {
                let x = self.run_in(n, label, &ins, 0)?;
                let bound = |k: usize, what: &str| -> Result<Option<f64>, OnnxError> {
                    match self.const_in(n, label, &ins, k, what)? {
                        None => Ok(None),
                        Some(t) => t
                            .scalar()
                            .map(Some)
                            .ok_or_else(|| self.err(n, label, format!("its {what} is not a single number"))),
                    }
                };
                let (lo, hi) = (bound(1, "min")?, bound(2, "max")?);
                let f = match (lo, hi) {
                    (Some(0.0), Some(6.0)) => Activation::Relu6,
                    (Some(0.0), None) => Activation::Relu,
                    _ => {
                        let s = |v: Option<f64>, d: &str| v.map_or(d.to_string(), |v| v.to_string());
                        return Err(self.err(
                            n,
                            label,
                            format!(
                                "clips to [{}, {}]: slimbench represents Clip(0, 6) (ReLU6) and Clip(0, inf) \
                                 (ReLU) only",
                                s(lo, "-inf"),
                                s(hi, "inf")
                            ),
                        ));
                    }
                };
                Value::Run(self.push(n, label, act(f), vec![x.id])?)
            }
            "MaxPool" | "AveragePool" => {
                let x = self.run_in(n, label, &ins, 0)?;
                if x.shape.len() != 3 {
                    return Err(self.err(
                        n,
                        label,
                        format!("pools an Nx{} tensor: 2-D pools only", show(&x.shape)),
                    ));
                }
                let kernel = match attr_ints(n, "kernel_shape") {
                    Some(k) if k.len() == 2 => [k[0], k[1]],
                    k => {
                        return Err(self.err(
                            n,
                            label,
                            format!("attribute kernel_shape = {k:?}: 2-D pools only"),
                        ));
                    }
                };
                let stride = self.pair(n, label, "strides", 1)?;
                if self.pair(n, label, "dilations", 1)? != [1, 1] {
                    return Err(self.err(n, label, "attribute dilations: slimbench's pools are not dilated"));
                }
                let padding = self.padding(n, label, &x.shape[1..], kernel, stride, [1, 1])?;
                if attr_i(n, "ceil_mode", 0) != 0 {
                    for a in 0..2 {
                        let (h, k, s, p) = (x.shape[1 + a], kernel[a], stride[a], padding[a]);
                        let floor = (h + 2 * p - k) / s + 1;
                        let mut ceil = (h + 2 * p - k + s - 1) / s + 1;
                        // PyTorch's rule: the last window must start inside the input or its left padding.
                        if (ceil - 1) * s >= h + p {
                            ceil -= 1;
                        }
                        if ceil != floor {
                            return Err(self.err(
                                n,
                                label,
                                format!(
                                    "attribute ceil_mode = 1 gives {ceil} {} here where slimbench's pools \
                                     (floor) give {floor} (hint: export with ceil_mode=False)",
                                    if a == 0 { "rows" } else { "columns" }
                                ),
                            ));
                        }
                    }
                    self.notes
                        .push(format!("ceil_mode = 1 of `{label}` changes no shape here: read as floor"));
                }
                let kind = if op == "MaxPool" {
                    if n.output.get(1).is_some_and(|o| !o.is_empty() && self.uses.contains_key(o)) {
                        return Err(self.err(
                            n,
                            label,
                            "its indices output is used: slimbench's max pool has none",
                        ));
                    }
                    PoolKind::Max
                } else {
                    if attr_i(n, "count_include_pad", 0) == 0 && padding != [0, 0] {
                        return Err(self.err(
                            n,
                            label,
                            format!(
                                "attribute count_include_pad = 0 with padding {padding:?}: slimbench's average \
                                 pool counts the zero padding, as PyTorch's default (hint: export an AvgPool2d \
                                 with count_include_pad=True, or without padding)"
                            ),
                        ));
                    }
                    PoolKind::Avg
                };
                Value::Run(self.push(n, label, Op::Pool { kind, kernel, stride, padding }, vec![x.id])?)
            }
            "GlobalAveragePool" => {
                let x = self.run_in(n, label, &ins, 0)?;
                Value::Run(self.push(n, label, Op::GlobalAvgPool, vec![x.id])?)
            }
            "Flatten" => {
                let x = self.run_in(n, label, &ins, 0)?;
                let rank = x.shape.len() as i64 + 1;
                let a = attr_i(n, "axis", 1);
                if (if a < 0 { a + rank } else { a }) != 1 {
                    return Err(self.err(
                        n,
                        label,
                        format!("attribute axis = {a}: slimbench flattens everything but the batch (axis 1)"),
                    ));
                }
                self.flatten(n, label, x)?
            }
            "Reshape" => {
                let x = self.run_in(n, label, &ins, 0)?;
                let shape = self
                    .need_const(n, label, &ins, 1, "shape")?
                    .to_ints()
                    .map_err(|e| self.err(n, label, e))?;
                self.reshape(n, label, x, &shape)?
            }
            "Concat" => {
                let rank = match &ins[0] {
                    Some(Value::Run(r)) => r.shape.len() as i64 + 1,
                    _ => 0,
                };
                let a = attr_i(n, "axis", 0);
                if (if a < 0 { a + rank } else { a }) != 1 {
                    return Err(self.err(
                        n,
                        label,
                        format!("attribute axis = {a}: slimbench concatenates along the channels (axis 1)"),
                    ));
                }
                let mut ids = Vec::new();
                for k in 0..ins.len() {
                    ids.push(self.run_in(n, label, &ins, k)?.id);
                }
                Value::Run(self.push(n, label, Op::Concat, ids)?)
            }
            "Dropout" | "Identity" | "Cast" | "Softmax" => {
                let x = self.run_in(n, label, &ins, 0)?;
                match op {
                    "Dropout" => {
                        if n.output.get(1).is_some_and(|o| !o.is_empty() && self.uses.contains_key(o)) {
                            return Err(self.err(
                                n,
                                label,
                                "its mask output is used: slimbench's dropout has none",
                            ));
                        }
                        self.notes.push(format!("Dropout `{label}` skipped (identity at inference)"));
                    }
                    "Cast" => {
                        let to = attr_i(n, "to", 0) as i32;
                        if !is_float(to) {
                            return Err(self.err(
                                n,
                                label,
                                format!(
                                    "casts a computed tensor to {}: slimbench computes in f32 only",
                                    dtype_name(to)
                                ),
                            ));
                        }
                        self.notes.push(format!(
                            "Cast `{label}` to {} skipped (slimbench computes in f32)",
                            dtype_name(to)
                        ));
                    }
                    "Softmax" => {
                        if !n.output.first().is_some_and(|o| self.outputs.contains(o)) {
                            return Err(self.err(
                                n,
                                label,
                                "slimbench imports a Softmax only at the output (where it is dropped)",
                            ));
                        }
                        self.notes.push(format!(
                            "final Softmax `{label}` dropped: the imported model outputs logits (same argmax)"
                        ));
                    }
                    _ => *self.folded.entry("Identity (skipped)".into()).or_insert(0) += 1,
                }
                Value::Run(x)
            }
            "Pad" => {
                let x = self.run_in(n, label, &ins, 0)?;
                let pads = self
                    .need_const(n, label, &ins, 1, "pads")?
                    .to_ints()
                    .map_err(|e| self.err(n, label, e))?;
                let mode = attr_s(n, "mode").unwrap_or_else(|| "constant".into());
                let value =
                    self.const_in(n, label, &ins, 2, "constant_value")?.map_or(Some(0.0), Tensor::scalar);
                if mode != "constant" {
                    return Err(self.err(
                        n,
                        label,
                        format!("attribute mode = {mode}: slimbench pads with zeros only"),
                    ));
                }
                if value != Some(0.0) || ins.get(3).is_some_and(Option::is_some) {
                    return Err(self.err(
                        n,
                        label,
                        "its constant_value is not 0 or it has axes: slimbench pads the channels with zeros only",
                    ));
                }
                let r = x.shape.len() + 1;
                let channels_only = pads.len() == 2 * r && (0..2 * r).all(|i| i % r == 1 || pads[i] == 0);
                if !channels_only || r != 4 {
                    return Err(self.err(
                        n,
                        label,
                        format!(
                            "pads = {pads:?} (starts then ends of each axis): slimbench pads the channels of \
                             an image only (ResNet's option-A shortcut)"
                        ),
                    ));
                }
                let (before, after) = (pads[1], pads[r + 1]);
                if before == 0 && after == 0 {
                    Value::Run(x)
                } else {
                    Value::Run(self.push(n, label, Op::PadChannels { before, after }, vec![x.id])?)
                }
            }
            "Slice" => self.slice(n, label, &ins)?,
            _ => {
                return Err(self.err(
                    n,
                    label,
                    "all its inputs are constants, but slimbench does not evaluate this op at import",
                ));
            }
        };
        self.set(n, label, 0, out)
    }

    /// One step of GELU's erf form (see [`Value::Gelu`]).
    fn gelu(&mut self, n: &NodeProto, label: &str, ins: &[Option<Value>]) -> Result<Value, OnnxError> {
        let near = |v: Option<&Option<Value>>, c: f64| matches!(v, Some(Some(Value::Const(t))) if t.scalar().is_some_and(|s| (s - c).abs() < 1e-4));
        let (k, x, stage) = match ins {
            [Some(Value::Gelu { x, stage }), ..] => (0, x.clone(), *stage),
            [_, Some(Value::Gelu { x, stage }), ..] => (1, x.clone(), *stage),
            _ => unreachable!("called with a GELU part"),
        };
        let other = ins.get(1 - k);
        let is_x = matches!(other, Some(Some(Value::Run(r))) if r.id == x.id);
        let next = match (n.op_type.as_str(), stage) {
            ("Erf", 1) if ins.len() == 1 => 2,
            ("Add", 2) if near(other, 1.0) => 3,
            ("Mul", 3) if is_x => 4,
            ("Mul", 3) if near(other, 0.5) => 5,
            ("Mul", 4) if near(other, 0.5) => 6,
            ("Mul", 5) if is_x => 6,
            _ => {
                return Err(self.err(
                    n,
                    label,
                    format!(
                        "reads `{}`, a part of GELU's erf form x * 0.5 * (1 + Erf(x / sqrt 2)), in a way \
                         slimbench does not recognise",
                        n.input[k]
                    ),
                ));
            }
        };
        if next < 6 {
            return Ok(Value::Gelu { x, stage: next });
        }
        self.notes.push(format!("GELU's erf form ending at `{label}` read as one GELU"));
        Ok(Value::Run(self.push(n, label, Op::Act { f: Activation::Gelu }, vec![x.id])?))
    }

    /// `Add(x, c)` of a constant: the bias of the conv or linear layer that computes `x`,
    /// when nothing else reads `x`.
    fn add_bias(
        &mut self,
        n: &NodeProto,
        label: &str,
        tensor: &str,
        r: &Run,
        t: &Tensor,
    ) -> Result<Value, OnnxError> {
        if t.to_f64().is_ok_and(|v| v.iter().all(|&v| v == 0.0)) {
            self.notes.push(format!("Add `{label}` of zeros skipped"));
            return Ok(Value::Run(r.clone()));
        }
        let alone = self.uses.get(tensor) == Some(&1) && self.aliases.get(&r.id) == Some(&1);
        let pos = self.nodes.iter().position(|nd| nd.id == r.id);
        let fit = |c: i64, rank: usize| {
            t.len() as i64 == c && {
                let d: Vec<i64> = t.dims.iter().copied().skip_while(|&d| d == 1).collect();
                (d.is_empty() || d[0] == c) && d.iter().skip(1).all(|&d| d == 1) && t.dims.len() <= rank + 1
            }
        };
        if let (true, Some(p)) = (alone, pos) {
            let absorbed = match &mut self.nodes[p].op {
                Op::Conv2d { out, bias, .. } if !*bias && fit(*out, 3) => {
                    *bias = true;
                    Some(*out)
                }
                Op::Linear { out, bias } if !*bias && fit(*out, 1) => {
                    *bias = true;
                    Some(*out)
                }
                _ => None,
            };
            if let Some(c) = absorbed {
                let v = self.floats(n, label, 1, t)?;
                self.weights.insert(format!("{}.bias", r.id), (vec![c], v));
                self.notes.push(format!("Add `{label}` of a constant folded into the bias of `{}`", r.id));
                return Ok(Value::Run(r.clone()));
            }
        }
        Err(self.err(
            n,
            label,
            format!(
                "adds a constant {:?} to `{tensor}`: slimbench folds a constant add only into the bias of \
                 the bias-less conv or linear layer that computes it (MatMul + Add)",
                t.dims
            ),
        ))
    }

    fn flatten(&mut self, n: &NodeProto, label: &str, x: Run) -> Result<Value, OnnxError> {
        Ok(Value::Run(if x.shape.len() == 1 { x } else { self.push(n, label, Op::Flatten, vec![x.id])? }))
    }

    /// `Reshape` of a computed tensor: the first entry must keep the batch.
    fn reshape(&mut self, n: &NodeProto, label: &str, x: Run, shape: &[i64]) -> Result<Value, OnnxError> {
        let allowzero = attr_i(n, "allowzero", 0) != 0;
        let rest = shape.get(1..).unwrap_or_default();
        let keeps_batch = match shape.first() {
            Some(&BATCH) => true,
            Some(0) => !allowzero,
            Some(-1) => !rest.contains(&-1),
            Some(&b) => Some(b) == self.fixed_batch,
            None => false,
        };
        let show_shape = || {
            let s: Vec<String> =
                shape.iter().map(|&d| if d == BATCH { "N".to_string() } else { d.to_string() }).collect();
            format!("[{}]", s.join(", "))
        };
        if !keeps_batch || rest.contains(&BATCH) {
            return Err(self.err(
                n,
                label,
                format!(
                    "reshapes Nx{} to {}, which moves the batch dimension: slimbench reshapes each \
                     sample (hint: reshape to (x.size(0), ...) or (-1, ...))",
                    show(&x.shape),
                    show_shape()
                ),
            ));
        }
        let rest: Vec<i64> = rest
            .iter()
            .enumerate()
            .map(|(k, &d)| if d == 0 && !allowzero { x.shape.get(k).copied().unwrap_or(0) } else { d })
            .collect();
        let total: i64 = x.shape.iter().product();
        if rest == [-1] || rest == [total] {
            return self.flatten(n, label, x);
        }
        if rest == x.shape {
            return Ok(Value::Run(x));
        }
        Ok(Value::Run(self.push(n, label, Op::Reshape { shape: rest }, vec![x.id])?))
    }

    /// `Slice` of a computed tensor: a subsample of H and W (both at once, or H then W).
    fn slice(&mut self, n: &NodeProto, label: &str, ins: &[Option<Value>]) -> Result<Value, OnnxError> {
        let get = |k: usize, what: &str| -> Result<Option<Vec<i64>>, OnnxError> {
            self.const_in(n, label, ins, k, what)?
                .map(|t| t.to_ints().map_err(|e| self.err(n, label, e)))
                .transpose()
        };
        let starts = get(1, "starts")?.unwrap_or_default();
        let ends = get(2, "ends")?.unwrap_or_default();
        let axes = get(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = get(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        let (src, rows) = match &ins[0] {
            Some(Value::Rows { src, step }) => (src.clone(), *step),
            _ => (self.run_in(n, label, ins, 0)?, 1),
        };
        let dims: Vec<i64> = std::iter::once(BATCH).chain(src.shape.iter().copied()).collect();
        let mut step = [1, 1];
        for (k, &a) in axes.iter().enumerate() {
            let a = if a < 0 { a + dims.len() as i64 } else { a } as usize;
            let s = steps.get(k).copied().unwrap_or(1);
            let full = starts.get(k) == Some(&0)
                && ends.get(k).is_some_and(|&e| a == 0 || e >= dims.get(a).copied().unwrap_or(i64::MAX));
            if dims.len() != 4 || !(2..4).contains(&a) || !full || s < 1 {
                return Err(self.err(
                    n,
                    label,
                    format!(
                        "slices axis {a} as {}:{}:{s}: slimbench slices only x[:, :, ::s, ::s] of an image \
                         (ResNet's option-A shortcut)",
                        starts.get(k).copied().unwrap_or(0),
                        ends.get(k).copied().unwrap_or(0)
                    ),
                ));
            }
            step[a - 2] = s;
        }
        if rows != 1 {
            if step != [1, rows] {
                return Err(self.err(
                    n,
                    label,
                    format!("slices with steps {step:?} a tensor of every {rows}th row: slimbench needs equal steps"),
                ));
            }
            step = [rows, rows];
        }
        Ok(match step {
            [1, 1] => Value::Run(src),
            [s, 1] => Value::Rows { src, step: s },
            [h, w] if h == w => Value::Run(self.push(n, label, Op::Subsample { stride: h }, vec![src.id])?),
            _ => {
                return Err(self.err(
                    n,
                    label,
                    format!("slices with steps {step:?} (H, W): slimbench subsamples both by the same step"),
                ));
            }
        })
    }
}

/// A tensor whose values are in an external data file (`location`, `offset`, `length`,
/// the location relative to the model's folder `base`), with them read into `raw_data`;
/// `None` for a tensor stored in the model. Each file is read once (`files`).
fn external(
    t: &TensorProto,
    base: Option<&Path>,
    files: &mut HashMap<String, Vec<u8>>,
) -> Result<Option<TensorProto>, String> {
    use onnx_protobuf::tensor_proto::DataLocation;
    if t.data_location.enum_value() != Ok(DataLocation::EXTERNAL) && t.external_data.is_empty() {
        return Ok(None);
    }
    let get = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.as_str());
    let location = get("location").ok_or("its external data has no location")?;
    let Some(base) = base else {
        return Err(format!(
            "its values are in the external file `{location}`, which slimbench reads only when it imports \
             the model from a path (hint: import the file, or save it with onnx.save(model, path, \
             save_as_external_data=False))"
        ));
    };
    let rel = Path::new(location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("its external data location `{location}` is outside the model's folder"));
    }
    if !files.contains_key(location) {
        let path = base.join(rel);
        let data = std::fs::read(&path)
            .map_err(|e| format!("cannot read its external data {}: {e}", path.display()))?;
        files.insert(location.to_string(), data);
    }
    let data = &files[location];
    let num = |k: &str| {
        get(k).map(|v| v.parse::<usize>().map_err(|_| format!("external data {k} `{v}` is not a number")))
    };
    let offset = num("offset").transpose()?.unwrap_or(0);
    let end = match num("length").transpose()? {
        Some(l) => offset.checked_add(l).ok_or("external data length overflows")?,
        None => data.len(),
    };
    let bytes = data.get(offset..end).ok_or_else(|| {
        format!(
            "its external data `{location}` [{offset}..{end}] is past the end of the file ({} bytes)",
            data.len()
        )
    })?;
    let mut t = t.clone();
    t.raw_data = bytes.to_vec();
    t.external_data.clear();
    t.data_location = DataLocation::DEFAULT.into();
    Ok(Some(t))
}

pub(crate) fn run(bytes: &[u8], origin: &str, base: Option<&Path>) -> Result<Imported, OnnxError> {
    let not = |why: String| OnnxError::NotOnnx { origin: origin.into(), why };
    if bytes.is_empty() {
        return Err(not("the file is empty".into()));
    }
    let model =
        ModelProto::parse_from_bytes(bytes).map_err(|e| not(format!("protobuf decode failed: {e}")))?;
    let Some(g) = model.graph.as_ref() else {
        return Err(not("it decodes, but holds no graph".into()));
    };
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .unwrap_or(0);
    if opset < MIN_OPSET {
        return Err(OnnxError::Opset { origin: origin.into(), opset });
    }
    let producer = format!("{} {}", model.producer_name, model.producer_version).trim().to_string();
    let mut imp = Importer {
        origin,
        values: HashMap::new(),
        nodes: Vec::new(),
        shapes: HashMap::new(),
        weights: HashMap::new(),
        ids: HashSet::new(),
        fallback: HashMap::new(),
        uses: HashMap::new(),
        aliases: HashMap::new(),
        declared: HashMap::new(),
        outputs: g.output.iter().map(|o| o.name.clone()).collect(),
        notes: Vec::new(),
        folded: BTreeMap::new(),
        converted: BTreeMap::new(),
        kept_bn: 0,
        fixed_batch: None,
    };

    // Initializers.
    let init: HashMap<&str, &TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut files = HashMap::new();
    for t in &g.initializer {
        let at = |e: String| imp.model_err(format!("initializer `{}`: {e}", t.name));
        let v = match external(t, base, &mut files).map_err(at)? {
            Some(t) => Tensor::from_proto(&t),
            None => Tensor::from_proto(t),
        };
        imp.values.insert(t.name.clone(), Value::Const(v.map_err(at)?));
    }
    if !files.is_empty() {
        let mut names: Vec<&str> = files.keys().map(String::as_str).collect();
        names.sort_unstable();
        imp.notes.push(format!("weights read from external data: {}", names.join(", ")));
    }

    // The image input.
    let inputs: Vec<&ValueInfoProto> =
        g.input.iter().filter(|i| !init.contains_key(i.name.as_str())).collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(imp.model_err("the graph has no input (every input is an initializer)")),
        many => {
            let names: Vec<String> = many.iter().map(|i| format!("`{}`", i.name)).collect();
            return Err(imp.model_err(format!(
                "the graph has {} inputs ({}) that are not initializers: slimbench imports models with one \
                 image input",
                many.len(),
                names.join(", ")
            )));
        }
    };
    let (elem, dims) = dims_of(input).unwrap_or((0, None));
    if !is_float(elem) {
        return Err(imp.model_err(format!(
            "input `{}` is of type {}: slimbench imports models whose input is a float image",
            input.name,
            dtype_name(elem)
        )));
    }
    let chw = match dims.as_deref() {
        Some([n, Some(c), Some(h), Some(w)]) => {
            imp.fixed_batch = *n;
            [*c, *h, *w]
        }
        Some(d) => {
            return Err(imp.model_err(format!(
                "input `{}` is {} (rank {}): slimbench imports image models whose input is N x C x H x W, with \
                 C, H and W fixed (the batch may be symbolic)",
                input.name,
                show_dims(d),
                d.len()
            )));
        }
        None => {
            return Err(imp.model_err(format!(
                "input `{}` has no shape: slimbench needs N x C x H x W (hint: export with an example input)",
                input.name
            )));
        }
    };
    imp.shapes.insert(INPUT.to_string(), chw.to_vec());
    imp.values.insert(input.name.clone(), Value::Run(Run { id: INPUT.into(), shape: chw.to_vec() }));

    for n in &g.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            *imp.uses.entry(i.clone()).or_insert(0) += 1;
        }
    }
    for o in &g.output {
        *imp.uses.entry(o.name.clone()).or_insert(0) += 1;
    }
    for v in g.value_info.iter().chain(&g.output) {
        if let Some((_, Some(d))) = dims_of(v) {
            imp.declared.insert(v.name.clone(), d);
        }
    }

    for (i, n) in g.node.iter().enumerate() {
        imp.node(i, n)?;
    }

    // The output.
    let out = match g.output.as_slice() {
        [one] => one,
        outs => {
            return Err(imp.model_err(format!(
                "the graph has {} outputs: slimbench imports models with one output (the class scores)",
                outs.len()
            )));
        }
    };
    let last = match imp.values.get(&out.name) {
        Some(Value::Run(r)) if r.id != INPUT => r.clone(),
        _ => {
            return Err(imp.model_err(format!(
                "output `{}` is not computed by any node slimbench imports (a constant or the input itself)",
                out.name
            )));
        }
    };
    let classes = match last.shape.as_slice() {
        [k] => *k,
        s => {
            return Err(imp.model_err(format!(
                "output `{}` is Nx{}: slimbench imports classifiers whose output is N x classes",
                out.name,
                show(s)
            )));
        }
    };

    // Drop what the output does not read (e.g. a Sigmoid merged into SiLU).
    let mut live: HashSet<String> = HashSet::from([last.id.clone()]);
    for nd in imp.nodes.iter().rev() {
        if live.contains(&nd.id) {
            live.extend(nd.inputs.iter().cloned());
        }
    }
    let dropped: Vec<String> =
        imp.nodes.iter().filter(|nd| !live.contains(&nd.id)).map(|nd| nd.id.clone()).collect();
    if !dropped.is_empty() {
        imp.notes.push(format!("nodes the output does not read dropped: {}", dropped.join(", ")));
    }
    let nodes: Vec<Node> = imp.nodes.iter().filter(|nd| live.contains(&nd.id)).cloned().collect();
    let graph = Graph { input: chw, nodes };
    graph.check(classes).map_err(|source| OnnxError::Graph { origin: origin.into(), source })?;
    let params = graph.params().map_err(|source| OnnxError::Graph { origin: origin.into(), source })?;
    let mut weights = Vec::with_capacity(params.len());
    for (name, shape) in params {
        match imp.weights.remove(&name) {
            Some((s, v)) if s == shape && v.len() as i64 == shape.iter().product::<i64>() => {
                weights.push((name, shape, v))
            }
            other => {
                return Err(imp.model_err(format!(
                    "parameter `{name}` should be {} but the import has {:?} (a bug in slimbench-onnx)",
                    show(&shape),
                    other.map(|(s, _)| s)
                )));
            }
        }
    }

    let mut notes = Vec::new();
    if imp.kept_bn > 0 {
        notes.push(format!(
            "{} BatchNormalization node(s) kept as batch norm (momentum read as 1 - the ONNX momentum)",
            imp.kept_bn
        ));
    } else if graph.nodes.iter().any(|nd| matches!(nd.op, Op::Conv2d { .. })) {
        notes
            .push("no BatchNormalization node: batch norm was folded into the convolutions at export".into());
    }
    if !imp.folded.is_empty() {
        let parts: Vec<String> = imp.folded.iter().map(|(op, k)| format!("{op} x{k}")).collect();
        notes.push(format!("folded at import (constants, shape chains): {}", parts.join(", ")));
    }
    for (t, k) in &imp.converted {
        notes.push(format!("{k} weight tensor(s) converted from {t} to f32"));
    }
    notes.append(&mut imp.notes);
    Ok(Imported { graph, weights, notes, opset, producer })
}

#[cfg(test)]
mod tests {
    use super::sanitise;

    #[test]
    fn names_are_sanitised_and_scopes_shortened() {
        assert_eq!(sanitise("/layer1/layer1.0/conv1/Conv"), "layer1_0_conv1_Conv");
        assert_eq!(sanitise("/features/features.1/conv/conv.0/Conv"), "features_1_conv_0_Conv");
        assert_eq!(sanitise("dense/BiasAdd:0"), "dense_BiasAdd_0");
        assert_eq!(sanitise("/"), "");
    }
}
