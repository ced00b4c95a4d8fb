//! Bytes to model input: [`pixels_f32`] is the one place pixels become `f32`, for the
//! loader and for every caller outside the crate, so training and evaluation can never
//! disagree on the scaling.
//!
//! Without a [`Normalize`] a pixel `x` becomes `x / 255` computed in `f32`, the value
//! slimbench has always fed its models; with one, `(x / 255 - mean[c]) / std[c]` for
//! channel `c`, as torchvision's `ToTensor` then `Normalize` give.

use std::ops::Range;

use slimbench_core::hash;

use crate::{DataError, Dataset, Split};

/// Per-channel normalisation of pixels scaled to `[0, 1]`: `(x - mean[c]) / std[c]`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Normalize {
    /// One mean per channel.
    pub mean: Vec<f32>,
    /// One standard deviation per channel, each positive.
    pub std: Vec<f32>,
}

/// For each channel, the `f32` every byte value becomes. A table, so normalising costs
/// a lookup per pixel and each value is computed exactly as the formula says.
pub(crate) struct Lut(Vec<[f32; 256]>);

impl Lut {
    /// The table for `channels` channels under `norm` (`x / 255` without one).
    ///
    /// # Panics
    ///
    /// When `norm` has fewer values than `channels` (datasets are checked at load time).
    pub(crate) fn new(channels: usize, norm: Option<&Normalize>) -> Lut {
        let channels = channels.max(1);
        Lut((0..channels)
            .map(|c| {
                let mut t = [0f32; 256];
                for (x, v) in t.iter_mut().enumerate() {
                    let scaled = x as f32 / 255.0;
                    *v = match norm {
                        None => scaled,
                        Some(n) => {
                            assert!(
                                n.mean.len() >= channels && n.std.len() >= channels,
                                "normalisation has {} means and {} stds for {channels} channels",
                                n.mean.len(),
                                n.std.len()
                            );
                            (scaled - n.mean[c]) / n.std[c]
                        }
                    };
                }
                t
            })
            .collect())
    }

    /// Append the values of one channel-planar image of `plane` pixels per channel.
    pub(crate) fn extend(&self, image: &[u8], plane: usize, out: &mut Vec<f32>) {
        for (c, chan) in image.chunks(plane.max(1)).enumerate() {
            let t = &self.0[c.min(self.0.len() - 1)];
            out.extend(chan.iter().map(|&p| t[p as usize]));
        }
    }
}

/// Images `range` of `split` as model input: `range.len() * split.image_len()` values,
/// image after image, channel-planar like the bytes, each `x / 255` then, with `norm`,
/// `(x / 255 - mean[c]) / std[c]`.
///
/// Without `norm` the values are bit-identical to `x as f32 / 255.0`.
///
/// # Panics
///
/// When `range` reaches past the split, or `norm` has fewer values than the split has
/// channels ([`crate::load`] checks the dataset's own normalisation).
pub fn pixels_f32(split: &Split, range: Range<usize>, norm: Option<&Normalize>) -> Vec<f32> {
    let len = split.image_len();
    let bytes = &split.images[range.start * len..range.end * len];
    let lut = Lut::new(split.channels, norm);
    let mut out = Vec::with_capacity(bytes.len());
    for image in bytes.chunks(len.max(1)) {
        lut.extend(image, split.rows * split.cols, &mut out);
    }
    out
}

/// Check the config's `mean:`/`std:` against the dataset's channels and store them in
/// `ds.normalize`, folding them into the content hash (a dataset without them keeps
/// the hash it always had).
pub(crate) fn apply(ds: &mut Dataset, mean: Option<&[f64]>, std: Option<&[f64]>) -> Result<(), DataError> {
    if mean.is_none() && std.is_none() {
        return Ok(());
    }
    let channels = ds.channels();
    let bad =
        |message: String, hint: String| DataError::InvalidConfig { dataset: ds.name.clone(), message, hint };
    let kind = format!("the images have {channels} channel{}", if channels == 1 { "" } else { "s" });
    for (field, values) in [("mean", mean), ("std", std)] {
        let Some(v) = values else { continue };
        if v.len() != channels {
            return Err(bad(
                format!("{field} has {} value{} but {kind}", v.len(), if v.len() == 1 { "" } else { "s" }),
                format!("give one {field} value per channel, e.g. {field}: {}", example(field, channels)),
            ));
        }
        if let Some((c, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(bad(
                format!("{field}[{c}] is {x}; it must be a finite number"),
                format!("e.g. {field}: {}", example(field, channels)),
            ));
        }
    }
    if let Some((c, x)) = std.into_iter().flatten().enumerate().find(|(_, x)| **x <= 0.0) {
        return Err(bad(
            format!("std[{c}] is {x}; every std must be greater than 0"),
            format!(
                "std divides the pixels: use the channel's standard deviation, e.g. std: {}",
                example("std", channels)
            ),
        ));
    }
    let norm = Normalize {
        mean: mean.map_or_else(|| vec![0.0; channels], |m| m.iter().map(|&x| x as f32).collect()),
        std: std.map_or_else(|| vec![1.0; channels], |s| s.iter().map(|&x| x as f32).collect()),
    };
    #[derive(serde::Serialize)]
    struct Key<'a> {
        content: &'a str,
        normalize: &'a Normalize,
    }
    ds.content_hash = hash::json(&Key { content: &ds.content_hash, normalize: &norm });
    for split in [&mut ds.train, &mut ds.test] {
        std::sync::Arc::make_mut(split).normalize = Some(norm.clone());
    }
    ds.normalize = Some(norm);
    Ok(())
}

