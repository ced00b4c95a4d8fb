//! Helpers shared by the stage modules: datasets, inputs, saving variants.

use std::sync::Arc;

use slimbench_core::artifact::{BaselineRef, IoShape, ModelMeta, Precision, VariantOut};
use slimbench_core::config::{OptimSettings, OptimizerKind};
use slimbench_data::Dataset;
use slimbench_models::Model;
use slimbench_models::store::{self, Encoding};
use slimbench_pipeline::executor::{BoxError, StageContext, StageInput};
use slimbench_pipeline::resolve::produces_models;
use slimbench_train::{CrossEntropy, Objective, StepHook, TrainConfig, TrainOutcome, train};
use tch::Kind;

use crate::StageError;
use crate::TorchRunner;

/// A loaded dataset by name.
pub fn dataset(ctx: &StageContext<'_>, name: &str) -> Result<Arc<Dataset>, StageError> {
    ctx.datasets.get(name).cloned().ok_or_else(|| {
        StageError::Input(format!("dataset `{name}` was not loaded for stage `{}`", ctx.stage.id))
    })
}

/// The model input/output shape a dataset implies.
pub fn io_of(ds: &Dataset) -> IoShape {
    IoShape {
        channels: ds.channels() as i64,
        height: ds.train.rows as i64,
        width: ds.train.cols as i64,
        classes: ds.classes as i64,
    }
}

/// The one model a stage takes: the primary variant of the model-producing need named
/// by `chosen` (an id as written or an instance id), or of the only such need.
pub fn single_input<'c>(
    ctx: &'c StageContext<'_>,
    chosen: Option<&str>,
) -> Result<(&'c StageInput, &'c VariantOut), StageError> {
    let candidates: Vec<&StageInput> = ctx
        .inputs
        .iter()
        .filter(|i| produces_models(&i.manifest.kind))
        .filter(|i| chosen.is_none_or(|c| c == i.id || c == i.base_id))
        .collect();
    let [input] = candidates.as_slice() else {
        return Err(StageError::Input(format!(
            "stage `{}` needs exactly one input model, found {}",
            ctx.stage.id,
            candidates.len()
        )));
    };
    let variant = input
        .manifest
        .primary_variants()
        .next()
        .ok_or_else(|| StageError::Input(format!("stage `{}` produced no model", input.id)))?;
    Ok((input, variant))
}

/// Load an input model on the run's device, in fp32 (compression works on full precision).
/// The returned metadata names the input as its `baseline`, so whatever a compressing
/// stage saves from it records what it was compressed from (`evaluate` times the two
/// side by side).
pub fn load_fp32(
    runner: &TorchRunner,
    input: &StageInput,
    v: &VariantOut,
) -> Result<(Model, ModelMeta), BoxError> {
    let (mut model, mut meta) = store::load(&input.variant_path(v), runner.device)?;
    if meta.precision != Precision::Fp32 {
        tracing::warn!(input = %input.id, "input model is stored in {}; working on an fp32 copy", meta.precision.as_str());
        model.set_kind(Kind::Float);
    }
    meta.baseline = Some(BaselineRef { stage: input.id.clone(), variant: v.name.clone() });
    Ok((model, meta))
}

/// How a model is saved as a variant of a stage.
pub struct Saved<'a> {
    /// Variant name.
    pub name: String,
    /// File name in the stage directory.
    pub file: &'a str,
    /// Whether it is the stage's main output.
    pub primary: bool,
    /// Training seconds spent producing it.
    pub train_time_s: f64,
    /// Dense, or sparse where smaller.
    pub encoding: Encoding,
}

impl Saved<'static> {
    /// The stage's main model: `model.safetensors`, named after the stage.
    pub fn main(ctx: &StageContext<'_>, train_time_s: f64, encoding: Encoding) -> Self {
        Saved { name: ctx.stage.id.clone(), file: "model.safetensors", primary: true, train_time_s, encoding }
    }
}

