//! CIFAR-10 and CIFAR-100 from their binary releases (`cifar-10-binary.tar.gz`,
//! `cifar-100-binary.tar.gz`): finding the batch files or the archive, downloading the
//! archive when they are nowhere to be found, and turning the records into a checked
//! [`Dataset`].
//!
//! A CIFAR-10 record is one label byte and 3,072 pixel bytes (the R, G and B planes of
//! a 32x32 image), `data_batch_1.bin` to `data_batch_5.bin` holding the 50,000 training
//! images and `test_batch.bin` the 10,000 test images. A CIFAR-100 record has a coarse
//! and a fine label byte before the pixels, in `train.bin` and `test.bin`. The pixels
//! are already the channel-planar layout a [`Split`] holds, so they are copied as they
//! are.
//!
//! The batch files are read from a directory (`cifar-10-batches-bin/` as extracted, or
//! the files themselves) or straight out of the `.tar.gz`, which is never unpacked to
//! disk. The content hash is over the batch files' bytes, so both give the same one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use slimbench_core::config::{Cifar10Config, Cifar100Config, Cifar100Labels};
use slimbench_core::hash;

use crate::fetch::{self, FetchOptions};
use crate::{DataError, DataLookup, Dataset, Searched, Split, show};

/// Side of every CIFAR image.
pub const SIDE: usize = 32;

/// Pixel bytes of one record: three 32x32 planes.
pub const PIXELS: usize = 3 * SIDE * SIDE;

/// Where a CIFAR release is published, and what is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The dataset kind (`cifar10`).
    pub kind: &'static str,
    /// Its directory under the data dir and the cache (`cifar-10`).
    pub dirname: &'static str,
    /// The archive's file name (`cifar-10-binary.tar.gz`).
    pub archive: &'static str,
    /// Lower-case hex MD5 of the archive as published.
    pub md5: String,
    /// Base URLs, tried in order; the archive's URL is `<base><archive>`.
    pub mirrors: &'static [&'static str],
    /// The directory the archive unpacks into (`cifar-10-batches-bin`).
    pub inner: &'static str,
    /// Training batch files, in order.
    pub train: &'static [&'static str],
    /// Test batch files, in order.
    pub test: &'static [&'static str],
    /// Label bytes before the pixels of a record (1, or 2 for CIFAR-100).
    pub label_bytes: usize,
}

impl Release {
    /// Bytes of one record.
    pub fn record_len(&self) -> usize {
        self.label_bytes + PIXELS
    }

    fn files(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.train.iter().chain(self.test).copied()
    }
}

/// CIFAR-10's binary release.
pub fn cifar10_release() -> Release {
    Release {
        kind: "cifar10",
        dirname: "cifar-10",
        archive: "cifar-10-binary.tar.gz",
        md5: "c32a1d4ab5d03f1284b67883e8d87530".into(),
        mirrors: &["https://www.cs.toronto.edu/~kriz/"],
        inner: "cifar-10-batches-bin",
        train: &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        test: &["test_batch.bin"],
        label_bytes: 1,
    }
}

/// CIFAR-100's binary release.
pub fn cifar100_release() -> Release {
    Release {
        kind: "cifar100",
        dirname: "cifar-100",
        archive: "cifar-100-binary.tar.gz",
        md5: "03b5dce01913d631647c71ecec9e9cb8".into(),
        mirrors: &["https://www.cs.toronto.edu/~kriz/"],
        inner: "cifar-100-binary",
        train: &["train.bin"],
        test: &["test.bin"],
        label_bytes: 2,
    }
}

/// CIFAR-10's classes, in label order.
pub const CIFAR10_NAMES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// CIFAR-100's fine classes, in label order.
pub const CIFAR100_FINE_NAMES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// CIFAR-100's coarse classes (superclasses), in label order.
pub const CIFAR100_COARSE_NAMES: [&str; 20] = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
];

/// What a load needs from either config.
#[derive(Debug, Clone, Copy)]
struct Settings<'a> {
    path: Option<&'a Path>,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
    mirrors: Option<&'a [String]>,
    /// Which label byte of a record is the class (0 for CIFAR-10; 0 coarse, 1 fine).
    label_at: usize,
    classes: usize,
    /// The file with one class name a line, when the release has one.
    names_file: &'static str,
    default_names: &'static [&'static str],
    /// `fine` or `coarse` for CIFAR-100, part of the content hash.
    labels: Option<&'static str>,
}

