//! Export of model files: where files go, when they are rewritten, that ONNX files
//! hold the model's graph and weights, that TorchScript files give its logits.

use std::path::{Path, PathBuf};

use slimbench_core::artifact::{IoShape, Kernel, ModelMeta, Precision};
use slimbench_core::config::{MlpConfig, ModelConfig, SeedCnnConfig};
use tch::{Device, Kind, Tensor};

use super::*;
use crate::Model;
use crate::store::{Encoding, save};

const IO: IoShape = IoShape { channels: 1, height: 28, width: 28, classes: 10 };

fn seed_file(dir: &Path) -> (PathBuf, Model, ModelMeta) {
    let config = ModelConfig::SeedCnn(SeedCnnConfig::default());
    let m = Model::build("seed", &config, IO, Device::Cpu, Some(3)).unwrap();
    let meta = ModelMeta::new("seed", config, IO, "digits", "baseline");
    let p = dir.join("model.safetensors");
    save(&m, &meta, &p, Encoding::Dense).unwrap();
    (p, m, meta)
}

#[test]
fn formats_have_names_extensions_and_parse() {
    assert_eq!(Format::ALL.map(Format::name), ["onnx", "torchscript"]);
    assert_eq!(Format::ALL.map(Format::extension), ["onnx", "pt"]);
    assert_eq!("TorchScript".parse::<Format>().unwrap(), Format::TorchScript);
    assert_eq!("pt".parse::<Format>().unwrap(), Format::TorchScript);
    let e = "tflite".parse::<Format>().unwrap_err();
    assert_eq!(e.to_string(), "unknown export format `tflite` (onnx, torchscript)");
}

#[test]
fn onnx_is_written_beside_the_file_once_and_holds_its_graph_and_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (p, m, _) = seed_file(dir.path());
    let e = ensure(&p, Format::Onnx).unwrap();
    assert_eq!(e.path, dir.path().join("model.onnx"));
    assert_eq!(e.bytes, std::fs::metadata(&e.path).unwrap().len());
    let back = slimbench_onnx::import(&e.path).unwrap();
    assert_eq!(back.graph, m.graph);
    for ((name, t), (wn, _, v)) in m.named().iter().zip(&back.weights) {
        assert_eq!(name, wn);
        assert_eq!(Vec::<f32>::try_from(t.flatten(0, -1)).unwrap(), *v, "{name}");
    }
    // Newer than the model: left alone, its notes read back.
    let before = std::fs::metadata(&e.path).unwrap().modified().unwrap();
    let again = ensure(&p, Format::Onnx).unwrap();
    assert_eq!(std::fs::metadata(&e.path).unwrap().modified().unwrap(), before);
    assert_eq!(again, e);
    // The model rewritten after it: exported again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (_, _, meta) = seed_file(dir.path());
    assert_eq!(meta.technique, "baseline");
    ensure(&p, Format::Onnx).unwrap();
    assert!(std::fs::metadata(&e.path).unwrap().modified().unwrap() > before);
}

#[test]
fn torchscript_gives_the_models_logits_on_any_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let (p, m, _) = seed_file(dir.path());
    let e = ensure(&p, Format::TorchScript).unwrap();
    assert_eq!(e.path, dir.path().join("model.pt"));
    let module = tch::CModule::load(&e.path).unwrap();
    let x = Tensor::rand([7, 1, 28, 28], (Kind::Float, Device::Cpu));
    let d =
        (module.forward_ts(&[&x]).unwrap() - tch::no_grad(|| m.forward(&x))).abs().max().double_value(&[]);
    assert!(d < 1e-6, "{d}");
}

#[test]
fn a_file_that_is_not_a_model_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.safetensors");
    std::fs::write(&p, b"nope").unwrap();
    let e = ensure(&p, Format::Onnx).unwrap_err().to_string();
    assert!(e.contains("x.safetensors") && e.contains("not a safetensors file"), "{e}");
}

/// An MLP quantized as a quantize stage would, on `kernel`.
fn int8_file(dir: &Path, kernel: Kernel) -> PathBuf {
    let config = ModelConfig::Mlp(MlpConfig { hidden: vec![32] });
    let m = Model::build("mlp", &config, IO, Device::Cpu, Some(4)).unwrap();
    let meta = ModelMeta {
        precision: Precision::Int8,
        kernel,
        ..ModelMeta::new("mlp", config, IO, "digits", "int8-dynamic")
    };
    let p = dir.join(format!("{kernel:?}.safetensors"));
    save(&m, &meta, &p, Encoding::Dense).unwrap();
    p
}

