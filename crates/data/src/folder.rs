//! `image-folder`: PNG and JPEG files laid out one sub-directory per class
//! (torchvision's `ImageFolder`), decoded and resized to one shape.
//!
//! Classes are the sub-directories of `path:` sorted by name (the first is label 0);
//! each class takes every `.png`, `.jpg` and `.jpeg` file below its directory, in path
//! order. With `train/` and `test/` sub-directories those are the splits (the classes
//! are `train/`'s, and `test/` may not have others); otherwise a seeded share of each
//! class (`test_fraction`) is held out, so every class is in both splits in proportion.
//!
//! Files are read and decoded on rayon's pool but collected in list order, so the result
//! does not depend on the number of threads. Each image is converted to RGB or grey and
//! resized with a triangle (bilinear, area-averaging when shrinking) filter, after
//! cutting the centre of the source to the target's aspect ratio when `center_crop` is
//! set. The content hash covers the file list, every file's bytes and the settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::imageops::FilterType;
use rayon::prelude::*;
use slimbench_core::config::ImageFolderConfig;
use slimbench_core::hash;

use crate::rng::{shuffle, stream};
use crate::{DataError, Dataset, Split, show};

/// Version of the decoding and resizing; part of the content hash, bumped whenever the
/// pixels for the same files change (a new resize filter, a new `image` release that
/// decodes differently).
pub const DECODER_VERSION: u32 = 1;

/// Largest accepted side of the target size.
pub const MAX_SIDE: usize = 4096;

