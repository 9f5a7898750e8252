//! The controller against simulated devices: each window, the device
//! delivers the throughput its curve gives for the current number of
//! readers, and the test checks where the controller goes.

use super::*;

const MS: u64 = 1_000_000;

/// Runs `windows` windows of 100 ms on a device whose throughput (bytes/s
/// of 4 KiB files) is `curve(readers)` while the process uses `cpu(readers)`
/// of the CPUs. Returns the limit after each window.
fn simulate(
    c: &mut Controller,
    start: u64,
    windows: usize,
    curve: impl Fn(usize) -> f64,
    cpu: impl Fn(usize) -> f64,
) -> Vec<usize> {
    let mut now = start;
    let mut seen = Vec::new();
    for _ in 0..windows {
        let l = c.limit();
        let work = curve(l) * 0.1; // one window's worth
                                   // Positive and far below 2^53: the cast is exact.
        #[allow(clippy::cast_sign_loss)]
        let files = (work / (FILE_COST + 4096.0)).max(l as f64) as u64;
        for _ in 0..files {
            c.completed(1, 4096, false);
        }
        now += 100 * MS;
        c.tick(now, cpu(l));
        seen.push(c.limit());
    }
    seen
}

/// The limit held most often over the last 20 windows.
fn settled(seen: &[usize]) -> usize {
    let tail = &seen[seen.len().saturating_sub(20)..];
    let mut best = (0, 0);
    for &l in tail {
        let n = tail.iter().filter(|&&x| x == l).count();
        if n > best.1 {
            best = (l, n);
        }
    }
    best.0
}

/// A device that serves `depth` requests at once, each at `per` bytes/s.
fn queue_device(depth: usize, per: f64) -> impl Fn(usize) -> f64 {
    move |l| l.min(depth) as f64 * per
}

#[test]
fn a_deep_queue_device_gets_many_readers() {
    let mut c = Controller::new(2, false, 0);
    let seen = simulate(&mut c, 0, 60, queue_device(24, 50e6), |_| 0.3);
    // Doubling: 2, 4, 8, 16 within the first windows.
    assert!(seen[..8].contains(&16), "{seen:?}");
    let end = settled(&seen);
    assert!(
        (18..=32).contains(&end),
        "settles near the queue depth: {seen:?}"
    );
    // Past what helps only for single probe windows: piling requests up
    // is what it must not do.
    assert!(seen.iter().filter(|&&l| l > 32).count() <= 2, "{seen:?}");
}

#[test]
fn a_cpu_bound_run_stays_at_one_reader_per_cpu() {
    // Warm cache: throughput is flat past 2 readers and every CPU is busy.
    let mut c = Controller::new(2, false, 0);
    let seen = simulate(&mut c, 0, 100, queue_device(2, 500e6), |_| 0.97);
    assert!(seen.iter().all(|&l| l == 2), "{seen:?}");
    assert_eq!(c.report(100 * 100 * MS).changes, 0);
}

#[test]
fn a_slow_device_is_not_flooded() {
    // A throttled device: the same throughput whatever the queue, CPUs idle.
    let mut c = Controller::new(2, false, 0);
    let seen = simulate(&mut c, 0, 100, |_| 20e6, |_| 0.05);
    let r = c.report(100 * 100 * MS);
    assert_eq!(settled(&seen), 2, "{seen:?}");
    assert!(r.readers_peak <= 4, "probes one step at a time: {seen:?}");
    assert!(
        r.readers_mean < 2.5,
        "mostly at the base: {}",
        r.readers_mean
    );
}

#[test]
fn a_device_that_slows_with_more_readers_goes_back() {
    // A spinning disk: seeks between readers make more of them slower.
    let mut c = Controller::new(4, false, 0);
    let seen = simulate(&mut c, 0, 50, |l| 150e6 / (1.0 + 0.2 * l as f64), |_| 0.1);
    assert_eq!(settled(&seen), 4, "{seen:?}");
    assert!(seen.iter().all(|&l| l <= 8), "{seen:?}");
}

#[test]
fn it_follows_a_run_from_cold_to_cached_data() {
    let mut c = Controller::new(2, false, 0);
    let cold = simulate(&mut c, 0, 30, queue_device(32, 40e6), |_| 0.3);
    assert!(*cold.last().unwrap() >= 16, "{cold:?}");
    // The rest of the tree is in the page cache: CPUs saturate.
    let warm = simulate(&mut c, 30 * 100 * MS, 30, queue_device(2, 800e6), |_| 0.98);
    assert_eq!(*warm.last().unwrap(), 2, "back to one per CPU: {warm:?}");
    let r = c.report(60 * 100 * MS);
    assert!(r.history.iter().any(|h| h.reason == Reason::CpuBound));
}

#[test]
fn a_fixed_number_never_changes() {
    let mut c = Controller::new(8, true, 0);
    let seen = simulate(&mut c, 0, 30, queue_device(64, 50e6), |_| 0.1);
    assert!(seen.iter().all(|&l| l == 8), "{seen:?}");
}

#[test]
fn starved_windows_decide_nothing() {
    let mut c = Controller::new(2, false, 0);
    for w in 1..=20u64 {
        for _ in 0..10 {
            c.completed(1, 4096, true);
        }
        assert!(!c.tick(w * 100 * MS, 0.1));
    }
    assert_eq!(c.limit(), 2);
    // A window too short or with too few completions is not judged.
    c.completed(1, 4096, false);
    assert!(!c.tick(2100 * MS + 50 * MS, 0.1));
}

#[test]
fn a_probe_that_only_sees_starved_windows_is_undone() {
    let mut c = Controller::new(2, false, 0);
    for _ in 0..4 {
        c.completed(1, 1 << 20, false);
    }
    assert!(c.tick(100 * MS, 0.1), "first window: climb");
    assert_eq!(c.limit(), 4);
    let mut now = 100 * MS;
    for _ in 0..3 {
        for _ in 0..8 {
            c.completed(1, 4096, true);
        }
        now += 100 * MS;
        c.tick(now, 0.1);
    }
    assert_eq!(c.limit(), 2);
}

#[test]
fn the_mean_counts_from_the_devices_first_read() {
    // A device met a second into the run, at 4 readers throughout.
    let mut c = Controller::new(4, true, 1000 * MS);
    let r = c.report(2000 * MS);
    assert!((r.readers_mean - 4.0).abs() < 1e-9, "{}", r.readers_mean);
}
