//! MNIST and Fashion-MNIST: finding the four IDX files, downloading them when they are
//! nowhere to be found, and turning them into a checked [`Dataset`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use slimbench_core::config::IdxDatasetConfig;
use slimbench_core::hash;

use crate::fetch::{self, FetchOptions, Release, RemoteFile};
use crate::idx::{self, Images};
use crate::{CLASSES, DataError, DataLookup, Dataset, Searched, Split, show};

/// The IDX dataset kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdxKind {
    Mnist,
    FashionMnist,
}

impl IdxKind {
    /// The kind's name, also its directory name under the data dir and the cache.
    pub(crate) fn name(self) -> &'static str {
        match self {
            IdxKind::Mnist => "mnist",
            IdxKind::FashionMnist => "fashion-mnist",
        }
    }

    fn release(self) -> &'static Release {
        match self {
            IdxKind::Mnist => &fetch::MNIST,
            IdxKind::FashionMnist => &fetch::FASHION_MNIST,
        }
    }
}

/// Fashion-MNIST's classes, in label order.
const FASHION_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The roles of the four files, in [`Release::files`] order.
const ROLES: [&str; 4] = ["training images", "training labels", "test images", "test labels"];

/// Load an IDX dataset with the canonical checksums and network settings.
pub(crate) fn load(
    name: &str,
    kind: IdxKind,
    cfg: &IdxDatasetConfig,
    lookup: &DataLookup,
) -> Result<Dataset, DataError> {
    load_with(name, kind, cfg, lookup, &kind.release().files, &FetchOptions::default())
}

/// [`load`] with the expected files (names and MD5s) and network settings passed in, so
/// tests can serve tiny files from a local server.
pub(crate) fn load_with(
    name: &str,
    kind: IdxKind,
    cfg: &IdxDatasetConfig,
    lookup: &DataLookup,
    files: &[RemoteFile; 4],
    opts: &FetchOptions,
) -> Result<Dataset, DataError> {
    for (limit, field) in [(cfg.train_limit, "train_limit"), (cfg.test_limit, "test_limit")] {
        if limit == Some(0) {
            return Err(DataError::InvalidConfig {
                dataset: name.to_string(),
                message: format!("{field} is 0, so there would be no image to use"),
                hint: format!("remove {field} to use every image, or set it to at least 1"),
            });
        }
    }
    let (dir, paths) = locate(name, kind, cfg, lookup, files, opts)?;
    read_set(name, kind, cfg, &dir, &paths)
}

