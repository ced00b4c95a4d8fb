//! Execute: run a [`Plan`]'s stages in order through a [`StageRunner`], reusing cached
//! stages, and assemble the run directory.
//!
//! ```text
//! results/<pipeline>/
//!   cache/<stage>/<key>/          stage outputs, shared by all runs (see crate::cache)
//!   .partial-<run-id>-XXXX/       the run being assembled (deleted if it fails)
//!   <run-id>/                     a finished run (renamed into place at the end)
//!   latest -> <run-id>            the newest finished run (by start time)
//! ```
//!
//! A run id is the start time, `YYYYMMDD-HHMMSS` (UTC), then `-shard-IofN` for a
//! shard, then `-2`, `-3`, ... when runs started in the same second: runs at the same
//! time on one results directory each get their own (the `rundir` module says how).
//!
//! A failing or interrupted run leaves no run directory behind, but every stage that
//! finished stays in the cache, so the next run resumes after it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use slimbench_core::artifact::{RunInfo, StageManifest, StageStatus, StageSummary, VariantOut};
use slimbench_core::config::StageParams;
use slimbench_core::fsutil::{self, FsError, StagingDir};
use slimbench_core::progress::Progress;
use slimbench_core::records::Records;
use slimbench_core::{TOOL_VERSION, cancel};
use slimbench_data::{DataError, DataLookup, Dataset};

use crate::cache::{Cache, InputKey, KeyInputs, hash_files};
use crate::resolve::{Plan, PlannedStage, explicit_dataset};
use crate::rundir;

/// Error type stage runners return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Datasets loaded for a run, by name.
pub type Datasets = HashMap<String, Arc<Dataset>>;

/// Facts about where the run computes, supplied by the runner.
#[derive(Debug, Clone, Default)]
pub struct RunEnv {
    /// Resolved device (`cpu`, `cuda:0`).
    pub device: String,
    /// Whether CUDA is available.
    pub cuda_available: bool,
    /// libtorch intra-op threads.
    pub threads: usize,
    /// libtorch version.
    pub torch_version: String,
    /// Git revision of the slimbench build.
    pub git_revision: String,
    /// The machine.
    pub host: slimbench_core::artifact::HostInfo,
    /// Its CUDA devices.
    pub gpus: Vec<slimbench_core::artifact::GpuInfo>,
    /// Why `gpus` is empty, when it is.
    pub no_gpu_reason: String,
}

/// A finished stage that another stage needs.
#[derive(Debug, Clone)]
pub struct StageInput {
    /// Instance id.
    pub id: String,
    /// Id as written in the file.
    pub base_id: String,
    /// Directory holding its files.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: StageManifest,
}

impl StageInput {
    /// Path of one of its model variants' files.
    pub fn variant_path(&self, v: &VariantOut) -> PathBuf {
        self.dir.join(&v.file)
    }
}

/// What a runner gets to run one stage.
pub struct StageContext<'a> {
    /// The whole plan.
    pub plan: &'a Plan,
    /// The stage.
    pub stage: &'a PlannedStage,
    /// Where to write the stage's files.
    pub out_dir: &'a Path,
    /// The stages in `needs`, in order.
    pub inputs: &'a [StageInput],
    /// Loaded datasets.
    pub datasets: &'a Datasets,
    /// Progress bars.
    pub progress: &'a dyn Progress,
    /// Device facts.
    pub env: &'a RunEnv,
}

/// What a stage produced (the executor adds the bookkeeping to make a manifest).
#[derive(Debug, Default)]
pub struct StageOutput {
    /// Models written into `out_dir`.
    pub variants: Vec<VariantOut>,
    /// Rows for the run's tables.
    pub records: Records,
    /// Remarks for the report.
    pub notes: Vec<String>,
}

