//! The reader on real files: what each stage reads, and every way a file
//! can change under it.

use super::*;
use crate::entry::time_ns;
use crate::pipeline::stage::{self, StageSpec, QUICK, STATISTICAL};
use std::path::Path;

const FULL: &StageSpec = stage::full(HashAlgo::Blake3);
/// The statistical stage's blocks, as its spec defines them.
const SAMPLES: u64 = 16;
const SAMPLE: u64 = 4096;
const EDGE: u64 = 4096;

fn target(path: &Path) -> Target {
    let st = rustix::fs::stat(path).unwrap();
    let m = Meta::of_stat(&st);
    Target {
        path: path.to_path_buf(),
        base: None,
        expect: FileStamp {
            size: m.size,
            id: m.id,
            mtime_ns: time_ns(m.mtime),
            ctime_ns: time_ns(m.ctime),
        },
    }
}

fn reader() -> Reader {
    Reader::new(Arc::new(AtomicBool::new(false)))
}

fn run(r: &mut Reader, file: Target, kind: TaskKind) -> Done {
    r.run(
        Task {
            cand: 0,
            file,
            kind,
        },
        None,
    )
}

fn kind_of(o: &Outcome) -> Option<ErrorKind> {
    match o {
        Outcome::Failed(e) | Outcome::OtherChanged(e) => Some(e.kind),
        _ => None,
    }
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + i / 4099) as u8).collect()
}

#[test]
fn the_full_hash_covers_every_byte_in_every_size_regime() {
    let t = tempfile::tempdir().unwrap();
    let mut r = reader();
    // Around each boundary the reader has: one read, chunked reads, a
    // last partial chunk.
    let sizes = [
        1,
        4095,
        65536,
        65537,
        READ_BUF - 1,
        READ_BUF,
        READ_BUF + 1,
        3 * READ_BUF + 500_000,
    ];
    for size in sizes {
        let base = pattern(size);
        let a = t.path().join(format!("a{size}"));
        std::fs::write(&a, &base).unwrap();
        let digest =
            |p: &Path, r: &mut Reader| match run(r, target(p), TaskKind::Stage(FULL)).outcome {
                Outcome::Full(d) => d,
                _ => panic!("no digest for {}", p.display()),
            };
        let want = {
            let mut h = HashAlgo::Blake3.hasher();
            h.update(&base);
            h.finish()
        };
        assert_eq!(digest(&a, &mut r), want, "size {size}");
        for at in [0, size / 2, size.saturating_sub(100_000), size - 1] {
            let mut v = base.clone();
            v[at] ^= 1;
            let b = t.path().join(format!("b{size}-{at}"));
            std::fs::write(&b, &v).unwrap();
            assert_ne!(digest(&b, &mut r), want, "size {size}, byte {at}");
        }
    }
}

#[test]
fn quick_and_statistical_keys_read_their_parts_only() {
    let t = tempfile::tempdir().unwrap();
    let size = 9 * READ_BUF + 500_000;
    let base = pattern(size);
    let a = t.path().join("a");
    std::fs::write(&a, &base).unwrap();
    let mut r = reader();
    let key = |p: &Path, stage: &'static StageSpec, r: &mut Reader| {
        let d = run(r, target(p), TaskKind::Stage(stage));
        match d.outcome {
            Outcome::Key(k) => (k, d.bytes_read),
            _ => panic!("no key"),
        }
    };
    let (quick, read) = key(&a, &QUICK, &mut r);
    assert_eq!(read, 2 * EDGE, "head and tail only");
    let (stat, read) = key(&a, &STATISTICAL, &mut r);
    assert_eq!(read, SAMPLES * SAMPLE);
    // The last byte is in the quick check's tail; a byte at a sample start
    // in the statistical key; a byte in neither changes neither.
    for (at, quick_differs, stat_differs) in [
        (size - 1, true, true),
        (0, true, true),
        (
            stage::sample_offset(size as u64, SAMPLE, SAMPLES, 7) as usize,
            false,
            true,
        ),
        (size - 100_000, false, false),
    ] {
        let mut v = base.clone();
        v[at] ^= 1;
        let b = t.path().join(format!("b{at}"));
        std::fs::write(&b, &v).unwrap();
        assert_eq!(
            key(&b, &QUICK, &mut r).0 != quick,
            quick_differs,
            "quick, byte {at}"
        );
        assert_eq!(
            key(&b, &STATISTICAL, &mut r).0 != stat,
            stat_differs,
            "stat, byte {at}"
        );
    }
}

