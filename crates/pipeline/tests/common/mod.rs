//! A stand-in runner (no libtorch) and helpers shared by the executor tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use slimbench_core::artifact::{IoShape, ModelMeta, StageStatus, VariantOut};
use slimbench_core::config::{ModelConfig, SeedCnnConfig};
use slimbench_core::progress::NoProgress;
use slimbench_core::records::{MetricRow, Records};
use slimbench_pipeline::executor::{BoxError, Datasets, RunEnv, StageContext, StageOutput};
use slimbench_pipeline::{Executor, RunError, RunOptions, StageRunner};

/// Writes one small file per stage; remembers which stages ran; can be told to fail.
pub struct Fake {
    env: RunEnv,
    pub ran: RefCell<Vec<String>>,
    fail: Option<String>,
}

impl Fake {
    pub fn new(fail: Option<&str>) -> Self {
        Fake {
            env: RunEnv {
                device: "cpu".into(),
                threads: 1,
                git_revision: "test".into(),
                ..Default::default()
            },
            ran: RefCell::new(vec![]),
            fail: fail.map(str::to_string),
        }
    }
}

fn meta() -> ModelMeta {
    let io = IoShape { channels: 1, height: 28, width: 28, classes: 10 };
    ModelMeta::new("m", ModelConfig::SeedCnn(SeedCnnConfig::default()), io, "d", "baseline")
}

impl StageRunner for Fake {
    fn env(&self) -> &RunEnv {
        &self.env
    }
    fn run_stage(&self, ctx: &StageContext<'_>) -> Result<StageOutput, BoxError> {
        self.ran.borrow_mut().push(ctx.stage.id.clone());
        std::fs::write(ctx.out_dir.join("model.bin"), format!("{} {:?}", ctx.stage.id, ctx.stage.params))?;
        if self.fail.as_deref() == Some(ctx.stage.id.as_str()) {
            return Err("boom".into());
        }
        let mut out = StageOutput::default();
        out.variants.push(VariantOut {
            name: ctx.stage.id.clone(),
            file: "model.bin".into(),
            primary: true,
            meta: meta(),
            train_time_s: 0.0,
            train_energy_per_epoch_j: None,
            simulated: None,
        });
        if ctx.stage.kind() == "evaluate" {
            out.records.metrics.push(MetricRow {
                variant: "train".into(),
                accuracy: 0.5,
                ..Default::default()
            });
        }
        Ok(out)
    }
    fn write_tables(&self, run_dir: &Path, records: &Records) -> Result<(), BoxError> {
        std::fs::write(run_dir.join("metrics.txt"), format!("{}", records.metrics.len()))?;
        Ok(())
    }
    fn render_report(&self, _ctx: &StageContext<'_>, run_dir: &Path) -> Result<Vec<PathBuf>, BoxError> {
        assert!(run_dir.join("run.json").exists() && run_dir.join("metrics.txt").exists());
        std::fs::write(run_dir.join("report.html"), "<html></html>")?;
        Ok(vec![run_dir.join("report.html")])
    }
}

pub const PIPELINE: &str = r#"name: fake
datasets:
  d: { kind: synthetic-digits }
models:
  m: { kind: seed-cnn }
stages:
  - { id: train, uses: train, with: { model: m, dataset: d } }
  - { id: fp16, uses: quantize, needs: train, with: { method: fp16 } }
  - { id: eval, uses: evaluate, needs: [train, fp16] }
  - { id: report, uses: report, needs: eval }
"#;

pub fn run(
    root: &Path,
    runner: &Fake,
    overrides: &[String],
    opts: impl FnOnce(&mut RunOptions),
) -> Result<PathBuf, RunError> {
    let spec = slimbench_pipeline::spec::parse("fake.yaml", PIPELINE, overrides).unwrap();
    let plan = slimbench_pipeline::resolve(&spec).unwrap();
    let datasets = Datasets::new();
    let mut o = RunOptions { results_dir: root.to_path_buf(), ..Default::default() };
    opts(&mut o);
    Executor::new(&plan, runner, &datasets, &NoProgress, o).run().map(|s| s.dir)
}

pub fn statuses(dir: &Path) -> Vec<(String, StageStatus)> {
    let info: slimbench_core::artifact::RunInfo =
        slimbench_core::fsutil::read_json(&dir.join("run.json")).unwrap();
    info.stages.into_iter().map(|s| (s.id, s.status)).collect()
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    v.sort();
    v
}
