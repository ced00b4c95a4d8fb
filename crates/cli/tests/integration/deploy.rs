//! The deployment files (Dockerfiles, compose, Kubernetes manifests, the nightly
//! workflow) name commands, flags and pipelines of this binary; these tests fail when
//! one of them drifts from what the binary accepts.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::util::{Env, assert_code, stderr};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// `slimbench <args> --help` parses: the subcommand and every flag exist.
fn assert_cli_accepts(args: &[String]) {
    let env = Env::new();
    let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
    with_help.push("--help");
    let out = env.run(&with_help);
    assert_code(&out, 0);
    assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
}

#[test]
fn indexed_job_shards_match_its_completions() {
    let job = yaml("docker/k8s/indexed-job.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_u64().unwrap();
    let args = strings(&spec["template"]["spec"]["containers"][0]["args"]);
    let at = args.iter().position(|a| a == "--shard").expect("--shard in args");
    assert_eq!(args[at + 1], format!("$(JOB_COMPLETION_INDEX)/{n}"));
    // Every pod's value is a shard the binary accepts, for the pipeline named.
    let env = Env::new();
    for i in 0..n {
        let pipeline = repo().join(&args[1]);
        let shard = format!("{i}/{n}");
        let out = env.run(&["plan", pipeline.to_str().unwrap(), "--shard", &shard, "--yaml"]);
        // Data may be missing here (exit 2 for that alone); a bad shard is a clap error.
        assert!(!stderr(&out).contains("--shard"), "{shard}: {}", stderr(&out));
    }
    let mut checked = args.clone();
    checked[at + 1] = format!("0/{n}");
    assert_cli_accepts(&checked);
}

#[test]
fn manifests_and_compose_name_real_commands() {
    let job = yaml("docker/k8s/pytorchjob.yaml");
    let master = &job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0];
    assert_eq!(master["name"].as_str(), Some("pytorch"), "the operator needs this container name");
    let args = strings(&master["args"]);
    assert!(repo().join(&args[1]).exists(), "{args:?}");
    assert_cli_accepts(&args);

    let compose = yaml("docker/compose.yaml");
    for svc in ["cpu", "cuda"] {
        let file = compose["services"][svc]["build"]["dockerfile"].as_str().unwrap();
        assert!(repo().join(file).exists(), "{svc}: {file}");
    }
}

#[test]
fn dockerfiles_run_slimbench_as_a_user_on_a_pipeline_that_exists() {
    for file in ["Dockerfile.cpu", "Dockerfile.cuda"] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let line = |prefix: &str| {
            text.lines()
                .rev()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{file}: no {prefix}"))
        };
        assert_eq!(line("ENTRYPOINT"), r#"ENTRYPOINT ["slimbench"]"#);
        assert!(!line("USER").contains(" 0") && !line("USER").contains("root"), "{file}");
        assert!(!text.contains("# syntax="), "{file}: a syntax line makes BuildKit pull an image");
        let cmd: Vec<String> = serde_json::from_str(line("CMD").trim_start_matches("CMD ")).unwrap();
        assert!(repo().join(&cmd[1]).exists(), "{file}: {cmd:?}");
        assert_cli_accepts(&cmd);
        for l in text.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
            let src = l.split_whitespace().nth(1).unwrap();
            assert!(src == "." || repo().join(src).exists(), "{file}: {l}");
        }
    }
}

#[test]
fn nightly_workflow_runs_real_pipelines_and_commands() {
    let wf = yaml(".github/workflows/nightly.yml");
    assert!(wf["on"]["schedule"][0]["cron"].as_str().is_some(), "scheduled");
    let include = wf["jobs"]["bench"]["strategy"]["matrix"]["include"].as_sequence().unwrap();
    let flavours: Vec<&str> = include.iter().map(|e| e["flavour"].as_str().unwrap()).collect();
    assert_eq!(flavours, ["cpu", "cuda"]);
    let env = Env::new();
    for e in include {
        assert!(repo().join(format!("Dockerfile.{}", e["flavour"].as_str().unwrap())).exists());
        for p in e["pipelines"].as_str().unwrap().split_whitespace() {
            let out = env.run(&["validate", repo().join(p).to_str().unwrap()]);
            assert_code(&out, 0);
        }
    }
    let steps = serde_yaml::to_string(&wf["jobs"]["bench"]["steps"]).unwrap();
    for (sub, call) in [
        ("run", r#""$IMAGE" run "$p""#),
        ("compare", "compare \"/results/"),
        ("history", "history \"/results/"),
    ] {
        assert!(steps.contains(call), "the nightly steps do not call `{call}`");
        assert_cli_accepts(&[sub.to_string()]);
    }
    assert!(steps.contains("GITHUB_STEP_SUMMARY"));
}
