//! What the walker hands to its consumers: [`FileEntry`] values that carry
//! everything the duplicate pipeline needs, so no stage has to stat a file
//! again, and [`EntryError`] values for what could not be read.
//!
//! Paths are stored compactly: every file holds a shared [`DirPath`] (its
//! directory, interned once per directory) and its own name. A tree of 10^6
//! files in 10^4 directories stores 10^4 directory paths, not 10^6 full
//! paths. The full path is built only when it is needed (opening the file,
//! printing it), and [`FileEntry::write_path`] appends it to a reused buffer
//! without allocating.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A directory on the walk, shared by all the entries found in it.
#[derive(Debug)]
pub struct DirPath {
    path: Box<Path>,
    depth: u32,
}

impl DirPath {
    pub(crate) fn new(path: impl Into<PathBuf>, depth: u32) -> Arc<DirPath> {
        Arc::new(DirPath {
            path: path.into().into_boxed_path(),
            depth,
        })
    }

    /// The directory's path as reached by the walk (root-relative if the
    /// root was relative). Empty for files given directly as roots with no
    /// directory part.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Depth below its root: a root directory is at depth 0.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Appends `self/name` to `out`.
    pub(crate) fn join_into(&self, name: &[u8], out: &mut Vec<u8>) {
        let dir = self.path.as_os_str().as_bytes();
        out.extend_from_slice(dir);
        if !dir.is_empty() && !dir.ends_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(name);
    }

    /// `self/name` as a new path.
    pub(crate) fn join(&self, name: &[u8]) -> PathBuf {
        let mut buf = Vec::with_capacity(self.path.as_os_str().len() + 1 + name.len());
        self.join_into(name, &mut buf);
        PathBuf::from(std::ffi::OsString::from_vec(buf))
    }
}

/// Device and inode: what makes two paths the same file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Device number (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub ino: u64,
}

/// How a file was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file listed in its directory.
    File,
    /// A symbolic link to a regular file, followed (`follow_links`); the
    /// metadata is the target's, the path the link's.
    SymlinkToFile,
}

/// A regular file found by the walk, with the metadata of one `stat` call.
#[derive(Clone, Debug)]
pub struct FileEntry {
    dir: Arc<DirPath>,
    name: Box<[u8]>,
    /// Size in bytes.
    pub size: u64,
    /// Device and inode.
    pub id: FileId,
    /// Number of hard links to the inode.
    pub nlink: u64,
    mtime_sec: i64,
    mtime_nsec: u32,
    /// How it was reached.
    pub kind: EntryKind,
}

impl FileEntry {
    pub(crate) fn from_stat(
        dir: Arc<DirPath>,
        name: &[u8],
        st: &rustix::fs::Stat,
        kind: EntryKind,
    ) -> FileEntry {
        FileEntry {
            dir,
            name: name.into(),
            size: st.st_size as u64,
            id: FileId {
                dev: st.st_dev,
                ino: st.st_ino,
            },
            nlink: st.st_nlink,
            mtime_sec: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec as u32,
            kind,
        }
    }

    /// The file's directory (shared with its siblings).
    pub fn dir(&self) -> &Arc<DirPath> {
        &self.dir
    }

    /// The file name, without its directory.
    pub fn name(&self) -> &OsStr {
        OsStr::from_bytes(&self.name)
    }

    /// The full path, allocated. Prefer [`FileEntry::write_path`] in loops.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Appends the full path's bytes to `out`.
    pub fn write_path(&self, out: &mut Vec<u8>) {
        self.dir.join_into(&self.name, out)
    }

    /// Depth below its root (a root's direct children are at depth 1).
    pub fn depth(&self) -> u32 {
        self.dir.depth + 1
    }

    /// Modification time.
    pub fn mtime(&self) -> SystemTime {
        let nanos = Duration::new(self.mtime_sec.unsigned_abs(), self.mtime_nsec);
        if self.mtime_sec >= 0 {
            UNIX_EPOCH + nanos
        } else {
            UNIX_EPOCH - nanos
        }
    }

