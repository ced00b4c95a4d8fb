//! Multi-process runs (`slimbench launch`, torchrun, a PyTorchJob, Slurm): every process
//! loads the same pipeline; rank 0 runs it and writes everything; the other ranks only
//! take part in its `strategy: data-parallel` train stages, as replicas that write
//! nothing.
//!
//! Two Gloo groups share one c10d `TCPStore` served by rank 0:
//! * the *control* group, where rank 0 announces each data-parallel stage it is about
//!   to run (its index in the plan), then the end of the run. Its timeout is long, since
//!   the other ranks wait there while rank 0 runs stages of its own; a rank that dies
//!   closes its sockets, so the others still learn of it at once;
//! * the *training* group, where replicas sum gradients every step, with a short
//!   timeout (`SLIMBENCH_DIST_TIMEOUT`, seconds, default 30): a rank that dies or hangs
//!   in training is an error for the others within it, never a hang.

use std::time::Duration;

use slimbench_core::dist::DistEnv;
use slimbench_core::progress::NoProgress;
use slimbench_pipeline::Plan;
use slimbench_pipeline::executor::{BoxError, Datasets, StageContext};
use slimbench_torch_ext::dist::{ProcessGroup, Store};
use slimbench_train::replica::{DEFAULT_TIMEOUT, Replica};
use tch::Tensor;

use crate::TorchRunner;

/// Rank 0's last word: the run is over.
const DONE: i64 = -1;
/// Rank 0's last word: the run failed.
const FAILED: i64 = -2;
/// How long the control group waits (while rank 0 runs stages of its own).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// This process's place in a multi-process job.
#[derive(Debug)]
pub struct DistJob {
    env: DistEnv,
    control: ProcessGroup,
    replica: Replica,
}

/// Why joining or following a job failed.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The store or a group could not be set up, or a collective failed.
    #[error("rank {rank} of {world_size}: {what}: {source}")]
    Engine {
        /// This rank.
        rank: usize,
        /// Processes in the job.
        world_size: usize,
        /// What was being done.
        what: &'static str,
        /// c10d's or Gloo's message.
        #[source]
        source: slimbench_torch_ext::BridgeError,
    },
    /// `SLIMBENCH_DIST_TIMEOUT` is not a positive number of seconds.
    #[error("SLIMBENCH_DIST_TIMEOUT={0:?}: expected a positive number of seconds")]
    BadTimeout(String),
    /// Rank 0 announced something this rank's plan does not have.
    #[error(
        "rank {rank}: rank 0 announced stage #{index}, which is not a data-parallel train stage of this plan; every rank must run the same pipeline with the same --set overrides"
    )]
    PlanMismatch {
        /// This rank.
        rank: usize,
        /// The index announced.
        index: i64,
    },
    /// Rank 0 said its run failed.
    #[error("rank {0}: rank 0's run failed (its error is in rank 0's output)")]
    LeaderFailed(usize),
}

/// The training group's timeout: `SLIMBENCH_DIST_TIMEOUT` seconds, or 30.
pub fn training_timeout() -> Result<Duration, DistError> {
    match std::env::var("SLIMBENCH_DIST_TIMEOUT") {
        Err(_) => Ok(DEFAULT_TIMEOUT),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
            _ => Err(DistError::BadTimeout(v)),
        },
    }
}

impl DistJob {
    /// Meet the other ranks: rank 0 serves the store at `MASTER_ADDR:MASTER_PORT` and
    /// returns once all `WORLD_SIZE` ranks have joined (or fails after the timeout).
    /// Data-parallel stages reduce through Gloo on the CPU; when `device` is CUDA,
    /// through NCCL, each process on the GPU of its `LOCAL_RANK` (else its rank).
    pub fn connect(env: &DistEnv, device: tch::Device) -> Result<DistJob, DistError> {
        let timeout = training_timeout()?;
        let (rank, world_size) = (env.rank, env.world_size);
        let fail = |what| move |source| DistError::Engine { rank, world_size, what, source };
        let store = Store::tcp(&env.master_addr, env.master_port, world_size, rank == 0, timeout)
            .map_err(fail("joining the store"))?;
        let control = ProcessGroup::gloo(&store, rank, world_size, CONTROL_TIMEOUT)
            .map_err(fail("creating the control group"))?;
        let training = match device {
            tch::Device::Cuda(_) => {
                let gpu = env.local_rank.unwrap_or(rank);
                ProcessGroup::nccl(&store, rank, world_size, timeout, gpu)
            }
            _ => ProcessGroup::gloo(&store, rank, world_size, timeout),
        }
        .map_err(fail("creating the training group"))?;
        let engine = if training.device().is_cuda() { "NCCL" } else { "Gloo" };
        tracing::info!(
            rank,
            world_size,
            timeout_s = timeout.as_secs_f64(),
            "joined the distributed job ({engine})"
        );
        Ok(DistJob { env: env.clone(), control, replica: Replica::new(training) })
    }

    /// Where this process's data-parallel replica lives (its GPU under NCCL).
    pub fn device(&self) -> tch::Device {
        self.replica.device()
    }

    /// The engine its data-parallel stages reduce through.
    pub fn engine(&self) -> &'static str {
        if self.device().is_cuda() { "NCCL" } else { "Gloo" }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.env.rank
    }

    /// Processes in the job.
    pub fn world_size(&self) -> usize {
        self.env.world_size
    }

    /// The replica this process is in data-parallel stages.
    pub fn replica(&self) -> Replica {
        self.replica.clone()
    }

    fn err(&self, what: &'static str) -> impl Fn(slimbench_torch_ext::BridgeError) -> DistError + '_ {
        move |source| DistError::Engine { rank: self.rank(), world_size: self.world_size(), what, source }
    }

    fn say(&self, word: i64) -> Result<i64, DistError> {
        let t = Tensor::from_slice(&[word]);
        self.control.broadcast(&[&t], 0).map_err(self.err("waiting for rank 0"))?;
        Ok(t.int64_value(&[0]))
    }

    /// Rank 0: tell the others that data-parallel stage `index` of the plan starts.
    pub fn announce(&self, index: usize) -> Result<(), DistError> {
        self.say(index as i64).map(drop)
    }

    /// Rank 0: tell the others the run is over (`ok`) or failed.
    pub fn finish(&self, ok: bool) -> Result<(), DistError> {
        self.say(if ok { DONE } else { FAILED }).map(drop)
    }

    /// Ranks other than 0: take part in every data-parallel stage rank 0 announces,
    /// until it says the run is over. Nothing is written: each stage's files go to a
    /// scratch directory that is removed.
    pub fn follow(&self, runner: &TorchRunner, plan: &Plan, datasets: &Datasets) -> Result<(), BoxError> {
        loop {
            let word = self.say(0)?;
            if word == DONE {
                return Ok(());
            }
            if word == FAILED {
                return Err(DistError::LeaderFailed(self.rank()).into());
            }
            let stage = usize::try_from(word)
                .ok()
                .and_then(|i| plan.stages.get(i))
                .filter(|s| s.params.is_distributed())
                .ok_or(DistError::PlanMismatch { rank: self.rank(), index: word })?;
            tracing::info!(rank = self.rank(), stage = %stage.id, "joining data-parallel stage");
            let scratch = tempfile::tempdir()?;
            let env = slimbench_pipeline::StageRunner::env(runner);
            let ctx = StageContext {
                plan,
                stage,
                out_dir: scratch.path(),
                inputs: &[],
                datasets,
                progress: &NoProgress,
                env,
            };
            slimbench_pipeline::StageRunner::run_stage(runner, &ctx)?;
        }
    }
}
