//! # slimbench-data
//!
//! The images slimbench trains and measures on, as plain bytes: this crate has no
//! libtorch in it, so it builds and tests fast and the training crates turn
//! [`loader::Batch`]es into tensors themselves.
//!
//! * [`load`] turns a `datasets:` entry ([`slimbench_core::config::DatasetConfig`]) into
//!   a [`Dataset`]: a train and a test [`Split`] of C x H x W byte images (channel-planar,
//!   the CIFAR layout) with `u16` labels, the class count and names, an optional
//!   per-channel [`Normalize`], and a content hash for cache keys.
//! * MNIST and Fashion-MNIST are read from IDX files ([`idx`]), CIFAR-10 and CIFAR-100
//!   from their binary batches or straight from the release's `.tar.gz` ([`cifar`]);
//!   both are found through a [`DataLookup`] (the dataset's `path:`, then the data dir,
//!   then the user cache) or downloaded from a mirror and MD5-verified ([`fetch`]).
//! * `image-folder` decodes PNG and JPEG files kept one sub-directory per class, resized
//!   to one shape ([`folder`]).
//! * `synthetic-digits` (28x28 grey, [`synthetic`]) and `synthetic-shapes` (32x32 RGB,
//!   [`shapes`]) are generated in-process: no files, no network, the same bytes for the
//!   same seed whatever the number of threads.
//! * [`pixels_f32`] is the one way bytes become model input: `x / 255`, then
//!   `(x - mean[c]) / std[c]` when the dataset has `mean:`/`std:`.
//! * [`loader::Loader`] cuts a split into (optionally shuffled) [`loader::Batch`]es of
//!   such `f32` values, optionally augmented with seeded random crops and flips
//!   ([`augment`]), on the calling thread or ahead of it on worker threads; the batches
//!   do not depend on the number of workers.
//!
//! Every failure is a [`DataError`]: a plain sentence naming the dataset and the file,
//! directory or URL involved, followed by a `hint:` line that says how to fix it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use slimbench_core::config::DatasetConfig;

pub mod augment;
pub mod cifar;
mod error;
pub mod fetch;
pub mod folder;
pub mod idx;
mod idxset;
pub mod loader;
mod normalize;
mod rng;
pub mod shapes;
pub mod synthetic;
pub mod testdata;

pub use error::{DataError, Searched};
pub use normalize::{Normalize, pixels_f32};

/// Side of MNIST, Fashion-MNIST and the generated `synthetic-digits` images (other
/// kinds have other shapes: read them from the [`Split`]).
pub const IMAGE_SIDE: usize = 28;

/// Number of classes of MNIST, Fashion-MNIST and `synthetic-digits` (other kinds have
/// other counts: read [`Dataset::classes`]).
pub const CLASSES: usize = 10;

/// One split (train or test) of a dataset: `len()` images of `channels` x `rows` x
/// `cols` bytes and their labels.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Pixels, image after image; each image is `channels` planes of `rows` x `cols`
    /// bytes, row-major (the CIFAR layout: all of R, then G, then B); 0 = black.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u16>,
    /// Planes per image: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
    /// The dataset's normalisation, which [`pixels_f32`] callers and the loader apply
    /// to these images (`None`: pixels in `[0, 1]`). Kept with the images so training
    /// and evaluation cannot disagree.
    pub normalize: Option<Normalize>,
}

