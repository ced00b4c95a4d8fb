//! The `onnxruntime` backend: the variant's ONNX export on ONNX Runtime, through the
//! `ort` crate with `load-dynamic` (nothing is linked or downloaded at build time).
//!
//! * The library: `libonnxruntime.so.1.31.1` from the `onnxruntime==1.31.1` PyPI wheel
//!   that `scripts/setup-torch.sh` installs into the torch venv. It is looked for, in
//!   order, at [`ENV_VAR`] (a file, or a folder holding `libonnxruntime.so*`; when set,
//!   nothing else is tried), beside the executable, and at the wheel's `capi/` folder
//!   in the venv this binary was built against (recorded by the build script from
//!   torch-sys's libtorch directory, `<venv>/lib/python3.11/site-packages/torch/lib`).
//!   No `LD_LIBRARY_PATH` is needed. A missing or broken library is an error naming
//!   every path tried and how to install it ([`library_error`]).
//! * Sessions: graph optimisations all (`ORT_ENABLE_ALL`), intra-op threads = the
//!   stage's threads, inter-op 1, sequential execution, pool threads that block rather
//!   than spin when idle (they would take the CPU from the subject being timed). One session per ONNX file,
//!   shared by the runners of every batch size (its inputs have a symbolic batch).
//! * CUDA: on a `cuda` evaluation, the CUDA execution provider where the library has
//!   it (the `onnxruntime-gpu` wheel); otherwise the backend is unavailable, with why.
//! * Inputs: one `Tensor<f32>` per timed input, built once; a call hands ONNX Runtime a
//!   view of it and copies the logits out (`batch x classes` floats).

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorElementType;
use slimbench_data::Split;
use slimbench_models::runtime::gpu_index;

use super::{
    Backend, BackendError, Input, Logits, OnnxSummary, Options, Runner, RunnerInfo, Variant, host_batches,
};

const NAME: &str = "onnxruntime";

/// Environment variable naming the ONNX Runtime library to load: the file, or a folder
/// holding `libonnxruntime.so*`.
pub const ENV_VAR: &str = "SLIMBENCH_ONNXRUNTIME";

/// The version of the `onnxruntime` wheel the set-up script installs (`ort` 2.0.0-rc.15
/// needs ONNX Runtime 1.31 or newer).
pub const WHEEL_VERSION: &str = "1.31.1";

/// Where the build found (or expected) the wheel's library: the `onnxruntime/capi`
/// folder beside the torch this binary links.
const BUILD_DEFAULT: Option<&str> = option_env!("SLIMBENCH_ONNXRUNTIME_DEFAULT");

/// The library's file name prefix.
const LIB_PREFIX: &str = "libonnxruntime.so";

/// ONNX Runtime, loaded.
struct Runtime {
    env: Environment,
    path: PathBuf,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Load the library once per process (from [`candidates`]); the error says why not.
fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME
        .get_or_init(|| {
            let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
            let wanted = candidates(std::env::var_os(ENV_VAR), exe_dir.as_deref(), BUILD_DEFAULT);
            load_library(&wanted)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The path ONNX Runtime was loaded from, once loaded.
pub fn loaded_library() -> Option<&'static Path> {
    RUNTIME.get().and_then(|r| r.as_ref().ok()).map(|r| r.path.as_path())
}

/// Where to look for the library, in order: `env` alone when it is set; otherwise
/// beside the executable, then the build's default. A folder stands for the
/// `libonnxruntime.so*` files in it (the versioned ones first), or for
/// `<folder>/libonnxruntime.so` when it has none (so the error can name it).
pub fn candidates(
    env: Option<OsString>,
    exe_dir: Option<&Path>,
    build_default: Option<&str>,
) -> Vec<PathBuf> {
    let places: Vec<PathBuf> = match env.filter(|v| !v.is_empty()) {
        Some(v) => vec![PathBuf::from(v)],
        None => exe_dir.map(Path::to_path_buf).into_iter().chain(build_default.map(PathBuf::from)).collect(),
    };
    let mut out = Vec::new();
    for place in places {
        if place.is_dir() {
            let mut libs: Vec<PathBuf> = std::fs::read_dir(&place)
                .map(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(LIB_PREFIX))
                        })
                        .collect()
                })
                .unwrap_or_default();
            // `libonnxruntime.so.1.31.1` before a bare `libonnxruntime.so` link.
            libs.sort_by(|a, b| b.cmp(a));
            if libs.is_empty() {
                libs.push(place.join(LIB_PREFIX));
            }
            out.extend(libs);
        } else {
            out.push(place);
        }
    }
    out.dedup();
    out
}

