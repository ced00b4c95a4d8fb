//! A model to TorchScript: its forward, in the form slimbench's CPU evaluation runs it,
//! traced by libtorch, saved, loaded back and checked against the model on a batch of
//! another size.
//!
//! fbgemm's kernels (dynamic int8, fp16 weights, static int8) run through slimbench's
//! C++ bridge on packed weights (`torch.classes.quantized.*PackedParamsBase`) that are
//! not attributes of the traced module, and libtorch refuses to trace them ("Tried to
//! trace <...PackedParamsBase object> but it is not part of the active trace"; the
//! tests check it still does). Those models are traced in their fp32 form instead:
//! static int8 as its fake-quantized twin (dequantized weights, activations rounded to
//! their int8 grids: the simulated form `evaluate` times), dynamic int8 with its
//! weights dequantized, fp16 weights upcast.

use std::path::Path;

use slimbench_core::artifact::{Kernel, ModelMeta, Precision};
use tch::{CModule, Device, Kind, Tensor};

use super::{ExportError, common_notes};
use crate::Model;
use crate::store;

/// The kernel a model is traced on: its own where libtorch can trace it, else the fp32
/// form nearest to it.
pub(super) fn traced_kernel(meta: &ModelMeta) -> Kernel {
    match meta.kernel {
        Kernel::Int8Static | Kernel::FakeQuant => Kernel::FakeQuant,
        _ => Kernel::Dense,
    }
}

/// The model file loaded on the CPU in fp32 (half weights upcast, int8 ones
/// dequantized) on `kernel`, its weights frozen (constants of the trace).
fn load(file: &Path, kernel: Kernel) -> Result<Model, ExportError> {
    let (mut model, meta) = store::load(file, Device::Cpu)?;
    model.set_kind(Kind::Float);
    model.freeze();
    model.set_kernel(kernel, &meta)?;
    Ok(model)
}

/// Deterministic images in [0, 1) for `model`'s input.
fn images(model: &Model, n: i64, seed: i64) -> Tensor {
    let io = model.io;
    tch::manual_seed(seed);
    Tensor::rand([n, io.channels, io.height, io.width], (Kind::Float, Device::Cpu))
}

/// Traces `model`, saves the module, loads the saved bytes back and runs them on a
/// batch of another size: the bytes, and how far the reloaded module's logits are
/// from the model's (max absolute difference). Call it on a thread of its own: a
/// failed trace can leave libtorch's (thread-local) tracing state behind.
pub(super) fn trace(model: &Model) -> Result<(Vec<u8>, f64), String> {
    let _g = tch::no_grad_guard();
    let example = images(model, 2, 1);
    // A panic inside the trace is caught and the trace ended with no output.
    let mut panicked = None;
    let module = CModule::create_by_tracing("slimbench", "forward", &[example], &mut |xs: &[Tensor]| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.forward(&xs[0]))) {
            Ok(y) => vec![y],
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                panicked = Some(msg.unwrap_or_default());
                vec![]
            }
        }
    });
    if let Some(msg) = panicked {
        return Err(format!("tracing failed: {msg}"));
    }
    let module = module.map_err(|e| format!("tracing failed: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let tmp = dir.path().join("model.pt");
    module.save(&tmp).map_err(|e| format!("saving failed: {e}"))?;
    let bytes = std::fs::read(&tmp).map_err(|e| format!("reading {}: {e}", tmp.display()))?;
    let loaded =
        CModule::load_data(&mut bytes.as_slice()).map_err(|e| format!("loading it back failed: {e}"))?;
    let x = images(model, 5, 2);
    let y = loaded.forward_ts(&[&x]).map_err(|e| format!("running it failed: {e}"))?;
    let reference = model.forward(&x);
    if y.size() != reference.size() {
        return Err(format!("it gives {:?} logits for 5 images, the model {:?}", y.size(), reference.size()));
    }
    let diff = (y - reference).abs().max().double_value(&[]);
    Ok((bytes, diff))
}

/// How far a reloaded trace may be from the model it traced: the same kernels on the
/// same inputs give the same logits, up to the order of floating-point sums.
const TOLERANCE: f64 = 1e-5;

/// The TorchScript bytes of the model file and notes about them.
pub(super) fn write(file: &Path, origin: &str) -> Result<(Vec<u8>, Vec<String>), ExportError> {
    let fail = |msg: String| ExportError::TorchScript { file: origin.to_string(), msg };
    let meta = store::read_meta(file)?;
    let kernel = traced_kernel(&meta);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| -> Result<Result<(Vec<u8>, f64), String>, ExportError> { Ok(trace(&load(file, kernel)?)) })
            .join()
            .unwrap_or_else(|_| Ok(Err("the tracing thread panicked".into())))
    })?;
    let (bytes, diff) = outcome.map_err(&fail)?;
    if diff > TOLERANCE {
        return Err(fail(format!("the traced module's logits differ from the model's by up to {diff:.3e}")));
    }
    Ok((bytes, notes(&meta)))
}

/// The notes of a model's TorchScript file.
pub(super) fn notes(meta: &ModelMeta) -> Vec<String> {
    let mut notes = Vec::new();
    let bridge = "libtorch cannot trace fbgemm's packed weights (slimbench's C++ bridge ops)";
    match meta.kernel {
        Kernel::Int8Static => notes.push(format!(
            "{bridge}: traced as the fake-quantized fp32 form (int8 weights dequantized, activations rounded to \
             their calibrated int8 grids), not on fbgemm's int8 kernels"
        )),
        Kernel::Int8Dynamic => notes.push(format!(
            "{bridge}: traced in fp32 with the int8 weights dequantized (activations are not quantized)"
        )),
        Kernel::Fp16Dynamic => {
            notes.push(format!("{bridge}: traced in fp32 with the fp16 weights upcast (the .pt holds fp32 weights)"))
        }
        Kernel::FakeQuant => notes.push("traced as the fake-quantized fp32 form it runs on".into()),
        // `common_notes` says what a CUDA-only kernel's file holds.
        k if k.cuda_only() => {}
        _ => match meta.precision {
            Precision::Fp16 | Precision::Bf16 => notes.push(format!(
                "weights stored in {} upcast to fp32, as slimbench computes on the CPU: the .pt holds fp32 weights",
                meta.precision.as_str()
            )),
            Precision::Int8 => notes.push("int8 weights dequantized: fp32 weights and arithmetic".into()),
            Precision::Fp32 => {}
        },
    }
    notes.extend(common_notes(meta));
    notes
}
