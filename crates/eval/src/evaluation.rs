//! The evaluate stage's measurements, for every variant at once.
//!
//! 1. Each variant is loaded as it computes and its accuracy measured.
//! 2. Every variant, and every form timed beside one (its baseline, its simulated
//!    form), becomes a subject of one timing plan ([`crate::plan`]); a file loaded the
//!    same way is one subject however many variants refer to it. With `backends:`
//!    beyond libtorch, each stored file (not the simulated forms) is exported to ONNX
//!    and is one more subject per backend that can run it; its accuracy is measured on
//!    that backend and its predictions compared with libtorch's. The plan runs
//!    `repeat` times; figures pool the repetitions, the `repeats` table keeps each.
//! 3. Rows are filled from the plan: latency and throughput with their intervals and
//!    validity, speedups with bootstrap intervals and their [`Pace`], energy where
//!    there is a counter.
//! 4. Memory is measured per variant in a child process ([`crate::memory`]), and the
//!    server scenario ([`crate::server`]) runs where configured, after the plan so that
//!    nothing else shares the CPU while it times.

use std::path::{Path, PathBuf};

use slimbench_core::artifact::Kernel;
use slimbench_core::config::{BackendName, EvaluateParams, KindSet};
use slimbench_core::progress::Progress;
use slimbench_core::records::{
    LatencySample, MetricRow, Pace, REFERENCE_BACKEND, Records, RepeatRow, SpeedupRow, ThroughputRow,
    faster_verdict,
};
use slimbench_data::Split;
use slimbench_metrics::{EnergyMeter, Thresholds};
use slimbench_models::export::{self, Exported, Format};
use slimbench_models::runtime::{device_name, gpu_index};
use tch::Device;

use crate::accuracy::{Accuracy, Agreement, runner_logits};
use crate::backend::libtorch::TorchRunner;
use crate::backend::{self, Backend, BackendError, Runner, RunnerInfo, Variant};
use crate::memory::{self, MemoryFigures};
use crate::plan::{Figure, PlanSettings, Subject, batch_sizes, run_plan, speedup};
use crate::speedup::{Evidence, Form, FormSpec, conv_count, reasons};
use crate::variant::{EvalError, Loaded, load_for_eval};
use crate::{accuracy, server};

/// One variant to evaluate.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Variant name, unique in the stage.
    pub name: &'a str,
    /// Stage that produced it.
    pub stage: &'a str,
    /// Its model file.
    pub file: PathBuf,
    /// Test split of its dataset.
    pub test: &'a Split,
    /// Training seconds spent producing it.
    pub train_time_s: f64,
    /// Joules per epoch of the training that produced it, where measured.
    pub train_energy_per_epoch_j: Option<f64>,
    /// The model it was compressed from, by name (empty: no speedup check).
    pub baseline: String,
    /// Forms timed beside it for the speedup check, the baseline first; empty for none.
    pub forms: Vec<FormSpec>,
}

/// How the stage measures.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// The stage's parameters.
    pub params: &'a EvaluateParams,
    /// Where to run.
    pub device: Device,
    /// The stage's id.
    pub stage: &'a str,
    /// When a timing round counts as run on a busy machine.
    pub thresholds: Thresholds,
    /// How a model file gets its ONNX form for the backends that run ONNX
    /// ([`onnx_export`]: `slimbench_models::export::ensure`).
    pub export: fn(&Path) -> Result<Exported, String>,
}

/// The ONNX export of a model file: `<stem>.onnx` beside it, written unless a newer one
/// is there ([`slimbench_models::export::ensure`]).
pub fn onnx_export(file: &Path) -> Result<Exported, String> {
    export::ensure(file, Format::Onnx).map_err(|e| e.to_string())
}

/// Everything measured, and remarks for the report.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Metrics, latency, throughput, speedup, server, timing and repeats rows.
    pub records: Records,
    /// Notes for the stage's manifest.
    pub notes: Vec<String>,
}

