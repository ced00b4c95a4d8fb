//! `synthetic-digits`: a real ten-class image task, generated in-process in well under a
//! second, so the quickstart needs neither files nor a network.
//!
//! Each digit is a few vector strokes (polylines and Catmull-Rom curves in a unit box),
//! most with two or three handwriting styles (a 1 with or without its flag and base, a 7
//! with or without a bar, an open or closed 4, ...). Every image draws its own style,
//! control-point wobble, slant, rotation, aspect, scale, position, stroke width and ink,
//! is rendered with anti-aliased distance-to-segment strokes, sometimes blurred, and
//! gets additive Gaussian noise. The result is learnable but not trivial: a small CNN
//! does not reach 100% on it after an epoch.
//!
//! Image `i` of a split depends only on `(seed, split, i)` (a ChaCha8 stream of its own)
//! and its label, so the bytes are the same for any number of threads (and across
//! machines, up to the last bit of the platform's `sin`/`ln`, which rounding to bytes
//! almost always hides).
//! [`GENERATOR_VERSION`] is part of the content hash and changes whenever the output does.

use std::sync::Arc;

use rand::RngCore;
use rayon::prelude::*;
use slimbench_core::config::SyntheticDigitsConfig;
use slimbench_core::hash;

use crate::rng::{below, normal_pair, shuffle, stream, uniform, unit};
use crate::{CLASSES, DataError, Dataset, IMAGE_SIDE, Split};

/// Version of the generator's output; bump it whenever a change alters any pixel.
pub const GENERATOR_VERSION: u32 = 1;

/// Largest accepted split, so a typo cannot ask for gigabytes.
pub const MAX_IMAGES: usize = 1_000_000;

const SIDE: usize = IMAGE_SIDE;
const PIXELS: usize = SIDE * SIDE;

/// Which split an image belongs to; part of its random stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

impl SplitKind {
    /// Its part of the random stream ids.
    pub(crate) fn id(self) -> u64 {
        match self {
            SplitKind::Train => 1,
            SplitKind::Test => 2,
        }
    }
}

/// Generator settings, checked (see [`Params::new`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Seed of every random choice.
    pub seed: u64,
    /// Standard deviation of the additive pixel noise, pixels in `0..1`.
    pub noise: f32,
    /// Strength of the geometric jitter; 0 draws every digit in its plain style, centred.
    pub jitter: f32,
}

impl Params {
    /// Settings from a config; the config's seed wins over `default_seed`.
    pub fn new(cfg: &SyntheticDigitsConfig, default_seed: u64) -> Params {
        Params { seed: cfg.seed.unwrap_or(default_seed), noise: cfg.noise as f32, jitter: cfg.jitter as f32 }
    }
}

/// Build the `synthetic-digits` dataset `name` (what [`crate::load`] does for it).
pub fn dataset(name: &str, cfg: &SyntheticDigitsConfig, default_seed: u64) -> Result<Dataset, DataError> {
    check(name, cfg)?;
    let p = Params::new(cfg, default_seed);
    let (train, test) = rayon::join(
        || generate(SplitKind::Train, cfg.train_size, &p),
        || generate(SplitKind::Test, cfg.test_size, &p),
    );

    #[derive(serde::Serialize)]
    struct ContentKey<'a> {
        generator: &'a str,
        version: u32,
        train_size: usize,
        test_size: usize,
        seed: u64,
        noise: f64,
        jitter: f64,
    }
    let content_hash = hash::json(&ContentKey {
        generator: "synthetic-digits",
        version: GENERATOR_VERSION,
        train_size: cfg.train_size,
        test_size: cfg.test_size,
        seed: p.seed,
        noise: cfg.noise,
        jitter: cfg.jitter,
    });
    Ok(generated(name, "synthetic-digits", train, test, crate::digit_names(), content_hash))
}

