//! `prune`: magnitude pruning (mask held while fine-tuning, sparse file) or structured
//! pruning (channels and neurons removed, a smaller dense model fine-tuned and saved).

use slimbench_core::artifact::{ModelMeta, SimulatedForm};
use slimbench_core::config::{OptimSettings, PruneMethod, PruneParams, PruneScope};
use slimbench_models::store::{self, Encoding};
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_train::{CrossEntropy, StepHook, train};

use crate::TorchRunner;
use crate::common::{Saved, dataset, load_fp32, loop_config, save_variant, single_input};

/// The structured variant's simulated form, beside `model.safetensors`.
const SIMULATED_FILE: &str = "simulated.safetensors";

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &PruneParams) -> Result<StageOutput, BoxError> {
    let (input, v) = single_input(ctx, p.input.as_deref())?;
    let (mut model, mut meta) = load_fp32(runner, input, v)?;
    let params_before = model.param_count();
    let original_config = meta.config.clone();
    let mut masks = None;
    let mut removed = Vec::new();
    match p.method {
        PruneMethod::Magnitude => {
            let m = slimbench_compress::prune::magnitude_masks(&model, p.sparsity, p.scope);
            m.apply(&model);
            masks = Some(m);
        }
        PruneMethod::Structured => {
            let (mut small, report) = slimbench_compress::structured::prune(&model, p.sparsity, p.norm)?;
            small.to_device(runner.device);
            meta.config = small.config.clone();
            model = small;
            removed = report;
        }
    }

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
        let hook = masks.as_mut().map(|m| m as &mut dyn StepHook);
        let out = train(&mut model, &ds.train, &ds.test, &cfg, &mut CrossEntropy, hook, ctx.progress)?;
        train_time_s = out.train_time_s;
        output.records.curves = out.curves;
    }

    meta.sparsity = model.sparsity();
    meta.optim = Some(optim);
    let encoding = if let Some(masks) = &masks {
        meta.technique = "prune-magnitude".into();
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
        Encoding::Sparse
    } else {
        meta.technique = "prune-structured".into();
        let layers: Vec<String> =
            removed.iter().map(|r| format!("{} {} -> {}", r.layer, r.before, r.after)).collect();
        output.notes.push(format!(
            "{}: structured pruning by {:?} norm removed {:.0}% of the channels/neurons ({}); parameters {} -> {} \
             in a smaller dense model; {} fine-tuning epoch(s)",
            ctx.stage.id,
            p.norm,
            p.sparsity * 100.0,
            layers.join(", "),
            params_before,
            model.param_count(),
            p.finetune_epochs
        ));
        Encoding::Dense
    };
    let sim_meta = ModelMeta { config: original_config, ..meta.clone() };
    let variant = save_variant(ctx, &model, meta, Saved::main(ctx, train_time_s, encoding))?;
    let simulated = if masks.is_some() {
        // Until dead-path removal materializes something smaller, the masked model is
        // both what is stored and what pruning simulates.
        SimulatedForm::file(
            &variant.file,
            "masked dense model: zeros stored sparse, still multiplied by dense kernels",
        )
    } else {
        // The original-size model with the removed channels/neurons zeroed: what a
        // mask-based structured pruning would run.
        let full = slimbench_compress::structured::expand(&model, &sim_meta.config, &removed)?;
        let sim_meta = ModelMeta { sparsity: full.sparsity(), ..sim_meta };
        store::save(&full, &sim_meta, &ctx.out_dir.join(SIMULATED_FILE), Encoding::Dense)?;
        SimulatedForm::file(SIMULATED_FILE, "original-size model, removed channels/neurons zeroed")
    };
    output.variants.push(variant.with_simulated(simulated));
    Ok(output)
}
