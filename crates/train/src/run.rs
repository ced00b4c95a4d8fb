//! The training loop.

use std::sync::Arc;
use std::time::Instant;

use slimbench_core::cancel::{self, Cancelled};
use slimbench_core::config::{AmpKind, OptimSettings};
use slimbench_core::progress::Progress;
use slimbench_core::records::CurvePoint;
use slimbench_data::Split;
use slimbench_data::loader::{Loader, LoaderConfig};
use slimbench_models::Model;
use tch::{Kind, Tensor};

use crate::amp::{self, LossScaler};
use crate::replica::{Replica, ReplicaError};
use crate::{Objective, build_optimizer};

/// Runs after every optimizer step.
pub trait StepHook {
    /// Called with the updated model.
    fn after_step(&mut self, model: &Model);
}

impl<F: FnMut(&Model)> StepHook for F {
    fn after_step(&mut self, model: &Model) {
        self(model)
    }
}

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Epochs.
    pub epochs: u32,
    /// Optimizer, learning rate, batch size.
    pub optim: OptimSettings,
    /// Seed of the shuffling.
    pub seed: u64,
    /// Batch-preparation threads.
    pub workers: usize,
    /// Curve point every N steps.
    pub log_every: usize,
    /// Batch size of the end-of-epoch test pass.
    pub eval_batch_size: usize,
    /// Stage id, for the curve rows.
    pub stage: String,
    /// Variant name, for the curve rows and progress label.
    pub variant: String,
    /// Data-parallel: this replica's place in the job. Each global batch of
    /// `optim.batch_size` is split across the replicas and their gradients summed before
    /// every step. None: one model trains alone.
    pub replica: Option<Replica>,
    /// Mixed precision (CUDA only: on the CPU the loop trains in fp32 and
    /// [`TrainOutcome::amp`] says so).
    pub amp: Option<AmpKind>,
    /// Train-time augmentation of every training batch.
    pub augment: slimbench_data::loader::Augment,
}

impl TrainConfig {
    /// The shuffled loader over `split` every training loop draws its batches from;
    /// `workers` is [`TrainConfig::workers`] except where the loop prepares its own.
    pub(crate) fn loader(&self, split: &Arc<Split>, workers: usize) -> Loader {
        Loader::new(
            split.clone(),
            LoaderConfig {
                batch_size: self.optim.batch_size,
                shuffle: true,
                seed: self.seed,
                workers,
                drop_last: false,
                augment: self.augment,
                ..LoaderConfig::default()
            },
        )
    }

    /// The curve point of an end-of-epoch test pass.
    pub(crate) fn test_point(
        &self,
        epoch: u32,
        step: u64,
        test: &slimbench_eval::Accuracy,
        elapsed_s: f64,
    ) -> CurvePoint {
        CurvePoint {
            stage: self.stage.clone(),
            variant: self.variant.clone(),
            epoch,
            step,
            split: "test".into(),
            loss: test.loss,
            accuracy: test.accuracy,
            elapsed_s,
        }
    }
}

/// Why training stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// libtorch refused an operation.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// The loss became NaN or infinite.
    #[error("training `{variant}` diverged at step {step} (loss {loss}); lower the learning rate")]
    Diverged {
        /// Variant.
        variant: String,
        /// Step.
        step: u64,
        /// The loss.
        loss: f64,
    },
    /// Ctrl-C.
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    /// A data-parallel collective failed (a peer died, timed out or disagreed).
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// Training could not be set up or a pipeline stage failed.
    #[error("{0}")]
    Setup(String),
}

/// What training produced besides the updated model.
#[derive(Debug, Clone, Default)]
pub struct TrainOutcome {
    /// Curve points.
    pub curves: Vec<CurvePoint>,
    /// Seconds spent in the loop (excluding the end-of-epoch test passes).
    pub train_time_s: f64,
    /// Optimizer steps.
    pub steps: u64,
    /// Test accuracy after the last epoch.
    pub test_accuracy: f64,
    /// Mixed precision as it ran (`bf16`, `fp16 (3 steps skipped for overflow, final
    /// loss scale 32768)`), or why not; empty when none was asked for.
    pub amp: String,
}

