//! Model files: safetensors with slimbench's metadata in the header.
//!
//! Header metadata: `slimbench.meta` (the [`ModelMeta`] as JSON) and
//! `slimbench.sparse` (JSON map: tensor name -> shape, for sparse-encoded tensors).
//! Each tensor is stored at the model's precision either dense (`<name>`) or, when that
//! is smaller, as `<name>.__mask` (one bit per element, least significant bit first)
//! plus `<name>.__values` (the non-zero elements in order). A model with 90% of its
//! weights pruned therefore takes about 1/8 + 1/10 of its dense size.
//!
//! An int8 model ([`Precision::Int8`]) stores each quantized weight as `<name>.__int8`
//! (int8, symmetric) plus `<name>.__scale` (one fp32 scale per output channel, or one
//! for the tensor), listed in `slimbench.int8`: the linear weights, and the
//! convolution weights too for a statically quantized model (one with
//! [`ModelMeta::static_quant`]); layers the metadata keeps in fp32, biases and
//! everything else stay fp32. Loading gives the dequantized fp32 weights, which
//! quantize back to exactly the stored integers when the model is put on its int8
//! kernels (the largest magnitude of each channel is stored as exactly +-127).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use slimbench_core::artifact::{ModelMeta, Precision};
use slimbench_core::fsutil;
use slimbench_torch_ext::quantized::quantize_weight_with;
use tch::{Device, Kind, Tensor};

use crate::{Model, ModelError};

const META_KEY: &str = "slimbench.meta";
const SPARSE_KEY: &str = "slimbench.sparse";
const MASK: &str = ".__mask";
const VALUES: &str = ".__values";
const INT8_KEY: &str = "slimbench.int8";
const INT8: &str = ".__int8";
const SCALE: &str = ".__scale";

/// How the tensors of a file are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Every tensor dense.
    Dense,
    /// Each tensor dense or bitmask + values, whichever is smaller.
    Sparse,
}

/// libtorch kind of a precision.
pub fn kind_of(p: Precision) -> Kind {
    match p {
        Precision::Fp32 => Kind::Float,
        Precision::Fp16 => Kind::Half,
        Precision::Bf16 => Kind::BFloat16,
        Precision::Int8 => Kind::Float,
    }
}

fn dtype_of(k: Kind) -> Result<Dtype, String> {
    Ok(match k {
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        other => return Err(format!("cannot store tensors of kind {other:?}")),
    })
}

fn kind_of_dtype(d: Dtype) -> Result<Kind, String> {
    Ok(match d {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        other => return Err(format!("unsupported tensor dtype {other:?}")),
    })
}

/// Raw little-endian bytes of a tensor (moved to the CPU, made contiguous).
fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    let t = t.detach().to_device(Device::Cpu).contiguous();
    let mut buf = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut buf, t.numel());
    buf
}

/// Whether an IEEE float element (of `size` bytes, little endian) is +0 or -0.
fn is_zero(elem: &[u8]) -> bool {
    let (last, rest) = elem.split_last().expect("elements are not empty");
    last & 0x7f == 0 && rest.iter().all(|&b| b == 0)
}

/// Whether the tensor `name` of an int8 model is stored as int8: a linear weight, or a
/// convolution weight of a statically quantized model, of a layer not kept in fp32.
pub(crate) fn stored_int8(meta: &ModelMeta, name: &str, t: &Tensor) -> bool {
    let Some(layer) = name.strip_suffix(".weight") else { return false };
    let layer = layer.strip_suffix(".lr_in").or_else(|| layer.strip_suffix(".lr_out")).unwrap_or(layer);
    meta.precision == Precision::Int8
        && !meta.keeps_fp32(layer)
        && (t.dim() == 2 || (t.dim() == 4 && meta.static_quant.is_some()))
}

