//! GPU device facts, from the CUDA driver (cudarc) and NVML (nvml-wrapper).
//!
//! Both libraries are loaded at run time (`libcuda.so.1`, `libnvidia-ml.so.1`), so this
//! builds and runs without CUDA; on a machine without a driver every query is an error
//! with a one-line reason, never a panic. The NVML handle and the CUDA device list are
//! initialised once per process (both are slow to set up) and shared by the sampler and
//! every [`EnergyMeter`](crate::EnergyMeter).

use std::sync::OnceLock;

use cudarc::driver::{result as cu, sys as cusys};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use slimbench_core::artifact::GpuInfo;

/// What the CUDA driver says about one device; fixed for the process's life.
#[derive(Debug)]
struct CudaDevice {
    dev: cusys::CUdevice,
    name: String,
    capability: (i32, i32),
    memory_total: u64,
    multiprocessors: u32,
    /// `DDDDDDDD:BB:DD.0`, the form NVML looks devices up by.
    pci_bus_id: String,
}

/// Describe every CUDA device this process can see (ordinals as `CUDA_VISIBLE_DEVICES`
/// numbers them): name, compute capability, total and free memory, multiprocessors
/// from the CUDA driver; driver version and power limit from NVML where it is there
/// (free memory too, which then needs no CUDA context).
///
/// `Err` is a one-line reason, e.g. `no CUDA driver (libcuda.so.1 not found)`.
pub fn probe_gpus() -> Result<Vec<GpuInfo>, String> {
    let devices = cuda_devices()?;
    let nvml = nvml().ok();
    let driver_version = nvml.and_then(|n| n.sys_driver_version().ok()).unwrap_or_default();
    let infos = devices
        .iter()
        .enumerate()
        .map(|(ordinal, d)| {
            let nv = nvml.and_then(|n| n.device_by_pci_bus_id(d.pci_bus_id.as_str()).ok());
            let power_limit_mw = nv
                .as_ref()
                .and_then(|n| n.enforced_power_limit().or_else(|_| n.power_management_limit()).ok());
            let free = nv
                .as_ref()
                .and_then(|n| n.memory_info().ok())
                .map(|m| m.free)
                .or_else(|| cuda_free_memory(d.dev));
            GpuInfo {
                ordinal: ordinal as u32,
                name: d.name.clone(),
                compute_capability: format!("{}.{}", d.capability.0, d.capability.1),
                memory_total_bytes: d.memory_total,
                memory_free_bytes: free.unwrap_or(0),
                multiprocessors: d.multiprocessors,
                driver_version: driver_version.clone(),
                power_limit_w: power_limit_mw.map_or(0.0, |mw| f64::from(mw) / 1000.0),
            }
        })
        .collect();
    Ok(infos)
}

/// The process-wide NVML handle, initialised on first use.
pub(crate) fn nvml() -> Result<&'static Nvml, String> {
    static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| Nvml::init().map_err(|e| nvml_init_reason(&e))).as_ref().map_err(Clone::clone)
}

fn nvml_init_reason(e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(e) => format!("no NVML ({e})"),
        NvmlError::DriverNotLoaded => "NVML: the NVIDIA driver is not loaded".to_owned(),
        e => format!("NVML init failed: {e}"),
    }
}

/// The NVML device behind CUDA ordinal `ordinal`. NVML numbers every GPU of the
/// machine while CUDA numbers the visible ones (`CUDA_VISIBLE_DEVICES`), so the two are
/// matched by PCI bus id when the CUDA driver can be asked; otherwise the ordinal is
/// taken as NVML's index.
pub(crate) fn nvml_device(ordinal: u32) -> Result<Device<'static>, String> {
    let nvml = nvml()?;
    match cuda_devices() {
        Ok(devices) => {
            let Some(d) = devices.get(ordinal as usize) else {
                return Err(format!(
                    "cuda:{ordinal} does not exist ({} CUDA devices visible)",
                    devices.len()
                ));
            };
            nvml.device_by_pci_bus_id(d.pci_bus_id.as_str())
                .map_err(|e| format!("NVML has no device at PCI {} (cuda:{ordinal}): {e}", d.pci_bus_id))
        }
        Err(_) => nvml.device_by_index(ordinal).map_err(|e| format!("NVML device {ordinal}: {e}")),
    }
}

/// The CUDA devices, asked of the driver once per process.
fn cuda_devices() -> Result<&'static [CudaDevice], String> {
    static CUDA: OnceLock<Result<Vec<CudaDevice>, String>> = OnceLock::new();
    CUDA.get_or_init(load_cuda).as_deref().map_err(Clone::clone)
}

