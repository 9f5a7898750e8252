//! The scanner threads: list a directory, stat its regular files relative
//! to the open directory, push subdirectories onto the local deque, hand
//! full batches to the channel.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::Backoff;
use rustix::fs::{AtFlags, Dir, FileType, OFlags, Stat};

use super::{Counters, Filter, WalkEvent};
use crate::config::Config;
use crate::entry::{DirPath, EntryError, EntryKind, ErrorKind, FileEntry};
use crate::progress::ProgressTracker;

/// A directory to list.
pub(crate) struct Job {
    dir: Arc<DirPath>,
    /// Device of the root it belongs to (for `one_file_system`).
    root_dev: u64,
    /// Open it even if the path is now a symlink: roots (named by the user)
    /// and directories reached through a followed link.
    follow: bool,
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
    pub(crate) counters: Counters,
    pub(crate) progress: Arc<dyn ProgressTracker>,
    /// Directories entered, by (device, inode), when following links, so a
    /// directory reached twice (or through a loop) is listed once.
    pub(crate) visited: Mutex<HashSet<(u64, u64)>>,
}

impl Shared {
    fn count_error(&self, err: &EntryError) {
        self.counters.errors[err.kind.index()].fetch_add(1, Ordering::Relaxed);
        self.progress.entry_error(err);
    }

    /// Records a directory as entered; false if it was entered before.
    fn first_visit(&self, st: &Stat) -> bool {
        self.visited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((st.st_dev, st.st_ino))
    }

    fn push_job(&self, local: Option<&Worker<Job>>, job: Job) {
        // Count before publishing, so no peer can finish it first and see 0.
        self.pending.fetch_add(1, Ordering::AcqRel);
        match local {
            Some(w) => w.push(job),
            None => self.injector.push(job),
        }
    }
}

/// Turns one root into a job (directory), an entry (file) or an error
/// (anything else: a FIFO given as a root is never opened).
pub(crate) fn seed_root(
    shared: &Shared,
    path: PathBuf,
    st: &Stat,
    files: &mut Vec<FileEntry>,
    errors: &mut Vec<EntryError>,
) {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            if shared.config.follow_links && !shared.first_visit(st) {
                return; // the same directory given twice
            }
            let job = Job {
                dir: DirPath::new(path, 0),
                root_dev: st.st_dev,
                follow: true,
            };
            shared.push_job(None, job);
        }
        FileType::RegularFile => {
            if shared.filter.size_ok(st.st_size as u64) {
                let name = path.file_name().unwrap_or(path.as_os_str()).as_bytes();
                let parent = path.parent().unwrap_or(std::path::Path::new(""));
                let dir = DirPath::new(parent, 0);
                let entry = FileEntry::from_stat(dir, name, st, EntryKind::File);
                shared.counters.files.fetch_add(1, Ordering::Relaxed);
                shared
                    .counters
                    .bytes
                    .fetch_add(entry.size, Ordering::Relaxed);
                files.push(entry);
            }
        }
        _ => {
            let err = EntryError::new(
                path,
                ErrorKind::NotRegular,
                "not a regular file or directory; skipped",
            );
            shared.count_error(&err);
            errors.push(err);
        }
    }
}

/// Where a scanner puts what it finds.
struct Out<'a> {
    shared: &'a Shared,
    tx: &'a Sender<WalkEvent>,
    batch: Vec<FileEntry>,
    /// When the oldest entry of the current batch was found.
    oldest: Option<Instant>,
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
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.shared.batch_size));
        self.send(WalkEvent::Batch(batch));
    }

    fn error(&mut self, err: EntryError) {
        self.shared.count_error(&err);
        self.send(WalkEvent::Error(err));
    }

    fn send(&mut self, ev: WalkEvent) {
        // Blocks while the channel is full: this is the backpressure. It
        // fails only when the consumer is gone, and then the walk stops.
        if self.tx.send(ev).is_err() {
            self.shared.quit.store(true, Ordering::Relaxed);
        }
    }
}

