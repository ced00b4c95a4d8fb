//! The writer against the importer (a graph written and read back is the same graph
//! with the same weights), and the structure of the int8 forms.

use std::collections::{BTreeMap, HashMap};

use onnx_protobuf::{Message, ModelProto};
use slimbench_graph::{Activation, Builder, Graph, Node, Op, PoolKind};

use super::*;
use crate::import_bytes;
use crate::tensor::f16_to_f32;

/// Deterministic values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// fp32 weights for every parameter of `g` (running variances positive).
fn weights(g: &Graph) -> Vec<Weight> {
    g.params()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product::<i64>() as usize;
            let mut v = values(i as u64, n);
            if name.ends_with("running_var") {
                v.iter_mut().for_each(|x| *x = x.abs() + 0.5);
            }
            Weight { name, shape, data: WeightData::F32(v) }
        })
        .collect()
}

/// Every node kind, branches and joins, dropout, on a 3x8x8 input, 10 classes.
fn every_kind() -> Graph {
    let mut b = Builder::new([3, 8, 8]);
    b.then("c1", Op::conv(8, 3, 1, 1, 1, true));
    b.then("bn1", Op::batch_norm());
    let r1 = b.then("r1", Op::Act { f: Activation::Relu6 });
    b.then(
        "c2",
        Op::Conv2d {
            out: 8,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [2, 2],
            dilation: [2, 2],
            groups: 4,
            bias: false,
        },
    );
    b.then("g", Op::Act { f: Activation::Gelu });
    b.join("res", Op::Add, &[&r1]);
    b.then("s", Op::Act { f: Activation::Silu });
    b.then("hs", Op::Act { f: Activation::Hardswish });
    let mp = b.then("mp", Op::pool(PoolKind::Max, 2, 2, 0));
    b.from(&r1);
    b.then("sub", Op::Subsample { stride: 2 });
    b.then("pad", Op::PadChannels { before: 2, after: 2 });
    b.join("cat", Op::Concat, &[&mp]);
    b.then("ap", Op::pool(PoolKind::Avg, 3, 1, 1));
    b.then("sg", Op::Act { f: Activation::Sigmoid });
    b.then("rs", Op::Reshape { shape: vec![5, 8, 8] });
    b.then("gap", Op::GlobalAvgPool);
    b.then("fl", Op::Flatten);
    b.then("fc0", Op::Linear { out: 16, bias: true });
    b.then("th", Op::Act { f: Activation::Tanh });
    b.then("dr", Op::Dropout { p: 0.1 });
    b.then("fc1", Op::Linear { out: 10, bias: false });
    let g = b.finish();
    g.check(10).unwrap();
    g
}

/// The graph without its dropout nodes (readers rewired to their input).
fn without_dropout(g: &Graph) -> Graph {
    let mut alias: HashMap<String, String> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    for n in &g.nodes {
        let inputs: Vec<String> =
            n.inputs.iter().map(|i| alias.get(i).cloned().unwrap_or(i.clone())).collect();
        if let Op::Dropout { .. } = n.op {
            alias.insert(n.id.clone(), inputs[0].clone());
        } else {
            nodes.push(Node { inputs, ..n.clone() });
        }
    }
    Graph { input: g.input, nodes }
}

fn opts() -> ExportOptions {
    ExportOptions {
        name: "t".into(),
        producer_version: "9.9.9".into(),
        metadata: vec![("k".into(), "v".into())],
    }
}

fn write(g: &Graph, w: &[Weight], q: &Quantization) -> (ModelProto, Vec<String>) {
    let written = export(g, w, q, &opts()).unwrap_or_else(|e| panic!("{e}"));
    // What is written parses back.
    let bytes = written.to_bytes();
    assert_eq!(ModelProto::parse_from_bytes(&bytes).unwrap(), written.model);
    (written.model, written.notes)
}

fn op_types(m: &ModelProto) -> Vec<String> {
    m.graph.node.iter().map(|n| n.op_type.clone()).collect()
}

fn node<'m>(m: &'m ModelProto, name: &str) -> &'m onnx_protobuf::NodeProto {
    m.graph.node.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("no node named `{name}`"))
}

