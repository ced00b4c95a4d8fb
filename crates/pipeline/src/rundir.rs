//! Several runs of one pipeline on one results directory at the same time (two
//! terminals, a CI matrix, shards on one machine): each gets its own run id, a stage
//! two of them compute is cached once, and `latest` only ever moves to a newer run.
//!
//! The few steps that must not interleave (picking a run id and creating the run's
//! staging directory; renaming a finished run into place and moving `latest`; the same
//! for a cache entry) run under an exclusive `flock` on the directory they change. The
//! kernel drops the lock when its process dies, so a killed run leaves none behind.
//!
//! A run id is reserved by its staging directory, `.partial-<run-id>-XXXXXX`
//! ([`StagingDir`](slimbench_core::fsutil::StagingDir)): an id is free when neither a
//! run directory nor a staging directory has it. Killed runs' staging directories are
//! swept (under the same lock), which frees their ids.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};

/// How [`StagingDir`](slimbench_core::fsutil::StagingDir) names the directory a run is
/// assembled in: this prefix, the final name, `-` and a random suffix (letters and
/// digits). A test below checks it still does.
const STAGING_PREFIX: &str = ".partial-";

/// An exclusive lock on a directory, held until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: Option<std::fs::File>,
}

/// Wait until this process holds `dir` exclusively (against other processes, and
/// against other threads that lock it through their own call). Where the file system
/// cannot lock, this says so and goes on unlocked: a run must not fail for it.
pub(crate) fn lock(dir: &Path) -> DirLock {
    match lock_file(dir) {
        Ok(file) => DirLock { _file: file },
        Err(e) => {
            tracing::warn!(
                "cannot lock {} ({e}); runs started at the same time on it may clash",
                dir.display()
            );
            DirLock { _file: None }
        }
    }
}

#[cfg(unix)]
fn lock_file(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(dir)?;
    loop {
        // SAFETY: `flock` on a descriptor `file` owns and keeps open; it touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Some(file));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(unix))]
fn lock_file(_dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "directory locks need a Unix system"))
}

/// The first of `base`, `base-2`, `base-3`, ... that is neither a run directory nor
/// being assembled in `pipeline_dir`. Call it with `pipeline_dir` locked and create the
/// run's staging directory before unlocking: that is what reserves the id.
pub(crate) fn free_run_id(pipeline_dir: &Path, base: &str) -> String {
    let staged: HashSet<String> = std::fs::read_dir(pipeline_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let (id, _random) = name.strip_prefix(STAGING_PREFIX)?.rsplit_once('-')?;
                    Some(id.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    (1..)
        .map(|n| if n == 1 { base.to_string() } else { format!("{base}-{n}") })
        .find(|id| !staged.contains(id) && std::fs::symlink_metadata(pipeline_dir.join(id)).is_err())
        .expect("some suffix is free")
}

/// Point `latest` at `run_id` (a complete run, started at `started`) unless it points
/// at a run that started later already: runs can finish in another order than they
/// started. Replaced atomically (a new link renamed over the old), so a reader sees the
/// old run or the new one. Call it with `pipeline_dir` locked. Best effort: a missing
/// link loses nothing.
pub(crate) fn update_latest(pipeline_dir: &Path, run_id: &str, started: DateTime<Utc>) {
    let link = pipeline_dir.join("latest");
    if let Ok(current) = std::fs::read_link(&link)
        && current != Path::new(run_id)
        && started_at(&pipeline_dir.join(&current)).is_some_and(|t| t > started)
    {
        tracing::debug!("`latest` stays at {}, which started after {run_id}", current.display());
        return;
    }
    #[cfg(unix)]
    {
        let tmp = pipeline_dir.join(format!(".latest-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(run_id, &tmp).is_ok() && std::fs::rename(&tmp, &link).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// When the run in `dir` started, from its `run.json`.
fn started_at(dir: &Path) -> Option<DateTime<Utc>> {
    let info: serde_json::Value = slimbench_core::fsutil::read_json(&dir.join("run.json")).ok()?;
    let t = DateTime::parse_from_rfc3339(info.get("started_at")?.as_str()?).ok()?;
    Some(t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use slimbench_core::fsutil::StagingDir;

    #[test]
    fn ids_being_assembled_or_finished_are_taken() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        assert_eq!(free_run_id(dir, "20250101-120000"), "20250101-120000");
        // A run being assembled holds its id (the staging name is StagingDir's own).
        let first = StagingDir::new(&dir.join("20250101-120000")).unwrap();
        assert_eq!(free_run_id(dir, "20250101-120000"), "20250101-120000-2");
        let second = StagingDir::new(&dir.join("20250101-120000-2")).unwrap();
        assert_eq!(free_run_id(dir, "20250101-120000"), "20250101-120000-3");
        // Finished, it still does; given up, it frees it.
        first.commit().unwrap();
        assert_eq!(free_run_id(dir, "20250101-120000"), "20250101-120000-3");
        drop(second);
        assert_eq!(free_run_id(dir, "20250101-120000"), "20250101-120000-2");
        assert_eq!(free_run_id(dir, "20250101-120001"), "20250101-120001");
    }

    fn fake_run(dir: &Path, id: &str, started: &str) {
        std::fs::create_dir_all(dir.join(id)).unwrap();
        std::fs::write(dir.join(id).join("run.json"), format!(r#"{{"started_at": "{started}"}}"#)).unwrap();
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[cfg(unix)]
    #[test]
    fn latest_only_moves_forward() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        let latest = || std::fs::read_link(dir.join("latest")).unwrap();
        let (a, b) = ("2025-01-01T12:00:00.100+00:00", "2025-01-01T12:00:00.200+00:00");
        fake_run(dir, "20250101-120000", a);
        fake_run(dir, "20250101-120000-2", b);
        // The later run finishes first; the earlier one must not take `latest` back.
        update_latest(dir, "20250101-120000-2", at(b));
        assert_eq!(latest(), Path::new("20250101-120000-2"));
        update_latest(dir, "20250101-120000", at(a));
        assert_eq!(latest(), Path::new("20250101-120000-2"));
        // A newer run moves it; a link to a run that is gone or unreadable is replaced.
        let c = "2025-01-01T12:00:01+00:00";
        fake_run(dir, "20250101-120001", c);
        update_latest(dir, "20250101-120001", at(c));
        assert_eq!(latest(), Path::new("20250101-120001"));
        std::fs::remove_dir_all(dir.join("20250101-120001")).unwrap();
        update_latest(dir, "20250101-120000", at(a));
        assert_eq!(latest(), Path::new("20250101-120000"));
        // No temporary links are left behind.
        let names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(names.iter().all(|n| !n.starts_with(".latest")), "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_lock_excludes_other_holders() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().to_path_buf();
        let held = lock(&dir);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _l = lock(&dir);
            tx.send(()).unwrap();
        });
        // The other thread cannot get it while this one holds it...
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
        drop(held);
        // ...and gets it once released.
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        t.join().unwrap();
    }
}