/// A scanner thread's main loop; `first` are events to send before any
/// listing (the roots that are files or could not be walked).
pub(crate) fn run(
    shared: &Shared,
    local: Worker<Job>,
    tx: &Sender<WalkEvent>,
    first: Vec<WalkEvent>,
) {
    let mut out = Out {
        shared,
        tx,
        batch: Vec::with_capacity(shared.batch_size),
        oldest: None,
    };
    for ev in first {
        out.send(ev);
    }
    let backoff = Backoff::new();
    while !shared.quit.load(Ordering::Relaxed) {
        match find_job(shared, &local) {
            Some(job) => {
                backoff.reset();
                scan_dir(shared, &local, job, &mut out);
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

fn scan_dir(shared: &Shared, local: &Worker<Job>, job: Job, out: &mut Out<'_>) {
    let config = &*shared.config;
    let filter = &shared.filter;
    let dir = &job.dir;
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !job.follow {
        // A directory replaced by a symlink since it was listed is not
        // followed behind the user's back.
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match crate::fsutil::open(dir.path(), flags) {
        Ok(fd) => fd,
        Err(e) => {
            out.error(EntryError::io(dir.path().to_path_buf(), &e.into()));
            return;
        }
    };
    if config.one_file_system || config.follow_links {
        // One fstat per directory, only when these options need it.
        match rustix::fs::fstat(&fd) {
            Ok(st) => {
                if config.one_file_system && st.st_dev != job.root_dev {
                    return;
                }
                // Roots and followed links were recorded when queued.
                if config.follow_links && !job.follow && !shared.first_visit(&st) {
                    return;
                }
            }
            Err(e) => {
                out.error(EntryError::io(dir.path().to_path_buf(), &e.into()));
                return;
            }
        }
    }
    let mut listing = match Dir::new(fd) {
        Ok(d) => d,
        Err(e) => {
            out.error(EntryError::io(dir.path().to_path_buf(), &e.into()));
            return;
        }
    };
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut emit = |out: &mut Out<'_>, entry: FileEntry| {
        files += 1;
        bytes += entry.size;
        out.push(entry);
    };
    while let Some(item) = listing.read() {
        if shared.quit.load(Ordering::Relaxed) {
            return;
        }
        let ent = match item {
            Ok(ent) => ent,
            Err(e) => {
                out.error(EntryError::io(dir.path().to_path_buf(), &e.into()));
                break;
            }
        };
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let Ok(dfd) = listing.fd() else { break };
        let mut ftype = ent.file_type();
        let mut known: Option<Stat> = None;
        if ftype == FileType::Unknown {
            // Some file systems do not fill in d_type: stat to find out.
            match rustix::fs::statat(dfd, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    ftype = FileType::from_raw_mode(st.st_mode);
                    known = Some(st);
                }
                Err(e) => {
                    out.error(EntryError::io(dir.join(name), &e.into()));
                    continue;
                }
            }
        }
        match ftype {
            FileType::Directory if filter.enter_dir(dir, name) => {
                let child = Job {
                    dir: DirPath::new(dir.join(name), dir.depth() + 1),
                    root_dev: job.root_dev,
                    follow: false,
                };
                shared.push_job(Some(local), child);
            }
            FileType::RegularFile => {
                if !filter.file_name_ok(dir, name) {
                    continue;
                }
                let st = match known {
                    Some(st) => st,
                    None => match rustix::fs::statat(
                        dfd,
                        OsStr::from_bytes(name),
                        AtFlags::SYMLINK_NOFOLLOW,
                    ) {
                        Ok(st) => st,
                        Err(e) => {
                            out.error(EntryError::io(dir.join(name), &e.into()));
                            continue;
                        }
                    },
                };
                // Replaced by something else since the listing: skip it.
                if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    && filter.size_ok(st.st_size as u64)
                {
                    emit(
                        out,
                        FileEntry::from_stat(dir.clone(), name, &st, EntryKind::File),
                    );
                }
            }
            FileType::Symlink if config.follow_links => {
                match rustix::fs::statat(dfd, OsStr::from_bytes(name), AtFlags::empty()) {
                    Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                        FileType::Directory
                            if filter.enter_dir(dir, name) && shared.first_visit(&st) =>
                        {
                            let child = Job {
                                dir: DirPath::new(dir.join(name), dir.depth() + 1),
                                root_dev: job.root_dev,
                                follow: true,
                            };
                            shared.push_job(Some(local), child);
                        }
                        FileType::RegularFile
                            if filter.file_name_ok(dir, name)
                                && filter.size_ok(st.st_size as u64) =>
                        {
                            let e = FileEntry::from_stat(
                                dir.clone(),
                                name,
                                &st,
                                EntryKind::SymlinkToFile,
                            );
                            emit(out, e);
                        }
                        _ => {}
                    },
                    // A dangling link is not an error: there is nothing to read.
                    Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => out.error(EntryError::io(dir.join(name), &e.into())),
                }
            }
            // Symlinks (not followed), FIFOs, sockets and devices: never
            // stat'ed, never opened.
            _ => {}
        }
    }
    let c = &shared.counters;
    c.dirs.fetch_add(1, Ordering::Relaxed);
    if files > 0 {
        c.files.fetch_add(files, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    shared.progress.dir_scanned(files, bytes);
}
