//! A persistent hash cache: stage keys kept across runs, so a re-run over
//! an unchanged tree costs a walk, and an interrupted run resumes.
//!
//! [`HashCache`] is a [`KeySource`]: give it to
//! [`FinderBuilder::key_source`](crate::FinderBuilder::key_source). The
//! pipeline asks it, just before a read, for the key a file has under a
//! stage spec; it answers from the store when the file is exactly as it
//! was when the key was stored, and stores what the readers compute.
//!
//! What makes an answer trustworthy:
//! * Entries are keyed by volume name and inode number, never by
//!   `st_dev`, which changes across reboots; volumes whose ctime or name
//!   cannot be trusted are not cached (see `volume.rs`).
//! * A stored key is taken only after a `stat` shows the file is still
//!   the one the walk saw, unchanged (a read would check that too).
//! * An entry is used only when size, mtime and ctime, to the nanosecond,
//!   equal the walk's. A rewrite that puts mtime back (`cp -p`,
//!   `touch -r`) still moves ctime, which nobody can set.
//! * Keys are stored under their stage spec's id (algorithm, offsets,
//!   lengths), so a key is never reused under another definition.
//! * Only keys of files that did not change while read are stored, and
//!   none of a file changed within [`DEFAULT_RACY_WINDOW`] before its read
//!   began:
//!   a write in the same timestamp tick (or under a server clock that is
//!   behind) would leave the stamp unchanged (git's racily-clean rule).
//! * A damaged, truncated, foreign or old-schema file is moved aside with
//!   a warning and a new one started; a store that fails mid-run is no
//!   longer used. The cache can only make a run read less, never answer
//!   differently.
//!
//! Writes go to one writer thread through a bounded queue and are
//! committed every [`COMMIT_EVERY`] or [`COMMIT_ROWS`] rows, so hashing
//! never waits for the disk and a `kill -9` loses at most the last batch.
//! When the queue is full (the disk is slower than hashing) keys are
//! dropped and counted, never waited for.

mod maintain;
mod sqlite;
pub mod store;
mod volume;
mod writer;

use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use maintain::{clear, prune, stats, CacheStats, PruneReport, VolumeStats};
pub use sqlite::FILE_NAME;
use store::{EntryKey, Query, Store, StoreError, Validity, Write};
use volume::Volumes;
pub use writer::{COMMIT_EVERY, COMMIT_ROWS};

use crate::hash::Digest;
use crate::pipeline::keys::{KeyRequest, KeySource, ReadFacts, StageKey};
use crate::pipeline::stage::KeyRead;

