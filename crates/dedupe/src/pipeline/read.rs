//! The reading side of the pipeline: worker threads open candidates, check
//! they have not changed since the walk saw them, and hash the part that
//! the current stage needs. All file I/O of the pipeline happens here.
//!
//! Every read is bracketed by `fstat` on the open descriptor: a file whose
//! size, modification time, device or inode differ from what the walk
//! recorded is reported as [`ErrorKind::Changed`] and leaves its group, so
//! no group is ever built from stale data (the status-change time too, so
//! a rewrite that restores the modification time is caught). Files below a
//! root are opened from the root's handle with symlinks refused at every
//! component, so a directory swapped for a symlink cannot lead a read out
//! of the tree; `O_NONBLOCK` and `O_NOCTTY` keep a FIFO or terminal swapped
//! in from blocking or adopting a worker, and the type is checked by
//! `fstat` before any byte is read.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustix::fs::{FileType, OFlags, Stat};

use super::keys::FileStamp;
use super::msg::{Done, Outcome, Target, Task, TaskKind};
use super::stage::{sample_offset, KeyRead, SMALL_FILE};
use crate::entry::{time_ns, EntryError, ErrorKind, Meta};
use crate::hash::{quick_key, Digest, HashAlgo};

/// Read size for full hashes of large files (buffers are reused).
pub(crate) const READ_BUF: usize = 1 << 18;

/// Why a read stopped early.
enum Stop {
    Failed(EntryError),
    OtherChanged(EntryError),
    Cancelled,
}

impl From<EntryError> for Stop {
    fn from(e: EntryError) -> Stop {
        Stop::Failed(e)
    }
}

/// Per-thread reusable state.
pub(crate) struct Reader {
    buf: Vec<u8>,
    other: Vec<u8>,
    /// Set when the run is cancelled: long reads stop at the next chunk.
    cancel: Arc<AtomicBool>,
    /// Whole reads of files this small or smaller note whether their
    /// bytes came from the device (see [`on_disk`]); 0: none do. At most
    /// a page ([`SMALL_MAX`](super::keys::SMALL_MAX), capped by the
    /// finder): the probe tells of a file's first page only.
    probe_up_to: u64,
    /// What the current read found out about that.
    from_disk: Option<bool>,
    /// Runs between a read and its re-check, so tests can change a file
    /// exactly there.
    #[cfg(test)]
    after_read: Option<Box<dyn Fn() + Send>>,
    /// Runs between opening both files of a comparison and reading them.
    #[cfg(test)]
    before_compare: Option<Box<dyn Fn() + Send>>,
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

/// Checks an `fstat` against what the walk recorded. The status-change
/// time is compared too: a rewrite that puts the modification time back
/// (`cp -p`, `touch -r`) still moves it.
fn check(path: &Path, st: &Stat, ex: &FileStamp) -> Result<(), EntryError> {
    let m = Meta::of_stat(st);
    if m.file_type != FileType::RegularFile {
        return Err(changed(path, "no longer a regular file"));
    }
    if m.id != ex.id {
        return Err(changed(path, "replaced by another file"));
    }
    if m.size != ex.size {
        return Err(changed(path, "size differs"));
    }
    if time_ns(m.mtime) != ex.mtime_ns || time_ns(m.ctime) != ex.ctime_ns {
        return Err(changed(path, "modified"));
    }
    Ok(())
}

/// Opens a file for reading without side effects on anything that is not
/// a regular file (`O_NONBLOCK`: a FIFO does not block; `O_NOCTTY`: a
/// terminal does not become ours), and checks its type and identity by
/// `fstat` before a byte is read.
pub(crate) fn open_checked(t: &Target) -> Result<OwnedFd, EntryError> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let bytes = t.path.as_os_str().as_bytes();
    let fd = match &t.base {
        Some(base) => crate::fsutil::open_beneath(base, bytes, flags).map_err(|e| match e {
            // The walk saw no symlink on this path: one appeared since.
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
                changed(&t.path, "a symlink appeared on its path; not followed")
            }
            e => io_err(&t.path, e),
        }),
        None => crate::fsutil::open(&t.path, flags).map_err(|e| io_err(&t.path, e)),
    }?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err(&t.path, e))?;
    check(&t.path, &st, &t.expect)?;
    Ok(fd)
}