/// The stage implementations (libtorch lives behind this trait).
pub trait StageRunner {
    /// Device facts for this run.
    fn env(&self) -> &RunEnv;
    /// Run a cached stage kind (everything but `report`), writing into `ctx.out_dir`.
    fn run_stage(&self, ctx: &StageContext<'_>) -> Result<StageOutput, BoxError>;
    /// Write the run's tables (`metrics.parquet`, ...) into `run_dir`.
    fn write_tables(&self, run_dir: &Path, records: &Records) -> Result<(), BoxError>;
    /// Render a report stage into `run_dir` (tables and `run.json` are already there).
    fn render_report(&self, ctx: &StageContext<'_>, run_dir: &Path) -> Result<Vec<PathBuf>, BoxError>;
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A stage failed.
    #[error("stage `{stage}` failed: {source}")]
    Stage {
        /// Stage id.
        stage: String,
        /// The cause.
        source: BoxError,
    },
    /// Ctrl-C.
    #[error(
        "interrupted during stage `{stage}`; finished stages are cached and the next run resumes after them"
    )]
    Interrupted {
        /// The stage that was running.
        stage: String,
    },
    /// Writing tables or the report failed.
    #[error("{what}: {source}")]
    Output {
        /// What was being written.
        what: &'static str,
        /// The cause.
        source: BoxError,
    },
    /// A file operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Options of `slimbench run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Root of all results (`results/`).
    pub results_dir: PathBuf,
    /// Rerun every stage.
    pub force: bool,
    /// Rerun these stages (ids as written, or instance ids).
    pub force_stages: Vec<String>,
    /// The shard this run is (its plan already cut by [`crate::shard_plan`]); named in
    /// the run id and `run.json`.
    pub shard: Option<crate::Shard>,
    /// The distributed-launch environment, recorded in `run.json`.
    pub dist: Option<slimbench_core::dist::DistEnv>,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Its directory.
    pub dir: PathBuf,
    /// Its metadata.
    pub info: RunInfo,
}

/// Load every dataset the plan's stages name (this also validates the files), before
/// any output directory exists.
pub fn load_datasets(plan: &Plan, lookup: &DataLookup) -> Result<Datasets, DataError> {
    let mut out = Datasets::new();
    for name in plan.used_datasets() {
        let cfg = &plan.datasets[&name];
        let t = Instant::now();
        let ds = slimbench_data::load(&name, cfg, plan.defaults.seed, lookup)?;
        tracing::info!(
            dataset = %name,
            train = ds.train.len(),
            test = ds.test.len(),
            source = %ds.source,
            "loaded in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        out.insert(name, Arc::new(ds));
    }
    Ok(out)
}

/// What `slimbench plan` says about a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedStatus {
    /// A complete cache entry exists.
    Cached {
        /// Its key.
        key: String,
        /// How long it took when it ran.
        duration_s: f64,
    },
    /// It will run, and why.
    WillRun(String),
    /// Reports render every run.
    Renders,
}

/// Runs a plan.
pub struct Executor<'a> {
    plan: &'a Plan,
    runner: &'a dyn StageRunner,
    datasets: &'a Datasets,
    progress: &'a dyn Progress,
    opts: RunOptions,
    cache: Cache,
}

impl<'a> Executor<'a> {
    /// An executor for `plan`.
    pub fn new(
        plan: &'a Plan,
        runner: &'a dyn StageRunner,
        datasets: &'a Datasets,
        progress: &'a dyn Progress,
        opts: RunOptions,
    ) -> Self {
        let cache = Cache::new(opts.results_dir.join(&plan.name).join("cache"));
        Executor { plan, runner, datasets, progress, opts, cache }
    }

    /// Where this pipeline's runs go.
    pub fn pipeline_dir(&self) -> PathBuf {
        self.opts.results_dir.join(&self.plan.name)
    }

