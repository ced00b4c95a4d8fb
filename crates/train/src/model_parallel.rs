//! Pipeline model parallelism, GPipe style.
//!
//! The model's chain of steps ([`slimbench_models::ops`]) is cut into K contiguous
//! *pipeline stages*, each on its own device (`cuda:0..K-1`) or, on a CPU, its own
//! thread with its share of the cores (a *thread group*). Every batch is cut into M
//! micro-batches. Stage k runs the forward pass of micro-batch m as soon as stage k-1
//! hands it the activation, so up to K micro-batches are in flight; after the last
//! forward, the gradients flow back the same way, micro-batch by micro-batch, and
//! every stage then steps its own parameters (GPipe's synchronous flush). The loss of
//! micro-batch m is weighted by its share of the batch, so the summed gradients are
//! those of the whole batch: the loss equals the single-device run's up to float
//! rounding.
//!
//! Stages are balanced by the measured forward time of each step on a sample
//! micro-batch, cut only in front of a layer with weights. What a pipeline costs is
//! recorded: each stage's busy time against the wall time gives the *bubble fraction*
//! (stage-time slots left idle), beside the schedule's ideal `(K-1)/(M+K-1)`.
//!
//! Each stage works on its own copy of the model (only its slice of it receives
//! gradients); the trained slices are gathered back into the caller's model after
//! every epoch.

use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use slimbench_core::cancel;
use slimbench_core::progress::Progress;
use slimbench_data::Split;
use slimbench_models::Model;
use slimbench_models::ops;
use tch::{Device, Kind, Tensor};

use crate::run::{Interval, batch_tensors};
use crate::{TrainConfig, TrainError, TrainOutcome, build_optimizer};

/// How to pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Micro-batches per batch (M); a batch with fewer images has one per image.
    pub micro_batches: usize,
    /// One device per pipeline stage (K of them; the CPU may repeat).
    pub devices: Vec<Device>,
    /// libtorch intra-op threads of each CPU stage's thread.
    pub threads_per_stage: usize,
}

/// One pipeline stage's slice of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSlice {
    /// Its steps, as indices into the model's chain.
    pub ops: Range<usize>,
    /// The layers with weights it holds.
    pub layers: Vec<String>,
    /// Where it runs.
    pub device: Device,
    /// Measured forward milliseconds of its steps on one sample micro-batch.
    pub forward_ms: f64,
}

/// What pipelined training produced besides the model.
#[derive(Debug, Clone, Default)]
pub struct PipelineOutcome {
    /// Curves, time, steps, accuracy, as [`crate::train`] reports them.
    pub outcome: TrainOutcome,
    /// The stages, input to output.
    pub slices: Vec<StageSlice>,
    /// Seconds each stage spent computing.
    pub busy_s: Vec<f64>,
    /// Wall-clock seconds of the pipelined batches (from handing out a batch to the
    /// last stage's step).
    pub pipeline_s: f64,
    /// `1 - sum(busy) / (K * pipeline_s)`: the share of stage-time slots left idle.
    pub bubble_fraction: f64,
    /// The schedule's ideal bubble fraction `(K-1)/(M+K-1)`.
    pub ideal_bubble_fraction: f64,
    /// Mean loss of the last epoch's batches.
    pub final_loss: f64,
}

/// The GPipe schedule's share of idle stage slots with `k` stages and `m` micro-batches.
pub fn ideal_bubble(k: usize, m: usize) -> f64 {
    (k as f64 - 1.0) / (m + k - 1) as f64
}

