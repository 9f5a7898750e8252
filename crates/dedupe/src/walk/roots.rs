//! The roots of a walk: opened before any thread starts (so a missing
//! root is an error up front), typed, and queued or reported.

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustix::fs::{FileType, OFlags};

use super::scanner::{pseudo_error, pseudo_fs, Job, Open, Shared};
use crate::entry::{Base, DirPath, EntryError, EntryKind, ErrorKind, FileEntry, Meta};

/// A root as found at the start of the walk.
pub(crate) enum Root {
    /// A directory, opened.
    Dir {
        path: PathBuf,
        fd: OwnedFd,
        meta: Meta,
    },
    /// A regular file.
    File { path: PathBuf, meta: Meta },
    /// Anything else, or a directory on a pseudo file system.
    Other(EntryError),
}

/// Opens a root the way `find -H` treats it: the user named it, so a
/// symlink is followed. Opened with `O_PATH` first, so a FIFO or device
/// given as a root is typed without being opened for reading.
pub(crate) fn open_root(path: &Path) -> Result<Root, std::io::Error> {
    let pfd = crate::fsutil::open(path, OFlags::PATH | OFlags::CLOEXEC)?;
    let meta = Meta::of_stat(&rustix::fs::fstat(&pfd)?);
    Ok(match meta.file_type {
        FileType::Directory => {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(&pfd, ".", flags, rustix::fs::Mode::empty())?;
            if let Some(kind) = pseudo_fs(&fd) {
                return Ok(Root::Other(pseudo_error(path.to_path_buf(), kind)));
            }
            Root::Dir {
                path: path.to_path_buf(),
                fd,
                meta,
            }
        }
        FileType::RegularFile => Root::File {
            path: path.to_path_buf(),
            meta,
        },
        _ => Root::Other(EntryError::new(
            path.to_path_buf(),
            ErrorKind::NotRegular,
            "not a regular file or directory; skipped",
        )),
    })
}

/// Queues a root directory (`index`: its place among the roots).
pub(crate) fn seed_dir(shared: &Shared, index: u32, path: PathBuf, fd: OwnedFd, meta: &Meta) {
    let prefix = path.as_os_str().len();
    let (dir_fd, base) = if shared.config.follow_links {
        (fd, None)
    } else {
        // The root's handle serves twice: listed as the root directory, and
        // kept as the base everything below it is resolved from.
        match fd.try_clone() {
            Ok(dup) => (dup, Some(Arc::new(Base { fd, prefix }))),
            Err(_) => (fd, None),
        }
    };
    let job = Job {
        dir: DirPath::with_root(path, 0, index, base),
        open: Open::Root(dir_fd),
        root_dev: meta.id.dev,
        parent_dev: meta.id.dev,
        follow: true,
    };
    shared.push_job(None, job);
}

/// A root that is a regular file, as an entry.
pub(crate) fn root_file(
    shared: &Shared,
    index: u32,
    path: &Path,
    meta: &Meta,
) -> Option<FileEntry> {
    if !shared.filter.size_ok(meta.size) {
        return None;
    }
    let name = path.file_name().unwrap_or(path.as_os_str()).as_bytes();
    let parent = path.parent().unwrap_or(Path::new(""));
    // No base: a root file is opened by its path, following a symlink, as
    // the user named it.
    let dir = DirPath::with_root(parent, 0, index, None);
    shared.counters.files.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .bytes
        .fetch_add(meta.size, Ordering::Relaxed);
    Some(FileEntry::from_meta(dir, name, meta, EntryKind::File))
}
