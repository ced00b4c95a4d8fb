//! Files that are either complete or absent.
//!
//! Every output slimbench writes goes to a temporary sibling first and is renamed into
//! place, so a crash or Ctrl-C never leaves a truncated table, model or report behind.

use std::io::Write;
use std::path::{Path, PathBuf};

/// An I/O error that names the path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct FsError {
    /// What was being done ("writing", "creating directory", ...).
    pub action: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl FsError {
    /// Wrap an `io::Error` with the action and path.
    pub fn new(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        FsError { action, path: path.to_path_buf(), source }
    }
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, FsError>;

/// `create_dir_all` with the path in the error.
pub fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| FsError::new("creating directory", path, e))
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory,
/// flushed and synced, then renamed over `path`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |f| f.write_all(bytes))
}

/// Like [`atomic_write`], with a closure that streams into the temporary file.
pub fn atomic_write_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = parent_dir(path);
    create_dir_all(dir)?;
    let mut tmp = builder(".tmp-", false)
        .tempfile_in(dir)
        .map_err(|e| FsError::new("creating temporary file in", dir, e))?;
    write(tmp.as_file_mut())
        .and_then(|_| tmp.as_file_mut().sync_all())
        .map_err(|e| FsError::new("writing", path, e))?;
    tmp.persist(path).map_err(|e| FsError::new("renaming into", path, e.error))?;
    Ok(())
}

/// Serialize `value` as pretty JSON into `path`, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text =
        serde_json::to_vec_pretty(value).map_err(|e| FsError::new("encoding JSON for", path, e.into()))?;
    atomic_write(path, &text)
}

/// Read and parse a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| FsError::new("reading", path, e))?;
    serde_json::from_slice(&text).map_err(|e| FsError::new("parsing JSON in", path, e.into()))
}

/// A temporary-name builder. Results are meant to be read by others (a web server, a
/// CI artifact uploader), so they get the usual modes narrowed by the umask rather than
/// tempfile's private 0600/0700.
fn builder(prefix: &str, _dir: bool) -> tempfile::Builder<'_, '_> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(if _dir { 0o777 } else { 0o666 }));
    }
    b
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A directory being filled under a temporary name beside its final place; it appears
/// under the final name only on [`StagingDir::commit`], and is deleted if dropped
/// uncommitted.
#[derive(Debug)]
pub struct StagingDir {
    tmp: Option<tempfile::TempDir>,
    dest: PathBuf,
}

impl StagingDir {
    /// Start staging the directory that will become `dest`.
    pub fn new(dest: &Path) -> Result<Self> {
        let parent = parent_dir(dest);
        create_dir_all(parent)?;
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let prefix = format!("{PARTIAL_PREFIX}{name}-");
        let tmp = builder(&prefix, true)
            .tempdir_in(parent)
            .map_err(|e| FsError::new("creating staging directory in", parent, e))?;
        // Lets a later run tell a staging directory of a killed process from a live one.
        // The host name matters when several machines share the results (shards in
        // pods): a pid only means something on the host that wrote it.
        let pid_file = tmp.path().join(PID_FILE);
        std::fs::write(&pid_file, format!("{} {}", std::process::id(), hostname()))
            .map_err(|e| FsError::new("writing", &pid_file, e))?;
        Ok(StagingDir { tmp: Some(tmp), dest: dest.to_path_buf() })
    }