/// Files changed this recently when hashed are not stored.
pub const DEFAULT_RACY_WINDOW: Duration = Duration::from_secs(3);
/// Files this small or smaller are small (see
/// [`KeySource::small_up_to`]): stored only when their read went to the
/// device, and looked up only while lookups of them find entries. From
/// the page cache, reading one (a single page) costs as much as looking
/// it up, and lookups run on one thread while reads run on many. Measured
/// on 50k-file trees, warm: a cached re-run of 1 KiB files took
/// 0.30-0.47 s against 0.38-0.57 s reading them, 4 KiB files 0.39-0.52 s
/// against 0.39-0.40 s, 16 KiB files 0.28-0.39 s against 0.49-0.54 s; on
/// the 1M tree of 0-2 KiB files, cached 16.2 s against 7.3 s (a 160 MB
/// cache no longer fits SQLite's page cache), and filling a new cache
/// 1.65x a run without one (every file a row; the target is 1.15x). From
/// the device it is the other way round: on the 100k mixed tree, cold,
/// a re-run that read its 17,509 small candidates took 1.2-1.8 s, one
/// that found them in the cache 0.9-1.1 s.
pub const DEFAULT_SMALL_SIZE: u64 = 4096;
/// An entry used this long after it was last stored or used is marked
/// as used again (for `cache prune --older-than`); more often would be a
/// write per hit.
const SEEN_REFRESH_SECS: i64 = 24 * 3600;

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The directory cannot be created or the file opened or written.
    #[error("cannot use the hash cache in {dir}: {reason}")]
    Unavailable {
        /// The cache directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What a cache did in a run, and anything worth a warning.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheCounters {
    /// Keys answered from the cache.
    pub hits: u64,
    /// Keys asked and not known (or stale).
    pub misses: u64,
    /// Keys handed to the writer.
    pub stored: u64,
    /// Keys not stored: their file changed too recently.
    pub racy: u64,
    /// Keys not stored: the writer was behind, or had failed.
    pub dropped: u64,
    /// Warnings (a file moved aside, a failed write), one line each.
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct Shared {
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    racy: AtomicU64,
    dropped: AtomicU64,
    warnings: Mutex<Vec<String>>,
    /// The cache file, when there is one, and whether damage found in it
    /// during the run has had it moved aside.
    file: Option<PathBuf>,
    moved_aside: AtomicBool,
}

impl Shared {
    fn warn(&self, w: String) {
        self.warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(w);
    }

    /// A lookup or a write failed with `e`, and `what` stopped for this
    /// run. Damage that only a read deep in the file finds (its header
    /// and schema were fine at open) would otherwise stop every later
    /// run the same way: the file is moved aside at once, once, so the
    /// next run starts a new cache. This run's connections keep the old
    /// file open; nothing they read from it is trusted any more.
    fn failed(&self, what: &str, e: &StoreError) {
        let aside = match (e, &self.file) {
            (StoreError::Corrupt(_), Some(file))
                if !self.moved_aside.swap(true, Ordering::SeqCst) =>
            {
                Some(sqlite::move_aside(file).map(|to| (file, to)))
            }
            _ => None,
        };
        self.warn(match aside {
            Some(Ok((file, to))) => format!(
                "hash cache {what} stopped for this run: {e}; {} moved aside to {}, the next run starts a new one",
                file.display(),
                to.display()
            ),
            Some(Err(m)) => format!("hash cache {what} stopped for this run: {e}; it could not be moved aside: {m}"),
            None => format!("hash cache {what} stopped for this run: {e}"),
        });
    }
}

/// Reads a cache's counters while the cache itself belongs to a finder.
#[derive(Clone)]
pub struct CacheProbe(Arc<Shared>);

impl CacheProbe {
    /// The counters so far.
    pub fn counters(&self) -> CacheCounters {
        let s = &self.0;
        CacheCounters {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            stored: s.stored.load(Ordering::Relaxed),
            racy: s.racy.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            warnings: s
                .warnings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

/// The persistent hash cache (see the module docs).
pub struct HashCache {
    reader: Box<dyn Store>,
    writer: writer::Writer,
    volumes: Volumes,
    shared: Arc<Shared>,
    racy_ns: i64,
    small_size: u64,
    /// A lookup failed: the store is no longer asked this run.
    broken: bool,
    /// Relative paths are stored joined to this (for `cache prune`).
    cwd: PathBuf,
}

impl HashCache {
    /// The default directory: `$XDG_CACHE_HOME/dedupe`, else
    /// `$HOME/.cache/dedupe`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("dedupe"))
    }

    /// Opens the SQLite cache in `dir`, creating the directory (mode 0700:
    /// the cache holds paths) and the file as needed. A file that is not a
    /// usable cache is moved aside and a new one started; that is a
    /// warning in [`CacheProbe::counters`], not an error.
    pub fn open(dir: &Path) -> Result<HashCache, CacheError> {
        let unavailable = |reason: String| CacheError::Unavailable {
            dir: dir.to_path_buf(),
            reason,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| unavailable(e.to_string()))?;
        let path = dir.join(FILE_NAME);
        let shared = Arc::new(Shared {
            file: Some(path.clone()),
            ..Shared::default()
        });
        let open_checked = |shared: &Shared| match sqlite::open(&path) {
            Err(sqlite::Unusable::Bad(why)) => {
                let to = sqlite::move_aside(&path).map_err(|e| unavailable(e.to_string()))?;
                shared.warn(format!(
                    "hash cache {} was unusable ({why}); moved aside to {}, starting a new one",
                    path.display(),
                    to.display()
                ));
                sqlite::open(&path).map_err(|e| unavailable(format!("{e:?}")))
            }
            Err(sqlite::Unusable::Unavailable(why)) => Err(unavailable(why)),
            Ok(c) => Ok(c),
        };
        let reader = open_checked(&shared)?;
        prefetch(&path);
        let writer_conn = sqlite::open(&path).map_err(|e| unavailable(format!("{e:?}")))?;
        Ok(HashCache::build(
            Box::new(sqlite::SqliteStore::new(reader)),
            Box::new(sqlite::SqliteStore::new(writer_conn)),
            shared,
        ))
    }

    /// A cache over any [`Store`]: `reader` answers lookups on the
    /// pipeline's thread, `writer` takes the writes on a thread of its own.
    pub fn with_stores(reader: Box<dyn Store>, writer: Box<dyn Store>) -> HashCache {
        HashCache::build(reader, writer, Arc::new(Shared::default()))
    }

    fn build(reader: Box<dyn Store>, writer: Box<dyn Store>, shared: Arc<Shared>) -> HashCache {
        let racy_ns = i64::try_from(DEFAULT_RACY_WINDOW.as_nanos()).unwrap_or(i64::MAX);
        HashCache {
            reader,
            writer: writer::Writer::spawn(writer, Arc::clone(&shared)),
            volumes: Volumes::new(),
            shared,
            racy_ns,
            small_size: DEFAULT_SMALL_SIZE,
            broken: false,
            cwd: std::env::current_dir().unwrap_or_default(),
        }
    }

    /// Files changed less than `window` before their hashing are not
    /// stored (default [`DEFAULT_RACY_WINDOW`]).
    #[must_use]
    pub fn racy_window(mut self, window: Duration) -> HashCache {
        self.racy_ns = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
        self
    }

    /// Files of `bytes` or fewer are small (default
    /// [`DEFAULT_SMALL_SIZE`]; 0: none is).
    #[must_use]
    pub fn small_files(mut self, bytes: u64) -> HashCache {
        self.small_size = bytes;
        self
    }

    /// A handle on the counters and warnings, usable after the cache was
    /// given to a finder.
    pub fn probe(&self) -> CacheProbe {
        CacheProbe(Arc::clone(&self.shared))
    }

    /// The entry a request's file is stored under, or `None` when its
    /// volume cannot be named (then it is not cached).
    fn entry(&mut self, r: &KeyRequest<'_>) -> Option<EntryKey> {
        let dev = r.stamp.id.dev;
        let vol = self.volumes.of(dev, r.path)?.clone();
        if vol.path_keyed {
            Some(EntryKey {
                volume: vol.name,
                ino: 0,
                rel: self.volumes.relative(dev, r.path)?,
            })
        } else {
            Some(EntryKey {
                volume: vol.name,
                ino: r.stamp.id.ino,
                rel: Vec::new(),
            })
        }
    }
}

/// Asks the kernel to read the cache file in the background: a re-run on
/// a cold page cache would otherwise fetch its B-tree pages one random
/// read at a time, on the pipeline's thread.
fn prefetch(path: &Path) {
    /// Larger caches are left to be read as used.
    const PREFETCH_MAX: u64 = 512 << 20;
    if let Ok(f) = fs::File::open(path) {
        if f.metadata().is_ok_and(|m| m.len() <= PREFETCH_MAX) {
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::WillNeed);
        }
    }
}

/// A `stat` time in nanoseconds by the walker's own formula
/// ([`crate::entry::time_ns`]), so comparisons with its stamps agree.
pub(crate) fn stamp_ns(sec: i64, nsec: i64) -> i64 {
    crate::entry::time_ns((sec, u32::try_from(nsec).unwrap_or(0)))
}

/// Whether the file at the request's path is still the one the walk saw,
/// unchanged.
fn still(r: &KeyRequest<'_>) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(r.path).is_ok_and(|m| {
        m.is_file()
            && m.dev() == r.stamp.id.dev
            && m.ino() == r.stamp.id.ino
            && m.len() == r.stamp.size
            && stamp_ns(m.mtime(), m.mtime_nsec()) == r.stamp.mtime_ns
            && stamp_ns(m.ctime(), m.ctime_nsec()) == r.stamp.ctime_ns
    })
}

