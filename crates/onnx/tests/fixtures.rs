//! The exported fixtures (scripts/export_onnx_fixtures.py) import: graphs check for 10
//! classes, batch norm is folded or kept as the file has it, weights are those of the
//! file, and a naive interpreter of the imported graph reproduces PyTorch's logits.

use std::collections::HashMap;
use std::path::PathBuf;

use slimbench_graph::{Activation, Graph, INPUT, Op, PoolKind};
use slimbench_onnx::{Imported, import};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn load(name: &str) -> Imported {
    import(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Imports, checks for 10 classes and that `weights` follows `graph.params()`.
fn check(name: &str, input: [i64; 3]) -> Imported {
    let m = load(name);
    assert_eq!(m.graph.input, input);
    m.graph.check(10).unwrap();
    let params = m.graph.params().unwrap();
    assert_eq!(params.len(), m.weights.len());
    for ((pn, ps), (wn, ws, v)) in params.iter().zip(&m.weights) {
        assert_eq!((pn, ps), (wn, ws));
        assert_eq!(v.len() as i64, ws.iter().product::<i64>(), "{wn}");
    }
    assert_eq!(m.opset, 17);
    assert_eq!(m.producer, "pytorch 2.11.0");
    m
}

fn count(g: &Graph, f: impl Fn(&Op) -> bool) -> usize {
    g.nodes.iter().filter(|n| f(&n.op)).count()
}

fn is_bn(op: &Op) -> bool {
    matches!(op, Op::BatchNorm { .. })
}

/// A naive f32 interpreter of the IR, enough for the fixtures: one image at a time.
fn forward(m: &Imported, x: &[f32]) -> Vec<f32> {
    let w: HashMap<&str, &[f32]> = m.weights.iter().map(|(n, _, v)| (n.as_str(), v.as_slice())).collect();
    let shapes = m.graph.shapes().unwrap();
    let mut vals: HashMap<&str, (Vec<i64>, Vec<f32>)> = HashMap::new();
    vals.insert(INPUT, (m.graph.input.to_vec(), x.to_vec()));
    for (node, out_shape) in m.graph.nodes.iter().zip(&shapes) {
        let (s, a) = &vals[node.inputs[0].as_str()];
        let p = |name: &str| w[format!("{}.{name}", node.id).as_str()];
        let o = &out_shape[..];
        let y: Vec<f32> = match &node.op {
            Op::Conv2d { out, kernel, stride, padding, dilation, groups, bias } => {
                let (c, h, wd) = (s[0], s[1], s[2]);
                let (oh, ow) = (o[1], o[2]);
                let cg = c / groups;
                let og = out / groups;
                let wt = p("weight");
                let mut y = vec![0f32; (out * oh * ow) as usize];
                for oc in 0..*out {
                    let g = oc / og;
                    let b = if *bias { p("bias")[oc as usize] } else { 0.0 };
                    for i in 0..oh {
                        for j in 0..ow {
                            let mut acc = b;
                            for ic in 0..cg {
                                for ki in 0..kernel[0] {
                                    let yy = i * stride[0] - padding[0] + ki * dilation[0];
                                    if yy < 0 || yy >= h {
                                        continue;
                                    }
                                    for kj in 0..kernel[1] {
                                        let xx = j * stride[1] - padding[1] + kj * dilation[1];
                                        if xx < 0 || xx >= wd {
                                            continue;
                                        }
                                        let xi = ((g * cg + ic) * h + yy) * wd + xx;
                                        let wi = ((oc * cg + ic) * kernel[0] + ki) * kernel[1] + kj;
                                        acc += a[xi as usize] * wt[wi as usize];
                                    }
                                }
                            }
                            y[((oc * oh + i) * ow + j) as usize] = acc;
                        }
                    }
                }
                y
            }
            Op::BatchNorm { eps, .. } => {
                let plane = (a.len() as i64 / s[0]) as usize;
                let (g, b, mu, var) = (p("weight"), p("bias"), p("running_mean"), p("running_var"));
                a.iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let c = i / plane;
                        (v - mu[c]) / (var[c] + *eps as f32).sqrt() * g[c] + b[c]
                    })
                    .collect()
            }
            Op::Linear { out, bias } => {
                let wt = p("weight");
                (0..*out as usize)
                    .map(|o| {
                        let b = if *bias { p("bias")[o] } else { 0.0 };
                        b + a.iter().enumerate().map(|(i, &v)| v * wt[o * a.len() + i]).sum::<f32>()
                    })
                    .collect()
            }
            Op::Act { f } => a
                .iter()
                .map(|&v| match f {
                    Activation::Relu => v.max(0.0),
                    Activation::Relu6 => v.clamp(0.0, 6.0),
                    Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                    Activation::Tanh => v.tanh(),
                    Activation::Silu => v / (1.0 + (-v).exp()),
                    Activation::Hardswish => v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
                    Activation::Gelu => 0.5 * v * (1.0 + erf(v / std::f32::consts::SQRT_2)),
                })
                .collect(),
            Op::Pool { kind, kernel, stride, padding } => {
                let (h, wd) = (s[1], s[2]);
                let mut y = Vec::new();
                for c in 0..o[0] {
                    for i in 0..o[1] {
                        for j in 0..o[2] {
                            let mut acc = if *kind == PoolKind::Max { f32::MIN } else { 0.0 };
                            for ki in 0..kernel[0] {
                                for kj in 0..kernel[1] {
                                    let (yy, xx) =
                                        (i * stride[0] - padding[0] + ki, j * stride[1] - padding[1] + kj);
                                    let v = if yy < 0 || yy >= h || xx < 0 || xx >= wd {
                                        if *kind == PoolKind::Max { f32::MIN } else { 0.0 }
                                    } else {
                                        a[((c * h + yy) * wd + xx) as usize]
                                    };
                                    acc = if *kind == PoolKind::Max { acc.max(v) } else { acc + v };
                                }
                            }
                            y.push(if *kind == PoolKind::Max {
                                acc
                            } else {
                                acc / (kernel[0] * kernel[1]) as f32
                            });
                        }
                    }
                }
                y
            }
            Op::GlobalAvgPool => {
                let plane = (s[1] * s[2]) as usize;
                a.chunks(plane).map(|c| c.iter().sum::<f32>() / plane as f32).collect()
            }
            Op::Flatten | Op::Reshape { .. } | Op::Dropout { .. } => a.clone(),
            Op::Add => {
                let mut y = a.clone();
                for other in &node.inputs[1..] {
                    for (v, &b) in y.iter_mut().zip(&vals[other.as_str()].1) {
                        *v += b;
                    }
                }
                y
            }
            Op::Concat => node.inputs.iter().flat_map(|i| vals[i.as_str()].1.clone()).collect(),
            Op::Subsample { stride } => {
                let (h, wd) = (s[1], s[2]);
                let mut y = Vec::new();
                for c in 0..s[0] {
                    for i in (0..h).step_by(*stride as usize) {
                        for j in (0..wd).step_by(*stride as usize) {
                            y.push(a[((c * h + i) * wd + j) as usize]);
                        }
                    }
                }
                y
            }
            Op::PadChannels { before, after } => {
                let plane = (s[1] * s[2]) as usize;
                let mut y = vec![0.0; *before as usize * plane];
                y.extend(a);
                y.extend(vec![0.0; *after as usize * plane]);
                y
            }
        };
        assert_eq!(y.len() as i64, o.iter().product::<i64>(), "{}", node.id);
        vals.insert(node.id.as_str(), (o.to_vec(), y));
    }
    vals.remove(m.graph.nodes.last().unwrap().id.as_str()).unwrap().1
}

