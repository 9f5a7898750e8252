//! The storage engine behind the hash cache, as a small trait: SQLite
//! today (`sqlite.rs`); anything that can look rows up by key and
//! write them in batches could replace it.

use std::fmt;

/// Where a file's entries live: its volume, and its inode number or (on
/// volumes without stable inode numbers) its path within the volume. The
/// other part is 0 or empty.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    /// The volume's name (see the cache module's docs).
    pub volume: std::sync::Arc<str>,
    /// Inode number, 0 on path-keyed volumes.
    pub ino: u64,
    /// Path within the volume, empty on inode-keyed volumes.
    pub rel: Vec<u8>,
}

/// What a file was when its key was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

/// One stored key, as a lookup returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The file it was computed for.
    pub valid: Validity,
    /// The key's bytes (16 for partial keys, the digest for full ones).
    pub key: Vec<u8>,
    /// When the entry was last stored or used, seconds since the epoch.
    pub seen: i64,
}

/// One question: the key of `entry` under the stage spec `spec`.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// The file.
    pub entry: &'a EntryKey,
    /// The stage spec's id.
    pub spec: &'static str,
}

/// One write.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Write {
    /// A key computed for a file that did not change while it was read.
    /// Entries of the same file with another validity are dropped.
    Put {
        /// The file.
        entry: EntryKey,
        /// What it was.
        valid: Validity,
        /// The stage spec's id.
        spec: &'static str,
        /// The key's bytes.
        key: Vec<u8>,
        /// The path it was reached by, for `cache prune`.
        path: Vec<u8>,
    },
    /// An entry was used: it is not stale.
    Seen(EntryKey),
}

/// Why the store failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process holds the lock longer than the busy timeout.
    Busy,
    /// The disk is full or the file cannot be written.
    Full(String),
    /// The store's file is damaged: it should be moved aside.
    Corrupt(String),
    /// Anything else.
    Other(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Busy => f.write_str("the cache is locked by another process"),
            StoreError::Full(s) => write!(f, "the cache cannot be written: {s}"),
            StoreError::Corrupt(s) => write!(f, "the cache is damaged: {s}"),
            StoreError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for StoreError {}

/// A storage engine. A run uses two: one on the pipeline's coordinator
/// thread for lookups, one on the writer thread, so lookups never wait
/// for a commit.
pub trait Store: Send {
    /// Fills `out[i]` with the entry for `queries[i]`, if stored.
    fn get(&mut self, queries: &[Query<'_>], out: &mut [Option<Stored>]) -> Result<(), StoreError>;

    /// Writes `writes` in one transaction; `now` is the time, seconds
    /// since the epoch, recorded as their `seen`.
    fn put(&mut self, writes: &[Write], now: i64) -> Result<(), StoreError>;

    /// Another connection may have added what this one found missing
    /// (called after the writer flushed at the end of a run).
    fn refresh(&mut self) {}
}
