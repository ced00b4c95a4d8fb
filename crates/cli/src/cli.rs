//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// slimbench: train, compress and measure models from a pipeline YAML, and report what
/// each technique really buys on this hardware.
#[derive(Debug, Parser)]
#[command(name = "slimbench", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options of every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More logs (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline: train, compress, evaluate, and write tables, charts and a report.
    Run(RunArgs),
    /// Check pipeline files without running anything.
    Validate(ValidateArgs),
    /// Show a pipeline's stages in execution order and which are cached.
    Plan(PlanArgs),
    /// List stage kinds, model kinds and dataset kinds with their parameters.
    List(ListArgs),
    /// Re-render charts, report.html and summary.md of a finished run from its tables.
    Report(ReportArgs),
    /// Compare a candidate run with a baseline run; exit 1 when a gate is crossed.
    Compare(CompareArgs),
    /// Follow a pipeline's metrics over its runs: trend table, charts and pages.
    History(HistoryArgs),
    /// Write every variant of a finished run as ONNX and TorchScript files beside its
    /// model file, for ONNX Runtime and PyTorch.
    Export(ExportArgs),
    /// (internal) Measure one model file's memory in this fresh process; JSON on stdout.
    #[command(name = "__memory", hide = true)]
    Memory(MemoryArgs),
    /// Run a pipeline as N local processes on loopback (data-parallel train stages on
    /// PyTorch's Gloo engine; rank 0 writes the results), as torchrun would start them.
    Launch(LaunchArgs),
}

/// `slimbench __memory`.
#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// The model file.
    pub file: PathBuf,
    /// Where to load it (`cpu`, `cuda:N`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The large batch size to measure the peak of.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
}

/// `slimbench launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Processes to start (each is one data-parallel replica).
    #[arg(long, default_value_t = 2)]
    pub nproc: usize,
    /// Port of rank 0's store on 127.0.0.1; default: a free one.
    #[arg(long)]
    pub master_port: Option<u16>,
    /// What each process runs: the arguments of `slimbench run` (the pipeline YAML and
    /// its options).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "RUN_ARGS")]
    pub run_args: Vec<String>,
}

/// Where data and results live, and overrides; shared by `run` and `plan`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline YAML.
    pub pipeline: PathBuf,
    /// Directory holding datasets (`<dir>/mnist/`, `<dir>/fashion-mnist/`).
    #[arg(long, env = "SLIMBENCH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Root of the results (`<dir>/<pipeline>/<run-id>/`).
    #[arg(long, env = "SLIMBENCH_RESULTS_DIR", default_value = "results")]
    pub results: PathBuf,
    /// Override a value of the pipeline, e.g. `--set stages.train.with.epochs=2`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Shorthand for `--set defaults.device=DEVICE` (cpu, cuda, cuda:N, auto).
    #[arg(long, env = "SLIMBENCH_DEVICE")]
    pub device: Option<String>,
    /// Shorthand for `--set defaults.threads=N`.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run every evaluate stage's timing plan N times and report the spread.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub repeat: Option<u16>,
    /// Run only shard I of N (0-based): matrix instances are dealt out round-robin,
    /// with what they need (e.g. `--shard $(JOB_COMPLETION_INDEX)/4` in an Indexed Job).
    #[arg(long, value_name = "I/N", env = "SLIMBENCH_SHARD")]
    pub shard: Option<slimbench_pipeline::Shard>,
}

impl PipelineArgs {
    /// All overrides, the shorthands included.
    pub fn overrides(&self) -> Vec<String> {
        let mut v = self.set.clone();
        if let Some(d) = &self.device {
            v.push(format!("defaults.device={d}"));
        }
        if let Some(t) = self.threads {
            v.push(format!("defaults.threads={t}"));
        }
        v
    }
}

/// `slimbench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline and its settings.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Rerun every stage, ignoring the cache.
    #[arg(long)]
    pub force: bool,
    /// Rerun this stage (repeatable; an id as written or a matrix instance id).
    #[arg(long, value_name = "ID")]
    pub force_stage: Vec<String>,
}

/// `slimbench validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Pipeline files.
    #[arg(required = true)]
    pub pipelines: Vec<PathBuf>,
    /// Overrides applied to every file.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

/// `slimbench plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The pipeline and its settings.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Print the resolved plan as YAML instead of the table.
    #[arg(long)]
    pub yaml: bool,
}

/// `slimbench list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (kinds with their JSON schemas).
    #[arg(long)]
    pub json: bool,
}

/// `slimbench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory (`results/<pipeline>/<run-id>`).
    pub run_dir: PathBuf,
    /// Chart formats to write.
    #[arg(long, value_delimiter = ',', default_value = "png,svg")]
    pub formats: Vec<String>,
    /// Report title (default: the pipeline's name).
    #[arg(long)]
    pub title: Option<String>,
}

/// `slimbench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline run: `results/<pipeline>/<run-id>`, `results/<pipeline>/latest`, or
    /// `results/<pipeline>` (its latest run).
    pub baseline: PathBuf,
    /// The candidate run, in the same forms.
    pub candidate: PathBuf,
    /// Take the gates from this pipeline file instead of the candidate run's
    /// `pipeline.yaml`.
    #[arg(long, value_name = "FILE", conflicts_with = "no_yaml_gates")]
    pub pipeline: Option<PathBuf>,
    /// Gate a metric, replacing the YAML's rule for it (repeatable; several flags for one
    /// metric combine), e.g. `--gate accuracy:max_drop=0.005`,
    /// `--gate latency_p50_us:max_increase=10%`.
    #[arg(long = "gate", value_name = "METRIC:RULE=VALUE")]
    pub gates: Vec<String>,
    /// Ignore the pipeline's `gates:`; only `--gate` flags apply.
    #[arg(long)]
    pub no_yaml_gates: bool,
    /// Fail when a variant of the baseline is missing from the candidate.
    #[arg(long)]
    pub require_all: bool,
    /// Where to write compare.md, compare.html, compare.parquet/.csv and charts
    /// (default: the candidate run directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `slimbench history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// A pipeline's results folder (`results/<pipeline>`).
    pub pipeline_dir: PathBuf,
    /// Keep only the newest N runs.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// A metric to follow (repeatable; default: accuracy, latency_p50_us, throughput_ips,
    /// file_size_bytes, mem_peak_b1_bytes).
    #[arg(long = "metric", value_name = "METRIC")]
    pub metrics: Vec<String>,
    /// Output folder (default: `<pipeline-dir>/history`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `slimbench export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A finished run (`results/<pipeline>/<run-id>`), or `results/<pipeline>` for its
    /// latest run.
    pub run_dir: PathBuf,
    /// Formats to write (repeatable or comma-separated; default: both).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub format: Vec<ExportFormat>,
    /// Export only this variant (repeatable; default: every variant of the run).
    #[arg(long, value_name = "V")]
    pub variant: Vec<String>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `<model>.onnx` (opset 17; int8 as QDQ or dynamic int8): ONNX Runtime.
    Onnx,
    /// `<model>.pt` (traced TorchScript): `torch.jit.load`.
    Torchscript,
}
