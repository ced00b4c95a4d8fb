//! The stage cache: `results/<pipeline>/cache/<stage>/<key>/`.
//!
//! A stage's key hashes everything its result depends on: the tool version and the git
//! revision it was built from, its kind and resolved parameters, the run defaults
//! (seed, resolved device, threads), the content hashes of the datasets it reads, the
//! configs of the models it builds and the content hashes of its inputs' files. An entry is written in a staging directory
//! and renamed into place when complete, so an entry that exists is whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use slimbench_core::artifact::StageManifest;
use slimbench_core::config::{ModelConfig, StageParams};
use slimbench_core::{TOOL_VERSION, fsutil, hash};

use crate::resolve::PlannedStage;

/// Number of entries kept per stage; older ones are deleted.
const KEEP_PER_STAGE: usize = 3;

/// Everything a stage key covers.
#[derive(Debug, Serialize)]
pub struct KeyInputs<'a> {
    /// Git revision of the slimbench build: new code may compute different results.
    /// (Uncommitted changes do not show here; `--force` reruns.)
    pub build: &'a str,
    /// Stage kind.
    pub kind: &'a str,
    /// Resolved parameters.
    pub params: &'a StageParams,
    /// Seed.
    pub seed: u64,
    /// Resolved device (`cpu`, `cuda:0`).
    pub device: &'a str,
    /// libtorch threads.
    pub threads: usize,
    /// Content hash of each dataset the stage reads.
    pub datasets: BTreeMap<String, String>,
    /// Configs of the models it builds.
    pub models: BTreeMap<String, &'a ModelConfig>,
    /// For each input stage, the content hashes of its files and of its variant list.
    pub inputs: BTreeMap<String, InputKey<'a>>,
    /// Processes of a multi-process job, for the stages that train across them (their
    /// result depends on how many share each batch); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<usize>,
}

/// What a stage's key takes from one input stage.
#[derive(Debug, Serialize)]
pub struct InputKey<'a> {
    /// Content hash of each file.
    pub files: &'a BTreeMap<String, String>,
    /// Hash of the variants it declared (names and metadata).
    pub variants: String,
}

impl KeyInputs<'_> {
    /// The key: hex BLAKE3 of the canonical JSON of everything above and the tool version.
    pub fn key(&self) -> String {
        hash::json(&(TOOL_VERSION, self))
    }
}

/// The cache of one pipeline.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache rooted at `root` (`results/<pipeline>/cache`).
    pub fn new(root: PathBuf) -> Self {
        Cache { root }
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of a stage's entry for a key.
    pub fn entry_dir(&self, stage: &PlannedStage, key: &str) -> PathBuf {
        self.root.join(stage.slug()).join(&key[..16.min(key.len())])
    }

    /// A complete, intact entry for this stage and key. Entries whose files are missing
    /// or changed since they were written are ignored (and will be rewritten).
    pub fn lookup(&self, stage: &PlannedStage, key: &str) -> Option<(PathBuf, StageManifest)> {
        let dir = self.entry_dir(stage, key);
        let manifest: StageManifest = fsutil::read_json(&dir.join("stage.json")).ok()?;
        if manifest.key != key {
            return None;
        }
        for (file, expected) in &manifest.files {
            match hash::file(&dir.join(file)) {
                Ok(h) if &h == expected => {}
                _ => {
                    tracing::warn!(stage = %stage.id, file, "cached file is missing or changed; the stage will run again");
                    return None;
                }
            }
        }
        Some((dir, manifest))
    }

    /// Delete all but the newest entries of a stage.
    pub fn prune(&self, stage: &PlannedStage) {
        let dir = self.root.join(stage.slug());
        fsutil::sweep_stale(&dir);
        let Ok(entries) = std::fs::read_dir(&dir) else { return };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (_, old) in entries.into_iter().skip(KEEP_PER_STAGE) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
}

/// Content hashes of every file below `dir`, by relative path (`/`-separated).
pub fn hash_files(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else {
                let rel = path.strip_prefix(base).expect("below base").to_string_lossy().replace('\\', "/");
                if rel.starts_with('.') || rel == "stage.json" {
                    continue;
                }
                out.insert(rel, hash::file(&path)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}
