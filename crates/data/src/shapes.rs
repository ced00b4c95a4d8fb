//! `synthetic-shapes`: a ten-class colour task (32x32 RGB), generated in-process, that
//! needs spatial features to solve: the class is the outline of one shape, while its
//! colour, size, place, tilt and the cluttered background are all drawn at random.
//!
//! Each image gets a background (a linear or radial gradient, smooth blotches or grain,
//! from random colours), a few soft distractor blobs and thin lines, then one shape of
//! its class (see [`CLASS_NAMES`]) as an anti-aliased signed-distance field with a
//! random colour far enough from the background's to be seen, a slight shading, and
//! additive Gaussian noise. Rotation stays within +-20 degrees, so horizontal and
//! vertical bars remain two classes and the square stays a square.
//!
//! Image `i` of a split depends only on `(seed, split, i)` (a ChaCha8 stream of its own)
//! and its label, so the bytes are the same for any number of threads.
//! [`GENERATOR_VERSION`] is part of the content hash and changes whenever the output does.

use rand::RngCore;
use rayon::prelude::*;
use slimbench_core::config::SyntheticShapesConfig;
use slimbench_core::hash;

use crate::rng::{below, shuffle, stream, uniform, unit};
use crate::synthetic::SplitKind;
use crate::{DataError, Dataset, Split};

/// Version of the generator's output; bump it whenever a change alters any pixel.
pub const GENERATOR_VERSION: u32 = 1;

/// Side of the images.
pub const SIDE: usize = 32;

/// The classes, in label order.
pub const CLASS_NAMES: [&str; 10] = [
    "disk",
    "square",
    "triangle",
    "plus",
    "ring",
    "star",
    "frame",
    "horizontal-bars",
    "vertical-bars",
    "crescent",
];

const PLANE: usize = SIDE * SIDE;
const IMAGE: usize = 3 * PLANE;

/// Build the `synthetic-shapes` dataset `name` (what [`crate::load`] does for it).
pub fn dataset(name: &str, cfg: &SyntheticShapesConfig, default_seed: u64) -> Result<Dataset, DataError> {
    check(name, cfg)?;
    let seed = cfg.seed.unwrap_or(default_seed);
    let noise = cfg.noise as f32;
    let (train, test) = rayon::join(
        || generate(SplitKind::Train, cfg.train_size, seed, noise),
        || generate(SplitKind::Test, cfg.test_size, seed, noise),
    );

    #[derive(serde::Serialize)]
    struct ContentKey<'a> {
        generator: &'a str,
        version: u32,
        train_size: usize,
        test_size: usize,
        seed: u64,
        noise: f64,
    }
    let content_hash = hash::json(&ContentKey {
        generator: "synthetic-shapes",
        version: GENERATOR_VERSION,
        train_size: cfg.train_size,
        test_size: cfg.test_size,
        seed,
        noise: cfg.noise,
    });
    let names = CLASS_NAMES.iter().map(|n| n.to_string()).collect();
    Ok(crate::synthetic::generated(name, "synthetic-shapes", train, test, names, content_hash))
}

fn check(name: &str, cfg: &SyntheticShapesConfig) -> Result<(), DataError> {
    crate::synthetic::check_generated(name, (cfg.train_size, cfg.test_size), cfg.noise, (10000, 2000), 0.04)
}

/// Generate `n` images of a split with `seed` and pixel noise `noise`, in parallel on
/// rayon's pool; balanced classes (counts differ by at most one) in a seeded order.
pub fn generate(split: SplitKind, n: usize, seed: u64, noise: f32) -> Split {
    let classes = CLASS_NAMES.len();
    let mut labels: Vec<u16> = (0..n).map(|i| (i % classes) as u16).collect();
    shuffle(&mut stream(seed, split.id()), &mut labels);
    let mut images = vec![0u8; n * IMAGE];
    images.par_chunks_mut(IMAGE).zip(labels.par_iter()).enumerate().for_each(|(i, (img, &label))| {
        // Streams below 2^40 are the label orders; each image has its own above.
        let mut rng = stream(seed, (split.id() << 40) | i as u64);
        render(label as usize, &mut rng, noise, img);
    });
    Split { images, labels, channels: 3, rows: SIDE, cols: SIDE, normalize: None }
}

// ---------------------------------------------------------------------------------
// drawing

type Rgb = [f32; 3];

/// An RGB canvas, one plane per channel, values in `0..1`.
struct Canvas([[f32; PLANE]; 3]);

impl Canvas {
    /// Blend `colour` into pixel `p` with weight `alpha`.
    fn blend(&mut self, p: usize, colour: Rgb, alpha: f32) {
        for (plane, c) in self.0.iter_mut().zip(colour) {
            plane[p] += alpha * (c - plane[p]);
        }
    }

