//! `train`: a model from scratch.

use slimbench_core::artifact::ModelMeta;
use slimbench_core::config::TrainParams;
use slimbench_models::Model;
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_train::{CrossEntropy, train};

use crate::TorchRunner;
use crate::common::{Saved, dataset, io_of, loop_config, save_variant};

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &TrainParams) -> Result<StageOutput, BoxError> {
    let ds = dataset(ctx, &p.dataset)?;
    let io = io_of(&ds);
    let seed = p.seed.unwrap_or(ctx.plan.defaults.seed);
    let config = &ctx.plan.models[&p.model];
    let mut model = Model::build(&p.model, config, io, runner.device, Some(seed))?;
    tracing::info!(model = %p.model, params = model.param_count(), dataset = %p.dataset, "training");
    let cfg = loop_config(ctx, ctx.stage.id.clone(), p.epochs, p.optim(), p.seed, p.workers, p.log_every);
    let out = train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, None, ctx.progress)?;
    let meta = ModelMeta {
        optim: Some(p.optim()),
        ..ModelMeta::new(&p.model, config.clone(), io, &p.dataset, "baseline")
    };
    let variant = save_variant(ctx, &model, meta, Saved::main(ctx, out.train_time_s, Encoding::Dense))?;
    let mut output = StageOutput { variants: vec![variant], ..Default::default() };
    output.records.curves = out.curves;
    output.notes.push(format!(
        "{}: {} epoch(s) of {} on {} in {:.1} s, test accuracy {:.4}",
        ctx.stage.id, p.epochs, p.model, p.dataset, out.train_time_s, out.test_accuracy
    ));
    Ok(output)
}
