//! Downloading dataset files from mirrors, MD5-verified.
//!
//! [`download_verified`] streams one URL into a temporary file beside its destination,
//! hashing as it goes, and renames it into place only when the MD5 matches, so the
//! cache never holds a partial or wrong file. [`fetch_file`] tries a list of mirrors in
//! order. The canonical mirrors and checksums are [`MNIST`] and [`FASHION_MNIST`].

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};
use slimbench_core::fsutil;

/// A file of a dataset release and the MD5 of its published `.gz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name without `.gz` (`train-images-idx3-ubyte`).
    pub name: &'static str,
    /// Lower-case hex MD5 of `<name>.gz` as published.
    pub md5: &'static str,
}

/// Where a dataset kind is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Base URLs, tried in order; a file's URL is `<base><name>.gz`.
    pub mirrors: &'static [&'static str],
    /// Training images, training labels, test images, test labels.
    pub files: [RemoteFile; 4],
}

/// MNIST: the PyTorch mirror, then Google's.
pub const MNIST: Release = Release {
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    files: [
        RemoteFile { name: "train-images-idx3-ubyte", md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873" },
        RemoteFile { name: "train-labels-idx1-ubyte", md5: "d53e105ee54ea40749a09fcbcd1e9432" },
        RemoteFile { name: "t10k-images-idx3-ubyte", md5: "9fb629c4189551a2d022fa330f9573f3" },
        RemoteFile { name: "t10k-labels-idx1-ubyte", md5: "ec29112dd5afa0611ce80d1b7f02629c" },
    ],
};

/// Fashion-MNIST: Zalando's bucket.
pub const FASHION_MNIST: Release = Release {
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    files: [
        RemoteFile { name: "train-images-idx3-ubyte", md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d" },
        RemoteFile { name: "train-labels-idx1-ubyte", md5: "25c81989df183df01b3e8a0aad5dffbe" },
        RemoteFile { name: "t10k-images-idx3-ubyte", md5: "bef4ecab320f06d8554ea6380940ec79" },
        RemoteFile { name: "t10k-labels-idx1-ubyte", md5: "bb300cfdad3c16e7a12a480ee83cd310" },
    ],
};

/// Network settings of a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Longest wait for a connection; short, so a dead mirror is skipped quickly.
    pub connect_timeout: Duration,
    /// Longest wait for the response headers once connected.
    pub response_timeout: Duration,
    /// Longest time for one whole file, connection to last byte.
    pub timeout: Duration,
    /// Largest accepted response body.
    pub max_bytes: u64,
    /// Use the proxy named by `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (honouring `NO_PROXY`).
    pub proxy_from_env: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(600),
            max_bytes: 256 << 20,
            proxy_from_env: true,
        }
    }
}

/// Why one download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request or the transfer failed.
    #[error("{0}")]
    Network(String),
    /// The file arrived but is not the published one.
    #[error("checksum mismatch for {file}: expected MD5 {expected}, got {actual}")]
    Checksum {
        /// File name.
        file: String,
        /// The published MD5.
        expected: String,
        /// The MD5 of what arrived.
        actual: String,
    },
    /// The file could not be saved.
    #[error("{0}")]
    Save(fsutil::FsError),
}

/// `<base><file>`, with a `/` between them when `base` lacks one.
pub fn url_for(base: &str, file: &str) -> String {
    if base.ends_with('/') { format!("{base}{file}") } else { format!("{base}/{file}") }
}

/// Lower-case hex MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Download `url` to `dest` if its MD5 is `expected_md5`; the number of bytes written.
/// On any failure `dest` is left as it was.
pub fn download_verified(
    url: &str,
    dest: &Path,
    expected_md5: &str,
    opts: &FetchOptions,
) -> Result<u64, FetchError> {
    let file = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut config = ureq::Agent::config_builder()
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.response_timeout))
        .timeout_global(Some(opts.timeout))
        .user_agent(concat!("slimbench/", env!("CARGO_PKG_VERSION")));
    if !opts.proxy_from_env {
        config = config.proxy(None);
    }
    let agent = ureq::Agent::new_with_config(config.build());
    let mut response = agent.get(url).call().map_err(|e| FetchError::Network(describe(&e)))?;
    let mut body = response.body_mut().with_config().limit(opts.max_bytes).reader();

    let mut hasher = Md5::new();
    let mut written = 0u64;
    // What went wrong inside the writer closure, which can only return an io::Error.
    let mut failure: Option<FetchError> = None;
    let saved = fsutil::atomic_write_with(dest, |f| {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failure = Some(FetchError::Network(format!("the transfer failed: {e}")));
                    return Err(e);
                }
            };
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n])?;
            written += n as u64;
        }
        let actual = hex(&hasher.finalize_reset());
        if !actual.eq_ignore_ascii_case(expected_md5) {
            failure = Some(FetchError::Checksum {
                file: file.clone(),
                expected: expected_md5.to_ascii_lowercase(),
                actual,
            });
            return Err(std::io::Error::other("checksum mismatch"));
        }
        Ok(())
    });
    match (saved, failure) {
        (Ok(()), _) => Ok(written),
        (Err(_), Some(f)) => Err(f),
        (Err(e), None) => Err(FetchError::Save(e)),
    }
}

