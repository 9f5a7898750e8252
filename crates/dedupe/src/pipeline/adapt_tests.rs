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

// ---- The rules one at a time, on hand-made windows ----

/// One window of `ms` milliseconds in which `files` reads of `bytes` each
/// completed, the first `starved` of them with no work waiting; returns
/// whether the limit changed.
fn window(
    c: &mut Controller,
    now: &mut u64,
    ms: u64,
    files: u64,
    bytes: u64,
    starved: u64,
    cpu: f64,
) -> bool {
    for i in 0..files {
        c.completed(1, bytes, i < starved);
    }
    *now += ms * MS;
    c.tick(*now, cpu)
}

/// `n` windows of 100 ms at `files` 4 KiB reads each, not CPU-bound.
fn steady(c: &mut Controller, now: &mut u64, n: usize, files: u64) -> Vec<usize> {
    (0..n)
        .map(|_| {
            window(c, now, 100, files, 4096, 0, 0.3);
            c.limit()
        })
        .collect()
}

fn reasons(c: &mut Controller, now: u64) -> Vec<(usize, Reason)> {
    c.report(now)
        .history
        .iter()
        .map(|h| (h.readers, h.reason))
        .collect()
}

#[test]
fn slow_start_doubles_while_each_step_gains_a_tenth() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    // 100 files per window at 2 readers; each doubling brings 11% more.
    for (files, want) in [(100, 4), (111, 8), (124, 16), (138, 32)] {
        window(&mut c, &mut now, 100, files, 4096, 0, 0.3);
        assert_eq!(c.limit(), want);
    }
    // A step that brings 9% is undone.
    window(&mut c, &mut now, 100, 150, 4096, 0, 0.3);
    assert_eq!(c.limit(), 16);
    assert_eq!(reasons(&mut c, now).last(), Some(&(16, Reason::NoGain)));
}

#[test]
fn after_slow_start_it_steps_by_a_quarter() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    for files in [100, 200, 400] {
        window(&mut c, &mut now, 100, files, 4096, 0, 0.3);
    }
    assert_eq!(c.limit(), 16);
    // No gain at 16: back to 8, and slow start is over.
    window(&mut c, &mut now, 100, 400, 4096, 0, 0.3);
    assert_eq!(c.limit(), 8);
    // Held for exactly 8 windows; the first probe of a held limit above
    // the base goes down by a quarter.
    let seen = steady(&mut c, &mut now, 8, 400);
    assert_eq!(seen, [8, 8, 8, 8, 8, 8, 8, 6], "{seen:?}");
    // Fewer kept 96%: kept.
    window(&mut c, &mut now, 100, 384, 4096, 0, 0.3);
    assert_eq!(c.limit(), 6);
    // The next probe, 8 windows on, goes up by a quarter (at least one).
    let seen = steady(&mut c, &mut now, 8, 384);
    assert_eq!(seen, [6, 6, 6, 6, 6, 6, 6, 7], "{seen:?}");
    assert_eq!(
        reasons(&mut c, now)[1..],
        [
            (4, Reason::ProbeUp),
            (8, Reason::ProbeUp),
            (16, Reason::ProbeUp),
            (8, Reason::NoGain),
            (6, Reason::ProbeDown),
            (7, Reason::ProbeUp)
        ]
    );
}

#[test]
fn at_the_base_a_held_limit_probes_up() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    window(&mut c, &mut now, 100, 100, 4096, 0, 0.3);
    window(&mut c, &mut now, 100, 100, 4096, 0, 0.3);
    assert_eq!(c.limit(), 2, "4 readers gained nothing");
    // It cannot go below the base: its first probe goes up, by one.
    let seen = steady(&mut c, &mut now, 8, 100);
    assert_eq!(seen, [2, 2, 2, 2, 2, 2, 2, 3], "{seen:?}");
}

#[test]
fn work_counts_a_file_as_128_kib_and_rates_are_per_second() {
    // 10 reads of 1 MiB in 100 ms, then 200 reads of 64 KiB in 200 ms:
    // fewer bytes per second but many more files, which at 128 KiB a
    // file is 67% more work. Kept.
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    window(&mut c, &mut now, 100, 10, 1 << 20, 0, 0.3);
    assert_eq!(c.limit(), 4);
    window(&mut c, &mut now, 200, 200, 64 << 10, 0, 0.3);
    assert_eq!(c.limit(), 8, "{:?}", reasons(&mut c, now));

    // A longer window with 95% of the rate is no gain, however much more
    // it holds in total.
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    window(&mut c, &mut now, 100, 100, 4096, 0, 0.3);
    window(&mut c, &mut now, 300, 285, 4096, 0, 0.3);
    assert_eq!(c.limit(), 2);
}