    fn key_for(&self, stage: &PlannedStage, inputs: &[StageInput]) -> String {
        let env = self.runner.env();
        let mut datasets = BTreeMap::new();
        let mut add_dataset = |name: &str| {
            if let Some(ds) = self.datasets.get(name) {
                datasets.insert(name.to_string(), ds.content_hash.clone());
            }
        };
        if let Some(d) = explicit_dataset(&stage.params) {
            add_dataset(d);
        }
        for input in inputs {
            for v in &input.manifest.variants {
                add_dataset(&v.meta.dataset);
            }
        }
        let mut models = BTreeMap::new();
        let model_names: Vec<&str> = match &stage.params {
            StageParams::Train(p) => vec![&p.model],
            StageParams::Distill(p) => vec![&p.student],
            _ => vec![],
        };
        for m in model_names {
            if let Some(cfg) = self.plan.models.get(m) {
                models.insert(m.to_string(), cfg);
            }
        }
        KeyInputs {
            build: &env.git_revision,
            kind: stage.kind(),
            params: &stage.params,
            seed: self.plan.defaults.seed,
            device: &env.device,
            threads: env.threads,
            datasets,
            models,
            inputs: inputs
                .iter()
                .map(|i| {
                    let key = InputKey {
                        files: &i.manifest.files,
                        variants: slimbench_core::hash::json(&i.manifest.variants),
                    };
                    (i.id.clone(), key)
                })
                .collect(),
            processes: self
                .opts
                .dist
                .as_ref()
                .map(|d| d.world_size)
                .filter(|_| stage.params.is_distributed()),
        }
        .key()
    }

    fn forced(&self, stage: &PlannedStage) -> bool {
        self.opts.force || self.opts.force_stages.iter().any(|f| f == &stage.id || f == &stage.base_id)
    }

    fn inputs_of(&self, stage: &PlannedStage, done: &HashMap<String, StageInput>) -> Vec<StageInput> {
        stage.needs.iter().filter_map(|n| done.get(n).cloned()).collect()
    }

    /// What would happen to each stage, without running anything.
    pub fn statuses(&self) -> Vec<(String, PlannedStatus)> {
        let mut done: HashMap<String, StageInput> = HashMap::new();
        let mut out = Vec::new();
        for stage in &self.plan.stages {
            if !stage.params.is_cached() {
                out.push((stage.id.clone(), PlannedStatus::Renders));
                continue;
            }
            if let Some(missing) = stage.needs.iter().find(|n| !done.contains_key(*n)) {
                out.push((stage.id.clone(), PlannedStatus::WillRun(format!("after `{missing}` runs"))));
                continue;
            }
            let inputs = self.inputs_of(stage, &done);
            let key = self.key_for(stage, &inputs);
            let status = if self.forced(stage) {
                PlannedStatus::WillRun("forced".into())
            } else if let Some((dir, manifest)) = self.cache.lookup(stage, &key) {
                let duration_s = manifest.duration_s;
                done.insert(
                    stage.id.clone(),
                    StageInput { id: stage.id.clone(), base_id: stage.base_id.clone(), dir, manifest },
                );
                PlannedStatus::Cached { key, duration_s }
            } else {
                PlannedStatus::WillRun("not cached".into())
            };
            out.push((stage.id.clone(), status));
        }
        out
    }