/// Cut `costs` (one per step) into `k` contiguous ranges, minimising the most expensive
/// one. The first range starts at 0, every other at one of `starts` after its first
/// (the steps with weights, so that every range holds a layer). `None` when
/// there are fewer than `k` possible starts.
pub fn balance(costs: &[f64], starts: &[usize], k: usize) -> Option<Vec<Range<usize>>> {
    // Candidate cut points: every start but the first, so that the first range holds
    // a layer too.
    let cuts: Vec<usize> = starts.iter().copied().skip(1).filter(|&s| s > 0 && s < costs.len()).collect();
    if k == 0 || cuts.len() + 1 < k {
        return None;
    }
    let prefix: Vec<f64> = std::iter::once(0.0)
        .chain(costs.iter().scan(0.0, |acc, c| {
            *acc += c;
            Some(*acc)
        }))
        .collect();
    let cost = |a: usize, b: usize| prefix[b] - prefix[a];
    // Boundaries 0 = b_0 < b_1 < ... < b_k = n; b_1..b_{k-1} from `cuts`.
    let bounds: Vec<usize> = std::iter::once(0).chain(cuts.iter().copied()).collect();
    let n = costs.len();
    let nb = bounds.len();
    // best[j][i]: the least max-cost of splitting steps bounds[i].. into j+1 ranges.
    let mut best = vec![vec![f64::INFINITY; nb]; k];
    let mut next = vec![vec![usize::MAX; nb]; k];
    for i in 0..nb {
        best[0][i] = cost(bounds[i], n);
    }
    for j in 1..k {
        for i in 0..nb {
            for t in i + 1..nb {
                let c = cost(bounds[i], bounds[t]).max(best[j - 1][t]);
                if c < best[j][i] {
                    best[j][i] = c;
                    next[j][i] = t;
                }
            }
        }
    }
    if !best[k - 1][0].is_finite() {
        return None;
    }
    let (mut out, mut i) = (Vec::with_capacity(k), 0);
    for j in (1..k).rev() {
        let t = next[j][i];
        out.push(bounds[i]..bounds[t]);
        i = t;
    }
    out.push(bounds[i]..n);
    Some(out)
}

