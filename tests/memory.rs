//! Memory profiling (seed 002): scanning must use constant memory, however
//! large the tree. This is its own test binary so no other test shares the
//! process whose RSS it samples.
//!
//! Run alone with `cargo test --release --test memory -- --nocapture`.

use std::path::Path;
use std::sync::Arc;

use dedupe::{Config, NoProgress, StreamingConfig, StreamingWalker, WalkEvent};
use dedupe_testkit::gen::{generate, GenSpec};
use dedupe_testkit::rss;

/// The promise: a scan never needs more than this.
const PEAK_LIMIT: u64 = 64 << 20;
/// ...and five times the files may cost at most this much more.
const GROWTH_LIMIT: f64 = 0.10;

/// Like the seed's `MemoryProfiler`: samples resident memory every 1,000
/// files while a consumer drains the walk.
struct Profile {
    files: u64,
    max_sampled: u64,
    samples: usize,
    peak: u64,
}

fn profile_scan(root: &Path, sc: StreamingConfig) -> Profile {
    let walker = StreamingWalker::new(Arc::new(Config::default()), Arc::new(NoProgress), Some(sc));
    assert!(rss::reset_peak(), "cannot reset the peak RSS counter");
    let mut p = Profile {
        files: 0,
        max_sampled: 0,
        samples: 0,
        peak: 0,
    };
    let mut next_sample = 1_000;
    for ev in walker.walk(&[root]).unwrap() {
        if let WalkEvent::Batch(b) = ev {
            // A consumer slower than the walk, as a hashing pipeline is:
            // without backpressure the walker would queue the whole tree.
            std::thread::sleep(std::time::Duration::from_micros(150));
            p.files += b.len() as u64;
            if p.files >= next_sample {
                next_sample += 1_000;
                p.samples += 1;
                p.max_sampled = p.max_sampled.max(rss::current().unwrap());
            }
        }
    }
    p.peak = rss::peak().unwrap().max(p.max_sampled);
    p
}

fn tree(files: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let spec = GenSpec {
        files,
        dirs: files / 50,
        max_size: 64,
        seed: files,
        ..GenSpec::default()
    };
    generate(dir.path(), &spec).unwrap();
    dir
}

/// One test, so the trees are generated once and nothing else runs in this
/// process while it samples.
#[test]
fn memory_is_bounded_and_flat_from_20k_to_100k_files() {
    let small = tree(20_000);
    let large = tree(100_000);
    for sc in [
        StreamingConfig::simple_config(),
        StreamingConfig::high_throughput_config(),
    ] {
        // Warm up once so lazily allocated runtime state is not charged
        // to the first measurement. Then the least of three runs: the
        // allocator's per-thread arenas add noise (a few MiB, upward
        // only) that would otherwise hide or fake growth.
        profile_scan(small.path(), sc.clone());
        let least = |root: &Path| {
            (0..3)
                .map(|_| profile_scan(root, sc.clone()))
                .min_by_key(|p| p.peak)
                .unwrap()
        };
        let a = least(small.path());
        let b = least(large.path());
        println!(
            "{sc:?}\n  20k files: peak {:.1} MiB ({} samples)\n 100k files: peak {:.1} MiB ({} samples)",
            a.peak as f64 / 1_048_576.0,
            a.samples,
            b.peak as f64 / 1_048_576.0,
            b.samples
        );
        assert_eq!((a.files, b.files), (20_000, 100_000));
        assert!(
            a.samples >= 20 && b.samples >= 100,
            "sampled every 1,000 files"
        );
        assert!(b.peak < PEAK_LIMIT, "peak {} bytes over the limit", b.peak);
        // The walker may hold `discovery_buffer_size` files in flight. A
        // 20k-file tree cannot fill the high-throughput preset's 50K
        // buffer, so there the part of the buffer the small tree left
        // empty may be filled too, at no more than 128 bytes a file.
        let unfilled = (sc.discovery_buffer_size as u64).saturating_sub(a.files);
        let allowed = a.peak as f64 * (1.0 + GROWTH_LIMIT) + (unfilled * 128) as f64;
        assert!(
            b.peak as f64 <= allowed,
            "memory grew with the tree: {} -> {} bytes (allowed {allowed})",
            a.peak,
            b.peak
        );
    }

    // The command-line tool, as a user runs it, on the same tree.
    let mib = cli_peak_mib(&["scan", "--parallel-scan"], large.path());
    println!("dedupe scan, 100k files: peak {mib:.1} MiB");
    assert!(mib < 32.0, "CLI scan peaked at {mib} MiB");

    // Duplicate finding must hold every file that shares a size, so its
    // memory grows with the tree, but by a bounded amount per file. Here
    // every file is a candidate (sizes 0-64 bytes), the worst case.
    let small_find = cli_peak_mib(&["find"], small.path());
    let large_find = cli_peak_mib(&["find"], large.path());
    let per_file = (large_find - small_find) * 1_048_576.0 / 80_000.0;
    println!("dedupe find: 20k files {small_find:.1} MiB, 100k files {large_find:.1} MiB: {per_file:.0} bytes per added file");
    assert!(
        large_find < PEAK_LIMIT as f64 / 1_048_576.0,
        "find peaked at {large_find} MiB"
    );
    assert!(
        per_file <= PER_CANDIDATE as f64,
        "{per_file:.0} bytes per candidate"
    );
}

/// What the pipeline may spend per candidate file: measured at 151-155
/// bytes on this tree, where every file is a candidate and most are
/// settled alone (each keeps its path, identity and the digest bits beyond
/// its key: 72 bytes, plus its trie entry and name); the limit leaves about
/// 15% for allocator noise, so a backlog that stops being bounded (about
/// 60 bytes more per file) fails it.
const PER_CANDIDATE: u64 = 175;

/// Runs the `dedupe` binary with `--stats` and reads the peak it reports.
fn cli_peak_mib(args: &[&str], root: &Path) -> f64 {
    // A cache of its own: one left by an earlier run of this test would
    // answer from it and measure something else.
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dedupe"))
        .env("XDG_CACHE_HOME", cache.path())
        .args(args)
        .args(["--stats", "--progress", "never"])
        .arg(root)
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("peak memory: "))
        .unwrap_or_else(|| panic!("no peak line in {err}"));
    let (num, unit) = line.split_once(' ').unwrap();
    num.parse::<f64>().unwrap()
        * match unit {
            "MiB" => 1.0,
            "KiB" => 1.0 / 1024.0,
            other => panic!("unexpected unit {other}"),
        }
}
