//! Constant tensors: decoding `TensorProto`s (initializers, `Constant` nodes) into f32 or
//! i64 values, and the few operations exporters compute on constants (shape chains,
//! pad lists) that the importer folds statically.

use onnx_protobuf::TensorProto;

/// The batch size where a folded shape holds it (`Shape` of a runtime tensor): not a
/// number we know, so it may be moved around (gathered, concatenated) but not computed
/// with.
pub(crate) const BATCH: i64 = i64::MIN;

/// ONNX data types by their number (`TensorProto.DataType`).
pub(crate) mod dt {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
    pub const UINT64: i32 = 13;
    pub const BFLOAT16: i32 = 16;
}

/// A data type's name as ONNX spells it.
pub(crate) fn dtype_name(t: i32) -> &'static str {
    const NAMES: [&str; 24] = [
        "UNDEFINED",
        "FLOAT",
        "UINT8",
        "INT8",
        "UINT16",
        "INT16",
        "INT32",
        "INT64",
        "STRING",
        "BOOL",
        "FLOAT16",
        "DOUBLE",
        "UINT32",
        "UINT64",
        "COMPLEX64",
        "COMPLEX128",
        "BFLOAT16",
        "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ",
        "FLOAT8E5M2",
        "FLOAT8E5M2FNUZ",
        "UINT4",
        "INT4",
        "FLOAT4E2M1",
    ];
    usize::try_from(t).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or("unknown type")
}

/// Whether values of this type are floating point.
pub(crate) fn is_float(t: i32) -> bool {
    matches!(t, dt::FLOAT | dt::FLOAT16 | dt::DOUBLE | dt::BFLOAT16)
}

/// The values of a constant: floats (every float type, as f32) or integers (every
/// integer type and bool, as i64).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// Floating point values.
    F(Vec<f32>),
    /// Integer values.
    I(Vec<i64>),
}

/// A constant tensor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tensor {
    /// Its shape (empty for a scalar).
    pub dims: Vec<i64>,
    /// Its values, row-major.
    pub data: Data,
    /// The ONNX type it was stored as.
    pub dtype: i32,
}

fn chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N).map(|c| c.try_into().expect("chunks_exact"))
}

/// IEEE half to single precision.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}

impl Tensor {
    /// A float tensor.
    pub fn floats(dims: Vec<i64>, v: Vec<f32>) -> Tensor {
        Tensor { dims, data: Data::F(v), dtype: dt::FLOAT }
    }

    /// An int64 tensor.
    pub fn ints(dims: Vec<i64>, v: Vec<i64>) -> Tensor {
        Tensor { dims, data: Data::I(v), dtype: dt::INT64 }
    }

