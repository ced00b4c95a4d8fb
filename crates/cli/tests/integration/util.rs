//! Test helpers: a scratch directory per test and a way to run the binary in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use slimbench_core::records::MetricRow;

/// A scratch directory the binary runs in, with its own cache and no network.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `slimbench` in the scratch directory: datasets only from explicit places, no
    /// downloads, no colours.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slimbench"));
        c.current_dir(self.path())
            .env_remove("SLIMBENCH_DATA_DIR")
            .env_remove("SLIMBENCH_RESULTS_DIR")
            .env_remove("SLIMBENCH_DEVICE")
            .env_remove("SLIMBENCH_SHARD")
            .env_remove("MASTER_ADDR")
            .env_remove("MASTER_PORT")
            .env_remove("WORLD_SIZE")
            .env_remove("RANK")
            .env_remove("RUST_LOG")
            .env("SLIMBENCH_CACHE_DIR", self.path().join("user-cache"))
            .env("SLIMBENCH_OFFLINE", "1")
            .env("NO_COLOR", "1");
        c
    }

    /// Run with arguments; returns the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run slimbench")
    }

    /// Write a file in the scratch directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The run directories of a pipeline (sorted: oldest first).
    pub fn runs(&self, pipeline: &str) -> Vec<PathBuf> {
        let dir = self.path().join("results").join(pipeline);
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name().unwrap().to_string_lossy().starts_with(|c: char| c.is_ascii_digit())
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert an exit code, showing the output when it differs.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", stdout(o), stderr(o));
}

/// The repository's pipelines directory.
pub fn pipelines() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines").canonicalize().unwrap()
}

/// The shared data directory when it holds dataset `name`; otherwise `None` (the test
/// skips) or, where `SLIMBENCH_REQUIRE_DATA` requires the copy, a failure
/// ([`slimbench_data::testdata`]).
pub fn shared_data(name: &str) -> Option<PathBuf> {
    slimbench_data::testdata::shared(name)
}

/// `run.json` of a run directory.
pub fn run_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

/// Stage id -> status ("ran", "cached", "rendered") from run.json.
pub fn statuses(dir: &Path) -> Vec<(String, String)> {
    run_json(dir)["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect()
}

/// The metric rows of a run.
pub fn metrics(dir: &Path) -> Vec<MetricRow> {
    slimbench_metrics::read_metric_rows(dir).expect("metrics")
}

/// The row of a variant.
#[track_caller]
pub fn row<'a>(rows: &'a [MetricRow], variant: &str) -> &'a MetricRow {
    rows.iter().find(|r| r.variant == variant).unwrap_or_else(|| {
        panic!("no variant {variant} in {:?}", rows.iter().map(|r| &r.variant).collect::<Vec<_>>())
    })
}
