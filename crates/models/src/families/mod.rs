//! Model families: each builds its layers under a scoped path of a `VarStore`
//! (`p / "conv1"`) and implements `forward_t` on `[N, C, H, W]` images.

mod cnn;
mod dense;
mod dsconv;
mod mlp;
mod seed_cnn;

use slimbench_core::artifact::IoShape;
use slimbench_core::config::ModelConfig;
use tch::nn;

pub use cnn::Cnn;
pub use dense::Dense;
pub use dsconv::DsConv;
pub use mlp::Mlp;
pub use seed_cnn::SeedCnn;

/// A network: a tch module that can be shared across threads, and whose linear layers
/// can be handed to other kernels.
pub trait Net: nn::ModuleT + Send + std::fmt::Debug {
    /// Its linear layers, input to output.
    fn dense_layers(&self) -> Vec<&Dense>;
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