    /// Decodes a stored tensor.
    pub fn from_proto(t: &TensorProto) -> Result<Tensor, String> {
        use onnx_protobuf::tensor_proto::DataLocation;
        if t.data_location.enum_value() == Ok(DataLocation::EXTERNAL) || !t.external_data.is_empty() {
            return Err("its values are in an external data file, which slimbench does not read \
                 (hint: save the model with onnx.save(model, path, save_as_external_data=False))"
                .into());
        }
        if t.dims.iter().any(|&d| d < 0) {
            return Err(format!("it has a negative dimension ({:?})", t.dims));
        }
        let n = t.dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d)).ok_or("its shape overflows")?;
        let raw = &t.raw_data[..];
        let has_raw = !raw.is_empty();
        let ty = t.data_type;
        let data = match ty {
            dt::FLOAT if has_raw => Data::F(chunks::<4>(raw).map(f32::from_le_bytes).collect()),
            dt::FLOAT => Data::F(t.float_data.clone()),
            dt::DOUBLE if has_raw => {
                Data::F(chunks::<8>(raw).map(|b| f64::from_le_bytes(b) as f32).collect())
            }
            dt::DOUBLE => Data::F(t.double_data.iter().map(|&v| v as f32).collect()),
            dt::FLOAT16 | dt::BFLOAT16 => {
                let bits: Vec<u16> = if has_raw {
                    chunks::<2>(raw).map(u16::from_le_bytes).collect()
                } else {
                    t.int32_data.iter().map(|&v| v as u16).collect()
                };
                let conv = |b: u16| {
                    if ty == dt::FLOAT16 { f16_to_f32(b) } else { f32::from_bits(u32::from(b) << 16) }
                };
                Data::F(bits.into_iter().map(conv).collect())
            }
            dt::INT64 if has_raw => Data::I(chunks::<8>(raw).map(i64::from_le_bytes).collect()),
            dt::INT64 => Data::I(t.int64_data.clone()),
            dt::INT32 if has_raw => {
                Data::I(chunks::<4>(raw).map(|b| i64::from(i32::from_le_bytes(b))).collect())
            }
            dt::INT16 if has_raw => {
                Data::I(chunks::<2>(raw).map(|b| i64::from(i16::from_le_bytes(b))).collect())
            }
            dt::UINT16 if has_raw => {
                Data::I(chunks::<2>(raw).map(|b| i64::from(u16::from_le_bytes(b))).collect())
            }
            dt::INT8 if has_raw => Data::I(raw.iter().map(|&b| i64::from(b as i8)).collect()),
            dt::UINT8 | dt::BOOL if has_raw => Data::I(raw.iter().map(|&b| i64::from(b)).collect()),
            dt::INT32 | dt::INT16 | dt::UINT16 | dt::INT8 | dt::UINT8 | dt::BOOL => {
                Data::I(t.int32_data.iter().map(|&v| i64::from(v)).collect())
            }
            dt::UINT32 if has_raw => {
                Data::I(chunks::<4>(raw).map(|b| i64::from(u32::from_le_bytes(b))).collect())
            }
            dt::UINT64 if has_raw => {
                Data::I(chunks::<8>(raw).map(|b| u64::from_le_bytes(b) as i64).collect())
            }
            dt::UINT32 | dt::UINT64 => Data::I(t.uint64_data.iter().map(|&v| v as i64).collect()),
            _ => return Err(format!("it is of type {}, which slimbench cannot read", dtype_name(ty))),
        };
        let tensor = Tensor { dims: t.dims.clone(), data, dtype: ty };
        if tensor.len() as i64 != n {
            return Err(format!(
                "it holds {} values for shape {:?} ({n} expected): the file may be truncated",
                tensor.len(),
                t.dims
            ));
        }
        Ok(tensor)
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F(v) => v.len(),
            Data::I(v) => v.len(),
        }
    }

    /// Its values as integers (an error for floats).
    pub fn to_ints(&self) -> Result<Vec<i64>, String> {
        match &self.data {
            Data::I(v) => Ok(v.clone()),
            Data::F(_) => Err(format!("expected integers, got {}", dtype_name(self.dtype))),
        }
    }

    /// Its values as f64 (integers converted; the batch placeholder refused).
    pub fn to_f64(&self) -> Result<Vec<f64>, String> {
        match &self.data {
            Data::F(v) => Ok(v.iter().map(|&x| f64::from(x)).collect()),
            Data::I(v) if v.contains(&BATCH) => Err("it depends on the batch size".into()),
            Data::I(v) => Ok(v.iter().map(|&x| x as f64).collect()),
        }
    }

    /// Its single value, if it has exactly one.
    pub fn scalar(&self) -> Option<f64> {
        match self.to_f64() {
            Ok(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }

    /// The values at these flat indices, as a tensor of shape `dims`.
    fn take(&self, idx: &[usize], dims: Vec<i64>) -> Tensor {
        let data = match &self.data {
            Data::F(v) => Data::F(idx.iter().map(|&i| v[i]).collect()),
            Data::I(v) => Data::I(idx.iter().map(|&i| v[i]).collect()),
        };
        Tensor { dims, data, dtype: self.dtype }
    }

    fn rank_axis(&self, axis: i64) -> Result<usize, String> {
        let r = self.dims.len() as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if (0..r.max(1)).contains(&a) {
            Ok(a as usize)
        } else {
            Err(format!("axis {axis} is out of range for rank {r}"))
        }
    }

    /// Same values, another shape (`0` copies the dimension unless `allowzero`, `-1` is
    /// inferred).
    pub fn reshape(&self, shape: &[i64], allowzero: bool) -> Result<Tensor, String> {
        let mut dims: Vec<i64> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if d == 0 && !allowzero { self.dims.get(i).copied().unwrap_or(0) } else { d })
            .collect();
        let known: i64 = dims.iter().filter(|&&d| d != -1).product();
        if let Some(p) = dims.iter().position(|&d| d == -1) {
            dims[p] = if known == 0 { 0 } else { self.len() as i64 / known };
        }
        if dims.iter().product::<i64>() != self.len() as i64 {
            return Err(format!("cannot reshape {:?} to {shape:?}", self.dims));
        }
        Ok(Tensor { dims, ..self.clone() })
    }

    /// Elements along `axis` at these indices.
    pub fn gather(&self, indices: &Tensor, axis: i64) -> Result<Tensor, String> {
        if self.dims.is_empty() {
            return Err("gather from a scalar".into());
        }
        let axis = self.rank_axis(axis)?;
        let n = self.dims[axis];
        let idx = indices.to_ints()?;
        let outer: i64 = self.dims[..axis].iter().product();
        let inner: i64 = self.dims[axis + 1..].iter().product();
        let mut flat = Vec::new();
        for o in 0..outer {
            for &i in &idx {
                let i = if i < 0 { i + n } else { i };
                if !(0..n).contains(&i) {
                    return Err(format!("index {i} is out of range for {n}"));
                }
                for j in 0..inner {
                    flat.push(((o * n + i) * inner + j) as usize);
                }
            }
        }
        let mut dims = self.dims[..axis].to_vec();
        dims.extend(&indices.dims);
        dims.extend(&self.dims[axis + 1..]);
        Ok(self.take(&flat, dims))
    }

    /// Dimensions reordered.
    pub fn transpose(&self, perm: &[i64]) -> Result<Tensor, String> {
        let r = self.dims.len();
        let perm: Vec<usize> =
            if perm.is_empty() { (0..r).rev().collect() } else { perm.iter().map(|&p| p as usize).collect() };
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..r).collect::<Vec<_>>() {
            return Err(format!("perm {perm:?} does not fit rank {r}"));
        }
        let dims: Vec<i64> = perm.iter().map(|&p| self.dims[p]).collect();
        if perm == [1, 0] {
            // The common case (weights stored [in, out]), without a multi-index per value.
            let (rows, cols) = (self.dims[0] as usize, self.dims[1] as usize);
            let flat: Vec<usize> = (0..cols).flat_map(|c| (0..rows).map(move |r| r * cols + c)).collect();
            return Ok(self.take(&flat, dims));
        }
        let strides = strides(&self.dims);
        let flat = indices(&dims)
            .map(|ix| ix.iter().zip(&perm).map(|(&i, &p)| i * strides[p]).sum())
            .collect::<Vec<usize>>();
        Ok(self.take(&flat, dims))
    }

    /// `x[starts:ends:steps]` along `axes` (ONNX `Slice` semantics, clamped ends).
    pub fn slice(&self, starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> Result<Tensor, String> {
        let r = self.dims.len();
        if starts.len() != axes.len() || ends.len() != axes.len() {
            return Err(format!("{} starts, {} ends for {} axes", starts.len(), ends.len(), axes.len()));
        }
        let mut ranges: Vec<Vec<i64>> = self.dims.iter().map(|&d| (0..d).collect()).collect();
        for (k, &a) in axes.iter().enumerate() {
            let a = self.rank_axis(a)?;
            let d = self.dims[a];
            let step = steps.get(k).copied().unwrap_or(1);
            if step == 0 {
                return Err("slice step 0".into());
            }
            let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
            let (mut s, mut e) = (norm(starts[k]), norm(ends[k]));
            let mut v = Vec::new();
            if step > 0 {
                s = s.clamp(0, d);
                e = e.clamp(0, d);
                let mut i = s;
                while i < e {
                    v.push(i);
                    i += step;
                }
            } else {
                s = s.clamp(-1, d - 1);
                e = e.clamp(-1, d - 1);
                let mut i = s;
                while i > e {
                    v.push(i);
                    i += step;
                }
            }
            ranges[a] = v;
        }
        let dims: Vec<i64> = ranges.iter().map(|v| v.len() as i64).collect();
        let strides = strides(&self.dims);
        let flat = indices(&dims)
            .map(|ix| (0..r).map(|k| ranges[k][ix[k]] as usize * strides[k]).sum())
            .collect::<Vec<usize>>();
        Ok(self.take(&flat, dims))
    }

    /// These tensors one after the other along `axis`.
    pub fn concat(parts: &[&Tensor], axis: i64) -> Result<Tensor, String> {
        let first = parts.first().ok_or("nothing to concatenate")?;
        if first.dims.is_empty() {
            return Err("concatenation of scalars".into());
        }
        let axis = first.rank_axis(axis)?;
        let outer: i64 = first.dims[..axis].iter().product();
        let float = matches!(first.data, Data::F(_));
        let mut dims = first.dims.clone();
        dims[axis] = 0;
        let (mut fs, mut is) = (Vec::new(), Vec::new());
        for p in parts {
            if p.dims.len() != first.dims.len()
                || p.dims[..axis] != first.dims[..axis]
                || p.dims[axis + 1..] != first.dims[axis + 1..]
                || matches!(p.data, Data::F(_)) != float
            {
                return Err(format!("cannot concatenate {:?} and {:?}", first.dims, p.dims));
            }
            dims[axis] += p.dims[axis];
        }
        for o in 0..outer as usize {
            for p in parts {
                let block: usize = p.dims[axis..].iter().product::<i64>() as usize;
                match &p.data {
                    Data::F(v) => fs.extend_from_slice(&v[o * block..(o + 1) * block]),
                    Data::I(v) => is.extend_from_slice(&v[o * block..(o + 1) * block]),
                }
            }
        }
        let data = if float { Data::F(fs) } else { Data::I(is) };
        Ok(Tensor { dims, data, dtype: first.dtype })
    }

    /// Converted to another ONNX type (floats to integers truncate).
    pub fn cast(&self, to: i32) -> Result<Tensor, String> {
        let data = match (&self.data, is_float(to)) {
            (Data::F(v), true) => Data::F(v.clone()),
            (Data::F(v), false) if to == dt::BOOL => {
                Data::I(v.iter().map(|&x| i64::from(x != 0.0)).collect())
            }
            (Data::F(v), false) => Data::I(v.iter().map(|&x| x as i64).collect()),
            (Data::I(_), true) => Data::F(self.to_f64()?.into_iter().map(|x| x as f32).collect()),
            (Data::I(v), false) if to == dt::BOOL => Data::I(v.iter().map(|&x| i64::from(x != 0)).collect()),
            (Data::I(v), false) => Data::I(v.clone()),
        };
        Ok(Tensor { dims: self.dims.clone(), data, dtype: to })
    }

    /// Element-wise `a <op> b` with NumPy broadcasting (`op` is Add, Sub, Mul or Div).
    pub fn binary(op: &str, a: &Tensor, b: &Tensor) -> Result<Tensor, String> {
        let r = a.dims.len().max(b.dims.len());
        let pad = |d: &[i64]| {
            let mut v = vec![1; r - d.len()];
            v.extend(d);
            v
        };
        let (da, db) = (pad(&a.dims), pad(&b.dims));
        let mut dims = Vec::with_capacity(r);
        for (&x, &y) in da.iter().zip(&db) {
            if x != y && x != 1 && y != 1 {
                return Err(format!("cannot broadcast {:?} and {:?}", a.dims, b.dims));
            }
            dims.push(if x == 1 { y } else { x });
        }
        let (sa, sb) = (strides(&da), strides(&db));
        let at = |ix: &[usize], d: &[i64], s: &[usize]| -> usize {
            ix.iter().zip(d).zip(s).map(|((&i, &n), &st)| if n == 1 { 0 } else { i * st }).sum()
        };
        let pairs: Vec<(usize, usize)> =
            indices(&dims).map(|ix| (at(&ix, &da, &sa), at(&ix, &db, &sb))).collect();
        let data = match (&a.data, &b.data) {
            (Data::I(x), Data::I(y)) => {
                if x.contains(&BATCH) || y.contains(&BATCH) {
                    return Err("it computes with the batch size".into());
                }
                let f = |p: i64, q: i64| match op {
                    "Add" => Ok(p.wrapping_add(q)),
                    "Sub" => Ok(p.wrapping_sub(q)),
                    "Mul" => Ok(p.wrapping_mul(q)),
                    _ if q == 0 => Err("division by zero".to_string()),
                    _ => Ok(p.div_euclid(q)),
                };
                Data::I(pairs.iter().map(|&(i, j)| f(x[i], y[j])).collect::<Result<_, _>>()?)
            }
            _ => {
                let (x, y) = (a.to_f64()?, b.to_f64()?);
                let f = |p: f64, q: f64| match op {
                    "Add" => p + q,
                    "Sub" => p - q,
                    "Mul" => p * q,
                    _ => p / q,
                };
                Data::F(pairs.iter().map(|&(i, j)| f(x[i], y[j]) as f32).collect())
            }
        };
        let dtype = if matches!(data, Data::F(_)) { dt::FLOAT } else { dt::INT64 };
        Ok(Tensor { dims, data, dtype })
    }
}

