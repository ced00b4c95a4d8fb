//! libtorch runtime facts: devices, threads, versions.

use slimbench_core::device::DeviceSpec;
use tch::Device;

/// The libtorch version this binary was built against (from the wheel's version.py).
pub const TORCH_VERSION: &str = env!("SLIMBENCH_TORCH_VERSION");

/// Turn a device request into a libtorch device, or say why it cannot be had.
pub fn resolve_device(spec: DeviceSpec) -> Result<Device, String> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto => Ok(Device::cuda_if_available()),
        DeviceSpec::Cuda(i) => {
            let n = tch::Cuda::device_count() as usize;
            if i < n {
                Ok(Device::Cuda(i))
            } else if n == 0 {
                Err(format!("device cuda:{i} was requested but {}", no_cuda_reason()))
            } else {
                Err(format!(
                    "device cuda:{i} was requested but only {n} CUDA device(s) exist (cuda:0..cuda:{})",
                    n - 1
                ))
            }
        }
    }
}

/// Why no CUDA device is usable, with what to do about it (for error messages).
pub fn no_cuda_reason() -> String {
    if env!("SLIMBENCH_LINKS_CUDA") != "1" {
        format!(
            "this slimbench build has no CUDA support (libtorch {TORCH_VERSION} without CUDA, \
             e.g. the CPU image); use `--device cpu` or a CUDA build"
        )
    } else {
        format!(
            "no CUDA device is visible (libtorch {TORCH_VERSION} has CUDA, but there is no GPU or no \
             driver); in Docker, run the CUDA image with `--gpus all` (NVIDIA Container Toolkit), \
             or use `--device cpu`"
        )
    }
}

/// The GPU ordinal of `d` (for NVML and the energy meter); `None` off CUDA.
pub fn gpu_index(d: Device) -> Option<u32> {
    match d {
        Device::Cuda(i) => Some(i as u32),
        _ => None,
    }
}

/// `cpu` or `cuda:N`.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
        _ => "cpu".into(),
    }
}

/// Set libtorch's intra-op threads (0: one per logical core) and return the number in use.
pub fn set_threads(threads: usize) -> usize {
    let n = if threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        threads
    };
    tch::set_num_threads(n as i32);
    tch::get_num_threads() as usize
}

/// Wait for queued CUDA work (timings must include it); no-op on the CPU.
pub fn synchronize(d: Device) {
    if let Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_resolves_and_missing_cuda_is_explained() {
        assert_eq!(resolve_device(DeviceSpec::Cpu).unwrap(), Device::Cpu);
        if !tch::Cuda::is_available() {
            let err = resolve_device(DeviceSpec::Cuda(0)).unwrap_err();
            assert!(err.contains("no CUDA device"), "{err}");
            assert_eq!(resolve_device(DeviceSpec::Auto).unwrap(), Device::Cpu);
        }
        assert!(TORCH_VERSION.starts_with("2.11.0"), "{TORCH_VERSION}");
    }
}