/// Abramowitz-Stegun 7.1.26 is too coarse for 1e-4; a series/continued-fraction-free
/// approach: erf via f64's complementary error function approximation (W. J. Cody).
fn erf(x: f32) -> f32 {
    // Numerical Recipes' erfc (fractional error < 1.2e-7).
    let z = f64::from(x).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398
                                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    (if x >= 0.0 { 1.0 - r } else { r - 1.0 }) as f32
}

/// Our logits for the first `n` fixture inputs against PyTorch's (or onnx's).
fn logits_match(m: &Imported, input: &str, logits: &str, n: usize) {
    let x = read_f32(input);
    let want = read_f32(logits);
    let size = m.graph.input.iter().product::<i64>() as usize;
    assert_eq!(x.len(), 100 * size);
    assert_eq!(want.len(), 100 * 10);
    for i in 0..n {
        let got = forward(m, &x[i * size..(i + 1) * size]);
        for (k, (g, w)) in got.iter().zip(&want[i * 10..(i + 1) * 10]).enumerate() {
            assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "image {i} class {k}: {g} vs {w}");
        }
    }
}

#[test]
fn resnet20_with_batch_norm_folded() {
    let m = check("resnet20.folded.onnx", [3, 32, 32]);
    let g = &m.graph;
    assert_eq!(count(g, is_bn), 0);
    assert_eq!(count(g, |o| matches!(o, Op::Conv2d { bias: true, .. })), 19);
    assert_eq!(count(g, |o| matches!(o, Op::Subsample { stride: 2 })), 2);
    assert_eq!(count(g, |o| matches!(o, Op::PadChannels { before: 8, after: 8 })), 1);
    assert_eq!(count(g, |o| matches!(o, Op::Add)), 9);
    assert_eq!(count(g, |o| *o == Op::Flatten), 1);
    assert!(m.notes.iter().any(|n| n.contains("no BatchNormalization node")), "{:?}", m.notes);
    let (name, shape, _) = &m.weights[0];
    assert_eq!((name.as_str(), shape.as_slice()), ("conv1_Conv.bias", &[16][..]));
    logits_match(&m, "cifar.input.f32", "resnet20.logits.f32", 3);
}