#[test]
fn every_node_kind_round_trips_through_the_importer() {
    let g = every_kind();
    let w = weights(&g);
    let (m, notes) = write(&g, &w, &Quantization::WeightOnly);
    assert!(notes.iter().any(|n| n.contains("1 dropout node(s) left out")), "{notes:?}");
    let back = import_bytes(&m.write_to_bytes().unwrap(), "written").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.graph, without_dropout(&g));
    let sent: BTreeMap<&str, &Weight> = w.iter().map(|w| (w.name.as_str(), w)).collect();
    assert_eq!(back.weights.len(), sent.len());
    for (name, shape, v) in &back.weights {
        let orig = sent[name.as_str()];
        assert_eq!(&orig.shape, shape, "{name}");
        assert_eq!(orig.data, WeightData::F32(v.clone()), "{name}");
    }
    assert_eq!((back.opset, back.producer.as_str()), (17, "slimbench 9.9.9"));
}

#[test]
fn the_model_declares_opset_17_a_symbolic_batch_and_names_nodes_by_id() {
    let g = every_kind();
    let (m, _) = write(&g, &weights(&g), &Quantization::WeightOnly);
    assert_eq!((m.ir_version, m.opset_import.len(), m.opset_import[0].version), (8, 1, 17));
    assert_eq!((m.producer_name.as_str(), m.producer_version.as_str()), ("slimbench", "9.9.9"));
    assert_eq!((m.metadata_props[0].key.as_str(), m.metadata_props[0].value.as_str()), ("k", "v"));
    let dims = |v: &onnx_protobuf::ValueInfoProto| -> Vec<String> {
        use onnx_protobuf::tensor_shape_proto::dimension::Value;
        v.type_
            .tensor_type()
            .shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(Value::DimValue(x)) => x.to_string(),
                Some(Value::DimParam(p)) => p.clone(),
                _ => "?".into(),
            })
            .collect()
    };
    assert_eq!(m.graph.input[0].name, "input");
    assert_eq!(dims(&m.graph.input[0]), ["batch", "3", "8", "8"]);
    assert_eq!(m.graph.output[0].name, "logits");
    assert_eq!(dims(&m.graph.output[0]), ["batch", "10"]);
    // Each node's main ONNX node carries its id; the last writes `logits`.
    for (id, op) in [
        ("c1", "Conv"),
        ("bn1", "BatchNormalization"),
        ("r1", "Clip"),
        ("g", "Mul"),
        ("s", "Mul"),
        ("hs", "HardSwish"),
        ("mp", "MaxPool"),
        ("sub", "Slice"),
        ("pad", "Pad"),
        ("cat", "Concat"),
        ("ap", "AveragePool"),
        ("rs", "Reshape"),
        ("gap", "GlobalAveragePool"),
        ("fl", "Flatten"),
        ("fc0", "Gemm"),
    ] {
        assert_eq!(node(&m, id).op_type, op, "{id}");
        assert_eq!(node(&m, id).output, [id], "{id}");
    }
    assert_eq!(node(&m, "fc1").output, ["logits"]);
    assert_eq!(node(&m, "fc1").input[0], "th", "the dropout is left out");
    assert_eq!(node(&m, "g/erf").op_type, "Erf");
}

