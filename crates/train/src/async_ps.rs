//! Asynchronous data parallelism with a parameter server, in one process: N workers
//! (threads) each pull the server's current parameters, compute the gradient of their
//! own batch, and push it; the server applies every push at once, without waiting for
//! the others. A gradient computed from version `v` of the parameters and applied when
//! the server is at version `w` is `w - v` versions stale; the staleness of every
//! update is recorded, since it is what makes asynchronous training less stable.
//!
//! Batches are dealt round-robin: worker `k` takes batches `k, k + N, ...` of each
//! epoch's order, so an epoch still visits every image once. Workers meet at the end
//! of each epoch, where the server's model is tested.

use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use slimbench_core::progress::Progress;
use slimbench_core::records::CurvePoint;
use slimbench_data::Split;
use slimbench_models::Model;
use tch::Tensor;

use crate::{Objective, TrainConfig, TrainError, TrainOutcome, build_optimizer};

/// What the server recorded besides the usual outcome.
#[derive(Debug, Clone, Default)]
pub struct AsyncOutcome {
    /// Curves, time and test accuracy, as [`crate::train`] reports them (the train
    /// points average the pushed losses of `log_every` updates).
    pub outcome: TrainOutcome,
    /// Staleness of every update, in the order the server applied them.
    pub staleness: Vec<u64>,
    /// The worker that pushed each update.
    pub worker: Vec<usize>,
    /// The epoch of each update, from 1.
    pub epoch: Vec<u32>,
}

impl AsyncOutcome {
    /// Mean staleness over all updates.
    pub fn mean_staleness(&self) -> f64 {
        self.staleness.iter().sum::<u64>() as f64 / self.staleness.len().max(1) as f64
    }

    /// Largest staleness.
    pub fn max_staleness(&self) -> u64 {
        self.staleness.iter().copied().max().unwrap_or(0)
    }
}

/// The server: the model every worker pulls, its optimizer, and the update log.
struct Server {
    model: Model,
    opt: tch::nn::Optimizer,
    version: u64,
    staleness: Vec<u64>,
    worker: Vec<usize>,
    epoch: Vec<u32>,
    losses: Vec<f64>,
    correct: i64,
    seen: i64,
    curves: Vec<CurvePoint>,
}