    /// Set pixel `p` to `colour`.
    fn set(&mut self, p: usize, colour: Rgb) {
        for (plane, c) in self.0.iter_mut().zip(colour) {
            plane[p] = c;
        }
    }
}

fn random_colour(rng: &mut impl RngCore) -> Rgb {
    [unit(rng), unit(rng), unit(rng)]
}

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), a[2] + t * (b[2] - a[2])]
}

fn distance(a: Rgb, b: Rgb) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Pixel centres as `(x, y)`, row-major.
fn centres() -> impl Iterator<Item = (usize, f32, f32)> {
    (0..PLANE).map(|p| (p, (p % SIDE) as f32 + 0.5, (p / SIDE) as f32 + 0.5))
}

/// The pixels (index, centre) whose centre lies within `reach` of `(cx, cy)` in both
/// axes: what is further away is not touched, which keeps the generator fast.
fn around(cx: f32, cy: f32, reach: f32) -> impl Iterator<Item = (usize, f32, f32)> {
    let span = |c: f32| {
        let lo = (c - reach - 0.5).floor().clamp(0.0, SIDE as f32) as usize;
        let hi = (c + reach + 0.5).ceil().clamp(0.0, SIDE as f32) as usize;
        lo..hi
    };
    let cols = span(cx);
    span(cy).flat_map(move |r| cols.clone().map(move |c| (r * SIDE + c, c as f32 + 0.5, r as f32 + 0.5)))
}

/// A standard normal value, near enough for pixel noise: the sum of four 16-bit
/// uniforms, centred and scaled (Irwin-Hall). One draw and no transcendental function,
/// where Box-Muller would dominate the generator's time.
fn quick_normal(rng: &mut impl RngCore) -> f32 {
    let x = rng.next_u64();
    let sum = (x & 0xffff) + ((x >> 16) & 0xffff) + ((x >> 32) & 0xffff) + (x >> 48);
    // Mean 2 * 65535, variance 4 / 12 in units of 65536.
    (sum as f32 / 65536.0 - 2.0) * 1.732_050_8
}

