//! The link settings every tch crate shares (`build/torch_link.rs`), then where the
//! `onnxruntime` backend looks for ONNX Runtime by default:
//! `SLIMBENCH_ONNXRUNTIME_DEFAULT`, the `onnxruntime/capi/` library of the venv whose
//! torch this crate links. torch-sys reports its libtorch `lib/` directory
//! (`DEP_TCH_LIBTORCH_LIB`, usually through the `.torch` link:
//! `<venv>/lib/python3.11/site-packages/torch/lib`); two folders up is the venv's
//! `site-packages`, where `scripts/setup-torch.sh` installs the `onnxruntime` wheel.
//! The library itself is loaded at run time, so a build without it still succeeds.

#[path = "../../build/torch_link.rs"]
mod torch_link;

use std::path::{Path, PathBuf};

/// The wheel's library file, as `scripts/setup-torch.sh` installs it.
const LIB: &str = "libonnxruntime.so.1.31.1";

fn main() {
    torch_link::main();
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!(
            "cargo:warning=torch-sys did not report its libtorch directory: no default ONNX Runtime path"
        );
        return;
    };
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| PathBuf::from(&lib));
    let Some(site_packages) = lib.parent().and_then(Path::parent) else { return };
    let capi = site_packages.join("onnxruntime").join("capi");
    // Rebuild when the wheel is installed or replaced, so the default follows it.
    println!("cargo:rerun-if-changed={}", capi.display());
    // The versioned file the wheel ships, or another libonnxruntime.so* there.
    let found = std::fs::read_dir(&capi).ok().and_then(|d| {
        let mut libs: Vec<PathBuf> = d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .collect();
        libs.sort();
        libs.iter().find(|p| p.ends_with(LIB)).or(libs.last()).cloned()
    });
    let default = found.unwrap_or_else(|| capi.join(LIB));
    println!("cargo:rustc-env=SLIMBENCH_ONNXRUNTIME_DEFAULT={}", default.display());
}
