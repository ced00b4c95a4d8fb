//! For tests: the shared copies of real datasets, and the one decision a test that
//! reads one makes when its copy is absent.
//!
//! The copies live in `../shared/data` beside the repository (`<dir>/mnist/`,
//! `<dir>/fashion-mnist/`, ...), or where `SLIMBENCH_TEST_DATA` says. Where a copy is
//! missing the test is skipped with a note on stderr, unless `SLIMBENCH_REQUIRE_DATA`
//! requires it: then the test fails, so a machine that lost its data cannot pass by
//! skipping. `SLIMBENCH_REQUIRE_DATA=1` requires what the shared directory holds in CI,
//! [`CI_DATASETS`]; a comma-separated list of names (`mnist,cifar-10`) requires those.
//! `.ci/run` sets it to `1` when `../shared/data` is there.

use std::path::{Path, PathBuf};

/// The variable that makes a missing copy a failure.
pub const REQUIRE_VAR: &str = "SLIMBENCH_REQUIRE_DATA";

/// What `SLIMBENCH_REQUIRE_DATA=1` requires: the datasets CI's shared directory holds.
pub const CI_DATASETS: [&str; 2] = ["mnist", "fashion-mnist"];

/// The directory the copies are in: `SLIMBENCH_TEST_DATA`, else `../shared/data`
/// beside the repository.
pub fn dir() -> PathBuf {
    std::env::var_os("SLIMBENCH_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// The data directory (absolute) when `<dir>/<name>` holds a copy of dataset `name`:
/// MNIST and Fashion-MNIST need their four `.gz` IDX files, any other name a directory
/// that is not empty. Otherwise `None` after a note on stderr, or a panic where the
/// copy is required (see the module docs).
pub fn shared(name: &str) -> Option<PathBuf> {
    shared_if(name, |copy| {
        if CI_DATASETS.contains(&name) {
            IDX_FILES.iter().all(|f| copy.join(f).is_file())
        } else {
            std::fs::read_dir(copy).is_ok_and(|mut d| d.next().is_some())
        }
    })
}

/// [`shared`] with the test's own check that `<dir>/<name>` holds a usable copy.
pub fn shared_if(name: &str, present: impl FnOnce(&Path) -> bool) -> Option<PathBuf> {
    let dir = dir();
    if present(&dir.join(name)) {
        return Some(dir.canonicalize().unwrap_or(dir));
    }
    let why = format!("no {name} copy in {} (set SLIMBENCH_TEST_DATA)", dir.display());
    if required(std::env::var(REQUIRE_VAR).ok().as_deref(), name) {
        panic!("{REQUIRE_VAR} requires {name}, but there is {why}");
    }
    eprintln!("note: skipped, {why}");
    None
}

const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Whether `SLIMBENCH_REQUIRE_DATA=value` requires dataset `name`.
fn required(value: Option<&str>, name: &str) -> bool {
    match value.map(str::trim) {
        None | Some("" | "0") => false,
        Some("1") => CI_DATASETS.contains(&name),
        Some(list) => list.split(',').any(|n| n.trim() == name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_setting_requires() {
        assert!(!required(None, "mnist"));
        assert!(!required(Some("0"), "mnist"));
        assert!(!required(Some(""), "mnist"));
        assert!(required(Some("1"), "mnist") && required(Some("1"), "fashion-mnist"));
        assert!(!required(Some("1"), "cifar-10"));
        assert!(required(Some("mnist, cifar-10"), "cifar-10"));
        assert!(!required(Some("cifar-10"), "mnist"));
    }

    #[test]
    fn a_present_copy_is_found() {
        let d = dir();
        assert!(shared_if("anything", |copy| copy == d.join("anything")).is_some());
        assert!(shared_if("no-such-dataset", |_| false).is_none());
    }
}
