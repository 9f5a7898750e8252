use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use super::store::{Query, StoreError, Stored};
use super::*;
use crate::entry::FileId;
use crate::pipeline::keys::FileStamp;
use crate::pipeline::stage::{full, StageSpec, QUICK};
use crate::HashAlgo;

fn stamp(path: &Path) -> FileStamp {
    let m = fs::metadata(path).unwrap();
    FileStamp {
        size: m.len(),
        id: FileId {
            dev: m.dev(),
            ino: m.ino(),
        },
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
    }
}

fn request<'a>(path: &'a Path, spec: &'static StageSpec) -> KeyRequest<'a> {
    KeyRequest {
        path,
        stamp: stamp(path),
        spec,
    }
}

fn ask(cache: &mut HashCache, r: &KeyRequest<'_>) -> Option<StageKey> {
    let mut a = [None];
    cache.lookup(std::slice::from_ref(r), &mut a);
    a[0]
}

fn full_key(b: u8) -> StageKey {
    StageKey::Full(Digest::from_bytes(HashAlgo::Blake3, &[b; 32]).unwrap())
}

#[test]
fn keys_come_back_only_for_the_same_file_unchanged_and_the_same_spec() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, vec![7u8; 100_000]).unwrap();
    let mut cache = HashCache::open(&dir.path().join("cache"))
        .unwrap()
        .racy_window(Duration::ZERO);
    let whole = request(&f, full(HashAlgo::Blake3));
    let quick = request(&f, &QUICK);
    cache.computed(&whole, &full_key(1));
    cache.computed(&quick, &StageKey::Partial([3, 4]));
    cache.finish();
    assert_eq!(ask(&mut cache, &whole), Some(full_key(1)));
    assert_eq!(ask(&mut cache, &quick), Some(StageKey::Partial([3, 4])));
    // Another spec of the same stage: never reused.
    let other = request(&f, full(HashAlgo::Xxh3));
    assert_eq!(ask(&mut cache, &other), None);
    // Any part of the stamp differing: no answer.
    for change in 0..3 {
        let mut r = whole;
        match change {
            0 => r.stamp.size += 1,
            1 => r.stamp.mtime_ns += 1,
            _ => r.stamp.ctime_ns += 1,
        }
        assert_eq!(ask(&mut cache, &r), None, "change {change}");
    }
    let c = cache.probe().counters();
    assert_eq!((c.hits, c.stored, c.racy, c.dropped), (2, 2, 0, 0), "{c:?}");
    assert!(c.warnings.is_empty(), "{c:?}");

    // The file is rewritten: its old keys go when the new one is stored.
    drop(cache);
    fs::write(&f, vec![8u8; 100_000]).unwrap();
    let mut cache = HashCache::open(&dir.path().join("cache"))
        .unwrap()
        .racy_window(Duration::ZERO);
    let full2 = request(&f, full(HashAlgo::Blake3));
    assert_eq!(ask(&mut cache, &full2), None);
    cache.computed(&full2, &full_key(2));
    cache.finish();
    assert_eq!(ask(&mut cache, &full2), Some(full_key(2)));
    // The quick key stored for the old bytes is no answer for the new.
    assert_eq!(ask(&mut cache, &request(&f, &QUICK)), None);

    // A stored key of the wrong length is no answer either.
    let quick2 = request(&f, &QUICK);
    cache.computed(&quick2, &StageKey::Partial([5, 6]));
    cache.finish();
    assert_eq!(ask(&mut cache, &quick2), Some(StageKey::Partial([5, 6])));
    let db = rusqlite::Connection::open(dir.path().join("cache").join(FILE_NAME)).unwrap();
    db.execute("UPDATE entries SET key = x'0102'", []).unwrap();
    assert_eq!(ask(&mut cache, &quick2), None);
    assert_eq!(ask(&mut cache, &full2), None);
}

#[test]
fn a_file_changed_moments_before_its_hashing_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, b"fresh").unwrap();
    let mut cache = HashCache::open(&dir.path().join("cache"))
        .unwrap()
        .small_files(0);
    let r = request(&f, full(HashAlgo::Blake3));
    cache.computed(&r, &full_key(1));
    cache.finish();
    assert_eq!(ask(&mut cache, &r), None);
    let c = cache.probe().counters();
    assert_eq!((c.racy, c.stored), (1, 0), "{c:?}");
}