    /// Run the plan. On success the run directory exists and is complete.
    pub fn run(&self) -> Result<RunSummary, RunError> {
        let started = chrono::Utc::now();
        let t0 = Instant::now();
        let pipeline_dir = self.pipeline_dir();
        fsutil::create_dir_all(&pipeline_dir)?;
        let (run_id, staging) = {
            // Sweeping, picking an id and creating the staging directory that reserves
            // it must not interleave with another run's.
            let _lock = rundir::lock(&pipeline_dir);
            let swept = fsutil::sweep_stale(&pipeline_dir);
            if swept > 0 {
                tracing::info!(
                    "removed {swept} unfinished run director{} left by killed runs",
                    if swept == 1 { "y" } else { "ies" }
                );
            }
            let run_id = rundir::free_run_id(&pipeline_dir, &base_run_id(started, self.opts.shard));
            let staging = StagingDir::new(&pipeline_dir.join(&run_id))?;
            (run_id, staging)
        };
        let run_dir = staging.path().to_path_buf();
        fsutil::atomic_write(&run_dir.join("pipeline.yaml"), self.plan.text.as_bytes())?;
        fsutil::atomic_write(&run_dir.join("plan.resolved.yaml"), self.plan.to_yaml().as_bytes())?;

        let env = self.runner.env();
        let mut info = RunInfo {
            run_id: run_id.clone(),
            pipeline: self.plan.name.clone(),
            description: self.plan.description.clone(),
            pipeline_file: self.plan.file.clone(),
            tool_version: TOOL_VERSION.to_string(),
            git_revision: env.git_revision.clone(),
            torch_version: env.torch_version.clone(),
            device: env.device.clone(),
            cuda_available: env.cuda_available,
            threads: env.threads as u64,
            seed: self.plan.defaults.seed,
            started_at: started.to_rfc3339(),
            host: env.host.clone(),
            gpus: env.gpus.clone(),
            no_gpu_reason: env.no_gpu_reason.clone(),
            shard: self.opts.shard.map(|s| s.to_string()),
            dist: self.opts.dist.clone(),
            ..Default::default()
        };

        let mut done: HashMap<String, StageInput> = HashMap::new();
        let mut records = Records::default();
        let mut reports = Vec::new();
        for stage in &self.plan.stages {
            if !stage.params.is_cached() {
                reports.push(stage);
                continue;
            }
            if cancel::requested() {
                return Err(RunError::Interrupted { stage: stage.id.clone() });
            }
            let inputs = self.inputs_of(stage, &done);
            let key = self.key_for(stage, &inputs);
            let (dir, manifest, status) = match (!self.forced(stage))
                .then(|| self.cache.lookup(stage, &key))
                .flatten()
            {
                Some((dir, manifest)) => {
                    tracing::info!(stage = %stage.id, "cached ({:.1} s when it ran)", manifest.duration_s);
                    (dir, manifest, StageStatus::Cached)
                }
                None => {
                    let (dir, manifest) = self.run_one(stage, &key, &inputs)?;
                    (dir, manifest, StageStatus::Ran)
                }
            };
            records.extend(&manifest.records);
            info.notes.extend(manifest.notes.iter().cloned());
            info.stages.push(StageSummary {
                id: stage.id.clone(),
                kind: stage.kind().to_string(),
                status,
                duration_s: manifest.duration_s,
                key: key.clone(),
            });
            done.insert(
                stage.id.clone(),
                StageInput { id: stage.id.clone(), base_id: stage.base_id.clone(), dir, manifest },
            );
        }

        // Each stage's files, linked into the run's artifacts once every stage is done:
        // later stages add files to earlier stages' cache dirs (evaluate's ONNX exports
        // beside each model file), and nothing reads the artifacts during the run.
        for stage in self.plan.stages.iter().filter(|s| s.params.is_cached()) {
            if let Some(input) = done.get(&stage.id) {
                fsutil::link_tree(&input.dir, &run_dir.join("artifacts").join(stage.slug()))?;
            }
        }

        self.runner
            .write_tables(&run_dir, &records)
            .map_err(|source| RunError::Output { what: "writing the run's tables", source })?;
        let write_info = |info: &mut RunInfo| {
            info.finished_at = chrono::Utc::now().to_rfc3339();
            info.duration_s = t0.elapsed().as_secs_f64();
            fsutil::write_json(&run_dir.join("run.json"), info)
        };
        // Reports are listed (as rendered) in the run.json they themselves read.
        let first_report = info.stages.len();
        for stage in &reports {
            info.stages.push(StageSummary {
                id: stage.id.clone(),
                kind: stage.kind().to_string(),
                status: StageStatus::Rendered,
                duration_s: 0.0,
                key: String::new(),
            });
        }
        write_info(&mut info)?;
        for (i, stage) in reports.iter().enumerate() {
            let t = Instant::now();
            let inputs = self.inputs_of(stage, &done);
            let ctx = self.context(stage, &run_dir, &inputs);
            let files = self
                .runner
                .render_report(&ctx, &run_dir)
                .map_err(|source| RunError::Stage { stage: stage.id.clone(), source })?;
            tracing::info!(stage = %stage.id, files = files.len(), "rendered in {:.2} s", t.elapsed().as_secs_f64());
            info.stages[first_report + i].duration_s = t.elapsed().as_secs_f64();
        }
        write_info(&mut info)?;

        let _lock = rundir::lock(&pipeline_dir);
        let dir = staging.commit()?;
        rundir::update_latest(&pipeline_dir, &run_id, started);
        Ok(RunSummary { dir, info })
    }