/// Draw image `label` into `img` (3 planes of 32 x 32), every random choice from `rng`.
/// The order of draws is part of the output: keep it.
fn render(label: usize, rng: &mut impl RngCore, noise: f32, img: &mut [u8]) {
    let mut canvas = Canvas([[0.0; PLANE]; 3]);
    let fg = random_colour(rng);
    let background = background(rng, fg, &mut canvas);

    // Distractors behind the shape: soft blobs (no hard edge, so never a disk) and thin
    // straight lines (too thin and long to be bars).
    for _ in 0..below(rng, 4) {
        let (cx, cy) = (uniform(rng, 0.0, SIDE as f32), uniform(rng, 0.0, SIDE as f32));
        let sigma = uniform(rng, 1.5, 4.5);
        let alpha = uniform(rng, 0.3, 0.8);
        let colour = random_colour(rng);
        let inv = 1.0 / (2.0 * sigma * sigma);
        for (p, x, y) in around(cx, cy, 3.0 * sigma) {
            let d2 = (x - cx).powi(2) + (y - cy).powi(2);
            canvas.blend(p, colour, alpha * (-d2 * inv).exp());
        }
    }
    for _ in 0..below(rng, 3) {
        let (x0, y0) = (uniform(rng, 0.0, SIDE as f32), uniform(rng, 0.0, SIDE as f32));
        let angle = uniform(rng, 0.0, std::f32::consts::PI);
        let (s, c) = angle.sin_cos();
        let half_width = uniform(rng, 0.3, 0.6);
        let colour = random_colour(rng);
        for (p, x, y) in centres() {
            let d = ((x - x0) * s - (y - y0) * c).abs();
            if d < half_width + 0.5 {
                canvas.blend(p, colour, 0.7 * coverage(d - half_width));
            }
        }
    }

    // The shape.
    let radius = uniform(rng, 6.0, 11.0);
    let margin = radius + 1.0;
    let (cx, cy) = (uniform(rng, margin, SIDE as f32 - margin), uniform(rng, margin, SIDE as f32 - margin));
    let angle = uniform(rng, -20.0, 20.0).to_radians();
    let aspect = uniform(rng, 0.85, 1.15);
    let (shade_dx, shade_dy) = (uniform(rng, -0.25, 0.25), uniform(rng, -0.25, 0.25));
    let shape_noise_floor = unit(rng) < 0.3;
    let (sin, cos) = angle.sin_cos();
    for (p, x, y) in around(cx, cy, 1.25 * radius + 1.0) {
        let (dx, dy) = ((x - cx) / radius, (y - cy) / radius);
        // Into the shape's frame: unrotate, undo the aspect.
        let (u, v) = ((cos * dx + sin * dy) / aspect, (-sin * dx + cos * dy) * aspect);
        let d = sdf(label, u, v) * radius;
        let a = coverage(d);
        if a > 0.0 {
            let shade = 1.0 + shade_dx * dx + shade_dy * dy;
            let mut colour = fg.map(|c| (c * shade).clamp(0.0, 1.0));
            if shape_noise_floor {
                // Some shapes are a little see-through, as if behind haze.
                colour = mix(colour, background, 0.15);
            }
            canvas.blend(p, colour, a);
        }
    }

    for (c, plane) in canvas.0.iter_mut().enumerate() {
        if noise > 0.0 {
            for v in plane.iter_mut() {
                *v += noise * quick_normal(rng);
            }
        }
        for (o, v) in img[c * PLANE..(c + 1) * PLANE].iter_mut().zip(plane.iter()) {
            *o = (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
        }
    }
}

/// Fill the canvas with a random background whose colours stay away from `fg`; its
/// mean colour.
fn background(rng: &mut impl RngCore, fg: Rgb, canvas: &mut Canvas) -> Rgb {
    // A colour at least 0.45 from the shape's (in RGB, 0..1): a few tries, then the
    // complement, which always is.
    fn away(rng: &mut impl RngCore, fg: Rgb) -> Rgb {
        for _ in 0..8 {
            let c = random_colour(rng);
            if distance(c, fg) > 0.45 {
                return c;
            }
        }
        fg.map(|v| if v > 0.5 { uniform(rng, 0.0, 0.25) } else { uniform(rng, 0.75, 1.0) })
    }
    let a = away(rng, fg);
    let b = away(rng, fg);
    match below(rng, 4) {
        // Linear gradient in a random direction.
        0 => {
            let (s, c) = uniform(rng, 0.0, std::f32::consts::TAU).sin_cos();
            for (p, x, y) in centres() {
                let t = (((x - 16.0) * c + (y - 16.0) * s) / 45.0 + 0.5).clamp(0.0, 1.0);
                canvas.set(p, mix(a, b, t));
            }
        }
        // Radial gradient around a random point.
        1 => {
            let (cx, cy) = (uniform(rng, 0.0, 32.0), uniform(rng, 0.0, 32.0));
            let reach = uniform(rng, 16.0, 40.0);
            for (p, x, y) in centres() {
                let t = (((x - cx).powi(2) + (y - cy).powi(2)).sqrt() / reach).min(1.0);
                canvas.set(p, mix(a, b, t));
            }
        }
        // Smooth blotches: a 5x5 grid of mixes of the two colours, bilinear.
        2 => {
            let grid: Vec<f32> = (0..25).map(|_| unit(rng)).collect();
            for (p, x, y) in centres() {
                let (gx, gy) = (x / 8.0, y / 8.0);
                let (ix, iy) = ((gx as usize).min(3), (gy as usize).min(3));
                let (fx, fy) = (gx - ix as f32, gy - iy as f32);
                let g = |i: usize, j: usize| grid[j * 5 + i];
                let top = g(ix, iy) + fx * (g(ix + 1, iy) - g(ix, iy));
                let bottom = g(ix, iy + 1) + fx * (g(ix + 1, iy + 1) - g(ix, iy + 1));
                canvas.set(p, mix(a, b, top + fy * (bottom - top)));
            }
        }
        // Grain: each pixel a random mix, mostly of the first colour.
        _ => {
            for p in 0..PLANE {
                let t = unit(rng) * 0.5;
                canvas.set(p, mix(a, b, t));
            }
        }
    }
    mix(a, b, 0.5)
}

/// Anti-aliased coverage of a pixel whose centre is `d` pixels outside an edge.
fn coverage(d: f32) -> f32 {
    (0.5 - d).clamp(0.0, 1.0)
}

// ---------------------------------------------------------------------------------
// shapes, as signed distances in a unit frame (negative inside; y points down)

fn length(x: f32, y: f32) -> f32 {
    (x * x + y * y).sqrt()
}

fn sd_box(x: f32, y: f32, bx: f32, by: f32) -> f32 {
    let (dx, dy) = (x.abs() - bx, y.abs() - by);
    length(dx.max(0.0), dy.max(0.0)) + dx.max(dy).min(0.0)
}

/// Equilateral triangle of circumradius about 1 around its centroid, pointing up.
fn sd_triangle(x: f32, y: f32) -> f32 {
    const K: f32 = 1.732_050_8;
    let r = 0.85;
    // Flip y so the apex points up in image coordinates.
    let (mut px, mut py) = (x.abs() - r, -y + r / K);
    if px + K * py > 0.0 {
        (px, py) = ((px - K * py) / 2.0, (-K * px - py) / 2.0);
    }
    px -= px.clamp(-2.0 * r, 0.0);
    -length(px, py) * py.signum()
}

/// Five-pointed star of outer radius `r` and inner ratio `rf`.
fn sd_star5(x: f32, y: f32, r: f32, rf: f32) -> f32 {
    let k1 = (0.809_017, -0.587_785);
    let k2 = (-k1.0, k1.1);
    let (mut px, mut py) = (x.abs(), -y);
    let d1 = 2.0 * (k1.0 * px + k1.1 * py).max(0.0);
    (px, py) = (px - d1 * k1.0, py - d1 * k1.1);
    let d2 = 2.0 * (k2.0 * px + k2.1 * py).max(0.0);
    (px, py) = (px - d2 * k2.0, py - d2 * k2.1);
    px = px.abs();
    py -= r;
    let (bax, bay) = (rf * -k1.1, rf * k1.0 - 1.0);
    let h = ((px * bax + py * bay) / (bax * bax + bay * bay)).clamp(0.0, r);
    length(px - bax * h, py - bay * h) * (py * bax - px * bay).signum()
}

fn sdf(label: usize, x: f32, y: f32) -> f32 {
    match label {
        0 => length(x, y) - 0.9,
        1 => sd_box(x, y, 0.75, 0.75),
        2 => sd_triangle(x, y),
        3 => sd_box(x, y, 0.95, 0.3).min(sd_box(x, y, 0.3, 0.95)),
        4 => (length(x, y) - 0.72).abs() - 0.24,
        5 => sd_star5(x, y, 1.05, 0.45),
        6 => sd_box(x, y, 0.72, 0.72).abs() - 0.2,
        7 => (-1..=1).map(|k| sd_box(x, y - k as f32 * 0.62, 0.95, 0.19)).fold(f32::MAX, f32::min),
        8 => (-1..=1).map(|k| sd_box(x - k as f32 * 0.62, y, 0.19, 0.95)).fold(f32::MAX, f32::min),
        _ => (length(x, y) - 0.95).max(-(length(x - 0.45, y + 0.2) - 0.75)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_for_any_thread_count() {
        let gen_on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| generate(SplitKind::Train, 300, 42, 0.04))
        };
        let one = gen_on(1);
        assert_eq!(one, gen_on(4));
        assert_eq!(one, generate(SplitKind::Train, 300, 42, 0.04));
        assert_ne!(generate(SplitKind::Test, 300, 42, 0.04).images, one.images);
        assert_ne!(generate(SplitKind::Train, 300, 43, 0.04).images, one.images);
        assert_ne!(generate(SplitKind::Train, 300, 42, 0.0).images, one.images);
    }

    #[test]
    fn classes_are_balanced_and_shaped() {
        let s = generate(SplitKind::Test, 1003, 7, 0.04);
        assert_eq!(s.class_counts(10), [101, 101, 101, 100, 100, 100, 100, 100, 100, 100]);
        assert_eq!((s.channels, s.rows, s.cols, s.images.len()), (3, 32, 32, 1003 * 3072));
        assert_ne!(s.labels[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    /// Mean colour per class must not predict the class: the per-class means of every
    /// channel stay close to the overall mean.
    #[test]
    fn colour_does_not_give_the_class_away() {
        let s = generate(SplitKind::Train, 4000, 3, 0.04);
        let mut sums = [[0f64; 3]; 10];
        let mut counts = [0usize; 10];
        for i in 0..s.len() {
            let img = s.image(i);
            let l = s.labels[i] as usize;
            counts[l] += 1;
            for c in 0..3 {
                sums[l][c] +=
                    img[c * PLANE..(c + 1) * PLANE].iter().map(|&v| v as f64).sum::<f64>() / PLANE as f64;
            }
        }
        let overall: Vec<f64> =
            (0..3).map(|c| sums.iter().map(|s| s[c]).sum::<f64>() / s.len() as f64).collect();
        for l in 0..10 {
            for c in 0..3 {
                let mean = sums[l][c] / counts[l] as f64;
                assert!((mean - overall[c]).abs() < 8.0, "class {l} channel {c}: {mean} vs {}", overall[c]);
            }
        }
    }

    #[test]
    fn quick_normal_is_near_enough() {
        let mut rng = stream(1, 0);
        let xs: Vec<f32> = (0..50_000).map(|_| quick_normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / xs.len() as f32;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03, "mean {mean} var {var}");
        assert_eq!(around(0.2, 31.9, 1.0).count(), 2 * 2);
        assert_eq!(around(16.0, 16.0, 100.0).count(), PLANE);
    }

    #[test]
    fn every_shape_covers_a_fair_area() {
        // Sample the unit frame: each shape covers between 15% and 70% of the square.
        for (label, name) in CLASS_NAMES.iter().enumerate() {
            let n = 100;
            let inside = (0..n * n)
                .filter(|&k| {
                    let (x, y) =
                        ((k % n) as f32 / n as f32 * 2.0 - 1.0, (k / n) as f32 / n as f32 * 2.0 - 1.0);
                    sdf(label, x, y) < 0.0
                })
                .count();
            let share = inside as f32 / (n * n) as f32;
            assert!((0.12..0.7).contains(&share), "{name}: {share}");
        }
        // The triangle and the star are inside at their centre and outside at a corner.
        assert!(sd_triangle(0.0, 0.0) < 0.0 && sd_triangle(0.95, -0.95) > 0.0);
        assert!(sd_star5(0.0, 0.0, 1.0, 0.45) < 0.0 && sd_star5(0.95, 0.95, 1.0, 0.45) > 0.0);
    }

    #[test]
    fn dataset_checks_settings_and_hashes_them() {
        let cfg = SyntheticShapesConfig { train_size: 100, test_size: 30, ..Default::default() };
        let d = dataset("sh", &cfg, 7).unwrap();
        assert_eq!((d.kind.as_str(), d.classes, d.class_names.len()), ("synthetic-shapes", 10, 10));
        assert_eq!((d.train.len(), d.test.len(), d.input_shape()), (100, 30, [3, 32, 32]));
        assert_eq!(dataset("x", &cfg, 7).unwrap().content_hash, d.content_hash);
        assert_ne!(dataset("sh", &cfg, 8).unwrap().content_hash, d.content_hash);
        let e =
            dataset("sh", &SyntheticShapesConfig { noise: 2.0, ..cfg.clone() }, 7).unwrap_err().to_string();
        assert!(e.starts_with("dataset `sh`: noise is 2; it must be between 0 and 1"), "{e}");
        let e = dataset("sh", &SyntheticShapesConfig { test_size: 0, ..cfg }, 7).unwrap_err().to_string();
        assert!(e.starts_with("dataset `sh`: test_size is 0") && e.contains("\nhint: "), "{e}");
    }

    #[test]
    fn default_size_is_fast() {
        let t = std::time::Instant::now();
        let d = dataset("sh", &SyntheticShapesConfig::default(), 42).unwrap();
        let took = t.elapsed();
        println!("generated {} + {} colour images in {took:?}", d.train.len(), d.test.len());
        // Generous: the target is a second or two on two cores, but tests share them.
        assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    }

    /// A grid of 8 images per class (one row per class); `SLIMBENCH_PREVIEW=DIR cargo test
    /// -p slimbench-data shapes::tests::preview` also writes it to `DIR` as a PNG to look at.
    #[test]
    fn preview() {
        let s = generate(SplitKind::Train, 400, 1, 0.04);
        let (cols, rows) = (8, 10);
        let mut out = image::RgbImage::new((cols * SIDE) as u32, (rows * SIDE) as u32);
        for label in 0..rows {
            let ids: Vec<usize> =
                (0..s.len()).filter(|&i| s.labels[i] as usize == label).take(cols).collect();
            assert_eq!(ids.len(), cols, "class {label}: 400 balanced images hold 40 of each");
            for (k, &i) in ids.iter().enumerate() {
                let img = s.image(i);
                for p in 0..PLANE {
                    let px = image::Rgb([img[p], img[PLANE + p], img[2 * PLANE + p]]);
                    out.put_pixel((k * SIDE + p % SIDE) as u32, (label * SIDE + p / SIDE) as u32, px);
                }
            }
        }
        // Every cell of the grid was filled with a picture: many colours, not one.
        for label in 0..rows {
            for k in 0..cols {
                let mut colours = std::collections::HashSet::new();
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        colours.insert(out.get_pixel((k * SIDE + x) as u32, (label * SIDE + y) as u32).0);
                    }
                }
                assert!(colours.len() >= 16, "class {label}, image {k}: {} colours", colours.len());
            }
        }
        if let Some(dir) = std::env::var_os("SLIMBENCH_PREVIEW") {
            out.save(std::path::Path::new(&dir).join("synthetic-shapes.png")).unwrap();
        }
    }
}