/// File extensions read as images (lower case).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Build the `image-folder` dataset `name` (what [`crate::load`] does for it); the split
/// is seeded by the config's seed, else `default_seed`.
pub fn dataset(name: &str, cfg: &ImageFolderConfig, default_seed: u64) -> Result<Dataset, DataError> {
    check(name, cfg)?;
    let root = &cfg.path;
    let bad_path = |path: &Path, message: String, hint: &str| DataError::BadData {
        dataset: name.to_string(),
        path: path.to_path_buf(),
        message,
        hint: hint.to_string(),
    };
    if !root.is_dir() {
        let why = if root.exists() { "is not a directory" } else { "does not exist" };
        return Err(bad_path(
            root,
            why.to_string(),
            "set the dataset's `path:` to a directory with one sub-directory of images per class",
        ));
    }
    let seed = cfg.seed.unwrap_or(default_seed);
    let (train_dir, test_dir) = (root.join("train"), root.join("test"));
    let presplit = train_dir.is_dir() && test_dir.is_dir();

    let (class_names, train_lists, test_lists) = if presplit {
        let names = classes(name, &train_dir)?;
        let test_names = classes(name, &test_dir)?;
        if let Some(extra) = test_names.iter().find(|n| !names.contains(n)) {
            return Err(bad_path(
                &test_dir.join(extra),
                format!("class `{extra}` is in test/ but not in train/"),
                "train/ and test/ must hold the same class sub-directories (test/ may lack some)",
            ));
        }
        let train: Vec<Vec<PathBuf>> =
            names.iter().map(|c| files_of(name, &train_dir.join(c))).collect::<Result<_, _>>()?;
        let test: Vec<Vec<PathBuf>> = names
            .iter()
            .map(|c| {
                let dir = test_dir.join(c);
                if dir.is_dir() { files_of(name, &dir) } else { Ok(Vec::new()) }
            })
            .collect::<Result<_, _>>()?;
        (names, train, test)
    } else {
        let names = classes(name, root)?;
        let all: Vec<Vec<PathBuf>> =
            names.iter().map(|c| files_of(name, &root.join(c))).collect::<Result<_, _>>()?;
        (names, all, Vec::new())
    };
    if class_names.len() > u16::MAX as usize {
        return Err(bad_path(
            root,
            format!("there are {} class directories; at most {} are supported", class_names.len(), u16::MAX),
            "group the images into fewer classes",
        ));
    }

    // Decode everything (in list order), leaving out what cannot be read when allowed.
    let mut skipped: Vec<PathBuf> = Vec::new();
    let mut file_keys: Vec<(String, String)> = Vec::new();
    let mut decode_lists = |lists: Vec<Vec<PathBuf>>| -> Result<Vec<Vec<Decoded>>, DataError> {
        let mut out = Vec::with_capacity(lists.len());
        for list in lists {
            let results: Vec<Result<Decoded, Failure>> = list.par_iter().map(|p| decode(p, cfg)).collect();
            let mut class = Vec::with_capacity(results.len());
            for (path, r) in list.iter().zip(results) {
                match r {
                    Ok(d) => {
                        file_keys.push((relative(root, path), d.hash.clone()));
                        class.push(d);
                    }
                    Err(Failure::Read(error)) => {
                        return Err(DataError::Read { dataset: name.to_string(), path: path.clone(), error });
                    }
                    Err(Failure::Decode(_)) if cfg.skip_unreadable => skipped.push(path.clone()),
                    Err(Failure::Decode(e)) => {
                        return Err(bad_path(
                            path,
                            format!("it could not be decoded as a PNG or JPEG image: {e}"),
                            "replace or remove the file, or set `skip_unreadable: true` on the dataset to \
                             leave such files out",
                        ));
                    }
                }
            }
            out.push(class);
        }
        Ok(out)
    };
    let train_decoded = decode_lists(train_lists)?;
    let test_decoded = decode_lists(test_lists)?;

    // Every class needs training images, also after skipping.
    let class_dir =
        |c: usize| if presplit { train_dir.join(&class_names[c]) } else { root.join(&class_names[c]) };
    if let Some(c) = train_decoded.iter().position(Vec::is_empty) {
        return Err(bad_path(
            &class_dir(c),
            "every image of this class was unreadable and skipped".to_string(),
            "each class needs at least one readable image; replace the files or remove the directory",
        ));
    }

    // (label, pixels) of each image of a split.
    let (mut train, mut test): (Vec<Labelled>, Vec<Labelled>) = (Vec::new(), Vec::new());
    if presplit {
        for (c, class) in train_decoded.into_iter().enumerate() {
            train.extend(class.into_iter().map(|d| (c as u16, d.pixels)));
        }
        for (c, class) in test_decoded.into_iter().enumerate() {
            test.extend(class.into_iter().map(|d| (c as u16, d.pixels)));
        }
    } else {
        for (c, class) in train_decoded.into_iter().enumerate() {
            let n = class.len();
            // Round, keeping at least one training image (and, from two images on and
            // with a positive fraction, at least one test image).
            let mut n_test = ((n as f64) * cfg.test_fraction).round() as usize;
            if cfg.test_fraction > 0.0 && n >= 2 {
                n_test = n_test.max(1);
            }
            let n_test = n_test.min(n - 1);
            let mut order: Vec<usize> = (0..n).collect();
            // Streams from 2^32 on: one per class; below are the final orders.
            shuffle(&mut stream(seed, (1 << 32) | c as u64), &mut order);
            let mut slots: Vec<Option<Vec<u8>>> = class.into_iter().map(|d| Some(d.pixels)).collect();
            for (k, &i) in order.iter().enumerate() {
                let pixels = slots[i].take().unwrap_or_default();
                if k < n_test { test.push((c as u16, pixels)) } else { train.push((c as u16, pixels)) }
            }
        }
    }
    if test.is_empty() {
        let (path, message) = if presplit {
            (test_dir.clone(), "test/ holds no readable image".to_string())
        } else {
            (root.clone(), format!("test_fraction {} leaves no test image", cfg.test_fraction))
        };
        return Err(bad_path(
            &path,
            message,
            "the test split needs at least one image: add images, or raise test_fraction",
        ));
    }

    let [rows, cols] = cfg.size;
    let assemble = |mut items: Vec<Labelled>, stream_id: u64| {
        // A seeded order, so a prefix of a split is a fair sample of every class.
        shuffle(&mut stream(seed, stream_id), &mut items);
        let mut s = Split { channels: cfg.channels, rows, cols, ..Default::default() };
        s.images.reserve(items.len() * s.image_len());
        for (label, pixels) in items {
            s.labels.push(label);
            s.images.extend(pixels);
        }
        s
    };
    let (train, test) = (assemble(train, 1), assemble(test, 2));

    #[derive(serde::Serialize)]
    struct ContentKey<'a> {
        generator: &'a str,
        version: u32,
        files: &'a [(String, String)],
        classes: &'a [String],
        presplit: bool,
        size: [usize; 2],
        center_crop: bool,
        channels: usize,
        test_fraction: Option<f64>,
        seed: u64,
    }
    let content_hash = hash::json(&ContentKey {
        generator: "image-folder",
        version: DECODER_VERSION,
        files: &file_keys,
        classes: &class_names,
        presplit,
        size: cfg.size,
        center_crop: cfg.center_crop,
        channels: cfg.channels,
        test_fraction: (!presplit).then_some(cfg.test_fraction),
        seed,
    });
    let mut notes = Vec::new();
    if let Some(first) = skipped.first() {
        notes.push(format!(
            "dataset `{name}`: skipped {} unreadable file{} (skip_unreadable is set), the first {}",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" },
            first.display()
        ));
    }
    Ok(Dataset {
        name: name.to_string(),
        kind: "image-folder".to_string(),
        train: Arc::new(train),
        test: Arc::new(test),
        classes: class_names.len(),
        class_names,
        normalize: None,
        source: show(root),
        content_hash,
        notes,
    })
}