/// A model file loaded one way: one subject of the plan.
struct Slot<'a> {
    file: PathBuf,
    kernel: Option<Kernel>,
    name: String,
    loaded: Loaded,
    test: &'a Split,
}

fn slot<'a>(
    slots: &mut Vec<Slot<'a>>,
    file: &Path,
    kernel: Option<Kernel>,
    name: String,
    test: &'a Split,
    device: Device,
) -> Result<usize, EvalError> {
    if let Some(i) = slots.iter().position(|s| s.file == file && s.kernel == kernel) {
        return Ok(i);
    }
    let loaded = load_for_eval(&name, file, kernel, device, test)?;
    slots.push(Slot { file: file.to_path_buf(), kernel, name, loaded, test });
    Ok(slots.len() - 1)
}

/// Validity of several figures together: invalid when any is, with each reason.
fn combined(figures: &[(usize, &Figure)]) -> (String, String) {
    let why: Vec<String> = figures
        .iter()
        .filter_map(|(b, f)| {
            let (v, why) = f.validity();
            (v != "valid").then(|| format!("batch {b}: {why}"))
        })
        .collect();
    if why.is_empty() { ("valid".into(), String::new()) } else { ("invalid".into(), why.join(" | ")) }
}

/// One variant on one backend beyond libtorch, checked before it is timed.
struct Other {
    /// Accuracy on the backend and agreement with libtorch, per candidate owning the slot.
    checks: Vec<(usize, Accuracy, Agreement)>,
    /// What it runs.
    info: RunnerInfo,
}

/// Load `variant` on `b` at every batch size and run each runner once (so a backend
/// that cannot run the file is found before the plan, not in it).
fn load_runners<'a>(
    b: &dyn Backend,
    variant: &Variant<'a>,
    batches: &[usize],
    test: &Split,
) -> Result<Vec<Box<dyn Runner + 'a>>, BackendError> {
    let _guard = tch::no_grad_guard();
    let mut runners = Vec::with_capacity(batches.len());
    for &batch in batches {
        let mut r = b.load(variant, batch)?;
        let xs = r.prepare(test, batch)?;
        r.run(&xs[0])?;
        runners.push(r);
    }
    Ok(runners)
}

