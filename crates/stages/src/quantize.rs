//! `quantize`: reduced-precision weights; int8 and fp16 layers on fbgemm (dynamic,
//! static post-training with calibration, quantization-aware training), optionally
//! fine-tuned and checked against a tolerable accuracy loss; CUDA's autocast, int8 and
//! fp8 matmuls (skipped, with a note, where the device lacks them).

use slimbench_compress::observe::{Calibration, calibrate};
use slimbench_compress::qat::FakeQuantTraining;
use slimbench_compress::quantize::{Fallback, accuracy_aware, convert, kernel_of, technique_of};
use slimbench_core::artifact::{Kernel, ModelMeta, SimulatedForm};
use slimbench_core::config::{QuantMethod, QuantizeParams};
use slimbench_data::Split;
use slimbench_models::Model;
use slimbench_models::runtime::device_name;
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};
use tch::{Device, Kind, Tensor};

use crate::TorchRunner;
use crate::common::{Finetune, Saved, dataset, load_fp32, save_variant, single_input};

/// Images per calibration forward pass.
const CALIBRATION_BATCH: usize = 256;

pub fn run(
    runner: &TorchRunner,
    ctx: &StageContext<'_>,
    p: &QuantizeParams,
) -> Result<StageOutput, BoxError> {
    let id = &ctx.stage.id;
    let method = p.method;
    if method.needs_cuda() && !runner.device.is_cuda() {
        return Ok(skipped(
            ctx,
            format!(
                "`{}` runs on CUDA only and this run is on {}",
                method.as_str(),
                device_name(runner.device)
            ),
        ));
    }
    let (input, v) = single_input(ctx, p.input.as_deref())?;
    let (mut model, mut meta) = load_fp32(runner, input, v)?;
    if let Err(why) = cuda_support(&model, method) {
        return Ok(skipped(ctx, why));
    }
    meta.compute = p.compute;
    meta.kernel = kernel_of(method);
    meta.technique = technique_of(method).into();
    let mut output = StageOutput::default();
    let ds_name = p.dataset.clone().unwrap_or_else(|| meta.dataset.clone());

    // The fp32 reference of the accuracy-aware search, before any training.
    let validation = match p.tolerable_loss {
        Some(_) => {
            let ds = dataset(ctx, &ds_name)?;
            let n = p.validation_samples().min(ds.train.len());
            let val = ds.train.slice(ds.train.len() - n, n);
            let acc = slimbench_eval::accuracy(&model, &val, 1000).accuracy;
            Some((val, acc))
        }
        None => None,
    };

    // Training with the quantization simulated (fine-tuning, or QAT), at a tenth of the
    // model's learning rate unless the stage gives one, and never on the images the
    // accuracy-aware search measures on.
    let lr = p.lr.or_else(|| meta.optim.as_ref().map(|o| o.lr / 10.0)).or(Some(1e-4));
    let ft = |epochs: u32| Finetune {
        epochs,
        optimizer: p.optimizer,
        lr,
        batch_size: p.batch_size,
        dataset: Some(&ds_name),
        seed: p.seed,
        workers: p.workers,
        log_every: p.log_every,
        holdout: validation.as_ref().map_or(0, |(val, _)| val.len()),
    };
    let mut train_time_s = 0.0;
    let mut train = |model: &mut Model,
                     meta: &mut ModelMeta,
                     output: &mut StageOutput,
                     epochs: u32,
                     objective: &mut FakeQuantTraining| {
        let ft = ft(epochs);
        meta.optim = Some(ft.optim(meta));
        if let Some(out) = ft.run_with(ctx, model, meta, objective, None)? {
            train_time_s += out.train_time_s;
            output.records.curves.extend(out.curves);
        }
        Ok::<_, BoxError>(())
    };

    match method {
        QuantMethod::Int8Dynamic if p.finetune_epochs > 0 => {
            let mut objective = FakeQuantTraining::weights_only(&model);
            train(&mut model, &mut meta, &mut output, p.finetune_epochs, &mut objective)?;
            output.notes.push(format!(
                "{id}: fine-tuned {} epoch(s) with fake-quantized int8 linear weights",
                p.finetune_epochs
            ));
        }
        QuantMethod::Int8Static | QuantMethod::Qat => {
            let ds = dataset(ctx, &ds_name)?;
            if !model.norms().is_empty() {
                let (folded, n) = model.fold_batch_norms()?;
                model = folded;
                output.notes.push(format!("{id}: {n} batch norm(s) folded into the convolution before each"));
            }
            // What fbgemm has no int8 kernel for runs in fp32 between a dequantize and a
            // requantize at its calibrated point: said, by kind.
            let mut fp32_kinds: Vec<&str> = model
                .graph
                .nodes
                .iter()
                .filter(|n| {
                    matches!(
                        n.op,
                        slimbench_graph::Op::BatchNorm { .. }
                            | slimbench_graph::Op::Concat
                            | slimbench_graph::Op::Subsample { .. }
                            | slimbench_graph::Op::PadChannels { .. }
                    ) || matches!(n.op, slimbench_graph::Op::Act { f } if f != slimbench_graph::Activation::Relu)
                })
                .map(|n| n.op.kind())
                .collect();
            fp32_kinds.sort();
            fp32_kinds.dedup();
            if !fp32_kinds.is_empty() {
                output.notes.push(format!(
                    "{id}: no int8 kernel for {}: run in fp32 between a dequantize and a requantize",
                    fp32_kinds.join(", ")
                ));
            }
            let cal = Calibration {
                observer: p.observer(),
                percentile: p.percentile(),
                samples: p.calibration_samples(),
                batch_size: CALIBRATION_BATCH,
                per_channel: p.per_channel(),
                reduce_range: true,
            };
            let mut sq = calibrate(&model, &ds.train, &cal);
            output.notes.push(format!(
                "{id}: activations calibrated on {} training image(s) with the {} observer{}, weights {}",
                sq.calibration_samples,
                sq.observer,
                if cal.observer == slimbench_core::config::ObserverKind::Percentile {
                    format!(" ({}th percentile)", cal.percentile)
                } else {
                    String::new()
                },
                if sq.per_channel { "per output channel" } else { "per tensor" }
            ));
            if method == QuantMethod::Qat {
                let mut objective = FakeQuantTraining::qat(&model, &sq);
                train(&mut model, &mut meta, &mut output, p.qat_epochs(), &mut objective)?;
                sq = objective.static_quant().expect("QAT learns activation ranges");
                output.notes.push(format!(
                    "{id}: {} epoch(s) of quantization-aware training (fake-quantized weights and activations, \
                     moving-average ranges), then converted to int8",
                    p.qat_epochs()
                ));
            } else if p.finetune_epochs > 0 {
                let mut objective = FakeQuantTraining::frozen(&model, &sq);
                train(&mut model, &mut meta, &mut output, p.finetune_epochs, &mut objective)?;
                output.notes.push(format!(
                    "{id}: fine-tuned {} epoch(s) with the calibrated int8 grids held (fake quantization)",
                    p.finetune_epochs
                ));
            }
            meta.static_quant = Some(sq);
        }
        _ => {}
    }

    if let (Some(tol), Some((val, reference))) = (p.tolerable_loss, &validation) {
        let f = search(&model, &meta, val, *reference, tol)?;
        output.notes.push(fallback_note(id, &f, *reference, tol, val.len()));
        meta.fp32_layers = f.layers;
    }

    let precision = convert(&mut model, method);
    meta.precision = precision;
    let kernel = meta.kernel;
    if kernel != Kernel::Dense {
        // What runs where, said where the report can show it.
        let convs = model.convs().len();
        let kept = if kernel.linear_only() && convs > 0 {
            format!("; {convs} convolution(s) kept in fp32")
        } else {
            String::new()
        };
        let layers = if kernel.linear_only() { "linear layers" } else { "layers" };
        output.notes.push(format!("{id}: {layers} on {}{kept}", kernel.describe()));
    }
    let mut variant = save_variant(ctx, &model, meta, Saved::main(ctx, train_time_s, Encoding::Dense))?;
    // The simulated form: the same file, computing the rounding in fp32.
    let simulated = match kernel {
        Kernel::Int8Static => {
            Some((Kernel::FakeQuant, "int8 weights and activations fake-quantized in fp32"))
        }
        Kernel::Int8Dynamic | Kernel::Fp16Dynamic | Kernel::Int8Mm | Kernel::Fp8 => {
            Some((Kernel::Dense, "weights dequantized, fp32 arithmetic (weight-only fake quantization)"))
        }
        _ => None,
    };
    if let Some((k, what)) = simulated {
        let what = format!("{} {what}", precision.as_str());
        let form = SimulatedForm::on_kernel(&variant.file, k, what);
        variant = variant.with_simulated(form);
    }
    output.variants.push(variant);
    Ok(output)
}