/// The directory holding the four files and their paths, after a download if need be.
fn locate(
    name: &str,
    kind: IdxKind,
    cfg: &IdxDatasetConfig,
    lookup: &DataLookup,
    files: &[RemoteFile; 4],
    opts: &FetchOptions,
) -> Result<(PathBuf, [PathBuf; 4]), DataError> {
    let mut searched = Vec::new();
    let try_dir = |dir: PathBuf, searched: &mut Vec<Searched>| match find_files(&dir, files) {
        Ok(paths) => Some((dir, paths)),
        Err(why) => {
            searched.push(Searched { dir, why });
            None
        }
    };
    let not_found = |searched, no_download: &str, hint: String| DataError::NotFound {
        dataset: name.to_string(),
        kind: kind.name(),
        searched,
        no_download: no_download.to_string(),
        hint,
    };

    if let Some(path) = &cfg.path {
        // Also accept the data-dir layout (`<path>/mnist/`), an easy mistake to forgive.
        for dir in [path.clone(), path.join(kind.name())] {
            if let Some(found) = try_dir(dir, &mut searched) {
                return Ok(found);
            }
        }
        let hint = format!(
            "put {} there (each may be gzipped), or remove `path:` from the dataset to search \
             the data dir and the cache and download what is missing",
            list_names(files)
        );
        return Err(not_found(searched, "the dataset's `path:` is set, so nothing else is searched", hint));
    }

    let cache = lookup.cache_dir_for(kind.name());
    for dir in lookup.data_dir.iter().map(|d| d.join(kind.name())).chain(cache.clone()) {
        if let Some(found) = try_dir(dir, &mut searched) {
            return Ok(found);
        }
    }

    let provide = format!(
        "pass --data-dir DIR with DIR/{}/{}.gz (and the other three files), or set SLIMBENCH_DATA_DIR",
        kind.name(),
        files[0].name
    );
    let Some(cache) = cache.filter(|_| lookup.allow_download) else {
        let (why, hint) = if lookup.allow_download {
            ("there is no cache directory to download into", format!("{provide}, or set SLIMBENCH_CACHE_DIR"))
        } else {
            (
                "downloading is turned off",
                format!("{provide}; or unset SLIMBENCH_OFFLINE to let slimbench download them"),
            )
        };
        return Err(not_found(searched, why, hint));
    };

    let mirrors: Vec<String> = match &cfg.mirrors {
        Some(m) => m.clone(),
        None => kind.release().mirrors.iter().map(|m| m.to_string()).collect(),
    };
    for file in files {
        // Keep what an earlier, interrupted download already verified.
        if find_one(&cache, file.name).is_some() {
            continue;
        }
        if let Err(attempts) = fetch::fetch_file(&mirrors, file.name, file.md5, &cache, opts) {
            return Err(DataError::DownloadFailed {
                dataset: name.to_string(),
                kind: kind.name(),
                searched,
                dest: cache.join(format!("{}.gz", file.name)),
                attempts,
            });
        }
    }
    match find_files(&cache, files) {
        Ok(paths) => Ok((cache, paths)),
        // Only if something removed the files between the download and now.
        Err(why) => {
            searched.push(Searched { dir: cache, why });
            Err(not_found(searched, "the downloaded files vanished", provide))
        }
    }
}

/// The four files in `dir`, or why `dir` does not hold them.
fn find_files(dir: &Path, files: &[RemoteFile; 4]) -> Result<[PathBuf; 4], String> {
    if !dir.is_dir() {
        return Err(if dir.exists() { "is not a directory" } else { "does not exist" }.to_string());
    }
    let found = files.map(|f| find_one(dir, f.name));
    let missing: Vec<String> = files
        .iter()
        .zip(&found)
        .filter(|(_, p)| p.is_none())
        .map(|(f, _)| format!("{}(.gz)", f.name))
        .collect();
    if !missing.is_empty() {
        return Err(format!("lacks {}", missing.join(", ")));
    }
    Ok(found.map(|p| p.unwrap_or_default()))
}

