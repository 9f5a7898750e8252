//! The reading side of the pipeline: worker threads open candidates, check
//! they have not changed since the walk saw them, and hash the part that
//! the current stage needs. All file I/O of the pipeline happens here.
//!
//! Every read is bracketed by `fstat` on the open descriptor: a file whose
//! size, modification time, device or inode differ from what the walk
//! recorded is reported as [`ErrorKind::Changed`] and leaves its group, so
//! no group is ever built from stale data. Files are opened with
//! `O_NONBLOCK`, so a FIFO swapped in after the walk cannot block a worker,
//! and with `O_NOFOLLOW` unless the walk itself followed a link.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{FileType, OFlags, Stat};

use crate::entry::{EntryError, ErrorKind, FileId};
use crate::hash::{quick_key, Digest, HashAlgo, Key};

/// Files up to this size are hashed whole in a single read: a quick check
/// would read most of them anyway.
pub(crate) const SMALL_FILE: u64 = 64 * 1024;
/// Bytes read at each end of a file by the quick check.
pub(crate) const EDGE: u64 = 4 * 1024;
/// Files above this size get the statistical stage before the full hash.
pub(crate) const SAMPLED_FILE: u64 = 4 * 1024 * 1024;
/// Samples taken by the statistical stage, and their size.
pub(crate) const SAMPLES: u64 = 16;
pub(crate) const SAMPLE: u64 = 4 * 1024;
/// Read size for full hashes of large files (buffers are reused).
pub(crate) const READ_BUF: usize = 1 << 20;

/// A stage of the pipeline after the size bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// First and last 4 KiB.
    Quick,
    /// 16 blocks of 4 KiB spread evenly through the file.
    Statistical,
    /// The whole content, with the chosen algorithm.
    Full,
}

impl Stage {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Quick => "quick",
            Stage::Statistical => "statistical",
            Stage::Full => "full",
        }
    }
}

/// The stages a file of `size` bytes goes through once it shares its size
/// with another file. Empty files need none: they are all equal.
pub(crate) fn ladder(size: u64) -> &'static [Stage] {
    match size {
        0 => &[],
        s if s <= SMALL_FILE => &[Stage::Full],
        s if s <= SAMPLED_FILE => &[Stage::Quick, Stage::Full],
        _ => &[Stage::Quick, Stage::Statistical, Stage::Full],
    }
}

/// What the walk recorded about a file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect {
    pub size: u64,
    pub id: FileId,
    pub mtime_ns: i64,
    /// The walk reached it through a followed symlink.
    pub follow: bool,
}

/// One unit of work.
pub(crate) enum TaskKind {
    /// Compute the key of a stage.
    Stage(Stage),
    /// Compare the file byte by byte with another that has the same hash.
    Verify(PathBuf),
}

pub(crate) struct Task {
    pub cand: u32,
    pub path: PathBuf,
    pub expect: Expect,
    pub kind: TaskKind,
    /// For verification: the key and digest the file was placed under.
    pub tag: Option<(Key, Digest)>,
}

pub(crate) enum Outcome {
    Key(Key),
    Full(Digest),
    /// Verified equal to its group.
    Same,
    Failed(EntryError),
}

pub(crate) struct Done {
    pub cand: u32,
    pub tag: Option<(Key, Digest)>,
    pub outcome: Outcome,
    /// The stage this was (None: verification).
    pub stage: Option<Stage>,
    pub bytes_read: u64,
    pub nanos: u64,
    /// The file's size.
    pub size: u64,
}

/// Per-thread reusable state.
pub(crate) struct Reader {
    buf: Vec<u8>,
    other: Vec<u8>,
    algo: HashAlgo,
}

fn mtime_ns(st: &Stat) -> i64 {
    st.st_mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec as i64)
}

fn changed(path: &Path, what: &str) -> EntryError {
    EntryError::new(
        path.to_path_buf(),
        ErrorKind::Changed,
        format!("changed during the scan ({what}); left out"),
    )
}

fn io_err(path: &Path, e: impl Into<io::Error>) -> EntryError {
    EntryError::io(path.to_path_buf(), &e.into())
}

/// Checks an `fstat` against what the walk recorded.
fn check(path: &Path, st: &Stat, ex: &Expect) -> Result<(), EntryError> {
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(changed(path, "no longer a regular file"));
    }
    if st.st_dev != ex.id.dev || st.st_ino != ex.id.ino {
        return Err(changed(path, "replaced by another file"));
    }
    if st.st_size as u64 != ex.size {
        return Err(changed(path, "size differs"));
    }
    if mtime_ns(st) != ex.mtime_ns {
        return Err(changed(path, "modified"));
    }
    Ok(())
}

