//! IDX files, the format of MNIST and Fashion-MNIST, gzipped or raw.
//!
//! An IDX file is a big-endian header — two zero bytes, a type byte, the number of
//! dimensions, then each dimension as a `u32` — followed by the values. slimbench reads
//! two shapes of it: images (magic `0x00000803`: unsigned bytes, `n x rows x cols`) and
//! labels (magic `0x00000801`: unsigned bytes, `n`). Gzip is recognised by its magic
//! bytes, whatever the file is called.
//!
//! [`parse_images`] and [`parse_labels`] check a file's bytes; [`read_images`] and
//! [`read_labels`] read a path and name it in their [`IdxFileError`].
//! [`encode_images`] and [`encode_labels`] write the raw format.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// Magic number of an image file: unsigned bytes, 3 dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of a label file: unsigned bytes, 1 dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Largest accepted image side: far above any real IDX image set, small enough to catch
/// a header that is really something else.
pub const MAX_SIDE: usize = 4096;
/// Largest accepted payload (2 GiB), so a damaged header cannot ask for all the memory.
pub const MAX_PAYLOAD: u64 = 2 << 30;

/// Bytes that begin every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What is wrong with an IDX file's content.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The gzip stream could not be decompressed.
    #[error("the gzip data is corrupt or cut short ({0})")]
    Gzip(std::io::Error),
    /// Fewer bytes than a header needs.
    #[error("it is too short for an IDX header: {found} bytes, need {needed}")]
    ShortHeader {
        /// Header bytes needed.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// The first two bytes are not zero.
    #[error(
        "it does not start like an IDX file: its first bytes are {}, an IDX file starts with 00 00",
        hex(.0)
    )]
    NotIdx([u8; 4]),
    /// A valid IDX header, but not the type or number of dimensions wanted.
    #[error("expected {expected} but found magic 0x{magic:08x} ({})", describe_magic(*.magic))]
    WrongKind {
        /// What was wanted, with its magic.
        expected: &'static str,
        /// The magic number found.
        magic: u32,
    },
    /// A dimension is zero or out of range.
    #[error("its dimensions {dims:?} are not plausible: {why}")]
    BadDims {
        /// The dimensions from the header.
        dims: Vec<u32>,
        /// What is wrong with them.
        why: &'static str,
    },
    /// The data ends before the header's product of dimensions.
    #[error("it is truncated: the header {dims:?} promises {expected} bytes of data, found {found}")]
    Truncated {
        /// The dimensions from the header.
        dims: Vec<u32>,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present after the header.
        found: u64,
    },
    /// Bytes follow the data the header promises.
    #[error("it has trailing bytes: the header {dims:?} promises {expected} bytes of data, found {found}")]
    Trailing {
        /// The dimensions from the header.
        dims: Vec<u32>,
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present after the header (counting stops a little past `expected`
        /// plus 1 GiB, so a huge file is not read to its end).
        found: u64,
    },
}

/// An [`IdxError`] or a read failure, with the path of the file.
#[derive(Debug, thiserror::Error)]
pub enum IdxFileError {
    /// The file could not be read.
    #[error("could not read {}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file's content is not what was expected.
    #[error("{} is not a valid IDX file: {error}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: IdxError,
    },
}

/// Images decoded from an IDX image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// `n * rows * cols` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

/// Whether `bytes` start like a gzip stream.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Decode an image file's bytes (gzipped or raw).
pub fn parse_images(bytes: &[u8]) -> Result<Images, IdxError> {
    let (dims, pixels) = parse(bytes, IMAGES_MAGIC)?;
    let [n, rows, cols] = [dims[0], dims[1], dims[2]].map(|d| d as usize);
    Ok(Images { pixels, n, rows, cols })
}

/// Decode a label file's bytes (gzipped or raw).
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>, IdxError> {
    Ok(parse(bytes, LABELS_MAGIC)?.1)
}

