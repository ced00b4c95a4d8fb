//! `evaluate`: every model variant of the stage's needs, then the real-speedup check:
//! each variant that records the model it was compressed from is timed side by side
//! with it (baseline, simulated and materialized forms), and its metrics row says
//! whether it is really faster.

use slimbench_core::artifact::{SimulatedForm, VariantOut};
use slimbench_core::config::EvaluateParams;
use slimbench_core::records::{Pace, SpeedupRow, faster_verdict};
use slimbench_eval::{Form, FormSpec, SpeedupCheck, VariantEval, check_speedup, evaluate_variant};
use slimbench_pipeline::executor::{BoxError, StageContext, StageInput, StageOutput};
use slimbench_pipeline::resolve::produces_models;

use crate::TorchRunner;
use crate::common::dataset;

pub fn run(
    runner: &TorchRunner,
    ctx: &StageContext<'_>,
    p: &EvaluateParams,
) -> Result<StageOutput, BoxError> {
    let mut output = StageOutput::default();
    let device = runner.device;
    let wanted =
        |id: &str, base: &str| p.inputs.as_ref().is_none_or(|l| l.iter().any(|w| w == id || w == base));
    let mut evaluated: Vec<(&StageInput, &VariantOut)> = Vec::new();
    for input in ctx.inputs.iter().filter(|i| produces_models(&i.manifest.kind) && wanted(&i.id, &i.base_id))
    {
        for v in &input.manifest.variants {
            // A kernel this device lacks is a fact about the device, not a failure of
            // the run: the rest is measured and the report says what was left out.
            let kernel = v.meta.kernel;
            let on_cuda = device.is_cuda();
            if (kernel.cpu_only() && on_cuda) || (kernel.cuda_only() && !on_cuda) {
                output.notes.push(format!(
                    "{}: not evaluated: it runs on {}, {}; this evaluation runs on {}",
                    v.name,
                    kernel.describe(),
                    if on_cuda { "a CPU library (evaluate with `device: cpu`)" } else { "a CUDA kernel" },
                    slimbench_models::runtime::device_name(device)
                ));
                continue;
            }
            let ds = dataset(ctx, &v.meta.dataset)?;
            let file = input.variant_path(v);
            let result = evaluate_variant(
                &VariantEval {
                    name: &v.name,
                    stage: &input.id,
                    file: &file,
                    test: &ds.test,
                    params: p,
                    device,
                    train_time_s: v.train_time_s,
                    train_energy_per_epoch_j: v.train_energy_per_epoch_j,
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
            evaluated.push((input, v));
        }
    }

    for (i, (input, v)) in evaluated.iter().enumerate() {
        let Some(base_ref) = &v.meta.baseline else {
            // Models trained from scratch have no baseline; a compressed one without
            // lineage comes from a file written before slimbench recorded it.
            if !matches!(v.meta.technique.as_str(), "baseline" | "student-alone") {
                output.notes.push(format!(
                    "{}: speedup not checked: its file does not record the model it was compressed from \
                     (written by an older slimbench; rerun its stage with --force)",
                    v.name
                ));
            }
            continue;
        };
        // The baseline may be any need of this stage, evaluated or not.
        let baseline =
            ctx.inputs.iter().filter(|s| s.id == base_ref.stage).find_map(|s| {
                s.manifest.variants.iter().find(|b| b.name == base_ref.variant).map(|b| (s, b))
            });
        let Some((base_input, base)) = baseline else {
            output.notes.push(format!(
                "{}: speedup not checked: its baseline `{}` (stage `{}`) is not among the inputs of `{}`; \
                 add `{}` to its needs",
                v.name, base_ref.variant, base_ref.stage, ctx.stage.id, base_ref.stage
            ));
            continue;
        };
        let ds = dataset(ctx, &v.meta.dataset)?;
        let paths = Paths {
            baseline: base_input.variant_path(base),
            stored: input.variant_path(v),
            simulated: v.simulated.as_ref().map(|s| input.dir.join(&s.file)),
        };
        let forms = forms(v, &paths);
        let rows = check_speedup(&SpeedupCheck {
            variant: &v.name,
            baseline: &base.name,
            forms,
            test: &ds.test,
            latency: &p.latency,
            device,
        })?;
        let (b1, large) = stored_speedups(&rows);
        tracing::info!(variant = %v.name, baseline = %base.name, "speedup {b1:.2}x at batch 1, {large:.2}x at the largest batch");
        let row = &mut output.records.metrics[i];
        row.speedup_b1 = b1;
        row.speedup_large = large;
        row.faster =
            faster_verdict(Pace::of(b1, f64::NAN, f64::NAN), Pace::of(large, f64::NAN, f64::NAN)).to_string();
        output.records.speedup.extend(rows);
    }
    Ok(output)
}

/// Model files of a variant's forms.
struct Paths {
    baseline: std::path::PathBuf,
    stored: std::path::PathBuf,
    simulated: Option<std::path::PathBuf>,
}

/// The forms to time: the baseline, the simulated form where the variant declares one,
/// and the variant as stored as its materialized form unless the stored model *is* the
/// simulated form (nothing smaller was materialized).
fn forms<'a>(v: &VariantOut, paths: &'a Paths) -> Vec<FormSpec<'a>> {
    let mut forms = vec![FormSpec {
        form: Form::Baseline,
        file: &paths.baseline,
        kernel: None,
        what: "the model it was compressed from".into(),
    }];
    if let (Some(SimulatedForm { kernel, what, .. }), Some(file)) = (&v.simulated, &paths.simulated) {
        forms.push(FormSpec { form: Form::Simulated, file, kernel: *kernel, what: what.clone() });
    }
    if !v.simulated_is_stored() {
        forms.push(FormSpec {
            form: Form::Materialized,
            file: &paths.stored,
            kernel: None,
            what: format!("as stored: {} weights on {}", v.meta.precision.as_str(), v.meta.kernel.describe()),
        });
    }
    forms
}

