//! The scanner threads: open a directory relative to its parent's open
//! handle, list it, stat its regular files relative to it, push
//! subdirectories onto the local deque, hand full batches to the channel.
//! (Over 500 lines because one listing loop decides for every entry type,
//! and the open-handle rules below belong next to it.)
//!
//! Why directories are opened relative to their parent: a directory queued
//! by path could be swapped for a symlink before it is opened, and a whole
//! path would then lead out of the tree (to `/etc`, or to device nodes when
//! run as root). `openat(parent, name, O_NOFOLLOW)` can only open what is in
//! the parent now, and never through a symlink. It is also one path
//! component per open, so a chain thousands of directories deep costs time
//! in proportion to its length. Open parents are shared by their queued
//! children and closed when the last child is opened; past a budget of
//! open handles, children are opened from the root's handle instead, still
//! refusing symlinks (`fsutil::open_beneath`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::Backoff;
use rustix::fs::{AtFlags, FileType, OFlags, RawDir, StatxFlags};
use rustix::io::Errno;

pub(crate) use super::roots::{open_root, root_file, seed_dir, Root};
use super::{Counters, DirDone, Filter, WalkEvent};
use crate::config::Config;
use crate::entry::{DirPath, EntryError, EntryKind, ErrorKind, FileEntry, FileId, Meta};
use crate::progress::ProgressTracker;

/// Directory handles that queued children may keep open. Well below the
/// usual soft limit of 1024 descriptors, so readers and the rest of the
/// process keep theirs; past it, children are opened from the root.
const OPEN_DIR_BUDGET: usize = 256;

/// Initial size of each scanner's listing buffer; it grows if an entry
/// does not fit (names are at most 255 bytes, so it rarely does).
const LISTING_BUF: usize = 32 * 1024;

/// A directory handle shared by the queued children of one directory.
pub(crate) struct DirFd {
    fd: OwnedFd,
    open: Arc<AtomicUsize>,
}

impl DirFd {
    /// Counts the handle as open until it is dropped.
    fn new(fd: OwnedFd, open: &Arc<AtomicUsize>) -> Arc<DirFd> {
        open.fetch_add(1, Ordering::Relaxed);
        Arc::new(DirFd {
            fd,
            open: Arc::clone(open),
        })
    }
}

impl Drop for DirFd {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a queued directory will be opened.
pub(super) enum Open {
    /// A root, opened when the walk started.
    Root(OwnedFd),
    /// `openat(parent, name)`.
    At(Arc<DirFd>),
    /// From the root's handle, refusing symlinks (or by path, following,
    /// under `follow_links`): the open-handle budget was spent.
    Resolve,
}

/// A directory to list.
pub(crate) struct Job {
    pub(super) dir: Arc<DirPath>,
    pub(super) open: Open,
    /// Device of the root it belongs to (for `one_file_system`).
    pub(super) root_dev: u64,
    /// Device of its parent: a change means a new mount, checked for
    /// pseudo file systems.
    pub(super) parent_dev: u64,
    /// Open it even if it is a symlink (reached through a followed link).
    pub(super) follow: bool,
}

/// State shared by the scanners of one walk.
pub(crate) struct Shared {
    pub(crate) injector: Injector<Job>,
    pub(crate) stealers: Vec<Stealer<Job>>,
    /// Jobs queued or being listed; the walk is over when it reaches 0.
    pub(crate) pending: AtomicUsize,
    pub(crate) quit: AtomicBool,
    pub(crate) filter: Filter,
    pub(crate) config: Arc<Config>,
    pub(crate) batch_size: usize,
    pub(crate) batch_timeout: Duration,
    /// Send a [`DirDone`] per directory.
    pub(crate) dir_events: bool,
    pub(crate) counters: Counters,
    pub(crate) progress: Arc<dyn ProgressTracker>,
    /// Every directory entered, by (device, inode): a directory reachable
    /// twice (a bind mount, a followed symlink, a root inside another root)
    /// is listed once. Roots are recorded before anything is listed, so a
    /// root named by the user is always listed as its own root.
    pub(crate) visited: Mutex<HashSet<(u64, u64), rustc_hash::FxBuildHasher>>,
    /// Files named as roots: the walk of a directory root that also holds
    /// one of them leaves it out (it was delivered as a root already).
    pub(crate) root_files: HashSet<FileId, rustc_hash::FxBuildHasher>,
    /// Directory handles kept open for queued children.
    pub(crate) open_dirs: Arc<AtomicUsize>,
    /// Scanners that may still be started, and those started.
    pub(crate) growth: super::grow::Growth,
}

impl Shared {
    fn count_error(&self, err: &EntryError) {
        self.counters.errors[err.kind.index()].fetch_add(1, Ordering::Relaxed);
        self.progress.entry_error(err);
    }

