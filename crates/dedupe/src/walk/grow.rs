//! Growing the walk: more scanners while directories are slow to list.
//! Listing on a cold cache or a network share waits on the device's
//! latency, not the CPU, so more listings in flight go faster (cold, the
//! 1M-file tree took 7.6 s with 2 scanners and 2.9 s with 32); cached, a
//! listing never counts as slow and nothing grows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use crossbeam_deque::Worker;

use super::scanner::{run, Job, Shared};
use super::WalkEvent;

/// A directory slower to open and list than this, plus [`SLOW_ENTRY`] per
/// entry, waited on the device: cached, a directory opens in a few
/// microseconds and each entry (name and `statx`) costs one or two; cold,
/// about 15 per entry on this project's test machine, far more on disks
/// and network shares.
const SLOW_DIR: Duration = Duration::from_micros(100);
const SLOW_ENTRY: Duration = Duration::from_micros(8);
/// Slow directories that add one scanner.
const SLOW_PER_SCANNER: usize = 4;

/// Whether listing a directory of `entries` entries in `took` waited on
/// the device.
fn slow_listing(took: Duration, entries: u64) -> bool {
    took >= SLOW_DIR + SLOW_ENTRY * u32::try_from(entries).unwrap_or(u32::MAX)
}

/// Adding scanners while the walk runs. Directory listing on a cold cache
/// or a network share is bound by the device's latency, not the CPU, so
/// more opens in flight go faster; when directories open fast (cached)
/// nothing grows and the walk costs what it did.
pub(crate) struct Growth {
    spare: Mutex<Vec<Worker<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    slow: AtomicUsize,
    /// Scanners running or started, for the index of the next.
    started: AtomicUsize,
}

impl Growth {
    pub(crate) fn new(spare: Vec<Worker<Job>>) -> Growth {
        Growth {
            spare: Mutex::new(spare),
            threads: Mutex::new(Vec::new()),
            slow: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
        }
    }

    /// A scanner started during the walk, to be joined.
    pub(crate) fn take_thread(&self) -> Option<JoinHandle<()>> {
        lock(&self.threads).pop()
    }

    /// Scanners started during the walk so far.
    pub(crate) fn added(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A directory of `entries` entries took `took` to list. Slow listings
/// raise a score and fast ones lower it: a scanner preempted now and then
/// on a busy machine makes an odd listing slow, a cold device makes most
/// of them slow. When the score reaches [`SLOW_PER_SCANNER`] while
/// directories wait in the queue, one more scanner starts (sending on a
/// clone of `tx`).
pub(crate) fn grow(shared: &Arc<Shared>, took: Duration, entries: u64, tx: &Sender<WalkEvent>) {
    let g = &shared.growth;
    if !slow_listing(took, entries) {
        let _ = g
            .slow
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        return;
    }
    if g.slow.fetch_add(1, Ordering::Relaxed) + 1 < SLOW_PER_SCANNER {
        return;
    }
    g.slow.store(0, Ordering::Relaxed);
    // Only when directories are queued: more scanners for an empty queue
    // would only spin.
    if shared.pending.load(Ordering::Relaxed) < 2 {
        return;
    }
    let Some(local) = lock(&g.spare).pop() else {
        return;
    };
    let i = g.started.fetch_add(1, Ordering::Relaxed);
    let mine = Arc::clone(shared);
    let tx = tx.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("dedupe-scan-x{i}"))
        .spawn(move || run(&mine, local, &tx, Vec::new()));
    // Without the thread the walk goes on with the scanners it has.
    if let Ok(t) = spawned {
        lock(&g.threads).push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_slow_when_it_waited_on_the_device() {
        let us = Duration::from_micros;
        // Cached: a few microseconds to open, one or two an entry.
        assert!(!slow_listing(us(5), 0));
        assert!(!slow_listing(us(150), 100));
        assert!(!slow_listing(us(99), 0));
        // Cold: one read of the device, or ~15 us an entry.
        assert!(slow_listing(us(100), 0));
        assert!(slow_listing(us(1_500), 100));
        assert!(!slow_listing(us(899), 100));
        assert!(slow_listing(us(900), 100));
        assert!(
            !slow_listing(Duration::from_secs(3600), u64::MAX),
            "no overflow"
        );
    }
}
