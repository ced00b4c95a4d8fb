//! Imported ONNX models compute what PyTorch computed: the fixtures of
//! `crates/onnx/tests/fixtures` (exported by `scripts/export_onnx_fixtures.py`), each
//! with 100 inputs and PyTorch's logits, run through slimbench's own layers.

use std::path::PathBuf;

use slimbench_core::artifact::IoShape;
use slimbench_core::config::{ModelConfig, OnnxModelConfig};
use slimbench_models::Model;
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../onnx/tests/fixtures").join(name)
}

fn f32s(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Max |ours - PyTorch| over 100 images, and the two argmaxes' agreement.
fn compare(model: &str, input: &str, shape: [i64; 3]) -> f64 {
    let io = IoShape { channels: shape[0], height: shape[1], width: shape[2], classes: 10 };
    let config = ModelConfig::Onnx(OnnxModelConfig { path: fixture(model) });
    let m = Model::build("m", &config, io, Device::Cpu, None).unwrap_or_else(|e| panic!("{model}: {e}"));
    let xs = Tensor::from_slice(&f32s(input)).view([100, shape[0], shape[1], shape[2]]);
    let stem = model.split('.').next().unwrap();
    let want = Tensor::from_slice(&f32s(&format!("{stem}.logits.f32"))).view([100, 10]);
    let got = tch::no_grad(|| m.forward(&xs));
    assert_eq!(got.size(), [100, 10]);
    assert!(got.argmax(-1, false).eq_tensor(&want.argmax(-1, false)).all().int64_value(&[]) == 1, "{model}");
    (got - want).abs().max().to_kind(Kind::Double).double_value(&[])
}

#[test]
fn resnet20_imports_with_batch_norm_folded_and_kept_and_matches_pytorch() {
    for form in ["resnet20.folded.onnx", "resnet20.bn.onnx"] {
        let d = compare(form, "cifar.input.f32", [3, 32, 32]);
        assert!(d < 1e-4, "{form}: max difference {d}");
    }
}

#[test]
fn mobilenet_v2_and_a_grey_cnn_match_pytorch() {
    for (form, input, shape) in [
        ("mobilenetv2.folded.onnx", "cifar.input.f32", [3, 32, 32]),
        ("mobilenetv2.bn.onnx", "cifar.input.f32", [3, 32, 32]),
        ("grey_cnn.folded.onnx", "grey.input.f32", [1, 28, 28]),
        ("grey_cnn.dynamo.onnx", "grey.input.f32", [1, 28, 28]),
        ("keras_mlp.onnx", "mlp.input.f32", [1, 4, 4]),
    ] {
        let d = compare(form, input, shape);
        assert!(d < 1e-4, "{form}: max difference {d}");
    }
}

#[test]
fn an_imported_model_trains_and_saves_like_any_other() {
    let io = IoShape { channels: 3, height: 32, width: 32, classes: 10 };
    let config = ModelConfig::Onnx(OnnxModelConfig { path: fixture("resnet20.bn.onnx") });
    let m = Model::build("r", &config, io, Device::Cpu, None).unwrap();
    assert!(!m.norms().is_empty(), "batch norms kept");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.safetensors");
    let meta = slimbench_core::artifact::ModelMeta::new("r", config.clone(), io, "shapes", "baseline");
    slimbench_models::store::save(&m, &meta, &path, slimbench_models::store::Encoding::Dense).unwrap();
    // The file carries the graph: it loads without the .onnx file.
    let (back, meta) = slimbench_models::store::load(&path, Device::Cpu).unwrap();
    assert!(meta.graph.is_some());
    let xs = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let d = (m.forward(&xs) - back.forward(&xs)).abs().max().double_value(&[]);
    assert_eq!(d, 0.0);
    assert_eq!(back.param_count(), m.param_count());
    // One training step moves its weights.
    let mut opt = tch::nn::OptimizerConfig::build(tch::nn::Sgd::default(), back.vs(), 0.1).unwrap();
    let before = back.named()[0].1.copy();
    let loss = back.forward_t(&xs, true).cross_entropy_for_logits(&Tensor::from_slice(&[1i64, 2]));
    opt.backward_step(&loss);
    assert!(back.named()[0].1.not_equal_tensor(&before).any().int64_value(&[]) == 1);
}