/// A dataset generated in-process: no files, `generated` as its source.
pub(crate) fn generated(
    name: &str,
    kind: &str,
    train: Split,
    test: Split,
    class_names: Vec<String>,
    content_hash: String,
) -> Dataset {
    Dataset {
        name: name.to_string(),
        kind: kind.to_string(),
        train: Arc::new(train),
        test: Arc::new(test),
        classes: class_names.len(),
        class_names,
        normalize: None,
        source: "generated".to_string(),
        content_hash,
        notes: Vec::new(),
    }
}

/// Checks what every generated set has: its sizes (the defaults named in the hint) and
/// its pixel noise (default `noise_default`).
pub(crate) fn check_generated(
    name: &str,
    sizes: (usize, usize),
    noise: f64,
    default_sizes: (usize, usize),
    noise_default: f64,
) -> Result<(), DataError> {
    let bad = |message: String, hint: String| {
        Err(DataError::InvalidConfig { dataset: name.to_string(), message, hint })
    };
    for (n, field) in [(sizes.0, "train_size"), (sizes.1, "test_size")] {
        if n == 0 || n > MAX_IMAGES {
            return bad(
                format!("{field} is {n}; it must be between 1 and {MAX_IMAGES}"),
                format!("the default is {} training and {} test images", default_sizes.0, default_sizes.1),
            );
        }
    }
    if !(0.0..=1.0).contains(&noise) {
        return bad(
            format!("noise is {noise}; it must be between 0 and 1 (a standard deviation, pixels in 0..1)"),
            format!("the default is {noise_default}; 0 turns the noise off"),
        );
    }
    Ok(())
}

fn check(name: &str, cfg: &SyntheticDigitsConfig) -> Result<(), DataError> {
    let bad = |message: String, hint: &str| {
        Err(DataError::InvalidConfig { dataset: name.to_string(), message, hint: hint.to_string() })
    };
    check_generated(name, (cfg.train_size, cfg.test_size), cfg.noise, (12000, 2000), 0.15)?;
    if !(0.0..=3.0).contains(&cfg.jitter) {
        return bad(
            format!("jitter is {}; it must be between 0 and 3", cfg.jitter),
            "the default is 1.0 (rotations up to 15 degrees); 0 turns the jitter off",
        );
    }
    Ok(())
}

/// Generate `n` images of a split, in parallel on rayon's pool; balanced classes (counts
/// differ by at most one) in a seeded random order.
pub fn generate(split: SplitKind, n: usize, p: &Params) -> Split {
    let mut labels: Vec<u8> = (0..n).map(|i| (i % CLASSES) as u8).collect();
    shuffle(&mut stream(p.seed, split.id()), &mut labels);
    let mut images = vec![0u8; n * PIXELS];
    images.par_chunks_mut(PIXELS).zip(labels.par_iter()).enumerate().for_each(|(i, (img, &label))| {
        // Streams below 2^40 are the label orders; each image has its own above.
        let mut rng = stream(p.seed, (split.id() << 40) | i as u64);
        render(label, &mut rng, p, img);
    });
    Split {
        images,
        labels: labels.into_iter().map(u16::from).collect(),
        channels: 1,
        rows: SIDE,
        cols: SIDE,
        normalize: None,
    }
}

// ---------------------------------------------------------------------------------
// glyphs

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Straight segments through the points.
    Line,
    /// An open Catmull-Rom curve through the points.
    Curve,
    /// A closed Catmull-Rom curve through the points.
    Loop,
}

#[derive(Debug, Clone)]
struct Stroke {
    shape: Shape,
    pts: Vec<[f32; 2]>,
}

fn line(pts: &[[f32; 2]]) -> Stroke {
    Stroke { shape: Shape::Line, pts: pts.to_vec() }
}

fn curve(pts: &[[f32; 2]]) -> Stroke {
    Stroke { shape: Shape::Curve, pts: pts.to_vec() }
}

