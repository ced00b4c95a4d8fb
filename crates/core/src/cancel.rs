//! Cooperative cancellation: Ctrl-C sets a process-wide flag that long loops (training
//! steps, latency iterations) poll, so a stage stops between steps and nothing is left
//! half-written.

use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Ask every running loop to stop at its next check.
pub fn request() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Whether cancellation was requested.
pub fn requested() -> bool {
    CANCELLED.load(Ordering::Relaxed)
}

/// The error a loop returns when it stopped because of [`request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Cancelled;

/// `Err(Cancelled)` once cancellation was requested, for `?` in loops.
pub fn check() -> Result<(), Cancelled> {
    if requested() { Err(Cancelled) } else { Ok(()) }
}
