//! Cutting a [`Split`] into mini-batches.
//!
//! A [`Loader`] yields each epoch's [`Batch`]es: `f32` pixels (scaled to `[0, 1]`, then
//! normalised per channel when the config says so, through [`crate::pixels_f32`]'s
//! table) and `i64` labels, ready to become tensors. With `shuffle`, the order is a
//! permutation seeded by `(seed, epoch)`. With an [`Augment`], each image is cropped
//! and flipped by draws seeded from `(seed, epoch, image index)`, on the thread that
//! builds its batch. With `workers = 0` a batch is built when the iterator is
//! advanced, on the caller's thread; with `workers = N` a producer thread builds them
//! ahead, N at a time on a pool of N threads, and queues up to `2 * N` finished batches.
//! The batches are the same, in the same order, whatever the number of workers.
//! Dropping an [`Epoch`] early stops and joins its producer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

pub use crate::augment::Augment;
use crate::augment::augment_into;
use crate::normalize::Lut;
use crate::rng::{shuffle, stream};
use crate::{Normalize, Split};

/// One mini-batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `n * channels * rows * cols` values, image after image, each channel-planar and
    /// row-major: pixels scaled to `[0, 1]`, then normalised when the loader does so.
    pub images: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<i64>,
    /// Number of images.
    pub n: usize,
    /// Planes per image (1 grey, 3 RGB).
    pub channels: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Batch {
    /// Values of one image (`channels * rows * cols`).
    pub fn image_len(&self) -> usize {
        self.channels * self.rows * self.cols
    }
}

/// How a [`Loader`] batches.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch (0 is taken as 1).
    pub batch_size: usize,
    /// Visit the images in a new random order every epoch.
    pub shuffle: bool,
    /// Seed of the shuffling.
    pub seed: u64,
    /// Threads building batches ahead of the consumer; 0 builds them on demand on the
    /// consumer's thread.
    pub workers: usize,
    /// Leave out a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Random crop and flip (training only; the default does nothing). Seeded by
    /// `seed`, the epoch and the image's index.
    pub augment: Augment,
    /// Per-channel normalisation after scaling (the dataset's
    /// [`crate::Dataset::normalize`]); `None` gives `x / 255`.
    pub normalize: Option<Normalize>,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 32,
            shuffle: true,
            seed: 0,
            workers: 0,
            drop_last: false,
            augment: Augment::default(),
            normalize: None,
        }
    }
}

/// Batches of one split, epoch after epoch.
pub struct Loader {
    split: Arc<Split>,
    cfg: LoaderConfig,
    /// Bytes to `f32` under `cfg.normalize`, built once.
    lut: Arc<Lut>,
    /// The workers' pool; `None` when `workers` is 0, or when the pool could not be
    /// started (batches are then still built ahead, on the producer thread alone).
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").field("images", &self.split.len()).field("cfg", &self.cfg).finish()
    }
}

impl Loader {
    /// A loader over `split`; starts the worker pool when `cfg.workers > 0`.
    ///
    /// # Panics
    ///
    /// When `cfg.normalize` has fewer values than the split has channels.
    pub fn new(split: Arc<Split>, mut cfg: LoaderConfig) -> Loader {
        cfg.batch_size = cfg.batch_size.max(1);
        let pool = (cfg.workers > 0)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(cfg.workers)
                    .thread_name(|i| format!("slimbench-loader-{i}"))
                    .build()
                    .ok()
            })
            .flatten()
            .map(Arc::new);
        // The split's own normalisation unless the caller gives one.
        if cfg.normalize.is_none() {
            cfg.normalize = split.normalize.clone();
        }
        let lut = Arc::new(Lut::new(split.channels, cfg.normalize.as_ref()));
        Loader { split, cfg, lut, pool }
    }

    /// The settings (with `batch_size` at least 1).
    pub fn config(&self) -> &LoaderConfig {
        &self.cfg
    }

    /// Number of images in the split.
    pub fn len(&self) -> usize {
        self.split.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.split.is_empty()
    }

    /// Number of batches each epoch yields.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.split.len(), self.cfg.batch_size);
        if self.cfg.drop_last { n / b } else { n.div_ceil(b) }
    }

    /// The order in which `epoch` visits the images.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.split.len()).collect();
        if self.cfg.shuffle {
            shuffle(&mut stream(self.cfg.seed, epoch), &mut order);
        }
        order
    }

    /// The batches of `epoch` (numbered from 0).
    pub fn epoch(&self, epoch: u64) -> Epoch {
        let plan = Arc::new(Plan {
            split: self.split.clone(),
            order: self.order(epoch),
            batch_size: self.cfg.batch_size,
            batches: self.batches_per_epoch(),
            lut: self.lut.clone(),
            augment: self.cfg.augment,
            seed: self.cfg.seed,
            epoch,
        });
        let remaining = plan.batches;
        let inner = if self.cfg.workers == 0 {
            Inner::Inline { plan, next: 0 }
        } else {
            match Producer::start(plan.clone(), self.pool.clone(), self.cfg.workers) {
                Some(p) => Inner::Background(p),
                // No thread could be started: build on demand instead.
                None => Inner::Inline { plan, next: 0 },
            }
        };
        Epoch { inner, remaining }
    }
}