/// Opens a task's file ahead of its turn and asks the kernel to fetch what
/// its stage will read. `None`: nothing to prefetch (a comparison opens
/// two files at its turn; samples of a large file are few and far apart).
fn prefetch(t: &Task, probe_up_to: u64) -> Option<Result<Opened, EntryError>> {
    use rustix::fs::{fadvise, Advice};
    let TaskKind::Stage(spec) = t.kind else {
        return None;
    };
    let size = t.file.expect.size;
    let ranges = match spec.read {
        KeyRead::Edges { len } => [(0, len.min(size)), (size.saturating_sub(len), len)],
        KeyRead::Whole(_) => [(0, size), (0, 0)],
        KeyRead::Samples { .. } => return None,
    };
    let fd = open_checked(&t.file);
    let mut from_disk = None;
    if let Ok(fd) = &fd {
        // Asked now, before the advice below brings the bytes in.
        if matches!(spec.read, KeyRead::Whole(_)) && size <= probe_up_to {
            from_disk = on_disk(fd, &mut [0u8; 1]).1;
        }
        for (at, len) in ranges {
            if let Some(len) = std::num::NonZeroU64::new(len) {
                // Advice only: a failure costs speed, never correctness.
                let _ = fadvise(fd, at, Some(len), Advice::WillNeed);
            }
        }
    }
    Some(fd.map(|fd| Opened { fd, from_disk }))
}

/// A file opened ahead of its read by [`prefetch`].
pub(crate) struct Opened {
    fd: OwnedFd,
    /// [`on_disk`], asked when it was opened.
    from_disk: Option<bool>,
}

/// Reads the start of `fd` into `buf` only if the page cache holds it:
/// with `RWF_NOWAIT` a read that would wait for the device fails with
/// `EAGAIN` instead (having started the device's read). Returns the bytes
/// read (0 when it would have waited) and whether it would have waited,
/// `None` when the file system cannot tell (`EOPNOTSUPP`: some network
/// and FUSE file systems) or the read failed (the caller's own read then
/// reports it). A small file's key is worth keeping in a cache only when
/// reading it meant the device: from the page cache a read costs less than
/// a lookup.
fn on_disk(fd: &OwnedFd, buf: &mut [u8]) -> (usize, Option<bool>) {
    use rustix::io::{Errno, ReadWriteFlags};
    loop {
        let bufs = &mut [std::io::IoSliceMut::new(buf)];
        match rustix::io::preadv2(fd, bufs, 0, ReadWriteFlags::NOWAIT) {
            Ok(n) => return (n, Some(false)),
            Err(Errno::AGAIN) => return (0, Some(true)),
            Err(Errno::INTR) => {}
            Err(_) => return (0, None),
        }
    }
}

