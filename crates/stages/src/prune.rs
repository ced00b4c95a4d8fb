//! `prune`: magnitude pruning, optional fine-tuning with the mask held, sparse file.

use slimbench_core::config::{OptimSettings, PruneParams, PruneScope};
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_train::{CrossEntropy, train};

use crate::TorchRunner;
use crate::common::{Saved, dataset, load_fp32, loop_config, save_variant, single_input};

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &PruneParams) -> Result<StageOutput, BoxError> {
    let (input, v) = single_input(ctx, p.input.as_deref())?;
    let (mut model, mut meta) = load_fp32(runner, input, v)?;
    let mut masks = slimbench_compress::prune::magnitude_masks(&model, p.sparsity, p.scope);
    masks.apply(&model);

    // Fine-tuning reuses how the input was trained unless the stage says otherwise.
    let base = meta.optim.clone().unwrap_or(OptimSettings {
        optimizer: Default::default(),
        lr: 1e-3,
        momentum: 0.0,
        weight_decay: 0.0,
        batch_size: 32,
    });
    let optim = OptimSettings {
        optimizer: p.optimizer.unwrap_or(base.optimizer),
        lr: p.lr.unwrap_or(base.lr),
        batch_size: p.batch_size.unwrap_or(base.batch_size),
        ..base
    };
    let mut output = StageOutput::default();
    let mut train_time_s = 0.0;
    if p.finetune_epochs > 0 {
        let ds = dataset(ctx, p.dataset.as_deref().unwrap_or(&meta.dataset))?;
        let cfg = loop_config(
            ctx,
            ctx.stage.id.clone(),
            p.finetune_epochs,
            optim.clone(),
            p.seed,
            p.workers,
            p.log_every,
        );
        let out =
            train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, Some(&mut masks), ctx.progress)?;
        train_time_s = out.train_time_s;
        output.records.curves = out.curves;
    }

    meta.sparsity = model.sparsity();
    meta.technique = "prune-magnitude".into();
    meta.optim = Some(optim);
    let layers: Vec<String> = masks
        .layer_sparsity()
        .iter()
        .map(|(n, s)| format!("{} {:.1}%", n.trim_end_matches(".weight"), s * 100.0))
        .collect();
    output.notes.push(format!(
        "{}: {} magnitude pruning to {:.1}% zeros ({}), {} fine-tuning epoch(s)",
        ctx.stage.id,
        match p.scope {
            PruneScope::Global => "global",
            PruneScope::Layer => "per-layer",
        },
        meta.sparsity * 100.0,
        layers.join(", "),
        p.finetune_epochs
    ));
    let variant = save_variant(ctx, &model, meta, Saved::main(ctx, train_time_s, Encoding::Sparse))?;
    output.variants.push(variant);
    Ok(output)
}