/// Train `model` (the server's copy) with one asynchronous worker per replica in
/// `replicas` (any weights: each pulls the server's before every batch).
pub fn train_async<O>(
    model: Model,
    replicas: Vec<Model>,
    train_split: &Arc<Split>,
    test_split: &Split,
    cfg: &TrainConfig,
    objective: O,
    progress: &dyn Progress,
) -> Result<(Model, AsyncOutcome), TrainError>
where
    O: Fn() -> Box<dyn Objective> + Sync,
{
    let workers = replicas.len().max(1);
    let opt = build_optimizer(model.vs(), &cfg.optim)?;
    // Give every server parameter a (zero) gradient, so pushes can copy into it.
    let zero = model
        .vs()
        .trainable_variables()
        .iter()
        .fold(Tensor::zeros([], (tch::Kind::Float, model.device())), |acc, v| {
            acc + v.sum(tch::Kind::Float) * 0.0
        });
    zero.backward();
    let server = Mutex::new(Server {
        model,
        opt,
        version: 0,
        staleness: Vec::new(),
        worker: Vec::new(),
        epoch: Vec::new(),
        losses: Vec::new(),
        correct: 0,
        seen: 0,
        curves: Vec::new(),
    });
    let failed = std::sync::atomic::AtomicBool::new(false);
    let loader = cfg.loader(train_split, 0);
    let per_epoch = loader.batches_per_epoch() as u64;
    let total = per_epoch * u64::from(cfg.epochs);
    let barrier = Barrier::new(workers);
    // CPU workers share the caller's intra-op threads rather than each taking all.
    let threads = (tch::get_num_threads().max(1) as usize / workers).max(1);
    let started = Instant::now();
    let eval_time = Mutex::new(0.0f64);
    let results: Vec<Result<(), TrainError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = replicas
            .into_iter()
            .enumerate()
            .map(|(k, mut replica)| {
                let (server, loader, barrier, objective, eval_time, failed) =
                    (&server, &loader, &barrier, &objective, &eval_time, &failed);
                scope.spawn(move || -> Result<(), TrainError> {
                    let mut objective = objective();
                    let device = replica.device();
                    if device == tch::Device::Cpu {
                        tch::set_num_threads(threads as i32);
                    }
                    let mut error = None;
                    for epoch in 1..=cfg.epochs {
                        let bar = (k == 0).then(|| {
                            progress.bar(&format!("{} epoch {epoch}/{} (async)", cfg.variant, cfg.epochs), per_epoch)
                        });
                        for (i, batch) in loader.epoch(u64::from(epoch)).enumerate() {
                            if i % workers != k {
                                continue;
                            }
                            // A worker that failed stops the others at the next batch; all
                            // still meet at the epoch's barriers, so none waits forever.
                            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                                break;
                            }
                            if let Err(e) = slimbench_core::cancel::check() {
                                error = Some(e.into());
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                            // Pull.
                            let pulled = {
                                let s = lock(server);
                                if let Err(e) = replica.copy_from(&s.model) {
                                    error = Some(TrainError::Torch(tch::TchError::Torch(e.to_string())));
                                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                    break;
                                }
                                s.version
                            };
                            let (xs, ys) = crate::run::batch_tensors(&batch, 0..batch.n, device);
                            let (loss, logits) = objective.loss(&replica, &xs, &ys);
                            let correct = tch::no_grad(|| logits.argmax(-1, false).eq_tensor(&ys).sum(tch::Kind::Int64));
                            replica.vs().trainable_variables().iter().for_each(|v| {
                                let mut g = v.grad();
                                if g.defined() {
                                    let _ = g.zero_();
                                }
                            });
                            loss.backward();
                            let loss = loss.double_value(&[]);
                            // Push: the server steps with this gradient now.
                            let mut s = lock(server);
                            let step = s.version;
                            if !cfg.optim.schedule.is_constant() {
                                let lr = cfg.optim.schedule.at(cfg.optim.lr, step, total);
                                s.opt.set_lr(lr);
                            }
                            let mine = replica.vs().trainable_variables();
                            let theirs = s.model.vs().trainable_variables();
                            tch::no_grad(|| {
                                for (dst, src) in theirs.iter().zip(&mine) {
                                    let (g, mut d) = (src.grad(), dst.grad());
                                    if g.defined() {
                                        d.copy_(&g);
                                    } else {
                                        let _ = d.zero_();
                                    }
                                }
                            });
                            s.opt.step();
                            s.version += 1;
                            s.staleness.push(step - pulled);
                            s.worker.push(k);
                            s.epoch.push(epoch);
                            s.losses.push(loss);
                            s.correct += correct.int64_value(&[]);
                            s.seen += batch.n as i64;
                            if !loss.is_finite() {
                                error = Some(TrainError::Diverged { variant: cfg.variant.clone(), step: s.version, loss });
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                            if s.version.is_multiple_of(cfg.log_every as u64) {
                                let point = train_point(cfg, epoch, &mut s, started, *eval_time.lock().unwrap());
                                s.curves.push(point);
                            }
                            drop(s);
                            if let Some(b) = &bar {
                                b.inc(workers as u64);
                            }
                        }
                        if let Some(b) = bar {
                            b.finish();
                        }
                        barrier.wait();
                        if k == 0 && !failed.load(std::sync::atomic::Ordering::Relaxed) {
                            let mut s = lock(server);
                            if !s.losses.is_empty() {
                                let point = train_point(cfg, epoch, &mut s, started, *eval_time.lock().unwrap());
                                s.curves.push(point);
                            }
                            let t = Instant::now();
                            let test = slimbench_eval::accuracy(&s.model, test_split, cfg.eval_batch_size);
                            *eval_time.lock().unwrap() += t.elapsed().as_secs_f64();
                            let elapsed = started.elapsed().as_secs_f64() - *eval_time.lock().unwrap();
                            let point = cfg.test_point(epoch, s.version, &test, elapsed);
                            s.curves.push(point);
                            tracing::info!(variant = %cfg.variant, epoch, test_accuracy = test.accuracy, "epoch done (async)");
                        }
                        barrier.wait();
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                    }
                    error.map_or(Ok(()), Err)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    let s = server.into_inner().unwrap_or_else(|p| p.into_inner());
    let eval_time = eval_time.into_inner().unwrap_or_default();
    let test_accuracy = s.curves.iter().rev().find(|c| c.split == "test").map_or(0.0, |c| c.accuracy);
    let outcome = TrainOutcome {
        curves: s.curves,
        train_time_s: started.elapsed().as_secs_f64() - eval_time,
        steps: s.version,
        test_accuracy,
        amp: String::new(),
    };
    Ok((s.model, AsyncOutcome { outcome, staleness: s.staleness, worker: s.worker, epoch: s.epoch }))
}

/// The server, also after a worker panicked holding it (its state is still whole).
fn lock(s: &Mutex<Server>) -> std::sync::MutexGuard<'_, Server> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The train point of the losses pushed since the last one (which it clears).
fn train_point(
    cfg: &TrainConfig,
    epoch: u32,
    s: &mut Server,
    started: Instant,
    eval_time: f64,
) -> CurvePoint {
    let loss = s.losses.iter().sum::<f64>() / s.losses.len().max(1) as f64;
    let accuracy = s.correct as f64 / s.seen.max(1) as f64;
    s.losses.clear();
    (s.correct, s.seen) = (0, 0);
    CurvePoint {
        stage: cfg.stage.clone(),
        variant: cfg.variant.clone(),
        epoch,
        step: s.version,
        split: "train".into(),
        loss,
        accuracy,
        elapsed_s: started.elapsed().as_secs_f64() - eval_time,
    }
}

#[cfg(test)]
mod tests {
    use slimbench_core::config::OptimizerKind;
    use slimbench_core::progress::NoProgress;

    use super::*;
    use crate::{CrossEntropy, testutil};

    fn mlp(seed: u64) -> Model {
        testutil::mlp(64, seed)
    }

    #[test]
    fn workers_push_stale_gradients_and_the_server_still_learns() {
        let (train_split, test_split) = testutil::digits(1200, 300);
        let cfg = testutil::config(2, OptimizerKind::Adam, 3e-3, 32);
        let before = slimbench_eval::accuracy(&mlp(1), &test_split, 100).accuracy;
        let replicas = vec![mlp(2), mlp(3), mlp(4)];
        let objective = || Box::new(CrossEntropy) as Box<dyn Objective>;
        let (model, out) =
            train_async(mlp(1), replicas, &train_split, &test_split, &cfg, objective, &NoProgress).unwrap();
        // Every batch of both epochs became one update (38 batches an epoch).
        assert_eq!(out.staleness.len(), 76);
        assert_eq!(out.outcome.steps, 76);
        // Three workers sharing the server: some gradients are computed from parameters
        // others have already moved on from.
        assert!(out.max_staleness() > 0, "no update was stale: {:?}", out.staleness);
        assert!((0..3).all(|w| out.worker.contains(&w)), "a worker pushed nothing");
        let after = slimbench_eval::accuracy(&model, &test_split, 100).accuracy;
        assert!(after > before + 0.2, "{before} -> {after}");
        assert_eq!(out.outcome.test_accuracy, after);
        let train_points: Vec<_> = out.outcome.curves.iter().filter(|c| c.split == "train").collect();
        assert!(train_points.iter().all(|c| c.loss.is_finite() && (0.0..=1.0).contains(&c.accuracy)));
    }
}