    /// Where to write while staging.
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().expect("staging dir used after commit").path()
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Rename into place. If `dest` already exists (another process finished the same
    /// work first) it is replaced.
    pub fn commit(mut self) -> Result<PathBuf> {
        let tmp = self.tmp.take().expect("committed twice").keep();
        let _ = std::fs::remove_file(tmp.join(PID_FILE));
        if self.dest.exists() {
            std::fs::remove_dir_all(&self.dest).map_err(|e| FsError::new("replacing", &self.dest, e))?;
        }
        std::fs::rename(&tmp, &self.dest).map_err(|e| FsError::new("renaming into", &self.dest, e))?;
        Ok(self.dest.clone())
    }
}

const PARTIAL_PREFIX: &str = ".partial-";
const PID_FILE: &str = ".slimbench-pid";

/// Remove staging directories left in `dir` by processes that no longer run (a run
/// killed with SIGKILL cannot clean up after itself). Returns how many were removed.
pub fn sweep_stale(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PARTIAL_PREFIX) || !entry.path().is_dir() {
            continue;
        }
        let owner = std::fs::read_to_string(entry.path().join(PID_FILE)).unwrap_or_default();
        let mut owner = owner.split_whitespace();
        let pid = owner.next().and_then(|p| p.parse::<u32>().ok());
        let here = owner.next().is_none_or(|h| h == hostname());
        let alive = match pid {
            Some(pid) if here && pid == std::process::id() => true,
            Some(pid) if here => process_alive(pid),
            // Another host's: only its age can tell it was abandoned.
            Some(_) => !older_than(&entry.path(), FOREIGN_STAGING_TTL),
            None => false,
        };
        if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// How long another host's staging directory is left alone.
const FOREIGN_STAGING_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn older_than(path: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e > age)
}

/// This machine's host name (a pod's name in Kubernetes), or "" where unknown.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // Without /proc, assume it may still run: leaving a stale directory is harmless.
        true
    }
}

/// Hard-link `src` to `dst` (same file system), falling back to a copy.
pub fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    create_dir_all(parent_dir(dst))?;
    if dst.exists() {
        std::fs::remove_file(dst).map_err(|e| FsError::new("replacing", dst, e))?;
    }
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dst).map(|_| ()).map_err(|e| FsError::new("copying into", dst, e))
}

/// [`link_or_copy`] every file below `src` into the same relative place below `dst`.
pub fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    create_dir_all(dst)?;
    let entries = std::fs::read_dir(src).map_err(|e| FsError::new("reading directory", src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| FsError::new("reading directory", src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        if from.is_dir() {
            link_tree(&from, &to)?;
        } else {
            link_or_copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Size of a file in bytes.
pub fn file_size(path: &Path) -> Result<u64> {
    std::fs::metadata(path).map(|m| m.len()).map_err(|e| FsError::new("reading size of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_dir_appears_only_on_commit() {
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("out");
        let staging = StagingDir::new(&dest).unwrap();
        std::fs::write(staging.path().join("a.txt"), "x").unwrap();
        assert!(!dest.exists());
        staging.commit().unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("a.txt")).unwrap(), "x");
        // Only `out` is left: no temporary siblings.
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_staging_dir_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        {
            let staging = StagingDir::new(&root.path().join("out")).unwrap();
            std::fs::write(staging.path().join("a.txt"), "x").unwrap();
        }
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn sweep_removes_only_dead_owners() {
        let root = tempfile::tempdir().unwrap();
        let live = StagingDir::new(&root.path().join("live")).unwrap();
        let dead = root.path().join(".partial-dead-x");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(PID_FILE), "999999999").unwrap();
        assert_eq!(sweep_stale(root.path()), 1);
        assert!(live.path().exists());
        assert!(!dead.exists());
        let committed = live.commit().unwrap();
        assert!(!committed.join(PID_FILE).exists());
    }

    #[test]
    fn sweep_leaves_other_hosts_staging_alone() {
        // Shards on a shared volume: a pid from another host says nothing here.
        let root = tempfile::tempdir().unwrap();
        let foreign = root.path().join(".partial-foreign-x");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join(PID_FILE), "999999999 some-other-pod").unwrap();
        let ours_dead = root.path().join(".partial-ours-x");
        std::fs::create_dir(&ours_dead).unwrap();
        std::fs::write(ours_dead.join(PID_FILE), format!("999999999 {}", hostname())).unwrap();
        assert_eq!(sweep_stale(root.path()), 1);
        assert!(foreign.exists());
        assert!(!ours_dead.exists());
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("f.json");
        atomic_write(&p, b"first version, long").unwrap();
        atomic_write(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
