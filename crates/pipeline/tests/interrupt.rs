//! Ctrl-C: the cancellation flag is process-wide, so this test has a binary of its own.

mod common;

use common::*;
use slimbench_pipeline::RunError;

#[test]
fn interruption_is_reported_as_such_and_leaves_no_run() {
    let root = tempfile::tempdir().unwrap();
    slimbench_core::cancel::request();
    let err = run(root.path(), &Fake::new(None), &[], |_| {}).unwrap_err();
    assert!(matches!(err, RunError::Interrupted { .. }), "{err}");
    assert!(err.to_string().contains("the next run resumes"));
    assert_eq!(entries(&root.path().join("fake")), Vec::<String>::new());
}