/// The file behind `fd` is still what `t` says (after a read).
fn recheck(fd: &OwnedFd, t: &Target) -> Result<(), EntryError> {
    let st = rustix::fs::fstat(fd).map_err(|e| io_err(&t.path, e))?;
    check(&t.path, &st, &t.expect)
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
            // Interrupted before reading anything: try again.
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

impl Reader {
    pub(crate) fn new(cancel: Arc<AtomicBool>) -> Reader {
        Reader {
            buf: Vec::new(),
            other: Vec::new(),
            cancel,
            probe_up_to: 0,
            from_disk: None,
            #[cfg(test)]
            after_read: None,
            #[cfg(test)]
            before_compare: None,
        }
    }

    /// Whole reads of files of `bytes` or fewer note whether their bytes
    /// came from the device ([`Done::from_disk`]).
    #[must_use]
    pub(crate) fn probing(mut self, bytes: u64) -> Reader {
        self.probe_up_to = bytes;
        self
    }

    /// Runs a job's tasks in order. With `ahead` > 0, the files of the
    /// next `ahead` tasks are opened before this one is read and the
    /// kernel is asked to fetch the parts their stage reads
    /// (`posix_fadvise(WILLNEED)`): on a cold cache the device then has
    /// many requests at once even with one reader per CPU. Opening early
    /// is safe: a file opened ahead is checked again after it is read.
    pub(crate) fn run_job(&mut self, tasks: Vec<Task>, ahead: usize) -> Vec<Done> {
        if ahead == 0 || tasks.len() < 2 {
            return tasks.into_iter().map(|t| self.run(t, None)).collect();
        }
        let n = tasks.len();
        let mut slots: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
        let mut opened: Vec<Option<Result<Opened, EntryError>>> = Vec::new();
        opened.resize_with(n, || None);
        let mut next = 0;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            while next < n && next <= i + ahead {
                if let Some(t) = &slots[next] {
                    if !self.cancelled() {
                        opened[next] = prefetch(t, self.probe_up_to);
                    }
                }
                next += 1;
            }
            if let Some(task) = slots[i].take() {
                out.push(self.run(task, opened[i].take()));
            }
        }
        out
    }

    pub(crate) fn run(&mut self, task: Task, opened: Option<Result<Opened, EntryError>>) -> Done {
        let start = Instant::now();
        let mut bytes = 0;
        self.from_disk = None;
        let step = task.step();
        let outcome = match self.run_inner(&task, opened, &mut bytes) {
            Ok(o) => o,
            Err(Stop::Failed(e)) => Outcome::Failed(e),
            Err(Stop::OtherChanged(e)) => Outcome::OtherChanged(e),
            Err(Stop::Cancelled) => Outcome::Cancelled,
        };
        Done {
            cand: task.cand,
            outcome,
            step,
            bytes_read: bytes,
            nanos: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            from_disk: self.from_disk,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn run_inner(
        &mut self,
        task: &Task,
        opened: Option<Result<Opened, EntryError>>,
        bytes: &mut u64,
    ) -> Result<Outcome, Stop> {
        let file = &task.file;
        let path = &file.path;
        let size = file.expect.size;
        let early = opened.is_some();
        let fd = match opened {
            Some(o) => {
                let o = o?;
                self.from_disk = o.from_disk;
                o.fd
            }
            None => open_checked(file)?,
        };
        let out = match &task.kind {
            TaskKind::Stage(spec) => match spec.read {
                KeyRead::Edges { len } => {
                    let head = len.min(size);
                    let tail_at = size.saturating_sub(len).max(head);
                    self.buf.resize((head + (size - tail_at)) as usize, 0);
                    let (h, t) = self.buf.split_at_mut(head as usize);
                    let n = read_full_at(&fd, h, 0).map_err(|e| io_err(path, e))?
                        + read_full_at(&fd, t, tail_at).map_err(|e| io_err(path, e))?;
                    *bytes += n as u64;
                    if n != self.buf.len() {
                        return Err(changed(path, "shorter than listed").into());
                    }
                    Outcome::Key(quick_key(&[&self.buf]))
                }
                KeyRead::Samples { count, len } => {
                    self.buf.resize((count * len) as usize, 0);
                    for (i, chunk) in self.buf.chunks_mut(len as usize).enumerate() {
                        let at = sample_offset(size, len, count, i as u64);
                        let n = read_full_at(&fd, chunk, at).map_err(|e| io_err(path, e))?;
                        *bytes += n as u64;
                        if n != chunk.len() {
                            return Err(changed(path, "shorter than listed").into());
                        }
                    }
                    Outcome::Key(quick_key(&[&self.buf]))
                }
                KeyRead::Whole(algo) => {
                    let probe = !early && size <= self.probe_up_to;
                    Outcome::Full(self.full_hash(&fd, path, size, algo, bytes, probe)?)
                }
            },
            TaskKind::Verify(other) => {
                let ofd = open_checked(other).map_err(Stop::OtherChanged)?;
                #[cfg(test)]
                if let Some(hook) = &self.before_compare {
                    hook();
                }
                let same = self.same_bytes(&fd, &ofd, size, path, &other.path, bytes)?;
                // Both must be what they were when the walk saw them, or
                // the comparison says nothing.
                recheck(&ofd, other).map_err(Stop::OtherChanged)?;
                if same {
                    Outcome::Same
                } else {
                    Outcome::Differ
                }
            }
        };
        #[cfg(test)]
        if let Some(hook) = &self.after_read {
            hook();
        }
        // The file must not have changed while we read it. A file read
        // whole in one call right after it was opened and checked was
        // read atomically enough that a second fstat buys nothing but a
        // system call; one opened ahead was not read right after.
        if early || size > SMALL_FILE || matches!(task.kind, TaskKind::Verify(_)) {
            recheck(&fd, file)?;
        }
        Ok(out)
    }

    fn full_hash(
        &mut self,
        fd: &OwnedFd,
        path: &Path,
        size: u64,
        algo: HashAlgo,
        bytes: &mut u64,
        probe: bool,
    ) -> Result<Digest, Stop> {
        if size > SMALL_FILE {
            let _ = rustix::fs::fadvise(fd, 0, None, rustix::fs::Advice::Sequential);
        }
        // One byte more than expected, to notice a file that grew; a small
        // file is then read by a single pread.
        let want = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(READ_BUF);
        self.buf.resize(want, 0);
        let mut h = algo.hasher();
        let mut off = 0u64;
        let mut first = probe;
        loop {
            if self.cancelled() {
                return Err(Stop::Cancelled);
            }
            // The first read of a probed file is the probe: from the page
            // cache it costs nothing more than a plain read.
            let probed = if std::mem::take(&mut first) {
                // A file of a page or less: the probe gets all of it or
                // nothing.
                let (n, from_disk) = on_disk(fd, &mut self.buf);
                self.from_disk = from_disk;
                n
            } else {
                0
            };
            let n = match probed {
                0 => match rustix::io::pread(fd, &mut self.buf, off) {
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(io_err(path, e).into()),
                },
                n => n,
            };
            if n == 0 {
                break;
            }
            h.update(&self.buf[..n]);
            off += n as u64;
            *bytes += n as u64;
            if off > size {
                return Err(changed(path, "grew while being read").into());
            }
            if off == size && n < self.buf.len() {
                break; // a short read that ends exactly at the size: done
            }
        }
        if off != size {
            return Err(changed(path, "shorter than listed").into());
        }
        Ok(h.finish())
    }

    fn same_bytes(
        &mut self,
        a: &OwnedFd,
        b: &OwnedFd,
        size: u64,
        path: &Path,
        other: &Path,
        bytes: &mut u64,
    ) -> Result<bool, Stop> {
        let chunk = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .clamp(1, READ_BUF / 4);
        self.buf.resize(chunk, 0);
        self.other.resize(chunk, 0);
        let mut off = 0;
        while off < size {
            if self.cancelled() {
                return Err(Stop::Cancelled);
            }
            // Never past the listed size: a file that grew is caught by the
            // re-check after the comparison (which says which one), and a
            // short count here can only mean that file was cut short.
            let want = usize::try_from(size - off).unwrap_or(usize::MAX).min(chunk);
            let n = read_full_at(a, &mut self.buf[..want], off).map_err(|e| io_err(path, e))?;
            let m = read_full_at(b, &mut self.other[..want], off)
                .map_err(|e| Stop::OtherChanged(io_err(other, e)))?;
            *bytes += (n + m) as u64;
            if n != m {
                // One of them is shorter than listed: that one changed.
                // If it is the file compared against, it leaves its group.
                return Err(if n < m {
                    Stop::Failed(changed(path, "shorter than listed"))
                } else {
                    Stop::OtherChanged(changed(other, "shorter than listed"))
                });
            }
            if self.buf[..n] != self.other[..m] {
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

#[cfg(test)]
mod tests;
