//! [`DataError`]: everything that can go wrong while loading a dataset.
//!
//! Messages are sentences that name the dataset and the file, directory or URL, and end
//! with a `hint:` line. The underlying error is part of the sentence rather than a
//! `source()`, so printing the whole chain does not repeat it.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::fetch::FetchError;
use crate::idx::IdxError;

/// A directory searched for a dataset's files, and why it was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Searched {
    /// The directory.
    pub dir: PathBuf,
    /// Why it was passed over ("does not exist", "lacks t10k-labels-idx1-ubyte(.gz)").
    pub why: String,
}

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The files are nowhere to be found and were not downloaded.
    #[error(
        "could not find the {} files of dataset `{dataset}`, and {no_download}{}\nhint: {hint}",
        display_name(.kind), list_searched(.searched)
    )]
    NotFound {
        /// The dataset's name.
        dataset: String,
        /// The dataset kind (`mnist`, `fashion-mnist`, `cifar10`, `cifar100`).
        kind: &'static str,
        /// Every directory searched.
        searched: Vec<Searched>,
        /// Why nothing was downloaded.
        no_download: String,
        /// How to fix it.
        hint: String,
    },
    /// The files are not on disk and every mirror failed for one of them.
    #[error(
        "could not find or download the {} files of dataset `{dataset}`{}\n  \
         downloading {} failed:{}\n\
         hint: check the network connection (and the dataset's `mirrors:`), or {}",
        display_name(.kind), list_searched(.searched), file_into_dir(.dest), list_attempts(.attempts),
        by_hand(.kind)
    )]
    DownloadFailed {
        /// The dataset's name.
        dataset: String,
        /// The dataset kind (`mnist`, `fashion-mnist`, `cifar10`, `cifar100`).
        kind: &'static str,
        /// Every directory searched.
        searched: Vec<Searched>,
        /// Where the file that could not be downloaded was to be saved
        /// (`<cache>/datasets/mnist/train-images-idx3-ubyte.gz`).
        dest: PathBuf,
        /// Each URL tried, with its failure.
        attempts: Vec<(String, FetchError)>,
    },
    /// A file exists but could not be read.
    #[error(
        "dataset `{dataset}`: could not read {}: {error}\nhint: check that the file is readable",
        .path.display()
    )]
    Read {
        /// The dataset's name.
        dataset: String,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file is not the IDX file it should be.
    #[error(
        "dataset `{dataset}`: {} is not a valid IDX file: {error}\nhint: replace it with an intact copy; \
         if it is in slimbench's cache, delete it and it will be downloaded again",
        .path.display()
    )]
    InvalidFile {
        /// The dataset's name.
        dataset: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: IdxError,
    },
    /// The files are valid one by one but do not fit together (image and label counts,
    /// image sizes, label range).
    #[error("dataset `{dataset}`: {message}\nhint: {hint}")]
    Inconsistent {
        /// The dataset's name.
        dataset: String,
        /// What does not fit, naming the files.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// A file or directory is not what the dataset kind expects (a CIFAR batch of the
    /// wrong length, an image that does not decode, a class folder without images).
    #[error("dataset `{dataset}`: {}: {message}\nhint: {hint}", .path.display())]
    BadData {
        /// The dataset's name.
        dataset: String,
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// The dataset's settings cannot be used.
    #[error("dataset `{dataset}`: {message}\nhint: {hint}")]
    InvalidConfig {
        /// The dataset's name.
        dataset: String,
        /// What is wrong, naming the setting.
        message: String,
        /// How to fix it.
        hint: String,
    },
}

/// "MNIST" for `mnist`.
pub(crate) fn display_name(kind: &str) -> &str {
    match kind {
        "mnist" => "MNIST",
        "fashion-mnist" => "Fashion-MNIST",
        "cifar10" => "CIFAR-10",
        "cifar100" => "CIFAR-100",
        other => other,
    }
}

/// How to provide a kind's files without slimbench's download.
fn by_hand(kind: &str) -> String {
    match kind {
        "cifar10" => {
            "download cifar-10-binary.tar.gz yourself (from https://www.cs.toronto.edu/~kriz/) into \
                      DIR/cifar-10/ and pass --data-dir DIR or set SLIMBENCH_DATA_DIR"
                .to_string()
        }
        "cifar100" => {
            "download cifar-100-binary.tar.gz yourself (from https://www.cs.toronto.edu/~kriz/) into \
                       DIR/cifar-100/ and pass --data-dir DIR or set SLIMBENCH_DATA_DIR"
                .to_string()
        }
        _ => format!(
            "download the four files yourself into DIR/{kind}/ and pass --data-dir DIR or set SLIMBENCH_DATA_DIR"
        ),
    }
}

/// "f.gz into /cache/datasets/mnist".
fn file_into_dir(dest: &std::path::Path) -> String {
    match (dest.file_name(), dest.parent()) {
        (Some(f), Some(d)) => format!("{} into {}", f.to_string_lossy(), d.display()),
        _ => dest.display().to_string(),
    }
}

fn list_searched(searched: &[Searched]) -> String {
    let mut s = String::new();
    for x in searched {
        let _ = write!(s, "\n  searched {}: {}", x.dir.display(), x.why);
    }
    s
}

fn list_attempts(attempts: &[(String, FetchError)]) -> String {
    let mut s = String::new();
    for (url, e) in attempts {
        let _ = write!(s, "\n    {url}: {e}");
    }
    if attempts.is_empty() {
        s.push_str(" no mirror is configured");
    }
    s
}