    /// Records a directory as entered; false if it was entered before.
    pub(crate) fn first_visit(&self, dev: u64, ino: u64) -> bool {
        self.visited
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((dev, ino))
    }

    /// A file named as a root (delivered already, not listed again).
    fn is_root_file(&self, id: &FileId) -> bool {
        !self.root_files.is_empty() && self.root_files.contains(id)
    }

    pub(super) fn push_job(&self, local: Option<&Worker<Job>>, job: Job) {
        // Count before publishing, so no peer can finish it first and see 0.
        self.pending.fetch_add(1, Ordering::AcqRel);
        match local {
            Some(w) => w.push(job),
            None => self.injector.push(job),
        }
    }
}

/// Where a scanner puts what it finds.
struct Out<'a> {
    shared: &'a Shared,
    tx: &'a Sender<WalkEvent>,
    batch: Vec<FileEntry>,
    /// Directories listed whose files are all in `batch` or sent: they
    /// go out right after the batch, so each follows its files.
    dirs: Vec<DirDone>,
    /// When the oldest entry of the current batch was found.
    oldest: Option<Instant>,
    /// Time spent waiting for room in the channel: the consumer's pace,
    /// not the directory's, so not counted as listing time.
    blocked: Duration,
}

impl Out<'_> {
    fn push(&mut self, entry: FileEntry) {
        if self.batch.is_empty() {
            self.oldest = Some(Instant::now());
        }
        self.batch.push(entry);
        if self.batch.len() >= self.shared.batch_size {
            self.flush();
        }
    }

    fn flush_if_old(&mut self) {
        if self
            .oldest
            .is_some_and(|t| t.elapsed() >= self.shared.batch_timeout)
        {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.oldest = None;
        if !self.batch.is_empty() {
            let cap = self.shared.batch_size;
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(cap));
            self.send(WalkEvent::Batch(batch));
        }
        if !self.dirs.is_empty() {
            let dirs = std::mem::take(&mut self.dirs);
            self.send(WalkEvent::Dirs(dirs));
        }
    }

    /// A directory's listing is over (see [`DirDone`]).
    fn dir_done(&mut self, done: DirDone) {
        if !self.shared.dir_events {
            return;
        }
        if self.dirs.is_empty() && self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        self.dirs.push(done);
        if self.dirs.len() >= self.shared.batch_size {
            self.flush();
        }
    }

    fn error(&mut self, err: EntryError) {
        self.shared.count_error(&err);
        self.send(WalkEvent::Error(err));
    }

    fn send(&mut self, ev: WalkEvent) {
        // Blocks while the channel is full: this is the backpressure. It
        // fails only when the consumer is gone, and then the walk stops.
        let t = Instant::now();
        if self.tx.send(ev).is_err() {
            self.shared.quit.store(true, Ordering::Relaxed);
        }
        self.blocked += t.elapsed();
    }
}

