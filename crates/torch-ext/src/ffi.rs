//! The C ABI of `bridge.cpp`, `dist.cpp` and (in builds with NCCL) `dist_nccl.cpp`. Every function is wrapped safely in this
//! crate; nothing else should call these.

use std::ffi::c_char;

use torch_sys::C_tensor;

/// A `c10::IValue` owned by Rust (freed with [`sbx_value_free`]).
#[repr(C)]
pub struct CValue {
    _private: [u8; 0],
}

/// A `c10d::TCPStore` handle (`SbxStore`, freed with [`sbx_store_free`]).
#[repr(C)]
pub struct CStore {
    _private: [u8; 0],
}

/// A Gloo or NCCL process group handle (`SbxGroup`, freed with [`sbx_group_free`]).
#[repr(C)]
pub struct CGroup {
    _private: [u8; 0],
}

unsafe extern "C" {
    pub fn sbx_last_error() -> *const c_char;
    pub fn sbx_value_none() -> *mut CValue;
    pub fn sbx_value_bool(v: i32) -> *mut CValue;
    pub fn sbx_value_int(v: i64) -> *mut CValue;
    pub fn sbx_value_double(v: f64) -> *mut CValue;
    pub fn sbx_value_tensor(t: *const C_tensor) -> *mut CValue;
    pub fn sbx_value_int_list(v: *const i64, n: usize) -> *mut CValue;
    pub fn sbx_value_clone(v: *const CValue) -> *mut CValue;
    pub fn sbx_value_free(v: *mut CValue);
    pub fn sbx_value_kind(v: *const CValue) -> i32;
    pub fn sbx_value_type(v: *const CValue) -> *mut c_char;
    pub fn sbx_value_to_tensor(v: *const CValue) -> *mut C_tensor;
    pub fn sbx_op_exists(name: *const c_char, overload: *const c_char) -> i32;
    pub fn sbx_op_schema(name: *const c_char, overload: *const c_char) -> *mut c_char;
    pub fn sbx_call(
        name: *const c_char,
        overload: *const c_char,
        args: *const *mut CValue,
        nargs: usize,
        outs: *mut *mut CValue,
        max_outs: usize,
        nouts: *mut usize,
    ) -> i32;
    pub fn sbx_free_string(s: *mut c_char);
    pub fn sbx_set_cuda_autocast_dtype(scalar_type: i32) -> i32;
    pub fn sbx_cuda_autocast_dtype() -> i32;

    // dist.cpp
    pub fn sbx_tcp_store_new(
        host: *const c_char,
        port: u16,
        world_size: usize,
        is_server: i32,
        timeout_ms: i64,
    ) -> *mut CStore;
    pub fn sbx_store_free(s: *mut CStore);
    pub fn sbx_gloo_new(s: *mut CStore, rank: usize, size: usize, timeout_ms: i64) -> *mut CGroup;
    pub fn sbx_group_free(g: *mut CGroup);
    pub fn sbx_group_all_reduce(g: *mut CGroup, tensors: *const *const C_tensor, n: usize, mean: i32) -> i32;
    pub fn sbx_group_broadcast(g: *mut CGroup, tensors: *const *const C_tensor, n: usize, root: usize)
    -> i32;
    pub fn sbx_group_barrier(g: *mut CGroup) -> i32;
}

// dist_nccl.cpp, compiled only with the `slimbench_nccl` cfg (see build.rs).
#[cfg(slimbench_nccl)]
unsafe extern "C" {
    pub fn sbx_cuda_device_count() -> i32;
    pub fn sbx_nccl_new(
        s: *mut CStore,
        rank: usize,
        size: usize,
        timeout_ms: i64,
        device: i32,
    ) -> *mut CGroup;
}