/// Measure every candidate.
pub fn evaluate(
    candidates: &[Candidate<'_>],
    s: &Settings<'_>,
    progress: &dyn Progress,
) -> Result<Outcome, EvalError> {
    let p = s.params;
    let lp = &p.latency;
    let mut out = Outcome::default();
    let threads = tch::get_num_threads().max(1) as usize;
    let opts = backend::Options { device: s.device, threads };

    // 0. The backends: libtorch first, then the others that can run here.
    let mut backends: Vec<Box<dyn Backend>> = vec![backend::backend(BackendName::Libtorch, opts)];
    for &name in p.backends.iter().filter(|&&b| b != BackendName::Libtorch) {
        let b = backend::backend(name, opts);
        match b.available() {
            Ok(()) => backends.push(b),
            Err(why) => {
                tracing::warn!(backend = %name, "not timed: {why}");
                out.notes.push(format!("backend {name}: not timed: {why}"));
            }
        }
    }

    // 1. Load every subject; accuracy of every candidate.
    let mut slots: Vec<Slot<'_>> = Vec::new();
    let mut own = Vec::with_capacity(candidates.len());
    let mut forms: Vec<Vec<(Form, usize)>> = Vec::with_capacity(candidates.len());
    for c in candidates {
        own.push(slot(&mut slots, &c.file, None, c.name.to_string(), c.test, s.device)?);
        let mut fs = Vec::new();
        for f in &c.forms {
            let name = match f.form {
                Form::Baseline => c.baseline.clone(),
                Form::Simulated => format!("{} (simulated)", c.name),
                Form::Materialized => c.name.to_string(),
            };
            fs.push((f.form, slot(&mut slots, &f.file, f.kernel, name, c.test, s.device)?));
        }
        forms.push(fs);
    }
    let accuracies: Vec<_> = candidates
        .iter()
        .zip(&own)
        .map(|(c, &i)| accuracy::accuracy(&slots[i].loaded.model, c.test, p.batch_size))
        .collect();

    // 1b. The ONNX exports of the stored files, for the backends that run them.
    let needs_onnx = backends.iter().any(|b| b.needs_onnx());
    let exports: Vec<Option<Result<Exported, String>>> =
        slots.iter().map(|sl| (needs_onnx && sl.kernel.is_none()).then(|| (s.export)(&sl.file))).collect();
    let onnx_names: Vec<&str> = backends.iter().filter(|b| b.needs_onnx()).map(|b| b.name()).collect();
    for (sl, e) in slots.iter().zip(&exports) {
        if let Some(Err(e)) = e {
            tracing::warn!(variant = %sl.name, "no ONNX export: {e}");
            out.notes.push(format!(
                "{}: not timed on {}: no ONNX export: {e}",
                sl.name,
                onnx_names.join(", ")
            ));
        }
    }

    // 2. The subjects: every slot on libtorch (subject i is slot i), then each stored
    //    file on each other backend that loads and runs it; its accuracy there and its
    //    agreement with libtorch's predictions.
    let batches = batch_sizes(lp);
    let mut subjects: Vec<Subject<'_>> = Vec::new();
    let mut libtorch_info = Vec::with_capacity(slots.len());
    for sl in &slots {
        let runners: Vec<Box<dyn Runner + '_>> =
            batches.iter().map(|_| backends[0].load(&variant_of(sl, None), 0)).collect::<Result<_, _>>()?;
        libtorch_info.push(runners[0].info().clone());
        subjects.push(Subject { name: sl.name.clone(), runners, test: sl.test });
    }
    // index[backend][slot]: its subject, for the backends after libtorch.
    let mut index: Vec<Vec<Option<usize>>> = vec![vec![None; slots.len()]; backends.len()];
    for (i, x) in index[0].iter_mut().enumerate() {
        *x = Some(i);
    }
    let mut others: Vec<Vec<Option<Other>>> =
        (0..backends.len()).map(|_| (0..slots.len()).map(|_| None).collect()).collect();
    if backends.len() > 1 {
        // libtorch's logits of each candidate, the reference.
        let reference: Vec<Vec<f32>> = candidates
            .iter()
            .zip(&own)
            .map(|(c, &i)| {
                runner_logits(&mut TorchRunner::new(&slots[i].loaded.model, threads), c.test, p.batch_size)
            })
            .collect::<Result<_, _>>()?;
        for (bi, b) in backends.iter().enumerate().skip(1) {
            for (si, sl) in slots.iter().enumerate() {
                let Some(Ok(exported)) = &exports[si] else { continue };
                let variant = variant_of(sl, Some(&exported.path));
                let checked = load_runners(b.as_ref(), &variant, &batches, sl.test).and_then(|runners| {
                    let info = runners[0].info().clone();
                    let mut checks = Vec::new();
                    for (ci, c) in candidates.iter().enumerate().filter(|(ci, _)| own[*ci] == si) {
                        let mut r = b.load(&variant, p.batch_size.min(c.test.len()).max(1))?;
                        let logits = runner_logits(r.as_mut(), c.test, p.batch_size)?;
                        let acc = Accuracy::of_logits(&logits, &c.test.labels);
                        checks.push((ci, acc, Agreement::of(&reference[ci], &logits, c.test.len())));
                    }
                    Ok((runners, Other { checks, info }))
                });
                match checked {
                    Ok((runners, other)) => {
                        index[bi][si] = Some(subjects.len());
                        subjects.push(Subject {
                            name: format!("{} [{}]", sl.name, b.name()),
                            runners,
                            test: sl.test,
                        });
                        others[bi][si] = Some(other);
                    }
                    Err(e) => {
                        tracing::warn!(variant = %sl.name, "not timed: {e}");
                        out.notes.push(format!("{}: not timed on {e}", sl.name));
                    }
                }
            }
        }
    }

    // 3. The timing plan, `repeat` times.
    let mut pooled: Vec<Vec<Figure>> = Vec::new();
    let repeat = p.repeat.max(1);
    // (backend, candidate, subject) of every metrics row to come.
    let rows: Vec<(usize, usize, usize)> = (0..backends.len())
        .flat_map(|bi| (0..candidates.len()).map(move |ci| (bi, ci)))
        .filter_map(|(bi, ci)| index[bi][own[ci]].map(|i| (bi, ci, i)))
        .collect();
    for rep in 0..repeat {
        let settings = PlanSettings {
            latency: lp,
            thresholds: s.thresholds,
            device: s.device,
            stage: s.stage,
            repeat: rep as u64,
        };
        let r = run_plan(&mut subjects, &settings, progress)?;
        for &(bi, ci, i) in &rows {
            for f in &r.figures[i] {
                let (lo, hi) = f.p50_interval();
                out.records.repeats.push(RepeatRow {
                    variant: candidates[ci].name.to_string(),
                    backend: backends[bi].name().to_string(),
                    repeat: rep as u64,
                    batch_size: f.batch_size as u64,
                    p50_us: f.p50_us(),
                    p50_lo_us: lo,
                    p50_hi_us: hi,
                    validity: f.validity().0,
                });
            }
        }
        out.records.timing.extend(r.rounds);
        let offset = (rep * lp.rounds.max(1)) as u64;
        if pooled.is_empty() {
            pooled = r.figures;
        } else {
            for (acc, row) in pooled.iter_mut().zip(r.figures) {
                for (a, f) in acc.iter_mut().zip(row) {
                    a.samples_us.extend(f.samples_us);
                    a.rounds.extend(f.rounds.iter().map(|r| r + offset));
                    a.energy_per_call_j.extend(f.energy_per_call_j);
                    a.busy.extend(f.busy);
                    a.rounds_timed += f.rounds_timed;
                }
            }
        }
    }
    if repeat == 1 {
        out.records.repeats.clear();
    }
    let b1 = 0; // batch 1 is always first
    let large = batches.len() - 1;
    let has_energy = EnergyMeter::start(gpu_index(s.device)).joules().is_some();
    if !has_energy {
        out.notes.push(
            "energy: not measured: this machine exposes no energy counter (no readable RAPL, no NVML GPU)"
                .into(),
        );
    }

    // 4. Rows: libtorch's, one per candidate, then the other backends'.
    for &(bi, ci, subject) in &rows {
        let c = &candidates[ci];
        let backend_name = backends[bi].name();
        let sl = &slots[own[ci]];
        let figs = &pooled[subject];
        let f1 = &figs[b1];
        let fl = &figs[large];
        let (lo, hi) = f1.p50_interval();
        let (flo, fhi) = fl.p50_interval();
        let lb = batches[large] as f64;
        let with_batch: Vec<(usize, &Figure)> = batches.iter().copied().zip(figs.iter()).collect();
        let (validity, invalid_reason) = combined(&with_batch);
        let (e, elo, ehi) = f1.energy_per_1k_j();
        let model = &sl.loaded.model;
        let meta = &sl.loaded.meta;
        let mut row = MetricRow {
            variant: c.name.to_string(),
            stage: c.stage.to_string(),
            backend: backend_name.to_string(),
            backend_detail: String::new(),
            disagreements: 0,
            max_logit_diff: f64::NAN,
            technique: meta.technique.clone(),
            model: meta.model.clone(),
            model_kind: meta.config.kind().to_string(),
            dataset: meta.dataset.clone(),
            device: device_name(s.device),
            precision: meta.precision.as_str().to_string(),
            compute_precision: sl.loaded.compute_precision.clone(),
            sparsity: model.sparsity(),
            accuracy: accuracies[ci].accuracy,
            test_images: accuracies[ci].n as u64,
            latency_p50_us: f1.p50_us(),
            latency_p50_lo_us: lo,
            latency_p50_hi_us: hi,
            latency_p90_us: slimbench_core::records::percentile(&f1.samples_us, 90.0),
            latency_p99_us: slimbench_core::records::percentile(&f1.samples_us, 99.0),
            latency_p90_bound_us: f1.upper_bound(90.0),
            latency_p99_bound_us: f1.upper_bound(99.0),
            latency_mean_us: f1.samples_us.iter().sum::<f64>() / f1.samples_us.len().max(1) as f64,
            latency_iters: f1.samples_us.len() as u64,
            latency_warmup: lp.warmup as u64,
            latency_duration_s: f1.duration_s(),
            rounds: f1.rounds_timed as u64,
            repeats: repeat as u64,
            repeat_spread_pct: f64::NAN,
            validity,
            invalid_reason,
            threads: threads as u64,
            throughput_ips: lb / (fl.p50_us() / 1e6),
            batch_size: batches[large] as u64,
            throughput_lo_ips: lb / (fhi / 1e6),
            throughput_hi_ips: lb / (flo / 1e6),
            file_size_bytes: std::fs::metadata(&c.file).map(|m| m.len()).unwrap_or(0),
            params: model.param_count(),
            nonzero_params: model.nonzero_count(),
            train_time_s: c.train_time_s,
            notes: sl.loaded.notes.join("; "),
            speedup_b1: f64::NAN,
            speedup_b1_lo: f64::NAN,
            speedup_b1_hi: f64::NAN,
            speedup_large: f64::NAN,
            speedup_large_lo: f64::NAN,
            speedup_large_hi: f64::NAN,
            faster: String::new(),
            energy_per_1k_inferences_j: e,
            energy_per_1k_lo_j: elo,
            energy_per_1k_hi_j: ehi,
            train_energy_per_epoch_j: c.train_energy_per_epoch_j.unwrap_or(f64::NAN),
            ..Default::default()
        };
        if bi == 0 {
            row.backend_detail = libtorch_info[own[ci]].describe();
        } else {
            let other = others[bi][own[ci]].as_ref().expect("a subject beyond libtorch was checked");
            let exported = match &exports[own[ci]] {
                Some(Ok(x)) => x,
                _ => unreachable!("a subject beyond libtorch has its ONNX file"),
            };
            let (_, acc, agree) =
                other.checks.iter().find(|(i, ..)| *i == ci).expect("checked per candidate");
            row.backend_detail = other.info.describe();
            row.compute_precision = other.info.precision.clone();
            row.accuracy = acc.accuracy;
            row.test_images = acc.n as u64;
            row.disagreements = agree.disagreements as u64;
            row.max_logit_diff = agree.max_logit_diff;
            row.file_size_bytes = exported.bytes;
            let mut notes = vec![format!("runs {}", exported.path.display())];
            notes.extend(exported.notes.iter().cloned());
            if agree.is_flagged() {
                let flag = format!(
                    "predictions differ from libtorch's on {} of {} test images (max |logit diff| {:.3e})",
                    agree.disagreements, agree.n, agree.max_logit_diff
                );
                tracing::warn!(variant = c.name, backend = backend_name, "{flag}");
                out.notes.push(format!("{} on {backend_name}: {flag}", c.name));
                notes.insert(0, flag);
            }
            row.notes = notes.join("; ");
            row.mem_method = format!("not measured: memory is measured on {REFERENCE_BACKEND} only");
        }
        if repeat > 1 {
            let per: Vec<f64> = out
                .records
                .repeats
                .iter()
                .filter(|r| r.variant == c.name && r.backend == backend_name && r.batch_size == 1)
                .map(|r| r.p50_us)
                .collect();
            let (mn, mx) = per.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
            row.repeat_spread_pct = (mx - mn) / slimbench_core::records::percentile(&per, 50.0) * 100.0;
        }
        out.records.latency.extend(f1.samples_us.iter().zip(&f1.rounds).enumerate().map(|(i, (&us, &r))| {
            LatencySample {
                variant: c.name.to_string(),
                backend: backend_name.to_string(),
                batch_size: 1,
                iter: i as u64,
                micros: us,
                round: r,
            }
        }));
        for (j, &b) in batches.iter().enumerate() {
            if !lp.batch_sizes.contains(&b) {
                continue;
            }
            let f = &figs[j];
            let (lo, hi) = f.p50_interval();
            let (v, why) = f.validity();
            out.records.throughput.push(ThroughputRow {
                variant: c.name.to_string(),
                backend: backend_name.to_string(),
                batch_size: b as u64,
                repeats: f.samples_us.len() as u64,
                p50_ms: f.p50_us() / 1e3,
                p50_lo_ms: lo / 1e3,
                p50_hi_ms: hi / 1e3,
                images_per_s: b as f64 / (f.p50_us() / 1e6),
                duration_s: f.duration_s(),
                validity: v,
                invalid_reason: why,
            });
        }
        if bi == 0 && !forms[ci].is_empty() {
            speedup_rows(c, &forms[ci], &slots, &pooled, &batches, &mut row, &mut out.records.speedup);
        } else if let Some(&(Form::Baseline, base)) = forms[ci].first() {
            // The same baseline, on the same backend: its ONNX file beside the variant's.
            if let Some(base_subject) = index[bi][base] {
                let pair = OtherPair {
                    backend: backend_name,
                    what: &others[bi][own[ci]].as_ref().expect("checked").info,
                    base_file: exports[base].as_ref().and_then(|e| e.as_ref().ok()).map_or(0, |e| e.bytes),
                    file: row.file_size_bytes,
                    base: base_subject,
                    stored: subject,
                };
                other_speedup_rows(c, &pair, &pooled, &batches, &mut row, &mut out.records.speedup);
            }
        }
        out.records.metrics.push(row);
    }

    // 5. Memory (libtorch rows, the first one per candidate), then the server scenario
    //    (on libtorch).
    if p.memory {
        let exe = memory::probe_exe();
        for (ci, c) in candidates.iter().enumerate() {
            let figures = match &exe {
                Some(exe) => memory::measure_in_child(exe, &c.file, &device_name(s.device), batches[large]),
                None => memory::measure_here(&c.file, s.device, batches[large])
                    .map(|f| MemoryFigures {
                        method: format!("in this process (no slimbench binary): {}", f.method),
                        ..f
                    })
                    .map_err(|e| e.to_string()),
            };
            let row = &mut out.records.metrics[ci];
            match figures {
                Ok(f) => {
                    row.weights_bytes = f.weights_bytes;
                    row.mem_baseline_bytes = f.baseline_bytes;
                    row.mem_load_bytes = f.load_bytes;
                    row.mem_peak_b1_bytes = f.peak_b1_bytes;
                    row.mem_peak_large_bytes = f.peak_large_bytes;
                    row.cuda_peak_bytes = f.cuda_peak_bytes;
                    row.mem_method = f.method;
                }
                Err(e) => {
                    row.weights_bytes = memory::stored_weight_bytes(&c.file).unwrap_or(0);
                    row.mem_method = format!("not measured: {e}");
                    out.notes.push(format!("{}: memory not measured: {e}", c.name));
                }
            }
        }
    }
    if let Some(sp) = &p.server {
        for (ci, c) in candidates.iter().enumerate() {
            if sp.variants.as_ref().is_some_and(|v| !v.iter().any(|n| n == c.name)) {
                continue;
            }
            let figs = &pooled[own[ci]];
            let per_image_large = figs[large].p50_us() / batches[large] as f64;
            let rows = server::search(
                c.name,
                &slots[own[ci]].loaded.model,
                c.test,
                sp,
                figs[b1].p50_us(),
                per_image_large * sp.max_batch as f64,
            )?;
            if let Some(best) = rows.iter().find(|r| r.best == "yes") {
                tracing::info!(
                    variant = c.name,
                    rate_qps = format!("{:.0}", best.rate_qps),
                    p99_ms = format!("{:.3}", best.p99_ms),
                    "server: highest rate within the p99 target"
                );
            } else {
                out.notes.push(format!(
                    "{}: server: no rate tried met the {} ms p99 target",
                    c.name, sp.target_p99_ms
                ));
            }
            out.records.server.extend(rows);
        }
    }
    Ok(out)
}

/// A slot as a backend sees it.
fn variant_of<'a>(sl: &'a Slot<'_>, onnx: Option<&'a Path>) -> Variant<'a> {
    Variant {
        name: &sl.name,
        file: &sl.file,
        loaded: &sl.loaded,
        onnx: onnx.ok_or("the variant was not exported to ONNX for this evaluation"),
    }
}

