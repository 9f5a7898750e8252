//! Adaptive configuration: how many readers the pipeline runs, decided
//! from what the roots sit on.
//!
//! The rule:
//! * Readers: `threads_per_stage` if the user set it, otherwise one per
//!   CPU. Reads from SSD or page cache are CPU-bound copies and hashing;
//!   more threads than cores only add switching.
//! * Large files (1 MiB and up) on a rotational disk: one at a time. Two
//!   long sequential reads on one spindle make the head seek between them
//!   and both slow down; small reads, on the other hand, gain from a queue
//!   depth above one (the drive reorders them), so they stay parallel.
//!   Elsewhere every reader may take a large file.
//! * Unless the disk is not what limits: each large read's throughput is
//!   measured, and while reads on a "rotational" device run faster than any
//!   spindle delivers (400 MB/s, so the data comes from the page
//!   cache, or the "disk" is a virtual one backed by flash) every reader
//!   may take a large file again. A slow read puts the limit back.
//!
//! Small-file work is batched per channel message in proportion to the
//! queue: `clamp(ready / (2 x readers), 1, 64)` tasks, so a short queue is
//! spread over every reader and a long one costs few messages.

use std::path::Path;

use crate::config::Config;

/// Read throughput no spinning disk sustains (bytes/s): above it, the data
/// did not come from a platter.
pub(crate) const CACHED_RATE: f64 = 400e6;

/// Largest batch of small-file tasks in one job.
pub(crate) const MAX_BATCH: usize = 64;

/// Whether the block device holding `path` reports itself rotational.
/// Unknown (not Linux, no sysfs, a virtual file system) counts as not.
pub fn is_rotational(path: &Path) -> bool {
    let Ok(st) = rustix::fs::stat(path) else {
        return false;
    };
    let dev = st.st_dev;
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let base = format!("/sys/dev/block/{major}:{minor}");
    // A partition has no queue of its own: its parent disk does.
    for candidate in [
        format!("{base}/queue/rotational"),
        format!("{base}/../queue/rotational"),
    ] {
        if let Ok(v) = std::fs::read_to_string(&candidate) {
            return v.trim() == "1";
        }
    }
    false
}

/// Readers for the hashing stages, by the rule above.
pub(crate) fn readers(config: &Config) -> usize {
    config.effective_threads()
}

/// How many readers may read large files at once, by the rule above.
pub(crate) struct LargeReaders {
    rotational: bool,
    readers: usize,
    limit: usize,
}

impl LargeReaders {
    pub(crate) fn new<P: AsRef<Path>>(roots: &[P], readers: usize) -> LargeReaders {
        let rotational = roots.iter().any(|r| is_rotational(r.as_ref()));
        LargeReaders {
            rotational,
            readers,
            limit: if rotational { 1 } else { readers },
        }
    }

    /// The current limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A large read of `bytes` took `nanos`.
    pub(crate) fn observe(&mut self, bytes: u64, nanos: u64) {
        if self.rotational && nanos > 0 && bytes >= 1 << 20 {
            let rate = bytes as f64 * 1e9 / nanos as f64;
            self.limit = if rate > CACHED_RATE { self.readers } else { 1 };
        }
    }
}

/// Tasks per small-file job for a queue of `ready` tasks.
pub(crate) fn batch_for(ready: usize, readers: usize) -> usize {
    (ready / (2 * readers.max(1))).clamp(1, MAX_BATCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_queue() {
        assert_eq!(batch_for(0, 2), 1);
        assert_eq!(batch_for(10, 2), 2);
        assert_eq!(batch_for(100_000, 2), MAX_BATCH);
    }

    #[test]
    fn large_reads_widen_when_the_disk_is_not_the_limit() {
        let mut l = LargeReaders {
            rotational: true,
            readers: 4,
            limit: 1,
        };
        l.observe(64 << 20, 20_000_000); // 64 MiB in 20 ms: cached
        assert_eq!(l.limit(), 4);
        l.observe(64 << 20, 500_000_000); // 64 MiB in 0.5 s: a platter
        assert_eq!(l.limit(), 1);
        let mut ssd = LargeReaders {
            rotational: false,
            readers: 4,
            limit: 4,
        };
        ssd.observe(64 << 20, 5_000_000_000);
        assert_eq!(ssd.limit(), 4, "only rotational disks are limited");
    }

    #[test]
    fn explicit_threads_win() {
        let c = Config {
            threads_per_stage: 3,
            ..Config::default()
        };
        assert_eq!(readers(&c), 3);
        assert!(readers(&Config::default()) >= 1);
    }
}
