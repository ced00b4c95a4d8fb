//! `slimbench export`: every variant of a finished run as files other runtimes load,
//! ONNX (`<model>.onnx`) and TorchScript (`<model>.pt`), beside its model file under
//! `artifacts/<stage>/`. One line per file on stdout: path, size, notes.

use std::path::{Path, PathBuf};

use slimbench_core::artifact::{RunInfo, StageManifest};
use slimbench_core::fsutil;
use slimbench_models::export::{self, Format};
use slimbench_pipeline::diag::did_you_mean;
use slimbench_pipeline::resolve::slug;

use super::chain;
use crate::Failure;
use crate::cli::{ExportArgs, ExportFormat};

/// A variant of a run and its model file.
struct Variant {
    name: String,
    file: PathBuf,
}

/// Export the run's variants; fail (exit 1) naming each file that could not be written,
/// after writing the others.
pub fn run(a: ExportArgs) -> Result<(), Failure> {
    let mut formats: Vec<Format> = a
        .format
        .iter()
        .map(|f| match f {
            ExportFormat::Onnx => Format::Onnx,
            ExportFormat::Torchscript => Format::TorchScript,
        })
        .collect();
    if formats.is_empty() {
        formats = Format::ALL.to_vec();
    }
    formats.sort();
    formats.dedup();
    let run_dir = resolve(&a.run_dir)?;
    let mut variants = variants(&run_dir)?;
    if !a.variant.is_empty() {
        for v in &a.variant {
            if !variants.iter().any(|x| &x.name == v) {
                let names: Vec<&str> = variants.iter().map(|x| x.name.as_str()).collect();
                let hint = match did_you_mean(v, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("its variants: {}", names.join(", ")),
                };
                return Err(Failure::Invalid(format!(
                    "--variant {v}: {} has no such variant\n  = hint: {hint}",
                    run_dir.display()
                )));
            }
        }
        variants.retain(|x| a.variant.contains(&x.name));
    }
    for v in &variants {
        if !v.file.is_file() {
            return Err(Failure::Invalid(format!(
                "{} (variant `{}`) is missing: the run is incomplete",
                v.file.display(),
                v.name
            )));
        }
    }
    let mut failed = Vec::new();
    let mut written = 0;
    for v in &variants {
        for &format in &formats {
            match export::ensure(&v.file, format) {
                Ok(e) => {
                    written += 1;
                    let notes =
                        if e.notes.is_empty() { String::new() } else { format!("  {}", e.notes.join("; ")) };
                    println!("{}  {}{notes}", e.path.display(), size(e.bytes));
                }
                Err(e) => failed.push(format!("variant `{}` to {}: {}", v.name, format.name(), chain(&e))),
            }
        }
    }
    tracing::info!("{written} file(s) for {} variant(s) in {}", variants.len(), run_dir.display());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Failed(format!("{} export(s) failed:\n  {}", failed.len(), failed.join("\n  "))))
    }
}

/// The run a path means: a run directory, or a pipeline's results folder (its
/// `latest` run).
fn resolve(path: &Path) -> Result<PathBuf, Failure> {
    let hint = "  = hint: give a finished run, results/<pipeline>/<run-id>, or results/<pipeline> for its latest run";
    if !path.is_dir() {
        let what = if path.exists() { "not a directory" } else { "no such directory" };
        return Err(Failure::Invalid(format!("{}: {what}\n{hint}", path.display())));
    }
    if path.join("run.json").is_file() {
        return Ok(path.to_path_buf());
    }
    let latest = path.join("latest");
    if latest.join("run.json").is_file() {
        return Ok(match std::fs::read_link(&latest) {
            Ok(target) if target.is_relative() => path.join(target),
            Ok(target) => target,
            Err(_) => latest,
        });
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let why = if name.starts_with(".partial-") {
        "an unfinished run (the staging directory of a run that was interrupted or is still running)"
    } else {
        "not a finished run: it has no run.json"
    };
    Err(Failure::Invalid(format!("{} is {why}\n{hint}", path.display())))
}

/// Every variant of every stage of the run, in the run's order.
fn variants(run_dir: &Path) -> Result<Vec<Variant>, Failure> {
    let info: RunInfo =
        fsutil::read_json(&run_dir.join("run.json")).map_err(|e| Failure::Invalid(chain(&e)))?;
    let mut out = Vec::new();
    for stage in info.stages.iter().filter(|s| s.kind != "report") {
        let dir = run_dir.join("artifacts").join(slug(&stage.id));
        let manifest_path = dir.join("stage.json");
        if !manifest_path.is_file() {
            return Err(Failure::Invalid(format!(
                "{} is an incomplete run: stage `{}` has no {}",
                run_dir.display(),
                stage.id,
                Path::new("artifacts").join(slug(&stage.id)).join("stage.json").display()
            )));
        }
        let manifest: StageManifest =
            fsutil::read_json(&manifest_path).map_err(|e| Failure::Invalid(chain(&e)))?;
        out.extend(
            manifest.variants.iter().map(|v| Variant { name: v.name.clone(), file: dir.join(&v.file) }),
        );
    }
    if out.is_empty() {
        return Err(Failure::Invalid(format!("{} has no model variants to export", run_dir.display())));
    }
    Ok(out)
}

/// A file size as `83.2 KB`.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1000 => format!("{b} B"),
        b if b < 1_000_000 => format!("{:.1} KB", b as f64 / 1e3),
        b if b < 1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.2} GB", b as f64 / 1e9),
    }
}