/// A scanner thread's main loop; `first` are events to send before any
/// listing (the roots that are files or could not be walked).
pub(crate) fn run(
    shared: &Arc<Shared>,
    local: Worker<Job>,
    tx: &Sender<WalkEvent>,
    first: Vec<WalkEvent>,
) {
    let mut out = Out {
        shared,
        tx,
        batch: Vec::with_capacity(shared.batch_size),
        dirs: Vec::new(),
        oldest: None,
        blocked: Duration::ZERO,
    };
    for ev in first {
        if let WalkEvent::Error(e) = &ev {
            shared.count_error(e);
        }
        out.send(ev);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(LISTING_BUF);
    let backoff = Backoff::new();
    while !shared.quit.load(Ordering::Relaxed) {
        match find_job(shared, &local) {
            Some(job) => {
                backoff.reset();
                let (started, blocked, mut seen) = (Instant::now(), out.blocked, 0);
                scan_dir(shared, &local, job, &mut out, &mut buf, &mut seen);
                let took = started
                    .elapsed()
                    .saturating_sub(out.blocked.saturating_sub(blocked));
                super::grow::grow(shared, took, seen, tx);
                shared.pending.fetch_sub(1, Ordering::AcqRel);
                out.flush_if_old();
            }
            None => {
                // Nothing to list here: hand over what we hold so the
                // consumer is not kept waiting, then wait for work or end.
                out.flush();
                if shared.pending.load(Ordering::Acquire) == 0 {
                    break;
                }
                if backoff.is_completed() {
                    std::thread::sleep(Duration::from_micros(200));
                } else {
                    backoff.snooze();
                }
            }
        }
    }
    if !shared.quit.load(Ordering::Relaxed) {
        out.flush();
    }
}

fn find_job(shared: &Shared, local: &Worker<Job>) -> Option<Job> {
    local.pop().or_else(|| {
        std::iter::repeat_with(|| {
            shared
                .injector
                .steal_batch_and_pop(local)
                .or_else(|| shared.stealers.iter().map(Stealer::steal).collect())
        })
        .find(|s| !s.is_retry())
        .and_then(Steal::success)
    })
}

/// Opens a queued directory as described on [`Open`].
fn open_dir(job: Job) -> Result<OwnedFd, Errno> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !job.follow {
        flags |= OFlags::NOFOLLOW;
    }
    let path = job.dir.path();
    match job.open {
        Open::Root(fd) => Ok(fd),
        Open::At(parent) => {
            let name = path.file_name().unwrap_or(path.as_os_str());
            rustix::fs::openat(&parent.fd, name, flags, rustix::fs::Mode::empty())
        }
        Open::Resolve => match job.dir.base() {
            Some(base) => crate::fsutil::open_beneath(base, path.as_os_str().as_bytes(), flags),
            // Only under `follow_links`, where symlinks are followed anyway.
            None => crate::fsutil::open(path, flags),
        },
    }
}

/// The pseudo file system a directory is on, if any: their files report
/// sizes that say nothing about their content (`/proc`, `/sys`, ...).
pub(super) fn pseudo_fs(fd: &OwnedFd) -> Option<&'static str> {
    let magic = rustix::fs::fstatfs(fd).ok()?.f_type as i64;
    Some(match magic {
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x6462_6720 => "debugfs",
        0x7472_6163 => "tracefs",
        0x7363_6673 => "securityfs",
        0x0027_e0eb => "cgroup",
        0x6367_7270 => "cgroup2",
        0x6265_6570 => "configfs",
        0xcafe_4a11 => "bpf",
        0x6165_676c => "pstore",
        0x4249_4e4d => "binfmt_misc",
        0xf97c_ff8c => "selinuxfs",
        0x6573_5543 => "fusectl",
        _ => return None,
    })
}

pub(super) fn pseudo_error(path: PathBuf, kind: &str) -> EntryError {
    EntryError::new(
        path,
        ErrorKind::Skipped,
        format!("on a {kind} pseudo file system (sizes are not content); skipped"),
    )
}