/// An ellipse as a closed curve through 12 points, starting at `start` degrees (0 is
/// right, 90 is down), so the control-point wobble has somewhere to act.
fn ellipse(cx: f32, cy: f32, rx: f32, ry: f32) -> Stroke {
    let pts = (0..12)
        .map(|k| {
            let a = (k as f32 * 30.0).to_radians();
            [cx + rx * a.cos(), cy + ry * a.sin()]
        })
        .collect();
    Stroke { shape: Shape::Loop, pts }
}

/// How many styles digit `d` has.
fn styles(d: u8) -> usize {
    match d {
        1 => 3,
        5 => 1,
        7 => 3,
        _ => 2,
    }
}

/// The strokes of digit `d` in style `s`, in a box with y from -0.5 (top) to 0.5
/// (bottom), x about -0.3 to 0.3.
fn glyph(d: u8, s: usize) -> Vec<Stroke> {
    match (d, s) {
        (0, 0) => vec![ellipse(0.0, 0.0, 0.26, 0.48)],
        // Started at the top and closed with a small overlap, narrower.
        (0, _) => vec![curve(&[
            [0.05, -0.5],
            [-0.14, -0.4],
            [-0.22, -0.1],
            [-0.18, 0.3],
            [0.0, 0.49],
            [0.18, 0.3],
            [0.22, -0.1],
            [0.14, -0.4],
            [-0.04, -0.49],
        ])],
        (1, 0) => vec![line(&[[0.02, -0.5], [-0.02, 0.5]])],
        (1, 1) => vec![line(&[[-0.17, -0.3], [0.04, -0.5], [0.0, 0.5]])],
        (1, _) => vec![line(&[[-0.17, -0.3], [0.04, -0.5], [0.0, 0.5]]), line(&[[-0.16, 0.5], [0.16, 0.5]])],
        (2, 0) => vec![
            curve(&[
                [-0.24, -0.28],
                [-0.1, -0.46],
                [0.1, -0.47],
                [0.24, -0.3],
                [0.2, -0.08],
                [-0.05, 0.2],
                [-0.26, 0.47],
            ]),
            line(&[[-0.26, 0.47], [0.28, 0.46]]),
        ],
        (2, _) => vec![
            curve(&[[-0.22, -0.3], [0.0, -0.48], [0.22, -0.32], [0.18, -0.12]]),
            line(&[[0.18, -0.12], [-0.26, 0.47], [0.28, 0.47]]),
        ],
        (3, 0) => vec![
            curve(&[[-0.22, -0.36], [-0.02, -0.5], [0.2, -0.4], [0.18, -0.17], [-0.04, -0.03]]),
            curve(&[[-0.04, -0.03], [0.2, 0.06], [0.26, 0.28], [0.08, 0.48], [-0.14, 0.48], [-0.26, 0.36]]),
        ],
        // Flat-topped.
        (3, _) => vec![
            line(&[[-0.24, -0.48], [0.22, -0.48], [-0.02, -0.06]]),
            curve(&[[-0.02, -0.06], [0.2, 0.04], [0.26, 0.27], [0.08, 0.48], [-0.14, 0.48], [-0.26, 0.36]]),
        ],
        // Closed.
        (4, 0) => vec![line(&[[0.14, 0.5], [0.14, -0.5], [-0.28, 0.18], [0.3, 0.18]])],
        // Open.
        (4, _) => {
            vec![line(&[[-0.2, -0.5], [-0.25, 0.15], [0.28, 0.15]]), line(&[[0.14, -0.42], [0.14, 0.5]])]
        }
        (5, _) => vec![
            line(&[[0.24, -0.5], [-0.17, -0.5], [-0.21, -0.06]]),
            curve(&[
                [-0.21, -0.06],
                [0.02, -0.12],
                [0.24, 0.02],
                [0.26, 0.28],
                [0.08, 0.48],
                [-0.14, 0.49],
                [-0.27, 0.38],
            ]),
        ],
        // One curve, from the top down into the loop.
        (6, 0) => vec![curve(&[
            [0.18, -0.5],
            [-0.04, -0.34],
            [-0.2, -0.08],
            [-0.25, 0.2],
            [-0.12, 0.46],
            [0.1, 0.47],
            [0.24, 0.27],
            [0.14, 0.06],
            [-0.08, 0.05],
            [-0.23, 0.2],
        ])],
        // A straight stem onto a round loop.
        (6, _) => vec![line(&[[0.14, -0.5], [-0.2, 0.17]]), ellipse(0.0, 0.25, 0.22, 0.24)],
        (7, 0) => vec![line(&[[-0.26, -0.48], [0.26, -0.48], [-0.06, 0.5]])],
        // With a bar.
        (7, 1) => {
            vec![line(&[[-0.26, -0.48], [0.26, -0.48], [-0.06, 0.5]]), line(&[[-0.1, 0.02], [0.22, 0.02]])]
        }
        // A curved stem.
        (7, _) => vec![
            line(&[[-0.26, -0.48], [0.26, -0.48]]),
            curve(&[[0.26, -0.48], [0.1, -0.1], [0.0, 0.2], [-0.04, 0.5]]),
        ],
        (8, 0) => vec![ellipse(0.0, -0.26, 0.19, 0.23), ellipse(0.0, 0.23, 0.24, 0.27)],
        // One stroke crossing itself in the middle.
        (8, _) => vec![Stroke {
            shape: Shape::Loop,
            pts: vec![
                [0.2, -0.36],
                [0.02, -0.5],
                [-0.18, -0.4],
                [-0.16, -0.18],
                [0.0, -0.04],
                [0.2, 0.12],
                [0.24, 0.34],
                [0.04, 0.5],
                [-0.2, 0.4],
                [-0.2, 0.16],
                [0.0, -0.04],
                [0.18, -0.2],
            ],
        }],
        (9, 0) => vec![ellipse(0.0, -0.22, 0.23, 0.26), line(&[[0.23, -0.24], [0.16, 0.5]])],
        // A curved tail.
        (_, _) => vec![
            ellipse(0.0, -0.22, 0.23, 0.26),
            curve(&[[0.23, -0.3], [0.22, 0.1], [0.08, 0.42], [-0.16, 0.48]]),
        ],
    }
}

