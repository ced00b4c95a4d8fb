//! The layers with parameters a graph's nodes are built from: [`Conv`], [`Dense`]
//! (linear, possibly factored or packed for another kernel) and [`Norm`] (batch norm).
//! Each builds its variables under a scoped path of a `VarStore` (`root / id`).

mod conv;
mod dense;
mod norm;

pub use conv::{Conv, Geometry};
pub use dense::Dense;
pub use norm::Norm;
