//! `train`: a model from scratch.

use slimbench_core::artifact::ModelMeta;
use slimbench_core::config::{Strategy, TrainParams};
use slimbench_core::progress::{NoProgress, Progress};
use slimbench_core::records::{ParallelRow, StalenessRow};
use slimbench_models::Model;
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_train::async_ps::train_async;
use slimbench_train::model_parallel::{PipelineConfig, train_pipelined};
use slimbench_train::replica::run_replicas_on;
use slimbench_train::{CrossEntropy, TrainConfig, train};

use crate::common::{Saved, dataset, io_of, loop_config, save_variant};
use crate::{StageError, TorchRunner};

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &TrainParams) -> Result<StageOutput, BoxError> {
    let ds = dataset(ctx, &p.dataset)?;
    let io = io_of(&ds);
    let seed = p.seed.unwrap_or(ctx.plan.defaults.seed);
    let config = &ctx.plan.models[&p.model];
    let device = match crate::common::stage_device(runner, ctx, p.device) {
        Ok(d) => d,
        // A CUDA stage on a machine without CUDA: nothing to train, said so.
        Err(skip) => return Ok(StageOutput { notes: vec![skip], ..Default::default() }),
    };
    let build = || Model::build(&p.model, config, io, device, Some(seed));
    let cfg = TrainConfig {
        amp: p.amp,
        ..loop_config(ctx, ctx.stage.id.clone(), p.epochs, p.optim(), p.seed, p.workers, p.log_every)
    };
    let mut row = ParallelRow {
        stage: ctx.stage.id.clone(),
        variant: ctx.stage.id.clone(),
        model: p.model.clone(),
        strategy: "single".into(),
        device: slimbench_models::runtime::device_name(device),
        workers: p.workers as u32,
        replicas: 1,
        processes: 1,
        pipeline_stages: 1,
        micro_batches: 1,
        batch_size: p.batch_size as u64,
        epochs: p.epochs,
        bubble_fraction: f64::NAN,
        ideal_bubble_fraction: f64::NAN,
        ..Default::default()
    };
    let mut staleness = Vec::new();
    let meter = slimbench_metrics::EnergyMeter::start(match device {
        tch::Device::Cuda(i) => Some(i as u32),
        _ => None,
    });
    let (model, out, how) = match (p.strategy, runner.dist()) {
        (Strategy::Single, _) => {
            let mut model = build()?;
            tracing::info!(model = %p.model, params = model.param_count(), dataset = %p.dataset, "training");
            let out = train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, None, ctx.progress)?;
            let how =
                if out.amp.is_empty() { String::new() } else { format!(", mixed precision {}", out.amp) };
            (model, out, how)
        }
        (Strategy::ModelParallel, _) => {
            let k = p.pipeline_stages();
            let cuda = match device {
                tch::Device::Cuda(_) => tch::Cuda::device_count().max(1) as usize,
                _ => 0,
            };
            // One CUDA device per stage where there are enough; else the stages share
            // the devices there are (said in the note), or split the CPU's threads.
            let devices: Vec<tch::Device> = (0..k)
                .map(|i| if cuda > 0 { tch::Device::Cuda(i % cuda) } else { tch::Device::Cpu })
                .collect();
            let threads_per_stage = (ctx.env.threads / k).max(1);
            let pc = PipelineConfig { micro_batches: p.micro_batches(), devices, threads_per_stage };
            let mut model = build()?;
            let pipe = train_pipelined(&mut model, &ds.train, &ds.test, &cfg, &pc, ctx.progress)?;
            let layout: Vec<String> = pipe
                .slices
                .iter()
                .map(|s| {
                    let place = match s.device {
                        tch::Device::Cpu => format!("{threads_per_stage} CPU thread(s)"),
                        d => slimbench_models::runtime::device_name(d),
                    };
                    format!("[{}] on {place}", s.layers.join(", "))
                })
                .collect();
            let shared = if cuda > 0 && cuda < k {
                format!(" (only {cuda} CUDA device(s): stages share them)")
            } else {
                String::new()
            };
            let how = format!(
                ", model-parallel: {k} pipeline stages {}{shared} x {} micro-batches, bubble {:.1}% of stage time (GPipe ideal {:.1}%)",
                layout.join(" -> "),
                pc.micro_batches,
                pipe.bubble_fraction * 100.0,
                pipe.ideal_bubble_fraction * 100.0
            );
            row.strategy = "model-parallel".into();
            row.pipeline_stages = k as u32;
            row.micro_batches = pc.micro_batches as u32;
            row.bubble_fraction = pipe.bubble_fraction;
            row.ideal_bubble_fraction = pipe.ideal_bubble_fraction;
            (model, pipe.outcome, how)
        }
        // A parameter server and its workers, threads of this process (under a launch,
        // of rank 0's: the stage is not distributed, the other ranks wait).
        (Strategy::DataParallel, _) if !p.mode.is_sync() => {
            let n = p.replicas.unwrap_or(2);
            let replicas = (0..n).map(|_| build()).collect::<Result<Vec<_>, _>>()?;
            let objective = || Box::new(CrossEntropy) as Box<dyn slimbench_train::Objective>;
            let (model, a) =
                train_async(build()?, replicas, &ds.train, &ds.test, &cfg, objective, ctx.progress)?;
            let how = format!(
                ", asynchronous data-parallel: {n} workers and a parameter server, {} updates, staleness mean {:.2} and max {} versions",
                a.staleness.len(),
                a.mean_staleness(),
                a.max_staleness()
            );
            staleness = (a.staleness.iter().zip(&a.worker).zip(&a.epoch))
                .enumerate()
                .map(|(i, ((&s, &w), &e))| StalenessRow {
                    stage: ctx.stage.id.clone(),
                    variant: ctx.stage.id.clone(),
                    update: i as u64 + 1,
                    worker: w as u32,
                    epoch: e,
                    staleness: s,
                })
                .collect();
            (row.strategy, row.mode, row.replicas) = ("data-parallel".into(), "async".into(), n as u32);
            (model, a.outcome, how)
        }
        // One replica per process: rank 0 calls the others in, then all train together.
        (Strategy::DataParallel, Some(job)) => {
            if p.replicas.is_some_and(|r| r != job.world_size()) {
                return Err(StageError::Input(format!(
                    "stage `{}`: replicas: {} but this job has {} processes; under a launch every process is one replica, so leave `replicas` out",
                    ctx.stage.id,
                    p.replicas.unwrap_or(1),
                    job.world_size()
                ))
                .into());
            }
            if job.rank() == 0 {
                let index = ctx
                    .plan
                    .stages
                    .iter()
                    .position(|s| s.id == ctx.stage.id)
                    .expect("the stage is in its plan");
                job.announce(index)?;
            }
            // The replica lives where its group reduces: its own GPU under NCCL.
            if device.is_cuda() != job.device().is_cuda() {
                return Err(StageError::Input(format!(
                    "stage `{}` trains on {} but this job reduces through {} on {}; under a launch, give the device in `defaults.device`",
                    ctx.stage.id,
                    slimbench_models::runtime::device_name(device),
                    job.engine(),
                    slimbench_models::runtime::device_name(job.device())
                ))
                .into());
            }
            let mut model = Model::build(&p.model, config, io, job.device(), Some(seed))?;
            let cfg = TrainConfig { replica: Some(job.replica()), ..cfg };
            let progress: &dyn Progress = if job.rank() == 0 { ctx.progress } else { &NoProgress };
            // The processes on this machine share its threads while they train together
            // (as torchrun's OMP_NUM_THREADS does), instead of each taking all of them.
            let local = std::env::var("LOCAL_WORLD_SIZE").ok().and_then(|v| v.parse::<usize>().ok());
            let shared = (ctx.env.threads / local.unwrap_or(job.world_size()).max(1)).max(1);
            let before = tch::get_num_threads();
            if !device.is_cuda() {
                tch::set_num_threads(shared as i32);
            }
            let out = train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, None, progress);
            tch::set_num_threads(before);
            let out = out?;
            (row.strategy, row.mode, row.processes) =
                ("data-parallel".into(), "sync".into(), job.world_size() as u32);
            (model, out, format!(", data-parallel over {} processes ({})", job.world_size(), job.engine()))
        }
        // Replicas as threads of this process, on a loopback store.
        (Strategy::DataParallel, None) => {
            let n = p.replicas.unwrap_or(2);
            let timeout = crate::dist::training_timeout()?;
            // On CUDA one GPU per replica, reduced by NCCL; on the CPU, Gloo.
            let devices: Vec<tch::Device> = match device {
                tch::Device::Cuda(_) => {
                    let count = tch::Cuda::device_count() as usize;
                    if n > count {
                        return Err(StageError::Input(format!(
                            "stage `{}`: data-parallel on CUDA puts each of the {n} replicas on its own GPU, but this machine has {count}; lower `replicas` or train on `device: cpu`",
                            ctx.stage.id
                        ))
                        .into());
                    }
                    (0..n).map(tch::Device::Cuda).collect()
                }
                _ => vec![tch::Device::Cpu; n],
            };
            let engine = if device.is_cuda() { "NCCL" } else { "Gloo on loopback" };
            let mut results = run_replicas_on(&devices, timeout, |replica| -> Result<_, BoxError> {
                let first = replica.rank() == 0;
                let mut model = Model::build(&p.model, config, io, replica.device(), Some(seed))?;
                let cfg = TrainConfig { replica: Some(replica), ..cfg.clone() };
                let progress: &dyn Progress = if first { ctx.progress } else { &NoProgress };
                let out = train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, None, progress)?;
                Ok(first.then_some((model, out)))
            })?;
            let (model, out) = results.swap_remove(0).expect("rank 0 returns its model");
            (row.strategy, row.mode, row.replicas) = ("data-parallel".into(), "sync".into(), n as u32);
            (model, out, format!(", data-parallel over {n} replicas in this process ({engine})"))
        }
    };
    let meta = ModelMeta {
        optim: Some(p.optim()),
        ..ModelMeta::new(&p.model, config.clone(), io, &p.dataset, "baseline")
    };
    let energy = meter.joules();
    let mut variant = save_variant(ctx, &model, meta, Saved::main(ctx, out.train_time_s, Encoding::Dense))?;
    variant.train_energy_per_epoch_j = energy.map(|j| j / f64::from(p.epochs));
    let images = ds.train.len() as u64 * u64::from(p.epochs);
    // The last epoch's train curve points, each the mean loss of its interval.
    let last_epoch: Vec<f64> =
        out.curves.iter().filter(|c| c.split == "train" && c.epoch == p.epochs).map(|c| c.loss).collect();
    row = ParallelRow {
        images,
        train_time_s: out.train_time_s,
        images_per_s: images as f64 / out.train_time_s.max(1e-9),
        accuracy: out.test_accuracy,
        final_loss: if last_epoch.is_empty() {
            f64::NAN
        } else {
            last_epoch.iter().sum::<f64>() / last_epoch.len() as f64
        },
        energy_j: energy.unwrap_or(f64::NAN),
        ..row
    };
    let mut output = StageOutput { variants: vec![variant], ..Default::default() };
    output.records.curves = out.curves;
    output.records.parallel = vec![row];
    output.records.staleness = staleness;
    output.notes.push(format!(
        "{}: {} epoch(s) of {} on {} in {:.1} s{how}, test accuracy {:.4}",
        ctx.stage.id, p.epochs, p.model, p.dataset, out.train_time_s, out.test_accuracy
    ));
    Ok(output)
}
