//! Energy counters: the GPU's (NVML) or the CPU packages' (Linux RAPL).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nvml_wrapper::Device;

use crate::gpu;

/// Where Linux exposes RAPL.
const RAPL_ROOT: &str = "/sys/class/powercap";

/// Energy used since [`EnergyMeter::start`], from the first counter this machine has:
///
/// 1. `"nvml"`: the GPU's total-energy counter (Volta and newer), when a GPU is named
///    and NVML can read it;
/// 2. `"rapl"`: the sum of the CPU package domains of Linux RAPL
///    (`/sys/class/powercap/intel-rapl:N/energy_uj`; often readable by root only);
/// 3. `"none"`: no counter, [`joules`](EnergyMeter::joules) is `None`.
///
/// Cheap to start: the NVML handle is shared by the process (the first meter that names
/// a GPU pays for initialising it), and RAPL is a few small sysfs reads. The RAPL
/// counters wrap around; each call of `joules` accounts for one wrap since the previous
/// call, which at the usual range (~262 kJ per package) is minutes of full load.
pub struct EnergyMeter {
    counter: Counter,
}

enum Counter {
    Nvml { device: Device<'static>, start_mj: u64 },
    Rapl(Mutex<Rapl>),
    None,
}

impl EnergyMeter {
    /// Start measuring, on GPU `gpu` (a CUDA ordinal) if given and it has a counter,
    /// else on the CPU packages.
    pub fn start(gpu: Option<u32>) -> EnergyMeter {
        EnergyMeter::start_with(gpu, Path::new(RAPL_ROOT))
    }

    fn start_with(gpu: Option<u32>, rapl_root: &Path) -> EnergyMeter {
        if let Some(ordinal) = gpu
            && let Ok(device) = gpu::nvml_device(ordinal)
            && let Ok(start_mj) = device.total_energy_consumption()
        {
            return EnergyMeter { counter: Counter::Nvml { device, start_mj } };
        }
        let counter = match Rapl::open(rapl_root) {
            Some(rapl) => Counter::Rapl(Mutex::new(rapl)),
            None => Counter::None,
        };
        EnergyMeter { counter }
    }

    /// Joules used since the meter started; `None` without a counter or when reading
    /// it failed.
    pub fn joules(&self) -> Option<f64> {
        match &self.counter {
            Counter::Nvml { device, start_mj } => {
                let now_mj = device.total_energy_consumption().ok()?;
                Some(now_mj.saturating_sub(*start_mj) as f64 / 1e3)
            }
            Counter::Rapl(rapl) => rapl.lock().unwrap_or_else(|p| p.into_inner()).joules(),
            Counter::None => None,
        }
    }

    /// Which counter: `"nvml"`, `"rapl"` or `"none"`.
    pub fn source(&self) -> &'static str {
        match self.counter {
            Counter::Nvml { .. } => "nvml",
            Counter::Rapl(_) => "rapl",
            Counter::None => "none",
        }
    }
}

impl std::fmt::Debug for EnergyMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnergyMeter").field("source", &self.source()).finish_non_exhaustive()
    }
}

/// The top-level RAPL package domains under a powercap root, with running totals.
#[derive(Debug)]
struct Rapl {
    domains: Vec<RaplDomain>,
}

#[derive(Debug)]
struct RaplDomain {
    energy_uj: PathBuf,
    /// Where the counter wraps to 0 (0 when unknown).
    max_uj: u64,
    last_uj: u64,
    total_uj: u64,
}

