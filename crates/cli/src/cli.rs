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
    #[arg(long)]
    pub device: Option<String>,
    /// Shorthand for `--set defaults.threads=N`.
    #[arg(long)]
    pub threads: Option<usize>,
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