    /// Modification time as (seconds, nanoseconds) since the Unix epoch.
    pub fn mtime_parts(&self) -> (i64, u32) {
        (self.mtime_sec, self.mtime_nsec)
    }
}

/// Why an entry could not be read. Counted per kind in the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Permission denied.
    PermissionDenied,
    /// The entry disappeared between listing and reading.
    Vanished,
    /// The path is longer than the system accepts.
    NameTooLong,
    /// A symbolic-link or directory loop.
    Loop,
    /// The file changed while it was being examined.
    Changed,
    /// A root that is neither a regular file nor a directory (FIFO, socket,
    /// device): never opened.
    NotRegular,
    /// Any other I/O error.
    Io,
}

impl ErrorKind {
    /// All kinds, in report order.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::PermissionDenied,
        ErrorKind::Vanished,
        ErrorKind::NameTooLong,
        ErrorKind::Loop,
        ErrorKind::Changed,
        ErrorKind::NotRegular,
        ErrorKind::Io,
    ];

    /// Classifies an I/O error.
    pub fn of(err: &io::Error) -> ErrorKind {
        use rustix::io::Errno;
        match Errno::from_io_error(err) {
            Some(Errno::ACCESS) | Some(Errno::PERM) => ErrorKind::PermissionDenied,
            Some(Errno::NOENT) | Some(Errno::NOTDIR) => ErrorKind::Vanished,
            Some(Errno::NAMETOOLONG) => ErrorKind::NameTooLong,
            Some(Errno::LOOP) => ErrorKind::Loop,
            _ => match err.kind() {
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                io::ErrorKind::NotFound => ErrorKind::Vanished,
                _ => ErrorKind::Io,
            },
        }
    }

    /// Short snake_case name, as in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Vanished => "vanished",
            ErrorKind::NameTooLong => "name_too_long",
            ErrorKind::Loop => "loop",
            ErrorKind::Changed => "changed",
            ErrorKind::NotRegular => "not_regular",
            ErrorKind::Io => "io",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A per-entry problem: it never stops the walk or the pipeline.
#[derive(Debug)]
pub struct EntryError {
    /// The path concerned.
    pub path: PathBuf,
    /// What kind of problem.
    pub kind: ErrorKind,
    /// The system's own message.
    pub message: String,
}

impl EntryError {
    pub(crate) fn io(path: PathBuf, err: &io::Error) -> EntryError {
        EntryError {
            path,
            kind: ErrorKind::of(err),
            message: err.to_string(),
        }
    }

    pub(crate) fn new(path: PathBuf, kind: ErrorKind, message: impl Into<String>) -> EntryError {
        EntryError {
            path,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for EntryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_without_doubled_separators() {
        let root = DirPath::new("/", 0);
        assert_eq!(root.join(b"a"), PathBuf::from("/a"));
        let rel = DirPath::new("x/y", 2);
        assert_eq!(rel.join(b"b c"), PathBuf::from("x/y/b c"));
        let bare = DirPath::new("", 0);
        assert_eq!(bare.join(b"f"), PathBuf::from("f"));
        let mut buf = b"prefix:".to_vec();
        rel.join_into(b"\xff", &mut buf);
        assert_eq!(buf, b"prefix:x/y/\xff");
    }

    #[test]
    fn io_errors_are_classified() {
        let e = io::Error::from(rustix::io::Errno::ACCESS);
        assert_eq!(ErrorKind::of(&e), ErrorKind::PermissionDenied);
        let e = io::Error::from(rustix::io::Errno::NOENT);
        assert_eq!(ErrorKind::of(&e), ErrorKind::Vanished);
        let e = io::Error::from(rustix::io::Errno::LOOP);
        assert_eq!(ErrorKind::of(&e), ErrorKind::Loop);
        let e = io::Error::other("x");
        assert_eq!(ErrorKind::of(&e), ErrorKind::Io);
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
