//! Every refusal of the importer, with its exact message: files that are not ONNX,
//! old opsets, unsupported ops and attributes slimbench cannot represent. The models
//! are built here with onnx-protobuf: a small conv net, varied one thing at a time.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{Tensor as TensorType, Value as TypeValue};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use slimbench_graph::{Activation, Op};
use slimbench_onnx::{OnnxError, SUPPORTED_OPS, import, import_bytes};

const FLOAT: i32 = 1;
const INT8: i32 = 3;
const FLOAT16: i32 = 10;

fn floats(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: (0..n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: 7,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn scalar(name: &str, v: f32) -> TensorProto {
    TensorProto { name: name.into(), data_type: FLOAT, float_data: vec![v], ..Default::default() }
}

fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        type_: AttributeType::INTS.into(),
        ..Default::default()
    }
}

fn a_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, type_: AttributeType::INT.into(), ..Default::default() }
}

fn a_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: v, type_: AttributeType::FLOAT.into(), ..Default::default() }
}

fn a_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: v.into(),
        type_: AttributeType::STRING.into(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, ins: &[&str], out: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        attribute,
        ..Default::default()
    }
}

/// A float tensor value info; `None` dims are the symbolic batch `N`.
fn vi(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    let tt = TensorType {
        elem_type: FLOAT,
        shape: Some(TensorShapeProto { dim, ..Default::default() }).into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto { value: Some(TypeValue::TensorType(tt)), ..Default::default() }).into(),
        ..Default::default()
    }
}

/// conv 3x3 (3 -> 4) + ReLU + global pool + flatten + Gemm (4 -> 10) on N x 3 x 8 x 8.
struct Net {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    value_info: Vec<ValueInfoProto>,
    opset: i64,
}

impl Net {
    fn new() -> Net {
        Net {
            nodes: vec![
                node(
                    "Conv",
                    "/conv/Conv",
                    &["x", "conv.w", "conv.b"],
                    "c",
                    vec![a_ints("pads", &[1, 1, 1, 1])],
                ),
                node("Relu", "/relu/Relu", &["c"], "r", vec![]),
                node("GlobalAveragePool", "/pool/GlobalAveragePool", &["r"], "p", vec![]),
                node("Flatten", "/Flatten", &["p"], "f", vec![a_int("axis", 1)]),
                node("Gemm", "/fc/Gemm", &["f", "fc.w", "fc.b"], "y", vec![a_int("transB", 1)]),
            ],
            inits: vec![
                floats("conv.w", &[4, 3, 3, 3]),
                floats("conv.b", &[4]),
                floats("fc.w", &[10, 4]),
                floats("fc.b", &[10]),
            ],
            inputs: vec![vi("x", &[None, Some(3), Some(8), Some(8)])],
            value_info: vec![],
            opset: 17,
        }
    }

    fn attr(mut self, node: usize, a: AttributeProto) -> Net {
        self.nodes[node].attribute.retain(|x| x.name != a.name);
        self.nodes[node].attribute.push(a);
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let graph = GraphProto {
            name: "net".into(),
            node: self.nodes.clone(),
            initializer: self.inits.clone(),
            input: self.inputs.clone(),
            output: vec![vi("y", &[None, Some(10)])],
            value_info: self.value_info.clone(),
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: 8,
            producer_name: "slimbench-tests".into(),
            opset_import: vec![OperatorSetIdProto { version: self.opset, ..Default::default() }],
            graph: Some(graph).into(),
            ..Default::default()
        };
        model.write_to_bytes().unwrap()
    }