#[test]
fn resnet20_with_batch_norm_kept() {
    let m = check("resnet20.bn.onnx", [3, 32, 32]);
    let g = &m.graph;
    assert_eq!(count(g, is_bn), 19);
    assert_eq!(count(g, |o| matches!(o, Op::Conv2d { bias: false, .. })), 19);
    assert_eq!(g.node("bn1_BatchNormalization").unwrap().op, Op::BatchNorm { eps: 1e-5, momentum: 0.1 });
    assert!(m.notes.iter().any(|n| n.contains("19 BatchNormalization node(s) kept")), "{:?}", m.notes);
    // 0.27 M parameters plus the running statistics.
    assert_eq!(g.param_count().unwrap(), 269_722 + 2 * (16 * 7 + 32 * 6 + 64 * 6));
    logits_match(&m, "cifar.input.f32", "resnet20.logits.f32", 3);
}

#[test]
fn the_weights_are_the_files_values() {
    // The first conv of the kept-BN file, its initializer read here independently: the
    // bytes of 16x3x3x3 f32 values are somewhere in the file, as raw_data.
    let m = load("resnet20.bn.onnx");
    let (name, shape, v) = &m.weights[0];
    assert_eq!((name.as_str(), shape.as_slice()), ("conv1_Conv.weight", &[16, 3, 3, 3][..]));
    let raw: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    let file = std::fs::read(fixture("resnet20.bn.onnx")).unwrap();
    assert!(file.windows(raw.len()).any(|w| w == raw.as_slice()), "conv1 weights not found in the file");
    let bn = m.weights.iter().find(|(n, _, _)| n == "bn1_BatchNormalization.running_var").unwrap();
    assert!(bn.2.iter().all(|&v| v > 0.0) && bn.2.iter().any(|&v| (v - 1.0).abs() > 0.05));
}

#[test]
fn mobilenetv2_in_both_forms() {
    for (file, bns) in [("mobilenetv2.folded.onnx", 0), ("mobilenetv2.bn.onnx", 52)] {
        let m = check(file, [3, 32, 32]);
        let g = &m.graph;
        assert_eq!(count(g, is_bn), bns, "{file}");
        assert_eq!(count(g, |o| *o == Op::Act { f: Activation::Relu6 }), 35, "{file}");
        let depthwise =
            count(g, |o| matches!(o, Op::Conv2d { groups, out, .. } if *groups > 1 && groups == out));
        assert_eq!(depthwise, 17, "{file}");
        assert_eq!(count(g, |o| matches!(o, Op::Add)), 12, "{file}");
        logits_match(&m, "cifar.input.f32", "mobilenetv2.logits.f32", 2);
    }
}