/// Catmull-Rom point between `p1` and `p2` at `t` in `[0, 1]`.
fn catmull_rom(p0: [f32; 2], p1: [f32; 2], p2: [f32; 2], p3: [f32; 2], t: f32) -> [f32; 2] {
    let (t2, t3) = (t * t, t * t * t);
    let f = |a: f32, b: f32, c: f32, d: f32| {
        0.5 * (2.0 * b
            + (c - a) * t
            + (2.0 * a - 5.0 * b + 4.0 * c - d) * t2
            + (3.0 * b - a - 3.0 * c + d) * t3)
    };
    [f(p0[0], p1[0], p2[0], p3[0]), f(p0[1], p1[1], p2[1], p3[1])]
}

/// The polyline that draws a stroke.
fn tessellate(s: &Stroke, out: &mut Vec<[f32; 2]>) {
    const STEPS: usize = 6;
    let p = &s.pts;
    let n = p.len();
    out.clear();
    match s.shape {
        Shape::Line => out.extend_from_slice(p),
        Shape::Curve | Shape::Loop => {
            let closed = s.shape == Shape::Loop;
            // Open ends get mirrored phantom neighbours, so the curve leaves its end
            // points heading at the next point.
            let at = |i: isize| -> [f32; 2] {
                if closed {
                    p[i.rem_euclid(n as isize) as usize]
                } else if i < 0 {
                    [2.0 * p[0][0] - p[1][0], 2.0 * p[0][1] - p[1][1]]
                } else if i as usize >= n {
                    [2.0 * p[n - 1][0] - p[n - 2][0], 2.0 * p[n - 1][1] - p[n - 2][1]]
                } else {
                    p[i as usize]
                }
            };
            let spans = if closed { n } else { n - 1 };
            for i in 0..spans as isize {
                let (p0, p1, p2, p3) = (at(i - 1), at(i), at(i + 1), at(i + 2));
                for k in 0..STEPS {
                    out.push(catmull_rom(p0, p1, p2, p3, k as f32 / STEPS as f32));
                }
            }
            out.push(at(spans as isize));
        }
    }
}

