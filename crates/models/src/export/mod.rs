//! A model file to a file other runtimes load: ONNX (ONNX Runtime, PyTorch's `onnx`
//! tools) or TorchScript (`torch.jit.load`), written beside the safetensors file as
//! `<stem>.onnx` / `<stem>.pt` ([`ensure`]).
//!
//! * ONNX ([`onnx_bytes`]): the model's graph through `slimbench-onnx`'s writer with
//!   the exact stored weights: fp32; fp16/bf16 as half initializers with a `Cast` to
//!   fp32; int8 as the stored integers and scales, on dynamic int8 (`MatMulInteger`)
//!   for [`Kernel::Int8Dynamic`], in the QDQ format at the calibrated grids for
//!   [`Kernel::Int8Static`], dequantized otherwise. Low-rank layers are two `Gemm`s,
//!   a structurally pruned model is its smaller graph, unstructured zeros are stored
//!   dense.
//! * TorchScript: the model's forward as libtorch runs it for evaluation on the CPU
//!   (half weights upcast to fp32), traced, saved, loaded back and checked against the
//!   model on a second batch size. Models on fbgemm's kernels are traced in their fp32
//!   form (static int8 as its fake-quantized twin): libtorch cannot trace the packed
//!   weights of slimbench's C++ bridge (see `torchscript`).

mod onnx;
mod torchscript;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use slimbench_core::artifact::{Kernel, ModelMeta, Precision};
use slimbench_core::fsutil::{self, FsError};

use crate::ModelError;

pub use onnx::onnx_bytes;

/// Formats a variant is exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// ONNX (opset 17): ONNX Runtime, `onnx`, most inference engines.
    Onnx,
    /// TorchScript (a traced module): `torch.jit.load`, libtorch.
    TorchScript,
}

impl Format {
    /// Every format, in the order they are written.
    pub const ALL: [Format; 2] = [Format::Onnx, Format::TorchScript];

    /// Its name on the command line (`onnx`, `torchscript`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Onnx => "onnx",
            Format::TorchScript => "torchscript",
        }
    }

    /// The extension of its files (`onnx`, `pt`).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Onnx => "onnx",
            Format::TorchScript => "pt",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = ExportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "onnx" => Ok(Format::Onnx),
            "torchscript" | "pt" => Ok(Format::TorchScript),
            _ => Err(ExportError::UnknownFormat(s.to_string())),
        }
    }
}

/// A file written (or found up to date) beside a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// What the export did that a user should know (precision kept or changed, forms
    /// chosen, what a runtime will fuse).
    pub notes: Vec<String>,
}

/// Why a model could not be exported. Messages name the model file and, where one is
/// at fault, the node.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model file could not be read or rebuilt.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The ONNX writer refused a node (or the weights).
    #[error("{file}: {source}")]
    Onnx {
        /// The model file (or `model <name>` when exporting from memory).
        file: String,
        /// Why, naming the node.
        source: slimbench_onnx::ExportError,
    },
    /// Tracing, saving or reloading the TorchScript module failed.
    #[error("{file}: TorchScript: {msg}")]
    TorchScript {
        /// The model file.
        file: String,
        /// What failed.
        msg: String,
    },
    /// The model's metadata cannot be exported as it stands.
    #[error("{file}: {msg}")]
    Unsupported {
        /// The model file.
        file: String,
        /// Why.
        msg: String,
    },
    /// The exported file could not be written.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A format name that is not one of [`Format`]'s.
    #[error("unknown export format `{0}` (onnx, torchscript)")]
    UnknownFormat(String),
}

/// The kernel a model's TorchScript file computes as, for a model stored with `meta`
/// (loaded in fp32): its own where libtorch can trace it (dense), the fake-quantized
/// form for static int8, dense fp32 for the others (see the module docs).
pub fn torchscript_kernel(meta: &ModelMeta) -> Kernel {
    torchscript::traced_kernel(meta)
}

/// Metadata key of the notes stored in an ONNX file (read back when it is reused).
const NOTES_KEY: &str = "slimbench.notes";

/// The path `<file stem>.<ext>` beside `file`.
pub fn path_for(file: &Path, format: Format) -> PathBuf {
    file.with_extension(format.extension())
}

/// Writes `<file stem>.<ext>` beside the safetensors model file `file` (atomically,
/// temp + rename, via `slimbench_core::fsutil`), unless one newer than `file` is
/// already there; returns it.
pub fn ensure(file: &Path, format: Format) -> Result<Exported, ExportError> {
    let out = path_for(file, format);
    let modified = |p: &Path| -> Result<SystemTime, FsError> {
        std::fs::metadata(p).and_then(|m| m.modified()).map_err(|e| FsError::new("reading the time of", p, e))
    };
    let source_time = modified(file)?;
    if out.is_file() && modified(&out)? > source_time {
        let meta = crate::store::read_meta(file)?;
        let notes = match format {
            Format::Onnx => onnx::notes_in(&out).unwrap_or_else(|| common_notes(&meta)),
            Format::TorchScript => torchscript::notes(&meta),
        };
        return Ok(Exported { bytes: fsutil::file_size(&out)?, path: out, notes });
    }
    let origin = file.display().to_string();
    let (bytes, notes) = match format {
        Format::Onnx => {
            let (model, meta) = crate::store::load(file, tch::Device::Cpu)?;
            let exact = crate::store::read_int8(file)?;
            onnx::write(&model, &meta, Some(&exact), &origin)?
        }
        Format::TorchScript => torchscript::write(file, &origin)?,
    };
    fsutil::atomic_write(&out, &bytes)?;
    Ok(Exported { path: out, bytes: bytes.len() as u64, notes })
}

/// What every format says about a model, from its metadata alone.
fn common_notes(meta: &ModelMeta) -> Vec<String> {
    let mut notes = Vec::new();
    if !meta.factored.is_empty() {
        let layers: Vec<String> = meta.factored.iter().map(|(l, r)| format!("{l} (rank {r})")).collect();
        notes.push(format!("low-rank layers as two matrix products each: {}", layers.join(", ")));
    }
    if meta.sparsity > 0.0 {
        notes.push(format!(
            "{:.1}% of the conv/linear weights are zero: stored dense (the runtimes multiply the zeros)",
            meta.sparsity * 100.0
        ));
    }
    if meta.kernel.cuda_only() {
        let form = match meta.precision {
            Precision::Int8 => "its int8 weights dequantized to fp32",
            Precision::Fp16 => "its fp16 weights cast to fp32",
            Precision::Bf16 => "its bf16 weights cast to fp32",
            Precision::Fp32 => "fp32",
        };
        notes.push(format!("{} runs on CUDA only: exported as {form}", meta.kernel.describe()));
    }
    if meta.kernel == Kernel::Fp16Dynamic {
        notes.push(
            "fbgemm's fp16-weight kernel: fp16 weights cast to fp32 (fbgemm too multiplies them in fp32)"
                .into(),
        );
    }
    notes
}

#[cfg(test)]
mod tests;