/// Train `model` on `train_split`, testing on `test_split` after each epoch.
pub fn train(
    model: &mut Model,
    train_split: &Arc<Split>,
    test_split: &Split,
    cfg: &TrainConfig,
    objective: &mut dyn Objective,
    mut hook: Option<&mut dyn StepHook>,
    progress: &dyn Progress,
) -> Result<TrainOutcome, TrainError> {
    let device = model.device();
    if let Some(r) = &cfg.replica {
        // Same seed, same initial weights in principle; made certain here.
        r.broadcast_from_first(&model.vs().trainable_variables())?;
    }
    let mut opt = build_optimizer(model.vs(), &cfg.optim)?;
    let mut extra = objective.parameters().map(|vs| build_optimizer(vs, &cfg.optim)).transpose()?;
    let loader = cfg.loader(train_split, cfg.workers);
    let per_epoch = loader.batches_per_epoch() as u64;
    let total_steps = per_epoch * u64::from(cfg.epochs);
    let mut out = TrainOutcome::default();
    // Autocast needs CUDA; on the CPU the run says it trained in fp32.
    let amp = cfg.amp.filter(|_| device.is_cuda());
    let mut scaler = (amp == Some(AmpKind::Fp16)).then(|| LossScaler::new(device));
    if let Some(a) = cfg.amp.filter(|_| amp.is_none()) {
        out.amp = format!("{} mixed precision needs a CUDA device; trained in fp32 on the CPU", a.as_str());
    }
    let started = Instant::now();
    let mut eval_time = 0.0;
    let mut step = 0u64;
    let mut acc = Interval::new(device);
    for epoch in 1..=cfg.epochs {
        let bar = progress.bar(&format!("{} epoch {epoch}/{}", cfg.variant, cfg.epochs), per_epoch);
        for batch in loader.epoch(epoch as u64) {
            cancel::check()?;
            // Data-parallel: this replica's rows of the global batch; its mean loss is
            // weighted by its share so that the summed gradients are the global mean's.
            let (lo, hi, weight) = match &cfg.replica {
                None => (0, batch.n, 1.0),
                // Every replica sees the same batch sizes, so all skip the same batches.
                Some(r) if batch.n < r.world_size() => continue,
                Some(r) => {
                    let (lo, hi) = r.share(batch.n);
                    (lo, hi, (hi - lo) as f64 / batch.n as f64)
                }
            };
            let (xs, ys) = batch_tensors(&batch, lo..hi, device);
            if !cfg.optim.schedule.is_constant() {
                let lr = cfg.optim.schedule.at(cfg.optim.lr, step, total_steps);
                opt.set_lr(lr);
                if let Some(extra) = extra.as_mut() {
                    extra.set_lr(lr);
                }
            }
            let (loss, logits) = match amp {
                Some(a) => amp::autocast(a, || objective.loss(model, &xs, &ys))
                    .map_err(|e| TrainError::Setup(format!("mixed precision: {e}")))?,
                None => objective.loss(model, &xs, &ys),
            };
            match (&cfg.replica, extra.as_mut(), scaler.as_mut()) {
                (None, None, None) => opt.backward_step(&loss),
                (replica, mut extra, scaler) => {
                    opt.zero_grad();
                    if let Some(extra) = extra.as_mut() {
                        extra.zero_grad();
                    }
                    let mut finite = true;
                    if let Some(r) = replica {
                        (&loss * weight).backward();
                        r.sum_gradients(&model.vs().trainable_variables())?;
                        if let Some(vs) = objective.parameters() {
                            r.sum_gradients(&vs.trainable_variables())?;
                        }
                    } else if let Some(s) = scaler {
                        s.scale(&loss).backward();
                        let mut params = model.vs().trainable_variables();
                        params.extend(
                            objective.parameters().map(|vs| vs.trainable_variables()).unwrap_or_default(),
                        );
                        finite = s.unscale_and_update(&params);
                    } else {
                        loss.backward();
                    }
                    // An overflowed fp16 step is skipped (the scale was halved).
                    if finite {
                        opt.step();
                        if let Some(extra) = extra {
                            extra.step();
                        }
                    }
                }
            }
            if let Some(h) = hook.as_mut() {
                h.after_step(model);
            }
            step += 1;
            acc.add(&loss, &logits, &ys, hi - lo);
            bar.inc(1);
            if step.is_multiple_of(cfg.log_every as u64) {
                let elapsed = started.elapsed().as_secs_f64() - eval_time;
                if let Some(p) = acc.take(cfg, epoch, step, elapsed) {
                    if !p.loss.is_finite() {
                        return Err(TrainError::Diverged {
                            variant: cfg.variant.clone(),
                            step,
                            loss: p.loss,
                        });
                    }
                    bar.message(format!("loss {:.4} acc {:.3}", p.loss, p.accuracy));
                    out.curves.push(p);
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64() - eval_time;
        if let Some(p) = acc.take(cfg, epoch, step, elapsed) {
            out.curves.push(p);
        }
        bar.finish();
        let t = Instant::now();
        let test = slimbench_eval::accuracy(model, test_split, cfg.eval_batch_size);
        eval_time += t.elapsed().as_secs_f64();
        tracing::info!(variant = %cfg.variant, epoch, test_accuracy = test.accuracy, test_loss = test.loss, "epoch done");
        out.curves.push(cfg.test_point(epoch, step, &test, elapsed));
        out.test_accuracy = test.accuracy;
    }
    out.train_time_s = started.elapsed().as_secs_f64() - eval_time;
    out.steps = step;
    match (amp, &scaler) {
        (Some(a), None) => out.amp = a.as_str().to_string(),
        (Some(a), Some(s)) => {
            out.amp = format!(
                "{} with dynamic loss scaling ({} step(s) skipped for overflow, final scale {})",
                a.as_str(),
                s.skipped,
                s.current()
            )
        }
        (None, _) => {}
    }
    Ok(out)
}

/// Images `rows` of `batch` as an `[n, C, H, W]` tensor and their labels, on `device`.
pub(crate) fn batch_tensors(
    batch: &slimbench_data::loader::Batch,
    rows: std::ops::Range<usize>,
    device: tch::Device,
) -> (Tensor, Tensor) {
    let pixels = batch.image_len();
    let xs = Tensor::from_slice(&batch.images[rows.start * pixels..rows.end * pixels])
        .view([rows.len() as i64, batch.channels as i64, batch.rows as i64, batch.cols as i64])
        .to_device(device);
    (xs, Tensor::from_slice(&batch.labels[rows]).to_device(device))
}

/// Running sums of one logging interval, kept on the device so that steps do not wait
/// for a host read-back.
pub(crate) struct Interval {
    loss: Tensor,
    correct: Tensor,
    seen: i64,
    batches: u64,
}

impl Interval {
    pub(crate) fn new(device: tch::Device) -> Self {
        Interval {
            loss: Tensor::zeros([], (Kind::Float, device)),
            correct: Tensor::zeros([], (Kind::Int64, device)),
            seen: 0,
            batches: 0,
        }
    }

    fn add(&mut self, loss: &Tensor, logits: &Tensor, ys: &Tensor, n: usize) {
        let correct = tch::no_grad(|| logits.argmax(-1, false).eq_tensor(ys).sum(Kind::Int64));
        self.add_counts(loss, &correct, n);
    }

    /// Add a batch of `n` images by its mean loss and count of correct predictions.
    pub(crate) fn add_counts(&mut self, loss: &Tensor, correct: &Tensor, n: usize) {
        tch::no_grad(|| {
            let _ = self.loss.g_add_(&loss.detach().to_kind(Kind::Float));
            let _ = self.correct.g_add_(correct);
        });
        self.seen += n as i64;
        self.batches += 1;
    }

    /// The interval's train-split curve point, resetting the sums; None when empty.
    pub(crate) fn take(
        &mut self,
        cfg: &TrainConfig,
        epoch: u32,
        step: u64,
        elapsed_s: f64,
    ) -> Option<CurvePoint> {
        if self.batches == 0 {
            return None;
        }
        let point = CurvePoint {
            stage: cfg.stage.clone(),
            variant: cfg.variant.clone(),
            epoch,
            step,
            split: "train".into(),
            loss: self.loss.double_value(&[]) / self.batches as f64,
            accuracy: self.correct.int64_value(&[]) as f64 / self.seen as f64,
            elapsed_s,
        };
        let _ = self.loss.zero_();
        let _ = self.correct.zero_();
        self.seen = 0;
        self.batches = 0;
        Some(point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CrossEntropy, testutil};
    use slimbench_core::config::OptimizerKind;
    use slimbench_core::progress::NoProgress;

    fn digits() -> (Arc<Split>, Arc<Split>) {
        testutil::digits(1200, 300)
    }

    fn mlp() -> Model {
        testutil::mlp(64, 1)
    }

    fn config(epochs: u32) -> TrainConfig {
        TrainConfig { workers: 1, ..testutil::config(epochs, OptimizerKind::Adam, 3e-3, 32) }
    }

    #[test]
    fn learns_records_curves_and_calls_the_hook_every_step() {
        let (train_split, test_split) = digits();
        let mut model = mlp();
        let before = slimbench_eval::accuracy(&model, &test_split, 100).accuracy;
        let mut calls = 0u64;
        let mut hook = |_: &Model| calls += 1;
        let out = train(
            &mut model,
            &train_split,
            &test_split,
            &config(2),
            &mut CrossEntropy,
            Some(&mut hook),
            &NoProgress,
        )
        .unwrap();
        // 1200 images at batch 32: 38 steps per epoch.
        assert_eq!(out.steps, 76);
        assert_eq!(calls, 76);
        assert!(out.test_accuracy > before + 0.2, "{before} -> {}", out.test_accuracy);
        let tests: Vec<_> = out.curves.iter().filter(|c| c.split == "test").collect();
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[1].accuracy, out.test_accuracy);
        // Every 10 steps, plus the remainder of each epoch.
        let trains: Vec<_> = out.curves.iter().filter(|c| c.split == "train").collect();
        assert_eq!(trains.iter().map(|c| c.step).collect::<Vec<_>>(), [10, 20, 30, 38, 40, 50, 60, 70, 76]);
        assert!(trains.iter().all(|c| c.loss.is_finite() && (0.0..=1.0).contains(&c.accuracy)));
        assert!(trains.first().unwrap().loss > trains.last().unwrap().loss);
    }

    /// Cross-entropy times NaN: the loss is not finite from the first step.
    struct Poisoned;

    impl Objective for Poisoned {
        fn loss(&mut self, model: &Model, xs: &Tensor, ys: &Tensor) -> (Tensor, Tensor) {
            let (loss, logits) = CrossEntropy.loss(model, xs, ys);
            (loss * f64::NAN, logits)
        }
    }

    #[test]
    fn divergence_is_an_error() {
        let (train_split, test_split) = digits();
        let mut model = mlp();
        let err = train(&mut model, &train_split, &test_split, &config(1), &mut Poisoned, None, &NoProgress)
            .unwrap_err();
        assert!(matches!(err, TrainError::Diverged { step: 10, .. }), "{err}");
        assert!(err.to_string().contains("lower the learning rate"));
    }

    #[test]
    fn mixed_precision_on_the_cpu_trains_in_fp32_and_says_so() {
        let (train_split, test_split) = testutil::digits(128, 50);
        let cfg = TrainConfig { amp: Some(AmpKind::Fp16), ..config(1) };
        let out =
            train(&mut mlp(), &train_split, &test_split, &cfg, &mut CrossEntropy, None, &NoProgress).unwrap();
        assert_eq!(out.amp, "fp16 mixed precision needs a CUDA device; trained in fp32 on the CPU");
        assert_eq!(out.steps, 4);
    }

    #[test]
    fn mixed_precision_on_cuda_learns() {
        if !tch::Cuda::is_available() {
            eprintln!("skipped: no CUDA device");
            return;
        }
        let (train_split, test_split) = digits();
        for amp in [AmpKind::Bf16, AmpKind::Fp16] {
            let mut model = mlp();
            model.to_device(tch::Device::Cuda(0));
            let cfg = TrainConfig { amp: Some(amp), ..config(2) };
            let out =
                train(&mut model, &train_split, &test_split, &cfg, &mut CrossEntropy, None, &NoProgress)
                    .unwrap();
            assert!(out.test_accuracy > 0.5, "{amp:?}: {}", out.test_accuracy);
            assert!(out.amp.starts_with(amp.as_str()), "{}", out.amp);
        }
    }
}