/// A variant and its baseline on one backend beyond libtorch.
struct OtherPair<'a> {
    backend: &'a str,
    what: &'a RunnerInfo,
    base_file: u64,
    file: u64,
    base: usize,
    stored: usize,
}

/// The speedup rows of one candidate on a backend beyond libtorch (its baseline's and
/// its own ONNX files timed on that backend) and its metrics row's speedup columns.
fn other_speedup_rows(
    c: &Candidate<'_>,
    pair: &OtherPair<'_>,
    pooled: &[Vec<Figure>],
    batches: &[usize],
    row: &mut MetricRow,
    out: &mut Vec<SpeedupRow>,
) {
    let large = batches.len() - 1;
    let (s1, s1lo, s1hi) = speedup(&pooled[pair.base][0], &pooled[pair.stored][0]);
    let (sl, sllo, slhi) = if large > 0 {
        speedup(&pooled[pair.base][large], &pooled[pair.stored][large])
    } else {
        (f64::NAN, f64::NAN, f64::NAN)
    };
    row.speedup_b1 = s1;
    row.speedup_b1_lo = s1lo;
    row.speedup_b1_hi = s1hi;
    row.speedup_large = sl;
    row.speedup_large_lo = sllo;
    row.speedup_large_hi = slhi;
    row.faster = faster_verdict(Pace::of(s1, s1lo, s1hi), Pace::of(sl, sllo, slhi)).to_string();
    let forms = [
        (
            Form::Baseline,
            pair.base,
            pair.base_file,
            format!("the model it was compressed from, on {}", pair.backend),
        ),
        (
            Form::Materialized,
            pair.stored,
            pair.file,
            format!("as stored, exported to ONNX, on {}", pair.backend),
        ),
    ];
    for (form, i, file_bytes, what) in forms {
        for (j, &bsz) in batches.iter().enumerate() {
            let f = &pooled[i][j];
            let (lo, hi) = f.p50_interval();
            let is_base = form == Form::Baseline;
            let (s, slo, shi) = if is_base { (1.0, 1.0, 1.0) } else { speedup(&pooled[pair.base][j], f) };
            let (validity, invalid_reason) = f.validity();
            out.push(SpeedupRow {
                variant: c.name.to_string(),
                backend: pair.backend.to_string(),
                baseline: c.baseline.clone(),
                form: form.as_str().to_string(),
                what: what.clone(),
                batch_size: bsz as u64,
                samples: f.samples_us.len() as u64,
                p50_us: f.p50_us(),
                p50_lo_us: lo,
                p50_hi_us: hi,
                images_per_s: bsz as f64 / (f.p50_us() / 1e6),
                file_bytes,
                speedup: s,
                speedup_lo: slo,
                speedup_hi: shi,
                faster: if is_base { String::new() } else { Pace::of(s, slo, shi).as_str().to_string() },
                validity,
                invalid_reason,
                why: if is_base { String::new() } else { pair.what.describe() },
            });
        }
    }
}