/// `dir/<name>.gz` or `dir/<name>`, also in the `train-images.idx3-ubyte` spelling some
/// redistributions use.
fn find_one(dir: &Path, name: &str) -> Option<PathBuf> {
    let dotted = name.replacen("-idx", ".idx", 1);
    [format!("{name}.gz"), name.to_string(), format!("{dotted}.gz"), dotted]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn list_names(files: &[RemoteFile; 4]) -> String {
    let names: Vec<&str> = files.iter().map(|f| f.name).collect();
    format!("{}, {}, {} and {}", names[0], names[1], names[2], names[3])
}

/// Read, hash and decode one file.
fn read_file<T>(
    dataset: &str,
    path: &Path,
    decode: fn(&[u8]) -> Result<T, idx::IdxError>,
) -> Result<(String, T), DataError> {
    let bytes = std::fs::read(path).map_err(|error| DataError::Read {
        dataset: dataset.to_string(),
        path: path.to_path_buf(),
        error,
    })?;
    let value = decode(&bytes).map_err(|error| DataError::InvalidFile {
        dataset: dataset.to_string(),
        path: path.to_path_buf(),
        error,
    })?;
    Ok((hash::bytes(&bytes), value))
}

/// Read, hash and decode the four files, check that they fit together, and apply the
/// limits.
fn read_set(
    name: &str,
    kind: IdxKind,
    cfg: &IdxDatasetConfig,
    dir: &Path,
    paths: &[PathBuf; 4],
) -> Result<Dataset, DataError> {
    let dataset = || name.to_string();
    let read_images = |i: usize| read_file(name, &paths[i], idx::parse_images);
    let read_labels = |i: usize| read_file(name, &paths[i], idx::parse_labels);
    // All four at once: decompression dominates, and it is sequential within a file.
    let ((train_x, train_y), (test_x, test_y)) = rayon::join(
        || rayon::join(|| read_images(0), || read_labels(1)),
        || rayon::join(|| read_images(2), || read_labels(3)),
    );
    let ((h_train_x, train_x), (h_train_y, train_y)) = (train_x?, train_y?);
    let ((h_test_x, test_x), (h_test_y, test_y)) = (test_x?, test_y?);

    let inconsistent = |message: String, hint: &str| DataError::Inconsistent {
        dataset: dataset(),
        message,
        hint: hint.to_string(),
    };
    let split = |x: Images, y: Vec<u8>, i: usize, limit: Option<usize>| -> Result<Split, DataError> {
        let (px, py) = (paths[i].display(), paths[i + 1].display());
        if x.n != y.len() {
            return Err(inconsistent(
                format!(
                    "the {} ({px}) hold {} images but the {} ({py}) hold {} labels",
                    ROLES[i],
                    x.n,
                    ROLES[i + 1],
                    y.len()
                ),
                "the images and labels files must come from the same release; replace them with matching copies",
            ));
        }
        if let Some((at, label)) = idx::first_bad_label(&y, CLASSES) {
            return Err(inconsistent(
                format!(
                    "label {label} of image {at} in {py} is out of range: {} has {CLASSES} classes, 0 to {}",
                    crate::error::display_name(kind.name()),
                    CLASSES - 1
                ),
                "the labels file is damaged or belongs to another dataset; replace it with an intact copy",
            ));
        }
        let labels = y.into_iter().map(u16::from).collect();
        let mut s =
            Split { images: x.pixels, labels, channels: 1, rows: x.rows, cols: x.cols, normalize: None };
        if let Some(n) = limit {
            s.truncate(n);
        }
        Ok(s)
    };
    let train = split(train_x, train_y, 0, cfg.train_limit)?;
    let test = split(test_x, test_y, 2, cfg.test_limit)?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(inconsistent(
            format!(
                "the training images ({}) are {}x{} pixels but the test images ({}) are {}x{}",
                paths[0].display(),
                train.rows,
                train.cols,
                paths[2].display(),
                test.rows,
                test.cols
            ),
            "both image files must come from the same release; replace them with matching copies",
        ));
    }

    #[derive(serde::Serialize)]
    struct ContentKey<'a> {
        files: [&'a str; 4],
        train_limit: Option<usize>,
        test_limit: Option<usize>,
    }
    let content_hash = hash::json(&ContentKey {
        files: [&h_train_x, &h_train_y, &h_test_x, &h_test_y],
        train_limit: cfg.train_limit,
        test_limit: cfg.test_limit,
    });
    Ok(Dataset {
        name: name.to_string(),
        kind: kind.name().to_string(),
        train: Arc::new(train),
        test: Arc::new(test),
        classes: CLASSES,
        class_names: match kind {
            IdxKind::Mnist => crate::digit_names(),
            IdxKind::FashionMnist => FASHION_NAMES.iter().map(|n| n.to_string()).collect(),
        },
        normalize: None,
        source: show(dir),
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
    use crate::idx::tests::gz;

    const NAMES: [&str; 4] = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ];

    /// The four files of a tiny 4x4 dataset whose pixels are all `mark`, so a test can
    /// tell which directory a dataset came from; gzipped or raw.
    fn tiny_files(mark: u8, n_train: usize, n_test: usize) -> [Vec<u8>; 4] {
        let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
        [
            idx::encode_images(&vec![mark; n_train * 16], n_train, 4, 4),
            idx::encode_labels(&labels(n_train)),
            idx::encode_images(&vec![mark; n_test * 16], n_test, 4, 4),
            idx::encode_labels(&labels(n_test)),
        ]
    }

    fn write_set(dir: &Path, files: &[Vec<u8>; 4], gzip: bool) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in NAMES.iter().zip(files) {
            if gzip {
                std::fs::write(dir.join(format!("{name}.gz")), gz(bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    fn lookup(data: Option<&Path>, cache: Option<&Path>, allow_download: bool) -> DataLookup {
        DataLookup {
            data_dir: data.map(Path::to_path_buf),
            cache_dir: cache.map(Path::to_path_buf),
            allow_download,
        }
    }

    fn load_mnist(cfg: &IdxDatasetConfig, l: &DataLookup) -> Result<Dataset, DataError> {
        load(cfg_name(), IdxKind::Mnist, cfg, l)
    }

    fn cfg_name() -> &'static str {
        "digits"
    }

    #[test]
    fn data_dir_wins_over_cache() {
        let root = tempfile::tempdir().unwrap();
        let (data, cache) = (root.path().join("data"), root.path().join("cache"));
        write_set(&data.join("mnist"), &tiny_files(1, 20, 10), true);
        write_set(&cache.join("datasets/mnist"), &tiny_files(2, 20, 10), false);
        let l = lookup(Some(&data), Some(&cache), false);

        let d = load_mnist(&IdxDatasetConfig::default(), &l).unwrap();
        assert_eq!(d.train.images[0], 1);
        assert_eq!(d.source, data.join("mnist").display().to_string());
        assert_eq!((d.name.as_str(), d.kind.as_str(), d.classes), ("digits", "mnist", 10));
        assert_eq!((d.train.len(), d.test.len(), d.image_shape()), (20, 10, (4, 4)));
        assert_eq!(d.train.labels[..12], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);

        // Without the data dir's copy, the cache's is used.
        std::fs::remove_dir_all(data.join("mnist")).unwrap();
        let d2 = load_mnist(&IdxDatasetConfig::default(), &l).unwrap();
        assert_eq!(d2.train.images[0], 2);
        assert_ne!(d.content_hash, d2.content_hash);
        // Fashion-MNIST looks in its own directory.
        let e = load("f", IdxKind::FashionMnist, &IdxDatasetConfig::default(), &l).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "searched {}: does not exist",
                cache.join("datasets/fashion-mnist").display()
            )),
            "{e}"
        );
    }

    #[test]
    fn incomplete_directory_is_passed_over() {
        let root = tempfile::tempdir().unwrap();
        let (data, cache) = (root.path().join("data"), root.path().join("cache"));
        write_set(&data.join("mnist"), &tiny_files(1, 20, 10), true);
        std::fs::remove_file(data.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
        write_set(&cache.join("datasets/mnist"), &tiny_files(2, 20, 10), false);
        let d = load_mnist(&IdxDatasetConfig::default(), &lookup(Some(&data), Some(&cache), false)).unwrap();
        assert_eq!(d.train.images[0], 2);
    }

    #[test]
    fn explicit_path_is_the_only_place_searched() {
        let root = tempfile::tempdir().unwrap();
        let (data, mine) = (root.path().join("data"), root.path().join("mine"));
        write_set(&data.join("mnist"), &tiny_files(1, 20, 10), true);
        let l = lookup(Some(&data), None, true);

        let cfg = IdxDatasetConfig { path: Some(mine.clone()), ..Default::default() };
        let e = load_mnist(&cfg, &l).unwrap_err().to_string();
        assert!(e.starts_with(
            "could not find the MNIST files of dataset `digits`, and the dataset's `path:` is set, \
             so nothing else is searched"
        ));
        assert!(e.contains(&format!("searched {}: does not exist", mine.display())), "{e}");
        assert!(!e.contains(&data.display().to_string()), "{e}");
        assert!(e.contains("\nhint: put train-images-idx3-ubyte, "), "{e}");

        // Raw files, in the redistributed `.idx3-ubyte` spelling.
        std::fs::create_dir_all(&mine).unwrap();
        for (name, bytes) in NAMES.iter().zip(tiny_files(3, 20, 10)) {
            std::fs::write(mine.join(name.replacen("-idx", ".idx", 1)), bytes).unwrap();
        }
        let d = load_mnist(&cfg, &l).unwrap();
        assert_eq!((d.train.images[0], d.source), (3, mine.display().to_string()));

        // A path in the data-dir layout is forgiven.
        let cfg = IdxDatasetConfig { path: Some(data.clone()), ..Default::default() };
        assert_eq!(load_mnist(&cfg, &l).unwrap().train.images[0], 1);
    }

    #[test]
    fn offline_and_missing_is_a_clear_error() {
        let root = tempfile::tempdir().unwrap();
        let (data, cache) = (root.path().join("data"), root.path().join("cache"));
        std::fs::create_dir_all(data.join("mnist")).unwrap();
        std::fs::write(data.join("mnist/train-images-idx3-ubyte.gz"), b"").unwrap();
        let e =
            load_mnist(&IdxDatasetConfig::default(), &lookup(Some(&data), Some(&cache), false)).unwrap_err();
        let text = e.to_string().replace(&root.path().display().to_string(), "ROOT");
        assert_eq!(
            text,
            "could not find the MNIST files of dataset `digits`, and downloading is turned off\n  \
             searched ROOT/data/mnist: lacks train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz), \
             t10k-labels-idx1-ubyte(.gz)\n  \
             searched ROOT/cache/datasets/mnist: does not exist\n\
             hint: pass --data-dir DIR with DIR/mnist/train-images-idx3-ubyte.gz (and the other three files), \
             or set SLIMBENCH_DATA_DIR; or unset SLIMBENCH_OFFLINE to let slimbench download them"
        );
        assert!(!cache.exists(), "nothing is created when offline");

        let e = load_mnist(&IdxDatasetConfig::default(), &lookup(None, None, true)).unwrap_err().to_string();
        assert!(e.contains("there is no cache directory to download into"), "{e}");
    }

    /// A server with a tiny dataset under `m/` (and a copy under `bad/` whose test labels
    /// are not the expected file), and the expected files with their MD5s.
    fn serve_tiny() -> (TestServer, [RemoteFile; 4]) {
        let files = tiny_files(7, 30, 10);
        let mut served = HashMap::new();
        let mut expected = Vec::new();
        for (name, bytes) in NAMES.iter().zip(&files) {
            let gz = gz(bytes);
            expected.push(RemoteFile { name, md5: Box::leak(md5_hex(&gz).into_boxed_str()) });
            served.insert(format!("m/{name}.gz"), gz.clone());
            served.insert(format!("bad/{name}.gz"), gz);
        }
        served.insert("bad/t10k-labels-idx1-ubyte.gz".into(), gz(&idx::encode_labels(&[9; 10])));
        (TestServer::start(served), expected.try_into().unwrap())
    }

    #[test]
    fn download_into_cache_then_reuse() {
        let (server, expected) = serve_tiny();
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        let l = lookup(Some(&root.path().join("nodata")), Some(&cache), true);
        // The first mirror is missing the files; the second has them.
        let cfg = IdxDatasetConfig {
            mirrors: Some(vec![format!("{}nothing/", server.base), format!("{}m", server.base)]),
            ..Default::default()
        };
        let d = load_with("digits", IdxKind::Mnist, &cfg, &l, &expected, &local_opts()).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.train.images[0]), (30, 10, 7));
        assert_eq!(d.source, cache.join("datasets/mnist").display().to_string());
        for name in NAMES {
            assert!(cache.join(format!("datasets/mnist/{name}.gz")).is_file());
        }
        let hits = server.hits.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(hits, 8, "each file: a 404 from the first mirror, then the file");

        // A second load reads the cache and does not touch the network.
        drop(server);
        let again = load_with("digits", IdxKind::Mnist, &cfg, &l, &expected, &local_opts()).unwrap();
        assert_eq!(again.content_hash, d.content_hash);
    }

    #[test]
    fn download_with_wrong_checksum_fails_and_keeps_nothing_bad() {
        let (server, expected) = serve_tiny();
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        let l = lookup(None, Some(&cache), true);
        let cfg =
            IdxDatasetConfig { mirrors: Some(vec![format!("{}bad/", server.base)]), ..Default::default() };
        let e = load_with("digits", IdxKind::Mnist, &cfg, &l, &expected, &local_opts()).unwrap_err();
        let text = e.to_string();
        let actual = md5_hex(&gz(&idx::encode_labels(&[9; 10])));
        let dest = cache.join("datasets/mnist");
        assert!(
            text.starts_with("could not find or download the MNIST files of dataset `digits`\n"),
            "{text}"
        );
        assert!(text.contains(&format!("searched {}: does not exist", dest.display())), "{text}");
        assert!(
            text.contains(&format!(
                "downloading t10k-labels-idx1-ubyte.gz into {} failed:\n    \
                 {}bad/t10k-labels-idx1-ubyte.gz: checksum mismatch for t10k-labels-idx1-ubyte.gz: \
                 expected MD5 {}, got {actual}",
                dest.display(),
                server.base,
                expected[3].md5
            )),
            "{text}"
        );
        assert!(text.contains("\nhint: check the network connection"), "{text}");
        // The three good files stay (verified); the bad one was never renamed into place.
        assert!(dest.join("t10k-images-idx3-ubyte.gz").is_file());
        assert!(!dest.join("t10k-labels-idx1-ubyte.gz").exists());
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 3);

        // A later run with a good mirror only fetches the missing file.
        let good =
            IdxDatasetConfig { mirrors: Some(vec![format!("{}m/", server.base)]), ..Default::default() };
        let before = server.hits.load(std::sync::atomic::Ordering::SeqCst);
        load_with("digits", IdxKind::Mnist, &good, &l, &expected, &local_opts()).unwrap();
        assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), before + 1);
    }

    #[test]
    fn limits_truncate_and_change_the_hash() {
        let root = tempfile::tempdir().unwrap();
        write_set(&root.path().join("mnist"), &tiny_files(1, 20, 10), true);
        let l = lookup(Some(root.path()), None, false);
        let full = load_mnist(&IdxDatasetConfig::default(), &l).unwrap();
        let cfg = IdxDatasetConfig { train_limit: Some(5), test_limit: Some(100), ..Default::default() };
        let d = load_mnist(&cfg, &l).unwrap();
        assert_eq!((d.train.len(), d.train.images.len(), d.test.len()), (5, 80, 10));
        assert_ne!(d.content_hash, full.content_hash);
        assert_eq!(load_mnist(&IdxDatasetConfig::default(), &l).unwrap().content_hash, full.content_hash);

        let zero = IdxDatasetConfig { test_limit: Some(0), ..Default::default() };
        let e = load_mnist(&zero, &l).unwrap_err().to_string();
        assert_eq!(
            e,
            "dataset `digits`: test_limit is 0, so there would be no image to use\n\
             hint: remove test_limit to use every image, or set it to at least 1"
        );
    }

    #[test]
    fn mismatched_and_damaged_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("mnist");
        let l = lookup(Some(root.path()), None, false);
        let cfg = IdxDatasetConfig::default();

        // 20 training images, 19 labels.
        let mut files = tiny_files(1, 20, 10);
        files[1] = idx::encode_labels(&[1; 19]);
        write_set(&dir, &files, false);
        let e = load_mnist(&cfg, &l).unwrap_err().to_string();
        assert!(
            e.contains("the training images (") && e.contains("hold 20 images but the training labels (")
        );
        assert!(e.contains("train-labels-idx1-ubyte) hold 19 labels\nhint: "), "{e}");

        // A label out of range.
        let mut files = tiny_files(1, 20, 10);
        files[3] = idx::encode_labels(&[0, 1, 2, 10, 4, 5, 6, 7, 8, 9]);
        write_set(&dir, &files, false);
        let e = load_mnist(&cfg, &l).unwrap_err().to_string();
        assert!(e.contains("label 10 of image 3 in ") && e.contains("MNIST has 10 classes, 0 to 9"), "{e}");

        // Train and test images of different sizes.
        let mut files = tiny_files(1, 20, 10);
        files[2] = idx::encode_images(&[0; 10 * 25], 10, 5, 5);
        write_set(&dir, &files, false);
        let e = load_mnist(&cfg, &l).unwrap_err().to_string();
        assert!(e.contains("are 4x4 pixels but the test images (") && e.contains(") are 5x5"), "{e}");

        // A truncated image file.
        let mut files = tiny_files(1, 20, 10);
        files[0].truncate(100);
        write_set(&dir, &files, false);
        let e = load_mnist(&cfg, &l).unwrap_err().to_string();
        let path = dir.join("train-images-idx3-ubyte");
        assert!(e.starts_with(&format!(
            "dataset `digits`: {} is not a valid IDX file: it is truncated",
            path.display()
        )));
        assert!(e.contains("promises 320 bytes of data, found 84\nhint: replace it"), "{e}");

        // Labels where images should be.
        let mut files = tiny_files(1, 20, 10);
        files[2] = files[3].clone();
        write_set(&dir, &files, false);
        let e = load_mnist(&cfg, &l).unwrap_err().to_string();
        assert!(
            e.contains("t10k-images-idx3-ubyte is not a valid IDX file: expected an IDX image file"),
            "{e}"
        );
    }

    #[test]
    fn real_mnist_when_present() {
        let Some(dir) = crate::testdata::shared("mnist") else { return };
        let t = std::time::Instant::now();
        let d = load_mnist(&IdxDatasetConfig::default(), &lookup(Some(&dir), None, false)).unwrap();
        println!("loaded real MNIST in {:?}", t.elapsed());
        assert_eq!((d.train.len(), d.test.len(), d.image_shape()), (60_000, 10_000, (28, 28)));
        assert_eq!(d.train.class_counts(10), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
        assert_eq!(d.test.class_counts(10), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
        assert_eq!(d.train.labels[..5], [5, 0, 4, 1, 9]);
    }

    #[test]
    fn real_fashion_mnist_when_present() {
        let Some(dir) = crate::testdata::shared("fashion-mnist") else { return };
        let d =
            load("f", IdxKind::FashionMnist, &IdxDatasetConfig::default(), &lookup(Some(&dir), None, false))
                .unwrap();
        assert_eq!((d.train.len(), d.test.len()), (60_000, 10_000));
        assert_eq!(d.train.class_counts(10), [6000; 10]);
        assert_eq!(d.test.class_counts(10), [1000; 10]);
    }

    #[test]
    fn canonical_checksums_match_the_shared_copies() {
        for kind in [IdxKind::Mnist, IdxKind::FashionMnist] {
            let Some(dir) = crate::testdata::shared(kind.name()) else { continue };
            for f in kind.release().files {
                let path = dir.join(kind.name()).join(format!("{}.gz", f.name));
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(md5_hex(&bytes), f.md5, "{}", path.display());
            }
        }
    }
}
