//! Scheduling: which candidate is read next, how work is batched, and how
//! much is out at once. The trie decides *that* a file needs a read; this
//! module decides *when*.
//!
//! The rules:
//! * Each device (`st_dev`) has a lane of its own: its queue, its readers
//!   and its controller (`adapt.rs`), which finds how many readers that
//!   device wants while the run goes on. A network share and a local disk
//!   in one run each get their own number; lanes take turns.
//! * Larger files first (they free the most space), then oldest first.
//! * Small files travel in batches of `clamp(ready / (2 x readers), 1, 64)`
//!   per channel message, so a short queue is spread over every reader and
//!   a long one costs few messages. Files of [`LARGE_FILE`] and up get a
//!   job to themselves.
//! * At most 2 x readers jobs are out per device, so paths are built only
//!   for work about to run and memory stays bounded.
//! * A reader of a batch opens up to 16 files ahead of the one it reads
//!   and asks the kernel to fetch them (`posix_fadvise(WILLNEED)`), so
//!   even a few readers keep many requests at the device. Measured cold
//!   on the 100k tree with 2 readers: 6.8 s without, 3.7 s with. The
//!   descriptors held for it are capped per device (384).
//! * Large files on a rotational disk are read one at a time: two long
//!   sequential reads on one spindle make the head seek between them and
//!   both slow down. Small reads gain from a queue depth above one (the
//!   drive reorders them), so they stay parallel. Each large read's
//!   throughput is measured, and while a "rotational" device delivers more
//!   than any spindle can (400 MB/s: the data comes from the page cache,
//!   or the disk is virtual and backed by flash) every reader may take a
//!   large file again; a slow read puts the limit back.

use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use super::adapt::{Controller, IoChoice};
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

/// A job handed out: its device's lane, its candidates, whether it is one
/// large file, and how many files ahead its reader may open and prefetch.
pub(crate) struct Job {
    pub(crate) lane: usize,
    pub(crate) cands: Vec<u32>,
    pub(crate) large: bool,
    pub(crate) prefetch: usize,
}

/// Descriptors the prefetch of all readers of one device may hold open.
/// The usual soft limit is 1024 and the walk holds some too.
const PREFETCH_FDS: usize = 384;
/// How often the controllers look (their windows are longer: this only
/// keeps the CPU clock from being read after every result).
const TICK_NS: u64 = 20_000_000;
/// Most files one reader prefetches.
const MAX_PREFETCH: usize = 16;

/// One device: its queue, its controller and what it has out.
struct Lane {
    dev: u64,
    ready_small: BinaryHeap<Ready>,
    ready_large: BinaryHeap<Ready>,
    /// Jobs out now, and how many of them are large.
    jobs_out: usize,
    large_out: usize,
    large_limit: LargeReaders,
    ctl: Controller,
}

impl Lane {
    fn ready_len(&self) -> usize {
        self.ready_small.len() + self.ready_large.len()
    }

    fn readers(&self) -> usize {
        self.ctl.limit()
    }
}

pub(crate) struct Scheduler {
    lanes: Vec<Lane>,
    by_dev: HashMap<u64, usize>,
    seq: u64,
    /// Readers a device starts with (one per CPU, or `--threads`).
    base: usize,
    fixed: bool,
    /// Where the run started, for the controllers' clock.
    epoch: Instant,
    /// Whether a device is rotational (sysfs; replaced in tests).
    rotational: fn(u64) -> bool,
    /// When the controllers last looked.
    last_tick: u64,
    /// The lane the next job is looked for first (round robin).
    next_lane: usize,
    /// Candidates queued or being read, and their bytes.
    working: (u64, u64),
    cpu: CpuClock,
}

