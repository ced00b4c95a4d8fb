//! `distill`: a student trained from a frozen teacher (response-based soft targets,
//! FitNets feature hints then soft targets, or similarity-preserving relations plus soft
//! targets), and the same student trained alone with the same budget (same initial
//! weights, same batches, the hint stage's epochs included).

use slimbench_compress::distill::{Distillation, Hint, Regressor, Relation, default_point, feature_shape};
use slimbench_core::artifact::{BaselineRef, ModelMeta};
use slimbench_core::config::{DistillKind, DistillParams, OptimSettings};
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
        schedule: p.lr_schedule,
    };
    let cfg = |variant: String, epochs: u32| {
        loop_config(ctx, variant, epochs, optim.clone(), p.seed, p.workers, p.log_every)
    };
    // The distilled student is measured against its teacher (not a compressed form of
    // it, which the speedup check says); the student-alone control has no lineage.
    let teacher_ref = teacher_meta.baseline.clone();
    let meta = |technique: &str, baseline: Option<BaselineRef>| ModelMeta {
        optim: Some(optim.clone()),
        baseline,
        ..ModelMeta::new(&p.student, config.clone(), io, &ds_name, technique)
    };

    let mut student = Model::build(&p.student, config, io, runner.device, Some(seed))?;
    // The baseline starts from the very same weights; the teacher must end as it began.
    let mut alone = student.try_clone()?;
    let teacher_before = teacher.try_clone()?;
    let mut output = StageOutput::default();
    let name = ctx.stage.id.clone();
    let response = Distillation { teacher: &teacher, temperature: p.temperature, alpha: p.alpha };

    // Feature and relation distillation work on activation points of both models.
    let points =
        |model: &Model, chosen: &Option<String>, field: &str| -> Result<(String, Vec<i64>), StageError> {
            let point = chosen.clone().unwrap_or_else(|| default_point(model));
            let shape = feature_shape(model, &point)
                .map_err(|e| StageError::Input(format!("stage `{name}`: with.{field}: {e}")))?;
            Ok((point, shape))
        };
    let mut how = format!("T={}, alpha={}", p.temperature, p.alpha);
    let mut train_time_s = 0.0;
    let out = match p.kind {
        DistillKind::Response => {
            let mut objective = response;
            train(
                &mut student,
                &ds.train,
                &ds.test,
                &cfg(name.clone(), p.epochs),
                &mut objective,
                None,
                ctx.progress,
            )?
        }
        DistillKind::Feature => {
            let (sp, s_shape) = points(&student, &p.student_layer, "student_layer")?;
            let (tp, t_shape) = points(&teacher, &p.teacher_layer, "teacher_layer")?;
            let regressor = Regressor::new(&s_shape, &t_shape, runner.device, seed);
            let mut hint =
                Hint { teacher: &teacher, student_point: sp.clone(), teacher_point: tp.clone(), regressor };
            let hint_cfg = cfg(format!("{name}/hint"), p.hint_epochs());
            let h = train(&mut student, &ds.train, &ds.test, &hint_cfg, &mut hint, None, ctx.progress)?;
            train_time_s += h.train_time_s;
            output.records.curves.extend(h.curves);
            how = format!(
                "hints: {} epoch(s) regressing student `{sp}` {s_shape:?} onto teacher `{tp}` {t_shape:?}, then {how}",
                p.hint_epochs()
            );
            let mut objective = response;
            train(
                &mut student,
                &ds.train,
                &ds.test,
                &cfg(name.clone(), p.epochs),
                &mut objective,
                None,
                ctx.progress,
            )?
        }
        DistillKind::Relation => {
            let (sp, _) = points(&student, &p.student_layer, "student_layer")?;
            let (tp, _) = points(&teacher, &p.teacher_layer, "teacher_layer")?;
            how = format!(
                "similarity-preserving between student `{sp}` and teacher `{tp}`, beta={}, {how}",
                p.beta()
            );
            let mut objective = Relation { response, beta: p.beta(), student_point: sp, teacher_point: tp };
            train(
                &mut student,
                &ds.train,
                &ds.test,
                &cfg(name.clone(), p.epochs),
                &mut objective,
                None,
                ctx.progress,
            )?
        }
    };
    train_time_s += out.train_time_s;
    output.records.curves.extend(out.curves);
    let distilled_acc = out.test_accuracy;
    // Frozen means frozen: a changed teacher would be a bug, not a result.
    let unchanged = teacher.named().iter().zip(teacher_before.named()).all(|((_, a), (_, b))| a.equal(&b));
    if !unchanged {
        return Err(StageError::Input(format!(
            "stage `{name}`: the teacher's weights changed during distillation"
        ))
        .into());
    }
    output.variants.push(save_variant(
        ctx,
        &student,
        meta(&format!("distill-{}", p.kind.as_str()), teacher_ref.clone()),
        Saved {
            name: name.clone(),
            file: "student.safetensors",
            primary: true,
            train_time_s,
            encoding: Encoding::Dense,
        },
    )?);

    if p.baseline {
        // The same budget: the hint stage's epochs too.
        let epochs = p.epochs + p.hint_epochs();
        let base_name = format!("{name}/student-alone");
        let out = train(
            &mut alone,
            &ds.train,
            &ds.test,
            &cfg(base_name.clone(), epochs),
            &mut CrossEntropy,
            None,
            ctx.progress,
        )?;
        output.records.curves.extend(out.curves);
        output.notes.push(format!(
            "{name}: distilled student {:.4} vs student alone {:.4} ({:+.2} points) after {} epoch(s), {} distillation ({how}); teacher weights unchanged",
            distilled_acc,
            out.test_accuracy,
            (distilled_acc - out.test_accuracy) * 100.0,
            epochs,
            p.kind.as_str(),
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
    } else {
        output.notes.push(format!(
            "{name}: distilled student {distilled_acc:.4} after {} epoch(s), {} distillation ({how}); teacher weights unchanged",
            p.epochs + p.hint_epochs(),
            p.kind.as_str()
        ));
    }
    Ok(output)
}