pub(crate) fn open_regular(path: &Path, follow: bool) -> Result<(OwnedFd, Stat), EntryError> {
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = crate::fsutil::open(path, flags).map_err(|e| io_err(path, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err(path, e))?;
    Ok((fd, st))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full_at(fd: &OwnedFd, buf: &mut [u8], mut offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], offset) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                offset += n as u64;
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

impl Reader {
    pub(crate) fn new(algo: HashAlgo) -> Reader {
        Reader {
            buf: Vec::new(),
            other: Vec::new(),
            algo,
        }
    }

    pub(crate) fn run(&mut self, task: Task) -> Done {
        let start = Instant::now();
        let mut bytes = 0;
        let stage = match &task.kind {
            TaskKind::Stage(s) => Some(*s),
            TaskKind::Verify(_) => None,
        };
        let outcome = match self.run_inner(&task, &mut bytes) {
            Ok(o) => o,
            Err(e) => Outcome::Failed(e),
        };
        Done {
            cand: task.cand,
            tag: task.tag,
            outcome,
            stage,
            bytes_read: bytes,
            nanos: start.elapsed().as_nanos() as u64,
            size: task.expect.size,
        }
    }

    fn run_inner(&mut self, task: &Task, bytes: &mut u64) -> Result<Outcome, EntryError> {
        let path = &task.path;
        let ex = &task.expect;
        let (fd, st) = open_regular(path, ex.follow)?;
        check(path, &st, ex)?;
        let out = match &task.kind {
            TaskKind::Stage(Stage::Quick) => {
                let head = EDGE.min(ex.size);
                let tail_at = ex.size.saturating_sub(EDGE).max(head);
                self.buf.resize((head + (ex.size - tail_at)) as usize, 0);
                let (h, t) = self.buf.split_at_mut(head as usize);
                let n = read_full_at(&fd, h, 0).map_err(|e| io_err(path, e))?
                    + read_full_at(&fd, t, tail_at).map_err(|e| io_err(path, e))?;
                *bytes += n as u64;
                if n != self.buf.len() {
                    return Err(changed(path, "shorter than listed"));
                }
                Outcome::Key(quick_key(&[&self.buf]))
            }
            TaskKind::Stage(Stage::Statistical) => {
                self.buf.resize((SAMPLES * SAMPLE) as usize, 0);
                let span = ex.size - SAMPLE;
                for (i, chunk) in self.buf.chunks_mut(SAMPLE as usize).enumerate() {
                    let at = span * i as u64 / (SAMPLES - 1);
                    let n = read_full_at(&fd, chunk, at).map_err(|e| io_err(path, e))?;
                    *bytes += n as u64;
                    if n != chunk.len() {
                        return Err(changed(path, "shorter than listed"));
                    }
                }
                Outcome::Key(quick_key(&[&self.buf]))
            }
            TaskKind::Stage(Stage::Full) => {
                Outcome::Full(self.full_hash(&fd, path, ex.size, bytes)?)
            }
            TaskKind::Verify(other) => {
                let (ofd, ost) = open_regular(other, true)?;
                if FileType::from_raw_mode(ost.st_mode) != FileType::RegularFile
                    || ost.st_size as u64 != ex.size
                {
                    return Err(changed(other, "size differs from its group"));
                }
                if !self.same_bytes(&fd, &ofd, ex.size, path, bytes)? {
                    // Equal hashes, different bytes: in practice only a
                    // file modified between the two reads does that.
                    return Err(changed(
                        path,
                        "differs byte by byte from a file with the same hash",
                    ));
                }
                Outcome::Same
            }
        };
        // The file must not have changed while we read it. A file read
        // whole in one call was checked on open and read atomically enough
        // that a second fstat buys nothing but a system call.
        if ex.size > SMALL_FILE || matches!(task.kind, TaskKind::Verify(_)) {
            let after = rustix::fs::fstat(&fd).map_err(|e| io_err(path, e))?;
            check(path, &after, ex)?;
        }
        Ok(out)
    }

    fn full_hash(
        &mut self,
        fd: &OwnedFd,
        path: &Path,
        size: u64,
        bytes: &mut u64,
    ) -> Result<Digest, EntryError> {
        if size > SMALL_FILE {
            let _ = rustix::fs::fadvise(fd, 0, None, rustix::fs::Advice::Sequential);
        }
        // One byte more than expected, to notice a file that grew; a small
        // file is then read by a single pread.
        let want = (size as usize).saturating_add(1).min(READ_BUF);
        self.buf.resize(want, 0);
        let mut h = self.algo.hasher();
        let mut off = 0u64;
        loop {
            let n = match rustix::io::pread(fd, &mut self.buf, off) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_err(path, e)),
            };
            if n == 0 {
                break;
            }
            h.update(&self.buf[..n]);
            off += n as u64;
            if off > size {
                return Err(changed(path, "grew while being read"));
            }
            if off == size && n < self.buf.len() {
                break; // a short read that ends exactly at the size: done
            }
        }
        *bytes += off;
        if off != size {
            return Err(changed(path, "shorter than listed"));
        }
        Ok(h.finish())
    }

    fn same_bytes(
        &mut self,
        a: &OwnedFd,
        b: &OwnedFd,
        size: u64,
        path: &Path,
        bytes: &mut u64,
    ) -> Result<bool, EntryError> {
        let chunk = (size as usize).clamp(1, READ_BUF / 4);
        self.buf.resize(chunk, 0);
        self.other.resize(chunk, 0);
        let mut off = 0;
        while off < size {
            let n = read_full_at(a, &mut self.buf, off).map_err(|e| io_err(path, e))?;
            let m = read_full_at(b, &mut self.other, off).map_err(|e| io_err(path, e))?;
            *bytes += (n + m) as u64;
            if n != m || self.buf[..n] != self.other[..m] {
                return Ok(false);
            }
            if n == 0 {
                break;
            }
            off += n as u64;
        }
        Ok(off == size)
    }
}