impl Scheduler {
    /// `base` readers per device to start with; `fixed`: never change it.
    pub(crate) fn new(base: usize, fixed: bool) -> Scheduler {
        Scheduler {
            lanes: Vec::new(),
            by_dev: HashMap::new(),
            seq: 0,
            base: base.max(1),
            fixed,
            epoch: Instant::now(),
            rotational: is_rotational,
            last_tick: 0,
            next_lane: 0,
            working: (0, 0),
            cpu: CpuClock::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lane_of(&mut self, dev: u64) -> usize {
        if let Some(&i) = self.by_dev.get(&dev) {
            return i;
        }
        let rotational = (self.rotational)(dev);
        let now = self.now_ns();
        self.lanes.push(Lane {
            dev,
            ready_small: BinaryHeap::new(),
            ready_large: BinaryHeap::new(),
            jobs_out: 0,
            large_out: 0,
            large_limit: LargeReaders::new(rotational),
            ctl: Controller::new(self.base, self.fixed, now),
        });
        self.by_dev.insert(dev, self.lanes.len() - 1);
        self.lanes.len() - 1
    }

    /// Queues candidate `c`, a file of `size` bytes on device `dev`, for a
    /// read.
    pub(crate) fn push(&mut self, c: u32, size: u64, dev: u64) {
        self.seq += 1;
        let i = self.lane_of(dev);
        let lane = &mut self.lanes[i];
        let heap = if size >= LARGE_FILE {
            &mut lane.ready_large
        } else {
            &mut lane.ready_small
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
        self.lanes.iter().map(Lane::ready_len).sum()
    }

    /// Jobs handed out and not yet done.
    pub(crate) fn jobs_out(&self) -> usize {
        self.lanes.iter().map(|l| l.jobs_out).sum()
    }

    /// Devices seen so far (lane indices are `0..lanes()`).
    pub(crate) fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Readers lane `i` may use now.
    pub(crate) fn readers(&self, i: usize) -> usize {
        self.lanes[i].readers()
    }

    /// The next job, if one may go out now, taking the devices in turn.
    pub(crate) fn next_job(&mut self) -> Option<Job> {
        let n = self.lanes.len();
        for k in 0..n {
            let i = (self.next_lane + k) % n;
            if let Some(job) = self.next_job_of(i) {
                self.next_lane = (i + 1) % n;
                return Some(job);
            }
        }
        None
    }

    /// Lane `i`'s next job: one large file (largest first) while the
    /// large-read limit allows, otherwise a batch of small files, largest
    /// first. At most 2 x readers jobs are out per device, so a reader
    /// that finishes finds its next job already waiting.
    fn next_job_of(&mut self, i: usize) -> Option<Job> {
        let lane = &mut self.lanes[i];
        let readers = lane.readers();
        if lane.jobs_out >= 2 * readers {
            return None;
        }
        let large_limit = lane.large_limit.limit(readers);
        let job = if lane.large_out < large_limit {
            lane.ready_large.pop().map(|r| (vec![r.cand], true))
        } else {
            None
        };
        let (cands, large) = job.or_else(|| {
            let batch = (lane.ready_len() / (2 * readers)).clamp(1, MAX_BATCH);
            let mut cands = Vec::new();
            while cands.len() < batch {
                let Some(r) = lane.ready_small.pop() else {
                    break;
                };
                cands.push(r.cand);
            }
            (!cands.is_empty()).then_some((cands, false))
        })?;
        lane.jobs_out += 1;
        lane.large_out += usize::from(large);
        Some(Job {
            lane: i,
            cands,
            large,
            prefetch: (PREFETCH_FDS / readers).clamp(1, MAX_PREFETCH),
        })
    }

    /// A job of lane `i` ended: `files` files, `bytes` read, and for a
    /// large one how long its read took.
    pub(crate) fn job_done(&mut self, i: usize, large: bool, files: u64, bytes: u64, nanos: u64) {
        let lane = &mut self.lanes[i];
        lane.jobs_out -= 1;
        if large {
            lane.large_out -= 1;
            lane.large_limit.observe(bytes, nanos);
        }
        let starved = lane.ready_len() == 0;
        lane.ctl.completed(files, bytes, starved);
    }

    /// A job of lane `i` went out and was taken back unread (the trie's
    /// tests drive the queues by hand).
    #[cfg(test)]
    pub(crate) fn job_skipped(&mut self, i: usize, large: bool) {
        let lane = &mut self.lanes[i];
        lane.jobs_out -= 1;
        lane.large_out -= usize::from(large);
    }

    /// Lets each device's controller decide; returns whether any limit
    /// changed (the reader pools then grow or shrink).
    pub(crate) fn tick(&mut self) -> bool {
        if self.fixed {
            return false;
        }
        let now = self.now_ns();
        if now.saturating_sub(self.last_tick) < TICK_NS {
            return false;
        }
        self.last_tick = now;
        let Some(share) = self.cpu.share(now) else {
            return false;
        };
        let mut changed = false;
        for lane in &mut self.lanes {
            changed |= lane.ctl.tick(now, share);
        }
        changed
    }

    /// What each device's controller chose, in the order devices were met.
    pub(crate) fn io_report(&mut self) -> Vec<IoChoice> {
        let now = self.now_ns();
        self.lanes
            .iter_mut()
            .map(|l| {
                let mut c = l.ctl.report(now);
                c.device = format!("{}:{}", rustix::fs::major(l.dev), rustix::fs::minor(l.dev));
                c
            })
            .collect()
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
            .lanes
            .iter_mut()
            .flat_map(|l| {
                let small: Vec<Ready> = l.ready_small.drain().collect();
                small.into_iter().chain(l.ready_large.drain())
            })
            .map(|r| (r.cand, r.size))
            .collect();
        for &(_, size) in &dropped {
            self.finished(size);
        }
        dropped
    }
}

/// The process's CPU time, sampled to tell whether reads are CPU-bound.
struct CpuClock {
    cpus: f64,
    last: Option<(u64, u64)>,
}

impl CpuClock {
    fn new() -> CpuClock {
        CpuClock {
            cpus: crate::config::available_cpus() as f64,
            last: None,
        }
    }

    /// The share of all CPUs the process used since the last call (None
    /// the first time, or when the clock cannot be read).
    fn share(&mut self, now_ns: u64) -> Option<f64> {
        let used = process_cpu_ns()?;
        let prev = self.last.replace((now_ns, used));
        let (t0, u0) = prev?;
        let wall = now_ns.saturating_sub(t0);
        (wall > 0).then(|| used.saturating_sub(u0) as f64 / (wall as f64 * self.cpus))
    }
}

/// CPU time of the whole process (user and system), in nanoseconds.
fn process_cpu_ns() -> Option<u64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    u64::try_from(t.tv_sec)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(t.tv_nsec).ok()?)
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
    /// Reads are faster than a platter: every reader may take one.
    cached: bool,
}

impl LargeReaders {
    fn new(rotational: bool) -> LargeReaders {
        LargeReaders {
            rotational,
            cached: false,
        }
    }

