//! What a model costs in memory, measured in a process of its own.
//!
//! The evaluating process holds libtorch, every variant and the datasets, so its
//! resident memory says nothing about one model. [`measure_in_child`] starts this
//! binary again (`slimbench __memory`, as optimum-benchmark isolates each measurement)
//! where [`measure_here`] does, in order:
//!
//! 1. loads the model as evaluation computes with it (packed int8, upcast, ...) and
//!    drops every fp32 tensor its kernels no longer read (each drop checked: the logits
//!    must stay identical);
//! 2. warms libtorch up on it at batch 1 and at the large batch, trims the allocator
//!    and reads the resident set;
//! 3. resets the kernel's high-water mark (`/proc/self/clear_refs`) and runs batch-1
//!    forwards, then the large batch, reading the peak of each;
//! 4. drops the model, trims and reads the resident set again: the baseline, the same
//!    warmed-up process without the model. Every figure is over it.
//!
//! `weights_bytes` is exact: the bytes of the weights as the model file stores them.
//! On CUDA the resident set does not see device memory; `cuda_peak_bytes` stays 0 (not
//! measured yet) and `mem_method` says so.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use slimbench_core::artifact::Kernel;
use slimbench_data::Split;
use slimbench_models::Model;
use tch::{Device, Tensor};

use crate::variant::{EvalError, load_for_eval};

/// The memory figures of one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryFigures {
    /// Bytes of the weights as stored.
    pub weights_bytes: u64,
    /// Resident set of the warmed-up process without a model.
    pub baseline_bytes: u64,
    /// What the loaded model adds to it.
    pub load_bytes: u64,
    /// Peak over the baseline during batch-1 forwards.
    pub peak_b1_bytes: u64,
    /// Peak over the baseline during forwards at the large batch size.
    pub peak_large_bytes: u64,
    /// CUDA allocator peak (0: not measured).
    pub cuda_peak_bytes: u64,
    /// fp32 tensors dropped because the model's kernels no longer read them.
    pub dropped_tensors: u64,
    /// How it was measured.
    pub method: String,
}

/// The weights' bytes in a safetensors file: everything after its JSON header.
pub fn stored_weight_bytes(file: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(file)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let total = f.metadata()?.len();
    Ok(total.saturating_sub(8 + u64::from_le_bytes(len)))
}

/// Bytes the C allocator has handed out and not had back (heap and mmapped chunks):
/// exact, unlike the resident set, which keeps pages malloc has not returned.
fn malloc_in_use() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads glibc's counters.
        let m = unsafe { libc::mallinfo2() };
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Make every allocation of 16 KiB or more its own mapping, returned to the kernel
/// when freed (glibc otherwise raises the threshold after the first free and keeps
/// later activations in the heap, where the resident set's high-water mark cannot see
/// them grow again).
fn fresh_mappings() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's tunables.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 0);
    }
}

/// Give freed heap memory back to the kernel, so the resident set shows what is held.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Generated images in a model's input shape (values do not matter for memory).
fn generated(channels: usize, rows: usize, cols: usize, n: usize) -> Split {
    Split {
        images: (0..n * channels * rows * cols).map(|i| (i * 7 % 251) as u8).collect(),
        labels: vec![0; n],
        channels,
        rows,
        cols,
        normalize: None,
    }
}

/// Measure `file` in this process (run it in a fresh one: see [`measure_in_child`]).
pub fn measure_here(file: &Path, device: Device, large_batch: usize) -> Result<MemoryFigures, EvalError> {
    let fail = |msg: String| EvalError::Compute { variant: file.display().to_string(), msg };
    let _guard = tch::no_grad_guard();
    fresh_mappings();
    let meta = slimbench_models::store::read_meta(file)?;
    let io = meta.io;
    let (c, h, w) = (io.channels as usize, io.height as usize, io.width as usize);
    let split = generated(c, h, w, large_batch.max(1));
    let rss = || slimbench_metrics::current_rss_bytes().unwrap_or(0);
    let high_water = |calls: &dyn Fn()| -> Result<u64, EvalError> {
        trim();
        if !slimbench_metrics::reset_peak_rss() {
            return Err(fail("cannot reset the resident set's high-water mark".into()));
        }
        calls();
        Ok(slimbench_metrics::peak_rss_bytes().unwrap_or(0))
    };

    // Load as evaluation does; drop what the kernels do not read.
    let loaded = load_for_eval(&meta.model, file, None, device, &split)?;
    let model = loaded.model;
    let dropped = if meta.kernel != Kernel::Dense { drop_unread(&model, &split, device) } else { 0 };
    // The inputs live through every reading, so no figure counts them.
    let x1 = crate::images_tensor(&split, 0, 1, device, model.kind());
    let xl = crate::images_tensor(&split, 0, large_batch.max(1), device, model.kind());
    // Warm libtorch up on this very model (kernels chosen, pools and caches made), so
    // that what stays after the model is dropped is the process without it.
    for _ in 0..3 {
        let _ = model.forward(&x1);
        let _ = model.forward(&xl);
    }
    trim();
    let (rss_with, held_with) = (rss(), malloc_in_use());
    let peak_over = |before: u64, hwm: u64| hwm.saturating_sub(before);
    let hwm_b1 = high_water(&|| {
        for _ in 0..20 {
            let _ = model.forward(&x1);
        }
    })?;
    let hwm_large = high_water(&|| {
        for _ in 0..3 {
            let _ = model.forward(&xl);
        }
    })?;
    drop(model);
    trim();
    let (baseline, held_without) = (rss(), malloc_in_use());
    drop((x1, xl));
    if baseline == 0 {
        return Err(fail("cannot read the resident set".into()));
    }
    // What the model holds: the allocator's count where readable, else the resident set.
    let load = match (held_with, held_without) {
        (Some(a), Some(b)) => a.saturating_sub(b),
        _ => rss_with.saturating_sub(baseline),
    };
    let on_cuda = device.is_cuda();
    Ok(MemoryFigures {
        weights_bytes: stored_weight_bytes(file)
            .map_err(|e| fail(format!("reading {}: {e}", file.display())))?,
        baseline_bytes: baseline,
        load_bytes: load,
        // The model, plus what the forwards needed beyond what was resident before them.
        peak_b1_bytes: load + peak_over(rss_with, hwm_b1),
        peak_large_bytes: load + peak_over(rss_with, hwm_large),
        cuda_peak_bytes: 0,
        dropped_tensors: dropped,
        method: format!(
            "child process: the allocator's bytes held with the model (warmed up) less those after dropping it; \
             peaks add the resident set's growth during batch-1 and batch-{large_batch} forwards{}{}",
            if dropped > 0 { "; fp32 copies of packed layers released" } else { "" },
            if on_cuda { "; CUDA memory not measured" } else { "" }
        ),
    })
}