/// Batch-1 and large-batch speedups of the variant as stored (materialized if there is
/// such a form, else simulated); NaN for a batch size not timed.
fn stored_speedups(rows: &[SpeedupRow]) -> (f64, f64) {
    let stored = if rows.iter().any(|r| r.form == Form::Materialized.as_str()) {
        Form::Materialized
    } else {
        Form::Simulated
    };
    let of_form = || rows.iter().filter(|r| r.form == stored.as_str());
    let b1 = of_form().find(|r| r.batch_size == 1).map_or(f64::NAN, |r| r.speedup);
    let large =
        of_form().filter(|r| r.batch_size > 1).max_by_key(|r| r.batch_size).map_or(f64::NAN, |r| r.speedup);
    (b1, large)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(form: &str, batch_size: u64, speedup: f64) -> SpeedupRow {
        SpeedupRow { form: form.into(), batch_size, speedup, ..Default::default() }
    }

    #[test]
    fn the_stored_form_decides() {
        let rows = [
            row("baseline", 1, 1.0),
            row("baseline", 256, 1.0),
            row("simulated", 1, 0.8),
            row("simulated", 256, 0.9),
            row("materialized", 1, 1.3),
            row("materialized", 64, 1.7),
            row("materialized", 256, 2.0),
        ];
        assert_eq!(stored_speedups(&rows), (1.3, 2.0));
        // Without a materialized form the stored model is the simulated one; "large" is
        // the largest batch timed, not the first above 1.
        assert_eq!(stored_speedups(&rows[..4]), (0.8, 0.9));
        assert_eq!(stored_speedups(&[row("materialized", 256, 2.0), row("materialized", 64, 1.7)]).1, 2.0);
        let (b1, large) = stored_speedups(&rows[..1]);
        assert!(b1.is_nan() && large.is_nan());
    }
}
