//! # slimbench-torch-ext
//!
//! A small C++ bridge to libtorch operators and settings that tch does not expose:
//! fbgemm's quantized kernels (dynamic and static int8, fp16 weights), the CUDA autocast
//! dtype and PyTorch's distributed engine (c10d). `bridge.cpp`, `dist.cpp` and (where
//! the CUDA headers are found) `dist_nccl.cpp` are compiled with `cc` against the
//! headers of the pinned torch wheel (as torch-sys compiles its own shim); `bridge.cpp`
//! reaches every operator the same way PyTorch's Python front end does: by name,
//! through `c10::Dispatcher`, with boxed arguments.
//!
//! * [`call`] runs any registered operator (`quantized::linear_dynamic`, ...) on a list
//!   of [`Arg`]s and returns its results as [`Value`]s; [`op_exists`] and [`op_schema`]
//!   ask what this libtorch has.
//! * A [`Value`] is an owned `c10::IValue`: a tensor (turned into a tch
//!   [`Tensor`] by [`Value::tensor`]) or an opaque object such as fbgemm's
//!   packed weights, kept alive as long as the `Value` is.
//! * [`quantized`] gives the operators slimbench uses typed, safe wrappers
//!   (`PackedLinear`, `PackedConv`).
//! * [`set_cuda_autocast_dtype`]: bf16 or fp16 for `tch::autocast`.
//! * [`dist`]: a TCP rendezvous store and a Gloo (CPU) or NCCL (CUDA) process group
//!   (all-reduce, broadcast, barrier) for data-parallel training across processes or
//!   machines. NCCL is compiled in only where the CUDA and NCCL headers were found at
//!   build time ([`dist::nccl_available`]).
//!
//! No C++ exception crosses into Rust: a failing operator (bad shapes, wrong dtype, an
//! operator this build lacks) or collective (a peer gone, a timeout) is a
//! [`BridgeError`] carrying libtorch's message.

pub mod dist;
mod ffi;
pub mod quantized;

use std::ffi::{CStr, CString, c_char};
use std::ptr::NonNull;

use tch::Tensor;

/// Why a bridged call failed.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The operator is not registered in this libtorch.
    #[error("libtorch has no operator `{0}`")]
    NoSuchOp(String),
    /// libtorch raised an error; its message, first line first.
    #[error("{op}: {message}")]
    Torch {
        /// The operator.
        op: String,
        /// libtorch's message.
        message: String,
    },
    /// An argument the bridge refused before calling libtorch.
    #[error("{op}: {message}")]
    Invalid {
        /// The call.
        op: String,
        /// What is wrong with the argument.
        message: String,
    },
    /// What was asked for is not in this build or on this machine (NCCL in a build
    /// without it, NCCL without a CUDA device).
    #[error("{op}: {message}")]
    Unavailable {
        /// The call.
        op: String,
        /// What is missing, and why.
        message: String,
    },
    /// A result had another type than the wrapper expected.
    #[error("{op}: expected {expected}, got {got}")]
    Type {
        /// The operator.
        op: String,
        /// What was expected.
        expected: &'static str,
        /// The value's TorchScript type.
        got: String,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, BridgeError>;

/// An owned `c10::IValue`.
pub struct Value(NonNull<ffi::CValue>);

// SAFETY: an IValue holds reference-counted libtorch objects whose counts are atomic;
// nothing here is tied to the thread that made it.
unsafe impl Send for Value {}
// SAFETY: every method takes `&self` only to read or clone the IValue.
unsafe impl Sync for Value {}

impl Drop for Value {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a bridge constructor and is freed once.
        unsafe { ffi::sbx_value_free(self.0.as_ptr()) }
    }
}

impl Clone for Value {
    fn clone(&self) -> Self {
        // SAFETY: a valid IValue; the clone shares its referenced objects.
        Value::from_raw(unsafe { ffi::sbx_value_clone(self.0.as_ptr()) })
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({})", self.type_name())
    }
}

impl Value {
    fn from_raw(p: *mut ffi::CValue) -> Value {
        Value(NonNull::new(p).expect("the bridge allocates values infallibly"))
    }

    /// A tensor value (shares the tensor's storage).
    pub fn from_tensor(t: &Tensor) -> Value {
        // SAFETY: `as_ptr` is a live `at::Tensor*`; the bridge copies the handle.
        Value::from_raw(unsafe { ffi::sbx_value_tensor(t.as_ptr()) })
    }

    /// The value's type as TorchScript names it (`Tensor`, `int`,
    /// `__torch__.torch.classes.quantized.LinearPackedParamsBase`, ...).
    pub fn type_name(&self) -> String {
        // SAFETY: a valid IValue; the returned string is ours to free.
        unsafe { take_string(ffi::sbx_value_type(self.0.as_ptr())) }.unwrap_or_else(|| "?".into())
    }

