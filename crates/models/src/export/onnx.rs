//! A model to ONNX: its graph and stored weights handed to `slimbench-onnx`'s writer.

use std::collections::BTreeMap;
use std::path::Path;

use slimbench_core::artifact::{Kernel, ModelMeta, Precision};
use slimbench_core::config::ComputeMode;
use slimbench_onnx::{ActQuant, ExportOptions, Quantization, StaticSpec, Weight, WeightData};
use slimbench_torch_ext::quantized::quantize_weight_with;
use tch::{Kind, Tensor};

use super::{ExportError, NOTES_KEY, common_notes};
use crate::Model;
use crate::store::{Int8Weight, stored_int8};

/// The ONNX file of `model` (as loaded from a file with `meta`) and notes about it.
/// Its int8 weights are taken from the model's dequantized weights, which quantize back
/// to exactly the integers the file stores (their largest magnitude per channel is
/// stored as +-127); the scales are recomputed from them as slimbench's int8 kernels do
/// (`ensure` uses the file's own scales, which may differ in the last bit).
pub fn onnx_bytes(model: &Model, meta: &ModelMeta) -> Result<(Vec<u8>, Vec<String>), ExportError> {
    write(model, meta, None, &format!("model `{}`", model.name))
}

/// The ONNX bytes and notes; int8 weights from `exact` (the file's) where given.
pub(super) fn write(
    model: &Model,
    meta: &ModelMeta,
    exact: Option<&BTreeMap<String, Int8Weight>>,
    origin: &str,
) -> Result<(Vec<u8>, Vec<String>), ExportError> {
    let unsupported = |msg: String| ExportError::Unsupported { file: origin.to_string(), msg };
    let weights = weights(model, meta, exact).map_err(unsupported)?;
    let quant = match meta.kernel {
        Kernel::Int8Static | Kernel::FakeQuant => {
            let sq = meta.static_quant.as_ref().ok_or_else(|| {
                unsupported(format!(
                    "it runs on {} but has no calibrated activations (static_quant) in its metadata",
                    meta.kernel.describe()
                ))
            })?;
            Quantization::Static(StaticSpec {
                activations: sq
                    .activations
                    .iter()
                    .map(|(k, q)| (k.clone(), ActQuant { scale: q.scale, zero_point: q.zero_point }))
                    .collect(),
                reduce_range: sq.reduce_range,
                // fp32, as fbgemm adds them (ONNX Runtime 1.31 fuses the layers all the same).
                int32_bias: false,
            })
        }
        // fbgemm's dynamic kernel quantizes activations to 7 bits (`PackedLinear::int8`).
        Kernel::Int8Dynamic => Quantization::Dynamic { reduce_range: true },
        _ => Quantization::WeightOnly,
    };
    let mut notes = kernel_notes(meta);
    notes.extend(common_notes(meta));
    let opts = ExportOptions {
        name: meta.model.clone(),
        producer_version: slimbench_core::TOOL_VERSION.to_string(),
        metadata: Vec::new(),
    };
    let written = slimbench_onnx::export(&model.graph, &weights, &quant, &opts)
        .map_err(|source| ExportError::Onnx { file: origin.to_string(), source })?;
    let mut all = written.notes.clone();
    all.extend(notes);
    let mut model_proto = written.model;
    let meta_props = [
        ("slimbench.model", meta.model.clone()),
        ("slimbench.technique", meta.technique.clone()),
        ("slimbench.precision", meta.precision.as_str().to_string()),
        ("slimbench.kernel", serde_json::to_value(meta.kernel).map(|v| v.to_string()).unwrap_or_default()),
        ("slimbench.dataset", meta.dataset.clone()),
        (NOTES_KEY, serde_json::to_string(&all).expect("strings serialize")),
    ];
    model_proto.metadata_props = meta_props
        .into_iter()
        .map(|(k, v)| onnx_protobuf::StringStringEntryProto { key: k.into(), value: v, ..Default::default() })
        .collect();
    let bytes = onnx_protobuf::Message::write_to_bytes(&model_proto).expect("an in-memory model serializes");
    Ok((bytes, all))
}