// Not derived: printing a dataset must not print its 47 million pixels.
impl std::fmt::Debug for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split")
            .field("len", &self.len())
            .field("channels", &self.channels)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes of one image (`channels * rows * cols`).
    pub fn image_len(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// `[channels, rows, cols]`, the shape of one image as a model input.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.rows, self.cols]
    }

    /// The bytes of image `i`, channel-planar.
    ///
    /// # Panics
    ///
    /// When `i >= self.len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[i * len..(i + 1) * len]
    }

    /// A copy of images `start..start + n` (clamped to the split).
    pub fn slice(&self, start: usize, n: usize) -> Split {
        let start = start.min(self.len());
        let end = (start + n).min(self.len());
        let len = self.image_len();
        Split {
            images: self.images[start * len..end * len].to_vec(),
            labels: self.labels[start..end].to_vec(),
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
            normalize: self.normalize.clone(),
        }
    }

    /// Keep only the first `n` images (no-op when there are fewer).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.image_len());
    }

    /// How many images each class has (`classes` entries; labels at or above
    /// `classes` are not counted).
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// A loaded dataset: both splits, shared cheaply between stages and loaders.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The name it has under `datasets:` in the pipeline.
    pub name: String,
    /// Its kind: `mnist`, `fashion-mnist`, `synthetic-digits`, `cifar10`, `cifar100`,
    /// `image-folder` or `synthetic-shapes`.
    pub kind: String,
    /// Training images.
    pub train: Arc<Split>,
    /// Test images.
    pub test: Arc<Split>,
    /// Number of classes (labels are `0..classes`).
    pub classes: usize,
    /// One name per class, in label order (`"0"`..`"9"` for digits, `"airplane"`, ...
    /// for CIFAR-10, the sub-directory names of an image folder).
    pub class_names: Vec<String>,
    /// How pixels are normalised on their way to a model (the dataset's `mean:` and
    /// `std:`); `None` leaves them at `x / 255`. Pass it to [`pixels_f32`] and
    /// [`loader::LoaderConfig::normalize`].
    pub normalize: Option<Normalize>,
    /// The directory the files were read from, or `generated`.
    pub source: String,
    /// Hex BLAKE3 identifying the content: the files as stored plus the limits, or the
    /// generator's settings and version; and the normalisation when there is one.
    pub content_hash: String,
    /// Things worth telling the user about the load (files skipped, ...); empty when
    /// there is nothing to say.
    pub notes: Vec<String>,
}

impl Dataset {
    /// `(rows, cols)` of every image.
    pub fn image_shape(&self) -> (usize, usize) {
        (self.train.rows, self.train.cols)
    }

    /// Planes per image (1 grey, 3 RGB).
    pub fn channels(&self) -> usize {
        self.train.channels
    }

    /// `[channels, rows, cols]` of every image.
    pub fn input_shape(&self) -> [usize; 3] {
        self.train.shape()
    }
}

/// `"0"` to `"9"`, the class names of the digit datasets.
pub(crate) fn digit_names() -> Vec<String> {
    (0..CLASSES).map(|d| d.to_string()).collect()
}

/// Where to look for dataset files, and whether downloading is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataLookup {
    /// A directory holding one sub-directory per dataset (`mnist/`, `fashion-mnist/`).
    pub data_dir: Option<PathBuf>,
    /// slimbench's cache directory; datasets live in `<cache>/datasets/<kind>/`, and
    /// downloads go there.
    pub cache_dir: Option<PathBuf>,
    /// Whether missing files may be downloaded.
    pub allow_download: bool,
}

impl DataLookup {
    /// The lookup the command line uses: `data_dir_flag` (`--data-dir`), else
    /// `SLIMBENCH_DATA_DIR`; the cache in `SLIMBENCH_CACHE_DIR`, else the user cache
    /// directory's `slimbench/`; downloads allowed unless `SLIMBENCH_OFFLINE` is `1` or
    /// `true`.
    pub fn from_env(data_dir_flag: Option<PathBuf>) -> Self {
        Self::from_vars(data_dir_flag, |k| std::env::var_os(k).map(PathBuf::from), dirs::cache_dir())
    }

