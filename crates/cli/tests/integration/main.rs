//! Integration tests: the real `slimbench` binary on real pipelines in temporary
//! directories. Small helpers in `util` keep each case short.

mod backends;
mod compare;
mod compress;
mod deploy;
mod distill;
mod errors;
mod export;
mod graphs;
mod lowrank;
mod parallel;
mod prune_methods;
mod quantize;
mod run;
mod seed;
mod speedup;
mod trust;
mod util;
