//! Model families: each builds its layers under a scoped path of a `VarStore`
//! (`p / "conv1"`) and lists its forward pass as a chain of [`Op`]s, which
//! [`ops::run`](crate::ops::run) runs on `[N, C, H, W]` images.

mod cnn;
mod conv;
mod dense;
mod dsconv;
mod mlp;
mod seed_cnn;

use slimbench_core::artifact::IoShape;
use slimbench_core::config::ModelConfig;
use tch::nn;

use crate::ops::Op;

pub use cnn::Cnn;
pub use conv::Conv;
pub use dense::Dense;
pub use dsconv::DsConv;
pub use mlp::Mlp;
pub use seed_cnn::SeedCnn;

/// A network: a tch module that can be shared across threads, described as a chain of
/// steps (which its `forward_t` runs), and whose linear layers can be handed to other
/// kernels.
pub trait Net: nn::ModuleT + Send + std::fmt::Debug {
    /// Its forward pass, input to output.
    fn ops(&self) -> Vec<Op<'_>>;

    /// Its linear layers, input to output.
    fn dense_layers(&self) -> Vec<&Dense> {
        self.ops().into_iter().filter_map(|op| if let Op::Linear(d) = op { Some(d) } else { None }).collect()
    }

    /// Its convolutions, input to output.
    fn convs(&self) -> Vec<&Conv> {
        self.ops().into_iter().filter_map(|op| if let Op::Conv(c) = op { Some(c) } else { None }).collect()
    }
}

/// Build the network a config describes under `p`.
pub fn build(p: &nn::Path, config: &ModelConfig, io: IoShape) -> Result<Box<dyn Net>, String> {
    Ok(match config {
        ModelConfig::SeedCnn(c) => Box::new(SeedCnn::new(p, c, io)?),
        ModelConfig::Mlp(c) => Box::new(Mlp::new(p, c, io)?),
        ModelConfig::DsConv(c) => Box::new(DsConv::new(p, c, io)?),
        ModelConfig::Cnn(c) => Box::new(Cnn::new(p, c, io)?),
    })
}
