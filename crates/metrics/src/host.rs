//! The machine and the process's memory.

use slimbench_core::artifact::HostInfo;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// Describe this machine: host name, OS, kernel, CPU brand, physical and logical
/// cores, total memory. Fields sysinfo cannot determine are empty or 0.
pub fn probe_host() -> HostInfo {
    // Only what we read: a full `System::new_all()` walks every process.
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let cpu_model = sys.cpus().first().map(|c| c.brand().trim().to_owned()).unwrap_or_default();
    let logical = match sys.cpus().len() {
        0 => std::thread::available_parallelism().map_or(0, |n| n.get()),
        n => n,
    };
    HostInfo {
        hostname: System::host_name().unwrap_or_default(),
        os: System::long_os_version()
            .or_else(System::name)
            .unwrap_or_else(|| std::env::consts::OS.to_owned()),
        kernel: System::kernel_version().unwrap_or_default(),
        cpu_model,
        physical_cores: System::physical_core_count().unwrap_or(0) as u64,
        logical_cores: logical as u64,
        memory_bytes: sys.total_memory(),
    }
}

/// Reset the kernel's peak-RSS counter (`VmHWM`) of this process to its current RSS,
/// so that [`peak_rss_bytes`] afterwards measures the peak of what follows (e.g. one
/// variant's evaluation) rather than of the whole process. Returns whether it worked:
/// only Linux has this (writing `5` to `/proc/self/clear_refs`), and some containers
/// forbid it.
pub fn reset_peak_rss() -> bool {
    cfg!(target_os = "linux") && std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory of this process in bytes: `VmHWM` on Linux (since start or
/// the last successful [`reset_peak_rss`]); elsewhere the best available figure,
/// the current RSS from sysinfo. `None` when neither is available.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|kib| kib * 1024).or_else(sysinfo_rss)
}

/// Current resident memory of this process in bytes (`VmRSS` on Linux, sysinfo
/// elsewhere).
pub fn current_rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|kib| kib * 1024).or_else(sysinfo_rss)
}

/// A `kB` field of `/proc/self/status` (absent off Linux).
fn proc_status_kib(key: &str) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, key)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().next()?.parse().ok()
}

fn sysinfo_rss() -> Option<u64> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
    let pid = sysinfo::get_current_pid().ok()?;
    let mut sys = System::new();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory(),
    );
    sys.process(pid).map(|p| p.memory())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_has_cores_and_memory() {
        let host = probe_host();
        assert!(host.logical_cores > 0, "{host:?}");
        assert!(host.memory_bytes > 0, "{host:?}");
        assert!(!host.os.is_empty(), "{host:?}");
    }

    #[test]
    fn rss_is_measured() {
        let current = current_rss_bytes().expect("current RSS");
        assert!(current > 1024 * 1024, "{current}");
        // Touch 64 MiB so the peak is visibly above where it started.
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let peak = peak_rss_bytes().expect("peak RSS");
        assert!(peak >= 64 << 20, "{peak}");
        drop(big);
        if reset_peak_rss() {
            // After the reset the peak is the current RSS again, far below 64 MiB more.
            assert!(peak_rss_bytes().unwrap() < peak, "peak was not reset");
        }
        assert!(sysinfo_rss().is_some());
    }

    #[test]
    fn parses_proc_status_lines() {
        let status = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t  100 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(100));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }
}
