//! `evaluate`: every model variant of the stage's needs.

use slimbench_core::config::EvaluateParams;
use slimbench_eval::{VariantEval, evaluate_variant};
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_pipeline::resolve::produces_models;

use crate::TorchRunner;
use crate::common::dataset;

pub fn run(
    runner: &TorchRunner,
    ctx: &StageContext<'_>,
    p: &EvaluateParams,
) -> Result<StageOutput, BoxError> {
    let mut output = StageOutput::default();
    let wanted =
        |id: &str, base: &str| p.inputs.as_ref().is_none_or(|l| l.iter().any(|w| w == id || w == base));
    for input in ctx.inputs.iter().filter(|i| produces_models(&i.manifest.kind) && wanted(&i.id, &i.base_id))
    {
        for v in &input.manifest.variants {
            let ds = dataset(ctx, &v.meta.dataset)?;
            let file = input.variant_path(v);
            let result = evaluate_variant(
                &VariantEval {
                    name: &v.name,
                    stage: &input.id,
                    file: &file,
                    test: &ds.test,
                    params: p,
                    device: runner.device,
                    train_time_s: v.train_time_s,
                },
                ctx.progress,
            )?;
            let r = &result.row;
            tracing::info!(
                variant = %r.variant,
                accuracy = format!("{:.4}", r.accuracy),
                p50_us = format!("{:.1}", r.latency_p50_us),
                size_kb = format!("{:.1}", r.file_size_bytes as f64 / 1024.0),
                "evaluated"
            );
            output.records.metrics.push(result.row);
            output.records.latency.extend(result.latency);
            output.records.throughput.extend(result.throughput);
        }
    }
    Ok(output)
}
