//! Cutting a [`Split`] into mini-batches.
//!
//! A [`Loader`] yields each epoch's [`Batch`]es: `f32` pixels scaled to `[0, 1]` and
//! `i64` labels, ready to become tensors. With `shuffle`, the order is a permutation
//! seeded by `(seed, epoch)`. With `workers = 0` a batch is built when the iterator is
//! advanced, on the caller's thread; with `workers = N` a producer thread builds them
//! ahead, N at a time on a pool of N threads, and queues up to `2 * N` finished batches.
//! The batches are the same, in the same order, whatever the number of workers.
//! Dropping an [`Epoch`] early stops and joins its producer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::Split;
use crate::rng::{shuffle, stream};

/// One mini-batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `n * rows * cols` pixels, image after image, each row-major, scaled to `[0, 1]`.
    pub images: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<i64>,
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

/// How a [`Loader`] batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig { batch_size: 32, shuffle: true, seed: 0, workers: 0, drop_last: false }
    }
}

/// Batches of one split, epoch after epoch.
pub struct Loader {
    split: Arc<Split>,
    cfg: LoaderConfig,
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
        Loader { split, cfg, pool }
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
}

impl Plan {
    fn batch(&self, b: usize) -> Batch {
        let s = &self.split;
        let ids = &self.order[b * self.batch_size..((b + 1) * self.batch_size).min(self.order.len())];
        let mut images = Vec::with_capacity(ids.len() * s.image_len());
        let mut labels = Vec::with_capacity(ids.len());
        for &i in ids {
            images.extend(s.image(i).iter().map(|&p| p as f32 / 255.0));
            labels.push(s.labels[i] as i64);
        }
        Batch { images, labels, n: ids.len(), rows: s.rows, cols: s.cols }
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
        Arc::new(Split { images, labels: (0..n).map(|i| (i % 10) as u8).collect(), rows: 2, cols: 3 })
    }

    fn cfg(batch_size: usize, workers: usize) -> LoaderConfig {
        LoaderConfig { batch_size, shuffle: true, seed: 5, workers, drop_last: false }
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
        assert_eq!((b.n, b.rows, b.cols, b.images.len()), (3, 2, 3, 18));
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