/// Load CIFAR-10 (what [`crate::load`] does for it).
pub fn load_cifar10(name: &str, cfg: &Cifar10Config, lookup: &DataLookup) -> Result<Dataset, DataError> {
    load_cifar10_with(name, cfg, lookup, &cifar10_release(), &FetchOptions::default())
}

/// Load CIFAR-100 (what [`crate::load`] does for it).
pub fn load_cifar100(name: &str, cfg: &Cifar100Config, lookup: &DataLookup) -> Result<Dataset, DataError> {
    load_cifar100_with(name, cfg, lookup, &cifar100_release(), &FetchOptions::default())
}

/// [`load_cifar10`] with the release (checksum, mirrors) and network settings given.
pub fn load_cifar10_with(
    name: &str,
    cfg: &Cifar10Config,
    lookup: &DataLookup,
    release: &Release,
    opts: &FetchOptions,
) -> Result<Dataset, DataError> {
    let s = Settings {
        path: cfg.path.as_deref(),
        train_limit: cfg.train_limit,
        test_limit: cfg.test_limit,
        mirrors: cfg.mirrors.as_deref(),
        label_at: 0,
        classes: 10,
        names_file: "batches.meta.txt",
        default_names: &CIFAR10_NAMES,
        labels: None,
    };
    load_with(name, &s, lookup, release, opts)
}

/// [`load_cifar100`] with the release (checksum, mirrors) and network settings given.
pub fn load_cifar100_with(
    name: &str,
    cfg: &Cifar100Config,
    lookup: &DataLookup,
    release: &Release,
    opts: &FetchOptions,
) -> Result<Dataset, DataError> {
    let (label_at, classes, names_file, default_names, labels): (_, _, _, &'static [&'static str], _) =
        match cfg.labels {
            Cifar100Labels::Fine => (1, 100, "fine_label_names.txt", &CIFAR100_FINE_NAMES, "fine"),
            Cifar100Labels::Coarse => (0, 20, "coarse_label_names.txt", &CIFAR100_COARSE_NAMES, "coarse"),
        };
    let s = Settings {
        path: cfg.path.as_deref(),
        train_limit: cfg.train_limit,
        test_limit: cfg.test_limit,
        mirrors: cfg.mirrors.as_deref(),
        label_at,
        classes,
        names_file,
        default_names,
        labels: Some(labels),
    };
    load_with(name, &s, lookup, release, opts)
}

/// Where the batch files are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A directory holding every batch file.
    Dir(PathBuf),
    /// The release's `.tar.gz`.
    Archive(PathBuf),
}

fn load_with(
    name: &str,
    s: &Settings<'_>,
    lookup: &DataLookup,
    release: &Release,
    opts: &FetchOptions,
) -> Result<Dataset, DataError> {
    for (limit, field) in [(s.train_limit, "train_limit"), (s.test_limit, "test_limit")] {
        if limit == Some(0) {
            return Err(DataError::InvalidConfig {
                dataset: name.to_string(),
                message: format!("{field} is 0, so there would be no image to use"),
                hint: format!("remove {field} to use every image, or set it to at least 1"),
            });
        }
    }
    let source = locate(name, s, lookup, release, opts)?;
    let files = read_files(name, &source, release, s.names_file)?;
    build(name, s, release, &source, files)
}

/// The batch files, or why `dir` does not hold them.
fn probe(dir: &Path, release: &Release) -> Result<Source, String> {
    if !dir.is_dir() {
        return Err(if dir.exists() { "is not a directory" } else { "does not exist" }.to_string());
    }
    let missing = |d: &Path| release.files().filter(|f| !d.join(f).is_file()).collect::<Vec<_>>();
    let inner = dir.join(release.inner);
    let (here, there) = (missing(dir), missing(&inner));
    if here.is_empty() {
        return Ok(Source::Dir(dir.to_path_buf()));
    }
    if there.is_empty() {
        return Ok(Source::Dir(inner));
    }
    if dir.join(release.archive).is_file() {
        return Ok(Source::Archive(dir.join(release.archive)));
    }
    Err(if inner.is_dir() {
        format!("{}/ lacks {}, and there is no {}", release.inner, there.join(", "), release.archive)
    } else {
        format!("lacks {}/ and {}", release.inner, release.archive)
    })
}