#[test]
fn grey_cnn_in_both_forms() {
    for (file, bns) in [("grey_cnn.folded.onnx", 0), ("grey_cnn.bn.onnx", 2)] {
        let m = check(file, [1, 28, 28]);
        let g = &m.graph;
        assert_eq!(count(g, is_bn), bns, "{file}");
        assert_eq!(count(g, |o| matches!(o, Op::Pool { kind: PoolKind::Max, .. })), 1);
        assert_eq!(count(g, |o| matches!(o, Op::Linear { bias: true, .. })), 2);
        if bns > 0 {
            let bn2 = g.nodes.iter().filter(|n| is_bn(&n.op)).nth(1).unwrap();
            assert_eq!(bn2.op, Op::BatchNorm { eps: 1e-3, momentum: 0.01 });
        }
        logits_match(&m, "grey.input.f32", "grey_cnn.logits.f32", 10);
    }
}

#[test]
fn keras_style_mlp_matmul_add_gemm_and_activations() {
    let m = import(&fixture("keras_mlp.onnx")).unwrap();
    m.graph.check(10).unwrap();
    let kinds: Vec<&str> = m.graph.nodes.iter().map(|n| n.op.kind()).collect();
    assert_eq!(
        kinds,
        [
            "flatten",
            "linear",
            "gelu",
            "linear",
            "hardswish",
            "linear",
            "silu",
            "tanh",
            "concat",
            "sigmoid",
            "linear"
        ]
    );
    assert_eq!(m.opset, 20);
    assert!(m.notes.iter().any(|n| n.contains("folded into the bias of `dense_MatMul`")), "{:?}", m.notes);
    logits_match(&m, "mlp.input.f32", "keras_mlp.logits.f32", 100);
}

#[test]
fn act_cnn_gelu_erf_form_silu_grouped_dilated_pools_concat_reduce_mean() {
    for (file, bns) in [("act_cnn.folded.onnx", 0), ("act_cnn.bn.onnx", 2)] {
        let m = check(file, [2, 8, 8]);
        let g = &m.graph;
        assert_eq!(count(g, is_bn), bns, "{file}");
        let acts: Vec<&str> =
            g.nodes.iter().filter(|n| matches!(n.op, Op::Act { .. })).map(|n| n.op.kind()).collect();
        assert_eq!(acts, ["gelu", "silu", "hardswish", "sigmoid", "relu6"], "{file}");
        assert!(g.nodes.iter().any(|n| matches!(n.op, Op::Conv2d { groups: 2, .. })));
        assert!(g.nodes.iter().any(|n| matches!(n.op, Op::Conv2d { dilation: [2, 2], padding: [2, 2], .. })));
        assert!(g.nodes.iter().any(|n| n.op == Op::pool(PoolKind::Avg, 3, 1, 1)));
        assert!(g.nodes.iter().any(|n| n.op == Op::pool(PoolKind::Max, 3, 2, 1)));
        assert_eq!(count(g, |o| *o == Op::Concat), 1);
        assert_eq!(count(g, |o| *o == Op::GlobalAvgPool), 1);
        assert!(m.notes.iter().any(|n| n.contains("GELU's erf form")), "{:?}", m.notes);
        logits_match(&m, "small.input.f32", "act_cnn.logits.f32", 100);
    }
}

#[test]
fn grey_cnn_from_the_dynamo_exporter_with_external_data() {
    let m = load("grey_cnn.dynamo.onnx");
    m.graph.check(10).unwrap();
    assert_eq!(m.opset, 18);
    assert!(
        m.notes.iter().any(|n| n == "weights read from external data: grey_cnn.dynamo.onnx.data"),
        "{:?}",
        m.notes
    );
    logits_match(&m, "grey.input.f32", "grey_cnn.logits.f32", 10);

    // From bytes there is no folder to read the data from; from a copy without it, the
    // data file is missing.
    let bytes = std::fs::read(fixture("grey_cnn.dynamo.onnx")).unwrap();
    let e = slimbench_onnx::import_bytes(&bytes, "grey.onnx").unwrap_err().to_string();
    assert!(
        e.starts_with(
            "grey.onnx: initializer `conv1.weight`: its values are in the external file `grey_cnn.dynamo.onnx.data`, \
             which slimbench reads only when it imports the model from a path"
        ),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("grey_cnn.dynamo.onnx");
    std::fs::write(&copy, &bytes).unwrap();
    let e = import(&copy).unwrap_err().to_string();
    let data = dir.path().join("grey_cnn.dynamo.onnx.data");
    assert_eq!(
        e,
        format!(
            "{}: initializer `conv1.weight`: cannot read its external data {}: No such file or directory (os error 2)",
            copy.display(),
            data.display()
        )
    );
}
