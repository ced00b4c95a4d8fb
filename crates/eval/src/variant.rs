//! Load a saved model variant the way evaluation computes with it.

use std::path::Path;

use slimbench_core::artifact::{Kernel, ModelMeta, Precision};
use slimbench_core::cancel::Cancelled;
use slimbench_core::config::ComputeMode;
use slimbench_data::Split;
use slimbench_models::runtime::device_name;
use slimbench_models::{Model, ModelError, store};
use tch::{Device, Kind};

/// Why a variant could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model file could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model cannot compute the way it was asked to.
    #[error("variant `{variant}`: {msg}")]
    Compute {
        /// Variant.
        variant: String,
        /// Why.
        msg: String,
    },
    /// Ctrl-C.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    /// A backend failed while the plan timed it.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
}

/// A model file loaded the way evaluation computes with it.
pub struct Loaded {
    /// The model, packed onto its kernel or upcast as decided.
    pub model: Model,
    /// Its metadata, as stored.
    pub meta: ModelMeta,
    /// What its arithmetic runs in (the metrics table's `compute_precision`).
    pub compute_precision: String,
    /// Remarks on how it computes (packed layers, upcasts).
    pub notes: Vec<String>,
}

/// Load `file` for evaluation: put it on its kernel (or on `kernel`, which overrides
/// it): fbgemm's int8/fp16 linear kernels or its static int8 chain on the CPU, fake
/// quantization, or CUDA's autocast and low-precision matmuls; and decide the
/// arithmetic precision (a half-precision model is upcast on CPUs unless `compute:
/// native`). A `Some(Dense)` override on a file stored in reduced precision always
/// computes in fp32: dequantized weights, as weight-only fake quantization does.
/// `name` names the variant in errors; `probe` is a split to try one forward on when
/// libtorch might lack the precision.
pub fn load_for_eval(
    name: &str,
    file: &Path,
    kernel: Option<Kernel>,
    device: Device,
    probe: &Split,
) -> Result<Loaded, EvalError> {
    let (mut model, meta) = store::load(file, device)?;
    let stored = meta.precision;
    let kernel = kernel.unwrap_or(meta.kernel);
    let fake_quant = kernel == Kernel::Dense && meta.kernel != Kernel::Dense;
    let mut notes = Vec::new();
    let refuse = |msg: String| EvalError::Compute { variant: name.to_string(), msg };

    // Any kernel but the dense one: fp32 weights handed to it.
    let packed = kernel.compute_precision();
    if packed.is_some() {
        if kernel.cpu_only() && device != Device::Cpu {
            return Err(refuse(format!(
                "{} runs on fbgemm, a CPU library; evaluate it with `device: cpu`",
                meta.technique
            )));
        }
        if kernel.cuda_only() && !device.is_cuda() {
            return Err(refuse(format!(
                "{} runs on {}, a CUDA kernel; evaluate it with `device: cuda`",
                meta.technique,
                kernel.describe()
            )));
        }
        model.set_kind(Kind::Float);
        let n = model.set_kernel(kernel, &meta)?;
        let what = if kernel.linear_only() { "linear layer(s)" } else { "layer(s)" };
        notes.push(format!("{n} {what} on {}", kernel.describe()));
        if !meta.fp32_layers.is_empty() && kernel != Kernel::FakeQuant {
            notes.push(format!("kept in fp32: {}", meta.fp32_layers.join(", ")));
        }
    }
    // Decide the arithmetic precision; say so when it differs from the storage.
    let upcast = packed.is_none()
        && stored != Precision::Fp32
        && (fake_quant
            || match meta.compute {
                ComputeMode::Upcast => true,
                ComputeMode::Native => false,
                ComputeMode::Auto => device == Device::Cpu,
            });
    let compute_precision = if let Some(p) = packed {
        p.to_string()
    } else if upcast {
        model.set_kind(Kind::Float);
        notes.push(format!(
            "weights stored in {0}, upcast to fp32 at load: compute ran in fp32{1}",
            stored.as_str(),
            if fake_quant {
                " (the fake-quantized form)"
            } else if meta.compute == ComputeMode::Auto {
                " (CPUs lack native half-precision arithmetic; set compute: native to force it)"
            } else {
                ""
            }
        ));
        "fp32 (upcast)".to_string()
    } else {
        stored.as_str().to_string()
    };
    if packed.is_none() && !upcast && stored != Precision::Fp32 {
        // libtorch panics (rather than erroring) when a kernel lacks this precision on
        // this device; probe once so the failure is a message, not a crash.
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = tch::no_grad_guard();
            let x = crate::images_tensor(probe, 0, 1, device, model.kind());
            let _ = model.forward(&x);
        }));
        if let Err(e) = probe {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(EvalError::Compute {
                variant: name.to_string(),
                msg: format!(
                    "libtorch cannot compute in {} on {}: {}; use `compute: upcast`",
                    stored.as_str(),
                    device_name(device),
                    msg.lines().next().unwrap_or("")
                ),
            });
        }
    }
    Ok(Loaded { model, meta, compute_precision, notes })
}