/// The batch files' place, after a download if need be; the same order as MNIST's:
/// `path:` alone when set, else the data dir, the cache, a download into the cache.
fn locate(
    name: &str,
    s: &Settings<'_>,
    lookup: &DataLookup,
    release: &Release,
    opts: &FetchOptions,
) -> Result<Source, DataError> {
    let mut searched = Vec::new();
    let try_dir = |dir: PathBuf, searched: &mut Vec<Searched>| match probe(&dir, release) {
        Ok(found) => Some(found),
        Err(why) => {
            searched.push(Searched { dir, why });
            None
        }
    };
    let not_found = |searched, no_download: &str, hint: String| DataError::NotFound {
        dataset: name.to_string(),
        kind: release.kind,
        searched,
        no_download: no_download.to_string(),
        hint,
    };

    if let Some(path) = s.path {
        // Also accept the data-dir layout (`<path>/cifar-10/`).
        for dir in [path.to_path_buf(), path.join(release.dirname)] {
            if let Some(found) = try_dir(dir, &mut searched) {
                return Ok(found);
            }
        }
        let hint = format!(
            "put {} or its extracted {}/ there, or remove `path:` from the dataset to search the \
             data dir and the cache and download what is missing",
            release.archive, release.inner
        );
        return Err(not_found(searched, "the dataset's `path:` is set, so nothing else is searched", hint));
    }

    let cache = lookup.cache_dir_for(release.dirname);
    for dir in lookup.data_dir.iter().map(|d| d.join(release.dirname)).chain(cache.clone()) {
        if let Some(found) = try_dir(dir, &mut searched) {
            return Ok(found);
        }
    }

    let provide = format!(
        "pass --data-dir DIR with DIR/{}/{} (or its extracted {}/), or set SLIMBENCH_DATA_DIR",
        release.dirname, release.archive, release.inner
    );
    let Some(cache) = cache.filter(|_| lookup.allow_download) else {
        let (why, hint) = if lookup.allow_download {
            ("there is no cache directory to download into", format!("{provide}, or set SLIMBENCH_CACHE_DIR"))
        } else {
            (
                "downloading is turned off",
                format!("{provide}; or unset SLIMBENCH_OFFLINE to let slimbench download it"),
            )
        };
        return Err(not_found(searched, why, hint));
    };

    let mirrors: Vec<String> = match s.mirrors {
        Some(m) => m.to_vec(),
        None => release.mirrors.iter().map(|m| m.to_string()).collect(),
    };
    // fetch_file adds the `.gz`.
    let stem = release.archive.strip_suffix(".gz").unwrap_or(release.archive);
    match fetch::fetch_file(&mirrors, stem, &release.md5, &cache, opts) {
        Ok(path) => Ok(Source::Archive(path)),
        Err(attempts) => Err(DataError::DownloadFailed {
            dataset: name.to_string(),
            kind: release.kind,
            searched,
            dest: cache.join(release.archive),
            attempts,
        }),
    }
}

/// The bytes of each batch file (in [`Release::files`] order) and of the class-names
/// file when there is one, with the paths to name in messages.
struct Files {
    batches: Vec<(PathBuf, Vec<u8>)>,
    names: Option<Vec<u8>>,
}

fn read_error(name: &str, path: &Path, error: std::io::Error) -> DataError {
    DataError::Read { dataset: name.to_string(), path: path.to_path_buf(), error }
}

