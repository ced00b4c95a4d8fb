//! The `libtorch` backend: the model as slimbench trains and compresses it, eager,
//! through tch, on the kernels [`crate::load_for_eval`] chose (dense ATen, fbgemm int8,
//! fake quantization, CUDA's low-precision matmuls). It is the reference: every other
//! backend's predictions are checked against its.

use slimbench_data::Split;
use slimbench_models::Model;
use slimbench_models::runtime::{device_name, synchronize};
use tch::Tensor;

use super::{Backend, BackendError, Input, Logits, Options, Runner, RunnerInfo, Variant};
use crate::images_tensor;

const NAME: &str = "libtorch";

/// The libtorch backend.
#[derive(Debug, Clone)]
pub struct Libtorch {
    opts: Options,
}

impl Libtorch {
    /// On the stage's device and threads.
    pub fn new(opts: Options) -> Self {
        Libtorch { opts }
    }
}

impl Backend for Libtorch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    fn needs_onnx(&self) -> bool {
        false
    }

    fn load<'a>(&self, variant: &Variant<'a>, _batch: usize) -> Result<Box<dyn Runner + 'a>, BackendError> {
        let loaded = variant.loaded;
        let mut runner = TorchRunner::new(&loaded.model, self.opts.threads);
        runner.info.precision = loaded.compute_precision.clone();
        if !loaded.notes.is_empty() {
            runner.info.kernels = loaded.notes.join("; ");
        }
        Ok(Box::new(runner))
    }
}

/// A loaded model, run eagerly; any batch size.
pub struct TorchRunner<'a> {
    model: &'a Model,
    info: RunnerInfo,
}

impl<'a> TorchRunner<'a> {
    /// Run `model` as it is loaded.
    pub fn new(model: &'a Model, threads: usize) -> Self {
        let info = RunnerInfo {
            backend: NAME,
            precision: format!("{:?}", model.kind()).to_lowercase(),
            kernels: "eager ATen".into(),
            providers: vec![device_name(model.device())],
            graph_optimization: "none (eager)".into(),
            threads,
        };
        TorchRunner { model, info }
    }
}

impl Runner for TorchRunner<'_> {
    fn info(&self) -> &RunnerInfo {
        &self.info
    }

    fn batch(&self) -> Option<usize> {
        None
    }

    fn input_key(&self) -> String {
        format!("{NAME} {:?} {:?}", self.model.device(), self.model.kind())
    }

    fn prepare(&self, split: &Split, batch: usize) -> Result<Vec<Input>, BackendError> {
        Ok(inputs(self.model, split, batch).into_iter().map(Input::new).collect())
    }

    fn run(&mut self, x: &Input) -> Result<Logits, BackendError> {
        let x =
            x.get::<Tensor>().ok_or_else(|| BackendError::new(NAME, "input prepared by another backend"))?;
        let y = self.model.forward(x);
        synchronize(self.model.device());
        Ok(Logits::Torch(y))
    }

    fn prepare_images(&self, images: &[f32], shape: [usize; 4]) -> Result<Input, BackendError> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::from_slice(images)
            .view(dims.as_slice())
            .to_device(self.model.device())
            .to_kind(self.model.kind());
        Ok(Input::new(t))
    }
}

/// Inputs of one batch size: batch 1 cycles through up to 256 test images (views of one
/// tensor), a batch is the first test images (repeated when the split is smaller).
fn inputs(model: &Model, split: &Split, batch: usize) -> Vec<Tensor> {
    let (device, kind) = (model.device(), model.kind());
    if batch == 1 {
        let n = split.len().clamp(1, 256);
        let all = images_tensor(split, 0, n, device, kind);
        return (0..n as i64).map(|i| all.narrow(0, i, 1)).collect();
    }
    vec![batch_of(model, split, batch)]
}

/// A batch of `batch` test images for `model` (the first ones, repeated when the split
/// is smaller).
pub(crate) fn batch_of(model: &Model, split: &Split, batch: usize) -> Tensor {
    let n = batch.min(split.len()).max(1);
    let base = images_tensor(split, 0, n, model.device(), model.kind());
    if n < batch {
        let reps = batch.div_ceil(n) as i64;
        let mut dims = vec![reps];
        dims.extend(std::iter::repeat_n(1, base.dim() - 1));
        base.repeat(&dims).narrow(0, 0, batch as i64)
    } else {
        base
    }
}