#[test]
fn small_files_are_stored_only_when_read_from_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, vec![1u8; 4096]).unwrap();
    let g = dir.path().join("g");
    fs::write(&g, vec![2u8; 4097]).unwrap();
    let mut cache = HashCache::open(&dir.path().join("cache"))
        .unwrap()
        .racy_window(Duration::ZERO)
        .small_files(4096);
    assert_eq!(cache.small_up_to(), 4096);
    assert_eq!(cache.answers_above(), 0);
    let r = request(&f, full(HashAlgo::Blake3));
    // From the page cache, or from who knows where: not worth a row.
    cache.computed(&r, &full_key(1));
    cache.computed_read(&r, &full_key(1), &ReadFacts::new(5, Some(false)));
    cache.finish();
    assert_eq!(ask(&mut cache, &r), None);
    assert_eq!(cache.probe().counters().stored, 0);
    // From the disk: kept. A file above the size is kept either way.
    cache.computed_read(&r, &full_key(2), &ReadFacts::new(5, Some(true)));
    let rg = request(&g, full(HashAlgo::Blake3));
    cache.computed_read(&rg, &full_key(3), &ReadFacts::new(5, Some(false)));
    cache.finish();
    assert_eq!(ask(&mut cache, &r), Some(full_key(2)));
    assert_eq!(ask(&mut cache, &rg), Some(full_key(3)));
    let c = cache.probe().counters();
    assert_eq!((c.stored, c.hits, c.misses), (2, 2, 1), "{c:?}");
}

/// Writes a cache with one entry for `f` and returns its directory.
fn filled(root: &Path, f: &Path) -> std::path::PathBuf {
    let dir = root.join("cache");
    let mut cache = HashCache::open(&dir).unwrap().racy_window(Duration::ZERO);
    cache.computed(&request(f, full(HashAlgo::Blake3)), &full_key(5));
    cache.finish();
    drop(cache);
    dir
}

#[test]
fn an_unusable_file_is_moved_aside_with_a_warning_and_a_new_cache_works() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    fs::write(&f, vec![3u8; 10_000]).unwrap();
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 6] = [
        ("random bytes", |p| {
            let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 7919 % 251) as u8).collect();
            fs::write(p, bytes).unwrap();
        }),
        ("truncated", |p| {
            let len = fs::metadata(p).unwrap().len();
            fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }),
        ("another program's SQLite file", |p| {
            fs::remove_file(p).unwrap();
            let c = rusqlite::Connection::open(p).unwrap();
            c.execute_batch(
                "PRAGMA application_id=42; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        }),
        ("another program's SQLite file without an id", |p| {
            fs::remove_file(p).unwrap();
            let c = rusqlite::Connection::open(p).unwrap();
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
                .unwrap();
        }),
        ("an older schema", |p| {
            let c = rusqlite::Connection::open(p).unwrap();
            c.execute_batch("PRAGMA user_version=0; PRAGMA user_version=99;")
                .unwrap();
        }),
        ("a text file", |p| {
            fs::write(p, "{\"not\": \"a database\"}\n").unwrap();
        }),
    ];
    for (what, damage) in damages {
        let root = tempfile::tempdir().unwrap();
        let dir = filled(root.path(), &f);
        let file = dir.join(FILE_NAME);
        // Fold the write-ahead log into the file first, as a clean exit
        // does, so truncation cuts real pages.
        let _ = fs::remove_file(dir.join(format!("{FILE_NAME}-shm")));
        damage(&file);
        let mut cache = HashCache::open(&dir)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .racy_window(Duration::ZERO);
        let c = cache.probe().counters();
        assert_eq!(c.warnings.len(), 1, "{what}: {c:?}");
        assert!(c.warnings[0].contains("moved aside"), "{what}: {c:?}");
        let aside: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".bad-"))
            .collect();
        assert_eq!(aside.len(), 1, "{what}");
        // Nothing of the old file is answered; the new one works.
        let r = request(&f, full(HashAlgo::Blake3));
        assert_eq!(ask(&mut cache, &r), None, "{what}");
        cache.computed(&r, &full_key(6));
        cache.finish();
        assert_eq!(ask(&mut cache, &r), Some(full_key(6)), "{what}");
    }
}