#[test]
fn int8_weights_are_the_files_integers_and_scales() {
    let dir = tempfile::tempdir().unwrap();
    let p = int8_file(dir.path(), Kernel::Int8Dynamic);
    let exact = crate::store::read_int8(&p).unwrap();
    assert_eq!(exact.keys().collect::<Vec<_>>(), ["fc0.weight", "fc1.weight"]);
    let (model, meta) = crate::store::load(&p, Device::Cpu).unwrap();
    // From memory: the same integers; scales equal to the file's within a bit.
    let w = onnx::weights_for_test(&model, &meta, None);
    for (name, stored) in &exact {
        let got = w.iter().find(|w| &w.name == name).unwrap();
        let slimbench_onnx::WeightData::Int8 { values, scales } = &got.data else {
            panic!("{name} not int8")
        };
        assert_eq!(values, &stored.values, "{name}");
        for (a, b) in scales.iter().zip(&stored.scales) {
            assert!((a - b).abs() <= b * 1.2e-7, "{name}: {a} vs {b}");
        }
    }
    let e = ensure(&p, Format::Onnx).unwrap();
    assert!(e.notes.iter().any(|n| n.contains("2 linear layer(s) on dynamic int8")), "{:?}", e.notes);
}

#[test]
fn fbgemm_kernels_do_not_trace_so_their_fp32_form_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let p = int8_file(dir.path(), Kernel::Int8Dynamic);
    // On its own kernel, libtorch refuses the packed weights (a thread of its own: a
    // failed trace leaves the thread's tracing state behind).
    let err = std::thread::spawn(move || {
        let (mut model, meta) = crate::store::load(&p, Device::Cpu).unwrap();
        model.freeze();
        model.set_kernel(Kernel::Int8Dynamic, &meta).unwrap();
        torchscript::trace(&model).map(|_| ())
    })
    .join()
    .unwrap()
    .unwrap_err();
    assert!(err.contains("is not part of the active trace"), "{err}");
    // So the export traces the dequantized fp32 form, which gives the model's logits.
    let p = int8_file(dir.path(), Kernel::Int8Dynamic);
    let e = ensure(&p, Format::TorchScript).unwrap();
    assert!(e.notes[0].contains("traced in fp32 with the int8 weights dequantized"), "{:?}", e.notes);
    let (model, _) = crate::store::load(&p, Device::Cpu).unwrap();
    let x = Tensor::rand([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    let y = tch::CModule::load(&e.path).unwrap().forward_ts(&[&x]).unwrap();
    assert!((y - tch::no_grad(|| model.forward(&x))).abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn a_reshape_is_traced_for_any_batch_size() {
    use slimbench_graph::{Builder, Op};
    let dir = tempfile::tempdir().unwrap();
    let mut b = Builder::new([1, 28, 28]);
    b.then("rs", Op::Reshape { shape: vec![4, -1, 14] });
    b.then("conv", Op::conv(2, 3, 1, 1, 1, true));
    b.then("flat", Op::Flatten);
    b.then("fc", Op::Linear { out: 10, bias: true });
    let config = ModelConfig::SeedCnn(SeedCnnConfig::default());
    let m = Model::from_graph("r", &config, b.finish(), IO, Device::Cpu, Some(2)).unwrap();
    let p = dir.path().join("r.safetensors");
    save(&m, &ModelMeta::new("r", config, IO, "digits", "baseline"), &p, Encoding::Dense).unwrap();
    // `ensure` traces on 2 images and checks the reloaded module on 5.
    let e = ensure(&p, Format::TorchScript).unwrap();
    assert!(e.notes.is_empty(), "{:?}", e.notes);
}

#[test]
fn cuda_only_kernels_export_their_fp32_or_dequantized_form() {
    let dir = tempfile::tempdir().unwrap();
    let config = ModelConfig::Mlp(MlpConfig { hidden: vec![16] });
    for (kernel, precision, form) in [
        (Kernel::Int8Mm, Precision::Int8, "its int8 weights dequantized to fp32"),
        (Kernel::Fp8, Precision::Fp16, "its fp16 weights cast to fp32"),
        (Kernel::AmpBf16, Precision::Fp32, "fp32"),
    ] {
        let mut m = Model::build("mlp", &config, IO, Device::Cpu, Some(5)).unwrap();
        if precision == Precision::Fp16 {
            m.set_kind(Kind::Half);
        }
        let meta =
            ModelMeta { precision, kernel, ..ModelMeta::new("mlp", config.clone(), IO, "digits", "x") };
        let p = dir.path().join(format!("{kernel:?}.safetensors"));
        save(&m, &meta, &p, Encoding::Dense).unwrap();
        let (mut model, _) = crate::store::load(&p, Device::Cpu).unwrap();
        model.set_kind(Kind::Float);
        let x = Tensor::rand([4, 1, 28, 28], (Kind::Float, Device::Cpu));
        let reference = tch::no_grad(|| model.forward(&x));
        for format in Format::ALL {
            let e = ensure(&p, format).unwrap();
            let said = format!("{} runs on CUDA only: exported as {form}", kernel.describe());
            assert!(e.notes.contains(&said), "{kernel:?} {format}: {:?}", e.notes);
            if format == Format::TorchScript {
                let y = tch::CModule::load(&e.path).unwrap().forward_ts(&[&x]).unwrap();
                assert!((y - &reference).abs().max().double_value(&[]) < 1e-6, "{kernel:?}");
            }
        }
    }
}
