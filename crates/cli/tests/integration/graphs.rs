//! Any CNN or MLP on any image data: presets with batch norm and residual adds, a YAML
//! layer list, an imported ONNX network, on colour images; and the errors a user who
//! brings their own network or images meets (snapshot-tested, exit 2, nothing written).

use crate::util::*;

fn onnx_fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../onnx/tests/fixtures").join(name);
    p.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", p.display())).display().to_string()
}

fn pipeline(onnx: &str) -> String {
    format!(
        r#"name: graphs
defaults: {{ seed: 7, threads: 2 }}
datasets:
  shapes: {{ kind: synthetic-shapes, train_size: 256, test_size: 64 }}
models:
  r8: {{ kind: resnet, depth: 8, width: 8 }}
  tiny:
    kind: layers
    layers:
      - {{ conv: 8, kernel: 3, padding: 1, bn: true, act: relu, id: stem }}
      - {{ conv: 8, kernel: 3, padding: 1, bn: true, act: relu }}
      - {{ add: stem }}
      - {{ pool: max, kernel: 2 }}
      - {{ flatten: true }}
      - {{ linear: 10 }}
  imported: {{ kind: onnx, path: {onnx} }}
stages:
  - {{ id: r8, uses: train, with: {{ model: r8, dataset: shapes, epochs: 1, batch_size: 32 }} }}
  - {{ id: tiny, uses: train, with: {{ model: tiny, dataset: shapes, epochs: 1, batch_size: 32, augment: [crop, flip] }} }}
  - {{ id: imported, uses: train, with: {{ model: imported, dataset: shapes, epochs: 0 }} }}
  - {{ id: int8, uses: quantize, needs: imported, with: {{ method: int8-dynamic }} }}
  - {{ id: half, uses: quantize, needs: tiny, with: {{ method: fp16 }} }}
  - {{ id: slim, uses: prune, needs: r8, with: {{ method: structured, sparsity: 0.5 }} }}
  - {{ id: static, uses: quantize, needs: imported, with: {{ method: int8-static, calibration_samples: 64 }} }}
  - {{ id: qat, uses: quantize, needs: tiny, with: {{ method: qat, epochs: 1 }} }}
  - {{ id: tucker, uses: low-rank, needs: r8, with: {{ rank: 4, convs: tucker2, finetune_epochs: 1 }} }}
  - id: eval
    uses: evaluate
    needs: [r8, tiny, imported, int8, half, slim, static, qat, tucker]
    with: {{ latency: {{ min_duration_s: 0, rounds: 2, warmup: 2, iters: 20, batch_sizes: [1, 16], repeats: 2 }} }}
"#
    )
}

#[test]
fn presets_layer_lists_and_onnx_models_run_every_stage_on_colour_images() {
    let env = Env::new();
    let p = env.write("graphs.yaml", &pipeline(&onnx_fixture("resnet20.bn.onnx")));
    let out = env.run(&["run", p.to_str().unwrap()]);
    assert_code(&out, 0);
    let run = env.runs("graphs").pop().unwrap();
    let rows = metrics(&run);
    for v in ["r8", "tiny", "imported", "int8", "half", "slim", "static", "qat", "tucker"] {
        let r = row(&rows, v);
        assert_eq!(r.test_images, 64, "{v}");
        assert!((0.0..=1.0).contains(&r.accuracy), "{v}: {}", r.accuracy);
        assert!(r.file_size_bytes > 0 && r.params > 0, "{v}");
    }
    // The imported ResNet-20 keeps its 0.27M trained parameters; dynamic int8 packs its
    // one linear layer (its convolutions stay fp32, as in PyTorch's quantize_dynamic).
    let (imported, int8) = (row(&rows, "imported").clone(), row(&rows, "int8"));
    assert!((260_000..290_000).contains(&imported.params), "{}", imported.params);
    assert!(int8.file_size_bytes < imported.file_size_bytes);
    // Structured pruning removes channels inside the residual blocks: physically smaller.
    assert!(row(&rows, "slim").params < row(&rows, "r8").params);
    let notes = run_json(&run).to_string();
    assert!(notes.contains("not trained (epochs: 0)"), "{notes}");
    // Static int8 of the imported ResNet: batch norms folded, residual adds on fbgemm's
    // quantized add, the whole network stored in int8 and as accurate as fp32 within a
    // few images of 64 (the weights are PyTorch's random ones: accuracy is chance).
    assert!(notes.contains("batch norm(s) folded"), "{notes}");
    let st = row(&rows, "static");
    assert!((st.file_size_bytes as f64) < 0.35 * imported.file_size_bytes as f64, "{}", st.file_size_bytes);
    assert!((st.accuracy - imported.accuracy).abs() <= 0.1, "{} vs {}", st.accuracy, imported.accuracy);
    assert!(notes.contains("no int8 kernel for pad-channels, subsample"), "{notes}");
    // Tucker-2 factors the ResNet's 3x3 convolutions: fewer parameters, reloaded from
    // the graph its file carries.
    assert!(row(&rows, "tucker").params < row(&rows, "r8").params);
    assert!(notes.contains("-> Tucker-2 ranks 4/4"), "{notes}");
}

