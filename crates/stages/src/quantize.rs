//! `quantize`: reduced-precision weights.

use slimbench_core::config::{QuantMethod, QuantizeParams};
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
    let precision = slimbench_compress::quantize::convert(&mut model, p.method);
    meta.precision = precision;
    meta.compute = p.compute;
    meta.technique = match p.method {
        QuantMethod::Fp16 => "fp16",
        QuantMethod::Bf16 => "bf16",
    }
    .into();
    let variant = save_variant(ctx, &model, meta, Saved::main(ctx, 0.0, Encoding::Dense))?;
    Ok(StageOutput { variants: vec![variant], ..Default::default() })
}
