//! Synchronous data parallelism on PyTorch's own engine (c10d's Gloo process group):
//! every replica holds the whole model, computes gradients on its share of each global
//! batch, and the gradients are summed across replicas before every optimizer step, so
//! every replica takes the same step and stays identical to the others.
//!
//! A [`Replica`] is one rank of such a job. Ranks are processes under `slimbench
//! launch` (or torchrun, a PyTorchJob, Slurm: the `MASTER_ADDR`... contract), or threads
//! of one process ([`run_replicas`]) meeting on a loopback store; the training loop is
//! the same [`crate::train`] either way.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use slimbench_torch_ext::dist::{ProcessGroup, Store};
use tch::Tensor;

/// How long a replica waits for the others in one collective before it gives up: a
/// peer that died or hangs becomes an error within this time, never a hang.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One rank of a data-parallel job. Cheap to clone (the clones share the group); the
/// group itself runs one collective at a time.
#[derive(Debug, Clone)]
pub struct Replica {
    group: Arc<Mutex<ProcessGroup>>,
    rank: usize,
    world_size: usize,
    device: tch::Device,
}

/// Why a collective failed (a peer died, timed out, or disagreed).
#[derive(Debug, thiserror::Error)]
#[error("data-parallel replica {rank} of {world_size}: {source}")]
pub struct ReplicaError {
    /// This rank.
    pub rank: usize,
    /// Replicas in the job.
    pub world_size: usize,
    /// c10d's or Gloo's message.
    #[source]
    pub source: slimbench_torch_ext::BridgeError,
}

impl Replica {
    /// The replica of `group`'s rank.
    pub fn new(group: ProcessGroup) -> Self {
        let (rank, world_size, device) = (group.rank(), group.world_size(), group.device());
        Replica { group: Arc::new(Mutex::new(group)), rank, world_size, device }
    }

    /// The device its group reduces on (the CPU for Gloo, its own GPU for NCCL): where
    /// its model should live.
    pub fn device(&self) -> tch::Device {
        self.device
    }

    /// This replica's rank, `0..world_size`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Replicas in the job.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    fn group(&self) -> MutexGuard<'_, ProcessGroup> {
        // A panic elsewhere while holding it leaves the group as usable as before.
        self.group.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: slimbench_torch_ext::BridgeError) -> ReplicaError {
        ReplicaError { rank: self.rank(), world_size: self.world_size(), source }
    }

    /// The rows `[lo, hi)` of a global batch of `n` that this replica computes: equal
    /// shares, the first `n % world` replicas one more.
    pub fn share(&self, n: usize) -> (usize, usize) {
        let (r, w) = (self.rank(), self.world_size());
        (n * r / w, n * (r + 1) / w)
    }

    /// Make every replica start from rank 0's values.
    pub fn broadcast_from_first(&self, tensors: &[Tensor]) -> Result<(), ReplicaError> {
        let refs: Vec<&Tensor> = tensors.iter().collect();
        tch::no_grad(|| self.group().broadcast(&refs, 0)).map_err(|e| self.err(e))
    }

    /// Sum the gradients of `params` across replicas, in place (each replica's loss is
    /// already scaled by its share of the global batch, so the sum is the gradient of
    /// the global batch's mean loss). Parameters without a gradient are skipped; every
    /// replica has the same ones, since they run the same model.
    pub fn sum_gradients(&self, params: &[Tensor]) -> Result<(), ReplicaError> {
        let grads: Vec<Tensor> = params.iter().map(Tensor::grad).filter(Tensor::defined).collect();
        let refs: Vec<&Tensor> = grads.iter().collect();
        tch::no_grad(|| self.group().all_reduce_sum(&refs)).map_err(|e| self.err(e))
    }
}

/// A free TCP port on the loopback interface, for a job's store.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Run `n` replicas as threads of this process on the CPU, meeting on a loopback
/// store through Gloo: see [`run_replicas_on`].
pub fn run_replicas<T, E, F>(n: usize, timeout: Duration, f: F) -> Result<Vec<T>, E>
where
    T: Send,
    E: Send + From<ReplicaError>,
    F: Fn(Replica) -> Result<T, E> + Sync,
{
    run_replicas_on(&vec![tch::Device::Cpu; n], timeout, f)
}