/// Load the first of `candidates` that is an ONNX Runtime library `ort` can use and
/// create the environment; the error names every path tried, what was wrong with each,
/// and how to install the library.
fn load_library(candidates: &[PathBuf]) -> Result<Runtime, String> {
    let mut tried = Vec::new();
    for path in candidates {
        if !path.exists() {
            tried.push((path.clone(), "not found".to_string()));
            continue;
        }
        match ort::init_from(path) {
            Ok(builder) => match builder.with_name("slimbench").with_telemetry(false).build() {
                Ok(env) => return Ok(Runtime { env, path: path.clone() }),
                Err(e) => {
                    tried.push((path.clone(), format!("loaded, but creating its environment failed: {e}")))
                }
            },
            Err(e) => tried.push((path.clone(), e.to_string())),
        }
    }
    Err(library_error(&tried))
}

/// The message for a library that could not be loaded from any of `tried` (each path
/// with what was wrong with it).
pub fn library_error(tried: &[(PathBuf, String)]) -> String {
    let mut msg = String::from("the ONNX Runtime library could not be loaded; tried:");
    if tried.is_empty() {
        msg.push_str(" nothing (no path known: this binary was built without the torch venv)");
    }
    for (path, why) in tried {
        msg.push_str(&format!("\n  - {}: {why}", path.display()));
    }
    msg.push_str(&format!(
        "\nhint: run scripts/setup-torch.sh (it installs onnxruntime=={WHEEL_VERSION} into the torch venv), or \
         `pip install onnxruntime=={WHEEL_VERSION}` and set {ENV_VAR} to its \
         site-packages/onnxruntime/capi/libonnxruntime.so.{WHEEL_VERSION}"
    ));
    msg
}

/// A session, shared by the runners of every batch size of one ONNX file.
type Shared = Rc<RefCell<Session>>;

/// The `onnxruntime` backend.
pub struct OnnxRuntime {
    opts: Options,
    /// One session per ONNX file, shared by its runners, and what it runs.
    sessions: RefCell<Vec<(PathBuf, Shared, RunnerInfo)>>,
}

impl OnnxRuntime {
    /// On the stage's device and threads.
    pub fn new(opts: Options) -> Self {
        OnnxRuntime { opts, sessions: RefCell::new(Vec::new()) }
    }

    fn cuda(&self) -> Option<u32> {
        gpu_index(self.opts.device)
    }

    fn session(&self, path: &Path) -> Result<(Shared, RunnerInfo), BackendError> {
        if let Some((_, s, info)) = self.sessions.borrow().iter().find(|(p, ..)| p == path) {
            return Ok((s.clone(), info.clone()));
        }
        let rt = runtime().map_err(|e| BackendError::new(NAME, e))?;
        let err = |what: &str, e: String| BackendError::new(NAME, format!("{}: {what}: {e}", path.display()));
        let threads = self.opts.threads.max(1);
        let options = |e: ort::Error<_>| err("session options", e.to_string());
        let mut builder = Session::builder(&rt.env)
            .map_err(|e| err("session options", e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(options)?
            .with_intra_threads(threads)
            .map_err(options)?
            .with_inter_threads(1)
            .map_err(options)?
            .with_parallel_execution(false)
            .map_err(options)?
            // Idle pool threads must not spin while other subjects of the plan are timed
            // (measured: with 2 threads, spinning left the timing thread half its wall
            // time and every round of the plan invalid).
            .with_intra_op_spinning(false)
            .map_err(options)?
            .with_inter_op_spinning(false)
            .map_err(options)?;
        let mut providers = Vec::new();
        if let Some(gpu) = self.cuda() {
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default()
                    .with_device_id(gpu as i32)
                    .build()
                    .error_on_failure()])
                .map_err(|e| err("CUDA execution provider", e.to_string()))?;
            providers.push(format!("CUDAExecutionProvider (device {gpu})"));
        }
        providers.push("CPUExecutionProvider".into());
        let session = builder.commit_from_file(path).map_err(|e| err("loading", e.to_string()))?;
        match session.inputs().first().map(|i| i.dtype().tensor_type()) {
            Some(Some(TensorElementType::Float32)) => {}
            other => {
                return Err(err(
                    "input",
                    format!(
                        "the first input must be a float32 tensor, found {other:?} (only float32 inputs are fed)"
                    ),
                ));
            }
        }
        let summary = OnnxSummary::read(path).map_err(|e| err("reading", e))?;
        let info = RunnerInfo {
            backend: NAME,
            precision: summary.precision.clone(),
            kernels: summary.ops_line(),
            providers,
            graph_optimization: "all (ORT_ENABLE_ALL), sequential, 1 inter-op thread, no spinning".into(),
            threads,
        };
        let session = Rc::new(RefCell::new(session));
        self.sessions.borrow_mut().push((path.to_path_buf(), session.clone(), info.clone()));
        Ok((session, info))
    }
}