#[test]
fn sample_offsets_do_not_overflow() {
    let size = u64::MAX - 10;
    let last = stage::sample_offset(size, SAMPLE, SAMPLES, SAMPLES - 1);
    assert_eq!(last, size - SAMPLE, "the last sample ends at the last byte");
    let offsets: Vec<u64> = (0..SAMPLES)
        .map(|i| stage::sample_offset(size, SAMPLE, SAMPLES, i))
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
}

/// Rewrites `path` in place with content of the same size, then sets its
/// modification time back: only the status-change time tells.
fn rewrite_keeping_mtime(path: &Path) {
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    let mut v = std::fs::read(path).unwrap();
    v[0] ^= 1;
    std::fs::write(path, &v).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(before).unwrap();
}

#[test]
fn a_file_changed_during_its_read_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    std::fs::write(&a, pattern(3 * READ_BUF)).unwrap();
    let mut r = reader();
    let victim = a.clone();
    r.after_read = Some(Box::new(move || rewrite_keeping_mtime(&victim)));
    for stage in [&QUICK, &STATISTICAL, FULL] {
        let d = run(&mut r, target(&a), TaskKind::Stage(stage));
        assert_eq!(
            kind_of(&d.outcome),
            Some(ErrorKind::Changed),
            "{}",
            stage.id
        );
    }
}

#[test]
fn a_file_changed_before_its_read_or_grown_or_shrunk_is_caught() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    std::fs::write(&a, pattern(200_000)).unwrap();
    let mut r = reader();
    let expect = target(&a);
    rewrite_keeping_mtime(&a);
    let d = run(&mut r, expect, TaskKind::Stage(FULL));
    assert_eq!(kind_of(&d.outcome), Some(ErrorKind::Changed));
    // Same inode, same recorded size, but the file is longer or shorter
    // when read.
    for len in [300_000u64, 100_000] {
        let expect = target(&a);
        let f = std::fs::File::options().write(true).open(&a).unwrap();
        f.set_len(len).unwrap();
        let d = run(&mut r, expect, TaskKind::Stage(FULL));
        let Outcome::Failed(e) = d.outcome else {
            panic!("a file of the wrong length was hashed")
        };
        assert_eq!(e.kind, ErrorKind::Changed, "{e}");
    }
}

#[test]
fn verify_compares_bytes_and_blames_the_file_that_changed() {
    let t = tempfile::tempdir().unwrap();
    let base = pattern(300_000);
    let mut other = base.clone();
    other[150_000] ^= 1;
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    std::fs::write(&a, &base).unwrap();
    std::fs::write(&b, &base).unwrap();
    std::fs::write(&c, &other).unwrap();
    let mut r = reader();
    let verify =
        |r: &mut Reader, x: &Path, y: &Path| run(r, target(x), TaskKind::Verify(target(y))).outcome;
    assert!(matches!(verify(&mut r, &a, &b), Outcome::Same));
    assert!(matches!(verify(&mut r, &a, &c), Outcome::Differ));
    // The file compared against changed: it is the one named.
    let expect_b = target(&b);
    rewrite_keeping_mtime(&b);
    match run(&mut r, target(&a), TaskKind::Verify(expect_b)).outcome {
        Outcome::OtherChanged(e) => assert_eq!(e.path, b),
        _ => panic!("the changed file was not blamed"),
    }
}

/// Compares two equal files of `size` bytes while `change` alters one of
/// them, first the file compared against ("b"), then the candidate ("a"):
/// the one changed must be the one blamed.
fn assert_change_is_blamed(size: usize, change: fn(&Path)) {
    let t = tempfile::tempdir().unwrap();
    let base = pattern(size);
    for (changed, other_blamed) in [("b", true), ("a", false)] {
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::write(&a, &base).unwrap();
        std::fs::write(&b, &base).unwrap();
        let mut r = reader();
        let victim = t.path().join(changed);
        r.before_compare = Some(Box::new(move || change(&victim)));
        let d = run(&mut r, target(&a), TaskKind::Verify(target(&b)));
        match d.outcome {
            Outcome::OtherChanged(e) if other_blamed => assert_eq!(e.path, b),
            Outcome::Failed(e) if !other_blamed => assert_eq!(e.path, a),
            _ => panic!("{changed} changed but was not the one blamed"),
        }
    }
}

#[test]
fn a_comparison_blames_whichever_file_was_cut_short_during_it() {
    assert_change_is_blamed(300_000, |p| {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_len(100_000).unwrap();
    });
}

