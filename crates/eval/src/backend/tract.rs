//! The `tract` backend: the variant's ONNX export on tract (pure Rust, CPU only).
//!
//! Each runner is one plan for one batch size: the model is read with its input fixed
//! at `[batch, C, H, W]` f32, decluttered and optimised (`into_optimized`), made
//! runnable (`into_runnable_with_options`) and given one state that every call reuses.
//! With more than one thread, matrix products run on a rayon pool of that many threads
//! (tract's `multithread-mm`, one pool shared by every plan); the rest of a plan runs on
//! the calling thread.
//! Inputs are `TValue`s built once; a call hands the plan a reference-counted clone.
//!
//! Build note: tract is compiled at opt-level 3 even in the dev profile (see the root
//! `Cargo.toml`); at the workspace's default opt-level 0 for dependencies its timings
//! would be meaningless.

use std::collections::BTreeMap;
use std::path::Path;

use slimbench_data::Split;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_linalg::multithread::Executor;

use super::{
    Backend, BackendError, Input, Logits, OnnxSummary, Options, Runner, RunnerInfo, Variant, host_batches,
};

const NAME: &str = "tract";

/// The `tract` backend.
#[derive(Debug, Clone)]
pub struct Tract {
    opts: Options,
}

impl Tract {
    /// On the stage's threads (the CPU only).
    pub fn new(opts: Options) -> Self {
        Tract { opts }
    }
}

impl Backend for Tract {
    fn name(&self) -> &'static str {
        NAME
    }

    fn available(&self) -> Result<(), String> {
        if self.opts.device.is_cuda() {
            return Err("tract runs on the CPU only; evaluate with `device: cpu` to time it".into());
        }
        Ok(())
    }

    fn needs_onnx(&self) -> bool {
        true
    }

    fn load<'a>(&self, variant: &Variant<'a>, batch: usize) -> Result<Box<dyn Runner + 'a>, BackendError> {
        let path = variant.onnx_for(NAME)?;
        let io = &variant.loaded.meta.io;
        let shape = [batch, io.channels as usize, io.height as usize, io.width as usize];
        Ok(Box::new(TractRunner::load(path, shape, self.opts.threads)?))
    }
}

type Plan = TypedSimplePlan;

/// One rayon pool of `threads` threads, shared by every plan that uses that many (a pool
/// per plan would leave dozens of idle threads beside the subject being timed).
fn executor(threads: usize) -> Executor {
    static POOLS: std::sync::Mutex<Vec<(usize, Executor)>> = std::sync::Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, e)) = pools.iter().find(|(n, _)| *n == threads) {
        return e.clone();
    }
    let e = Executor::multithread_with_name(threads, "slimbench-tract");
    pools.push((threads, e.clone()));
    e
}

/// One optimised plan for one input shape, and its state.
pub struct TractRunner {
    state: TypedSimpleState,
    shape: [usize; 4],
    info: RunnerInfo,
}

impl TractRunner {
    /// Read, optimise and plan `path` for inputs of `shape` (`[batch, C, H, W]`).
    pub fn load(path: &Path, shape: [usize; 4], threads: usize) -> Result<TractRunner, BackendError> {
        let err =
            |what: &str, e: TractError| BackendError::new(NAME, format!("{}: {what}: {e:#}", path.display()));
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| err("reading", e))?
            .with_input_fact(0, f32::fact(shape).into())
            .map_err(|e| err("fixing the input shape", e))?
            .into_optimized()
            .map_err(|e| err("optimising", e))?;
        let mut ops = BTreeMap::new();
        for node in model.nodes() {
            let name = node.op.name();
            if name != "Source" && name != "Const" {
                *ops.entry(name.to_string()).or_insert(0usize) += 1;
            }
        }
        let threads = threads.max(1);
        let options =
            RunOptions { executor: (threads > 1).then(|| executor(threads)), ..RunOptions::default() };
        let plan: Arc<Plan> = model.into_runnable_with_options(&options).map_err(|e| err("planning", e))?;
        let state = plan.spawn().map_err(|e| err("planning", e))?;
        let summary = OnnxSummary::read(path).map_err(|e| BackendError::new(NAME, e))?;
        let ops = OnnxSummary { ops, precision: summary.precision };
        let info = RunnerInfo {
            backend: NAME,
            precision: ops.precision.clone(),
            kernels: format!("optimised {}", ops.ops_line()),
            providers: vec!["cpu".into()],
            graph_optimization: format!("into_optimized, batch fixed at {}", shape[0]),
            threads,
        };
        Ok(TractRunner { state, shape, info })
    }
}

fn tvalue(images: &[f32], shape: [usize; 4]) -> Result<TValue, BackendError> {
    Tensor::from_shape(&shape, images)
        .map(IntoTValue::into_tvalue)
        .map_err(|e| BackendError::new(NAME, format!("building an input tensor: {e:#}")))
}