/// Save `model` with `meta` to `path` (atomically); returns the file size in bytes.
pub fn save(model: &Model, meta: &ModelMeta, path: &Path, encoding: Encoding) -> Result<u64, ModelError> {
    let fmt_err = |msg: String| ModelError::Format { path: path.display().to_string(), msg };
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut sparse: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut int8: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let per_channel = meta.static_quant.as_ref().is_none_or(|s| s.per_channel);
    for (name, t) in model.named() {
        if stored_int8(meta, &name, &t) {
            let q = tch::no_grad(|| quantize_weight_with(&t.detach(), per_channel))
                .map_err(|e| fmt_err(format!("{name}: {e}")))?;
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let scales = if per_channel {
                q.q_per_channel_scales().to_kind(Kind::Float)
            } else {
                Tensor::from_slice(&[q.q_scale() as f32])
            };
            let n_scales = scales.numel();
            owned.push((format!("{name}{INT8}"), Dtype::I8, shape.clone(), tensor_bytes(&q.int_repr())));
            owned.push((format!("{name}{SCALE}"), Dtype::F32, vec![n_scales], tensor_bytes(&scales)));
            int8.insert(name, shape);
            continue;
        }
        let dtype = dtype_of(t.kind()).map_err(fmt_err)?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let bytes = tensor_bytes(&t);
        let es = t.kind().elt_size_in_bytes();
        let n = t.numel();
        if encoding == Encoding::Sparse {
            let mut mask = vec![0u8; n.div_ceil(8)];
            let mut values = Vec::new();
            for (i, elem) in bytes.chunks_exact(es).enumerate() {
                if !is_zero(elem) {
                    mask[i / 8] |= 1 << (i % 8);
                    values.extend_from_slice(elem);
                }
            }
            if mask.len() + values.len() < bytes.len() {
                let nnz = values.len() / es;
                owned.push((format!("{name}{MASK}"), Dtype::U8, vec![mask.len()], mask));
                owned.push((format!("{name}{VALUES}"), dtype, vec![nnz], values));
                sparse.insert(name, shape);
                continue;
            }
        }
        owned.push((name, dtype, shape, bytes));
    }
    let views = owned
        .iter()
        .map(|(n, d, s, b)| {
            Ok((n.clone(), TensorView::new(*d, s.clone(), b).map_err(|e| fmt_err(e.to_string()))?))
        })
        .collect::<Result<Vec<_>, ModelError>>()?;
    let mut info = HashMap::new();
    // The graph goes with the weights when the config does not build it (a layer list
    // pruned, an imported file), so a file rebuilds the model it holds; a preset's
    // file stays as small as before graphs.
    let built = model.config.graph(model.io).ok();
    let graph = (built.as_ref() != Some(&model.graph)).then(|| model.graph.clone());
    let meta = ModelMeta { graph, ..meta.clone() };
    info.insert(META_KEY.to_string(), serde_json::to_string(&meta).expect("meta serializes"));
    if !sparse.is_empty() {
        info.insert(SPARSE_KEY.to_string(), serde_json::to_string(&sparse).expect("shapes serialize"));
    }
    if !int8.is_empty() {
        info.insert(INT8_KEY.to_string(), serde_json::to_string(&int8).expect("shapes serialize"));
    }
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| fmt_err(e.to_string()))?;
    fsutil::atomic_write(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// An int8 weight exactly as a file stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Weight {
    /// The weight's shape.
    pub shape: Vec<i64>,
    /// The integers, row-major.
    pub values: Vec<i8>,
    /// One fp32 scale per output channel, or one for the tensor.
    pub scales: Vec<f32>,
}