/// Read and decode an image file.
pub fn read_images(path: &Path) -> Result<Images, IdxFileError> {
    let bytes = read_file(path)?;
    parse_images(&bytes).map_err(|error| IdxFileError::Invalid { path: path.to_path_buf(), error })
}

/// Read and decode a label file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxFileError> {
    let bytes = read_file(path)?;
    parse_labels(&bytes).map_err(|error| IdxFileError::Invalid { path: path.to_path_buf(), error })
}

fn read_file(path: &Path) -> Result<Vec<u8>, IdxFileError> {
    std::fs::read(path).map_err(|error| IdxFileError::Read { path: path.to_path_buf(), error })
}

/// The first label that is not below `classes`, as `(index, label)`.
pub fn first_bad_label(labels: &[u8], classes: usize) -> Option<(usize, u8)> {
    labels.iter().enumerate().find(|(_, l)| **l as usize >= classes).map(|(i, l)| (i, *l))
}

/// The raw IDX bytes of `n` images of `rows x cols` (`pixels.len()` must be
/// `n * rows * cols`).
pub fn encode_images(pixels: &[u8], n: usize, rows: usize, cols: usize) -> Vec<u8> {
    debug_assert_eq!(pixels.len(), n * rows * cols);
    encode(IMAGES_MAGIC, &[n, rows, cols], pixels)
}

/// The raw IDX bytes of a label file.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    encode(LABELS_MAGIC, &[labels.len()], labels)
}

fn encode(magic: u32, dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&magic.to_be_bytes());
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Check the header against `magic` and return the dimensions and the data.
fn parse(bytes: &[u8], magic: u32) -> Result<(Vec<u32>, Vec<u8>), IdxError> {
    if is_gzip(bytes) {
        // Multi-member, as `cat a.gz b.gz` and some compressors produce such files.
        let mut decoder = MultiGzDecoder::new(bytes);
        // Deflate expands at most about 1032:1: a bound on what a header may reserve.
        let bound = (bytes.len() as u64).saturating_mul(1032);
        parse_stream(&mut decoder, magic, bound).map_err(|e| match e {
            StreamError::Io(io) => IdxError::Gzip(io),
            StreamError::Idx(idx) => idx,
        })
    } else {
        let mut reader = bytes;
        parse_stream(&mut reader, magic, bytes.len() as u64).map_err(|e| match e {
            StreamError::Idx(idx) => idx,
            // Reading a slice cannot fail.
            StreamError::Io(io) => IdxError::Gzip(io),
        })
    }
}

enum StreamError {
    Io(std::io::Error),
    Idx(IdxError),
}

impl From<IdxError> for StreamError {
    fn from(e: IdxError) -> Self {
        StreamError::Idx(e)
    }
}

/// Parse from `r`; `bound` caps the memory reserved up front, so a damaged header in a
/// small file cannot reserve gigabytes.
fn parse_stream(r: &mut impl Read, magic: u32, bound: u64) -> Result<(Vec<u32>, Vec<u8>), StreamError> {
    let mut head = [0u8; 4];
    let got = read_full(r, &mut head).map_err(StreamError::Io)?;
    if got < 4 {
        return Err(IdxError::ShortHeader { needed: 4, found: got }.into());
    }
    if head[0] != 0 || head[1] != 0 {
        return Err(IdxError::NotIdx(head).into());
    }
    let found = u32::from_be_bytes(head);
    if found != magic {
        return Err(IdxError::WrongKind { expected: describe_wanted(magic), magic: found }.into());
    }
    let ndim = head[3] as usize;
    let mut raw = vec![0u8; 4 * ndim];
    let got = read_full(r, &mut raw).map_err(StreamError::Io)?;
    if got < raw.len() {
        return Err(IdxError::ShortHeader { needed: 4 + raw.len(), found: 4 + got }.into());
    }
    let dims: Vec<u32> = raw.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
    let expected = check_dims(&dims)?;

    // Read exactly what the header promises, then look for anything after it. Reading on
    // to the end of a gzip stream is also what makes the decoder check its CRC.
    let mut data = Vec::with_capacity(expected.min(bound) as usize);
    r.by_ref().take(expected).read_to_end(&mut data).map_err(StreamError::Io)?;
    if (data.len() as u64) < expected {
        return Err(IdxError::Truncated { dims, expected, found: data.len() as u64 }.into());
    }
    let extra =
        std::io::copy(&mut r.by_ref().take(1 << 30), &mut std::io::sink()).map_err(StreamError::Io)?;
    if extra > 0 {
        return Err(IdxError::Trailing { dims, expected, found: expected + extra }.into());
    }
    Ok((dims, data))
}

