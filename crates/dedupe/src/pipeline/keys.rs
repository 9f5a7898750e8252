//! Where stage keys come from. The pipeline asks "what is this file's key
//! under this stage spec?" just before it would read the file. A
//! [`KeySource`] given to the finder (a hash cache, a manifest recorded on
//! another host) may answer from what it knows; whatever it does not
//! answer goes to the reader threads, which answer by reading.
//!
//! Questions come in batches (the files of one job, up to 64), so a source
//! backed by a database can look them up together. Byte comparisons
//! (`--verify`) are never asked: they must read.

use std::path::Path;

use super::stage::{KeyRead, StageSpec};
use crate::entry::FileId;
use crate::hash::{Digest, Key};

/// What the walk recorded about a file; a stored key is valid only for a
/// file that still matches all of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Device and inode.
    pub id: FileId,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the epoch: a rewrite that
    /// puts the modification time back (`cp -p`, `touch -r`) moves it.
    pub ctime_ns: i64,
}

/// One question: the key of `path` under `spec`.
#[derive(Clone, Copy, Debug)]
pub struct KeyRequest<'a> {
    /// The file as the walk reached it.
    pub path: &'a Path,
    /// What the walk recorded about it.
    pub stamp: FileStamp,
    /// The stage whose key is wanted.
    pub spec: &'static StageSpec,
}

/// A stage key: 128 bits for the partial stages, the whole digest for the
/// full one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StageKey {
    /// The key of a quick or statistical stage.
    Partial(Key),
    /// The digest of the whole content.
    Full(Digest),
}

impl StageKey {
    /// Whether this is the kind of key `spec` produces: a partial key for
    /// the partial stages, a digest of the right length for the full one.
    pub fn fits(&self, spec: &StageSpec) -> bool {
        match (self, spec.read) {
            (StageKey::Partial(_), KeyRead::Edges { .. } | KeyRead::Samples { .. }) => true,
            (StageKey::Full(d), KeyRead::Whole(algo)) => d.as_bytes().len() == algo.digest_len(),
            _ => false,
        }
    }
}

/// The largest [`KeySource::small_up_to`]: a page. Whether a read went to
/// the device is asked of its first page only (see
/// [`ReadFacts::from_disk`]).
pub const SMALL_MAX: u64 = 4096;
/// Small files asked about before the finder judges whether asking pays
/// (see [`KeySource::small_up_to`]).
pub const SMALL_TRIAL: u32 = 512;
/// Fewer than one answer in this many small-file questions, after
/// [`SMALL_TRIAL`] of them, and the finder stops asking.
pub const SMALL_HIT_RATIO: u32 = 4;

/// How the readers came by a computed key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadFacts {
    /// How long the read took, in nanoseconds.
    pub nanos: u64,
    /// Whether some of its bytes had to come from the device rather than
    /// the page cache: known (`Some`) for small files (see
    /// [`KeySource::small_up_to`]) on file systems that can tell
    /// (`preadv2` with `RWF_NOWAIT`), `None` otherwise.
    pub from_disk: Option<bool>,
}

impl ReadFacts {
    /// A read of `nanos` nanoseconds whose source is `from_disk`.
    pub fn new(nanos: u64, from_disk: Option<bool>) -> ReadFacts {
        ReadFacts { nanos, from_disk }
    }
}

/// Answers key questions without reading (see the module docs).
pub trait KeySource: Send {
    /// Fills `answers[i]` for the requests it can answer (each starts as
    /// `None`). An answer must be the key the file's current bytes have
    /// under the request's spec: the finder trusts it as it trusts a read.
    fn lookup(&mut self, requests: &[KeyRequest<'_>], answers: &mut [Option<StageKey>]);

    /// Files of this many bytes or fewer are neither asked about nor
    /// passed to [`KeySource::computed`]: the source would not use them,
    /// and on a million small files building each question cost more
    /// than its read. Asked once, when the run starts. By default 0: every
    /// file.
    fn answers_above(&self) -> u64 {
        0
    }

    /// Files above [`KeySource::answers_above`] and of this many bytes or
    /// fewer are small: from the page cache their read costs less than a
    /// lookup, from the disk much more. The finder tells the source of
    /// one only when its bytes came from the disk
    /// ([`ReadFacts::from_disk`]), and asks about them only while such
    /// questions find answers: once [`SMALL_TRIAL`] have been asked and
    /// fewer than one in [`SMALL_HIT_RATIO`] was answered, no more small
    /// files are asked about in the run. Asked once, when the run starts.
    /// At most [`SMALL_MAX`] (larger values are taken as it); by default
    /// 0: no file is small.
    fn small_up_to(&self) -> u64 {
        0
    }

    /// A key the readers computed for a file that did not change while it
    /// was read. A cache stores it here. The finder calls
    /// [`KeySource::computed_read`], which calls this by default; a
    /// source that overrides that may take this as a read of unknown
    /// source ([`ReadFacts::default`]): `HashCache` does, and so keeps no
    /// small file given here.
    fn computed(&mut self, request: &KeyRequest<'_>, key: &StageKey) {
        let _ = (request, key);
    }

    /// Like [`KeySource::computed`], with how the read went, for a source
    /// that must know when the bytes were read or where they came from.
    /// By default, `computed`.
    fn computed_read(&mut self, request: &KeyRequest<'_>, key: &StageKey, read: &ReadFacts) {
        let _ = read;
        self.computed(request, key);
    }

    /// The run is over (finished or cancelled): write out what is pending.
    fn finish(&mut self) {}
}