    /// [`DataLookup::from_env`] with the environment and the user cache directory passed
    /// in, so it can be tested without touching the process environment.
    fn from_vars(
        data_dir_flag: Option<PathBuf>,
        var: impl Fn(&str) -> Option<PathBuf>,
        user_cache: Option<PathBuf>,
    ) -> Self {
        // An empty variable counts as unset, as shells make `VAR=` easy to leave behind.
        let var = |k: &str| var(k).filter(|v| !v.as_os_str().is_empty());
        let offline = var("SLIMBENCH_OFFLINE").is_some_and(|v| {
            let v = v.to_string_lossy().trim().to_ascii_lowercase();
            matches!(v.as_str(), "1" | "true" | "yes" | "on")
        });
        DataLookup {
            data_dir: data_dir_flag.or_else(|| var("SLIMBENCH_DATA_DIR")),
            cache_dir: var("SLIMBENCH_CACHE_DIR").or_else(|| user_cache.map(|c| c.join("slimbench"))),
            allow_download: !offline,
        }
    }

    /// Where the files of the dataset kind `dirname` are cached (and downloaded to).
    pub fn cache_dir_for(&self, dirname: &str) -> Option<PathBuf> {
        self.cache_dir.as_deref().map(|c| c.join("datasets").join(dirname))
    }
}

/// Load the dataset declared as `name` with `cfg`.
///
/// MNIST and Fashion-MNIST are read from the first of these that holds the four IDX
/// files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`, each gzipped or not):
///
/// 1. the config's `path:`, and nothing else when it is given;
/// 2. `<data_dir>/<kind>/`;
/// 3. `<cache_dir>/datasets/<kind>/`;
/// 4. a download from the config's `mirrors:` (default: the canonical ones) into the
///    cache directory, each file checked against its published MD5.
///
/// CIFAR-10 and CIFAR-100 are looked up the same way, in `cifar-10/` and `cifar-100/`,
/// as the extracted `.bin` files or the `.tar.gz` archive ([`cifar`]). An
/// `image-folder` reads its `path:` ([`folder`]). `synthetic-digits` and
/// `synthetic-shapes` are generated with the config's seed, else `default_seed`, as is
/// the train/test split of an image folder.
///
/// The config's `mean:`/`std:` are checked against the channel count and become
/// [`Dataset::normalize`] (and part of the content hash).
pub fn load(
    name: &str,
    cfg: &DatasetConfig,
    default_seed: u64,
    lookup: &DataLookup,
) -> Result<Dataset, DataError> {
    let mut ds = match cfg {
        DatasetConfig::Mnist(c) => idxset::load(name, idxset::IdxKind::Mnist, c, lookup),
        DatasetConfig::FashionMnist(c) => idxset::load(name, idxset::IdxKind::FashionMnist, c, lookup),
        DatasetConfig::SyntheticDigits(c) => synthetic::dataset(name, c, default_seed),
        DatasetConfig::SyntheticShapes(c) => shapes::dataset(name, c, default_seed),
        DatasetConfig::Cifar10(c) => cifar::load_cifar10(name, c, lookup),
        DatasetConfig::Cifar100(c) => cifar::load_cifar100(name, c, lookup),
        DatasetConfig::ImageFolder(c) => folder::dataset(name, c, default_seed),
    }?;
    let (mean, std) = cfg.normalization();
    normalize::apply(&mut ds, mean, std)?;
    Ok(ds)
}