/// `slimbench validate` on `text` (written to `bad.yaml`): exit 2, the stderr, nothing written.
fn invalid(env: &Env, text: &str) -> String {
    env.write("bad.yaml", text);
    let out = env.run(&["validate", "bad.yaml"]);
    assert_code(&out, 2);
    assert!(!env.path().join("results").exists());
    stderr(&out).replace(&env.path().display().to_string(), "<tmp>")
}

#[test]
fn a_layer_list_whose_shapes_do_not_meet_names_the_layer_and_both_shapes() {
    let env = Env::new();
    let text = pipeline("x.onnx")
        .replace(
            "      - { conv: 8, kernel: 3, padding: 1, bn: true, act: relu }\n",
            "      - { conv: 8, kernel: 3, stride: 2, padding: 1, bn: true, act: relu }\n",
        )
        .replace("  imported: { kind: onnx, path: x.onnx }\n", "")
        .replace(
            "  - { id: imported, uses: train, with: { model: imported, dataset: shapes, epochs: 0 } }\n",
            "",
        )
        .replace("  - { id: int8, uses: quantize, needs: imported, with: { method: int8-dynamic } }\n", "")
        .replace("  - { id: static, uses: quantize, needs: imported, with: { method: int8-static, calibration_samples: 64 } }\n", "")
        .replace("needs: [r8, tiny, imported, int8, half, slim, static, qat, tucker]", "needs: [r8, tiny]");
    insta::assert_snapshot!(invalid(&env, &text));
}

#[test]
fn a_file_that_is_not_onnx_is_refused_at_validate() {
    let env = Env::new();
    env.write("broken.onnx", "this is not a protobuf\n");
    insta::assert_snapshot!(invalid(&env, &pipeline("broken.onnx")));
}

#[test]
fn an_onnx_model_for_other_images_is_refused_at_validate() {
    let env = Env::new();
    insta::assert_snapshot!(
        invalid(&env, &pipeline(&onnx_fixture("grey_cnn.folded.onnx"))).replace(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../onnx")
                .canonicalize()
                .unwrap()
                .display()
                .to_string(),
            "<onnx>"
        )
    );
}

#[test]
fn an_unsupported_onnx_op_names_the_node_and_the_supported_list() {
    let env = Env::new();
    // A one-node model whose op slimbench has no node kind for.
    let bytes = unsupported_op_model();
    std::fs::write(env.path().join("lstm.onnx"), bytes).unwrap();
    insta::assert_snapshot!(invalid(&env, &pipeline("lstm.onnx")));
}