    fn limit(&self, readers: usize) -> usize {
        if self.rotational && !self.cached {
            1
        } else {
            readers
        }
    }

    /// A large read of `bytes` took `nanos`.
    fn observe(&mut self, bytes: u64, nanos: u64) {
        if self.rotational && nanos > 0 && bytes >= LARGE_FILE {
            let rate = bytes as f64 * 1e9 / nanos as f64;
            self.cached = rate > CACHED_RATE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(readers: usize, rotational: bool) -> Scheduler {
        let mut s = Scheduler::new(readers, true);
        s.rotational = if rotational { |_| true } else { |_| false };
        s
    }

    #[test]
    fn larger_files_go_first_and_small_ones_are_batched() {
        let mut s = sched(2, false);
        for (c, size) in [(0, 10), (1, 7000), (2, 5 << 20), (3, 3000), (4, 2 << 20)] {
            s.push(c, size, 1);
        }
        assert_eq!(s.working(), (5, 10 + 7000 + (5 << 20) + 3000 + (2 << 20)));
        let mut next = || s.next_job().map(|j| (j.cands, j.large));
        assert_eq!(next(), Some((vec![2], true)));
        assert_eq!(next(), Some((vec![4], true)));
        // Three small tasks, two readers: batches of one, largest first.
        assert_eq!(next(), Some((vec![1], false)));
        assert_eq!(next(), Some((vec![3], false)));
        assert_eq!(next(), None, "2 x readers jobs out");
        s.job_done(0, false, 1, 0, 0);
        assert_eq!(s.next_job().map(|j| j.cands), Some(vec![0]));
        s.finished(7000);
        assert_eq!(s.working(), (4, 10 + (5 << 20) + 3000 + (2 << 20)));
    }

    #[test]
    fn batches_follow_the_queue() {
        let mut s = sched(2, false);
        for c in 0..10 {
            s.push(c, 100, 1);
        }
        assert_eq!(s.next_job().unwrap().cands.len(), 2, "10 / (2 x 2)");
        let mut s = sched(2, false);
        for c in 0..100_000 {
            s.push(c, 100, 1);
        }
        let j = s.next_job().unwrap();
        assert_eq!(j.cands.len(), MAX_BATCH);
        assert_eq!(j.prefetch, MAX_PREFETCH);
        let dropped = s.clear();
        assert_eq!(dropped.len(), 100_000 - MAX_BATCH);
        assert_eq!(s.working(), (MAX_BATCH as u64, 100 * MAX_BATCH as u64));
    }

    #[test]
    fn prefetch_descriptors_are_capped_per_device() {
        let mut s = sched(64, false);
        s.push(0, 100, 1);
        assert_eq!(s.next_job().unwrap().prefetch, PREFETCH_FDS / 64);
    }

    #[test]
    fn each_device_has_its_own_lane_and_limit() {
        let mut s = sched(1, false);
        for c in 0..4 {
            s.push(c, 100, 7);
        }
        for c in 4..8 {
            s.push(c, 100, 9);
        }
        assert_eq!(s.lanes(), 2);
        // One reader each, so two jobs out per device, the devices in turn.
        let lanes: Vec<usize> = std::iter::from_fn(|| s.next_job().map(|j| j.lane)).collect();
        assert_eq!(lanes, [0, 1, 0, 1]);
        assert_eq!(s.jobs_out(), 4);
        s.job_done(1, false, 1, 100, 1000); // lane 1 had [4, 5] and [6] out
        let j = s.next_job().unwrap();
        assert_eq!((j.lane, j.cands.as_slice()), (1, &[7][..]));
        let io = s.io_report();
        assert_eq!(io.len(), 2);
        assert_eq!(io[0].device, "0:7");
        assert!(io.iter().all(|c| c.fixed && c.readers_end == 1));
    }

    #[test]
    fn a_rotational_disk_reads_one_large_file_at_a_time() {
        let mut s = sched(4, true);
        for c in 0..3 {
            s.push(c, 8 << 20, 1);
        }
        s.push(9, 100, 1);
        assert!(s.next_job().unwrap().large);
        let j = s.next_job().unwrap();
        assert_eq!((j.cands.as_slice(), j.large), (&[9][..], false));
        assert!(s.next_job().is_none(), "the second large file waits");
        s.job_done(0, true, 1, 64 << 20, 20_000_000); // 64 MiB in 20 ms: cached
        assert!(s.next_job().unwrap().large);
        assert!(s.next_job().unwrap().large, "cached: every reader");
    }

    #[test]
    fn large_reads_widen_when_the_disk_is_not_the_limit() {
        let mut l = LargeReaders::new(true);
        assert_eq!(l.limit(4), 1);
        l.observe(64 << 20, 20_000_000); // 64 MiB in 20 ms: cached
        assert_eq!(l.limit(4), 4);
        l.observe(64 << 20, 500_000_000); // 64 MiB in 0.5 s: a platter
        assert_eq!(l.limit(4), 1);
        let mut ssd = LargeReaders::new(false);
        ssd.observe(64 << 20, 5_000_000_000);
        assert_eq!(ssd.limit(4), 4, "only rotational disks are limited");
    }

    #[test]
    fn the_process_cpu_clock_measures_a_share() {
        let mut c = CpuClock::new();
        assert!(c.share(0).is_none(), "the first call only starts the clock");
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 30 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let share = c
            .share(u64::try_from(t.elapsed().as_nanos()).unwrap())
            .unwrap();
        // One busy thread: at least some of one CPU (other tests may run).
        assert!(share > 0.0, "{share}");
    }
}