/// Check plausibility; return the payload size.
fn check_dims(dims: &[u32]) -> Result<u64, IdxError> {
    let bad = |why| Err(IdxError::BadDims { dims: dims.to_vec(), why });
    if dims.contains(&0) {
        return bad("a dimension is zero");
    }
    if dims.len() == 3 && dims[1..].iter().any(|&d| d as usize > MAX_SIDE) {
        return bad("an image side is larger than 4096 pixels");
    }
    let total = dims.iter().map(|&d| d as u64).product::<u64>();
    if total > MAX_PAYLOAD {
        return bad("the data would be larger than 2 GiB");
    }
    Ok(total)
}

/// `read` until `buf` is full or the stream ends; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn describe_wanted(magic: u32) -> &'static str {
    match magic {
        IMAGES_MAGIC => "an IDX image file (magic 0x00000803: unsigned bytes, 3 dimensions)",
        _ => "an IDX label file (magic 0x00000801: unsigned bytes, 1 dimension)",
    }
}

/// "unsigned bytes, 3 dimensions" for a magic number.
fn describe_magic(magic: u32) -> String {
    let [_, _, dtype, ndim] = magic.to_be_bytes();
    let ty = match dtype {
        0x08 => "unsigned bytes".to_string(),
        0x09 => "signed bytes".to_string(),
        0x0b => "16-bit integers".to_string(),
        0x0c => "32-bit integers".to_string(),
        0x0d => "32-bit floats".to_string(),
        0x0e => "64-bit floats".to_string(),
        other => format!("unknown value type 0x{other:02x}"),
    };
    let s = if ndim == 1 { "" } else { "s" };
    format!("{ty}, {ndim} dimension{s}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// Gzip `bytes` (for tests in this crate).
    pub(crate) fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn sample_images() -> Vec<u8> {
        encode_images(&(0..24).collect::<Vec<u8>>(), 2, 3, 4)
    }

    #[test]
    fn images_raw_and_gzipped() {
        let raw = sample_images();
        for bytes in [raw.clone(), gz(&raw)] {
            let im = parse_images(&bytes).unwrap();
            assert_eq!((im.n, im.rows, im.cols), (2, 3, 4));
            assert_eq!(im.pixels, (0..24).collect::<Vec<u8>>());
        }
    }

    #[test]
    fn labels_raw_and_gzipped() {
        let raw = encode_labels(&[3, 1, 4, 1, 5]);
        assert_eq!(parse_labels(&raw).unwrap(), vec![3, 1, 4, 1, 5]);
        assert_eq!(parse_labels(&gz(&raw)).unwrap(), vec![3, 1, 4, 1, 5]);
        assert_eq!(first_bad_label(&[3, 1, 4], 10), None);
        assert_eq!(first_bad_label(&[3, 11, 4, 12], 10), Some((1, 11)));
    }

    #[test]
    fn gzip_is_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        // A gzipped file without .gz, and a raw one with it.
        let a = dir.path().join("train-images-idx3-ubyte");
        let b = dir.path().join("t10k-images-idx3-ubyte.gz");
        std::fs::write(&a, gz(&sample_images())).unwrap();
        std::fs::write(&b, sample_images()).unwrap();
        assert_eq!(read_images(&a).unwrap().n, 2);
        assert_eq!(read_images(&b).unwrap().n, 2);
    }

    #[test]
    fn bad_magic_says_what_was_found() {
        // Labels where images are expected.
        let e = parse_images(&encode_labels(&[1, 2])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected an IDX image file (magic 0x00000803: unsigned bytes, 3 dimensions) \
             but found magic 0x00000801 (unsigned bytes, 1 dimension)"
        );
        // float32 images.
        let mut f = sample_images();
        f[2] = 0x0d;
        let e = parse_images(&f).unwrap_err().to_string();
        assert!(e.ends_with("found magic 0x00000d03 (32-bit floats, 3 dimensions)"), "{e}");
        // Not IDX at all.
        let e = parse_labels(b"PK\x03\x04 a zip file").unwrap_err().to_string();
        assert!(e.contains("its first bytes are 50 4b 03 04"), "{e}");
        let e = parse_labels(b"\0\0").unwrap_err().to_string();
        assert_eq!(e, "it is too short for an IDX header: 2 bytes, need 4");
        let e = parse_images(&IMAGES_MAGIC.to_be_bytes()).unwrap_err().to_string();
        assert_eq!(e, "it is too short for an IDX header: 4 bytes, need 16");
    }

    #[test]
    fn implausible_dims() {
        let e = parse_images(&encode(IMAGES_MAGIC, &[0, 28, 28], &[])).unwrap_err().to_string();
        assert!(e.contains("[0, 28, 28]") && e.contains("a dimension is zero"), "{e}");
        let e = parse_images(&encode(IMAGES_MAGIC, &[1, 5000, 2], &[])).unwrap_err().to_string();
        assert!(e.contains("larger than 4096"), "{e}");
        let e = parse_images(&encode(IMAGES_MAGIC, &[u32::MAX as usize, 4096, 4096], &[])).unwrap_err();
        assert!(e.to_string().contains("larger than 2 GiB"), "{e}");
    }

    #[test]
    fn truncated_payload() {
        let mut raw = sample_images();
        raw.truncate(raw.len() - 5);
        for bytes in [raw.clone(), gz(&raw)] {
            let e = parse_images(&bytes).unwrap_err();
            assert_eq!(
                e.to_string(),
                "it is truncated: the header [2, 3, 4] promises 24 bytes of data, found 19"
            );
        }
    }

    #[test]
    fn trailing_bytes() {
        let mut raw = encode_labels(&[1, 2, 3]);
        raw.extend_from_slice(b"junk");
        for bytes in [raw.clone(), gz(&raw)] {
            let e = parse_labels(&bytes).unwrap_err();
            assert_eq!(
                e.to_string(),
                "it has trailing bytes: the header [3] promises 3 bytes of data, found 7"
            );
        }
    }

    #[test]
    fn corrupt_gzip() {
        let good = gz(&sample_images());
        // Flip bytes in the middle of the deflate stream.
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        for b in &mut bad[mid..mid + 4] {
            *b ^= 0xa5;
        }
        let e = parse_images(&bad).unwrap_err();
        assert!(matches!(e, IdxError::Gzip(_) | IdxError::Truncated { .. }), "{e:?}");
        // A gzip stream cut in half.
        let e = parse_images(&good[..good.len() / 2]).unwrap_err();
        assert!(matches!(e, IdxError::Gzip(_) | IdxError::Truncated { .. }), "{e:?}");
        // A wrong CRC in the trailer: only the checksum can tell.
        let mut crc = good.clone();
        let n = crc.len();
        crc[n - 8] ^= 0xff;
        let e = parse_images(&crc).unwrap_err();
        assert!(matches!(e, IdxError::Gzip(_)), "{e:?}");
        assert!(e.to_string().starts_with("the gzip data is corrupt or cut short"), "{e}");
    }

    #[test]
    fn file_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train-labels-idx1-ubyte.gz");
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("could not read {}: ", p.display())), "{e}");
        std::fs::write(&p, b"garbage!").unwrap();
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{} is not a valid IDX file: ", p.display())), "{e}");
    }
}
