//! `prune`: magnitude pruning (one-shot or on a polynomial schedule, mask held while
//! fine-tuning, dead paths removed afterwards, sparse file), 2:4 semi-structured
//! pruning (mask held, sparse file), or structured pruning (channels and neurons
//! removed, a smaller dense model fine-tuned and saved).

use slimbench_compress::prune::{Masks, Polynomial, Scheduled};
use slimbench_compress::semi;
use slimbench_compress::structured::{Pruned, StructuredError};
use slimbench_core::artifact::{ModelMeta, SimulatedForm};
use slimbench_core::config::{PruneMethod, PruneParams, PruneScope};
use slimbench_models::Model;
use slimbench_models::store::{self, Encoding};
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_train::StepHook;

use crate::common::{Finetune, Saved, dataset, load_fp32, save_variant, single_input};
use crate::{StageError, TorchRunner};

/// The simulated form of a variant, when it is not the variant's own file.
const SIMULATED_FILE: &str = "simulated.safetensors";

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &PruneParams) -> Result<StageOutput, BoxError> {
    let (input, v) = single_input(ctx, p.input.as_deref())?;
    // Checked at validation: required except for 2:4, which always prunes half.
    let sparsity = p.sparsity.unwrap_or(0.5);
    let (mut model, mut meta) = load_fp32(runner, input, v)?;
    let params_before = model.param_count();
    let original_config = meta.config.clone();
    let original_graph = model.graph.clone();
    let weights_before: i64 = model.prunable().iter().map(|(_, w)| w.numel() as i64).sum();

    // Fine-tuning reuses how the input was trained unless the stage says otherwise.
    let ft = Finetune {
        epochs: p.finetune_epochs,
        optimizer: p.optimizer,
        lr: p.lr,
        batch_size: p.batch_size,
        dataset: p.dataset.as_deref(),
        seed: p.seed,
        workers: p.workers,
        log_every: p.log_every,
        holdout: 0,
    };
    let optim = ft.optim(&meta);
    let ds =
        if p.finetune_epochs > 0 { Some(dataset(ctx, ft.dataset.unwrap_or(&meta.dataset))?) } else { None };

    let mut masks: Option<Masks> = None;
    let mut scheduled: Option<Scheduled> = None;
    let mut removed = Vec::new();
    match p.method {
        PruneMethod::Magnitude => match (&p.schedule, &ds) {
            (Some(s), Some(ds)) => {
                // The schedule must end inside the fine-tuning, or `sparsity` is never reached.
                let per_epoch = ds.train.len().div_ceil(optim.batch_size.max(1)) as u64;
                let steps = per_epoch * u64::from(p.finetune_epochs);
                if s.end_step > steps {
                    return Err(StageError::Input(format!(
                        "stage `{}`: with.schedule.end_step = {} is past the end of fine-tuning ({} epoch(s) x {} \
                         batches = {} steps); lower schedule.end_step or raise finetune_epochs",
                        ctx.stage.id, s.end_step, p.finetune_epochs, per_epoch, steps
                    ))
                    .into());
                }
                scheduled = Some(Scheduled::new(&model, Polynomial::new(s, sparsity), p.scope));
            }
            _ => {
                let m = slimbench_compress::prune::magnitude_masks(&model, sparsity, p.scope);
                m.apply(&model);
                masks = Some(m);
            }
        },
        PruneMethod::SemiStructured => {
            let m = semi::masks_2_4(&model);
            m.apply(&model);
            masks = Some(m);
        }
        PruneMethod::Structured => {
            let (mut small, report) = slimbench_compress::structured::prune(&model, sparsity, p.norm)?;
            small.to_device(runner.device);
            meta.config = small.config.clone();
            model = small;
            removed = report;
        }
    }

    let mut output = StageOutput::default();
    let hook = match (&mut masks, &mut scheduled) {
        (Some(m), _) => Some(m as &mut dyn StepHook),
        (None, Some(s)) => Some(s as &mut dyn StepHook),
        (None, None) => None,
    };
    let mut train_time_s = 0.0;
    if let Some(out) = ft.run(ctx, &mut model, &meta, hook)? {
        train_time_s = out.train_time_s;
        output.records.curves = out.curves;
    }
    meta.optim = Some(optim);

    let mut notes = Vec::new();
    // Magnitude pruning's masked full-size model, kept when dead-path removal replaces it.
    let mut masked: Option<Model> = None;
    match p.method {
        PruneMethod::Magnitude => {
            meta.technique = "prune-magnitude".into();
            let masked_sparsity = model.sparsity();
            let layers = scheduled
                .as_ref()
                .and_then(|s| s.masks())
                .or(masks.as_ref())
                .map(|m| m.layer_sparsity())
                .unwrap_or_default()
                .iter()
                .map(|(n, s)| format!("{} {:.1}%", n.trim_end_matches(".weight"), s * 100.0))
                .collect::<Vec<_>>();
            let how = match &scheduled {
                Some(s) => format!(
                    "polynomial schedule (power {}) from {:.1}% at step {} to {:.1}% at step {}, masks every {} \
                     steps",
                    s.schedule().power,
                    s.schedule().initial_sparsity * 100.0,
                    s.schedule().begin,
                    sparsity * 100.0,
                    s.schedule().end,
                    s.schedule().frequency
                ),
                None => "one-shot".to_string(),
            };
            notes.push(format!(
                "{}: {} magnitude pruning, {how}, to {:.1}% zeros ({}), {} fine-tuning epoch(s)",
                ctx.stage.id,
                match p.scope {
                    PruneScope::Global => "global",
                    PruneScope::Layer => "per-layer",
                },
                masked_sparsity * 100.0,
                layers.join(", "),
                p.finetune_epochs
            ));
            if let Some(s) = &scheduled {
                let points: Vec<String> =
                    s.history().iter().map(|(t, s)| format!("{t}:{:.1}%", s * 100.0)).collect();
                notes.push(format!("{}: sparsity by fine-tuning step {}", ctx.stage.id, points.join(" ")));
            }
            if p.remove_dead {
                match slimbench_compress::dead::remove_dead(&model) {
                    Ok((_, report)) if report.iter().all(|r| r.before == r.after) => notes.push(format!(
                        "{}: dead-path removal found no neuron or channel without inputs or readers ({}); the masked \
                         model is saved",
                        ctx.stage.id,
                        describe(&report)
                    )),
                    Ok((mut small, report)) => {
                        small.to_device(runner.device);
                        let kept: i64 = small
                            .prunable()
                            .iter()
                            .map(|(_, w)| w.count_nonzero(None::<i64>).int64_value(&[]))
                            .sum();
                        notes.push(format!(
                            "{}: dead-path removal ({}); parameters {} -> {} ({} non-zero), {:.1}% of the original \
                             weights zero or removed, {:.1}% zeros left in the smaller model",
                            ctx.stage.id,
                            describe(&report),
                            params_before,
                            small.param_count(),
                            small.nonzero_count(),
                            (1.0 - kept as f64 / weights_before as f64) * 100.0,
                            small.sparsity() * 100.0
                        ));
                        meta.config = small.config.clone();
                        masked = Some(std::mem::replace(&mut model, small));
                    }
                    Err(StructuredError::Unsupported(family)) => notes.push(format!(
                        "{}: dead-path removal skipped: not supported for the `{family}` family (mlp, seed-cnn, \
                         cnn); the masked model is saved",
                        ctx.stage.id
                    )),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        PruneMethod::SemiStructured => {
            meta.technique = "prune-2:4".into();
            let layers = masks
                .as_ref()
                .map(|m| m.layer_sparsity())
                .unwrap_or_default()
                .iter()
                .map(|(n, s)| format!("{} {:.1}%", n.trim_end_matches(".weight"), s * 100.0))
                .collect::<Vec<_>>();
            notes.push(format!(
                "{}: 2:4 semi-structured pruning (2 of every 4 consecutive input weights kept per output row) to \
                 {:.1}% zeros ({}), {} fine-tuning epoch(s)",
                ctx.stage.id,
                model.sparsity() * 100.0,
                layers.join(", "),
                p.finetune_epochs
            ));
            notes.push(format!("{}: {}", ctx.stage.id, cslt_note(&model, runner.device)));
        }
        PruneMethod::Structured => {
            meta.technique = "prune-structured".into();
            notes.push(format!(
                "{}: structured pruning by {:?} norm removed {:.0}% of the channels/neurons ({}); parameters {} -> {} \
                 in a smaller dense model; {} fine-tuning epoch(s)",
                ctx.stage.id,
                p.norm,
                sparsity * 100.0,
                describe(&removed),
                params_before,
                model.param_count(),
                p.finetune_epochs
            ));
        }
    }
    meta.sparsity = model.sparsity();
    output.notes.extend(notes);
    let encoding = if p.method == PruneMethod::Structured { Encoding::Dense } else { Encoding::Sparse };
    let sim_meta = ModelMeta { config: original_config, ..meta.clone() };
    let variant = save_variant(ctx, &model, meta, Saved::main(ctx, train_time_s, encoding))?;
    let simulated = match (p.method, masked) {
        (PruneMethod::Structured, _) => {
            // The original-size model with the removed channels/neurons zeroed: what a
            // mask-based structured pruning would run.
            let full =
                slimbench_compress::structured::expand(&model, &sim_meta.config, &original_graph, &removed)?;
            let sim_meta = ModelMeta { sparsity: full.sparsity(), ..sim_meta };
            store::save(&full, &sim_meta, &ctx.out_dir.join(SIMULATED_FILE), Encoding::Dense)?;
            SimulatedForm::file(SIMULATED_FILE, "original-size model, removed channels/neurons zeroed")
        }
        (_, Some(full)) => {
            let sim_meta = ModelMeta { sparsity: full.sparsity(), ..sim_meta };
            store::save(&full, &sim_meta, &ctx.out_dir.join(SIMULATED_FILE), Encoding::Sparse)?;
            SimulatedForm::file(
                SIMULATED_FILE,
                "masked original-size model: zeros still multiplied by dense kernels",
            )
        }
        // Nothing was removed: the masked model is both what is stored and what pruning
        // simulates.
        (_, None) => SimulatedForm::file(
            &variant.file,
            "masked dense model: zeros stored sparse, still multiplied by dense kernels",
        ),
    };
    output.variants.push(variant.with_simulated(simulated));
    Ok(output)
}

/// `fc0 300 -> 212, fc1 100 -> 97`.
fn describe(report: &[Pruned]) -> String {
    report.iter().map(|r| format!("{} {} -> {}", r.layer, r.before, r.after)).collect::<Vec<_>>().join(", ")
}

/// Whether the 2:4 form ran on cuSPARSELt here, and how close it came to dense.
fn cslt_note(model: &slimbench_models::Model, device: tch::Device) -> String {
    if !semi::cslt_available(device) {
        return semi::NO_KERNEL_NOTE.to_string();
    }
    match semi::check_cslt(model, device, 256) {
        Ok(layers) => format!(
            "cuSPARSELt 2:4 kernels ran the linear layers in fp16 (largest difference from dense, relative: {}); \
             evaluated as dense with zeros",
            layers.iter().map(|(l, d)| format!("{l} {d:.1e}")).collect::<Vec<_>>().join(", ")
        ),
        Err(e) => format!("cuSPARSELt refused this model's layers ({e}); evaluated as dense with zeros"),
    }
}
