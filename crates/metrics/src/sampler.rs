//! The system sampler: a background thread that records a [`SystemSample`] every
//! interval while a stage runs.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nvml_wrapper::Device;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::error::NvmlError;
use slimbench_core::records::SystemSample;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::energy::EnergyMeter;
use crate::gpu;

/// A CPU-use window shorter than this (two 10 ms kernel ticks) says nothing; its
/// sample gets NaN CPU columns.
const MIN_CPU_WINDOW: Duration = Duration::from_millis(20);

/// What [`SystemSampler`] samples, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    /// Time between samples (default 100 ms, 10 Hz).
    pub interval: Duration,
    /// The GPU to sample as a CUDA ordinal; `None` for CPU-only columns.
    pub gpu: Option<u32>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { interval: Duration::from_millis(100), gpu: None }
    }
}

/// What a [`SystemSampler`] recorded over one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct SampledStage {
    /// The samples, oldest first; the last is taken at [`stop`](SystemSampler::stop), so
    /// there is always at least one.
    pub samples: Vec<SystemSample>,
    /// Energy over the whole stage in joules; `None` without a counter.
    pub energy_j: Option<f64>,
    /// Which counter measured it: `"nvml"`, `"rapl"` or `"none"` (see [`EnergyMeter`]).
    pub energy_source: &'static str,
    /// When a GPU was asked for: why (some of) its columns are empty, e.g. `no NVML
    /// (...)`. The first failure only.
    pub gpu_note: Option<String>,
    /// Seconds from start to stop.
    pub duration_s: f64,
}

/// Samples this process's CPU and memory, the machine's CPU, the configured GPU and
/// the energy used, on a background thread, from [`start`](SystemSampler::start) until
/// [`stop`](SystemSampler::stop) (or drop, which discards the samples).
///
/// * `cpu_percent` is this process's CPU time over the window since the previous
///   sample (percent of one core); NaN for a window under 20 ms (only the stop sample
///   can be that short).
/// * `host_cpu_percent` is sysinfo's reading, which it refreshes at most every
///   [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] (200 ms on Linux): NaN until that long
///   after start, and at 10 Hz two samples in a row may repeat a value.
/// * The GPU columns come from NVML; without it (or when a query fails) they are NaN
///   or 0 and [`SampledStage::gpu_note`] says why. Nothing is ever panicked or logged
///   beyond one `debug` line.
///
/// ```no_run
/// use slimbench_metrics::{SamplerConfig, SystemSampler};
///
/// let sampler = SystemSampler::start("train", SamplerConfig { gpu: Some(0), ..Default::default() });
/// // ... run the stage ...
/// let sampled = sampler.stop();
/// println!("{} samples, {:?} J ({})", sampled.samples.len(), sampled.energy_j, sampled.energy_source);
/// ```
#[derive(Debug)]
pub struct SystemSampler {
    stage: String,
    config: SamplerConfig,
    started: Instant,
    meter: Arc<EnergyMeter>,
    stop_tx: Option<Sender<()>>,
    thread: Option<JoinHandle<Collected>>,
}

/// What the sampling thread hands back.
struct Collected {
    samples: Vec<SystemSample>,
    gpu_note: Option<String>,
}

impl SystemSampler {
    /// Start sampling stage `stage`: the energy meter starts now, everything else on
    /// the sampling thread. The first start that names a GPU initialises NVML and the
    /// CUDA driver (to match the ordinal to NVML's device), which can take a moment;
    /// later starts are cheap.
    pub fn start(stage: &str, config: SamplerConfig) -> SystemSampler {
        let started = Instant::now();
        let meter = Arc::new(EnergyMeter::start(config.gpu));
        let (stop_tx, stop_rx) = mpsc::channel();
        let probe_args = (stage.to_owned(), started, config.gpu, Arc::clone(&meter));
        let interval = config.interval.max(Duration::from_millis(1));
        let thread = std::thread::Builder::new()
            .name("slimbench-sampler".to_owned())
            .spawn(move || {
                let (stage, started, gpu, meter) = probe_args;
                sample_until_stopped(Probe::new(stage, started, gpu, meter), interval, stop_rx)
            })
            .map_err(|e| tracing::debug!("system sampler: no thread ({e}); one sample at stop"))
            .ok();
        SystemSampler { stage: stage.to_owned(), config, started, meter, stop_tx: Some(stop_tx), thread }
    }

    /// Stop sampling (taking one last sample now) and hand back what was recorded.
    pub fn stop(mut self) -> SampledStage {
        self.finish()
    }

    fn finish(&mut self) -> SampledStage {
        let duration_s = self.started.elapsed().as_secs_f64();
        drop(self.stop_tx.take());
        let collected = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(collected)) => collected,
            // No thread (or it died): one sample now, so the stage still has a row.
            _ => {
                let mut probe =
                    Probe::new(self.stage.clone(), self.started, self.config.gpu, Arc::clone(&self.meter));
                Collected { samples: vec![probe.sample()], gpu_note: probe.gpu_note }
            }
        };
        SampledStage {
            energy_j: collected.samples.last().map(|s| s.energy_j).filter(|j| j.is_finite()),
            samples: collected.samples,
            energy_source: self.meter.source(),
            gpu_note: collected.gpu_note,
            duration_s,
        }
    }
}