/// What an epoch yields: its order and how to cut it.
struct Plan {
    split: Arc<Split>,
    order: Vec<usize>,
    batch_size: usize,
    batches: usize,
    lut: Arc<Lut>,
    augment: Augment,
    seed: u64,
    epoch: u64,
}

impl Plan {
    fn batch(&self, b: usize) -> Batch {
        let s = &self.split;
        let ids = &self.order[b * self.batch_size..((b + 1) * self.batch_size).min(self.order.len())];
        let mut images = Vec::with_capacity(ids.len() * s.image_len());
        let mut labels = Vec::with_capacity(ids.len());
        let plane = s.rows * s.cols;
        let mut scratch = if self.augment.is_active() { vec![0u8; s.image_len()] } else { Vec::new() };
        for &i in ids {
            if self.augment.is_active() {
                augment_into(&self.augment, self.seed, self.epoch, i, s.image(i), s.shape(), &mut scratch);
                self.lut.extend(&scratch, plane, &mut images);
            } else {
                self.lut.extend(s.image(i), plane, &mut images);
            }
            labels.push(s.labels[i] as i64);
        }
        Batch { images, labels, n: ids.len(), channels: s.channels, rows: s.rows, cols: s.cols }
    }
}

/// The batches of one epoch, in order. Dropping it stops its producer thread, if any.
pub struct Epoch {
    inner: Inner,
    remaining: usize,
}

enum Inner {
    Inline { plan: Arc<Plan>, next: usize },
    Background(Producer),
}

impl Iterator for Epoch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = match &mut self.inner {
            Inner::Inline { plan, next } => {
                if *next >= plan.batches {
                    return None;
                }
                *next += 1;
                Some(plan.batch(*next - 1))
            }
            Inner::Background(p) => p.rx.as_ref().and_then(|rx| rx.recv().ok()),
        };
        if batch.is_some() {
            self.remaining -= 1;
        }
        batch
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Epoch {}

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let background = matches!(self.inner, Inner::Background(_));
        f.debug_struct("Epoch").field("remaining", &self.remaining).field("background", &background).finish()
    }
}

