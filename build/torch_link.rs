//! Build script shared by every crate that links libtorch (each names it with
//! `build = "../../build/torch_link.rs"`), so their binaries *and test binaries* run
//! with no LD_LIBRARY_PATH and see CUDA when the machine has it.
//!
//! * rpath: the libtorch `lib/` directory torch-sys linked against (it exports it to
//!   direct dependents as `DEP_TCH_LIBTORCH_LIB`, hence each such crate lists
//!   `torch-sys` as a dependency).
//! * `libtorch_cuda.so` is kept as a needed library with `--no-as-needed`: nothing in
//!   our code references its symbols, so the default `--as-needed` would drop it and
//!   `tch::Cuda::is_available()` would be false even on a GPU machine. A CPU-only
//!   libtorch has no such file and nothing is added.
//!   `SLIMBENCH_LINK_CUDA=0` skips it, for builds that must run without the CUDA
//!   libraries (the CPU Docker image, which may be built from PyPI's CUDA wheel).
//! * `SLIMBENCH_LINKS_CUDA`: `1` when the binary links libtorch_cuda (so "no GPU" and
//!   "no CUDA in this build" can be told apart in messages), else `0`.
//! * `SLIMBENCH_TORCH_VERSION`: the version string of that libtorch, for run.json.

/// Emit the link settings above (also called by build scripts that do more).
pub fn main() {
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("slimbench") {
        git_revision();
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report its libtorch directory; set LD_LIBRARY_PATH to run");
        println!("cargo:rustc-env=SLIMBENCH_TORCH_VERSION=unknown");
        println!("cargo:rustc-env=SLIMBENCH_LINKS_CUDA=0");
        return;
    };
    // `.torch` is a link into a venv: point the rpath at the real directory.
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| lib.into());
    let lib = lib.as_path();
    // The link may come to point elsewhere with the same name (a Docker build's cached
    // target dir, a new venv): the rpath must follow, so the real directory is watched.
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rerun-if-env-changed=SLIMBENCH_LINK_CUDA");
    let link_cuda = std::env::var("SLIMBENCH_LINK_CUDA").map_or(true, |v| v != "0");
    let links_cuda = link_cuda && lib.join("libtorch_cuda.so").exists();
    if links_cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    println!("cargo:rustc-env=SLIMBENCH_LINKS_CUDA={}", u8::from(links_cuda));
    // A PyPI wheel keeps `version.py` beside `lib/`; a libtorch zip keeps `build-version`.
    let version = std::fs::read_to_string(lib.join("../version.py"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("__version__ = ").map(|v| v.trim_matches(['\'', '"']).to_string())
            })
        })
        .or_else(|| std::fs::read_to_string(lib.join("../build-version")).ok().map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SLIMBENCH_TORCH_VERSION={version}");
}

/// `SLIMBENCH_GIT_REVISION` for the binary's run.json: the environment variable of that
/// name (for builds without a .git, such as Docker), else `git rev-parse`, else "unknown".
fn git_revision() {
    println!("cargo:rerun-if-env-changed=SLIMBENCH_GIT_REVISION");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = std::env::var("SLIMBENCH_GIT_REVISION")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: watch HEAD and the branch it points at.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{r}");
        }
    }
    println!("cargo:rustc-env=SLIMBENCH_GIT_REVISION={rev}");
}
