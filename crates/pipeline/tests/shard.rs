//! `--shard`: two shards of one pipeline into one results directory, as the pods of an
//! Indexed Job sharing a volume would run it.

mod common;

use common::Fake;
use slimbench_core::artifact::RunInfo;
use slimbench_core::progress::NoProgress;
use slimbench_pipeline::executor::Datasets;
use slimbench_pipeline::{Executor, RunOptions, Shard, shard_plan};

const SWEEP: &str = r#"name: sweep
datasets: { d: { kind: synthetic-digits } }
models: { m: { kind: seed-cnn } }
stages:
  - { id: train, uses: train, with: { model: m, dataset: d } }
  - { id: prune, uses: prune, needs: train, matrix: { sparsity: [0.5, 0.7, 0.9] } }
  - { id: eval, uses: evaluate, needs: [train, prune] }
  - { id: report, uses: report, needs: eval }
"#;

#[test]
fn shards_split_the_matrix_and_share_the_cache() {
    let root = tempfile::tempdir().unwrap();
    let spec = slimbench_pipeline::spec::parse("sweep.yaml", SWEEP, &[]).unwrap();
    let plan = slimbench_pipeline::resolve(&spec).unwrap();
    let mut ran = Vec::new();
    let mut dirs = Vec::new();
    for index in 0..2 {
        let shard = Shard { index, count: 2 };
        let part = shard_plan(&plan, shard);
        let runner = Fake::new(None);
        let opts =
            RunOptions { results_dir: root.path().to_path_buf(), shard: Some(shard), ..Default::default() };
        let dir = Executor::new(&part, &runner, &Datasets::new(), &NoProgress, opts).run().unwrap().dir;
        ran.push(runner.ran.into_inner());
        dirs.push(dir);
    }
    // Shard 0 trains; shard 1 finds `train` in the shared cache.
    assert_eq!(ran[0], ["train", "prune[sparsity=0.5]", "prune[sparsity=0.9]", "eval"]);
    assert_eq!(ran[1], ["prune[sparsity=0.7]", "eval"]);
    for (i, dir) in dirs.iter().enumerate() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(&format!("-shard-{i}of2")), "{name}");
        let info: RunInfo = slimbench_core::fsutil::read_json(&dir.join("run.json")).unwrap();
        assert_eq!(info.shard.as_deref(), Some(format!("{i}/2").as_str()));
        assert!(dir.join("report.html").exists());
    }
}