/// The training-loop settings of a stage that trains `variant` (train, prune
/// fine-tuning, distill); the seed defaults to the pipeline's.
pub fn loop_config(
    ctx: &StageContext<'_>,
    variant: String,
    epochs: u32,
    optim: OptimSettings,
    seed: Option<u64>,
    workers: usize,
    log_every: usize,
) -> TrainConfig {
    TrainConfig {
        epochs,
        optim,
        seed: seed.unwrap_or(ctx.plan.defaults.seed),
        workers,
        log_every,
        eval_batch_size: 1000,
        stage: ctx.stage.id.clone(),
        variant,
        replica: None,
        amp: None,
        augment: Default::default(),
    }
}

/// Save a model into the stage directory and describe it as a variant.
pub fn save_variant(
    ctx: &StageContext<'_>,
    model: &Model,
    meta: ModelMeta,
    s: Saved<'_>,
) -> Result<VariantOut, BoxError> {
    let size = store::save(model, &meta, &ctx.out_dir.join(s.file), s.encoding)?;
    tracing::info!(variant = %s.name, bytes = size, "saved {}", s.file);
    Ok(VariantOut {
        name: s.name,
        file: s.file.to_string(),
        primary: s.primary,
        meta,
        train_time_s: s.train_time_s,
        train_energy_per_epoch_j: None,
        simulated: None,
    })
}

/// Fine-tuning after compression, as a stage's `with:` gives it; every unset field
/// defaults to how the input model was trained.
#[derive(Debug, Clone, Copy)]
pub struct Finetune<'a> {
    /// Epochs (0: none).
    pub epochs: u32,
    /// Optimizer.
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Batch size.
    pub batch_size: Option<usize>,
    /// Dataset name.
    pub dataset: Option<&'a str>,
    /// Seed.
    pub seed: Option<u64>,
    /// Batch-preparation threads.
    pub workers: usize,
    /// Curve point every N steps.
    pub log_every: usize,
    /// Train on all but the last this many training images (held out for a search
    /// that measures on them).
    pub holdout: usize,
}

impl Finetune<'_> {
    /// The optimizer settings: the stage's, else the input's, else Adam at 1e-3.
    pub fn optim(&self, meta: &ModelMeta) -> OptimSettings {
        let base = meta.optim.clone().unwrap_or(OptimSettings {
            optimizer: Default::default(),
            lr: 1e-3,
            momentum: 0.0,
            weight_decay: 0.0,
            batch_size: 32,
            schedule: Default::default(),
        });
        OptimSettings {
            optimizer: self.optimizer.unwrap_or(base.optimizer),
            lr: self.lr.unwrap_or(base.lr),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            ..base
        }
    }

    /// Fine-tune `model` (cross-entropy on its dataset, `hook` after every step);
    /// `None` when `epochs` is 0.
    pub fn run(
        &self,
        ctx: &StageContext<'_>,
        model: &mut Model,
        meta: &ModelMeta,
        hook: Option<&mut dyn StepHook>,
    ) -> Result<Option<TrainOutcome>, BoxError> {
        self.run_with(ctx, model, meta, &mut CrossEntropy, hook)
    }

    /// [`Finetune::run`] with another objective (e.g. with the quantization simulated).
    pub fn run_with(
        &self,
        ctx: &StageContext<'_>,
        model: &mut Model,
        meta: &ModelMeta,
        objective: &mut dyn Objective,
        hook: Option<&mut dyn StepHook>,
    ) -> Result<Option<TrainOutcome>, BoxError> {
        if self.epochs == 0 {
            return Ok(None);
        }
        let ds = dataset(ctx, self.dataset.unwrap_or(&meta.dataset))?;
        let cfg = loop_config(
            ctx,
            ctx.stage.id.clone(),
            self.epochs,
            self.optim(meta),
            self.seed,
            self.workers,
            self.log_every,
        );
        let train_split = match self.holdout {
            0 => ds.train.clone(),
            n => Arc::new(ds.train.slice(0, ds.train.len().saturating_sub(n))),
        };
        Ok(Some(train(model, &train_split, &ds.test, &cfg, objective, hook, ctx.progress)?))
    }
}