impl Runner for TractRunner {
    fn info(&self) -> &RunnerInfo {
        &self.info
    }

    fn batch(&self) -> Option<usize> {
        Some(self.shape[0])
    }

    fn input_key(&self) -> String {
        NAME.into()
    }

    fn prepare(&self, split: &Split, batch: usize) -> Result<Vec<Input>, BackendError> {
        if batch != self.shape[0] {
            return Err(BackendError::new(
                NAME,
                format!("this plan runs batches of {}, not {batch}", self.shape[0]),
            ));
        }
        host_batches(split, batch).into_iter().map(|(x, shape)| tvalue(&x, shape).map(Input::new)).collect()
    }

    fn run(&mut self, x: &Input) -> Result<Logits, BackendError> {
        let x =
            x.get::<TValue>().ok_or_else(|| BackendError::new(NAME, "input prepared by another backend"))?;
        let out = self
            .state
            .run(tvec!(x.clone()))
            .map_err(|e| BackendError::new(NAME, format!("run failed: {e:#}")))?;
        let y = &out[0];
        let rows = y.shape().first().copied().unwrap_or(1);
        let values = y
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec))
            .map_err(|e| BackendError::new(NAME, format!("the first output is not float32 logits: {e:#}")))?;
        let cols = values.len().checked_div(rows).unwrap_or(0);
        Ok(Logits::Host { values, rows, cols })
    }

    fn prepare_images(&self, images: &[f32], shape: [usize; 4]) -> Result<Input, BackendError> {
        if shape != self.shape {
            return Err(BackendError::new(
                NAME,
                format!("this plan runs inputs of shape {:?}, not {shape:?}", self.shape),
            ));
        }
        tvalue(images, shape).map(Input::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tests::{fixtures, max_diff, read_f32};

    #[test]
    fn logits_of_the_grey_cnn_fixture_match_pytorch_at_a_fixed_batch() {
        let path = fixtures().join("grey_cnn.folded.onnx");
        let images = read_f32("grey.input.f32");
        let want = read_f32("grey_cnn.logits.f32");
        for threads in [1, 2] {
            let mut r = TractRunner::load(&path, [100, 1, 28, 28], threads).unwrap();
            assert_eq!(r.batch(), Some(100));
            assert_eq!(r.info().precision, "fp32");
            assert_eq!(r.info().threads, threads);
            let (got, rows, cols) = r.run_images(&images, [100, 1, 28, 28]).unwrap().into_host();
            assert_eq!((rows, cols), (100, 10));
            let d = max_diff(&got, &want);
            eprintln!("tract grey_cnn ({threads} thread(s)) max |logit diff| vs PyTorch: {d:e}");
            assert!(d < 1e-4, "max |diff| {d}");
            // The state is reused: a second call gives the same logits.
            let (again, ..) = r.run_images(&images, [100, 1, 28, 28]).unwrap().into_host();
            assert_eq!(again, got);
        }
        // Batch 1 is another plan; a shape it was not planned for is refused.
        let mut one = TractRunner::load(&path, [1, 1, 28, 28], 1).unwrap();
        let (got, ..) = one.run_images(&images[784..2 * 784], [1, 1, 28, 28]).unwrap().into_host();
        assert!(max_diff(&got, &want[10..20]) < 1e-4);
        let err = one.prepare_images(&images[..2 * 784], [2, 1, 28, 28]).err().unwrap().to_string();
        assert_eq!(err, "tract: this plan runs inputs of shape [1, 1, 28, 28], not [2, 1, 28, 28]");
    }

    #[test]
    fn logits_of_the_cifar_resnet_fixture_match_pytorch() {
        let path = fixtures().join("resnet20.folded.onnx");
        // 16 of the 100 images: small enough not to disturb the in-process memory test
        // running beside it.
        let images = read_f32("cifar.input.f32");
        let want = read_f32("resnet20.logits.f32");
        let mut r = TractRunner::load(&path, [16, 3, 32, 32], 2).unwrap();
        let (got, ..) = r.run_images(&images[..16 * 3 * 32 * 32], [16, 3, 32, 32]).unwrap().into_host();
        let d = max_diff(&got, &want[..16 * 10]);
        eprintln!("tract resnet20 max |logit diff| vs PyTorch: {d:e}");
        assert!(d < 1e-4, "max |diff| {d}");
    }

    #[test]
    fn a_file_that_is_not_onnx_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.onnx");
        std::fs::write(&bad, b"not a model").unwrap();
        let err = TractRunner::load(&bad, [1, 1, 28, 28], 1).err().unwrap().to_string();
        assert!(err.starts_with("tract: ") && err.contains("bad.onnx: reading"), "{err}");
    }
}
