//! The runner: device and thread set-up, dispatch by stage kind.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use slimbench_core::config::{Defaults, StageParams};
use slimbench_core::records::Records;
use slimbench_metrics::{SamplerConfig, SystemSampler};
use slimbench_models::runtime::{self, TORCH_VERSION};
use slimbench_pipeline::StageRunner;
use slimbench_pipeline::executor::{BoxError, RunEnv, StageContext, StageOutput};
use tch::Device;

/// Errors raised by the stage wiring itself (the domain crates bring their own).
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The device in `defaults.device` is not there.
    #[error("{0}")]
    Device(String),
    /// A stage's inputs are not what it needs.
    #[error("{0}")]
    Input(String),
}

/// Runs stages on libtorch.
#[derive(Debug, Clone)]
pub struct TorchRunner {
    env: RunEnv,
    /// The run's device; while a stage with its own `device:` runs, that one.
    pub(crate) device: Device,
    /// The multi-process job this process is part of, if any (shared with the
    /// runner of a stage that has its own device; stages run on one thread).
    pub(crate) dist: Option<Rc<crate::DistJob>>,
}

impl TorchRunner {
    /// Resolve the device and set the thread count from the pipeline's defaults.
    pub fn new(defaults: &Defaults, git_revision: &str) -> Result<Self, StageError> {
        let device = runtime::resolve_device(defaults.device).map_err(StageError::Device)?;
        let threads = runtime::set_threads(defaults.threads);
        if let Device::Cuda(i) = device {
            tracing::info!(
                "computing on cuda:{i} ({} CUDA device(s), cuDNN {})",
                tch::Cuda::device_count(),
                tch::Cuda::cudnn_is_available()
            );
        } else {
            tracing::info!(
                threads,
                "computing on the CPU{}",
                if tch::Cuda::is_available() { "" } else { " (no CUDA device found)" }
            );
        }
        let (gpus, no_gpu_reason) = match slimbench_metrics::probe_gpus() {
            Ok(g) if g.is_empty() => (g, "the CUDA driver reports no device".to_string()),
            Ok(g) => (g, String::new()),
            Err(why) => (Vec::new(), why),
        };
        for g in &gpus {
            tracing::info!(
                "GPU {}: {} (compute {}, {:.1} GiB, driver {})",
                g.ordinal,
                g.name,
                g.compute_capability,
                g.memory_total_bytes as f64 / (1u64 << 30) as f64,
                g.driver_version
            );
        }
        Ok(TorchRunner {
            env: RunEnv {
                gpus,
                no_gpu_reason,
                device: runtime::device_name(device),
                cuda_available: tch::Cuda::is_available(),
                threads,
                torch_version: TORCH_VERSION.to_string(),
                git_revision: git_revision.to_string(),
                host: slimbench_metrics::probe_host(),
            },
            device,
            dist: None,
        })
    }

    /// Take part in a multi-process job: its data-parallel train stages run across
    /// every rank.
    pub fn with_dist(mut self, job: crate::DistJob) -> Self {
        // Under NCCL each process computes on its own GPU.
        if job.device().is_cuda() {
            self.device = job.device();
            self.env.device = runtime::device_name(self.device);
        }
        self.dist = Some(Rc::new(job));
        self
    }

    /// The device stages run on unless they say otherwise.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The multi-process job, if any.
    pub fn dist(&self) -> Option<&crate::DistJob> {
        self.dist.as_deref()
    }
}

impl StageRunner for TorchRunner {
    fn env(&self) -> &RunEnv {
        &self.env
    }

    fn run_stage(&self, ctx: &StageContext<'_>) -> Result<StageOutput, BoxError> {
        // A stage with its own `device:` runs on a runner that computes there; one that
        // asks for a CUDA device this machine lacks is skipped, and says so.
        let stage_runner;
        let runner = match ctx.stage.params.device() {
            None => self,
            Some(spec) => match runtime::resolve_device(spec) {
                Ok(device) => {
                    stage_runner = TorchRunner { device, ..self.clone() };
                    &stage_runner
                }
                Err(why) => {
                    return Ok(StageOutput {
                        notes: vec![format!("{}: skipped: {why}", ctx.stage.id)],
                        ..Default::default()
                    });
                }
            },
        };
        // The machine at ~10 Hz while the stage runs (its GPU too, where there is one).
        let gpu = runtime::gpu_index(runner.device).or_else(|| tch::Cuda::is_available().then_some(0));
        let sampler = SystemSampler::start(&ctx.stage.id, SamplerConfig { gpu, ..Default::default() });
        let mut out = runner.dispatch(ctx)?;
        let sampled = sampler.stop();
        if let Some(why) = sampled.gpu_note {
            out.notes.push(format!("{}: GPU not sampled: {why}", ctx.stage.id));
        }
        out.records.system.extend(sampled.samples);
        Ok(out)
    }

    fn write_tables(&self, run_dir: &Path, records: &Records) -> Result<(), BoxError> {
        slimbench_metrics::write_tables(run_dir, records)?;
        Ok(())
    }

    fn render_report(&self, ctx: &StageContext<'_>, run_dir: &Path) -> Result<Vec<PathBuf>, BoxError> {
        match &ctx.stage.params {
            StageParams::Report(p) => crate::report::render(ctx, p, run_dir),
            _ => Err("only report stages are rendered".into()),
        }
    }
}

impl TorchRunner {
    fn dispatch(&self, ctx: &StageContext<'_>) -> Result<StageOutput, BoxError> {
        match &ctx.stage.params {
            StageParams::Train(p) => crate::train::run(self, ctx, p),
            StageParams::Quantize(p) => crate::quantize::run(self, ctx, p),
            StageParams::Prune(p) => crate::prune::run(self, ctx, p),
            StageParams::LowRank(p) => crate::lowrank::run(self, ctx, p),
            StageParams::Distill(p) => crate::distill::run(self, ctx, p),
            StageParams::Evaluate(p) => crate::evaluate::run(self, ctx, p),
            StageParams::Report(_) => Err("report stages are rendered, not run".into()),
        }
    }
}