/// The int8 weights of a model file as stored (not dequantized), by parameter name;
/// empty for a file without any.
pub fn read_int8(path: &Path) -> Result<BTreeMap<String, Int8Weight>, ModelError> {
    let fmt_err = |msg: String| ModelError::Format { path: path.display().to_string(), msg };
    let bytes = std::fs::read(path).map_err(|e| fsutil::FsError::new("reading", path, e))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| fmt_err(format!("not a safetensors file: {e}")))?;
    let int8: BTreeMap<String, Vec<usize>> = match header.metadata().as_ref().and_then(|m| m.get(INT8_KEY)) {
        Some(s) => serde_json::from_str(s).map_err(|e| fmt_err(format!("bad int8 table: {e}")))?,
        None => return Ok(BTreeMap::new()),
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt_err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, shape) in int8 {
        let q = st.tensor(&format!("{name}{INT8}")).map_err(|e| fmt_err(format!("{name}: {e}")))?;
        let s = st.tensor(&format!("{name}{SCALE}")).map_err(|e| fmt_err(format!("{name}: {e}")))?;
        let n: usize = shape.iter().product();
        let scales_ok = shape.first().is_some_and(|&c| s.shape() == [c] || s.shape() == [1]);
        if q.dtype() != Dtype::I8 || s.dtype() != Dtype::F32 || q.data().len() != n || !scales_ok {
            return Err(fmt_err(format!("{name}: int8 weight or scales of the wrong type or shape")));
        }
        let scales =
            s.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        let values = q.data().iter().map(|&b| b as i8).collect();
        out.insert(name, Int8Weight { shape: shape.iter().map(|&d| d as i64).collect(), values, scales });
    }
    Ok(out)
}

/// Read only the metadata of a model file.
pub fn read_meta(path: &Path) -> Result<ModelMeta, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| fsutil::FsError::new("reading", path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| ModelError::Format {
        path: path.display().to_string(),
        msg: format!("not a safetensors file: {e}"),
    })?;
    parse_meta(path, header.metadata())
}

fn parse_meta(path: &Path, info: &Option<HashMap<String, String>>) -> Result<ModelMeta, ModelError> {
    let fmt_err = |msg: String| ModelError::Format { path: path.display().to_string(), msg };
    let text = info
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| fmt_err("no slimbench metadata: not a model written by slimbench".into()))?;
    serde_json::from_str(text).map_err(|e| fmt_err(format!("bad slimbench metadata: {e}")))
}

