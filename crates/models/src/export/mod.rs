//! Export of a saved model variant for other runtimes.
//!
//! PLACEHOLDER on the `backends` branch: the real exporter (ONNX with QDQ for int8,
//! TorchScript) is being written on its own branch and replaces this file, with the
//! same signatures, when both are merged. Until then [`ensure`] always fails, so the
//! `onnxruntime` and `tract` evaluation backends skip every variant with that reason.

use std::path::{Path, PathBuf};

/// A format a variant can be exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ONNX (`<stem>.onnx`).
    Onnx,
    /// TorchScript (`<stem>.pt`).
    TorchScript,
}

/// An exported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Where it was written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Remarks on the export (ops replaced, precision kept or changed).
    pub notes: Vec<String>,
}

/// Why a variant could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The exporter is not part of this build.
    #[error("{}: ONNX export is not built yet (placeholder until the exporter lands)", file.display())]
    NotBuilt {
        /// The model file that was to be exported.
        file: PathBuf,
    },
}

/// Writes `<stem>.onnx` beside the safetensors model `file` (atomically) unless a newer
/// one is there; returns it.
pub fn ensure(file: &Path, format: Format) -> Result<Exported, ExportError> {
    let _ = format;
    Err(ExportError::NotBuilt { file: file.to_path_buf() })
}
