//! The executor with a stand-in runner (no libtorch): caching, forcing, failures and
//! the run directory.

mod common;

use common::*;
use slimbench_core::artifact::StageStatus;
use slimbench_pipeline::RunError;

#[test]
fn runs_then_reuses_then_reruns_what_changed() {
    let root = tempfile::tempdir().unwrap();
    let fake = Fake::new(None);
    let first = run(root.path(), &fake, &[], |_| {}).unwrap();
    assert_eq!(*fake.ran.borrow(), ["train", "fp16", "eval"]);
    for f in [
        "run.json",
        "plan.resolved.yaml",
        "pipeline.yaml",
        "metrics.txt",
        "report.html",
        "artifacts/train/model.bin",
        "artifacts/eval/stage.json",
    ] {
        assert!(first.join(f).exists(), "{f}");
    }
    assert!(
        statuses(&first)
            .iter()
            .all(|(id, s)| *s == if id == "report" { StageStatus::Rendered } else { StageStatus::Ran })
    );

    let fake = Fake::new(None);
    let second = run(root.path(), &fake, &[], |_| {}).unwrap();
    assert!(fake.ran.borrow().is_empty());
    assert_ne!(first, second);
    assert!(
        statuses(&second)
            .iter()
            .all(|(id, s)| *s == if id == "report" { StageStatus::Rendered } else { StageStatus::Cached })
    );

    // A parameter change reruns the stage and its dependents only.
    let fake = Fake::new(None);
    run(root.path(), &fake, &["stages.fp16.with.compute=upcast".into()], |_| {}).unwrap();
    assert_eq!(*fake.ran.borrow(), ["fp16", "eval"]);

    // --force-stage, --force.
    let fake = Fake::new(None);
    run(root.path(), &fake, &[], |o| o.force_stages = vec!["train".into()]).unwrap();
    assert_eq!(fake.ran.borrow()[0], "train");
    let fake = Fake::new(None);
    run(root.path(), &fake, &[], |o| o.force = true).unwrap();
    assert_eq!(*fake.ran.borrow(), ["train", "fp16", "eval"]);
    // `latest` names the newest run.
    let latest = std::fs::read_link(root.path().join("fake/latest")).unwrap();
    assert!(root.path().join("fake").join(latest).join("run.json").exists());
}

#[test]
fn a_failing_stage_leaves_no_run_and_keeps_finished_stages() {
    let root = tempfile::tempdir().unwrap();
    let fake = Fake::new(Some("eval"));
    let err = run(root.path(), &fake, &[], |_| {}).unwrap_err();
    assert!(matches!(err, RunError::Stage { ref stage, .. } if stage == "eval"), "{err}");
    assert_eq!(entries(&root.path().join("fake")), ["cache"]);
    // The failed stage left nothing in the cache either.
    assert!(!root.path().join("fake/cache/eval").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false));

    let fake = Fake::new(None);
    let dir = run(root.path(), &fake, &[], |_| {}).unwrap();
    assert_eq!(*fake.ran.borrow(), ["eval"]);
    assert!(statuses(&dir).contains(&("train".into(), StageStatus::Cached)));
}

#[test]
fn a_damaged_cache_entry_is_not_trusted() {
    let root = tempfile::tempdir().unwrap();
    run(root.path(), &Fake::new(None), &[], |_| {}).unwrap();
    let train_cache = root.path().join("fake/cache/train");
    let entry = std::fs::read_dir(&train_cache).unwrap().flatten().next().unwrap().path();
    std::fs::write(entry.join("model.bin"), "tampered").unwrap();
    let fake = Fake::new(None);
    run(root.path(), &fake, &[], |_| {}).unwrap();
    assert_eq!(fake.ran.borrow()[0], "train");
}

#[test]
fn runs_at_the_same_time_each_get_a_run_directory_and_latest_the_newest() {
    let root = tempfile::tempdir().unwrap();
    let n = 4;
    let start = std::sync::Barrier::new(n);
    let dirs: Vec<std::path::PathBuf> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    run(root.path(), &Fake::new(None), &[], |_| {}).unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut names: Vec<String> =
        dirs.iter().map(|d| d.file_name().unwrap().to_string_lossy().into()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "{names:?}");
    let started = |d: &std::path::Path| {
        let info: slimbench_core::artifact::RunInfo =
            slimbench_core::fsutil::read_json(&d.join("run.json")).unwrap();
        chrono::DateTime::parse_from_rfc3339(&info.started_at).unwrap()
    };
    for d in &dirs {
        for f in [
            "run.json",
            "metrics.txt",
            "report.html",
            "artifacts/train/model.bin",
            "artifacts/eval/stage.json",
        ] {
            assert!(d.join(f).is_file(), "{}: no {f}", d.display());
        }
        assert_eq!(statuses(d).len(), 4);
    }
    // Nothing else: no staging directories or temporary links left.
    let mut expect = names.clone();
    expect.extend(["cache".to_string(), "latest".to_string()]);
    expect.sort();
    assert_eq!(entries(&root.path().join("fake")), expect);
    let latest = root.path().join("fake").join(std::fs::read_link(root.path().join("fake/latest")).unwrap());
    let newest = dirs.iter().max_by_key(|d| started(d)).unwrap();
    assert_eq!(started(&latest), started(newest));
}
