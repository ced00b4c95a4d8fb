//! # slimbench-core
//!
//! The vocabulary every other slimbench crate speaks, with no libtorch in it so that
//! the pipeline, table and report crates build and test fast.
//!
//! * [`config`]: what a pipeline YAML can say: [`config::ModelConfig`],
//!   [`config::DatasetConfig`], [`config::Defaults`] and the typed parameters of every
//!   stage kind ([`config::StageParams`]).
//! * [`records`]: the rows stages emit ([`records::MetricRow`],
//!   [`records::CurvePoint`], [`records::LatencySample`], [`records::ThroughputRow`])
//!   that become Polars tables.
//! * [`artifact`]: what a finished stage leaves behind ([`artifact::StageManifest`],
//!   [`artifact::ModelMeta`]).
//! * [`gates`]: regression gates ([`gates::Gates`], [`gates::GateRule`],
//!   [`gates::Threshold`]): what `gates:` in a pipeline and `slimbench compare --gate` say.
//! * [`fsutil`]: atomic writes and directories: nothing is ever half-written.
//! * [`dist`]: the MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK contract of distributed launches.
//! * [`hash`], [`device`], [`progress`], [`cancel`]: small shared pieces.

pub mod artifact;
pub mod cancel;
pub mod config;
pub mod device;
pub mod dist;
pub mod fsutil;
pub mod gates;
pub mod hash;
pub mod progress;
pub mod records;

/// The slimbench version, part of every stage's cache key.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
