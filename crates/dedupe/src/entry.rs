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
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A directory on the walk, shared by all the entries found in it.
#[derive(Debug)]
pub struct DirPath {
    path: Box<Path>,
    depth: u32,
    /// Index of the root it was reached from, in the order the roots were
    /// given: reports order paths by it first.
    root: u32,
    /// Bytes of `path` that spell the root: what follows is the path
    /// relative to the root (which path globs are matched against).
    root_len: u32,
    /// The root directory's open handle, for opening anything below it
    /// without following symlinks (see [`Base`]). `None`: open by path,
    /// following symlinks (files named as roots, and everything under
    /// `follow_links`, where following is what the user asked for).
    base: Option<Arc<Base>>,
}

/// An open root directory. Files and directories below it are opened
/// relative to this handle with symlinks refused at every component, so a
/// directory swapped for a symlink during the run cannot lead a read out
/// of the tree.
#[derive(Debug)]
pub(crate) struct Base {
    pub(crate) fd: OwnedFd,
    /// Length of the root's path in bytes: what follows it in a path
    /// below the root is the part resolved from `fd`.
    pub(crate) prefix: usize,
}

impl Base {
    /// The part of `path` (a path below this root) to resolve from `fd`.
    pub(crate) fn relative<'a>(&self, path: &'a [u8]) -> &'a [u8] {
        let rest = path.get(self.prefix..).unwrap_or_default();
        let rest = rest.strip_prefix(b"/").unwrap_or(rest);
        if rest.is_empty() {
            b"."
        } else {
            rest
        }
    }
}

impl DirPath {
    #[cfg(test)]
    pub(crate) fn new(path: impl Into<PathBuf>, depth: u32) -> Arc<DirPath> {
        Self::with_root(path, depth, 0, None)
    }

    pub(crate) fn with_root(
        path: impl Into<PathBuf>,
        depth: u32,
        root: u32,
        base: Option<Arc<Base>>,
    ) -> Arc<DirPath> {
        let path = path.into().into_boxed_path();
        let root_len = u32::try_from(path.as_os_str().len()).unwrap_or(u32::MAX);
        Arc::new(DirPath {
            path,
            depth,
            root,
            root_len,
            base,
        })
    }

    /// A subdirectory `name` of this one, on the same root.
    pub(crate) fn child(&self, name: &[u8]) -> Arc<DirPath> {
        Arc::new(DirPath {
            path: self.join(name).into_boxed_path(),
            depth: self.depth + 1,
            root: self.root,
            root_len: self.root_len,
            base: self.base.clone(),
        })
    }

    /// This directory's path relative to its root (empty for the root):
    /// the same however the root was spelled (`t`, `./t`, `t/`).
    pub fn relative(&self) -> &[u8] {
        let p = self.path.as_os_str().as_bytes();
        let rest = p.get(self.root_len as usize..).unwrap_or_default();
        rest.strip_prefix(b"/").unwrap_or(rest)
    }

    /// Index of the root this directory was reached from (order given).
    pub fn root_index(&self) -> u32 {
        self.root
    }

    pub(crate) fn base(&self) -> Option<&Arc<Base>> {
        self.base.as_ref()
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
#[non_exhaustive]
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
    ctime_sec: i64,
    ctime_nsec: u32,
    /// The file is itself a mount point (a file bind mount): the same inode
    /// may also be reachable by another path.
    mount_root: bool,
    /// How it was reached.
    pub kind: EntryKind,
}

/// The metadata of one `stat`/`statx` call, in the form the walker keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub(crate) size: u64,
    pub(crate) id: FileId,
    pub(crate) nlink: u64,
    pub(crate) mtime: (i64, u32),
    pub(crate) ctime: (i64, u32),
    pub(crate) mount_root: bool,
    pub(crate) file_type: rustix::fs::FileType,
}

impl Meta {
    pub(crate) fn of_stat(st: &rustix::fs::Stat) -> Meta {
        Meta {
            size: u64::try_from(st.st_size).unwrap_or(0),
            id: FileId {
                dev: st.st_dev,
                ino: st.st_ino,
            },
            nlink: st.st_nlink,
            mtime: (st.st_mtime, clamp_nsec(st.st_mtime_nsec)),
            ctime: (st.st_ctime, clamp_nsec(st.st_ctime_nsec)),
            mount_root: false,
            file_type: rustix::fs::FileType::from_raw_mode(st.st_mode),
        }
    }

