//! Scheduling: which candidate is read next, how work is batched, and how
//! much is out at once. The trie decides *that* a file needs a read; this
//! module decides *when*.
//!
//! The rules:
//! * Larger files first (they free the most space), then oldest first.
//! * Small files travel in batches of `clamp(ready / (2 x readers), 1, 64)`
//!   per channel message, so a short queue is spread over every reader and
//!   a long one costs few messages. Files of [`LARGE_FILE`] and up get a
//!   job to themselves.
//! * At most 2 x readers jobs are out at once, so paths are built only for
//!   work about to run and memory stays bounded.
//! * Large files on a rotational disk are read one at a time: two long
//!   sequential reads on one spindle make the head seek between them and
//!   both slow down. Small reads gain from a queue depth above one (the
//!   drive reorders them), so they stay parallel. Each large read's
//!   throughput is measured, and while a "rotational" device delivers more
//!   than any spindle can (400 MB/s: the data comes from the page cache,
//!   or the disk is virtual and backed by flash) every reader may take a
//!   large file again; a slow read puts the limit back.

use std::collections::BinaryHeap;
use std::path::Path;

use super::stage::LARGE_FILE;

/// Read throughput no spinning disk sustains (bytes/s): above it, the data
/// did not come from a platter.
const CACHED_RATE: f64 = 400e6;

/// Largest batch of small-file tasks in one job.
const MAX_BATCH: usize = 64;

/// A task waiting for a reader, ordered largest file first, then oldest.
struct Ready {
    size: u64,
    seq: u64,
    cand: u32,
}

impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ready {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.size
            .cmp(&other.size)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A job handed out: its candidates, and whether it is one large file.
pub(crate) struct Job {
    pub(crate) cands: Vec<u32>,
    pub(crate) large: bool,
}

pub(crate) struct Scheduler {
    ready_small: BinaryHeap<Ready>,
    ready_large: BinaryHeap<Ready>,
    seq: u64,
    readers: usize,
    /// Jobs out now, and how many of them are large.
    jobs_out: usize,
    large_out: usize,
    large_limit: LargeReaders,
    /// Candidates queued or being read, and their bytes.
    working: (u64, u64),
}

impl Scheduler {
    pub(crate) fn new(readers: usize, rotational: bool) -> Scheduler {
        let readers = readers.max(1);
        Scheduler {
            ready_small: BinaryHeap::new(),
            ready_large: BinaryHeap::new(),
            seq: 0,
            readers,
            jobs_out: 0,
            large_out: 0,
            large_limit: LargeReaders::new(rotational, readers),
            working: (0, 0),
        }
    }

    /// Queues candidate `c`, a file of `size` bytes, for a read.
    pub(crate) fn push(&mut self, c: u32, size: u64) {
        self.seq += 1;
        let heap = if size >= LARGE_FILE {
            &mut self.ready_large
        } else {
            &mut self.ready_small
        };
        heap.push(Ready {
            size,
            seq: self.seq,
            cand: c,
        });
        self.working.0 += 1;
        self.working.1 = self.working.1.saturating_add(size);
    }

    /// Tasks waiting for a reader.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready_small.len() + self.ready_large.len()
    }

    /// Jobs handed out and not yet done.
    pub(crate) fn jobs_out(&self) -> usize {
        self.jobs_out
    }

    /// The next job, if one may go out now: one large file (largest first)
    /// while the large-read limit allows, otherwise a batch of small files,
    /// largest first.
    pub(crate) fn next_job(&mut self) -> Option<Job> {
        if self.jobs_out >= 2 * self.readers {
            return None;
        }
        let job = if self.large_out < self.large_limit.limit {
            self.ready_large.pop().map(|r| Job {
                cands: vec![r.cand],
                large: true,
            })
        } else {
            None
        };
        let job = job.or_else(|| {
            let batch = (self.ready_len() / (2 * self.readers)).clamp(1, MAX_BATCH);
            let mut cands = Vec::new();
            while cands.len() < batch {
                let Some(r) = self.ready_small.pop() else {
                    break;
                };
                cands.push(r.cand);
            }
            (!cands.is_empty()).then_some(Job {
                cands,
                large: false,
            })
        })?;
        self.jobs_out += 1;
        self.large_out += usize::from(job.large);
        Some(job)
    }

    /// A job's reads ended; `read` is (bytes, nanoseconds) of a large one.
    pub(crate) fn job_done(&mut self, large: bool, read: (u64, u64)) {
        self.jobs_out -= 1;
        if large {
            self.large_out -= 1;
            self.large_limit.observe(read.0, read.1);
        }
    }

    /// A candidate of `size` bytes is no longer queued or being read.
    pub(crate) fn finished(&mut self, size: u64) {
        self.working.0 -= 1;
        self.working.1 = self.working.1.saturating_sub(size);
    }

    /// Candidates queued or being read, and their bytes.
    pub(crate) fn working(&self) -> (u64, u64) {
        self.working
    }

    /// Drops every queued task (the run was cancelled): the candidates
    /// they were for, with their sizes.
    pub(crate) fn clear(&mut self) -> Vec<(u32, u64)> {
        let dropped: Vec<(u32, u64)> = self
            .ready_small
            .drain()
            .chain(self.ready_large.drain())
            .map(|r| (r.cand, r.size))
            .collect();
        for &(_, size) in &dropped {
            self.finished(size);
        }
        dropped
    }
}