#[test]
fn a_comparison_blames_whichever_file_grew_during_it() {
    // Not a multiple of the comparison chunk: the last chunk is partial.
    assert_change_is_blamed(300_001, |p| {
        use std::io::Write as _;
        let mut f = std::fs::File::options().append(true).open(p).unwrap();
        f.write_all(b"appended").unwrap();
    });
}

#[test]
fn a_cancelled_read_stops_at_the_next_chunk() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    std::fs::write(&a, pattern(4 * READ_BUF)).unwrap();
    let cancel = Arc::new(AtomicBool::new(true));
    let mut r = Reader::new(Arc::clone(&cancel));
    let d = run(&mut r, target(&a), TaskKind::Stage(FULL));
    assert!(matches!(d.outcome, Outcome::Cancelled));
    assert!(
        d.bytes_read < 4 * READ_BUF as u64,
        "read {} bytes",
        d.bytes_read
    );
    let d = run(&mut r, target(&a), TaskKind::Verify(target(&a)));
    assert!(matches!(d.outcome, Outcome::Cancelled));
}

#[test]
fn a_fifo_in_place_of_a_file_is_not_read() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    std::fs::write(&a, b"content").unwrap();
    let expect = target(&a);
    std::fs::remove_file(&a).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &a,
        FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let d = run(&mut reader(), expect, TaskKind::Stage(FULL));
    assert_eq!(kind_of(&d.outcome), Some(ErrorKind::Changed));
    assert_eq!(d.bytes_read, 0);
}

fn stage_task(cand: u32, file: Target, spec: &'static StageSpec) -> Task {
    Task {
        cand,
        file,
        kind: TaskKind::Stage(spec),
    }
}

#[test]
fn a_file_opened_ahead_and_changed_before_its_read_is_caught() {
    // Small files are read whole right after they are opened and not
    // checked again; one opened ahead (prefetched) waits, so it must be.
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    std::fs::write(&a, pattern(10_000)).unwrap();
    std::fs::write(&b, pattern(10_000)).unwrap();
    let mut r = reader();
    let fired = std::sync::atomic::AtomicBool::new(false);
    let victim = b.clone();
    r.after_read = Some(Box::new(move || {
        // After `a` is read, `b` is already open: change it then, once.
        if !fired.swap(true, Ordering::SeqCst) {
            rewrite_keeping_mtime(&victim);
        }
    }));
    let job = vec![
        stage_task(0, target(&a), FULL),
        stage_task(1, target(&b), FULL),
    ];
    let done = r.run_job(job, 4);
    assert_eq!(done.iter().map(|d| d.cand).collect::<Vec<_>>(), [0, 1]);
    assert!(matches!(done[0].outcome, Outcome::Full(_)));
    assert_eq!(kind_of(&done[1].outcome), Some(ErrorKind::Changed));
}

#[test]
fn prefetching_changes_no_outcome() {
    let t = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, size) in [0usize, 1, 5000, 70_000, 300_000].into_iter().enumerate() {
        let p = t.path().join(format!("f{i}"));
        std::fs::write(&p, pattern(size)).unwrap();
        files.push(p);
    }
    let gone = t.path().join("gone");
    std::fs::write(&gone, b"x").unwrap();
    let gone_target = target(&gone);
    std::fs::remove_file(&gone).unwrap();
    let job = || {
        let mut v: Vec<Task> = files
            .iter()
            .zip(0..)
            .flat_map(|(p, c)| {
                [
                    stage_task(2 * c, target(p), &QUICK),
                    stage_task(2 * c + 1, target(p), FULL),
                ]
            })
            .collect();
        v.insert(3, stage_task(99, gone_target.clone(), FULL));
        v.push(Task {
            cand: 100,
            file: target(&files[2]),
            kind: TaskKind::Verify(target(&files[2])),
        });
        v
    };
    let describe = |d: &Done| {
        let o = match &d.outcome {
            Outcome::Key(k) => format!("key {k:?}"),
            Outcome::Full(x) => format!("full {x:?}"),
            Outcome::Same => "same".into(),
            Outcome::Failed(e) => format!("failed {:?}", e.kind),
            _ => "other".into(),
        };
        (d.cand, o, d.bytes_read)
    };
    let mut r = reader();
    let plain: Vec<_> = r.run_job(job(), 0).iter().map(describe).collect();
    for ahead in [1, 3, 16] {
        let pre: Vec<_> = r.run_job(job(), ahead).iter().map(describe).collect();
        assert_eq!(pre, plain, "ahead {ahead}");
    }
    assert!(
        plain.iter().any(|d| d.0 == 99 && d.1 == "failed Vanished"),
        "{plain:?}"
    );
}