/// Drop every tensor of `model` its kernels no longer read (the fp32 source of a
/// packed layer): each is emptied, and put back unless the logits stay identical.
fn drop_unread(model: &Model, split: &Split, device: Device) -> u64 {
    let probe = crate::images_tensor(split, 0, 1, device, model.kind());
    let reference = model.forward(&probe);
    let prev = std::panic::take_hook();
    // A forward that needs a dropped tensor fails inside libtorch: expected, quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let mut dropped = 0;
    for (_, mut t) in model.named() {
        // A new tensor on the same storage (a shallow clone would share the TensorImpl
        // and lose the storage with it).
        let keep = t.detach();
        t.set_data(&Tensor::empty([0], (t.kind(), t.device())));
        let same = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            model.forward(&probe).equal(&reference)
        }))
        .unwrap_or(false);
        if same {
            dropped += 1;
        } else {
            t.set_data(&keep);
        }
    }
    std::panic::set_hook(prev);
    dropped
}

/// This binary, when it is slimbench (which answers `__memory`); `None` in test
/// harnesses and other hosts of this library.
pub fn probe_exe() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    (exe.file_stem()? == "slimbench").then_some(exe)
}

/// Measure `file` in a fresh process of `exe` (this binary, which must answer
/// `__memory FILE --device D --batch B` with [`MemoryFigures`] as JSON).
pub fn measure_in_child(
    exe: &Path,
    file: &Path,
    device: &str,
    large_batch: usize,
) -> Result<MemoryFigures, String> {
    let out = Command::new(exe)
        .arg("__memory")
        .arg(file)
        .args(["--device", device, "--batch", &large_batch.to_string()])
        .env_remove("RUST_LOG")
        .output()
        .map_err(|e| format!("starting {}: {e}", exe.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{} __memory exited with {}: {}",
            exe.display(),
            out.status,
            err.lines().last().unwrap_or("")
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("reading the memory figures: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::artifact::{IoShape, ModelMeta};
    use slimbench_core::config::{MlpConfig, ModelConfig};
    use slimbench_models::store::{self, Encoding};

    #[test]
    fn weights_are_counted_as_stored_and_the_model_costs_about_that() {
        let dir = tempfile::tempdir().unwrap();
        // The 5.8M-parameter MLP: 23 MB of fp32 weights.
        let config = ModelConfig::Mlp(MlpConfig { hidden: vec![2048, 2048] });
        let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
        let m = Model::build("mlp", &config, io, Device::Cpu, Some(1)).unwrap();
        let path = dir.path().join("mlp.safetensors");
        store::save(&m, &ModelMeta::new("mlp", config, io, "d", "baseline"), &path, Encoding::Dense).unwrap();
        let params = m.param_count();
        let w = stored_weight_bytes(&path).unwrap();
        assert_eq!(w, params * 4);
        assert!((23_000_000..23_500_000).contains(&w), "{w}");
        // In this (test) process: the figures must be of the model's size, not the
        // process's (other tests allocate meanwhile: hence the wide bounds).
        let f = measure_here(&path, Device::Cpu, 64).unwrap();
        assert_eq!(f.weights_bytes, w);
        assert!(f.load_bytes > w / 2 && f.load_bytes < w * 2, "{f:?}");
        assert!(f.peak_b1_bytes >= f.load_bytes / 2 && f.peak_b1_bytes < 3 * w, "{f:?}");
    }
}