/// The notes stored in an exported ONNX file, if it has them.
pub(super) fn notes_in(path: &Path) -> Option<Vec<String>> {
    use onnx_protobuf::Message;
    let bytes = std::fs::read(path).ok()?;
    let model = onnx_protobuf::ModelProto::parse_from_bytes(&bytes).ok()?;
    let text = model.metadata_props.iter().find(|p| p.key == NOTES_KEY)?;
    serde_json::from_str(&text.value).ok()
}

/// What the ONNX form of this kernel computes, where it differs from slimbench's run.
fn kernel_notes(meta: &ModelMeta) -> Vec<String> {
    let mut notes = Vec::new();
    match meta.kernel {
        Kernel::Int8Static | Kernel::FakeQuant => {
            if let Some(sq) = &meta.static_quant {
                notes.push(format!(
                    "int8 weights {}, uint8 activations at {} calibrated grids ({}{})",
                    if sq.per_channel {
                        "per output channel (DequantizeLinear axis 0)"
                    } else {
                        "per tensor"
                    },
                    sq.activations.len(),
                    sq.observer,
                    if sq.reduce_range { ", 7-bit ranges: reduce_range" } else { "" }
                ));
            }
        }
        Kernel::Int8Dynamic => notes.push("int8 weights per output channel".into()),
        _ => {}
    }
    if matches!(meta.precision, Precision::Fp16 | Precision::Bf16)
        && meta.compute == ComputeMode::Native
        && !meta.kernel.cuda_only()
    {
        notes.push(format!(
            "`compute: native` asked for {} arithmetic; the file computes in fp32 after the Cast",
            meta.precision.as_str()
        ));
    }
    notes
}

/// Every parameter of the model as the writer takes it: fp32, the stored half bits,
/// or int8 (the file's own integers and scales when `exact` has them).
fn weights(
    model: &Model,
    meta: &ModelMeta,
    exact: Option<&BTreeMap<String, Int8Weight>>,
) -> Result<Vec<Weight>, String> {
    let per_channel = meta.static_quant.as_ref().is_none_or(|s| s.per_channel);
    let _guard = tch::no_grad_guard();
    let mut out = Vec::new();
    for (name, t) in model.named() {
        let t = t.detach().to_device(tch::Device::Cpu).contiguous();
        let shape = t.size();
        let data = if let Some(w) = exact.and_then(|e| e.get(&name)) {
            if w.shape != shape {
                return Err(format!("{name}: int8 shape {:?} in the file, {shape:?} in the model", w.shape));
            }
            WeightData::Int8 { values: w.values.clone(), scales: w.scales.clone() }
        } else if stored_int8(meta, &name, &t) {
            let q = quantize_weight_with(&t, per_channel).map_err(|e| format!("{name}: {e}"))?;
            let scales = if per_channel && t.dim() > 1 {
                Vec::<f64>::try_from(q.q_per_channel_scales()).map_err(|e| format!("{name}: {e}"))?
            } else {
                vec![q.q_scale()]
            };
            let values = bytes(&q.int_repr()).into_iter().map(|b| b as i8).collect();
            WeightData::Int8 { values, scales: scales.into_iter().map(|s| s as f32).collect() }
        } else {
            match t.kind() {
                Kind::Float => WeightData::F32(f32s(&t).map_err(|e| format!("{name}: {e}"))?),
                Kind::Half => WeightData::F16(halves(&t)),
                Kind::BFloat16 => WeightData::Bf16(halves(&t)),
                other => return Err(format!("{name}: weights of kind {other:?} cannot be exported")),
            }
        };
        out.push(Weight { name, shape, data });
    }
    Ok(out)
}

/// The raw bytes of a CPU tensor.
fn bytes(t: &Tensor) -> Vec<u8> {
    let t = t.contiguous();
    let mut buf = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut buf, t.numel());
    buf
}

fn f32s(t: &Tensor) -> Result<Vec<f32>, tch::TchError> {
    Vec::<f32>::try_from(t.flatten(0, -1))
}

/// The bits of a half-precision tensor.
fn halves(t: &Tensor) -> Vec<u16> {
    bytes(t).chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect()
}

/// [`weights`] for the tests.
#[cfg(test)]
pub(super) fn weights_for_test(
    model: &Model,
    meta: &ModelMeta,
    exact: Option<&BTreeMap<String, Int8Weight>>,
) -> Vec<Weight> {
    weights(model, meta, exact).unwrap()
}