fn read_files(name: &str, source: &Source, release: &Release, names_file: &str) -> Result<Files, DataError> {
    match source {
        Source::Dir(dir) => {
            let batches = release
                .files()
                .map(|f| {
                    let path = dir.join(f);
                    std::fs::read(&path).map(|b| (path.clone(), b)).map_err(|e| read_error(name, &path, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Files { batches, names: std::fs::read(dir.join(names_file)).ok() })
        }
        Source::Archive(archive) => read_archive(name, archive, release, names_file),
    }
}

/// Pull the batch files and the names file out of the `.tar.gz`, by file name (the
/// directory inside does not matter).
fn read_archive(name: &str, archive: &Path, release: &Release, names_file: &str) -> Result<Files, DataError> {
    let bad = |message: String| DataError::BadData {
        dataset: name.to_string(),
        path: archive.to_path_buf(),
        message,
        hint: format!(
            "replace it with an intact copy of {}; if it is in slimbench's cache, delete it and it will be \
             downloaded again",
            release.archive
        ),
    };
    let file = std::fs::File::open(archive).map_err(|e| read_error(name, archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let wanted: Vec<&str> = release.files().collect();
    let mut found: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
    let mut names = None;
    let entries = tar.entries().map_err(|e| bad(format!("it is not a readable .tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("it is not a readable .tar.gz: {e}")))?;
        let path = entry.path().map_err(|e| bad(format!("an entry has an unreadable name: {e}")))?;
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
        let slot = wanted.iter().position(|w| *w == file_name);
        if slot.is_none() && file_name != names_file {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("reading {file_name} from it failed: {e}")))?;
        match slot {
            Some(i) => found[i] = Some(bytes),
            None => names = Some(bytes),
        }
    }
    let missing: Vec<&str> =
        wanted.iter().zip(&found).filter(|(_, b)| b.is_none()).map(|(w, _)| *w).collect();
    if !missing.is_empty() {
        return Err(bad(format!("the archive lacks {}", missing.join(", "))));
    }
    let batches =
        wanted.iter().zip(found).map(|(w, b)| (archive.join(w), b.unwrap_or_default())).collect::<Vec<_>>();
    Ok(Files { batches, names })
}

/// Check and decode the records of one batch file: its pixels and the chosen labels.
fn parse(
    name: &str,
    path: &Path,
    bytes: &[u8],
    release: &Release,
    label_at: usize,
    classes: usize,
) -> Result<(Vec<u8>, Vec<u16>), DataError> {
    let record = release.record_len();
    let bad = |message: String, hint: &str| DataError::BadData {
        dataset: name.to_string(),
        path: path.to_path_buf(),
        message,
        hint: hint.to_string(),
    };
    let damaged = "the file is damaged or from another release; replace it with an intact copy \
                   (delete it if it is in slimbench's cache, and it will be downloaded again)";
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(bad(
            format!(
                "it is {} bytes long, which is not a whole number of {}-byte records ({} label byte{} and \
                 {PIXELS} pixel bytes each)",
                bytes.len(),
                record,
                release.label_bytes,
                if release.label_bytes == 1 { "" } else { "s" }
            ),
            damaged,
        ));
    }
    let n = bytes.len() / record;
    let mut images = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[label_at];
        if label as usize >= classes {
            return Err(bad(
                format!(
                    "record {i} has label {label}, out of range: there are {classes} classes, 0 to {}",
                    classes - 1
                ),
                damaged,
            ));
        }
        labels.push(label as u16);
        images.extend_from_slice(&r[release.label_bytes..]);
    }
    Ok((images, labels))
}

fn build(
    name: &str,
    s: &Settings<'_>,
    release: &Release,
    source: &Source,
    files: Files,
) -> Result<Dataset, DataError> {
    let n_train = release.train.len();
    let (train_files, test_files) = files.batches.split_at(n_train);
    let decode = |set: &[(PathBuf, Vec<u8>)], limit: Option<usize>| -> Result<Split, DataError> {
        let mut split = Split { channels: 3, rows: SIDE, cols: SIDE, ..Default::default() };
        for (path, bytes) in set {
            let (images, labels) = parse(name, path, bytes, release, s.label_at, s.classes)?;
            split.images.extend(images);
            split.labels.extend(labels);
        }
        if let Some(n) = limit {
            split.truncate(n);
        }
        Ok(split)
    };
    let (train, test) =
        rayon::join(|| decode(train_files, s.train_limit), || decode(test_files, s.test_limit));
    let (train, test) = (train?, test?);

    let file_hashes: Vec<(String, String)> = files
        .batches
        .iter()
        .map(|(p, b)| {
            (p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), hash::bytes(b))
        })
        .collect();
    #[derive(serde::Serialize)]
    struct ContentKey<'a> {
        kind: &'a str,
        files: &'a [(String, String)],
        labels: Option<&'a str>,
        train_limit: Option<usize>,
        test_limit: Option<usize>,
    }
    let content_hash = hash::json(&ContentKey {
        kind: release.kind,
        files: &file_hashes,
        labels: s.labels,
        train_limit: s.train_limit,
        test_limit: s.test_limit,
    });

    // The release's own names when its file has one a line for each class.
    let from_file: Option<Vec<String>> = files.names.as_deref().and_then(|b| {
        let text = String::from_utf8_lossy(b);
        let names: Vec<String> =
            text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
        (names.len() == s.classes).then_some(names)
    });
    let class_names = from_file.unwrap_or_else(|| s.default_names.iter().map(|n| n.to_string()).collect());

    Ok(Dataset {
        name: name.to_string(),
        kind: release.kind.to_string(),
        train: Arc::new(train),
        test: Arc::new(test),
        classes: s.classes,
        class_names,
        normalize: None,
        source: match source {
            Source::Dir(d) => show(d),
            Source::Archive(a) => show(a),
        },
        content_hash,
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::fetch::md5_hex;
    use crate::fetch::tests::{TestServer, local_opts};

    /// A batch of `n` CIFAR-10 records: image `i` of file `f` has label `(i + f) % 10`
    /// and pixels `mark`, except the first R, G, B bytes which hold `i`, `f` and 7.
    fn batch10(f: usize, n: usize, mark: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * 3073);
        for i in 0..n {
            out.push(((i + f) % 10) as u8);
            let mut px = vec![mark; PIXELS];
            (px[0], px[1024], px[2048]) = (i as u8, f as u8, 7);
            out.extend(px);
        }
        out
    }

    /// CIFAR-100 records: coarse label `i % 20`, fine `(3 * i) % 100`.
    fn batch100(n: usize, mark: u8) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend([(i % 20) as u8, (3 * i % 100) as u8]);
            out.extend(vec![mark; PIXELS]);
        }
        out
    }

    /// The CIFAR-10 files: five training batches of `n` and a test batch of `n`, plus
    /// the names file.
    fn files10(n: usize, mark: u8) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = cifar10_release()
            .files()
            .enumerate()
            .map(|(f, name)| (name.to_string(), batch10(f, n, mark)))
            .collect();
        let names =
            CIFAR10_NAMES.iter().map(|n| format!("{n}\n")).collect::<String>().replace("cat", "kitty");
        files.push(("batches.meta.txt".into(), format!("{names}\n\n").into_bytes()));
        files
    }

    fn write_dir(dir: &Path, files: &[(String, Vec<u8>)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    /// A real `.tar.gz` with the files under `inner/`, as the release packs them.
    fn targz(inner: &str, files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        tar.append_data(&mut dir, format!("{inner}/"), std::io::empty()).unwrap();
        for (name, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, format!("{inner}/{name}"), bytes.as_slice()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn lookup(data: Option<&Path>, cache: Option<&Path>, allow_download: bool) -> DataLookup {
        DataLookup {
            data_dir: data.map(Path::to_path_buf),
            cache_dir: cache.map(Path::to_path_buf),
            allow_download,
        }
    }

    fn load10(cfg: &Cifar10Config, l: &DataLookup) -> Result<Dataset, DataError> {
        load_cifar10_with("c10", cfg, l, &cifar10_release(), &local_opts())
    }

    #[test]
    fn reads_extracted_batches_in_the_release_layout() {
        let root = tempfile::tempdir().unwrap();
        write_dir(&root.path().join("cifar-10/cifar-10-batches-bin"), &files10(4, 9));
        let d = load10(&Cifar10Config::default(), &lookup(Some(root.path()), None, false)).unwrap();
        assert_eq!((d.kind.as_str(), d.classes, d.input_shape()), ("cifar10", 10, [3, 32, 32]));
        assert_eq!((d.train.len(), d.test.len()), (20, 4));
        // Records are copied as they are: R plane, G plane, B plane; files in order.
        let img = d.train.image(5);
        assert_eq!((img[0], img[1024], img[2048], img[1], img[3071]), (1, 1, 7, 9, 9));
        assert_eq!(d.train.labels[..6], [0, 1, 2, 3, 1, 2]);
        assert_eq!(d.test.labels, [5, 6, 7, 8]);
        assert_eq!(d.class_names[3], "kitty", "the release's names file wins");
        assert!(d.source.ends_with("cifar-10-batches-bin"), "{}", d.source);
    }

    #[test]
    fn archive_gives_the_same_data_and_hash_as_the_extracted_files() {
        let root = tempfile::tempdir().unwrap();
        let files = files10(3, 5);
        write_dir(&root.path().join("a"), &files);
        std::fs::create_dir_all(root.path().join("b")).unwrap();
        std::fs::write(root.path().join("b/cifar-10-binary.tar.gz"), targz("cifar-10-batches-bin", &files))
            .unwrap();
        let l = lookup(None, None, false);
        let from_dir =
            load10(&Cifar10Config { path: Some(root.path().join("a")), ..Default::default() }, &l).unwrap();
        let from_tar =
            load10(&Cifar10Config { path: Some(root.path().join("b")), ..Default::default() }, &l).unwrap();
        assert_eq!(from_tar.train, from_dir.train);
        assert_eq!(from_tar.test, from_dir.test);
        assert_eq!(from_tar.content_hash, from_dir.content_hash);
        assert_eq!(from_tar.class_names, from_dir.class_names);
        assert!(from_tar.source.ends_with("cifar-10-binary.tar.gz"));

        // An archive missing a batch, and one that is not gzip at all.
        let short = targz("cifar-10-batches-bin", &files[..4]);
        std::fs::write(root.path().join("b/cifar-10-binary.tar.gz"), short).unwrap();
        let cfg = Cifar10Config { path: Some(root.path().join("b")), ..Default::default() };
        let e = load10(&cfg, &l).unwrap_err().to_string();
        assert!(
            e.contains("cifar-10-binary.tar.gz: the archive lacks data_batch_5.bin, test_batch.bin\nhint: "),
            "{e}"
        );
        std::fs::write(root.path().join("b/cifar-10-binary.tar.gz"), b"not an archive").unwrap();
        let e = load10(&cfg, &l).unwrap_err().to_string();
        assert!(e.contains("cifar-10-binary.tar.gz: it is not a readable .tar.gz"), "{e}");
    }

    #[test]
    fn lookup_order_path_then_data_dir_then_cache() {
        let root = tempfile::tempdir().unwrap();
        let (data, cache, mine) =
            (root.path().join("data"), root.path().join("cache"), root.path().join("mine"));
        write_dir(&data.join("cifar-10/cifar-10-batches-bin"), &files10(2, 1));
        std::fs::create_dir_all(cache.join("datasets/cifar-10")).unwrap();
        std::fs::write(cache.join("datasets/cifar-10/cifar-10-binary.tar.gz"), targz("x", &files10(2, 2)))
            .unwrap();
        write_dir(&mine, &files10(2, 3));
        let l = lookup(Some(&data), Some(&cache), false);
        let mark = |cfg: &Cifar10Config| load10(cfg, &l).unwrap().train.images[5];
        assert_eq!(mark(&Cifar10Config::default()), 1);
        assert_eq!(mark(&Cifar10Config { path: Some(mine.clone()), ..Default::default() }), 3);
        std::fs::remove_dir_all(data.join("cifar-10")).unwrap();
        assert_eq!(mark(&Cifar10Config::default()), 2);

        // `path:` is the only place searched when set.
        let cfg = Cifar10Config { path: Some(root.path().join("nowhere")), ..Default::default() };
        let e = load10(&cfg, &l).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "could not find the CIFAR-10 files of dataset `c10`, and the dataset's `path:` is set"
            ),
            "{e}"
        );
        assert!(!e.contains(&data.display().to_string()) && !e.contains("datasets/cifar-10"), "{e}");

        // Offline, nothing anywhere.
        std::fs::remove_dir_all(&cache).unwrap();
        let e = load10(&Cifar10Config::default(), &l).unwrap_err().to_string();
        let e = e.replace(&root.path().display().to_string(), "ROOT");
        assert_eq!(
            e,
            "could not find the CIFAR-10 files of dataset `c10`, and downloading is turned off\n  \
             searched ROOT/data/cifar-10: does not exist\n  \
             searched ROOT/cache/datasets/cifar-10: does not exist\n\
             hint: pass --data-dir DIR with DIR/cifar-10/cifar-10-binary.tar.gz (or its extracted \
             cifar-10-batches-bin/), or set SLIMBENCH_DATA_DIR; or unset SLIMBENCH_OFFLINE to let slimbench \
             download it"
        );
        // A half-extracted directory says what it lacks.
        let part = data.join("cifar-10/cifar-10-batches-bin");
        write_dir(&part, &files10(2, 1)[..3]);
        let e = load10(&Cifar10Config::default(), &l).unwrap_err().to_string();
        assert!(
            e.contains("cifar-10-batches-bin/ lacks data_batch_4.bin, data_batch_5.bin, test_batch.bin, and there is no cifar-10-binary.tar.gz"),
            "{e}"
        );
    }

    #[test]
    fn download_is_md5_checked_then_reused() {
        let archive = targz("cifar-10-batches-bin", &files10(2, 4));
        let server = TestServer::start(HashMap::from([
            ("good/cifar-10-binary.tar.gz".to_string(), archive.clone()),
            ("bad/cifar-10-binary.tar.gz".to_string(), targz("cifar-10-batches-bin", &files10(2, 5))),
        ]));
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        let l = lookup(None, Some(&cache), true);
        let release = Release { md5: md5_hex(&archive), ..cifar10_release() };
        let base = server.base.clone();
        let load = |mirror: &str| {
            let cfg = Cifar10Config { mirrors: Some(vec![format!("{base}{mirror}")]), ..Default::default() };
            load_cifar10_with("c10", &cfg, &l, &release, &local_opts())
        };

        let e = load("bad/").unwrap_err().to_string();
        assert!(e.starts_with("could not find or download the CIFAR-10 files of dataset `c10`\n"), "{e}");
        assert!(e.contains("downloading cifar-10-binary.tar.gz into "), "{e}");
        assert!(
            e.contains(&format!(
                "checksum mismatch for cifar-10-binary.tar.gz: expected MD5 {}",
                release.md5
            )),
            "{e}"
        );
        assert!(e.contains("\nhint: check the network connection (and the dataset's `mirrors:`), or download cifar-10-binary.tar.gz yourself"), "{e}");
        assert!(
            !cache.join("datasets/cifar-10/cifar-10-binary.tar.gz").exists(),
            "a bad download is not kept"
        );

        let d = load("good").unwrap();
        assert_eq!((d.train.len(), d.train.images[5]), (10, 4));
        assert!(cache.join("datasets/cifar-10/cifar-10-binary.tar.gz").is_file());
        drop(server);
        // The cached archive is used without the network.
        assert_eq!(load("good").unwrap().content_hash, d.content_hash);

        // Downloading turned off: a clear error, nothing fetched.
        let offline = lookup(None, Some(&root.path().join("other")), false);
        let e = load_cifar10_with("c10", &Cifar10Config::default(), &offline, &release, &local_opts())
            .unwrap_err();
        assert!(e.to_string().contains("downloading is turned off"), "{e}");
    }

    #[test]
    fn truncated_files_and_bad_labels_are_named() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c");
        let cfg = Cifar10Config { path: Some(dir.clone()), ..Default::default() };
        let l = lookup(None, None, false);

        let mut files = files10(3, 0);
        files[2].1.truncate(2 * 3073 + 100);
        write_dir(&dir, &files);
        let e = load10(&cfg, &l).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "dataset `c10`: {}: it is 6246 bytes long, which is not a whole number of 3073-byte records \
                 (1 label byte and 3072 pixel bytes each)\nhint: the file is damaged or from another release; \
                 replace it with an intact copy (delete it if it is in slimbench's cache, and it will be \
                 downloaded again)",
                dir.join("data_batch_3.bin").display()
            )
        );

        let mut files = files10(3, 0);
        files[5].1[2 * 3073] = 10;
        write_dir(&dir, &files);
        let e = load10(&cfg, &l).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "dataset `c10`: {}: record 2 has label 10, out of range: there are 10 classes, 0 to 9\nhint: ",
                dir.join("test_batch.bin").display()
            )),
            "{e}"
        );

        let mut files = files10(3, 0);
        files[0].1.clear();
        write_dir(&dir, &files);
        assert!(load10(&cfg, &l).unwrap_err().to_string().contains("data_batch_1.bin: it is 0 bytes long"));
    }

    #[test]
    fn limits_truncate_and_change_the_hash() {
        let root = tempfile::tempdir().unwrap();
        write_dir(root.path(), &files10(4, 0));
        let base = Cifar10Config { path: Some(root.path().into()), ..Default::default() };
        let l = lookup(None, None, false);
        let full = load10(&base, &l).unwrap();
        let d = load10(&Cifar10Config { train_limit: Some(7), test_limit: Some(99), ..base.clone() }, &l)
            .unwrap();
        assert_eq!((d.train.len(), d.train.images.len(), d.test.len()), (7, 7 * 3072, 4));
        assert_ne!(d.content_hash, full.content_hash);
        let e = load10(&Cifar10Config { train_limit: Some(0), ..base }, &l).unwrap_err().to_string();
        assert!(e.starts_with("dataset `c10`: train_limit is 0"), "{e}");
    }

    #[test]
    fn cifar100_fine_or_coarse() {
        let root = tempfile::tempdir().unwrap();
        let files =
            vec![("train.bin".to_string(), batch100(30, 1)), ("test.bin".to_string(), batch100(10, 2))];
        std::fs::write(root.path().join("cifar-100-binary.tar.gz"), targz("cifar-100-binary", &files))
            .unwrap();
        let l = lookup(None, None, false);
        let load = |labels| {
            let cfg = Cifar100Config { path: Some(root.path().into()), labels, ..Default::default() };
            load_cifar100_with("c100", &cfg, &l, &cifar100_release(), &local_opts()).unwrap()
        };
        let fine = load(Cifar100Labels::Fine);
        assert_eq!((fine.kind.as_str(), fine.classes, fine.class_names.len()), ("cifar100", 100, 100));
        assert_eq!((fine.train.len(), fine.test.len()), (30, 10));
        assert_eq!(fine.train.labels[..4], [0, 3, 6, 9]);
        assert_eq!((fine.class_names[0].as_str(), fine.class_names[99].as_str()), ("apple", "worm"));
        let coarse = load(Cifar100Labels::Coarse);
        assert_eq!((coarse.classes, coarse.class_names.len()), (20, 20));
        assert_eq!(coarse.train.labels[19..22], [19, 0, 1]);
        assert_eq!(coarse.train.images, fine.train.images);
        assert_ne!(coarse.content_hash, fine.content_hash);

        // A record length that fits CIFAR-10 but not CIFAR-100, and a fine label of 100.
        let mut bad = batch100(3, 0);
        bad.pop();
        std::fs::write(root.path().join("train.bin"), &bad).unwrap();
        std::fs::write(root.path().join("test.bin"), batch100(2, 0)).unwrap();
        let cfg = Cifar100Config { path: Some(root.path().into()), ..Default::default() };
        let e =
            load_cifar100_with("c100", &cfg, &l, &cifar100_release(), &local_opts()).unwrap_err().to_string();
        assert!(e.contains("train.bin: it is 9221 bytes long, which is not a whole number of 3074-byte records (2 label bytes"), "{e}");
        let mut bad = batch100(3, 0);
        bad[3074 + 1] = 100;
        std::fs::write(root.path().join("train.bin"), &bad).unwrap();
        let e =
            load_cifar100_with("c100", &cfg, &l, &cifar100_release(), &local_opts()).unwrap_err().to_string();
        assert!(
            e.contains("train.bin: record 1 has label 100, out of range: there are 100 classes, 0 to 99"),
            "{e}"
        );
    }

    #[test]
    fn built_in_names_and_checksums() {
        assert_eq!(CIFAR100_FINE_NAMES.len(), 100);
        let mut sorted = CIFAR100_FINE_NAMES.to_vec();
        sorted.sort();
        assert_eq!(sorted, CIFAR100_FINE_NAMES, "the fine labels are in alphabetical order");
        assert_eq!(cifar10_release().md5, "c32a1d4ab5d03f1284b67883e8d87530");
        assert_eq!(cifar100_release().md5, "03b5dce01913d631647c71ecec9e9cb8");
        assert_eq!((cifar10_release().record_len(), cifar100_release().record_len()), (3073, 3074));
    }

    /// A real copy in the shared data (`cifar-10/`) when present.
    #[test]
    fn real_cifar10_when_present() {
        let present = |copy: &Path| probe(copy, &cifar10_release()).is_ok();
        let Some(dir) = crate::testdata::shared_if("cifar-10", present) else { return };
        let d = load_cifar10("c", &Cifar10Config::default(), &lookup(Some(&dir), None, false)).unwrap();
        assert_eq!((d.train.len(), d.test.len()), (50_000, 10_000));
        assert_eq!(d.train.class_counts(10), [5000; 10]);
        assert_eq!(d.test.class_counts(10), [1000; 10]);
    }
}