fn check(name: &str, cfg: &ImageFolderConfig) -> Result<(), DataError> {
    let bad = |message: String, hint: &str| {
        Err(DataError::InvalidConfig { dataset: name.to_string(), message, hint: hint.to_string() })
    };
    let [h, w] = cfg.size;
    if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE {
        return bad(
            format!("size is [{h}, {w}]; height and width must be between 1 and {MAX_SIDE}"),
            "size is [height, width] in pixels, e.g. size: [32, 32]",
        );
    }
    if cfg.channels != 1 && cfg.channels != 3 {
        return bad(
            format!("channels is {}; it must be 3 (RGB) or 1 (grey)", cfg.channels),
            "the default is 3",
        );
    }
    if !(cfg.test_fraction > 0.0 && cfg.test_fraction < 1.0) {
        return bad(
            format!("test_fraction is {}; it must be above 0 and below 1", cfg.test_fraction),
            "the default is 0.2 (a fifth of each class is held out); it is ignored when the folder has \
             train/ and test/ sub-directories",
        );
    }
    Ok(())
}

/// The class directory names in `dir`, sorted; hidden ones (`.name`) left out.
fn classes(name: &str, dir: &Path) -> Result<Vec<String>, DataError> {
    let read = std::fs::read_dir(dir).map_err(|error| DataError::Read {
        dataset: name.to_string(),
        path: dir.to_path_buf(),
        error,
    })?;
    let mut names = Vec::new();
    for entry in read {
        let entry = entry.map_err(|error| DataError::Read {
            dataset: name.to_string(),
            path: dir.to_path_buf(),
            error,
        })?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.starts_with('.') && entry.path().is_dir() {
            names.push(file_name);
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(DataError::BadData {
            dataset: name.to_string(),
            path: dir.to_path_buf(),
            message: "it has no class sub-directories".to_string(),
            hint: "an image folder holds one sub-directory of PNG/JPEG files per class (cats/1.png, \
                   dogs/2.jpg, ...), optionally under train/ and test/"
                .to_string(),
        });
    }
    Ok(names)
}

/// The image files below `dir` (recursively), sorted by path; an error naming `dir`
/// when there are none.
fn files_of(name: &str, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let read = std::fs::read_dir(&d).map_err(|error| DataError::Read {
            dataset: name.to_string(),
            path: d.clone(),
            error,
        })?;
        for entry in read {
            let entry = entry.map_err(|error| DataError::Read {
                dataset: name.to_string(),
                path: d.clone(),
                error,
            })?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(DataError::BadData {
            dataset: name.to_string(),
            path: dir.to_path_buf(),
            message: "this class directory holds no .png, .jpg or .jpeg file".to_string(),
            hint: "put the class's images there, or remove the directory".to_string(),
        });
    }
    Ok(out)
}

/// `path` below `root`, with `/` separators, for the content hash (so moving the folder
/// keeps its hash).
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// A label and its image's pixels.
type Labelled = (u16, Vec<u8>);

/// One decoded image: channel-planar pixels at the target size, and the hash of the
/// file's bytes.
struct Decoded {
    pixels: Vec<u8>,
    hash: String,
}

enum Failure {
    Read(std::io::Error),
    Decode(String),
}

fn decode(path: &Path, cfg: &ImageFolderConfig) -> Result<Decoded, Failure> {
    let bytes = std::fs::read(path).map_err(Failure::Read)?;
    let img = image::load_from_memory(&bytes).map_err(|e| Failure::Decode(e.to_string()))?;
    let [rows, cols] = cfg.size;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Failure::Decode("the image is empty".to_string()));
    }
    let img = if cfg.center_crop {
        // The largest centred region with the target's aspect ratio.
        let (tw, th) = (cols as f64, rows as f64);
        let scale = (w as f64 / tw).min(h as f64 / th);
        let (cw, ch) = (((tw * scale).round() as u32).clamp(1, w), ((th * scale).round() as u32).clamp(1, h));
        img.crop_imm((w - cw) / 2, (h - ch) / 2, cw, ch)
    } else {
        img
    };
    let img = img.resize_exact(cols as u32, rows as u32, FilterType::Triangle);
    let plane = rows * cols;
    let pixels = if cfg.channels == 1 {
        img.to_luma8().into_raw()
    } else {
        // Interleaved RGB to three planes.
        let rgb = img.to_rgb8().into_raw();
        let mut planar = vec![0u8; 3 * plane];
        for (p, px) in rgb.chunks_exact(3).enumerate() {
            planar[p] = px[0];
            planar[plane + p] = px[1];
            planar[2 * plane + p] = px[2];
        }
        planar
    };
    Ok(Decoded { pixels, hash: hash::bytes(&bytes) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(path: &Path) -> ImageFolderConfig {
        ImageFolderConfig {
            path: path.to_path_buf(),
            size: [8, 8],
            center_crop: false,
            channels: 3,
            test_fraction: 0.25,
            seed: None,
            skip_unreadable: false,
            mean: None,
            std: None,
        }
    }

    /// A `w` x `h` image filled with `colour`, except a white top-left pixel.
    fn picture(w: u32, h: u32, colour: [u8; 3]) -> image::RgbImage {
        let mut img = image::RgbImage::from_pixel(w, h, image::Rgb(colour));
        img.put_pixel(0, 0, image::Rgb([255, 255, 255]));
        img
    }

    /// `classes` classes of `per_class` images, alternately PNG and JPEG; class `c`'s
    /// images are filled with a colour whose red is `40 * c`.
    fn make_folder(dir: &Path, classes: &[&str], per_class: usize) {
        for (c, class) in classes.iter().enumerate() {
            let d = dir.join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..per_class {
                let img = picture(16 + i as u32, 12, [40 * c as u8, 100, 200]);
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                img.save(d.join(format!("img{i:02}.{ext}"))).unwrap();
            }
        }
    }

    #[test]
    fn classes_are_sorted_folders_and_split_per_class() {
        let root = tempfile::tempdir().unwrap();
        make_folder(root.path(), &["dogs", "cats", "birds"], 8);
        std::fs::write(root.path().join("cats/notes.txt"), b"ignored").unwrap();
        std::fs::create_dir_all(root.path().join(".hidden")).unwrap();
        let d = dataset("f", &cfg(root.path()), 3).unwrap();
        assert_eq!(d.class_names, ["birds", "cats", "dogs"]);
        assert_eq!((d.kind.as_str(), d.classes, d.input_shape()), ("image-folder", 3, [3, 8, 8]));
        assert_eq!((d.train.len(), d.test.len()), (18, 6));
        assert_eq!(d.train.class_counts(3), [6, 6, 6]);
        assert_eq!(d.test.class_counts(3), [2, 2, 2]);
        // Channel-planar RGB: the red plane carries the class, green is 100 (JPEG
        // wobbles a little).
        for i in 0..d.train.len() {
            let (img, label) = (d.train.image(i), d.train.labels[i]);
            let red = img[7 * 8 + 7] as i32;
            let green = img[64 + 7 * 8 + 7] as i32;
            assert!((red - 40 * (2 - label as i32)).abs() <= 6, "label {label} red {red}");
            assert!((green - 100).abs() <= 6, "{green}");
        }
        // Deterministic; the seed moves images between the splits.
        let again = dataset("f", &cfg(root.path()), 3).unwrap();
        assert_eq!(
            (again.train.as_ref(), again.content_hash.as_str()),
            (d.train.as_ref(), d.content_hash.as_str())
        );
        let other = dataset("f", &cfg(root.path()), 4).unwrap();
        assert_ne!(other.content_hash, d.content_hash);
        assert_ne!(other.test, d.test);
        // Same bytes with one thread and many.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(pool.install(|| dataset("f", &cfg(root.path()), 3)).unwrap().train, d.train);
    }

    #[test]
    fn train_and_test_folders_resize_and_grey() {
        let root = tempfile::tempdir().unwrap();
        make_folder(&root.path().join("train"), &["a", "b"], 3);
        make_folder(&root.path().join("test"), &["b"], 2);
        let c = ImageFolderConfig { size: [4, 6], channels: 1, ..cfg(root.path()) };
        let d = dataset("f", &c, 1).unwrap();
        assert_eq!((d.train.len(), d.test.len(), d.input_shape()), (6, 2, [1, 4, 6]));
        assert_eq!(d.test.labels, [1, 1]);
        assert_eq!(d.train.images.len(), 6 * 24);

        // A test class train/ lacks.
        make_folder(&root.path().join("test"), &["zebra"], 1);
        let e = dataset("f", &c, 1).unwrap_err().to_string();
        assert!(e.contains("test/zebra: class `zebra` is in test/ but not in train/\nhint: "), "{e}");
    }

    #[test]
    fn center_crop_keeps_the_middle() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("only");
        std::fs::create_dir_all(&d).unwrap();
        // 30x10: left third black, middle white, right third black.
        let mut img = image::GrayImage::new(30, 10);
        for y in 0..10 {
            for x in 10..20 {
                img.put_pixel(x, y, image::Luma([255]));
            }
        }
        img.save(d.join("a.png")).unwrap();
        img.save(d.join("b.png")).unwrap();
        let base = ImageFolderConfig { size: [5, 5], channels: 1, test_fraction: 0.5, ..cfg(root.path()) };
        let cropped = dataset("f", &ImageFolderConfig { center_crop: true, ..base.clone() }, 1).unwrap();
        assert!(cropped.train.images.iter().all(|&v| v == 255), "{:?}", cropped.train.images);
        let stretched = dataset("f", &base, 1).unwrap();
        assert_eq!(stretched.train.image(0)[0], 0, "the whole width is kept");
        assert_ne!(cropped.content_hash, stretched.content_hash);
    }

    #[test]
    fn corrupt_files_fail_or_are_skipped_with_a_note() {
        let root = tempfile::tempdir().unwrap();
        make_folder(root.path(), &["a", "b"], 4);
        let broken = root.path().join("b/broken.png");
        std::fs::write(&broken, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
        let e = dataset("f", &cfg(root.path()), 1).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "dataset `f`: {}: it could not be decoded as a PNG or JPEG image: ",
                broken.display()
            )),
            "{e}"
        );
        assert!(e.contains("\nhint: replace or remove the file, or set `skip_unreadable: true`"), "{e}");

        let skip = ImageFolderConfig { skip_unreadable: true, ..cfg(root.path()) };
        let d = dataset("f", &skip, 1).unwrap();
        assert_eq!(d.train.len() + d.test.len(), 8);
        assert_eq!(
            d.notes,
            [format!(
                "dataset `f`: skipped 1 unreadable file (skip_unreadable is set), the first {}",
                broken.display()
            )]
        );

        // A class whose every image is unreadable.
        let c = root.path().join("c");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("x.jpg"), b"nope").unwrap();
        let e = dataset("f", &skip, 1).unwrap_err().to_string();
        assert!(e.contains(&format!("{}: every image of this class was unreadable", c.display())), "{e}");
    }

    #[test]
    fn empty_and_missing_folders_are_named() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        let e = dataset("f", &cfg(&missing), 1).unwrap_err().to_string();
        assert!(e.starts_with(&format!("dataset `f`: {}: does not exist\nhint: ", missing.display())), "{e}");

        let e = dataset("f", &cfg(root.path()), 1).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "dataset `f`: {}: it has no class sub-directories",
                root.path().display()
            )),
            "{e}"
        );

        make_folder(root.path(), &["a"], 2);
        std::fs::create_dir_all(root.path().join("b")).unwrap();
        std::fs::write(root.path().join("b/readme.txt"), b"no images").unwrap();
        let e = dataset("f", &cfg(root.path()), 1).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "dataset `f`: {}: this class directory holds no .png, .jpg or .jpeg file",
                root.path().join("b").display()
            )),
            "{e}"
        );
    }

    #[test]
    fn settings_are_checked() {
        let root = tempfile::tempdir().unwrap();
        let c = cfg(root.path());
        let msg = |c: ImageFolderConfig| dataset("f", &c, 1).unwrap_err().to_string();
        assert!(
            msg(ImageFolderConfig { channels: 4, ..c.clone() }).starts_with("dataset `f`: channels is 4")
        );
        assert!(
            msg(ImageFolderConfig { size: [0, 3], ..c.clone() }).starts_with("dataset `f`: size is [0, 3]")
        );
        assert!(
            msg(ImageFolderConfig { test_fraction: 1.0, ..c })
                .starts_with("dataset `f`: test_fraction is 1;")
        );
    }

    #[test]
    fn through_load_with_normalisation() {
        let root = tempfile::tempdir().unwrap();
        make_folder(root.path(), &["a", "b"], 3);
        let c = ImageFolderConfig { mean: Some(vec![0.5; 3]), std: Some(vec![0.25; 3]), ..cfg(root.path()) };
        let d =
            crate::load("f", &slimbench_core::config::DatasetConfig::ImageFolder(c), 1, &Default::default())
                .unwrap();
        assert_eq!(d.normalize.as_ref().map(|n| n.std.clone()), Some(vec![0.25; 3]));
        let x = crate::pixels_f32(&d.test, 0..1, d.normalize.as_ref());
        assert_eq!(x[0], (d.test.images[0] as f32 / 255.0 - 0.5) / 0.25);
    }
}