/// Measured forward milliseconds of each step of `model` on `xs` (the median of a few
/// runs). Steps are timed in the parts between the places the graph can be cut (one
/// step each for a chain); a part's time is put on its first step.
fn profile(model: &Model, xs: &Tensor) -> Vec<f64> {
    let chain = model.ops();
    let mut bounds = vec![0];
    bounds.extend(ops::cut_points(&chain));
    bounds.push(chain.len());
    tch::no_grad(|| {
        let mut x = xs.shallow_clone();
        let mut costs = vec![0.0; chain.len()];
        for part in bounds.windows(2) {
            let run = |x: &Tensor| ops::run_range(&chain, part[0]..part[1], x, false, &mut ops::NoTap);
            let mut times = Vec::with_capacity(5);
            let mut y = run(&x);
            for _ in 0..5 {
                let t = Instant::now();
                y = run(&x);
                sync(x.device());
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            x = y;
            costs[part[0]] = slimbench_core::records::percentile(&times, 50.0);
        }
        costs
    })
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Split `model` into one slice per device of `pc`, balanced by measured forward time
/// on `sample` (a micro-batch of inputs).
pub fn partition(model: &Model, pc: &PipelineConfig, sample: &Tensor) -> Result<Vec<StageSlice>, TrainError> {
    let chain = model.ops();
    let k = pc.devices.len();
    // Stages start in front of a layer, where one tensor crosses (not inside a
    // residual block).
    let cuts = ops::cut_points(&chain);
    let starts: Vec<usize> = chain
        .iter()
        .enumerate()
        .filter(|(i, s)| s.op.layer().is_some() && (*i == 0 || cuts.contains(i)))
        .map(|(i, _)| i)
        .collect();
    let costs = profile(model, sample);
    let ranges = balance(&costs, &starts, k).ok_or_else(|| {
        TrainError::Setup(format!(
            "model `{}` has {} place(s) in front of a layer where one tensor crosses; it cannot be split into {k} pipeline stages (give pipeline_stages: {} or fewer)",
            model.name,
            starts.len(),
            starts.len().max(1)
        ))
    })?;
    Ok(ranges
        .into_iter()
        .zip(&pc.devices)
        .map(|(r, &device)| StageSlice {
            layers: chain[r.clone()].iter().filter_map(|s| s.op.layer().map(str::to_owned)).collect(),
            forward_ms: costs[r.clone()].iter().sum(),
            ops: r,
            device,
        })
        .collect())
}

/// What the driver tells every stage for one batch.
struct Work {
    /// Learning rate to step with.
    lr: Option<f64>,
    /// Micro-batches this batch has.
    micro: usize,
    /// Last stage: the labels of each micro-batch and its weight in the batch's loss.
    labels: Vec<(Tensor, f64)>,
}

/// What a stage reports when its step is done.
struct Report {
    stage: usize,
    busy_s: f64,
    /// Last stage: the batch's loss and correct predictions (device scalars).
    result: Option<(Tensor, Tensor)>,
}

/// The channels one stage thread works through.
struct Wires {
    stage: usize,
    work: Receiver<Work>,
    /// Activations in (from the stage before, or the driver's inputs for stage 0).
    fwd_in: Receiver<Tensor>,
    fwd_out: Option<Sender<Tensor>>,
    /// Gradients in from the stage after (absent for the last stage).
    bwd_in: Option<Receiver<Tensor>>,
    bwd_out: Option<Sender<Tensor>>,
    report: Sender<Result<Report, String>>,
}

/// Train `model` as a pipeline of `pc.devices.len()` stages. The model ends on its own
/// device with the trained weights of every stage.
pub fn train_pipelined(
    model: &mut Model,
    train_split: &Arc<Split>,
    test_split: &Split,
    cfg: &TrainConfig,
    pc: &PipelineConfig,
    progress: &dyn Progress,
) -> Result<PipelineOutcome, TrainError> {
    let k = pc.devices.len();
    let loader = cfg.loader(train_split, cfg.workers);
    let sample = {
        let first =
            loader.epoch(0).next().ok_or_else(|| TrainError::Setup("the training split is empty".into()))?;
        let m = (first.n / pc.micro_batches.max(1)).max(1);
        batch_tensors(&first, 0..m, model.device()).0
    };
    let slices = partition(model, pc, &sample)?;
    let copies = slices
        .iter()
        .map(|s| {
            let mut c = model.try_clone().map_err(|e| TrainError::Setup(e.to_string()))?;
            c.to_device(s.device);
            Ok(c)
        })
        .collect::<Result<Vec<Model>, TrainError>>()?;
    let opts = copies.iter().map(|c| build_optimizer(c.vs(), &cfg.optim)).collect::<Result<Vec<_>, _>>()?;
    // Handles on each stage's own parameters (the optimizers update them in place), read
    // only between batches, when every stage waits for work.
    let trained: Vec<Vec<(String, Tensor)>> = copies
        .iter()
        .zip(&slices)
        .map(|(c, s)| c.named().into_iter().filter(|(n, _)| s.layers.iter().any(|l| owner(n) == l)).collect())
        .collect();

    // Channels: driver -> stage 0 -> ... -> stage K-1 forward, and back.
    let (mut work_tx, mut wires) = (Vec::new(), Vec::new());
    let (report_tx, report_rx) = channel();
    let (input_tx, mut fwd_in) = channel::<Tensor>();
    let mut bwd_out: Option<Sender<Tensor>> = None;
    for i in 0..k {
        let (wtx, wrx) = channel();
        work_tx.push(wtx);
        let (next_fwd_tx, next_fwd_rx) = channel::<Tensor>();
        let (bwd_tx, bwd_rx) = channel::<Tensor>();
        let last = i + 1 == k;
        wires.push(Wires {
            stage: i,
            work: wrx,
            fwd_in: std::mem::replace(&mut fwd_in, next_fwd_rx),
            fwd_out: (!last).then_some(next_fwd_tx),
            bwd_in: (!last).then_some(bwd_rx),
            bwd_out: bwd_out.take(),
            report: report_tx.clone(),
        });
        bwd_out = Some(bwd_tx);
    }
    drop(report_tx);

    let per_epoch = loader.batches_per_epoch() as u64;
    let total_steps = per_epoch * u64::from(cfg.epochs);
    let mut out = PipelineOutcome {
        slices: slices.clone(),
        busy_s: vec![0.0; k],
        ideal_bubble_fraction: ideal_bubble(k, pc.micro_batches),
        ..Default::default()
    };
    let device0 = slices[0].device;
    let result = std::thread::scope(|scope| -> Result<(), TrainError> {
        // Owned by this closure, so that leaving it early (an error) closes the channels
        // and every waiting stage thread ends instead of waiting forever.
        let (work_tx, input_tx) = (work_tx, input_tx);
        for (((slice, copy), opt), w) in slices.iter().zip(copies).zip(opts).zip(wires) {
            let threads = pc.threads_per_stage;
            scope.spawn(move || {
                if slice.device == Device::Cpu {
                    // This thread's own OpenMP team: its thread group.
                    tch::set_num_threads(threads.max(1) as i32);
                }
                stage_loop(&copy, opt, slice, w.stage + 1 == k, w);
            });
        }
        let started = Instant::now();
        let mut eval_time = 0.0;
        let mut step = 0u64;
        let mut interval = Interval::new(Device::Cpu);
        let mut epoch_loss = (0.0, 0u64);
        for epoch in 1..=cfg.epochs {
            let bar =
                progress.bar(&format!("{} epoch {epoch}/{} (pipeline)", cfg.variant, cfg.epochs), per_epoch);
            epoch_loss = (0.0, 0);
            for batch in loader.epoch(u64::from(epoch)) {
                cancel::check()?;
                let (xs, ys) = batch_tensors(&batch, 0..batch.n, device0);
                let m = pc.micro_batches.clamp(1, batch.n);
                let sizes = micro_sizes(batch.n, m);
                let lr = (!cfg.optim.schedule.is_constant())
                    .then(|| cfg.optim.schedule.at(cfg.optim.lr, step, total_steps));
                let t = Instant::now();
                let last_device = slices[k - 1].device;
                let mut labels = Vec::with_capacity(m);
                let (mut xs_parts, mut lo) = (Vec::with_capacity(m), 0);
                for &n in &sizes {
                    xs_parts.push(xs.narrow(0, lo as i64, n as i64));
                    labels.push((
                        ys.narrow(0, lo as i64, n as i64).to_device(last_device),
                        n as f64 / batch.n as f64,
                    ));
                    lo += n;
                }
                for (i, tx) in work_tx.iter().enumerate() {
                    let labels = if i + 1 == k { std::mem::take(&mut labels) } else { Vec::new() };
                    tx.send(Work { lr, micro: m, labels }).map_err(|_| stage_died())?;
                }
                for x in xs_parts {
                    input_tx.send(x).map_err(|_| stage_died())?;
                }
                let mut result = None;
                for _ in 0..k {
                    let r = report_rx.recv().map_err(|_| stage_died())?.map_err(TrainError::Setup)?;
                    result = result.or(r.result);
                    out.busy_s[r.stage] += r.busy_s;
                }
                out.pipeline_s += t.elapsed().as_secs_f64();
                let (loss, correct) = result.expect("the last stage reports the loss");
                step += 1;
                let loss_value = loss.double_value(&[]);
                epoch_loss = (epoch_loss.0 + loss_value, epoch_loss.1 + 1);
                interval.add_counts(&loss.to_device(Device::Cpu), &correct.to_device(Device::Cpu), batch.n);
                bar.inc(1);
                if !loss_value.is_finite() {
                    return Err(TrainError::Diverged {
                        variant: cfg.variant.clone(),
                        step,
                        loss: loss_value,
                    });
                }
                if step.is_multiple_of(cfg.log_every as u64) {
                    let elapsed = started.elapsed().as_secs_f64() - eval_time;
                    if let Some(p) = interval.take(cfg, epoch, step, elapsed) {
                        bar.message(format!("loss {:.4} acc {:.3}", p.loss, p.accuracy));
                        out.outcome.curves.push(p);
                    }
                }
            }
            let elapsed = started.elapsed().as_secs_f64() - eval_time;
            if let Some(p) = interval.take(cfg, epoch, step, elapsed) {
                out.outcome.curves.push(p);
            }
            bar.finish();
            let t = Instant::now();
            gather(model, &trained);
            let test = slimbench_eval::accuracy(model, test_split, cfg.eval_batch_size);
            eval_time += t.elapsed().as_secs_f64();
            tracing::info!(variant = %cfg.variant, epoch, test_accuracy = test.accuracy, "epoch done (pipeline)");
            out.outcome.curves.push(cfg.test_point(epoch, step, &test, elapsed));
            out.outcome.test_accuracy = test.accuracy;
        }
        out.outcome.train_time_s = started.elapsed().as_secs_f64() - eval_time;
        out.outcome.steps = step;
        out.final_loss = if epoch_loss.1 == 0 { f64::NAN } else { epoch_loss.0 / epoch_loss.1 as f64 };
        Ok(())
    });
    result?;
    let busy: f64 = out.busy_s.iter().sum();
    out.bubble_fraction =
        if out.pipeline_s > 0.0 { (1.0 - busy / (k as f64 * out.pipeline_s)).max(0.0) } else { f64::NAN };
    Ok(out)
}

fn stage_died() -> TrainError {
    TrainError::Setup("a pipeline stage stopped (see its error above)".into())
}

/// `n` images in `m` micro-batches as even as can be (the first ones one larger).
pub fn micro_sizes(n: usize, m: usize) -> Vec<usize> {
    let m = m.clamp(1, n.max(1));
    (0..m).map(|i| n / m + usize::from(i < n % m)).collect()
}

/// One stage's thread: for every batch, M forwards as the activations arrive, then M
/// backwards as the gradients return (in reverse order), then its optimizer step.
fn stage_loop(copy: &Model, mut opt: tch::nn::Optimizer, slice: &StageSlice, last: bool, w: Wires) {
    let chain = copy.ops();
    let device = slice.device;
    while let Ok(work) = w.work.recv() {
        let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<Report, String> {
            let mut busy = 0.0;
            if let Some(lr) = work.lr {
                opt.set_lr(lr);
            }
            opt.zero_grad();
            let mut kept: Vec<(Tensor, Tensor)> = Vec::with_capacity(work.micro);
            let (mut loss_sum, mut correct) =
                (Tensor::zeros([], (Kind::Float, device)), Tensor::zeros([], (Kind::Int64, device)));
            for m in 0..work.micro {
                let x = w.fwd_in.recv().map_err(|_| "the stage before stopped".to_string())?;
                let t = Instant::now();
                // A leaf of this stage's graph: its gradient goes back to the stage before.
                let x = x
                    .to_device(device)
                    .detach()
                    .set_requires_grad(!slice.ops.is_empty() && slice.ops.start > 0);
                let y = ops::run_range(&chain, slice.ops.clone(), &x, true, &mut ops::NoTap);
                if last {
                    let (ys, weight) = &work.labels[m];
                    let loss = y.cross_entropy_for_logits(ys) * *weight;
                    tch::no_grad(|| {
                        let _ = loss_sum.g_add_(&loss.detach());
                        let _ = correct.g_add_(&y.argmax(-1, false).eq_tensor(ys).sum(Kind::Int64));
                    });
                    kept.push((x, loss));
                    sync(device);
                    busy += t.elapsed().as_secs_f64();
                } else {
                    let send = y.detach();
                    sync(device);
                    busy += t.elapsed().as_secs_f64();
                    w.fwd_out
                        .as_ref()
                        .expect("not last")
                        .send(send)
                        .map_err(|_| "the stage after stopped")?;
                    kept.push((x, y));
                }
            }
            for (x, y) in kept.into_iter().rev() {
                let grad = match &w.bwd_in {
                    Some(rx) => Some(rx.recv().map_err(|_| "the stage after stopped".to_string())?),
                    None => None,
                };
                let t = Instant::now();
                match grad {
                    // The vector-Jacobian product with the gradient handed back.
                    Some(g) => (y * g.to_device(device)).sum(Kind::Float).backward(),
                    None => y.backward(),
                }
                let back = w.bwd_out.as_ref().map(|_| x.grad());
                sync(device);
                busy += t.elapsed().as_secs_f64();
                if let (Some(tx), Some(g)) = (&w.bwd_out, back) {
                    tx.send(g).map_err(|_| "the stage before stopped")?;
                }
            }
            let t = Instant::now();
            opt.step();
            sync(device);
            busy += t.elapsed().as_secs_f64();
            Ok(Report { stage: w.stage, busy_s: busy, result: last.then_some((loss_sum, correct)) })
        }))
        .unwrap_or_else(|panic| Err(format!("pipeline stage {}: {}", w.stage + 1, panic_message(&*panic))));
        let failed = report.is_err();
        if w.report.send(report).is_err() || failed {
            return;
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// The layer a parameter belongs to (`fc0.weight` -> `fc0`, `fc0.lr_in.weight` -> `fc0`).
fn owner(name: &str) -> &str {
    name.split('.').next().unwrap_or_default()
}

/// Copy every stage's trained parameters into `model`.
fn gather(model: &mut Model, trained: &[Vec<(String, Tensor)>]) {
    let dst = model.named();
    tch::no_grad(|| {
        for (name, src) in trained.iter().flatten() {
            if let Some((_, d)) = dst.iter().find(|(n, _)| n == name) {
                d.shallow_clone().copy_(src);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CrossEntropy, testutil, train};
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, OptimizerKind, SeedCnnConfig};
    use slimbench_core::progress::NoProgress;

    fn cpu(k: usize, m: usize) -> PipelineConfig {
        PipelineConfig { micro_batches: m, devices: vec![Device::Cpu; k], threads_per_stage: 1 }
    }

    #[test]
    fn balance_cuts_in_front_of_layers_and_evens_the_cost() {
        // Steps: conv relu pool flatten fc: cuts only before conv (0) or fc (4).
        let r = balance(&[5.0, 1.0, 1.0, 0.1, 4.0], &[0, 4], 2).unwrap();
        assert_eq!(r, [0..4, 4..5]);
        // Three layers of cost 1, 1, 4: the expensive one alone.
        let r = balance(&[1.0, 1.0, 4.0], &[0, 1, 2], 2).unwrap();
        assert_eq!(r, [0..2, 2..3]);
        let r = balance(&[1.0, 1.0, 1.0, 1.0], &[0, 1, 2, 3], 4).unwrap();
        assert_eq!(r, [0..1, 1..2, 2..3, 3..4]);
        assert!(balance(&[1.0, 1.0], &[0, 1], 3).is_none());
        // flatten fc0 relu fc1: the first stage keeps fc0, not the flatten alone.
        assert_eq!(balance(&[0.1, 1.0, 0.1, 1.0], &[1, 3], 2).unwrap(), [0..3, 3..4]);
        assert!(balance(&[0.1, 1.0, 0.1, 1.0], &[1, 3], 3).is_none());
    }

    #[test]
    fn micro_batches_cover_the_batch() {
        assert_eq!(micro_sizes(32, 4), [8, 8, 8, 8]);
        assert_eq!(micro_sizes(10, 4), [3, 3, 2, 2]);
        assert_eq!(micro_sizes(3, 8), [1, 1, 1]);
        assert!((ideal_bubble(2, 4) - 0.2).abs() < 1e-12);
    }

    /// The acceptance check: 10 steps pipelined give the same losses and weights as 10
    /// steps on one device, within 1e-4.
    fn same_as_single(model: Model, k: usize, m: usize) {
        // 320 images at batch 32: exactly 10 steps; a curve point after each.
        let (train_split, test_split) = testutil::digits(320, 100);
        let cfg = TrainConfig { log_every: 1, ..testutil::config(1, OptimizerKind::Sgd, 0.1, 32) };
        let mut single = model.try_clone().unwrap();
        let alone = train(&mut single, &train_split, &test_split, &cfg, &mut CrossEntropy, None, &NoProgress)
            .unwrap();
        let mut piped = model;
        let out =
            train_pipelined(&mut piped, &train_split, &test_split, &cfg, &cpu(k, m), &NoProgress).unwrap();
        assert_eq!(out.slices.len(), k);
        assert_eq!(out.outcome.steps, 10);
        let losses = |c: &[slimbench_core::records::CurvePoint]| {
            c.iter().filter(|p| p.split == "train").map(|p| p.loss).collect::<Vec<_>>()
        };
        let (a, b) = (losses(&alone.curves), losses(&out.outcome.curves));
        assert_eq!(a.len(), 10);
        for (step, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() < 1e-4, "step {}: single {x} vs pipelined {y}", step + 1);
        }
        assert!(a[0] > a[9] + 0.05, "it learns: {a:?}");
        for ((name, w1), (_, w2)) in single.named().iter().zip(piped.named()) {
            let d = (w1 - &w2).abs().max().double_value(&[]);
            assert!(d < 1e-4, "{name} differs by {d}");
        }
        assert!((out.ideal_bubble_fraction - ideal_bubble(k, m)).abs() < 1e-12);
        assert!(out.bubble_fraction > 0.0 && out.bubble_fraction < 1.0, "{}", out.bubble_fraction);
        assert!(out.busy_s.iter().all(|&b| b > 0.0), "{:?}", out.busy_s);
        assert!((out.outcome.test_accuracy - alone.test_accuracy).abs() < 0.02);
    }

    #[test]
    fn mlp_in_two_stages_matches_one_device() {
        same_as_single(testutil::mlp(64, 1), 2, 4);
    }

    #[test]
    fn seed_cnn_in_two_stages_matches_one_device() {
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let config = ModelConfig::SeedCnn(SeedCnnConfig::default());
        same_as_single(Model::build("cnn", &config, io, Device::Cpu, Some(2)).unwrap(), 2, 3);
    }

    #[test]
    fn mlp_in_three_stages_matches_one_device() {
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let config = ModelConfig::Mlp(slimbench_core::config::MlpConfig { hidden: vec![48, 32] });
        same_as_single(Model::build("m3", &config, io, Device::Cpu, Some(5)).unwrap(), 3, 5);
    }

    #[test]
    fn a_residual_graph_is_cut_only_outside_its_blocks_and_matches_one_device() {
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let layers: slimbench_core::config::LayersConfig =
            serde_json::from_value(serde_json::json!({"layers": [
                {"conv": 4, "padding": 1, "act": "relu", "id": "a"},
                {"conv": 4, "padding": 1, "act": "relu"},
                {"conv": 4, "padding": 1},
                {"add": "a"}, {"act": "relu"}, {"pool": "max", "kernel": 2},
                {"flatten": true}, {"linear": 10}
            ]}))
            .unwrap();
        let model = Model::build("res", &ModelConfig::Layers(layers), io, Device::Cpu, Some(4)).unwrap();
        // In front of the block's second conv two tensors would cross (its input and
        // the skip): no cut there. In front of its first conv only `a`'s output crosses,
        // read by both paths.
        let steps = model.ops();
        let cuts = ops::cut_points(&steps);
        let layer_cuts: Vec<&str> =
            cuts.iter().filter(|&&k| steps[k].op.layer().is_some()).map(|&k| steps[k].id).collect();
        assert_eq!(layer_cuts, ["conv0", "linear0"]);
        same_as_single(model, 2, 4);
    }

    #[test]
    fn more_stages_than_layers_is_an_error() {
        let (train_split, test_split) = testutil::digits(64, 10);
        let cfg = testutil::config(1, OptimizerKind::Sgd, 0.1, 32);
        let mut model = testutil::mlp(16, 1);
        let err = train_pipelined(&mut model, &train_split, &test_split, &cfg, &cpu(3, 2), &NoProgress)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "model `m` has 2 place(s) in front of a layer where one tensor crosses; it cannot be split into 3 pipeline stages (give pipeline_stages: 2 or fewer)"
        );
    }
}
