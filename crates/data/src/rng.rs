//! Seeded randomness that does not depend on `rand`'s distribution code, whose exact
//! output may change between its versions: the ChaCha8 stream is fixed by its spec, and
//! everything drawn from it here is plain arithmetic, so a seed means the same data and
//! the same batch order for good.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator for `stream` of `seed`: independent streams of one key, so
/// `(seed, stream)` pairs never overlap.
pub(crate) fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Uniform in `[0, 1)`, 24 bits.
pub(crate) fn unit(rng: &mut impl RngCore) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// Uniform in `[lo, hi)`.
pub(crate) fn uniform(rng: &mut impl RngCore, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * unit(rng)
}

/// Uniform in `0..n` (`n > 0`), by a widening multiply; the bias, below `n / 2^64`, is
/// far too small to matter.
pub(crate) fn below(rng: &mut impl RngCore, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// Two independent standard normal values (Box-Muller).
pub(crate) fn normal_pair(rng: &mut impl RngCore) -> (f32, f32) {
    let x = rng.next_u64();
    // u1 in (0, 1] so the logarithm is finite.
    let u1 = ((x >> 40) as f32 + 1.0) * (1.0 / (1u32 << 24) as f32);
    let u2 = ((x & 0xff_ffff) as f32) * (1.0 / (1u32 << 24) as f32);
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Shuffle in place (Fisher-Yates).
pub(crate) fn shuffle<T>(rng: &mut impl RngCore, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u32> = (0..4).map(|_| stream(1, 0).next_u32()).collect();
        assert!(a.iter().all(|&x| x == a[0]));
        assert_ne!(stream(1, 0).next_u64(), stream(1, 1).next_u64());
        assert_ne!(stream(1, 0).next_u64(), stream(2, 0).next_u64());
    }

    #[test]
    fn draws_stay_in_range_and_look_right() {
        let mut rng = stream(7, 0);
        let mut sum = 0.0f64;
        let mut sq = 0.0f64;
        for _ in 0..20_000 {
            let u = unit(&mut rng);
            assert!((0.0..1.0).contains(&u));
            assert!(below(&mut rng, 3) < 3);
            let (a, b) = normal_pair(&mut rng);
            assert!(a.is_finite() && b.is_finite());
            sum += (a + b) as f64;
            sq += (a * a + b * b) as f64;
        }
        let (mean, var) = (sum / 40_000.0, sq / 40_000.0);
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
        let mut v: Vec<u32> = (0..100).collect();
        shuffle(&mut rng, &mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }
}
