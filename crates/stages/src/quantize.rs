//! `quantize`: reduced-precision weights, and int8/fp16 linear layers on fbgemm.

use slimbench_compress::quantize::{convert, kernel_of, technique_of};
use slimbench_core::artifact::{Kernel, SimulatedForm};
use slimbench_core::config::QuantizeParams;
use slimbench_models::store::Encoding;
use slimbench_pipeline::executor::{BoxError, StageContext, StageOutput};

use crate::TorchRunner;
use crate::common::{Saved, load_fp32, save_variant, single_input};

pub fn run(
    runner: &TorchRunner,
    ctx: &StageContext<'_>,
    p: &QuantizeParams,
) -> Result<StageOutput, BoxError> {
    let (input, v) = single_input(ctx, p.input.as_deref())?;
    let (mut model, mut meta) = load_fp32(runner, input, v)?;
    let precision = convert(&mut model, p.method);
    meta.precision = precision;
    meta.compute = p.compute;
    meta.kernel = kernel_of(p.method);
    meta.technique = technique_of(p.method).into();
    let mut notes = Vec::new();
    if meta.kernel != Kernel::Dense {
        // What fbgemm runs and what it does not, said where the report can show it.
        let convs = model.named().iter().filter(|(n, t)| n.ends_with(".weight") && t.dim() == 4).count();
        notes.push(format!(
            "{}: linear layers on {}{}",
            ctx.stage.id,
            meta.kernel.describe(),
            if convs > 0 { format!("; {convs} convolution(s) kept in fp32") } else { String::new() }
        ));
    }
    let kernel = meta.kernel;
    let mut variant = save_variant(ctx, &model, meta, Saved::main(ctx, 0.0, Encoding::Dense))?;
    if kernel != Kernel::Dense {
        // The same file on dense kernels: dequantized weights in fp32 arithmetic, which
        // is what fake quantization computes.
        let what = format!("{} weights dequantized, fp32 arithmetic (fake quantization)", precision.as_str());
        let form = SimulatedForm::on_kernel(&variant.file, Kernel::Dense, what);
        variant = variant.with_simulated(form);
    }
    Ok(StageOutput { variants: vec![variant], notes, ..Default::default() })
}