    pub(crate) fn of_statx(st: &rustix::fs::Statx) -> Meta {
        use rustix::fs::StatxAttributes;
        Meta {
            size: st.stx_size,
            id: FileId {
                dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
                ino: st.stx_ino,
            },
            nlink: u64::from(st.stx_nlink),
            mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
            ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
            mount_root: st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT),
            file_type: rustix::fs::FileType::from_raw_mode(u32::from(st.stx_mode)),
        }
    }
}

/// Nanoseconds as the kernel gives them are below 10^9; anything else is
/// clamped rather than trusted.
fn clamp_nsec(ns: u64) -> u32 {
    u32::try_from(ns.min(999_999_999)).unwrap_or(0)
}

/// Nanoseconds since the epoch, saturating: the one formula the walker and
/// the readers share, so their comparisons agree.
pub(crate) fn time_ns((sec, nsec): (i64, u32)) -> i64 {
    sec.saturating_mul(1_000_000_000)
        .saturating_add(i64::from(nsec))
}

impl FileEntry {
    #[cfg(test)]
    pub(crate) fn from_stat(
        dir: Arc<DirPath>,
        name: &[u8],
        st: &rustix::fs::Stat,
        kind: EntryKind,
    ) -> FileEntry {
        Self::from_meta(dir, name, &Meta::of_stat(st), kind)
    }

    pub(crate) fn from_meta(
        dir: Arc<DirPath>,
        name: &[u8],
        m: &Meta,
        kind: EntryKind,
    ) -> FileEntry {
        FileEntry {
            dir,
            name: name.into(),
            size: m.size,
            id: m.id,
            nlink: m.nlink,
            mtime_sec: m.mtime.0,
            mtime_nsec: m.mtime.1,
            ctime_sec: m.ctime.0,
            ctime_nsec: m.ctime.1,
            mount_root: m.mount_root,
            kind,
        }
    }

    /// Whether this inode may also be reached by another path: it has
    /// other hard links, it was reached through a symlink, or it is a file
    /// bind mount. Only such files need an identity check.
    pub fn may_be_aliased(&self) -> bool {
        self.nlink > 1 || self.kind == EntryKind::SymlinkToFile || self.mount_root
    }

    /// Whether the file is itself a mount point (a file bind mount).
    pub fn is_mount_root(&self) -> bool {
        self.mount_root
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
        self.dir.join_into(&self.name, out);
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

    /// Status-change time as (seconds, nanoseconds) since the Unix epoch:
    /// it moves on every write and metadata change, even when a copy tool
    /// puts the modification time back.
    pub fn ctime_parts(&self) -> (i64, u32) {
        (self.ctime_sec, self.ctime_nsec)
    }
}

/// Why an entry could not be read. Counted per kind in the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
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
    /// Left out on purpose: a pseudo file system (`/proc`, `/sys`) whose
    /// sizes do not describe content.
    Skipped,
    /// Any other I/O error.
    Io,
}

impl ErrorKind {
    /// All kinds, in report order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::PermissionDenied,
        ErrorKind::Vanished,
        ErrorKind::NameTooLong,
        ErrorKind::Loop,
        ErrorKind::Changed,
        ErrorKind::NotRegular,
        ErrorKind::Skipped,
        ErrorKind::Io,
    ];

    /// Classifies an I/O error.
    pub fn of(err: &io::Error) -> ErrorKind {
        use rustix::io::Errno;
        match Errno::from_io_error(err) {
            Some(Errno::ACCESS | Errno::PERM) => ErrorKind::PermissionDenied,
            Some(Errno::NOENT | Errno::NOTDIR) => ErrorKind::Vanished,
            Some(Errno::NAMETOOLONG) => ErrorKind::NameTooLong,
            Some(Errno::LOOP) => ErrorKind::Loop,
            _ => match err.kind() {
                io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                io::ErrorKind::NotFound => ErrorKind::Vanished,
                _ => ErrorKind::Io,
            },
        }
    }

    /// Short `snake_case` name, as in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Vanished => "vanished",
            ErrorKind::NameTooLong => "name_too_long",
            ErrorKind::Loop => "loop",
            ErrorKind::Changed => "changed",
            ErrorKind::NotRegular => "not_regular",
            ErrorKind::Skipped => "skipped",
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
#[derive(Clone, Debug)]
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
