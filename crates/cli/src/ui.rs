//! Logs (tracing) and progress bars (indicatif) on stderr, without tearing each other:
//! log lines are written while the bars are suspended. Bars only draw on a terminal.

use std::io::{IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use slimbench_core::cancel;
use slimbench_core::progress::{Bar, Progress};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::{GlobalArgs, LogFormat};

/// Progress bars drawn with indicatif.
#[derive(Debug, Clone)]
pub struct UiProgress {
    multi: MultiProgress,
}

impl UiProgress {
    /// Remove every bar (before printing a final message).
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl Progress for UiProgress {
    fn bar(&self, label: &str, total: u64) -> Box<dyn Bar> {
        let pb = self.multi.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template("{prefix:>24.cyan} [{bar:30}] {pos}/{len} [{elapsed}<{eta}] {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_prefix(label.to_string());
        Box::new(UiBar(pb))
    }
}

struct UiBar(ProgressBar);

impl Bar for UiBar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn message(&self, msg: String) {
        self.0.set_message(msg);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A tracing writer that prints whole lines while the progress bars are hidden.
#[derive(Clone)]
struct SuspendingWriter(MultiProgress);

struct LineBuffer {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl Write for LineBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.multi.suspend(|| {
            let _ = std::io::stderr().write_all(&buf);
        });
    }
}

impl<'a> MakeWriter<'a> for SuspendingWriter {
    type Writer = LineBuffer;
    fn make_writer(&'a self) -> LineBuffer {
        LineBuffer { multi: self.0.clone(), buf: Vec::new() }
    }
}

/// Set up logging from the global flags (RUST_LOG wins) and return the progress bars.
pub fn init(g: &GlobalArgs) -> UiProgress {
    let multi = MultiProgress::new();
    let default = match (g.quiet, g.verbose) {
        (true, _) => "warn",
        (false, 0) => "warn,slimbench=info",
        (false, 1) => "info,slimbench=debug",
        _ => "debug,slimbench=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(SuspendingWriter(multi.clone()));
    match g.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).compact().init(),
    }
    UiProgress { multi }
}

/// First Ctrl-C: stop at the next step boundary, so that finished stages are kept and
/// nothing is half-written. Second Ctrl-C: leave at once.
pub fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if cancel::requested() {
            eprintln!("\naborted");
            std::process::exit(130);
        }
        cancel::request();
        eprintln!("\ninterrupted: stopping after the current step (Ctrl-C again to abort at once)");
    });
}