/// Load a model file onto `device`, at its stored precision.
pub fn load(path: &Path, device: Device) -> Result<(Model, ModelMeta), ModelError> {
    let fmt_err = |msg: String| ModelError::Format { path: path.display().to_string(), msg };
    let bytes = std::fs::read(path).map_err(|e| fsutil::FsError::new("reading", path, e))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| fmt_err(format!("not a safetensors file: {e}")))?;
    let meta = parse_meta(path, header.metadata())?;
    let sparse: BTreeMap<String, Vec<usize>> =
        match header.metadata().as_ref().and_then(|m| m.get(SPARSE_KEY)) {
            Some(s) => serde_json::from_str(s).map_err(|e| fmt_err(format!("bad sparse table: {e}")))?,
            None => BTreeMap::new(),
        };
    let int8: BTreeMap<String, Vec<usize>> = match header.metadata().as_ref().and_then(|m| m.get(INT8_KEY)) {
        Some(s) => serde_json::from_str(s).map_err(|e| fmt_err(format!("bad int8 table: {e}")))?,
        None => BTreeMap::new(),
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt_err(e.to_string()))?;
    let mut model = match &meta.graph {
        Some(g) => Model::from_graph(&meta.model, &meta.config, g.clone(), meta.io, Device::Cpu, None)?,
        None => Model::build(&meta.model, &meta.config, meta.io, Device::Cpu, None)?,
    };
    model.factor_shapes(&meta.factored)?;
    model.set_kind(kind_of(meta.precision));
    for (name, var) in model.named() {
        let src = match (sparse.get(&name), int8.get(&name)) {
            (_, Some(shape)) => {
                let q = st.tensor(&format!("{name}{INT8}")).map_err(|e| fmt_err(format!("{name}: {e}")))?;
                let s = st.tensor(&format!("{name}{SCALE}")).map_err(|e| fmt_err(format!("{name}: {e}")))?;
                let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                let scales_ok = s.shape() == [shape[0]] || s.shape() == [1];
                if q.dtype() != Dtype::I8 || s.dtype() != Dtype::F32 || !scales_ok || dims.is_empty() {
                    return Err(fmt_err(format!("{name}: int8 weight or scales of the wrong type or shape")));
                }
                let q = Tensor::f_from_data_size(q.data(), &dims, Kind::Int8)?;
                // One scale per output channel (or one in all), broadcast over the rest.
                let mut sdims = vec![s.shape()[0] as i64];
                sdims.resize(dims.len(), 1);
                let s = Tensor::f_from_data_size(s.data(), &sdims, Kind::Float)?;
                q.to_kind(Kind::Float) * s
            }
            (Some(shape), None) => {
                let mask =
                    st.tensor(&format!("{name}{MASK}")).map_err(|e| fmt_err(format!("{name}: {e}")))?;
                let values =
                    st.tensor(&format!("{name}{VALUES}")).map_err(|e| fmt_err(format!("{name}: {e}")))?;
                let kind = kind_of_dtype(values.dtype()).map_err(&fmt_err)?;
                let es = kind.elt_size_in_bytes();
                let n: usize = shape.iter().product();
                if mask.data().len() != n.div_ceil(8) {
                    return Err(fmt_err(format!(
                        "{name}: mask has {} bytes for {n} elements",
                        mask.data().len()
                    )));
                }
                let mut dense = vec![0u8; n * es];
                let mut vals = values.data().chunks_exact(es);
                for i in 0..n {
                    if mask.data()[i / 8] >> (i % 8) & 1 == 1 {
                        let v = vals
                            .next()
                            .ok_or_else(|| fmt_err(format!("{name}: fewer values than mask bits")))?;
                        dense[i * es..(i + 1) * es].copy_from_slice(v);
                    }
                }
                let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
                Tensor::f_from_data_size(&dense, &dims, kind)?
            }
            (None, None) => {
                let view = st.tensor(&name).map_err(|e| fmt_err(format!("{name}: {e}")))?;
                let kind = kind_of_dtype(view.dtype()).map_err(&fmt_err)?;
                let dims: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
                Tensor::f_from_data_size(view.data(), &dims, kind)?
            }
        };
        if src.size() != var.size() {
            return Err(fmt_err(format!(
                "{name}: shape {:?} in the file, {:?} in the model",
                src.size(),
                var.size()
            )));
        }
        tch::no_grad(|| var.shallow_clone().f_copy_(&src))?;
    }
    model.to_device(device);
    Ok((model, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::IoShape;
    use slimbench_core::config::{ModelConfig, SeedCnnConfig};

    fn seed() -> (Model, ModelMeta) {
        let config = ModelConfig::SeedCnn(SeedCnnConfig::default());
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let m = Model::build("seed-cnn", &config, io, Device::Cpu, Some(3)).unwrap();
        let meta = ModelMeta::new("seed-cnn", config.clone(), io, "mnist", "baseline");
        (m, meta)
    }

    #[test]
    fn dense_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let (m, meta) = seed();
        let p = dir.path().join("m.safetensors");
        let size = save(&m, &meta, &p, Encoding::Dense).unwrap();
        assert_eq!(size, std::fs::metadata(&p).unwrap().len());
        assert!(size > 20410 * 4 && size < 20410 * 4 + 2048, "{size}");
        let (back, meta2) = load(&p, Device::Cpu).unwrap();
        assert_eq!(meta2, meta);
        for ((n, a), (_, b)) in m.named().iter().zip(back.named()) {
            assert!(a.equal(&b), "{n}");
        }
    }

    #[test]
    fn half_precision_halves_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut m, mut meta) = seed();
        let full = save(&m, &meta, &dir.path().join("a.safetensors"), Encoding::Dense).unwrap();
        m.set_kind(Kind::Half);
        meta.precision = Precision::Fp16;
        let half = save(&m, &meta, &dir.path().join("b.safetensors"), Encoding::Dense).unwrap();
        assert!((half as f64) < 0.52 * full as f64, "{half} vs {full}");
        let (back, _) = load(&dir.path().join("b.safetensors"), Device::Cpu).unwrap();
        assert_eq!(back.kind(), Kind::Half);
    }

    #[test]
    fn sparse_file_shrinks_with_sparsity_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (m, meta) = seed();
        let dense = save(&m, &meta, &dir.path().join("d.safetensors"), Encoding::Dense).unwrap();
        // Zero 90% of each weight tensor (every element whose index is not a multiple of 10).
        tch::no_grad(|| {
            for (_, w) in m.prunable() {
                let keep = Tensor::arange(w.numel() as i64, (Kind::Int64, Device::Cpu)).remainder(10).eq(0);
                let mut w = w.shallow_clone();
                let _ = w.g_mul_(&keep.view(w.size().as_slice()).to_kind(Kind::Float));
            }
        });
        let p = dir.path().join("s.safetensors");
        let sparse = save(&m, &meta, &p, Encoding::Sparse).unwrap();
        assert!((sparse as f64) < 0.2 * dense as f64, "{sparse} vs {dense}");
        let (back, _) = load(&p, Device::Cpu).unwrap();
        for ((n, a), (_, b)) in m.named().iter().zip(back.named()) {
            assert!(a.equal(&b), "{n}");
        }
        assert!((back.sparsity() - 0.9).abs() < 0.01, "{}", back.sparsity());
    }

    #[test]
    fn int8_stores_linear_weights_in_a_quarter_and_loads_them_dequantized() {
        let dir = tempfile::tempdir().unwrap();
        let (m, mut meta) = seed();
        let full = save(&m, &meta, &dir.path().join("a.safetensors"), Encoding::Dense).unwrap();
        meta.precision = Precision::Int8;
        let p = dir.path().join("q.safetensors");
        let small = save(&m, &meta, &p, Encoding::Dense).unwrap();
        // The 20,280 dense weights take a byte each; conv weights and biases stay fp32.
        assert!((small as f64) < 0.28 * full as f64, "{small} vs {full}");
        let (back, _) = load(&p, Device::Cpu).unwrap();
        for ((n, a), (_, b)) in m.named().iter().zip(back.named()) {
            let err = (a - &b).abs().max().double_value(&[]);
            let amax = a.abs().max().double_value(&[]);
            if n == "fc.weight" {
                assert!(err > 0.0 && err <= amax / 127.0, "{n}: {err}");
            } else {
                assert!(a.equal(&b), "{n}");
            }
        }
    }

    #[test]
    fn factored_layers_round_trip_and_pack() {
        use slimbench_core::artifact::Kernel;
        use slimbench_core::config::MlpConfig;
        let dir = tempfile::tempdir().unwrap();
        let (_, mut meta) = seed();
        meta.config = ModelConfig::Mlp(MlpConfig { hidden: vec![64] });
        let mut m = Model::build("mlp", &meta.config, meta.io, Device::Cpu, Some(4)).unwrap();
        let opts = (Kind::Float, Device::Cpu);
        m.factorize("fc0", &(Tensor::randn([8, 784], opts) * 0.05), &(Tensor::randn([64, 8], opts) * 0.05))
            .unwrap();
        meta.factored = m.factored();
        let p = dir.path().join("f.safetensors");
        save(&m, &meta, &p, Encoding::Dense).unwrap();
        let (back, back_meta) = load(&p, Device::Cpu).unwrap();
        assert_eq!(back_meta.factored.get("fc0"), Some(&8));
        let x = Tensor::randn([3, 1, 28, 28], opts);
        assert!(back.forward(&x).equal(&m.forward(&x)));
        // Both layers (the factored one as its two factors) run on fbgemm once packed.
        assert_eq!(back.set_kernel(Kernel::Int8Dynamic, &back_meta).unwrap(), 2);
        let err = (back.forward(&x) - m.forward(&x)).abs().max().double_value(&[]);
        assert!(err > 0.0 && err < 0.05, "{err}");
        // A file claiming a factor the model does not have is an error.
        meta.factored.insert("fc9".into(), 2);
        save(&m, &meta, &p, Encoding::Dense).unwrap();
        assert!(load(&p, Device::Cpu).unwrap_err().to_string().contains("no linear layer `fc9`"));
    }

    #[test]
    fn foreign_and_truncated_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        std::fs::write(&p, b"hello").unwrap();
        assert!(load(&p, Device::Cpu).unwrap_err().to_string().contains("not a safetensors file"));
        let (m, meta) = seed();
        save(&m, &meta, &p, Encoding::Dense).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
        assert!(load(&p, Device::Cpu).is_err());
    }
}