// One listing loop decides for every entry type (see the module docs).
#[allow(clippy::too_many_lines)]
/// Lists one directory; counts its entries in `seen`.
fn scan_dir(
    shared: &Shared,
    local: &Worker<Job>,
    job: Job,
    out: &mut Out<'_>,
    buf: &mut Vec<u8>,
    seen: &mut u64,
) {
    let config = &*shared.config;
    let dir = Arc::clone(&job.dir);
    let (root_dev, parent_dev, is_root) = (
        job.root_dev,
        job.parent_dev,
        matches!(job.open, Open::Root(_)),
    );
    let unlisted = |out: &mut Out<'_>| out.dir_done(DirDone::unlisted(Arc::clone(&dir)));
    let fd = match open_dir(job) {
        Ok(fd) => fd,
        Err(e) => {
            out.error(EntryError::io(dir.path().to_path_buf(), &e.into()));
            return unlisted(out);
        }
    };
    // One fstat per directory: its identity decides whether it was
    // listed before, and its device whether a mount was crossed.
    let st = match rustix::fs::fstat(&fd) {
        Ok(st) => st,
        Err(e) => {
            out.error(EntryError::io(dir.path().to_path_buf(), &e.into()));
            return unlisted(out);
        }
    };
    if !is_root {
        if config.one_file_system && st.st_dev != root_dev {
            return unlisted(out);
        }
        if st.st_dev != parent_dev {
            if let Some(kind) = pseudo_fs(&fd) {
                out.error(pseudo_error(dir.path().to_path_buf(), kind));
                return unlisted(out);
            }
        }
        if !shared.first_visit(st.st_dev, st.st_ino) {
            return unlisted(out);
        }
    }
    let fd = DirFd::new(fd, &shared.open_dirs);
    let mut done = DirDone::unlisted(Arc::clone(&dir));
    done.complete = true;
    let mut bytes = 0u64;
    let mut emit = |out: &mut Out<'_>, done: &mut DirDone, entry: FileEntry| {
        done.files += 1;
        bytes += entry.size;
        out.push(entry);
    };
    let child = |name: &[u8], follow: bool| {
        let open = if shared.open_dirs.load(Ordering::Relaxed) < OPEN_DIR_BUDGET {
            Open::At(Arc::clone(&fd))
        } else {
            Open::Resolve
        };
        Job {
            dir: dir.child(name),
            open,
            root_dev,
            parent_dev: st.st_dev,
            follow,
        }
    };
    let dfd: BorrowedFd<'_> = fd.fd.as_fd();
    if buf.capacity() < LISTING_BUF {
        buf.reserve(LISTING_BUF);
    }
    let mut listing = RawDir::new(dfd, buf.spare_capacity_mut());
    while let Some(item) = listing.next() {
        if shared.quit.load(Ordering::Relaxed) {
            return;
        }
        *seen += 1;
        let ent = match item {
            Ok(ent) => ent,
            Err(Errno::INVAL) => {
                // An entry larger than the buffer: grow it and list again
                // from the start would repeat entries, so report and stop.
                out.error(EntryError::new(
                    dir.path().to_path_buf(),
                    ErrorKind::Io,
                    "directory entry too large to list",
                ));
                done.complete = false;
                break;
            }
            Err(e) => {
                out.error(EntryError::io(dir.path().to_path_buf(), &e.into()));
                done.complete = false;
                break;
            }
        };
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name_os = OsStr::from_bytes(name);
        let mut ftype = ent.file_type();
        let mut known: Option<Meta> = None;
        if ftype == FileType::Unknown {
            // Some file systems do not fill in d_type: stat to find out.
            match stat_at(dfd, name_os, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(m) => {
                    ftype = m.file_type;
                    known = Some(m);
                }
                Err(e) => {
                    out.error(EntryError::io(dir.join(name), &e.into()));
                    done.unreadable += 1;
                    continue;
                }
            }
        }
        match ftype {
            FileType::Directory if shared.filter.enter_dir(&dir, name) => {
                done.subdirs += 1;
                shared.push_job(Some(local), child(name, false));
            }
            FileType::Directory => done.excluded += 1,
            FileType::RegularFile => {
                if !shared.filter.file_name_ok(&dir, name) {
                    done.excluded += 1;
                    continue;
                }
                let m = match known {
                    Some(m) => m,
                    None => match stat_at(dfd, name_os, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(m) => m,
                        Err(e) => {
                            out.error(EntryError::io(dir.join(name), &e.into()));
                            done.unreadable += 1;
                            continue;
                        }
                    },
                };
                if m.file_type != FileType::RegularFile {
                    // Replaced by something else since the listing.
                    done.special += 1;
                } else if shared.filter.size_ok(m.size) && !shared.is_root_file(&m.id) {
                    let e = FileEntry::from_meta(dir.clone(), name, &m, EntryKind::File);
                    emit(out, &mut done, e);
                } else {
                    done.excluded += 1;
                }
            }
            FileType::Symlink if config.follow_links => {
                match stat_at(dfd, name_os, AtFlags::empty()) {
                    Ok(m) => match m.file_type {
                        FileType::Directory if shared.filter.enter_dir(&dir, name) => {
                            done.subdirs += 1;
                            shared.push_job(Some(local), child(name, true));
                        }
                        FileType::RegularFile
                            if shared.filter.file_name_ok(&dir, name)
                                && shared.filter.size_ok(m.size)
                                && !shared.is_root_file(&m.id) =>
                        {
                            let e = FileEntry::from_meta(
                                dir.clone(),
                                name,
                                &m,
                                EntryKind::SymlinkToFile,
                            );
                            emit(out, &mut done, e);
                        }
                        FileType::Directory | FileType::RegularFile => done.excluded += 1,
                        _ => done.special += 1,
                    },
                    // A dangling link is not an error: there is nothing to read.
                    Err(Errno::NOENT) => done.special += 1,
                    Err(e) => {
                        out.error(EntryError::io(dir.join(name), &e.into()));
                        done.unreadable += 1;
                    }
                }
            }
            // Symlinks (not followed), FIFOs, sockets and devices: never
            // stat'ed, never opened.
            _ => done.special += 1,
        }
    }
    let c = &shared.counters;
    c.dirs.fetch_add(1, Ordering::Relaxed);
    let files = done.files;
    if files > 0 {
        c.files.fetch_add(files, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    shared.progress.dir_scanned(files, bytes);
    out.dir_done(done);
}

impl DirDone {
    /// A directory that was not listed (yet): nothing counted.
    fn unlisted(dir: Arc<DirPath>) -> DirDone {
        DirDone {
            dir,
            files: 0,
            subdirs: 0,
            excluded: 0,
            unreadable: 0,
            special: 0,
            complete: false,
        }
    }
}

/// One `statx` relative to an open directory. `statx` rather than
/// `fstatat`: the same cost, and it says whether the file is itself a
/// mount point (a file bind mount, another path to an inode).
fn stat_at(dfd: BorrowedFd<'_>, name: &OsStr, flags: AtFlags) -> Result<Meta, Errno> {
    if !NO_STATX.load(Ordering::Relaxed) {
        match rustix::fs::statx(dfd, name, flags, StatxFlags::BASIC_STATS) {
            Ok(st) => return Ok(Meta::of_statx(&st)),
            // Kernels before 4.11, or a sandbox that filters statx: say so
            // once, rather than paying a failed call for every file.
            Err(Errno::NOSYS | Errno::PERM) => NO_STATX.store(true, Ordering::Relaxed),
            Err(e) => return Err(e),
        }
    }
    rustix::fs::statat(dfd, name, flags).map(|st| Meta::of_stat(&st))
}

/// Set once `statx` turned out to be missing.
static NO_STATX: AtomicBool = AtomicBool::new(false);
