//! Progress reporting without a UI dependency: domain crates report through
//! [`Progress`]; the CLI draws it with indicatif, tests pass [`NoProgress`].

/// A factory of progress bars.
pub trait Progress: Send + Sync {
    /// Start a bar with a label and a total number of units (0 when unknown).
    fn bar(&self, label: &str, total: u64) -> Box<dyn Bar>;
}

/// One running progress bar.
pub trait Bar: Send + Sync {
    /// Advance by `n` units.
    fn inc(&self, n: u64);
    /// Replace the short message shown beside the bar (e.g. the running loss).
    fn message(&self, msg: String);
    /// Remove the bar.
    fn finish(&self);
}

/// Progress that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn bar(&self, _label: &str, _total: u64) -> Box<dyn Bar> {
        Box::new(NoProgress)
    }
}

impl Bar for NoProgress {
    fn inc(&self, _n: u64) {}
    fn message(&self, _msg: String) {}
    fn finish(&self) {}
}