impl Backend for OnnxRuntime {
    fn name(&self) -> &'static str {
        NAME
    }

    fn available(&self) -> Result<(), String> {
        let rt = runtime()?;
        if self.cuda().is_some() {
            let has = ort::ep::CUDA::is_available().map_err(|e| e.to_string())?;
            if !has {
                return Err(format!(
                    "the ONNX Runtime library at {} has no CUDA execution provider (the `onnxruntime` wheel is \
                     CPU-only); install `onnxruntime-gpu` and set {ENV_VAR} to its library, or evaluate with \
                     `device: cpu`",
                    rt.path.display()
                ));
            }
        }
        Ok(())
    }

    fn needs_onnx(&self) -> bool {
        true
    }

    fn load<'a>(&self, variant: &Variant<'a>, batch: usize) -> Result<Box<dyn Runner + 'a>, BackendError> {
        let path = variant.onnx_for(NAME)?;
        let (session, info) = self.session(path)?;
        let _ = batch;
        Ok(Box::new(OrtRunner { session, info }))
    }
}

/// A session, run at any batch size.
pub struct OrtRunner {
    session: Shared,
    info: RunnerInfo,
}

/// A prepared input: an ONNX Runtime tensor built once.
struct OrtInput(ort::value::Tensor<f32>);

fn tensor(images: &[f32], shape: [usize; 4]) -> Result<OrtInput, BackendError> {
    ort::value::Tensor::from_array((shape, images.to_vec()))
        .map(OrtInput)
        .map_err(|e| BackendError::new(NAME, format!("building an input tensor: {e}")))
}

impl Runner for OrtRunner {
    fn info(&self) -> &RunnerInfo {
        &self.info
    }

    fn batch(&self) -> Option<usize> {
        None
    }

    fn input_key(&self) -> String {
        NAME.into()
    }

    fn prepare(&self, split: &Split, batch: usize) -> Result<Vec<Input>, BackendError> {
        host_batches(split, batch).into_iter().map(|(x, shape)| tensor(&x, shape).map(Input::new)).collect()
    }