/// A stage that produced nothing, and says why.
fn skipped(ctx: &StageContext<'_>, why: String) -> StageOutput {
    tracing::warn!(stage = %ctx.stage.id, "skipped: {why}");
    StageOutput { notes: vec![format!("{}: skipped: {why}", ctx.stage.id)], ..Default::default() }
}

/// Whether this device runs a CUDA method's kernel: a small layer is tried, and
/// libtorch's refusal becomes the reason.
fn cuda_support(model: &Model, method: QuantMethod) -> Result<(), String> {
    if !method.needs_cuda() {
        return Ok(());
    }
    let device = model.device();
    let x = Tensor::rand([32, 64], (Kind::Float, device));
    let w = Tensor::rand([32, 64], (Kind::Float, device));
    let tried = match method {
        QuantMethod::Int8Mm => slimbench_models::cuda_linear::Int8MmLinear::new(&w, None)
            .and_then(|l| l.forward(&x))
            .map(|_| ())
            .map_err(|e| e.to_string()),
        QuantMethod::Fp8 => slimbench_models::cuda_linear::Fp8Linear::new(&w, None)
            .and_then(|l| l.forward(&x))
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => {
            let kind = if method == QuantMethod::AmpBf16 { Kind::BFloat16 } else { Kind::Half };
            x.f_to_kind(kind)
                .and_then(|x| x.f_matmul(&w.to_kind(kind).tr()))
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    tried.map_err(|e| {
        let first = e.lines().next().unwrap_or("").trim().to_string();
        format!("`{}` is not supported on {}: {first}", method.as_str(), device_name(device))
    })
}

/// The accuracy-aware search on `val`, on the CPU kernels the model will run on.
fn search(
    model: &Model,
    meta: &ModelMeta,
    val: &Split,
    reference: f64,
    tol: f64,
) -> Result<Fallback, BoxError> {
    let layers: Vec<String> = if meta.kernel.linear_only() {
        model.dense_layers().iter().map(|d| d.name().to_string()).collect()
    } else {
        model.layer_names()
    };
    accuracy_aware(&layers, reference, tol, |fp32: &[String]| -> Result<f64, BoxError> {
        let candidate = ModelMeta { fp32_layers: fp32.to_vec(), ..meta.clone() };
        let mut m = model.try_clone()?;
        m.to_device(Device::Cpu);
        m.set_kernel(meta.kernel, &candidate)?;
        Ok(slimbench_eval::accuracy(&m, val, 1000).accuracy)
    })
}

fn fallback_note(id: &str, f: &Fallback, reference: f64, tol: f64, n: usize) -> String {
    let head = format!(
        "{id}: accuracy-aware quantization on {n} held-out training image(s): fp32 {reference:.4}, all int8 {:.4} \
         (tolerable loss {tol})",
        f.all_int8
    );
    if f.layers.is_empty() {
        return format!("{head}: every layer stays int8");
    }
    let sens =
        f.sensitivity.iter().map(|(l, g)| format!("{l} {:+.2}", g * 100.0)).collect::<Vec<_>>().join(", ");
    format!(
        "{head}; sensitivity (points regained in fp32): {sens}; kept in fp32: {} -> {:.4}{}",
        f.layers.join(", "),
        f.chosen,
        if f.met { "" } else { " (tolerance not met even so)" }
    )
}