impl Rapl {
    /// The package domains `intel-rapl:N` (not their subdomains `intel-rapl:N:M`, not
    /// `psys`, which would count the packages twice) whose counters can be read;
    /// `None` when there are none, e.g. no powercap or root-only counters.
    fn open(root: &Path) -> Option<Rapl> {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| {
                name.strip_prefix("intel-rapl:")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        names.sort();
        let domains: Vec<RaplDomain> = names
            .iter()
            .map(|name| root.join(name))
            .filter(|dir| read_trimmed(&dir.join("name")).is_none_or(|n| n.starts_with("package")))
            .filter_map(|dir| {
                let energy_uj = dir.join("energy_uj");
                let last_uj = read_u64(&energy_uj)?;
                let max_uj = read_u64(&dir.join("max_energy_range_uj")).unwrap_or(0);
                Some(RaplDomain { energy_uj, max_uj, last_uj, total_uj: 0 })
            })
            .collect();
        (!domains.is_empty()).then_some(Rapl { domains })
    }

    /// Joules since `open`, over all domains.
    fn joules(&mut self) -> Option<f64> {
        let mut total_uj = 0u64;
        for d in &mut self.domains {
            let now = read_u64(&d.energy_uj)?;
            let delta = if now >= d.last_uj {
                now - d.last_uj
            } else if d.max_uj > d.last_uj {
                // Wrapped: up to the range's end, then from 0 to `now`.
                (d.max_uj - d.last_uj).saturating_add(now)
            } else {
                now
            };
            d.last_uj = now;
            d.total_uj = d.total_uj.saturating_add(delta);
            total_uj = total_uj.saturating_add(d.total_uj);
        }
        Some(total_uj as f64 / 1e6)
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(root: &Path, name: &str, label: &str, energy_uj: u64, max_uj: u64) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("name"), format!("{label}\n")).unwrap();
        std::fs::write(dir.join("energy_uj"), format!("{energy_uj}\n")).unwrap();
        std::fs::write(dir.join("max_energy_range_uj"), format!("{max_uj}\n")).unwrap();
    }

    fn set_energy(root: &Path, name: &str, energy_uj: u64) {
        std::fs::write(root.join(name).join("energy_uj"), format!("{energy_uj}\n")).unwrap();
    }

    fn assert_joules(meter: &EnergyMeter, expected: f64) {
        let got = meter.joules().expect("a reading");
        assert!((got - expected).abs() < 1e-9, "got {got} J, expected {expected} J");
    }

    #[test]
    fn rapl_sums_packages_and_handles_wraparound() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        domain(root, "intel-rapl:0", "package-0", 1_000_000, 10_000_000);
        domain(root, "intel-rapl:1", "package-1", 5_000_000, 10_000_000);
        // Subdomains, psys and the MMIO twin are not counted.
        domain(root, "intel-rapl:0:0", "core", 0, 10_000_000);
        domain(root, "intel-rapl:2", "psys", 0, 10_000_000);
        domain(root, "intel-rapl-mmio:0", "package-0", 0, 10_000_000);

        let meter = EnergyMeter::start_with(None, root);
        assert_eq!(meter.source(), "rapl");
        assert_joules(&meter, 0.0);

        set_energy(root, "intel-rapl:0", 3_000_000); // +2 J
        set_energy(root, "intel-rapl:1", 5_500_000); // +0.5 J
        set_energy(root, "intel-rapl:0:0", 9_000_000);
        set_energy(root, "intel-rapl:2", 9_000_000);
        assert_joules(&meter, 2.5);

        // Package 1 wraps: 5.5 J -> 10 J (the range) -> 0 -> 1 J is +5.5 J.
        set_energy(root, "intel-rapl:1", 1_000_000);
        assert_joules(&meter, 8.0);
        // And keeps counting after the wrap.
        set_energy(root, "intel-rapl:1", 2_000_000);
        assert_joules(&meter, 9.0);
    }

    #[test]
    fn unreadable_or_absent_rapl_is_no_counter() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = EnergyMeter::start_with(None, &tmp.path().join("absent"));
        assert_eq!(missing.source(), "none");
        assert_eq!(missing.joules(), None);

        // A package whose counter cannot be read (root-only on recent kernels, here:
        // not a number) is skipped.
        let dir = tmp.path().join("intel-rapl:0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("name"), "package-0\n").unwrap();
        std::fs::write(dir.join("energy_uj"), "").unwrap();
        assert_eq!(EnergyMeter::start_with(None, tmp.path()).source(), "none");
    }

    #[test]
    fn meter_starts_on_this_machine() {
        // Whatever the machine has; it must not panic and must name its source.
        let meter = EnergyMeter::start(Some(0));
        assert!(["nvml", "rapl", "none"].contains(&meter.source()));
        if let Some(j) = meter.joules() {
            assert!(j >= 0.0, "{j}");
        }
    }
}