// Means and stds are checked finite at load, so equality is an equivalence.
impl Eq for Normalize {}

/// A plausible value list for messages.
fn example(field: &str, channels: usize) -> String {
    match (field, channels) {
        ("mean", 3) => "[0.4914, 0.4822, 0.4465]".to_string(),
        ("std", 3) => "[0.2470, 0.2435, 0.2616]".to_string(),
        ("mean", 1) => "[0.1307]".to_string(),
        ("std", 1) => "[0.3081]".to_string(),
        (_, n) => format!("[{}]", vec!["0.5"; n].join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn rgb(n: usize) -> Split {
        // 2x2 RGB images; pixel values 0, 51, 102, ... so the scaled values are exact-ish.
        let images = (0..n * 12).map(|i| (i * 51 % 256) as u8).collect();
        Split { images, labels: vec![0; n], channels: 3, rows: 2, cols: 2, normalize: None }
    }

    #[test]
    fn without_normalisation_the_values_are_x_over_255_exactly() {
        let s = rgb(3);
        let v = pixels_f32(&s, 1..3, None);
        assert_eq!(v.len(), 24);
        for (got, &x) in v.iter().zip(&s.images[12..]) {
            assert_eq!(got.to_bits(), (x as f32 / 255.0).to_bits());
        }
        assert!(pixels_f32(&s, 2..2, None).is_empty());
    }

    #[test]
    fn normalisation_is_per_channel() {
        let s = Split {
            images: vec![0, 255, 51, 102, 255, 255, 0, 0, 0, 0, 0, 0],
            labels: vec![1],
            channels: 3,
            rows: 1,
            cols: 2,
            normalize: None,
        };
        let n = Normalize { mean: vec![0.5, 0.0, 1.0], std: vec![0.5, 0.2, 2.0] };
        let v = pixels_f32(&s, 0..1, Some(&n));
        let want = [-1.0, 1.0, 1.0, 2.0, 0.0, 0.0];
        for (i, (a, b)) in v.iter().zip(want).enumerate() {
            assert!((a - b).abs() < 1e-6, "value {i}: {a} vs {b}");
        }
        assert_eq!(v[0], (0.0f32 / 255.0 - 0.5) / 0.5);
    }

    fn ds(channels: usize) -> Dataset {
        let split = Arc::new(Split { channels, rows: 1, cols: 1, ..Default::default() });
        Dataset {
            name: "d".into(),
            kind: "k".into(),
            train: split.clone(),
            test: split,
            classes: 2,
            class_names: vec!["a".into(), "b".into()],
            normalize: None,
            source: "generated".into(),
            content_hash: "h".into(),
            notes: vec![],
        }
    }

    #[test]
    fn config_values_are_checked_and_hashed() {
        let mut d = ds(3);
        apply(&mut d, None, None).unwrap();
        assert_eq!((d.normalize.as_ref(), d.content_hash.as_str()), (None, "h"));

        apply(&mut d, Some(&[0.5, 0.4, 0.3]), None).unwrap();
        assert_eq!(d.normalize, Some(Normalize { mean: vec![0.5, 0.4, 0.3], std: vec![1.0; 3] }));
        assert_ne!(d.content_hash, "h");
        let mut other = ds(3);
        apply(&mut other, Some(&[0.5, 0.4, 0.3]), Some(&[1.0, 1.0, 2.0])).unwrap();
        assert_ne!(other.content_hash, d.content_hash);

        let e = apply(&mut ds(3), Some(&[0.5]), None).unwrap_err().to_string();
        assert_eq!(
            e,
            "dataset `d`: mean has 1 value but the images have 3 channels\n\
             hint: give one mean value per channel, e.g. mean: [0.4914, 0.4822, 0.4465]"
        );
        let e = apply(&mut ds(1), None, Some(&[0.0])).unwrap_err().to_string();
        assert!(e.starts_with("dataset `d`: std[0] is 0; every std must be greater than 0\nhint: "), "{e}");
        let e = apply(&mut ds(1), Some(&[f64::NAN]), None).unwrap_err().to_string();
        assert!(e.starts_with("dataset `d`: mean[0] is NaN; it must be a finite number"), "{e}");
        let e = apply(&mut ds(2), None, Some(&[1.0, -1.0])).unwrap_err().to_string();
        assert!(e.contains("std[1] is -1"), "{e}");
    }
}