/// The speedup rows of one candidate (a row per form and batch size) and its metrics
/// row's speedup columns (of the form as stored).
fn speedup_rows(
    c: &Candidate<'_>,
    forms: &[(Form, usize)],
    slots: &[Slot<'_>],
    pooled: &[Vec<Figure>],
    batches: &[usize],
    row: &mut MetricRow,
    out: &mut Vec<SpeedupRow>,
) {
    let base = forms[0].1;
    let large = batches.len() - 1;
    let stored = forms
        .iter()
        .find(|f| f.0 == Form::Materialized)
        .or_else(|| forms.iter().find(|f| f.0 == Form::Simulated))
        .map_or(base, |f| f.1);
    let (s1, s1lo, s1hi) = speedup(&pooled[base][0], &pooled[stored][0]);
    let (sl, sllo, slhi) = if large > 0 {
        speedup(&pooled[base][large], &pooled[stored][large])
    } else {
        (f64::NAN, f64::NAN, f64::NAN)
    };
    row.speedup_b1 = s1;
    row.speedup_b1_lo = s1lo;
    row.speedup_b1_hi = s1hi;
    row.speedup_large = sl;
    row.speedup_large_lo = sllo;
    row.speedup_large_hi = slhi;
    row.faster = faster_verdict(Pace::of(s1, s1lo, s1hi), Pace::of(sl, sllo, slhi)).to_string();
    let v = &slots[stored].loaded;
    let b = &slots[base].loaded;
    let why = reasons(&Evidence {
        variant: &v.meta,
        variant_compute: &v.compute_precision,
        variant_params: v.model.param_count(),
        baseline: &b.meta,
        baseline_params: b.model.param_count(),
        convs: conv_count(&v.model),
        conv_shapes: v
            .model
            .convs()
            .iter()
            .map(|cv| {
                (cv.name().to_string(), cv.weight().size()[1] * cv.geometry().groups, cv.weight().size()[0])
            })
            .collect(),
        materialized: forms.iter().any(|f| f.0 == Form::Materialized),
        speedup_b1: s1,
        speedup_large: sl,
        large: batches[large],
    })
    .join("; ");
    for (k, &(form, i)) in forms.iter().enumerate() {
        let spec = &c.forms[k];
        let file_bytes = std::fs::metadata(&spec.file).map(|m| m.len()).unwrap_or(0);
        for (j, &bsz) in batches.iter().enumerate() {
            let f = &pooled[i][j];
            let (lo, hi) = f.p50_interval();
            let is_base = form == Form::Baseline;
            let (s, slo, shi) = if is_base { (1.0, 1.0, 1.0) } else { speedup(&pooled[base][j], f) };
            let (validity, invalid_reason) = f.validity();
            out.push(SpeedupRow {
                variant: c.name.to_string(),
                backend: REFERENCE_BACKEND.to_string(),
                baseline: c.baseline.clone(),
                form: form.as_str().to_string(),
                what: spec.what.clone(),
                batch_size: bsz as u64,
                samples: f.samples_us.len() as u64,
                p50_us: f.p50_us(),
                p50_lo_us: lo,
                p50_hi_us: hi,
                images_per_s: bsz as f64 / (f.p50_us() / 1e6),
                file_bytes,
                speedup: s,
                speedup_lo: slo,
                speedup_hi: shi,
                faster: if is_base { String::new() } else { Pace::of(s, slo, shi).as_str().to_string() },
                validity,
                invalid_reason,
                why: if is_base { String::new() } else { why.clone() },
            });
        }
    }
}