/// Download `<mirror><name>.gz` into `dir`, trying each mirror in turn until one
/// delivers the file with MD5 `md5`; the saved path, or every URL tried with its failure.
pub fn fetch_file(
    mirrors: &[String],
    name: &str,
    md5: &str,
    dir: &Path,
    opts: &FetchOptions,
) -> Result<PathBuf, Vec<(String, FetchError)>> {
    let file = format!("{name}.gz");
    let dest = dir.join(&file);
    let mut attempts = Vec::new();
    for base in mirrors {
        let url = url_for(base, &file);
        match download_verified(&url, &dest, md5, opts) {
            Ok(_) => return Ok(dest),
            Err(e) => attempts.push((url, e)),
        }
    }
    Err(attempts)
}

/// A short sentence for a ureq error.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
        ureq::Error::HostNotFound => "the host name could not be resolved".to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("the connection failed: {io}"),
        ureq::Error::ConnectionFailed => "the connection failed".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::io::BufRead;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A minimal HTTP/1.1 server on 127.0.0.1 serving fixed files; stops when dropped.
    pub(crate) struct TestServer {
        pub(crate) base: String,
        pub(crate) hits: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        addr: std::net::SocketAddr,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl TestServer {
        /// Serve `files` (path without the leading `/` -> body); anything else is a 404.
        pub(crate) fn start(files: HashMap<String, Vec<u8>>) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let hits = Arc::new(AtomicUsize::new(0));
            let (stop2, hits2) = (stop.clone(), hits.clone());
            let thread = std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(s) = stream {
                        hits2.fetch_add(1, Ordering::SeqCst);
                        let _ = serve(s, &files);
                    }
                }
            });
            TestServer { base: format!("http://{addr}/"), hits, stop, addr, thread: Some(thread) }
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wake the accept loop so it sees the flag.
            let _ = TcpStream::connect(self.addr);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn serve(stream: TcpStream, files: &HashMap<String, Vec<u8>>) -> std::io::Result<()> {
        let mut reader = std::io::BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/');
        let mut out = stream;
        match files.get(path) {
            Some(body) => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                out.write_all(body)?;
            }
            None => {
                out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?
            }
        }
        out.flush()
    }

    pub(crate) fn local_opts() -> FetchOptions {
        FetchOptions {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
            proxy_from_env: false,
            ..FetchOptions::default()
        }
    }

    #[test]
    fn url_joining_and_md5() {
        assert_eq!(url_for("http://h/a/", "f.gz"), "http://h/a/f.gz");
        assert_eq!(url_for("http://h/a", "f.gz"), "http://h/a/f.gz");
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn download_checks_md5_and_tries_the_next_mirror() {
        let good = b"the real file".to_vec();
        let files = HashMap::from([
            ("a/f.gz".to_string(), b"an impostor".to_vec()),
            ("b/f.gz".to_string(), good.clone()),
        ]);
        let server = TestServer::start(files);
        let dir = tempfile::tempdir().unwrap();
        let md5 = md5_hex(&good);
        let mirrors = ["missing/", "a/", "b/"].map(|m| format!("{}{m}", server.base)).to_vec();

        let saved = fetch_file(&mirrors, "f", &md5, dir.path(), &local_opts()).unwrap();
        assert_eq!(saved, dir.path().join("f.gz"));
        assert_eq!(std::fs::read(&saved).unwrap(), good);
        // Nothing but the file is left behind by the failed attempts.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let attempts =
            fetch_file(&mirrors[..2], "f", &md5, &dir.path().join("sub"), &local_opts()).unwrap_err();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].1.to_string(), "the server answered HTTP 404");
        assert_eq!(
            attempts[1].1.to_string(),
            format!("checksum mismatch for f.gz: expected MD5 {md5}, got {}", md5_hex(b"an impostor"))
        );
        assert!(!dir.path().join("sub/f.gz").exists());
    }

    #[test]
    fn unreachable_mirror_fails_fast() {
        // A port nobody listens on: bind, note the port, close.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let t = std::time::Instant::now();
        let e = download_verified(
            &format!("http://127.0.0.1:{port}/f.gz"),
            &dir.path().join("f.gz"),
            "00",
            &local_opts(),
        )
        .unwrap_err();
        assert!(matches!(e, FetchError::Network(_)), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