impl Drop for SystemSampler {
    fn drop(&mut self) {
        // After `stop` there is nothing left to do; otherwise stop the thread, quietly.
        drop(self.stop_tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sampling thread: a sample every `interval` (skipping ticks it fell behind on
/// rather than bursting), and one more when the sender hangs up.
fn sample_until_stopped(mut probe: Probe, interval: Duration, stop: Receiver<()>) -> Collected {
    let mut samples = Vec::new();
    let mut next = probe.started + interval;
    loop {
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {
                samples.push(probe.sample());
                next += interval;
                let now = Instant::now();
                if next <= now {
                    next = now + interval;
                }
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                samples.push(probe.sample());
                return Collected { samples, gpu_note: probe.gpu_note };
            }
        }
    }
}

/// Everything one sample reads, and what the next needs from the last.
struct Probe {
    stage: String,
    started: Instant,
    sys: System,
    pid: Option<Pid>,
    /// The previous refresh: when, and this process's CPU time then (ms).
    last_cpu: Option<(Instant, u64)>,
    /// sysinfo's machine-wide figure means something from here on.
    host_valid_from: Instant,
    gpu: Option<(Device<'static>, String)>,
    gpu_note: Option<String>,
    meter: Arc<EnergyMeter>,
}

impl Probe {
    fn new(stage: String, started: Instant, gpu: Option<u32>, meter: Arc<EnergyMeter>) -> Probe {
        let mut gpu_note = None;
        let gpu = gpu.and_then(|ordinal| match gpu::nvml_device(ordinal) {
            Ok(device) => Some((device, format!("cuda:{ordinal}"))),
            Err(why) => {
                note(&mut gpu_note, why);
                None
            }
        });
        let mut probe = Probe {
            stage,
            started,
            sys: System::new(),
            pid: sysinfo::get_current_pid().ok(),
            last_cpu: None,
            host_valid_from: Instant::now(),
            gpu,
            gpu_note,
            meter,
        };
        // The baseline both CPU figures are differences from.
        probe.last_cpu = probe.refresh_process().map(|(cpu_ms, _)| (Instant::now(), cpu_ms));
        probe.host_valid_from = Instant::now() + sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;
        probe
    }

    /// Refresh this process's CPU time and memory (and, through sysinfo, the machine's
    /// CPU use when due): `(cpu_ms, rss_bytes)`.
    fn refresh_process(&mut self) -> Option<(u64, u64)> {
        let pid = self.pid?;
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        self.sys.process(pid).map(|p| (p.accumulated_cpu_time(), p.memory()))
    }

    fn sample(&mut self) -> SystemSample {
        let before = Instant::now();
        let refreshed = self.refresh_process();
        let now = Instant::now();
        let mut cpu_percent = f64::NAN;
        let mut rss_bytes = 0;
        if let Some((cpu_ms, rss)) = refreshed {
            rss_bytes = rss;
            if let Some((then, then_ms)) = self.last_cpu {
                let window = now.duration_since(then);
                if window >= MIN_CPU_WINDOW {
                    cpu_percent =
                        cpu_ms.saturating_sub(then_ms) as f64 / (window.as_secs_f64() * 1e3) * 100.0;
                    self.last_cpu = Some((now, cpu_ms));
                }
            } else {
                self.last_cpu = Some((now, cpu_ms));
            }
        }
        let host_cpu_percent =
            if before >= self.host_valid_from { f64::from(self.sys.global_cpu_usage()) } else { f64::NAN };
        let mut sample = SystemSample {
            stage: self.stage.clone(),
            t_s: now.duration_since(self.started).as_secs_f64(),
            cpu_percent,
            host_cpu_percent,
            rss_bytes,
            gpu: String::new(),
            gpu_util_percent: f64::NAN,
            gpu_mem_used_bytes: 0,
            gpu_power_w: f64::NAN,
            gpu_temp_c: f64::NAN,
            gpu_sm_clock_mhz: f64::NAN,
            gpu_mem_clock_mhz: f64::NAN,
            energy_j: self.meter.joules().unwrap_or(f64::NAN),
        };
        if let Some((device, label)) = &self.gpu {
            let n = &mut self.gpu_note;
            sample.gpu = label.clone();
            sample.gpu_util_percent = read(n, label, "utilization", device.utilization_rates())
                .map_or(f64::NAN, |u| f64::from(u.gpu));
            sample.gpu_mem_used_bytes = read(n, label, "memory", device.memory_info()).map_or(0, |m| m.used);
            sample.gpu_power_w =
                read(n, label, "power", device.power_usage()).map_or(f64::NAN, |mw| f64::from(mw) / 1e3);
            sample.gpu_temp_c = read(n, label, "temperature", device.temperature(TemperatureSensor::Gpu))
                .map_or(f64::NAN, f64::from);
            sample.gpu_sm_clock_mhz =
                read(n, label, "SM clock", device.clock_info(Clock::SM)).map_or(f64::NAN, f64::from);
            sample.gpu_mem_clock_mhz =
                read(n, label, "memory clock", device.clock_info(Clock::Memory)).map_or(f64::NAN, f64::from);
        }
        sample
    }
}

/// A GPU reading, remembering the first failure.
fn read<T>(note_slot: &mut Option<String>, gpu: &str, what: &str, value: Result<T, NvmlError>) -> Option<T> {
    value.map_err(|e| note(note_slot, format!("{gpu}: reading {what}: {e}"))).ok()
}

fn note(slot: &mut Option<String>, why: String) {
    if slot.is_none() {
        tracing::debug!("system sampler: GPU columns incomplete: {why}");
        *slot = Some(why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keep a core busy for about `d`.
    fn busy_for(d: Duration) -> u64 {
        let end = Instant::now() + d;
        let mut x = 0u64;
        while Instant::now() < end {
            for i in 0..10_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
        }
        x
    }

    #[test]
    fn samples_cpu_and_memory_at_about_10_hz() {
        let sampler = SystemSampler::start("busy", SamplerConfig::default());
        std::hint::black_box(busy_for(Duration::from_millis(500)));
        let got = sampler.stop();
        let s = &got.samples;
        // ~6 expected; a loaded machine may delay the thread, so only a loose floor.
        assert!(s.len() >= 2, "{} samples", s.len());
        assert!(s.len() <= 20, "{} samples", s.len());
        assert!(got.duration_s >= 0.5, "{}", got.duration_s);
        assert!(s.iter().all(|x| x.stage == "busy" && x.rss_bytes > 0), "{s:?}");
        assert!(s.windows(2).all(|w| w[0].t_s < w[1].t_s), "t_s not increasing: {s:?}");
        assert!(s.iter().any(|x| x.cpu_percent > 0.0), "{s:?}");
        assert!(s.iter().all(|x| x.cpu_percent.is_nan() || x.cpu_percent >= 0.0), "{s:?}");
        assert!(s.iter().any(|x| (0.0..=100.0).contains(&x.host_cpu_percent)), "{s:?}");
        for x in s {
            assert_eq!(x.gpu, "");
            assert!(x.gpu_util_percent.is_nan() && x.gpu_power_w.is_nan() && x.gpu_temp_c.is_nan());
            assert!(x.gpu_sm_clock_mhz.is_nan() && x.gpu_mem_clock_mhz.is_nan());
            assert_eq!(x.gpu_mem_used_bytes, 0);
        }
        assert_eq!(got.gpu_note, None);
        assert_eq!(got.energy_j.is_some(), got.energy_source != "none");
    }

    #[test]
    fn a_short_stage_still_gets_a_sample() {
        let sampler =
            SystemSampler::start("short", SamplerConfig { interval: Duration::from_secs(10), gpu: None });
        let got = sampler.stop();
        assert_eq!(got.samples.len(), 1, "{:?}", got.samples);
        assert!(got.samples[0].rss_bytes > 0);
        assert!(got.duration_s < 10.0);
    }

    #[test]
    fn a_gpu_that_cannot_be_read_leaves_a_note_and_cpu_samples() {
        let sampler = SystemSampler::start("gpu", SamplerConfig { gpu: Some(0), ..Default::default() });
        std::hint::black_box(busy_for(Duration::from_millis(300)));
        let got = sampler.stop();
        assert!(!got.samples.is_empty());
        assert!(got.samples.iter().all(|x| x.rss_bytes > 0));
        if got.samples.iter().any(|x| x.gpu.is_empty()) {
            // No GPU here: the GPU columns are empty and the note says why.
            let why = got.gpu_note.as_deref().expect("a note");
            assert!(!why.is_empty() && !why.contains('\n'), "{why}");
            assert!(got.samples.iter().all(|x| x.gpu.is_empty() && x.gpu_util_percent.is_nan()));
        } else {
            assert!(got.samples.iter().all(|x| x.gpu == "cuda:0"));
        }
    }

    #[test]
    fn dropping_a_running_sampler_stops_it() {
        let sampler = SystemSampler::start("dropped", SamplerConfig::default());
        std::thread::sleep(Duration::from_millis(150));
        assert!(sampler.thread.as_ref().is_some_and(|t| !t.is_finished()), "the sampling thread runs");
        // The sampling thread's probe holds a reference to the energy meter until the
        // thread returns; the sampler holds the other.
        let meter = Arc::clone(&sampler.meter);
        assert_eq!(Arc::strong_count(&meter), 3);
        // Dropped on another thread, so a drop that never returns fails the test.
        let (dropped_tx, dropped_rx) = mpsc::channel();
        std::thread::spawn(move || {
            drop(sampler);
            let _ = dropped_tx.send(());
        });
        dropped_rx.recv_timeout(Duration::from_secs(10)).expect("drop returns within 10 s");
        // Only this test's reference is left: the sampling thread has returned (and
        // takes no more samples).
        assert_eq!(Arc::strong_count(&meter), 1);
    }
}