    fn context<'c>(
        &'c self,
        stage: &'c PlannedStage,
        out_dir: &'c Path,
        inputs: &'c [StageInput],
    ) -> StageContext<'c> {
        StageContext {
            plan: self.plan,
            stage,
            out_dir,
            inputs,
            datasets: self.datasets,
            progress: self.progress,
            env: self.runner.env(),
        }
    }

    /// Run one stage into a staging directory and commit it to the cache.
    fn run_one(
        &self,
        stage: &PlannedStage,
        key: &str,
        inputs: &[StageInput],
    ) -> Result<(PathBuf, StageManifest), RunError> {
        let dest = self.cache.entry_dir(stage, key);
        // The stage's cache directory: other runs sweep it and commit into it.
        let stage_dir = dest.parent().expect("an entry is inside its stage's directory");
        fsutil::create_dir_all(stage_dir)?;
        let (staging, before) = {
            let _lock = rundir::lock(stage_dir);
            // The entry there now, if any (damaged, or the stage is forced): when it is
            // still there at the end it is replaced, another one is kept.
            let before =
                fsutil::read_json::<StageManifest>(&dest.join("stage.json")).ok().map(|m| m.finished_at);
            (StagingDir::new(&dest)?, before)
        };
        tracing::info!(stage = %stage.id, kind = stage.kind(), "running");
        let t = Instant::now();
        let ctx = self.context(stage, staging.path(), inputs);
        let out = self.runner.run_stage(&ctx).map_err(|source| {
            if source.downcast_ref::<cancel::Cancelled>().is_some() || cancel::requested() {
                RunError::Interrupted { stage: stage.id.clone() }
            } else {
                RunError::Stage { stage: stage.id.clone(), source }
            }
        })?;
        let duration_s = t.elapsed().as_secs_f64();
        let files =
            hash_files(staging.path()).map_err(|e| FsError::new("hashing outputs in", staging.path(), e))?;
        let manifest = StageManifest {
            stage: stage.id.clone(),
            kind: stage.kind().to_string(),
            key: key.to_string(),
            tool_version: TOOL_VERSION.to_string(),
            finished_at: chrono::Utc::now().to_rfc3339(),
            duration_s,
            variants: out.variants,
            files,
            records: out.records,
            notes: out.notes,
        };
        fsutil::write_json(&staging.path().join("stage.json"), &manifest)?;
        let _lock = rundir::lock(stage_dir);
        // Another run of the pipeline may have computed the same entry meanwhile, and
        // be linking from it: it stays, and this one is dropped.
        if let Some((dir, theirs)) = self.cache.lookup(stage, key)
            && before.as_ref() != Some(&theirs.finished_at)
        {
            tracing::info!(stage = %stage.id, "finished in {duration_s:.1} s; another run cached it first, kept");
            return Ok((dir, theirs));
        }
        let dir = staging.commit()?;
        self.cache.prune(stage);
        tracing::info!(stage = %stage.id, "finished in {duration_s:.1} s");
        Ok((dir, manifest))
    }
}

/// `YYYYMMDD-HHMMSS` (UTC), then `-shard-IofN` for a shard; [`rundir::free_run_id`]
/// adds a suffix when a run of that name exists or is being assembled.
fn base_run_id(at: chrono::DateTime<chrono::Utc>, shard: Option<crate::Shard>) -> String {
    let base = at.format("%Y%m%d-%H%M%S").to_string();
    match shard {
        Some(s) => format!("{base}-{}", s.run_suffix()),
        None => base,
    }
}