/// `path` for messages (`display()` as an owned string).
fn show(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_accessors_and_truncate() {
        let mut s = Split {
            images: (0..12).collect(),
            labels: vec![0, 1, 1],
            channels: 1,
            rows: 2,
            cols: 2,
            normalize: None,
        };
        assert_eq!(s.len(), 3);
        assert_eq!(s.image(1), &[4, 5, 6, 7]);
        assert_eq!(s.class_counts(2), vec![1, 2]);
        let tail = s.slice(1, 5);
        assert_eq!(
            (tail.len(), tail.image(0), tail.labels.as_slice()),
            (2, &[4u8, 5, 6, 7][..], &[1u16, 1][..])
        );
        assert!(s.slice(7, 2).is_empty());
        s.truncate(10);
        assert_eq!(s.len(), 3);
        s.truncate(1);
        assert_eq!((s.len(), s.images.len()), (1, 4));
        s.truncate(0);
        assert!(s.is_empty() && s.images.is_empty());
    }

    #[test]
    fn shareable_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Dataset>();
        send_sync::<loader::Loader>();
        send::<loader::Epoch>();
        send_sync::<DataError>();
    }

    #[test]
    fn split_debug_is_short() {
        let s = Split {
            images: vec![7; 28 * 28 * 1000],
            labels: vec![1; 1000],
            channels: 1,
            rows: 28,
            cols: 28,
            normalize: None,
        };
        let text = format!("{s:?}");
        assert_eq!(text, "Split { len: 1000, channels: 1, rows: 28, cols: 28, .. }");
    }

    #[test]
    fn load_checks_and_applies_normalisation() {
        use slimbench_core::config::SyntheticShapesConfig;
        let shapes = |mean: Option<Vec<f64>>, std: Option<Vec<f64>>| {
            let c = SyntheticShapesConfig { train_size: 20, test_size: 10, mean, std, ..Default::default() };
            load("sh", &DatasetConfig::SyntheticShapes(c), 1, &DataLookup::default())
        };
        let plain = shapes(None, None).unwrap();
        assert_eq!((plain.normalize.as_ref(), plain.channels(), plain.notes.len()), (None, 3, 0));
        let norm = shapes(Some(vec![0.5, 0.5, 0.5]), Some(vec![0.25, 0.5, 1.0])).unwrap();
        assert_ne!(norm.content_hash, plain.content_hash);
        assert_eq!(norm.train.images, plain.train.images, "the bytes stay; the values change on the way out");
        assert_eq!(norm.train.normalize, norm.normalize, "each split carries it to the loader and eval");
        let x = pixels_f32(&norm.train, 0..1, norm.normalize.as_ref());
        let plane = 32 * 32;
        let p = |i: usize| norm.train.images[i] as f32 / 255.0;
        assert_eq!(
            (x[0], x[plane], x[2 * plane]),
            ((p(0) - 0.5) / 0.25, (p(plane) - 0.5) / 0.5, p(2 * plane) - 0.5)
        );
        let e = shapes(Some(vec![0.1307]), None).unwrap_err().to_string();
        assert!(
            e.starts_with("dataset `sh`: mean has 1 value but the images have 3 channels\nhint: "),
            "{e}"
        );
    }

    #[test]
    fn lookup_from_vars() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| PathBuf::from(v))
        };
        let user_cache = Some(PathBuf::from("/home/u/.cache"));

        let l = DataLookup::from_vars(None, env(&[]), user_cache.clone());
        assert_eq!(l.data_dir, None);
        assert_eq!(l.cache_dir, Some(PathBuf::from("/home/u/.cache/slimbench")));
        assert!(l.allow_download);
        assert_eq!(l.cache_dir_for("mnist"), Some(PathBuf::from("/home/u/.cache/slimbench/datasets/mnist")));

        let vars = env(&[
            ("SLIMBENCH_DATA_DIR", "/env/data"),
            ("SLIMBENCH_CACHE_DIR", "/c"),
            ("SLIMBENCH_OFFLINE", "1"),
        ]);
        let l = DataLookup::from_vars(None, vars, user_cache.clone());
        assert_eq!(l.data_dir, Some(PathBuf::from("/env/data")));
        assert_eq!(l.cache_dir, Some(PathBuf::from("/c")));
        assert!(!l.allow_download);

        // The flag wins over the variable.
        let l = DataLookup::from_vars(Some("/flag".into()), env(&[("SLIMBENCH_DATA_DIR", "/env")]), None);
        assert_eq!(l.data_dir, Some(PathBuf::from("/flag")));
        assert_eq!(l.cache_dir, None);

        for (v, allow) in [("TRUE", false), ("true", false), ("0", true), ("false", true), ("", true)] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([("SLIMBENCH_OFFLINE", v)]));
            assert_eq!(DataLookup::from_vars(None, env(pairs), None).allow_download, allow, "{v:?}");
        }
    }
}
