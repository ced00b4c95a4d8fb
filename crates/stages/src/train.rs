//! `train`: a model from scratch, by one of the strategies: a single model, a
//! model-parallel pipeline, asynchronous data parallelism (a parameter server), or
//! synchronous data parallelism as processes of a launch or as threads of this one.
//! Every strategy fills in the stage's row of `parallel.parquet`.

use std::sync::Arc;

use slimbench_core::artifact::{IoShape, ModelMeta};
use slimbench_core::config::{Augmentation, ModelConfig, Strategy, TrainParams};
use slimbench_core::progress::{NoProgress, Progress};
use slimbench_core::records::{ParallelRow, StalenessRow};
use slimbench_data::Dataset;
use slimbench_models::Model;
use slimbench_models::runtime::{device_name, gpu_index};
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_train::async_ps::train_async;
use slimbench_train::model_parallel::{PipelineConfig, train_pipelined};
use slimbench_train::replica::run_replicas_on;
use slimbench_train::{CrossEntropy, TrainConfig, TrainOutcome, train};
use tch::Device;

use crate::common::{Saved, dataset, io_of, loop_config, save_variant};
use crate::{DistJob, StageError, TorchRunner};

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &TrainParams) -> Result<StageOutput, BoxError> {
    // The stage's own `device:` is already the runner's (see `run_stage`).
    let device = runner.device;
    let ds = dataset(ctx, &p.dataset)?;
    let job = Job {
        ctx,
        p,
        io: io_of(&ds),
        ds,
        seed: p.seed.unwrap_or(ctx.plan.defaults.seed),
        config: &ctx.plan.models[&p.model],
        device,
        cfg: TrainConfig {
            amp: p.amp,
            augment: slimbench_data::loader::Augment {
                crop_padding: if p.augment.contains(&Augmentation::Crop) { p.crop_padding } else { 0 },
                flip: p.augment.contains(&Augmentation::Flip),
            },
            ..loop_config(ctx, ctx.stage.id.clone(), p.epochs, p.optim(), p.seed, p.workers, p.log_every)
        },
    };
    let mut row = ParallelRow {
        stage: ctx.stage.id.clone(),
        variant: ctx.stage.id.clone(),
        model: p.model.clone(),
        strategy: "single".into(),
        device: device_name(device),
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
    let meter = slimbench_metrics::EnergyMeter::start(gpu_index(device));
    let trained = match (p.strategy, runner.dist()) {
        (Strategy::Single, _) => job.single()?,
        (Strategy::ModelParallel, _) => job.pipeline(&mut row)?,
        // Threads of this process (under a launch, of rank 0's: the stage is not
        // distributed, the other ranks wait).
        (Strategy::DataParallel, _) if !p.mode.is_sync() => job.parameter_server(&mut row)?,
        (Strategy::DataParallel, Some(dist)) => job.processes(dist, &mut row)?,
        (Strategy::DataParallel, None) => job.threads(&mut row)?,
    };
    let Trained { model, out, how, staleness } = trained;
    let energy = meter.joules();

    let meta = ModelMeta {
        optim: Some(p.optim()),
        ..ModelMeta::new(&p.model, job.config.clone(), job.io, &p.dataset, "baseline")
    };
    let mut variant = save_variant(ctx, &model, meta, Saved::main(ctx, out.train_time_s, Encoding::Dense))?;
    variant.train_energy_per_epoch_j = energy.filter(|_| p.epochs > 0).map(|j| j / f64::from(p.epochs));
    let images = job.ds.train.len() as u64 * u64::from(p.epochs);
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

/// What every strategy starts from.
struct Job<'a> {
    ctx: &'a StageContext<'a>,
    p: &'a TrainParams,
    ds: Arc<Dataset>,
    io: IoShape,
    seed: u64,
    config: &'a ModelConfig,
    device: Device,
    cfg: TrainConfig,
}

/// What a strategy produced.
struct Trained {
    model: Model,
    out: TrainOutcome,
    /// How it trained, for the stage's note (`, model-parallel: ...`).
    how: String,
    /// Async updates.
    staleness: Vec<StalenessRow>,
}

impl Trained {
    fn new(model: Model, out: TrainOutcome, how: String) -> Self {
        Trained { model, out, how, staleness: Vec::new() }
    }
}

impl Job<'_> {
    /// The model, freshly initialised from the seed, on `device`.
    fn build(&self, device: Device) -> Result<Model, BoxError> {
        Ok(Model::build(&self.p.model, self.config, self.io, device, Some(self.seed))?)
    }

    fn fail(&self, msg: String) -> BoxError {
        StageError::Input(format!("stage `{}`: {msg}", self.ctx.stage.id)).into()
    }

    /// One model, one loop.
    fn single(&self) -> Result<Trained, BoxError> {
        let mut model = self.build(self.device)?;
        if self.p.epochs == 0 {
            // The model as it is: an imported network's own weights, measured as a
            // baseline for the stages that compress it.
            let test = slimbench_eval::accuracy(&model, &self.ds.test, self.cfg.eval_batch_size);
            let out = TrainOutcome { test_accuracy: test.accuracy, ..Default::default() };
            return Ok(Trained::new(
                model,
                out,
                ", not trained (epochs: 0): the model as built or imported".into(),
            ));
        }
        tracing::info!(model = %self.p.model, params = model.param_count(), dataset = %self.p.dataset, "training");
        let out = train(
            &mut model,
            &self.ds.train,
            &self.ds.test,
            &self.cfg,
            &mut CrossEntropy,
            None,
            self.ctx.progress,
        )?;
        let how = if out.amp.is_empty() { String::new() } else { format!(", mixed precision {}", out.amp) };
        Ok(Trained::new(model, out, how))
    }

    /// A GPipe pipeline of `pipeline_stages` stages: one CUDA device each where there
    /// are enough (else the stages share the devices there are, said in the note), or
    /// CPU thread groups splitting the run's threads.
    fn pipeline(&self, row: &mut ParallelRow) -> Result<Trained, BoxError> {
        let k = self.p.pipeline_stages();
        let cuda = if self.device.is_cuda() { tch::Cuda::device_count().max(1) as usize } else { 0 };
        let devices: Vec<Device> =
            (0..k).map(|i| if cuda > 0 { Device::Cuda(i % cuda) } else { Device::Cpu }).collect();
        let threads_per_stage = (self.ctx.env.threads / k).max(1);
        let pc = PipelineConfig { micro_batches: self.p.micro_batches(), devices, threads_per_stage };
        let mut model = self.build(self.device)?;
        let pipe =
            train_pipelined(&mut model, &self.ds.train, &self.ds.test, &self.cfg, &pc, self.ctx.progress)?;
        let layout: Vec<String> = pipe
            .slices
            .iter()
            .map(|s| {
                let place = match s.device {
                    Device::Cpu => format!("{threads_per_stage} CPU thread(s)"),
                    d => device_name(d),
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
        Ok(Trained::new(model, pipe.outcome, how))
    }

    /// A parameter server and `replicas` asynchronous workers, threads of this process;
    /// every update's staleness becomes a row of `staleness.parquet`.
    fn parameter_server(&self, row: &mut ParallelRow) -> Result<Trained, BoxError> {
        let n = self.p.replicas.unwrap_or(2);
        let replicas = (0..n).map(|_| self.build(self.device)).collect::<Result<Vec<_>, _>>()?;
        let objective = || Box::new(CrossEntropy) as Box<dyn slimbench_train::Objective>;
        let server = self.build(self.device)?;
        let (model, a) = train_async(
            server,
            replicas,
            &self.ds.train,
            &self.ds.test,
            &self.cfg,
            objective,
            self.ctx.progress,
        )?;
        let how = format!(
            ", asynchronous data-parallel: {n} workers and a parameter server, {} updates, staleness mean {:.2} and max {} versions",
            a.staleness.len(),
            a.mean_staleness(),
            a.max_staleness()
        );
        let id = &self.ctx.stage.id;
        let staleness = (a.staleness.iter().zip(&a.worker).zip(&a.epoch))
            .enumerate()
            .map(|(i, ((&s, &w), &e))| StalenessRow {
                stage: id.clone(),
                variant: id.clone(),
                update: i as u64 + 1,
                worker: w as u32,
                epoch: e,
                staleness: s,
            })
            .collect();
        (row.strategy, row.mode, row.replicas) = ("data-parallel".into(), "async".into(), n as u32);
        Ok(Trained { staleness, ..Trained::new(model, a.outcome, how) })
    }

    /// One replica per process of a launch: rank 0 calls the others in, then all train
    /// together, reducing through the job's engine (Gloo, or NCCL on each one's GPU).
    fn processes(&self, dist: &DistJob, row: &mut ParallelRow) -> Result<Trained, BoxError> {
        if self.p.replicas.is_some_and(|r| r != dist.world_size()) {
            return Err(self.fail(format!(
                "replicas: {} but this job has {} processes; under a launch every process is one replica, so leave `replicas` out",
                self.p.replicas.unwrap_or(1),
                dist.world_size()
            )));
        }
        if dist.rank() == 0 {
            let ctx = self.ctx;
            let index =
                ctx.plan.stages.iter().position(|s| s.id == ctx.stage.id).expect("the stage is in its plan");
            dist.announce(index)?;
        }
        // The replica lives where its group reduces: its own GPU under NCCL.
        if self.device.is_cuda() != dist.device().is_cuda() {
            return Err(self.fail(format!(
                "it trains on {} but this job reduces through {} on {}; under a launch, give the device in `defaults.device`",
                device_name(self.device),
                dist.engine(),
                device_name(dist.device())
            )));
        }
        let mut model = self.build(dist.device())?;
        let cfg = TrainConfig { replica: Some(dist.replica()), ..self.cfg.clone() };
        let progress: &dyn Progress = if dist.rank() == 0 { self.ctx.progress } else { &NoProgress };
        // The processes on this machine share its threads while they train together
        // (as torchrun's OMP_NUM_THREADS does), instead of each taking all of them.
        let local = std::env::var("LOCAL_WORLD_SIZE").ok().and_then(|v| v.parse::<usize>().ok());
        let shared = (self.ctx.env.threads / local.unwrap_or(dist.world_size()).max(1)).max(1);
        let before = tch::get_num_threads();
        if !self.device.is_cuda() {
            tch::set_num_threads(shared as i32);
        }
        let out = train(&mut model, &self.ds.train, &self.ds.test, &cfg, &mut CrossEntropy, None, progress);
        tch::set_num_threads(before);
        (row.strategy, row.mode, row.processes) =
            ("data-parallel".into(), "sync".into(), dist.world_size() as u32);
        let how = format!(", data-parallel over {} processes ({})", dist.world_size(), dist.engine());
        Ok(Trained::new(model, out?, how))
    }

    /// `replicas` threads of this process on a loopback store: on the CPU through
    /// Gloo, on CUDA one GPU each through NCCL.
    fn threads(&self, row: &mut ParallelRow) -> Result<Trained, BoxError> {
        let n = self.p.replicas.unwrap_or(2);
        let timeout = crate::dist::training_timeout()?;
        let devices: Vec<Device> = if self.device.is_cuda() {
            let count = tch::Cuda::device_count() as usize;
            if n > count {
                return Err(self.fail(format!(
                    "data-parallel on CUDA puts each of the {n} replicas on its own GPU, but this machine has {count}; lower `replicas` or train on `device: cpu`"
                )));
            }
            (0..n).map(Device::Cuda).collect()
        } else {
            vec![Device::Cpu; n]
        };
        let engine = if self.device.is_cuda() { "NCCL" } else { "Gloo on loopback" };
        let mut results = run_replicas_on(&devices, timeout, |replica| -> Result<_, BoxError> {
            let first = replica.rank() == 0;
            let mut model = self.build(replica.device())?;
            let cfg = TrainConfig { replica: Some(replica), ..self.cfg.clone() };
            let progress: &dyn Progress = if first { self.ctx.progress } else { &NoProgress };
            let out =
                train(&mut model, &self.ds.train, &self.ds.test, &cfg, &mut CrossEntropy, None, progress)?;
            Ok(first.then_some((model, out)))
        })?;
        let (model, out) = results.swap_remove(0).expect("rank 0 returns its model");
        (row.strategy, row.mode, row.replicas) = ("data-parallel".into(), "sync".into(), n as u32);
        Ok(Trained::new(model, out, format!(", data-parallel over {n} replicas in this process ({engine})")))
    }
}
