//! Live progress, injected: the library reports counts through the
//! [`ProgressTracker`] trait and never touches the terminal. The CLI draws
//! bars from these calls; tests pass [`NoProgress`] and stay silent.
//!
//! Calls are coarse on purpose (once per directory listed, once per file
//! hashed) so a tracker that takes a lock costs nothing measurable.

use crate::entry::EntryError;

/// Receives live counts from the walker and the pipeline. Every method has
/// an empty default, so an implementation overrides only what it shows.
/// Implementations must be cheap and must not block.
pub trait ProgressTracker: Send + Sync {
    /// A directory was listed; `files` matching files totalling `bytes`
    /// were found directly in it.
    fn dir_scanned(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// An entry could not be read (it is also counted in the statistics).
    fn entry_error(&self, error: &EntryError) {
        let _ = error;
    }
    /// The walk has finished: no more files will be found.
    fn scan_finished(&self) {}
    /// Files became duplicate candidates (they share a size with another
    /// file) and will be read; `bytes` is their total size.
    fn candidates_added(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// Every file of the walk has reached the pipeline: the candidate
    /// total is final from here on (it may grow until this call, even after
    /// [`ProgressTracker::scan_finished`]).
    fn candidates_known(&self) {}
    /// Bytes read and hashed by the pipeline.
    fn bytes_hashed(&self, bytes: u64) {
        let _ = bytes;
    }
    /// Candidates settled: proven unique, or placed in their final group
    /// for now; `bytes` is their total size.
    fn candidates_settled(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
}

/// A tracker that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl ProgressTracker for NoProgress {}
