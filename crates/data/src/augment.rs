//! Seeded training-time augmentation: random crop with zero padding and horizontal
//! flip, the standard CIFAR recipe.
//!
//! An image's draws depend only on `(seed, epoch, image index)`, each triple its own
//! ChaCha8 stream, so a batch is the same whatever the number of loader workers and
//! whichever batch the image lands in. The work is on bytes, before scaling, so the
//! padding is black (0) as torchvision's `RandomCrop(padding=P)` on a PIL image gives.

use rand::RngCore;

use crate::rng::{below, stream};

/// What [`augment_into`] does to each image. The default does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Augment {
    /// Pad every side with this many black pixels, then cut an image of the original
    /// size at a random offset (0 turns the crop off).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
}

impl Augment {
    /// Whether it changes anything.
    pub fn is_active(&self) -> bool {
        self.crop_padding > 0 || self.flip
    }
}

/// Streams of augmentation draws carry this bit, so they never meet the shuffle's
/// `(seed, epoch)` streams.
const AUGMENT_STREAM: u64 = 1 << 63;

/// The random stream of image `index` in `epoch`.
fn image_stream(seed: u64, epoch: u64, index: usize) -> rand_chacha::ChaCha8Rng {
    // 31 bits of epoch and 32 of index: far more of both than any run has.
    let id = AUGMENT_STREAM | ((epoch & 0x7fff_ffff) << 32) | (index as u64 & 0xffff_ffff);
    stream(seed, id)
}

/// Write image `index` of `epoch` (channel-planar, `channels` x `rows` x `cols` bytes)
/// as `aug` changes it into `out` (same size).
///
/// # Panics
///
/// When `image` or `out` is not `channels * rows * cols` bytes.
pub fn augment_into(
    aug: &Augment,
    seed: u64,
    epoch: u64,
    index: usize,
    image: &[u8],
    [channels, rows, cols]: [usize; 3],
    out: &mut [u8],
) {
    assert_eq!(image.len(), channels * rows * cols, "image size");
    assert_eq!(out.len(), image.len(), "output size");
    let mut rng = image_stream(seed, epoch, index);
    // Flip first, then the offsets: the order of draws is part of the output.
    let flip = aug.flip && rng.next_u32() & 1 == 1;
    let p = aug.crop_padding;
    let (dy, dx) = if p > 0 { (below(&mut rng, 2 * p + 1), below(&mut rng, 2 * p + 1)) } else { (p, p) };
    // Output pixel (y, x) comes from input (y + dy - p, x' + dx - p), x' the flipped x.
    let plane = rows * cols;
    for c in 0..channels {
        let src = &image[c * plane..(c + 1) * plane];
        let dst = &mut out[c * plane..(c + 1) * plane];
        for y in 0..rows {
            let row = &mut dst[y * cols..(y + 1) * cols];
            let sy = (y + dy).wrapping_sub(p);
            if sy >= rows {
                row.fill(0);
                continue;
            }
            let srow = &src[sy * cols..(sy + 1) * cols];
            for (x, o) in row.iter_mut().enumerate() {
                let xx = if flip { cols - 1 - x } else { x };
                let sx = (xx + dx).wrapping_sub(p);
                *o = if sx < cols { srow[sx] } else { 0 };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: [usize; 3] = [3, 4, 5];

    fn image() -> Vec<u8> {
        (1..=60).collect()
    }

    fn run(aug: Augment, epoch: u64, index: usize) -> Vec<u8> {
        let mut out = vec![0; 60];
        augment_into(&aug, 9, epoch, index, &image(), SHAPE, &mut out);
        out
    }

    #[test]
    fn off_is_a_copy() {
        assert_eq!(run(Augment::default(), 0, 0), image());
        assert!(!Augment::default().is_active());
    }

    #[test]
    fn flip_mirrors_rows_about_half_the_time() {
        let aug = Augment { crop_padding: 0, flip: true };
        let img = image();
        let mirrored: Vec<u8> = img.chunks(5).flat_map(|r| r.iter().rev().copied()).collect();
        let mut flipped = 0;
        for i in 0..400 {
            let out = run(aug, 3, i);
            if out == mirrored {
                flipped += 1;
            } else {
                assert_eq!(out, img, "image {i} is neither itself nor its mirror");
            }
        }
        assert!((150..250).contains(&flipped), "{flipped} of 400 flipped");
    }

    #[test]
    fn crop_shifts_with_zero_padding() {
        let aug = Augment { crop_padding: 2, flip: false };
        let img = image();
        let mut shifts = std::collections::HashSet::new();
        for i in 0..300 {
            let out = run(aug, 0, i);
            // Find the shift that explains the output.
            let found = (-2i32..=2).flat_map(|dy| (-2i32..=2).map(move |dx| (dy, dx))).find(|&(dy, dx)| {
                (0..3).all(|c| {
                    (0..4).all(|y| {
                        (0..5).all(|x| {
                            let (sy, sx) = (y + dy, x + dx);
                            let want = if (0..4).contains(&sy) && (0..5).contains(&sx) {
                                img[c * 20 + sy as usize * 5 + sx as usize]
                            } else {
                                0
                            };
                            out[c * 20 + y as usize * 5 + x as usize] == want
                        })
                    })
                })
            });
            shifts.insert(found.unwrap_or_else(|| panic!("image {i}: {out:?} is no shift of the input")));
        }
        assert_eq!(shifts.len(), 25, "every offset of 5x5 turns up");
    }

    #[test]
    fn draws_depend_on_seed_epoch_and_index_only() {
        let aug = Augment { crop_padding: 4, flip: true };
        let a = run(aug, 1, 7);
        assert_eq!(a, run(aug, 1, 7));
        assert!((2..22).any(|e| run(aug, e, 7) != a), "the epoch matters");
        assert!((8..28).any(|i| run(aug, 1, i) != a), "the index matters");
        let mut other = vec![0; 60];
        let changed = (0..20).any(|k| {
            augment_into(&aug, 10 + k as u64, 1, 7, &image(), SHAPE, &mut other);
            other != a
        });
        assert!(changed);
    }
}