/// Half bits of `v`, rounded toward zero (any half will do for a round trip).
fn to_f16(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

#[test]
fn half_weights_are_stored_half_and_cast_to_fp32() {
    let g = every_kind();
    for (bf16, ty) in [(false, 10), (true, 16)] {
        let w: Vec<Weight> = weights(&g)
            .into_iter()
            .map(|w| {
                let WeightData::F32(v) = &w.data else { unreachable!() };
                let bits =
                    v.iter().map(|&x| if bf16 { (x.to_bits() >> 16) as u16 } else { to_f16(x) }).collect();
                Weight { data: if bf16 { WeightData::Bf16(bits) } else { WeightData::F16(bits) }, ..w }
            })
            .collect();
        let (m, notes) = write(&g, &w, &Quantization::WeightOnly);
        assert!(m.graph.initializer.iter().filter(|t| t.name.ends_with("weight")).all(|t| t.data_type == ty));
        assert_eq!(node(&m, "c1/cast_weight").op_type, "Cast");
        assert_eq!(node(&m, "c1").input[1], "c1.weight/fp32");
        let what = if bf16 { "BFLOAT16" } else { "FLOAT16" };
        assert!(
            notes[0].starts_with(&format!("{} weight tensor(s) stored as {what}, each", w.len())),
            "{notes:?}"
        );
        // The importer folds the casts: the same graph, each value widened exactly.
        let back = import_bytes(&m.write_to_bytes().unwrap(), "half").unwrap();
        assert_eq!(back.graph, without_dropout(&g));
        let sent: HashMap<&str, &Weight> = w.iter().map(|w| (w.name.as_str(), w)).collect();
        for (name, _, v) in &back.weights {
            let expect: Vec<f32> = match &sent[name.as_str()].data {
                WeightData::F16(b) => b.iter().map(|&h| f16_to_f32(h)).collect(),
                WeightData::Bf16(b) => b.iter().map(|&h| f32::from_bits(u32::from(h) << 16)).collect(),
                _ => unreachable!(),
            };
            assert_eq!(&expect, v, "{name}");
        }
    }
}

/// Symmetric int8 of `v` `[out, ...]`, per output channel or per tensor.
fn int8(v: &[f32], out: usize, per_channel: bool) -> WeightData {
    let per = v.len() / out;
    let amax = |s: &[f32]| s.iter().fold(0f32, |a, x| a.max(x.abs())).max(1e-12);
    let scales: Vec<f32> =
        if per_channel { v.chunks(per).map(|c| amax(c) / 127.0).collect() } else { vec![amax(v) / 127.0] };
    let values = v
        .iter()
        .enumerate()
        .map(|(i, &x)| (x / scales[if per_channel { i / per } else { 0 }]).round() as i8)
        .collect();
    WeightData::Int8 { values, scales }
}

/// The seed CNN: conv -> relu -> max pool -> flatten -> fc.
fn seed() -> Graph {
    let mut b = Builder::new([1, 8, 8]);
    b.then("conv", Op::conv(4, 3, 1, 0, 1, true));
    b.then("relu", Op::Act { f: Activation::Relu });
    b.then("pool", Op::pool(PoolKind::Max, 2, 2, 0));
    b.then("flat", Op::Flatten);
    b.then("fc", Op::Linear { out: 10, bias: true });
    b.finish()
}

fn quantized(g: &Graph, per_channel: bool, keep: &[&str]) -> Vec<Weight> {
    weights(g)
        .into_iter()
        .map(|w| {
            let layer = w.name.split('.').next().unwrap();
            let WeightData::F32(v) = &w.data else { unreachable!() };
            if w.name.ends_with(".weight") && !keep.contains(&layer) && g.node(layer).unwrap().op.is_layer() {
                let data = int8(v, w.shape[0] as usize, per_channel);
                Weight { data, ..w }
            } else {
                w
            }
        })
        .collect()
}

fn grids(points: &[&str]) -> StaticSpec {
    StaticSpec {
        activations: points
            .iter()
            .map(|p| (p.to_string(), ActQuant { scale: 0.02, zero_point: 3 }))
            .collect(),
        reduce_range: true,
        int32_bias: true,
    }
}

#[test]
fn static_int8_is_qdq_at_the_calibrated_points() {
    let g = seed();
    let (m, notes) =
        write(&g, &quantized(&g, true, &[]), &Quantization::Static(grids(&["input", "conv", "fc"])));
    assert_eq!(
        op_types(&m),
        [
            "QuantizeLinear",
            "DequantizeLinear", // the image at `input`
            "DequantizeLinear",
            "DequantizeLinear",
            "Conv",
            "Relu",
            "QuantizeLinear",
            "DequantizeLinear",
            "MaxPool",
            "QuantizeLinear",
            "DequantizeLinear", // int8 in, same grid out
            "Flatten",
            "QuantizeLinear",
            "DequantizeLinear",
            "DequantizeLinear",
            "DequantizeLinear",
            "Gemm",
            "QuantizeLinear",
            "DequantizeLinear",
        ]
    );
    // The fused ReLU keeps its own id; the conv reads the quantized image, weights per
    // channel on axis 0, an int32 bias at input scale x weight scale.
    assert_eq!(node(&m, "relu").op_type, "Relu");
    assert_eq!(node(&m, "conv").input, ["input/int8", "conv.weight/dequantized", "conv.bias/dequantized"]);
    let axis = |n: &str| node(&m, n).attribute.iter().find(|a| a.name == "axis").map(|a| a.i);
    assert_eq!(axis("conv/dequantize_weight"), Some(0));
    let init = |n: &str| m.graph.initializer.iter().find(|t| t.name == n).unwrap();
    assert_eq!((init("conv.weight").data_type, init("conv.weight").dims.clone()), (3, vec![4, 1, 3, 3]));
    assert_eq!((init("conv.bias/int32").data_type, init("conv.weight/scale").dims.clone()), (6, vec![4]));
    assert_eq!((init("conv/scale").data_type, init("conv/zero_point").data_type), (1, 2));
    assert_eq!(init("conv/zero_point").raw_data, [3]);
    assert_eq!(m.graph.node.last().unwrap().output, ["logits"]);
    assert!(
        notes.iter().any(|n| n.contains("2 layer(s) between QuantizeLinear/DequantizeLinear")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|n| n.contains("2 bias(es) of int8 layers as int32")), "{notes:?}");

    // fp32 biases: the layer reads the bias itself.
    let fp32_bias = StaticSpec { int32_bias: false, ..grids(&["input", "conv", "fc"]) };
    let (m, notes) = write(&g, &quantized(&g, true, &[]), &Quantization::Static(fp32_bias));
    assert_eq!(node(&m, "conv").input, ["input/int8", "conv.weight/dequantized", "conv.bias"]);
    assert!(notes.iter().any(|n| n.starts_with("biases of int8 layers fp32")), "{notes:?}");

    // Per tensor: scalar scales, no axis.
    let (m, _) =
        write(&g, &quantized(&g, false, &[]), &Quantization::Static(grids(&["input", "conv", "fc"])));
    assert!(node(&m, "fc/dequantize_weight").attribute.is_empty());
    assert!(m.graph.initializer.iter().find(|t| t.name == "fc.weight/scale").unwrap().dims.is_empty());
}

#[test]
fn layers_kept_in_fp32_compute_between_a_dequantize_and_a_quantize() {
    let g = seed();
    let (m, notes) =
        write(&g, &quantized(&g, true, &["fc"]), &Quantization::Static(grids(&["input", "conv", "fc"])));
    let gemm = node(&m, "fc");
    assert_eq!(gemm.input, ["flat", "fc.weight", "fc.bias"], "fp32 weights read from the dequantized value");
    assert_eq!(node(&m, "flat").input, ["pool"]);
    assert!(notes.iter().any(|n| n == "kept in fp32 between a dequantize and a quantize: fc"), "{notes:?}");
    // The point the kept layer would have written is not needed.
    let (m2, _) = write(&g, &quantized(&g, true, &["fc"]), &Quantization::Static(grids(&["input", "conv"])));
    assert_eq!(op_types(&m2), op_types(&m));
}

#[test]
fn a_missing_grid_names_the_node_and_the_point() {
    let g = seed();
    let e = export(&g, &quantized(&g, true, &[]), &Quantization::Static(grids(&["input", "conv"])), &opts())
        .unwrap_err();
    assert_eq!(e.to_string(), "node `fc` (linear): no calibrated quantization for the activation point `fc`");
    assert_eq!(e.node(), Some("fc"));
}

fn mlp_factored() -> (Graph, Vec<Weight>) {
    let mut b = Builder::new([1, 4, 4]);
    b.then("flat", Op::Flatten);
    b.then("fc0", Op::Linear { out: 8, bias: true });
    b.then("act", Op::Act { f: Activation::Relu });
    b.then("fc1", Op::Linear { out: 10, bias: true });
    let g = b.finish();
    let mut w: Vec<Weight> = weights(&g).into_iter().filter(|w| w.name != "fc0.weight").collect();
    w.push(Weight {
        name: "fc0.lr_in.weight".into(),
        shape: vec![3, 16],
        data: WeightData::F32(values(7, 48)),
    });
    w.push(Weight {
        name: "fc0.lr_out.weight".into(),
        shape: vec![8, 3],
        data: WeightData::F32(values(8, 24)),
    });
    (g, w)
}

#[test]
fn low_rank_layers_are_two_gemms_and_dynamic_int8_is_matmul_integer() {
    let (g, w) = mlp_factored();
    let (m, _) = write(&g, &w, &Quantization::WeightOnly);
    assert_eq!(op_types(&m), ["Flatten", "Gemm", "Gemm", "Relu", "Gemm"]);
    assert_eq!(node(&m, "fc0/lr_in").input, ["flat", "fc0.lr_in.weight"]);
    assert_eq!(node(&m, "fc0").input, ["fc0/lr_in", "fc0.lr_out.weight", "fc0.bias"]);

    let wq: Vec<Weight> = w
        .into_iter()
        .map(|w| match &w.data {
            WeightData::F32(v) if w.name.ends_with("weight") => {
                Weight { data: int8(v, w.shape[0] as usize, true), ..w }
            }
            _ => w,
        })
        .collect();
    let (m, notes) = write(&g, &wq, &Quantization::Dynamic { reduce_range: false });
    let dq = ["DynamicQuantizeLinear", "MatMulInteger", "Cast", "Mul", "Mul"];
    let mut expect = vec!["Flatten"];
    expect.extend(dq);
    expect.extend(dq);
    expect.extend(["Add", "Relu"]);
    expect.extend(dq);
    expect.push("Add");
    assert_eq!(op_types(&m), expect);
    // The weight transposed to [in, out]; one scale and zero point per output channel.
    let init = |n: &str| m.graph.initializer.iter().find(|t| t.name == n).unwrap();
    assert_eq!(init("fc1.weight").dims, [8, 10]);
    assert_eq!(init("fc1.weight/zero_point").dims, [10]);
    assert_eq!(node(&m, "fc1").op_type, "Add");
    assert_eq!(node(&m, "fc0/lr_in").op_type, "Mul");
    assert!(notes[0].starts_with("3 linear layer(s) on dynamic int8: DynamicQuantizeLinear"), "{notes:?}");
    // fbgemm's 7-bit form: the range of the input, then QuantizeLinear.
    let (m, notes) = write(&g, &wq, &Quantization::Dynamic { reduce_range: true });
    assert_eq!(node(&m, "fc1/quantize_input").op_type, "QuantizeLinear");
    assert_eq!(node(&m, "fc1/min").op_type, "ReduceMin");
    assert_eq!(node(&m, "fc1/quantize_input").input, ["act", "fc1/x_scale", "fc1/x_zero_point"]);
    assert!(notes[0].contains("to 7 bits as fbgemm does"), "{notes:?}");
    // Weight-only: each int8 weight dequantized.
    let (m, notes) = write(&g, &wq, &Quantization::WeightOnly);
    assert_eq!(node(&m, "fc1/dequantize_weight").op_type, "DequantizeLinear");
    assert!(notes[0].starts_with("3 int8 weight tensor(s), each with a DequantizeLinear"), "{notes:?}");
}

#[test]
fn wrong_or_missing_weights_name_the_node() {
    let g = seed();
    let mut w = weights(&g);
    w.retain(|w| w.name != "fc.bias");
    let e = export(&g, &w, &Quantization::WeightOnly, &opts()).unwrap_err();
    assert_eq!(e.to_string(), "node `fc` (linear): no weight `fc.bias` given");
    let mut w = weights(&g);
    w[0].shape = vec![2, 2];
    let e = export(&g, &w, &Quantization::WeightOnly, &opts()).unwrap_err();
    assert!(e.to_string().starts_with("node `conv` (conv2d): weight `conv.bias` is [2, 2]"), "{e}");
    let mut w = weights(&g);
    w.push(Weight { name: "ghost.weight".into(), shape: vec![1], data: WeightData::F32(vec![0.0]) });
    let e = export(&g, &w, &Quantization::WeightOnly, &opts()).unwrap_err();
    assert_eq!(e.to_string(), "1 weight(s) belong to no node of the graph: ghost.weight");
}