/// Row-major strides of a shape.
fn strides(dims: &[i64]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as usize;
    }
    s
}

/// Every multi-index of a shape, row-major.
fn indices(dims: &[i64]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let n: i64 = dims.iter().product();
    let st = strides(dims);
    (0..n.max(0) as usize).map(move |f| st.iter().zip(dims).map(|(&s, &d)| (f / s) % d as usize).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pad_chain_pytorch_writes_folds_to_onnx_pads() {
        // F.pad(x, (0, 0, 0, 0, 8, 8)) as the TorchScript exporter computes its pads.
        let p = Tensor::ints(vec![6], vec![0, 0, 0, 0, 8, 8]);
        let z = Tensor::ints(vec![2], vec![0, 0]);
        let c = Tensor::concat(&[&p, &z], 0).unwrap().reshape(&[-1, 2], false).unwrap();
        let s = c.slice(&[-1], &[-i64::MAX], &[0], &[-1]).unwrap();
        let t = s.transpose(&[1, 0]).unwrap().reshape(&[-1], false).unwrap();
        assert_eq!(t.to_ints().unwrap(), vec![0, 8, 0, 0, 0, 8, 0, 0]);
    }

    #[test]
    fn gather_broadcast_and_half_floats() {
        let s = Tensor::ints(vec![4], vec![BATCH, 64, 1, 1]);
        let g = s.gather(&Tensor::ints(vec![], vec![0]), 0).unwrap();
        assert_eq!((g.dims.clone(), g.to_ints().unwrap()), (vec![], vec![BATCH]));
        let a = Tensor::floats(vec![2, 1], vec![1.0, 2.0]);
        let b = Tensor::floats(vec![3], vec![10.0, 20.0, 30.0]);
        let s = Tensor::binary("Add", &a, &b).unwrap();
        assert_eq!(s.data, Data::F(vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]));
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }
}