#[test]
fn a_window_is_judged_when_it_is_long_enough_and_every_reader_completed() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    assert!(!window(&mut c, &mut now, 99, 50, 4096, 0, 0.3), "too short");
    assert!(
        window(&mut c, &mut now, 1, 0, 4096, 0, 0.3),
        "100 ms in all"
    );
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    assert!(
        !window(&mut c, &mut now, 100, 1, 4096, 0, 0.3),
        "one of two readers"
    );
    assert!(window(&mut c, &mut now, 0, 1, 4096, 0, 0.3), "both");
}

#[test]
fn up_to_a_quarter_of_starved_completions_is_still_a_measurement() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    assert!(window(&mut c, &mut now, 100, 16, 4096, 4, 0.3));
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    assert!(!window(&mut c, &mut now, 100, 16, 4096, 5, 0.3));
}

#[test]
fn a_probe_gives_up_on_the_third_starved_window() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    window(&mut c, &mut now, 100, 16, 4096, 0, 0.3);
    assert_eq!(c.limit(), 4);
    for want in [4, 4, 2] {
        window(&mut c, &mut now, 100, 16, 4096, 16, 0.3);
        assert_eq!(c.limit(), want);
    }
}

#[test]
fn saturated_cpus_halve_the_readers_down_to_the_base() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    for files in [100, 200, 400] {
        window(&mut c, &mut now, 100, files, 4096, 0, 0.3);
    }
    assert_eq!(c.limit(), 16);
    window(&mut c, &mut now, 100, 400, 4096, 0, 0.3);
    assert_eq!(c.limit(), 8, "16 gained nothing");
    // Exactly the bound counts as saturated.
    window(&mut c, &mut now, 100, 400, 4096, 0, CPU_BOUND);
    assert_eq!(c.limit(), 4);
    let seen = (0..6)
        .map(|_| {
            window(&mut c, &mut now, 100, 400, 4096, 0, 0.95);
            c.limit()
        })
        .collect::<Vec<_>>();
    assert_eq!(seen, [4, 2, 2, 2, 2, 2], "one window to measure, then half");
    // Below the bound nothing is cut: a limit above the base is held.
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    window(&mut c, &mut now, 100, 100, 4096, 0, 0.3);
    window(&mut c, &mut now, 100, 200, 4096, 0, 0.3);
    window(&mut c, &mut now, 100, 200, 4096, 0, 0.84);
    assert_eq!(c.limit(), 4);
    let seen = steady(&mut c, &mut now, 7, 200);
    assert!(seen.iter().all(|&l| l == 4), "{seen:?}");
    assert!(!reasons(&mut c, now).iter().any(|r| r.1 == Reason::CpuBound));
}

#[test]
fn reasons_read_as_sentences() {
    let texts: Vec<String> = [
        Reason::Start,
        Reason::ProbeUp,
        Reason::ProbeDown,
        Reason::NoGain,
        Reason::Lost,
        Reason::CpuBound,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        texts,
        [
            "start: one per CPU",
            "throughput rose: more",
            "probing fewer",
            "no gain from more: back",
            "fewer was slower: back",
            "CPUs saturated: fewer"
        ]
    );
}

#[test]
fn the_report_counts_every_change_and_keeps_the_first_24() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    // Each cycle: a measured window climbs, three starved ones undo it.
    for _ in 0..15 {
        window(&mut c, &mut now, 100, 16, 4096, 0, 0.3);
        for _ in 0..3 {
            window(&mut c, &mut now, 100, 16, 4096, 16, 0.3);
        }
    }
    let r = c.report(now);
    assert_eq!(r.changes, 30);
    assert_eq!(r.history.len(), 24, "the start and the first 23 changes");
    assert_eq!(
        (r.history[1].at_ms, r.history[1].readers, r.history[2].at_ms),
        (100, 4, 400)
    );
}

#[test]
fn more_bytes_for_as_many_files_is_a_gain() {
    let (mut c, mut now) = (Controller::new(2, false, 0), 0);
    window(&mut c, &mut now, 100, 10, 64 << 10, 0, 0.3);
    window(&mut c, &mut now, 100, 10, 2 << 20, 0, 0.3);
    assert_eq!(c.limit(), 8, "{:?}", reasons(&mut c, now));
}
