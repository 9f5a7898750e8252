//! Opening paths of any length. The kernel refuses a path longer than
//! `PATH_MAX` (4096 bytes) in one call, yet trees deeper than that exist
//! (nested backup sets, copied `node_modules`). When a whole-path open
//! fails with `ENAMETOOLONG`, [`open`] walks down one component at a time
//! with `openat`, which has no such limit.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;

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

    /// Builds a directory chain deeper than PATH_MAX using openat, the only
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