    fn err(&self) -> String {
        import_bytes(&self.bytes(), "net.onnx")
            .map(|m| format!("imported: {:?}", m.graph))
            .unwrap_or_else(|e| e.to_string())
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[test]
fn the_base_net_imports() {
    let m = import_bytes(&Net::new().bytes(), "net.onnx").unwrap();
    let kinds: Vec<&str> = m.graph.nodes.iter().map(|n| n.op.kind()).collect();
    assert_eq!(kinds, ["conv2d", "relu", "global-avg-pool", "flatten", "linear"]);
    let ids: Vec<&str> = m.graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["conv_Conv", "relu_Relu", "pool_GlobalAveragePool", "Flatten", "fc_Gemm"]);
    assert_eq!(m.producer, "slimbench-tests");
    assert_eq!(m.weights[1].2, floats("conv.w", &[4, 3, 3, 3]).float_data);
}

#[test]
fn files_that_are_not_onnx() {
    let missing = import(std::path::Path::new("/nonexistent/model.onnx")).unwrap_err();
    assert!(matches!(missing, OnnxError::Read { .. }));
    assert_eq!(
        missing.to_string(),
        "cannot read /nonexistent/model.onnx: No such file or directory (os error 2)"
    );

    // Random bytes (a fixed xorshift stream).
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let e = import_bytes(&random, "random.onnx").unwrap_err().to_string();
    assert_eq!(e, "random.onnx is not an ONNX model (protobuf decode failed: Incorrect tag)");

    let file = std::fs::read(fixture("resnet20.folded.onnx")).unwrap();
    let e = import_bytes(&file[..file.len() / 2], "half.onnx").unwrap_err().to_string();
    assert_eq!(e, "half.onnx is not an ONNX model (protobuf decode failed: Unexpected EOF)");

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let e = import(&empty).unwrap_err().to_string();
    assert_eq!(e, format!("{} is not an ONNX model (the file is empty)", empty.display()));

    // A protobuf of another message.
    let e = import_bytes(&floats("w", &[2]).write_to_bytes().unwrap(), "tensor.pb").unwrap_err().to_string();
    assert_eq!(e, "tensor.pb is not an ONNX model (protobuf decode failed: Invalid UTF-8 sequence)");
    let e = import_bytes(
        &ModelProto { ir_version: 8, ..Default::default() }.write_to_bytes().unwrap(),
        "nograph.onnx",
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "nograph.onnx is not an ONNX model (it decodes, but holds no graph)"
    );
}

#[test]
fn opset_11_is_refused() {
    let mut net = Net::new();
    net.opset = 11;
    assert_eq!(
        net.err(),
        "net.onnx uses opset 11, but slimbench imports opset 13 and later (hint: export again with opset_version=17, or convert it with onnx.version_converter.convert_version)"
    );
}

#[test]
fn unsupported_ops_are_named() {
    let mut net = Net::new();
    net.nodes.insert(
        1,
        node("Einsum", "/attn/Einsum", &["c", "c"], "c2", vec![a_str("equation", "nchw,nchw->nchw")]),
    );
    net.nodes[2].input[0] = "c2".into();
    let e = import_bytes(&net.bytes(), "net.onnx").unwrap_err();
    assert!(e.is_unsupported());
    assert_eq!(
        e.to_string(),
        format!(
            "net.onnx: node `/attn/Einsum` (Einsum) is not supported: slimbench imports {}",
            SUPPORTED_OPS.join(", ")
        )
    );
    assert_eq!(
        SUPPORTED_OPS.join(", "),
        "Add, AveragePool, BatchNormalization, Cast, Clip, Concat, Constant, ConstantOfShape, Conv, Div, \
         Dropout, Erf, Flatten, Gather, Gelu, Gemm, GlobalAveragePool, HardSwish, Identity, MatMul, MaxPool, \
         Mul, Pad, ReduceMean, Relu, Reshape, Shape, Sigmoid, Slice, Softmax, Squeeze, Sub, Tanh, Transpose, \
         Unsqueeze"
    );
    let mut net = Net::new();
    net.nodes[1] = node("LSTM", "", &["c"], "r", vec![]);
    assert!(
        net.err().starts_with("net.onnx: node `LSTM#1` (LSTM) is not supported: slimbench imports Add, ")
    );
}

#[test]
fn inputs_must_be_one_image() {
    let mut net = Net::new();
    net.inputs.push(vi("mask", &[None, Some(8)]));
    assert_eq!(
        net.err(),
        "net.onnx: the graph has 2 inputs (`x`, `mask`) that are not initializers: slimbench imports models with one image input"
    );
    let mut net = Net::new();
    net.inputs = vec![vi("x", &[None, Some(192)])];
    assert_eq!(
        net.err(),
        "net.onnx: input `x` is Nx192 (rank 2): slimbench imports image models whose input is N x C x H x W, with C, H and W fixed (the batch may be symbolic)"
    );
}

#[test]
fn weights_missing_or_not_float() {
    let mut net = Net::new();
    net.inits.remove(0);
    assert_eq!(
        net.err(),
        "net.onnx: node `/conv/Conv` (Conv): reads `conv.w`, which is neither an initializer, the graph input nor an earlier node's output (hint: the weights may be missing from the file)"
    );
    let mut net = Net::new();
    net.inits[0] =
        TensorProto { data_type: INT8, raw_data: vec![1; 108], float_data: vec![], ..net.inits[0].clone() };
    assert_eq!(
        net.err(),
        "net.onnx: node `/conv/Conv` (Conv): weight `conv.w` is INT8: slimbench imports float weights (FLOAT; FLOAT16, BFLOAT16 and DOUBLE are converted to f32)"
    );
    // float16 is converted, and said so.
    let mut net = Net::new();
    net.inits[0] = TensorProto {
        data_type: FLOAT16,
        raw_data: [0x00, 0x3c].repeat(108),
        float_data: vec![],
        ..net.inits[0].clone()
    };
    let m = import_bytes(&net.bytes(), "net.onnx").unwrap();
    assert_eq!(m.weights[1].2, vec![1.0; 108]);
    assert!(m.notes.iter().any(|n| n == "1 weight tensor(s) converted from FLOAT16 to f32"), "{:?}", m.notes);
}

#[test]
fn attributes_slimbench_cannot_represent() {
    assert_eq!(
        Net::new().attr(0, a_ints("pads", &[0, 0, 1, 1])).err(),
        "net.onnx: node `/conv/Conv` (Conv): attribute pads = [0, 0, 1, 1] (top, left, bottom, right) is asymmetric: slimbench pads both sides equally (hint: TensorFlow's 'same' padding with stride 2 is asymmetric; export with symmetric padding)"
    );
    // SAME_UPPER: even total padding is fine, odd is not.
    let net = Net::new().attr(0, a_ints("pads", &[])).attr(0, a_str("auto_pad", "SAME_UPPER"));
    let m = import_bytes(&net.bytes(), "net.onnx").unwrap();
    assert!(matches!(m.graph.nodes[0].op, Op::Conv2d { padding: [1, 1], .. }));
    let net = Net::new().attr(0, a_str("auto_pad", "SAME_UPPER")).attr(0, a_ints("strides", &[2, 2]));
    assert_eq!(
        net.err(),
        "net.onnx: node `/conv/Conv` (Conv): attribute auto_pad = SAME_UPPER needs 1 rows of padding on a 8x8 input, which cannot be split evenly: slimbench pads both sides equally (hint: export with explicit symmetric pads)"
    );
    let mut net = Net::new().attr(0, a_int("group", 2));
    net.inits[0] = floats("conv.w", &[4, 1, 3, 3]);
    assert_eq!(
        net.err(),
        "net.onnx: node `/conv/Conv` (Conv): attribute group = 2 does not fit 3 input channels and weight [4, 1, 3, 3] (slimbench needs in and out channels divisible by the groups, weight [out, in/groups, kh, kw])"
    );
    assert_eq!(
        Net::new().attr(4, a_float("alpha", 0.5)).err(),
        "net.onnx: node `/fc/Gemm` (Gemm): attribute alpha = 0.5: slimbench's linear layer computes x·Wᵀ + b (hint: fold the scale into the weights before export)"
    );
    assert_eq!(
        Net::new().attr(4, a_int("transA", 1)).err(),
        "net.onnx: node `/fc/Gemm` (Gemm): attribute transA = 1: slimbench's linear layer reads its input untransposed"
    );
}

#[test]
fn pools_clips_and_reshapes() {
    let pool = |op: &str, attrs: Vec<AttributeProto>| {
        let mut net = Net::new();
        net.nodes.insert(2, node(op, "/pool1", &["r"], "r2", attrs));
        net.nodes[3].input[0] = "r2".into();
        net
    };
    let ceil = pool(
        "MaxPool",
        vec![a_ints("kernel_shape", &[3, 3]), a_ints("strides", &[2, 2]), a_int("ceil_mode", 1)],
    );
    assert_eq!(
        ceil.err(),
        "net.onnx: node `/pool1` (MaxPool): attribute ceil_mode = 1 gives 4 rows here where slimbench's pools (floor) give 3 (hint: export with ceil_mode=False)"
    );
    // ceil_mode = 1 that changes nothing is accepted.
    let net = pool(
        "MaxPool",
        vec![a_ints("kernel_shape", &[2, 2]), a_ints("strides", &[2, 2]), a_int("ceil_mode", 1)],
    );
    import_bytes(&net.bytes(), "net.onnx").unwrap();
    let avg = pool("AveragePool", vec![a_ints("kernel_shape", &[3, 3]), a_ints("pads", &[1, 1, 1, 1])]);
    assert_eq!(
        avg.err(),
        "net.onnx: node `/pool1` (AveragePool): attribute count_include_pad = 0 with padding [1, 1]: slimbench's average pool counts the zero padding, as PyTorch's default (hint: export an AvgPool2d with count_include_pad=True, or without padding)"
    );
    let avg = avg.attr(2, a_int("count_include_pad", 1));
    import_bytes(&avg.bytes(), "net.onnx").unwrap();

    let mut clip = Net::new();
    clip.nodes[1] = node("Clip", "/relu/Clip", &["c", "lo", "hi"], "r", vec![]);
    clip.inits.extend([scalar("lo", 0.0), scalar("hi", 6.0)]);
    let m = import_bytes(&clip.bytes(), "net.onnx").unwrap();
    assert_eq!(m.graph.nodes[1].op, Op::Act { f: Activation::Relu6 });
    clip.inits[4] = scalar("lo", -1.0);
    clip.inits[5] = scalar("hi", 1.0);
    assert_eq!(
        clip.err(),
        "net.onnx: node `/relu/Clip` (Clip): clips to [-1, 1]: slimbench represents Clip(0, 6) (ReLU6) and Clip(0, inf) (ReLU) only"
    );

    let mut reshape = Net::new();
    reshape.nodes[3] = node("Reshape", "/Reshape", &["p", "shape"], "f", vec![]);
    reshape.inits.push(ints("shape", &[2, -1]));
    assert_eq!(
        reshape.err(),
        "net.onnx: node `/Reshape` (Reshape): reshapes Nx4x1x1 to [2, -1], which moves the batch dimension: slimbench reshapes each sample (hint: reshape to (x.size(0), ...) or (-1, ...))"
    );
    // With the batch fixed to 2 in the file, [2, -1] is a flatten.
    reshape.inputs = vec![vi("x", &[Some(2), Some(3), Some(8), Some(8)])];
    let m = import_bytes(&reshape.bytes(), "net.onnx").unwrap();
    assert_eq!(m.graph.nodes[3].op, Op::Flatten);
}

#[test]
fn declared_shapes_are_checked() {
    let mut net = Net::new();
    net.value_info.push(vi("c", &[None, Some(4), Some(6), Some(6)]));
    assert_eq!(
        net.err(),
        "net.onnx: node `/conv/Conv` (Conv): output `c` is declared Nx4x6x6 but slimbench infers Nx4x8x8"
    );
}

/// The base net with node `at` replaced by `n` (same output name).
fn with(at: usize, n: NodeProto) -> Net {
    let mut net = Net::new();
    net.nodes[at] = n;
    net
}

#[test]
fn forms_of_supported_ops_that_are_refused() {
    // BatchNormalization in training mode.
    let mut bn = with(
        1,
        node("BatchNormalization", "/bn", &["c", "s", "b", "m", "v"], "r", vec![a_int("training_mode", 1)]),
    );
    bn.inits.extend([floats("s", &[4]), floats("b", &[4]), floats("m", &[4]), floats("v", &[4])]);
    assert_eq!(
        bn.err(),
        "net.onnx: node `/bn` (BatchNormalization): attribute training_mode = 1 (batch statistics): slimbench imports inference graphs (hint: export the model in eval mode)"
    );
    // Pad of H and W, and a reflect pad.
    let mut pad = with(1, node("Pad", "/pad", &["c", "pads"], "r", vec![]));
    pad.inits.push(ints("pads", &[0, 0, 1, 1, 0, 0, 1, 1]));
    assert_eq!(
        pad.err(),
        "net.onnx: node `/pad` (Pad): pads = [0, 0, 1, 1, 0, 0, 1, 1] (starts then ends of each axis): slimbench pads the channels of an image only (ResNet's option-A shortcut)"
    );
    let pad = pad.attr(1, a_str("mode", "reflect"));
    assert_eq!(
        pad.err(),
        "net.onnx: node `/pad` (Pad): attribute mode = reflect: slimbench pads with zeros only"
    );
    // Slice of the channels.
    let mut slice = with(1, node("Slice", "/slice", &["c", "st", "en", "ax"], "r", vec![]));
    slice.inits.extend([ints("st", &[0]), ints("en", &[2]), ints("ax", &[1])]);
    assert_eq!(
        slice.err(),
        "net.onnx: node `/slice` (Slice): slices axis 1 as 0:2:1: slimbench slices only x[:, :, ::s, ::s] of an image (ResNet's option-A shortcut)"
    );
    // Rows only, then read by something else.
    let mut rows = with(1, node("Slice", "/slice", &["c", "st", "en", "ax", "sp"], "r", vec![]));
    rows.inits.extend([ints("st", &[0]), ints("en", &[i64::MAX]), ints("ax", &[2]), ints("sp", &[2])]);
    assert_eq!(
        rows.err(),
        "net.onnx: node `/pool/GlobalAveragePool` (GlobalAveragePool): reads `r`, a tensor whose rows alone are subsampled (step 2): slimbench subsamples rows and columns together (a Slice on H and W with the same step)"
    );
    // A product of two computed tensors, a constant add after a ReLU, a computed Sub.
    assert_eq!(
        with(1, node("Mul", "/mul", &["c", "c"], "r", vec![])).err(),
        "net.onnx: node `/mul` (Mul): slimbench imports Mul only as x * Sigmoid(x) (SiLU) or on constants"
    );
    let mut add = Net::new();
    add.nodes.insert(2, node("Add", "/add", &["r", "conv.b"], "r2", vec![]));
    add.nodes[3].input[0] = "r2".into();
    assert_eq!(
        add.err(),
        "net.onnx: node `/add` (Add): adds a constant [4] to `r`: slimbench folds a constant add only into the bias of the bias-less conv or linear layer that computes it (MatMul + Add)"
    );
    assert_eq!(
        with(1, node("Sub", "/sub", &["c", "c"], "r", vec![])).err(),
        "net.onnx: node `/sub` (Sub): slimbench folds Sub on constants only, and this one reads a computed tensor"
    );
    // Cast to an integer type, the tanh GELU, a Softmax that is not the output.
    assert_eq!(
        with(1, node("Cast", "/cast", &["c"], "r", vec![a_int("to", 7)])).err(),
        "net.onnx: node `/cast` (Cast): casts a computed tensor to INT64: slimbench computes in f32 only"
    );
    assert_eq!(
        with(1, node("Gelu", "/gelu", &["c"], "r", vec![a_str("approximate", "tanh")])).err(),
        "net.onnx: node `/gelu` (Gelu): attribute approximate = tanh: slimbench's GELU is the exact (erf) form"
    );
    assert_eq!(
        with(1, node("Softmax", "/sm", &["c"], "r", vec![])).err(),
        "net.onnx: node `/sm` (Softmax): slimbench imports a Softmax only at the output (where it is dropped)"
    );
    // A bare Erf.
    assert_eq!(
        with(1, node("Erf", "/erf", &["c"], "r", vec![])).err(),
        "net.onnx: node `/erf` (Erf): slimbench imports Erf only within GELU's erf form x * 0.5 * (1 + Erf(x / sqrt 2))"
    );
    // A Gemm on an image (no flatten).
    let mut gemm = Net::new();
    gemm.nodes.remove(3);
    gemm.nodes.remove(2);
    gemm.nodes[2].input[0] = "r".into();
    assert_eq!(
        gemm.err(),
        "net.onnx: node `/fc/Gemm` (Gemm): multiplies an Nx4x8x8 input by a [10, 4] weight: slimbench imports dense layers (a flat input, a 2-D weight; hint: flatten first)"
    );
    // A 1-D conv.
    let mut conv1d = Net::new();
    conv1d.inits[0] = floats("conv.w", &[4, 3, 3]);
    assert_eq!(
        conv1d.err(),
        "net.onnx: node `/conv/Conv` (Conv): weight [4, 3, 3] on a 3x8x8 input: slimbench imports 2-D convolutions only"
    );
    // Weights in an external file.
    let mut ext = Net::new();
    ext.inits[0].data_location = onnx_protobuf::tensor_proto::DataLocation::EXTERNAL.into();
    assert_eq!(ext.err(), "net.onnx: initializer `conv.w`: its external data has no location");
}

#[test]
fn outputs_and_final_softmax() {
    // A final Softmax is dropped, with a note.
    let mut net = Net::new();
    net.nodes[4].output[0] = "z".into();
    net.nodes.push(node("Softmax", "/softmax", &["z"], "y", vec![a_int("axis", 1)]));
    let m = import_bytes(&net.bytes(), "net.onnx").unwrap();
    assert_eq!(m.graph.nodes.last().unwrap().op.kind(), "linear");
    assert!(m.notes.iter().any(|n| n.starts_with("final Softmax `/softmax` dropped")), "{:?}", m.notes);
    // An image output.
    let mut net = Net::new();
    net.nodes.truncate(2);
    net.nodes[1].output[0] = "y".into();
    assert_eq!(
        net.err(),
        "net.onnx: node `/relu/Relu` (Relu): output `y` is declared Nx10 but slimbench infers Nx4x8x8"
    );
    // A declared class count that differs.
    let mut net = Net::new();
    net.inits[2] = floats("fc.w", &[12, 4]);
    net.inits[3] = floats("fc.b", &[12]);
    assert_eq!(
        net.err(),
        "net.onnx: node `/fc/Gemm` (Gemm): output `y` is declared Nx10 but slimbench infers Nx12"
    );
}

#[test]
fn unnamed_nodes_get_op_type_ids_and_names_stay_unique() {
    let mut net = Net::new();
    for n in &mut net.nodes {
        n.name = if n.op_type == "Relu" { "/conv/Conv".into() } else { String::new() };
    }
    let m = import_bytes(&net.bytes(), "net.onnx").unwrap();
    let ids: Vec<&str> = m.graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["Conv1", "conv_Conv", "GlobalAveragePool1", "Flatten1", "Gemm1"]);
    assert_eq!(m.weights[0].0, "Conv1.bias");
}

#[test]
fn corrupted_files_are_errors_not_panics() {
    // Every byte of a small model overwritten (0x00, 0xff, +1): each import either
    // succeeds or returns an error. (The same over act_cnn.bn.onnx passes too, in 20 s.)
    let nets = [std::fs::read(fixture("keras_mlp.onnx")).unwrap()];
    for bytes in &nets {
        for i in 0..bytes.len() {
            for v in [0u8, 0xff, bytes[i].wrapping_add(1)] {
                let mut b = bytes.clone();
                b[i] = v;
                let r = std::panic::catch_unwind(|| import_bytes(&b, "x.onnx").map(|_| ()));
                assert!(r.is_ok(), "byte {i} set to {v:#x} panicked");
            }
        }
    }
}