/// Run one replica per entry of `devices` as threads of this process, meeting on a
/// loopback store: through Gloo on the CPU, through NCCL when every replica has a CUDA
/// device of its own. `f` runs on each with its [`Replica`]; the results come back in
/// rank order. The first error (a failed collective, or `f`'s own) is returned; a
/// replica that fails makes the others' next collective fail within `timeout`, so
/// this never hangs.
pub fn run_replicas_on<T, E, F>(devices: &[tch::Device], timeout: Duration, f: F) -> Result<Vec<T>, E>
where
    T: Send,
    E: Send + From<ReplicaError>,
    F: Fn(Replica) -> Result<T, E> + Sync,
{
    let n = devices.len();
    let invalid = |op: &str, message: String| ReplicaError {
        rank: 0,
        world_size: n,
        source: slimbench_torch_ext::BridgeError::Invalid { op: op.into(), message },
    };
    let cuda: Vec<usize> =
        devices.iter().filter_map(|d| if let tch::Device::Cuda(i) = d { Some(*i) } else { None }).collect();
    let distinct = cuda.iter().collect::<std::collections::BTreeSet<_>>().len() == cuda.len();
    if !cuda.is_empty() && (cuda.len() != n || !distinct) {
        return Err(invalid(
            "placing data-parallel replicas",
            format!("NCCL needs one CUDA device per replica; got {devices:?}"),
        )
        .into());
    }
    let port = free_port().map_err(|e| invalid("finding a free port on 127.0.0.1", e.to_string()))?;
    // CPU replicas share the caller's intra-op threads rather than each taking all.
    let threads = (tch::get_num_threads().max(1) as usize / n.max(1)).max(1);
    let results: Vec<Result<T, E>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .map(|(rank, &device)| {
                let f = &f;
                scope.spawn(move || {
                    if device == tch::Device::Cpu {
                        tch::set_num_threads(threads as i32);
                    }
                    let join = |source| ReplicaError { rank, world_size: n, source };
                    let store = Store::tcp("127.0.0.1", port, n, rank == 0, timeout).map_err(join)?;
                    let group = match device {
                        tch::Device::Cuda(i) => ProcessGroup::nccl(&store, rank, n, timeout, i),
                        _ => ProcessGroup::gloo(&store, rank, n, timeout),
                    }
                    .map_err(join)?;
                    f(Replica::new(group))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use slimbench_core::config::OptimizerKind;
    use slimbench_core::progress::NoProgress;
    use slimbench_data::Split;
    use slimbench_models::Model;

    use super::*;
    use crate::{CrossEntropy, TrainConfig, TrainError, testutil, train};

    /// One job at a time: each picks a free port and lets it go before c10d binds it,
    /// so jobs started side by side could meet on one store.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn digits(n: usize) -> (Arc<Split>, Arc<Split>) {
        testutil::digits(n, 100)
    }

    fn mlp() -> Model {
        testutil::mlp(32, 7)
    }

    fn config(optimizer: OptimizerKind, lr: f64, batch_size: usize, replica: Option<Replica>) -> TrainConfig {
        TrainConfig { seed: 5, log_every: 1000, replica, ..testutil::config(1, optimizer, lr, batch_size) }
    }

    fn flat(model: &Model) -> Vec<f32> {
        let parts: Vec<Tensor> = model.named().into_iter().map(|(_, t)| t.detach().flatten(0, -1)).collect();
        Vec::<f32>::try_from(Tensor::cat(&parts, 0)).unwrap()
    }

    #[test]
    fn replicas_hold_identical_parameters_after_every_step() {
        let _serial = serial();
        let (train_split, test_split) = digits(300);
        // Replica 1 starts from other weights: the first broadcast must fix that.
        let snapshots = run_replicas(2, DEFAULT_TIMEOUT, |replica| -> Result<_, TrainError> {
            let mut model = mlp();
            if replica.rank() == 1 {
                tch::no_grad(|| {
                    for (_, t) in model.named() {
                        let _ = t.shallow_clone().uniform_(-1.0, 1.0);
                    }
                });
            }
            let mut steps = Vec::new();
            let mut hook = |m: &Model| steps.push(flat(m));
            let cfg = config(OptimizerKind::Adam, 1e-2, 32, Some(replica));
            train(
                &mut model,
                &train_split,
                &test_split,
                &cfg,
                &mut CrossEntropy,
                Some(&mut hook),
                &NoProgress,
            )?;
            Ok(steps)
        })
        .unwrap();
        // 300 images at a global batch of 32: 10 steps, each replica computing 16.
        assert_eq!(snapshots[0].len(), 10);
        assert_eq!(snapshots[0], snapshots[1], "the replicas drifted apart");
        assert_ne!(snapshots[0][0], snapshots[0][9], "training did not move the weights");
    }

    #[test]
    fn two_replicas_take_the_step_of_the_whole_batch() {
        let _serial = serial();
        // One step of SGD on 64 images: alone, and as two replicas of 32 each.
        let (train_split, test_split) = digits(64);
        let mut alone = mlp();
        let cfg = config(OptimizerKind::Sgd, 0.5, 64, None);
        train(&mut alone, &train_split, &test_split, &cfg, &mut CrossEntropy, None, &NoProgress).unwrap();
        let replicated = run_replicas(2, DEFAULT_TIMEOUT, |replica| -> Result<_, TrainError> {
            let mut model = mlp();
            let cfg = config(OptimizerKind::Sgd, 0.5, 64, Some(replica));
            train(&mut model, &train_split, &test_split, &cfg, &mut CrossEntropy, None, &NoProgress)?;
            Ok(flat(&model))
        })
        .unwrap();
        let (a, b) = (flat(&alone), &replicated[0]);
        assert_ne!(flat(&mlp()), a, "the step changed nothing");
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "largest difference from the single-model step: {worst}");
    }

    #[test]
    fn shares_cover_the_batch_once() {
        let _serial = serial();
        let (train_split, test_split) = digits(40);
        let shares = run_replicas(3, DEFAULT_TIMEOUT, |replica| -> Result<_, TrainError> {
            let _ = (&train_split, &test_split);
            Ok(replica.share(10))
        })
        .unwrap();
        assert_eq!(shares, [(0, 3), (3, 6), (6, 10)]);
    }
}