// ---------------------------------------------------------------------------------
// rendering

/// Draw digit `label` into `img` (28 x 28), every random choice from `rng`.
fn render(label: u8, rng: &mut impl RngCore, p: &Params, img: &mut [u8]) {
    let j = p.jitter;
    // Style, then geometry: the order of draws is part of the output, keep it.
    let style = if j > 0.0 { below(rng, styles(label)) } else { 0 };
    let mut strokes = glyph(label, style);
    let wobble = 0.022 * j;
    for s in &mut strokes {
        for pt in &mut s.pts {
            let (dx, dy) = normal_pair(rng);
            pt[0] += wobble * dx;
            pt[1] += wobble * dy;
        }
    }
    let angle = uniform(rng, -15.0, 15.0).to_radians() * j;
    let slant = uniform(rng, -0.3, 0.3) * j;
    let aspect = 1.0 + uniform(rng, -0.2, 0.15) * j;
    let height = 19.5 * (1.0 + uniform(rng, -0.18, 0.05) * j);
    let cx = 13.5 + uniform(rng, -2.0, 2.0) * j;
    let cy = 13.5 + uniform(rng, -1.5, 1.5) * j;
    let radius = uniform(rng, 0.85, 1.75);
    let edge = uniform(rng, 0.6, 1.4);
    let ink = uniform(rng, 0.8, 1.0);
    let blur = if unit(rng) < 0.5 { uniform(rng, 0.2, 0.7) } else { 0.0 };

    // Glyph box -> pixels: slant, aspect, rotation, scale, shift (y points down).
    let (sin, cos) = angle.sin_cos();
    let to_px = |[x, y]: [f32; 2]| {
        let x = (x + slant * y) * aspect;
        let (x, y) = (cos * x - sin * y, sin * x + cos * y);
        [cx + height * x, cy + height * y]
    };

    let mut canvas = [0f32; PIXELS];
    let mut poly = Vec::with_capacity(64);
    for s in &strokes {
        tessellate(s, &mut poly);
        for pt in &mut poly {
            *pt = to_px(*pt);
        }
        for seg in poly.windows(2) {
            draw_segment(&mut canvas, seg[0], seg[1], radius, edge);
        }
    }
    if blur > 0.0 {
        blur3(&mut canvas, blur);
    }
    if p.noise > 0.0 {
        for pair in canvas.chunks_exact_mut(2) {
            let (a, b) = normal_pair(rng);
            pair[0] = pair[0] * ink + p.noise * a;
            pair[1] = pair[1] * ink + p.noise * b;
        }
    } else {
        canvas.iter_mut().for_each(|v| *v *= ink);
    }
    for (o, v) in img.iter_mut().zip(canvas) {
        *o = (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
    }
}

/// Paint a segment of half-width `radius` with a soft edge `edge` pixels wide (anti
/// aliasing), keeping the brighter value where strokes meet. Pixel `(r, c)` has its
/// centre at `(c, r)`.
fn draw_segment(canvas: &mut [f32; PIXELS], a: [f32; 2], b: [f32; 2], radius: f32, edge: f32) {
    let reach = radius + edge;
    let lo = |u: f32, v: f32| ((u.min(v) - reach).floor().max(0.0)) as usize;
    let hi = |u: f32, v: f32| ((u.max(v) + reach).ceil().min((SIDE - 1) as f32)).max(-1.0) as isize;
    let (c0, c1, r0, r1) = (lo(a[0], b[0]), hi(a[0], b[0]), lo(a[1], b[1]), hi(a[1], b[1]));
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let inv = if len2 > 1e-12 { 1.0 / len2 } else { 0.0 };
    for r in r0 as isize..=r1 {
        for c in c0 as isize..=c1 {
            let (px, py) = (c as f32 - a[0], r as f32 - a[1]);
            let t = ((px * dx + py * dy) * inv).clamp(0.0, 1.0);
            let (ex, ey) = (px - t * dx, py - t * dy);
            let d = (ex * ex + ey * ey).sqrt();
            let v = ((radius - d) / edge + 0.5).clamp(0.0, 1.0);
            let cell = &mut canvas[r as usize * SIDE + c as usize];
            if v > *cell {
                *cell = v;
            }
        }
    }
}

/// Mix `amount` of a 3x3 binomial blur into the image (edges clamp).
fn blur3(img: &mut [f32; PIXELS], amount: f32) {
    let mut tmp = [0f32; PIXELS];
    let idx = |r: isize, c: isize| {
        r.clamp(0, SIDE as isize - 1) as usize * SIDE + c.clamp(0, SIDE as isize - 1) as usize
    };
    for r in 0..SIDE as isize {
        for c in 0..SIDE as isize {
            tmp[idx(r, c)] = 0.25 * img[idx(r, c - 1)] + 0.5 * img[idx(r, c)] + 0.25 * img[idx(r, c + 1)];
        }
    }
    for r in 0..SIDE as isize {
        for c in 0..SIDE as isize {
            let b = 0.25 * tmp[idx(r - 1, c)] + 0.5 * tmp[idx(r, c)] + 0.25 * tmp[idx(r + 1, c)];
            let i = idx(r, c);
            img[i] = (1.0 - amount) * img[i] + amount * b;
        }
    }
}

/// An image as text, one character per pixel from ` ` (0) to `@` (255), to eyeball.
pub fn ascii(image: &[u8], cols: usize) -> String {
    const RAMP: &[u8] = b" .:-=+*#%@";
    let mut s = String::with_capacity(image.len() + image.len() / cols.max(1));
    for row in image.chunks(cols.max(1)) {
        s.extend(row.iter().map(|&v| RAMP[v as usize * RAMP.len() / 256] as char));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(noise: f32, jitter: f32) -> Params {
        Params { seed: 42, noise, jitter }
    }

    #[test]
    fn same_bytes_for_any_thread_count() {
        let p = params(0.15, 1.0);
        let gen_on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| generate(SplitKind::Train, 500, &p))
        };
        let one = gen_on(1);
        assert_eq!(one, gen_on(3));
        assert_eq!(one, generate(SplitKind::Train, 500, &p));
        let test = generate(SplitKind::Test, 500, &p);
        assert_ne!(test.images, one.images);
        let other_seed = generate(SplitKind::Train, 500, &Params { seed: 43, ..p });
        assert_ne!(other_seed.images, one.images);
    }

    #[test]
    fn classes_are_balanced_and_shuffled() {
        let s = generate(SplitKind::Test, 1003, &params(0.15, 1.0));
        assert_eq!(s.class_counts(10), [101, 101, 101, 100, 100, 100, 100, 100, 100, 100]);
        assert_eq!((s.rows, s.cols, s.images.len()), (28, 28, 1003 * 784));
        assert_ne!(s.labels[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn images_have_ink_inside_the_frame() {
        let s = generate(SplitKind::Train, 2000, &params(0.0, 1.0));
        for i in 0..s.len() {
            let img = s.image(i);
            let ink = img.iter().filter(|&&v| v > 128).count();
            assert!((25..450).contains(&ink), "image {i} (a {}) has {ink} inked pixels", s.labels[i]);
            // Little ink on the border: the digit is not cut off.
            let border: usize =
                (0..28).flat_map(|k| [k, 27 * 28 + k, k * 28, k * 28 + 27]).filter(|&p| img[p] > 128).count();
            assert!(border <= 6, "image {i} touches the border:\n{}", ascii(img, 28));
        }
    }

    #[test]
    fn noise_and_jitter_change_the_images() {
        let plain = generate(SplitKind::Train, 50, &params(0.0, 0.0));
        let noisy = generate(SplitKind::Train, 50, &params(0.3, 0.0));
        let jittered = generate(SplitKind::Train, 50, &params(0.0, 1.0));
        assert_eq!(plain.labels, noisy.labels);
        assert_ne!(plain.images, noisy.images);
        assert_ne!(plain.images, jittered.images);
        // Without noise the background is black.
        assert_eq!(plain.image(0)[0], 0);
        let dark = noisy.images.iter().filter(|&&v| v == 0).count();
        assert!(dark > noisy.images.len() / 4 && dark < noisy.images.len() * 3 / 4);
    }

    #[test]
    fn dataset_checks_settings_and_hashes_them() {
        let cfg = SyntheticDigitsConfig { train_size: 200, test_size: 50, ..Default::default() };
        let d = dataset("syn", &cfg, 7).unwrap();
        assert_eq!((d.kind.as_str(), d.source.as_str(), d.classes), ("synthetic-digits", "generated", 10));
        assert_eq!((d.train.len(), d.test.len()), (200, 50));
        let same = dataset("other-name", &cfg, 7).unwrap();
        assert_eq!(same.content_hash, d.content_hash);
        assert_eq!(same.train, d.train);
        assert_ne!(dataset("syn", &cfg, 8).unwrap().content_hash, d.content_hash);
        let seeded = SyntheticDigitsConfig { seed: Some(7), ..cfg.clone() };
        assert_eq!(dataset("syn", &seeded, 8).unwrap().content_hash, d.content_hash);

        let e =
            dataset("syn", &SyntheticDigitsConfig { noise: -0.1, ..cfg.clone() }, 7).unwrap_err().to_string();
        assert!(e.starts_with("dataset `syn`: noise is -0.1; it must be between 0 and 1"), "{e}");
        assert!(e.contains("\nhint: "), "{e}");
        let e = dataset("syn", &SyntheticDigitsConfig { train_size: 0, ..cfg.clone() }, 7)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("dataset `syn`: train_size is 0"), "{e}");
        assert!(dataset("syn", &SyntheticDigitsConfig { jitter: f64::NAN, ..cfg }, 7).is_err());
    }

    #[test]
    fn default_size_is_fast() {
        let cfg = SyntheticDigitsConfig::default();
        let t = std::time::Instant::now();
        let d = dataset("syn", &cfg, 42).unwrap();
        let took = t.elapsed();
        println!("generated {} + {} images in {took:?}", d.train.len(), d.test.len());
        // Generous: the target is well under a second on two cores, but tests share them.
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }

    /// Four of each digit as text, side by side; `cargo test -p slimbench-data
    /// synthetic::tests::preview -- --nocapture` prints them to look at.
    #[test]
    fn preview() {
        let s = generate(SplitKind::Train, 60, &params(0.15, 1.0));
        let mut text = String::new();
        for label in 0..10u8 {
            let idx: Vec<usize> = (0..s.len()).filter(|&i| s.labels[i] == label as u16).take(4).collect();
            assert_eq!(idx.len(), 4, "digit {label}: 60 balanced images hold 6 of each");
            // Each is a drawn digit, not noise: strokes of bright pixels, and no two alike.
            for &i in &idx {
                let ink = s.image(i).iter().filter(|&&v| v >= 160).count();
                assert!((20..400).contains(&ink), "digit {label}, image {i}: {ink} bright pixels");
            }
            assert!(idx.windows(2).all(|w| s.image(w[0]) != s.image(w[1])), "digit {label}: repeated images");
            let pics: Vec<Vec<String>> =
                idx.iter().map(|&i| ascii(s.image(i), 28).lines().map(str::to_string).collect()).collect();
            text.push_str(&format!("digit {label}:\n"));
            for row in 0..28 {
                let line: Vec<&str> = pics.iter().map(|p| p[row].as_str()).collect();
                text.push_str(&format!("|{}|\n", line.join("|")));
            }
        }
        assert_eq!(text.lines().count(), 10 * 29);
        assert!(text.lines().filter(|l| l.starts_with('|')).all(|l| l.chars().count() == 4 * 28 + 5));
        println!("{text}");
    }
}
