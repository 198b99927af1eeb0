//! How a download tells its caller what it is doing: a trait the caller implements (a progress
//! bar on a terminal, log lines elsewhere, nothing in a library).

/// Receives the progress of getting a model. Every method has an empty default.
pub trait Progress: Send + Sync {
    /// A transfer starts: `label` says what and from where, `total` is its size when known and
    /// `done` the bytes already there (a resumed download).
    fn begin(&self, label: &str, total: Option<u64>, done: u64) {
        let _ = (label, total, done);
    }

    /// `bytes` more arrived.
    fn advance(&self, bytes: u64) {
        let _ = bytes;
    }

    /// The transfer started by the last `begin` ended (well or not).
    fn end(&self) {}

    /// One line worth telling the user: a source that failed, a wait for another process.
    fn note(&self, message: &str) {
        let _ = message;
    }
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Ends a transfer on drop, so an early return never leaves a bar running.
pub(crate) struct Transfer<'a> {
    progress: &'a dyn Progress,
}

impl<'a> Transfer<'a> {
    pub(crate) fn begin(progress: &'a dyn Progress, label: &str, total: Option<u64>, done: u64) -> Transfer<'a> {
        progress.begin(label, total, done);
        Transfer { progress }
    }

    pub(crate) fn advance(&self, bytes: u64) {
        self.progress.advance(bytes);
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        self.progress.end();
    }
}
