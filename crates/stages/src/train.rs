//! `train`: a model from scratch.

use slimbench_core::artifact::ModelMeta;
use slimbench_core::config::{Strategy, TrainParams};
use slimbench_core::progress::{NoProgress, Progress};
use slimbench_models::Model;
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_train::async_ps::train_async;
use slimbench_train::replica::run_replicas;
use slimbench_train::{CrossEntropy, TrainConfig, train};

use crate::common::{Saved, dataset, io_of, loop_config, save_variant};
use crate::{StageError, TorchRunner};

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &TrainParams) -> Result<StageOutput, BoxError> {
    let ds = dataset(ctx, &p.dataset)?;
    let io = io_of(&ds);
    let seed = p.seed.unwrap_or(ctx.plan.defaults.seed);
    let config = &ctx.plan.models[&p.model];
    let device = runner.device;
    let build = || Model::build(&p.model, config, io, device, Some(seed));
    let cfg = loop_config(ctx, ctx.stage.id.clone(), p.epochs, p.optim(), p.seed, p.workers, p.log_every);
    let (model, out, how) = match (p.strategy, runner.dist()) {
        (Strategy::Single, _) => {
            let mut model = build()?;
            tracing::info!(model = %p.model, params = model.param_count(), dataset = %p.dataset, "training");
            let out = train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, None, ctx.progress)?;
            (model, out, String::new())
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
            let mut model = build()?;
            let cfg = TrainConfig { replica: Some(job.replica()), ..cfg };
            let progress: &dyn Progress = if job.rank() == 0 { ctx.progress } else { &NoProgress };
            let out = train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, None, progress)?;
            (model, out, format!(", data-parallel over {} processes (Gloo)", job.world_size()))
        }
        // Replicas as threads of this process, on a loopback store.
        (Strategy::DataParallel, None) => {
            let n = p.replicas.unwrap_or(2);
            let timeout = crate::dist::training_timeout()?;
            let mut results = run_replicas(n, timeout, |replica| -> Result<_, BoxError> {
                let first = replica.rank() == 0;
                let mut model = build()?;
                let cfg = TrainConfig { replica: Some(replica), ..cfg.clone() };
                let progress: &dyn Progress = if first { ctx.progress } else { &NoProgress };
                let out = train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, None, progress)?;
                Ok(first.then_some((model, out)))
            })?;
            let (model, out) = results.swap_remove(0).expect("rank 0 returns its model");
            (model, out, format!(", data-parallel over {n} replicas in this process (Gloo on loopback)"))
        }
    };
    let meta = ModelMeta {
        optim: Some(p.optim()),
        ..ModelMeta::new(&p.model, config.clone(), io, &p.dataset, "baseline")
    };
    let variant = save_variant(ctx, &model, meta, Saved::main(ctx, out.train_time_s, Encoding::Dense))?;
    let mut output = StageOutput { variants: vec![variant], ..Default::default() };
    output.records.curves = out.curves;
    output.notes.push(format!(
        "{}: {} epoch(s) of {} on {} in {:.1} s{how}, test accuracy {:.4}",
        ctx.stage.id, p.epochs, p.model, p.dataset, out.train_time_s, out.test_accuracy
    ));
    Ok(output)
}