fn validity(r: &KeyRequest<'_>) -> Validity {
    Validity {
        size: r.stamp.size,
        mtime_ns: r.stamp.mtime_ns,
        ctime_ns: r.stamp.ctime_ns,
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The bytes a key is stored as.
fn key_bytes(key: &StageKey) -> Vec<u8> {
    match key {
        StageKey::Partial(k) => [k[0].to_le_bytes(), k[1].to_le_bytes()].concat(),
        StageKey::Full(d) => d.as_bytes().to_vec(),
    }
}

/// A stored key read back for `read`; `None` if its length is wrong.
fn parse_key(read: KeyRead, bytes: &[u8]) -> Option<StageKey> {
    match read {
        KeyRead::Whole(algo) => Digest::from_bytes(algo, bytes).map(StageKey::Full),
        _ if bytes.len() == 16 => {
            let w = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
            Some(StageKey::Partial([w(0), w(8)]))
        }
        _ => None,
    }
}

impl KeySource for HashCache {
    fn lookup(&mut self, requests: &[KeyRequest<'_>], answers: &mut [Option<StageKey>]) {
        if self.broken {
            return;
        }
        let mut asked: Vec<(usize, EntryKey)> = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            if let Some(e) = self.entry(r) {
                asked.push((i, e));
            }
        }
        if asked.is_empty() {
            return;
        }
        let queries: Vec<Query<'_>> = asked
            .iter()
            .map(|(i, e)| Query {
                entry: e,
                spec: requests[*i].spec.id,
            })
            .collect();
        let mut found = vec![None; queries.len()];
        if let Err(e) = self.reader.get(&queries, &mut found) {
            self.broken = true;
            self.shared.failed("lookups", &e);
            return;
        }
        let now_s = now_ns() / 1_000_000_000;
        for ((i, entry), stored) in asked.into_iter().zip(found) {
            let r = &requests[i];
            let key = stored
                .as_ref()
                .filter(|s| s.valid == validity(r))
                .and_then(|s| parse_key(r.spec.read, &s.key));
            // The walk saw the file a while ago (minutes, without
            // streaming): it must still be that file, unchanged, as a read
            // would check when it opens it.
            let key = key.filter(|_| still(r));
            match key {
                Some(k) => {
                    answers[i] = Some(k);
                    self.shared.hits.fetch_add(1, Ordering::Relaxed);
                    if stored.is_some_and(|s| now_s.saturating_sub(s.seen) > SEEN_REFRESH_SECS) {
                        self.writer.send(Write::Seen(entry));
                    }
                }
                None => {
                    self.shared.misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn small_up_to(&self) -> u64 {
        self.small_size
    }

    fn computed(&mut self, request: &KeyRequest<'_>, key: &StageKey) {
        self.computed_read(request, key, &ReadFacts::default());
    }

    fn computed_read(&mut self, request: &KeyRequest<'_>, key: &StageKey, read: &ReadFacts) {
        if request.stamp.size <= self.small_size && read.from_disk != Some(true) {
            return;
        }
        let read_ns = read.nanos;
        // Measured from when the read began: a write in the same
        // timestamp tick as the stamp, while a long read was going on,
        // would leave the stamp as it was.
        let changed = request.stamp.mtime_ns.max(request.stamp.ctime_ns);
        let began = now_ns().saturating_sub(i64::try_from(read_ns).unwrap_or(i64::MAX));
        if began.saturating_sub(changed) < self.racy_ns {
            self.shared.racy.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(entry) = self.entry(request) else {
            return;
        };
        let path = if request.path.is_absolute() {
            request.path.as_os_str().as_bytes().to_vec()
        } else {
            self.cwd.join(request.path).into_os_string().into_vec()
        };
        let w = Write::Put {
            entry,
            valid: validity(request),
            spec: request.spec.id,
            key: key_bytes(key),
            path,
        };
        if self.writer.send(w) {
            self.shared.stored.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn finish(&mut self) {
        self.writer.flush();
        self.reader.refresh();
    }
}

#[cfg(test)]
mod tests;
