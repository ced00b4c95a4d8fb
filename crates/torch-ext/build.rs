//! Compile `src/bridge.cpp` and `src/dist.cpp` against the headers of the libtorch
//! torch-sys links (the wheel's `include/`, found beside the `lib/` torch-sys reports),
//! with the flags torch-sys uses for its own shim; then the link settings every tch
//! crate shares. `dist.cpp` also sees `gloo-decl/`, the few gloo declarations
//! `ProcessGroupGloo.hpp` needs (the wheel has no gloo headers; see its README).

#[path = "../../build/torch_link.rs"]
mod torch_link;

fn main() {
    torch_link::main();
    for f in ["src/bridge.cpp", "src/dist.cpp", "src/guarded.hpp", "gloo-decl"] {
        println!("cargo:rerun-if-changed={f}");
    }
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not report its libtorch directory (DEP_TCH_LIBTORCH_LIB)");
    };
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| lib.into());
    let include = lib.join("../include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("src/bridge.cpp")
        .file("src/dist.cpp")
        .include(&include)
        .include("gloo-decl")
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // ProcessGroupGloo.hpp is empty without it (libtorch is built with it).
        .define("USE_C10D_GLOO", None)
        // libtorch's headers are not warning-clean; ours is small enough to read.
        .warnings(false)
        .compile("slimbench_torch_ext");
}
