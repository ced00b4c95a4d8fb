//! The three kinds of distillation on tiny data: each trains a student from a frozen
//! teacher (whose weights must not change) beside a student-alone control with the same
//! budget and the same initial weights.

use crate::util::*;

const KINDS: &str = r#"
name: kinds
defaults: { seed: 7, device: cpu, threads: 1 }
datasets:
  digits: { kind: synthetic-digits, train_size: 800, test_size: 200 }
models:
  teacher: { kind: cnn, channels: [8, 16], hidden: 32 }
  student: { kind: seed-cnn, filters: 4 }
stages:
  - { id: teacher, uses: train, with: { model: teacher, dataset: digits, epochs: 3, batch_size: 32, lr: 3.0e-3 } }
  - id: distill
    uses: distill
    needs: teacher
    matrix: { kind: [response, feature, relation] }
    with: { student: student, epochs: 2, batch_size: 32, lr: 5.0e-3, lr_schedule: cosine }
  - id: hidden-hint
    uses: distill
    needs: teacher
    with: { student: student, kind: feature, teacher_layer: hidden, hint_epochs: 2, epochs: 1, lr: 5.0e-3 }
  - id: eval
    uses: evaluate
    needs: [teacher, distill, hidden-hint]
    with: { latency: { min_duration_s: 0, rounds: 2, warmup: 2, iters: 10, batch_sizes: [1], repeats: 1 } }
"#;

#[test]
fn response_feature_and_relation_distillation_train_beside_the_student_alone() {
    let env = Env::new();
    env.write("kinds.yaml", KINDS);
    let out = env.run(&["run", "kinds.yaml"]);
    assert_code(&out, 0);
    let run = &env.runs("kinds")[0];
    let rows = metrics(run);
    let notes = run_json(run)["notes"].to_string();

    for kind in ["response", "feature", "relation"] {
        let v = format!("distill[kind={kind}]");
        let (d, alone) = (row(&rows, &v), row(&rows, &format!("{v}/student-alone")));
        assert_eq!(d.technique, format!("distill-{kind}"));
        assert_eq!(alone.technique, "student-alone");
        // The student's architecture: 4 filters, 4*9+4 + 4*169*10+10 parameters.
        assert_eq!((d.params, alone.params), (6_810, 6_810));
        assert!(d.accuracy > 0.3 && alone.accuracy > 0.3, "{kind}: {} / {}", d.accuracy, alone.accuracy);
        assert!(
            notes.contains(&format!("{v}: distilled student"))
                && notes.contains(&format!("{kind} distillation")),
            "{notes}"
        );
    }
    // The teacher is frozen: its weights and accuracy are what training left.
    assert!(notes.matches("teacher weights unchanged").count() >= 4, "{notes}");
    let teacher_file = run.join("artifacts/teacher/model.safetensors");
    assert!(teacher_file.is_file());
    // Same budget: a feature student trains hint epochs + epochs, its control as many.
    assert!(notes.contains("hidden-hint: distilled student"), "{notes}");
    assert!(notes.contains("after 3 epoch(s), feature distillation (hints: 2 epoch(s) regressing student `conv` [4, 26, 26] onto teacher `hidden` [32]"), "{notes}");
    assert!(
        notes.contains("similarity-preserving between student `conv` and teacher `conv1`, beta=1000"),
        "{notes}"
    );
    // The hint stage has its own curve, and every student its test points.
    let curves: std::collections::BTreeSet<String> =
        slimbench_metrics::read_curve_points(run).unwrap().into_iter().map(|c| c.variant).collect();
    for v in [
        "distill[kind=feature]/hint",
        "hidden-hint/hint",
        "distill[kind=relation]",
        "hidden-hint/student-alone",
    ] {
        assert!(curves.contains(v), "{v} not in {curves:?}");
    }
}

#[test]
fn layers_the_models_do_not_have_are_named_with_the_ones_they_have() {
    let env = Env::new();
    let bad = KINDS.replace("teacher_layer: hidden", "teacher_layer: conv7, student_layer: fc2");
    env.write("bad.yaml", &bad);
    let out = env.run(&["validate", "bad.yaml"]);
    assert_code(&out, 2);
    insta::assert_snapshot!(stderr(&out));
}
