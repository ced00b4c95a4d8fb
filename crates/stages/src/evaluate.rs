//! `evaluate`: every model variant of the stage's needs, measured by
//! [`slimbench_eval::evaluate`] in one timing plan. Each variant that records the model
//! it was compressed from is timed beside it (baseline, simulated and materialized
//! forms), and its metrics row says whether it is really faster, or the same within
//! noise. With `backends:` beyond libtorch, each variant is also timed on those
//! backends (its ONNX export), a metrics row per variant and backend.

use slimbench_core::artifact::{SimulatedForm, VariantOut};
use slimbench_core::config::EvaluateParams;
use slimbench_eval::{Candidate, Form, FormSpec, Settings, evaluate};
use slimbench_metrics::Thresholds;
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
    let mut chosen: Vec<(&StageInput, &VariantOut)> = Vec::new();
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
            chosen.push((input, v));
        }
    }
    // Datasets first (they are loaded once and borrowed by every candidate).
    let mut splits = Vec::new();
    for (_, v) in &chosen {
        splits.push(dataset(ctx, &v.meta.dataset)?);
    }
    let mut candidates = Vec::with_capacity(chosen.len());
    for ((input, v), ds) in chosen.iter().zip(&splits) {
        let (baseline, forms) = match speedup_forms(ctx, input, v) {
            Ok(Some((name, forms))) => (name, forms),
            Ok(None) => (String::new(), Vec::new()),
            Err(note) => {
                output.notes.push(note);
                (String::new(), Vec::new())
            }
        };
        candidates.push(Candidate {
            name: &v.name,
            stage: &input.id,
            file: input.variant_path(v),
            test: &ds.test,
            train_time_s: v.train_time_s,
            train_energy_per_epoch_j: v.train_energy_per_epoch_j,
            baseline,
            forms,
        });
    }
    if candidates.is_empty() {
        return Ok(output);
    }
    let settings = Settings {
        params: p,
        device,
        stage: &ctx.stage.id,
        thresholds: Thresholds::default(),
        export: slimbench_eval::onnx_export,
    };
    let outcome = evaluate(&candidates, &settings, ctx.progress)?;
    for r in &outcome.records.metrics {
        tracing::info!(
            variant = %r.variant,
            backend = %r.backend,
            accuracy = format!("{:.4}", r.accuracy),
            p50_us = format!("{:.1} [{:.1}, {:.1}]", r.latency_p50_us, r.latency_p50_lo_us, r.latency_p50_hi_us),
            size_kb = format!("{:.1}", r.file_size_bytes as f64 / 1024.0),
            faster = %r.faster,
            validity = %r.validity,
            "evaluated"
        );
        if r.validity == "invalid" {
            tracing::warn!(variant = %r.variant, backend = %r.backend, "timing invalid: {}", r.invalid_reason);
        }
    }
    output.notes.extend(outcome.notes);
    output.records = outcome.records;
    Ok(output)
}

/// The baseline's name and the forms to time for a variant's speedup check; `None`
/// for a model trained from scratch; a note when the check cannot be made.
fn speedup_forms(
    ctx: &StageContext<'_>,
    input: &StageInput,
    v: &VariantOut,
) -> Result<Option<(String, Vec<FormSpec>)>, String> {
    let Some(base_ref) = &v.meta.baseline else {
        // Models trained from scratch have no baseline; a compressed one without
        // lineage comes from a file written before slimbench recorded it.
        if !matches!(v.meta.technique.as_str(), "baseline" | "student-alone") {
            return Err(format!(
                "{}: speedup not checked: its file does not record the model it was compressed from \
                 (written by an older slimbench; rerun its stage with --force)",
                v.name
            ));
        }
        return Ok(None);
    };
    // The baseline may be any need of this stage, evaluated or not.
    let baseline = ctx
        .inputs
        .iter()
        .filter(|s| s.id == base_ref.stage)
        .find_map(|s| s.manifest.variants.iter().find(|b| b.name == base_ref.variant).map(|b| (s, b)));
    let Some((base_input, base)) = baseline else {
        return Err(format!(
            "{}: speedup not checked: its baseline `{}` (stage `{}`) is not among the inputs of `{}`; \
             add `{}` to its needs",
            v.name, base_ref.variant, base_ref.stage, ctx.stage.id, base_ref.stage
        ));
    };
    let paths = Paths {
        baseline: base_input.variant_path(base),
        stored: input.variant_path(v),
        simulated: v.simulated.as_ref().map(|s| input.dir.join(&s.file)),
    };
    Ok(Some((base.name.clone(), forms(v, &paths))))
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
fn forms(v: &VariantOut, paths: &Paths) -> Vec<FormSpec> {
    let mut forms = vec![FormSpec {
        form: Form::Baseline,
        file: paths.baseline.clone(),
        kernel: None,
        what: "the model it was compressed from".into(),
    }];
    if let (Some(SimulatedForm { kernel, what, .. }), Some(file)) = (&v.simulated, &paths.simulated) {
        forms.push(FormSpec {
            form: Form::Simulated,
            file: file.clone(),
            kernel: *kernel,
            what: what.clone(),
        });
    }
    if !v.simulated_is_stored() {
        forms.push(FormSpec {
            form: Form::Materialized,
            file: paths.stored.clone(),
            kernel: None,
            what: format!("as stored: {} weights on {}", v.meta.precision.as_str(), v.meta.kernel.describe()),
        });
    }
    forms
}