fn load_cuda() -> Result<Vec<CudaDevice>, String> {
    // cudarc panics on the first driver call when libcuda cannot be loaded, so look
    // for it first.
    // SAFETY: only opens (and closes again) the library under its usual names.
    if !unsafe { cusys::is_culib_present() } {
        return Err("no CUDA driver (libcuda.so.1 not found)".to_owned());
    }
    // It also panics when a driver lacks an entry point it resolves lazily; the few
    // used here exist in every driver since CUDA 11, but make that an error too.
    std::panic::catch_unwind(query_cuda).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        Err(format!("CUDA driver call failed: {why}"))
    })
}

fn query_cuda() -> Result<Vec<CudaDevice>, String> {
    use cusys::CUdevice_attribute::*;
    cu::init().map_err(|e| match e.0 {
        cusys::CUresult::CUDA_ERROR_NO_DEVICE => {
            "no CUDA device visible (CUDA_ERROR_NO_DEVICE; check CUDA_VISIBLE_DEVICES)".to_owned()
        }
        _ => format!("CUDA driver init failed ({})", cu_error(e)),
    })?;
    let count = cu::device::get_count().map_err(|e| format!("counting CUDA devices: {}", cu_error(e)))?;
    if count <= 0 {
        return Err("no CUDA device visible".to_owned());
    }
    (0..count)
        .map(|ordinal| {
            let fail = |what: &str, e: cu::DriverError| format!("cuda:{ordinal}: {what}: {}", cu_error(e));
            let dev = cu::device::get(ordinal).map_err(|e| fail("cuDeviceGet", e))?;
            // SAFETY: `dev` came from cuDeviceGet.
            let attr =
                |a| unsafe { cu::device::get_attribute(dev, a) }.map_err(|e| fail("cuDeviceGetAttribute", e));
            let pci = (
                attr(CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID)?,
                attr(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
                attr(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID)?,
            );
            Ok(CudaDevice {
                dev,
                name: cu::device::get_name(dev).map_err(|e| fail("cuDeviceGetName", e))?,
                capability: (
                    attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                    attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
                ),
                // SAFETY: `dev` came from cuDeviceGet.
                memory_total: unsafe { cu::device::total_mem(dev) }
                    .map_err(|e| fail("cuDeviceTotalMem", e))? as u64,
                multiprocessors: attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?.max(0) as u32,
                pci_bus_id: format!("{:08X}:{:02X}:{:02X}.0", pci.0, pci.1, pci.2),
            })
        })
        .collect()
}

/// Free memory from the CUDA driver, for when NVML is missing: `cuMemGetInfo` needs a
/// context, so the device's primary context is retained (shared with libtorch, if it
/// has one), made current for the call and released again.
fn cuda_free_memory(dev: cusys::CUdevice) -> Option<u64> {
    std::panic::catch_unwind(|| {
        // SAFETY: `dev` came from cuDeviceGet; the context is pushed and popped on this
        // thread and the primary-context reference released before returning.
        unsafe {
            let ctx = cu::primary_ctx::retain(dev).ok()?;
            let free = if cusys::cuCtxPushCurrent_v2(ctx).result().is_ok() {
                let info = cu::mem_get_info().ok();
                let mut popped = std::ptr::null_mut();
                let _ = cusys::cuCtxPopCurrent_v2(&mut popped).result();
                info.map(|(free, _total)| free as u64)
            } else {
                None
            };
            let _ = cu::primary_ctx::release(dev);
            free
        }
    })
    .ok()
    .flatten()
}

fn cu_error(e: cu::DriverError) -> String {
    e.error_name().map_or_else(|_| format!("{:?}", e.0), |name| name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes with and without a GPU: either devices with names, or a reason.
    #[test]
    fn probe_gpus_gives_devices_or_a_reason() {
        match probe_gpus() {
            Ok(gpus) => {
                assert!(!gpus.is_empty());
                for (i, g) in gpus.iter().enumerate() {
                    assert_eq!(g.ordinal as usize, i);
                    assert!(!g.name.is_empty(), "{g:?}");
                    assert!(g.memory_total_bytes > 0, "{g:?}");
                    assert!(g.multiprocessors > 0, "{g:?}");
                    assert!(g.compute_capability.contains('.'), "{g:?}");
                }
            }
            Err(why) => {
                assert!(!why.trim().is_empty());
                assert!(!why.contains('\n'), "{why}");
            }
        }
        // A second probe answers from the cached driver state, the same way.
        assert_eq!(probe_gpus().is_ok(), probe_gpus().is_ok());
    }

    #[test]
    fn nvml_errors_are_one_line() {
        match nvml() {
            Ok(_) => {}
            Err(why) => assert!(!why.is_empty() && !why.contains('\n'), "{why}"),
        }
        if let Err(why) = nvml_device(0) {
            assert!(!why.is_empty() && !why.contains('\n'), "{why}");
        }
    }
}