    /// Whether it is a tensor.
    pub fn is_tensor(&self) -> bool {
        // SAFETY: a valid IValue.
        unsafe { ffi::sbx_value_kind(self.0.as_ptr()) == 1 }
    }

    /// The tensor it holds (sharing storage), or `None` when it is not a tensor.
    pub fn tensor(&self) -> Option<Tensor> {
        if !self.is_tensor() {
            return None;
        }
        // SAFETY: a tensor IValue; the bridge returns a new `at::Tensor*` that tch owns.
        let p = unsafe { ffi::sbx_value_to_tensor(self.0.as_ptr()) };
        (!p.is_null()).then(|| unsafe { Tensor::from_ptr(p) })
    }
}

/// An argument of [`call`].
#[derive(Debug)]
pub enum Arg<'a> {
    /// `None` (an absent optional).
    None,
    /// A tensor.
    Tensor(&'a Tensor),
    /// An optional tensor.
    OptTensor(Option<&'a Tensor>),
    /// `bool`.
    Bool(bool),
    /// `int`.
    Int(i64),
    /// `float` (a double in TorchScript).
    Double(f64),
    /// `int[]` (strides, paddings).
    IntList(&'a [i64]),
    /// Any value a previous call returned (e.g. packed weights).
    Value(&'a Value),
}

impl Arg<'_> {
    fn to_value(&self) -> Value {
        // SAFETY: each constructor allocates a fresh IValue.
        let p = unsafe {
            match *self {
                Arg::None | Arg::OptTensor(None) => ffi::sbx_value_none(),
                Arg::Tensor(t) | Arg::OptTensor(Some(t)) => ffi::sbx_value_tensor(t.as_ptr()),
                Arg::Bool(b) => ffi::sbx_value_bool(b.into()),
                Arg::Int(i) => ffi::sbx_value_int(i),
                Arg::Double(d) => ffi::sbx_value_double(d),
                Arg::IntList(v) => ffi::sbx_value_int_list(v.as_ptr(), v.len()),
                Arg::Value(v) => ffi::sbx_value_clone(v.0.as_ptr()),
            }
        };
        Value::from_raw(p)
    }
}

/// Copy and free a string the bridge allocated.
unsafe fn take_string(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string from strdup, freed right after copying.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    unsafe { ffi::sbx_free_string(p) };
    Some(s)
}

fn last_error() -> String {
    // SAFETY: a thread-local string owned by the bridge, valid until its next call.
    unsafe { CStr::from_ptr(ffi::sbx_last_error()) }.to_string_lossy().into_owned()
}

/// The error of the bridge call `op` that just failed on this thread, without the C++
/// backtrace libtorch appends (its first lines say what went wrong).
fn torch_error(op: &str) -> BridgeError {
    let message = last_error();
    let message = message.split("\nException raised from").next().unwrap_or(&message).trim().to_string();
    BridgeError::Torch { op: op.to_string(), message }
}

fn split_op(op: &str) -> (CString, CString) {
    let (name, overload) = op.split_once('.').unwrap_or((op, ""));
    (CString::new(name).unwrap_or_default(), CString::new(overload).unwrap_or_default())
}

/// Whether libtorch registers `op` (`name` or `name.overload`).
pub fn op_exists(op: &str) -> bool {
    let (name, overload) = split_op(op);
    // SAFETY: two valid C strings.
    unsafe { ffi::sbx_op_exists(name.as_ptr(), overload.as_ptr()) == 1 }
}

/// The schema of `op`, as libtorch prints it; `None` when it is not registered.
pub fn op_schema(op: &str) -> Option<String> {
    let (name, overload) = split_op(op);
    // SAFETY: two valid C strings; the result is ours to free.
    unsafe { take_string(ffi::sbx_op_schema(name.as_ptr(), overload.as_ptr())) }
}

/// Set the reduced precision CUDA autocast computes in (`Kind::Half` or
/// `Kind::BFloat16`; tch's [`tch::autocast`] only switches it on). Per thread, as in
/// PyTorch.
pub fn set_cuda_autocast_dtype(kind: tch::Kind) -> Result<()> {
    // c10::ScalarType codes (tch keeps its own conversion private).
    let code = match kind {
        tch::Kind::Half => 5,
        tch::Kind::BFloat16 => 15,
        _ => -1,
    };
    // SAFETY: a plain call; errors come back as -1 and the thread's last error.
    if unsafe { ffi::sbx_set_cuda_autocast_dtype(code) } != 0 {
        return Err(BridgeError::Torch { op: "set_autocast_dtype".into(), message: last_error() });
    }
    Ok(())
}

/// The reduced precision CUDA autocast computes in on this thread.
pub fn cuda_autocast_dtype() -> Option<tch::Kind> {
    // SAFETY: a plain call.
    match unsafe { ffi::sbx_cuda_autocast_dtype() } {
        5 => Some(tch::Kind::Half),
        15 => Some(tch::Kind::BFloat16),
        _ => None,
    }
}

/// Most results any operator slimbench calls returns.
const MAX_OUTS: usize = 8;

/// Call the registered operator `op` (`name` or `name.overload`) with `args`.
pub fn call(op: &str, args: &[Arg<'_>]) -> Result<Vec<Value>> {
    if !op_exists(op) {
        return Err(BridgeError::NoSuchOp(op.to_string()));
    }
    let (name, overload) = split_op(op);
    let values: Vec<Value> = args.iter().map(Arg::to_value).collect();
    let ptrs: Vec<*mut ffi::CValue> = values.iter().map(|v| v.0.as_ptr()).collect();
    let mut outs = [std::ptr::null_mut(); MAX_OUTS];
    let mut n = 0usize;
    // SAFETY: valid strings and IValues (kept alive by `values` until the call returns);
    // `outs` has room for MAX_OUTS results and the bridge writes `n` of them.
    let rc = unsafe {
        ffi::sbx_call(
            name.as_ptr(),
            overload.as_ptr(),
            ptrs.as_ptr(),
            ptrs.len(),
            outs.as_mut_ptr(),
            MAX_OUTS,
            &mut n,
        )
    };
    if rc != 0 {
        return Err(torch_error(op));
    }
    Ok(outs[..n].iter().map(|&p| Value::from_raw(p)).collect())
}

/// [`call`] an operator that returns one tensor.
pub fn call_tensor(op: &str, args: &[Arg<'_>]) -> Result<Tensor> {
    let out = call(op, args)?;
    let first = out.first().ok_or_else(|| BridgeError::Type {
        op: op.into(),
        expected: "a tensor",
        got: "nothing".into(),
    })?;
    first.tensor().ok_or_else(|| BridgeError::Type {
        op: op.into(),
        expected: "a tensor",
        got: first.type_name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_a_registered_op_by_name() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let b = Tensor::from_slice(&[10.0f32, 20.0, 30.0]);
        let sum =
            call_tensor("aten::add.Tensor", &[Arg::Tensor(&a), Arg::Tensor(&b), Arg::Double(2.0)]).unwrap();
        assert_eq!(Vec::<f32>::try_from(&sum).unwrap(), [21.0, 42.0, 63.0]);
        assert!(op_schema("aten::add.Tensor").unwrap().contains("Tensor other"));
    }

    #[test]
    fn unknown_ops_and_bad_arguments_are_errors_not_panics() {
        let e = call("quantized::no_such_op", &[]).unwrap_err();
        assert_eq!(e.to_string(), "libtorch has no operator `quantized::no_such_op`");
        assert!(!op_exists("quantized::no_such_op"));
        let a = Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
        let b = Tensor::zeros([4], (tch::Kind::Float, tch::Device::Cpu));
        let e = call_tensor("aten::add.Tensor", &[Arg::Tensor(&a), Arg::Tensor(&b), Arg::Double(1.0)])
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("aten::add.Tensor: ") && msg.contains("size of tensor"), "{msg}");
        assert!(!msg.contains("Exception raised from"), "{msg}");
    }

    #[test]
    fn int_lists_cross_as_int_lists() {
        let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let y = call_tensor("aten::reshape", &[Arg::Tensor(&x), Arg::IntList(&[2, 3])]).unwrap();
        assert_eq!(y.size(), [2, 3]);
    }

    #[test]
    fn autocast_dtype_is_settable_and_checked() {
        set_cuda_autocast_dtype(tch::Kind::BFloat16).unwrap();
        assert_eq!(cuda_autocast_dtype(), Some(tch::Kind::BFloat16));
        set_cuda_autocast_dtype(tch::Kind::Half).unwrap();
        assert_eq!(cuda_autocast_dtype(), Some(tch::Kind::Half));
        let e = set_cuda_autocast_dtype(tch::Kind::Float).unwrap_err().to_string();
        assert!(e.contains("float16 or bfloat16"), "{e}");
    }

    #[test]
    fn values_report_their_type() {
        let v = Value::from_tensor(&Tensor::from_slice(&[1i64]));
        assert!(v.is_tensor());
        assert_eq!(v.type_name(), "Tensor");
        let c = v.clone();
        assert_eq!(Vec::<i64>::try_from(&c.tensor().unwrap()).unwrap(), [1]);
    }
}
