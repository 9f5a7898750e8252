//! Opening paths safely and at any length.
//!
//! * Below a root, [`open_beneath`] resolves a path from the root's open
//!   handle with symlinks refused at every component (`openat2` with
//!   `RESOLVE_NO_SYMLINKS`), so a directory swapped for a symlink while the
//!   run goes on cannot lead it out of the tree.
//! * The kernel refuses a path longer than `PATH_MAX` (4096 bytes) in one
//!   call, yet trees deeper than that exist (nested backup sets, copied
//!   `node_modules`). Then both functions walk down one component at a
//!   time with `openat`, which has no such limit.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use crate::entry::Base;

/// Set once `openat2` turned out to be missing (kernels before 5.6, or a
/// sandbox that filters it), so it is not tried again for every file.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `path`, which lies below `base`'s root, resolving it from the
/// root's handle and refusing a symlink at any component, the last one
/// included.
pub(crate) fn open_beneath(base: &Base, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
    let rel = base.relative(path);
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(
            &base.fd,
            OsStr::from_bytes(rel),
            flags,
            Mode::empty(),
            resolve,
        ) {
            Err(Errno::NOSYS | Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
            Err(Errno::NAMETOOLONG) => {}
            // openat2 reports a refused symlink as ELOOP, as O_NOFOLLOW does.
            other => return other,
        }
    }
    beneath_by_parts(base.fd.as_fd(), rel, flags)
}

/// [`open_beneath`] one component at a time: every directory is opened
/// with `O_NOFOLLOW | O_DIRECTORY`, so a symlink anywhere fails the open.
fn beneath_by_parts(
    root: std::os::fd::BorrowedFd<'_>,
    rel: &[u8],
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let parts: Vec<&[u8]> = rel
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    let Some((last, dirs)) = parts.split_last() else {
        return rustix::fs::openat(root, ".", flags, Mode::empty());
    };
    if parts.iter().any(|p| *p == b"..") {
        return Err(Errno::XDEV); // never produced by the walk; refuse to climb out
    }
    let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir: Option<OwnedFd> = None;
    for part in dirs {
        let next = match &dir {
            Some(fd) => rustix::fs::openat(fd, OsStr::from_bytes(part), step, Mode::empty())?,
            None => rustix::fs::openat(root, OsStr::from_bytes(part), step, Mode::empty())?,
        };
        dir = Some(next);
    }
    let last = OsStr::from_bytes(last);
    match &dir {
        Some(fd) => rustix::fs::openat(fd, last, flags, Mode::empty()),
        None => rustix::fs::openat(root, last, flags, Mode::empty()),
    }
}

/// `open(path, flags)`, falling back to a component-by-component walk for
/// paths the kernel finds too long. Intermediate directories are opened
/// with `O_PATH | O_DIRECTORY` (following symlinks, as the whole-path open
/// would); `flags` apply to the last component only.
pub(crate) fn open(path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    match rustix::fs::open(path, flags, Mode::empty()) {
        Err(Errno::NAMETOOLONG) => open_by_parts(path, flags),
        other => other,
    }
}

fn open_by_parts(path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let parts: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            Component::ParentDir => Some(OsStr::from_bytes(b"..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    let Some((last, dirs)) = parts.split_last() else {
        return rustix::fs::open(path, flags, Mode::empty());
    };
    let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir: Option<OwnedFd> = if path.has_root() {
        Some(rustix::fs::open("/", step, Mode::empty())?)
    } else {
        None
    };
    for part in dirs {
        let next = match &dir {
            Some(fd) => rustix::fs::openat(fd, *part, step, Mode::empty())?,
            None => rustix::fs::openat(CWD, *part, step, Mode::empty())?,
        };
        dir = Some(next);
    }
    match &dir {
        Some(fd) => rustix::fs::openat(fd, *last, flags, Mode::empty()),
        None => rustix::fs::openat(CWD, *last, flags, Mode::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Builds a directory chain deeper than `PATH_MAX` using `openat`, the only
    /// way to make one, and returns the long path of a file at its bottom.
    fn deep_file(root: &Path, content: &[u8]) -> PathBuf {
        let name = "d".repeat(250);
        let mut fd =
            rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let mut path = root.to_path_buf();
        for _ in 0..20 {
            rustix::fs::mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            fd = rustix::fs::openat(
                &fd,
                name.as_str(),
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .unwrap();
            path.push(&name);
        }
        let f = rustix::fs::openat(
            &fd,
            "deep.bin",
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&f, content).unwrap();
        path.push("deep.bin");
        path
    }

    #[test]
    fn beneath_refuses_symlinks_at_every_component() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), b"inside").unwrap();
        std::fs::create_dir_all(t.path().join("outside/b")).unwrap();
        std::fs::write(t.path().join("outside/b/f"), b"outside").unwrap();
        std::os::unix::fs::symlink(t.path().join("outside"), root.join("swapped")).unwrap();
        std::os::unix::fs::symlink("b/f", root.join("a/lf")).unwrap();
        let fd =
            rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let prefix = root.as_os_str().len();
        let base = Base { fd, prefix };
        let path = |rel: &str| format!("{}/{rel}", root.display()).into_bytes();
        let read = |fd: OwnedFd| {
            let mut buf = [0u8; 16];
            let n = rustix::io::read(&fd, &mut buf).unwrap();
            buf[..n].to_vec()
        };
        for by_parts in [false, true] {
            NO_OPENAT2.store(by_parts, Ordering::Relaxed);
            let fd = open_beneath(&base, &path("a/b/f"), OFlags::RDONLY).unwrap();
            assert_eq!(read(fd), b"inside");
            for bad in ["swapped/b/f", "a/lf"] {
                let err = open_beneath(&base, &path(bad), OFlags::RDONLY).unwrap_err();
                assert!(
                    matches!(err, Errno::LOOP | Errno::NOTDIR | Errno::XDEV),
                    "{bad} by_parts={by_parts}: {err:?}"
                );
            }
        }
        NO_OPENAT2.store(false, Ordering::Relaxed);
        // A path deeper than PATH_MAX resolves component by component.
        let deep = deep_file(&root, b"bottom");
        let fd = open_beneath(&base, deep.as_os_str().as_bytes(), OFlags::RDONLY).unwrap();
        assert_eq!(read(fd), b"bottom");
    }

    #[test]
    fn paths_longer_than_path_max_open() {
        let t = tempfile::tempdir().unwrap();
        let deep = deep_file(t.path(), b"bottom");
        assert!(deep.as_os_str().len() > 4096);
        assert_eq!(
            rustix::fs::open(&deep, OFlags::RDONLY, Mode::empty()).unwrap_err(),
            Errno::NAMETOOLONG
        );
        let fd = open(&deep, OFlags::RDONLY | OFlags::CLOEXEC).unwrap();
        let mut buf = [0u8; 16];
        let n = rustix::io::read(&fd, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"bottom");
        let rel = pathdiff(&deep, t.path());
        assert!(open(&t.path().join(&rel), OFlags::RDONLY).is_ok());
        assert_eq!(
            open(&t.path().join("missing/x"), OFlags::RDONLY).unwrap_err(),
            Errno::NOENT
        );
    }

    fn pathdiff(p: &Path, base: &Path) -> PathBuf {
        p.strip_prefix(base).unwrap().to_path_buf()
    }
}
