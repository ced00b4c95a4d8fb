//! `low-rank`: linear layers factored by truncated SVD into two thinner ones, and with
//! `convs: tucker2` convolutions into 1x1, KxK core, 1x1 (a model with fewer parameters
//! and multiply-adds), then fine-tuned.

use slimbench_compress::lowrank::{RankRule, factorize, tucker2};
use slimbench_core::config::ConvLowRank;
use slimbench_core::config::LowRankParams;
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};

use crate::TorchRunner;
use crate::common::{Finetune, Saved, load_fp32, save_variant, single_input};

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &LowRankParams) -> Result<StageOutput, BoxError> {
    let (input, v) = single_input(ctx, p.input.as_deref())?;
    let (mut model, mut meta) = load_fp32(runner, input, v)?;
    let rule = match (p.rank, p.energy) {
        (Some(r), _) => RankRule::Rank(r),
        (None, Some(e)) => RankRule::Energy(e),
        (None, None) => unreachable!("validated: rank or energy is set"),
    };
    let params_before = model.param_count();
    let layers = factorize(&mut model, rule, p.layers.as_deref())?;
    let mut conv_notes = Vec::new();
    if p.convs == ConvLowRank::Tucker2 {
        let (factored, convs) = tucker2(&model, rule, None)?;
        model = factored;
        for c in &convs {
            let (before, after) = c.weights();
            conv_notes.push(if c.factored {
                format!(
                    "{} {}x{}x{}x{} -> Tucker-2 ranks {}/{} ({} -> {} weights)",
                    c.layer, c.out_ch, c.in_ch, c.kernel[0], c.kernel[1], c.ranks.0, c.ranks.1, before, after
                )
            } else {
                format!(
                    "{} kept whole (ranks {}/{} would not save parameters)",
                    c.layer, c.ranks.0, c.ranks.1
                )
            });
        }
    }
    if !layers.iter().any(|l| l.factored) && conv_notes.is_empty() {
        tracing::warn!(stage = %ctx.stage.id, "no layer was factored: every rank chosen would not save parameters");
    }
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
    let mut output = StageOutput::default();
    let outcome = ft.run(ctx, &mut model, &meta, None)?;
    let train_time_s = outcome.as_ref().map_or(0.0, |o| o.train_time_s);
    if let Some(o) = outcome {
        output.records.curves = o.curves;
    }

    meta.factored = model.factored();
    meta.optim = Some(ft.optim(&meta));
    meta.sparsity = model.sparsity();
    meta.technique = "low-rank".into();
    let described: Vec<String> = layers
        .iter()
        .map(|l| {
            let (before, after) = l.weights();
            if l.factored {
                format!(
                    "{} {}x{} -> rank {} ({:.1}% of the energy, {} -> {} weights)",
                    l.layer,
                    l.out_dim,
                    l.in_dim,
                    l.rank,
                    l.energy * 100.0,
                    before,
                    after
                )
            } else {
                format!("{} kept whole (rank {} would not save parameters)", l.layer, l.rank)
            }
        })
        .collect();
    let described: Vec<String> = described.into_iter().chain(conv_notes).collect();
    output.notes.push(format!(
        "{}: low-rank factorization: {}; parameters {} -> {}; {} fine-tuning epoch(s)",
        ctx.stage.id,
        described.join(", "),
        params_before,
        model.param_count(),
        p.finetune_epochs
    ));
    let variant = save_variant(ctx, &model, meta, Saved::main(ctx, train_time_s, Encoding::Dense))?;
    output.variants.push(variant);
    Ok(output)
}