/// A thread that builds batches ahead and queues them.
struct Producer {
    rx: Option<Receiver<Batch>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Producer {
    fn start(plan: Arc<Plan>, pool: Option<Arc<rayon::ThreadPool>>, workers: usize) -> Option<Producer> {
        let (tx, rx) = sync_channel(2 * workers);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("slimbench-loader".into())
            .spawn(move || produce(&plan, pool.as_deref(), workers, &tx, &flag))
            .ok()?;
        Some(Producer { rx: Some(rx), stop, thread: Some(thread) })
    }
}

fn produce(
    plan: &Plan,
    pool: Option<&rayon::ThreadPool>,
    workers: usize,
    tx: &SyncSender<Batch>,
    stop: &AtomicBool,
) {
    let mut b = 0;
    while b < plan.batches {
        // Build the next `workers` batches together, then hand them over in order.
        let end = (b + workers).min(plan.batches);
        let built: Vec<Batch> = match pool {
            Some(pool) => pool.install(|| (b..end).into_par_iter().map(|i| plan.batch(i)).collect()),
            None => (b..end).map(|i| plan.batch(i)).collect(),
        };
        for batch in built {
            // Fails once the consumer is gone: stop.
            if stop.load(Ordering::Relaxed) || tx.send(batch).is_err() {
                return;
            }
        }
        b = end;
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver wakes a producer blocked on a full queue; its send fails
        // and it returns, so the join cannot hang.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `n` 2x3 images; image `i` has all pixels `i` and label `i % 10`.
    fn split(n: usize) -> Arc<Split> {
        let images = (0..n).flat_map(|i| [i as u8; 6]).collect();
        Arc::new(Split {
            images,
            labels: (0..n).map(|i| (i % 10) as u16).collect(),
            channels: 1,
            rows: 2,
            cols: 3,
            normalize: None,
        })
    }

    fn cfg(batch_size: usize, workers: usize) -> LoaderConfig {
        LoaderConfig { batch_size, shuffle: true, seed: 5, workers, ..LoaderConfig::default() }
    }

    /// The image index of each image of a batch (its first pixel, times 255).
    fn ids(b: &Batch) -> Vec<usize> {
        (0..b.n).map(|k| (b.images[k * 6] * 255.0).round() as usize).collect()
    }

    #[test]
    fn batches_carry_scaled_pixels_and_labels() {
        let l = Loader::new(split(7), LoaderConfig { shuffle: false, ..cfg(4, 0) });
        let batches: Vec<Batch> = l.epoch(0).collect();
        assert_eq!(batches.len(), 2);
        let b = &batches[1];
        assert_eq!((b.n, b.channels, b.rows, b.cols, b.images.len()), (3, 1, 2, 3, 18));
        assert_eq!(b.labels, vec![4, 5, 6]);
        assert_eq!(b.images[0], 4.0 / 255.0);
        assert_eq!(ids(&batches[0]), vec![0, 1, 2, 3]);
    }

    #[test]
    fn same_batches_for_any_number_of_workers() {
        let data = split(203);
        let run = |workers| {
            let l = Loader::new(data.clone(), cfg(16, workers));
            (0..3).map(|e| l.epoch(e).collect::<Vec<_>>()).collect::<Vec<_>>()
        };
        let inline = run(0);
        assert_eq!(inline[0].len(), 13);
        for workers in [1, 2, 3, 8] {
            assert_eq!(run(workers), inline, "workers = {workers}");
        }
    }

    #[test]
    fn shuffle_is_seeded_per_epoch() {
        let l = Loader::new(split(100), cfg(10, 0));
        let order = |e| l.epoch(e).flat_map(|b| ids(&b)).collect::<Vec<_>>();
        let (e0, e1) = (order(0), order(1));
        assert_ne!(e0, e1);
        assert_eq!(e0, order(0));
        assert_eq!(e0, l.order(0));
        for mut o in [e0.clone(), e1] {
            o.sort();
            assert_eq!(o, (0..100).collect::<Vec<_>>(), "every image once per epoch");
        }
        let other = Loader::new(split(100), LoaderConfig { seed: 6, ..cfg(10, 0) });
        assert_ne!(other.order(0), e0);
        let plain = Loader::new(split(100), LoaderConfig { shuffle: false, ..cfg(10, 0) });
        assert_eq!(plain.order(3), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn drop_last_and_sizes() {
        for workers in [0, 2] {
            let keep = Loader::new(split(10), cfg(4, workers));
            assert_eq!(keep.batches_per_epoch(), 3);
            let mut e = keep.epoch(0);
            assert_eq!(e.len(), 3);
            let sizes: Vec<usize> = e.by_ref().map(|b| b.n).collect();
            assert_eq!(sizes, vec![4, 4, 2]);
            assert_eq!(e.len(), 0);

            let drop = Loader::new(split(10), LoaderConfig { drop_last: true, ..cfg(4, workers) });
            assert_eq!(drop.batches_per_epoch(), 2);
            assert_eq!(drop.epoch(0).map(|b| b.n).collect::<Vec<_>>(), vec![4, 4]);
            let none = Loader::new(split(3), LoaderConfig { drop_last: true, ..cfg(4, workers) });
            assert_eq!(none.epoch(0).count(), 0);
        }
        let empty = Loader::new(split(0), cfg(4, 2));
        assert!(empty.is_empty());
        assert_eq!(empty.epoch(0).count(), 0);
        // A zero batch size is read as 1 rather than looping forever or panicking.
        let one = Loader::new(split(3), cfg(0, 0));
        assert_eq!((one.config().batch_size, one.epoch(0).count()), (1, 3));
    }

    /// `n` 3x4x4 RGB images with distinct, asymmetric pixels; labels `i % 7`.
    fn rgb(n: usize) -> Arc<Split> {
        let images = (0..n * 48).map(|k| (k * 37 % 251) as u8 + 1).collect();
        Arc::new(Split {
            images,
            labels: (0..n).map(|i| (i % 7) as u16).collect(),
            channels: 3,
            rows: 4,
            cols: 4,
            normalize: None,
        })
    }

    #[test]
    fn no_augmentation_and_no_normalisation_is_plain_scaling() {
        let data = rgb(10);
        let l = Loader::new(data.clone(), LoaderConfig { shuffle: false, ..cfg(4, 0) });
        let b = l.epoch(0).next().unwrap();
        assert_eq!((b.n, b.channels, b.image_len(), b.images.len()), (4, 3, 48, 192));
        assert_eq!(b.images, crate::pixels_f32(&data, 0..4, None));
        for (v, &x) in b.images.iter().zip(&data.images) {
            assert_eq!(v.to_bits(), (x as f32 / 255.0).to_bits());
        }
    }

    #[test]
    fn normalisation_matches_pixels_f32() {
        let data = rgb(9);
        let norm = Normalize { mean: vec![0.5, 0.25, 0.0], std: vec![0.25, 0.5, 2.0] };
        let l = Loader::new(
            data.clone(),
            LoaderConfig { shuffle: false, normalize: Some(norm.clone()), ..cfg(5, 2) },
        );
        let all: Vec<f32> = l.epoch(0).flat_map(|b| b.images).collect();
        assert_eq!(all, crate::pixels_f32(&data, 0..9, Some(&norm)));
        // Channel 0 of image 0: (x / 255 - 0.5) / 0.25; channel 2: x / 255 / 2.
        let x = data.images[0] as f32 / 255.0;
        assert!((all[0] - (x - 0.5) / 0.25).abs() < 1e-6);
        let z = data.images[32] as f32 / 255.0;
        assert!((all[32] - z / 2.0).abs() < 1e-6);
    }

    #[test]
    fn augmentation_changes_images_not_labels_and_ignores_workers() {
        let data = rgb(64);
        let aug = Augment { crop_padding: 1, flip: true };
        let plain = Loader::new(data.clone(), cfg(8, 0));
        let run = |workers| {
            let l = Loader::new(data.clone(), LoaderConfig { augment: aug, ..cfg(8, workers) });
            (0..2).map(|e| l.epoch(e).collect::<Vec<_>>()).collect::<Vec<_>>()
        };
        let inline = run(0);
        for workers in [1, 3] {
            assert_eq!(run(workers), inline, "workers = {workers}");
        }
        for (e, batches) in inline.iter().enumerate() {
            let reference: Vec<Batch> = plain.epoch(e as u64).collect();
            let mut changed = 0;
            for (a, p) in batches.iter().zip(&reference) {
                // Same order, same labels; most images moved or mirrored.
                assert_eq!(a.labels, p.labels);
                for k in 0..a.n {
                    changed += usize::from(a.images[k * 48..(k + 1) * 48] != p.images[k * 48..(k + 1) * 48]);
                }
            }
            assert!(changed > 40, "epoch {e}: only {changed} of 64 images changed");
        }
        // Each epoch and each seed draws anew (unshuffled, so only the augmentation differs).
        let fixed = |seed| {
            let l =
                Loader::new(data.clone(), LoaderConfig { augment: aug, seed, shuffle: false, ..cfg(64, 0) });
            (l.epoch(0).next().unwrap().images, l.epoch(1).next().unwrap().images)
        };
        let (e0, e1) = fixed(5);
        assert_ne!(e0, e1);
        assert_ne!(fixed(6).0, e0);
    }

    #[test]
    fn dropping_an_epoch_early_stops_its_producer() {
        // Many batches, so the producer is blocked on a full queue when the epoch drops.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let l = Loader::new(split(5000), cfg(1, 2));
            for _ in 0..20 {
                let mut e = l.epoch(0);
                assert!(e.next().is_some());
                std::thread::sleep(Duration::from_millis(5));
                drop(e);
            }
            // Never started consuming at all.
            drop(l.epoch(1));
            done_tx.send(()).unwrap();
        });
        done_rx.recv_timeout(Duration::from_secs(30)).expect("dropping an epoch hung");
    }
}