/// A minimal ONNX model (opset 17) with one `Einsum` node on a 3x32x32 input, encoded
/// by hand with the protobuf wire format (field numbers from onnx.proto).
fn unsupported_op_model() -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn field(n: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(n << 3 | 2), out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }
    fn dim(v: i64) -> Vec<u8> {
        let mut d = vec![8];
        varint(v as u64, &mut d);
        d
    }
    let value_info = |name: &str, dims: &[i64]| {
        let mut shape = Vec::new();
        for &d in dims {
            field(1, &dim(d), &mut shape);
        }
        let mut tensor = vec![8, 1]; // elem_type FLOAT
        field(2, &shape, &mut tensor);
        let mut ty = Vec::new();
        field(1, &tensor, &mut ty);
        let mut vi = Vec::new();
        field(1, name.as_bytes(), &mut vi);
        field(2, &ty, &mut vi);
        vi
    };
    let mut node = Vec::new();
    field(1, b"x", &mut node);
    field(2, b"y", &mut node);
    field(3, b"mix", &mut node);
    field(4, b"Einsum", &mut node);
    let mut graph = Vec::new();
    field(1, &node, &mut graph);
    field(2, b"g", &mut graph);
    field(11, &value_info("x", &[1, 3, 32, 32]), &mut graph);
    field(12, &value_info("y", &[1, 10]), &mut graph);
    let mut opset = Vec::new();
    varint(2 << 3, &mut opset);
    varint(17, &mut opset);
    let mut model = vec![8, 8]; // ir_version 8
    field(7, &graph, &mut model);
    field(8, &opset, &mut model);
    model
}

#[test]
fn a_corrupt_image_is_named_with_its_path_and_nothing_is_written() {
    let env = Env::new();
    let dir = env.path().join("pics");
    for class in ["cat", "dog"] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..3 {
            let img =
                image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, i * 40]));
            img.save(dir.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(dir.join("dog").join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let text = r#"name: pics
datasets:
  pics: { kind: image-folder, path: pics, size: [8, 8] }
models:
  m: { kind: mlp, hidden: [8] }
stages:
  - { id: train, uses: train, with: { model: m, dataset: pics, epochs: 1 } }
"#;
    env.write("pics.yaml", text);
    let out = env.run(&["run", "pics.yaml"]);
    assert_code(&out, 2);
    assert!(!env.path().join("results").exists());
    // Log lines carry a timestamp: only the error is snapshot.
    let text = stderr(&out);
    let err: Vec<&str> = text.lines().filter(|l| !l.contains(" INFO ")).map(str::trim_end).collect();
    insta::assert_snapshot!(err.join("\n").replace(&env.path().display().to_string(), "<tmp>"));
}

#[test]
fn a_cifar_label_out_of_range_names_the_file_and_record_and_nothing_is_written() {
    let env = Env::new();
    // The CIFAR-10 binary layout: per record one label byte and 3,072 pixel bytes.
    let dir = env.path().join("data/cifar-10/cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let batch = |labels: &[u8]| -> Vec<u8> {
        labels
            .iter()
            .flat_map(|&l| std::iter::once(l).chain(std::iter::repeat_n(l.wrapping_mul(20), 3072)))
            .collect()
    };
    for i in 1..=5 {
        let labels: Vec<u8> = if i == 3 { vec![1, 2, 12, 3] } else { vec![0, 1, 2, 3] };
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), batch(&labels)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), batch(&[4, 5])).unwrap();
    let text = r#"name: c
datasets:
  cifar: { kind: cifar10 }
models:
  m: { kind: resnet, depth: 8, width: 4 }
stages:
  - { id: train, uses: train, with: { model: m, dataset: cifar, epochs: 1 } }
"#;
    env.write("c.yaml", text);
    let out = env.run(&["run", "c.yaml", "--data-dir", env.path().join("data").to_str().unwrap()]);
    assert_code(&out, 2);
    assert!(!env.path().join("results").exists());
    let text = stderr(&out);
    let err: Vec<&str> = text.lines().filter(|l| !l.contains(" INFO ")).map(str::trim_end).collect();
    insta::assert_snapshot!(err.join("\n").replace(&env.path().display().to_string(), "<tmp>"));
}

#[test]
fn structured_pruning_that_cannot_apply_is_refused_at_validate() {
    let env = Env::new();
    let text = r#"name: tied
datasets:
  digits: { kind: synthetic-digits, train_size: 100, test_size: 20 }
models:
  tied:
    kind: layers
    layers:
      - { conv: 1, kernel: 3, padding: 1, id: a }
      - { add: input }
      - { flatten: true }
      - { linear: 10 }
stages:
  - { id: train, uses: train, with: { model: tied, dataset: digits } }
  - { id: slim, uses: prune, needs: train, with: { method: structured, sparsity: 0.5 } }
"#;
    insta::assert_snapshot!(invalid(&env, text));
}