/// Damage past what opening a file checks (its first page, its schema):
/// only a lookup finds it. The file is moved aside then, so the next run
/// starts anew instead of failing the same way every time.
#[test]
fn damage_found_by_a_lookup_moves_the_file_aside_for_the_next_run() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    fs::write(&f, vec![4u8; 10_000]).unwrap();
    let dir = filled(t.path(), &f);
    let file = dir.join(FILE_NAME);
    let _ = fs::remove_file(dir.join(format!("{FILE_NAME}-shm")));
    let len = usize::try_from(fs::metadata(&file).unwrap().len()).unwrap();
    let mut bytes = fs::read(&file).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    assert!(len > 2 * page, "more pages than the first: {len}");
    for (i, b) in bytes[page..].iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    fs::write(&file, &bytes).unwrap();

    let mut cache = HashCache::open(&dir).unwrap().racy_window(Duration::ZERO);
    assert!(
        cache.probe().counters().warnings.is_empty(),
        "opens as fine"
    );
    let r = request(&f, full(HashAlgo::Blake3));
    assert_eq!(ask(&mut cache, &r), None);
    let c = cache.probe().counters();
    assert_eq!(c.warnings.len(), 1, "{c:?}");
    assert!(c.warnings[0].contains("moved aside"), "{c:?}");
    assert!(!file.exists(), "the damaged file is no longer in place");
    cache.computed(&r, &full_key(7));
    cache.finish();
    drop(cache);

    let mut cache = HashCache::open(&dir).unwrap().racy_window(Duration::ZERO);
    let r = request(&f, full(HashAlgo::Blake3));
    assert_eq!(ask(&mut cache, &r), None, "a new file: nothing known");
    cache.computed(&r, &full_key(8));
    cache.finish();
    assert_eq!(ask(&mut cache, &r), Some(full_key(8)));
    let c = cache.probe().counters();
    assert!(c.warnings.is_empty(), "{c:?}");
}

#[test]
fn a_directory_that_cannot_be_made_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("file");
    fs::write(&file, b"x").unwrap();
    let Err(e) = HashCache::open(&file.join("cache")) else {
        panic!("a cache under a regular file");
    };
    assert!(e.to_string().contains("cannot use the hash cache"), "{e}");
}

#[test]
fn the_directory_is_made_private() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a/b/dedupe");
    let _ = HashCache::open(&dir).unwrap();
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

/// A store whose every call fails.
struct Broken;

impl Store for Broken {
    fn get(&mut self, _: &[Query<'_>], _: &mut [Option<Stored>]) -> Result<(), StoreError> {
        Err(StoreError::Corrupt(
            "database disk image is malformed".into(),
        ))
    }
    fn put(&mut self, _: &[Write], _: i64) -> Result<(), StoreError> {
        Err(StoreError::Full("database or disk is full".into()))
    }
}

#[test]
fn a_store_failing_mid_run_is_left_alone_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, vec![1u8; 10_000]).unwrap();
    let mut cache =
        HashCache::with_stores(Box::new(Broken), Box::new(Broken)).racy_window(Duration::ZERO);
    let r = request(&f, full(HashAlgo::Blake3));
    assert_eq!(ask(&mut cache, &r), None);
    assert_eq!(ask(&mut cache, &r), None);
    cache.computed(&r, &full_key(1));
    cache.computed(&r, &full_key(1));
    cache.finish();
    cache.computed(&r, &full_key(1));
    cache.finish();
    let c = cache.probe().counters();
    assert_eq!(
        c.warnings.len(),
        2,
        "one for lookups, one for writes: {c:?}"
    );
    assert_eq!(c.dropped, 3, "{c:?}");
}

