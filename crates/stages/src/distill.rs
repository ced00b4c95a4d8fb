//! `distill`: a student trained on a frozen teacher's soft targets, and the same
//! student trained alone with the same budget (same initial weights, same batches).

use slimbench_compress::distill::Distillation;
use slimbench_core::artifact::{BaselineRef, ModelMeta};
use slimbench_core::config::{DistillParams, OptimSettings};
use slimbench_models::Model;
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use slimbench_train::{CrossEntropy, train};

use crate::common::{Saved, dataset, io_of, load_fp32, loop_config, save_variant, single_input};
use crate::{StageError, TorchRunner};

pub fn run(runner: &TorchRunner, ctx: &StageContext<'_>, p: &DistillParams) -> Result<StageOutput, BoxError> {
    let (input, v) = single_input(ctx, p.teacher.as_deref())?;
    let (mut teacher, teacher_meta) = load_fp32(runner, input, v)?;
    teacher.freeze();
    let ds_name = p.dataset.clone().unwrap_or_else(|| teacher_meta.dataset.clone());
    let ds = dataset(ctx, &ds_name)?;
    let io = io_of(&ds);
    if io != teacher_meta.io {
        return Err(StageError::Input(format!(
            "teacher `{}` was built for {:?}, dataset `{ds_name}` gives {io:?}",
            input.id, teacher_meta.io
        ))
        .into());
    }
    let seed = p.seed.unwrap_or(ctx.plan.defaults.seed);
    let config = &ctx.plan.models[&p.student];
    let optim = OptimSettings {
        optimizer: p.optimizer,
        lr: p.lr,
        momentum: 0.0,
        weight_decay: 0.0,
        batch_size: p.batch_size,
    };
    let cfg =
        |variant: String| loop_config(ctx, variant, p.epochs, optim.clone(), p.seed, p.workers, p.log_every);
    // The distilled student is measured against its teacher (not a compressed form of
    // it, which the speedup check says); the student-alone control has no lineage.
    let teacher_ref = teacher_meta.baseline.clone();
    let meta = |technique: &str, baseline: Option<BaselineRef>| ModelMeta {
        optim: Some(optim.clone()),
        baseline,
        ..ModelMeta::new(&p.student, config.clone(), io, &ds_name, technique)
    };

    let mut student = Model::build(&p.student, config, io, runner.device, Some(seed))?;
    // The baseline starts from the very same weights.
    let mut alone = student.try_clone()?;
    let mut output = StageOutput::default();

    let name = ctx.stage.id.clone();
    let mut objective = Distillation { teacher: &teacher, temperature: p.temperature, alpha: p.alpha };
    let out =
        train(&mut student, &ds.train, &ds.test, &cfg(name.clone()), &mut objective, None, ctx.progress)?;
    output.records.curves.extend(out.curves);
    let distilled_acc = out.test_accuracy;
    output.variants.push(save_variant(
        ctx,
        &student,
        meta("distill-response", teacher_ref.clone()),
        Saved {
            name: name.clone(),
            file: "student.safetensors",
            primary: true,
            train_time_s: out.train_time_s,
            encoding: Encoding::Dense,
        },
    )?);

    if p.baseline {
        let base_name = format!("{name}/student-alone");
        let out = train(
            &mut alone,
            &ds.train,
            &ds.test,
            &cfg(base_name.clone()),
            &mut CrossEntropy,
            None,
            ctx.progress,
        )?;
        output.records.curves.extend(out.curves);
        output.notes.push(format!(
            "{name}: distilled student {:.4} vs student alone {:.4} ({:+.2} points) after {} epoch(s), T={}, alpha={}",
            distilled_acc,
            out.test_accuracy,
            (distilled_acc - out.test_accuracy) * 100.0,
            p.epochs,
            p.temperature,
            p.alpha
        ));
        output.variants.push(save_variant(
            ctx,
            &alone,
            meta("student-alone", None),
            Saved {
                name: base_name,
                file: "baseline.safetensors",
                primary: false,
                train_time_s: out.train_time_s,
                encoding: Encoding::Dense,
            },
        )?);
    }
    Ok(output)
}
