//! [`Model`]: a network with its parameters.

use slimbench_core::artifact::IoShape;
use slimbench_core::config::ModelConfig;
use tch::{Device, Kind, Tensor, nn};

use std::collections::BTreeMap;
use std::sync::OnceLock;

use slimbench_core::artifact::{Kernel, ModelMeta};

use slimbench_graph::Graph;

use crate::int8::{FakeQuant, StaticChain};
use crate::layers::{Conv, Dense, Norm};
use crate::net::GraphNet;
use crate::ops::{self, Step, Tap};

/// Errors building, converting, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The config cannot describe a network for this input.
    #[error("cannot build model `{name}`: {msg}")]
    Build {
        /// Model name.
        name: String,
        /// Why.
        msg: String,
    },
    /// libtorch refused an operation.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// A file could not be read or written.
    #[error(transparent)]
    Fs(#[from] slimbench_core::fsutil::FsError),
    /// A linear layer could not be handed to the kernel asked for.
    #[error("cannot run the linear layers on {kernel:?}: {msg}")]
    Kernel {
        /// The kernel.
        kernel: slimbench_core::artifact::Kernel,
        /// Why.
        msg: String,
    },
    /// An ONNX file could not be imported.
    #[error(transparent)]
    Import(#[from] slimbench_onnx::OnnxError),
    /// A model file is not what slimbench writes.
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
}

/// A network and its parameters.
#[derive(Debug)]
pub struct Model {
    /// The model's name (a key of `models:`).
    pub name: String,
    /// How it was declared (its kind and parameters).
    pub config: ModelConfig,
    /// What it computes: the graph its layers were built from.
    pub graph: Graph,
    /// Its input/output shape.
    pub io: IoShape,
    vs: nn::VarStore,
    net: GraphNet,
    /// How the whole forward pass runs, when [`Model::set_kernel`] chose a kernel that
    /// is not per linear layer.
    runtime: OnceLock<Runtime>,
}

/// A forward pass other than the network's own.
#[derive(Debug)]
enum Runtime {
    /// The static int8 chain on fbgemm.
    Static(StaticChain),
    /// fp32 with fake quantization.
    Fake(FakeQuant),
    /// The network's own pass under CUDA autocast to this kind.
    Amp(Kind),
}

impl Model {
    /// Build a freshly initialised model on `device`; with a seed, initialisation is
    /// reproducible.
    pub fn build(
        name: &str,
        config: &ModelConfig,
        io: IoShape,
        device: Device,
        seed: Option<u64>,
    ) -> Result<Self, ModelError> {
        if let ModelConfig::Onnx(c) = config {
            return Self::import(name, config, &c.path, io, device);
        }
        let graph = config.graph(io).map_err(|msg| ModelError::Build { name: name.to_string(), msg })?;
        Self::from_graph(name, config, graph, io, device, seed)
    }

    /// The network of an ONNX file with its trained weights, on `device`.
    pub fn import(
        name: &str,
        config: &ModelConfig,
        path: &std::path::Path,
        io: IoShape,
        device: Device,
    ) -> Result<Self, ModelError> {
        let imported = slimbench_onnx::import(path)?;
        let model =
            Self::from_graph(name, config, imported.graph, io, device, None).map_err(|e| match e {
                ModelError::Build { name, msg } => {
                    ModelError::Build { name, msg: format!("{}: {msg}", path.display()) }
                }
                other => other,
            })?;
        let vars: std::collections::HashMap<String, Tensor> = model.named().into_iter().collect();
        tch::no_grad(|| -> Result<(), ModelError> {
            for (pname, shape, values) in &imported.weights {
                let var = vars.get(pname).ok_or_else(|| ModelError::Format {
                    path: path.display().to_string(),
                    msg: format!("the imported graph has no parameter `{pname}`"),
                })?;
                let src = Tensor::from_slice(values).reshape(shape.as_slice()).to_device(device);
                var.shallow_clone().f_copy_(&src)?;
            }
            Ok(())
        })?;
        Ok(model)
    }

    /// Build the layers of `graph` (freshly initialised, reproducibly with a seed) on
    /// `device`; `config` is kept to say how the model was declared.
    pub fn from_graph(
        name: &str,
        config: &ModelConfig,
        graph: Graph,
        io: IoShape,
        device: Device,
        seed: Option<u64>,
    ) -> Result<Self, ModelError> {
        graph
            .check(io.classes)
            .map_err(|e| ModelError::Build { name: name.to_string(), msg: e.to_string() })?;
        if graph.input != [io.channels, io.height, io.width] {
            return Err(ModelError::Build {
                name: name.to_string(),
                msg: format!(
                    "its input is {}x{}x{} but the data's images are {}x{}x{}",
                    graph.input[0], graph.input[1], graph.input[2], io.channels, io.height, io.width
                ),
            });
        }
        // libtorch's generator is global: without this lock, two builds on different
        // threads (tests, or a future parallel stage) would interleave their draws and
        // a seeded build would not be reproducible.
        static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = seed {
            tch::manual_seed(s as i64);
        }
        let vs = nn::VarStore::new(device);
        let net = GraphNet::new(&vs.root(), &graph)
            .map_err(|e| ModelError::Build { name: name.to_string(), msg: e.to_string() })?;
        Ok(Model {
            name: name.to_string(),
            config: config.clone(),
            graph,
            io,
            vs,
            net,
            runtime: OnceLock::new(),
        })
    }

    /// Logits for a batch `[N, C, H, W]`; `train` enables dropout.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.runtime.get() {
            None => nn::ModuleT::forward_t(&self.net, xs, train),
            // Built from this model's own layers and checked by `set_kernel`; a failure
            // here is a bug, as a shape mismatch in `apply` would be.
            Some(Runtime::Static(chain)) => {
                chain.forward(xs).unwrap_or_else(|e| panic!("static int8 model `{}`: {e}", self.name))
            }
            Some(Runtime::Fake(fq)) => ops::run_tapped(&self.net.ops(), xs, train, &mut &*fq),
            Some(Runtime::Amp(kind)) => {
                if let Err(e) = slimbench_torch_ext::set_cuda_autocast_dtype(*kind) {
                    panic!("autocast: {e}");
                }
                tch::autocast(true, || nn::ModuleT::forward_t(&self.net, xs, train))
            }
        }
    }

    /// Logits past a [`Tap`] that sees every weight and activation point (see
    /// [`crate::ops`]); calibration, quantization-aware training and feature
    /// distillation run the model this way.
    pub fn forward_tapped(&self, xs: &Tensor, train: bool, tap: &mut dyn Tap) -> Tensor {
        ops::run_tapped(&self.net.ops(), xs, train, tap)
    }

    /// Its forward pass as steps over its graph.
    pub fn ops(&self) -> Vec<Step<'_>> {
        self.net.ops()
    }

    /// Its convolutions and linear layers by name, input to output: the layers
    /// quantization can keep in fp32.
    pub fn layer_names(&self) -> Vec<String> {
        self.net.ops().iter().filter_map(|s| s.op.layer().map(str::to_string)).collect()
    }

    /// Its convolutions, input to output.
    pub fn convs(&self) -> Vec<&Conv> {
        self.net.convs()
    }

    /// Its batch norms, input to output.
    pub fn norms(&self) -> Vec<&Norm> {
        self.net.norms()
    }

    /// Logits in inference mode.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.forward_t(xs, false)
    }

    /// The parameter store (for optimizers).
    pub fn vs(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Device of the parameters.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Move every parameter to `device`.
    pub fn to_device(&mut self, device: Device) {
        self.vs.set_device(device);
    }

    /// Floating-point kind of the parameters.
    pub fn kind(&self) -> Kind {
        self.named().first().map(|(_, t)| t.kind()).unwrap_or(Kind::Float)
    }

    /// Cast every floating-point parameter to `kind` (Float, Half or BFloat16).
    pub fn set_kind(&mut self, kind: Kind) {
        match kind {
            Kind::Half => self.vs.half(),
            Kind::BFloat16 => self.vs.bfloat16(),
            _ => self.vs.float(),
        }
    }

    /// Parameters by name, sorted by name (shallow: they share storage with the model).
    pub fn named(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<_> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Weights of convolution and linear layers, the ones pruning acts on (biases and
    /// batch norms stay).
    pub fn prunable(&self) -> Vec<(String, Tensor)> {
        let norms: Vec<String> = self.norms().iter().map(|n| format!("{}.weight", n.name())).collect();
        self.named().into_iter().filter(|(n, _)| n.ends_with(".weight") && !norms.contains(n)).collect()
    }

    /// Number of parameters (batch norms' running statistics are not parameters).
    pub fn param_count(&self) -> u64 {
        self.named()
            .iter()
            .filter(|(n, _)| !n.ends_with(".running_mean") && !n.ends_with(".running_var"))
            .map(|(_, t)| t.numel() as u64)
            .sum()
    }

    /// Number of parameters that are not zero.
    pub fn nonzero_count(&self) -> u64 {
        tch::no_grad(|| {
            self.named()
                .iter()
                .filter(|(n, _)| !n.ends_with(".running_mean") && !n.ends_with(".running_var"))
                .map(|(_, t)| t.count_nonzero(None::<i64>).int64_value(&[]) as u64)
                .sum()
        })
    }

    /// Fraction of zeros among the prunable weights.
    pub fn sparsity(&self) -> f64 {
        tch::no_grad(|| {
            let (mut total, mut zeros) = (0u64, 0u64);
            for (_, t) in self.prunable() {
                let n = t.numel() as u64;
                total += n;
                zeros += n - t.count_nonzero(None::<i64>).int64_value(&[]) as u64;
            }
            if total == 0 { 0.0 } else { zeros as f64 / total as f64 }
        })
    }

    /// Copy every parameter from a model of the same architecture.
    pub fn copy_from(&mut self, other: &Model) -> Result<(), ModelError> {
        self.vs.copy(&other.vs)?;
        Ok(())
    }

    /// A deep copy on the same device.
    pub fn try_clone(&self) -> Result<Model, ModelError> {
        let mut m =
            Model::from_graph(&self.name, &self.config, self.graph.clone(), self.io, self.device(), None)?;
        m.factor_shapes(&self.factored())?;
        m.set_kind(self.kind());
        m.copy_from(self)?;
        Ok(m)
    }

    /// Compute on `kernel` from now on (once; the current fp32 weights are used):
    ///
    /// * fbgemm's dynamic int8 or fp16 linear kernels, or CUDA's `_int_mm` / `_scaled_mm`:
    ///   each linear layer is packed, but those `meta` keeps in fp32;
    /// * [`Kernel::Int8Static`]: the whole chain on fbgemm's static int8 kernels, with
    ///   `meta.static_quant`'s calibration;
    /// * [`Kernel::FakeQuant`]: fp32 with that quantization simulated;
    /// * [`Kernel::AmpBf16`] / [`Kernel::AmpFp16`]: CUDA autocast.
    ///
    /// Returns how many layers (convolutions and linear) run on it.
    pub fn set_kernel(&self, kernel: Kernel, meta: &ModelMeta) -> Result<usize, ModelError> {
        let fail = |msg: String| ModelError::Kernel { kernel, msg };
        if kernel == Kernel::Dense {
            return Ok(0);
        }
        if self.runtime.get().is_some() || self.dense_layers().iter().any(|d| d.is_packed()) {
            return Err(fail("the model already runs on another kernel".into()));
        }
        let on_cuda = self.device().is_cuda();
        if kernel.cpu_only() && (on_cuda || self.kind() != Kind::Float) {
            return Err(fail(format!(
                "fbgemm runs fp32 models on the CPU, this one is {:?} on {:?}",
                self.kind(),
                self.device()
            )));
        }
        if kernel.cuda_only() && !on_cuda {
            return Err(fail(format!("it runs on CUDA devices only, this model is on {:?}", self.device())));
        }
        let static_quant = || {
            meta.static_quant.as_ref().ok_or_else(|| {
                fail("the model file has no static quantization (calibrated activations)".into())
            })
        };
        let ops = self.net.ops();
        let (runtime, n) = match kernel {
            Kernel::Int8Static => {
                let chain = StaticChain::build(&ops, static_quant()?, &meta.fp32_layers).map_err(fail)?;
                let n = chain.counts().0;
                (Runtime::Static(chain), n)
            }
            Kernel::FakeQuant => {
                let fq = FakeQuant::build(&ops, static_quant()?, &meta.fp32_layers).map_err(fail)?;
                let n = fq.weight_count();
                (Runtime::Fake(fq), n)
            }
            Kernel::AmpBf16 | Kernel::AmpFp16 => {
                let kind = if kernel == Kernel::AmpBf16 { Kind::BFloat16 } else { Kind::Half };
                (Runtime::Amp(kind), ops.iter().filter(|s| s.op.layer().is_some()).count())
            }
            _ => {
                let mut n = 0;
                for d in self.dense_layers() {
                    if !meta.keeps_fp32(d.name()) {
                        d.pack(kernel).map_err(fail)?;
                        n += 1;
                    }
                }
                return Ok(n);
            }
        };
        let _ = self.runtime.set(runtime);
        Ok(n)
    }

    /// Its linear layers, input to output.
    pub fn dense_layers(&self) -> Vec<&Dense> {
        self.net.dense_layers()
    }

    /// The factored linear layers: name -> rank.
    pub fn factored(&self) -> BTreeMap<String, i64> {
        self.dense_layers().iter().filter_map(|d| Some((d.name().to_string(), d.rank()?))).collect()
    }

    /// Replace the weight of the linear layer `layer` by `outer [out, r] x inner [r, in]`
    /// (fp32). The factors become parameters of the model (`<layer>.lr_in.weight`,
    /// `<layer>.lr_out.weight`); the full weight leaves it, so optimizers, files and
    /// parameter counts see only the factors. The bias stays.
    pub fn factorize(&mut self, layer: &str, inner: &Tensor, outer: &Tensor) -> Result<(), ModelError> {
        let fail = |msg: String| ModelError::Build { name: self.name.clone(), msg };
        let dense = self
            .net
            .dense_layers()
            .into_iter()
            .find(|d| d.name() == layer)
            .ok_or_else(|| fail(format!("it has no linear layer `{layer}`")))?;
        let (i, o) = dense.dims();
        let r = inner.size().first().copied().unwrap_or(0);
        if r < 1 || inner.size() != [r, i] || outer.size() != [o, r] {
            return Err(fail(format!(
                "factors of `{layer}` ({i} -> {o}) must be [r, {i}] and [{o}, r], got {:?} and {:?}",
                inner.size(),
                outer.size()
            )));
        }
        let mut p = self.vs.root();
        for c in layer.split('.') {
            p = p.sub(c);
        }
        let inner = (&p / "lr_in").var_copy("weight", &inner.to_kind(Kind::Float));
        let outer = (&p / "lr_out").var_copy("weight", &outer.to_kind(Kind::Float));
        {
            let mut vars = self.vs.variables_.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = vars.named_variables.remove(&format!("{layer}.weight")) {
                let ptr = w.data_ptr();
                vars.trainable_variables.retain(|v| v.tensor.data_ptr() != ptr);
            }
        }
        dense.set_factors(inner, outer).map_err(fail)
    }

    /// Give the layers in `ranks` zero factors of those ranks (to load a factored file
    /// into a freshly built model).
    pub fn factor_shapes(&mut self, ranks: &BTreeMap<String, i64>) -> Result<(), ModelError> {
        for (layer, &r) in ranks {
            let dims = self.dense_layers().into_iter().find(|d| d.name() == layer).map(|d| d.dims());
            let Some((i, o)) = dims else {
                return Err(ModelError::Build {
                    name: self.name.clone(),
                    msg: format!("it has no linear layer `{layer}` to factor"),
                });
            };
            let opts = (Kind::Float, self.device());
            self.factorize(layer, &Tensor::zeros([r, i], opts), &Tensor::zeros([o, r], opts))?;
        }
        Ok(())
    }

    /// Stop gradients for every parameter (a frozen teacher).
    pub fn freeze(&mut self) {
        self.vs.freeze();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::config::*;

    pub(crate) const MNIST: IoShape = IoShape { channels: 1, height: 28, width: 28, classes: 10 };

    #[test]
    fn seed_cnn_has_the_seed_parameter_count() {
        let m =
            Model::build("s", &ModelConfig::SeedCnn(SeedCnnConfig::default()), MNIST, Device::Cpu, Some(1))
                .unwrap();
        // conv 12*1*3*3 + 12, dense 12*13*13*10 + 10
        assert_eq!(m.param_count(), 108 + 12 + 20280 + 10);
        let y = m.forward(&Tensor::zeros([3, 1, 28, 28], (Kind::Float, Device::Cpu)));
        assert_eq!(y.size(), [3, 10]);
    }

    #[test]
    fn every_family_builds_and_runs() {
        let configs = [
            ModelConfig::Mlp(MlpConfig { hidden: vec![32, 16] }),
            ModelConfig::DsConv(DsConvConfig::default()),
            ModelConfig::Cnn(CnnConfig { channels: vec![8, 16], hidden: 32, dropout: 0.1 }),
        ];
        for c in configs {
            let m = Model::build("m", &c, MNIST, Device::Cpu, Some(1)).unwrap();
            let y = m.forward(&Tensor::ones([2, 1, 28, 28], (Kind::Float, Device::Cpu)));
            assert_eq!(y.size(), [2, 10], "{c:?}");
            assert!(m.param_count() > 0);
            assert!(!m.prunable().is_empty());
        }
    }

    #[test]
    fn seeded_builds_are_identical_and_half_halves() {
        let c = ModelConfig::Mlp(MlpConfig { hidden: vec![16] });
        let a = Model::build("a", &c, MNIST, Device::Cpu, Some(7)).unwrap();
        let mut b = Model::build("b", &c, MNIST, Device::Cpu, Some(7)).unwrap();
        for ((_, x), (_, y)) in a.named().iter().zip(b.named()) {
            assert!(x.equal(&y));
        }
        b.set_kind(Kind::Half);
        assert_eq!(b.kind(), Kind::Half);
        assert_eq!(b.param_count(), a.param_count());
    }

    #[test]
    fn configs_name_the_activation_points_their_networks_have() {
        let configs = [
            ModelConfig::SeedCnn(SeedCnnConfig::default()),
            ModelConfig::Mlp(MlpConfig { hidden: vec![32, 16] }),
            ModelConfig::Mlp(MlpConfig { hidden: vec![] }),
            ModelConfig::DsConv(DsConvConfig::default()),
            ModelConfig::Cnn(CnnConfig { channels: vec![8, 16], hidden: 32, dropout: 0.1 }),
            ModelConfig::Cnn(CnnConfig { channels: vec![8], hidden: 0, dropout: 0.0 }),
        ];
        for c in configs {
            let m = Model::build("m", &c, MNIST, Device::Cpu, Some(1)).unwrap();
            let built: Vec<String> = crate::ops::points(&m.ops()).into_iter().map(|p| p.name).collect();
            assert_eq!(Some(Ok(built)), c.points(MNIST), "{c:?}");
        }
    }

    #[test]
    fn bad_configs_are_errors_not_panics() {
        let c = ModelConfig::Cnn(CnnConfig { channels: vec![4, 4, 4, 4, 4, 4], hidden: 0, dropout: 0.0 });
        let err = Model::build("deep", &c, MNIST, Device::Cpu, None).unwrap_err();
        assert!(err.to_string().contains("too many pooling blocks"), "{err}");
    }
}