/// Runs that start together on a new cache directory: one creates the
/// schema while the others look at the header, and none may take the
/// half-made file for another program's.
#[test]
fn caches_opened_at_once_on_a_new_file_all_use_it() {
    for round in 0..40 {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        let start = std::sync::Barrier::new(6);
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    start.wait();
                    let cache = HashCache::open(&dir).unwrap();
                    let c = cache.probe().counters();
                    assert!(c.warnings.is_empty(), "round {round}: {c:?}");
                });
            }
        });
    }
}

#[test]
fn two_caches_on_one_file_write_at_once_and_lose_nothing() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("cache");
    let files: Vec<_> = (0..400)
        .map(|i| {
            let p = t.path().join(format!("f{i}"));
            fs::write(&p, i.to_string().repeat(100)).unwrap();
            p
        })
        .collect();
    std::thread::scope(|s| {
        for half in [0, 1] {
            let (files, dir) = (&files, &dir);
            s.spawn(move || {
                let mut cache = HashCache::open(dir)
                    .unwrap()
                    .racy_window(Duration::ZERO)
                    .small_files(0);
                for (i, f) in files.iter().enumerate().filter(|(i, _)| i % 2 == half) {
                    cache.computed(&request(f, full(HashAlgo::Blake3)), &full_key(i as u8));
                    if i % 50 == 0 {
                        cache.finish();
                    }
                }
                cache.finish();
                let c = cache.probe().counters();
                assert!(c.warnings.is_empty(), "{c:?}");
            });
        }
    });
    let mut cache = HashCache::open(&dir).unwrap().small_files(0);
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            ask(&mut cache, &request(f, full(HashAlgo::Blake3))),
            Some(full_key(i as u8))
        );
    }
    let s = stats(&dir).unwrap();
    assert_eq!((s.files, s.keys), (400, 400));
}

#[test]
fn an_entry_used_a_day_after_its_last_use_is_marked_used_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs::write(&a, vec![1u8; 10_000]).unwrap();
    fs::write(&b, vec![2u8; 10_000]).unwrap();
    let cache_dir = dir.path().join("cache");
    let mut cache = HashCache::open(&cache_dir)
        .unwrap()
        .racy_window(Duration::ZERO);
    let (ra, rb) = (
        request(&a, full(HashAlgo::Blake3)),
        request(&b, full(HashAlgo::Blake3)),
    );
    cache.computed(&ra, &full_key(1));
    cache.computed(&rb, &full_key(2));
    cache.finish();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = i64::try_from(now).unwrap();
    // `a` last used two days ago, `b` two hours ago.
    let db = rusqlite::Connection::open(cache_dir.join(FILE_NAME)).unwrap();
    let set = |path: &Path, seen: i64| {
        db.execute(
            "UPDATE entries SET seen = ?1 WHERE path = ?2",
            rusqlite::params![seen, path.as_os_str().as_encoded_bytes()],
        )
        .unwrap()
    };
    assert_eq!(set(&a, now - 2 * 86_400), 1);
    assert_eq!(set(&b, now - 2 * 3600), 1);
    assert_eq!(ask(&mut cache, &ra), Some(full_key(1)));
    assert_eq!(ask(&mut cache, &rb), Some(full_key(2)));
    cache.finish();
    let seen = |path: &Path| -> i64 {
        db.query_row(
            "SELECT seen FROM entries WHERE path = ?1",
            [path.as_os_str().as_encoded_bytes()],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(seen(&a) >= now, "refreshed");
    assert_eq!(
        seen(&b),
        now - 2 * 3600,
        "used within a day: not written again"
    );
}

#[test]
fn dropping_the_cache_commits_what_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, vec![4u8; 10_000]).unwrap();
    let r = request(&f, full(HashAlgo::Blake3));
    let mut cache = HashCache::open(&dir.path().join("cache"))
        .unwrap()
        .racy_window(Duration::ZERO);
    cache.computed(&r, &full_key(9));
    drop(cache);
    let mut cache = HashCache::open(&dir.path().join("cache")).unwrap();
    assert_eq!(ask(&mut cache, &r), Some(full_key(9)));
}