    fn run(&mut self, x: &Input) -> Result<Logits, BackendError> {
        let x = x
            .get::<OrtInput>()
            .ok_or_else(|| BackendError::new(NAME, "input prepared by another backend"))?;
        let mut session = self.session.borrow_mut();
        let outputs = session
            .run(ort::inputs![&x.0])
            .map_err(|e| BackendError::new(NAME, format!("run failed: {e}")))?;
        let (shape, values) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| BackendError::new(NAME, format!("the first output is not float32 logits: {e}")))?;
        let rows = shape.first().copied().unwrap_or(1).max(0) as usize;
        let cols = values.len().checked_div(rows).unwrap_or(0);
        Ok(Logits::Host { values: values.to_vec(), rows, cols })
    }

    fn prepare_images(&self, images: &[f32], shape: [usize; 4]) -> Result<Input, BackendError> {
        tensor(images, shape).map(Input::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tests::{fixtures, max_diff, read_f32};

    #[test]
    fn the_env_var_alone_is_tried_when_set_and_folders_expand_to_the_library() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libonnxruntime.so.1.31.1"), b"").unwrap();
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.so"), b"").unwrap();
        let exe = Path::new("/opt/app/bin");
        // Set: only it, a folder expanded to its library (not the providers' one).
        let got = candidates(Some(dir.path().as_os_str().to_owned()), Some(exe), Some("/venv/capi"));
        assert_eq!(got, vec![dir.path().join("libonnxruntime.so.1.31.1")]);
        // Unset or empty: beside the executable, then the build's default.
        let got = candidates(Some(OsString::new()), Some(exe), Some("/venv/capi/libonnxruntime.so.1.31.1"));
        assert_eq!(got, vec![exe.to_path_buf(), PathBuf::from("/venv/capi/libonnxruntime.so.1.31.1")]);
        // A folder without the library stands for the file expected in it.
        let empty = tempfile::tempdir().unwrap();
        let got = candidates(None, Some(empty.path()), None);
        assert_eq!(got, vec![empty.path().join("libonnxruntime.so")]);
    }

    #[test]
    fn a_missing_library_names_every_path_tried_and_how_to_install_it() {
        let tried = [
            PathBuf::from("/nonexistent/a/libonnxruntime.so"),
            PathBuf::from("/nonexistent/b/libonnxruntime.so.1.31.1"),
        ];
        let Err(msg) = load_library(&tried) else { panic!("loaded a library that does not exist") };
        assert_eq!(
            msg,
            "the ONNX Runtime library could not be loaded; tried:\n  - /nonexistent/a/libonnxruntime.so: not found\n  - \
             /nonexistent/b/libonnxruntime.so.1.31.1: not found\nhint: run scripts/setup-torch.sh (it installs \
             onnxruntime==1.31.1 into the torch venv), or `pip install onnxruntime==1.31.1` and set \
             SLIMBENCH_ONNXRUNTIME to its site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"
        );
    }

    #[test]
    fn the_build_records_the_wheel_library_of_the_torch_venv() {
        let default = BUILD_DEFAULT.expect("the build script found torch's venv");
        assert!(default.ends_with("site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"), "{default}");
    }

    /// Skips (saying so) where the library is absent, unless SLIMBENCH_REQUIRE_ORT is set.
    fn backend() -> Option<OnnxRuntime> {
        let b = OnnxRuntime::new(Options { device: tch::Device::Cpu, threads: 1 });
        match b.available() {
            Ok(()) => Some(b),
            Err(e) if std::env::var_os("SLIMBENCH_REQUIRE_ORT").is_none() => {
                eprintln!("skipped: {e}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn logits_of_the_grey_cnn_fixture_match_pytorch() {
        let Some(b) = backend() else { return };
        let path = fixtures().join("grey_cnn.folded.onnx");
        let (session, info) = b.session(&path).unwrap();
        assert_eq!(info.precision, "fp32");
        assert_eq!(info.providers, ["CPUExecutionProvider"]);
        let mut runner = OrtRunner { session, info };
        let images = read_f32("grey.input.f32");
        let want = read_f32("grey_cnn.logits.f32");
        // The whole batch, then batch 1 on the same session.
        let (got, rows, cols) = runner.run_images(&images, [100, 1, 28, 28]).unwrap().into_host();
        assert_eq!((rows, cols), (100, 10));
        let d = max_diff(&got, &want);
        assert!(d < 1e-4, "max |diff| {d}");
        eprintln!("onnxruntime grey_cnn max |logit diff| vs PyTorch: {d:e}");
        let x = runner.prepare_images(&images[..784], [1, 1, 28, 28]).unwrap();
        let (one, ..) = runner.run(&x).unwrap().into_host();
        assert!(max_diff(&one, &want[..10]) < 1e-4);
        assert_eq!(loaded_library().map(|p| p.exists()), Some(true));
    }

    #[test]
    fn logits_of_the_cifar_resnet_fixture_match_pytorch() {
        let Some(b) = backend() else { return };
        let (session, info) = b.session(&fixtures().join("resnet20.folded.onnx")).unwrap();
        let mut runner = OrtRunner { session, info };
        // 16 of the 100 images (see the tract test of the same fixture).
        let images = read_f32("cifar.input.f32");
        let want = read_f32("resnet20.logits.f32");
        let (got, ..) = runner.run_images(&images[..16 * 3 * 32 * 32], [16, 3, 32, 32]).unwrap().into_host();
        let d = max_diff(&got, &want[..16 * 10]);
        eprintln!("onnxruntime resnet20 max |logit diff| vs PyTorch: {d:e}");
        assert!(d < 1e-4, "max |diff| {d}");
    }

    #[test]
    fn a_file_that_is_not_onnx_is_an_error_naming_it() {
        let Some(b) = backend() else { return };
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.onnx");
        std::fs::write(&bad, b"not a model").unwrap();
        let Err(err) = b.session(&bad) else { panic!("loaded garbage") };
        let err = err.to_string();
        assert!(err.starts_with("onnxruntime: ") && err.contains("bad.onnx"), "{err}");
    }
}
