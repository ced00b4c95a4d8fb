//! Compile `src/bridge.cpp` and `src/dist.cpp` against the headers of the libtorch
//! torch-sys links (the wheel's `include/`, found beside the `lib/` torch-sys reports),
//! with the flags torch-sys uses for its own shim; then the link settings every tch
//! crate shares. `dist.cpp` also sees `gloo-decl/`, the few gloo declarations
//! `ProcessGroupGloo.hpp` needs (the wheel has no gloo headers; see its README).
//!
//! `src/dist_nccl.cpp` (`c10d::ProcessGroupNCCL`) is compiled too when this libtorch
//! has `libtorch_cuda.so` and the CUDA, CCCL and NCCL headers are found; the cfg
//! `slimbench_nccl` tells `src/dist.rs`. Otherwise `SLIMBENCH_NO_NCCL` says why, for
//! its error. The headers are looked for in the `nvidia-*` wheels beside torch (the CUDA
//! wheel brings `nvidia-cuda-runtime`, `nvidia-nccl-cu13`, cuBLAS, ... but not the
//! `crt/` and CCCL headers `cuda_runtime.h` includes: those are `nvidia-cuda-crt` and
//! `nvidia-cuda-cccl`), then in `$CUDA_HOME` and `/usr/local/cuda`.
//! `SLIMBENCH_NCCL=0` leaves NCCL out; `SLIMBENCH_NCCL=1` makes its absence an error.

#[path = "../../build/torch_link.rs"]
mod torch_link;

use std::path::{Path, PathBuf};

/// The headers `ProcessGroupNCCL.hpp` includes, directly or through ATen/cuda and c10/cuda,
/// and the pip package that has each.
const NCCL_HEADERS: [(&str, &str); 7] = [
    ("cuda_runtime.h", "nvidia-cuda-runtime"),
    ("crt/host_config.h", "nvidia-cuda-crt"),
    ("nv/target", "nvidia-cuda-cccl"),
    ("cublas_v2.h", "nvidia-cublas"),
    ("cusparse.h", "nvidia-cusparse"),
    ("cusolverDn.h", "nvidia-cusolver"),
    ("nccl.h", "nvidia-nccl-cu13"),
];

fn main() {
    torch_link::main();
    for f in [
        "src/bridge.cpp",
        "src/dist.cpp",
        "src/dist.hpp",
        "src/dist_nccl.cpp",
        "src/guarded.hpp",
        "gloo-decl",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo::rustc-check-cfg=cfg(slimbench_nccl)");
    println!("cargo:rerun-if-env-changed=SLIMBENCH_NCCL");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    };
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| lib.into());
    let include = lib.join("../include");
    // ProcessGroupGloo.hpp is empty without USE_C10D_GLOO (libtorch is built with it).
    torch_build(&include)
        .file("src/bridge.cpp")
        .file("src/dist.cpp")
        .include("gloo-decl")
        .define("USE_C10D_GLOO", None)
        .compile("slimbench_torch_ext");

    let nccl = match std::env::var("SLIMBENCH_NCCL").as_deref() {
        Ok("0") => Err("SLIMBENCH_NCCL=0 at build time".to_string()),
        _ => build_nccl(&lib, &include),
    };
    match nccl {
        Ok(()) => {
            println!("cargo:rustc-cfg=slimbench_nccl");
            println!("cargo:rustc-env=SLIMBENCH_NO_NCCL=");
        }
        Err(reason) => {
            if std::env::var("SLIMBENCH_NCCL").as_deref() == Ok("1") {
                panic!("SLIMBENCH_NCCL=1 but NCCL cannot be built: {reason}");
            }
            println!("cargo:rustc-env=SLIMBENCH_NO_NCCL={reason}");
        }
    }
}

/// A C++ build against libtorch's headers, with torch-sys's flags.
fn torch_build(include: &Path) -> cc::Build {
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // libtorch's headers are not warning-clean; ours are small enough to read.
        .warnings(false);
    build
}

/// Compile `dist_nccl.cpp` into its own library, or say why not.
fn build_nccl(lib: &Path, include: &Path) -> Result<(), String> {
    // Not when torch_link leaves libtorch_cuda out (SLIMBENCH_LINK_CUDA=0, for images
    // without the CUDA libraries): this object needs it.
    if std::env::var("SLIMBENCH_LINK_CUDA").as_deref() == Ok("0") {
        return Err("SLIMBENCH_LINK_CUDA=0 at build time".into());
    }
    if !lib.join("libtorch_cuda.so").exists() {
        return Err(format!(
            "libtorch_cuda.so not found at build time in {} (a CPU-only libtorch)",
            lib.display()
        ));
    }
    let dirs = cuda_include_dirs(lib);
    for d in &dirs {
        println!("cargo:rerun-if-changed={}", d.display());
    }
    let missing: Vec<String> = NCCL_HEADERS
        .iter()
        .filter(|(h, _)| !dirs.iter().any(|d| d.join(h).exists()))
        .map(|(h, pkg)| format!("{h} (pip package {pkg})"))
        .collect();
    if !missing.is_empty() {
        let cuda = cuda_version(lib).map(|v| format!(" for CUDA {v}")).unwrap_or_default();
        return Err(format!(
            "CUDA/NCCL headers not found at build time: {}; install them{cuda} in torch's Python environment",
            missing.join(", ")
        ));
    }
    let mut build = torch_build(include);
    build.file("src/dist_nccl.cpp").define("USE_C10D_NCCL", None);
    for d in &dirs {
        build.include(d);
    }
    // A header set that still fails (a version mismatch) leaves NCCL out with a warning
    // rather than failing the whole build; SLIMBENCH_NCCL=1 makes it fatal.
    build.try_compile("slimbench_torch_ext_nccl").map_err(|e| {
        let reason = format!("src/dist_nccl.cpp did not compile: {e}");
        println!("cargo:warning=building without NCCL: {reason}");
        reason
    })?;
    // The object calls into libtorch_cuda and libc10_cuda, so they are needed whatever
    // --as-needed decides for torch-sys's own link (torch_link also keeps torch_cuda).
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cuda");
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    Ok(())
}

/// Include directories with CUDA or NCCL headers: the `nvidia-*` wheels installed beside
/// torch (`site-packages/nvidia/*/include`, and the `cccl/` directory within, where the
/// CCCL wheel puts them), then `$CUDA_HOME/include` and `/usr/local/cuda/include`.
fn cuda_include_dirs(lib: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    // torch/lib -> site-packages/nvidia
    if let Ok(entries) = std::fs::read_dir(lib.join("../../nvidia")) {
        let mut wheels: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("include")).collect();
        wheels.sort();
        roots.extend(wheels);
    }
    if let Ok(home) = std::env::var("CUDA_HOME") {
        roots.push(PathBuf::from(home).join("include"));
    }
    roots.push(PathBuf::from("/usr/local/cuda/include"));
    let mut dirs = Vec::new();
    for root in roots.into_iter().filter(|d| d.is_dir()) {
        let cccl = root.join("cccl");
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        if !dirs.contains(&root) {
            dirs.push(root);
        }
        if cccl.is_dir() {
            dirs.push(cccl);
        }
    }
    dirs
}

/// The CUDA version of a PyPI torch (`cuda = '13.0'` in `torch/version.py`).
fn cuda_version(lib: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib.join("../version.py")).ok()?;
    text.lines().find_map(|l| {
        let v = l.strip_prefix("cuda")?.split('=').nth(1)?.trim().trim_matches(['\'', '"']);
        (!v.is_empty() && v != "None").then(|| v.to_string())
    })
}