/// A store that is busy for its first `busy` commits, then records the
/// size of each batch it commits.
struct Script {
    busy: u32,
    batches: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

impl Store for Script {
    fn get(&mut self, _: &[Query<'_>], _: &mut [Option<Stored>]) -> Result<(), StoreError> {
        Ok(())
    }
    fn put(&mut self, writes: &[Write], _: i64) -> Result<(), StoreError> {
        if self.busy > 0 {
            self.busy -= 1;
            return Err(StoreError::Busy);
        }
        self.batches.lock().unwrap().push(writes.len());
        Ok(())
    }
}

/// A cache that stores into `writer` (and finds nothing), with a file to
/// give it keys of (kept while the directory is).
fn writing_to(writer: impl Store + 'static) -> (tempfile::TempDir, std::path::PathBuf, HashCache) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    fs::write(&f, vec![4u8; 10_000]).unwrap();
    let cache =
        HashCache::with_stores(Box::new(Broken), Box::new(writer)).racy_window(Duration::ZERO);
    (dir, f, cache)
}

/// `keys` keys through a cache whose writer is `Script { busy }`: the
/// batches committed and the counters.
fn script(busy: u32, keys: usize) -> (Vec<usize>, CacheCounters) {
    let batches = std::sync::Arc::default();
    let writer = Script {
        busy,
        batches: std::sync::Arc::clone(&batches),
    };
    let (_dir, f, mut cache) = writing_to(writer);
    let r = request(&f, full(HashAlgo::Blake3));
    for _ in 0..keys {
        cache.computed(&r, &full_key(1));
    }
    cache.finish();
    let c = cache.probe().counters();
    drop(cache);
    let b = batches.lock().unwrap().clone();
    (b, c)
}

#[test]
fn a_busy_store_is_retried_three_times_then_the_batch_is_dropped() {
    let (batches, c) = script(3, 1);
    assert_eq!(batches, [1]);
    assert!(c.warnings.is_empty() && c.dropped == 0, "{c:?}");
    let (batches, c) = script(4, 1);
    assert!(batches.is_empty());
    assert_eq!((c.warnings.len(), c.dropped), (1, 1), "{c:?}");
    assert!(c.warnings[0].contains("locked by another process"), "{c:?}");
}

#[test]
fn writes_are_committed_in_batches_of_commit_rows() {
    let (batches, _) = script(0, COMMIT_ROWS + 1);
    assert_eq!(batches, [COMMIT_ROWS, 1]);
}

/// A store whose first commit says it began, then waits to be let go.
struct Stalled {
    began: crossbeam_channel::Sender<()>,
    go: crossbeam_channel::Receiver<()>,
    rows: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Store for Stalled {
    fn get(&mut self, _: &[Query<'_>], _: &mut [Option<Stored>]) -> Result<(), StoreError> {
        Ok(())
    }
    fn put(&mut self, writes: &[Write], _: i64) -> Result<(), StoreError> {
        if self.began.send(()).is_ok() {
            let _ = self.go.recv();
        }
        self.rows.fetch_add(writes.len(), Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn a_writer_that_falls_behind_drops_keys_rather_than_queue_them() {
    let (began_tx, began) = crossbeam_channel::bounded(1);
    let (go, go_rx) = crossbeam_channel::bounded(1);
    let rows = std::sync::Arc::default();
    let store = Stalled {
        began: began_tx,
        go: go_rx,
        rows: std::sync::Arc::clone(&rows),
    };
    let (_dir, f, mut cache) = writing_to(store);
    let r = request(&f, full(HashAlgo::Blake3));
    // A full batch: the writer takes it and sticks in its commit.
    for _ in 0..COMMIT_ROWS {
        cache.computed(&r, &full_key(1));
    }
    began.recv().unwrap();
    // Now only this thread moves the queue: it takes exactly QUEUE more.
    for _ in 0..writer::QUEUE + 10 {
        cache.computed(&r, &full_key(1));
    }
    let c = cache.probe().counters();
    // Let the writer go before asserting: a failed assertion would
    // otherwise wait for it for good.
    drop(began);
    go.send(()).unwrap();
    cache.finish();
    assert_eq!(
        (c.stored, c.dropped),
        ((COMMIT_ROWS + writer::QUEUE) as u64, 10)
    );
    assert_eq!(rows.load(Ordering::Relaxed), COMMIT_ROWS + writer::QUEUE);
}