/// Whether any of `roots` sits on a block device that reports itself
/// rotational. Each device is asked once, however many roots it holds
/// (`--files-from` can make thousands of roots on one disk).
pub(crate) fn any_rotational<P: AsRef<Path>>(roots: &[P]) -> bool {
    let mut asked = std::collections::HashSet::new();
    roots.iter().any(|r| {
        rustix::fs::stat(r.as_ref())
            .is_ok_and(|st| asked.insert(st.st_dev) && is_rotational(st.st_dev))
    })
}

/// Whether block device `dev` reports itself rotational. Unknown (not
/// Linux, no sysfs, a virtual file system) counts as not.
fn is_rotational(dev: u64) -> bool {
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

/// How many readers may read large files at once (see the module docs).
struct LargeReaders {
    rotational: bool,
    readers: usize,
    limit: usize,
}

impl LargeReaders {
    fn new(rotational: bool, readers: usize) -> LargeReaders {
        LargeReaders {
            rotational,
            readers,
            limit: if rotational { 1 } else { readers },
        }
    }

    /// A large read of `bytes` took `nanos`.
    fn observe(&mut self, bytes: u64, nanos: u64) {
        if self.rotational && nanos > 0 && bytes >= LARGE_FILE {
            let rate = bytes as f64 * 1e9 / nanos as f64;
            self.limit = if rate > CACHED_RATE { self.readers } else { 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larger_files_go_first_and_small_ones_are_batched() {
        let mut s = Scheduler::new(2, false);
        for (c, size) in [(0, 10), (1, 7000), (2, 5 << 20), (3, 3000), (4, 2 << 20)] {
            s.push(c, size);
        }
        assert_eq!(s.working(), (5, 10 + 7000 + (5 << 20) + 3000 + (2 << 20)));
        let mut next = || s.next_job().map(|j| (j.cands, j.large));
        assert_eq!(next(), Some((vec![2], true)));
        assert_eq!(next(), Some((vec![4], true)));
        // Three small tasks, two readers: batches of one, largest first.
        assert_eq!(next(), Some((vec![1], false)));
        assert_eq!(next(), Some((vec![3], false)));
        assert_eq!(next(), None, "2 x readers jobs out");
        s.job_done(false, (0, 0));
        assert_eq!(s.next_job().map(|j| j.cands), Some(vec![0]));
        s.finished(7000);
        assert_eq!(s.working(), (4, 10 + (5 << 20) + 3000 + (2 << 20)));
    }

    #[test]
    fn batches_follow_the_queue() {
        let mut s = Scheduler::new(2, false);
        for c in 0..10 {
            s.push(c, 100);
        }
        assert_eq!(s.next_job().unwrap().cands.len(), 2, "10 / (2 x 2)");
        let mut s = Scheduler::new(2, false);
        for c in 0..100_000 {
            s.push(c, 100);
        }
        assert_eq!(s.next_job().unwrap().cands.len(), MAX_BATCH);
        let dropped = s.clear();
        assert_eq!(dropped.len(), 100_000 - MAX_BATCH);
        assert_eq!(s.working(), (MAX_BATCH as u64, 100 * MAX_BATCH as u64));
    }

    #[test]
    fn a_rotational_disk_reads_one_large_file_at_a_time() {
        let mut s = Scheduler::new(4, true);
        for c in 0..3 {
            s.push(c, 8 << 20);
        }
        s.push(9, 100);
        assert!(s.next_job().unwrap().large);
        let j = s.next_job().unwrap();
        assert_eq!((j.cands.as_slice(), j.large), (&[9][..], false));
        assert!(s.next_job().is_none(), "the second large file waits");
        s.job_done(true, (64 << 20, 20_000_000)); // 64 MiB in 20 ms: cached
        assert!(s.next_job().unwrap().large);
        assert!(s.next_job().unwrap().large, "cached: every reader");
    }

    #[test]
    fn large_reads_widen_when_the_disk_is_not_the_limit() {
        let mut l = LargeReaders::new(true, 4);
        assert_eq!(l.limit, 1);
        l.observe(64 << 20, 20_000_000); // 64 MiB in 20 ms: cached
        assert_eq!(l.limit, 4);
        l.observe(64 << 20, 500_000_000); // 64 MiB in 0.5 s: a platter
        assert_eq!(l.limit, 1);
        let mut ssd = LargeReaders::new(false, 4);
        ssd.observe(64 << 20, 5_000_000_000);
        assert_eq!(ssd.limit, 4, "only rotational disks are limited");
    }
}