/// Drops a file's pages from the page cache (a clean page is dropped by
/// `POSIX_FADV_DONTNEED`), so its next read goes to the device. The drop
/// can fail while the kernel still holds a page (a journal commit under
/// way, another test's I/O): callers try again until a read shows it
/// worked, and one read from the device in [`TRIES`] is all they need.
fn evict(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

const TRIES: usize = 50;

/// Writes `bytes` to `path` and reads it with `r` until a read comes from
/// the device (see [`evict`]); returns that read.
fn cold_read(r: &mut Reader, path: &Path, bytes: &[u8]) -> Done {
    std::fs::write(path, bytes).unwrap();
    for _ in 0..TRIES {
        evict(path);
        let d = run(r, target(path), TaskKind::Stage(FULL));
        if d.from_disk == Some(true) {
            return d;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("no read of {} came from the device", path.display());
}

#[test]
fn a_probing_reader_tells_a_read_from_the_device_from_one_from_the_page_cache() {
    // Beside the sources, not in $TMPDIR: a tmpfs keeps every page in
    // memory, and nothing there comes from a device.
    let t = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let small = t.path().join("small");
    let large = t.path().join("large");
    let full = |r: &mut Reader, p: &Path| {
        let d = run(r, target(p), TaskKind::Stage(FULL));
        assert!(matches!(d.outcome, Outcome::Full(_)), "{:?}", d.bytes_read);
        d.from_disk
    };
    let mut r = reader().probing(4096);
    // Just read: from the page cache, every time.
    cold_read(&mut r, &small, &pattern(4096));
    for _ in 0..3 {
        assert_eq!(full(&mut r, &small), Some(false));
    }
    // Larger than the probe's size, or a reader that does not probe: not
    // asked, so not known, even from the device.
    std::fs::write(&large, pattern(4097)).unwrap();
    evict(&large);
    assert_eq!(full(&mut r, &large), None);
    evict(&small);
    assert_eq!(full(&mut reader(), &small), None);
    // The digest is the same whichever way the file was read: a probe
    // that met the device and read again, a probe whose own bytes were
    // hashed (from the page cache), a plain read; in each size up to the
    // probe's.
    for size in [1, 100, 4095, 4096] {
        let bytes = pattern(size);
        let cold = cold_read(&mut r, &small, &bytes);
        let warm = run(&mut r, target(&small), TaskKind::Stage(FULL));
        let plain = run(&mut reader(), target(&small), TaskKind::Stage(FULL));
        assert_eq!(warm.from_disk, Some(false));
        let mut h = HashAlgo::Blake3.hasher();
        h.update(&bytes);
        let want = h.finish();
        for d in [&cold, &warm, &plain] {
            assert!(
                matches!(&d.outcome, Outcome::Full(x) if *x == want),
                "{size}"
            );
            assert_eq!(d.bytes_read, size as u64);
        }
    }
}

#[test]
fn files_opened_ahead_are_probed_before_their_prefetch() {
    let t = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let files: Vec<_> = (0..4u8)
        .map(|i| {
            let p = t.path().join(format!("f{i}"));
            std::fs::write(&p, [i; 100]).unwrap();
            p
        })
        .collect();
    let job = || -> Vec<Task> {
        (0..)
            .zip(&files)
            .map(|(c, p)| stage_task(c, target(p), FULL))
            .collect()
    };
    let mut r = reader().probing(4096);
    // Opened ahead and advised to be fetched: probed there, as the read
    // itself may find the bytes the advice brought in. Each file is seen
    // to come from the device in some round (see `evict`).
    let mut seen = [false; 4];
    for _ in 0..TRIES {
        for p in &files {
            evict(p);
        }
        for (i, d) in r.run_job(job(), 3).iter().enumerate() {
            assert!(matches!(d.outcome, Outcome::Full(_)));
            seen[i] |= d.from_disk == Some(true);
        }
        if seen.iter().all(|s| *s) {
            break;
        }
    }
    assert_eq!(seen, [true; 4]);
    let warm: Vec<_> = r.run_job(job(), 3).iter().map(|d| d.from_disk).collect();
    assert_eq!(warm, [Some(false); 4]);
    let plain: Vec<_> = r.run_job(job(), 0).iter().map(|d| d.from_disk).collect();
    assert_eq!(plain, [Some(false); 4]);
}
